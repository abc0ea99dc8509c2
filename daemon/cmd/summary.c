/* summary.c — `initlab summary`: the Keras-style layer table of a model, optionally its initial weights. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/modelopt.h"
#include "jobs/report.h"
#include "nn/init.h"
#include "nn/models.h"
#include "nn/net.h"
#include "train/lsuv.h"
#include "train/weights.h"
#include "util/rng.h"
#include "util/jsonout.h"

static const char usage_head[] =
    "usage: initlab summary --model M [--size S] [--classes K] [--head H] [--init I]\n"
    "                       [--init-gain G] [--init-scale S --init-mode M\n"
    "                       --init-distribution D] [--zero-gamma] [--fan-convention C]\n"
    "                       [--seed N] [model options] [--json] [--save-weights FILE]\n\n"
    "Prints the layers of a model as Keras' model.summary() does: name, type, output shape,\n"
    "parameter count, and for each kernel its fans and the initializer's uniform limit or\n"
    "normal std (before truncation); totals split into trainable and non-trainable\n"
    "(batch-norm moving mean and variance are non-trainable, as in Keras). The layer count\n"
    "includes the input layer.\n\n"
    "model options:\n";

static const char usage_tail[] =
    "\nother options:\n"
    "  --init I               glorot_uniform (default), glorot_normal, he_uniform,\n"
    "                         he_normal, lecun_uniform, lecun_normal, variance_scaling,\n"
    "                         orthogonal, lsuv (its table shows the orthogonal start; LSUV\n"
    "                         scales each kernel on data when a job starts, and\n"
    "                         --save-weights runs it on 32 random images)\n"
    "  --init-gain G          every kernel times G (orthogonal: Keras' gain; default 1)\n"
    "  --init-scale S, --init-mode fan_in|fan_out|fan_avg,\n"
    "  --init-distribution truncated_normal|untruncated_normal|uniform\n"
    "                         variance_scaling's parameters (1, fan_in, truncated_normal)\n"
    "  --zero-gamma           γ = 0 in the batch norm ending each residual branch\n"
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

static void group_digits(json_int_t v, char *buf, size_t size)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)v);
    size_t n = strlen(raw), o = 0;
    for (size_t i = 0; i < n && o + 2 < size; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
}

static json_int_t member_int(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* The table of `initlab summary`, from the same JSON as --json and GET /api/v1/models/M. */
static void print_table(const json_t *summary)
{
    printf("Model: \"%s\"  input %lldx%lldx%lld, %lld classes, head %s, init %s, fans %s, "
           "seed %lld\n", json_string_value(json_object_get(summary, "model")),
           member_int(summary, "size"), member_int(summary, "size"),
           member_int(summary, "channels"), member_int(summary, "classes"),
           json_string_value(json_object_get(summary, "head")),
           json_string_value(json_object_get(summary, "init")),
           json_string_value(json_object_get(summary, "fan_convention")),
           member_int(summary, "seed"));
    printf("%-44s %-22s %12s %8s %8s  %s\n", "Layer (type)", "Output shape", "Params", "fan_in",
           "fan_out", "initializer");
    for (int i = 0; i < 110; i++)
        putchar('=');
    putchar('\n');
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(summary, "layers"), i, l) {
        char label[160], shape[48], count[32];
        snprintf(label, sizeof label, "%s (%s)", json_string_value(json_object_get(l, "name")),
                 json_string_value(json_object_get(l, "type")));
        json_t *dims = json_object_get(l, "output_shape");
        if (json_array_size(dims) == 1)
            snprintf(shape, sizeof shape, "(None, %lld)",
                     (long long)json_integer_value(json_array_get(dims, 0)));
        else
            snprintf(shape, sizeof shape, "(None, %lld, %lld, %lld)",
                     (long long)json_integer_value(json_array_get(dims, 0)),
                     (long long)json_integer_value(json_array_get(dims, 1)),
                     (long long)json_integer_value(json_array_get(dims, 2)));
        group_digits(member_int(l, "params"), count, sizeof count);
        printf("%-44s %-22s %12s", label, shape, count);
        json_t *limit = json_object_get(l, "init_limit"), *std = json_object_get(l, "init_std");
        if (json_object_get(l, "fan_in") && (limit || std))
            printf(" %8lld %8lld  %s %.4f", member_int(l, "fan_in"), member_int(l, "fan_out"),
                   limit ? "limit" : "std", json_number_value(limit ? limit : std));
        else if (json_object_get(l, "fan_in"))
            printf(" %8lld %8lld  variance %.4g", member_int(l, "fan_in"),
                   member_int(l, "fan_out"),
                   json_number_value(json_object_get(l, "init_variance")));
        putchar('\n');
    }
    for (int k = 0; k < 110; k++)
        putchar('=');
    putchar('\n');
    char a[32], b[32], c[32];
    group_digits(member_int(summary, "total_params"), a, sizeof a);
    group_digits(member_int(summary, "trainable_params"), b, sizeof b);
    group_digits(member_int(summary, "non_trainable_params"), c, sizeof c);
    printf("Total params: %s\nTrainable params: %s\nNon-trainable params: %s\n", a, b, c);
    printf("Layers: %lld (including the input)\n", member_int(summary, "n_layers"));
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

/* LSUV on 32 seeded random images (pixels uniform in [-1, 1], the tf preprocessing of
 * uniform bytes); the net is rebuilt with room for them. gain multiplies the result. */
static int lsuv_on_random_images(Net *net, const ModelConfig *cfg, unsigned long long seed,
                                 double gain)
{
    enum { N = 32 };
    ModelConfig big = *cfg;
    big.batch = N;
    char err[256];
    Net *work = model_build(&big, 1, err, sizeof err);
    size_t count = (size_t)N * cfg->size * cfg->size * cfg->channels;
    float *x = malloc(sizeof(float) * count);
    int rc = -1;
    if (!work || !x)
        goto out;
    for (int i = 0; i < net_n_params(net); i++)
        memcpy(net_param(work, i)->data, net_param(net, i)->data,
               sizeof(float) * net_param(net, i)->size);
    Rng rng;
    rng_seed(&rng, seed);
    for (size_t k = 0; k < count; k++)
        x[k] = (float)(2.0 * rng_uniform(&rng) - 1.0);
    LsuvConfig lc = {.tol = 0.1, .max_iter = 10};
    if (lsuv_run(work, x, N, &lc, NULL) < 0)
        goto out;
    for (int i = 0; i < net_n_params(net); i++) {
        Param *p = net_param(net, i);
        const Param *q = net_param(work, i);
        bool kernel = p->kind == PARAM_KERNEL || p->kind == PARAM_DEPTHWISE_KERNEL;
        for (size_t k = 0; k < p->size; k++)
            p->data[k] = kernel ? (float)(gain * q->data[k]) : q->data[k];
    }
    rc = 0;
out:
    net_free(work);
    free(x);
    return rc;
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
    json_t *summary = NULL;
    if (!used)
        return 1;
    ModelConfig cfg;
    Initializer init = INIT_GLOROT_UNIFORM;
    FanConvention conv = FAN_KERAS;
    unsigned long long seed = 1;
    bool json = false, spec_zero_gamma = false;
    double gain = 1, scale = 1;
    InitMode mode = INIT_MODE_FAN_IN;
    InitDistribution dist = INIT_DIST_TRUNCATED_NORMAL;
    const char *save = NULL;
    if (modelopt_parse(argc, argv, &cfg, used, err, sizeof err) < 0)
        goto usage_error;
    cfg.batch = 1;
    for (int i = 1; i < argc; i++) {
        if (used[i])
            continue;
        const char *v = NULL, *w = NULL;
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
        } else if (strcmp(argv[i], "--zero-gamma") == 0) {
            spec_zero_gamma = true;
        } else if ((r = cmdarg_value(argc, argv, &i, "--init-gain", &v, err, sizeof err)) ||
                   (r = cmdarg_value(argc, argv, &i, "--init-scale", &w, err, sizeof err))) {
            if (r < 0)
                goto usage_error;
            const char *text = v ? v : w;
            char *end;
            double x = strtod(text, &end);
            if (end == text || *end || !(x > 0) || !isfinite(x)) {
                snprintf(err, sizeof err, "%s: '%s' is not a number > 0",
                         v ? "--init-gain" : "--init-scale", text);
                goto usage_error;
            }
            *(v ? &gain : &scale) = x;
            v = w = NULL;
        } else if ((r = cmdarg_value(argc, argv, &i, "--init-mode", &v, err, sizeof err))) {
            if (r < 0)
                goto usage_error;
            if (init_mode_parse(v, &mode) < 0) {
                snprintf(err, sizeof err, "--init-mode: '%s' is not fan_in, fan_out or fan_avg",
                         v);
                goto usage_error;
            }
            v = NULL;
        } else if ((r = cmdarg_value(argc, argv, &i, "--init-distribution", &v, err,
                                     sizeof err))) {
            if (r < 0)
                goto usage_error;
            if (init_distribution_parse(v, &dist) < 0) {
                snprintf(err, sizeof err, "--init-distribution: '%s' is not truncated_normal, "
                         "untruncated_normal or uniform", v);
                goto usage_error;
            }
            v = NULL;
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
    InitSpec spec = init_spec_default(init);
    spec.gain = gain, spec.scale = scale, spec.mode = mode, spec.distribution = dist;
    spec.zero_gamma = spec_zero_gamma;
    if (save) {
        if (init_net_spec(net, &spec, conv, seed) < 0 ||
            (init == INIT_LSUV && lsuv_on_random_images(net, &cfg, seed, gain) < 0)) {
            fprintf(stderr, "initlab summary: out of memory\n");
            goto done;
        }
        if (save_weights(net, &cfg, init, conv, seed, save) < 0)
            goto done;
    }
    summary = report_model_summary_spec(net, &cfg, &spec, conv, seed);
    if (!summary) {
        fprintf(stderr, "initlab summary: out of memory\n");
        goto done;
    }
    if (json) {
        char *text = json_text(summary, JSON_INDENT(1));
        if (!text)
            goto done;
        puts(text);
        free(text);
    } else {
        print_table(summary);
    }
    status = 0;
    goto done;

usage_error:
    fprintf(stderr, "initlab summary: %s (see 'initlab summary --help')\n", err);
done:
    json_decref(summary);
    net_free(net);
    free(used);
    return status;
}

COMMAND(summary, "summary", cmd_summary, 40, "summary --model M [--json]",
        "layer table of a model; its initial weights as safetensors")
