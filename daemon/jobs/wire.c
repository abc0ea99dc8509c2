/* wire.c — the JSON forms of the worker protocol (wire.h). */
#include "jobs/wire.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonout.h"

json_t *wire_number(double x)
{
    if (isnan(x))
        return json_string("nan");
    if (isinf(x))
        return json_string(x > 0 ? "inf" : "-inf");
    return json_real(x);
}

int wire_number_get(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s)
        return -1;
    if (strcmp(s, "nan") == 0)
        *out = NAN;
    else if (strcmp(s, "inf") == 0)
        *out = INFINITY;
    else if (strcmp(s, "-inf") == 0)
        *out = -INFINITY;
    else
        return -1;
    return 0;
}

/* A member name and where its value lives, for the table-driven forms below. */
typedef struct {
    const char *key;
    enum { F_DOUBLE, F_INT, F_INT64 } kind;
    size_t offset;
} Field;

static json_t *fields_build(const void *base, const Field *f, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++) {
        const char *p = (const char *)base + f[i].offset;
        json_t *v = f[i].kind == F_DOUBLE ? wire_number(*(const double *)p)
                    : f[i].kind == F_INT  ? json_integer(*(const int *)p)
                                          : json_integer(*(const int64_t *)p);
        if (json_object_set_new(o, f[i].key, v) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static int fields_parse(const json_t *o, void *base, const Field *f, size_t n,
                        const char *where, char *err, size_t errlen)
{
    if (!json_is_object(o)) {
        snprintf(err, errlen, "%s: must be an object", where);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(o, f[i].key);
        char *p = (char *)base + f[i].offset;
        if (f[i].kind == F_DOUBLE) {
            if (wire_number_get(v, (double *)p) == 0)
                continue;
        } else if (json_is_integer(v)) {
            json_int_t x = json_integer_value(v);
            if (f[i].kind == F_INT64) {
                *(int64_t *)p = x;
                continue;
            }
            if (x >= -2147483647 - 1 && x <= 2147483647) {
                *(int *)p = (int)x;
                continue;
            }
        }
        snprintf(err, errlen, "%s.%s: %s", where, f[i].key,
                 v ? (f[i].kind == F_DOUBLE ? "must be a number, \"nan\", \"inf\" or \"-inf\""
                                            : "must be an integer")
                   : "required");
        return -1;
    }
    return 0;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const Field epoch_fields[] = {
    {"epoch", F_INT, offsetof(StoreEpoch, epoch)},
    {"train_loss", F_DOUBLE, offsetof(StoreEpoch, train_loss)},
    {"train_acc", F_DOUBLE, offsetof(StoreEpoch, train_acc)},
    {"val_loss", F_DOUBLE, offsetof(StoreEpoch, val_loss)},
    {"val_acc", F_DOUBLE, offsetof(StoreEpoch, val_acc)},
    {"lr", F_DOUBLE, offsetof(StoreEpoch, lr)},
    {"seconds", F_DOUBLE, offsetof(StoreEpoch, seconds)},
    {"images_per_sec", F_DOUBLE, offsetof(StoreEpoch, images_per_sec)},
};

json_t *wire_epoch(const StoreEpoch *e)
{
    return fields_build(e, epoch_fields, N(epoch_fields));
}

int wire_epoch_parse(const json_t *v, StoreEpoch *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    return fields_parse(v, e, epoch_fields, N(epoch_fields), "epoch", err, errlen);
}

static const Field stat_fields[] = {
    {"layer_index", F_INT, offsetof(StoreLayerStat, layer_index)},
    {"n", F_INT64, offsetof(StoreLayerStat, n)},
    {"mean", F_DOUBLE, offsetof(StoreLayerStat, mean)},
    {"std", F_DOUBLE, offsetof(StoreLayerStat, std)},
    {"min", F_DOUBLE, offsetof(StoreLayerStat, min)},
    {"max", F_DOUBLE, offsetof(StoreLayerStat, max)},
    {"q1", F_DOUBLE, offsetof(StoreLayerStat, q1)},
    {"median", F_DOUBLE, offsetof(StoreLayerStat, median)},
    {"q3", F_DOUBLE, offsetof(StoreLayerStat, q3)},
    {"whisker_lo", F_DOUBLE, offsetof(StoreLayerStat, whisker_lo)},
    {"whisker_hi", F_DOUBLE, offsetof(StoreLayerStat, whisker_hi)},
    {"p1", F_DOUBLE, offsetof(StoreLayerStat, p1)},
    {"p99", F_DOUBLE, offsetof(StoreLayerStat, p99)},
    {"zero_frac", F_DOUBLE, offsetof(StoreLayerStat, zero_frac)},
    {"nonfinite", F_INT64, offsetof(StoreLayerStat, nonfinite)},
    {"predicted_var", F_DOUBLE, offsetof(StoreLayerStat, predicted_var)},
    {"dead_units", F_INT64, offsetof(StoreLayerStat, dead_units)},
    {"saturation", F_DOUBLE, offsetof(StoreLayerStat, saturation)},
    {"flags", F_INT, offsetof(StoreLayerStat, flags)},
    {"hist_lo", F_DOUBLE, offsetof(StoreLayerStat, hist_lo)},
    {"hist_hi", F_DOUBLE, offsetof(StoreLayerStat, hist_hi)},
    {"mean_abs", F_DOUBLE, offsetof(StoreLayerStat, mean_abs)},
    {"theory_var", F_DOUBLE, offsetof(StoreLayerStat, theory_var)},
    {"fan_sum", F_DOUBLE, offsetof(StoreLayerStat, fan_sum)},
    {"init_iters", F_INT, offsetof(StoreLayerStat, init_iters)},
    {"units", F_INT64, offsetof(StoreLayerStat, units)},
};

json_t *wire_stat(const StoreLayerStat *s)
{
    json_t *o = fields_build(s, stat_fields, N(stat_fields));
    json_t *hist = json_array();
    for (int i = 0; hist && i < STORE_HIST_BINS; i++)
        if (json_array_append_new(hist, json_integer(s->hist[i])) < 0) {
            json_decref(hist);
            hist = NULL;
        }
    if (!o || !hist || json_object_set_new(o, "hist", hist) < 0 ||
        json_object_set_new(o, "mode", json_string(store_mode_name(s->mode))) < 0 ||
        json_object_set_new(o, "quantity", json_string(store_quantity_name(s->quantity))) < 0 ||
        json_object_set_new(o, "layer", json_string(s->layer_name)) < 0 ||
        json_object_set_new(o, "type", json_string(s->layer_type)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Copies string member key of o into dst (n bytes); -1 when absent, not a string or too
 * long. */
static int copy_string(const json_t *o, const char *key, char *dst, size_t n)
{
    const char *v = json_string_value(json_object_get(o, key));
    if (!v || strlen(v) >= n)
        return -1;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

int wire_stat_parse(const json_t *v, StoreLayerStat *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (fields_parse(v, s, stat_fields, N(stat_fields), "stat", err, errlen) < 0)
        return -1;
    if (copy_string(v, "layer", s->layer_name, sizeof s->layer_name) < 0 ||
        copy_string(v, "type", s->layer_type, sizeof s->layer_type) < 0) {
        snprintf(err, errlen, "stat.layer, stat.type: strings shorter than %d bytes required",
                 STORE_NAME_MAX);
        return -1;
    }
    const char *mode = json_string_value(json_object_get(v, "mode"));
    const char *quantity = json_string_value(json_object_get(v, "quantity"));
    if (!mode || !quantity || store_mode_parse(mode, &s->mode) < 0 ||
        store_quantity_parse(quantity, &s->quantity) < 0) {
        snprintf(err, errlen, "stat.mode, stat.quantity: unknown");
        return -1;
    }
    const json_t *hist = json_object_get(v, "hist");
    if (!json_is_array(hist) || json_array_size(hist) != STORE_HIST_BINS) {
        snprintf(err, errlen, "stat.hist: must be an array of %d counts", STORE_HIST_BINS);
        return -1;
    }
    for (int i = 0; i < STORE_HIST_BINS; i++) {
        const json_t *c = json_array_get(hist, (size_t)i);
        if (!json_is_integer(c) || json_integer_value(c) < 0 ||
            json_integer_value(c) > UINT32_MAX) {
            snprintf(err, errlen, "stat.hist[%d]: must be a count", i);
            return -1;
        }
        s->hist[i] = (uint32_t)json_integer_value(c);
    }
    return 0;
}

static const Field progress_fields[] = {
    {"epoch", F_INT, offsetof(StoreJobProgress, epoch)},
    {"step", F_INT, offsetof(StoreJobProgress, step)},
    {"steps_per_epoch", F_INT, offsetof(StoreJobProgress, steps_per_epoch)},
    {"images_per_sec", F_DOUBLE, offsetof(StoreJobProgress, images_per_sec)},
    {"eta_seconds", F_DOUBLE, offsetof(StoreJobProgress, eta_seconds)},
    {"best_val_acc", F_DOUBLE, offsetof(StoreJobProgress, best_val_acc)},
    {"best_epoch", F_INT, offsetof(StoreJobProgress, best_epoch)},
};

json_t *wire_progress(const StoreJobProgress *p)
{
    return fields_build(p, progress_fields, N(progress_fields));
}

int wire_progress_parse(const json_t *v, StoreJobProgress *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    return fields_parse(v, p, progress_fields, N(progress_fields), "progress", err, errlen);
}

static const Field result_fields[] = {
    {"epoch", F_INT, offsetof(StoreResult, epoch)},
    {"accuracy", F_DOUBLE, offsetof(StoreResult, accuracy)},
    {"precision_macro", F_DOUBLE, offsetof(StoreResult, precision_macro)},
    {"recall_macro", F_DOUBLE, offsetof(StoreResult, recall_macro)},
    {"f1_macro", F_DOUBLE, offsetof(StoreResult, f1_macro)},
    {"loss", F_DOUBLE, offsetof(StoreResult, loss)},
};

static const Field step_fields[] = {
    {"global_step", F_INT64, offsetof(StoreStep, global_step)},
    {"epoch", F_INT, offsetof(StoreStep, epoch)},
    {"step", F_INT, offsetof(StoreStep, step)},
    {"steps_per_epoch", F_INT, offsetof(StoreStep, steps_per_epoch)},
    {"loss", F_DOUBLE, offsetof(StoreStep, loss)},
    {"accuracy", F_DOUBLE, offsetof(StoreStep, accuracy)},
};

json_t *wire_step(const StoreStep *p)
{
    return fields_build(p, step_fields, N(step_fields));
}

int wire_step_parse(const json_t *v, StoreStep *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (fields_parse(v, p, step_fields, N(step_fields), "step", err, errlen) < 0)
        return -1;
    if (p->global_step < 1 || p->epoch < 1 || p->step < 1 || p->steps_per_epoch < p->step) {
        snprintf(err, errlen, "step: global_step, epoch and step must be >= 1 and step <= "
                              "steps_per_epoch");
        return -1;
    }
    return 0;
}

json_t *wire_results(const StoreResult *r)
{
    json_t *o = fields_build(r, result_fields, N(result_fields));
    json_t *confusion = json_loads(r->confusion_json ? r->confusion_json : "[]", 0, NULL);
    json_t *per_class = json_loads(r->per_class_json ? r->per_class_json : "[]", 0, NULL);
    if (!o || !confusion || !per_class ||
        json_object_set_new(o, "confusion", confusion) < 0 ||
        json_object_set_new(o, "per_class", per_class) < 0) {
        if (o && !json_object_get(o, "confusion"))
            json_decref(confusion);
        if (o && !json_object_get(o, "per_class"))
            json_decref(per_class);
        json_decref(o);
        return NULL;
    }
    return o;
}

int wire_results_parse(const json_t *v, StoreResult *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (fields_parse(v, r, result_fields, N(result_fields), "results", err, errlen) < 0)
        return -1;
    const json_t *confusion = json_object_get(v, "confusion");
    const json_t *per_class = json_object_get(v, "per_class");
    if (!json_is_array(confusion) || !json_is_array(per_class)) {
        snprintf(err, errlen, "results.confusion, results.per_class: arrays required");
        return -1;
    }
    r->confusion_json = json_text(confusion, JSON_COMPACT);
    r->per_class_json = json_text(per_class, JSON_COMPACT);
    if (!r->confusion_json || !r->per_class_json) {
        store_result_deinit(r);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void wire_files_digest_begin(uint64_t *h)
{
    *h = 0xcbf29ce484222325ULL;
}

static void fnv(uint64_t *h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        *h ^= p[i];
        *h *= 0x100000001b3ULL;
    }
}

void wire_files_digest_add(uint64_t *h, const char *relpath, int64_t size)
{
    char num[32];
    int len = snprintf(num, sizeof num, "%" PRId64, size);
    fnv(h, relpath, strlen(relpath) + 1);
    fnv(h, num, (size_t)len + 1);
}

void wire_files_digest_end(uint64_t h, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, h);
}
