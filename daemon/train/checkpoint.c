/* checkpoint.c — checkpoint files: header, CRC, JSON metadata, tensors, and whose they are:
 * identity, configuration and data hashes, judging and setting aside (see checkpoint.h). */
#include "train/checkpoint.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

static json_t *identity_json(const CheckpointIdentity *id)
{
    return json_pack("{s:s, s:I, s:i, s:s, s:s, s:s}", "job_uid", id->job_uid, "job_id",
                     (json_int_t)id->job_id, "attempt", id->attempt, "attempt_uid",
                     id->attempt_uid, "config_hash", id->config_hash, "data_hash",
                     id->data_hash);
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
    json_t *meta = json_pack("{s:i, s:i, s:I, s:f, s:I, s:I, s:f, s:i, s:s, s:i, s:s?, s:o}",
                             "epoch", s->epoch, "step", s->step, "global_step",
                             (json_int_t)s->global_step, "loss_sum", s->loss_sum, "correct",
                             (json_int_t)s->correct, "seen", (json_int_t)s->seen,
                             "best_val_acc", s->best_val_acc, "best_epoch", s->best_epoch,
                             "model", s->model, "classes", s->classes, "config",
                             s->config_json, "tensors", tensors);
    if (meta && (json_object_set_new(meta, "epoch_seconds", json_real(s->epoch_seconds)) < 0 ||
                 json_object_set_new(meta, "epoch_images",
                                     json_integer((json_int_t)s->epoch_images)) < 0)) {
        json_decref(meta);
        return NULL;
    }
    if (meta && s->identity.job_uid[0] &&
        json_object_set_new(meta, "identity", identity_json(&s->identity)) < 0) {
        json_decref(meta);
        return NULL;
    }
    return meta;
}

/* Copies the string member key of o into dst (n bytes); false when it is missing, not a
 * string or too long. */
static bool copy_member(const json_t *o, const char *key, char *dst, size_t n)
{
    const char *v = json_string_value(json_object_get(o, key));
    if (!v || strlen(v) >= n)
        return false;
    memcpy(dst, v, strlen(v) + 1);
    return true;
}

/* Reads the "identity" member of meta into *id: 1 when present, 0 when absent, -1 when
 * malformed. */
static int parse_identity(const json_t *meta, CheckpointIdentity *id)
{
    memset(id, 0, sizeof *id);
    const json_t *o = json_object_get(meta, "identity");
    if (!o)
        return 0;
    if (!json_is_object(o) || !copy_member(o, "job_uid", id->job_uid, sizeof id->job_uid) ||
        !id->job_uid[0] ||
        !copy_member(o, "attempt_uid", id->attempt_uid, sizeof id->attempt_uid) ||
        !copy_member(o, "config_hash", id->config_hash, sizeof id->config_hash) ||
        !copy_member(o, "data_hash", id->data_hash, sizeof id->data_hash)) {
        memset(id, 0, sizeof *id);
        return -1;
    }
    id->job_id = json_integer_value(json_object_get(o, "job_id"));
    id->attempt = (int)json_integer_value(json_object_get(o, "attempt"));
    return 1;
}

int checkpoint_save(const char *path, const Net *net, const CheckpointState *state,
                    uint32_t *crc_out, char *err, size_t errlen)
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
    if (rc == 0 && crc_out)
        *crc_out = crc;
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
    if (parse_identity(meta, &s->identity) < 0)
        return refuse(err, errlen, path, "its identity metadata is malformed");
    s->epoch = (int)json_integer_value(json_object_get(meta, "epoch"));
    s->step = (int)json_integer_value(json_object_get(meta, "step"));
    s->global_step = json_integer_value(json_object_get(meta, "global_step"));
    s->loss_sum = json_number_value(json_object_get(meta, "loss_sum"));
    s->correct = json_integer_value(json_object_get(meta, "correct"));
    s->seen = json_integer_value(json_object_get(meta, "seen"));
    s->best_val_acc = json_number_value(json_object_get(meta, "best_val_acc"));
    s->best_epoch = (int)json_integer_value(json_object_get(meta, "best_epoch"));
    /* absent from files written before they were recorded: 0 */
    s->epoch_seconds = json_number_value(json_object_get(meta, "epoch_seconds"));
    s->epoch_images = json_integer_value(json_object_get(meta, "epoch_images"));
    s->classes = (int)json_integer_value(json_object_get(meta, "classes"));
    snprintf(s->model, sizeof s->model, "%s", model);
    return 0;
}

/* Reads and checks the whole file: header, lengths (data_len must equal want_data unless
 * it is SIZE_MAX), CRC; returns the M + D bytes (malloc) and the parsed metadata, and in
 * *header_out (may be NULL) the header. On failure *damaged (may be NULL) tells a damaged
 * file (true) from one that could not be read. */
static unsigned char *read_checked(const char *path, size_t want_data, json_t **meta,
                                   uint32_t *meta_len_out, unsigned char *header_out,
                                   bool *damaged, char *err, size_t errlen)
{
    unsigned char *buf = NULL;
    bool bad = true;
    *meta = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "checkpoint %s: %s", path, strerror(e));
        if (damaged)
            *damaged = false;
        errno = e;
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
    if (get_u32(header + 8) < 1 || get_u32(header + 8) > CHECKPOINT_VERSION) {
        char why[96];
        snprintf(why, sizeof why, "format version %u, this initlab reads versions 1 to %d",
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
        bad = false;
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
    if (header_out)
        memcpy(header_out, header, sizeof header);
    return buf;
fail:
    if (damaged)
        *damaged = bad;
    free(buf);
    fclose(f);
    return NULL;
}

int checkpoint_load(const char *path, Net *net, CheckpointState *state, char *err,
                    size_t errlen)
{
    json_t *meta;
    uint32_t meta_len;
    unsigned char *buf = read_checked(path, tensor_bytes(net), &meta, &meta_len, NULL, NULL,
                                      err, errlen);
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
    unsigned char *buf = read_checked(path, SIZE_MAX, &meta, &meta_len, NULL, NULL, err,
                                      errlen);
    if (!buf)
        return -1;
    free(buf);
    const char *config = json_string_value(json_object_get(meta, "config"));
    *config_json = config ? strdup(config) : NULL;
    *classes = (int)json_integer_value(json_object_get(meta, "classes"));
    json_decref(meta);
    return 0;
}

/* ---- Inspecting and judging --------------------------------------------------------- */

void checkpoint_info_deinit(CheckpointInfo *info)
{
    if (!info)
        return;
    free(info->config_json);
    info->config_json = NULL;
}

int checkpoint_inspect(const char *path, CheckpointInfo *info, char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    json_t *meta;
    uint32_t meta_len;
    unsigned char header[HEADER_BYTES];
    bool damaged = false;
    unsigned char *buf = read_checked(path, SIZE_MAX, &meta, &meta_len, header, &damaged,
                                      err, errlen);
    if (!buf)
        return damaged ? -2 : -1;
    free(buf);
    int rc = 0;
    const char *model = json_string_value(json_object_get(meta, "model"));
    int has = parse_identity(meta, &info->identity);
    if (has < 0 || !model || !json_is_array(json_object_get(meta, "tensors"))) {
        refuse(err, errlen, path, has < 0 ? "its identity metadata is malformed"
                                          : "metadata lacks the model or the tensor table");
        rc = -2;
        goto out;
    }
    info->version = (int)get_u32(header + 8);
    info->has_identity = has == 1;
    snprintf(info->model, sizeof info->model, "%s", model);
    info->classes = (int)json_integer_value(json_object_get(meta, "classes"));
    info->epoch = (int)json_integer_value(json_object_get(meta, "epoch"));
    info->step = (int)json_integer_value(json_object_get(meta, "step"));
    info->best_epoch = (int)json_integer_value(json_object_get(meta, "best_epoch"));
    info->best_val_acc = json_number_value(json_object_get(meta, "best_val_acc"));
    info->crc = get_u32(header + 24);
    info->bytes = HEADER_BYTES + (uint64_t)meta_len + get_u64(header + 16);
    const char *config = json_string_value(json_object_get(meta, "config"));
    if (config && !(info->config_json = strdup(config))) {
        snprintf(err, errlen, "checkpoint %s: out of memory", path);
        rc = -1;
    }
out:
    json_decref(meta);
    return rc;
}

CheckpointVerdict checkpoint_judge(const char *path, const CheckpointInfo *found,
                                   const CheckpointIdentity *want, bool adopt_legacy,
                                   char *why, size_t n)
{
    const CheckpointIdentity *have = &found->identity;
    if (!found->has_identity) {
        char hash[CHECKPOINT_HASH_LEN + 1] = "";
        if (!adopt_legacy) {
            snprintf(why, n, "checkpoint %s has no identity (it was written before "
                     "checkpoints named their job) and job %lld (uid %s) was created after "
                     "that: it is another job's, not adopted", path, (long long)want->job_id,
                     want->job_uid);
            return CHECKPOINT_FOREIGN;
        }
        if (!found->config_json || checkpoint_config_hash(found->config_json, hash) < 0 ||
            strcmp(hash, want->config_hash) != 0) {
            snprintf(why, n, "checkpoint %s has no identity and was written for another "
                     "configuration (hash %s) than job %lld's (hash %s): it is another "
                     "job's, not adopted", path, hash[0] ? hash : "unknown",
                     (long long)want->job_id, want->config_hash);
            return CHECKPOINT_FOREIGN;
        }
        return CHECKPOINT_OWN;
    }
    if (strcmp(have->job_uid, want->job_uid) != 0) {
        snprintf(why, n, "checkpoint %s belongs to another job (job %lld, uid %s; written by "
                 "its attempt %d) than job %lld (uid %s): not adopted", path,
                 (long long)have->job_id, have->job_uid, have->attempt,
                 (long long)want->job_id, want->job_uid);
        return CHECKPOINT_FOREIGN;
    }
    if (strcmp(have->config_hash, want->config_hash) != 0) {
        snprintf(why, n, "checkpoint %s of job %lld (uid %s) was written for another "
                 "configuration (hash %s) than the job has now (hash %s): resuming would mix "
                 "two runs; delete the job and submit it again", path,
                 (long long)want->job_id, want->job_uid, have->config_hash,
                 want->config_hash);
        return CHECKPOINT_MISMATCH;
    }
    if (want->data_hash[0] && strcmp(have->data_hash, want->data_hash) != 0) {
        snprintf(why, n, "checkpoint %s of job %lld (uid %s) was trained on other data (data "
                 "hash %s, the dataset now hashes to %s): its files, classes or split "
                 "changed since; restore the dataset, or delete the job and submit it again",
                 path, (long long)want->job_id, want->job_uid, have->data_hash,
                 want->data_hash);
        return CHECKPOINT_MISMATCH;
    }
    return CHECKPOINT_OWN;
}

/* ---- Hashes ----------------------------------------------------------------------------- */

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* Hashes a length, then the bytes: fields never run into each other. */
static uint64_t fnv_field(uint64_t h, const void *data, size_t n)
{
    uint64_t len = n;
    return fnv(fnv(h, &len, sizeof len), data, n);
}

static void hash_text(uint64_t h, char *out)
{
    snprintf(out, CHECKPOINT_HASH_LEN + 1, "%016llx", (unsigned long long)h);
}

int checkpoint_config_hash(const char *config_json, char *out)
{
    static const char *const ignored[] = {"threads", "priority", "stats_every", "probe_size",
                                          "preset", "keep_checkpoints"};
    out[0] = '\0';
    json_t *obj = json_loads(config_json, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return -1;
    }
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        json_object_del(obj, ignored[i]);
    char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    if (!text)
        return -1;
    hash_text(fnv_field(FNV_OFFSET, text, strlen(text)), out);
    free(text);
    return 0;
}

void checkpoint_data_hash(const DatasetIndex *index, char *out)
{
    uint64_t h = FNV_OFFSET;
    int32_t k = index->n_classes;
    h = fnv(h, &k, sizeof k);
    for (int c = 0; c < index->n_classes; c++)
        h = fnv_field(h, index->class_names[c], strlen(index->class_names[c]));
    for (int i = 0; i < index->n_files; i++) {
        int32_t label = index->labels[i];
        uint8_t split = index->split[i];
        h = fnv_field(h, index->paths[i], strlen(index->paths[i]));
        h = fnv(h, &label, sizeof label);
        h = fnv(h, &split, sizeof split);
    }
    hash_text(h, out);
}

/* ---- Setting aside ---------------------------------------------------------------------- */

int checkpoint_set_aside(const char *path, const char *dir, const char *label,
                         const char *why, char *dest, size_t destlen, char *err,
                         size_t errlen)
{
    if (file_mkdirs(dir, err, errlen) < 0)
        return -1;
    char stamp[32], target[4096], note[4096];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    struct stat st;
    for (int n = 0;; n++) {
        char suffix[16] = "";
        if (n)
            snprintf(suffix, sizeof suffix, ".%d", n);
        if (snprintf(target, sizeof target, "%s/%s.%s%s.ckpt", dir, label, stamp, suffix) >=
                (int)sizeof target ||
            snprintf(note, sizeof note, "%s/%s.%s%s.txt", dir, label, stamp, suffix) >=
                (int)sizeof note) {
            snprintf(err, errlen, "%s: the quarantine path is too long", dir);
            return -1;
        }
        if (lstat(target, &st) != 0 && errno == ENOENT)
            break;
        if (n == 1000) {
            snprintf(err, errlen, "%s: no free name for %s", dir, label);
            return -1;
        }
    }
    char line[1200];
    int len = snprintf(line, sizeof line, "%s\nfrom %s\n", why, path);
    FilePart part = {line, len < (int)sizeof line ? (size_t)len : sizeof line - 1};
    if (file_write_atomic(note, &part, 1, err, errlen) < 0)
        return -1;
    if (rename(path, target) < 0) {
        snprintf(err, errlen, "moving %s to %s: %s", path, target, strerror(errno));
        unlink(note);
        return -1;
    }
    if (dest && destlen)
        snprintf(dest, destlen, "%s", target);
    return 0;
}
