/* test_nn_bnwide.c — batch norms of few channels, which run R = 64 / C rows as one wide row,
 * against the naive kernels and, bit for bit, against the per-element expression.
 *
 * Every shape of the wide-row split is visited: fewer rows than R (only the shorter last
 * row), whole wide rows with and without rows left over, fewer wide rows than threads, and
 * channel counts that do and do not divide 64. The forward output must equal
 * (x − mean)·a + beta with a = gamma·invstd rounded to float, computed here element by
 * element from the statistics the kernel returns: a lane paired with the wrong channel
 * changes bits even where it would pass a tolerance. The plain kernels (no BnFused) add
 * to their gradients, the naive ones too. */
#include "test.h"
#include "testdata.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"
#include "util/rng.h"

/* Per channel: a mean and a spread of its own, so a channel mix-up shows. */
static float *channel_data(Rng *rng, int M, int C)
{
    float *x = malloc(sizeof(float) * (size_t)M * C);
    for (int r = 0; r < M; r++)
        for (int c = 0; c < C; c++)
            x[(size_t)r * C + c] = (float)(c - 3 + (1 + c % 5) * (rng_uniform(rng) - 0.5));
    return x;
}

static int bits_equal(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, sizeof(float) * n) == 0;
}

/* One run of nn_batchnorm_narrow_channels_as_wide_rows_match_naive
 * under the active instruction set. */
static void nn_batchnorm_narrow_channels_as_wide_rows_match_naive_once(void)
{
    static const int Cs[] = {1, 3, 8, 16, 17, 32, 48, 63};
    Rng rng;
    rng_seed(&rng, 64);
    int cases = 0;
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++) {
        int C = Cs[ci], R = 64 / C;
        int Ms[] = {1, 2, R > 1 ? R - 1 : 3, R + 1, 2 * R, 7 * R + 3, 997};
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
            int M = Ms[mi];
            for (int T = 1; T <= 3; T++, cases++) {
                size_t n = (size_t)M * C;
                float hi = (T + (int)mi) % 2 ? 6.0f : INFINITY;
                float *x = channel_data(&rng, M, C), *gam = test_uniform(&rng, C, 0.5, 2);
                float *bet = test_uniform(&rng, C, -0.5, 0.5), *dy = test_uniform(&rng, n, -1, 1);
                float *y = malloc(4 * n), *yr = malloc(4 * n), *want = malloc(4 * n);
                float *st = malloc(12 * C), *str = malloc(12 * C);
                float *work = malloc(sizeof(float) * batchnorm_workspace(C, T));

                /* plain forward: bits of the per-element expression, values of the naive */
                batchnorm_forward_train(y, st, st + C, st + 2 * C, x, gam, bet, M, C, 1e-3f,
                                        work, T);
                batchnorm_forward_train_naive(yr, str, str + C, str + 2 * C, x, gam, bet, M, C,
                                              1e-3f);
                for (int r = 0; r < M; r++)
                    for (int c = 0; c < C; c++) {
                        float a = (float)((double)gam[c] * st[C + c]);
                        want[(size_t)r * C + c] = (x[(size_t)r * C + c] - st[c]) * a + bet[c];
                    }
                CHECK(bits_equal(y, want, n));
                CHECK(test_rel_err(st, str, 3 * (size_t)C) < 1e-5);
                CHECK(test_rel_err(y, yr, n) < 1e-4);

                /* fused ReLU/ReLU6: the clip of the same bits */
                BnFused f = {.hi = hi};
                batchnorm_fused_forward_train(y, st, st + C, st + 2 * C, x, gam, bet, M, C,
                                              1e-3f, &f, NULL, work, T);
                for (size_t i = 0; i < n; i++)
                    want[i] = fminf(fmaxf(want[i], 0.0f), hi);
                CHECK(bits_equal(y, want, n));

                /* backward with the mask from x: the naive kernel on the masked gradient */
                float *g = malloc(4 * n), *dx = malloc(4 * n), *dxr = calloc(n, 4);
                for (size_t i = 0; i < n; i++)
                    g[i] = want[i] > 0 && want[i] < hi ? dy[i] : 0;
                float *dg = calloc(C, 4), *db = calloc(C, 4), *dgr = calloc(C, 4);
                float *dbr = calloc(C, 4);
                for (size_t i = 0; i < n; i++)
                    dx[i] = NAN;
                f = (BnFused){.hi = hi, .beta = bet};
                batchnorm_fused_backward_train(dx, dg, db, dy, x, gam, st, st + C, M, C, &f, work,
                                               T);
                batchnorm_backward_train_naive(dxr, dgr, dbr, g, x, gam, st, st + C, M, C);
                if (M > 1) {
                    CHECK(test_rel_err(dx, dxr, n) < 1e-4);
                } else { /* one row: the exact gradient is 0, the kernel's its rounding */
                    for (size_t i = 0; i < n; i++)
                        CHECK(fabsf(dx[i]) < 1e-4f);
                }
                CHECK(test_rel_err(dg, dgr, C) < 1e-5);
                CHECK(test_rel_err(db, dbr, C) < 1e-5);
                /* ... and the same bits as the mask from y */
                float *dx2 = malloc(4 * n), *dg2 = calloc(C, 4), *db2 = calloc(C, 4);
                f = (BnFused){.hi = hi, .out = y};
                batchnorm_fused_backward_train(dx2, dg2, db2, dy, x, gam, st, st + C, M, C, &f,
                                               work, T);
                CHECK(bits_equal(dx, dx2, n) && bits_equal(dg, dg2, C) && bits_equal(db, db2, C));

                /* inference mode: y = (x − mm)·a + beta, a = gamma / sqrt(mv + eps) */
                float *mm = test_uniform(&rng, C, -1, 1), *mv = test_uniform(&rng, C, 0.5, 2);
                batchnorm_forward_infer(y, x, gam, bet, mm, mv, M, C, 1e-3f, work, T);
                for (int r = 0; r < M; r++)
                    for (int c = 0; c < C; c++) {
                        float a = (float)(gam[c] / sqrt((double)mv[c] + 1e-3f));
                        want[(size_t)r * C + c] = (x[(size_t)r * C + c] - mm[c]) * a + bet[c];
                    }
                CHECK(bits_equal(y, want, n));
                /* its backward: dx = a·dy, dgamma = Σ dy·xhat, dbeta = Σ dy, in double here
                 * (the plain kernels add to their gradients) */
                memset(dg, 0, 4 * C), memset(db, 0, 4 * C), memset(dx, 0, 4 * n);
                batchnorm_backward_infer(dx, dg, db, dy, x, gam, mm, mv, M, C, 1e-3f, work, T);
                for (int c = 0; c < C; c++) {
                    double sg = 0, sb = 0, is = 1.0 / sqrt((double)mv[c] + 1e-3f);
                    for (int r = 0; r < M; r++) {
                        size_t i = (size_t)r * C + c;
                        sb += dy[i];
                        sg += dy[i] * ((x[i] - mm[c]) * is);
                        dxr[i] = (float)(gam[c] * is * dy[i]);
                    }
                    dgr[c] = (float)sg, dbr[c] = (float)sb;
                }
                CHECK(test_rel_err(dx, dxr, n) < 1e-5);
                CHECK(test_rel_err(dg, dgr, C) < 1e-4);
                CHECK(test_rel_err(db, dbr, C) < 1e-5);

                free(x), free(gam), free(bet), free(dy), free(y), free(yr), free(want);
                free(st), free(str), free(work), free(g), free(dx), free(dxr), free(dg);
                free(db), free(dgr), free(dbr), free(dx2), free(dg2), free(db2), free(mm);
                free(mv);
            }
        }
    }
    CHECK_INT(cases, 8 * 7 * 3);
}

TEST(nn_batchnorm_narrow_channels_as_wide_rows_match_naive)
{
    /* batchnorm_vec.h is compiled for each instruction set */
    test_each_isa(nn_batchnorm_narrow_channels_as_wide_rows_match_naive_once);
}
