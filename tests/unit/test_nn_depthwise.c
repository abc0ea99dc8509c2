/* test_nn_depthwise.c — depthwise conv2d on every instruction-set path this CPU has, against
 * the naive reference on odd shapes.
 *
 * Each case runs with isa_limit() at generic, AVX2 and AVX-512 in turn (those the CPU
 * has; the limit is restored afterwards) and checks the forward, the input gradient added
 * onto random values (accumulate) and written over NaN (overwrite: the buffer must never
 * be read, and pixels no output reads become 0), and the weight and bias gradients added
 * onto random values. Relative error of a tensor: max |fast − naive| / max(max |naive|,
 * 1e-6), below 1e-5. Channels 3, 8, 13, 17, 40 and 67 make every split of the vector
 * blocks (16, 8, 4 wide) and the general loops' leftovers; widths 1 to 37 give rows made
 * only of edge pixels and rows with whole tiles of 8 and 4; strides 1 and 2 with same,
 * valid and the net's folded Keras ZeroPadding((0,1),(0,1)) + valid (the input one pixel
 * smaller than the geometry's, no pad before); batch 1 and 3; threads 1, 2 and 3;
 * multiplier 2 and a 5×5 kernel for the general loops. A second run must give the same
 * bits.
 *
 * The backward computes both gradients in one pass, each thread the input rows its output
 * rows own; the share test runs row counts that 2 and 3 threads split unevenly (and 5
 * threads, more than some cases have rows) and checks every thread count against the
 * reference, the input gradient bit for bit the same for every thread count (each pixel
 * is computed whole by one thread, whatever the split), the weight gradient the same bits
 * on a second run and without an input gradient. */
#include "test.h"
#include "testdata.h"

#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"
#include "util/isa.h"
#include "util/rng.h"

#define TOL 1e-5

typedef struct {
    int N, H, W, C, m, k, s, T;
    int pad; /* 0 same, 1 valid, 2 folded ZeroPadding((0,1),(0,1)) + valid */
    bool bias;
    bool big; /* no accumulate pass (the naive backward is slow on big tensors) */
} Case;

/* Fails the running test, naming the case and the ISA, where err is not below TOL. */
static void check_err(const char *what, double err, const Case *c, Isa isa)
{
    static const char *pads[] = {"same", "valid", "zeropad+valid"};
    if (err < TOL)
        return;
    test_fail(__FILE__, __LINE__,
              "%s: relative error %.3g on %s: N%d H%d W%d C%d m%d k%d s%d %s bias %d threads %d",
              what, err, isa_name(isa), c->N, c->H, c->W, c->C, c->m, c->k, c->s, pads[c->pad],
              c->bias, c->T);
}

/* Backward with accumulate true: dinp, dweight and dbias add onto random values, twice
 * with the same bits. */
static void check_accumulate(const Case *c, const ConvGeom *g, const float *x, const float *w,
                             const float *dy, float *work, Rng *rng, Isa isa)
{
    const int K = g->K;
    const size_t nin = (size_t)c->N * c->H * c->W * c->C, nw = (size_t)c->k * c->k * K;
    float *dx1 = test_rnd(rng, nin), *dw1 = test_rnd(rng, nw), *db1 = test_rnd(rng, K);
    float *dx2 = test_dup(dx1, nin), *dw2 = test_dup(dw1, nw), *db2 = test_dup(db1, K);
    float *dx3 = test_dup(dx1, nin), *dw3 = test_dup(dw1, nw), *db3 = test_dup(db1, K);
    depthwise_backward(dx1, dw1, c->bias ? db1 : NULL, dy, x, w, g, work, c->T, true);
    depthwise_backward(dx3, dw3, c->bias ? db3 : NULL, dy, x, w, g, work, c->T, true);
    depthwise_backward_naive(dx2, dw2, c->bias ? db2 : NULL, dy, x, w, g);
    check_err("dinp (accumulate)", test_rel_err(dx1, dx2, nin), c, isa);
    check_err("dweight", test_rel_err(dw1, dw2, nw), c, isa);
    check_err("dbias", test_rel_err(db1, db2, K), c, isa);
    CHECK(memcmp(dx1, dx3, sizeof(float) * nin) == 0);
    CHECK(memcmp(dw1, dw3, sizeof(float) * nw) == 0);
    free(dx1), free(dw1), free(db1), free(dx2), free(dw2), free(db2), free(dx3), free(dw3);
    free(db3);
}

/* The geometry of case c; returns false when the window does not fit. */
static bool case_geom(ConvGeom *g, const Case *c)
{
    const int fold = c->pad == 2;
    if (shape_conv_geom(g, c->N, c->H + fold, c->W + fold, c->C, c->C * c->m, c->k, c->k,
                        c->s, c->pad == 0 ? PAD_SAME : PAD_VALID) != 0)
        return false;
    g->H = c->H, g->W = c->W;
    return true;
}

/* Runs case c with the active ISA against the naive kernels. */
static void run_case(const Case *c, Rng *rng, Isa isa)
{
    const int K = c->C * c->m;
    ConvGeom g;
    if (!case_geom(&g, c))
        return; /* the window does not fit */
    const size_t nin = (size_t)c->N * c->H * c->W * c->C, nw = (size_t)c->k * c->k * K;
    const size_t nout = (size_t)c->N * g.OH * g.OW * K;
    float *work = malloc(sizeof(float) * depthwise_workspace(&g, c->T));
    float *x = test_rnd(rng, nin), *w = test_rnd(rng, nw), *b = c->bias ? test_rnd(rng, K) : NULL;
    float *dy = test_rnd(rng, nout);

    float *y1 = malloc(sizeof(float) * nout), *y2 = malloc(sizeof(float) * nout);
    float *y3 = malloc(sizeof(float) * nout);
    depthwise_forward(y1, x, w, b, &g, c->T);
    depthwise_forward(y3, x, w, b, &g, c->T);
    depthwise_forward_naive(y2, x, w, b, &g);
    check_err("forward", test_rel_err(y1, y2, nout), c, isa);
    CHECK(memcmp(y1, y3, sizeof(float) * nout) == 0);

    if (!c->big)
        check_accumulate(c, &g, x, w, dy, work, rng, isa);

    /* overwrite: dinp starts as NaN and must equal the reference run on zeros */
    float *dx4 = malloc(sizeof(float) * (nin ? nin : 1)), *dx5 = calloc(nin ? nin : 1, sizeof(float));
    float *dw4 = calloc(nw, sizeof(float)), *dw5 = calloc(nw, sizeof(float));
    for (size_t i = 0; i < nin; i++)
        dx4[i] = NAN;
    depthwise_backward(dx4, dw4, NULL, dy, x, w, &g, work, c->T, false);
    depthwise_backward_naive(dx5, dw5, NULL, dy, x, w, &g);
    check_err("dinp (overwrite)", test_rel_err(dx4, dx5, nin), c, isa);
    check_err("dweight (no dbias)", test_rel_err(dw4, dw5, nw), c, isa);

    /* no input gradient (a first layer): the weight gradient alone */
    memset(dw4, 0, sizeof(float) * nw);
    depthwise_backward(NULL, dw4, NULL, dy, x, w, &g, work, c->T, false);
    check_err("dweight (no dinp)", test_rel_err(dw4, dw5, nw), c, isa);

    free(work), free(x), free(w), free(b), free(dy), free(y1), free(y2), free(y3);
    free(dx4), free(dx5), free(dw4), free(dw5);
}

/* Runs case c's backward with 1, 2, 3 and 5 threads under the active ISA: overwriting
 * (dinp NaN beforehand), again for the same bits, accumulating, and without dinp; each
 * against the reference, dinp the same bits for every thread count. */
static void run_shares(const Case *c, Rng *rng, Isa isa)
{
    static const int threads[] = {1, 2, 3, 5};
    const int K = c->C * c->m;
    ConvGeom g;
    if (!case_geom(&g, c)) {
        test_fail(__FILE__, __LINE__, "share case H%d W%d s%d does not fit", c->H, c->W, c->s);
        return;
    }
    const size_t nin = (size_t)c->N * c->H * c->W * c->C, nw = (size_t)c->k * c->k * K;
    const size_t nout = (size_t)c->N * g.OH * g.OW * K;
    float *x = test_rnd(rng, nin), *w = test_rnd(rng, nw), *dy = test_rnd(rng, nout), *dx0 = test_rnd(rng, nin);
    /* references: overwrite (the naive kernel on zeros) and accumulate (onto dx0) */
    float *rx = calloc(nin, sizeof(float)), *rw = calloc(nw, sizeof(float));
    float *rb = calloc(K, sizeof(float)), *ra = test_dup(dx0, nin);
    float *aw = calloc(nw, sizeof(float)), *ab = calloc(K, sizeof(float));
    depthwise_backward_naive(rx, rw, rb, dy, x, w, &g);
    depthwise_backward_naive(ra, aw, ab, dy, x, w, &g);
    float *dx1 = NULL, *da1 = NULL; /* dinp with 1 thread: overwrite, accumulate */
    for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ti++) {
        Case ct = *c;
        ct.T = threads[ti];
        float *work = malloc(sizeof(float) * depthwise_workspace(&g, ct.T));
        float *dx = malloc(sizeof(float) * nin), *dxb = malloc(sizeof(float) * nin);
        float *da = test_dup(dx0, nin);
        float *dw = calloc(nw, sizeof(float)), *db = calloc(K, sizeof(float));
        float *dwb = calloc(nw, sizeof(float)), *dbb = calloc(K, sizeof(float));
        float *dwn = calloc(nw, sizeof(float)), *dbn = calloc(K, sizeof(float));
        for (size_t i = 0; i < nin; i++)
            dx[i] = dxb[i] = NAN;
        depthwise_backward(dx, dw, db, dy, x, w, &g, work, ct.T, false);
        check_err("shares: dinp (overwrite)", test_rel_err(dx, rx, nin), &ct, isa);
        check_err("shares: dweight", test_rel_err(dw, rw, nw), &ct, isa);
        check_err("shares: dbias", test_rel_err(db, rb, K), &ct, isa);
        depthwise_backward(dxb, dwb, dbb, dy, x, w, &g, work, ct.T, false);
        CHECK(memcmp(dx, dxb, sizeof(float) * nin) == 0);
        CHECK(memcmp(dw, dwb, sizeof(float) * nw) == 0);
        CHECK(memcmp(db, dbb, sizeof(float) * K) == 0);
        depthwise_backward(NULL, dwn, dbn, dy, x, w, &g, work, ct.T, false);
        CHECK(memcmp(dw, dwn, sizeof(float) * nw) == 0);
        CHECK(memcmp(db, dbn, sizeof(float) * K) == 0);
        memset(dwb, 0, sizeof(float) * nw);
        depthwise_backward(da, dwb, NULL, dy, x, w, &g, work, ct.T, true);
        check_err("shares: dinp (accumulate)", test_rel_err(da, ra, nin), &ct, isa);
        if (!dx1) {
            dx1 = dx, da1 = da;
            dx = da = NULL;
        } else if (memcmp(dx, dx1, sizeof(float) * nin) != 0 ||
                   memcmp(da, da1, sizeof(float) * nin) != 0) {
            test_fail(__FILE__, __LINE__,
                      "shares: dinp with %d threads differs from 1 thread's on %s: N%d H%d "
                      "W%d C%d s%d", ct.T, isa_name(isa), c->N, c->H, c->W, c->C, c->s);
        }
        free(work), free(dx), free(dxb), free(da), free(dw), free(db), free(dwb), free(dbb);
        free(dwn), free(dbn);
    }
    free(x), free(w), free(dy), free(dx0), free(rx), free(rw), free(rb), free(ra), free(aw);
    free(ab), free(dx1), free(da1);
}

/* Runs every case under each ISA up to the CPU's best (fn: run_case or run_shares), then
 * restores the limit. */
static void for_each_isa_fn(const Case *cases, int n, uint64_t seed,
                            void (*fn)(const Case *, Rng *, Isa))
{
    Isa saved = isa_active();
    for (Isa isa = ISA_GENERIC; isa <= isa_best(); isa++) {
        isa_limit(isa);
        CHECK_INT(isa_active(), isa);
        Rng rng;
        rng_seed(&rng, seed);
        for (int i = 0; i < n; i++)
            fn(&cases[i], &rng, isa);
    }
    isa_limit(saved);
}

static void for_each_isa(const Case *cases, int n, uint64_t seed)
{
    for_each_isa_fn(cases, n, seed, run_case);
}

TEST(nn_depthwise_3x3_every_isa_matches_naive)
{
    static const int cs[] = {3, 8, 13, 17, 40, 67};
    static const int hw[][2] = {{7, 9}, {13, 5}, {1, 1}, {2, 3}, {9, 23}, {5, 37}, {4, 18}};
    enum { NC = 6, NHW = 7, NCASE = NC * NHW * 2 * 3 };
    static Case cases[NCASE];
    int n = 0;
    for (int ci = 0; ci < NC; ci++)
        for (int h = 0; h < NHW; h++)
            for (int s = 1; s <= 2; s++)
                for (int pad = 0; pad < 3; pad++) {
                    int i = n;
                    cases[n++] = (Case){.N = i % 2 ? 3 : 1, .H = hw[h][0], .W = hw[h][1],
                                        .C = cs[ci], .m = 1, .k = 3, .s = s, .pad = pad,
                                        .T = 1 + (i / 2) % 3, .bias = i % 3 != 0};
                }
    for_each_isa(cases, n, 23);
}

TEST(nn_depthwise_general_every_isa_matches_naive)
{
    /* multiplier 2, a 5×5 kernel and stride 3 take the general loops whatever the ISA */
    static const Case cases[] = {
        {.N = 3, .H = 7, .W = 9, .C = 17, .m = 2, .k = 3, .s = 1, .T = 2, .bias = true},
        {.N = 1, .H = 13, .W = 5, .C = 3, .m = 2, .k = 3, .s = 2, .pad = 2, .T = 1},
        {.N = 3, .H = 9, .W = 11, .C = 40, .m = 2, .k = 3, .s = 2, .pad = 1, .T = 2},
        {.N = 1, .H = 7, .W = 9, .C = 16, .m = 1, .k = 5, .s = 1, .T = 2, .bias = true},
        {.N = 3, .H = 8, .W = 7, .C = 67, .m = 1, .k = 5, .s = 2, .pad = 1, .T = 1},
        {.N = 1, .H = 10, .W = 13, .C = 32, .m = 1, .k = 3, .s = 3, .T = 2, .bias = true},
    };
    for_each_isa(cases, (int)(sizeof cases / sizeof cases[0]), 29);
}

TEST(nn_depthwise_streamed_tensors_match_naive)
{
    /* Tensors of 8 MiB and more are written with streaming stores: the forward output and
     * the stride-1 input gradient of 64×64×512 (every vector width), the stride-2 input
     * gradient of 64×64×520 (with AVX-512 only the last 8 channels' block streams) */
    static const Case cases[] = {
        {.N = 1, .H = 64, .W = 64, .C = 512, .m = 1, .k = 3, .s = 1, .T = 2, .bias = true,
         .big = true},
        {.N = 1, .H = 64, .W = 64, .C = 520, .m = 1, .k = 3, .s = 2, .pad = 2, .T = 2,
         .big = true},
    };
    for_each_isa(cases, (int)(sizeof cases / sizeof cases[0]), 31);
}

TEST(nn_depthwise_backward_thread_shares_match_naive)
{
    /* N·OH rows that 2 and 3 threads split unevenly (7, 5, 15, 3·7, ...), the last output
     * row owning 2, 3 (VALID stride 1) or 4 input rows (VALID stride 2, H = 2·OH + 2),
     * rows no output reads, fewer rows than threads; C = 21 is a 16-, a 4-wide block and
     * a general channel with AVX-512, 13 a 8-, a 4-wide block and a general one with AVX2 */
    static const Case cases[] = {
        {.N = 1, .H = 7, .W = 9, .C = 21, .m = 1, .k = 3, .s = 1, .bias = true},
        {.N = 3, .H = 7, .W = 5, .C = 13, .m = 1, .k = 3, .s = 1, .pad = 1, .bias = true},
        {.N = 1, .H = 11, .W = 10, .C = 21, .m = 1, .k = 3, .s = 2, .pad = 1},
        {.N = 3, .H = 8, .W = 9, .C = 13, .m = 1, .k = 3, .s = 2, .pad = 1, .bias = true},
        {.N = 3, .H = 9, .W = 12, .C = 21, .m = 1, .k = 3, .s = 2, .bias = true},
        {.N = 1, .H = 10, .W = 19, .C = 40, .m = 1, .k = 3, .s = 2, .pad = 2, .bias = true},
        {.N = 3, .H = 5, .W = 17, .C = 3, .m = 1, .k = 3, .s = 1, .pad = 2},
        {.N = 1, .H = 2, .W = 3, .C = 13, .m = 1, .k = 3, .s = 2, .bias = true},
        {.N = 3, .H = 9, .W = 7, .C = 17, .m = 2, .k = 3, .s = 2, .pad = 1, .bias = true},
        {.N = 1, .H = 11, .W = 8, .C = 13, .m = 1, .k = 5, .s = 1, .bias = true},
    };
    for_each_isa_fn(cases, (int)(sizeof cases / sizeof cases[0]), 37, run_shares);
}
