/* test_nn_convdirect.c — the direct conv2d forward on every ISA path this CPU has, against the naive reference.
 *
 * Each case runs conv2d_forward_direct with isa_limit() at generic, AVX2 and AVX-512 in
 * turn (those the CPU has; the limit is restored afterwards) against conv2d_forward_naive:
 * relative error max |direct − naive| / max(max |naive|, 1e-6) below 1e-5. Channels C = 1,
 * 3, 5, 8, 17 and filters K = 3, 8, 13, 16, 24, 32, 40 give whole vectors, a cut last
 * vector and K <= 8 (AVX2 kernels under AVX-512); 1×1, 3×3 and 7×7 kernels (7×7 only where
 * 49·C fits), stride 1 and 2, Keras 'same' and 'valid'; sizes 7×9 (a row of 9 pixels: one
 * tile of 8 and an overlapping one), 13×5 and 1×1 (rows shorter than a tile), 6×37 (whole
 * tiles, interior and edges); batch 1 and 3; threads 1, 2 and 3, with and without bias.
 * The output must be the same bits for every thread count (each pixel is computed by one
 * thread in a fixed order). Every other case also gathers batch-norm statistics, whose
 * moments must match two-pass double moments of the naive output: the mean within 1e-5 of
 * the output's scale s = max |naive|, the variance v within 1e-5·(v + √v·s) (outputs
 * that differ by float rounding, ~1e-7·s, move v by about 2·√v·1e-7·s). A last test
 * checks which layers take the path and that conv2d_forward_stats, on one that does,
 * gives the direct kernel's bits and statistics. */
#include "test.h"
#include "testdata.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"
#include "util/isa.h"
#include "util/rng.h"

#define TOL 1e-5

typedef struct {
    int N, H, W, C, K, k, s, T;
    Padding pad;
    bool bias, stats;
} Case;

static void fail_case(int line, const char *what, double err, const Case *c, Isa isa)
{
    test_fail(__FILE__, line,
              "%s (%.3g) on %s: N%d H%d W%d C%d K%d k%d s%d %s bias %d stats %d threads %d",
              what, err, isa_name(isa), c->N, c->H, c->W, c->C, c->K, c->k, c->s,
              c->pad == PAD_SAME ? "same" : "valid", c->bias, c->stats, c->T);
}

/* One case under the active ISA; the output of every thread count 1..3 must also be the
 * bits of 1 thread. */
static void run_case(const Case *c, Rng *rng, Isa isa)
{
    ConvGeom g;
    if (shape_conv_geom(&g, c->N, c->H, c->W, c->C, c->K, c->k, c->k, c->s, c->pad) != 0)
        return; /* 'valid' with a kernel larger than the input */
    if (!conv2d_direct_fits(&g))
        return;
    const size_t nin = (size_t)g.N * g.H * g.W * g.C, M = (size_t)g.N * g.OH * g.OW;
    const size_t nout = M * g.K, nw = (size_t)g.kh * g.kw * g.C * g.K;
    float *x = test_rnd(rng, nin), *w = test_rnd(rng, nw), *b = test_rnd(rng, (size_t)g.K);
    float *y = malloc(sizeof(float) * nout), *yn = malloc(sizeof(float) * nout);
    float *y1 = malloc(sizeof(float) * nout);
    for (size_t i = 0; i < nout; i++)
        y[i] = NAN; /* every output must be written */
    void *mem = malloc(bnstats_bytes(g.K, c->T));
    memset(mem, 0xff, bnstats_bytes(g.K, c->T));
    BnStats s;
    bnstats_init(&s, mem, g.K, c->T);
    conv2d_forward_direct(y, x, w, c->bias ? b : NULL, &g, c->T, c->stats ? &s : NULL);
    conv2d_forward_naive(yn, x, w, c->bias ? b : NULL, &g);
    double err = test_rel_err(y, yn, nout);
    if (!(err < TOL))
        fail_case(__LINE__, "relative error", err, c, isa);
    conv2d_forward_direct(y1, x, w, c->bias ? b : NULL, &g, 1, NULL);
    if (memcmp(y, y1, sizeof(float) * nout) != 0)
        fail_case(__LINE__, "output differs from 1 thread's", 0, c, isa);
    if (c->stats) {
        double *mean = malloc(sizeof(double) * 4 * g.K), *var = mean + g.K;
        double *rm = var + g.K, *rv = rm + g.K;
        bnstats_moments(&s, mean, var);
        test_moments(rm, rv, yn, M, g.K);
        double ymax = 1e-6;
        for (size_t i = 0; i < nout; i++)
            ymax = fabs(yn[i]) > ymax ? fabs(yn[i]) : ymax;
        for (int k = 0; k < g.K; k++) {
            double sd = sqrt(rv[k]);
            if (!(fabs(mean[k] - rm[k]) <= TOL * ymax))
                fail_case(__LINE__, "stats mean", mean[k] - rm[k], c, isa);
            if (!(fabs(var[k] - rv[k]) <= TOL * (rv[k] + sd * ymax) + 1e-12))
                fail_case(__LINE__, "stats variance", var[k] - rv[k], c, isa);
        }
        free(mean);
    }
    free(x), free(w), free(b), free(y), free(yn), free(y1), free(mem);
}

TEST(nn_convdirect_every_isa_matches_naive)
{
    static const int cs[] = {1, 3, 5, 8, 17};
    static const int ks[] = {3, 8, 13, 16, 24, 32, 40};
    static const int kern[] = {1, 3, 7};
    static const int hw[][2] = {{7, 9}, {13, 5}, {1, 1}, {6, 37}};
    Isa saved = isa_active();
    int ran = 0;
    for (Isa isa = ISA_GENERIC; isa <= isa_best(); isa++) {
        isa_limit(isa);
        CHECK_INT(isa_active(), isa);
        Rng rng;
        rng_seed(&rng, 41);
        int i = 0;
        for (int ci = 0; ci < 5; ci++)
            for (int ki = 0; ki < 7; ki++)
                for (int kn = 0; kn < 3; kn++)
                    for (int h = 0; h < 4; h++)
                        for (int st = 1; st <= 2; st++)
                            for (int pad = 0; pad < 2; pad++, i++) {
                                Case c = {.N = i % 2 ? 3 : 1, .H = hw[h][0], .W = hw[h][1],
                                          .C = cs[ci], .K = ks[ki], .k = kern[kn], .s = st,
                                          .pad = pad ? PAD_VALID : PAD_SAME,
                                          .T = 1 + (i / 2) % 3, .bias = i % 3 != 0,
                                          .stats = (i / 3) % 2 != 0};
                                run_case(&c, &rng, isa);
                                ran++;
                            }
    }
    isa_limit(saved);
    CHECK(ran > 0);
}

TEST(nn_convdirect_eligible_layers_take_it)
{
    ConvGeom g;
    Isa saved = isa_active();
    for (Isa isa = ISA_GENERIC; isa <= isa_best(); isa++) {
        isa_limit(isa);
        /* MobileNet's first layer (3×3 stride 2, 3 → 8 and 3 → 32) on every ISA */
        REQUIRE(shape_conv_geom(&g, 2, 128, 128, 3, 8, 3, 3, 2, PAD_SAME) == 0);
        CHECK(conv2d_direct_eligible(&g));
        REQUIRE(shape_conv_geom(&g, 2, 224, 224, 3, 32, 3, 3, 2, PAD_SAME) == 0);
        CHECK(conv2d_direct_eligible(&g));
        /* α 0.25's first 1×1 layers: 8 → 16 with AVX-512, 16 → 32 with AVX2 or wider */
        REQUIRE(shape_conv_geom(&g, 2, 64, 64, 8, 16, 1, 1, 1, PAD_SAME) == 0);
        CHECK_INT(conv2d_direct_eligible(&g), isa == ISA_AVX512);
        REQUIRE(shape_conv_geom(&g, 2, 32, 32, 16, 32, 1, 1, 1, PAD_SAME) == 0);
        CHECK_INT(conv2d_direct_eligible(&g), isa >= ISA_AVX2);
        /* a long inner dimension or many filters stay on the GEMM */
        REQUIRE(shape_conv_geom(&g, 2, 56, 56, 64, 64, 3, 3, 1, PAD_SAME) == 0);
        CHECK(!conv2d_direct_eligible(&g));
        REQUIRE(shape_conv_geom(&g, 2, 56, 56, 64, 128, 1, 1, 1, PAD_SAME) == 0);
        CHECK(!conv2d_direct_eligible(&g));
        REQUIRE(shape_conv_geom(&g, 2, 32, 32, 3, 128, 3, 3, 1, PAD_SAME) == 0);
        CHECK(!conv2d_direct_eligible(&g));
    }
    isa_limit(saved);

    /* conv2d_forward_stats on an eligible layer gives the direct kernel's bits and stats */
    REQUIRE(shape_conv_geom(&g, 3, 33, 31, 3, 8, 3, 3, 2, PAD_SAME) == 0);
    REQUIRE(conv2d_direct_eligible(&g));
    Rng rng;
    rng_seed(&rng, 43);
    const size_t nin = (size_t)g.N * g.H * g.W * g.C, M = (size_t)g.N * g.OH * g.OW;
    const size_t nout = M * g.K, nw = (size_t)g.kh * g.kw * g.C * g.K;
    float *x = test_rnd(&rng, nin), *w = test_rnd(&rng, nw), *b = test_rnd(&rng, (size_t)g.K);
    float *y0 = malloc(sizeof(float) * nout), *y1 = malloc(sizeof(float) * nout);
    size_t wf = conv2d_workspace(&g, 4096, 2);
    float *work = malloc(sizeof(float) * (wf ? wf : 1));
    void *m0 = malloc(bnstats_bytes(g.K, 2)), *m1 = malloc(bnstats_bytes(g.K, 2));
    BnStats s0, s1;
    bnstats_init(&s0, m0, g.K, 2);
    bnstats_init(&s1, m1, g.K, 2);
    conv2d_forward_direct(y0, x, w, b, &g, 2, &s0);
    conv2d_forward_stats(y1, x, w, b, &g, work, wf, 2, &s1);
    CHECK(memcmp(y0, y1, sizeof(float) * nout) == 0);
    double mv0[16], mv1[16];
    bnstats_moments(&s0, mv0, mv0 + 8);
    bnstats_moments(&s1, mv1, mv1 + 8);
    CHECK(memcmp(mv0, mv1, sizeof mv0) == 0);
    free(x), free(w), free(b), free(y0), free(y1), free(work), free(m0), free(m1);
}
