/* store_jobs.c — grids, jobs (queue, status, progress, identities), submissions and
 * idempotency keys. */
#include "store/store_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Maps jobs.status to its StoreJobStatus bit for a mask given as a parameter. */
#define STATUS_BIT_SQL                                                                     \
    "(1 << CASE status WHEN 'queued' THEN 0 WHEN 'running' THEN 1 WHEN 'done' THEN 2"      \
    " WHEN 'failed' THEN 3 ELSE 4 END)"

/* A job waits while its dataset is being scanned (a failed or missing dataset does not
 * hold it: the worker fails it with the reason). */
#define DATASET_SCANNING                                                                   \
    "EXISTS (SELECT 1 FROM datasets d WHERE d.name = jobs.dataset AND d.status = 'scanning')"

/* A queued job submitted to Slurm waits for its own Slurm job (jobs/slurm.h). */
const char store_sql_job_claim[] =
    "UPDATE jobs SET status = 'running', started_at = coalesce(started_at, ?1),"
    " finished_at = NULL, error = NULL, attempts = attempts + 1, attempt_uid = ?2,"
    " lease_expires_at = NULL, host = ?3, worker = ?4, stop_request = NULL"
    " WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND NOT " DATASET_SCANNING
    "             AND slurm_job_id IS NULL ORDER BY priority DESC, id LIMIT 1)"
    " RETURNING id";

#define JOB_COLUMNS                                                                        \
    "id, grid_id, status, priority, config, dataset, model, initializer, seed, epochs,"    \
    " created_at, started_at, finished_at, error, attempts, epoch, step, steps_per_epoch," \
    " images_per_sec, eta_seconds, best_val_acc, best_epoch, " DATASET_SCANNING ","       \
    " uid, attempt_uid, pre_identity, lease_expires_at, host, worker, slurm_job_id,"     \
    " stop_request IS NOT NULL, name, tags, note"

int store_run_in_transaction(Store *s, const char *const *sql, int n, int64_t a, int64_t b,
                             const char *what)
{
    int rc = store_begin(s);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++) {
        sqlite3_stmt *st;
        if ((rc = store_prepare(s, sql[i], &st)))
            break;
        sqlite3_bind_int64(st, 1, a);
        if (sqlite3_bind_parameter_count(st) >= 2)
            sqlite3_bind_int64(st, 2, b);
        rc = store_step_done(s, st, what);
        sqlite3_finalize(st);
        if (rc)
            break;
    }
    if (rc) {
        store_rollback(s);
        return rc;
    }
    return store_commit(s);
}

/* Row reader (StoreReadRow); row is a StoreJob. */
static int read_job(Store *s, sqlite3_stmt *st, void *row)
{
    StoreJob *j = row;
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(st, 0);
    j->grid_id = sqlite3_column_int64(st, 1);
    j->status = STORE_JOB_FAILED;
    store_job_status_parse((const char *)sqlite3_column_text(st, 2), &j->status);
    j->priority = sqlite3_column_int(st, 3);
    store_col_copy(st, 5, j->dataset, sizeof j->dataset);
    store_col_copy(st, 6, j->model, sizeof j->model);
    store_col_copy(st, 7, j->initializer, sizeof j->initializer);
    j->seed = sqlite3_column_int64(st, 8);
    j->epochs = sqlite3_column_int(st, 9);
    j->created_at = store_col_time(st, 10);
    j->started_at = store_col_time(st, 11);
    j->finished_at = store_col_time(st, 12);
    j->attempts = sqlite3_column_int(st, 14);
    j->progress.epoch = sqlite3_column_int(st, 15);
    j->progress.step = sqlite3_column_int(st, 16);
    j->progress.steps_per_epoch = sqlite3_column_int(st, 17);
    j->progress.images_per_sec = store_col_real(st, 18);
    j->progress.eta_seconds = store_col_real(st, 19);
    j->progress.best_val_acc = store_col_real(st, 20);
    j->progress.best_epoch = sqlite3_column_int(st, 21);
    j->dataset_scanning = sqlite3_column_int(st, 22) != 0;
    store_col_copy(st, 23, j->uid, sizeof j->uid);
    store_col_copy(st, 24, j->attempt_uid, sizeof j->attempt_uid);
    j->pre_identity = sqlite3_column_int(st, 25) != 0;
    j->lease_expires_at = store_col_time(st, 26);
    store_col_copy(st, 27, j->host, sizeof j->host);
    store_col_copy(st, 28, j->worker, sizeof j->worker);
    store_col_copy(st, 29, j->slurm_job_id, sizeof j->slurm_job_id);
    j->stop_requested = sqlite3_column_int(st, 30) != 0;
    j->disk_bytes = -1;
    if (store_col_dup(s, st, 4, &j->config_json) != STORE_OK ||
        store_col_dup(s, st, 13, &j->error) != STORE_OK ||
        store_col_dup(s, st, 31, &j->name) != STORE_OK ||
        store_col_dup(s, st, 32, &j->tags_json) != STORE_OK ||
        store_col_dup(s, st, 33, &j->note) != STORE_OK) {
        store_job_deinit(j);
        return STORE_ERROR;
    }
    return STORE_OK;
}

void store_job_deinit(StoreJob *j)
{
    if (!j)
        return;
    free(j->config_json);
    free(j->error);
    free(j->name);
    free(j->tags_json);
    free(j->note);
    j->config_json = j->error = j->name = j->tags_json = j->note = NULL;
}

void store_jobs_free(StoreJob *rows, int n)
{
    for (int i = 0; rows && i < n; i++)
        store_job_deinit(&rows[i]);
    free(rows);
}

/* store_jobs_free as StoreFreeRows. */
static void free_jobs(void *rows, int n)
{
    store_jobs_free(rows, n);
}

/* ---- Grids ----------------------------------------------------------------------------- */

#define GRID_SELECT                                                                        \
    "SELECT g.id, g.created_at, g.config, count(j.id),"                                    \
    " sum(j.status = 'queued'), sum(j.status = 'running'), sum(j.status = 'done'),"        \
    " sum(j.status = 'failed'), sum(j.status = 'cancelled'), g.name, g.tags, g.note"       \
    " FROM grids g LEFT JOIN jobs j ON j.grid_id = g.id"

/* Row reader (StoreReadRow); row is a StoreGrid. */
static int read_grid(Store *s, sqlite3_stmt *st, void *row)
{
    StoreGrid *g = row;
    memset(g, 0, sizeof *g);
    g->id = sqlite3_column_int64(st, 0);
    g->created_at = store_col_time(st, 1);
    g->n_jobs = sqlite3_column_int(st, 3);
    for (int k = 0; k < STORE_JOB_STATUS_COUNT; k++)
        g->n_status[k] = sqlite3_column_int(st, 4 + k);
    if (store_col_dup(s, st, 2, &g->config_json) != STORE_OK ||
        store_col_dup(s, st, 9, &g->name) != STORE_OK ||
        store_col_dup(s, st, 10, &g->tags_json) != STORE_OK ||
        store_col_dup(s, st, 11, &g->note) != STORE_OK) {
        store_grid_deinit(g);
        return STORE_ERROR;
    }
    return STORE_OK;
}

void store_grid_deinit(StoreGrid *g)
{
    if (!g)
        return;
    free(g->config_json);
    free(g->name);
    free(g->tags_json);
    free(g->note);
    g->config_json = g->name = g->tags_json = g->note = NULL;
}

void store_grids_free(StoreGrid *rows, int n)
{
    for (int i = 0; rows && i < n; i++)
        store_grid_deinit(&rows[i]);
    free(rows);
}

/* store_grids_free as StoreFreeRows. */
static void free_grids(void *rows, int n)
{
    store_grids_free(rows, n);
}

static int insert_grid(Store *s, const char *config_json, const StoreSubmit *meta,
                       int64_t *id)
{
    if (!config_json)
        return store_fail(s, STORE_INVALID, "grid configuration is missing");
    sqlite3_stmt *st;
    bool lab = meta && store_schema_has(s, STORE_MIGRATION_LAB);
    int rc = store_prepare(s, lab ? "INSERT INTO grids (created_at, config, name, tags, note)"
                                    " VALUES (?, ?, ?, coalesce(?, '[]'), ?)"
                                  : "INSERT INTO grids (created_at, config) VALUES (?, ?)",
                           &st);
    if (rc)
        return rc;
    sqlite3_bind_double(st, 1, store_now());
    sqlite3_bind_text(st, 2, config_json, -1, SQLITE_STATIC);
    if (lab) {
        store_bind_text(st, 3, meta->grid_name);
        store_bind_text(st, 4, meta->grid_tags_json);
        store_bind_text(st, 5, meta->grid_note);
    }
    rc = store_step_done(s, st, "creating a grid");
    if (rc == STORE_OK && id)
        *id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

int store_grid_insert(Store *s, const char *config_json, int64_t *id)
{
    return insert_grid(s, config_json, NULL, id);
}

int store_grid_get(Store *s, int64_t id, StoreGrid *out)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, GRID_SELECT " WHERE g.id = ? GROUP BY g.id", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = read_grid(s, st, out);
    else if (step == SQLITE_DONE)
        rc = store_fail(s, STORE_NOT_FOUND, "grid %lld not found", (long long)id);
    else
        rc = store_db_fail(s, "reading a grid");
    sqlite3_finalize(st);
    return rc;
}

int store_grid_list(Store *s, StoreGrid **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, GRID_SELECT " GROUP BY g.id ORDER BY g.id DESC", &st);
    if (rc)
        return rc;
    void *arr;
    rc = store_collect_rows(s, st, sizeof **rows, 8, read_grid, free_grids, "listing grids",
                            &arr, n);
    *rows = arr;
    return rc;
}

/* ---- Jobs ------------------------------------------------------------------------------ */

static int check_job(Store *s, const StoreJobNew *j)
{
    int rc;
    if ((rc = store_check_text(s, "job configuration", j->config_json, (size_t)-1, 1)) ||
        (rc = store_check_text(s, "dataset", j->dataset, STORE_NAME_MAX, 1)) ||
        (rc = store_check_text(s, "model", j->model, STORE_NAME_MAX, 1)) ||
        (rc = store_check_text(s, "initializer", j->initializer, STORE_NAME_MAX, 1)))
        return rc;
    if (j->epochs < 0)
        return store_fail(s, STORE_INVALID, "epochs = %d is negative", j->epochs);
    return STORE_OK;
}

/* Inserts one checked job with a new uid (and attempt uid when it starts running);
 * grid_id overrides j->grid_id. On a connection opened at a schema older than the
 * identities (store_open_version), the job is stored as that version stored it. */
static int insert_job(Store *s, const StoreJobNew *j, int64_t grid_id, int64_t *id)
{
    char uid[STORE_UID_LEN + 1], attempt[STORE_UID_LEN + 1];
    bool identity = s->schema >= STORE_SCHEMA_IDENTITY;
    int rc;
    if ((rc = store_random_uid(s, uid)) || (rc = store_random_uid(s, attempt)))
        return rc;
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO jobs (grid_id, priority, config, dataset, model, initializer, seed,"
             " epochs, created_at%s%s%s) VALUES (?1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10%s%s%s)",
             j->start_running ? ", status, started_at, attempts" : "",
             identity ? ", uid" : "", identity && j->start_running ? ", attempt_uid" : "",
             j->start_running ? ", 'running', ?10, 1" : "", identity ? ", ?11" : "",
             identity && j->start_running ? ", ?12" : "");
    sqlite3_stmt *st;
    if ((rc = store_prepare(s, sql, &st)))
        return rc;
    store_bind_id(st, 1, grid_id);
    sqlite3_bind_int(st, 3, j->priority);
    sqlite3_bind_text(st, 4, j->config_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, j->dataset, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, j->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, j->initializer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, j->seed);
    sqlite3_bind_int(st, 9, j->epochs);
    sqlite3_bind_double(st, 10, store_now());
    if (identity)
        sqlite3_bind_text(st, 11, uid, -1, SQLITE_STATIC);
    if (identity && j->start_running)
        sqlite3_bind_text(st, 12, attempt, -1, SQLITE_STATIC);
    rc = store_step_done(s, st, "queueing a job");
    if (rc == STORE_OK && (j->name || j->tags_json || j->note)) {
        int64_t new_id = sqlite3_last_insert_rowid(s->db);
        StoreMetaEdit meta = {.name = j->name, .tags_json = j->tags_json, .note = j->note};
        sqlite3_finalize(st);
        st = NULL;
        rc = store_schema_has(s, STORE_MIGRATION_LAB) ? store_job_set_meta(s, new_id, &meta)
                                                      : STORE_OK;
        if (rc == STORE_OK && id)
            *id = new_id;
        return rc;
    }
    if (rc == STORE_NOT_FOUND)
        rc = store_fail(s, STORE_NOT_FOUND, "grid %lld not found", (long long)grid_id);
    else if (rc == STORE_OK && id)
        *id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

int store_job_insert(Store *s, const StoreJobNew *job, int64_t *id)
{
    int rc = check_job(s, job);
    return rc ? rc : insert_job(s, job, job->grid_id, id);
}

int store_job_get(Store *s, int64_t id, StoreJob *out)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = read_job(s, st, out);
    else if (step == SQLITE_DONE)
        rc = store_fail(s, STORE_NOT_FOUND, "job %lld not found", (long long)id);
    else
        rc = store_db_fail(s, "reading a job");
    sqlite3_finalize(st);
    return rc;
}

#define JOB_FILTER                                                                         \
    " WHERE (?1 = 0 OR (?1 & " STATUS_BIT_SQL ") != 0)"                                    \
    " AND (?2 IS NULL OR grid_id = ?2) AND (?3 IS NULL OR model = ?3)"                     \
    " AND (?4 IS NULL OR initializer = ?4) AND (?5 IS NULL OR dataset = ?5)"               \
    " AND " STORE_TAG_FILTER("jobs.tags", "?10") " AND "                                   \
    STORE_TEXT_FILTER("coalesce(name, '') || ' ' || coalesce(note, '') || ' ' || tags"     \
                      " || ' ' || model || ' ' || initializer || ' ' || dataset", "?11")

static void bind_filter(sqlite3_stmt *st, const StoreJobFilter *f)
{
    store_bind_text(st, 10, f->tag && f->tag[0] ? f->tag : NULL);
    store_bind_like(st, 11, f->q);
    sqlite3_bind_int64(st, 1, f->status_mask);
    store_bind_id(st, 2, f->grid_id);
    store_bind_text(st, 3, f->model && f->model[0] ? f->model : NULL);
    store_bind_text(st, 4, f->initializer && f->initializer[0] ? f->initializer : NULL);
    store_bind_text(st, 5, f->dataset && f->dataset[0] ? f->dataset : NULL);
}

int store_job_list(Store *s, const StoreJobFilter *filter, StoreJob **rows, int *n, int *total)
{
    static const StoreJobFilter all = {0};
    const StoreJobFilter *f = filter ? filter : &all;
    *rows = NULL;
    *n = 0;
    if (total)
        *total = 0;
    if (f->limit < 0 || f->limit > 1000)
        return store_fail(s, STORE_INVALID, "limit %d is not in 1..1000", f->limit);
    if (f->offset < 0)
        return store_fail(s, STORE_INVALID, "offset %d is negative", f->offset);

    sqlite3_stmt *count_st = NULL, *st = NULL;
    /* One read transaction: the page and the total come from the same snapshot. */
    int rc = store_exec(s, "BEGIN", "starting a read");
    if (rc)
        return rc;
    if ((rc = store_prepare(s, "SELECT count(*) FROM jobs" JOB_FILTER, &count_st)))
        goto fail;
    bind_filter(count_st, f);
    if (sqlite3_step(count_st) != SQLITE_ROW) {
        rc = store_db_fail(s, "counting jobs");
        goto fail;
    }
    if (total)
        *total = sqlite3_column_int(count_st, 0);

    int limit = f->limit ? f->limit : 100;
    if ((rc = store_prepare(s,
                            f->newest_first
                                ? "SELECT " JOB_COLUMNS " FROM jobs" JOB_FILTER
                                  " ORDER BY id DESC LIMIT ?6 OFFSET ?7"
                                : "SELECT " JOB_COLUMNS " FROM jobs" JOB_FILTER
                                  " ORDER BY id LIMIT ?6 OFFSET ?7",
                            &st)))
        goto fail;
    bind_filter(st, f);
    sqlite3_bind_int(st, 6, limit);
    sqlite3_bind_int(st, 7, f->offset);
    void *arr;
    rc = store_collect_rows(s, st, sizeof **rows, limit, read_job, free_jobs, "listing jobs",
                            &arr, n);
    st = NULL;  /* finalized by store_collect_rows */
    if (rc)
        goto fail;
    sqlite3_finalize(count_st);
    store_exec(s, "COMMIT", "ending a read");
    *rows = arr;
    return STORE_OK;
fail:
    sqlite3_finalize(count_st);
    sqlite3_finalize(st);
    store_rollback(s);
    if (total)
        *total = 0;
    return rc;
}

/* The status of job id into *status: STORE_OK, STORE_NOT_FOUND or STORE_ERROR. */
static int job_status(Store *s, int64_t id, StoreJobStatus *status)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT status FROM jobs WHERE id = ?", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *status = STORE_JOB_FAILED;
        store_job_status_parse((const char *)sqlite3_column_text(st, 0), status);
    } else if (step == SQLITE_DONE) {
        rc = store_fail(s, STORE_NOT_FOUND, "job %lld not found", (long long)id);
    } else {
        rc = store_db_fail(s, "reading a job's status");
    }
    sqlite3_finalize(st);
    return rc;
}

/* store_job_set_status, and with attempt_uid non-NULL store_job_end_attempt: the move
 * happens only while attempt_uid is the job's current attempt. */
static int set_status(Store *s, int64_t id, unsigned from_mask, const char *attempt_uid,
                      StoreJobStatus to, const char *error)
{
    if ((int)to < 0 || to >= STORE_JOB_STATUS_COUNT)
        return store_fail(s, STORE_INVALID, "job status %d is out of range", (int)to);
    char attempt[STORE_UID_LEN + 1] = "";
    int rc;
    if (to == STORE_JOB_RUNNING && (rc = store_random_uid(s, attempt)))
        return rc;
    sqlite3_stmt *st = NULL;
    if ((rc = store_begin(s)))
        return rc;
    if ((rc = store_prepare(
             s,
             "UPDATE jobs SET status = ?1,"
             " started_at = CASE WHEN ?1 = 'running' THEN coalesce(started_at, ?2)"
             "              ELSE started_at END,"
             " finished_at = CASE WHEN ?1 IN ('done', 'failed', 'cancelled') THEN ?2 END,"
             " error = CASE WHEN ?1 IN ('done', 'failed', 'cancelled') THEN ?3 END,"
             " attempts = attempts + (?1 = 'running'),"
             " attempt_uid = CASE WHEN ?1 = 'running' THEN ?6 ELSE attempt_uid END,"
             " lease_expires_at = CASE WHEN ?1 = 'running' THEN NULL ELSE lease_expires_at"
             "                    END,"
             " stop_request = CASE WHEN ?1 IN ('running', 'queued') THEN NULL"
             "                ELSE stop_request END,"
             " slurm_job_id = CASE WHEN ?1 IN ('done', 'failed', 'cancelled') THEN NULL"
             "                ELSE slurm_job_id END"
             " WHERE id = ?4 AND (?5 = 0 OR (?5 & " STATUS_BIT_SQL ") != 0)"
             " AND (?7 IS NULL OR attempt_uid IS ?7)",
             &st)))
        goto fail;
    sqlite3_bind_text(st, 1, store_job_status_name(to), -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, store_now());
    store_bind_text(st, 3, error);
    sqlite3_bind_int64(st, 4, id);
    sqlite3_bind_int64(st, 5, from_mask);
    sqlite3_bind_text(st, 6, attempt, -1, SQLITE_STATIC);
    store_bind_text(st, 7, attempt_uid);
    if ((rc = store_step_done(s, st, "setting a job's status")))
        goto fail;
    if (sqlite3_changes(s->db) == 0) {
        StoreJob now;
        if ((rc = store_job_get(s, id, &now)) == STORE_OK) {
            if (attempt_uid && now.status == STORE_JOB_RUNNING)
                rc = store_fail(s, STORE_CONFLICT, "job %lld is being run by another "
                                "attempt (%d, uid %s) than this one (uid %s)", (long long)id,
                                now.attempts, now.attempt_uid, attempt_uid);
            else
                rc = store_fail(s, STORE_CONFLICT, "job %lld is %s", (long long)id,
                                store_job_status_name(now.status));
            store_job_deinit(&now);
        }
        goto fail;
    }
    sqlite3_finalize(st);
    return store_commit(s);
fail:
    sqlite3_finalize(st);
    store_rollback(s);
    return rc;
}

int store_job_set_status(Store *s, int64_t id, unsigned from_mask, StoreJobStatus to,
                         const char *error)
{
    return set_status(s, id, from_mask, NULL, to, error);
}

int store_job_end_attempt(Store *s, int64_t id, const char *attempt_uid, StoreJobStatus to,
                          const char *error)
{
    if (!attempt_uid || !attempt_uid[0])
        return store_fail(s, STORE_INVALID, "attempt uid is missing");
    return set_status(s, id, STORE_JOB_BIT(STORE_JOB_RUNNING), attempt_uid, to, error);
}

int store_job_set_progress(Store *s, int64_t id, const StoreJobProgress *p)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "UPDATE jobs SET epoch = ?, step = ?, steps_per_epoch = ?,"
                           " images_per_sec = ?, eta_seconds = ?, best_val_acc = ?,"
                           " best_epoch = ? WHERE id = ?",
                           &st);
    if (rc)
        return rc;
    sqlite3_bind_int(st, 1, p->epoch);
    sqlite3_bind_int(st, 2, p->step);
    sqlite3_bind_int(st, 3, p->steps_per_epoch);
    store_bind_real(st, 4, p->images_per_sec);
    store_bind_real(st, 5, p->eta_seconds);
    store_bind_real(st, 6, p->best_val_acc);
    sqlite3_bind_int(st, 7, p->best_epoch);
    sqlite3_bind_int64(st, 8, id);
    rc = store_step_done(s, st, "updating a job's progress");
    if (rc == STORE_OK && sqlite3_changes(s->db) == 0)
        rc = store_fail(s, STORE_NOT_FOUND, "job %lld not found", (long long)id);
    sqlite3_finalize(st);
    return rc;
}

int store_job_delete(Store *s, int64_t id)
{
    sqlite3_stmt *st = NULL;
    StoreJobStatus status;
    int rc = store_begin(s);
    if (rc)
        return rc;
    if ((rc = job_status(s, id, &status)))
        goto fail;
    if (status == STORE_JOB_RUNNING) {
        rc = store_fail(s, STORE_CONFLICT, "job %lld is running: cancel it first", (long long)id);
        goto fail;
    }
    if ((rc = store_prepare(s, "DELETE FROM jobs WHERE id = ?", &st)))
        goto fail;
    sqlite3_bind_int64(st, 1, id);
    if ((rc = store_step_done(s, st, "deleting a job")))
        goto fail;
    sqlite3_finalize(st);
    return store_commit(s);
fail:
    sqlite3_finalize(st);
    store_rollback(s);
    return rc;
}

int store_job_claim(Store *s, StoreJob *out)
{
    return store_job_claim_where(s, NULL, NULL, out);
}

int store_job_claim_where(Store *s, const char *host, const char *worker, StoreJob *out)
{
    char attempt[STORE_UID_LEN + 1];
    sqlite3_stmt *st;
    int rc;
    if ((rc = store_check_text(s, "host", host, STORE_NAME_MAX, 0)) ||
        (rc = store_check_text(s, "worker", worker, STORE_NAME_MAX, 0)) ||
        (rc = store_random_uid(s, attempt)) || (rc = store_prepare(s, store_sql_job_claim, &st)))
        return rc;
    sqlite3_bind_double(st, 1, store_now());
    sqlite3_bind_text(st, 2, attempt, -1, SQLITE_STATIC);
    store_bind_text(st, 3, host);
    store_bind_text(st, 4, worker);
    int64_t id = 0;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0);
        step = sqlite3_step(st);
    }
    if (step != SQLITE_DONE)
        rc = store_db_fail(s, "claiming a job");
    else if (!id)
        rc = store_fail(s, STORE_NOT_FOUND, "no job is queued");
    sqlite3_finalize(st);
    return rc ? rc : store_job_get(s, id, out);
}

int store_job_reserve_ids(Store *s, int64_t above)
{
    if (above < 0)
        return store_fail(s, STORE_INVALID, "job id %lld is negative", (long long)above);
    /* sqlite_sequence holds the largest id AUTOINCREMENT handed out; it has no row for
     * jobs before the first insert. The largest existing id counts as well. */
    static const char *const sql[] = {
        "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'jobs' AND seq < ?1",
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'jobs', ?1"
        " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'jobs')"
        " AND ?1 > coalesce((SELECT max(id) FROM jobs), 0)",
    };
    return store_run_in_transaction(s, sql, 2, above, 0, "reserving job ids");
}

int store_job_requeue_running(Store *s, int *count)
{
    if (count)
        *count = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, "UPDATE jobs SET status = 'queued', stop_request = NULL"
                              " WHERE status = 'running' AND lease_expires_at IS NULL", &st);
    if (rc)
        return rc;
    rc = store_step_done(s, st, "queueing interrupted jobs");
    if (rc == STORE_OK && count)
        *count = sqlite3_changes(s->db);
    sqlite3_finalize(st);
    return rc;
}

int store_job_discard_after(Store *s, int64_t id, int epoch)
{
    static const char *const sql[] = {
        "DELETE FROM epochs WHERE job_id = ? AND epoch > ?",
        "DELETE FROM layer_stats WHERE job_id = ? AND epoch > ?",
    };
    return store_run_in_transaction(s, sql, 2, id, epoch,
                                    "discarding rows after a checkpoint");
}

int store_job_counts(Store *s, int counts[STORE_JOB_STATUS_COUNT])
{
    memset(counts, 0, STORE_JOB_STATUS_COUNT * sizeof counts[0]);
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT status, count(*) FROM jobs GROUP BY status", &st);
    if (rc)
        return rc;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        StoreJobStatus status;
        if (store_job_status_parse((const char *)sqlite3_column_text(st, 0), &status) == 0)
            counts[status] = sqlite3_column_int(st, 1);
    }
    if (step != SQLITE_DONE)
        rc = store_db_fail(s, "counting jobs");
    sqlite3_finalize(st);
    return rc;
}

/* ---- Idempotency keys and submissions -------------------------------------------------- */

void store_idempotency_deinit(StoreIdempotency *k)
{
    if (!k)
        return;
    free(k->job_ids);
    k->job_ids = NULL;
    k->n_jobs = 0;
}

int store_idempotency_get(Store *s, const char *key, StoreIdempotency *out)
{
    int rc;
    if ((rc = store_check_text(s, "idempotency key", key, STORE_NAME_MAX, 1)))
        return rc;
    sqlite3_stmt *st;
    if ((rc = store_prepare(s,
                            "SELECT key, fingerprint, grid_id, job_ids, created_at"
                            " FROM idempotency WHERE key = ?",
                            &st)))
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    memset(out, 0, sizeof *out);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        store_col_copy(st, 0, out->key, sizeof out->key);
        store_col_copy(st, 1, out->fingerprint, sizeof out->fingerprint);
        out->grid_id = sqlite3_column_int64(st, 2);
        out->created_at = store_col_time(st, 4);
        const char *ids = (const char *)sqlite3_column_text(st, 3);
        rc = store_ids_parse(s, ids ? ids : "[]", &out->job_ids, &out->n_jobs);
    } else if (step == SQLITE_DONE) {
        rc = store_fail(s, STORE_NOT_FOUND, "idempotency key \"%s\" not found", key);
    } else {
        rc = store_db_fail(s, "reading an idempotency key");
    }
    sqlite3_finalize(st);
    return rc;
}

int store_idempotency_put(Store *s, const char *key, const char *fingerprint, int64_t grid_id,
                          const int64_t *job_ids, int n_jobs)
{
    int rc;
    if ((rc = store_check_text(s, "idempotency key", key, STORE_NAME_MAX, 1)) ||
        (rc = store_check_text(s, "request fingerprint", fingerprint, STORE_NAME_MAX, 0)))
        return rc;
    if (n_jobs < 0 || (n_jobs > 0 && !job_ids))
        return store_fail(s, STORE_INVALID, "job id list is missing");
    char *ids;
    if ((rc = store_ids_format(s, job_ids, n_jobs, &ids)))
        return rc;
    sqlite3_stmt *st;
    if ((rc = store_prepare(s,
                            "INSERT INTO idempotency (key, fingerprint, grid_id, job_ids,"
                            " created_at) VALUES (?, ?, ?, ?, ?)",
                            &st))) {
        free(ids);
        return rc;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, fingerprint ? fingerprint : "", -1, SQLITE_STATIC);
    store_bind_id(st, 3, grid_id);
    sqlite3_bind_text(st, 4, ids, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, store_now());
    rc = store_step_done(s, st, "recording an idempotency key");
    if (rc == STORE_CONFLICT)
        rc = store_fail(s, STORE_CONFLICT, "idempotency key \"%s\" already exists", key);
    sqlite3_finalize(st);
    free(ids);
    return rc;
}

int store_idempotency_purge(Store *s, double before, int *count)
{
    if (count)
        *count = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, "DELETE FROM idempotency WHERE created_at < ?", &st);
    if (rc)
        return rc;
    sqlite3_bind_double(st, 1, before);
    rc = store_step_done(s, st, "purging idempotency keys");
    if (rc == STORE_OK && count)
        *count = sqlite3_changes(s->db);
    sqlite3_finalize(st);
    return rc;
}

void store_submit_result_deinit(StoreSubmitResult *res)
{
    if (!res)
        return;
    free(res->job_ids);
    res->job_ids = NULL;
    res->n_jobs = 0;
}

int store_submit(Store *s, const StoreSubmit *sub, StoreSubmitResult *res)
{
    memset(res, 0, sizeof *res);
    int keyed = sub->idem_key && sub->idem_key[0];
    const char *fingerprint = sub->fingerprint ? sub->fingerprint : "";
    int rc;
    if (sub->n_jobs < 1 || !sub->jobs)
        return store_fail(s, STORE_INVALID, "a submission needs at least one job");
    if (keyed && ((rc = store_check_text(s, "idempotency key", sub->idem_key, STORE_NAME_MAX, 1)) ||
                  (rc = store_check_text(s, "request fingerprint", fingerprint, STORE_NAME_MAX, 0))))
        return rc;
    for (int i = 0; i < sub->n_jobs; i++)
        if ((rc = check_job(s, &sub->jobs[i])))
            return rc;

    if ((rc = store_begin(s)))
        return rc;
    if (keyed) {
        StoreIdempotency known;
        rc = store_idempotency_get(s, sub->idem_key, &known);
        if (rc == STORE_OK) {
            if (strcmp(known.fingerprint, fingerprint) != 0) {
                store_idempotency_deinit(&known);
                rc = store_fail(s, STORE_CONFLICT,
                                "idempotency key \"%s\" was used for a different request",
                                sub->idem_key);
                goto fail;
            }
            store_rollback(s);
            res->grid_id = known.grid_id;
            res->job_ids = known.job_ids;
            res->n_jobs = known.n_jobs;
            res->replayed = 1;
            return STORE_OK;
        }
        if (rc != STORE_NOT_FOUND)
            goto fail;
    }
    res->job_ids = calloc((size_t)sub->n_jobs, sizeof *res->job_ids);
    if (!res->job_ids) {
        rc = store_fail(s, STORE_ERROR, "out of memory");
        goto fail;
    }
    if (sub->grid_config_json && (rc = insert_grid(s, sub->grid_config_json, sub, &res->grid_id)))
        goto fail;
    for (int i = 0; i < sub->n_jobs; i++) {
        int64_t grid = sub->grid_config_json ? res->grid_id : sub->jobs[i].grid_id;
        if ((rc = insert_job(s, &sub->jobs[i], grid, &res->job_ids[i])))
            goto fail;
    }
    res->n_jobs = sub->n_jobs;
    if (keyed && (rc = store_idempotency_put(s, sub->idem_key, fingerprint, res->grid_id,
                                             res->job_ids, res->n_jobs)))
        goto fail;
    if ((rc = store_commit(s)))
        goto fail;
    return STORE_OK;
fail:
    store_rollback(s);
    store_submit_result_deinit(res);
    res->grid_id = 0;
    return rc;
}

/* ---- Leases: attempts run by remote workers -------------------------------------------- */

/* Lists the jobs selected by sql (no parameters but ?1 = limit when it has one). */
static int list_jobs(Store *s, const char *sql, int limit, StoreJob **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, sql, &st);
    if (rc)
        return rc;
    if (sqlite3_bind_parameter_count(st) >= 1)
        sqlite3_bind_int(st, 1, limit);
    void *arr;
    rc = store_collect_rows(s, st, sizeof **rows, 8, read_job, free_jobs, "listing jobs", &arr,
                            n);
    *rows = arr;
    return rc;
}

/* Why job id cannot start a new attempt for r, as a STORE_CONFLICT (or NOT_FOUND). */
static int lease_refused(Store *s, int64_t id)
{
    StoreJob now;
    int rc = store_job_get(s, id, &now);
    if (rc)
        return rc;
    if (now.status == STORE_JOB_RUNNING)
        rc = store_fail(s, STORE_CONFLICT, "job %lld is running (attempt %d%s%s%s)",
                        (long long)id, now.attempts, now.worker[0] ? ", worker " : "",
                        now.worker, now.lease_expires_at > 0 ? ", under a lease" : "");
    else if (now.status == STORE_JOB_QUEUED && now.dataset_scanning)
        rc = store_fail(s, STORE_NOT_FOUND, "job %lld waits for the scan of dataset %s",
                        (long long)id, now.dataset);
    else
        rc = store_fail(s, STORE_CONFLICT, "job %lld is %s", (long long)id,
                        store_job_status_name(now.status));
    store_job_deinit(&now);
    return rc;
}

int store_lease_claim(Store *s, const StoreLeaseRequest *r, StoreJob *out)
{
    char attempt[STORE_UID_LEN + 1];
    const char *slurm = r->slurm_job_id && r->slurm_job_id[0] ? r->slurm_job_id : NULL;
    int rc;
    if ((rc = store_check_text(s, "host", r->host, STORE_NAME_MAX, 0)) ||
        (rc = store_check_text(s, "worker", r->worker, STORE_NAME_MAX, 0)) ||
        (rc = store_check_text(s, "Slurm job id", slurm, STORE_SLURM_ID_MAX, 0)))
        return rc;
    if (!(r->ttl > 0))
        return store_fail(s, STORE_INVALID, "lease time %g is not positive", r->ttl);
    if ((rc = store_random_uid(s, attempt)))
        return rc;
    /* ?5 = 0: the next queued job not waiting for its Slurm job; else job ?5 when it is
     * queued, or running under a lease of the same Slurm job ?6 (started again). */
    sqlite3_stmt *st;
    if ((rc = store_prepare(
             s,
             "UPDATE jobs SET status = 'running', started_at = coalesce(started_at, ?1),"
             " finished_at = NULL, error = NULL, attempts = attempts + 1, attempt_uid = ?2,"
             " lease_expires_at = ?1 + ?7, host = ?3, worker = ?4,"
             " slurm_job_id = CASE WHEN ?5 != 0 THEN coalesce(?6, slurm_job_id)"
             "                ELSE slurm_job_id END, stop_request = NULL"
             " WHERE id = CASE WHEN ?5 = 0 THEN"
             "   (SELECT id FROM jobs WHERE status = 'queued' AND NOT " DATASET_SCANNING
             "    AND slurm_job_id IS NULL ORDER BY priority DESC, id LIMIT 1)"
             " ELSE (SELECT id FROM jobs WHERE id = ?5 AND ((status = 'queued' AND NOT "
             DATASET_SCANNING ") OR (status = 'running' AND lease_expires_at IS NOT NULL"
             " AND ?6 IS NOT NULL AND slurm_job_id = ?6))) END"
             " RETURNING id",
             &st)))
        return rc;
    sqlite3_bind_double(st, 1, store_now());
    sqlite3_bind_text(st, 2, attempt, -1, SQLITE_STATIC);
    store_bind_text(st, 3, r->host);
    store_bind_text(st, 4, r->worker);
    sqlite3_bind_int64(st, 5, r->job_id);
    store_bind_text(st, 6, slurm);
    sqlite3_bind_double(st, 7, r->ttl);
    int64_t id = 0;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0);
        step = sqlite3_step(st);
    }
    if (step != SQLITE_DONE)
        rc = store_db_fail(s, "leasing a job");
    sqlite3_finalize(st);
    if (rc)
        return rc;
    if (!id)
        return r->job_id ? lease_refused(s, r->job_id)
                         : store_fail(s, STORE_NOT_FOUND, "no job is queued");
    return store_job_get(s, id, out);
}

/* STORE_OK when attempt_uid is job id's current attempt and the job runs; otherwise
 * STORE_CONFLICT (or NOT_FOUND) with a message saying what happened. */
static int attempt_current(Store *s, int64_t id, const char *attempt_uid)
{
    StoreJob now;
    int rc = store_job_get(s, id, &now);
    if (rc)
        return rc;
    if (strcmp(now.attempt_uid, attempt_uid) != 0)
        rc = store_fail(s, STORE_CONFLICT, "job %lld is run by another attempt now (%d, uid %s,"
                        " worker %s) than this one (uid %s): its writes are refused",
                        (long long)id, now.attempts, now.attempt_uid,
                        now.worker[0] ? now.worker : "unknown", attempt_uid);
    else if (now.status != STORE_JOB_RUNNING)
        rc = store_fail(s, STORE_CONFLICT, "job %lld is %s: attempt %s ended (its lease "
                        "expired, or it was cancelled or ended)", (long long)id,
                        store_job_status_name(now.status), attempt_uid);
    store_job_deinit(&now);
    return rc;
}

int store_attempt_begin(Store *s, int64_t id, const char *attempt_uid)
{
    if (!attempt_uid || !attempt_uid[0])
        return store_fail(s, STORE_INVALID, "attempt uid is missing");
    int rc = store_begin(s);
    if (rc)
        return rc;
    if ((rc = attempt_current(s, id, attempt_uid)))
        store_rollback(s);
    return rc;
}

int store_attempt_end(Store *s, int rc)
{
    if (rc != STORE_OK) {
        store_rollback(s);
        return rc;
    }
    return store_commit(s);
}

int store_lease_renew(Store *s, int64_t id, const char *attempt_uid, double ttl,
                      const StoreJobProgress *p, bool *stop)
{
    if (stop)
        *stop = false;
    int rc = store_attempt_begin(s, id, attempt_uid);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    if ((rc = store_prepare(s, "UPDATE jobs SET lease_expires_at = ?2 WHERE id = ?1"
                               " RETURNING stop_request IS NOT NULL", &st)))
        return store_attempt_end(s, rc);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_double(st, 2, store_now() + ttl);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        if (stop)
            *stop = sqlite3_column_int(st, 0) != 0;
        step = sqlite3_step(st);
    }
    if (step != SQLITE_DONE)
        rc = store_db_fail(s, "renewing a lease");
    sqlite3_finalize(st);
    if (rc == STORE_OK && p)
        rc = store_job_set_progress(s, id, p);
    return store_attempt_end(s, rc);
}

int store_lease_expire(Store *s, double now, int64_t **ids, int *n)
{
    if (ids)
        *ids = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, "UPDATE jobs SET status = 'queued', lease_expires_at = NULL,"
                              " stop_request = NULL WHERE status = 'running'"
                              " AND lease_expires_at < ?1 RETURNING id", &st);
    if (rc)
        return rc;
    sqlite3_bind_double(st, 1, now);
    int cap = 0, step;
    int64_t *arr = NULL;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t *grown = ids ? store_grow(s, arr, *n, &cap, 8, sizeof *arr) : arr;
        if (ids && !grown) {
            rc = STORE_ERROR;
            break;
        }
        arr = grown;
        if (ids)
            arr[*n] = sqlite3_column_int64(st, 0);
        (*n)++;
    }
    if (!rc && step != SQLITE_DONE)
        rc = store_db_fail(s, "ending expired leases");
    sqlite3_finalize(st);
    if (rc) {
        free(arr);
        *n = 0;
        return rc;
    }
    if (ids)
        *ids = arr;
    else
        free(arr);
    return STORE_OK;
}

int store_job_request_stop(Store *s, int64_t id)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, "UPDATE jobs SET stop_request = 'cancel' WHERE id = ?1"
                              " AND status = 'running' AND lease_expires_at IS NOT NULL", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    rc = store_step_done(s, st, "asking a job to stop");
    sqlite3_finalize(st);
    if (rc == STORE_OK && sqlite3_changes(s->db) == 0)
        rc = lease_refused(s, id) == STORE_NOT_FOUND
                 ? STORE_NOT_FOUND
                 : store_fail(s, STORE_CONFLICT, "job %lld is not running under a lease",
                              (long long)id);
    return rc;
}

int store_job_set_slurm(Store *s, int64_t id, const char *slurm_job_id)
{
    int rc = store_check_text(s, "Slurm job id", slurm_job_id, STORE_SLURM_ID_MAX, 0);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    if ((rc = store_prepare(s, slurm_job_id
                                   ? "UPDATE jobs SET slurm_job_id = ?2 WHERE id = ?1 AND"
                                     " status = 'queued' AND slurm_job_id IS NULL"
                                   : "UPDATE jobs SET slurm_job_id = NULL WHERE id = ?1",
                            &st)))
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (slurm_job_id)
        sqlite3_bind_text(st, 2, slurm_job_id, -1, SQLITE_STATIC);
    rc = store_step_done(s, st, "recording a Slurm job");
    sqlite3_finalize(st);
    if (rc == STORE_OK && sqlite3_changes(s->db) == 0)
        rc = slurm_job_id ? lease_refused(s, id)
                          : store_fail(s, STORE_NOT_FOUND, "job %lld not found", (long long)id);
    return rc;
}

int store_job_list_slurm(Store *s, StoreJob **rows, int *n)
{
    return list_jobs(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE slurm_job_id IS NOT NULL"
                        " AND status IN ('queued', 'running') ORDER BY id", 0, rows, n);
}

int store_job_list_unsubmitted(Store *s, int limit, StoreJob **rows, int *n)
{
    return list_jobs(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE status = 'queued'"
                        " AND slurm_job_id IS NULL AND NOT " DATASET_SCANNING
                        " ORDER BY priority DESC, id LIMIT ?1", limit, rows, n);
}
