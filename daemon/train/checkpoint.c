/* checkpoint.c — checkpoint files: header, CRC, JSON metadata, tensors (see checkpoint.h). */
#include "train/checkpoint.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/crc32.h"
#include "util/fileio.h"
#include "util/jsonout.h"

#define MAGIC "INITLABK"
#define HEADER_BYTES 32

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static size_t tensor_bytes(const Net *net)
{
    size_t total = 0;
    for (int i = 0; i < net_n_params(net); i++) {
        const Param *p = net_param_const(net, i);
        total += p->size * sizeof(float) * (p->trainable ? 2 : 1);
    }
    return total;
}

static json_t *metadata(const Net *net, const CheckpointState *s)
{
    json_t *tensors = json_array();
    for (int i = 0; tensors && i < net_n_params(net); i++) {
        const Param *p = net_param_const(net, i);
        /* Out of memory: no metadata rather than a table missing a tensor. */
        if (json_array_append_new(tensors, json_pack("{s:s, s:I, s:b}", "name", p->name,
                                                     "size", (json_int_t)p->size,
                                                     "velocity", p->trainable)) < 0) {
            json_decref(tensors);
            return NULL;
        }
    }
    return json_pack("{s:i, s:i, s:I, s:f, s:I, s:I, s:f, s:i, s:s, s:i, s:s?, s:o}",
                     "epoch", s->epoch, "step", s->step, "global_step",
                     (json_int_t)s->global_step, "loss_sum", s->loss_sum, "correct",
                     (json_int_t)s->correct, "seen", (json_int_t)s->seen, "best_val_acc",
                     s->best_val_acc, "best_epoch", s->best_epoch, "model", s->model,
                     "classes", s->classes, "config", s->config_json, "tensors", tensors);
}

int checkpoint_save(const char *path, const Net *net, const CheckpointState *state,
                    char *err, size_t errlen)
{
    json_t *meta = metadata(net, state);
    char *meta_text = meta ? json_text(meta, JSON_COMPACT) : NULL;
    json_decref(meta);
    int n_params = net_n_params(net);
    FilePart *parts = malloc(sizeof(FilePart) * (2 + 2 * (size_t)n_params));
    if (!meta_text || !parts) {
        free(meta_text);
        free(parts);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    size_t meta_len = strlen(meta_text);
    unsigned char header[HEADER_BYTES] = {0};
    int n = 0;
    parts[n++] = (FilePart){header, sizeof header};
    parts[n++] = (FilePart){meta_text, meta_len};
    uint32_t crc = crc32_update(0, meta_text, meta_len);
    for (int i = 0; i < n_params; i++) {
        const Param *p = net_param_const(net, i);
        parts[n++] = (FilePart){p->data, p->size * sizeof(float)};
        crc = crc32_update(crc, p->data, p->size * sizeof(float));
        if (p->trainable) {
            parts[n++] = (FilePart){p->velocity, p->size * sizeof(float)};
            crc = crc32_update(crc, p->velocity, p->size * sizeof(float));
        }
    }
    memcpy(header, MAGIC, 8);
    put_u32(header + 8, CHECKPOINT_VERSION);
    put_u32(header + 12, (uint32_t)meta_len);
    put_u64(header + 16, tensor_bytes(net));
    put_u32(header + 24, crc);
    int rc = file_write_atomic(path, parts, n, err, errlen);
    free(meta_text);
    free(parts);
    return rc;
}

static int refuse(char *err, size_t errlen, const char *path, const char *why)
{
    snprintf(err, errlen, "checkpoint %s is not usable: %s", path, why);
    return -1;
}

/* Checks the tensor table against net and reads the state fields. */
static int check_metadata(const char *path, const json_t *meta, const Net *net,
                          CheckpointState *s, char *err, size_t errlen)
{
    json_t *tensors = json_object_get(meta, "tensors");
    const char *model = json_string_value(json_object_get(meta, "model"));
    if (!json_is_array(tensors) || !model)
        return refuse(err, errlen, path, "metadata lacks the tensor table");
    if ((int)json_array_size(tensors) != net_n_params(net)) {
        char why[160];
        snprintf(why, sizeof why, "it holds %zu tensors, the model has %d (another model?)",
                 json_array_size(tensors), net_n_params(net));
        return refuse(err, errlen, path, why);
    }
    for (int i = 0; i < net_n_params(net); i++) {
        const Param *p = net_param_const(net, i);
        json_t *t = json_array_get(tensors, (size_t)i);
        const char *name = json_string_value(json_object_get(t, "name"));
        json_int_t size = json_integer_value(json_object_get(t, "size"));
        if (!name || strcmp(name, p->name) != 0 || size != (json_int_t)p->size ||
            json_is_true(json_object_get(t, "velocity")) != p->trainable) {
            char why[300];
            snprintf(why, sizeof why, "tensor %d is %s (%lld values), the model expects %s "
                     "(%zu values)", i, name ? name : "?", (long long)size, p->name, p->size);
            return refuse(err, errlen, path, why);
        }
    }
    memset(s, 0, sizeof *s);
    s->epoch = (int)json_integer_value(json_object_get(meta, "epoch"));
    s->step = (int)json_integer_value(json_object_get(meta, "step"));
    s->global_step = json_integer_value(json_object_get(meta, "global_step"));
    s->loss_sum = json_number_value(json_object_get(meta, "loss_sum"));
    s->correct = json_integer_value(json_object_get(meta, "correct"));
    s->seen = json_integer_value(json_object_get(meta, "seen"));
    s->best_val_acc = json_number_value(json_object_get(meta, "best_val_acc"));
    s->best_epoch = (int)json_integer_value(json_object_get(meta, "best_epoch"));
    s->classes = (int)json_integer_value(json_object_get(meta, "classes"));
    snprintf(s->model, sizeof s->model, "%s", model);
    return 0;
}

/* Reads and checks the whole file: header, lengths (data_len must equal want_data unless
 * it is SIZE_MAX), CRC; returns the M + D bytes (malloc) and the parsed metadata. */
static unsigned char *read_checked(const char *path, size_t want_data, json_t **meta,
                                   uint32_t *meta_len_out, char *err, size_t errlen)
{
    unsigned char *buf = NULL;
    *meta = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "checkpoint %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char header[HEADER_BYTES];
    if (fread(header, 1, sizeof header, f) != sizeof header) {
        refuse(err, errlen, path, "shorter than its header");
        goto fail;
    }
    if (memcmp(header, MAGIC, 8) != 0) {
        refuse(err, errlen, path, "not an initlab checkpoint (bad magic)");
        goto fail;
    }
    if (get_u32(header + 8) != CHECKPOINT_VERSION) {
        char why[96];
        snprintf(why, sizeof why, "format version %u, this initlab reads version %d",
                 get_u32(header + 8), CHECKPOINT_VERSION);
        refuse(err, errlen, path, why);
        goto fail;
    }
    uint32_t meta_len = get_u32(header + 12);
    uint64_t data_len = get_u64(header + 16);
    if ((want_data != SIZE_MAX && data_len != want_data) || meta_len > (64u << 20) ||
        data_len > ((uint64_t)1 << 40)) {
        refuse(err, errlen, path, "its size does not match the model (another model?)");
        goto fail;
    }
    size_t want = (size_t)meta_len + data_len;
    buf = malloc(want + 1);
    if (!buf) {
        refuse(err, errlen, path, "out of memory");
        goto fail;
    }
    if (fread(buf, 1, want, f) != want || fgetc(f) != EOF) {
        refuse(err, errlen, path, "truncated or with trailing bytes");
        goto fail;
    }
    if (crc32_update(0, buf, want) != get_u32(header + 24)) {
        refuse(err, errlen, path, "CRC mismatch: the file is corrupt");
        goto fail;
    }
    json_error_t jerr;
    *meta = json_loadb((const char *)buf, meta_len, 0, &jerr);
    if (!*meta) {
        refuse(err, errlen, path, "metadata is not valid JSON");
        goto fail;
    }
    fclose(f);
    *meta_len_out = meta_len;
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

int checkpoint_load(const char *path, Net *net, CheckpointState *state, char *err,
                    size_t errlen)
{
    json_t *meta;
    uint32_t meta_len;
    unsigned char *buf = read_checked(path, tensor_bytes(net), &meta, &meta_len, err, errlen);
    if (!buf)
        return -1;
    CheckpointState s;
    int rc = check_metadata(path, meta, net, &s, err, errlen);
    if (rc == 0) {
        const unsigned char *p = buf + meta_len;
        for (int i = 0; i < net_n_params(net); i++) {
            Param *prm = net_param(net, i);
            memcpy(prm->data, p, prm->size * sizeof(float));
            p += prm->size * sizeof(float);
            if (prm->trainable) {
                memcpy(prm->velocity, p, prm->size * sizeof(float));
                p += prm->size * sizeof(float);
            }
        }
        *state = s;
    }
    json_decref(meta);
    free(buf);
    return rc;
}

int checkpoint_peek(const char *path, char **config_json, int *classes, char *err,
                    size_t errlen)
{
    json_t *meta;
    uint32_t meta_len;
    unsigned char *buf = read_checked(path, SIZE_MAX, &meta, &meta_len, err, errlen);
    if (!buf)
        return -1;
    free(buf);
    const char *config = json_string_value(json_object_get(meta, "config"));
    *config_json = config ? strdup(config) : NULL;
    *classes = (int)json_integer_value(json_object_get(meta, "classes"));
    json_decref(meta);
    return 0;
}
