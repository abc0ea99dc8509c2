/* store_lab.c — what a lab edits and asks of its records: names, tags and notes of jobs
 * and grids, priorities of queued jobs, grid-wide additions and deletions, the jobs whose
 * checkpoints retention may drop, and the intra-epoch training curve (store.h). */
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_bind_like(sqlite3_stmt *st, int i, const char *text)
{
    if (!text || !text[0])
        return sqlite3_bind_null(st, i);
    size_t n = strlen(text);
    char *pattern = malloc(2 * n + 3);
    if (!pattern)
        return SQLITE_NOMEM;
    size_t k = 0;
    pattern[k++] = '%';
    for (size_t j = 0; j < n; j++) {
        if (text[j] == '%' || text[j] == '_' || text[j] == '\\')
            pattern[k++] = '\\';
        pattern[k++] = text[j];
    }
    pattern[k++] = '%';
    return sqlite3_bind_text(st, i, pattern, (int)k, free);
}

/* Runs "UPDATE <table> SET ..." for the members of e that are set, on row id. */
static int set_meta(Store *s, const char *table, int64_t id, const StoreMetaEdit *e)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE %s SET name = CASE WHEN ?1 IS NULL THEN name WHEN ?1 = '' THEN NULL"
             " ELSE ?1 END, tags = coalesce(?2, tags), note = CASE WHEN ?3 IS NULL THEN note"
             " WHEN ?3 = '' THEN NULL ELSE ?3 END WHERE id = ?4", table);
    sqlite3_stmt *st;
    int rc = store_prepare(s, sql, &st);
    if (rc)
        return rc;
    store_bind_text(st, 1, e->name);
    store_bind_text(st, 2, e->tags_json);
    store_bind_text(st, 3, e->note);
    sqlite3_bind_int64(st, 4, id);
    rc = store_step_done(s, st, "editing a name, tags or note");
    if (rc == STORE_OK && sqlite3_changes(s->db) == 0)
        rc = store_fail(s, STORE_NOT_FOUND, "%s %lld not found",
                        strcmp(table, "jobs") == 0 ? "job" : "grid", (long long)id);
    sqlite3_finalize(st);
    return rc;
}

int store_job_set_meta(Store *s, int64_t id, const StoreMetaEdit *e)
{
    return set_meta(s, "jobs", id, e);
}

int store_grid_set_meta(Store *s, int64_t id, const StoreMetaEdit *e)
{
    return set_meta(s, "grids", id, e);
}

/* The priority of the queued jobs selected by where (?2 bound to key), in the column and
 * in the configuration; *count receives how many. */
static int set_priority(Store *s, const char *where, int64_t key, int priority, int *count)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE jobs SET priority = ?1, config = json_set(config, '$.priority', ?1)"
             " WHERE status = 'queued' AND %s", where);
    sqlite3_stmt *st;
    int rc = store_prepare(s, sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_int(st, 1, priority);
    sqlite3_bind_int64(st, 2, key);
    rc = store_step_done(s, st, "changing a priority");
    if (count)
        *count = rc == STORE_OK ? sqlite3_changes(s->db) : 0;
    sqlite3_finalize(st);
    return rc;
}

/* The status of job id (STORE_NOT_FOUND when there is none). */
static int job_status_of(Store *s, int64_t id, StoreJobStatus *status)
{
    StoreJob j;
    int rc = store_job_get(s, id, &j);
    if (rc == STORE_OK) {
        *status = j.status;
        store_job_deinit(&j);
    }
    return rc;
}

int store_job_set_priority(Store *s, int64_t id, int priority)
{
    int rc, n = 0;
    if ((rc = store_begin(s)))
        return rc;
    StoreJobStatus status;
    if ((rc = job_status_of(s, id, &status)) ||
        (rc = set_priority(s, "id = ?2", id, priority, &n)))
        goto fail;
    if (n == 0) {
        rc = store_fail(s, STORE_CONFLICT, "job %lld is %s: only a queued job's priority can "
                        "change", (long long)id, store_job_status_name(status));
        goto fail;
    }
    return store_commit(s);
fail:
    store_rollback(s);
    return rc;
}

int store_grid_set_priority(Store *s, int64_t id, int priority, int *count)
{
    if (count)
        *count = 0;
    StoreGrid g;
    int rc = store_grid_get(s, id, &g);
    if (rc)
        return rc;
    store_grid_deinit(&g);
    return set_priority(s, "grid_id = ?2", id, priority, count);
}

/* Row reader of store_grid_list_filtered: the columns of store_grid_get. */
static int read_grid_row(Store *s, sqlite3_stmt *st, void *row)
{
    StoreGrid *g = row;
    memset(g, 0, sizeof *g);
    g->id = sqlite3_column_int64(st, 0);
    StoreGrid full;
    /* one query per grid: lists of grids are short (one per experiment) */
    int rc = store_grid_get(s, g->id, &full);
    if (rc == STORE_OK)
        *g = full;
    return rc;
}

static void free_grid_rows(void *rows, int n)
{
    store_grids_free(rows, n);
}

int store_grid_list_filtered(Store *s, const char *tag, const char *q, StoreGrid **rows,
                             int *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT id FROM grids WHERE " STORE_TAG_FILTER("tags", "?1")
                           " AND " STORE_TEXT_FILTER("coalesce(name, '') || ' ' ||"
                                                     " coalesce(note, '') || ' ' || tags ||"
                                                     " ' ' || config", "?2")
                           " ORDER BY id DESC", &st);
    if (rc)
        return rc;
    store_bind_text(st, 1, tag && tag[0] ? tag : NULL);
    store_bind_like(st, 2, q);
    void *arr;
    rc = store_collect_rows(s, st, sizeof **rows, 8, read_grid_row, free_grid_rows,
                            "listing grids", &arr, n);
    *rows = arr;
    return rc;
}

int store_grid_add_jobs(Store *s, int64_t id, const StoreJobNew *jobs, int n,
                        const char *config_json, int64_t *ids)
{
    if (n < 1 || !jobs)
        return store_fail(s, STORE_INVALID, "no job to add");
    int rc;
    if ((rc = store_begin(s)))
        return rc;
    StoreGrid g;
    if ((rc = store_grid_get(s, id, &g)))
        goto fail;
    store_grid_deinit(&g);
    for (int i = 0; i < n; i++) {
        StoreJobNew j = jobs[i];
        j.grid_id = id;
        if ((rc = store_job_insert(s, &j, &ids[i])))
            goto fail;
    }
    if (config_json) {
        sqlite3_stmt *st;
        if ((rc = store_prepare(s, "UPDATE grids SET config = ?1 WHERE id = ?2", &st)))
            goto fail;
        sqlite3_bind_text(st, 1, config_json, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, id);
        rc = store_step_done(s, st, "updating a grid's configuration");
        sqlite3_finalize(st);
        if (rc)
            goto fail;
    }
    return store_commit(s);
fail:
    store_rollback(s);
    return rc;
}

int store_grid_delete(Store *s, int64_t id)
{
    int rc;
    if ((rc = store_begin(s)))
        return rc;
    StoreGrid g;
    if ((rc = store_grid_get(s, id, &g)))
        goto fail;
    int running = g.n_status[STORE_JOB_RUNNING];
    store_grid_deinit(&g);
    if (running) {
        rc = store_fail(s, STORE_CONFLICT, "grid %lld has %d running job(s): cancel it first",
                        (long long)id, running);
        goto fail;
    }
    static const char *const sql[] = {"DELETE FROM jobs WHERE grid_id = ?1",
                                      "DELETE FROM grids WHERE id = ?1"};
    if ((rc = store_run_in_transaction(s, sql, 2, id, 0, "deleting a grid")))
        goto fail;
    return store_commit(s);
fail:
    store_rollback(s);
    return rc;
}

static int read_id(Store *s, sqlite3_stmt *st, void *row)
{
    (void)s;
    *(int64_t *)row = sqlite3_column_int64(st, 0);
    return STORE_OK;
}

int store_jobs_ended_with_checkpoints(Store *s, int64_t **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "SELECT id FROM jobs WHERE status IN ('done', 'failed', 'cancelled')"
                           " AND EXISTS (SELECT 1 FROM checkpoints c WHERE c.job_id = jobs.id)"
                           " ORDER BY coalesce(finished_at, 0) DESC, id DESC", &st);
    if (rc)
        return rc;
    void *arr;
    rc = store_collect_rows(s, st, sizeof **ids, 16, read_id, NULL, "listing ended jobs",
                            &arr, n);
    *ids = arr;
    return rc;
}

/* ---- Steps ------------------------------------------------------------------------- */

int store_steps_put(Store *s, int64_t job_id, const StoreStep *rows, int n)
{
    if (n <= 0)
        return STORE_OK;
    int rc;
    if ((rc = store_begin(s)))
        return rc;
    sqlite3_stmt *st;
    if ((rc = store_prepare(s,
                            "INSERT INTO steps (job_id, global_step, epoch, step,"
                            " steps_per_epoch, loss, accuracy) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                            " ON CONFLICT (job_id, global_step) DO UPDATE SET epoch = ?3,"
                            " step = ?4, steps_per_epoch = ?5, loss = ?6, accuracy = ?7",
                            &st)))
        goto fail;
    for (int i = 0; i < n && rc == STORE_OK; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, job_id);
        sqlite3_bind_int64(st, 2, rows[i].global_step);
        sqlite3_bind_int(st, 3, rows[i].epoch);
        sqlite3_bind_int(st, 4, rows[i].step);
        sqlite3_bind_int(st, 5, rows[i].steps_per_epoch);
        store_bind_real(st, 6, rows[i].loss);
        store_bind_real(st, 7, rows[i].accuracy);
        rc = store_step_done(s, st, "recording the training curve");
    }
    sqlite3_finalize(st);
    if (rc == STORE_NOT_FOUND)
        rc = store_fail(s, STORE_NOT_FOUND, "job %lld not found", (long long)job_id);
    if (rc)
        goto fail;
    return store_commit(s);
fail:
    store_rollback(s);
    return rc;
}

static int read_step(Store *s, sqlite3_stmt *st, void *row)
{
    (void)s;
    StoreStep *p = row;
    p->global_step = sqlite3_column_int64(st, 0);
    p->epoch = sqlite3_column_int(st, 1);
    p->step = sqlite3_column_int(st, 2);
    p->steps_per_epoch = sqlite3_column_int(st, 3);
    p->loss = store_col_real(st, 4);
    p->accuracy = store_col_real(st, 5);
    return STORE_OK;
}

int store_steps_list(Store *s, int64_t job_id, StoreStep **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "SELECT global_step, epoch, step, steps_per_epoch, loss, accuracy"
                           " FROM steps WHERE job_id = ?1 ORDER BY global_step", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    void *arr;
    rc = store_collect_rows(s, st, sizeof **rows, 64, read_step, NULL,
                            "reading the training curve", &arr, n);
    *rows = arr;
    return rc;
}

int store_steps_discard_after(Store *s, int64_t job_id, int epoch, int step)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "DELETE FROM steps WHERE job_id = ?1 AND (epoch > ?2 + 1 OR"
                           " (epoch = ?2 + 1 AND step > ?3))", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, epoch);
    sqlite3_bind_int(st, 3, step);
    rc = store_step_done(s, st, "discarding the training curve after a checkpoint");
    sqlite3_finalize(st);
    return rc;
}
