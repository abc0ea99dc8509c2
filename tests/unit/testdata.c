/* testdata.c — random tensors and reference statistics shared by the nn unit tests. */
#include "testdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *floats(size_t n)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    if (!x) {
        fprintf(stderr, "testdata: out of memory for %zu floats\n", n);
        abort();
    }
    return x;
}

float *test_uniform(Rng *rng, size_t n, double lo, double hi)
{
    float *x = floats(n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * rng_uniform(rng));
    return x;
}

float *test_rnd(Rng *rng, size_t n)
{
    return test_uniform(rng, n, -1, 1);
}

float *test_dup(const float *x, size_t n)
{
    float *y = floats(n);
    memcpy(y, x, sizeof(float) * n);
    return y;
}

void test_moments(double *mean, double *var, const float *x, size_t M, int C)
{
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (size_t r = 0; r < M; r++)
            s += x[r * C + c];
        s /= (double)M;
        for (size_t r = 0; r < M; r++)
            q += (x[r * C + c] - s) * (x[r * C + c] - s);
        mean[c] = s;
        var[c] = q / (double)M;
    }
}
