/* routes_results.c — what a job recorded: epochs, layer statistics, histograms, test
 * results, and a grid's Table 1. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/db.h"
#include "api/router.h"
#include "jobs/report.h"
#include "jobs/table1.h"

/* The job of the path, with its config (for milestones); 404 when missing. */
static int load_job(ApiRequest *req, ApiReply *reply, Store *s, StoreJob *job)
{
    const char *text = api_param(req, "id");
    char *end;
    long long id = text ? strtoll(text, &end, 10) : 0;
    if (!text || *end || id <= 0) {
        api_reply_problem(reply, 404, NULL, "\"%.40s\" is not a job id", text ? text : "");
        return -1;
    }
    int rc = store_job_get(s, id, job);
    if (rc == STORE_NOT_FOUND) {
        api_reply_problem(reply, 404, NULL, "job %lld does not exist", id);
        return -1;
    }
    if (rc != STORE_OK) {
        api_reply_store_error(reply, s);
        return -1;
    }
    return 0;
}

static int get_epochs(ApiRequest *req, ApiReply *reply)
{
    Store *s = api_store(req, reply);
    StoreJob job;
    if (!s || load_job(req, reply, s, &job) < 0)
        return 0;
    int csv = api_wants_csv(req, reply);
    StoreEpoch *rows = NULL;
    int n = 0;
    json_t *config = job.config_json ? json_loads(job.config_json, 0, NULL) : NULL;
    json_t *milestones = json_incref(json_object_get(config, "milestones"));
    int64_t id = job.id;
    json_decref(config);
    store_job_deinit(&job);
    if (csv < 0 || store_epoch_list(s, id, &rows, &n) != STORE_OK) {
        json_decref(milestones);
        return csv < 0 ? 0 : api_reply_store_error(reply, s);
    }
    json_t *list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(list, report_epoch(&rows[i]));
    free(rows);
    if (csv) {
        static const char *const columns[] = {"epoch", "train_loss", "train_acc", "val_loss",
                                              "val_acc", "lr", "seconds", "images_per_sec",
                                              NULL};
        int rc = api_reply_csv(reply, columns, list);
        json_decref(list);
        json_decref(milestones);
        return rc;
    }
    return api_reply_json(reply, 200, json_pack("{s:I, s:o, s:o}", "job_id", (json_int_t)id,
                                                "milestones",
                                                milestones ? milestones : json_array(),
                                                "epochs", list));
}

typedef struct {
    StoreMode mode;
    StoreQuantity quantity;
    int epoch;
    long long layer; /* -1: all */
    json_t *available;
} StatsQuery;

/* Reads quantity, mode, epoch (default: the latest with statistics) and layer. */
static int stats_query(ApiRequest *req, ApiReply *reply, Store *s, int64_t id, StatsQuery *q)
{
    const char *quantity = api_query(req, "quantity"), *mode = api_query(req, "mode");
    q->quantity = STORE_QTY_ACTIVATION;
    q->mode = STORE_MODE_INFERENCE;
    if (quantity && store_quantity_parse(quantity, &q->quantity) < 0)
        return api_reply_problem_field(reply, 400, "quantity", "must be weight, activation "
                                       "or gradient, not \"%.40s\"", quantity), -1;
    if (mode && store_mode_parse(mode, &q->mode) < 0)
        return api_reply_problem_field(reply, 400, "mode", "must be train or inference, not "
                                       "\"%.40s\"", mode), -1;
    int *epochs = NULL, n = 0;
    if (store_stats_epochs(s, id, &epochs, &n) != STORE_OK)
        return api_reply_store_error(reply, s), -1;
    q->available = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(q->available, json_integer(epochs[i]));
    long long epoch;
    int rc = api_query_int(req, reply, "epoch", n ? epochs[n - 1] : 0, 0, 1000000, &epoch);
    free(epochs);
    if (rc < 0 || api_query_int(req, reply, "layer", -1, 0, 100000, &q->layer) < 0) {
        json_decref(q->available);
        return -1;
    }
    q->epoch = (int)epoch;
    return 0;
}

/* The CSV columns of a layer statistic (its JSON keys), then with histograms "hist_lo",
 * "hist_hi" and "bin_0".."bin_63" (flatten_histograms), with "epoch" first when asked. */
#define STAT_CSV_COLUMNS 31
static const char *const stat_columns[STAT_CSV_COLUMNS] = {
    "layer_index", "layer", "type", "mode", "quantity", "n", "mean", "std", "min",
    "max", "q1", "median", "q3", "whisker_lo", "whisker_hi", "p1", "p99",
    "zero_frac", "nonfinite", "predicted_var", "dead_units", "saturation", "flags",
    "mean_abs", "theory_var", "theory_std", "theory_gap", "fan_sum", "init_iters", "units",
    "dead_frac"};
static const char *const bin_names[STORE_HIST_BINS] = {
    "bin_0", "bin_1", "bin_2", "bin_3", "bin_4", "bin_5", "bin_6", "bin_7", "bin_8",
    "bin_9", "bin_10", "bin_11", "bin_12", "bin_13", "bin_14", "bin_15", "bin_16", "bin_17",
    "bin_18", "bin_19", "bin_20", "bin_21", "bin_22", "bin_23", "bin_24", "bin_25",
    "bin_26", "bin_27", "bin_28", "bin_29", "bin_30", "bin_31", "bin_32", "bin_33",
    "bin_34", "bin_35", "bin_36", "bin_37", "bin_38", "bin_39", "bin_40", "bin_41",
    "bin_42", "bin_43", "bin_44", "bin_45", "bin_46", "bin_47", "bin_48", "bin_49",
    "bin_50", "bin_51", "bin_52", "bin_53", "bin_54", "bin_55", "bin_56", "bin_57",
    "bin_58", "bin_59", "bin_60", "bin_61", "bin_62", "bin_63"};

static void stat_csv_columns(const char **out, bool histograms, bool epoch)
{
    int n = 0;
    if (epoch)
        out[n++] = "epoch";
    for (int i = 0; i < STAT_CSV_COLUMNS; i++)
        out[n++] = stat_columns[i];
    if (histograms) {
        out[n++] = "hist_lo";
        out[n++] = "hist_hi";
        for (int i = 0; i < STORE_HIST_BINS; i++)
            out[n++] = bin_names[i];
    }
    out[n] = NULL;
}

/* Copies each row's histogram into flat keys for the CSV: hist_lo, hist_hi, bin_i. */
static void flatten_histograms(json_t *rows)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_t *h = json_object_get(row, "histogram");
        json_object_set(row, "hist_lo", json_object_get(h, "lo"));
        json_object_set(row, "hist_hi", json_object_get(h, "hi"));
        json_t *counts = json_object_get(h, "counts");
        for (int b = 0; b < STORE_HIST_BINS; b++)
            json_object_set(row, bin_names[b], json_array_get(counts, (size_t)b));
    }
}

static int stats_reply(ApiRequest *req, ApiReply *reply, bool histograms)
{
    Store *s = api_store(req, reply);
    StoreJob job;
    if (!s || load_job(req, reply, s, &job) < 0)
        return 0;
    int64_t id = job.id;
    store_job_deinit(&job);
    StatsQuery q;
    int csv = api_wants_csv(req, reply);
    if (csv < 0 || stats_query(req, reply, s, id, &q) < 0)
        return 0;
    StoreLayerStat *rows = NULL;
    int n = 0;
    json_t *layers = json_array();
    if (histograms && q.layer >= 0) {
        StoreLayerStat one;
        int rc = store_stats_get_layer(s, id, q.epoch, q.mode, q.quantity, (int)q.layer, &one);
        if (rc == STORE_OK)
            json_array_append_new(layers, report_layer_stat(&one, true));
        else if (rc != STORE_NOT_FOUND) {
            json_decref(layers);
            json_decref(q.available);
            return api_reply_store_error(reply, s);
        }
    } else {
        if (store_stats_get(s, id, q.epoch, q.mode, q.quantity, &rows, &n) != STORE_OK) {
            json_decref(layers);
            json_decref(q.available);
            return api_reply_store_error(reply, s);
        }
        for (int i = 0; i < n; i++)
            json_array_append_new(layers, report_layer_stat(&rows[i], histograms));
        free(rows);
    }
    if (csv) {
        const char *columns[STAT_CSV_COLUMNS + 3 + STORE_HIST_BINS + 1];
        stat_csv_columns(columns, histograms, false);
        if (histograms)
            flatten_histograms(layers);
        int rc = api_reply_csv(reply, columns, layers);
        json_decref(layers);
        json_decref(q.available);
        return rc;
    }
    return api_reply_json(reply, 200, json_pack(
        "{s:I, s:i, s:s, s:s, s:o, s:o}", "job_id", (json_int_t)id, "epoch", q.epoch, "mode",
        store_mode_name(q.mode), "quantity", store_quantity_name(q.quantity),
        "epochs_available", q.available, "layers", layers));
}

static int get_stats(ApiRequest *req, ApiReply *reply)
{
    return stats_reply(req, reply, false);
}

static int get_histograms(ApiRequest *req, ApiReply *reply)
{
    return stats_reply(req, reply, true);
}

static int get_results(ApiRequest *req, ApiReply *reply)
{
    Store *s = api_store(req, reply);
    StoreJob job;
    if (!s || load_job(req, reply, s, &job) < 0)
        return 0;
    int64_t id = job.id;
    char dataset[STORE_NAME_MAX];
    snprintf(dataset, sizeof dataset, "%s", job.dataset);
    /* How the moving statistics the test ran with were made (0: Keras' moving averages). */
    json_t *config = job.config_json ? json_loads(job.config_json, 0, NULL) : NULL;
    json_int_t recalibrate = json_integer_value(json_object_get(config, "bn_recalibrate"));
    json_decref(config);
    store_job_deinit(&job);
    StoreResult res;
    int rc = store_result_get(s, id, &res);
    if (rc == STORE_NOT_FOUND)
        return api_reply_problem(reply, 404, NULL, "job %lld has no test results yet",
                                 (long long)id);
    if (rc != STORE_OK)
        return api_reply_store_error(reply, s);
    json_t *names = NULL;
    StoreDataset d;
    if (store_dataset_get(s, dataset, &d) == STORE_OK) {
        names = json_loads(d.class_names_json, 0, NULL);
        store_dataset_deinit(&d);
    }
    json_t *out = report_results(&res, names);
    json_decref(names);
    store_result_deinit(&res);
    json_object_set_new(out, "bn_recalibrate", json_integer(recalibrate));
    int csv = api_wants_csv(req, reply);
    if (csv < 0) {
        json_decref(out);
        return 0;
    }
    if (csv) {
        static const char *const columns[] = {"class", "name", "precision", "recall", "f1",
                                              "support", NULL};
        rc = api_reply_csv(reply, columns, json_object_get(out, "per_class"));
        json_decref(out);
        return rc;
    }
    return api_reply_json(reply, 200, out);
}

static json_t *mean_std(StoreMeanStd m)
{
    return json_pack("{s:o, s:o}", "mean", report_number(m.mean), "std", report_number(m.std));
}

/* The members Table 1 gains from the runs (jobs/table1.h): each row's 95% intervals,
 * epochs to the target accuracy and runs, and the comparisons beside the rows. */
static int add_table1(Store *s, long long id, double target, json_t *rows, json_t *flat,
                      json_t **comparisons)
{
    int rc;
    json_t *t = table1_build(s, id, target, &rc);
    if (!t)
        return -1;
    json_t *groups = json_object_get(t, "groups");
    static const char *const metrics[] = {"accuracy", "precision_macro", "recall_macro",
                                          "f1_macro", "loss", NULL};
    static const char *const short_names[] = {"accuracy", "precision", "recall", "f1", "loss"};
    for (size_t i = 0; i < json_array_size(rows) && i < json_array_size(groups); i++) {
        json_t *row = json_array_get(rows, i), *g = json_array_get(groups, i);
        json_t *f = json_array_get(flat, i);
        for (int k = 0; metrics[k]; k++) {
            json_t *ci = json_object_get(json_object_get(g, metrics[k]), "ci95");
            json_object_set(json_object_get(row, metrics[k]), "ci95", ci);
            char lo[48], hi[48];
            snprintf(lo, sizeof lo, "%s_ci95_lo", short_names[k]);
            snprintf(hi, sizeof hi, "%s_ci95_hi", short_names[k]);
            json_object_set(f, lo, json_array_get(ci, 0));
            json_object_set(f, hi, json_array_get(ci, 1));
        }
        json_t *ett = json_object_get(g, "epochs_to_target");
        json_object_set(row, "epochs_to_target", ett);
        json_object_set(row, "runs", json_object_get(g, "runs"));
        json_object_set(f, "epochs_to_target_mean", json_object_get(ett, "mean"));
        json_object_set(f, "epochs_to_target_std", json_object_get(ett, "std"));
        json_object_set(f, "epochs_to_target_reached", json_object_get(ett, "reached"));
    }
    *comparisons = json_incref(json_object_get(t, "comparisons"));
    json_decref(t);
    return 0;
}

static int get_grid_summary(ApiRequest *req, ApiReply *reply)
{
    Store *s = api_store(req, reply);
    if (!s)
        return 0;
    const char *text = api_param(req, "id");
    char *end;
    long long id = strtoll(text, &end, 10);
    if (*end || id <= 0)
        return api_reply_problem(reply, 404, NULL, "\"%.40s\" is not a grid id", text);
    const char *target_text = api_query(req, "target");
    double target = TABLE1_DEFAULT_TARGET;
    if (target_text) {
        target = strtod(target_text, &end);
        if (!*target_text || *end || !(target > 0 && target <= 1))
            return api_reply_problem_field(reply, 400, "target", "must be a validation "
                                           "accuracy in (0, 1], not \"%.40s\"", target_text);
    }
    int csv = api_wants_csv(req, reply);
    if (csv < 0)
        return 0;
    StoreGridSummary *rows = NULL;
    int n = 0;
    int rc = store_grid_summary(s, id, &rows, &n);
    /* "k of n seeds": n is the seeds the grid lists, not the jobs left of them. */
    int n_seeds = 1;
    StoreGrid grid;
    if (rc == STORE_OK && store_grid_get(s, id, &grid) == STORE_OK) {
        json_t *g = report_grid(&grid);
        n_seeds = (int)json_integer_value(json_object_get(g, "n_seeds"));
        json_decref(g);
        store_grid_deinit(&grid);
    }
    if (rc == STORE_NOT_FOUND)
        return api_reply_problem(reply, 404, NULL, "grid %lld does not exist", id);
    if (rc != STORE_OK)
        return api_reply_store_error(reply, s);
    json_t *list = json_array(), *flat = json_array();
    for (int i = 0; i < n; i++) {
        const StoreGridSummary *g = &rows[i];
        json_array_append_new(list, json_pack(
            "{s:s, s:s, s:i, s:i, s:i, s:o, s:o, s:o, s:o, s:o}", "model", g->model,
            "initializer", g->initializer, "n_jobs", g->n_jobs, "n", g->n, "n_seeds", n_seeds,
            "accuracy", mean_std(g->accuracy), "precision_macro", mean_std(g->precision_macro),
            "recall_macro", mean_std(g->recall_macro), "f1_macro", mean_std(g->f1_macro),
            "loss", mean_std(g->loss)));
        json_array_append_new(flat, json_pack(
            "{s:s, s:s, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
            "model", g->model, "initializer", g->initializer, "n", g->n, "n_seeds", n_seeds,
            "accuracy_mean", report_number(g->accuracy.mean),
            "accuracy_std", report_number(g->accuracy.std),
            "precision_mean", report_number(g->precision_macro.mean),
            "precision_std", report_number(g->precision_macro.std),
            "recall_mean", report_number(g->recall_macro.mean),
            "recall_std", report_number(g->recall_macro.std),
            "f1_mean", report_number(g->f1_macro.mean),
            "f1_std", report_number(g->f1_macro.std),
            "loss_mean", report_number(g->loss.mean),
            "loss_std", report_number(g->loss.std)));
    }
    free(rows);
    json_t *comparisons = NULL;
    if (add_table1(s, id, target, list, flat, &comparisons) < 0) {
        json_decref(list);
        json_decref(flat);
        return api_reply_store_error(reply, s);
    }
    if (csv) {
        static const char *const columns[] = {
            "model", "initializer", "n", "n_seeds", "accuracy_mean", "accuracy_std",
            "precision_mean", "precision_std", "recall_mean", "recall_std", "f1_mean", "f1_std", "loss_mean",
            "loss_std", "accuracy_ci95_lo", "accuracy_ci95_hi", "precision_ci95_lo",
            "precision_ci95_hi", "recall_ci95_lo", "recall_ci95_hi", "f1_ci95_lo",
            "f1_ci95_hi", "loss_ci95_lo", "loss_ci95_hi", "epochs_to_target_mean",
            "epochs_to_target_std", "epochs_to_target_reached", NULL};
        rc = api_reply_csv(reply, columns, flat);
        json_decref(flat);
        json_decref(list);
        json_decref(comparisons);
        return rc;
    }
    json_decref(flat);
    return api_reply_json(reply, 200, json_pack("{s:I, s:i, s:f, s:o, s:o}", "grid_id",
                                                (json_int_t)id, "n_seeds", n_seeds, "target",
                                                target, "rows", list, "comparisons",
                                                comparisons));
}

/* GET /jobs/{id}/history?quantity&mode&layer: one layer's statistics and histogram at
 * every epoch recorded (the distribution over time). */
static int get_history(ApiRequest *req, ApiReply *reply)
{
    Store *s = api_store(req, reply);
    StoreJob job;
    if (!s || load_job(req, reply, s, &job) < 0)
        return 0;
    int64_t id = job.id;
    store_job_deinit(&job);
    const char *quantity = api_query(req, "quantity"), *mode = api_query(req, "mode");
    StoreQuantity q = STORE_QTY_ACTIVATION;
    StoreMode m = STORE_MODE_INFERENCE;
    long long layer;
    if (quantity && store_quantity_parse(quantity, &q) < 0)
        return api_reply_problem_field(reply, 400, "quantity", "must be weight, activation "
                                       "or gradient, not \"%.40s\"", quantity);
    if (mode && store_mode_parse(mode, &m) < 0)
        return api_reply_problem_field(reply, 400, "mode", "must be train or inference, not "
                                       "\"%.40s\"", mode);
    if (!api_query(req, "layer"))
        return api_reply_problem_field(reply, 400, "layer", "is required: a layer_index of "
                                       "GET /jobs/%lld/stats", (long long)id);
    if (api_query_int(req, reply, "layer", 0, 0, 100000, &layer) < 0)
        return 0;
    int csv = api_wants_csv(req, reply);
    if (csv < 0)
        return 0;
    StoreLayerStat *rows = NULL;
    int *epochs = NULL, n = 0;
    if (store_stats_history(s, id, m, q, (int)layer, &rows, &epochs, &n) != STORE_OK)
        return api_reply_store_error(reply, s);
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = report_layer_stat(&rows[i], true);
        json_object_set_new(o, "epoch", json_integer(epochs[i]));
        json_array_append_new(list, o);
    }
    json_t *out = json_pack("{s:I, s:s, s:s, s:I, s:o, s:o, s:o}", "job_id", (json_int_t)id,
                            "mode", store_mode_name(m), "quantity", store_quantity_name(q),
                            "layer_index", (json_int_t)layer, "layer",
                            n ? json_string(rows[0].layer_name) : json_null(), "type",
                            n ? json_string(rows[0].layer_type) : json_null(), "epochs", list);
    free(rows);
    free(epochs);
    if (csv) {
        const char *columns[STAT_CSV_COLUMNS + 4 + STORE_HIST_BINS + 1];
        stat_csv_columns(columns, true, true);
        flatten_histograms(list);
        int rc = api_reply_csv(reply, columns, list);
        json_decref(out);
        return rc;
    }
    return api_reply_json(reply, 200, out);
}

int routes_results_register(Router *r)
{
    if (router_add(r, "GET", "/api/v1/jobs/{id}/history", get_history, NULL) < 0)
        return -1;
    return router_add(r, "GET", "/api/v1/jobs/{id}/epochs", get_epochs, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/jobs/{id}/stats", get_stats, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/jobs/{id}/histograms", get_histograms,
                              NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/jobs/{id}/results", get_results, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/grids/{id}/summary", get_grid_summary,
                              NULL) < 0
               ? -1
               : 0;
}
