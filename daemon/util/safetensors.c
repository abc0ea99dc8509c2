/* safetensors.c — the safetensors reader and atomic writer (see safetensors.h).
 *
 * The reader takes the whole file into memory, checks the header as the reference
 * implementation does (JSON object, F32 only, offsets inside the data section, each
 * tensor's byte length equal to its shape's) and copies every tensor into one float block
 * so the data is aligned whatever the header length. The writer pads the header with
 * spaces to a multiple of 8 bytes so the data section starts aligned, and replaces the
 * file durably through util/fileio.h (temporary file, fsync, rename, directory fsync). */
#include "util/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileio.h"
#include "util/jsonout.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_MAX_HEADER (100u << 20) /* the reference implementation's limit */

struct SafeTensors {
    int n;
    StTensor *tensors; /* (n) */
    float *block;      /* every tensor's data, contiguous */
    int n_meta;
    char **meta_keys;  /* (n_meta) */
    char **meta_values;
};

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

/* ---- writing ----------------------------------------------------------------------- */

/* The JSON header for the tensors and metadata: new reference, or NULL with err set. Every
 * value is checked: a header missing an entry must never reach the file. */
static json_t *build_header(const StTensor *tensors, int n, const char *const *metadata,
                            char *err, size_t errlen)
{
    json_t *root = json_object();
    if (!root)
        goto oom;
    if (metadata && metadata[0]) {
        json_t *meta = json_object();
        if (json_object_set_new(root, "__metadata__", meta) < 0)
            goto oom;
        for (int i = 0; metadata[i]; i += 2) {
            if (!metadata[i + 1]) {
                set_err(err, errlen, "metadata key '%s' has no value", metadata[i]);
                json_decref(root);
                return NULL;
            }
            if (json_object_set_new(meta, metadata[i], json_string(metadata[i + 1])) < 0)
                goto oom;
        }
    }
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        const StTensor *t = &tensors[i];
        size_t count = 1;
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS) {
            set_err(err, errlen, "tensor '%s': %d dimensions (at most %d)", t->name, t->ndim,
                    ST_MAX_DIMS);
            json_decref(root);
            return NULL;
        }
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) {
                set_err(err, errlen, "tensor '%s': negative dimension", t->name);
                json_decref(root);
                return NULL;
            }
            count *= (size_t)t->shape[d];
        }
        if (count != t->count || (count > 0 && !t->data)) {
            set_err(err, errlen, "tensor '%s': count %zu does not match its shape (%zu)",
                    t->name, t->count, count);
            json_decref(root);
            return NULL;
        }
        if (!t->name[0] || strcmp(t->name, "__metadata__") == 0 ||
            json_object_get(root, t->name)) {
            set_err(err, errlen, "tensor name '%s' is empty, reserved or repeated", t->name);
            json_decref(root);
            return NULL;
        }
        /* json_object_set_new takes its value even when it fails (or is NULL). */
        json_t *entry = json_object();
        if (json_object_set_new(root, t->name, entry) < 0 ||
            json_object_set_new(entry, "dtype", json_string("F32")) < 0)
            goto oom;
        json_t *shape = json_array();
        if (json_object_set_new(entry, "shape", shape) < 0)
            goto oom;
        for (int d = 0; d < t->ndim; d++)
            if (json_array_append_new(shape, json_integer(t->shape[d])) < 0)
                goto oom;
        size_t bytes = count * sizeof(float);
        if (json_object_set_new(entry, "data_offsets",
                                json_pack("[I, I]", (json_int_t)offset,
                                          (json_int_t)(offset + bytes))) < 0)
            goto oom;
        offset += bytes;
    }
    return root;
oom:
    set_err(err, errlen, "out of memory building the header");
    json_decref(root);
    return NULL;
}

int st_write(const char *path, const StTensor *tensors, int n, const char *const *metadata,
             char *err, size_t errlen)
{
    json_t *root = build_header(tensors, n, metadata, err, errlen);
    if (!root)
        return -1;
    char *text = json_text(root, JSON_COMPACT);
    json_decref(root);
    FilePart *parts = malloc(sizeof *parts * ((size_t)n + 3));
    if (!text || !parts) {
        set_err(err, errlen, "%s: out of memory building the header", path);
        free(text);
        free(parts);
        return -1;
    }
    size_t len = strlen(text);
    size_t padded = (len + 7) & ~(size_t)7;
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    int k = 0;
    parts[k++] = (FilePart){lenbuf, 8};
    parts[k++] = (FilePart){text, len};
    parts[k++] = (FilePart){spaces, padded - len};
    for (int i = 0; i < n; i++)
        parts[k++] = (FilePart){tensors[i].data, tensors[i].count * sizeof(float)};
    char why[PATH_MAX + 256];
    int rc = file_write_atomic(path, parts, k, why, sizeof why);
    if (rc < 0)
        set_err(err, errlen, "%s", why);
    free(text);
    free(parts);
    return rc;
}

/* ---- reading ----------------------------------------------------------------------- */

/* Reads the whole file into a new buffer (*len bytes). Returns NULL with err set. */
static unsigned char *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        set_err(err, errlen, "%s: out of memory (%zu bytes)", path, size);
        close(fd);
        return NULL;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t k = read(fd, buf + got, size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            set_err(err, errlen, "%s: %s", path, k < 0 ? strerror(errno) : "file shrank while reading");
            free(buf);
            close(fd);
            return NULL;
        }
        got += (size_t)k;
    }
    close(fd);
    *len = size;
    return buf;
}

void st_free(SafeTensors *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->tensors);
    free(st->block);
    free(st);
}

static int read_metadata(SafeTensors *st, json_t *meta, const char *path, char *err, size_t errlen)
{
    if (!json_is_object(meta)) {
        set_err(err, errlen, "%s: corrupt header: __metadata__ is not an object", path);
        return -1;
    }
    size_t n = json_object_size(meta);
    st->meta_keys = calloc(n ? n : 1, sizeof *st->meta_keys);
    st->meta_values = calloc(n ? n : 1, sizeof *st->meta_values);
    if (!st->meta_keys || !st->meta_values) {
        set_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    const char *key;
    json_t *value;
    json_object_foreach(meta, key, value) {
        if (!json_is_string(value)) {
            set_err(err, errlen, "%s: corrupt header: metadata '%s' is not a string", path, key);
            return -1;
        }
        st->meta_keys[st->n_meta] = strdup(key);
        st->meta_values[st->n_meta] = strdup(json_string_value(value));
        st->n_meta++;
        if (!st->meta_keys[st->n_meta - 1] || !st->meta_values[st->n_meta - 1]) {
            set_err(err, errlen, "%s: out of memory", path);
            return -1;
        }
    }
    return 0;
}

/* Validates one tensor entry and fills t (without data) and its byte range. */
static int read_entry(const char *path, const char *name, json_t *entry, StTensor *t,
                      size_t data_len, size_t *begin, size_t *end, char *err, size_t errlen)
{
    if (strlen(name) >= sizeof t->name) {
        set_err(err, errlen, "%s: tensor name '%.40s...' longer than %zu bytes", path, name,
                sizeof t->name - 1);
        return -1;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    json_t *dtype = json_object_get(entry, "dtype");
    json_t *shape = json_object_get(entry, "shape");
    json_t *offsets = json_object_get(entry, "data_offsets");
    if (!json_is_object(entry) || !json_is_string(dtype) || !json_is_array(shape) ||
        !json_is_array(offsets) || json_array_size(offsets) != 2) {
        set_err(err, errlen, "%s: corrupt header: tensor '%s' lacks dtype, shape or data_offsets",
                path, name);
        return -1;
    }
    if (strcmp(json_string_value(dtype), "F32") != 0) {
        set_err(err, errlen, "%s: tensor '%s' has dtype %s; only F32 is supported", path, name,
                json_string_value(dtype));
        return -1;
    }
    if (json_array_size(shape) > ST_MAX_DIMS) {
        set_err(err, errlen, "%s: tensor '%s' has %zu dimensions (at most %d)", path, name,
                json_array_size(shape), ST_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)json_array_size(shape);
    size_t count = 1;
    for (int d = 0; d < t->ndim; d++) {
        json_t *dim = json_array_get(shape, (size_t)d);
        if (!json_is_integer(dim) || json_integer_value(dim) < 0 ||
            json_integer_value(dim) > (json_int_t)(data_len / sizeof(float) + 1)) {
            set_err(err, errlen, "%s: corrupt header: tensor '%s' has a bad dimension", path, name);
            return -1;
        }
        t->shape[d] = (int64_t)json_integer_value(dim);
        if (t->shape[d] && count > SIZE_MAX / (size_t)t->shape[d] / sizeof(float)) {
            set_err(err, errlen, "%s: corrupt header: tensor '%s' is too large", path, name);
            return -1;
        }
        count *= (size_t)t->shape[d];
    }
    t->count = count;
    json_t *jb = json_array_get(offsets, 0), *je = json_array_get(offsets, 1);
    if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
        json_integer_value(je) < json_integer_value(jb)) {
        set_err(err, errlen, "%s: corrupt header: tensor '%s' has bad data_offsets", path, name);
        return -1;
    }
    *begin = (size_t)json_integer_value(jb);
    *end = (size_t)json_integer_value(je);
    if (*end > data_len) {
        set_err(err, errlen, "%s: truncated: tensor '%s' ends at byte %zu of a %zu-byte data section",
                path, name, *end, data_len);
        return -1;
    }
    if (*end - *begin != count * sizeof(float)) {
        set_err(err, errlen, "%s: corrupt header: tensor '%s' spans %zu bytes, its shape needs %zu",
                path, name, *end - *begin, count * sizeof(float));
        return -1;
    }
    return 0;
}

SafeTensors *st_read(const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    json_t *root = NULL;
    size_t *ranges = NULL;
    SafeTensors *st = NULL;
    unsigned char *buf = slurp(path, &len, err, errlen);
    if (!buf)
        return NULL;
    if (len < 8) {
        set_err(err, errlen, "%s: truncated: %zu bytes, no header length", path, len);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)buf[i] << (8 * i);
    if (hlen > ST_MAX_HEADER || hlen < 2) {
        set_err(err, errlen, "%s: corrupt header: header length %llu", path, (unsigned long long)hlen);
        goto fail;
    }
    if (hlen > len - 8) {
        set_err(err, errlen, "%s: truncated: header of %llu bytes, file has %zu", path,
                (unsigned long long)hlen, len - 8);
        goto fail;
    }
    if (buf[8] != '{') {
        set_err(err, errlen, "%s: corrupt header: does not start with '{'", path);
        goto fail;
    }
    json_error_t jerr;
    root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        set_err(err, errlen, "%s: corrupt header: %s", path, root ? "not an object" : jerr.text);
        goto fail;
    }
    const unsigned char *data = buf + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;

    st = calloc(1, sizeof *st);
    size_t nkeys = json_object_size(root);
    if (!st || !(st->tensors = calloc(nkeys ? nkeys : 1, sizeof *st->tensors)) ||
        !(ranges = calloc(2 * (nkeys ? nkeys : 1), sizeof *ranges))) {
        set_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    const char *key;
    json_t *value;
    size_t total = 0;
    json_object_foreach(root, key, value) {
        if (strcmp(key, "__metadata__") == 0) {
            if (read_metadata(st, value, path, err, errlen) < 0)
                goto fail;
            continue;
        }
        StTensor *t = &st->tensors[st->n];
        if (read_entry(path, key, value, t, data_len, &ranges[2 * st->n], &ranges[2 * st->n + 1],
                       err, errlen) < 0)
            goto fail;
        total += t->count;
        st->n++;
    }
    /* Ranges must not overlap: with the per-tensor length check this means every byte of
     * tensor data belongs to exactly one tensor. */
    for (int i = 0; i < st->n; i++)
        for (int j = i + 1; j < st->n; j++)
            if (ranges[2 * i] < ranges[2 * j + 1] && ranges[2 * j] < ranges[2 * i + 1]) {
                set_err(err, errlen, "%s: corrupt header: tensors '%s' and '%s' overlap", path,
                        st->tensors[i].name, st->tensors[j].name);
                goto fail;
            }
    st->block = malloc((total ? total : 1) * sizeof(float));
    if (!st->block) {
        set_err(err, errlen, "%s: out of memory (%zu floats)", path, total);
        goto fail;
    }
    size_t at = 0;
    for (int i = 0; i < st->n; i++) {
        StTensor *t = &st->tensors[i];
        memcpy(st->block + at, data + ranges[2 * i], t->count * sizeof(float));
        t->data = st->block + at;
        at += t->count;
    }
    free(ranges);
    json_decref(root);
    free(buf);
    return st;

fail:
    free(ranges);
    st_free(st);
    json_decref(root);
    free(buf);
    return NULL;
}

int st_count(const SafeTensors *st)
{
    return st->n;
}

const StTensor *st_at(const SafeTensors *st, int i)
{
    return i >= 0 && i < st->n ? &st->tensors[i] : NULL;
}

const StTensor *st_find(const SafeTensors *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}

const char *st_metadata(const SafeTensors *st, const char *key)
{
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}
