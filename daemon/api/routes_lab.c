/* routes_lab.c — what a lab does with its runs over months: edit a job's or grid's name,
 * tags, note and priority; cancel, retry, delete a whole grid or add seeds to it; see the
 * disk the state directory takes; download a job's weights, its whole record and its
 * intra-epoch curve. */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "api/db.h"
#include "api/records.h"
#include "api/router.h"
#include "data/cache.h"
#include "jobs/report.h"
#include "jobs/run.h"
#include "jobs/storage.h"
#include "train/export.h"
#include "util/jsonout.h"
#include "util/log.h"

#define NAME_MAX_CHARS 200
#define NOTE_MAX_CHARS 10000
#define MAX_TAGS 32
#define TAG_MAX_CHARS 64
#define MAX_GRID_JOBS 1000

/* ---- names, tags, notes ------------------------------------------------------------ */

static bool valid_tag(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > TAG_MAX_CHARS)
        return false;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.' || *p == ':'))
            return false;
    return true;
}

/* Characters (not bytes) of UTF-8 text. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* One of name / note: a string of at most max characters, or null (clear) when allowed. */
static int meta_text(const json_t *v, const char *key, size_t max, bool allow_null,
                     const char **out, ApiReply *reply)
{
    if (!v)
        return 0;
    if (json_is_null(v) && allow_null) {
        *out = "";
        return 0;
    }
    if (!json_is_string(v) || utf8_chars(json_string_value(v)) > max)
        return api_reply_problem_field(reply, 400, key, "must be a string of at most %zu "
                                       "characters%s", max, allow_null ? ", or null" : ""), -1;
    *out = json_string_value(v);
    return 0;
}

int api_meta_take(json_t *obj, bool allow_null, ApiMeta *out, json_t **held, ApiReply *reply)
{
    memset(out, 0, sizeof *out);
    *held = json_object();
    if (!*held)
        return api_reply_problem(reply, 500, NULL, "out of memory"), -1;
    static const char *const keys[] = {"name", "tags", "note"};
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(obj, keys[i]);
        if (v) {
            json_object_set(*held, keys[i], v);
            json_object_del(obj, keys[i]);
        }
    }
    if (meta_text(json_object_get(*held, "name"), "name", NAME_MAX_CHARS, allow_null,
                  &out->name, reply) < 0 ||
        meta_text(json_object_get(*held, "note"), "note", NOTE_MAX_CHARS, allow_null,
                  &out->note, reply) < 0)
        return -1;
    json_t *tags = json_object_get(*held, "tags");
    if (!tags)
        return 0;
    if (json_is_null(tags) && allow_null)
        tags = NULL;
    else if (!json_is_array(tags) || json_array_size(tags) > MAX_TAGS)
        return api_reply_problem_field(reply, 400, "tags", "must be a list of at most %d "
                                       "tags", MAX_TAGS), -1;
    json_t *clean = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t) {
        if (!json_is_string(t) || !valid_tag(json_string_value(t))) {
            json_decref(clean);
            return api_reply_problem_field(reply, 400, "tags", "tag %zu must be 1 to %d "
                                           "letters, digits, '-', '_', '.' or ':'", i,
                                           TAG_MAX_CHARS), -1;
        }
        bool seen = false;
        for (size_t k = 0; k < json_array_size(clean); k++)
            seen |= strcmp(json_string_value(json_array_get(clean, k)),
                           json_string_value(t)) == 0;
        if (!seen)
            json_array_append(clean, t);
    }
    out->tags_json = json_text(clean, JSON_COMPACT);
    json_decref(clean);
    if (!out->tags_json)
        return api_reply_problem(reply, 500, NULL, "out of memory"), -1;
    return 0;
}

void api_meta_deinit(ApiMeta *m)
{
    free(m->tags_json);
    m->tags_json = NULL;
}

/* ---- helpers ----------------------------------------------------------------------- */

static int path_id(ApiRequest *req, ApiReply *reply, const char *what, int64_t *id)
{
    const char *text = api_param(req, "id");
    char *end;
    long long v = text ? strtoll(text, &end, 10) : 0;
    if (!text || *end || v <= 0) {
        api_reply_problem_field(reply, 404, "id", "\"%.40s\" is not a %s id", text ? text : "",
                                what);
        return -1;
    }
    *id = v;
    return 0;
}

/* Replies with grid id's form (plus the jobs it lists when with_jobs), status given. */
static int reply_grid(ApiRequest *req, ApiReply *reply, Store *s, int64_t id, int status,
                      json_t *extra)
{
    StoreGrid g;
    int rc = store_grid_get(s, id, &g);
    if (rc != STORE_OK) {
        json_decref(extra);
        return rc == STORE_NOT_FOUND
                   ? api_reply_problem(reply, 404, NULL, "grid %lld does not exist",
                                       (long long)id)
                   : api_reply_store_error(reply, s);
    }
    json_t *o = report_grid(&g);
    store_grid_deinit(&g);
    if (o && extra)
        json_object_update(o, extra);
    json_decref(extra);
    return api_reply_json(reply, status, o);
}

/* The jobs of grid id whose status is in mask (0: all). */
static int grid_jobs(Store *s, int64_t id, unsigned mask, StoreJob **rows, int *n)
{
    StoreJobFilter f = {.grid_id = id, .status_mask = mask, .limit = MAX_GRID_JOBS};
    return store_job_list(s, &f, rows, n, NULL);
}

/* ---- PATCH a job or a grid --------------------------------------------------------- */

/* Reads the body of a PATCH: name, tags, note and priority (an integer in [-1000, 1000]);
 * nothing else. Returns the body (new reference) or NULL after replying. */
static json_t *patch_body(ApiRequest *req, ApiReply *reply, ApiMeta *meta, json_t **held,
                          bool *has_priority, int *priority)
{
    static const char *const keys[] = {"name", "tags", "note", "priority", NULL};
    json_t *obj = api_request_json(req, reply, true);
    if (!obj)
        return NULL;
    long long p = 0;
    int got;
    if (api_json_check_keys(obj, keys, reply) < 0 ||
        (got = api_json_int(obj, "priority", false, -1000, 1000, reply, &p)) < 0 ||
        api_meta_take(obj, true, meta, held, reply) < 0) {
        json_decref(obj);
        return NULL;
    }
    *has_priority = got == 1;
    *priority = (int)p;
    return obj;
}

static int patch_job(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    Store *s = api_store(req, reply);
    if (!s || path_id(req, reply, "job", &id) < 0)
        return 0;
    ApiMeta meta;
    json_t *held = NULL;
    bool has_priority;
    int priority;
    json_t *obj = patch_body(req, reply, &meta, &held, &has_priority, &priority);
    if (!obj) {
        json_decref(held);
        return 0;
    }
    StoreMetaEdit e = {meta.name, meta.tags_json, meta.note};
    int rc = STORE_OK;
    if (has_priority)
        rc = store_job_set_priority(s, id, priority);
    if (rc == STORE_OK && (e.name || e.tags_json || e.note))
        rc = store_job_set_meta(s, id, &e);
    api_meta_deinit(&meta);
    json_decref(held);
    json_decref(obj);
    if (rc == STORE_NOT_FOUND)
        return api_reply_problem(reply, 404, NULL, "job %lld does not exist", (long long)id);
    if (rc == STORE_CONFLICT)
        return api_reply_problem_field(reply, 409, "priority", "%s", store_errmsg(s));
    if (rc != STORE_OK)
        return api_reply_store_error(reply, s);
    api_publish_job(req, s, id, "job");
    StoreJob j;
    if (store_job_get(s, id, &j) != STORE_OK)
        return api_reply_store_error(reply, s);
    json_t *out = api_job_json(req, &j);
    store_job_deinit(&j);
    return api_reply_json(reply, 200, out);
}

static int patch_grid(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    Store *s = api_store(req, reply);
    if (!s || path_id(req, reply, "grid", &id) < 0)
        return 0;
    ApiMeta meta;
    json_t *held = NULL;
    bool has_priority;
    int priority, changed = 0;
    json_t *obj = patch_body(req, reply, &meta, &held, &has_priority, &priority);
    if (!obj) {
        json_decref(held);
        return 0;
    }
    StoreMetaEdit e = {meta.name, meta.tags_json, meta.note};
    int rc = store_grid_set_meta(s, id, &e);
    if (rc == STORE_OK && has_priority)
        rc = store_grid_set_priority(s, id, priority, &changed);
    api_meta_deinit(&meta);
    json_decref(held);
    json_decref(obj);
    if (rc == STORE_NOT_FOUND)
        return api_reply_problem(reply, 404, NULL, "grid %lld does not exist", (long long)id);
    if (rc != STORE_OK)
        return api_reply_store_error(reply, s);
    if (has_priority) {
        StoreJob *rows = NULL;
        int n = 0;
        if (grid_jobs(s, id, STORE_JOB_BIT(STORE_JOB_QUEUED), &rows, &n) == STORE_OK)
            for (int i = 0; i < n; i++)
                api_publish_job(req, s, rows[i].id, "job");
        store_jobs_free(rows, n);
    }
    api_publish_grid(req, s, id);
    return reply_grid(req, reply, s, id, 200, json_pack("{s:i}", "jobs_changed", changed));
}

/* ---- grid operations --------------------------------------------------------------- */

/* The grid the path's {id} names: 0 with its store and id, or -1 after replying (404 for a
 * malformed id or a grid that does not exist). */
static int existing_grid(ApiRequest *req, ApiReply *reply, Store **s, int64_t *id)
{
    if (!(*s = api_store(req, reply)) || path_id(req, reply, "grid", id) < 0)
        return -1;
    StoreGrid g;
    int rc = store_grid_get(*s, *id, &g);
    if (rc == STORE_OK) {
        store_grid_deinit(&g);
        return 0;
    }
    if (rc == STORE_NOT_FOUND)
        api_reply_problem(reply, 404, NULL, "grid %lld does not exist", (long long)*id);
    else
        api_reply_store_error(reply, *s);
    return -1;
}

static int cancel_grid(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    Store *s;
    if (existing_grid(req, reply, &s, &id) < 0)
        return 0;
    StoreJob *rows = NULL;
    int n = 0, changed = 0;
    if (grid_jobs(s, id, STORE_JOB_BIT(STORE_JOB_QUEUED) | STORE_JOB_BIT(STORE_JOB_RUNNING),
                  &rows, &n) != STORE_OK)
        return api_reply_store_error(reply, s);
    JobQueue *q = api_queue(req);
    for (int i = 0; q && i < n; i++)
        if (jobs_cancel(q, rows[i].id) == 0) {
            changed++;
            /* queued: cancelled now; running: its worker says so when it stops */
            if (rows[i].status == STORE_JOB_QUEUED)
                api_publish_job(req, s, rows[i].id, "job");
        }
    store_jobs_free(rows, n);
    api_publish_grid(req, s, id);
    return reply_grid(req, reply, s, id, 200, json_pack("{s:i}", "jobs_changed", changed));
}

static int retry_grid(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    Store *s;
    if (existing_grid(req, reply, &s, &id) < 0)
        return 0;
    StoreJob *rows = NULL;
    int n = 0, changed = 0;
    unsigned mask = STORE_JOB_BIT(STORE_JOB_FAILED) | STORE_JOB_BIT(STORE_JOB_CANCELLED);
    if (grid_jobs(s, id, mask, &rows, &n) != STORE_OK)
        return api_reply_store_error(reply, s);
    for (int i = 0; i < n; i++)
        if (store_job_set_status(s, rows[i].id, mask, STORE_JOB_QUEUED, NULL) == STORE_OK) {
            changed++;
            api_publish_job(req, s, rows[i].id, "job");
        }
    store_jobs_free(rows, n);
    if (changed && api_queue(req))
        jobs_notify(api_queue(req));
    api_publish_grid(req, s, id);
    return reply_grid(req, reply, s, id, 200, json_pack("{s:i}", "jobs_changed", changed));
}

static int delete_grid(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    Store *s = api_store(req, reply);
    if (!s || path_id(req, reply, "grid", &id) < 0)
        return 0;
    StoreJob *rows = NULL;
    int n = 0;
    if (grid_jobs(s, id, 0, &rows, &n) != STORE_OK)
        return api_reply_store_error(reply, s);
    for (int i = 0; i < n; i++)
        if (api_queue(req) && jobs_is_running(api_queue(req), rows[i].id)) {
            store_jobs_free(rows, n);
            return api_reply_problem(reply, 409, NULL, "grid %lld has a running job (%lld): "
                                     "cancel the grid first (POST /api/v1/grids/%lld/cancel)",
                                     (long long)id, (long long)rows[i].id, (long long)id);
        }
    int rc = store_grid_delete(s, id);
    if (rc == STORE_OK) {
        for (int i = 0; i < n; i++) {
            char err[1024];
            if (job_remove_files(req->ctx->state_dir, &rows[i], err, sizeof err) < 0)
                log_warn("api", "job %lld deleted with grid %lld, but not all of its files: "
                         "%s", (long long)rows[i].id, (long long)id, err);
            api_publish_id(req, "job_deleted", rows[i].id);
        }
        api_publish_id(req, "grid_deleted", id);
    }
    store_jobs_free(rows, n);
    if (rc == STORE_NOT_FOUND)
        return api_reply_problem(reply, 404, NULL, "grid %lld does not exist", (long long)id);
    if (rc == STORE_CONFLICT)
        return api_reply_problem(reply, 409, NULL, "%s", store_errmsg(s));
    if (rc != STORE_OK)
        return api_reply_store_error(reply, s);
    return api_reply_empty(reply, 204);
}

/* Whether rows (n) hold a job of (model, initializer, seed). */
static bool has_job(const StoreJob *rows, int n, const char *model, const char *init,
                    int64_t seed)
{
    for (int i = 0; i < n; i++)
        if (rows[i].seed == seed && strcmp(rows[i].model, model) == 0 &&
            strcmp(rows[i].initializer, init) == 0)
            return true;
    return false;
}

/* POST /grids/{id}/seeds {"seeds": [3, 4]}: the jobs of these seeds for every model and
 * initializer of the grid that it does not hold (a seed whose job was deleted is run
 * again), with the grid's options; the grid's seeds list grows. */
static int add_seeds(ApiRequest *req, ApiReply *reply)
{
    static const char *const keys[] = {"seeds", NULL};
    int64_t id;
    Store *s = api_store(req, reply);
    if (!s || path_id(req, reply, "grid", &id) < 0)
        return 0;
    json_t *body = api_request_json(req, reply, true);
    if (!body)
        return 0;
    json_t *seeds = json_object_get(body, "seeds"), *config = NULL, *common = NULL;
    StoreJob *rows = NULL;
    StoreJobNew *jobs = NULL;
    char **texts = NULL;
    int64_t *ids = NULL;
    int n_rows = 0, n = 0, rc = 0;
    StoreGrid g = {0};
    if (api_json_check_keys(body, keys, reply) < 0)
        goto out;
    if (!json_is_array(seeds) || json_array_size(seeds) == 0 ||
        json_array_size(seeds) > MAX_GRID_JOBS) {
        api_reply_problem_field(reply, 400, "seeds", "must be a non-empty list of seeds");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(seeds); i++)
        if (!json_is_integer(json_array_get(seeds, i)) ||
            json_integer_value(json_array_get(seeds, i)) < 0) {
            api_reply_problem_field(reply, 400, "seeds", "item %zu must be an integer >= 0", i);
            goto out;
        }
    int grc = store_grid_get(s, id, &g);
    if (grc != STORE_OK) {
        if (grc == STORE_NOT_FOUND)
            api_reply_problem(reply, 404, NULL, "grid %lld does not exist", (long long)id);
        else
            api_reply_store_error(reply, s);
        goto out;
    }
    config = json_loads(g.config_json, 0, NULL);
    json_t *models = json_object_get(config, "models"), *inits = json_object_get(config, "initializers");
    if (!json_is_array(models) || !json_is_array(inits)) {
        api_reply_problem(reply, 409, NULL, "grid %lld's stored configuration lists no models "
                          "or initializers", (long long)id);
        goto out;
    }
    if (grid_jobs(s, id, 0, &rows, &n_rows) != STORE_OK) {
        api_reply_store_error(reply, s);
        goto out;
    }
    size_t cap = json_array_size(seeds) * json_array_size(models) * json_array_size(inits);
    if (cap + (size_t)n_rows > MAX_GRID_JOBS) {
        api_reply_problem_field(reply, 400, "seeds", "the grid would have %zu jobs; at most %d",
                                cap + (size_t)n_rows, MAX_GRID_JOBS);
        goto out;
    }
    jobs = calloc(cap ? cap : 1, sizeof *jobs);
    texts = calloc(cap ? cap : 1, sizeof *texts);
    ids = calloc(cap ? cap : 1, sizeof *ids);
    JobConfig *cfgs = calloc(cap ? cap : 1, sizeof *cfgs);
    common = json_deep_copy(config);
    if (!jobs || !texts || !ids || !cfgs || !common) {
        free(cfgs);
        rc = -1;
        goto out;
    }
    json_object_del(common, "models");
    json_object_del(common, "initializers");
    json_object_del(common, "seeds");
    for (size_t k = 0; k < json_array_size(seeds); k++)
        for (size_t m = 0; m < json_array_size(models); m++)
            for (size_t i = 0; i < json_array_size(inits); i++) {
                json_t *seed = json_array_get(seeds, k);
                const char *model = json_string_value(json_array_get(models, m));
                const char *init = json_string_value(json_array_get(inits, i));
                if (!model || !init || has_job(rows, n_rows, model, init,
                                               json_integer_value(seed)))
                    continue;
                bool dup = false; /* a seed listed twice in the request */
                for (int j = 0; j < n; j++)
                    dup |= jobs[j].seed == json_integer_value(seed) &&
                           strcmp(jobs[j].model, model) == 0 &&
                           strcmp(jobs[j].initializer, init) == 0;
                if (dup)
                    continue;
                json_object_set(common, "model", json_array_get(models, m));
                json_object_set(common, "init", json_array_get(inits, i));
                json_object_set(common, "seed", seed);
                if (api_job_config(req, s, common, &cfgs[n], reply) < 0) {
                    free(cfgs);
                    goto out;
                }
                texts[n] = config_to_text(&cfgs[n]);
                if (!texts[n]) {
                    free(cfgs);
                    rc = -1;
                    goto out;
                }
                jobs[n] = (StoreJobNew){.priority = cfgs[n].priority, .config_json = texts[n],
                                        .dataset = cfgs[n].dataset, .model = cfgs[n].model,
                                        .initializer = cfgs[n].init, .seed = cfgs[n].seed,
                                        .epochs = cfgs[n].epochs, .tags_json = g.tags_json};
                n++;
            }
    if (n == 0) {
        free(cfgs);
        rc = reply_grid(req, reply, s, id, 200, json_pack("{s:[]}", "jobs"));
        goto out;
    }
    /* The grid's seeds: the old ones, then the new ones in request order. */
    json_t *all = json_object_get(config, "seeds");
    json_t *merged = json_is_array(all) ? json_copy(all) : json_array();
    for (size_t k = 0; merged && k < json_array_size(seeds); k++) {
        bool known = false;
        for (size_t j = 0; j < json_array_size(merged); j++)
            known |= json_integer_value(json_array_get(merged, j)) ==
                     json_integer_value(json_array_get(seeds, k));
        if (!known)
            json_array_append(merged, json_array_get(seeds, k));
    }
    json_object_set_new(config, "seeds", merged);
    char *config_text = json_text(config, JSON_COMPACT | JSON_SORT_KEYS);
    int src = config_text ? store_grid_add_jobs(s, id, jobs, n, config_text, ids) : STORE_ERROR;
    free(config_text);
    free(cfgs);
    if (src != STORE_OK) {
        api_reply_store_error(reply, s);
        goto out;
    }
    if (api_queue(req))
        jobs_notify(api_queue(req));
    json_t *created = json_array();
    for (int i = 0; i < n; i++) {
        api_publish_job(req, s, ids[i], "job");
        StoreJob j;
        if (store_job_get(s, ids[i], &j) == STORE_OK) {
            json_array_append_new(created, api_job_json(req, &j));
            store_job_deinit(&j);
        }
    }
    api_publish_grid(req, s, id);
    rc = reply_grid(req, reply, s, id, 201, json_pack("{s:o}", "jobs", created));
out:
    for (int i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    free(jobs);
    free(ids);
    store_jobs_free(rows, n_rows);
    store_grid_deinit(&g);
    json_decref(common);
    json_decref(config);
    json_decref(body);
    return rc;
}

/* ---- disk -------------------------------------------------------------------------- */

static json_t *bytes_or_null(int64_t b)
{
    return b > 0 ? json_integer(b) : json_null();
}

static int get_storage(ApiRequest *req, ApiReply *reply)
{
    const char *state = req->ctx->state_dir;
    StorageUsage u;
    char err[512];
    if (!state || storage_usage(state, &u, err, sizeof err) < 0)
        return api_reply_problem(reply, 500, NULL, "state directory: %s",
                                 state ? err : "none");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/cache", state);
    DataCacheFile *files = NULL;
    int n_files = 0;
    uint64_t cache_total = 0;
    json_t *caches = json_array();
    if (data_cache_usage(dir, &files, &n_files, &cache_total) == 0)
        for (int i = 0; i < n_files; i++)
            json_array_append_new(caches, json_pack("{s:s, s:I, s:o, s:b}", "file",
                                                    files[i].name, "bytes",
                                                    (json_int_t)files[i].bytes, "last_used",
                                                    report_time(files[i].last_used), "in_use",
                                                    files[i].in_use));
    free(files);
    json_t *jobs = json_array();
    snprintf(dir, sizeof dir, "%s/jobs", state);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (job_folder_name(e->d_name))
            json_array_append_new(jobs, json_pack("{s:I, s:I}", "id",
                                                  (json_int_t)atoll(e->d_name), "bytes",
                                                  (json_int_t)job_disk_bytes(state,
                                                                             atoll(e->d_name))));
    if (d)
        closedir(d);
    const ApiContext *c = req->ctx;
    return api_reply_json(reply, 200, json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:{s:s, s:i}, s:o, s:o}",
        "state_dir", state, "total_bytes", (json_int_t)u.total,
        "database_bytes", (json_int_t)u.database, "checkpoints_bytes",
        (json_int_t)u.checkpoints, "caches_bytes", (json_int_t)u.caches,
        "quarantine_bytes", (json_int_t)u.quarantine, "other_bytes", (json_int_t)u.other,
        "free_bytes", (json_int_t)u.free, "filesystem_bytes", (json_int_t)u.filesystem,
        "cache_limit_bytes", bytes_or_null((int64_t)data_cache_limit()),
        "retention", "checkpoints", retention_name((RetainKind)c->retention_kind),
        "keep_finished", c->keep_finished, "caches", caches, "jobs", jobs));
}

/* ---- downloads --------------------------------------------------------------------- */

static int load_job(ApiRequest *req, ApiReply *reply, Store *s, StoreJob *job)
{
    int64_t id;
    if (path_id(req, reply, "job", &id) < 0)
        return -1;
    int rc = store_job_get(s, id, job);
    if (rc == STORE_OK)
        return 0;
    if (rc == STORE_NOT_FOUND)
        api_reply_problem(reply, 404, NULL, "job %lld does not exist", (long long)id);
    else
        api_reply_store_error(reply, s);
    return -1;
}

/* GET /jobs/{id}/weights?checkpoint=best|latest: the checkpoint's weights as safetensors,
 * converted into a temporary file of the state directory that is unlinked once open. */
static int get_weights(ApiRequest *req, ApiReply *reply)
{
    Store *s = api_store(req, reply);
    StoreJob job;
    if (!s || load_job(req, reply, s, &job) < 0)
        return 0;
    const char *which = api_query(req, "checkpoint");
    StoreCheckpointKind kind = STORE_CKPT_BEST;
    if (which && store_checkpoint_kind_parse(which, &kind) < 0) {
        store_job_deinit(&job);
        return api_reply_problem_field(reply, 400, "checkpoint", "must be best or latest, not "
                                       "\"%.40s\"", which);
    }
    StoreCheckpoint ck;
    int rc = store_checkpoint_get(s, job.id, kind, &ck);
    if (rc != STORE_OK) {
        long long id = (long long)job.id;
        store_job_deinit(&job);
        if (rc != STORE_NOT_FOUND)
            return api_reply_store_error(reply, s);
        return api_reply_problem_field(reply, 404, "checkpoint", "job %lld has no %s "
                                       "checkpoint (none was written yet, or the retention "
                                       "policy deleted it)", id,
                                       store_checkpoint_kind_name(kind));
    }
    char tmp[4200], err[1024];
    snprintf(tmp, sizeof tmp, "%s/download-%lld-%ld.safetensors", req->ctx->state_dir,
             (long long)job.id, (long)gettid());
    CheckpointState state;
    rc = export_checkpoint_weights(ck.path, tmp, job.uid, job.pre_identity, &state, err,
                                   sizeof err);
    int fd = rc == 0 ? open(tmp, O_RDONLY | O_CLOEXEC) : -1;
    unlink(tmp);
    struct stat st;
    if (rc < 0 || fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        store_job_deinit(&job);
        return api_reply_problem(reply, rc < 0 ? 409 : 500, NULL, "%s",
                                 rc < 0 ? err : "could not read the converted weights");
    }
    char disposition[160];
    snprintf(disposition, sizeof disposition,
             "attachment; filename=\"job%lld-%s-epoch%d.safetensors\"", (long long)job.id,
             store_checkpoint_kind_name(kind), state.epoch);
    store_job_deinit(&job);
    rc = api_reply_file(reply, 200, "application/octet-stream", fd, (uint64_t)st.st_size);
    api_reply_header(reply, "Content-Disposition", disposition);
    return rc;
}

/* The job's statistics, every epoch, mode and quantity, histograms included. */
static json_t *all_stats(Store *s, int64_t id)
{
    int *epochs = NULL, n = 0;
    json_t *out = json_array();
    if (store_stats_epochs(s, id, &epochs, &n) != STORE_OK) {
        json_decref(out);
        return NULL;
    }
    for (int e = 0; out && e < n; e++)
        for (int m = 0; m < 2; m++)
            for (int q = 0; q < 3; q++) {
                StoreLayerStat *rows = NULL;
                int k = 0;
                if (store_stats_get(s, id, epochs[e], (StoreMode)m, (StoreQuantity)q, &rows,
                                    &k) != STORE_OK)
                    continue;
                json_t *layers = json_array();
                for (int i = 0; i < k; i++)
                    json_array_append_new(layers, report_layer_stat(&rows[i], true));
                free(rows);
                json_array_append_new(out, json_pack("{s:i, s:s, s:s, s:o}", "epoch",
                                                     epochs[e], "mode",
                                                     store_mode_name((StoreMode)m),
                                                     "quantity",
                                                     store_quantity_name((StoreQuantity)q),
                                                     "layers", layers));
            }
    free(epochs);
    return out;
}

/* The job's whole record as one JSON object: job, epochs, steps, statistics, results. */
static json_t *bundle(ApiRequest *req, Store *s, StoreJob *job)
{
    json_t *epochs = json_array(), *steps = json_array(), *results = json_null();
    StoreEpoch *er = NULL;
    int n = 0;
    if (store_epoch_list(s, job->id, &er, &n) == STORE_OK)
        for (int i = 0; i < n; i++)
            json_array_append_new(epochs, report_epoch(&er[i]));
    free(er);
    StoreStep *sr = NULL;
    if (store_steps_list(s, job->id, &sr, &n) == STORE_OK)
        for (int i = 0; i < n; i++)
            json_array_append_new(steps, report_step(&sr[i]));
    free(sr);
    StoreResult res;
    if (store_result_get(s, job->id, &res) == STORE_OK) {
        json_t *names = NULL;
        StoreDataset d;
        if (store_dataset_get(s, job->dataset, &d) == STORE_OK) {
            names = json_loads(d.class_names_json, 0, NULL);
            store_dataset_deinit(&d);
        }
        json_decref(results);
        results = report_results(&res, names);
        json_decref(names);
        store_result_deinit(&res);
    }
    json_t *stats = all_stats(s, job->id);
    return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "format", "initlab-job-bundle-1",
                     "job", api_job_json(req, job), "epochs", epochs, "steps", steps,
                     "statistics", stats ? stats : json_array(), "results", results);
}

/* One row of the CSV bundle (long format). */
static void csv_row(json_t *rows, const char *section, int epoch, json_int_t step,
                    const char *mode, const char *quantity, json_int_t layer_index,
                    const char *layer, const char *key, json_t *value)
{
    json_t *r = json_object();
    json_object_set_new(r, "section", json_string(section));
    json_object_set_new(r, "epoch", epoch >= 0 ? json_integer(epoch) : json_null());
    json_object_set_new(r, "step", step >= 0 ? json_integer(step) : json_null());
    json_object_set_new(r, "mode", mode ? json_string(mode) : json_null());
    json_object_set_new(r, "quantity", quantity ? json_string(quantity) : json_null());
    json_object_set_new(r, "layer_index", layer_index >= 0 ? json_integer(layer_index)
                                                           : json_null());
    json_object_set_new(r, "layer", layer ? json_string(layer) : json_null());
    json_object_set_new(r, "key", json_string(key));
    json_object_set(r, "value", value ? value : json_null());
    json_array_append_new(rows, r);
}

/* The scalar members of o as rows (nested objects and arrays are left out). */
static void csv_scalars(json_t *rows, const char *section, int epoch, json_int_t step,
                        const char *mode, const char *quantity, json_int_t layer_index,
                        const char *layer, const json_t *o)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v)
        if (!json_is_object(v) && !json_is_array(v))
            csv_row(rows, section, epoch, step, mode, quantity, layer_index, layer, key, v);
}

/* The bundle in long form: one value per row, with where it belongs. */
static json_t *bundle_rows(const json_t *b)
{
    json_t *rows = json_array();
    const json_t *job = json_object_get(b, "job");
    csv_scalars(rows, "job", -1, -1, NULL, NULL, -1, NULL, job);
    csv_scalars(rows, "config", -1, -1, NULL, NULL, -1, NULL, json_object_get(job, "config"));
    json_t *milestones = json_object_get(json_object_get(job, "config"), "milestones");
    if (milestones) {
        char *t = json_text(milestones, JSON_COMPACT);
        json_t *v = json_string(t ? t : "[]");
        csv_row(rows, "config", -1, -1, NULL, NULL, -1, NULL, "milestones", v);
        json_decref(v);
        free(t);
    }
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(b, "epochs"), i, e)
        csv_scalars(rows, "epoch", (int)json_integer_value(json_object_get(e, "epoch")), -1,
                    NULL, NULL, -1, NULL, e);
    json_array_foreach(json_object_get(b, "steps"), i, e)
        csv_scalars(rows, "step", (int)json_integer_value(json_object_get(e, "epoch")),
                    json_integer_value(json_object_get(e, "global_step")), NULL, NULL, -1,
                    NULL, e);
    json_array_foreach(json_object_get(b, "statistics"), i, e) {
        int epoch = (int)json_integer_value(json_object_get(e, "epoch"));
        const char *mode = json_string_value(json_object_get(e, "mode"));
        const char *qty = json_string_value(json_object_get(e, "quantity"));
        size_t k;
        json_t *l;
        json_array_foreach(json_object_get(e, "layers"), k, l)
            csv_scalars(rows, "statistics", epoch, -1, mode, qty,
                        json_integer_value(json_object_get(l, "layer_index")),
                        json_string_value(json_object_get(l, "layer")), l);
    }
    const json_t *res = json_object_get(b, "results");
    if (json_is_object(res)) {
        int epoch = (int)json_integer_value(json_object_get(res, "epoch"));
        csv_scalars(rows, "results", epoch, -1, NULL, NULL, -1, NULL, res);
        json_array_foreach(json_object_get(res, "per_class"), i, e)
            csv_scalars(rows, "per_class", epoch, -1, NULL, NULL,
                        json_integer_value(json_object_get(e, "class")),
                        json_string_value(json_object_get(e, "name")), e);
        json_array_foreach(json_object_get(res, "confusion"), i, e) {
            size_t k;
            json_t *c;
            json_array_foreach(e, k, c) {
                char key[48];
                snprintf(key, sizeof key, "predicted_%zu", k);
                csv_row(rows, "confusion", epoch, -1, NULL, NULL, (json_int_t)i,
                        json_string_value(json_array_get(json_object_get(res, "class_names"),
                                                         i)), key, c);
            }
        }
    }
    return rows;
}

static int get_bundle(ApiRequest *req, ApiReply *reply)
{
    Store *s = api_store(req, reply);
    StoreJob job;
    if (!s || load_job(req, reply, s, &job) < 0)
        return 0;
    int csv = api_wants_csv(req, reply);
    if (csv < 0) {
        store_job_deinit(&job);
        return 0;
    }
    json_t *b = bundle(req, s, &job);
    char disposition[128];
    snprintf(disposition, sizeof disposition, "attachment; filename=\"job%lld.%s\"",
             (long long)job.id, csv ? "csv" : "json");
    store_job_deinit(&job);
    if (!b)
        return -1;
    int rc;
    if (csv) {
        static const char *const columns[] = {"section", "epoch", "step", "mode", "quantity",
                                              "layer_index", "layer", "key", "value", NULL};
        json_t *rows = bundle_rows(b);
        rc = api_reply_csv(reply, columns, rows);
        json_decref(rows);
        json_decref(b);
    } else {
        rc = api_reply_json(reply, 200, b);
    }
    api_reply_header(reply, "Content-Disposition", disposition);
    return rc;
}

static int get_steps(ApiRequest *req, ApiReply *reply)
{
    Store *s = api_store(req, reply);
    StoreJob job;
    if (!s || load_job(req, reply, s, &job) < 0)
        return 0;
    int64_t id = job.id;
    store_job_deinit(&job);
    int csv = api_wants_csv(req, reply);
    if (csv < 0)
        return 0;
    StoreStep *rows = NULL;
    int n = 0;
    if (store_steps_list(s, id, &rows, &n) != STORE_OK)
        return api_reply_store_error(reply, s);
    json_t *list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(list, report_step(&rows[i]));
    free(rows);
    if (csv) {
        static const char *const columns[] = {"global_step", "epoch", "step",
                                              "steps_per_epoch", "loss", "accuracy", NULL};
        int rc = api_reply_csv(reply, columns, list);
        json_decref(list);
        return rc;
    }
    return api_reply_json(reply, 200, json_pack("{s:I, s:i, s:o}", "job_id", (json_int_t)id,
                                                "points_per_epoch", TRAIN_STEP_POINTS,
                                                "steps", list));
}

int routes_lab_register(Router *r)
{
    return router_add(r, "PATCH", "/api/v1/jobs/{id}", patch_job, NULL) < 0 ||
                   router_add(r, "PATCH", "/api/v1/grids/{id}", patch_grid, NULL) < 0 ||
                   router_add(r, "DELETE", "/api/v1/grids/{id}", delete_grid, NULL) < 0 ||
                   router_add(r, "POST", "/api/v1/grids/{id}/cancel", cancel_grid, NULL) < 0 ||
                   router_add(r, "POST", "/api/v1/grids/{id}/retry", retry_grid, NULL) < 0 ||
                   router_add(r, "POST", "/api/v1/grids/{id}/seeds", add_seeds, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/storage", get_storage, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/jobs/{id}/weights", get_weights, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/jobs/{id}/bundle", get_bundle, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/jobs/{id}/steps", get_steps, NULL) < 0
               ? -1
               : 0;
}
