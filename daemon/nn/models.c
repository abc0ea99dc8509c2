/* models.c — builders of the model zoo on top of the net.h graph API (see models.h). */
#include "nn/models.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MOBILENET_EPS 1e-3f
#define RESNET_EPS 1.001e-5f
#define DEFAULT_EPS 1e-3f
#define BN_MOMENTUM 0.99f

static const char *const names[] = {"mobilenet", "resnet50", "resnet18", "resnet34",
                                    "plain", "mlp", NULL};

const char *const *model_names(void)
{
    return names;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

ModelConfig model_config_default(const char *name)
{
    ModelConfig c = {
        .size = 224,
        .channels = 3,
        .classes = 1000,
        .head = HEAD_PAPER,
        .alpha = 1.0,
        .depth_multiplier = 1,
        .dropout = 1e-3,
        .depth = 8,
        .width = 64,
        .activation = ACT_RELU,
        .batchnorm = true,
        .batch = 32,
    };
    snprintf(c.name, sizeof c.name, "%s", name ? name : "");
    if (strcmp(c.name, "plain") == 0) {
        c.size = 32;
        c.classes = 10;
        c.width = 32;
    } else if (strcmp(c.name, "mlp") == 0) {
        c.size = 32;
        c.classes = 10;
        c.depth = 3;
        c.width = 256;
    }
    return c;
}

const char *model_head_name(ModelHead head)
{
    return head == HEAD_KERAS ? "keras" : "paper";
}

int model_head_parse(const char *name, ModelHead *head)
{
    if (strcmp(name, "paper") == 0)
        *head = HEAD_PAPER;
    else if (strcmp(name, "keras") == 0)
        *head = HEAD_KERAS;
    else
        return -1;
    return 0;
}

static const struct { Activation act; const char *name; } activations[] = {
    {ACT_RELU, "relu"}, {ACT_RELU6, "relu6"}, {ACT_TANH, "tanh"},
    {ACT_SIGMOID, "sigmoid"}, {ACT_SOFTSIGN, "softsign"},
};

const char *model_activation_name(Activation act)
{
    for (size_t i = 0; i < sizeof activations / sizeof activations[0]; i++)
        if (activations[i].act == act)
            return activations[i].name;
    return "?";
}

int model_activation_parse(const char *name, Activation *act)
{
    for (size_t i = 0; i < sizeof activations / sizeof activations[0]; i++)
        if (strcmp(activations[i].name, name) == 0) {
            *act = activations[i].act;
            return 0;
        }
    return -1;
}

const char *model_layer_type_name(LayerType type)
{
    switch (type) {
    case LAYER_INPUT: return "input";
    case LAYER_CONV2D: return "conv2d";
    case LAYER_DEPTHWISE: return "depthwise_conv2d";
    case LAYER_ZEROPAD: return "zero_padding2d";
    case LAYER_BATCHNORM: return "batch_normalization";
    case LAYER_ACTIVATION: return "activation";
    case LAYER_ADD: return "add";
    case LAYER_MAXPOOL: return "max_pooling2d";
    case LAYER_AVGPOOL: return "average_pooling2d";
    case LAYER_GAP: return "global_average_pooling2d";
    case LAYER_DENSE: return "dense";
    case LAYER_DROPOUT: return "dropout";
    case LAYER_FLATTEN: return "flatten";
    }
    return "?";
}

/* ---- helpers: one Keras-named call each ------------------------------------------- */

/* Layer name from a format; names longer than the Layer field fail in the builder. */
static const char *nm(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static const char *nm(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return buf;
}

#define NM(...) nm(name, sizeof name, __VA_ARGS__)

/* conv (+ bn) with names "<p>_conv", "<p>_bn" (ResNet style). */
static int conv_bn(Net *net, int x, const char *p, int filters, int k, int stride, float eps)
{
    char name[64];
    /* Keras: 1×1 convs use the default "valid", the 3×3 ones "same". */
    x = net_conv2d(net, x, NM("%s_conv", p), filters, k, k, stride, k == 1 ? PAD_VALID : PAD_SAME,
                   true);
    return net_batchnorm(net, x, NM("%s_bn", p), BN_MOMENTUM, eps);
}

/* ---- MobileNet v1 ----------------------------------------------------------------- */

static int build_mobilenet(Net *net, const ModelConfig *cfg)
{
    static const int filters[14] = {0, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512,
                                    1024, 1024};
    static const int strides[14] = {0, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1};
    char name[64];
    int x = net_conv2d(net, 0, "conv1", (int)(32 * cfg->alpha), 3, 3, 2, PAD_SAME, false);
    x = net_batchnorm(net, x, "conv1_bn", BN_MOMENTUM, MOBILENET_EPS);
    x = net_activation(net, x, "conv1_relu", ACT_RELU6);
    for (int b = 1; b <= 13; b++) {
        Padding pad = PAD_SAME;
        if (strides[b] == 2) {
            x = net_zeropad(net, x, NM("conv_pad_%d", b), 0, 1, 0, 1);
            pad = PAD_VALID;
        }
        x = net_depthwise(net, x, NM("conv_dw_%d", b), 3, 3, strides[b], cfg->depth_multiplier,
                          pad, false);
        x = net_batchnorm(net, x, NM("conv_dw_%d_bn", b), BN_MOMENTUM, MOBILENET_EPS);
        x = net_activation(net, x, NM("conv_dw_%d_relu", b), ACT_RELU6);
        x = net_conv2d(net, x, NM("conv_pw_%d", b), (int)(filters[b] * cfg->alpha), 1, 1, 1,
                       PAD_SAME, false);
        x = net_batchnorm(net, x, NM("conv_pw_%d_bn", b), BN_MOMENTUM, MOBILENET_EPS);
        x = net_activation(net, x, NM("conv_pw_%d_relu", b), ACT_RELU6);
    }
    return x;
}

/* ---- ResNets ---------------------------------------------------------------------- */

static int resnet_stem(Net *net, int filters)
{
    int x = net_zeropad(net, 0, "conv1_pad", 3, 3, 3, 3);
    x = net_conv2d(net, x, "conv1_conv", filters, 7, 7, 2, PAD_VALID, true);
    x = net_batchnorm(net, x, "conv1_bn", BN_MOMENTUM, RESNET_EPS);
    x = net_activation(net, x, "conv1_relu", ACT_RELU);
    x = net_zeropad(net, x, "pool1_pad", 1, 1, 1, 1);
    return net_maxpool(net, x, "pool1_pool", 3, 2, PAD_VALID);
}

/* keras residual_block_v1: 1×1 (strided) → 3×3 → 1×1 ×4, projection when asked. */
static int bottleneck_block(Net *net, int x, const char *p, int filters, int stride, bool project)
{
    char name[64], sub[64];
    int shortcut = x;
    if (project)
        shortcut = conv_bn(net, x, nm(sub, sizeof sub, "%s_0", p), 4 * filters, 1, stride,
                           RESNET_EPS);
    int y = conv_bn(net, x, nm(sub, sizeof sub, "%s_1", p), filters, 1, stride, RESNET_EPS);
    y = net_activation(net, y, NM("%s_1_relu", p), ACT_RELU);
    y = conv_bn(net, y, nm(sub, sizeof sub, "%s_2", p), filters, 3, 1, RESNET_EPS);
    y = net_activation(net, y, NM("%s_2_relu", p), ACT_RELU);
    y = conv_bn(net, y, nm(sub, sizeof sub, "%s_3", p), 4 * filters, 1, 1, RESNET_EPS);
    y = net_add(net, shortcut, y, NM("%s_add", p));
    return net_activation(net, y, NM("%s_out", p), ACT_RELU);
}

/* Basic block: 3×3 (strided) → 3×3, projection when the shape changes. */
static int basic_block(Net *net, int x, const char *p, int filters, int stride, bool project)
{
    char name[64], sub[64];
    int shortcut = x;
    if (project)
        shortcut = conv_bn(net, x, nm(sub, sizeof sub, "%s_0", p), filters, 1, stride,
                           RESNET_EPS);
    int y = conv_bn(net, x, nm(sub, sizeof sub, "%s_1", p), filters, 3, stride, RESNET_EPS);
    y = net_activation(net, y, NM("%s_1_relu", p), ACT_RELU);
    y = conv_bn(net, y, nm(sub, sizeof sub, "%s_2", p), filters, 3, 1, RESNET_EPS);
    y = net_add(net, shortcut, y, NM("%s_add", p));
    return net_activation(net, y, NM("%s_out", p), ACT_RELU);
}

static int build_resnet(Net *net, const ModelConfig *cfg, const int blocks[4], bool bottleneck)
{
    char p[64];
    int in_channels = cfg->width;
    int x = resnet_stem(net, in_channels);
    for (int s = 0; s < 4; s++) {
        int filters = cfg->width << s;
        int out_channels = bottleneck ? 4 * filters : filters;
        for (int b = 1; b <= blocks[s]; b++) {
            int stride = (b == 1 && s > 0) ? 2 : 1;
            bool project = b == 1 && (stride != 1 || in_channels != out_channels);
            nm(p, sizeof p, "conv%d_block%d", s + 2, b);
            x = bottleneck ? bottleneck_block(net, x, p, filters, stride, project)
                           : basic_block(net, x, p, filters, stride, project);
            in_channels = out_channels;
        }
    }
    return x;
}

/* ---- controls --------------------------------------------------------------------- */

static int build_plain(Net *net, const ModelConfig *cfg)
{
    char name[64];
    int stages = cfg->depth < 4 ? cfg->depth : 4;
    int x = 0, stage = 0, filters = cfg->width;
    for (int i = 0; i < cfg->depth; i++) {
        int s = i * stages / cfg->depth, stride = 1;
        if (s != stage) {
            stage = s;
            stride = 2;
            filters *= 2;
        }
        x = net_conv2d(net, x, NM("conv_%d", i + 1), filters, 3, 3, stride, PAD_SAME,
                       !cfg->batchnorm);
        if (cfg->batchnorm)
            x = net_batchnorm(net, x, NM("conv_%d_bn", i + 1), BN_MOMENTUM, DEFAULT_EPS);
        x = net_activation(net, x, NM("conv_%d_act", i + 1), cfg->activation);
    }
    return x;
}

static int build_mlp(Net *net, const ModelConfig *cfg)
{
    char name[64];
    int x = net_flatten(net, 0, "flatten");
    for (int i = 0; i < cfg->depth; i++) {
        x = net_dense(net, x, NM("dense_%d", i + 1), cfg->width, true);
        x = net_activation(net, x, NM("dense_%d_act", i + 1), cfg->activation);
    }
    return x;
}

static int build_head(Net *net, int x, const ModelConfig *cfg, bool is_mobilenet, bool is_mlp)
{
    if (cfg->head == HEAD_KERAS && is_mobilenet) {
        x = net_gap(net, x, "global_average_pooling2d", true);
        x = net_dropout(net, x, "dropout", (float)cfg->dropout);
        x = net_conv2d(net, x, "conv_preds", cfg->classes, 1, 1, 1, PAD_SAME, true);
        return net_flatten(net, x, "reshape_2");
    }
    if (!is_mlp)
        x = net_gap(net, x, "avg_pool", false);
    if (cfg->head == HEAD_PAPER) {
        x = net_dense(net, x, "fc1", MODEL_HEAD_UNITS, true);
        x = net_batchnorm(net, x, "fc1_bn", BN_MOMENTUM, DEFAULT_EPS);
        x = net_activation(net, x, "fc1_relu", ACT_RELU);
    }
    return net_dense(net, x, "predictions", cfg->classes, true);
}

/* ---- entry point ------------------------------------------------------------------ */

static int check_config(const ModelConfig *cfg, bool cnn, char *err, size_t errlen)
{
    const char *m = cfg->name;
    if (cfg->size < (cnn ? MODEL_MIN_CNN_SIZE : 1) || cfg->size > MODEL_MAX_SIZE) {
        set_err(err, errlen, "%s: input size %d px out of range (%d..%d)", m, cfg->size,
                cnn ? MODEL_MIN_CNN_SIZE : 1, MODEL_MAX_SIZE);
        return -1;
    }
    if (cfg->channels < 1 || cfg->channels > 64) {
        set_err(err, errlen, "%s: %d input channels (1..64)", m, cfg->channels);
        return -1;
    }
    if (cfg->classes < 2 || cfg->classes > 100000) {
        set_err(err, errlen, "%s: %d classes (2..100000)", m, cfg->classes);
        return -1;
    }
    if (cfg->batch < 1 || cfg->batch > 65536) {
        set_err(err, errlen, "%s: batch capacity %d (1..65536)", m, cfg->batch);
        return -1;
    }
    if (strcmp(m, "mobilenet") == 0) {
        if (!(cfg->alpha > 0 && cfg->alpha <= 4) || (int)(32 * cfg->alpha) < 1) {
            set_err(err, errlen, "mobilenet: alpha %g out of range (32·alpha >= 1, at most 4)",
                    cfg->alpha);
            return -1;
        }
        if (cfg->depth_multiplier < 1 || cfg->depth_multiplier > 16) {
            set_err(err, errlen, "mobilenet: depth_multiplier %d (1..16)", cfg->depth_multiplier);
            return -1;
        }
        if (!(cfg->dropout >= 0 && cfg->dropout < 1)) {
            set_err(err, errlen, "mobilenet: dropout %g (0 <= rate < 1)", cfg->dropout);
            return -1;
        }
    }
    if (strncmp(m, "resnet", 6) == 0 && (cfg->width < 1 || cfg->width > 1024)) {
        set_err(err, errlen, "%s: width %d (1..1024)", m, cfg->width);
        return -1;
    }
    if (strcmp(m, "plain") == 0 || strcmp(m, "mlp") == 0) {
        if (cfg->depth < 1 || cfg->depth > 1000 || cfg->width < 1 || cfg->width > 65536) {
            set_err(err, errlen, "%s: depth %d (1..1000) or width %d (1..65536) out of range", m,
                    cfg->depth, cfg->width);
            return -1;
        }
        if (strcmp(m, "plain") == 0 && cfg->width > (65536 >> 3)) {
            set_err(err, errlen, "plain: width %d too large (at most 8192)", cfg->width);
            return -1;
        }
    }
    return 0;
}

Net *model_build(const ModelConfig *cfg, int threads, char *err, size_t errlen)
{
    static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3}, r50[4] = {3, 4, 6, 3};
    const char *m = cfg->name;
    bool known = false;
    for (int i = 0; names[i]; i++)
        known |= strcmp(m, names[i]) == 0;
    if (!known) {
        set_err(err, errlen, "unknown model '%s' (mobilenet, resnet50, resnet18, resnet34, "
                "plain, mlp)", m);
        return NULL;
    }
    bool is_mlp = strcmp(m, "mlp") == 0, is_mobilenet = strcmp(m, "mobilenet") == 0;
    if (check_config(cfg, !is_mlp, err, errlen) < 0)
        return NULL;
    if (threads < 1)
        threads = 1;

    Net *net = net_create(m, cfg->batch, cfg->size, cfg->size, cfg->channels);
    if (!net) {
        set_err(err, errlen, "%s: out of memory", m);
        return NULL;
    }
    int x;
    if (is_mobilenet)
        x = build_mobilenet(net, cfg);
    else if (strcmp(m, "resnet50") == 0)
        x = build_resnet(net, cfg, r50, true);
    else if (strcmp(m, "resnet18") == 0)
        x = build_resnet(net, cfg, r18, false);
    else if (strcmp(m, "resnet34") == 0)
        x = build_resnet(net, cfg, r34, false);
    else if (strcmp(m, "plain") == 0)
        x = build_plain(net, cfg);
    else
        x = build_mlp(net, cfg);
    x = build_head(net, x, cfg, is_mobilenet, is_mlp);
    if (x < 0 || net_finalize(net, threads) < 0) {
        const char *why = net_error(net);
        set_err(err, errlen, "%s at %d px: %s", m, cfg->size, why ? why : "cannot build");
        net_free(net);
        return NULL;
    }
    return net;
}
