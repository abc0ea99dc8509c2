/* config.c — parser of `key = value` configuration files (see config.h). */
#include "util/config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (1 << 20)
#define MAX_KEYS 64

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

/* Parses one line in place (line is NUL-terminated, without '\n'). Sets *key and *value
 * (NULL key for blank and comment lines). Returns NULL, or the reason it is malformed. */
static const char *parse_line(char *line, char **key, char **value)
{
    *key = *value = NULL;
    char *p = line;
    while (is_blank(*p))
        p++;
    if (!*p || *p == '#')
        return NULL;
    char *k = p;
    while (is_key_char(*p))
        p++;
    if (p == k)
        return "expected a key (letters, digits, '_')";
    char *kend = p;
    while (is_blank(*p))
        p++;
    if (*p != '=')
        return "expected 'key = value'";
    *kend = 0;
    p++;
    while (is_blank(*p))
        p++;
    char *v = p;
    if (*v == '"' || *v == '\'') {
        char *close = strchr(v + 1, *v);
        if (!close)
            return "unterminated quoted value";
        char *rest = close + 1;
        while (is_blank(*rest))
            rest++;
        if (*rest && *rest != '#')
            return "text after the closing quote";
        *close = 0;
        v++;
    } else {
        for (char *c = v; *c; c++)
            if (*c == '#' && c > v && is_blank(c[-1])) {
                *c = 0;
                break;
            }
        size_t n = strlen(v);
        while (n && is_blank(v[n - 1]))
            v[--n] = 0;
    }
    *key = k;
    *value = v;
    return NULL;
}

int config_parse(const char *name, const char *text, const char *const known[], ConfigSetFn set,
                 void *ud, char *err, size_t errlen)
{
    char *copy = strdup(text);
    if (!copy) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    const char *seen[MAX_KEYS];
    int nseen = 0, rc = 0, lineno = 0;
    char *line = copy;
    while (line && rc == 0) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        lineno++;
        char *key, *value;
        const char *why = parse_line(line, &key, &value);
        if (why) {
            snprintf(err, errlen, "%s:%d: %s", name, lineno, why);
            rc = -1;
        } else if (key) {
            int idx = -1;
            for (int i = 0; known[i]; i++)
                if (strcmp(known[i], key) == 0)
                    idx = i;
            bool dup = false;
            for (int i = 0; i < nseen; i++)
                dup |= idx >= 0 && seen[i] == known[idx];
            if (idx < 0) {
                snprintf(err, errlen, "%s:%d: unknown key '%s'", name, lineno, key);
                rc = -1;
            } else if (dup) {
                snprintf(err, errlen, "%s:%d: '%s' is set twice", name, lineno, key);
                rc = -1;
            } else {
                if (nseen < MAX_KEYS)
                    seen[nseen++] = known[idx];
                char why_value[256] = "invalid value";
                if (set(ud, key, value, why_value, sizeof why_value) < 0) {
                    snprintf(err, errlen, "%s:%d: %s: %s", name, lineno, key, why_value);
                    rc = -1;
                }
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(copy);
    return rc;
}

int config_load(const char *path, const char *const known[], ConfigSetFn set, void *ud,
                char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    size_t n = fread(buf, 1, MAX_FILE + 1, f);
    bool bad = ferror(f);
    fclose(f);
    int rc = -1;
    if (bad)
        snprintf(err, errlen, "%s: read error", path);
    else if (n > MAX_FILE)
        snprintf(err, errlen, "%s: larger than %d bytes", path, MAX_FILE);
    else if (memchr(buf, 0, n))
        snprintf(err, errlen, "%s: contains a NUL byte", path);
    else {
        buf[n] = 0;
        rc = config_parse(path, buf, known, set, ud, err, errlen);
    }
    free(buf);
    return rc;
}
