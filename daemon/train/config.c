/* config.c — job configuration: presets, the key table, validation and JSON (see config.h). */
#include "train/config.h"

#include "nn/optim.h"
#include "util/jsonout.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

const char *const config_presets[] = {"paper", "quick", NULL};
const char *const config_models[] = {"mobilenet", "resnet50", "resnet18", "resnet34",
                                     "plain", "mlp", NULL};
const char *const config_preprocess_modes[] = {"tf", "pixel_mean", "caffe", "torch", "none",
                                               NULL};
static const char *const heads[] = {"paper", "keras", NULL};
static const char *const inits[] = {"glorot_uniform", "glorot_normal", "he_uniform",
                                    "he_normal", "lecun_uniform", "lecun_normal",
                                    "variance_scaling", "orthogonal", "lsuv", NULL};
static const char *const init_modes[] = {"fan_in", "fan_out", "fan_avg", NULL};
static const char *const init_distributions[] = {"truncated_normal", "untruncated_normal",
                                                 "uniform", NULL};
static const char *const fan_conventions[] = {"keras", "pytorch", NULL};
static const char *const crops[] = {"squash", "center", NULL};
static const char *const schedules[] = {"step", "cosine", "constant", NULL};
static const char *const activations[] = {"relu", "relu6", "tanh", "sigmoid", "softsign",
                                          NULL};
static const char *const retentions[] = {"daemon", "all", "best", "none", NULL};

typedef enum { F_INT, F_INT64, F_DOUBLE, F_BOOL, F_ENUM, F_STRING, F_SPECIAL } FieldType;

/* One configuration key: where it lives in JobConfig and which values it accepts. */
typedef struct {
    const char *key;
    FieldType type;
    size_t offset;
    size_t size;              /* F_STRING / F_ENUM: buffer size */
    double min, max;          /* numbers: inclusive range */
    const char *const *names; /* F_ENUM */
} Field;

#define OFF(m) offsetof(JobConfig, m)
#define SZ(m) sizeof(((JobConfig *)0)->m)

static const Field fields[] = {
    {"preset", F_ENUM, OFF(preset), SZ(preset), 0, 0, config_presets},
    {"dataset", F_STRING, OFF(dataset), SZ(dataset), 0, 0, NULL},
    {"model", F_ENUM, OFF(model), SZ(model), 0, 0, config_models},
    {"alpha", F_DOUBLE, OFF(alpha), 0, 0.01, 4, NULL},
    {"depth_multiplier", F_INT, OFF(depth_multiplier), 0, 1, 8, NULL},
    {"dropout", F_DOUBLE, OFF(dropout), 0, 0, 0.99, NULL},
    {"depth", F_INT, OFF(depth), 0, 1, 200, NULL},
    {"width", F_INT, OFF(width), 0, 1, 4096, NULL},
    {"activation", F_ENUM, OFF(activation), SZ(activation), 0, 0, activations},
    {"batchnorm", F_BOOL, OFF(batchnorm), 0, 0, 0, NULL},
    {"head", F_ENUM, OFF(head), SZ(head), 0, 0, heads},
    {"init", F_ENUM, OFF(init), SZ(init), 0, 0, inits},
    {"init_gain", F_DOUBLE, OFF(init_gain), 0, 1e-6, 1e6, NULL},
    {"init_scale", F_DOUBLE, OFF(init_scale), 0, 1e-9, 1e9, NULL},
    {"init_mode", F_ENUM, OFF(init_mode), SZ(init_mode), 0, 0, init_modes},
    {"init_distribution", F_ENUM, OFF(init_distribution), SZ(init_distribution), 0, 0,
     init_distributions},
    {"zero_gamma", F_BOOL, OFF(zero_gamma), 0, 0, 0, NULL},
    {"lsuv_tol", F_DOUBLE, OFF(lsuv_tol), 0, 1e-6, 1, NULL},
    {"lsuv_max_iter", F_INT, OFF(lsuv_max_iter), 0, 1, 100, NULL},
    {"fan_convention", F_ENUM, OFF(fan_convention), SZ(fan_convention), 0, 0, fan_conventions},
    {"seed", F_INT64, OFF(seed), 0, 0, 9007199254740991.0, NULL},
    {"epochs", F_INT, OFF(epochs), 0, 1, 10000, NULL},
    {"batch_size", F_INT, OFF(batch_size), 0, 1, 4096, NULL},
    {"image_size", F_INT, OFF(image_size), 0, 8, 1024, NULL},
    {"preprocess", F_ENUM, OFF(preprocess), SZ(preprocess), 0, 0, config_preprocess_modes},
    {"crop", F_ENUM, OFF(crop), SZ(crop), 0, 0, crops},
    {"lr", F_DOUBLE, OFF(lr), 0, 1e-9, 10, NULL},
    {"schedule", F_ENUM, OFF(schedule), SZ(schedule), 0, 0, schedules},
    {"milestones", F_SPECIAL, 0, 0, 0, 0, NULL},
    {"gamma", F_DOUBLE, OFF(gamma), 0, 1e-6, 1, NULL},
    {"momentum", F_DOUBLE, OFF(momentum), 0, 0, 0.999, NULL},
    {"nesterov", F_BOOL, OFF(nesterov), 0, 0, 0, NULL},
    {"weight_decay", F_DOUBLE, OFF(weight_decay), 0, 0, 0.1, NULL},
    {"decay_all", F_BOOL, OFF(decay_all), 0, 0, 0, NULL},
    {"class_weight", F_SPECIAL, 0, 0, 0, 0, NULL},
    {"flip", F_BOOL, OFF(flip), 0, 0, 0, NULL},
    {"stats_every", F_INT, OFF(stats_every), 0, 1, 10000, NULL},
    {"probe_size", F_INT, OFF(probe_size), 0, 1, 512, NULL},
    {"bn_recalibrate", F_INT, OFF(bn_recalibrate), 0, 0, 100000, NULL},
    {"threads", F_INT, OFF(threads), 0, 1, 256, NULL},
    {"priority", F_INT, OFF(priority), 0, -1000, 1000, NULL},
    {"keep_checkpoints", F_ENUM, OFF(keep_checkpoints), SZ(keep_checkpoints), 0, 0, retentions},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

__attribute__((format(printf, 3, 4)))
static int fail(ConfigError *err, const char *field, const char *fmt, ...)
{
    va_list ap;
    snprintf(err->field, sizeof err->field, "%s", field);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

static int name_index(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

static void list_names(const char *const *names, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? ", " : "", names[i]);
}

static void set_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src);
}

static bool is_resnet(const char *model)
{
    return strncmp(model, "resnet", 6) == 0;
}

int config_defaults(JobConfig *cfg, const char *preset, const char *model, ConfigError *err)
{
    if (name_index(config_presets, preset) < 0) {
        char names[128];
        list_names(config_presets, names, sizeof names);
        return fail(err, "preset", "unknown preset; expected one of: %s", names);
    }
    if (name_index(config_models, model) < 0) {
        char names[128];
        list_names(config_models, names, sizeof names);
        return fail(err, "model", "unknown model; expected one of: %s", names);
    }
    memset(cfg, 0, sizeof *cfg);
    set_str(cfg->preset, sizeof cfg->preset, preset);
    set_str(cfg->model, sizeof cfg->model, model);
    cfg->alpha = 1.0;
    cfg->depth_multiplier = 1;
    cfg->dropout = 1e-3;
    /* depth: plain and mlp; width: plain, mlp and the ResNets (64 = Keras' ResNet). */
    cfg->depth = strcmp(model, "mlp") == 0 ? 3 : 8;
    cfg->width = strcmp(model, "mlp") == 0 ? 256 : is_resnet(model) ? 64 : 32;
    set_str(cfg->activation, sizeof cfg->activation, "relu");
    cfg->batchnorm = true;
    set_str(cfg->head, sizeof cfg->head, "paper");
    set_str(cfg->init, sizeof cfg->init, "glorot_uniform");
    cfg->init_gain = 1.0;
    cfg->init_scale = 1.0;
    set_str(cfg->init_mode, sizeof cfg->init_mode, "fan_in");
    set_str(cfg->init_distribution, sizeof cfg->init_distribution, "truncated_normal");
    cfg->lsuv_tol = 0.1;
    cfg->lsuv_max_iter = 10;
    set_str(cfg->fan_convention, sizeof cfg->fan_convention, "keras");
    set_str(cfg->preprocess, sizeof cfg->preprocess, is_resnet(model) ? "pixel_mean" : "tf");
    set_str(cfg->crop, sizeof cfg->crop, "squash");
    set_str(cfg->class_weight, sizeof cfg->class_weight, "none");
    cfg->momentum = 0.9;
    cfg->nesterov = true;
    cfg->gamma = 0.1;
    cfg->stats_every = 1;
    cfg->probe_size = 32;
    cfg->threads = 1;
    set_str(cfg->keep_checkpoints, sizeof cfg->keep_checkpoints, "daemon");
    if (strcmp(preset, "paper") == 0) {
        cfg->epochs = 100;
        cfg->batch_size = is_resnet(model) ? 32 : 128;
        cfg->image_size = 224;
        cfg->lr = 0.01;
        set_str(cfg->schedule, sizeof cfg->schedule, "step");
        cfg->milestones[0] = 30;
        cfg->milestones[1] = 60;
        cfg->n_milestones = 2;
    } else {
        cfg->epochs = 5;
        cfg->batch_size = 32;
        cfg->image_size = 64;
        cfg->lr = 0.05;
        set_str(cfg->schedule, sizeof cfg->schedule, "cosine");
    }
    return 0;
}

static int set_milestones(JobConfig *cfg, const json_t *v, ConfigError *err)
{
    if (!json_is_array(v))
        return fail(err, "milestones", "must be an array of epoch numbers");
    size_t n = json_array_size(v);
    if (n > CONFIG_MAX_MILESTONES)
        return fail(err, "milestones", "at most %d milestones", CONFIG_MAX_MILESTONES);
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(v, i);
        if (!json_is_integer(m) || json_integer_value(m) < 1 ||
            (i > 0 && json_integer_value(m) <= cfg->milestones[i - 1]))
            return fail(err, "milestones", "must be increasing epoch numbers >= 1");
        cfg->milestones[i] = (int)json_integer_value(m);
    }
    cfg->n_milestones = (int)n;
    return 0;
}

static int set_class_weight(JobConfig *cfg, const json_t *v, ConfigError *err)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "none") != 0 && strcmp(s, "balanced") != 0)
            return fail(err, "class_weight", "must be \"none\", \"balanced\" or a list of "
                        "weights, not \"%.40s\"", s);
        set_str(cfg->class_weight, sizeof cfg->class_weight, s);
        cfg->n_class_weights = 0;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 ||
        json_array_size(v) > CONFIG_MAX_CLASSES)
        return fail(err, "class_weight", "must be \"none\", \"balanced\" or a list of 1 to "
                    "%d weights", CONFIG_MAX_CLASSES);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *w = json_array_get(v, i);
        if (!json_is_number(w) || !(json_number_value(w) >= 0) ||
            !isfinite(json_number_value(w)))
            return fail(err, "class_weight", "weights must be finite numbers >= 0");
        cfg->class_weights[i] = json_number_value(w);
    }
    cfg->n_class_weights = (int)json_array_size(v);
    set_str(cfg->class_weight, sizeof cfg->class_weight, "list");
    return 0;
}

static int set_field(JobConfig *cfg, const Field *f, const json_t *v, ConfigError *err)
{
    char *base = (char *)cfg;
    switch (f->type) {
    case F_INT:
    case F_INT64: {
        if (!json_is_integer(v))
            return fail(err, f->key, "must be an integer");
        json_int_t x = json_integer_value(v);
        if (x < f->min || x > f->max)
            return fail(err, f->key, "must be between %g and %g", f->min, f->max);
        if (f->type == F_INT)
            *(int *)(base + f->offset) = (int)x;
        else
            *(int64_t *)(base + f->offset) = (int64_t)x;
        return 0;
    }
    case F_DOUBLE: {
        if (!json_is_number(v))
            return fail(err, f->key, "must be a number");
        double x = json_number_value(v);
        if (!(x >= f->min && x <= f->max))
            return fail(err, f->key, "must be between %g and %g", f->min, f->max);
        *(double *)(base + f->offset) = x;
        return 0;
    }
    case F_BOOL:
        if (!json_is_boolean(v))
            return fail(err, f->key, "must be true or false");
        *(bool *)(base + f->offset) = json_is_true(v);
        return 0;
    case F_ENUM:
    case F_STRING: {
        if (!json_is_string(v))
            return fail(err, f->key, "must be a string");
        const char *s = json_string_value(v);
        if (f->type == F_ENUM && name_index(f->names, s) < 0) {
            char names[160];
            list_names(f->names, names, sizeof names);
            return fail(err, f->key, "unknown value \"%.40s\"; expected one of: %s", s, names);
        }
        if (strlen(s) == 0 || strlen(s) >= f->size)
            return fail(err, f->key, "must be 1 to %zu characters", f->size - 1);
        set_str(base + f->offset, f->size, s);
        return 0;
    }
    case F_SPECIAL:
        return strcmp(f->key, "milestones") == 0 ? set_milestones(cfg, v, err)
                                                 : set_class_weight(cfg, v, err);
    }
    return -1;
}

static const Field *find_field(const char *key)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (strcmp(fields[i].key, key) == 0)
            return &fields[i];
    return NULL;
}

int config_from_json(const json_t *obj, bool require_dataset, JobConfig *cfg, ConfigError *err)
{
    memset(err, 0, sizeof *err);
    if (!json_is_object(obj))
        return fail(err, "", "the job configuration must be a JSON object");
    const char *preset = "quick", *model = "mobilenet";
    const json_t *p = json_object_get(obj, "preset"), *m = json_object_get(obj, "model");
    if (p) {
        if (!json_is_string(p))
            return fail(err, "preset", "must be a string");
        preset = json_string_value(p);
    }
    if (m) {
        if (!json_is_string(m))
            return fail(err, "model", "must be a string");
        model = json_string_value(m);
    }
    if (config_defaults(cfg, preset, model, err) < 0)
        return -1;

    const json_t *init = json_object_get(obj, "init"), *alias = json_object_get(obj, "initializer");
    if (init && alias && !json_equal((json_t *)init, (json_t *)alias))
        return fail(err, "initializer", "\"init\" and \"initializer\" name the same key and "
                    "disagree; give one");
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        const Field *f = find_field(strcmp(key, "initializer") == 0 ? "init" : key);
        if (!f)
            return fail(err, key, "unknown key \"%s\"", key);
        if (set_field(cfg, f, value, err) < 0) {
            if (f == find_field("init"))
                snprintf(err->field, sizeof err->field, "%s", key);
            return -1;
        }
    }

    if (require_dataset && cfg->dataset[0] == '\0')
        return fail(err, "dataset", "is required");
    if (strcmp(cfg->model, "mlp") != 0 && cfg->image_size < 32)
        return fail(err, "image_size", "must be at least 32 for convolutional models "
                    "(got %d)", cfg->image_size);
    return 0;
}

json_t *config_to_json(const JobConfig *cfg)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    const char *base = (const char *)cfg;
    for (size_t i = 0; i < N_FIELDS; i++) {
        const Field *f = &fields[i];
        json_t *v = NULL;
        switch (f->type) {
        case F_INT: v = json_integer(*(const int *)(base + f->offset)); break;
        case F_INT64: v = json_integer(*(const int64_t *)(base + f->offset)); break;
        case F_DOUBLE: v = json_real(*(const double *)(base + f->offset)); break;
        case F_BOOL: v = json_boolean(*(const bool *)(base + f->offset)); break;
        case F_ENUM:
        case F_STRING: v = json_string(base + f->offset); break;
        case F_SPECIAL:
            if (strcmp(f->key, "milestones") == 0) {
                v = json_array();
                for (int k = 0; v && k < cfg->n_milestones; k++)
                    json_array_append_new(v, json_integer(cfg->milestones[k]));
            } else if (strcmp(cfg->class_weight, "list") == 0) {
                v = json_array();
                for (int k = 0; v && k < cfg->n_class_weights; k++)
                    json_array_append_new(v, json_real(cfg->class_weights[k]));
            } else {
                v = json_string(cfg->class_weight);
            }
            break;
        }
        if (!v || json_object_set_new(o, f->key, v) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

char *config_to_text(const JobConfig *cfg)
{
    json_t *o = config_to_json(cfg);
    char *text = o ? json_text(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return text;
}

int config_field_count(void)
{
    return (int)N_FIELDS;
}

void config_field_info(int i, ConfigFieldInfo *out)
{
    static const char *const types[] = {[F_INT] = "integer", [F_INT64] = "integer",
                                        [F_DOUBLE] = "number", [F_BOOL] = "boolean",
                                        [F_ENUM] = "string", [F_STRING] = "string",
                                        [F_SPECIAL] = "special"};
    const Field *f = &fields[i];
    *out = (ConfigFieldInfo){.key = f->key, .type = types[f->type], .min = f->min,
                             .max = f->max, .names = f->type == F_ENUM ? f->names : NULL};
}

int config_init_spec(const JobConfig *cfg, InitSpec *spec)
{
    Initializer kind;
    if (init_parse(cfg->init, &kind) < 0)
        return -1;
    *spec = init_spec_default(kind);
    spec->gain = cfg->init_gain;
    spec->scale = cfg->init_scale;
    spec->zero_gamma = cfg->zero_gamma;
    if (init_mode_parse(cfg->init_mode, &spec->mode) < 0 ||
        init_distribution_parse(cfg->init_distribution, &spec->distribution) < 0)
        return -1;
    return 0;
}

double config_lr_at(const JobConfig *cfg, int epoch)
{
    LrSchedule s = {.n_milestones = cfg->n_milestones, .gamma = (float)cfg->gamma,
                    .total_epochs = cfg->epochs};
    if (lr_schedule_parse(cfg->schedule, &s.kind) < 0)
        s.kind = LR_CONSTANT;
    memcpy(s.milestones, cfg->milestones, sizeof(int) * (size_t)cfg->n_milestones);
    return num_float_decimal(lr_schedule_at(&s, epoch, (float)cfg->lr));
}
