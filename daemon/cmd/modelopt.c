/* modelopt.c — parsing of the model options shared by summary and bench (see modelopt.h). */
#include "cmd/modelopt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char modelopt_help[] =
    "  --model M              mobilenet, resnet50, resnet18, resnet34, plain, mlp (required)\n"
    "  --size S               input height = width in px (default 224; plain, mlp 32;\n"
    "                         at least 32 for the CNNs)\n"
    "  --classes K            classes (default 1000; plain, mlp 10)\n"
    "  --head H               paper (GAP, Dense 256, BN, ReLU, Dense K; default) or keras\n"
    "                         (the Keras application's own top)\n"
    "  --alpha A              mobilenet width multiplier (default 1.0)\n"
    "  --depth-multiplier M   mobilenet depthwise multiplier (default 1)\n"
    "  --dropout R            mobilenet keras-head dropout rate (default 0.001)\n"
    "  --depth D              plain: 3x3 conv layers (default 8); mlp: dense layers (3)\n"
    "  --width W              plain: first-stage filters (32); mlp: units (256);\n"
    "                         resnets: stem and first-stage filters (64 = Keras)\n"
    "  --activation A         plain, mlp: relu, relu6, tanh, sigmoid, softsign (relu)\n"
    "  --batchnorm on|off     plain: batch norm after each conv (on)\n"
    "  --channels C           input channels (default 3)\n";

int cmdarg_value(int argc, char **argv, int *i, const char *name, const char **value, char *err,
                 size_t errlen)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        snprintf(err, errlen, "%s needs a value", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int cmdarg_int(const char *opt, const char *text, long lo, long hi, long *out, char *err,
               size_t errlen)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        snprintf(err, errlen, "%s: '%s' is not an integer in %ld..%ld", opt, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cmdarg_double(const char *opt, const char *text, double lo, double hi, double *out, char *err,
                  size_t errlen)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < lo || v > hi) {
        snprintf(err, errlen, "%s: '%s' is not a number in %g..%g", opt, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int modelopt_parse(int argc, char **argv, ModelConfig *cfg, bool *used, char *err, size_t errlen)
{
    const char *model = NULL, *v;
    for (int i = 1; i < argc; i++) {
        int j = i, r = cmdarg_value(argc, argv, &j, "--model", &v, err, errlen);
        if (r < 0)
            return -1;
        if (r == 1) {
            model = v;
            for (int k = i; k <= j; k++)
                used[k] = true;
            i = j;
        }
    }
    if (!model) {
        snprintf(err, errlen, "--model is required");
        return -1;
    }
    bool known = false;
    for (const char *const *n = model_names(); *n; n++)
        known |= strcmp(*n, model) == 0;
    if (!known) {
        snprintf(err, errlen, "--model: unknown model '%s' (mobilenet, resnet50, resnet18, "
                 "resnet34, plain, mlp)", model);
        return -1;
    }
    *cfg = model_config_default(model);
    for (int i = 1; i < argc; i++) {
        if (used[i])
            continue;
        int j = i;
        long n;
        double d;
        int r;
#define OPT(name) ((r = cmdarg_value(argc, argv, &j, name, &v, err, errlen)) != 0)
        if (OPT("--size")) {
            if (r < 0 || cmdarg_int("--size", v, 1, MODEL_MAX_SIZE, &n, err, errlen) < 0)
                return -1;
            cfg->size = (int)n;
        } else if (OPT("--classes")) {
            if (r < 0 || cmdarg_int("--classes", v, 2, 100000, &n, err, errlen) < 0)
                return -1;
            cfg->classes = (int)n;
        } else if (OPT("--head")) {
            if (r < 0)
                return -1;
            if (model_head_parse(v, &cfg->head) < 0) {
                snprintf(err, errlen, "--head: '%s' is not paper or keras", v);
                return -1;
            }
        } else if (OPT("--alpha")) {
            if (r < 0 || cmdarg_double("--alpha", v, 1e-3, 4, &d, err, errlen) < 0)
                return -1;
            cfg->alpha = d;
        } else if (OPT("--depth-multiplier")) {
            if (r < 0 || cmdarg_int("--depth-multiplier", v, 1, 16, &n, err, errlen) < 0)
                return -1;
            cfg->depth_multiplier = (int)n;
        } else if (OPT("--dropout")) {
            if (r < 0 || cmdarg_double("--dropout", v, 0, 0.999, &d, err, errlen) < 0)
                return -1;
            cfg->dropout = d;
        } else if (OPT("--depth")) {
            if (r < 0 || cmdarg_int("--depth", v, 1, 1000, &n, err, errlen) < 0)
                return -1;
            cfg->depth = (int)n;
        } else if (OPT("--width")) {
            if (r < 0 || cmdarg_int("--width", v, 1, 65536, &n, err, errlen) < 0)
                return -1;
            cfg->width = (int)n;
        } else if (OPT("--activation")) {
            if (r < 0)
                return -1;
            if (model_activation_parse(v, &cfg->activation) < 0) {
                snprintf(err, errlen, "--activation: '%s' is not relu, relu6, tanh, sigmoid "
                         "or softsign", v);
                return -1;
            }
        } else if (OPT("--batchnorm")) {
            if (r < 0)
                return -1;
            if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
                snprintf(err, errlen, "--batchnorm: '%s' is not on or off", v);
                return -1;
            }
            cfg->batchnorm = strcmp(v, "on") == 0;
        } else if (OPT("--channels")) {
            if (r < 0 || cmdarg_int("--channels", v, 1, 64, &n, err, errlen) < 0)
                return -1;
            cfg->channels = (int)n;
        } else {
            continue;
        }
#undef OPT
        for (int k = i; k <= j; k++)
            used[k] = true;
        i = j;
    }
    return 0;
}
