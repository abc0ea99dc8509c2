/* routes_catalog.c — what can be trained: /models, /models/{name}, /initializers, /presets. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/router.h"
#include "jobs/report.h"
#include "nn/init.h"
#include "nn/models.h"
#include "train/config.h"

static const struct {
    const char *name, *description;
} model_descriptions[] = {
    {"mobilenet", "MobileNet v1 as keras.applications.mobilenet (alpha, depth_multiplier)"},
    {"resnet50", "ResNet-50 v1 as keras.applications.resnet (bottleneck blocks)"},
    {"resnet18", "ResNet-18: the ResNet stem with basic blocks (2, 2, 2, 2)"},
    {"resnet34", "ResNet-34: the ResNet stem with basic blocks (3, 4, 6, 3)"},
    {"plain", "a VGG-style stack of 3x3 convolutions (depth, width, activation, batchnorm)"},
    {"mlp", "dense layers on the flattened image (depth, width, activation)"},
};

static int list_models(ApiRequest *req, ApiReply *reply)
{
    json_t *list = json_array();
    for (size_t i = 0; i < sizeof model_descriptions / sizeof model_descriptions[0]; i++)
        json_array_append_new(list, json_pack("{s:s, s:s}", "name", model_descriptions[i].name,
                                              "description",
                                              model_descriptions[i].description));
    return api_reply_json(reply, 200, json_pack("{s:o}", "models", list));
}

/* A summary builds the whole net (parameters and a batch-1 arena): sizes are capped and
 * one summary is built at a time, so requests cannot exhaust memory. Larger tables come
 * from `initlab summary`. */
#define SUMMARY_MAX_SIZE 512
#define SUMMARY_MAX_CLASSES 10000
static pthread_mutex_t summary_lock = PTHREAD_MUTEX_INITIALIZER;

static int get_model(ApiRequest *req, ApiReply *reply)
{
    const char *name = api_param(req, "name");
    ModelConfig mc = model_config_default(name);
    bool known = false;
    for (const char *const *n = model_names(); *n; n++)
        known |= strcmp(*n, name) == 0;
    if (!known)
        return api_reply_problem(reply, 404, NULL, "no model named \"%.40s\"", name);
    long long size, classes, depth, width;
    const char *head = api_query(req, "head"), *init_text = api_query(req, "init");
    const char *fans_text = api_query(req, "fan_convention"), *alpha = api_query(req, "alpha");
    if (api_query_int(req, reply, "size", mc.size, 8, SUMMARY_MAX_SIZE, &size) < 0 ||
        api_query_int(req, reply, "classes", mc.classes, 2, SUMMARY_MAX_CLASSES, &classes) < 0 ||
        api_query_int(req, reply, "depth", mc.depth, 1, 200, &depth) < 0 ||
        api_query_int(req, reply, "width", mc.width, 1, 4096, &width) < 0)
        return 0;
    mc.size = (int)size;
    mc.classes = (int)classes;
    mc.depth = (int)depth;
    mc.width = (int)width;
    mc.batch = 1;
    Initializer init = INIT_GLOROT_UNIFORM;
    FanConvention fans = FAN_KERAS;
    if (head && model_head_parse(head, &mc.head) < 0)
        return api_reply_problem_field(reply, 400, "head", "must be paper or keras");
    if (init_text && init_parse(init_text, &init) < 0)
        return api_reply_problem_field(reply, 400, "init", "unknown initializer \"%.40s\"",
                                       init_text);
    if (fans_text && fan_convention_parse(fans_text, &fans) < 0)
        return api_reply_problem_field(reply, 400, "fan_convention", "must be keras or pytorch");
    if (alpha) {
        char *end;
        mc.alpha = strtod(alpha, &end);
        if (*end || !(mc.alpha > 0 && mc.alpha <= 4))
            return api_reply_problem_field(reply, 400, "alpha", "must be a number in (0, 4]");
    }
    char err[256];
    pthread_mutex_lock(&summary_lock);
    Net *net = model_build(&mc, 1, err, sizeof err);
    json_t *out = net ? report_model_summary(net, &mc, init, fans, 0) : NULL;
    net_free(net);
    pthread_mutex_unlock(&summary_lock);
    if (!net)
        return api_reply_problem(reply, 400, NULL, "%s", err);
    return api_reply_json(reply, 200, out);
}

static int list_initializers(ApiRequest *req, ApiReply *reply)
{
    static const struct { const char *distribution, *scale; } about[INIT_COUNT] = {
        [INIT_GLOROT_UNIFORM] = {"uniform", "limit = sqrt(6 / (fan_in + fan_out))"},
        [INIT_GLOROT_NORMAL] = {"truncated_normal",
                                "std = sqrt(2 / (fan_in + fan_out)) / 0.8796, truncated at 2 std"},
        [INIT_HE_UNIFORM] = {"uniform", "limit = sqrt(6 / fan_in)"},
        [INIT_HE_NORMAL] = {"truncated_normal", "std = sqrt(2 / fan_in) / 0.8796, truncated at 2 std"},
        [INIT_LECUN_UNIFORM] = {"uniform", "limit = sqrt(3 / fan_in)"},
        [INIT_LECUN_NORMAL] = {"truncated_normal",
                               "std = sqrt(1 / fan_in) / 0.8796, truncated at 2 std"},
        [INIT_VARIANCE_SCALING] = {"init_distribution",
                                   "variance = init_scale / n, n = fan_in, fan_out or their "
                                   "mean by init_mode (Keras VarianceScaling)"},
        [INIT_ORTHOGONAL] = {"orthogonal", "QR of a normal matrix, sign-corrected, times "
                             "init_gain (Keras Orthogonal): variance gain^2 / max(rows, cols)"},
        [INIT_LSUV] = {"orthogonal", "orthogonal start, then each kernel scaled on a training "
                       "batch until its output variance is 1 within lsuv_tol (Mishkin & "
                       "Matas 2016)"},
    };
    json_t *list = json_array();
    for (int i = 0; i < INIT_COUNT; i++)
        json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "name",
                                              init_name((Initializer)i), "distribution",
                                              about[i].distribution, "scale", about[i].scale));
    return api_reply_json(reply, 200, json_pack("{s:o, s:[s, s]}", "initializers", list,
                                                "fan_conventions", "keras", "pytorch"));
}

static json_t *name_list(const char *const *names)
{
    json_t *a = json_array();
    for (int i = 0; a && names[i]; i++)
        json_array_append_new(a, json_string(names[i]));
    return a;
}

static int list_presets(ApiRequest *req, ApiReply *reply)
{
    json_t *presets = json_object();
    for (int i = 0; config_presets[i]; i++) {
        JobConfig cfg;
        ConfigError err;
        if (config_defaults(&cfg, config_presets[i], "mobilenet", &err) == 0)
            json_object_set_new(presets, config_presets[i], config_to_json(&cfg));
    }
    json_t *inits = json_array();
    for (int i = 0; i < INIT_COUNT; i++)
        json_array_append_new(inits, json_string(init_name((Initializer)i)));
    return api_reply_json(reply, 200, json_pack("{s:o, s:o, s:o, s:o}", "presets", presets,
                                                "models", name_list(config_models),
                                                "initializers", inits, "preprocess",
                                                name_list(config_preprocess_modes)));
}

int routes_catalog_register(Router *r)
{
    return router_add(r, "GET", "/api/v1/models", list_models, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/models/{name}", get_model, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/initializers", list_initializers, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/presets", list_presets, NULL) < 0
               ? -1
               : 0;
}
