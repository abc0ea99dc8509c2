/* test_nn_kernels.c — fast kernels against their naive references on random shapes.
 *
 * Relative error of a tensor: max_i |fast_i − naive_i| / max(max_i |naive_i|, 1e-6); every
 * output and gradient must stay below 1e-4. Backward outputs start from random values, so
 * the accumulate (+=) rule is compared too. Shapes are drawn at random: odd and even
 * sizes, kernels 1, 3, 5, 7, strides 1 and 2, same and valid padding, batch 1 to 3,
 * thread counts 1 to 3, and im2col chunks from one output pixel to the whole batch. */
#include "test.h"
#include "testdata.h"

#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"
#include "util/isa.h"
#include "util/rng.h"

#define TOL 1e-4

#define CHECK_REL(what, a, b, n, ...)                                                      \
    do {                                                                                   \
        double e_ = test_rel_err(a, b, n);                                                 \
        if (!(e_ < TOL)) {                                                                 \
            printf("    %s: relative error %.3g for ", what, e_);                         \
            printf(__VA_ARGS__);                                                           \
            printf("\n");                                                                  \
        }                                                                                  \
        CHECK(e_ < TOL);                                                                   \
    } while (0)

static int pick(Rng *rng, int lo, int hi) /* inclusive */
{
    return lo + (int)rng_below(rng, (uint64_t)(hi - lo + 1));
}

/* Relative error of conv2d_backward overwriting a NaN-filled input gradient (accumulate
 * false: the buffer must never be read) against the naive reference on zeros. */
static double conv_overwrite_err(const ConvGeom *g, const float *x, const float *w,
                                 const float *dy, float *work, size_t wf, int T)
{
    size_t nin = (size_t)g->N * g->H * g->W * g->C, nw = (size_t)g->kh * g->kw * g->C * g->K;
    float *d1 = malloc(sizeof(float) * nin), *d2 = calloc(nin, sizeof(float));
    float *w1 = calloc(nw, sizeof(float)), *w2 = calloc(nw, sizeof(float));
    for (size_t i = 0; i < nin; i++)
        d1[i] = NAN;
    conv2d_backward(d1, w1, NULL, dy, x, w, g, work, wf, T, false);
    conv2d_backward_naive(d2, w2, NULL, dy, x, w, g);
    double e = test_rel_err(d1, d2, nin);
    free(d1), free(d2), free(w1), free(w2);
    return e;
}

TEST(nn_kernels_conv2d_fast_matches_naive)
{
    static const int ks[] = {1, 3, 5, 7};
    Rng rng;
    rng_seed(&rng, 2024);
    for (int trial = 0; trial < 60; trial++) {
        int k = ks[trial % 4], s = 1 + (trial / 4) % 2;
        Padding pad = (trial / 8) % 2 ? PAD_VALID : PAD_SAME;
        int N = pick(&rng, 1, 3), H = pick(&rng, k, k + 9), W = pick(&rng, k, k + 9);
        int C = pick(&rng, 1, 9), K = pick(&rng, 1, 12), T = pick(&rng, 1, 3);
        bool bias = rng_below(&rng, 2);
        ConvGeom g;
        REQUIRE(shape_conv_geom(&g, N, H, W, C, K, k, k, s, pad) == 0);
        size_t nin = (size_t)N * H * W * C, nw = (size_t)k * k * C * K;
        size_t nout = (size_t)N * g.OH * g.OW * K, rows = (size_t)N * g.OH * g.OW;
        size_t kk = (size_t)k * k * C;
        size_t chunk = trial % 3 == 0 ? rows : (size_t)pick(&rng, 1, (int)rows);
        size_t work_floats = 2 * kk * chunk;
        float *work = malloc(sizeof(float) * work_floats);
        float *x = test_rnd(&rng, nin), *w = test_rnd(&rng, nw), *b = test_rnd(&rng, K), *dy = test_rnd(&rng, nout);
        float *y1 = malloc(sizeof(float) * nout), *y2 = malloc(sizeof(float) * nout);
        conv2d_forward(y1, x, w, bias ? b : NULL, &g, work, work_floats, T);
        conv2d_forward_naive(y2, x, w, bias ? b : NULL, &g);
        const char *fmt = "N%d H%d W%d C%d K%d k%d s%d %s chunk %zu threads %d";
        const char *pn = pad == PAD_SAME ? "same" : "valid";
        CHECK_REL("conv forward", y1, y2, nout, fmt, N, H, W, C, K, k, s, pn, chunk, T);
        float *dx1 = test_rnd(&rng, nin), *dw1 = test_rnd(&rng, nw), *db1 = test_rnd(&rng, K);
        float *dx2 = test_dup(dx1, nin), *dw2 = test_dup(dw1, nw), *db2 = test_dup(db1, K);
        conv2d_backward(dx1, dw1, bias ? db1 : NULL, dy, x, w, &g, work, work_floats, T, true);
        conv2d_backward_naive(dx2, dw2, bias ? db2 : NULL, dy, x, w, &g);
        CHECK_REL("conv dinp", dx1, dx2, nin, fmt, N, H, W, C, K, k, s, pn, chunk, T);
        CHECK_REL("conv dweight", dw1, dw2, nw, fmt, N, H, W, C, K, k, s, pn, chunk, T);
        CHECK_REL("conv dbias", db1, db2, K, fmt, N, H, W, C, K, k, s, pn, chunk, T);
        CHECK(conv_overwrite_err(&g, x, w, dy, work, work_floats, T) < TOL);
        free(work), free(x), free(w), free(b), free(dy), free(y1), free(y2);
        free(dx1), free(dw1), free(db1), free(dx2), free(dw2), free(db2);
    }
}

TEST(nn_kernels_conv2d_fast_matches_naive_on_larger_shapes)
{
    /* A MobileNet-like stride-2 3×3 and a pointwise conv with more channels, several chunks */
    struct { int N, H, W, C, K, k, s; Padding p; size_t chunk; } sp[] = {
        {2, 17, 15, 16, 24, 3, 2, PAD_SAME, 37},
        {3, 9, 9, 32, 48, 1, 1, PAD_SAME, 0},
        {2, 13, 11, 8, 16, 7, 2, PAD_VALID, 50},
    };
    Rng rng;
    rng_seed(&rng, 7);
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) {
        ConvGeom g;
        REQUIRE(shape_conv_geom(&g, sp[i].N, sp[i].H, sp[i].W, sp[i].C, sp[i].K, sp[i].k,
                                sp[i].k, sp[i].s, sp[i].p) == 0);
        size_t nin = (size_t)g.N * g.H * g.W * g.C, nw = (size_t)g.kh * g.kw * g.C * g.K;
        size_t nout = (size_t)g.N * g.OH * g.OW * g.K, kk = (size_t)g.kh * g.kw * g.C;
        size_t wf = sp[i].chunk ? 2 * kk * sp[i].chunk : conv2d_workspace(&g, 1 << 20, 2);
        float *work = malloc(sizeof(float) * (wf ? wf : 1));
        float *x = test_rnd(&rng, nin), *w = test_rnd(&rng, nw), *dy = test_rnd(&rng, nout);
        float *y1 = malloc(sizeof(float) * nout), *y2 = malloc(sizeof(float) * nout);
        conv2d_forward(y1, x, w, NULL, &g, work, wf, 2);
        conv2d_forward_naive(y2, x, w, NULL, &g);
        CHECK_REL("conv forward", y1, y2, nout, "shape %zu", i);
        float *dx1 = calloc(nin, 4), *dw1 = calloc(nw, 4), *dx2 = calloc(nin, 4), *dw2 = calloc(nw, 4);
        conv2d_backward(dx1, dw1, NULL, dy, x, w, &g, work, wf, 2, true);
        conv2d_backward_naive(dx2, dw2, NULL, dy, x, w, &g);
        CHECK_REL("conv dinp", dx1, dx2, nin, "shape %zu", i);
        CHECK_REL("conv dweight", dw1, dw2, nw, "shape %zu", i);
        free(work), free(x), free(w), free(dy), free(y1), free(y2);
        free(dx1), free(dw1), free(dx2), free(dw2);
    }
}

TEST(nn_kernels_conv2d_short_kernel_weight_gradient)
{
    /* First-layer kernels (kh·kw·C of 27, 147 and 150) with 8, 32, 64 and odd filter counts:
     * the weight gradient runs on per-thread partials. With and without an input gradient,
     * 1 to 3 threads, workspaces from one chunk to many, under every instruction set the
     * CPU has; a second run must match bit for bit, and the AVX2 and AVX-512 kernels (both
     * FMA, each lane summing its rows in order) must give the same bits. */
    struct { int N, H, W, C, K, k, s; Padding p; } sp[] = {
        {2, 23, 21, 3, 32, 3, 2, PAD_SAME}, {2, 23, 23, 3, 64, 7, 2, PAD_VALID},
        {3, 9, 11, 3, 8, 3, 1, PAD_SAME},   {1, 14, 13, 3, 13, 7, 2, PAD_SAME},
        {2, 12, 10, 6, 47, 5, 1, PAD_SAME}, {1, 10, 9, 3, 70, 3, 2, PAD_VALID},
    };
    enum { NS = sizeof sp / sizeof sp[0] };
    float *avx2_dw[NS][3] = {{NULL}};
    const Isa saved = isa_active();
    for (Isa isa = ISA_GENERIC; isa <= isa_best(); isa++) {
        isa_limit(isa);
        Rng rng;
        rng_seed(&rng, 11);
        for (size_t i = 0; i < NS; i++)
            for (int T = 1; T <= 3; T++) {
                ConvGeom g;
                REQUIRE(shape_conv_geom(&g, sp[i].N, sp[i].H, sp[i].W, sp[i].C, sp[i].K,
                                        sp[i].k, sp[i].k, sp[i].s, sp[i].p) == 0);
                size_t nin = (size_t)g.N * g.H * g.W * g.C;
                size_t nw = (size_t)g.kh * g.kw * g.C * g.K;
                size_t nout = (size_t)g.N * g.OH * g.OW * g.K, kk = (size_t)g.kh * g.kw * g.C;
                bool with_dinp = T != 2;
                size_t wf =
                    conv2d_workspace(&g, (size_t)pick(&rng, 1, 64) * kk * sizeof(float), T);
                float *work = malloc(sizeof(float) * wf);
                float *x = test_rnd(&rng, nin), *w = test_rnd(&rng, nw), *dy = test_rnd(&rng, nout);
                float *dx1 = test_rnd(&rng, nin), *dw1 = test_rnd(&rng, nw), *db1 = test_rnd(&rng, g.K);
                float *dx2 = test_dup(dx1, nin), *dw2 = test_dup(dw1, nw), *db2 = test_dup(db1, g.K);
                float *dx3 = test_dup(dx1, nin), *dw3 = test_dup(dw1, nw), *db3 = test_dup(db1, g.K);
                conv2d_backward(with_dinp ? dx1 : NULL, dw1, db1, dy, x, w, &g, work, wf, T,
                                true);
                conv2d_backward(with_dinp ? dx3 : NULL, dw3, db3, dy, x, w, &g, work, wf, T,
                                true);
                conv2d_backward_naive(with_dinp ? dx2 : NULL, dw2, db2, dy, x, w, &g);
                const char *fmt = "shape %zu threads %d workspace %zu isa %s";
                const char *in = isa_name(isa);
                CHECK_REL("conv dinp", dx1, dx2, nin, fmt, i, T, wf, in);
                CHECK_REL("conv dweight", dw1, dw2, nw, fmt, i, T, wf, in);
                CHECK_REL("conv dbias", db1, db2, g.K, fmt, i, T, wf, in);
                CHECK(memcmp(dw1, dw3, sizeof(float) * nw) == 0);
                if (isa == ISA_AVX2) {
                    avx2_dw[i][T - 1] = dw1;
                    dw1 = NULL;
                } else if (isa == ISA_AVX512 &&
                           memcmp(dw1, avx2_dw[i][T - 1], sizeof(float) * nw) != 0) {
                    test_fail(__FILE__, __LINE__,
                              "shape %zu threads %d: AVX-512 and AVX2 weight gradients differ",
                              i, T);
                }
                free(work), free(x), free(w), free(dy);
                free(dx1), free(dw1), free(db1), free(dx2), free(dw2), free(db2);
                free(dx3), free(dw3), free(db3);
            }
    }
    isa_limit(saved);
    for (size_t i = 0; i < NS; i++)
        for (int T = 0; T < 3; T++)
            free(avx2_dw[i][T]);
}

TEST(nn_kernels_conv2d_stride1_input_gradient_as_a_conv)
{
    /* Stride-1 k×k convs whose workspace holds the flipped kernel: the input gradient runs
     * as a conv of dout. Sub-chunks of 1, 2 and 7 input pixels per thread and the whole
     * share, non-square kernels, same and valid; two runs must agree bit for bit. */
    static const int kdim[][2] = {{3, 3}, {5, 5}, {7, 7}, {3, 2}, {2, 3}, {1, 3}};
    static const size_t subs[] = {1, 2, 7, 100000};
    Rng rng;
    rng_seed(&rng, 31);
    for (int trial = 0; trial < 48; trial++) {
        int kh = kdim[trial % 6][0], kw = kdim[trial % 6][1];
        Padding pad = (trial / 6) % 2 ? PAD_VALID : PAD_SAME;
        size_t sub = subs[(trial / 12) % 4];
        int N = pick(&rng, 1, 3), H = pick(&rng, kh, kh + 8), W = pick(&rng, kw, kw + 8);
        int C = pick(&rng, 1, 11), K = pick(&rng, 1, 13), T = pick(&rng, 1, 3);
        ConvGeom g;
        REQUIRE(shape_conv_geom(&g, N, H, W, C, K, kh, kw, 1, pad) == 0);
        size_t nin = (size_t)N * H * W * C, nw = (size_t)kh * kw * C * K;
        size_t nout = (size_t)N * g.OH * g.OW * K, kt = (size_t)kh * kw * K;
        size_t wf = nw + (size_t)T * kt * sub;
        if (sub > 1000) /* the size the net asks for */
            wf = conv2d_workspace(&g, (size_t)pick(&rng, 1, 4096), T);
        float *work = malloc(sizeof(float) * wf);
        float *x = test_rnd(&rng, nin), *w = test_rnd(&rng, nw), *dy = test_rnd(&rng, nout);
        float *dx1 = test_rnd(&rng, nin), *dw1 = test_rnd(&rng, nw), *db1 = test_rnd(&rng, K);
        float *dx2 = test_dup(dx1, nin), *dw2 = test_dup(dw1, nw), *db2 = test_dup(db1, K);
        float *dx3 = test_dup(dx1, nin), *dw3 = test_dup(dw1, nw), *db3 = test_dup(db1, K);
        conv2d_backward(dx1, dw1, db1, dy, x, w, &g, work, wf, T, true);
        conv2d_backward(dx3, dw3, db3, dy, x, w, &g, work, wf, T, true);
        conv2d_backward_naive(dx2, dw2, db2, dy, x, w, &g);
        const char *fmt = "N%d H%d W%d C%d K%d k%dx%d %s work %zu threads %d";
        const char *pn = pad == PAD_SAME ? "same" : "valid";
        CHECK_REL("conv dinp", dx1, dx2, nin, fmt, N, H, W, C, K, kh, kw, pn, wf, T);
        CHECK_REL("conv dweight", dw1, dw2, nw, fmt, N, H, W, C, K, kh, kw, pn, wf, T);
        CHECK_REL("conv dbias", db1, db2, K, fmt, N, H, W, C, K, kh, kw, pn, wf, T);
        CHECK(memcmp(dx1, dx3, sizeof(float) * nin) == 0);
        CHECK(memcmp(dw1, dw3, sizeof(float) * nw) == 0);
        CHECK(conv_overwrite_err(&g, x, w, dy, work, wf, T) < TOL);
        free(work), free(x), free(w), free(dy), free(dx1), free(dw1), free(db1);
        free(dx2), free(dw2), free(db2), free(dx3), free(dw3), free(db3);
    }
}

TEST(nn_kernels_depthwise_fast_matches_naive)
{
    Rng rng;
    rng_seed(&rng, 77);
    for (int trial = 0; trial < 40; trial++) {
        int k = trial % 2 ? 3 : 5, s = 1 + (trial / 2) % 2, m = 1 + (trial / 4) % 2;
        Padding pad = (trial / 8) % 2 ? PAD_VALID : PAD_SAME;
        int N = pick(&rng, 1, 3), H = pick(&rng, k, k + 9), W = pick(&rng, k, k + 9);
        int C = pick(&rng, 1, 40), T = pick(&rng, 1, 3), K = C * m;
        bool bias = rng_below(&rng, 2);
        ConvGeom g;
        REQUIRE(shape_conv_geom(&g, N, H, W, C, K, k, k, s, pad) == 0);
        size_t nin = (size_t)N * H * W * C, nw = (size_t)k * k * K;
        size_t nout = (size_t)N * g.OH * g.OW * K;
        float *work = malloc(sizeof(float) * depthwise_workspace(&g, T));
        float *x = test_rnd(&rng, nin), *w = test_rnd(&rng, nw), *b = test_rnd(&rng, K), *dy = test_rnd(&rng, nout);
        float *y1 = malloc(sizeof(float) * nout), *y2 = malloc(sizeof(float) * nout);
        depthwise_forward(y1, x, w, bias ? b : NULL, &g, T);
        depthwise_forward_naive(y2, x, w, bias ? b : NULL, &g);
        const char *fmt = "N%d H%d W%d C%d m%d k%d s%d threads %d";
        CHECK_REL("depthwise forward", y1, y2, nout, fmt, N, H, W, C, m, k, s, T);
        float *dx1 = test_rnd(&rng, nin), *dw1 = test_rnd(&rng, nw), *db1 = test_rnd(&rng, K);
        float *dx2 = test_dup(dx1, nin), *dw2 = test_dup(dw1, nw), *db2 = test_dup(db1, K);
        depthwise_backward(dx1, dw1, bias ? db1 : NULL, dy, x, w, &g, work, T, true);
        depthwise_backward_naive(dx2, dw2, bias ? db2 : NULL, dy, x, w, &g);
        CHECK_REL("depthwise dinp", dx1, dx2, nin, fmt, N, H, W, C, m, k, s, T);
        CHECK_REL("depthwise dweight", dw1, dw2, nw, fmt, N, H, W, C, m, k, s, T);
        CHECK_REL("depthwise dbias", db1, db2, K, fmt, N, H, W, C, m, k, s, T);
        free(work), free(x), free(w), free(b), free(dy), free(y1), free(y2);
        free(dx1), free(dw1), free(db1), free(dx2), free(dw2), free(db2);
    }
}

TEST(nn_kernels_depthwise_paths_match_naive)
{
    /* Every path of depthwise.c: 3×3 vector blocks (8, 16, 24 channels), vector blocks plus
     * leftover channels (22), the general loops (40, 64 channels, multiplier 2, 5×5), strides
     * 1 and 2, same and valid, widths with and without whole interior tiles. */
    static const int cs[] = {8, 16, 24, 22, 40, 64};
    Rng rng;
    rng_seed(&rng, 31);
    for (int trial = 0; trial < 48; trial++) {
        int C = cs[trial % 6], s = 1 + (trial / 6) % 2, m = 1 + (trial % 12 == 5);
        int k = trial % 16 == 15 ? 5 : 3, T = 1 + trial % 3, K = C * m;
        Padding pad = (trial / 12) % 2 ? PAD_VALID : PAD_SAME;
        int N = pick(&rng, 1, 2), H = pick(&rng, k, 14), W = pick(&rng, k, 19);
        ConvGeom g;
        REQUIRE(shape_conv_geom(&g, N, H, W, C, K, k, k, s, pad) == 0);
        size_t nin = (size_t)N * H * W * C, nw = (size_t)k * k * K;
        size_t nout = (size_t)N * g.OH * g.OW * K;
        float *work = malloc(sizeof(float) * depthwise_workspace(&g, T));
        float *x = test_rnd(&rng, nin), *w = test_rnd(&rng, nw), *b = test_rnd(&rng, K), *dy = test_rnd(&rng, nout);
        float *y1 = malloc(sizeof(float) * nout), *y2 = malloc(sizeof(float) * nout);
        depthwise_forward(y1, x, w, b, &g, T);
        depthwise_forward_naive(y2, x, w, b, &g);
        const char *fmt = "N%d H%d W%d C%d m%d k%d s%d threads %d";
        CHECK_REL("depthwise forward", y1, y2, nout, fmt, N, H, W, C, m, k, s, T);
        float *dx1 = test_rnd(&rng, nin), *dw1 = test_rnd(&rng, nw), *db1 = test_rnd(&rng, K);
        float *dx2 = test_dup(dx1, nin), *dw2 = test_dup(dw1, nw), *db2 = test_dup(db1, K);
        depthwise_backward(dx1, dw1, db1, dy, x, w, &g, work, T, true);
        depthwise_backward_naive(dx2, dw2, db2, dy, x, w, &g);
        CHECK_REL("depthwise dinp", dx1, dx2, nin, fmt, N, H, W, C, m, k, s, T);
        CHECK_REL("depthwise dweight", dw1, dw2, nw, fmt, N, H, W, C, m, k, s, T);
        CHECK_REL("depthwise dbias", db1, db2, K, fmt, N, H, W, C, m, k, s, T);
        free(work), free(x), free(w), free(b), free(dy), free(y1), free(y2);
        free(dx1), free(dw1), free(db1), free(dx2), free(dw2), free(db2);
    }
}

TEST(nn_kernels_depthwise_overwrite_matches_naive_on_zeros)
{
    /* accumulate = false must write every input-gradient element without reading it: dinp
     * starts as NaN and must equal the naive reference run on zeros (also 0 where no output
     * reads the pixel), while dweight and dbias still accumulate. Covers the vector blocks
     * (8, 16), blocks plus leftovers (22), the general loops (40, 64, multiplier 2, 5×5),
     * strides 1 and 2, same and valid, and the net's folded ZeroPadding: the geometry of the
     * padded input with H and W one less (no pad before, two after). A second run from
     * other garbage must give the same bits, and accumulate = true must add onto dinp. */
    static const int cs[] = {8, 16, 22, 40, 64};
    Rng rng;
    rng_seed(&rng, 53);
    for (int trial = 0; trial < 40; trial++) {
        int C = cs[trial % 5], s = 1 + (trial / 5) % 2, fold = (trial / 20) % 2;
        int m = 1 + (trial % 4 == 1), k = trial % 6 == 2 ? 5 : 3, T = 1 + trial % 3, K = C * m;
        Padding pad = fold || (trial / 10) % 2 ? PAD_VALID : PAD_SAME;
        int N = pick(&rng, 1, 2), H = pick(&rng, k, 13), W = pick(&rng, k, 17);
        ConvGeom g;
        REQUIRE(shape_conv_geom(&g, N, H + fold, W + fold, C, K, k, k, s, pad) == 0);
        g.H = H, g.W = W;
        size_t nin = (size_t)N * H * W * C, nw = (size_t)k * k * K;
        size_t nout = (size_t)N * g.OH * g.OW * K;
        float *work = malloc(sizeof(float) * depthwise_workspace(&g, T));
        float *x = test_rnd(&rng, nin), *w = test_rnd(&rng, nw), *dy = test_rnd(&rng, nout);
        float *dx1 = malloc(sizeof(float) * nin), *dx2 = calloc(nin, sizeof(float));
        float *dx3 = test_rnd(&rng, nin), *dx4 = test_dup(dx3, nin), *dx5 = test_dup(dx3, nin);
        float *dw1 = test_rnd(&rng, nw), *db1 = test_rnd(&rng, K);
        float *dw2 = test_dup(dw1, nw), *db2 = test_dup(db1, K), *dw3 = test_dup(dw1, nw), *db3 = test_dup(db1, K);
        for (size_t i = 0; i < nin; i++)
            dx1[i] = NAN;
        depthwise_backward(dx1, dw1, db1, dy, x, w, &g, work, T, false);
        depthwise_backward_naive(dx2, dw2, db2, dy, x, w, &g);
        const char *fmt = "N%d H%d W%d C%d m%d k%d s%d %s fold %d threads %d";
        const char *pn = pad == PAD_SAME ? "same" : "valid";
        CHECK_REL("overwritten dinp", dx1, dx2, nin, fmt, N, H, W, C, m, k, s, pn, fold, T);
        CHECK_REL("dweight", dw1, dw2, nw, fmt, N, H, W, C, m, k, s, pn, fold, T);
        CHECK_REL("dbias", db1, db2, K, fmt, N, H, W, C, m, k, s, pn, fold, T);
        depthwise_backward(dx3, dw3, db3, dy, x, w, &g, work, T, false);
        CHECK(memcmp(dx1, dx3, sizeof(float) * nin) == 0);
        depthwise_backward(dx4, dw3, NULL, dy, x, w, &g, work, T, true);
        depthwise_backward_naive(dx5, dw2, NULL, dy, x, w, &g);
        CHECK_REL("accumulated dinp", dx4, dx5, nin, fmt, N, H, W, C, m, k, s, pn, fold, T);
        free(work), free(x), free(w), free(dy), free(dx1), free(dx2), free(dx3), free(dx4);
        free(dx5), free(dw1), free(db1), free(dw2), free(db2), free(dw3), free(db3);
    }
}

TEST(nn_kernels_maxpool_backward_ties_go_to_the_first_maximum)
{
    /* Inputs from {0, 1, 2} (as after a ReLU, many equal values): each window's gradient
     * must go to its first maximum in row-major order, as the naive reference routes it;
     * 8, 20 and 70 channels cover whole vectors, leftover lanes and two channel tasks. */
    static const int cs[] = {8, 20, 70};
    Rng rng;
    rng_seed(&rng, 12);
    for (int trial = 0; trial < 12; trial++) {
        int C = cs[trial % 3], s = 1 + (trial / 3) % 2, T = 1 + trial % 2;
        Padding pad = (trial / 6) % 2 ? PAD_VALID : PAD_SAME;
        int N = pick(&rng, 1, 2), H = pick(&rng, 3, 9), W = pick(&rng, 3, 9);
        ConvGeom g;
        REQUIRE(shape_conv_geom(&g, N, H, W, C, C, 3, 3, s, pad) == 0);
        size_t nin = (size_t)N * H * W * C, nout = (size_t)N * g.OH * g.OW * C;
        float *x = malloc(sizeof(float) * nin), *dy = test_rnd(&rng, nout);
        for (size_t i = 0; i < nin; i++)
            x[i] = (float)rng_below(&rng, 3);
        float *y = malloc(sizeof(float) * nout), *dx1 = test_rnd(&rng, nin), *dx2 = test_dup(dx1, nin);
        maxpool_forward(y, x, &g, T);
        maxpool_backward(dx1, dy, x, y, &g, T);
        maxpool_backward_naive(dx2, dy, x, &g);
        CHECK_REL("maxpool dinp", dx1, dx2, nin, "N%d H%d W%d C%d s%d threads %d", N, H, W, C,
                  s, T);
        free(x), free(dy), free(y), free(dx1), free(dx2);
    }
}

TEST(nn_kernels_pools_fast_match_naive)
{
    Rng rng;
    rng_seed(&rng, 5);
    for (int trial = 0; trial < 32; trial++) {
        int k = 2 + trial % 2, s = 1 + (trial / 2) % 2;
        Padding pad = (trial / 4) % 2 ? PAD_VALID : PAD_SAME;
        int N = pick(&rng, 1, 3), H = pick(&rng, k, k + 8), W = pick(&rng, k, k + 8);
        int C = pick(&rng, 1, 37), T = pick(&rng, 1, 3);
        ConvGeom g;
        REQUIRE(shape_conv_geom(&g, N, H, W, C, C, k, k, s, pad) == 0);
        size_t nin = (size_t)N * H * W * C, nout = (size_t)N * g.OH * g.OW * C;
        float *x = test_rnd(&rng, nin), *dy = test_rnd(&rng, nout);
        float *y1 = malloc(sizeof(float) * nout), *y2 = malloc(sizeof(float) * nout);
        float *dx1 = test_rnd(&rng, nin), *dx2 = test_dup(dx1, nin);
        const char *fmt = "N%d H%d W%d C%d k%d s%d %s threads %d";
        const char *pn = pad == PAD_SAME ? "same" : "valid";
        maxpool_forward(y1, x, &g, T);
        maxpool_forward_naive(y2, x, &g);
        CHECK_REL("maxpool forward", y1, y2, nout, fmt, N, H, W, C, k, s, pn, T);
        maxpool_backward(dx1, dy, x, y1, &g, T);
        maxpool_backward_naive(dx2, dy, x, &g);
        CHECK_REL("maxpool dinp", dx1, dx2, nin, fmt, N, H, W, C, k, s, pn, T);
        avgpool_forward(y1, x, &g, T);
        avgpool_forward_naive(y2, x, &g);
        CHECK_REL("avgpool forward", y1, y2, nout, fmt, N, H, W, C, k, s, pn, T);
        avgpool_backward(dx1, dy, &g, T);
        avgpool_backward_naive(dx2, dy, &g);
        CHECK_REL("avgpool dinp", dx1, dx2, nin, fmt, N, H, W, C, k, s, pn, T);
        free(x), free(dy), free(y1), free(y2), free(dx1), free(dx2);
    }
}

TEST(nn_kernels_avgpool_same_divides_by_valid_pixels)
{
    /* 3×3 input 1..9, pool 2×2 stride 2 same: output 2×2; the corner windows hold
     * 4, 2, 2 and 1 pixels (TF, count_include_pad=False in PyTorch terms). */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y[4];
    ConvGeom g;
    REQUIRE(shape_conv_geom(&g, 1, 3, 3, 1, 1, 2, 2, 2, PAD_SAME) == 0);
    CHECK_INT(g.pad_top, 0); /* pad_total 1 goes bottom/right */
    avgpool_forward(y, x, &g, 1);
    CHECK_NEAR(y[0], (1 + 2 + 4 + 5) / 4.0, 1e-6);
    CHECK_NEAR(y[1], (3 + 6) / 2.0, 1e-6);
    CHECK_NEAR(y[2], (7 + 8) / 2.0, 1e-6);
    CHECK_NEAR(y[3], 9, 1e-6);
    maxpool_forward(y, x, &g, 1);
    CHECK(y[0] == 5 && y[1] == 6 && y[2] == 8 && y[3] == 9);
}

TEST(nn_kernels_same_padding_is_tf)
{
    int before;
    CHECK_INT(shape_window_out(224, 3, 2, PAD_SAME, &before), 112);
    CHECK_INT(before, 0); /* total 1: bottom/right only */
    CHECK_INT(shape_window_out(7, 3, 1, PAD_SAME, &before), 7);
    CHECK_INT(before, 1);
    CHECK_INT(shape_window_out(7, 4, 1, PAD_SAME, &before), 7);
    CHECK_INT(before, 1); /* total 3: 1 before, 2 after */
    CHECK_INT(shape_window_out(8, 7, 2, PAD_SAME, &before), 4);
    CHECK_INT(before, 2); /* total 5 */
    CHECK_INT(shape_window_out(5, 1, 2, PAD_SAME, &before), 3);
    CHECK_INT(before, 0);
    CHECK_INT(shape_window_out(225, 3, 2, PAD_VALID, &before), 112);
    CHECK_INT(shape_window_out(2, 3, 1, PAD_VALID, &before), 0);
    /* a same conv with the extra pixel at the bottom/right: direct check on a 2×2 input,
     * 2×2 kernel of ones, stride 1: out[0,0] = x00+x01+x10+x11, out[1,1] = x11 alone */
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 1, 1}, y[4], work[16];
    ConvGeom g;
    REQUIRE(shape_conv_geom(&g, 1, 2, 2, 1, 1, 2, 2, 1, PAD_SAME) == 0);
    conv2d_forward(y, x, w, NULL, &g, work, 16, 1);
    CHECK_NEAR(y[0], 10, 1e-6);
    CHECK_NEAR(y[1], 6, 1e-6);
    CHECK_NEAR(y[2], 7, 1e-6);
    CHECK_NEAR(y[3], 4, 1e-6);
}

TEST(nn_kernels_batchnorm_and_dense_fast_match_naive)
{
    Rng rng;
    rng_seed(&rng, 9);
    for (int trial = 0; trial < 12; trial++) {
        int M = pick(&rng, 2, 700), C = pick(&rng, 1, 70), T = pick(&rng, 1, 3);
        size_t n = (size_t)M * C;
        float *x = test_rnd(&rng, n), *gam = test_rnd(&rng, C), *bet = test_rnd(&rng, C), *dy = test_rnd(&rng, n);
        for (size_t i = 0; i < n; i++) /* means far from zero: 5, and 300 (≈ 170 std) */
            x[i] = x[i] * 3 + (trial % 2 ? 300 : 5);
        float *y1 = malloc(4 * n), *y2 = malloc(4 * n), *st1 = malloc(12 * C), *st2 = malloc(12 * C);
        float *work = malloc(sizeof(float) * batchnorm_workspace(C, T));
        batchnorm_forward_train(y1, st1, st1 + C, st1 + 2 * C, x, gam, bet, M, C, 1e-3f, work, T);
        batchnorm_forward_train_naive(y2, st2, st2 + C, st2 + 2 * C, x, gam, bet, M, C, 1e-3f);
        CHECK_REL("bn forward", y1, y2, n, "M%d C%d", M, C);
        CHECK_REL("bn stats", st1, st2, 3 * (size_t)C, "M%d C%d", M, C);
        float *dx1 = test_rnd(&rng, n), *dg1 = test_rnd(&rng, C), *db1 = test_rnd(&rng, C);
        float *dx2 = test_dup(dx1, n), *dg2 = test_dup(dg1, C), *db2 = test_dup(db1, C);
        batchnorm_backward_train(dx1, dg1, db1, dy, x, gam, st2, st2 + C, M, C, work, T);
        batchnorm_backward_train_naive(dx2, dg2, db2, dy, x, gam, st2, st2 + C, M, C);
        CHECK_REL("bn dinp", dx1, dx2, n, "M%d C%d", M, C);
        CHECK_REL("bn dgamma", dg1, dg2, C, "M%d C%d", M, C);
        CHECK_REL("bn dbeta", db1, db2, C, "M%d C%d", M, C);
        free(x), free(gam), free(bet), free(dy), free(y1), free(y2), free(st1), free(st2);
        free(work), free(dx1), free(dg1), free(db1), free(dx2), free(dg2), free(db2);

        int N = pick(&rng, 1, 40), D = pick(&rng, 1, 90), K = pick(&rng, 1, 30);
        float *in = test_rnd(&rng, (size_t)N * D), *w = test_rnd(&rng, (size_t)D * K), *b = test_rnd(&rng, K);
        float *o1 = malloc(4 * (size_t)N * K), *o2 = malloc(4 * (size_t)N * K);
        float *g = test_rnd(&rng, (size_t)N * K);
        dense_forward(o1, in, w, b, N, D, K, T);
        dense_forward_naive(o2, in, w, b, N, D, K);
        CHECK_REL("dense forward", o1, o2, (size_t)N * K, "N%d D%d K%d", N, D, K);
        float *a1 = test_rnd(&rng, (size_t)N * D), *w1 = test_rnd(&rng, (size_t)D * K), *c1 = test_rnd(&rng, K);
        float *a2 = test_dup(a1, (size_t)N * D), *w2 = test_dup(w1, (size_t)D * K), *c2 = test_dup(c1, K);
        dense_backward(a1, w1, c1, g, in, w, N, D, K, T);
        dense_backward_naive(a2, w2, c2, g, in, w, N, D, K);
        CHECK_REL("dense dinp", a1, a2, (size_t)N * D, "N%d D%d K%d", N, D, K);
        CHECK_REL("dense dweight", w1, w2, (size_t)D * K, "N%d D%d K%d", N, D, K);
        CHECK_REL("dense dbias", c1, c2, K, "N%d D%d K%d", N, D, K);
        free(in), free(w), free(b), free(o1), free(o2), free(g);
        free(a1), free(w1), free(c1), free(a2), free(w2), free(c2);
    }
}

TEST(nn_kernels_pointwise_backward_chunked_matches_naive)
{
    /* 1×1 convs over at least 4096 rows per thread take the chunked backward with
     * per-thread weight-gradient partials (sized by conv2d_workspace): against the naive
     * reference, accumulating into random gradients, with and without an input gradient,
     * and bit-identical when run twice. */
    struct { int N, HW, C, K, T; } sp[] = {{2, 64, 24, 40, 2}, {3, 64, 7, 130, 3},
                                           {1, 91, 300, 5, 2}, {1, 64, 16, 16, 1}};
    Rng rng;
    rng_seed(&rng, 31);
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) {
        ConvGeom g;
        REQUIRE(shape_conv_geom(&g, sp[i].N, sp[i].HW, sp[i].HW, sp[i].C, sp[i].K, 1, 1, 1,
                                PAD_SAME) == 0);
        int T = sp[i].T;
        size_t nin = (size_t)g.N * g.H * g.W * g.C, nw = (size_t)g.C * g.K;
        size_t nout = (size_t)g.N * g.OH * g.OW * g.K;
        size_t wf = conv2d_workspace(&g, 1 << 20, T);
        CHECK(wf == (size_t)(T - 1) * g.C * g.K);
        float *work = malloc(sizeof(float) * (wf ? wf : 1));
        float *x = test_rnd(&rng, nin), *w = test_rnd(&rng, nw), *dy = test_rnd(&rng, nout);
        float *dx1 = test_rnd(&rng, nin), *dw1 = test_rnd(&rng, nw), *db1 = test_rnd(&rng, g.K);
        float *dx2 = test_dup(dx1, nin), *dw2 = test_dup(dw1, nw), *db2 = test_dup(db1, g.K);
        float *dx3 = test_dup(dx1, nin), *dw3 = test_dup(dw1, nw), *db3 = test_dup(db1, g.K);
        conv2d_backward(dx1, dw1, db1, dy, x, w, &g, work, wf, T, true);
        conv2d_backward_naive(dx2, dw2, db2, dy, x, w, &g);
        CHECK_REL("pointwise dinp", dx1, dx2, nin, "shape %zu", i);
        CHECK_REL("pointwise dweight", dw1, dw2, nw, "shape %zu", i);
        CHECK_REL("pointwise dbias", db1, db2, g.K, "shape %zu", i);
        CHECK(conv_overwrite_err(&g, x, w, dy, work, wf, T) < TOL);
        conv2d_backward(dx3, dw3, db3, dy, x, w, &g, work, wf, T, true);
        CHECK(memcmp(dx1, dx3, sizeof(float) * nin) == 0);
        CHECK(memcmp(dw1, dw3, sizeof(float) * nw) == 0);
        float *dw4 = test_rnd(&rng, nw), *dw5 = test_dup(dw4, nw);
        conv2d_backward(NULL, dw4, NULL, dy, x, w, &g, work, wf, T, true);
        conv2d_backward_naive(NULL, dw5, NULL, dy, x, w, &g);
        CHECK_REL("pointwise dweight alone", dw4, dw5, nw, "shape %zu", i);
        free(work), free(x), free(w), free(dy), free(dx1), free(dw1), free(db1), free(dx2);
        free(dw2), free(db2), free(dx3), free(dw3), free(db3), free(dw4), free(dw5);
    }
}

TEST(nn_kernels_bias_backward_sums_every_column)
{
    /* Column sums added onto random values against a double sum per column: K past one
     * span of 1024 channels (1025, 2100) and below a vector (1, 13), row counts that 2, 3
     * and 5 threads split unevenly and fewer rows than threads; a second run with the same
     * thread count gives the same bits. Means of 100 make a float sum lose digits. */
    static const int Ks[] = {1, 13, 64, 1025, 2100};
    static const size_t Rs[] = {1, 2, 7, 333};
    static const int Ts[] = {1, 2, 3, 5};
    Rng rng;
    rng_seed(&rng, 41);
    for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
        for (size_t ri = 0; ri < sizeof Rs / sizeof Rs[0]; ri++)
            for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
                const int K = Ks[ki], T = Ts[ti];
                const size_t R = Rs[ri];
                float *dy = test_rnd(&rng, R * K), *b1 = test_rnd(&rng, K), *b2 = test_dup(b1, K);
                float *ref = malloc(sizeof(float) * K);
                for (size_t i = 0; i < R * (size_t)K; i++)
                    dy[i] += 100;
                for (int k = 0; k < K; k++) {
                    double s = 0;
                    for (size_t r = 0; r < R; r++)
                        s += dy[r * K + k];
                    ref[k] = (float)(b1[k] + s);
                }
                bias_backward_add(b1, dy, R, K, T);
                bias_backward_add(b2, dy, R, K, T);
                double e = test_rel_err(b1, ref, K); /* one float rounding of a double sum */
                if (!(e < 1e-6))
                    printf("    bias gradient: relative error %.3g for R%zu K%d T%d\n", e, R, K,
                           T);
                CHECK(e < 1e-6);
                CHECK(memcmp(b1, b2, sizeof(float) * K) == 0);
                free(dy), free(b1), free(b2), free(ref);
            }
}

TEST(nn_kernels_dense_split_among_threads_matches_naive)
{
    /* Layers big enough to split their GEMMs by columns: units and features that are not
     * multiples of 16, more threads than 16-column blocks (K = 20 on 3 threads), 1 to 3
     * threads; forward, and backward added onto random gradients, with and without an input
     * gradient and a bias. */
    static const int shapes[][3] = {{33, 257, 1003}, {300, 50, 20}, {7, 1030, 129}};
    Rng rng;
    rng_seed(&rng, 43);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int T = 1; T <= 3; T++) {
            const int N = shapes[si][0], D = shapes[si][1], K = shapes[si][2];
            const bool with_bias = T != 2, with_dinp = T != 3;
            float *in = test_rnd(&rng, (size_t)N * D), *w = test_rnd(&rng, (size_t)D * K);
            float *b = with_bias ? test_rnd(&rng, K) : NULL, *g = test_rnd(&rng, (size_t)N * K);
            float *o1 = malloc(4 * (size_t)N * K), *o2 = malloc(4 * (size_t)N * K);
            dense_forward(o1, in, w, b, N, D, K, T);
            dense_forward_naive(o2, in, w, b, N, D, K);
            CHECK_REL("dense forward", o1, o2, (size_t)N * K, "N%d D%d K%d T%d", N, D, K, T);
            float *a1 = test_rnd(&rng, (size_t)N * D), *w1 = test_rnd(&rng, (size_t)D * K);
            float *c1 = test_rnd(&rng, K), *a2 = test_dup(a1, (size_t)N * D);
            float *w2 = test_dup(w1, (size_t)D * K), *c2 = test_dup(c1, K);
            dense_backward(with_dinp ? a1 : NULL, w1, with_bias ? c1 : NULL, g, in, w, N, D, K,
                           T);
            dense_backward_naive(with_dinp ? a2 : NULL, w2, with_bias ? c2 : NULL, g, in, w, N,
                                 D, K);
            CHECK_REL("dense dinp", a1, a2, (size_t)N * D, "N%d D%d K%d T%d", N, D, K, T);
            CHECK_REL("dense dweight", w1, w2, (size_t)D * K, "N%d D%d K%d T%d", N, D, K, T);
            CHECK_REL("dense dbias", c1, c2, K, "N%d D%d K%d T%d", N, D, K, T);
            free(in), free(w), free(b), free(g), free(o1), free(o2);
            free(a1), free(w1), free(c1), free(a2), free(w2), free(c2);
        }
}
