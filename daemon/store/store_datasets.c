/* store_datasets.c — registered datasets, their files with label and split, and the files
 * a scan skipped. */
#include "store/store_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char store_sql_dataset_files[] =
    "SELECT relpath, label, split, size, mtime FROM dataset_files"
    " WHERE dataset_id = ?1 AND (?2 IS NULL OR split = ?2) ORDER BY idx";

#define DATASET_COLUMNS                                                                    \
    "id, name, path, train_frac, val_frac, test_frac, seed, status, error, class_names,"   \
    " n_classes, n_files, n_train, n_val, n_test, n_skipped, created_at"

/* Row readers (StoreReadRow): row is a StoreDataset, StoreDatasetFile, StoreDatasetSkipped. */
static int read_dataset(Store *s, sqlite3_stmt *st, void *row)
{
    StoreDataset *d = row;
    memset(d, 0, sizeof *d);
    d->id = sqlite3_column_int64(st, 0);
    store_col_copy(st, 1, d->name, sizeof d->name);
    store_col_copy(st, 2, d->path, sizeof d->path);
    d->train_frac = sqlite3_column_double(st, 3);
    d->val_frac = sqlite3_column_double(st, 4);
    d->test_frac = sqlite3_column_double(st, 5);
    d->seed = sqlite3_column_int64(st, 6);
    d->status = STORE_DATASET_FAILED;
    store_dataset_status_parse((const char *)sqlite3_column_text(st, 7), &d->status);
    d->n_classes = sqlite3_column_int(st, 10);
    d->n_files = sqlite3_column_int64(st, 11);
    for (int k = 0; k < STORE_SPLIT_COUNT; k++)
        d->n_split[k] = sqlite3_column_int64(st, 12 + k);
    d->n_skipped = sqlite3_column_int64(st, 15);
    d->created_at = store_col_time(st, 16);
    if (store_col_dup(s, st, 8, &d->error) != STORE_OK ||
        store_col_dup(s, st, 9, &d->class_names_json) != STORE_OK) {
        store_dataset_deinit(d);
        return STORE_ERROR;
    }
    return STORE_OK;
}

static int read_dataset_file(Store *s, sqlite3_stmt *st, void *row)
{
    StoreDatasetFile *f = row;
    char *relpath;
    int rc = store_col_dup(s, st, 0, &relpath);
    if (rc)
        return rc;
    f->relpath = relpath;
    f->label = sqlite3_column_int(st, 1);
    f->split = STORE_SPLIT_TRAIN;
    store_split_parse((const char *)sqlite3_column_text(st, 2), &f->split);
    f->size = sqlite3_column_int64(st, 3);
    f->mtime = sqlite3_column_int64(st, 4);
    return STORE_OK;
}

static int read_skipped(Store *s, sqlite3_stmt *st, void *row)
{
    StoreDatasetSkipped *k = row;
    char *relpath, *reason = NULL;
    int rc;
    if ((rc = store_col_dup(s, st, 0, &relpath)) || (rc = store_col_dup(s, st, 1, &reason))) {
        free(relpath);
        return rc;
    }
    k->relpath = relpath;
    k->reason = reason;
    return STORE_OK;
}

void store_dataset_deinit(StoreDataset *d)
{
    if (!d)
        return;
    free(d->error);
    free(d->class_names_json);
    d->error = d->class_names_json = NULL;
}

void store_datasets_free(StoreDataset *rows, int n)
{
    for (int i = 0; rows && i < n; i++)
        store_dataset_deinit(&rows[i]);
    free(rows);
}

void store_dataset_files_free(StoreDatasetFile *files, int n)
{
    for (int i = 0; files && i < n; i++)
        free((char *)files[i].relpath);
    free(files);
}

void store_dataset_skipped_free(StoreDatasetSkipped *rows, int n)
{
    for (int i = 0; rows && i < n; i++) {
        free((char *)rows[i].relpath);
        free((char *)rows[i].reason);
    }
    free(rows);
}

/* The _free functions above as StoreFreeRows. */
static void free_datasets(void *rows, int n)
{
    store_datasets_free(rows, n);
}

static void free_files(void *rows, int n)
{
    store_dataset_files_free(rows, n);
}

static void free_skipped(void *rows, int n)
{
    store_dataset_skipped_free(rows, n);
}

int store_dataset_insert(Store *s, const StoreDatasetNew *d, int64_t *id)
{
    int rc;
    if ((rc = store_check_text(s, "dataset name", d->name, STORE_NAME_MAX, 1)) ||
        (rc = store_check_text(s, "dataset path", d->path, STORE_PATH_MAX, 1)))
        return rc;
    double f[3] = {d->train_frac, d->val_frac, d->test_frac};
    for (int k = 0; k < 3; k++)
        if (!(f[k] >= 0.0 && f[k] <= 1.0))
            return store_fail(s, STORE_INVALID, "split fraction %s = %g is not in [0, 1]",
                              store_split_name((StoreSplit)k), f[k]);
    if (fabs(f[0] + f[1] + f[2] - 1.0) > 1e-6)
        return store_fail(s, STORE_INVALID, "split fractions sum to %g, not 1",
                          f[0] + f[1] + f[2]);

    sqlite3_stmt *st;
    if ((rc = store_prepare(s,
                            "INSERT INTO datasets (name, path, train_frac, val_frac, test_frac,"
                            " seed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            &st)))
        return rc;
    sqlite3_bind_text(st, 1, d->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->path, -1, SQLITE_STATIC);
    for (int k = 0; k < 3; k++)
        sqlite3_bind_double(st, 3 + k, f[k]);
    sqlite3_bind_int64(st, 6, d->seed);
    sqlite3_bind_double(st, 7, store_now());
    rc = store_step_done(s, st, "registering a dataset");
    if (rc == STORE_CONFLICT)
        rc = store_fail(s, STORE_CONFLICT, "dataset \"%s\" already exists", d->name);
    else if (rc == STORE_OK && id)
        *id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

int store_dataset_set_status(Store *s, int64_t id, StoreDatasetStatus status, const char *error)
{
    if ((int)status < 0 || status > STORE_DATASET_FAILED)
        return store_fail(s, STORE_INVALID, "dataset status %d is out of range", (int)status);
    sqlite3_stmt *st;
    int rc = store_prepare(s, "UPDATE datasets SET status = ?, error = ? WHERE id = ?", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, store_dataset_status_name(status), -1, SQLITE_STATIC);
    store_bind_text(st, 2, status == STORE_DATASET_FAILED ? error : NULL);
    sqlite3_bind_int64(st, 3, id);
    rc = store_step_done(s, st, "setting a dataset's status");
    if (rc == STORE_OK && sqlite3_changes(s->db) == 0)
        rc = store_fail(s, STORE_NOT_FOUND, "dataset %lld not found", (long long)id);
    sqlite3_finalize(st);
    return rc;
}

int store_dataset_set_files(Store *s, int64_t id, const char *class_names_json, int n_classes,
                            const StoreDatasetFile *files, int n_files,
                            const StoreDatasetSkipped *skipped, int n_skipped)
{
    if (n_classes < 0 || n_files < 0 || n_skipped < 0)
        return store_fail(s, STORE_INVALID, "negative count");
    int64_t per_split[STORE_SPLIT_COUNT] = {0};
    for (int i = 0; i < n_files; i++) {
        if (!files[i].relpath || !files[i].relpath[0])
            return store_fail(s, STORE_INVALID, "file %d has no path", i);
        if (files[i].label < 0 || files[i].label >= n_classes)
            return store_fail(s, STORE_INVALID, "%s: label %d is not in [0, %d)",
                              files[i].relpath, files[i].label, n_classes);
        if ((int)files[i].split < 0 || files[i].split >= STORE_SPLIT_COUNT)
            return store_fail(s, STORE_INVALID, "%s: split %d is out of range",
                              files[i].relpath, (int)files[i].split);
        per_split[files[i].split]++;
    }
    for (int i = 0; i < n_skipped; i++)
        if (!skipped[i].relpath || !skipped[i].relpath[0] || !skipped[i].reason)
            return store_fail(s, STORE_INVALID, "skipped file %d has no path or reason", i);

    sqlite3_stmt *ins = NULL, *skip = NULL, *upd = NULL;
    int rc = store_begin(s);
    if (rc)
        return rc;
    if ((rc = store_prepare(s,
                            "UPDATE datasets SET status = 'ready', error = NULL, class_names = ?,"
                            " n_classes = ?, n_files = ?, n_train = ?, n_val = ?, n_test = ?,"
                            " n_skipped = ? WHERE id = ?",
                            &upd)))
        goto fail;
    store_bind_text(upd, 1, class_names_json ? class_names_json : "[]");
    sqlite3_bind_int(upd, 2, n_classes);
    sqlite3_bind_int64(upd, 3, n_files);
    for (int k = 0; k < STORE_SPLIT_COUNT; k++)
        sqlite3_bind_int64(upd, 4 + k, per_split[k]);
    sqlite3_bind_int64(upd, 7, n_skipped);
    sqlite3_bind_int64(upd, 8, id);
    if ((rc = store_step_done(s, upd, "recording a scan")))
        goto fail;
    if (sqlite3_changes(s->db) == 0) {
        rc = store_fail(s, STORE_NOT_FOUND, "dataset %lld not found", (long long)id);
        goto fail;
    }

    sqlite3_stmt *del;
    if ((rc = store_prepare(s, "DELETE FROM dataset_files WHERE dataset_id = ?", &del)))
        goto fail;
    sqlite3_bind_int64(del, 1, id);
    rc = store_step_done(s, del, "clearing a dataset's files");
    sqlite3_finalize(del);
    if (rc)
        goto fail;
    if ((rc = store_prepare(s, "DELETE FROM dataset_skipped WHERE dataset_id = ?", &del)))
        goto fail;
    sqlite3_bind_int64(del, 1, id);
    rc = store_step_done(s, del, "clearing a dataset's skipped files");
    sqlite3_finalize(del);
    if (rc)
        goto fail;

    if ((rc = store_prepare(s,
                            "INSERT INTO dataset_files (dataset_id, idx, relpath, label, split,"
                            " size, mtime) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            &ins)))
        goto fail;
    for (int i = 0; i < n_files; i++) {
        sqlite3_reset(ins);
        sqlite3_bind_int64(ins, 1, id);
        sqlite3_bind_int(ins, 2, i);
        sqlite3_bind_text(ins, 3, files[i].relpath, -1, SQLITE_STATIC);
        sqlite3_bind_int(ins, 4, files[i].label);
        sqlite3_bind_text(ins, 5, store_split_name(files[i].split), -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 6, files[i].size);
        sqlite3_bind_int64(ins, 7, files[i].mtime);
        if ((rc = store_step_done(s, ins, "storing a dataset file")))
            goto fail;
    }
    /* OR REPLACE: a scan that reports one file twice keeps its last reason. */
    if ((rc = store_prepare(s,
                            "INSERT OR REPLACE INTO dataset_skipped (dataset_id, relpath, reason)"
                            " VALUES (?, ?, ?)",
                            &skip)))
        goto fail;
    for (int i = 0; i < n_skipped; i++) {
        sqlite3_reset(skip);
        sqlite3_bind_int64(skip, 1, id);
        sqlite3_bind_text(skip, 2, skipped[i].relpath, -1, SQLITE_STATIC);
        sqlite3_bind_text(skip, 3, skipped[i].reason, -1, SQLITE_STATIC);
        if ((rc = store_step_done(s, skip, "storing a skipped file")))
            goto fail;
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(skip);
    sqlite3_finalize(upd);
    return store_commit(s);
fail:
    sqlite3_finalize(ins);
    sqlite3_finalize(skip);
    sqlite3_finalize(upd);
    store_rollback(s);
    return rc;
}

static int get_one(Store *s, const char *sql, const char *name, int64_t id, StoreDataset *out)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, sql, &st);
    if (rc)
        return rc;
    if (name)
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 1, id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = read_dataset(s, st, out);
    else if (step == SQLITE_DONE && name)
        rc = store_fail(s, STORE_NOT_FOUND, "dataset \"%s\" not found", name);
    else if (step == SQLITE_DONE)
        rc = store_fail(s, STORE_NOT_FOUND, "dataset %lld not found", (long long)id);
    else
        rc = store_db_fail(s, "reading a dataset");
    sqlite3_finalize(st);
    return rc;
}

int store_dataset_get(Store *s, const char *name, StoreDataset *out)
{
    if (!name)
        return store_fail(s, STORE_INVALID, "dataset name is missing");
    return get_one(s, "SELECT " DATASET_COLUMNS " FROM datasets WHERE name = ?", name, 0, out);
}

int store_dataset_get_by_id(Store *s, int64_t id, StoreDataset *out)
{
    return get_one(s, "SELECT " DATASET_COLUMNS " FROM datasets WHERE id = ?", NULL, id, out);
}

int store_dataset_list(Store *s, StoreDataset **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT " DATASET_COLUMNS " FROM datasets ORDER BY name", &st);
    if (rc)
        return rc;
    void *arr;
    rc = store_collect_rows(s, st, sizeof **rows, 8, read_dataset, free_datasets,
                            "listing datasets", &arr, n);
    *rows = arr;
    return rc;
}

int store_dataset_delete(Store *s, const char *name)
{
    if (!name)
        return store_fail(s, STORE_INVALID, "dataset name is missing");
    sqlite3_stmt *st = NULL;
    int rc = store_begin(s);
    if (rc)
        return rc;
    if ((rc = store_prepare(s,
                            "SELECT (SELECT count(*) FROM datasets WHERE name = ?1),"
                            " (SELECT count(*) FROM jobs WHERE dataset = ?1"
                            "  AND status IN ('queued', 'running'))",
                            &st)))
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = store_db_fail(s, "deleting a dataset");
        goto fail;
    }
    int exists = sqlite3_column_int(st, 0), active = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    st = NULL;
    if (!exists) {
        rc = store_fail(s, STORE_NOT_FOUND, "dataset \"%s\" not found", name);
        goto fail;
    }
    if (active) {
        rc = store_fail(s, STORE_CONFLICT, "dataset \"%s\" is used by %d queued or running job%s",
                        name, active, active == 1 ? "" : "s");
        goto fail;
    }
    if ((rc = store_prepare(s, "DELETE FROM datasets WHERE name = ?", &st)))
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if ((rc = store_step_done(s, st, "deleting a dataset")))
        goto fail;
    sqlite3_finalize(st);
    return store_commit(s);
fail:
    sqlite3_finalize(st);
    store_rollback(s);
    return rc;
}

int store_dataset_files(Store *s, int64_t id, int split, StoreDatasetFile **files, int *n)
{
    *files = NULL;
    *n = 0;
    if (split != -1 && (split < 0 || split >= STORE_SPLIT_COUNT))
        return store_fail(s, STORE_INVALID, "split %d is out of range", split);
    sqlite3_stmt *st;
    int rc = store_prepare(s, store_sql_dataset_files, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    store_bind_text(st, 2, split < 0 ? NULL : store_split_name((StoreSplit)split));

    void *arr;
    rc = store_collect_rows(s, st, sizeof **files, 1024, read_dataset_file, free_files,
                            "reading a dataset's files", &arr, n);
    *files = arr;
    return rc;
}

int store_dataset_skipped(Store *s, int64_t id, StoreDatasetSkipped **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "SELECT relpath, reason FROM dataset_skipped WHERE dataset_id = ?"
                           " ORDER BY relpath",
                           &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    void *arr;
    rc = store_collect_rows(s, st, sizeof **rows, 16, read_skipped, free_skipped,
                            "reading a dataset's skipped files", &arr, n);
    *rows = arr;
    return rc;
}

int store_dataset_class_counts(Store *s, int64_t id, int64_t **counts, int *n_classes)
{
    *counts = NULL;
    *n_classes = 0;
    StoreDataset d;
    int rc = store_dataset_get_by_id(s, id, &d);
    if (rc)
        return rc;
    int nc = d.n_classes;
    store_dataset_deinit(&d);

    int64_t *arr = calloc((size_t)(nc > 0 ? nc : 1) * STORE_SPLIT_COUNT, sizeof *arr);
    if (!arr)
        return store_fail(s, STORE_ERROR, "out of memory");
    sqlite3_stmt *st;
    if ((rc = store_prepare(s,
                            "SELECT label, split, count(*) FROM dataset_files"
                            " WHERE dataset_id = ? GROUP BY label, split",
                            &st))) {
        free(arr);
        return rc;
    }
    sqlite3_bind_int64(st, 1, id);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int label = sqlite3_column_int(st, 0);
        StoreSplit sp;
        if (label < 0 || label >= nc ||
            store_split_parse((const char *)sqlite3_column_text(st, 1), &sp) != 0)
            continue;
        arr[label * STORE_SPLIT_COUNT + sp] = sqlite3_column_int64(st, 2);
    }
    if (step != SQLITE_DONE) {
        rc = store_db_fail(s, "counting a dataset's classes");
        free(arr);
        arr = NULL;
    }
    sqlite3_finalize(st);
    if (rc == STORE_OK) {
        *counts = arr;
        *n_classes = nc;
    }
    return rc;
}
