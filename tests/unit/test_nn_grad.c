/* test_nn_grad.c — finite-difference gradient checks of every layer kernel (fast and naive).
 *
 * Each case runs a kernel forward in float and defines the scalar L = Σ out·r (r a fixed
 * random upstream gradient), accumulated in double; the kernel's backward with dout = r
 * gives the analytic gradient of L for every input and parameter. The numeric gradient is
 * the central difference (L(x + h) − L(x − h)) / (x₊ − x₋) with x₊, x₋ the float values
 * actually stored. An element fails when
 *     |analytic − numeric| > RTOL · max(|analytic|, |numeric|) + ATOL · max_k |analytic_k|
 * (the second term is a floor relative to the tensor's largest gradient, for elements
 * whose gradient is near zero). Linear kernels use a large h (their L is exactly linear,
 * so only float rounding of the outputs enters); smooth nonlinear ones a small h. The
 * inputs of piecewise kernels keep a margin from their kinks (ReLU at 0 and 6, max-pool
 * ties) larger than h. Failures print the case, tensor, index, numeric and analytic value.
 * A deliberately wrong backward (dense with a 1% error) must fail, proving the check bites. */
#include "test.h"
#include "testdata.h"

#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"
#include "util/rng.h"

#define RTOL 2e-3
#define ATOL 2e-4
#define MAX_CHECKS 300 /* per tensor; larger tensors are sampled */

enum {
    OP_CONV, OP_DEPTHWISE, OP_ZEROPAD, OP_BN_TRAIN, OP_BN_INFER, OP_ACT, OP_ADD, OP_MAXPOOL,
    OP_AVGPOOL, OP_GAP, OP_DENSE, OP_DROPOUT, OP_LOSS, OP_DENSE_BROKEN
};

typedef struct {
    const char *name;
    int op;
    bool naive;
    int threads;
    ConvGeom g;
    Activation act;
    int N, H, W, C, K, D, pad[4];
    float eps;
    int nt;                 /* tensors checked */
    const char *tn[4];
    float *t[4], *gr[4];
    size_t len[4];
    float *out, *r;         /* (out_len) */
    size_t out_len;
    float *aux[4];          /* op-specific: BN stats / moving stats, dropout mask, labels */
    int *labels;
    float *work;
    size_t work_floats;
    double loss;            /* OP_LOSS: the objective itself */
} Case;

/* Uniform in ±[margin, 1) · scale: away from zero by margin·scale. */
static float *rnd_margin(Rng *rng, size_t n, double margin, double scale)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        double u = margin + (1 - margin) * rng_uniform(rng);
        x[i] = (float)(scale * (rng_uniform(rng) < 0.5 ? -u : u));
    }
    return x;
}

static void add_tensor(Case *c, const char *name, float *data, size_t n)
{
    int k = c->nt++;
    c->tn[k] = name;
    c->t[k] = data;
    c->len[k] = n;
    c->gr[k] = calloc(n ? n : 1, sizeof(float));
}

static void case_free(Case *c)
{
    for (int k = 0; k < c->nt; k++) {
        free(c->t[k]);
        free(c->gr[k]);
    }
    for (int k = 0; k < 4; k++)
        free(c->aux[k]);
    free(c->out), free(c->r), free(c->work), free(c->labels);
}

static void forward(Case *c)
{
    const ConvGeom *g = &c->g;
    int T = c->threads;
    switch (c->op) {
    case OP_CONV:
        if (c->naive)
            conv2d_forward_naive(c->out, c->t[0], c->t[1], c->nt > 2 ? c->t[2] : NULL, g);
        else
            conv2d_forward(c->out, c->t[0], c->t[1], c->nt > 2 ? c->t[2] : NULL, g, c->work,
                           c->work_floats, T);
        break;
    case OP_DEPTHWISE:
        if (c->naive)
            depthwise_forward_naive(c->out, c->t[0], c->t[1], c->nt > 2 ? c->t[2] : NULL, g);
        else
            depthwise_forward(c->out, c->t[0], c->t[1], c->nt > 2 ? c->t[2] : NULL, g, T);
        break;
    case OP_ZEROPAD:
        zeropad_forward(c->out, c->t[0], c->N, c->H, c->W, c->C, c->pad[0], c->pad[1],
                        c->pad[2], c->pad[3], T);
        break;
    case OP_BN_TRAIN: {
        int M = c->N * c->H * c->W;
        if (c->naive)
            batchnorm_forward_train_naive(c->out, c->aux[0], c->aux[1], c->aux[2], c->t[0],
                                          c->t[1], c->t[2], M, c->C, c->eps);
        else
            batchnorm_forward_train(c->out, c->aux[0], c->aux[1], c->aux[2], c->t[0], c->t[1],
                                    c->t[2], M, c->C, c->eps, c->work, T);
        break;
    }
    case OP_BN_INFER:
        batchnorm_forward_infer(c->out, c->t[0], c->t[1], c->t[2], c->aux[0], c->aux[1],
                                c->N * c->H * c->W, c->C, c->eps, c->work, T);
        break;
    case OP_ACT:
        activation_forward(c->out, c->t[0], c->len[0], c->act, T);
        break;
    case OP_ADD:
        add_forward(c->out, c->t[0], c->t[1], c->len[0], T);
        break;
    case OP_MAXPOOL:
        if (c->naive)
            maxpool_forward_naive(c->out, c->t[0], g);
        else
            maxpool_forward(c->out, c->t[0], g, T);
        break;
    case OP_AVGPOOL:
        if (c->naive)
            avgpool_forward_naive(c->out, c->t[0], g);
        else
            avgpool_forward(c->out, c->t[0], g, T);
        break;
    case OP_GAP:
        gap_forward(c->out, c->t[0], c->N, c->H * c->W, c->C, T);
        break;
    case OP_DENSE:
    case OP_DENSE_BROKEN:
        if (c->naive)
            dense_forward_naive(c->out, c->t[0], c->t[1], c->nt > 2 ? c->t[2] : NULL, c->N,
                                c->D, c->K);
        else
            dense_forward(c->out, c->t[0], c->t[1], c->nt > 2 ? c->t[2] : NULL, c->N, c->D,
                          c->K, T);
        break;
    case OP_DROPOUT:
        dropout_forward(c->out, c->t[0], c->aux[0], c->len[0], T);
        break;
    case OP_LOSS:
        c->loss = softmax_xent_forward(c->out, c->t[0], c->labels, c->aux[0], c->N, c->K);
        break;
    }
}

static void backward(Case *c)
{
    const ConvGeom *g = &c->g;
    int T = c->threads;
    float *dbias = c->nt > 2 ? c->gr[2] : NULL;
    switch (c->op) {
    case OP_CONV:
        if (c->naive)
            conv2d_backward_naive(c->gr[0], c->gr[1], dbias, c->r, c->t[0], c->t[1], g);
        else
            conv2d_backward(c->gr[0], c->gr[1], dbias, c->r, c->t[0], c->t[1], g, c->work,
                            c->work_floats, T, true);
        break;
    case OP_DEPTHWISE:
        if (c->naive)
            depthwise_backward_naive(c->gr[0], c->gr[1], dbias, c->r, c->t[0], c->t[1], g);
        else
            depthwise_backward(c->gr[0], c->gr[1], dbias, c->r, c->t[0], c->t[1], g, c->work,
                               T, true);
        break;
    case OP_ZEROPAD:
        zeropad_backward(c->gr[0], c->r, c->N, c->H, c->W, c->C, c->pad[0], c->pad[1],
                         c->pad[2], c->pad[3], T);
        break;
    case OP_BN_TRAIN: {
        int M = c->N * c->H * c->W;
        if (c->naive)
            batchnorm_backward_train_naive(c->gr[0], c->gr[1], c->gr[2], c->r, c->t[0], c->t[1],
                                           c->aux[0], c->aux[1], M, c->C);
        else
            batchnorm_backward_train(c->gr[0], c->gr[1], c->gr[2], c->r, c->t[0], c->t[1],
                                     c->aux[0], c->aux[1], M, c->C, c->work, T);
        break;
    }
    case OP_BN_INFER:
        batchnorm_backward_infer(c->gr[0], c->gr[1], c->gr[2], c->r, c->t[0], c->t[1],
                                 c->aux[0], c->aux[1], c->N * c->H * c->W, c->C, c->eps,
                                 c->work, T);
        break;
    case OP_ACT:
        activation_backward(c->gr[0], c->r, c->out, c->len[0], c->act, T);
        break;
    case OP_ADD:
        add_backward(c->gr[0], c->gr[1], c->r, c->len[0], T);
        break;
    case OP_MAXPOOL:
        if (c->naive)
            maxpool_backward_naive(c->gr[0], c->r, c->t[0], g);
        else
            maxpool_backward(c->gr[0], c->r, c->t[0], c->out, g, T);
        break;
    case OP_AVGPOOL:
        if (c->naive)
            avgpool_backward_naive(c->gr[0], c->r, g);
        else
            avgpool_backward(c->gr[0], c->r, g, T);
        break;
    case OP_GAP:
        gap_backward(c->gr[0], c->r, c->N, c->H * c->W, c->C, T);
        break;
    case OP_DENSE:
    case OP_DENSE_BROKEN:
        if (c->naive)
            dense_backward_naive(c->gr[0], c->gr[1], dbias, c->r, c->t[0], c->t[1], c->N, c->D,
                                 c->K);
        else
            dense_backward(c->gr[0], c->gr[1], dbias, c->r, c->t[0], c->t[1], c->N, c->D, c->K,
                           T);
        if (c->op == OP_DENSE_BROKEN)
            for (size_t i = 0; i < c->len[1]; i++)
                c->gr[1][i] *= 1.01f;
        break;
    case OP_DROPOUT:
        dropout_backward(c->gr[0], c->r, c->aux[0], c->len[0], T);
        break;
    case OP_LOSS:
        softmax_xent_backward(c->gr[0], c->out, c->labels, c->aux[0], c->N, c->K);
        break;
    }
}

static double objective(Case *c)
{
    forward(c);
    if (c->op == OP_LOSS)
        return c->loss;
    double L = 0;
    for (size_t i = 0; i < c->out_len; i++)
        L += (double)c->out[i] * c->r[i];
    return L;
}

/* Runs the check on every tensor of c; returns the number of failing elements. */
static int grad_check(Case *c, double h)
{
    objective(c);
    for (int k = 0; k < c->nt; k++)
        memset(c->gr[k], 0, sizeof(float) * c->len[k]);
    backward(c);
    int fails = 0;
    Rng pick;
    rng_seed(&pick, 99);
    for (int k = 0; k < c->nt; k++) {
        float *x = c->t[k], *a = c->gr[k];
        double scale = 0;
        for (size_t i = 0; i < c->len[k]; i++)
            scale = fmax(scale, fabs(a[i]));
        size_t checks = c->len[k] < MAX_CHECKS ? c->len[k] : MAX_CHECKS;
        for (size_t j = 0; j < checks; j++) {
            size_t i = c->len[k] <= MAX_CHECKS ? j : (size_t)rng_below(&pick, c->len[k]);
            float x0 = x[i];
            float xp = (float)(x0 + h), xm = (float)(x0 - h);
            x[i] = xp;
            double fp = objective(c);
            x[i] = xm;
            double fm = objective(c);
            x[i] = x0;
            double num = (fp - fm) / ((double)xp - (double)xm);
            double ana = a[i];
            if (!(fabs(ana - num) <= RTOL * fmax(fabs(ana), fabs(num)) + ATOL * scale)) {
                if (fails < 5)
                    printf("    grad %s%s %s[%zu]: numeric %.9g analytic %.9g\n", c->name,
                           c->naive ? " (naive)" : "", c->tn[k], i, num, ana);
                fails++;
            }
        }
    }
    return fails;
}

static void set_output(Case *c, Rng *rng, size_t n)
{
    c->out_len = n;
    c->out = calloc(n, sizeof(float));
    c->r = test_uniform(rng, n, -1, 1);
}

/* ---- cases ----------------------------------------------------------------------------- */

typedef struct {
    int N, H, W, C, K, kh, kw, s;
    Padding p;
    bool bias;
    int chunk_rows; /* im2col chunk in output pixels; 0 = all */
} ConvSpec;

static int check_conv(const ConvSpec *sp, bool naive, unsigned seed)
{
    Rng rng;
    rng_seed(&rng, seed);
    Case c = {.name = "conv2d", .op = OP_CONV, .naive = naive, .threads = 2};
    int rc = shape_conv_geom(&c.g, sp->N, sp->H, sp->W, sp->C, sp->K, sp->kh, sp->kw, sp->s,
                             sp->p);
    if (rc)
        return 1000;
    size_t kk = (size_t)sp->kh * sp->kw * sp->C;
    add_tensor(&c, "input", test_uniform(&rng, (size_t)sp->N * sp->H * sp->W * sp->C, -1, 1),
               (size_t)sp->N * sp->H * sp->W * sp->C);
    add_tensor(&c, "kernel", test_uniform(&rng, kk * sp->K, -1, 1), kk * sp->K);
    if (sp->bias)
        add_tensor(&c, "bias", test_uniform(&rng, sp->K, -1, 1), sp->K);
    set_output(&c, &rng, (size_t)sp->N * c.g.OH * c.g.OW * sp->K);
    size_t total_rows = (size_t)sp->N * c.g.OH * c.g.OW;
    c.work_floats = 2 * kk * (sp->chunk_rows ? (size_t)sp->chunk_rows : total_rows);
    c.work = calloc(c.work_floats, sizeof(float));
    int fails = grad_check(&c, 0.25);
    case_free(&c);
    return fails;
}

TEST(nn_grad_conv2d)
{
    static const ConvSpec specs[] = {
        {2, 5, 7, 3, 4, 3, 3, 1, PAD_SAME, true, 0},    /* odd sizes, same */
        {2, 6, 5, 2, 3, 3, 3, 2, PAD_SAME, false, 7},   /* stride 2, pad only bottom */
        {1, 7, 7, 3, 2, 5, 5, 2, PAD_SAME, true, 3},    /* odd input, 5×5, tiny chunks */
        {2, 5, 6, 3, 2, 3, 2, 1, PAD_VALID, true, 11},  /* non-square kernel, valid */
        {2, 4, 3, 5, 6, 1, 1, 1, PAD_SAME, true, 0},    /* 1×1: plain GEMM path */
        {2, 5, 5, 3, 4, 1, 1, 2, PAD_SAME, false, 0},   /* 1×1 stride 2: im2col path */
        {1, 9, 9, 2, 3, 7, 7, 2, PAD_VALID, true, 2},   /* 7×7 stride 2 valid */
        {3, 8, 8, 2, 2, 3, 3, 2, PAD_VALID, false, 5},  /* stride 2 valid, even input */
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        for (int naive = 0; naive < 2; naive++) {
            int f = check_conv(&specs[i], naive, 10 + (unsigned)i);
            if (f)
                printf("    conv spec %zu naive %d: %d failures\n", i, naive, f);
            CHECK_INT(f, 0);
        }
}

static int check_depthwise(int N, int H, int W, int C, int m, int k, int s, Padding p,
                           bool bias, bool naive, unsigned seed)
{
    Rng rng;
    rng_seed(&rng, seed);
    Case c = {.name = "depthwise", .op = OP_DEPTHWISE, .naive = naive, .threads = 2};
    if (shape_conv_geom(&c.g, N, H, W, C, C * m, k, k, s, p))
        return 1000;
    size_t in = (size_t)N * H * W * C;
    add_tensor(&c, "input", test_uniform(&rng, in, -1, 1), in);
    add_tensor(&c, "depthwise_kernel", test_uniform(&rng, (size_t)k * k * C * m, -1, 1),
               (size_t)k * k * C * m);
    if (bias)
        add_tensor(&c, "bias", test_uniform(&rng, (size_t)C * m, -1, 1), (size_t)C * m);
    set_output(&c, &rng, (size_t)N * c.g.OH * c.g.OW * C * m);
    c.work = calloc(depthwise_workspace(&c.g, c.threads), sizeof(float));
    int fails = grad_check(&c, 0.25);
    case_free(&c);
    return fails;
}

TEST(nn_grad_depthwise)
{
    for (int naive = 0; naive < 2; naive++) {
        CHECK_INT(check_depthwise(2, 5, 7, 3, 1, 3, 1, PAD_SAME, true, naive, 1), 0);
        CHECK_INT(check_depthwise(2, 7, 6, 4, 1, 3, 2, PAD_VALID, false, naive, 2), 0);
        CHECK_INT(check_depthwise(1, 6, 5, 3, 2, 3, 2, PAD_SAME, true, naive, 3), 0);
        CHECK_INT(check_depthwise(2, 5, 5, 2, 3, 5, 1, PAD_VALID, false, naive, 4), 0);
    }
}

TEST(nn_grad_zeropad)
{
    static const int pads[][4] = {{0, 1, 0, 1}, {1, 2, 3, 0}, {0, 0, 2, 2}};
    for (int i = 0; i < 3; i++) {
        Rng rng;
        rng_seed(&rng, 20 + i);
        Case c = {.name = "zeropad", .op = OP_ZEROPAD, .threads = 2, .N = 2, .H = 5, .W = 4,
                  .C = 3};
        memcpy(c.pad, pads[i], sizeof c.pad);
        size_t in = (size_t)c.N * c.H * c.W * c.C;
        add_tensor(&c, "input", test_uniform(&rng, in, -1, 1), in);
        set_output(&c, &rng, (size_t)c.N * (c.H + pads[i][0] + pads[i][1]) *
                                 (c.W + pads[i][2] + pads[i][3]) * c.C);
        CHECK_INT(grad_check(&c, 0.25), 0);
        case_free(&c);
    }
}

static int check_bn(int op, bool naive, int N, int H, int W, int C, double mean_shift,
                    unsigned seed)
{
    Rng rng;
    rng_seed(&rng, seed);
    Case c = {.name = op == OP_BN_TRAIN ? "batchnorm(train)" : "batchnorm(inference)",
              .op = op, .naive = naive, .threads = 2, .N = N, .H = H, .W = W, .C = C,
              .eps = 1e-3f};
    size_t M = (size_t)N * H * W;
    add_tensor(&c, "input", test_uniform(&rng, M * C, mean_shift - 2, mean_shift + 2), M * C);
    add_tensor(&c, "gamma", test_uniform(&rng, C, 0.5, 1.5), C);
    add_tensor(&c, "beta", test_uniform(&rng, C, -1, 1), C);
    set_output(&c, &rng, M * C);
    if (op == OP_BN_TRAIN) {
        for (int k = 0; k < 3; k++)
            c.aux[k] = calloc(C, sizeof(float));
    } else {
        c.aux[0] = test_uniform(&rng, C, -0.5, 0.5); /* moving mean */
        c.aux[1] = test_uniform(&rng, C, 0.5, 2.0);  /* moving variance */
    }
    c.work = calloc(batchnorm_workspace(C, c.threads), sizeof(float));
    int fails = grad_check(&c, op == OP_BN_TRAIN ? 1e-2 : 0.25);
    case_free(&c);
    return fails;
}

TEST(nn_grad_batchnorm)
{
    for (int naive = 0; naive < 2; naive++) {
        CHECK_INT(check_bn(OP_BN_TRAIN, naive, 2, 3, 5, 4, 0.0, 30), 0);
        CHECK_INT(check_bn(OP_BN_TRAIN, naive, 3, 1, 1, 7, 1.5, 31), 0); /* dense-like M=3 */
    }
    CHECK_INT(check_bn(OP_BN_INFER, false, 2, 3, 5, 4, 0.0, 32), 0);
    CHECK_INT(check_bn(OP_BN_INFER, false, 1, 2, 3, 5, 3.0, 33), 0);
}

TEST(nn_grad_activations)
{
    for (int a = ACT_RELU; a <= ACT_SOFTSIGN; a++) {
        Rng rng;
        rng_seed(&rng, 40 + a);
        Case c = {.name = activation_name((Activation)a), .op = OP_ACT, .threads = 2,
                  .act = (Activation)a};
        size_t n = 257;
        /* |x| in [0.05, 4], and for relu6 values near 6 too, never within 0.05 of a kink */
        float *x = rnd_margin(&rng, n, 0.0125, 4.0);
        if (a == ACT_RELU6)
            for (size_t i = 0; i < n; i += 3)
                x[i] = (float)(6.0 + (x[i] > 0 ? 1 : -1) * (0.05 + fabs(x[i]) / 4));
        add_tensor(&c, "input", x, n);
        set_output(&c, &rng, n);
        double h = (a == ACT_RELU || a == ACT_RELU6) ? 0.02 : 1e-2;
        CHECK_INT(grad_check(&c, h), 0);
        case_free(&c);
    }
}

TEST(nn_grad_add)
{
    Rng rng;
    rng_seed(&rng, 50);
    Case c = {.name = "add", .op = OP_ADD, .threads = 2};
    add_tensor(&c, "a", test_uniform(&rng, 101, -1, 1), 101);
    add_tensor(&c, "b", test_uniform(&rng, 101, -1, 1), 101);
    set_output(&c, &rng, 101);
    CHECK_INT(grad_check(&c, 0.25), 0);
    case_free(&c);
}

/* Distinct values 0.01 apart in random order: no ties within h = 1e-3. */
static float *distinct(Rng *rng, size_t n)
{
    int *idx = malloc(sizeof(int) * n);
    for (size_t i = 0; i < n; i++)
        idx[i] = (int)i;
    rng_shuffle_int(rng, idx, (int)n);
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((idx[i] - (double)n / 2) * 0.01);
    free(idx);
    return x;
}

static int check_pool(int op, bool naive, int N, int H, int W, int C, int k, int s, Padding p,
                      unsigned seed)
{
    Rng rng;
    rng_seed(&rng, seed);
    Case c = {.name = op == OP_MAXPOOL ? "maxpool" : "avgpool", .op = op, .naive = naive,
              .threads = 2};
    if (shape_conv_geom(&c.g, N, H, W, C, C, k, k, s, p))
        return 1000;
    size_t in = (size_t)N * H * W * C;
    add_tensor(&c, "input", op == OP_MAXPOOL ? distinct(&rng, in) : test_uniform(&rng, in, -1, 1), in);
    set_output(&c, &rng, (size_t)N * c.g.OH * c.g.OW * C);
    int fails = grad_check(&c, op == OP_MAXPOOL ? 1e-3 : 0.25);
    case_free(&c);
    return fails;
}

TEST(nn_grad_pools)
{
    for (int naive = 0; naive < 2; naive++)
        for (int op = OP_MAXPOOL; op <= OP_AVGPOOL; op++) {
            CHECK_INT(check_pool(op, naive, 2, 7, 7, 3, 3, 2, PAD_SAME, 60), 0);
            CHECK_INT(check_pool(op, naive, 2, 6, 5, 2, 3, 2, PAD_SAME, 61), 0);
            CHECK_INT(check_pool(op, naive, 1, 6, 7, 4, 2, 2, PAD_VALID, 62), 0);
            CHECK_INT(check_pool(op, naive, 2, 5, 5, 2, 3, 1, PAD_SAME, 63), 0);
        }
    Rng rng;
    rng_seed(&rng, 64);
    Case c = {.name = "gap", .op = OP_GAP, .threads = 2, .N = 3, .H = 3, .W = 5, .C = 4};
    add_tensor(&c, "input", test_uniform(&rng, 3 * 15 * 4, -1, 1), 3 * 15 * 4);
    set_output(&c, &rng, 3 * 4);
    CHECK_INT(grad_check(&c, 0.25), 0);
    case_free(&c);
}

static int check_dense(int op, bool naive, bool bias, unsigned seed)
{
    Rng rng;
    rng_seed(&rng, seed);
    Case c = {.name = "dense", .op = op, .naive = naive, .threads = 2, .N = 3, .D = 7, .K = 5};
    add_tensor(&c, "input", test_uniform(&rng, 21, -1, 1), 21);
    add_tensor(&c, "kernel", test_uniform(&rng, 35, -1, 1), 35);
    if (bias)
        add_tensor(&c, "bias", test_uniform(&rng, 5, -1, 1), 5);
    set_output(&c, &rng, 15);
    int fails = grad_check(&c, 0.25);
    case_free(&c);
    return fails;
}

TEST(nn_grad_dense)
{
    for (int naive = 0; naive < 2; naive++) {
        CHECK_INT(check_dense(OP_DENSE, naive, true, 70), 0);
        CHECK_INT(check_dense(OP_DENSE, naive, false, 71), 0);
    }
}

TEST(nn_grad_check_detects_a_wrong_gradient)
{
    printf("    (the next failure lines are expected)\n");
    CHECK(check_dense(OP_DENSE_BROKEN, false, true, 72) > 0);
}

TEST(nn_grad_dropout)
{
    Rng rng;
    rng_seed(&rng, 80);
    Case c = {.name = "dropout", .op = OP_DROPOUT, .threads = 2};
    add_tensor(&c, "input", test_uniform(&rng, 200, -1, 1), 200);
    c.aux[0] = malloc(sizeof(float) * 200);
    dropout_make_mask(c.aux[0], 200, 0.3f, &rng);
    int zeros = 0;
    for (int i = 0; i < 200; i++) {
        zeros += c.aux[0][i] == 0.0f;
        CHECK(c.aux[0][i] == 0.0f || fabsf(c.aux[0][i] - 1.0f / 0.7f) < 1e-6f);
    }
    CHECK(zeros > 30 && zeros < 90); /* 60 expected */
    set_output(&c, &rng, 200);
    CHECK_INT(grad_check(&c, 0.25), 0);
    case_free(&c);
}

TEST(nn_grad_loss)
{
    for (int weighted = 0; weighted < 2; weighted++) {
        Rng rng;
        rng_seed(&rng, 90 + weighted);
        Case c = {.name = weighted ? "softmax_xent(class weights)" : "softmax_xent",
                  .op = OP_LOSS, .N = 5, .K = 4};
        add_tensor(&c, "logits", test_uniform(&rng, 20, -3, 3), 20);
        c.labels = malloc(sizeof(int) * 5);
        for (int i = 0; i < 5; i++)
            c.labels[i] = (int)rng_below(&rng, 4);
        if (weighted)
            c.aux[0] = test_uniform(&rng, 4, 0.2, 3);
        set_output(&c, &rng, 20); /* probabilities; r unused */
        CHECK_INT(grad_check(&c, 1e-3), 0);
        case_free(&c);
    }
}

TEST(nn_loss_matches_hand_computed_values)
{
    /* Two samples, three classes. Sample 0: logits (1, 2, 3), label 2; sample 1: (0, 0, 0),
     * label 0. -log softmax: 0.40760596444, log 3 = 1.09861228867. */
    float logits[6] = {1, 2, 3, 0, 0, 0}, probs[6], d[6] = {0};
    int labels[2] = {2, 0};
    double l = softmax_xent_forward(probs, logits, labels, NULL, 2, 3);
    CHECK_NEAR(l, (0.40760596444 + 1.09861228867) / 2, 1e-7);
    float w[3] = {1, 1, 4}; /* class 2 weighs 4: still divided by N = 2 (sum_over_batch_size) */
    l = softmax_xent_forward(probs, logits, labels, w, 2, 3);
    CHECK_NEAR(l, (4 * 0.40760596444 + 1.09861228867) / 2, 1e-7);
    softmax_xent_backward(d, probs, labels, w, 2, 3);
    CHECK_NEAR(d[2], 4 * (0.66524095773 - 1) / 2, 1e-6);
    CHECK_NEAR(d[3], (1.0 / 3 - 1) / 2, 1e-6);
    /* stability: huge logits give a finite loss */
    float big[3] = {1000, -1000, 0};
    int y = 1;
    l = softmax_xent_forward(probs, big, &y, NULL, 1, 3);
    CHECK_NEAR(l, 2000, 1e-3);
}
