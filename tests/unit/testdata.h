/* testdata.h — random tensors and reference statistics shared by the nn unit tests. */
#ifndef INITLAB_TESTDATA_H
#define INITLAB_TESTDATA_H

#include <stddef.h>

#include "util/rng.h"

/* n floats uniform in [lo, hi) from rng (malloc'd, at least one float; the caller frees).
 * Aborts when memory runs out. */
float *test_uniform(Rng *rng, size_t n, double lo, double hi);
/* n floats uniform in [-1, 1): test_uniform(rng, n, -1, 1). */
float *test_rnd(Rng *rng, size_t n);
/* A malloc'd copy of x (n floats, at least one float allocated). Aborts when memory runs
 * out. */
float *test_dup(const float *x, size_t n);
/* Two-pass moments in double of x (M, C): mean (C) and biased variance (C). */
void test_moments(double *mean, double *var, const float *x, size_t M, int C);

#endif
