/* jsonout.c — shortest round-trip reals in JSON and CSV text (jsonout.h). */
#include "util/jsonout.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reads_back(const char *text, double v, bool single)
{
    return single ? strtof(text, NULL) == (float)v : strtod(text, NULL) == v;
}

/* Writes v as "%.{p-1}e" with the least p (1..17 digits, 1..9 for a float32) that reads
 * back as v. Reading back is monotone in p but for rare values next to a power of two, so
 * the binary search is followed by a downward check. Returns the length. */
static int shortest_e(double v, bool single, char *buf)
{
    int lo = 1, hi = single ? 9 : 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        snprintf(buf, NUM_TEXT_MAX, "%.*e", mid - 1, v);
        if (reads_back(buf, v, single))
            hi = mid;
        else
            lo = mid + 1;
    }
    while (lo > 1) {
        snprintf(buf, NUM_TEXT_MAX, "%.*e", lo - 2, v);
        if (!reads_back(buf, v, single))
            break;
        lo--;
    }
    return snprintf(buf, NUM_TEXT_MAX, "%.*e", lo - 1, v);
}

/* Lays out "[-]d.ddde±X" as Python's repr does: fixed notation when the decimal point
 * falls within -4 < decpt <= 16 digits of the first digit, scientific otherwise. */
static int layout(const char *e_text, char *buf)
{
    char digits[NUM_TEXT_MAX];
    int nd = 0;
    const char *p = e_text;
    bool negative = *p == '-';
    if (negative)
        p++;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int decpt = exp10 + 1;
    char *o = buf;
    if (negative)
        *o++ = '-';
    if (decpt <= -4 || decpt > 16) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        o += sprintf(o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -decpt; i++)
            *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else {
        for (int i = 0; i < decpt; i++)
            *o++ = i < nd ? digits[i] : '0';
        *o++ = '.';
        if (nd > decpt) {
            memcpy(o, digits + decpt, (size_t)(nd - decpt));
            o += nd - decpt;
        } else {
            *o++ = '0';
        }
    }
    *o = '\0';
    return (int)(o - buf);
}

int num_format_double(double v, char *buf)
{
    if (!isfinite(v))
        return snprintf(buf, NUM_TEXT_MAX, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    char e_text[NUM_TEXT_MAX];
    shortest_e(v, false, e_text);
    return layout(e_text, buf);
}

double num_float_decimal(float f)
{
    if (!isfinite(f))
        return f;
    char e_text[NUM_TEXT_MAX];
    shortest_e(f, true, e_text);
    return strtod(e_text, NULL);
}

/* Appends n bytes to the growing buffer *out (length *len, capacity *cap). */
static int append(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = (*len + n + 1) * 2;
        char *b = realloc(*out, c);
        if (!b)
            return -1;
        *out = b;
        *cap = c;
    }
    memcpy(*out + *len, s, n);
    *len += n;
    (*out)[*len] = '\0';
    return 0;
}

/* jansson's text of a value, dumped through a buffer whose first failed growth fails
 * every later append: jansson ignores the status of the dump of an object's key (2.14),
 * so a transient allocation failure there would otherwise drop the key and still return
 * text. */
typedef struct {
    char *buf;
    size_t len, cap;
    bool failed;
} DumpBuffer;

static int dump_append(const char *s, size_t n, void *data)
{
    DumpBuffer *d = data;
    if (d->failed || append(&d->buf, &d->len, &d->cap, s, n) < 0) {
        d->failed = true;
        return -1;
    }
    return 0;
}

static char *dump_text(const json_t *v, size_t flags)
{
    DumpBuffer d = {.cap = 256};
    d.buf = malloc(d.cap);
    if (!d.buf)
        return NULL;
    d.buf[0] = '\0';
    if (json_dump_callback(v, dump_append, &d, flags) < 0 || d.failed) {
        free(d.buf);
        return NULL;
    }
    return d.buf;
}

char *json_text(const json_t *v, size_t flags)
{
    char *in = dump_text(v, flags & ~(size_t)JSON_REAL_PRECISION(31));
    if (!in)
        return NULL;
    size_t len = 0, cap = strlen(in) + 64;
    char *out = malloc(cap);
    const char *p = in;
    int rc = out ? 0 : -1;
    if (out)
        out[0] = '\0';
    while (rc == 0 && *p) {
        const char *start = p;
        if (*p == '"') {
            /* A string, copied as jansson escaped it. */
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p)
                p++;
            rc = append(&out, &len, &cap, start, (size_t)(p - start));
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            bool real = false;
            for (; *p && strchr("+-.0123456789eE", *p); p++)
                real |= *p == '.' || *p == 'e' || *p == 'E';
            if (real) {
                char num[NUM_TEXT_MAX];
                int n = num_format_double(strtod(start, NULL), num);
                rc = append(&out, &len, &cap, num, (size_t)n);
            } else {
                rc = append(&out, &len, &cap, start, (size_t)(p - start));
            }
        } else {
            for (p++; *p && *p != '"' && *p != '-' && (*p < '0' || *p > '9'); p++)
                ;
            rc = append(&out, &len, &cap, start, (size_t)(p - start));
        }
    }
    free(in);
    if (rc < 0) {
        free(out);
        return NULL;
    }
    return out;
}
