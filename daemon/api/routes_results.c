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
        static const char *const columns[] = {
            "layer_index", "layer", "type", "mode", "quantity", "n", "mean", "std", "min",
            "max", "q1", "median", "q3", "whisker_lo", "whisker_hi", "p1", "p99",
            "zero_frac", "nonfinite", "predicted_var", "dead_units", "saturation", "flags",
            NULL};
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
    if (csv) {
        static const char *const columns[] = {
            "model", "initializer", "n", "n_seeds", "accuracy_mean", "accuracy_std", "precision_mean",
            "precision_std", "recall_mean", "recall_std", "f1_mean", "f1_std", "loss_mean",
            "loss_std", NULL};
        rc = api_reply_csv(reply, columns, flat);
        json_decref(flat);
        json_decref(list);
        return rc;
    }
    json_decref(flat);
    return api_reply_json(reply, 200, json_pack("{s:I, s:i, s:o}", "grid_id", (json_int_t)id,
                                                "n_seeds", n_seeds, "rows", list));
}

int routes_results_register(Router *r)
{
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
