/* test_models.c — the model zoo against Keras: parameter and layer counts, shapes, names, trainability.
 *
 * References are independent of models.c: Keras' published parameter counts, torchvision's
 * ResNet-18/34 counts plus the biases and BN statistics Keras' ResNet style adds, closed
 * formulas for the controls, and output sizes from the TF padding rules
 *   same:  out = ceil(in / stride)        valid:  out = floor((in - k) / stride) + 1
 * tabulated per stage below. */
#include <stdlib.h>
#include <string.h>

#include "nn/init.h"
#include "nn/models.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "test.h"
#include "util/rng.h"

static Net *build(ModelConfig c, char *err, size_t errlen)
{
    c.batch = c.batch ? c.batch : 1;
    Net *net = model_build(&c, 1, err, errlen);
    if (!net)
        printf("    model_build(%s, %d px): %s\n", c.name, c.size, err);
    return net;
}

static ModelConfig cfg_of(const char *name, int size, int classes, ModelHead head)
{
    ModelConfig c = model_config_default(name);
    c.size = size;
    c.classes = classes;
    c.head = head;
    c.batch = 1;
    return c;
}

static size_t total_params(const Net *net)
{
    return net_count_params(net, true) + net_count_params(net, false);
}

TEST(models_keras_parameter_counts)
{
    char err[256];
    /* keras.applications.MobileNet(weights=None) and ResNet50(weights=None). */
    Net *net = build(cfg_of("mobilenet", 224, 1000, HEAD_KERAS), err, sizeof err);
    REQUIRE(net);
    CHECK_INT(total_params(net), 4253864);
    CHECK_INT(net_count_params(net, false), 21888);
    /* input + conv1/bn/relu + 13 blocks of 6 + 4 paddings + GAP, dropout, conv_preds,
     * reshape (Keras' softmax layer "predictions" is in the loss): 90. */
    CHECK_INT(net_n_layers(net), 1 + 3 + 13 * 6 + 4 + 4);
    CHECK_INT(net_n_layers(net), 90);
    net_free(net);

    net = build(cfg_of("resnet50", 224, 1000, HEAD_KERAS), err, sizeof err);
    REQUIRE(net);
    CHECK_INT(total_params(net), 25636712);
    CHECK_INT(net_count_params(net, false), 53120);
    /* input + stem 6 + 16 blocks of 10 + 4 projections of 2 + avg_pool, predictions: 177,
     * len(ResNet50().layers) in Keras. */
    CHECK_INT(net_n_layers(net), 1 + 6 + 16 * 10 + 4 * 2 + 2);
    CHECK_INT(net_n_layers(net), 177);
    net_free(net);

    /* torchvision resnet18/34 (11,689,512 / 21,797,672 parameters) have no conv biases and
     * no BN statistics; Keras' style adds one bias per conv output channel (4,800 / 8,512,
     * equal to the BN channels) and two statistics per BN channel. */
    net = build(cfg_of("resnet18", 224, 1000, HEAD_KERAS), err, sizeof err);
    REQUIRE(net);
    CHECK_INT(net_count_params(net, true), 11689512 + 4800);
    CHECK_INT(net_count_params(net, false), 2 * 4800);
    CHECK_INT(net_n_layers(net), 1 + 6 + 8 * 7 + 3 * 2 + 2);
    net_free(net);
    net = build(cfg_of("resnet34", 224, 1000, HEAD_KERAS), err, sizeof err);
    REQUIRE(net);
    CHECK_INT(net_count_params(net, true), 21797672 + 8512);
    CHECK_INT(net_count_params(net, false), 2 * 8512);
    CHECK_INT(net_n_layers(net), 1 + 6 + 16 * 7 + 3 * 2 + 2);
    net_free(net);
}

/* Paper head on F features: Dense F→256 (+bias), BN 256 (2 trainable + 2 statistics),
 * Dense 256→K (+bias). */
static size_t paper_head_trainable(size_t F, size_t K)
{
    return F * 256 + 256 + 2 * 256 + 256 * K + K;
}

TEST(models_paper_head_and_control_counts)
{
    char err[256];
    ModelConfig c = cfg_of("mobilenet", 128, 21, HEAD_PAPER);
    Net *net = build(c, err, sizeof err);
    REQUIRE(net);
    /* Keras MobileNet without top: 4,253,864 - conv_preds (1024·1000 + 1000). */
    size_t body = 4253864 - (1024 * 1000 + 1000);
    CHECK_INT(total_params(net), body + paper_head_trainable(1024, 21) + 2 * 256);
    CHECK_INT(net_count_params(net, false), 21888 + 2 * 256);
    CHECK_INT(net_n_layers(net), 1 + 3 + 13 * 6 + 4 + 5);
    net_free(net);

    net = build(cfg_of("resnet50", 64, 21, HEAD_PAPER), err, sizeof err);
    REQUIRE(net);
    body = 25636712 - (2048 * 1000 + 1000);
    CHECK_INT(total_params(net), body + paper_head_trainable(2048, 21) + 2 * 256);
    CHECK_INT(net_n_layers(net), 1 + 6 + 16 * 10 + 4 * 2 + 5);
    net_free(net);

    /* MobileNet α = 0.25: filters int(f/4): 8, 16, 32, 32, 64, 64, 128×6, 256, 256. */
    c = cfg_of("mobilenet", 64, 5, HEAD_KERAS);
    c.alpha = 0.25;
    net = build(c, err, sizeof err);
    REQUIRE(net);
    static const int f[14] = {8, 16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256};
    size_t tr = 27 * 8 + 2 * 8, nt = 2 * 8;
    for (int b = 1; b <= 13; b++) {
        tr += 9 * (size_t)f[b - 1] + 2 * (size_t)f[b - 1];    /* depthwise + BN */
        tr += (size_t)f[b - 1] * f[b] + 2 * (size_t)f[b];     /* pointwise + BN */
        nt += 2 * (size_t)f[b - 1] + 2 * (size_t)f[b];
    }
    tr += 256 * 5 + 5;
    CHECK_INT(net_count_params(net, true), tr);
    CHECK_INT(net_count_params(net, false), nt);
    net_free(net);

    /* plain, depth 8, width 16, BN: stages of 2 convs with 16, 32, 64, 128 filters. */
    c = cfg_of("plain", 32, 10, HEAD_KERAS);
    c.depth = 8;
    c.width = 16;
    net = build(c, err, sizeof err);
    REQUIRE(net);
    static const int pw[9] = {3, 16, 16, 32, 32, 64, 64, 128, 128};
    tr = 0;
    nt = 0;
    for (int i = 1; i <= 8; i++) {
        tr += 9 * (size_t)pw[i - 1] * pw[i] + 2 * (size_t)pw[i];
        nt += 2 * (size_t)pw[i];
    }
    tr += 128 * 10 + 10;
    CHECK_INT(net_count_params(net, true), tr);
    CHECK_INT(net_count_params(net, false), nt);
    CHECK_INT(net_n_layers(net), 1 + 8 * 3 + 2);
    const Layer *l = net_layer(net, net_find_layer(net, "conv_7_act"));
    REQUIRE(l);
    CHECK_INT(l->h, 4);
    CHECK_INT(l->c, 128);
    net_free(net);

    /* plain without BN: convs with biases, nothing non-trainable. */
    c.batchnorm = false;
    c.activation = ACT_TANH;
    net = build(c, err, sizeof err);
    REQUIRE(net);
    CHECK_INT(net_count_params(net, false), 0);
    CHECK_INT(net_count_params(net, true), tr - nt / 2); /* bias instead of gamma, beta */
    CHECK_INT(net_n_layers(net), 1 + 8 * 2 + 2);
    CHECK(net_layer(net, net_find_layer(net, "conv_1_act"))->act == ACT_TANH);
    net_free(net);

    /* mlp: 3 dense layers of 100 on a 3·16·16 input, paper head. */
    c = cfg_of("mlp", 16, 10, HEAD_PAPER);
    c.depth = 3;
    c.width = 100;
    c.activation = ACT_SOFTSIGN;
    net = build(c, err, sizeof err);
    REQUIRE(net);
    tr = 768 * 100 + 100 + 2 * (100 * 100 + 100) + paper_head_trainable(100, 10);
    CHECK_INT(net_count_params(net, true), tr);
    CHECK_INT(net_count_params(net, false), 2 * 256);
    CHECK_INT(net_n_layers(net), 1 + 1 + 3 * 2 + 4);
    net_free(net);
}

/* ---- output shapes -------------------------------------------------------------------- */

/* Spatial size after conv1 and after the stride-2 blocks 2, 4, 6, 12 of MobileNet:
 *   224: conv1 same/2 → 112; pad+1, valid 3/2: (113-3)/2+1 = 56 → 28 → 14 → 7
 *    97: conv1 same/2 → ceil(97/2) = 49; (50-3)/2+1 = 24; (25-3)/2+1 = 12;
 *        (13-3)/2+1 = 6; (7-3)/2+1 = 3 */
static int mobilenet_block_size(int size, int block)
{
    static const int s224[5] = {112, 56, 28, 14, 7}, s97[5] = {49, 24, 12, 6, 3};
    const int *t = size == 224 ? s224 : s97;
    int stage = block < 2 ? 0 : block < 4 ? 1 : block < 6 ? 2 : block < 12 ? 3 : 4;
    return t[stage];
}

static void check_shape(const Net *net, const char *name, int h, int c)
{
    int i = net_find_layer(net, name);
    if (i < 0) {
        test_fail(__FILE__, __LINE__, "layer %s missing", name);
        return;
    }
    const Layer *l = net_layer(net, i);
    if (l->h != h || l->w != h || l->c != c)
        test_fail(__FILE__, __LINE__, "%s: (%d, %d, %d), expected (%d, %d, %d)", name, l->h,
                  l->w, l->c, h, h, c);
}

static void check_mobilenet_shapes(int size)
{
    char err[256], n[64];
    Net *net = build(cfg_of("mobilenet", size, 1000, HEAD_KERAS), err, sizeof err);
    REQUIRE(net);
    static const int f[14] = {32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024,
                              1024};
    const char *suffix[] = {"", "_bn", "_relu"};
    for (int k = 0; k < 3; k++) {
        snprintf(n, sizeof n, "conv1%s", suffix[k]);
        check_shape(net, n, mobilenet_block_size(size, 1), 32);
    }
    for (int b = 1; b <= 13; b++) {
        int prev = mobilenet_block_size(size, b - 1), cur = mobilenet_block_size(size, b);
        if (prev != cur) {
            snprintf(n, sizeof n, "conv_pad_%d", b);
            check_shape(net, n, prev + 1, f[b - 1]);
        }
        for (int k = 0; k < 3; k++) {
            snprintf(n, sizeof n, "conv_dw_%d%s", b, suffix[k]);
            check_shape(net, n, cur, f[b - 1]);
            snprintf(n, sizeof n, "conv_pw_%d%s", b, suffix[k]);
            check_shape(net, n, cur, f[b]);
        }
    }
    check_shape(net, "global_average_pooling2d", 1, 1024);
    check_shape(net, "conv_preds", 1, 1000);
    check_shape(net, "reshape_2", 1, 1000);
    CHECK_INT(net_classes(net), 1000);
    net_free(net);
}

TEST(models_mobilenet_shapes_match_keras_at_224_and_97)
{
    check_mobilenet_shapes(224);
    check_mobilenet_shapes(97);
}

/* ResNet spatial sizes (stem: pad 3, valid 7/2; pad 1, valid pool 3/2; 1×1 valid /2):
 *   224: 230 → 112 → 114 → 56 | conv2 56, conv3 (56-1)/2+1 = 28, conv4 14, conv5 7
 *    97: 103 → 49 → 51 → 25 | conv2 25, conv3 13, conv4 7, conv5 4 */
static void check_resnet_shapes(const char *model, int size, const int *blocks, bool bottleneck)
{
    char err[256], n[96];
    Net *net = build(cfg_of(model, size, 1000, HEAD_KERAS), err, sizeof err);
    REQUIRE(net);
    static const int s224[6] = {230, 112, 114, 56}, s97[6] = {103, 49, 51, 25};
    static const int st224[4] = {56, 28, 14, 7}, st97[4] = {25, 13, 7, 4};
    const int *s = size == 224 ? s224 : s97, *st = size == 224 ? st224 : st97;
    check_shape(net, "conv1_pad", s[0], 3);
    check_shape(net, "conv1_conv", s[1], 64);
    check_shape(net, "conv1_bn", s[1], 64);
    check_shape(net, "conv1_relu", s[1], 64);
    check_shape(net, "pool1_pad", s[2], 64);
    check_shape(net, "pool1_pool", s[3], 64);
    for (int stage = 0; stage < 4; stage++) {
        int f = 64 << stage, out = bottleneck ? 4 * f : f;
        for (int b = 1; b <= blocks[stage]; b++) {
            char pre[48];
            snprintf(pre, sizeof pre, "conv%d_block%d", stage + 2, b);
            bool project = b == 1 && (bottleneck || stage > 0);
            const char *parts[] = {"_1_conv", "_1_bn", "_1_relu", "_2_conv", "_2_bn",
                                   "_2_relu", "_3_conv", "_3_bn"};
            int nparts = bottleneck ? 8 : 5;
            for (int k = 0; k < nparts; k++) {
                snprintf(n, sizeof n, "%s%s", pre, parts[k]);
                check_shape(net, n, st[stage], (bottleneck && k >= 6) ? out : f);
            }
            if (!bottleneck) {
                snprintf(n, sizeof n, "%s_2_relu", pre);
                CHECK(net_find_layer(net, n) < 0);
            }
            snprintf(n, sizeof n, "%s_0_conv", pre);
            if (project)
                check_shape(net, n, st[stage], out);
            else
                CHECK(net_find_layer(net, n) < 0);
            snprintf(n, sizeof n, "%s_add", pre);
            check_shape(net, n, st[stage], out);
            snprintf(n, sizeof n, "%s_out", pre);
            check_shape(net, n, st[stage], out);
        }
    }
    check_shape(net, "predictions", 1, 1000);
    net_free(net);
}

TEST(models_resnet_shapes_match_keras_at_224_and_97)
{
    static const int r50[4] = {3, 4, 6, 3}, r18[4] = {2, 2, 2, 2};
    check_resnet_shapes("resnet50", 224, r50, true);
    check_resnet_shapes("resnet50", 97, r50, true);
    check_resnet_shapes("resnet18", 224, r18, false);
    check_resnet_shapes("resnet34", 97, r50, false);
}

/* ---- layer configuration and names ---------------------------------------------------- */

static void check_param(Net *net, const char *name, int ndim, const int *shape, bool trainable)
{
    Param *p = net_find_param(net, name);
    if (!p) {
        test_fail(__FILE__, __LINE__, "parameter %s missing", name);
        return;
    }
    CHECK_INT(p->ndim, ndim);
    for (int d = 0; d < ndim && d < p->ndim; d++)
        if (p->shape[d] != shape[d])
            test_fail(__FILE__, __LINE__, "%s: dim %d is %d, expected %d", name, d, p->shape[d],
                      shape[d]);
    CHECK(p->trainable == trainable);
}

TEST(models_keras_names_layouts_and_bn_settings)
{
    char err[256];
    Net *net = build(cfg_of("mobilenet", 224, 1000, HEAD_KERAS), err, sizeof err);
    REQUIRE(net);
    check_param(net, "conv1/kernel", 4, (int[]){3, 3, 3, 32}, true);
    check_param(net, "conv1_bn/gamma", 1, (int[]){32}, true);
    check_param(net, "conv1_bn/moving_mean", 1, (int[]){32}, false);
    check_param(net, "conv1_bn/moving_variance", 1, (int[]){32}, false);
    check_param(net, "conv_dw_1/depthwise_kernel", 4, (int[]){3, 3, 32, 1}, true);
    check_param(net, "conv_pw_13/kernel", 4, (int[]){1, 1, 1024, 1024}, true);
    check_param(net, "conv_preds/kernel", 4, (int[]){1, 1, 1024, 1000}, true);
    check_param(net, "conv_preds/bias", 1, (int[]){1000}, true);
    CHECK(net_find_param(net, "conv1/bias") == NULL);
    CHECK(net_find_param(net, "conv_dw_1/bias") == NULL);
    const Layer *l = net_layer(net, net_find_layer(net, "conv_dw_2"));
    CHECK(l->padding == PAD_VALID && l->stride == 2);
    l = net_layer(net, net_find_layer(net, "conv_dw_3"));
    CHECK(l->padding == PAD_SAME && l->stride == 1);
    l = net_layer(net, net_find_layer(net, "conv_pad_12"));
    CHECK(l->pad[0] == 0 && l->pad[1] == 1 && l->pad[2] == 0 && l->pad[3] == 1);
    l = net_layer(net, net_find_layer(net, "conv1"));
    CHECK(l->padding == PAD_SAME && l->stride == 2);
    l = net_layer(net, net_find_layer(net, "conv_pw_5_bn"));
    CHECK_NEAR(l->epsilon, 1e-3, 1e-9);
    CHECK_NEAR(l->momentum, 0.99, 1e-7);
    l = net_layer(net, net_find_layer(net, "conv_pw_5_relu"));
    CHECK(l->act == ACT_RELU6);
    l = net_layer(net, net_find_layer(net, "dropout"));
    CHECK_NEAR(l->rate, 1e-3, 1e-9);
    net_free(net);

    net = build(cfg_of("resnet50", 64, 7, HEAD_KERAS), err, sizeof err);
    REQUIRE(net);
    check_param(net, "conv1_conv/kernel", 4, (int[]){7, 7, 3, 64}, true);
    check_param(net, "conv1_conv/bias", 1, (int[]){64}, true);
    check_param(net, "conv3_block1_0_conv/kernel", 4, (int[]){1, 1, 256, 512}, true);
    check_param(net, "conv3_block1_1_conv/kernel", 4, (int[]){1, 1, 256, 128}, true);
    check_param(net, "conv3_block1_2_conv/kernel", 4, (int[]){3, 3, 128, 128}, true);
    check_param(net, "conv5_block3_3_bn/moving_variance", 1, (int[]){2048}, false);
    check_param(net, "predictions/kernel", 2, (int[]){2048, 7}, true);
    l = net_layer(net, net_find_layer(net, "conv3_block1_1_conv"));
    CHECK_INT(l->stride, 2);
    l = net_layer(net, net_find_layer(net, "conv3_block1_0_conv"));
    CHECK_INT(l->stride, 2);
    l = net_layer(net, net_find_layer(net, "conv3_block1_2_conv"));
    CHECK(l->stride == 1 && l->padding == PAD_SAME);
    l = net_layer(net, net_find_layer(net, "conv4_block2_3_bn"));
    CHECK_NEAR(l->epsilon, 1.001e-5, 1e-10);
    l = net_layer(net, net_find_layer(net, "pool1_pool"));
    CHECK(l->type == LAYER_MAXPOOL && l->kh == 3 && l->stride == 2 && l->padding == PAD_VALID);
    l = net_layer(net, net_find_layer(net, "conv2_block2_add"));
    CHECK_STR(net_layer(net, l->in[0])->name, "conv2_block1_out");
    CHECK_STR(net_layer(net, l->in[1])->name, "conv2_block2_3_bn");
    net_free(net);
}

TEST(models_refuse_bad_configs_with_clear_errors)
{
    char err[256] = "";
    ModelConfig c = cfg_of("vgg16", 224, 10, HEAD_PAPER);
    CHECK(model_build(&c, 1, err, sizeof err) == NULL);
    CHECK(strstr(err, "unknown model 'vgg16'") != NULL);
    const char *const *names = model_names();
    for (int i = 0; names[i]; i++) {
        if (strcmp(names[i], "mlp") == 0)
            continue;
        c = cfg_of(names[i], 31, 10, HEAD_PAPER);
        err[0] = '\0';
        CHECK(model_build(&c, 1, err, sizeof err) == NULL);
        CHECK(strstr(err, "31 px") != NULL);
    }
    c = cfg_of("mobilenet", 64, 10, HEAD_PAPER);
    c.alpha = 0.01;
    CHECK(model_build(&c, 1, err, sizeof err) == NULL);
    CHECK(strstr(err, "alpha") != NULL);
    c = cfg_of("mobilenet", 64, 1, HEAD_PAPER);
    CHECK(model_build(&c, 1, err, sizeof err) == NULL);
    CHECK(strstr(err, "classes") != NULL);
    ModelHead h;
    Activation a;
    CHECK(model_head_parse("keras", &h) == 0 && h == HEAD_KERAS);
    CHECK(model_head_parse("top", &h) == -1);
    CHECK(model_activation_parse("softsign", &a) == 0 && a == ACT_SOFTSIGN);
    CHECK(model_activation_parse("gelu", &a) == -1);
    CHECK_STR(model_activation_name(ACT_RELU6), "relu6");
    /* The smallest CNN input works for every CNN. */
    for (int i = 0; names[i]; i++) {
        c = cfg_of(names[i], 32, 10, HEAD_PAPER);
        if (strcmp(names[i], "mobilenet") == 0)
            c.alpha = 0.25;
        if (strncmp(names[i], "resnet", 6) == 0 || strcmp(names[i], "plain") == 0 ||
            strcmp(names[i], "mlp") == 0)
            c.width = 8;
        Net *net = build(c, err, sizeof err);
        CHECK(net != NULL);
        if (net)
            CHECK_INT(net_classes(net), 10);
        net_free(net);
    }
}

/* ---- every model can fit a small random batch ------------------------------------------ */

/* Trains cfg on n random images with balanced random labels (SGD, Nesterov momentum) and
 * returns the first step at which the training-mode forward classified all n correctly,
 * or -1 after max_steps. */
static int steps_to_fit(ModelConfig cfg, Initializer init, float lr, int max_steps)
{
    char err[256];
    enum { n = 8 };
    cfg.batch = n;
    Net *net = model_build(&cfg, 1, err, sizeof err);
    if (!net) {
        test_fail(__FILE__, __LINE__, "model_build(%s): %s", cfg.name, err);
        return -1;
    }
    init_net(net, init, FAN_KERAS, 5);
    net_seed_dropout(net, 6);
    size_t per = (size_t)cfg.size * cfg.size * cfg.channels;
    float *x = malloc(n * per * sizeof *x);
    int labels[n];
    Rng rng;
    rng_seed(&rng, 7);
    for (size_t i = 0; x && i < n * per; i++)
        x[i] = (float)rng_normal(&rng);
    for (int i = 0; i < n; i++)
        labels[i] = i % cfg.classes;
    rng_shuffle_int(&rng, labels, n);
    SgdConfig sgd = {.momentum = 0.9f, .nesterov = true};
    int fitted = -1;
    for (int step = 0; x && step < max_steps && fitted < 0; step++) {
        net_forward(net, x, n, NET_TRAIN);
        const float *logits = net_logits(net);
        int K = net_classes(net), correct = 0;
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int k = 1; k < K; k++)
                if (logits[i * K + k] > logits[i * K + best])
                    best = k;
            correct += best == labels[i];
        }
        if (correct == n) {
            fitted = step;
            break;
        }
        net_loss(net, labels, NULL);
        net_zero_grad(net);
        net_backward(net);
        sgd_step(net, &sgd, lr);
    }
    free(x);
    net_free(net);
    return fitted;
}

static void check_fits(ModelConfig cfg, Initializer init, float lr)
{
    int steps = steps_to_fit(cfg, init, lr, 150);
    if (steps < 0)
        test_fail(__FILE__, __LINE__, "%s (%s head, %d px, width %d, %s) did not reach 100%% "
                  "training accuracy in 150 steps", cfg.name, model_head_name(cfg.head),
                  cfg.size, cfg.width, model_activation_name(cfg.activation));
}

TEST(models_every_model_fits_a_small_random_batch)
{
    ModelConfig c = cfg_of("mobilenet", 32, 4, HEAD_PAPER);
    c.alpha = 0.25;
    check_fits(c, INIT_HE_UNIFORM, 0.05f);
    c.head = HEAD_KERAS;
    check_fits(c, INIT_GLOROT_UNIFORM, 0.05f);

    static const char *resnets[] = {"resnet18", "resnet34", "resnet50"};
    for (int i = 0; i < 3; i++) {
        c = cfg_of(resnets[i], 32, 4, i == 2 ? HEAD_KERAS : HEAD_PAPER);
        c.width = 4;
        check_fits(c, INIT_HE_UNIFORM, 0.05f);
    }

    c = cfg_of("plain", 32, 4, HEAD_PAPER);
    c.depth = 6;
    c.width = 8;
    check_fits(c, INIT_HE_NORMAL, 0.05f);
    c.batchnorm = false;
    c.activation = ACT_TANH;
    c.head = HEAD_KERAS;
    check_fits(c, INIT_GLOROT_UNIFORM, 0.05f);

    static const Activation acts[] = {ACT_RELU, ACT_TANH, ACT_SIGMOID, ACT_SOFTSIGN};
    for (int i = 0; i < 4; i++) {
        c = cfg_of("mlp", 8, 4, i % 2 ? HEAD_KERAS : HEAD_PAPER);
        c.depth = 3;
        c.width = 32;
        c.activation = acts[i];
        check_fits(c, acts[i] == ACT_RELU ? INIT_HE_UNIFORM : INIT_GLOROT_UNIFORM, 0.05f);
    }
}

/* Copies of every layer's out as the forward made them (the observer), to check that
 * sharing buffers never overwrites what is still to be read. */
typedef struct {
    float **copy;
    int batch;
} Snapshots;

static void snapshot_out(void *ctx, const Net *net, int layer, bool backward)
{
    Snapshots *s = ctx;
    if (backward)
        return;
    const Layer *l = net_layer(net, layer);
    memcpy(s->copy[layer], l->out, sizeof(float) * s->batch * l->h * l->w * l->c);
}

static bool out_intact(const Net *net, const Snapshots *s, int i)
{
    const Layer *l = net_layer(net, i);
    return memcmp(s->copy[i], l->out, sizeof(float) * s->batch * l->h * l->w * l->c) == 0;
}

TEST(models_shared_buffers_keep_what_is_still_read)
{
    /* The memory plan shares layer buffers. After the forward every layer net_output_kept
     * names must still hold exactly what it computed, and after the backward the input,
     * the activations and the logits (what the probe reads). The plan must also need far
     * less than one out and one dout per layer: per extra image of batch, at most half of
     * that. */
    const char *names[] = {"mobilenet", "resnet50", "resnet18"};
    for (size_t m = 0; m < sizeof names / sizeof names[0]; m++) {
        ModelConfig c = cfg_of(names[m], 32, 7, HEAD_KERAS);
        c.alpha = 0.25;
        c.batch = 3;
        char err[256];
        Net *net = build(c, err, sizeof err);
        REQUIRE(net);
        init_net(net, INIT_HE_NORMAL, FAN_KERAS, 1);
        const int L = net_n_layers(net);
        Snapshots s = {calloc((size_t)L, sizeof(float *)), 3};
        size_t per_image = 0;
        for (int i = 0; i < L; i++) {
            const Layer *l = net_layer(net, i);
            s.copy[i] = malloc(sizeof(float) * 3 * l->h * l->w * l->c);
            per_image += 2 * sizeof(float) * l->h * l->w * l->c;
        }
        float *x = malloc(sizeof(float) * 3 * 32 * 32 * 3);
        Rng rng;
        rng_seed(&rng, 2);
        for (int i = 0; i < 3 * 32 * 32 * 3; i++)
            x[i] = (float)rng_normal(&rng);
        int labels[3] = {1, 6, 0};
        net_set_observer(net, snapshot_out, &s);
        REQUIRE(net_forward(net, x, 3, NET_TRAIN) == 0);
        net_set_observer(net, NULL, NULL);
        int kept = 0, broken = 0;
        for (int i = 0; i < L; i++)
            if (net_output_kept(net, i)) {
                kept++;
                broken += !out_intact(net, &s, i);
            }
        CHECK_INT(broken, 0);
        CHECK(kept < L); /* some buffers really are shared */
        net_loss(net, labels, NULL);
        net_zero_grad(net);
        net_backward(net);
        for (int i = 0; i < L; i++) {
            const Layer *l = net_layer(net, i);
            if (i == 0 || i == L - 1 || l->type == LAYER_ACTIVATION)
                broken += !out_intact(net, &s, i);
        }
        CHECK_INT(broken, 0);

        c.batch = 6;
        Net *big = build(c, err, sizeof err);
        REQUIRE(big);
        double ratio =
            (double)(net_memory_bytes(big) - net_memory_bytes(net)) / (3.0 * per_image);
        if (ratio > 0.5)
            printf("    %s: the plan needs %.2f of one out and one dout per layer\n", names[m],
                   ratio);
        CHECK(ratio <= 0.5);
        net_free(big);
        for (int i = 0; i < L; i++)
            free(s.copy[i]);
        free(s.copy), free(x);
        net_free(net);
    }
}
