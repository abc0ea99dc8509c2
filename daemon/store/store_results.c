/* store_results.c — test-split results, checkpoint records and the per-grid summary (the
 * paper's Table 1: mean and sample standard deviation over seeds). */
#include "store/store_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* In jobs_grid order, so that rows of one (model, initializer) come together. */
const char store_sql_grid_summary[] =
    "SELECT j.model, j.initializer, r.job_id IS NOT NULL, r.accuracy, r.precision_macro,"
    " r.recall_macro, r.f1_macro, r.loss"
    " FROM jobs j LEFT JOIN results r ON r.job_id = j.id"
    " WHERE j.grid_id = ?1 ORDER BY j.model, j.initializer";

/* ---- Results --------------------------------------------------------------------------- */

int store_result_put(Store *s, const StoreResult *r)
{
    if (r->epoch < 0)
        return store_fail(s, STORE_INVALID, "epoch %d is negative", r->epoch);
    sqlite3_stmt *st;
    int rc = store_prepare(
        s,
        "INSERT INTO results (job_id, epoch, accuracy, precision_macro, recall_macro,"
        " f1_macro, loss, confusion, per_class, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (job_id) DO UPDATE SET epoch = excluded.epoch,"
        " accuracy = excluded.accuracy, precision_macro = excluded.precision_macro,"
        " recall_macro = excluded.recall_macro, f1_macro = excluded.f1_macro,"
        " loss = excluded.loss, confusion = excluded.confusion,"
        " per_class = excluded.per_class, created_at = excluded.created_at",
        &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, r->job_id);
    sqlite3_bind_int(st, 2, r->epoch);
    store_bind_real(st, 3, r->accuracy);
    store_bind_real(st, 4, r->precision_macro);
    store_bind_real(st, 5, r->recall_macro);
    store_bind_real(st, 6, r->f1_macro);
    store_bind_real(st, 7, r->loss);
    sqlite3_bind_text(st, 8, r->confusion_json ? r->confusion_json : "[]", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, r->per_class_json ? r->per_class_json : "[]", -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 10, store_now());
    rc = store_step_done(s, st, "recording test results");
    if (rc == STORE_NOT_FOUND)
        rc = store_fail(s, STORE_NOT_FOUND, "job %lld not found", (long long)r->job_id);
    sqlite3_finalize(st);
    return rc;
}

int store_result_get(Store *s, int64_t job_id, StoreResult *out)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "SELECT epoch, accuracy, precision_macro, recall_macro, f1_macro,"
                           " loss, confusion, per_class, created_at FROM results"
                           " WHERE job_id = ?",
                           &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    memset(out, 0, sizeof *out);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        out->job_id = job_id;
        out->epoch = sqlite3_column_int(st, 0);
        out->accuracy = store_col_real(st, 1);
        out->precision_macro = store_col_real(st, 2);
        out->recall_macro = store_col_real(st, 3);
        out->f1_macro = store_col_real(st, 4);
        out->loss = store_col_real(st, 5);
        out->created_at = store_col_time(st, 8);
        if ((rc = store_col_dup(s, st, 6, &out->confusion_json)) ||
            (rc = store_col_dup(s, st, 7, &out->per_class_json)))
            store_result_deinit(out);
    } else if (step == SQLITE_DONE) {
        rc = store_fail(s, STORE_NOT_FOUND, "job %lld has no test results", (long long)job_id);
    } else {
        rc = store_db_fail(s, "reading test results");
    }
    sqlite3_finalize(st);
    return rc;
}

void store_result_deinit(StoreResult *r)
{
    if (!r)
        return;
    free(r->confusion_json);
    free(r->per_class_json);
    r->confusion_json = r->per_class_json = NULL;
}

/* ---- Checkpoints ----------------------------------------------------------------------- */

int store_checkpoint_put(Store *s, const StoreCheckpoint *c)
{
    int rc;
    if ((int)c->kind < 0 || c->kind > STORE_CKPT_BEST)
        return store_fail(s, STORE_INVALID, "checkpoint kind %d is out of range", (int)c->kind);
    if (c->epoch < 0)
        return store_fail(s, STORE_INVALID, "epoch %d is negative", c->epoch);
    if (!memchr(c->path, '\0', sizeof c->path))
        return store_fail(s, STORE_INVALID, "checkpoint path is not terminated");
    if ((rc = store_check_text(s, "checkpoint path", c->path, sizeof c->path, 1)))
        return rc;
    bool fenced = c->attempt_uid[0] != '\0';
    if (fenced && !memchr(c->attempt_uid, '\0', sizeof c->attempt_uid))
        return store_fail(s, STORE_INVALID, "attempt uid is not terminated");
    sqlite3_stmt *st;
    /* One statement: the attempt check and the write see the same snapshot. */
    if ((rc = store_prepare(s,
                            "INSERT INTO checkpoints (job_id, kind, epoch, path, val_acc, crc,"
                            " created_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7"
                            " WHERE ?8 IS NULL OR NOT EXISTS (SELECT 1 FROM jobs WHERE"
                            " id = ?1 AND attempt_uid IS NOT ?8)"
                            " ON CONFLICT (job_id, kind) DO UPDATE SET epoch = excluded.epoch,"
                            " path = excluded.path, val_acc = excluded.val_acc,"
                            " crc = excluded.crc, created_at = excluded.created_at",
                            &st)))
        return rc;
    sqlite3_bind_int64(st, 1, c->job_id);
    sqlite3_bind_text(st, 2, store_checkpoint_kind_name(c->kind), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, c->epoch);
    sqlite3_bind_text(st, 4, c->path, -1, SQLITE_STATIC);
    store_bind_real(st, 5, c->val_acc);
    sqlite3_bind_int64(st, 6, (int64_t)c->crc);
    sqlite3_bind_double(st, 7, store_now());
    store_bind_text(st, 8, fenced ? c->attempt_uid : NULL);
    rc = store_step_done(s, st, "recording a checkpoint");
    if (rc == STORE_NOT_FOUND)
        rc = store_fail(s, STORE_NOT_FOUND, "job %lld not found", (long long)c->job_id);
    if (rc == STORE_OK && sqlite3_changes(s->db) == 0) {
        StoreJob now;
        if ((rc = store_job_get(s, c->job_id, &now)) == STORE_OK) {
            rc = store_fail(s, STORE_CONFLICT, "job %lld is being run by another attempt "
                            "(%d, uid %s) than the one that wrote this checkpoint (uid %s): "
                            "not recorded", (long long)c->job_id, now.attempts,
                            now.attempt_uid[0] ? now.attempt_uid : "none", c->attempt_uid);
            store_job_deinit(&now);
        }
    }
    sqlite3_finalize(st);
    return rc;
}

#define CHECKPOINT_SELECT                                                                  \
    "SELECT job_id, kind, epoch, path, val_acc, crc, created_at FROM checkpoints"

/* Row reader (StoreReadRow); row is a StoreCheckpoint. Can't fail. */
static int read_checkpoint(Store *s, sqlite3_stmt *st, void *row)
{
    StoreCheckpoint *c = row;
    (void)s;
    memset(c, 0, sizeof *c);
    c->job_id = sqlite3_column_int64(st, 0);
    store_checkpoint_kind_parse((const char *)sqlite3_column_text(st, 1), &c->kind);
    c->epoch = sqlite3_column_int(st, 2);
    store_col_copy(st, 3, c->path, sizeof c->path);
    c->val_acc = store_col_real(st, 4);
    c->crc = (uint32_t)sqlite3_column_int64(st, 5);
    c->created_at = store_col_time(st, 6);
    return STORE_OK;
}

int store_checkpoint_get(Store *s, int64_t job_id, StoreCheckpointKind kind, StoreCheckpoint *out)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, CHECKPOINT_SELECT " WHERE job_id = ? AND kind = ?", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_text(st, 2, store_checkpoint_kind_name(kind), -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = read_checkpoint(s, st, out);
    else if (step == SQLITE_DONE)
        rc = store_fail(s, STORE_NOT_FOUND, "job %lld has no %s checkpoint", (long long)job_id,
                        store_checkpoint_kind_name(kind));
    else
        rc = store_db_fail(s, "reading a checkpoint");
    sqlite3_finalize(st);
    return rc;
}

int store_checkpoint_list(Store *s, int64_t job_id, StoreCheckpoint **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, CHECKPOINT_SELECT " WHERE job_id = ? ORDER BY kind = 'best'", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    void *arr;
    /* Room for two rows from the start: there is at most one per kind. */
    rc = store_collect_rows(s, st, sizeof **rows, 2, read_checkpoint, NULL,
                            "listing checkpoints", &arr, n);
    *rows = arr;
    return rc;
}

int store_checkpoint_list_all(Store *s, StoreCheckpoint **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, CHECKPOINT_SELECT " ORDER BY job_id, kind = 'best'", &st);
    if (rc)
        return rc;
    void *arr;
    rc = store_collect_rows(s, st, sizeof **rows, 16, read_checkpoint, NULL,
                            "listing checkpoints", &arr, n);
    *rows = arr;
    return rc;
}

int store_checkpoint_forget(Store *s, int64_t job_id, int kind)
{
    if (kind < -1 || kind > STORE_CKPT_BEST)
        return store_fail(s, STORE_INVALID, "checkpoint kind %d is out of range", kind);
    sqlite3_stmt *st;
    int rc = store_prepare(s, "DELETE FROM checkpoints WHERE job_id = ?1 AND (?2 IS NULL OR"
                              " kind = ?2)", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    if (kind >= 0)
        sqlite3_bind_text(st, 2, store_checkpoint_kind_name((StoreCheckpointKind)kind), -1,
                          SQLITE_STATIC);
    rc = store_step_done(s, st, "forgetting a checkpoint");
    sqlite3_finalize(st);
    return rc;
}

/* ---- Grid summary ---------------------------------------------------------------------- */

/* Running mean and sum of squared deviations (Welford), stable for any n. */
typedef struct {
    int n;
    double mean, m2;
} Moments;

static void moments_add(Moments *m, double x)
{
    if (isnan(x))
        return;
    m->n++;
    double d = x - m->mean;
    m->mean += d / m->n;
    m->m2 += d * (x - m->mean);
}

static StoreMeanStd moments_result(const Moments *m)
{
    StoreMeanStd r = {NAN, NAN};
    if (m->n >= 1)
        r.mean = m->mean;
    if (m->n >= 2)
        r.std = sqrt(m->m2 / (m->n - 1));
    return r;
}

#define N_METRICS 5

static void finish_group(StoreGridSummary *g, const Moments *m)
{
    StoreMeanStd *out[N_METRICS] = {&g->accuracy, &g->precision_macro, &g->recall_macro,
                                    &g->f1_macro, &g->loss};
    for (int k = 0; k < N_METRICS; k++)
        *out[k] = moments_result(&m[k]);
}

int store_grid_summary(Store *s, int64_t grid_id, StoreGridSummary **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    StoreGrid grid;
    int rc = store_grid_get(s, grid_id, &grid);
    if (rc)
        return rc;
    store_grid_deinit(&grid);

    sqlite3_stmt *st;
    if ((rc = store_prepare(s, store_sql_grid_summary, &st)))
        return rc;
    sqlite3_bind_int64(st, 1, grid_id);
    StoreGridSummary *arr = NULL;
    Moments m[N_METRICS];
    int count = 0, cap = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *model = (const char *)sqlite3_column_text(st, 0);
        const char *init = (const char *)sqlite3_column_text(st, 1);
        StoreGridSummary *g = count ? &arr[count - 1] : NULL;
        if (!g || strcmp(g->model, model ? model : "") != 0 ||
            strcmp(g->initializer, init ? init : "") != 0) {
            if (g)
                finish_group(g, m);
            StoreGridSummary *grown = store_grow(s, arr, count, &cap, 8, sizeof *arr);
            if (!grown) {
                rc = STORE_ERROR;
                goto fail;
            }
            arr = grown;
            g = &arr[count++];
            memset(g, 0, sizeof *g);
            store_col_copy(st, 0, g->model, sizeof g->model);
            store_col_copy(st, 1, g->initializer, sizeof g->initializer);
            memset(m, 0, sizeof m);
        }
        g->n_jobs++;
        if (sqlite3_column_int(st, 2)) {
            g->n++;
            for (int k = 0; k < N_METRICS; k++)
                moments_add(&m[k], store_col_real(st, 3 + k));
        }
    }
    if (step != SQLITE_DONE) {
        rc = store_db_fail(s, "summarizing a grid");
        goto fail;
    }
    if (count)
        finish_group(&arr[count - 1], m);
    sqlite3_finalize(st);
    *rows = arr;
    *n = count;
    return STORE_OK;
fail:
    sqlite3_finalize(st);
    free(arr);
    return rc;
}

/* Row reader (StoreReadRow); row is a StoreGridRun. Can't fail. */
static int read_grid_run(Store *s, sqlite3_stmt *st, void *row)
{
    StoreGridRun *g = row;
    (void)s;
    memset(g, 0, sizeof *g);
    g->job_id = sqlite3_column_int64(st, 0);
    store_col_copy(st, 1, g->model, sizeof g->model);
    store_col_copy(st, 2, g->initializer, sizeof g->initializer);
    g->seed = sqlite3_column_int64(st, 3);
    store_job_status_parse((const char *)sqlite3_column_text(st, 4), &g->status);
    g->has_result = sqlite3_column_int(st, 5) != 0;
    double *v[] = {&g->accuracy, &g->precision_macro, &g->recall_macro, &g->f1_macro,
                   &g->loss};
    for (int k = 0; k < 5; k++)
        *v[k] = store_col_real(st, 6 + k);
    return STORE_OK;
}

int store_grid_runs(Store *s, int64_t grid_id, StoreGridRun **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    StoreGrid grid;
    int rc = store_grid_get(s, grid_id, &grid);
    if (rc)
        return rc;
    store_grid_deinit(&grid);
    sqlite3_stmt *st;
    if ((rc = store_prepare(s,
                            "SELECT j.id, j.model, j.initializer, j.seed, j.status,"
                            " r.job_id IS NOT NULL, r.accuracy, r.precision_macro,"
                            " r.recall_macro, r.f1_macro, r.loss"
                            " FROM jobs j LEFT JOIN results r ON r.job_id = j.id"
                            " WHERE j.grid_id = ?1 ORDER BY j.model, j.initializer, j.seed, j.id",
                            &st)))
        return rc;
    sqlite3_bind_int64(st, 1, grid_id);
    void *arr;
    rc = store_collect_rows(s, st, sizeof **rows, 16, read_grid_run, NULL,
                            "reading a grid's runs", &arr, n);
    *rows = arr;
    return rc;
}
