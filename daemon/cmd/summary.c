/* summary.c — `initlab summary`: the Keras-style layer table of a model, optionally its initial weights. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/modelopt.h"
#include "nn/init.h"
#include "nn/models.h"
#include "nn/net.h"
#include "train/weights.h"

static const char usage_head[] =
    "usage: initlab summary --model M [--size S] [--classes K] [--head H] [--init I]\n"
    "                       [--fan-convention C] [--seed N] [model options] [--json]\n"
    "                       [--save-weights FILE]\n\n"
    "Prints the layers of a model as Keras' model.summary() does: name, type, output shape,\n"
    "parameter count, and for each kernel its fans and the initializer's uniform limit or\n"
    "normal std (before truncation); totals split into trainable and non-trainable\n"
    "(batch-norm moving mean and variance are non-trainable, as in Keras). The layer count\n"
    "includes the input layer.\n\n"
    "model options:\n";

static const char usage_tail[] =
    "\nother options:\n"
    "  --init I               glorot_uniform (default), glorot_normal, he_uniform,\n"
    "                         he_normal, lecun_uniform, lecun_normal\n"
    "  --fan-convention C     keras (default) or pytorch (differs for depthwise kernels)\n"
    "  --seed N               seed of the initial weights (default 1)\n"
    "  --json                 one JSON object on stdout instead of the table\n"
    "  --save-weights FILE    initialize the net and write every parameter and batch-norm\n"
    "                         statistic to FILE (safetensors, F32)\n\n"
    "Weights file: tensor names are Keras weight names '<layer>/<kind>', kind one of kernel,\n"
    "depthwise_kernel, bias, gamma, beta, moving_mean, moving_variance (conv1/kernel,\n"
    "conv1_bn/moving_mean, conv2_block1_0_conv/bias, predictions/kernel), in layer order.\n"
    "Layouts are Keras': conv kernel (kh, kw, in, out), depthwise kernel (kh, kw, C, m),\n"
    "dense kernel (in, out), the rest (C). Metadata: model, size, channels, classes, head,\n"
    "init, fan_convention, seed, the model's options and layout = keras.\n";

static void usage(FILE *out)
{
    fputs(usage_head, out);
    fputs(modelopt_help, out);
    fputs(usage_tail, out);
}

/* Keras prints (None, C) after a layer that flattens; flat[i] tells for each layer. */
static bool layer_is_flat(const Layer *l, const bool *flat)
{
    switch (l->type) {
    case LAYER_DENSE:
    case LAYER_FLATTEN:
        return true;
    case LAYER_GAP:
        return !l->keepdims;
    case LAYER_BATCHNORM:
    case LAYER_ACTIVATION:
    case LAYER_DROPOUT:
    case LAYER_ADD:
        return flat[l->in[0]];
    default:
        return false;
    }
}

typedef struct {
    size_t params, trainable;
    int fan_in, fan_out;   /* -1 when the layer has no kernel */
    double scale;
    bool uniform;
} LayerInfo;

static LayerInfo layer_info(const Net *net, const Layer *l, Initializer init, FanConvention conv)
{
    LayerInfo r = {.fan_in = -1, .fan_out = -1};
    for (int k = 0; k < l->n_params; k++) {
        const Param *p = net_param_const(net, l->param_first + k);
        r.params += p->size;
        if (p->trainable)
            r.trainable += p->size;
        if ((p->kind == PARAM_KERNEL || p->kind == PARAM_DEPTHWISE_KERNEL) &&
            init_fans(p, conv, &r.fan_in, &r.fan_out) == 0)
            r.scale = init_scale(init, r.fan_in, r.fan_out, &r.uniform);
    }
    return r;
}

static void group_digits(size_t v, char *buf, size_t size)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%zu", v);
    size_t n = strlen(raw), o = 0;
    for (size_t i = 0; i < n && o + 2 < size; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
}

static void shape_text(const Layer *l, bool flat, char *buf, size_t size)
{
    if (flat)
        snprintf(buf, size, "(None, %d)", l->c);
    else
        snprintf(buf, size, "(None, %d, %d, %d)", l->h, l->w, l->c);
}

static int print_table(const Net *net, const ModelConfig *cfg, Initializer init,
                       FanConvention conv, unsigned long long seed, const bool *flat)
{
    printf("Model: \"%s\"  input %dx%dx%d, %d classes, head %s, init %s, fans %s, seed %llu\n",
           cfg->name, cfg->size, cfg->size, cfg->channels, cfg->classes,
           model_head_name(cfg->head), init_name(init), fan_convention_name(conv), seed);
    printf("%-44s %-22s %12s %8s %8s  %s\n", "Layer (type)", "Output shape", "Params", "fan_in",
           "fan_out", "initializer");
    for (int i = 0; i < 110; i++)
        putchar('=');
    putchar('\n');
    for (int i = 0; i < net_n_layers(net); i++) {
        const Layer *l = net_layer(net, i);
        LayerInfo r = layer_info(net, l, init, conv);
        char label[160], shape[48], count[32];
        snprintf(label, sizeof label, "%s (%s)", l->name, model_layer_type_name(l->type));
        shape_text(l, flat[i], shape, sizeof shape);
        group_digits(r.params, count, sizeof count);
        printf("%-44s %-22s %12s", label, shape, count);
        if (r.fan_in >= 0)
            printf(" %8d %8d  %s %.4f", r.fan_in, r.fan_out, r.uniform ? "limit" : "std",
                   r.scale);
        putchar('\n');
    }
    for (int i = 0; i < 110; i++)
        putchar('=');
    putchar('\n');
    char a[32], b[32], c[32];
    group_digits(net_count_params(net, true) + net_count_params(net, false), a, sizeof a);
    group_digits(net_count_params(net, true), b, sizeof b);
    group_digits(net_count_params(net, false), c, sizeof c);
    printf("Total params: %s\nTrainable params: %s\nNon-trainable params: %s\n", a, b, c);
    printf("Layers: %d (including the input)\n", net_n_layers(net));
    return 0;
}

static int print_json(const Net *net, const ModelConfig *cfg, Initializer init,
                      FanConvention conv, unsigned long long seed, const bool *flat)
{
    json_t *layers = json_array(); /* new */
    if (!layers)
        return -1;
    for (int i = 0; i < net_n_layers(net); i++) {
        const Layer *l = net_layer(net, i);
        LayerInfo r = layer_info(net, l, init, conv);
        json_t *shape = flat[i] ? json_pack("[i]", l->c) : json_pack("[i, i, i]", l->h, l->w, l->c);
        json_t *o = json_pack("{s:s, s:s, s:o, s:I, s:I, s:I}", "name", l->name, "type",
                              model_layer_type_name(l->type), "output_shape", shape, "params",
                              (json_int_t)r.params, "trainable_params", (json_int_t)r.trainable,
                              "non_trainable_params", (json_int_t)(r.params - r.trainable));
        if (!o) {
            json_decref(layers);
            return -1;
        }
        if (r.fan_in >= 0) {
            json_object_set_new(o, "fan_in", json_integer(r.fan_in));
            json_object_set_new(o, "fan_out", json_integer(r.fan_out));
            json_object_set_new(o, r.uniform ? "init_limit" : "init_std", json_real(r.scale));
            json_object_set_new(o, "init_variance",
                                json_real(init_variance(init, r.fan_in, r.fan_out)));
        }
        json_array_append_new(layers, o);
    }
    size_t tr = net_count_params(net, true), nt = net_count_params(net, false);
    json_t *root = json_pack(
        "{s:s, s:i, s:i, s:i, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:o}", "model", cfg->name,
        "size", cfg->size, "channels", cfg->channels, "classes", cfg->classes, "head",
        model_head_name(cfg->head), "init", init_name(init), "fan_convention",
        fan_convention_name(conv), "seed", (json_int_t)seed, "total_params",
        (json_int_t)(tr + nt), "trainable_params", (json_int_t)tr, "non_trainable_params",
        (json_int_t)nt, "n_layers", net_n_layers(net), "layers", layers);
    if (!root)
        return -1;
    char *text = json_dumps(root, JSON_INDENT(1));
    json_decref(root);
    if (!text)
        return -1;
    puts(text);
    free(text);
    return 0;
}

/* Writes the initialized weights; metadata records how to rebuild the net. */
static int save_weights(const Net *net, const ModelConfig *cfg, Initializer init,
                        FanConvention conv, unsigned long long seed, const char *path)
{
    char size[16], channels[16], classes[16], seed_s[32], alpha[32], dm[16], dropout[32],
        depth[16], width[16], err[512];
    snprintf(size, sizeof size, "%d", cfg->size);
    snprintf(channels, sizeof channels, "%d", cfg->channels);
    snprintf(classes, sizeof classes, "%d", cfg->classes);
    snprintf(seed_s, sizeof seed_s, "%llu", seed);
    snprintf(alpha, sizeof alpha, "%.17g", cfg->alpha);
    snprintf(dm, sizeof dm, "%d", cfg->depth_multiplier);
    snprintf(dropout, sizeof dropout, "%.17g", cfg->dropout);
    snprintf(depth, sizeof depth, "%d", cfg->depth);
    snprintf(width, sizeof width, "%d", cfg->width);
    const char *meta[] = {"model", cfg->name, "size", size, "channels", channels, "classes",
                          classes, "head", model_head_name(cfg->head), "init", init_name(init),
                          "fan_convention", fan_convention_name(conv), "seed", seed_s,
                          "alpha", alpha, "depth_multiplier", dm, "dropout", dropout,
                          "depth", depth, "width", width,
                          "activation", model_activation_name(cfg->activation),
                          "batchnorm", cfg->batchnorm ? "on" : "off", NULL};
    if (weights_save_safetensors(net, path, meta, err, sizeof err) < 0) {
        fprintf(stderr, "initlab summary: %s\n", err);
        return -1;
    }
    return 0;
}

static int cmd_summary(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    char err[512];
    int status = 2;
    bool *used = calloc((size_t)argc, sizeof *used);
    Net *net = NULL;
    bool *flat = NULL;
    if (!used)
        return 1;
    ModelConfig cfg;
    Initializer init = INIT_GLOROT_UNIFORM;
    FanConvention conv = FAN_KERAS;
    unsigned long long seed = 1;
    bool json = false;
    const char *save = NULL;
    if (modelopt_parse(argc, argv, &cfg, used, err, sizeof err) < 0)
        goto usage_error;
    cfg.batch = 1;
    for (int i = 1; i < argc; i++) {
        if (used[i])
            continue;
        const char *v;
        int r;
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if ((r = cmdarg_value(argc, argv, &i, "--init", &v, err, sizeof err)) != 0) {
            if (r < 0)
                goto usage_error;
            if (init_parse(v, &init) < 0) {
                snprintf(err, sizeof err, "--init: unknown initializer '%s'", v);
                goto usage_error;
            }
        } else if ((r = cmdarg_value(argc, argv, &i, "--fan-convention", &v, err, sizeof err))) {
            if (r < 0)
                goto usage_error;
            if (fan_convention_parse(v, &conv) < 0) {
                snprintf(err, sizeof err, "--fan-convention: '%s' is not keras or pytorch", v);
                goto usage_error;
            }
        } else if ((r = cmdarg_value(argc, argv, &i, "--seed", &v, err, sizeof err)) != 0) {
            char *end;
            if (r < 0)
                goto usage_error;
            seed = strtoull(v, &end, 10);
            if (end == v || *end || v[0] == '-') {
                snprintf(err, sizeof err, "--seed: '%s' is not a non-negative integer", v);
                goto usage_error;
            }
        } else if ((r = cmdarg_value(argc, argv, &i, "--save-weights", &v, err, sizeof err))) {
            if (r < 0)
                goto usage_error;
            save = v;
        } else {
            snprintf(err, sizeof err, "unknown option '%s'", argv[i]);
            goto usage_error;
        }
    }

    status = 1;
    net = model_build(&cfg, 1, err, sizeof err);
    if (!net) {
        fprintf(stderr, "initlab summary: %s\n", err);
        goto done;
    }
    flat = calloc((size_t)net_n_layers(net), sizeof *flat);
    if (!flat)
        goto done;
    for (int i = 0; i < net_n_layers(net); i++)
        flat[i] = layer_is_flat(net_layer(net, i), flat);
    if (save) {
        init_net(net, init, conv, seed);
        if (save_weights(net, &cfg, init, conv, seed, save) < 0)
            goto done;
    }
    if ((json ? print_json : print_table)(net, &cfg, init, conv, seed, flat) < 0) {
        fprintf(stderr, "initlab summary: out of memory\n");
        goto done;
    }
    status = 0;
    goto done;

usage_error:
    fprintf(stderr, "initlab summary: %s (see 'initlab summary --help')\n", err);
done:
    free(flat);
    net_free(net);
    free(used);
    return status;
}

COMMAND(summary, "summary", cmd_summary, 40, "summary --model M [--json]",
        "layer table of a model; its initial weights as safetensors")
