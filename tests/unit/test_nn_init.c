/* test_nn_init.c — Keras initializers: fans, limits, truncation, sample variances, defaults. */
#include "test.h"

#include <string.h>

#include "nn/init.h"
#include "nn/net.h"

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
