/* test_nn_fused.c — batch norm fused with a residual add and ReLU/ReLU6 against the plain
 * kernels composed.
 *
 * The reference of a fused kernel is what the net computed before fusing: the naive batch
 * norm, the add, then the activation's own rule (clip to [0, hi] forward; pass the gradient
 * where 0 < y < hi backward, to the batch norm and to the residual alike) — for the
 * inference mode, sums in double here. Relative error as in
 * test_nn_kernels.c, below 1e-4. The overwrite mode starts from a NaN-filled gradient
 * buffer, as a reused buffer may hold anything. Without a residual the backward may take
 * its mask from the input instead of the output; that must change no bit. */
#include "test.h"
#include "testdata.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"
#include "util/rng.h"

static float *filled(size_t n, float v)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        x[i] = v;
    return x;
}

#define CHECK_CLOSE(what, a, b, n)                                                         \
    do {                                                                                   \
        double e_ = test_rel_err(a, b, n);                                                 \
        if (!(e_ < 1e-4))                                                                  \
            printf("    %s: relative error %.3g (M %d, C %d, T %d, hi %g)\n", what, e_, M, C, \
                   T, hi);                                                                 \
        CHECK(e_ < 1e-4);                                                                  \
    } while (0)

/* The activation's backward rule on the reference output. */
static void mask(float *g, const float *dy, const float *y, float hi, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = y[i] > 0 && y[i] < hi ? dy[i] : 0;
}

static void clip(float *y, float hi, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = fminf(fmaxf(y[i], 0), hi);
}

/* One run of nn_fused_batchnorm_add_relu_train_equals_the_composition
 * under the active instruction set. */
static void nn_fused_batchnorm_add_relu_train_equals_the_composition_once(void)
{
    Rng rng;
    rng_seed(&rng, 21);
    for (int trial = 0; trial < 10; trial++) {
        int M = 2 + (int)rng_below(&rng, 500), C = 1 + (int)rng_below(&rng, 300);
        int T = 1 + (int)rng_below(&rng, 3);
        float hi = trial % 2 ? 6.0f : INFINITY;
        size_t n = (size_t)M * C;
        /* outputs from about -8 to 12: both clips are hit */
        float *x = test_uniform(&rng, n, -2, 2), *gam = test_uniform(&rng, C, 0.5, 3), *bet = test_uniform(&rng, C, -1, 5);
        float *dy = test_uniform(&rng, n, -1, 1), *res = trial % 3 ? test_uniform(&rng, n, -3, 3) : NULL;
        float *y = malloc(4 * n), *yr = malloc(4 * n), *st = malloc(12 * C), *str = malloc(12 * C);
        float *work = malloc(sizeof(float) * batchnorm_workspace(C, T));
        BnFused f = {.hi = hi, .res = res};
        batchnorm_fused_forward_train(y, st, st + C, st + 2 * C, x, gam, bet, M, C, 1e-3f, &f,
                                      NULL, work, T);
        batchnorm_forward_train_naive(yr, str, str + C, str + 2 * C, x, gam, bet, M, C, 1e-3f);
        for (size_t i = 0; res && i < n; i++)
            yr[i] += res[i];
        clip(yr, hi, n);
        CHECK_CLOSE("forward", y, yr, n);
        CHECK_CLOSE("statistics", st, str, 3 * (size_t)C);

        float *g = malloc(4 * n);
        mask(g, dy, yr, hi, n);
        float *dxr = test_uniform(&rng, n, -1, 1), *dgr = test_uniform(&rng, C, -1, 1), *dbr = test_uniform(&rng, C, -1, 1);
        float *dx = malloc(4 * n), *dg = malloc(4 * C), *db = malloc(4 * C);
        memcpy(dx, dxr, 4 * n), memcpy(dg, dgr, 4 * C), memcpy(db, dbr, 4 * C);
        /* accumulating into the input gradient, overwriting the residual's */
        float *dres = res ? filled(n, NAN) : NULL;
        f = (BnFused){.hi = hi, .out = yr, .dres = dres, .accumulate = true};
        batchnorm_fused_backward_train(dx, dg, db, dy, x, gam, str, str + C, M, C, &f, work, T);
        batchnorm_backward_train_naive(dxr, dgr, dbr, g, x, gam, str, str + C, M, C);
        CHECK_CLOSE("dinp accumulated", dx, dxr, n);
        CHECK_CLOSE("dgamma", dg, dgr, C);
        CHECK_CLOSE("dbeta", db, dbr, C);
        if (res)
            CHECK_CLOSE("residual gradient overwritten", dres, g, n);

        /* the other way round */
        float *dx0 = filled(n, NAN), *dxz = filled(n, 0), *dgz = filled(C, 0), *dbz = filled(C, 0);
        memset(dg, 0, 4 * C), memset(db, 0, 4 * C);
        float *dres_ref = res ? test_uniform(&rng, n, -1, 1) : NULL;
        if (res) {
            memcpy(dres, dres_ref, 4 * n);
            for (size_t i = 0; i < n; i++)
                dres_ref[i] += g[i];
        }
        f = (BnFused){.hi = hi, .out = yr, .dres = dres, .res_accumulate = true};
        batchnorm_fused_backward_train(dx0, dg, db, dy, x, gam, str, str + C, M, C, &f, work, T);
        batchnorm_backward_train_naive(dxz, dgz, dbz, g, x, gam, str, str + C, M, C);
        CHECK_CLOSE("dinp overwritten", dx0, dxz, n);
        if (res)
            CHECK_CLOSE("residual gradient accumulated", dres, dres_ref, n);
        free(res), free(dres), free(dres_ref);
        free(x), free(gam), free(bet), free(dy), free(y), free(yr), free(st), free(str);
        free(work), free(g), free(dxr), free(dgr), free(dbr), free(dx), free(dg), free(db);
        free(dx0), free(dxz), free(dgz), free(dbz);
    }
}

TEST(nn_fused_batchnorm_add_relu_train_equals_the_composition)
{
    /* batchnorm_vec.h is compiled for each instruction set */
    test_each_isa(nn_fused_batchnorm_add_relu_train_equals_the_composition_once);
}

/* One run of nn_fused_batchnorm_add_relu_inference_equals_the_composition
 * under the active instruction set. */
static void nn_fused_batchnorm_add_relu_inference_equals_the_composition_once(void)
{
    Rng rng;
    rng_seed(&rng, 22);
    for (int trial = 0; trial < 10; trial++) {
        int M = 2 + (int)rng_below(&rng, 500), C = 1 + (int)rng_below(&rng, 300);
        int T = 1 + (int)rng_below(&rng, 3);
        float hi = trial % 2 ? 6.0f : INFINITY;
        const float eps = 1e-3f;
        size_t n = (size_t)M * C;
        float *x = test_uniform(&rng, n, -2, 2), *gam = test_uniform(&rng, C, 0.5, 3), *bet = test_uniform(&rng, C, -1, 5);
        float *mm = test_uniform(&rng, C, -0.5, 0.5), *mv = test_uniform(&rng, C, 0.2, 2);
        float *dy = test_uniform(&rng, n, -1, 1), *res = trial % 3 ? test_uniform(&rng, n, -3, 3) : NULL;
        float *y = malloc(4 * n), *yr = malloc(4 * n);
        float *work = malloc(sizeof(float) * batchnorm_workspace(C, T));
        BnFused f = {.hi = hi, .res = res};
        batchnorm_fused_forward_infer(y, x, gam, bet, mm, mv, M, C, eps, &f, work, T);
        double *dgr = calloc(C, sizeof(double)), *dbr = calloc(C, sizeof(double));
        float *dxr = malloc(4 * n);
        for (int r = 0; r < M; r++)
            for (int c = 0; c < C; c++) {
                size_t i = (size_t)r * C + c;
                double is = 1.0 / sqrt((double)mv[c] + eps), xhat = (x[i] - mm[c]) * is;
                double v = fmin(fmax(gam[c] * xhat + bet[c] + (res ? res[i] : 0), 0), hi);
                yr[i] = (float)v;
                double g = v > 0 && v < hi ? dy[i] : 0;
                dgr[c] += g * xhat, dbr[c] += g;
                dxr[i] = (float)(gam[c] * is * g);
            }
        CHECK_CLOSE("forward", y, yr, n);
        float *dx = filled(n, NAN), *dg = filled(C, 0), *db = filled(C, 0);
        float *dres = res ? filled(n, NAN) : NULL;
        f = (BnFused){.hi = hi, .out = yr, .dres = dres};
        batchnorm_fused_backward_infer(dx, dg, db, dy, x, gam, mm, mv, M, C, eps, &f, work, T);
        if (res) {
            float *g = malloc(4 * n);
            mask(g, dy, yr, hi, n);
            CHECK_CLOSE("residual gradient", dres, g, n);
            free(g);
        }
        free(res), free(dres);
        float *dgf = malloc(4 * C), *dbf = malloc(4 * C);
        for (int c = 0; c < C; c++)
            dgf[c] = (float)dgr[c], dbf[c] = (float)dbr[c];
        CHECK_CLOSE("dinp", dx, dxr, n);
        CHECK_CLOSE("dgamma", dg, dgf, C);
        CHECK_CLOSE("dbeta", db, dbf, C);
        free(x), free(gam), free(bet), free(mm), free(mv), free(dy), free(y), free(yr);
        free(work), free(dgr), free(dbr), free(dxr), free(dx), free(dg), free(db), free(dgf);
        free(dbf);
    }
}

TEST(nn_fused_batchnorm_add_relu_inference_equals_the_composition)
{
    /* batchnorm_vec.h is compiled for each instruction set */
    test_each_isa(nn_fused_batchnorm_add_relu_inference_equals_the_composition_once);
}

/* Without a residual the backward masks dout by 0 < v < hi with v recomputed from x, not by
 * the output y: the two masks, and so the whole backward, must agree bit for bit. Channel 0
 * is constant with beta 0 (v exactly 0: masked), channel 1 constant with beta 6 (v exactly
 * 6: masked by ReLU6, passed by ReLU), channel 2 has gamma 0 and beta 0 (v = ±0); the rest
 * is random, around 0 or around 1000 (kind 1). Train and inference mode, overwriting the
 * input gradient; the train result is also checked against the naive kernel. */
/* One run of nn_fused_batchnorm_relu_mask_from_input_equals_mask_from_output
 * under the active instruction set. */
static void nn_fused_batchnorm_relu_mask_from_input_equals_mask_from_output_once(void)
{
    Rng rng;
    rng_seed(&rng, 23);
    /* 128 and 192: rows of whole 64-lane slices, summed by block_sums */
    const int Cs[] = {3, 17, 67, 128, 192}, Ms[] = {17, 333};
    for (int ci = 0; ci < 5; ci++)
        for (int mi = 0; mi < 2; mi++)
            for (int T = 1; T <= 2; T++)
                for (int hk = 0; hk < 2; hk++)
                    for (int kind = 0; kind < 2; kind++)
                        for (int infer = 0; infer < 2; infer++) {
            int C = Cs[ci], M = Ms[mi];
            float hi = hk ? 6.0f : INFINITY;
            size_t n = (size_t)M * C;
            const float eps = 1e-3f;
            float *x = test_uniform(&rng, n, -2, 2), *gam = test_uniform(&rng, C, 0.5, 3), *bet = test_uniform(&rng, C, -1, 5);
            float *mm = test_uniform(&rng, C, -0.5, 0.5), *mv = test_uniform(&rng, C, 0.2, 2);
            float *dy = test_uniform(&rng, n, 0.5, 1); /* nonzero: a masked element shows */
            for (size_t i = 0; kind && i < n; i++)
                x[i] = (float)(1000 + x[i]);
            for (int c = 0; c < C; c++)
                mm[c] += kind ? 1000 : 0;
            for (int r = 0; r < M; r++) {
                x[(size_t)r * C] = kind ? 1000.5f : 0.25f;
                x[(size_t)r * C + 1] = kind ? 999.75f : -1.5f;
            }
            mm[0] = x[0], mm[1] = x[1]; /* inference: v = beta exactly */
            bet[0] = 0, bet[1] = 6, gam[2] = 0, bet[2] = 0;
            float *y = malloc(4 * n), *st = malloc(12 * C);
            float *work = malloc(sizeof(float) * batchnorm_workspace(C, T));
            BnFused f = {.hi = hi};
            if (infer)
                batchnorm_fused_forward_infer(y, x, gam, bet, mm, mv, M, C, eps, &f, work, T);
            else
                batchnorm_fused_forward_train(y, st, st + C, st + 2 * C, x, gam, bet, M, C, eps,
                                              &f, NULL, work, T);
            CHECK(y[0] == 0.0f && y[2] == 0.0f);
            CHECK(y[1] == 6.0f);
            float *dxa = filled(n, NAN), *dxb = filled(n, NAN);
            float *dga = filled(C, 0.5f), *dba = filled(C, 0.5f);
            float *dgb = filled(C, 0.5f), *dbb = filled(C, 0.5f);
            BnFused fa = {.hi = hi, .out = y}, fb = {.hi = hi, .beta = bet};
            if (infer) {
                batchnorm_fused_backward_infer(dxa, dga, dba, dy, x, gam, mm, mv, M, C, eps, &fa,
                                               work, T);
                batchnorm_fused_backward_infer(dxb, dgb, dbb, dy, x, gam, mm, mv, M, C, eps, &fb,
                                               work, T);
            } else {
                batchnorm_fused_backward_train(dxa, dga, dba, dy, x, gam, st, st + C, M, C, &fa,
                                               work, T);
                batchnorm_fused_backward_train(dxb, dgb, dbb, dy, x, gam, st, st + C, M, C, &fb,
                                               work, T);
            }
            bool same = memcmp(dxa, dxb, 4 * n) == 0 && memcmp(dga, dgb, 4 * C) == 0 &&
                        memcmp(dba, dbb, 4 * C) == 0;
            if (!same)
                printf("    masks differ (M %d, C %d, T %d, hi %g, kind %d, infer %d)\n", M, C,
                       T, hi, kind, infer);
            CHECK(same);
            /* v = 0 and v = hi pass nothing; v = 6 under ReLU passes every row */
            CHECK(dbb[0] == 0.5f && dbb[2] == 0.5f);
            CHECK(hk ? dbb[1] == 0.5f : dbb[1] > 0.5f + 0.4f * M);
            if (!infer) {
                float *g = malloc(4 * n), *dxr = filled(n, 0), *dgr = filled(C, 0.5f);
                float *dbr = filled(C, 0.5f);
                mask(g, dy, y, hi, n);
                batchnorm_backward_train_naive(dxr, dgr, dbr, g, x, gam, st, st + C, M, C);
                CHECK_CLOSE("dinp, mask from x", dxb, dxr, n);
                CHECK_CLOSE("dgamma, mask from x", dgb, dgr, C);
                CHECK_CLOSE("dbeta, mask from x", dbb, dbr, C);
                free(g), free(dxr), free(dgr), free(dbr);
            }
            free(x), free(gam), free(bet), free(mm), free(mv), free(dy), free(y), free(st);
            free(work), free(dxa), free(dxb), free(dga), free(dba), free(dgb), free(dbb);
        }
}

TEST(nn_fused_batchnorm_relu_mask_from_input_equals_mask_from_output)
{
    /* batchnorm_vec.h is compiled for each instruction set */
    test_each_isa(nn_fused_batchnorm_relu_mask_from_input_equals_mask_from_output_once);
}
