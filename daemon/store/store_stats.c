/* store_stats.c — per-epoch metrics (the learning curves) and per-layer distribution
 * statistics with their histograms (box plots and histograms of the dashboard). */
#include "store/store_internal.h"

#include <stdlib.h>
#include <string.h>

const char store_sql_epoch_list[] =
    "SELECT epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds, images_per_sec"
    " FROM epochs WHERE job_id = ?1 ORDER BY epoch";

#define STAT_COLUMNS                                                                       \
    "mode, quantity, layer_index, layer_name, layer_type, n, mean, std, min, max, q1,"     \
    " median, q3, whisker_lo, whisker_hi, p1, p99, zero_frac, nonfinite, predicted_var,"   \
    " dead_units, saturation, flags, hist_lo, hist_hi, hist, mean_abs, theory_var,"        \
    " fan_sum, init_iters, units"

const char store_sql_stats_epoch[] =
    "SELECT " STAT_COLUMNS " FROM layer_stats"
    " WHERE job_id = ?1 AND epoch = ?2 AND mode = ?3 AND quantity = ?4 ORDER BY layer_index";
const char store_sql_stats_layer[] =
    "SELECT " STAT_COLUMNS " FROM layer_stats"
    " WHERE job_id = ?1 AND epoch = ?2 AND mode = ?3 AND quantity = ?4 AND layer_index = ?5";
const char store_sql_stats_next_epoch[] =
    "SELECT min(epoch) FROM layer_stats WHERE job_id = ?1 AND epoch > ?2";

/* ---- Epochs ---------------------------------------------------------------------------- */

int store_epoch_put(Store *s, int64_t job_id, const StoreEpoch *e)
{
    if (e->epoch < 0)
        return store_fail(s, STORE_INVALID, "epoch %d is negative", e->epoch);
    sqlite3_stmt *st;
    int rc = store_prepare(
        s,
        "INSERT INTO epochs (job_id, epoch, train_loss, train_acc, val_loss, val_acc, lr,"
        " seconds, images_per_sec) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (job_id, epoch) DO UPDATE SET train_loss = excluded.train_loss,"
        " train_acc = excluded.train_acc, val_loss = excluded.val_loss,"
        " val_acc = excluded.val_acc, lr = excluded.lr, seconds = excluded.seconds,"
        " images_per_sec = excluded.images_per_sec",
        &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, e->epoch);
    store_bind_real(st, 3, e->train_loss);
    store_bind_real(st, 4, e->train_acc);
    store_bind_real(st, 5, e->val_loss);
    store_bind_real(st, 6, e->val_acc);
    store_bind_real(st, 7, e->lr);
    store_bind_real(st, 8, e->seconds);
    store_bind_real(st, 9, e->images_per_sec);
    rc = store_step_done(s, st, "recording an epoch");
    if (rc == STORE_NOT_FOUND)
        rc = store_fail(s, STORE_NOT_FOUND, "job %lld not found", (long long)job_id);
    sqlite3_finalize(st);
    return rc;
}

/* Row reader (StoreReadRow); row is a StoreEpoch. Can't fail. */
static int read_epoch(Store *s, sqlite3_stmt *st, void *row)
{
    StoreEpoch *e = row;
    (void)s;
    e->epoch = sqlite3_column_int(st, 0);
    e->train_loss = store_col_real(st, 1);
    e->train_acc = store_col_real(st, 2);
    e->val_loss = store_col_real(st, 3);
    e->val_acc = store_col_real(st, 4);
    e->lr = store_col_real(st, 5);
    e->seconds = store_col_real(st, 6);
    e->images_per_sec = store_col_real(st, 7);
    return STORE_OK;
}

int store_epoch_list(Store *s, int64_t job_id, StoreEpoch **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, store_sql_epoch_list, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    void *arr;
    rc = store_collect_rows(s, st, sizeof **rows, 64, read_epoch, NULL, "reading epochs",
                            &arr, n);
    *rows = arr;
    return rc;
}

/* ---- Layer statistics ------------------------------------------------------------------ */

/* The histogram column: STORE_HIST_BINS counts as little-endian uint32, whatever the host. */
static void hist_encode(const uint32_t *hist, unsigned char *out)
{
    for (int b = 0; b < STORE_HIST_BINS; b++)
        for (int k = 0; k < 4; k++)
            out[4 * b + k] = (unsigned char)(hist[b] >> (8 * k));
}

static void hist_decode(const unsigned char *in, int len, uint32_t *hist)
{
    memset(hist, 0, STORE_HIST_BINS * sizeof *hist);
    if (!in || len != 4 * STORE_HIST_BINS)
        return;
    for (int b = 0; b < STORE_HIST_BINS; b++)
        hist[b] = (uint32_t)in[4 * b] | (uint32_t)in[4 * b + 1] << 8 |
                  (uint32_t)in[4 * b + 2] << 16 | (uint32_t)in[4 * b + 3] << 24;
}

static int check_stat(Store *s, const StoreLayerStat *r)
{
    if ((int)r->mode < 0 || r->mode > STORE_MODE_INFERENCE)
        return store_fail(s, STORE_INVALID, "layer %d: mode %d is out of range", r->layer_index,
                          (int)r->mode);
    if ((int)r->quantity < 0 || r->quantity > STORE_QTY_GRADIENT)
        return store_fail(s, STORE_INVALID, "layer %d: quantity %d is out of range",
                          r->layer_index, (int)r->quantity);
    if (r->layer_index < 0)
        return store_fail(s, STORE_INVALID, "layer index %d is negative", r->layer_index);
    if (!memchr(r->layer_name, '\0', sizeof r->layer_name) ||
        !memchr(r->layer_type, '\0', sizeof r->layer_type))
        return store_fail(s, STORE_INVALID, "layer %d: name or type is not terminated",
                          r->layer_index);
    if (r->n < 0)
        return store_fail(s, STORE_INVALID, "layer %d: n is negative", r->layer_index);
    return STORE_OK;
}

int store_stats_put(Store *s, int64_t job_id, int epoch, const StoreLayerStat *rows, int n)
{
    if (epoch < 0)
        return store_fail(s, STORE_INVALID, "epoch %d is negative", epoch);
    int rc;
    for (int i = 0; i < n; i++)
        if ((rc = check_stat(s, &rows[i])))
            return rc;
    sqlite3_stmt *st = NULL;
    if ((rc = store_begin(s)))
        return rc;
    if ((rc = store_prepare(
             s,
             "INSERT INTO layer_stats (job_id, epoch, " STAT_COLUMNS ") VALUES (?1, ?2, ?3,"
             " ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,"
             " ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)"
             " ON CONFLICT (job_id, epoch, mode, quantity, layer_index) DO UPDATE SET"
             " layer_name = excluded.layer_name, layer_type = excluded.layer_type,"
             " n = excluded.n, mean = excluded.mean, std = excluded.std, min = excluded.min,"
             " max = excluded.max, q1 = excluded.q1, median = excluded.median,"
             " q3 = excluded.q3, whisker_lo = excluded.whisker_lo,"
             " whisker_hi = excluded.whisker_hi, p1 = excluded.p1, p99 = excluded.p99,"
             " zero_frac = excluded.zero_frac, nonfinite = excluded.nonfinite,"
             " predicted_var = excluded.predicted_var, dead_units = excluded.dead_units,"
             " saturation = excluded.saturation, flags = excluded.flags,"
             " hist_lo = excluded.hist_lo, hist_hi = excluded.hist_hi, hist = excluded.hist,"
             " mean_abs = excluded.mean_abs, theory_var = excluded.theory_var,"
             " fan_sum = excluded.fan_sum, init_iters = excluded.init_iters,"
             " units = excluded.units",
             &st)))
        goto fail;
    for (int i = 0; i < n; i++) {
        const StoreLayerStat *r = &rows[i];
        unsigned char hist[4 * STORE_HIST_BINS];
        hist_encode(r->hist, hist);
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, job_id);
        sqlite3_bind_int(st, 2, epoch);
        sqlite3_bind_text(st, 3, store_mode_name(r->mode), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, store_quantity_name(r->quantity), -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, r->layer_index);
        sqlite3_bind_text(st, 6, r->layer_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, r->layer_type, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, r->n);
        const double v[] = {r->mean, r->std, r->min, r->max, r->q1, r->median, r->q3,
                            r->whisker_lo, r->whisker_hi, r->p1, r->p99, r->zero_frac};
        for (int k = 0; k < 12; k++)
            store_bind_real(st, 9 + k, v[k]);
        sqlite3_bind_int64(st, 21, r->nonfinite);
        store_bind_real(st, 22, r->predicted_var);
        sqlite3_bind_int64(st, 23, r->dead_units);
        store_bind_real(st, 24, r->saturation);
        sqlite3_bind_int(st, 25, r->flags);
        store_bind_real(st, 26, r->hist_lo);
        store_bind_real(st, 27, r->hist_hi);
        sqlite3_bind_blob(st, 28, hist, sizeof hist, SQLITE_TRANSIENT);
        store_bind_real(st, 29, r->mean_abs);
        store_bind_real(st, 30, r->theory_var);
        store_bind_real(st, 31, r->fan_sum);
        if (r->init_iters >= 0)
            sqlite3_bind_int(st, 32, r->init_iters);
        else
            sqlite3_bind_null(st, 32);
        if (r->units > 0)
            sqlite3_bind_int64(st, 33, r->units);
        else
            sqlite3_bind_null(st, 33);
        if ((rc = store_step_done(s, st, "recording layer statistics"))) {
            if (rc == STORE_NOT_FOUND)
                rc = store_fail(s, STORE_NOT_FOUND, "job %lld not found", (long long)job_id);
            goto fail;
        }
    }
    sqlite3_finalize(st);
    return store_commit(s);
fail:
    sqlite3_finalize(st);
    store_rollback(s);
    return rc;
}

/* Row reader (StoreReadRow); row is a StoreLayerStat. Can't fail. */
static int read_stat(Store *s, sqlite3_stmt *st, void *row)
{
    StoreLayerStat *r = row;
    (void)s;
    memset(r, 0, sizeof *r);
    store_mode_parse((const char *)sqlite3_column_text(st, 0), &r->mode);
    store_quantity_parse((const char *)sqlite3_column_text(st, 1), &r->quantity);
    r->layer_index = sqlite3_column_int(st, 2);
    store_col_copy(st, 3, r->layer_name, sizeof r->layer_name);
    store_col_copy(st, 4, r->layer_type, sizeof r->layer_type);
    r->n = sqlite3_column_int64(st, 5);
    double *v[] = {&r->mean, &r->std, &r->min, &r->max, &r->q1, &r->median, &r->q3,
                   &r->whisker_lo, &r->whisker_hi, &r->p1, &r->p99, &r->zero_frac};
    for (int k = 0; k < 12; k++)
        *v[k] = store_col_real(st, 6 + k);
    r->nonfinite = sqlite3_column_int64(st, 18);
    r->predicted_var = store_col_real(st, 19);
    r->dead_units = sqlite3_column_int64(st, 20);
    r->saturation = store_col_real(st, 21);
    r->flags = sqlite3_column_int(st, 22);
    r->hist_lo = store_col_real(st, 23);
    r->hist_hi = store_col_real(st, 24);
    hist_decode(sqlite3_column_blob(st, 25), sqlite3_column_bytes(st, 25), r->hist);
    r->mean_abs = store_col_real(st, 26);
    r->theory_var = store_col_real(st, 27);
    r->fan_sum = store_col_real(st, 28);
    r->init_iters = sqlite3_column_type(st, 29) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 29);
    r->units = sqlite3_column_int64(st, 30);
    return STORE_OK;
}

static void bind_key(sqlite3_stmt *st, int64_t job_id, int epoch, StoreMode mode, StoreQuantity q)
{
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, epoch);
    sqlite3_bind_text(st, 3, store_mode_name(mode), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, store_quantity_name(q), -1, SQLITE_STATIC);
}

int store_stats_get(Store *s, int64_t job_id, int epoch, StoreMode mode, StoreQuantity q,
                    StoreLayerStat **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, store_sql_stats_epoch, &st);
    if (rc)
        return rc;
    bind_key(st, job_id, epoch, mode, q);
    void *arr;
    rc = store_collect_rows(s, st, sizeof **rows, 64, read_stat, NULL,
                            "reading layer statistics", &arr, n);
    *rows = arr;
    return rc;
}

int store_stats_get_layer(Store *s, int64_t job_id, int epoch, StoreMode mode, StoreQuantity q,
                          int layer_index, StoreLayerStat *out)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, store_sql_stats_layer, &st);
    if (rc)
        return rc;
    bind_key(st, job_id, epoch, mode, q);
    sqlite3_bind_int(st, 5, layer_index);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = read_stat(s, st, out);
    else if (step == SQLITE_DONE)
        rc = store_fail(s, STORE_NOT_FOUND,
                        "job %lld has no %s statistics in %s mode for layer %d at epoch %d",
                        (long long)job_id, store_quantity_name(q), store_mode_name(mode),
                        layer_index, epoch);
    else
        rc = store_db_fail(s, "reading layer statistics");
    sqlite3_finalize(st);
    return rc;
}

int store_stats_epochs(Store *s, int64_t job_id, int **epochs, int *n)
{
    *epochs = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s, store_sql_stats_next_epoch, &st);
    if (rc)
        return rc;
    int *arr = NULL, count = 0, cap = 0, last = -1;
    /* One index seek per epoch instead of reading every row of the job. */
    if ((rc = store_exec(s, "BEGIN", "starting a read")))
        goto fail;
    for (;;) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, job_id);
        sqlite3_bind_int(st, 2, last);
        if (sqlite3_step(st) != SQLITE_ROW) {
            rc = store_db_fail(s, "listing statistics epochs");
            goto fail;
        }
        if (sqlite3_column_type(st, 0) == SQLITE_NULL)
            break;
        last = sqlite3_column_int(st, 0);
        int *grown = store_grow(s, arr, count, &cap, 32, sizeof *arr);
        if (!grown) {
            rc = STORE_ERROR;
            goto fail;
        }
        arr = grown;
        arr[count++] = last;
    }
    sqlite3_finalize(st);
    store_exec(s, "COMMIT", "ending a read");
    *epochs = arr;
    *n = count;
    return STORE_OK;
fail:
    sqlite3_finalize(st);
    store_rollback(s);
    free(arr);
    return rc;
}

/* Row reader (StoreReadRow) of the history: the epoch comes first, then the stat columns. */
typedef struct {
    StoreLayerStat stat;
    int epoch;
} HistoryRow;

static int read_history(Store *s, sqlite3_stmt *st, void *row)
{
    HistoryRow *h = row;
    h->epoch = sqlite3_column_int(st, 31);
    return read_stat(s, st, &h->stat);
}

int store_stats_history(Store *s, int64_t job_id, StoreMode mode, StoreQuantity q,
                        int layer_index, StoreLayerStat **rows, int **epochs, int *n)
{
    *rows = NULL;
    *epochs = NULL;
    *n = 0;
    sqlite3_stmt *st;
    /* The key's epoch sits between job and mode: one seek per epoch of the job, which
     * SQLite's skip-scan does when the statistics are analyzed, a scan of the job's rows
     * otherwise (thousands at most). */
    int rc = store_prepare(s,
                           "SELECT " STAT_COLUMNS ", epoch FROM layer_stats WHERE job_id = ?1"
                           " AND mode = ?2 AND quantity = ?3 AND layer_index = ?4"
                           " ORDER BY epoch",
                           &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_text(st, 2, store_mode_name(mode), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, store_quantity_name(q), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, layer_index);
    void *arr;
    int count = 0;
    rc = store_collect_rows(s, st, sizeof(HistoryRow), 16, read_history, NULL,
                            "reading a layer's history", &arr, &count);
    if (rc)
        return rc;
    HistoryRow *h = arr;
    StoreLayerStat *out = count ? malloc(sizeof *out * (size_t)count) : NULL;
    int *ep = count ? malloc(sizeof *ep * (size_t)count) : NULL;
    if (count && (!out || !ep)) {
        free(out);
        free(ep);
        free(arr);
        return store_fail(s, STORE_ERROR, "out of memory reading a layer's history");
    }
    for (int i = 0; i < count; i++) {
        out[i] = h[i].stat;
        ep[i] = h[i].epoch;
    }
    free(arr);
    *rows = out;
    *epochs = ep;
    *n = count;
    return STORE_OK;
}
