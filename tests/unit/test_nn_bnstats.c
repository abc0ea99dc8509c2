/* test_nn_bnstats.c — batch-norm moments gathered by the producing conv: BnStats against
 * two-pass double moments, conv2d_forward_stats against conv2d_forward,
 * depthwise_forward_stats against depthwise_forward on every ISA path, the batch norm fed
 * with them against its own pass, and whole nets against the naive kernels.
 *
 * Data with a large mean (1000 + N(0, 1), and a drift along the rows so that the threads'
 * partials have different means) exercises the per-thread shifts and their merge: summing
 * x² without a shift would lose every digit of the variance there. Tolerances: moments,
 * computed in double from float sums of shifted values, within 1e-6 of the mean's scale
 * and 1e-5 of the variance; tensors by test_rel_err (max difference over max |reference|)
 * below 1e-5 against today's kernels and 1e-4 against the naive ones, as in
 * test_nn_kernels.c. */
#include "test.h"
#include "testdata.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"
#include "nn/net.h"
#include "util/isa.h"
#include "util/rng.h"

/* x (n): kind 0 uniform in [-2, 2], kind 1 1000 + N(0, 1) + 0.01·(i / C) (drifting rows). */
static void fill_data(Rng *rng, float *x, size_t n, int C, int kind)
{
    for (size_t i = 0; i < n; i++)
        x[i] = kind ? (float)(1000 + rng_normal(rng) + 0.01 * (double)(i / (size_t)C))
                    : (float)(-2 + 4 * rng_uniform(rng));
}

/* Failed channels of mean/var against the references (see the file comment). */
static int moments_mismatch(const double *mean, const double *var, const double *rm,
                            const double *rv, int C)
{
    int bad = 0;
    for (int c = 0; c < C; c++) {
        double sd = sqrt(rv[c]);
        if (!(fabs(mean[c] - rm[c]) <= 1e-6 * (fabs(rm[c]) * 1e-3 + sd) + 1e-9) ||
            !(fabs(var[c] - rv[c]) <= 1e-5 * rv[c] + 1e-9)) {
            if (bad++ < 4)
                printf("    channel %d: mean %.12g (ref %.12g), var %.12g (ref %.12g)\n", c,
                       mean[c], rm[c], var[c], rv[c]);
        }
    }
    return bad;
}

TEST(nn_bnstats_moments_match_two_pass_double)
{
    Rng rng;
    rng_seed(&rng, 31);
    const int Cs[] = {3, 17, 67}, Ms[] = {1, 15, 16, 17, 333, 1001};
    const size_t pieces[] = {1, 7, 16, 33}; /* call sizes: blocks of 16 split across calls */
    for (int ci = 0; ci < 3; ci++)
        for (int mi = 0; mi < 6; mi++)
            for (int T = 1; T <= 3; T++)
                for (int kind = 0; kind < 2; kind++) {
                    int C = Cs[ci], M = Ms[mi];
                    float *x = malloc(sizeof(float) * M * C);
                    fill_data(&rng, x, (size_t)M * C, C, kind);
                    void *mem = malloc(bnstats_bytes(C, T));
                    memset(mem, 0xff, bnstats_bytes(C, T)); /* NaNs: reused memory */
                    BnStats s;
                    bnstats_init(&s, mem, C, T);
                    for (int t = 0; t < T; t++) { /* the share() split of conv.c */
                        size_t r = (size_t)M * t / T, e = (size_t)M * (t + 1) / T;
                        for (int p = 0; r < e; p++) {
                            size_t n = pieces[(p + t) % 4] < e - r ? pieces[(p + t) % 4] : e - r;
                            bnstats_rows(&s, t, x + r * C, n);
                            r += n;
                        }
                    }
                    double *mean = malloc(sizeof(double) * 4 * C), *var = mean + C;
                    double *rm = var + C, *rv = rm + C;
                    bnstats_moments(&s, mean, var);
                    test_moments(rm, rv, x, M, C);
                    int bad = moments_mismatch(mean, var, rm, rv, C);
                    if (bad)
                        printf("    (M %d, C %d, T %d, kind %d)\n", M, C, T, kind);
                    CHECK_INT(bad, 0);
                    free(x), free(mem), free(mean);
                }
}

/* One conv geometry for the tests below. */
typedef struct {
    int N, H, W, C, K, k, stride;
    Padding pad;
} ConvCase;

TEST(nn_bnstats_conv_forward_gathers_its_output_moments)
{
    /* 1×1 stride 1 (the pointwise GEMM: one block per thread, and 6400 rows of 64 → 67
     * channels, which run in 1024-row blocks and a short last one), 3×3 stride 1 and 2, 1×1
     * stride 2 (ResNet's strided 1×1, through im2col); K = 3, 17, 67. A small workspace
     * makes the im2col path run in many chunks, so each thread's rows come in many calls. */
    const ConvCase cases[] = {
        {2, 25, 25, 5, 3, 1, 1, PAD_VALID},  {2, 25, 25, 5, 17, 1, 1, PAD_VALID},
        {1, 33, 35, 7, 67, 1, 1, PAD_VALID}, {4, 40, 40, 64, 67, 1, 1, PAD_VALID},
        {2, 9, 11, 3, 17, 3, 1, PAD_SAME},   {3, 10, 9, 4, 67, 3, 2, PAD_SAME},
        {2, 9, 9, 6, 3, 1, 2, PAD_VALID},
    };
    Rng rng;
    rng_seed(&rng, 32);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int T = 1; T <= 2; T++)
            for (int kind = 0; kind < 2; kind++) {
                const ConvCase *cc = &cases[ci];
                ConvGeom g;
                REQUIRE(shape_conv_geom(&g, cc->N, cc->H, cc->W, cc->C, cc->K, cc->k, cc->k,
                                        cc->stride, cc->pad) == 0);
                size_t nin = (size_t)g.N * g.H * g.W * g.C, M = (size_t)g.N * g.OH * g.OW;
                size_t nout = M * g.K, nw = (size_t)g.kh * g.kw * g.C * g.K;
                float *x = malloc(sizeof(float) * nin), *w = malloc(sizeof(float) * nw);
                float *bias = malloc(sizeof(float) * g.K);
                fill_data(&rng, x, nin, g.C, 0);
                fill_data(&rng, w, nw, g.K, 0);
                /* kind 1: outputs around 1000 through the bias */
                for (int k = 0; k < g.K; k++)
                    bias[k] = kind ? (float)(1000 + rng_uniform(&rng)) : 0.1f * k;
                size_t wf = conv2d_workspace(&g, 4096, T);
                float *work = malloc(sizeof(float) * (wf ? wf : 1));
                float *y0 = malloc(sizeof(float) * nout), *y1 = malloc(sizeof(float) * nout);
                float *yn = malloc(sizeof(float) * nout);
                void *mem = malloc(bnstats_bytes(g.K, T));
                memset(mem, 0xff, bnstats_bytes(g.K, T));
                BnStats s;
                bnstats_init(&s, mem, g.K, T);
                conv2d_forward(y0, x, w, bias, &g, work, wf, T);
                conv2d_forward_stats(y1, x, w, bias, &g, work, wf, T, &s);
                conv2d_forward_naive(yn, x, w, bias, &g);
                double e_plain = test_rel_err(y1, y0, nout), e_naive = test_rel_err(y1, yn, nout);
                double *mean = malloc(sizeof(double) * 4 * g.K), *var = mean + g.K;
                double *rm = var + g.K, *rv = rm + g.K;
                bnstats_moments(&s, mean, var);
                test_moments(rm, rv, y1, M, g.K);
                int bad = moments_mismatch(mean, var, rm, rv, g.K);
                if (bad || !(e_plain < 1e-5) || !(e_naive < 1e-4))
                    printf("    case %zu T %d kind %d: vs conv2d_forward %.3g, vs naive %.3g\n",
                           ci, T, kind, e_plain, e_naive);
                CHECK(e_plain < 1e-5);
                CHECK(e_naive < 1e-4);
                CHECK_INT(bad, 0);
                free(x), free(w), free(bias), free(work), free(y0), free(y1), free(yn);
                free(mem), free(mean);
            }
}

TEST(nn_bnstats_depthwise_forward_gathers_its_output_moments)
{
    /* Under every ISA the CPU has: the 3×3 vector kernels (C = 21: a 16-, a 4-wide block
     * and a general channel with AVX-512; 40; 67), stride 1 and 2, rows shorter and longer
     * than a commit (64 pixels), uneven thread shares, 5 threads on fewer rows than that;
     * the general loops alone (5×5, multiplier 2); and an 8 MiB output whose vector kernels
     * store past the caches and sum its moments from registers. The output must be
     * depthwise_forward's bit for bit, the moments those of two passes in double. The
     * BnStats memory starts one byte past malloc's alignment, and each thread's partials
     * must still begin on a cache line of their own. */
    typedef struct {
        int N, H, W, C, m, k, s, T;
        Padding pad;
    } DwCase;
    static const DwCase cases[] = {
        {3, 9, 11, 21, 1, 3, 1, 2, PAD_SAME},  {1, 13, 70, 40, 1, 3, 2, 3, PAD_SAME},
        {2, 7, 130, 67, 1, 3, 1, 2, PAD_SAME}, {3, 10, 9, 13, 1, 3, 2, 1, PAD_VALID},
        {1, 3, 5, 17, 1, 3, 1, 5, PAD_SAME},   {2, 9, 9, 16, 1, 5, 1, 2, PAD_SAME},
        {2, 8, 7, 9, 2, 3, 2, 3, PAD_SAME},    {1, 64, 64, 512, 1, 3, 1, 2, PAD_SAME},
    };
    Isa saved = isa_active();
    for (Isa isa = ISA_GENERIC; isa <= isa_best(); isa++) {
        isa_limit(isa);
        Rng rng;
        rng_seed(&rng, 35);
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
            for (int kind = 0; kind < 2; kind++) {
                const DwCase *dc = &cases[ci];
                ConvGeom g;
                REQUIRE(shape_conv_geom(&g, dc->N, dc->H, dc->W, dc->C, dc->C * dc->m, dc->k,
                                        dc->k, dc->s, dc->pad) == 0);
                size_t nin = (size_t)g.N * g.H * g.W * g.C, M = (size_t)g.N * g.OH * g.OW;
                size_t nout = M * g.K, nw = (size_t)g.kh * g.kw * g.K;
                float *x = malloc(sizeof(float) * nin), *w = malloc(sizeof(float) * nw);
                float *bias = malloc(sizeof(float) * g.K);
                fill_data(&rng, x, nin, g.C, 0);
                fill_data(&rng, w, nw, g.K, 0);
                /* kind 1: outputs around 1000 through the bias */
                for (int k = 0; k < g.K; k++)
                    bias[k] = kind ? (float)(1000 + rng_uniform(&rng)) : 0.1f * k;
                float *y0 = malloc(sizeof(float) * nout), *y1 = malloc(sizeof(float) * nout);
                size_t bytes = bnstats_bytes(g.K, dc->T);
                unsigned char *mem = malloc(bytes + 1);
                memset(mem, 0xff, bytes + 1);
                BnStats s;
                bnstats_init(&s, mem + 1, g.K, dc->T);
                CHECK((uintptr_t)s.part % 64 == 0 && s.step % 64 == 0);
                CHECK(s.part + dc->T * s.step <= mem + 1 + bytes);
                depthwise_forward(y0, x, w, bias, &g, dc->T);
                depthwise_forward_stats(y1, x, w, bias, &g, dc->T, &s);
                double *mean = malloc(sizeof(double) * 4 * g.K), *var = mean + g.K;
                double *rm = var + g.K, *rv = rm + g.K;
                bnstats_moments(&s, mean, var);
                test_moments(rm, rv, y1, M, g.K);
                int bad = moments_mismatch(mean, var, rm, rv, g.K);
                bool same = memcmp(y0, y1, sizeof(float) * nout) == 0;
                if (bad || !same)
                    printf("    %s case %zu kind %d: output %s depthwise_forward's\n",
                           isa_name(isa), ci, kind, same ? "equals" : "differs from");
                CHECK(same);
                CHECK_INT(bad, 0);
                free(x), free(w), free(bias), free(y0), free(y1), free(mem), free(mean);
            }
    }
    isa_limit(saved);
}

TEST(nn_bnstats_batchnorm_with_gathered_moments_equals_its_own_pass)
{
    /* The train forward fed with BnStats against today's path (its own pass over x) and the
     * naive kernel: plain, with ReLU, ReLU6, and a residual add before the clip. */
    Rng rng;
    rng_seed(&rng, 33);
    const int Cs[] = {3, 17, 67}, Ms[] = {1, 17, 333, 1001};
    for (int ci = 0; ci < 3; ci++)
        for (int mi = 0; mi < 4; mi++)
            for (int T = 1; T <= 2; T++)
                for (int kind = 0; kind < 2; kind++)
                    for (int fk = 0; fk < 4; fk++) {
                        int C = Cs[ci], M = Ms[mi];
                        size_t n = (size_t)M * C;
                        float *x = malloc(sizeof(float) * n), *gam = malloc(4 * C);
                        float *bet = malloc(4 * C), *res = malloc(sizeof(float) * n);
                        fill_data(&rng, x, n, C, kind);
                        for (int c = 0; c < C; c++)
                            gam[c] = (float)(0.5 + rng_uniform(&rng)),
                            bet[c] = (float)(rng_uniform(&rng) * 4 - 1);
                        for (size_t i = 0; i < n; i++)
                            res[i] = (float)(rng_uniform(&rng) * 2 - 1);
                        BnFused f = {.hi = fk == 2 ? 6.0f : INFINITY, .res = fk == 3 ? res : NULL};
                        const BnFused *fp = fk ? &f : NULL;
                        void *mem = malloc(bnstats_bytes(C, T));
                        BnStats s;
                        bnstats_init(&s, mem, C, T);
                        for (int t = 0; t < T; t++) {
                            size_t r = (size_t)M * t / T, e = (size_t)M * (t + 1) / T;
                            bnstats_rows(&s, t, x + r * C, e - r);
                        }
                        float *work = malloc(sizeof(float) * batchnorm_workspace(C, T));
                        float *y0 = malloc(sizeof(float) * n), *y1 = malloc(sizeof(float) * n);
                        float *yn = malloc(sizeof(float) * n);
                        float *st0 = malloc(12 * C), *st1 = malloc(12 * C), *stn = malloc(12 * C);
                        batchnorm_fused_forward_train(y0, st0, st0 + C, st0 + 2 * C, x, gam, bet,
                                                      M, C, 1e-3f, fp, NULL, work, T);
                        batchnorm_fused_forward_train(y1, st1, st1 + C, st1 + 2 * C, x, gam, bet,
                                                      M, C, 1e-3f, fp, &s, work, T);
                        batchnorm_forward_train_naive(yn, stn, stn + C, stn + 2 * C, x, gam, bet,
                                                      M, C, 1e-3f);
                        for (size_t i = 0; fk && i < n; i++)
                            yn[i] = fminf(fmaxf(yn[i] + (f.res ? res[i] : 0), 0), f.hi);
                        double e_out = test_rel_err(y1, y0, n), e_naive = test_rel_err(y1, yn, n);
                        double e_st = test_rel_err(st1, st0, 3 * (size_t)C);
                        double e_stn = test_rel_err(st1, stn, 3 * (size_t)C);
                        if (!(e_out < 1e-5 && e_st < 1e-5 && e_naive < 1e-4 && e_stn < 1e-4))
                            printf("    M %d C %d T %d kind %d fused %d: out %.3g stats %.3g, "
                                   "vs naive %.3g %.3g\n",
                                   M, C, T, kind, fk, e_out, e_st, e_naive, e_stn);
                        CHECK(e_out < 1e-5);
                        CHECK(e_st < 1e-5);
                        CHECK(e_naive < 1e-4);
                        CHECK(e_stn < 1e-4);
                        free(x), free(gam), free(bet), free(res), free(mem), free(work);
                        free(y0), free(y1), free(yn), free(st0), free(st1), free(stn);
                    }
}

/* ---- whole nets --------------------------------------------------------------------------- */

/* Copies of chosen layers' out (forward) and dout (backward) as the observer sees them. */
typedef struct {
    int n;
    int layer[16];
    bool backward[16];
    float *copy[16];
    int seen[16];
} Watches;

static void watch(void *ctx, const Net *net, int layer, bool backward)
{
    Watches *w = ctx;
    for (int i = 0; i < w->n; i++) {
        if (w->layer[i] != layer || w->backward[i] != backward)
            continue;
        const Layer *l = net_layer(net, layer);
        size_t n = (size_t)net_batch_capacity(net) * l->h * l->w * l->c;
        memcpy(w->copy[i], backward ? l->dout : l->out, sizeof(float) * n);
        w->seen[i]++;
    }
}

static int add_watch(Watches *w, const Net *net, int layer, bool backward)
{
    const Layer *l = net_layer(net, layer);
    w->layer[w->n] = layer;
    w->backward[w->n] = backward;
    w->copy[w->n] = malloc(sizeof(float) * net_batch_capacity(net) * l->h * l->w * l->c);
    w->seen[w->n] = 0;
    return w->n++;
}

/* One residual block and a plain conv → BN → ReLU6: input (N, 9, 7, 3) → conv1 3×3 (17) →
 * bn1 → ReLU6 → dw 3×3 depthwise → bn4 → ReLU6 → conv2 1×1 (17) → bn2 → add (with bn1's
 * ReLU6 output) → ReLU → conv3 1×1 stride 2 (67) → bn3 → ReLU → GAP → dense 5. bn1, bn3
 * and bn4 run their activation without reading its output; bn2 runs add + ReLU and reads
 * it. bn4 takes its moments from the depthwise kernel. */
TEST(nn_bnstats_net_batchnorms_match_the_naive_kernels)
{
    const int N = 3, T_max = 2;
    for (int T = 1; T <= T_max; T++)
        for (int mode = 0; mode < 3; mode++) {
            NetMode m = mode == 0 ? NET_TRAIN : mode == 1 ? NET_TRAIN_PROBE : NET_INFERENCE;
            Net *net = net_create("bnstats", N, 9, 7, 3);
            int c1 = net_conv2d(net, 0, "conv1", 17, 3, 3, 1, PAD_SAME, true);
            int b1 = net_batchnorm(net, c1, "bn1", 0.99f, 1e-3f);
            int a1 = net_activation(net, b1, "relu1", ACT_RELU6);
            int dw = net_depthwise(net, a1, "dw", 3, 3, 1, 1, PAD_SAME, true);
            int b4 = net_batchnorm(net, dw, "bn4", 0.99f, 1e-3f);
            int a4 = net_activation(net, b4, "relu4", ACT_RELU6);
            int c2 = net_conv2d(net, a4, "conv2", 17, 1, 1, 1, PAD_VALID, true);
            int b2 = net_batchnorm(net, c2, "bn2", 0.99f, 1e-3f);
            int ad = net_add(net, b2, a1, "add");
            int a2 = net_activation(net, ad, "relu2", ACT_RELU);
            int c3 = net_conv2d(net, a2, "conv3", 67, 1, 1, 2, PAD_VALID, true);
            int b3 = net_batchnorm(net, c3, "bn3", 0.99f, 1.001e-5f);
            int a3 = net_activation(net, b3, "relu3", ACT_RELU);
            int gp = net_gap(net, a3, "gap", false);
            net_dense(net, gp, "out", 5, true);
            REQUIRE(net_finalize(net, T) == 0);
            CHECK_INT(net_fused_into(net, a1), b1);
            CHECK_INT(net_fused_into(net, a2), b2);
            CHECK_INT(net_fused_into(net, a3), b3);
            CHECK_INT(net_fused_into(net, a4), b4);
            Rng rng;
            rng_seed(&rng, 34);
            for (int i = 0; i < net_n_params(net); i++) {
                Param *p = net_param(net, i);
                for (size_t k = 0; k < p->size; k++) {
                    double u = rng_uniform(&rng);
                    switch (p->kind) {
                    case PARAM_GAMMA: p->data[k] = (float)(0.5 + u); break;
                    case PARAM_BETA: p->data[k] = (float)(u - 0.3); break;
                    case PARAM_MOVING_MEAN: p->data[k] = (float)(u - 0.5); break;
                    case PARAM_MOVING_VARIANCE: p->data[k] = (float)(0.5 + u); break;
                    /* conv1's bias puts its output near 1000 */
                    case PARAM_BIAS: p->data[k] = (float)(p->layer == c1 ? 1000 + u : u - 0.5);
                        break;
                    default: p->data[k] = (float)(u - 0.5) * 0.5f;
                    }
                }
            }
            size_t nx = (size_t)N * 9 * 7 * 3;
            float *x = malloc(sizeof(float) * nx);
            fill_data(&rng, x, nx, 3, 0);
            Watches w = {0};
            const int bns[4] = {b1, b2, b3, b4}, convs[4] = {c1, c2, c3, dw};
            const int acts[4] = {a1, a2, a3, a4};
            const float his[4] = {6.0f, INFINITY, INFINITY, 6.0f};
            int wx[4], wy[4], wdy[4], wdx[4];
            for (int k = 0; k < 4; k++) {
                wx[k] = add_watch(&w, net, convs[k], false);
                wy[k] = add_watch(&w, net, acts[k], false);
                wdy[k] = add_watch(&w, net, acts[k], true);
                wdx[k] = add_watch(&w, net, convs[k], true);
            }
            /* the moving statistics before a NET_TRAIN forward moves them */
            float *mm0[4], *mv0[4];
            for (int k = 0; k < 4; k++) {
                const Layer *l = net_layer(net, bns[k]);
                mm0[k] = malloc(4 * l->c), mv0[k] = malloc(4 * l->c);
                memcpy(mm0[k], net_param(net, l->param_first + 2)->data, 4 * l->c);
                memcpy(mv0[k], net_param(net, l->param_first + 3)->data, 4 * l->c);
            }
            net_set_observer(net, watch, &w);
            REQUIRE(net_forward(net, x, N, m) == 0);
            int labels[3] = {0, 4, 2};
            net_loss(net, labels, NULL);
            net_zero_grad(net);
            REQUIRE(net_backward(net) == 0);
            for (int k = 0; k < 4; k++) {
                const Layer *l = net_layer(net, bns[k]);
                const int C = l->c, M = N * l->h * l->w;
                const size_t n = (size_t)M * C;
                CHECK_INT(w.seen[wx[k]], 1);
                CHECK_INT(w.seen[wdx[k]], 1);
                const float *gam = net_param(net, l->param_first)->data;
                const float *bet = net_param(net, l->param_first + 1)->data;
                const float *X = w.copy[wx[k]], *Y = w.copy[wy[k]], *DY = w.copy[wdy[k]];
                const float *res = k == 1 ? w.copy[wy[0]] : NULL;
                const float hi = his[k];
                float *yr = malloc(sizeof(float) * n), *st = malloc(12 * C);
                float *g = malloc(sizeof(float) * n), *dxr = calloc(n, sizeof(float));
                float *dgr = calloc(C, sizeof(float)), *dbr = calloc(C, sizeof(float));
                if (m == NET_INFERENCE) {
                    for (int c = 0; c < C; c++) {
                        st[c] = mm0[k][c];
                        st[C + c] = (float)(1 / sqrt((double)mv0[k][c] + l->epsilon));
                    }
                    for (size_t i = 0; i < n; i++) {
                        int c = (int)(i % C);
                        yr[i] = (float)(gam[c] * (X[i] - (double)st[c]) * st[C + c] + bet[c]);
                    }
                } else {
                    batchnorm_forward_train_naive(yr, st, st + C, st + 2 * C, X, gam, bet, M, C,
                                                  l->epsilon);
                }
                for (size_t i = 0; i < n; i++)
                    yr[i] = fminf(fmaxf(yr[i] + (res ? res[i] : 0), 0), hi);
                /* the activation's rule on the net's own output: where 0 < y < hi */
                for (size_t i = 0; i < n; i++)
                    g[i] = Y[i] > 0 && Y[i] < hi ? DY[i] : 0;
                if (m == NET_INFERENCE) {
                    for (size_t i = 0; i < n; i++) {
                        int c = (int)(i % C);
                        double xhat = (X[i] - (double)st[c]) * st[C + c];
                        dxr[i] = (float)(gam[c] * st[C + c] * g[i]);
                        dgr[c] += (float)(g[i] * xhat), dbr[c] += g[i];
                    }
                } else {
                    batchnorm_backward_train_naive(dxr, dgr, dbr, g, X, gam, st, st + C, M, C);
                }
                const float *dgam = net_param(net, l->param_first)->grad;
                const float *dbet = net_param(net, l->param_first + 1)->grad;
                double ey = test_rel_err(Y, yr, n), edx = test_rel_err(w.copy[wdx[k]], dxr, n);
                double eg = test_rel_err(dgam, dgr, C), eb = test_rel_err(dbet, dbr, C);
                if (!(ey < 1e-4 && edx < 1e-4 && eg < 1e-4 && eb < 1e-4))
                    printf("    T %d mode %d bn%d: out %.3g dinp %.3g dgamma %.3g dbeta %.3g\n",
                           T, mode, k + 1, ey, edx, eg, eb);
                CHECK(ey < 1e-4);
                CHECK(edx < 1e-4);
                CHECK(eg < 1e-4);
                CHECK(eb < 1e-4);
                if (m != NET_INFERENCE) { /* the statistics the science reads */
                    const float *bm, *bv;
                    REQUIRE(net_bn_batch_stats(net, bns[k], &bm, &bv) == 0);
                    CHECK(test_rel_err(bm, st, C) < 1e-6);
                    CHECK(test_rel_err(bv, st + 2 * C, C) < 1e-5);
                }
                free(yr), free(st), free(g), free(dxr), free(dgr), free(dbr);
                free(mm0[k]), free(mv0[k]);
            }
            for (int i = 0; i < w.n; i++)
                free(w.copy[i]);
            free(x);
            net_free(net);
        }
}
