/* test_openapi.c — the OpenAPI document against the table the daemon validates job
 * configurations with (train/config.c): every key with its type, enumeration, limits and
 * default, so that the document cannot drift from the server again. */
#include <jansson.h>
#include <string.h>

#include "api/api.h"
#include "test.h"
#include "train/config.h"

/* Keys whose default the API fills in from the daemon, not from the table, and those a
 * request must give (no default to document). */
static const char *const daemon_defaults[] = {"threads", "dataset", NULL};

/* Equal JSON values, numbers compared by value (1 and 1.0 are the same default). */
static bool same_value(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    return json_equal((json_t *)a, (json_t *)b);
}

static bool listed(const char *const *names, const char *key)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], key) == 0)
            return true;
    return false;
}

/* The configuration's value of key for a request naming preset and model (NULL: absent).
 * New reference. */
static json_t *default_of(const char *key, const char *preset, const char *model)
{
    json_t *req = json_object();
    if (preset)
        json_object_set_new(req, "preset", json_string(preset));
    if (model)
        json_object_set_new(req, "model", json_string(model));
    JobConfig cfg;
    ConfigError err;
    json_t *v = NULL;
    if (config_from_json(req, false, &cfg, &err) == 0) {
        json_t *all = config_to_json(&cfg);
        v = json_incref(json_object_get(all, key));
        json_decref(all);
    }
    json_decref(req);
    return v;
}

/* The default a request without the key gets, or NULL when it depends on the preset or
 * the model (then the document must not state one). New reference. */
static json_t *uniform_default(const char *key)
{
    json_t *first = default_of(key, NULL, NULL);
    if (strcmp(key, "preset") == 0 || strcmp(key, "model") == 0)
        return first;
    for (int p = 0; config_presets[p]; p++)
        for (int m = 0; config_models[m]; m++) {
            json_t *v = default_of(key, config_presets[p], config_models[m]);
            bool same = v && first && json_equal(v, first);
            json_decref(v);
            if (!same) {
                json_decref(first);
                return NULL;
            }
        }
    return first;
}

static json_t *load_doc(void)
{
    json_error_t err;
    json_t *doc = json_loadb(openapi_json, openapi_json_len, 0, &err);
    if (!doc)
        test_fail(__FILE__, __LINE__, "openapi.json: line %d: %s", err.line, err.text);
    return doc;
}

static bool same_number(const json_t *v, double x)
{
    return json_is_number(v) && json_number_value(v) == x;
}

TEST(openapi_job_config_matches_the_validation_table)
{
    json_t *doc = load_doc();
    REQUIRE(doc);
    json_t *props = json_object_get(json_object_get(json_object_get(json_object_get(
                                        doc, "components"), "schemas"), "JobConfig"),
                                    "properties");
    REQUIRE(json_is_object(props));
    int n = config_field_count();
    CHECK(n >= 30);
    for (int i = 0; i < n; i++) {
        ConfigFieldInfo f;
        config_field_info(i, &f);
        json_t *p = json_object_get(props, f.key);
        if (!p) {
            test_fail(__FILE__, __LINE__, "JobConfig lacks \"%s\"", f.key);
            continue;
        }
        if (f.names) {
            json_t *e = json_object_get(p, "enum");
            bool ok = json_is_array(e);
            size_t k = 0;
            for (; ok && f.names[k]; k++)
                ok = strcmp(json_string_value(json_array_get(e, k)) ?: "", f.names[k]) == 0;
            if (!ok || k != json_array_size(e))
                test_fail(__FILE__, __LINE__, "JobConfig.%s: enum differs from the server's",
                          f.key);
        } else if (strcmp(f.type, "special") != 0) {
            const char *t = json_string_value(json_object_get(p, "type"));
            if (!t || strcmp(t, f.type) != 0)
                test_fail(__FILE__, __LINE__, "JobConfig.%s: type %s, the server's is %s",
                          f.key, t ? t : "none", f.type);
        }
        if (strcmp(f.type, "integer") == 0 || strcmp(f.type, "number") == 0) {
            if (!same_number(json_object_get(p, "minimum"), f.min) ||
                !same_number(json_object_get(p, "maximum"), f.max))
                test_fail(__FILE__, __LINE__, "JobConfig.%s: limits differ from the server's "
                          "[%.17g, %.17g]", f.key, f.min, f.max);
            if (json_object_get(p, "exclusiveMinimum") || json_object_get(p, "exclusiveMaximum"))
                test_fail(__FILE__, __LINE__, "JobConfig.%s: the server's limits are inclusive",
                          f.key);
        }
        json_t *want = listed(daemon_defaults, f.key) ? NULL : uniform_default(f.key);
        json_t *got = json_object_get(p, "default");
        if (want && !(got && same_value(got, want))) {
            char *w = json_dumps(want, JSON_ENCODE_ANY);
            test_fail(__FILE__, __LINE__, "JobConfig.%s: default should be %s", f.key,
                      w ? w : "?");
            free(w);
        }
        if (!want && got)
            test_fail(__FILE__, __LINE__, "JobConfig.%s: states a default, but the server's "
                      "depends on the preset, the model or the daemon", f.key);
        json_decref(want);
    }
    const char *key;
    json_t *v;
    json_object_foreach(props, key, v) {
        bool known = false;
        for (int i = 0; i < n && !known; i++) {
            ConfigFieldInfo f;
            config_field_info(i, &f);
            known = strcmp(f.key, key) == 0;
        }
        if (!known)
            test_fail(__FILE__, __LINE__, "JobConfig.%s is documented but the server refuses "
                      "it", key);
    }
    json_decref(doc);
}

TEST(openapi_submissions_accept_what_the_server_accepts)
{
    json_t *doc = load_doc();
    REQUIRE(doc);
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "GridCreate" : "JobCreate";
        json_t *s = json_object_get(schemas, name);
        /* allOf of JobConfig and the others; a closed object (additionalProperties: false)
         * inside an allOf would refuse the others' keys under strict JSON Schema. */
        CHECK(json_is_false(json_object_get(s, "unevaluatedProperties")));
        json_t *parts = json_object_get(s, "allOf");
        bool has_config = false;
        size_t i;
        json_t *part;
        json_array_foreach(parts, i, part) {
            const char *ref = json_string_value(json_object_get(part, "$ref"));
            has_config |= ref && strcmp(ref, "#/components/schemas/JobConfig") == 0;
            CHECK(!json_object_get(part, "additionalProperties"));
        }
        if (!has_config)
            test_fail(__FILE__, __LINE__, "%s does not build on JobConfig", name);
        /* Required: what the server requires, no more (model and seeds have defaults). */
        json_t *req = json_object_get(s, "required");
        json_array_foreach(req, i, part) {
            const char *r = json_string_value(part);
            CHECK(strcmp(r, "dataset") == 0 || (k && (strcmp(r, "models") == 0 ||
                                                      strcmp(r, "initializers") == 0)));
        }
    }
    CHECK(!json_object_get(json_object_get(schemas, "JobConfig"), "additionalProperties"));
    /* The alias the server accepts for init. */
    char *text = json_dumps(json_object_get(schemas, "JobCreate"), 0);
    CHECK(text && strstr(text, "\"initializer\""));
    free(text);
    json_decref(doc);
}
