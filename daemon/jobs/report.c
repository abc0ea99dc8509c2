/* report.c — the one JSON form of each stored entity: epochs, jobs, datasets, layer
 * statistics (report.h). */
#include "jobs/report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *report_job_core(const StoreJob *j, const char *phase);

json_t *report_number(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *flag_names(int flags)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    if (flags & PROBE_FLAG_DEAD)
        json_array_append_new(a, json_string("dead"));
    if (flags & PROBE_FLAG_SATURATED)
        json_array_append_new(a, json_string("saturated"));
    if (flags & PROBE_FLAG_NONFINITE)
        json_array_append_new(a, json_string("nonfinite"));
    return a;
}

json_t *report_layer_stat(const StoreLayerStat *s, bool histogram)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "layer_index", json_integer(s->layer_index));
    json_object_set_new(o, "layer", json_string(s->layer_name));
    json_object_set_new(o, "type", json_string(s->layer_type));
    json_object_set_new(o, "mode", json_string(store_mode_name(s->mode)));
    json_object_set_new(o, "quantity", json_string(store_quantity_name(s->quantity)));
    json_object_set_new(o, "n", json_integer(s->n));
    const struct { const char *key; double v; } numbers[] = {
        {"mean", s->mean}, {"std", s->std}, {"min", s->min}, {"max", s->max},
        {"q1", s->q1}, {"median", s->median}, {"q3", s->q3},
        {"whisker_lo", s->whisker_lo}, {"whisker_hi", s->whisker_hi},
        {"p1", s->p1}, {"p99", s->p99}, {"zero_frac", s->zero_frac},
        {"predicted_var", s->predicted_var}, {"saturation", s->saturation},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        json_object_set_new(o, numbers[i].key, report_number(numbers[i].v));
    json_object_set_new(o, "nonfinite", json_integer(s->nonfinite));
    json_object_set_new(o, "dead_units", json_integer(s->dead_units));
    json_object_set_new(o, "flags", flag_names(s->flags));
    /* The depth profile's extra statistic and the theory's prediction (epoch 0). */
    double tstd = s->theory_var >= 0 ? sqrt(s->theory_var) : NAN;
    json_object_set_new(o, "mean_abs", report_number(s->mean_abs));
    json_object_set_new(o, "theory_var", report_number(s->theory_var));
    json_object_set_new(o, "theory_std", report_number(tstd));
    json_object_set_new(o, "theory_gap", report_number(s->std > 0 && tstd > 0
                                                           ? log10(s->std / tstd) : NAN));
    json_object_set_new(o, "fan_sum", report_number(s->fan_sum));
    json_object_set_new(o, "init_iters", s->init_iters >= 0 ? json_integer(s->init_iters)
                                                            : json_null());
    json_object_set_new(o, "units", s->units > 0 ? json_integer(s->units) : json_null());
    json_object_set_new(o, "dead_frac", s->units > 0 ? json_real((double)s->dead_units /
                                                                 (double)s->units)
                                                     : json_null());
    if (histogram) {
        json_t *counts = json_array();
        for (int i = 0; counts && i < STORE_HIST_BINS; i++)
            json_array_append_new(counts, json_integer(s->hist[i]));
        json_object_set_new(o, "histogram", json_pack("{s:o, s:o, s:o}",
                                                      "lo", report_number(s->hist_lo),
                                                      "hi", report_number(s->hist_hi),
                                                      "counts", counts));
    }
    return o;
}

json_t *report_epoch(const StoreEpoch *e)
{
    return json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "epoch", e->epoch,
                     "train_loss", report_number(e->train_loss),
                     "train_acc", report_number(e->train_acc),
                     "val_loss", report_number(e->val_loss),
                     "val_acc", report_number(e->val_acc), "lr", report_number(e->lr),
                     "seconds", report_number(e->seconds),
                     "images_per_sec", report_number(e->images_per_sec));
}

json_t *report_epoch_event(int64_t job_id, const StoreEpoch *e)
{
    json_t *o = report_epoch(e);
    if (o && json_object_set_new(o, "job_id", json_integer(job_id)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void report_train_epoch_to_store(const TrainEpoch *e, StoreEpoch *row)
{
    *row = (StoreEpoch){.epoch = e->epoch, .train_loss = e->train_loss,
                        .train_acc = e->train_acc, .val_loss = e->val_loss,
                        .val_acc = e->val_acc, .lr = e->lr, .seconds = e->seconds,
                        .images_per_sec = e->images_per_sec};
}

void report_train_progress_to_store(const TrainProgress *p, StoreJobProgress *row)
{
    *row = (StoreJobProgress){.epoch = p->epoch, .step = p->step,
                              .steps_per_epoch = p->steps_per_epoch,
                              .images_per_sec = p->images_per_sec > 0 ? p->images_per_sec : NAN,
                              .eta_seconds = p->eta_seconds,
                              .best_val_acc = p->best_val_acc >= 0 ? p->best_val_acc : NAN,
                              .best_epoch = p->best_epoch};
}

void report_probe_to_store(const ProbeRow *p, StoreLayerStat *s)
{
    memset(s, 0, sizeof *s);
    s->mode = p->mode == PROBE_MODE_TRAIN ? STORE_MODE_TRAIN : STORE_MODE_INFERENCE;
    s->quantity = p->quantity == PROBE_WEIGHT       ? STORE_QTY_WEIGHT
                  : p->quantity == PROBE_ACTIVATION ? STORE_QTY_ACTIVATION
                                                    : STORE_QTY_GRADIENT;
    s->layer_index = p->layer_index;
    snprintf(s->layer_name, sizeof s->layer_name, "%s", p->layer_name);
    snprintf(s->layer_type, sizeof s->layer_type, "%s", p->layer_type);
    s->n = p->s.n;
    s->mean = p->s.mean;
    s->std = p->s.std;
    s->min = p->s.min;
    s->max = p->s.max;
    s->q1 = p->s.q1;
    s->median = p->s.median;
    s->q3 = p->s.q3;
    s->whisker_lo = p->s.whisker_lo;
    s->whisker_hi = p->s.whisker_hi;
    s->p1 = p->s.p1;
    s->p99 = p->s.p99;
    s->zero_frac = p->s.zero_frac;
    s->nonfinite = p->s.nonfinite;
    s->predicted_var = p->predicted_var;
    s->dead_units = p->has_health ? p->health.dead_units : 0;
    s->saturation = p->has_health ? p->health.saturated_frac : NAN;
    s->flags = (int)p->flags;
    s->hist_lo = p->s.hist_lo;
    s->hist_hi = p->s.hist_hi;
    memcpy(s->hist, p->s.hist, sizeof s->hist);
    s->mean_abs = p->s.n > p->s.nonfinite ? p->s.mean_abs : NAN;
    s->theory_var = p->theory_var;
    s->fan_sum = p->fan_sum;
    s->init_iters = p->init_iters;
    s->units = p->has_health ? p->health.units : 0;
}

json_t *report_time(double t)
{
    return t > 0 ? json_real(t) : json_null();
}

static json_t *report_job_core(const StoreJob *j, const char *phase);

static json_t *nullable_id(int64_t id)
{
    return id ? json_integer(id) : json_null();
}

/* What holds a queued job back, or JSON null. */
static json_t *waiting_for(const StoreJob *j)
{
    char text[STORE_NAME_MAX + 64];
    if (j->status != STORE_JOB_QUEUED || !j->dataset_scanning)
        return json_null();
    snprintf(text, sizeof text, "the scan of dataset \"%s\"", j->dataset);
    return json_string(text);
}

/* Where job j runs or ran: {"host", "worker", "slurm_job_id", "lease_expires_at"}, each
 * null when unknown. */
static json_t *where_json(const StoreJob *j)
{
    return json_pack("{s:o, s:o, s:o, s:o}", "host",
                     j->host[0] ? json_string(j->host) : json_null(), "worker",
                     j->worker[0] ? json_string(j->worker) : json_null(), "slurm_job_id",
                     j->slurm_job_id[0] ? json_string(j->slurm_job_id) : json_null(),
                     "lease_expires_at", report_time(j->lease_expires_at));
}

/* A stored JSON array of tags, or [] (new reference). */
static json_t *tags_of(const char *tags_json)
{
    json_t *t = tags_json ? json_loads(tags_json, 0, NULL) : NULL;
    if (json_is_array(t))
        return t;
    json_decref(t);
    return json_array();
}

static json_t *text_or_null(const char *text)
{
    return text ? json_string(text) : json_null();
}

/* Sets the members every record a person names shares: name, tags, note. */
static json_t *with_meta(json_t *o, const char *name, const char *tags_json, const char *note)
{
    if (o && (json_object_set_new(o, "name", text_or_null(name)) < 0 ||
              json_object_set_new(o, "tags", tags_of(tags_json)) < 0 ||
              json_object_set_new(o, "note", text_or_null(note)) < 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *report_job(const StoreJob *j, const char *phase)
{
    json_t *o = report_job_core(j, phase);
    o = with_meta(o, j->name, j->tags_json, j->note);
    if (o && json_object_set_new(o, "where", where_json(j)) < 0) {
        json_decref(o);
        return NULL;
    }
    if (o && json_object_set_new(o, "disk_bytes", j->disk_bytes >= 0
                                                      ? json_integer(j->disk_bytes)
                                                      : json_null()) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *report_grid(const StoreGrid *g)
{
    json_t *counts = json_object();
    for (int st = 0; counts && st < STORE_JOB_STATUS_COUNT; st++)
        json_object_set_new(counts, store_job_status_name((StoreJobStatus)st),
                            json_integer(g->n_status[st]));
    json_t *config = g->config_json ? json_loads(g->config_json, 0, NULL) : NULL;
    json_t *seeds = json_object_get(config, "seeds");
    json_t *o = json_pack("{s:I, s:o, s:o, s:i, s:i, s:o}", "id", (json_int_t)g->id,
                          "created_at", report_time(g->created_at),
                          "config", config ? config : json_object(), "n_jobs", g->n_jobs,
                          "n_seeds", json_is_array(seeds) ? (int)json_array_size(seeds) : 1,
                          "status_counts", counts);
    return with_meta(o, g->name, g->tags_json, g->note);
}

json_t *report_step(const StoreStep *p)
{
    return json_pack("{s:I, s:i, s:i, s:i, s:o, s:o}", "global_step",
                     (json_int_t)p->global_step, "epoch", p->epoch, "step", p->step,
                     "steps_per_epoch", p->steps_per_epoch, "loss", report_number(p->loss),
                     "accuracy", report_number(p->accuracy));
}

json_t *report_step_event(int64_t job_id, const StoreStep *p)
{
    json_t *o = report_step(p);
    if (o && json_object_set_new(o, "job_id", json_integer(job_id)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *report_job_core(const StoreJob *j, const char *phase)
{
    const StoreJobProgress *p = &j->progress;
    json_t *config = j->config_json ? json_loads(j->config_json, 0, NULL) : NULL;
    return json_pack("{s:I, s:o, s:s, s:i, s:s, s:s, s:s, s:I, s:i, s:o, s:o, s:o, s:o, "
                     "s:i, s:o, s:{s:o, s:i, s:i, s:i, s:o, s:o, s:o, s:i}, s:o}",
                     "id", (json_int_t)j->id, "grid_id", nullable_id(j->grid_id),
                     "status", store_job_status_name(j->status), "priority", j->priority,
                     "dataset", j->dataset, "model", j->model, "initializer", j->initializer,
                     "seed", (json_int_t)j->seed, "epochs", j->epochs,
                     "created_at", report_time(j->created_at),
                     "started_at", report_time(j->started_at),
                     "finished_at", report_time(j->finished_at),
                     "error", j->error ? json_string(j->error) : json_null(),
                     "attempts", j->attempts, "waiting_for", waiting_for(j),
                     "progress",
                     "phase", phase ? json_string(phase) : json_null(),
                     "epoch", p->epoch, "step", p->step,
                     "steps_per_epoch", p->steps_per_epoch,
                     "images_per_sec", report_number(p->images_per_sec),
                     "eta_seconds", report_number(p->eta_seconds),
                     "best_val_acc", report_number(p->best_val_acc),
                     "best_epoch", p->best_epoch,
                     "config", config ? config : json_object());
}

json_t *report_results(const StoreResult *res, const json_t *class_names)
{
    json_t *per_class = json_loads(res->per_class_json ? res->per_class_json : "[]", 0, NULL);
    size_t i;
    json_t *row;
    json_array_foreach(per_class, i, row) {
        json_t *name = json_array_get(class_names, i);
        json_object_set_new(row, "name", name ? json_incref(name) : json_null());
    }
    json_t *confusion = json_loads(res->confusion_json ? res->confusion_json : "[]", 0, NULL);
    json_t *names = class_names ? json_incref((json_t *)class_names) : json_array();
    return json_pack("{s:I, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "job_id", (json_int_t)res->job_id, "epoch", res->epoch,
                     "accuracy", report_number(res->accuracy),
                     "precision_macro", report_number(res->precision_macro),
                     "recall_macro", report_number(res->recall_macro),
                     "f1_macro", report_number(res->f1_macro),
                     "loss", report_number(res->loss),
                     "class_names", names,
                     "confusion", confusion ? confusion : json_array(),
                     "per_class", per_class ? per_class : json_array());
}

json_t *report_dataset(const StoreDataset *d)
{
    json_t *classes = d->class_names_json ? json_loads(d->class_names_json, 0, NULL) : NULL;
    return json_pack("{s:I, s:s, s:s, s:{s:f, s:f, s:f}, s:I, s:s, s:o, s:o, s:I, "
                     "s:{s:I, s:I, s:I}, s:I, s:o}",
                     "id", (json_int_t)d->id, "name", d->name, "path", d->path,
                     "split", "train", d->train_frac, "val", d->val_frac, "test", d->test_frac,
                     "seed", (json_int_t)d->seed,
                     "status", store_dataset_status_name(d->status),
                     "error", d->error ? json_string(d->error) : json_null(),
                     "classes", classes ? classes : json_array(),
                     "n_files", (json_int_t)d->n_files,
                     "n_split", "train", (json_int_t)d->n_split[STORE_SPLIT_TRAIN],
                     "val", (json_int_t)d->n_split[STORE_SPLIT_VAL],
                     "test", (json_int_t)d->n_split[STORE_SPLIT_TEST],
                     "n_skipped", (json_int_t)d->n_skipped,
                     "created_at", report_time(d->created_at));
}

/* Keras prints (None, C) after a layer that flattens. */
static bool layer_is_flat(const Layer *l, const bool *flat)
{
    switch (l->type) {
    case LAYER_DENSE:
    case LAYER_FLATTEN:
        return true;
    case LAYER_GAP:
        return !l->keepdims;
    case LAYER_BATCHNORM:
    case LAYER_ACTIVATION:
    case LAYER_DROPOUT:
    case LAYER_ADD:
        return flat[l->in[0]];
    default:
        return false;
    }
}

static json_t *layer_row(const Net *net, const Layer *l, bool flat, const InitSpec *spec,
                         FanConvention conv)
{
    size_t params = 0, trainable = 0;
    int fan_in = -1, fan_out = -1;
    double variance = NAN;
    for (int k = 0; k < l->n_params; k++) {
        const Param *p = net_param_const(net, l->param_first + k);
        params += p->size;
        if (p->trainable)
            trainable += p->size;
        if (p->kind == PARAM_KERNEL || p->kind == PARAM_DEPTHWISE_KERNEL) {
            init_fans(p, conv, &fan_in, &fan_out);
            variance = init_spec_variance(spec, p, conv);
        }
    }
    json_t *shape = flat ? json_pack("[i]", l->c) : json_pack("[i, i, i]", l->h, l->w, l->c);
    json_t *o = json_pack("{s:s, s:s, s:o, s:I, s:I, s:I}", "name", l->name, "type",
                          model_layer_type_name(l->type), "output_shape", shape, "params",
                          (json_int_t)params, "trainable_params", (json_int_t)trainable,
                          "non_trainable_params", (json_int_t)(params - trainable));
    if (o && fan_in >= 0) {
        bool uniform;
        double scale = init_spec_scale(spec, fan_in, fan_out, &uniform);
        json_object_set_new(o, "fan_in", json_integer(fan_in));
        json_object_set_new(o, "fan_out", json_integer(fan_out));
        if (isfinite(scale))
            json_object_set_new(o, uniform ? "init_limit" : "init_std", json_real(scale));
        json_object_set_new(o, "init_variance", report_number(variance));
    }
    return o;
}

json_t *report_model_summary(const Net *net, const ModelConfig *cfg, Initializer init,
                             FanConvention conv, unsigned long long seed)
{
    InitSpec spec = init_spec_default(init);
    return report_model_summary_spec(net, cfg, &spec, conv, seed);
}

json_t *report_model_summary_spec(const Net *net, const ModelConfig *cfg,
                                  const InitSpec *spec, FanConvention conv,
                                  unsigned long long seed)
{
    int n = net_n_layers(net);
    bool *flat = calloc((size_t)n, sizeof *flat);
    json_t *layers = json_array();
    if (!flat || !layers) {
        free(flat);
        json_decref(layers);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const Layer *l = net_layer(net, i);
        flat[i] = layer_is_flat(l, flat);
        json_array_append_new(layers, layer_row(net, l, flat[i], spec, conv));
    }
    free(flat);
    size_t tr = net_count_params(net, true), nt = net_count_params(net, false);
    json_t *o = json_pack(
        "{s:s, s:i, s:i, s:i, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:o}", "model", cfg->name,
        "size", cfg->size, "channels", cfg->channels, "classes", cfg->classes, "head",
        model_head_name(cfg->head), "init", init_name(spec->kind), "fan_convention",
        fan_convention_name(conv), "seed", (json_int_t)seed, "total_params",
        (json_int_t)(tr + nt), "trainable_params", (json_int_t)tr, "non_trainable_params",
        (json_int_t)nt, "n_layers", n, "layers", layers);
    if (o && spec->gain != 1.0)
        json_object_set_new(o, "init_gain", json_real(spec->gain));
    if (o && spec->zero_gamma)
        json_object_set_new(o, "zero_gamma", json_true());
    if (o && spec->kind == INIT_VARIANCE_SCALING) {
        json_object_set_new(o, "init_scale", json_real(spec->scale));
        json_object_set_new(o, "init_mode", json_string(init_mode_name(spec->mode)));
        json_object_set_new(o, "init_distribution",
                            json_string(init_distribution_name(spec->distribution)));
    }
    return o;
}
