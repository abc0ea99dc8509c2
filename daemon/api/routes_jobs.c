/* routes_jobs.c — /api/v1/jobs and /api/v1/grids: submit, list, inspect, cancel, retry, delete. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "api/db.h"
#include "api/events.h"
#include "api/records.h"
#include "api/router.h"
#include "jobs/report.h"
#include "jobs/run.h"
#include "train/config.h"
#include "util/crc32.h"
#include "util/jsonout.h"
#include "util/log.h"

#define MAX_GRID_JOBS 1000

json_t *api_job_json(ApiRequest *req, StoreJob *j)
{
    char phase[16] = "";
    JobQueue *q = api_queue(req);
    if (q && j->status == STORE_JOB_RUNNING)
        jobs_phase(q, j->id, phase, sizeof phase);
    if (req->ctx->state_dir)
        job_fill_disk(req->ctx->state_dir, j);
    return report_job(j, phase[0] ? phase : NULL);
}

static json_t *job_json(ApiRequest *req, StoreJob *j)
{
    return api_job_json(req, j);
}

void api_publish_job(ApiRequest *req, Store *s, int64_t id, const char *event)
{
    StoreJob j;
    if (!req->ctx->events || store_job_get(s, id, &j) != STORE_OK)
        return;
    json_t *o = api_job_json(req, &j);
    char *text = o ? json_text(o, JSON_COMPACT) : NULL;
    if (text)
        events_publish(req->ctx->events, event, text);
    free(text);
    json_decref(o);
    store_job_deinit(&j);
}

void api_publish_grid(ApiRequest *req, Store *s, int64_t id)
{
    StoreGrid g;
    if (!req->ctx->events || store_grid_get(s, id, &g) != STORE_OK)
        return;
    json_t *o = report_grid(&g);
    char *text = o ? json_text(o, JSON_COMPACT) : NULL;
    if (text)
        events_publish(req->ctx->events, "grid", text);
    free(text);
    json_decref(o);
    store_grid_deinit(&g);
}

void api_publish_id(ApiRequest *req, const char *event, int64_t id)
{
    char text[64];
    snprintf(text, sizeof text, "{\"id\":%lld}", (long long)id);
    if (req->ctx->events)
        events_publish(req->ctx->events, event, text);
}

/* Replies with job id as JSON (status code given), or 404. */
static int reply_job(ApiRequest *req, ApiReply *reply, Store *s, int64_t id, int status)
{
    StoreJob j;
    int rc = store_job_get(s, id, &j);
    if (rc == STORE_NOT_FOUND)
        return api_reply_problem(reply, 404, NULL, "job %lld does not exist", (long long)id);
    if (rc != STORE_OK)
        return api_reply_store_error(reply, s);
    json_t *o = job_json(req, &j);
    store_job_deinit(&j);
    return api_reply_json(reply, status, o);
}

static int parse_id(ApiRequest *req, ApiReply *reply, int64_t *id)
{
    const char *text = api_param(req, "id");
    char *end;
    long long v = text ? strtoll(text, &end, 10) : 0;
    if (!text || *end || v <= 0) {
        api_reply_problem_field(reply, 404, "id", "\"%.40s\" is not a job id", text ? text : "");
        return -1;
    }
    *id = v;
    return 0;
}

int api_job_config(ApiRequest *req, Store *s, const json_t *obj, JobConfig *cfg,
                   ApiReply *reply)
{
    ConfigError err;
    json_t *with_threads = NULL;
    if (!json_object_get(obj, "threads") && req->ctx->threads_per_job > 0 &&
        (with_threads = json_copy((json_t *)obj)))
        json_object_set_new(with_threads, "threads",
                            json_integer(req->ctx->threads_per_job < 256
                                             ? req->ctx->threads_per_job : 256));
    int rc = config_from_json(with_threads ? with_threads : obj, true, cfg, &err);
    json_decref(with_threads);
    if (rc < 0) {
        api_reply_problem_field(reply, 400, err.field[0] ? err.field : "body", "%s",
                                err.message);
        return -1;
    }
    StoreDataset d;
    rc = store_dataset_get(s, cfg->dataset, &d);
    if (rc == STORE_NOT_FOUND) {
        api_reply_problem_field(reply, 400, "dataset", "no dataset named \"%.100s\" is "
                                "registered (POST /api/v1/datasets first)", cfg->dataset);
        return -1;
    }
    if (rc != STORE_OK) {
        api_reply_store_error(reply, s);
        return -1;
    }
    bool failed = d.status == STORE_DATASET_FAILED;
    store_dataset_deinit(&d);
    if (failed) {
        api_reply_problem_field(reply, 400, "dataset", "dataset \"%.100s\" failed to scan",
                                cfg->dataset);
        return -1;
    }
    return 0;
}

static int check_config(ApiRequest *req, Store *s, const json_t *obj, JobConfig *cfg,
                        ApiReply *reply)
{
    return api_job_config(req, s, obj, cfg, reply);
}

/* The store row of a configuration; it borrows cfg's strings and config_text. */
static StoreJobNew job_new(const JobConfig *cfg, char *config_text)
{
    return (StoreJobNew){.priority = cfg->priority, .config_json = config_text,
                         .dataset = cfg->dataset, .model = cfg->model,
                         .initializer = cfg->init, .seed = cfg->seed, .epochs = cfg->epochs};
}

/* Stores the submission (idempotently when the request carries a key), publishes what
 * it created and replies. meta: the grid's name, tags and note (grids only). */
static int submit(ApiRequest *req, ApiReply *reply, Store *s, const char *grid_config,
                  StoreJobNew *jobs, int n, const ApiMeta *meta)
{
    char fingerprint[16];
    snprintf(fingerprint, sizeof fingerprint, "%08x",
             crc32_update(0, req->body ? req->body : "", req->body_len));
    const char *key = api_header(req, "Idempotency-Key");
    if (key && (strlen(key) == 0 || strlen(key) >= STORE_NAME_MAX))
        return api_reply_problem_field(reply, 400, "Idempotency-Key",
                                       "must be 1 to %d characters", STORE_NAME_MAX - 1);
    StoreSubmit sub = {.idem_key = key, .fingerprint = fingerprint,
                       .grid_config_json = grid_config, .jobs = jobs, .n_jobs = n,
                       .grid_name = meta ? meta->name : NULL,
                       .grid_tags_json = meta ? meta->tags_json : NULL,
                       .grid_note = meta ? meta->note : NULL};
    StoreSubmitResult res;
    int rc = store_submit(s, &sub, &res);
    if (rc == STORE_CONFLICT)
        return api_reply_problem_field(reply, 422, "Idempotency-Key", "this key was used "
                                       "for a different request");
    if (rc != STORE_OK)
        return api_reply_store_error(reply, s);
    if (api_queue(req) && !res.replayed)
        jobs_notify(api_queue(req));
    if (!res.replayed) {
        if (res.grid_id)
            api_publish_grid(req, s, res.grid_id);
        for (int i = 0; i < res.n_jobs; i++)
            api_publish_job(req, s, res.job_ids[i], "job");
    }
    int status = res.replayed ? 200 : 201;
    if (!grid_config) {
        char location[64];
        snprintf(location, sizeof location, "/api/v1/jobs/%lld", (long long)res.job_ids[0]);
        api_reply_header(reply, "Location", location);
        int64_t id = res.job_ids[0];
        store_submit_result_deinit(&res);
        return reply_job(req, reply, s, id, status);
    }
    json_t *list = json_array();
    for (int i = 0; i < res.n_jobs; i++) {
        StoreJob j;
        if (store_job_get(s, res.job_ids[i], &j) == STORE_OK) {
            json_array_append_new(list, job_json(req, &j));
            store_job_deinit(&j);
        }
    }
    char location[64];
    snprintf(location, sizeof location, "/api/v1/grids/%lld", (long long)res.grid_id);
    api_reply_header(reply, "Location", location);
    json_t *out = json_pack("{s:I, s:o}", "grid_id", (json_int_t)res.grid_id, "jobs", list);
    store_submit_result_deinit(&res);
    return api_reply_json(reply, status, out);
}

static int post_job(ApiRequest *req, ApiReply *reply)
{
    Store *s = api_store(req, reply);
    json_t *obj = s ? api_request_json(req, reply, true) : NULL;
    if (!obj)
        return 0;
    JobConfig cfg;
    ApiMeta meta = {0};
    json_t *held = NULL;
    int rc = 0;
    if (api_meta_take(obj, false, &meta, &held, reply) == 0 &&
        check_config(req, s, obj, &cfg, reply) == 0) {
        char *text = config_to_text(&cfg);
        StoreJobNew nj = job_new(&cfg, text);
        nj.name = meta.name;
        nj.tags_json = meta.tags_json;
        nj.note = meta.note;
        rc = text ? submit(req, reply, s, NULL, &nj, 1, NULL) : -1;
        free(text);
    }
    api_meta_deinit(&meta);
    json_decref(held);
    json_decref(obj);
    return rc;
}

/* The array member key of a grid request, of strings (or integers for seeds). */
static int grid_list(const json_t *obj, const char *key, bool integers, ApiReply *reply,
                     json_t **out)
{
    json_t *a = json_object_get(obj, key);
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > MAX_GRID_JOBS)
        return api_reply_problem_field(reply, 400, key, "must be a non-empty array"), -1;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (integers ? !json_is_integer(v) : !json_is_string(v))
            return api_reply_problem_field(reply, 400, key, "item %zu must be %s", i,
                                           integers ? "an integer" : "a string"), -1;
        /* A value twice would make two identical jobs: for seeds, a repeated run that
         * Table 1's statistics would count as independent evidence. */
        for (size_t k = 0; k < i; k++)
            if (json_equal(json_array_get(a, k), v)) {
                char text[64];
                if (integers)
                    snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
                else
                    snprintf(text, sizeof text, "\"%.40s\"", json_string_value(v));
                return api_reply_problem_field(reply, 400, key, "%s appears twice (items %zu "
                                               "and %zu): each value is one job", text, k, i),
                       -1;
            }
    }
    *out = a;
    return 0;
}

static int post_grid(ApiRequest *req, ApiReply *reply)
{
    Store *s = api_store(req, reply);
    json_t *obj = s ? api_request_json(req, reply, true) : NULL;
    if (!obj)
        return 0;
    json_t *models, *inits, *seeds = NULL;
    StoreJobNew *jobs = NULL;
    JobConfig *cfgs = NULL;   /* jobs[i] points into cfgs[i] and texts[i] */
    char **texts = NULL;
    int n = 0, rc = 0;
    ApiMeta meta = {0};
    json_t *held = NULL;
    if (api_meta_take(obj, false, &meta, &held, reply) < 0 ||
        grid_list(obj, "models", false, reply, &models) < 0 ||
        grid_list(obj, "initializers", false, reply, &inits) < 0)
        goto out;
    if (json_object_get(obj, "seeds") && grid_list(obj, "seeds", true, reply, &seeds) < 0)
        goto out;
    size_t n_seeds = seeds ? json_array_size(seeds) : 1;
    size_t total = json_array_size(models) * json_array_size(inits) * n_seeds;
    if (total > MAX_GRID_JOBS) {
        api_reply_problem_field(reply, 400, "models", "the grid has %zu jobs; at most %d",
                                total, MAX_GRID_JOBS);
        goto out;
    }
    jobs = calloc(total, sizeof *jobs);
    cfgs = calloc(total, sizeof *cfgs);
    texts = calloc(total, sizeof *texts);
    json_t *common = json_deep_copy(obj);
    if (!jobs || !cfgs || !texts || !common) {
        json_decref(common);
        rc = -1;
        goto out;
    }
    json_object_del(common, "models");
    json_object_del(common, "initializers");
    json_object_del(common, "seeds");
    for (size_t m = 0; m < json_array_size(models); m++)
        for (size_t i = 0; i < json_array_size(inits); i++)
            for (size_t k = 0; k < n_seeds; k++) {
                json_object_set(common, "model", json_array_get(models, m));
                json_object_set(common, "init", json_array_get(inits, i));
                if (seeds)
                    json_object_set(common, "seed", json_array_get(seeds, k));
                JobConfig *cfg = &cfgs[n];
                if (check_config(req, s, common, cfg, reply) < 0) {
                    /* Name the grid member the value came from. */
                    json_t *body = json_loads(reply->body, 0, NULL);
                    const char *field = json_string_value(json_object_get(body, "field"));
                    if (field && (strcmp(field, "model") == 0 || strcmp(field, "init") == 0)) {
                        bool is_model = strcmp(field, "model") == 0;
                        const char *detail = json_string_value(json_object_get(body, "detail"));
                        char name[48];
                        snprintf(name, sizeof name, "%s[%zu]",
                                 is_model ? "models" : "initializers", is_model ? m : i);
                        api_reply_problem_field(reply, 400, name, "%s",
                                                detail ? detail : "invalid");
                    }
                    json_decref(body);
                    json_decref(common);
                    goto out;
                }
                texts[n] = config_to_text(cfg);
                if (!texts[n]) {
                    json_decref(common);
                    rc = -1;
                    goto out;
                }
                jobs[n] = job_new(cfg, texts[n]);
                jobs[n].tags_json = meta.tags_json;
                n++;
            }
    json_decref(common);
    char *grid_text = json_text(obj, JSON_COMPACT | JSON_SORT_KEYS);
    rc = grid_text ? submit(req, reply, s, grid_text, jobs, n, &meta) : -1;
    free(grid_text);
out:
    for (int i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(cfgs);
    free(jobs);
    api_meta_deinit(&meta);
    json_decref(held);
    json_decref(obj);
    return rc;
}

static int parse_status_filter(const char *text, unsigned *mask, ApiReply *reply)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        StoreJobStatus st;
        if (store_job_status_parse(tok, &st) < 0)
            return api_reply_problem_field(reply, 400, "status", "unknown status \"%.40s\" "
                                           "(queued, running, done, failed, cancelled)", tok),
                   -1;
        *mask |= STORE_JOB_BIT(st);
    }
    return 0;
}

static int list_jobs(ApiRequest *req, ApiReply *reply)
{
    Store *s = api_store(req, reply);
    if (!s)
        return 0;
    StoreJobFilter f = {.model = api_query(req, "model"),
                        .initializer = api_query(req, "initializer"),
                        .dataset = api_query(req, "dataset"), .tag = api_query(req, "tag"),
                        .q = api_query(req, "q")};
    long long limit, offset, grid;
    const char *status = api_query(req, "status");
    if (api_query_int(req, reply, "limit", 100, 1, 1000, &limit) < 0 ||
        api_query_int(req, reply, "offset", 0, 0, 1LL << 40, &offset) < 0 ||
        api_query_int(req, reply, "grid", 0, 0, 1LL << 62, &grid) < 0 ||
        (status && parse_status_filter(status, &f.status_mask, reply) < 0))
        return 0;
    int csv = api_wants_csv(req, reply);
    if (csv < 0)
        return 0;
    f.limit = (int)limit;
    f.offset = (int)offset;
    f.grid_id = grid;
    StoreJob *rows = NULL;
    int n = 0, total = 0;
    if (store_job_list(s, &f, &rows, &n, &total) != STORE_OK)
        return api_reply_store_error(reply, s);
    json_t *list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(list, job_json(req, &rows[i]));
    store_jobs_free(rows, n);
    if (csv) {
        int rc = api_reply_csv(reply, api_job_csv_columns, list);
        json_decref(list);
        return rc;
    }
    return api_reply_json(reply, 200, json_pack("{s:o, s:i, s:I, s:I}", "jobs", list,
                                                "total", total, "limit", (json_int_t)limit,
                                                "offset", (json_int_t)offset));
}

const char *const api_job_csv_columns[] = {
    "id", "grid_id", "status", "dataset", "model", "initializer", "seed", "epochs",
    "created_at", "started_at", "finished_at", "error", "name", "tags", "priority",
    "disk_bytes", "note", NULL};

static int get_job(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    Store *s = api_store(req, reply);
    if (!s || parse_id(req, reply, &id) < 0)
        return 0;
    return reply_job(req, reply, s, id, 200);
}

static int cancel_job(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    Store *s = api_store(req, reply);
    if (!s || parse_id(req, reply, &id) < 0)
        return 0;
    StoreJob j;
    int rc = store_job_get(s, id, &j);
    if (rc == STORE_NOT_FOUND)
        return api_reply_problem(reply, 404, NULL, "job %lld does not exist", (long long)id);
    if (rc != STORE_OK)
        return api_reply_store_error(reply, s);
    StoreJobStatus status = j.status;
    store_job_deinit(&j);
    JobQueue *q = api_queue(req);
    if ((status != STORE_JOB_QUEUED && status != STORE_JOB_RUNNING) || !q ||
        jobs_cancel(q, id) < 0)
        return api_reply_problem(reply, 409, NULL, "job %lld is %s; only queued or running "
                                 "jobs can be cancelled", (long long)id,
                                 store_job_status_name(status));
    /* A queued job is cancelled now; a running one when it stops (its worker says so). */
    if (status == STORE_JOB_QUEUED)
        api_publish_job(req, s, id, "job");
    return reply_job(req, reply, s, id, 200);
}

static int retry_job(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    Store *s = api_store(req, reply);
    if (!s || parse_id(req, reply, &id) < 0)
        return 0;
    int rc = store_job_set_status(s, id, STORE_JOB_BIT(STORE_JOB_FAILED) |
                                             STORE_JOB_BIT(STORE_JOB_CANCELLED),
                                  STORE_JOB_QUEUED, NULL);
    if (rc == STORE_NOT_FOUND)
        return api_reply_problem(reply, 404, NULL, "job %lld does not exist", (long long)id);
    if (rc == STORE_CONFLICT)
        return api_reply_problem(reply, 409, NULL, "job %lld is not failed or cancelled; "
                                 "only those can be retried", (long long)id);
    if (rc != STORE_OK)
        return api_reply_store_error(reply, s);
    if (api_queue(req))
        jobs_notify(api_queue(req));
    api_publish_job(req, s, id, "job");
    return reply_job(req, reply, s, id, 200);
}

static int delete_job(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    Store *s = api_store(req, reply);
    if (!s || parse_id(req, reply, &id) < 0)
        return 0;
    if (api_queue(req) && jobs_is_running(api_queue(req), id))
        return api_reply_problem(reply, 409, NULL, "job %lld is running; cancel it first",
                                 (long long)id);
    StoreJob job = {0};
    int rc = store_job_get(s, id, &job);
    if (rc == STORE_OK && (rc = store_job_delete(s, id)) == STORE_OK) {
        char err[1024];
        if (job_remove_files(req->ctx->state_dir, &job, err, sizeof err) < 0)
            log_warn("api", "job %lld deleted, but not all of its files: %s", (long long)id,
                     err);
    }
    store_job_deinit(&job);
    if (rc == STORE_NOT_FOUND)
        return api_reply_problem(reply, 404, NULL, "job %lld does not exist", (long long)id);
    if (rc == STORE_CONFLICT)
        return api_reply_problem(reply, 409, NULL, "job %lld is running; cancel it first",
                                 (long long)id);
    if (rc != STORE_OK)
        return api_reply_store_error(reply, s);
    api_publish_id(req, "job_deleted", id);
    return api_reply_empty(reply, 204);
}

static json_t *grid_json(const StoreGrid *g)
{
    return report_grid(g);
}

/* The CSV row of a grid: its form flattened (config's dataset, models, initializers and
 * seeds, the status counts). */
static json_t *grid_csv_row(const json_t *g)
{
    json_t *row = json_deep_copy(g);
    const json_t *cfg = json_object_get(g, "config");
    const char *keys[] = {"dataset", "models", "initializers", "seeds", "epochs"};
    for (size_t i = 0; row && i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(cfg, keys[i]);
        json_object_set(row, keys[i], v ? v : json_null());
    }
    const char *key;
    json_t *n;
    json_object_foreach(json_object_get(g, "status_counts"), key, n)
        json_object_set(row, key, n);
    return row;
}

static int list_grids(ApiRequest *req, ApiReply *reply)
{
    Store *s = api_store(req, reply);
    if (!s)
        return 0;
    int csv = api_wants_csv(req, reply);
    if (csv < 0)
        return 0;
    StoreGrid *rows = NULL;
    int n = 0;
    if (store_grid_list_filtered(s, api_query(req, "tag"), api_query(req, "q"), &rows, &n) !=
        STORE_OK)
        return api_reply_store_error(reply, s);
    json_t *list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(list, grid_json(&rows[i]));
    store_grids_free(rows, n);
    if (csv) {
        static const char *const columns[] = {
            "id", "name", "tags", "created_at", "dataset", "models", "initializers", "seeds",
            "epochs", "n_jobs", "n_seeds", "queued", "running", "done", "failed", "cancelled",
            "note", NULL};
        json_t *flat = json_array();
        size_t i;
        json_t *g;
        json_array_foreach(list, i, g)
            json_array_append_new(flat, grid_csv_row(g));
        int rc = api_reply_csv(reply, columns, flat);
        json_decref(flat);
        json_decref(list);
        return rc;
    }
    return api_reply_json(reply, 200, json_pack("{s:o}", "grids", list));
}

static int get_grid(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    Store *s = api_store(req, reply);
    if (!s || parse_id(req, reply, &id) < 0)
        return 0;
    int csv = api_wants_csv(req, reply);
    if (csv < 0)
        return 0;
    StoreGrid g;
    int rc = store_grid_get(s, id, &g);
    if (rc == STORE_NOT_FOUND)
        return api_reply_problem(reply, 404, NULL, "grid %lld does not exist", (long long)id);
    if (rc != STORE_OK)
        return api_reply_store_error(reply, s);
    json_t *out = grid_json(&g);
    store_grid_deinit(&g);
    StoreJobFilter f = {.grid_id = id, .limit = 1000};
    StoreJob *rows = NULL;
    int n = 0;
    json_t *list = json_array();
    if (store_job_list(s, &f, &rows, &n, NULL) == STORE_OK)
        for (int i = 0; i < n; i++)
            json_array_append_new(list, job_json(req, &rows[i]));
    store_jobs_free(rows, n);
    if (csv) {
        rc = api_reply_csv(reply, api_job_csv_columns, list);
        json_decref(list);
        json_decref(out);
        return rc;
    }
    json_object_set_new(out, "jobs", list);
    return api_reply_json(reply, 200, out);
}

int routes_jobs_register(Router *r)
{
    return router_add(r, "POST", "/api/v1/jobs", post_job, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/jobs", list_jobs, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/jobs/{id}", get_job, NULL) < 0 ||
                   router_add(r, "DELETE", "/api/v1/jobs/{id}", delete_job, NULL) < 0 ||
                   router_add(r, "POST", "/api/v1/jobs/{id}/cancel", cancel_job, NULL) < 0 ||
                   router_add(r, "POST", "/api/v1/jobs/{id}/retry", retry_job, NULL) < 0 ||
                   router_add(r, "POST", "/api/v1/grids", post_grid, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/grids", list_grids, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/grids/{id}", get_grid, NULL) < 0
               ? -1
               : 0;
}
