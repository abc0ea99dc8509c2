/* test_nn_init.c — Keras initializers: fans, limits, truncation, sample variances, defaults. */
#include "test.h"

#include <string.h>

#include "nn/init.h"
#include "nn/models.h"
#include "nn/net.h"
#include "util/rng.h"

#include <stdlib.h>

/* conv (3,3,3,32) → depthwise (3,3,32,1) → GAP → dense (32, 10), with biases. */
static Net *named_net(void)
{
    Net *net = net_create("init", 1, 8, 8, 3);
    int x = net_conv2d(net, 0, "conv", 32, 3, 3, 1, PAD_SAME, true);
    x = net_depthwise(net, x, "dw", 3, 3, 1, 1, PAD_SAME, true);
    x = net_batchnorm(net, x, "bn", 0.99f, 1e-3f);
    x = net_gap(net, x, "gap", false);
    net_dense(net, x, "dense", 10, true);
    if (net_finalize(net, 1)) {
        net_free(net);
        return NULL;
    }
    return net;
}

/* Large kernels for sample statistics: conv (3,3,64,128) 73,728 weights, depthwise
 * (3,3,128,8) 9,216, dense (1024, 256) 262,144. */
static Net *large_net(void)
{
    Net *net = net_create("init", 1, 4, 4, 64);
    int x = net_conv2d(net, 0, "conv", 128, 3, 3, 1, PAD_SAME, false);
    x = net_depthwise(net, x, "dw", 3, 3, 1, 8, PAD_SAME, false);
    x = net_gap(net, x, "gap", false);
    net_dense(net, x, "dense", 256, false);
    if (net_finalize(net, 1)) {
        net_free(net);
        return NULL;
    }
    return net;
}

TEST(nn_init_names_parse)
{
    for (int i = 0; i < INIT_COUNT; i++) {
        Initializer init;
        CHECK_INT(init_parse(init_name((Initializer)i), &init), 0);
        CHECK_INT(init, i);
    }
    Initializer init;
    CHECK_INT(init_parse("he_uniformx", &init), -1);
    FanConvention conv;
    CHECK_INT(fan_convention_parse("pytorch", &conv), 0);
    CHECK_INT(conv, FAN_PYTORCH);
    CHECK_STR(fan_convention_name(FAN_KERAS), "keras");
    CHECK_INT(fan_convention_parse("torch", &conv), -1);
}

TEST(nn_init_keras_fans_and_limits)
{
    Net *net = named_net();
    REQUIRE(net);
    int fi, fo;
    bool uniform;
    const Param *conv = net_find_param(net, "conv/kernel");
    const Param *dw = net_find_param(net, "dw/depthwise_kernel");
    const Param *dense = net_find_param(net, "dense/kernel");
    REQUIRE(init_fans(conv, FAN_KERAS, &fi, &fo) == 0);
    CHECK_INT(fi, 27);
    CHECK_INT(fo, 288);
    CHECK_NEAR(init_scale(INIT_HE_UNIFORM, fi, fo, &uniform), 0.4714, 5e-5);
    CHECK(uniform);
    CHECK_NEAR(init_scale(INIT_GLOROT_UNIFORM, fi, fo, &uniform), 0.1380, 5e-5);
    REQUIRE(init_fans(dw, FAN_KERAS, &fi, &fo) == 0);
    CHECK_INT(fi, 288);
    CHECK_INT(fo, 9);
    CHECK_NEAR(init_scale(INIT_HE_UNIFORM, fi, fo, &uniform), 0.1443, 5e-5);
    CHECK_NEAR(init_scale(INIT_GLOROT_UNIFORM, fi, fo, &uniform), 0.1421, 5e-5);
    REQUIRE(init_fans(dense, FAN_KERAS, &fi, &fo) == 0);
    CHECK_INT(fi, 32);
    CHECK_INT(fo, 10);
    /* the other formulas, by hand for fans (27, 288) */
    CHECK_NEAR(init_scale(INIT_LECUN_UNIFORM, 27, 288, &uniform), sqrt(3.0 / 27), 1e-12);
    CHECK_NEAR(init_scale(INIT_HE_NORMAL, 27, 288, &uniform), sqrt(2.0 / 27) / 0.87962566103423978, 1e-12);
    CHECK(!uniform);
    CHECK_NEAR(init_scale(INIT_GLOROT_NORMAL, 27, 288, &uniform), sqrt(2.0 / 315) / 0.87962566103423978, 1e-12);
    CHECK_NEAR(init_scale(INIT_LECUN_NORMAL, 27, 288, &uniform), sqrt(1.0 / 27) / 0.87962566103423978, 1e-12);
    CHECK_NEAR(init_variance(INIT_HE_NORMAL, 27, 288), 2.0 / 27, 1e-12);
    CHECK_NEAR(init_variance(INIT_GLOROT_UNIFORM, 27, 288), 2.0 / 315, 1e-12);
    CHECK_NEAR(init_variance(INIT_LECUN_NORMAL, 27, 288), 1.0 / 27, 1e-12);
    CHECK_INT(init_fans(net_find_param(net, "conv/bias"), FAN_KERAS, &fi, &fo), -1);
    net_free(net);
}

TEST(nn_init_pytorch_convention_changes_depthwise_fans_only)
{
    Net *net = large_net();
    REQUIRE(net);
    const char *names[] = {"conv/kernel", "dense/kernel"};
    for (int i = 0; i < 2; i++) {
        int a, b, c, d;
        init_fans(net_find_param(net, names[i]), FAN_KERAS, &a, &b);
        init_fans(net_find_param(net, names[i]), FAN_PYTORCH, &c, &d);
        CHECK(a == c && b == d);
    }
    int fi, fo;
    init_fans(net_find_param(net, "dw/depthwise_kernel"), FAN_PYTORCH, &fi, &fo);
    CHECK_INT(fi, 9);              /* weight (1024, 1, 3, 3): 1·3·3 */
    CHECK_INT(fo, 128 * 8 * 9);
    init_fans(net_find_param(net, "dw/depthwise_kernel"), FAN_KERAS, &fi, &fo);
    CHECK_INT(fi, 9 * 128);
    CHECK_INT(fo, 9 * 8);
    /* and the drawn depthwise weights follow the pytorch fans */
    init_net(net, INIT_HE_UNIFORM, FAN_PYTORCH, 3);
    const Param *dw = net_find_param(net, "dw/depthwise_kernel");
    float mx = 0;
    for (size_t k = 0; k < dw->size; k++)
        mx = fmaxf(mx, fabsf(dw->data[k]));
    CHECK(mx <= sqrt(6.0 / 9) && mx > 0.99 * sqrt(6.0 / 9));
    net_free(net);
}

/* Every initializer on every kernel kind: bounds, and the sample variance within 5% of
 * init_variance (the smallest tensor has 9,216 draws: the standard error of a variance
 * estimate is under 1.3% for these distributions, so 5% is about 4 standard errors). */
TEST(nn_init_samples_match_keras_formulas)
{
    Net *net = large_net();
    REQUIRE(net);
    const char *names[] = {"conv/kernel", "dw/depthwise_kernel", "dense/kernel"};
    for (int ini = 0; ini < INIT_N_PRESETS; ini++) {
        init_net(net, (Initializer)ini, FAN_KERAS, 100 + ini);
        for (int t = 0; t < 3; t++) {
            const Param *p = net_find_param(net, names[t]);
            int fi, fo;
            bool uniform;
            init_fans(p, FAN_KERAS, &fi, &fo);
            double s = init_scale((Initializer)ini, fi, fo, &uniform);
            double bound = uniform ? s : 2 * s, mean = 0, var = 0, mx = 0;
            for (size_t k = 0; k < p->size; k++) {
                mean += p->data[k];
                mx = fmax(mx, fabs(p->data[k]));
            }
            mean /= p->size;
            for (size_t k = 0; k < p->size; k++)
                var += (p->data[k] - mean) * (p->data[k] - mean);
            var /= p->size - 1;
            double want = init_variance((Initializer)ini, fi, fo);
            if (!(mx <= bound * (1 + 1e-6)) || !(mx > 0.97 * bound) ||
                !(fabs(var / want - 1) < 0.05) || !(fabs(mean) < 0.05 * sqrt(want)))
                printf("    %s %s: max %.6g bound %.6g, variance %.6g want %.6g, mean %.3g\n",
                       init_name((Initializer)ini), names[t], mx, bound, var, want, mean);
            CHECK(mx <= bound * (1 + 1e-6)); /* uniform limit, or truncation at 2σ */
            CHECK(mx > 0.97 * bound);        /* and the range is used */
            CHECK(fabs(var / want - 1) < 0.05);
            CHECK(fabs(mean) < 0.05 * sqrt(want));
        }
    }
    net_free(net);
}

TEST(nn_init_defaults_and_seeding)
{
    Net *a = named_net(), *b = named_net();
    REQUIRE(a && b);
    /* dirty everything first: init_net must overwrite it all */
    for (int i = 0; i < net_n_params(a); i++) {
        Param *p = net_param(a, i);
        for (size_t k = 0; k < p->size; k++) {
            p->data[k] = 7;
            if (p->grad)
                p->grad[k] = 7, p->velocity[k] = 7;
        }
    }
    init_net(a, INIT_GLOROT_NORMAL, FAN_KERAS, 9);
    init_net(b, INIT_GLOROT_NORMAL, FAN_KERAS, 9);
    for (int i = 0; i < net_n_params(a); i++) {
        Param *p = net_param(a, i), *q = net_param(b, i);
        CHECK(memcmp(p->data, q->data, sizeof(float) * p->size) == 0);
        if (p->grad)
            CHECK(p->grad[0] == 0 && p->velocity[p->size - 1] == 0);
        float want = -1;
        if (p->kind == PARAM_BIAS || p->kind == PARAM_BETA || p->kind == PARAM_MOVING_MEAN)
            want = 0;
        else if (p->kind == PARAM_GAMMA || p->kind == PARAM_MOVING_VARIANCE)
            want = 1;
        if (want >= 0)
            for (size_t k = 0; k < p->size; k++)
                CHECK(p->data[k] == want);
    }
    init_net(b, INIT_GLOROT_NORMAL, FAN_KERAS, 10);
    CHECK(memcmp(net_find_param(a, "conv/kernel")->data, net_find_param(b, "conv/kernel")->data,
                 sizeof(float) * 864) != 0);
    /* streams are per parameter: the conv and dense kernels do not share draws */
    const Param *c = net_find_param(a, "dense/kernel");
    CHECK(c->data[0] != net_find_param(a, "conv/kernel")->data[0]);
    net_free(a);
    net_free(b);
}

/* ---- Orthogonal, VarianceScaling, gain, zero-γ ------------------------------------------ */

/* Gram matrix entry (i, j) of the columns (by_cols) or rows of a row-major (rows, cols) matrix. */
static double gram(const float *w, int rows, int cols, bool by_cols, int i, int j)
{
    double s = 0;
    int n = by_cols ? rows : cols;
    for (int k = 0; k < n; k++)
        s += by_cols ? (double)w[k * cols + i] * w[k * cols + j]
                     : (double)w[i * cols + k] * w[j * cols + k];
    return s;
}

TEST(nn_init_orthogonal_is_orthonormal_like_keras)
{
    /* tall (rows >= cols): orthonormal columns; wide: orthonormal rows (Keras transposes) */
    static const int shapes[][2] = {{300, 40}, {40, 300}, {64, 64}, {27, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int rows = shapes[s][0], cols = shapes[s][1];
        float *w = malloc(sizeof(float) * (size_t)rows * cols);
        REQUIRE(w);
        Rng rng;
        rng_seed(&rng, 42 + s);
        REQUIRE(init_orthogonal_matrix(w, rows, cols, &rng, 2) == 0);
        bool by_cols = rows >= cols;
        int m = by_cols ? cols : rows;
        double worst = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++)
                worst = fmax(worst, fabs(gram(w, rows, cols, by_cols, i, j) - (i == j)));
        CHECK(worst < 1e-5);
        /* Keras' sign correction: R = Qᵀ·A has a positive diagonal, A the normal matrix
         * (max, min) drawn row-major from the same stream */
        int M = rows > cols ? rows : cols, N = m;
        double *a = malloc(sizeof(double) * (size_t)M * N);
        REQUIRE(a);
        rng_seed(&rng, 42 + s);
        for (int i = 0; i < M * N; i++)
            a[i] = rng_normal(&rng);
        for (int k = 0; k < N; k++) {
            double r = 0; /* column k of Q (Q = w, or wᵀ when wide) dotted with column k of A */
            for (int i = 0; i < M; i++)
                r += (by_cols ? w[i * cols + k] : w[k * cols + i]) * a[i * N + k];
            CHECK(r > 0);
        }
        free(a);
        free(w);
    }
}

TEST(nn_init_orthogonal_variance_and_gain)
{
    Net *net = large_net();
    REQUIRE(net);
    InitSpec spec = init_spec_default(INIT_ORTHOGONAL);
    spec.gain = 2;
    REQUIRE(init_net_spec(net, &spec, FAN_KERAS, 5) == 0);
    const Param *p = net_find_param(net, "dense/kernel"); /* (1024, 256) */
    double sq = 0;
    for (size_t k = 0; k < p->size; k++)
        sq += (double)p->data[k] * p->data[k];
    /* 256 columns of norm 2: Σw² = 4·256, each element gain²/max(rows, cols) on average */
    CHECK_NEAR(sq, 4.0 * 256, 1e-2);
    CHECK_NEAR(init_spec_variance(&spec, p, FAN_KERAS), 4.0 / 1024, 1e-15);
    CHECK_NEAR(gram(p->data, 1024, 256, true, 3, 3), 4.0, 1e-4);
    CHECK_NEAR(gram(p->data, 1024, 256, true, 3, 7), 0.0, 1e-4);
    /* a depthwise (3, 3, 128, 8) kernel flattens to (1152, 8) */
    const Param *d = net_find_param(net, "dw/depthwise_kernel");
    CHECK_NEAR(init_spec_variance(&spec, d, FAN_KERAS), 4.0 / 1152, 1e-15);
    net_free(net);
}

TEST(nn_init_variance_scaling_modes_and_distributions)
{
    Net *net = large_net();
    REQUIRE(net);
    const Param *p = net_find_param(net, "dense/kernel"); /* fan_in 1024, fan_out 256 */
    static const struct { double scale; InitMode mode; InitDistribution dist; double var; } cases[] = {
        {2.0, INIT_MODE_FAN_OUT, INIT_DIST_UNTRUNCATED_NORMAL, 2.0 / 256},
        {1.0, INIT_MODE_FAN_AVG, INIT_DIST_UNIFORM, 1.0 / 640},
        {3.0, INIT_MODE_FAN_IN, INIT_DIST_TRUNCATED_NORMAL, 3.0 / 1024},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        InitSpec spec = init_spec_default(INIT_VARIANCE_SCALING);
        spec.scale = cases[c].scale, spec.mode = cases[c].mode, spec.distribution = cases[c].dist;
        REQUIRE(init_net_spec(net, &spec, FAN_KERAS, 9 + c) == 0);
        double s = 0, q = 0, mx = 0;
        for (size_t k = 0; k < p->size; k++) {
            s += p->data[k], q += (double)p->data[k] * p->data[k];
            mx = fmax(mx, fabs(p->data[k]));
        }
        double var = q / p->size - (s / p->size) * (s / p->size);
        CHECK(fabs(var / cases[c].var - 1) < 0.02);
        CHECK_NEAR(init_spec_variance(&spec, p, FAN_KERAS), cases[c].var, 1e-15);
        bool uniform;
        double scale = init_spec_scale(&spec, 1024, 256, &uniform);
        if (cases[c].dist == INIT_DIST_UNIFORM)
            CHECK(uniform && mx <= scale && mx > 0.99 * scale);
        else if (cases[c].dist == INIT_DIST_TRUNCATED_NORMAL)
            CHECK(!uniform && mx <= 2 * scale);
        else
            CHECK(mx > 3.5 * scale); /* untruncated: tails beyond 2σ exist in 262,144 draws */
    }
    net_free(net);
}

TEST(nn_init_gain_multiplies_and_presets_stay_bit_identical)
{
    Net *a = named_net(), *b = named_net();
    REQUIRE(a && b);
    init_net(a, INIT_HE_UNIFORM, FAN_KERAS, 4);
    InitSpec spec = init_spec_default(INIT_HE_UNIFORM);
    REQUIRE(init_net_spec(b, &spec, FAN_KERAS, 4) == 0);
    for (int i = 0; i < net_n_params(a); i++)
        CHECK(memcmp(net_param(a, i)->data, net_param(b, i)->data,
                     sizeof(float) * net_param(a, i)->size) == 0);
    spec.gain = 0.25;
    REQUIRE(init_net_spec(b, &spec, FAN_KERAS, 4) == 0);
    const Param *pa = net_find_param(a, "conv/kernel"), *pb = net_find_param(b, "conv/kernel");
    for (size_t k = 0; k < pa->size; k++)
        CHECK(fabs(pb->data[k] - 0.25 * pa->data[k]) <= 1e-7 * fabs(pa->data[k]));
    CHECK_NEAR(init_spec_variance(&spec, pb, FAN_KERAS), 0.0625 * 2.0 / 27, 1e-15);
    net_free(a);
    net_free(b);
}

TEST(nn_init_zero_gamma_ends_each_residual_branch)
{
    ModelConfig mc = model_config_default("resnet18");
    mc.size = 32, mc.width = 8, mc.batch = 1, mc.classes = 4;
    char err[256];
    Net *net = model_build(&mc, 1, err, sizeof err);
    REQUIRE(net);
    InitSpec spec = init_spec_default(INIT_HE_NORMAL);
    spec.zero_gamma = true;
    REQUIRE(init_net_spec(net, &spec, FAN_KERAS, 1) == 0);
    int zeroed = 0, ones = 0;
    for (int i = 0; i < net_n_layers(net); i++) {
        const Layer *l = net_layer(net, i);
        if (l->type != LAYER_BATCHNORM)
            continue;
        const Param *g = net_param(net, l->param_first);
        bool zero = g->data[0] == 0 && g->data[g->size - 1] == 0;
        /* the branch's last batch norm is named convS_blockJ_2_bn in a basic block */
        size_t len = strlen(l->name);
        bool branch_end = len > 5 && strcmp(l->name + len - 5, "_2_bn") == 0;
        CHECK(zero == branch_end);
        zeroed += zero, ones += !zero;
    }
    CHECK_INT(zeroed, 8); /* eight basic blocks */
    CHECK(ones > 8);
    net_free(net);
}
