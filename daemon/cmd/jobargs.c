/* jobargs.c — command-line job options into a JSON configuration (jobargs.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/jobargs.h"
#include "train/config.h"
#include "util/jsonout.h"

static bool parse_number(const char *s, json_t **out)
{
    char *end;
    errno = 0;
    long long i = strtoll(s, &end, 10);
    if (*s && *end == '\0' && errno == 0) {
        *out = json_integer(i);
        return true;
    }
    double d = strtod(s, &end);
    if (*s && *end == '\0' && errno == 0) {
        *out = json_real(d);
        return true;
    }
    return false;
}

static json_t *value_of(const char *text)
{
    json_t *v;
    if (strcmp(text, "true") == 0)
        return json_true();
    if (strcmp(text, "false") == 0)
        return json_false();
    if (parse_number(text, &v))
        return v;
    if (strchr(text, ',')) {
        json_t *list = json_array();
        char *copy = strdup(text), *save = NULL;
        bool numeric = copy && list;
        for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && numeric;
             tok = strtok_r(NULL, ",", &save)) {
            numeric = parse_number(tok, &v);
            if (numeric)
                json_array_append_new(list, v);
        }
        free(copy);
        if (numeric)
            return list;
        json_decref(list);
    }
    return json_string(text);
}

int jobargs_parse(int argc, char **argv, const CmdFlag *own, int n_own, json_t *obj,
                  char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            snprintf(err, errlen, "unexpected argument \"%s\"", arg);
            return -1;
        }
        char key[64];
        const char *name = arg + 2, *inline_value = strchr(name, '=');
        size_t len = inline_value ? (size_t)(inline_value - name) : strlen(name);
        if (len >= sizeof key) {
            snprintf(err, errlen, "unknown option %s", arg);
            return -1;
        }
        memcpy(key, name, len);
        key[len] = '\0';
        const char *value = inline_value ? inline_value + 1 : NULL;
        bool next_is_value = !value && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0;

        const CmdFlag *flag = NULL;
        for (int k = 0; k < n_own; k++)
            if (strcmp(own[k].name, key) == 0)
                flag = &own[k];
        if (flag) {
            if (flag->takes_value) {
                if (!value && !next_is_value) {
                    snprintf(err, errlen, "option --%s needs a value", key);
                    return -1;
                }
                if (!value)
                    value = argv[++i];
            }
            if (flag->value)
                *flag->value = flag->takes_value ? value : "1";
            continue;
        }
        for (char *p = key; *p; p++)
            if (*p == '-')
                *p = '_';
        json_t *v;
        if (strncmp(key, "no_", 3) == 0 && !value) {
            memmove(key, key + 3, strlen(key + 3) + 1);
            v = json_false();
        } else if (value || next_is_value) {
            v = value_of(value ? value : argv[++i]);
        } else {
            v = json_true();
        }
        json_object_set_new(obj, key, v);
    }
    return 0;
}

void jobargs_print_options(FILE *out)
{
    JobConfig cfg;
    ConfigError err;
    json_t *empty = json_object();
    if (!empty || config_from_json(empty, false, &cfg, &err) < 0) {
        json_decref(empty);
        return;
    }
    json_decref(empty);
    json_t *obj = config_to_json(&cfg);
    if (!obj)
        return;
    fprintf(out, "job options (defaults of the quick preset for mobilenet; see README):\n");
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        if (strcmp(key, "dataset") == 0)
            continue;
        char *text = json_text(value, JSON_ENCODE_ANY | JSON_COMPACT);
        char flag[64];
        snprintf(flag, sizeof flag, "%s", key);
        for (char *p = flag; *p; p++)
            if (*p == '_')
                *p = '-';
        fprintf(out, "  --%-18s %s\n", flag, text ? text : "");
        free(text);
    }
    json_decref(obj);
}
