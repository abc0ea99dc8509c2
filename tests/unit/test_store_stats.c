/* test_store_stats.c — epochs (one row per epoch, upserted), layer statistics (ordered,
 * indexed, histograms intact), discarding rows after a checkpoint, results, checkpoints and
 * the grid summary against hand-computed means and sample standard deviations. */
#include "test.h"
#include "test_store_util.h"

#include <string.h>

static int64_t new_job(Store *s)
{
    StoreJobNew j = sample_job("mobilenet", "he_uniform", 1);
    int64_t id = 0;
    return store_job_insert(s, &j, &id) == STORE_OK ? id : 0;
}

/* A statistics row whose every value derives from (mode, quantity, layer, salt). */
static StoreLayerStat make_stat(StoreMode mode, StoreQuantity q, int layer, int salt)
{
    StoreLayerStat r;
    memset(&r, 0, sizeof r);
    r.mode = mode;
    r.quantity = q;
    r.layer_index = layer;
    snprintf(r.layer_name, sizeof r.layer_name, "conv_pw_%d", layer);
    snprintf(r.layer_type, sizeof r.layer_type, "%s", layer % 2 ? "batch_norm" : "conv2d");
    double base = 1000.0 * mode + 100.0 * q + layer + 0.5 * salt;
    r.n = 4096 + layer;
    r.mean = base + 0.1;
    r.std = base + 0.2;
    r.min = -base;
    r.max = base + 9;
    r.q1 = base + 0.3;
    r.median = base + 0.4;
    r.q3 = base + 0.5;
    r.whisker_lo = base + 0.6;
    r.whisker_hi = base + 0.7;
    r.p1 = base + 0.8;
    r.p99 = base + 0.9;
    r.zero_frac = 0.25;
    r.nonfinite = layer;
    r.predicted_var = q == STORE_QTY_WEIGHT ? 2.0 / (layer + 1) : NAN;
    r.dead_units = layer % 3;
    r.saturation = 0.125;
    r.flags = layer & 5;
    r.hist_lo = -1.5;
    r.hist_hi = 2.5;
    for (int b = 0; b < STORE_HIST_BINS; b++)
        r.hist[b] = (uint32_t)(b * 1000003u + layer * 7u + (uint32_t)salt) ^ 0xA5A5A5A5u;
    return r;
}

static int stats_equal(const StoreLayerStat *a, const StoreLayerStat *b)
{
    /* Bytewise equality would include padding; compare field by field. */
    int nan_ok = (isnan(a->predicted_var) && isnan(b->predicted_var)) ||
                 a->predicted_var == b->predicted_var;
    return a->mode == b->mode && a->quantity == b->quantity &&
           a->layer_index == b->layer_index && strcmp(a->layer_name, b->layer_name) == 0 &&
           strcmp(a->layer_type, b->layer_type) == 0 && a->n == b->n && a->mean == b->mean &&
           a->std == b->std && a->min == b->min && a->max == b->max && a->q1 == b->q1 &&
           a->median == b->median && a->q3 == b->q3 && a->whisker_lo == b->whisker_lo &&
           a->whisker_hi == b->whisker_hi && a->p1 == b->p1 && a->p99 == b->p99 &&
           a->zero_frac == b->zero_frac && a->nonfinite == b->nonfinite && nan_ok &&
           a->dead_units == b->dead_units && a->saturation == b->saturation &&
           a->flags == b->flags && a->hist_lo == b->hist_lo && a->hist_hi == b->hist_hi &&
           memcmp(a->hist, b->hist, sizeof a->hist) == 0;
}

TEST(store_epoch_upsert_keeps_one_row_per_epoch)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    int64_t job = new_job(s), other = new_job(s);
    REQUIRE(job && other);
    /* Epochs 1..5, then a "resume from the checkpoint of epoch 3" writes 4 and 5 again
     * with new values. */
    for (int e = 1; e <= 5; e++) {
        StoreEpoch row = {e, 2.0 / e, 0.1 * e, 2.1 / e, 0.09 * e, 0.01, 30 + e, 100 + e};
        REQUIRE(store_epoch_put(s, job, &row) == STORE_OK);
    }
    StoreEpoch o = {1, 9, 9, 9, 9, 9, 9, 9};
    REQUIRE(store_epoch_put(s, other, &o) == STORE_OK);
    for (int e = 4; e <= 5; e++) {
        StoreEpoch row = {e, 1.0 / e, 0.2 * e, 1.1 / e, 0.19 * e, 0.001, 60 + e, 200 + e};
        REQUIRE(store_epoch_put(s, job, &row) == STORE_OK);
    }
    StoreEpoch *rows;
    int n;
    REQUIRE(store_epoch_list(s, job, &rows, &n) == STORE_OK);
    REQUIRE(n == 5);
    for (int i = 0; i < 5; i++) {
        int e = i + 1;
        CHECK_INT(rows[i].epoch, e);
        int resumed = e >= 4;
        CHECK_NEAR(rows[i].train_loss, resumed ? 1.0 / e : 2.0 / e, 0);
        CHECK_NEAR(rows[i].val_acc, resumed ? 0.19 * e : 0.09 * e, 0);
        CHECK_NEAR(rows[i].lr, resumed ? 0.001 : 0.01, 0);
        CHECK_NEAR(rows[i].seconds, (resumed ? 60 : 30) + e, 0);
        CHECK_NEAR(rows[i].images_per_sec, (resumed ? 200 : 100) + e, 0);
    }
    free(rows);

    /* Non-finite values are stored as "none" and read back as NaN. */
    StoreEpoch nan_row = {6, NAN, 0.5, INFINITY, NAN, 0.01, 1, 1};
    REQUIRE(store_epoch_put(s, job, &nan_row) == STORE_OK);
    REQUIRE(store_epoch_list(s, job, &rows, &n) == STORE_OK);
    REQUIRE(n == 6);
    CHECK(isnan(rows[5].train_loss));
    CHECK(isnan(rows[5].val_acc));
    CHECK(isinf(rows[5].val_loss));
    free(rows);

    StoreEpoch bad = {-1, 0, 0, 0, 0, 0, 0, 0};
    CHECK_INT(store_epoch_put(s, job, &bad), STORE_INVALID);
    CHECK_INT(store_epoch_put(s, 9999, &o), STORE_NOT_FOUND);
    CHECK(strstr(store_errmsg(s), "job 9999") != NULL);
    REQUIRE(store_epoch_list(s, 9999, &rows, &n) == STORE_OK);
    CHECK_INT(n, 0);

    char plan[1024];
    REQUIRE(store_explain(s, STORE_QUERY_EPOCHS, plan, sizeof plan) == STORE_OK);
    CHECK(strstr(plan, "SEARCH epochs USING PRIMARY KEY (job_id=?)") != NULL);
    CHECK(strstr(plan, "TEMP B-TREE") == NULL);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_stats_put_get_in_layer_order)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    int64_t job = new_job(s);
    REQUIRE(job);
    /* 60 layers x 2 modes x 3 quantities at epochs 0 and 1, layers in a scrambled order
     * (37 is coprime with 60). */
    enum { L = 60 };
    StoreLayerStat *rows = malloc(2 * 3 * L * sizeof *rows);
    REQUIRE(rows);
    for (int epoch = 0; epoch <= 1; epoch++) {
        int k = 0;
        for (int m = 0; m < 2; m++)
            for (int q = 0; q < 3; q++)
                for (int i = 0; i < L; i++)
                    rows[k++] = make_stat((StoreMode)m, (StoreQuantity)q, (i * 37) % L, epoch);
        REQUIRE(store_stats_put(s, job, epoch, rows, k) == STORE_OK);
    }
    free(rows);

    StoreLayerStat *got;
    int n;
    REQUIRE(store_stats_get(s, job, 1, STORE_MODE_INFERENCE, STORE_QTY_ACTIVATION, &got, &n)
            == STORE_OK);
    REQUIRE(n == L);
    for (int i = 0; i < L; i++) {
        StoreLayerStat want = make_stat(STORE_MODE_INFERENCE, STORE_QTY_ACTIVATION, i, 1);
        CHECK_INT(got[i].layer_index, i);
        CHECK(stats_equal(&got[i], &want));
    }
    free(got);
    REQUIRE(store_stats_get(s, job, 0, STORE_MODE_TRAIN, STORE_QTY_WEIGHT, &got, &n) == STORE_OK);
    REQUIRE(n == L);
    StoreLayerStat w7 = make_stat(STORE_MODE_TRAIN, STORE_QTY_WEIGHT, 7, 0);
    CHECK(stats_equal(&got[7], &w7));
    CHECK_NEAR(got[7].predicted_var, 0.25, 0);
    free(got);
    REQUIRE(store_stats_get(s, job, 5, STORE_MODE_TRAIN, STORE_QTY_WEIGHT, &got, &n) == STORE_OK);
    CHECK_INT(n, 0);

    StoreLayerStat one;
    REQUIRE(store_stats_get_layer(s, job, 0, STORE_MODE_TRAIN, STORE_QTY_GRADIENT, 42, &one)
            == STORE_OK);
    StoreLayerStat want = make_stat(STORE_MODE_TRAIN, STORE_QTY_GRADIENT, 42, 0);
    CHECK(stats_equal(&one, &want));
    CHECK(isnan(one.predicted_var));
    CHECK_INT(store_stats_get_layer(s, job, 0, STORE_MODE_TRAIN, STORE_QTY_GRADIENT, L, &one),
              STORE_NOT_FOUND);

    /* Re-measuring an epoch overwrites its rows (a resumed job). */
    StoreLayerStat again = make_stat(STORE_MODE_TRAIN, STORE_QTY_GRADIENT, 42, 9);
    REQUIRE(store_stats_put(s, job, 0, &again, 1) == STORE_OK);
    REQUIRE(store_stats_get_layer(s, job, 0, STORE_MODE_TRAIN, STORE_QTY_GRADIENT, 42, &one)
            == STORE_OK);
    CHECK(stats_equal(&one, &again));
    REQUIRE(store_stats_get(s, job, 0, STORE_MODE_TRAIN, STORE_QTY_GRADIENT, &got, &n) == STORE_OK);
    CHECK_INT(n, L);
    free(got);

    int *epochs;
    REQUIRE(store_stats_epochs(s, job, &epochs, &n) == STORE_OK);
    REQUIRE(n == 2);
    CHECK_INT(epochs[0], 0);
    CHECK_INT(epochs[1], 1);
    free(epochs);

    /* Invalid rows are refused before anything is written. */
    StoreLayerStat bad = make_stat(STORE_MODE_TRAIN, STORE_QTY_WEIGHT, 3, 0);
    bad.layer_index = -1;
    CHECK_INT(store_stats_put(s, job, 2, &bad, 1), STORE_INVALID);
    bad = make_stat((StoreMode)2, STORE_QTY_WEIGHT, 3, 0);
    CHECK_INT(store_stats_put(s, job, 2, &bad, 1), STORE_INVALID);
    bad = make_stat(STORE_MODE_TRAIN, STORE_QTY_WEIGHT, 3, 0);
    memset(bad.layer_name, 'x', sizeof bad.layer_name);
    CHECK_INT(store_stats_put(s, job, 2, &bad, 1), STORE_INVALID);
    StoreLayerStat okrow = make_stat(STORE_MODE_TRAIN, STORE_QTY_WEIGHT, 3, 0);
    CHECK_INT(store_stats_put(s, 9999, 2, &okrow, 1), STORE_NOT_FOUND);
    REQUIRE(store_stats_epochs(s, job, &epochs, &n) == STORE_OK);
    CHECK_INT(n, 2);
    free(epochs);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_stats_queries_use_the_primary_key)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    char plan[1024];
    REQUIRE(store_explain(s, STORE_QUERY_STATS_EPOCH, plan, sizeof plan) == STORE_OK);
    CHECK(strstr(plan, "SEARCH layer_stats USING PRIMARY KEY "
                       "(job_id=? AND epoch=? AND mode=? AND quantity=?)") != NULL);
    CHECK(strstr(plan, "SCAN") == NULL);
    CHECK(strstr(plan, "TEMP B-TREE") == NULL); /* layer order comes from the key */
    REQUIRE(store_explain(s, STORE_QUERY_STATS_LAYER, plan, sizeof plan) == STORE_OK);
    CHECK(strstr(plan, "SEARCH layer_stats USING PRIMARY KEY (job_id=? AND epoch=? AND "
                       "mode=? AND quantity=? AND layer_index=?)") != NULL);
    REQUIRE(store_explain(s, STORE_QUERY_STATS_EPOCHS, plan, sizeof plan) == STORE_OK);
    CHECK(strstr(plan, "SEARCH layer_stats USING PRIMARY KEY (job_id=? AND epoch>?)") != NULL);
    CHECK(strstr(plan, "SCAN") == NULL);
    CHECK_INT(store_explain(s, (StoreQuery)99, plan, sizeof plan), STORE_INVALID);
    /* Truncation keeps the buffer terminated. */
    char tiny[8];
    REQUIRE(store_explain(s, STORE_QUERY_STATS_EPOCH, tiny, sizeof tiny) == STORE_OK);
    CHECK_INT(strlen(tiny), 7);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_discard_after_checkpoint_epoch)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    int64_t job = new_job(s), other = new_job(s);
    REQUIRE(job && other);
    for (int e = 0; e <= 6; e++) {
        StoreEpoch row = {e, 1, 1, 1, 1, 1, 1, 1};
        REQUIRE(store_epoch_put(s, job, &row) == STORE_OK);
        REQUIRE(store_epoch_put(s, other, &row) == STORE_OK);
        StoreLayerStat st = make_stat(STORE_MODE_TRAIN, STORE_QTY_WEIGHT, 0, e);
        REQUIRE(store_stats_put(s, job, e, &st, 1) == STORE_OK);
        REQUIRE(store_stats_put(s, other, e, &st, 1) == STORE_OK);
    }
    REQUIRE(store_job_discard_after(s, job, 4) == STORE_OK);
    StoreEpoch *rows;
    int n;
    int *epochs;
    REQUIRE(store_epoch_list(s, job, &rows, &n) == STORE_OK);
    CHECK_INT(n, 5);
    CHECK_INT(rows[n - 1].epoch, 4);
    free(rows);
    REQUIRE(store_stats_epochs(s, job, &epochs, &n) == STORE_OK);
    CHECK_INT(n, 5);
    CHECK_INT(epochs[n - 1], 4);
    free(epochs);
    REQUIRE(store_epoch_list(s, other, &rows, &n) == STORE_OK);
    CHECK_INT(n, 7); /* another job's rows stay */
    free(rows);
    REQUIRE(store_job_discard_after(s, job, 10) == STORE_OK);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_results_and_checkpoints)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    int64_t job = new_job(s);
    REQUIRE(job);
    StoreResult r = {job, 37, 0.91, 0.88, 0.87, 0.875, 0.31,
                     "[[5,1],[0,6]]", "[{\"precision\":1.0}]", 0};
    REQUIRE(store_result_put(s, &r) == STORE_OK);
    StoreResult got;
    REQUIRE(store_result_get(s, job, &got) == STORE_OK);
    CHECK_INT(got.job_id, job);
    CHECK_INT(got.epoch, 37);
    CHECK_NEAR(got.accuracy, 0.91, 0);
    CHECK_NEAR(got.precision_macro, 0.88, 0);
    CHECK_NEAR(got.recall_macro, 0.87, 0);
    CHECK_NEAR(got.f1_macro, 0.875, 0);
    CHECK_NEAR(got.loss, 0.31, 0);
    CHECK_STR(got.confusion_json, "[[5,1],[0,6]]");
    CHECK_STR(got.per_class_json, "[{\"precision\":1.0}]");
    CHECK(got.created_at > 0);
    store_result_deinit(&got);
    StoreResult r2 = {job, 40, 0.93, 0.9, 0.9, 0.9, 0.2, NULL, NULL, 0};
    REQUIRE(store_result_put(s, &r2) == STORE_OK);
    REQUIRE(store_result_get(s, job, &got) == STORE_OK);
    CHECK_INT(got.epoch, 40);
    CHECK_STR(got.confusion_json, "[]");
    store_result_deinit(&got);
    CHECK_INT(store_result_get(s, job + 1, &got), STORE_NOT_FOUND);
    r2.job_id = 9999;
    CHECK_INT(store_result_put(s, &r2), STORE_NOT_FOUND);

    StoreCheckpoint c = {0};
    c.job_id = job;
    c.kind = STORE_CKPT_BEST;
    c.epoch = 3;
    snprintf(c.path, sizeof c.path, "/state/checkpoints/%lld-best.ckpt", (long long)job);
    c.val_acc = 0.8;
    c.crc = 0xDEADBEEFu; /* above INT32_MAX: must survive the INTEGER column */
    REQUIRE(store_checkpoint_put(s, &c) == STORE_OK);
    c.kind = STORE_CKPT_LATEST;
    c.epoch = 4;
    c.val_acc = NAN;
    snprintf(c.path, sizeof c.path, "/state/checkpoints/%lld-latest.ckpt", (long long)job);
    REQUIRE(store_checkpoint_put(s, &c) == STORE_OK);
    c.epoch = 5;
    REQUIRE(store_checkpoint_put(s, &c) == STORE_OK);

    StoreCheckpoint g;
    REQUIRE(store_checkpoint_get(s, job, STORE_CKPT_BEST, &g) == STORE_OK);
    CHECK_INT(g.epoch, 3);
    CHECK_INT(g.crc, 0xDEADBEEFu);
    CHECK_NEAR(g.val_acc, 0.8, 0);
    CHECK(strstr(g.path, "-best.ckpt") != NULL);
    StoreCheckpoint *list;
    int n;
    REQUIRE(store_checkpoint_list(s, job, &list, &n) == STORE_OK);
    REQUIRE(n == 2);
    CHECK_INT(list[0].kind, STORE_CKPT_LATEST);
    CHECK_INT(list[0].epoch, 5);
    CHECK(isnan(list[0].val_acc));
    CHECK_INT(list[1].kind, STORE_CKPT_BEST);
    free(list);
    CHECK_INT(store_checkpoint_get(s, job + 1, STORE_CKPT_BEST, &g), STORE_NOT_FOUND);
    c.job_id = 9999;
    CHECK_INT(store_checkpoint_put(s, &c), STORE_NOT_FOUND);
    c.job_id = job;
    c.path[0] = '\0';
    CHECK_INT(store_checkpoint_put(s, &c), STORE_INVALID);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_grid_summary_mean_and_sample_std)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    int64_t grid, other_grid;
    REQUIRE(store_grid_insert(s, "{}", &grid) == STORE_OK);
    REQUIRE(store_grid_insert(s, "{}", &other_grid) == STORE_OK);
    /* resnet50/he_uniform, 3 seeds: accuracy 0.80 0.85 0.90 -> mean 0.85, s = 0.05;
     * precision 0.70 0.75 0.95 -> mean 0.80, s = sqrt((0.01+0.0025+0.0225)/2) = 0.1322876;
     * recall 0.6 0.6 0.6 -> s = 0; F1 0.5 0.7 0.6 -> mean 0.6, s = 0.1;
     * loss 1.0 2.0 4.0 -> mean 7/3, s = sqrt(((4/3)^2+(1/3)^2+(5/3)^2)/2) = 1.5275252.
     * mobilenet/glorot_uniform: 2 seeds, one done (accuracy 0.7), one still queued. */
    struct { const char *model, *init; int done; double acc, prec, rec, f1, loss; } jobs[] = {
        {"resnet50", "he_uniform", 1, 0.80, 0.70, 0.6, 0.5, 1.0},
        {"mobilenet", "glorot_uniform", 1, 0.70, 0.60, 0.5, 0.55, 0.9},
        {"resnet50", "he_uniform", 1, 0.85, 0.75, 0.6, 0.7, 2.0},
        {"mobilenet", "glorot_uniform", 0, 0, 0, 0, 0, 0},
        {"resnet50", "he_uniform", 1, 0.90, 0.95, 0.6, 0.6, 4.0},
    };
    for (int i = 0; i < 5; i++) {
        StoreJobNew j = sample_job(jobs[i].model, jobs[i].init, i);
        j.grid_id = grid;
        int64_t id;
        REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);
        if (jobs[i].done) {
            StoreResult r = {id, 10, jobs[i].acc, jobs[i].prec, jobs[i].rec, jobs[i].f1,
                             jobs[i].loss, NULL, NULL, 0};
            REQUIRE(store_result_put(s, &r) == STORE_OK);
        }
    }
    /* A job of another grid with the same model is not counted. */
    StoreJobNew j = sample_job("resnet50", "he_uniform", 9);
    j.grid_id = other_grid;
    int64_t id;
    REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);
    StoreResult r = {id, 1, 0.1, 0.1, 0.1, 0.1, 9.0, NULL, NULL, 0};
    REQUIRE(store_result_put(s, &r) == STORE_OK);

    StoreGridSummary *rows;
    int n;
    REQUIRE(store_grid_summary(s, grid, &rows, &n) == STORE_OK);
    REQUIRE(n == 2);
    CHECK_STR(rows[0].model, "mobilenet");
    CHECK_STR(rows[0].initializer, "glorot_uniform");
    CHECK_INT(rows[0].n_jobs, 2);
    CHECK_INT(rows[0].n, 1);
    CHECK_NEAR(rows[0].accuracy.mean, 0.70, 1e-12);
    CHECK(isnan(rows[0].accuracy.std)); /* one value: no sample std */
    CHECK_STR(rows[1].model, "resnet50");
    CHECK_STR(rows[1].initializer, "he_uniform");
    CHECK_INT(rows[1].n_jobs, 3);
    CHECK_INT(rows[1].n, 3);
    CHECK_NEAR(rows[1].accuracy.mean, 0.85, 1e-12);
    CHECK_NEAR(rows[1].accuracy.std, 0.05, 1e-12);
    CHECK_NEAR(rows[1].precision_macro.mean, 0.80, 1e-12);
    CHECK_NEAR(rows[1].precision_macro.std, 0.13228756555322952, 1e-12);
    CHECK_NEAR(rows[1].recall_macro.mean, 0.6, 1e-12);
    CHECK_NEAR(rows[1].recall_macro.std, 0.0, 1e-12);
    CHECK_NEAR(rows[1].f1_macro.mean, 0.6, 1e-12);
    CHECK_NEAR(rows[1].f1_macro.std, 0.1, 1e-12);
    CHECK_NEAR(rows[1].loss.mean, 7.0 / 3.0, 1e-12);
    CHECK_NEAR(rows[1].loss.std, 1.5275252316519468, 1e-12);
    free(rows);

    int64_t empty;
    REQUIRE(store_grid_insert(s, "{}", &empty) == STORE_OK);
    REQUIRE(store_grid_summary(s, empty, &rows, &n) == STORE_OK);
    CHECK_INT(n, 0);
    CHECK_INT(store_grid_summary(s, 9999, &rows, &n), STORE_NOT_FOUND);

    char plan[1024];
    REQUIRE(store_explain(s, STORE_QUERY_GRID_SUMMARY, plan, sizeof plan) == STORE_OK);
    CHECK(strstr(plan, "INDEX jobs_grid (grid_id=?)") != NULL);
    CHECK(strstr(plan, "SCAN") == NULL);
    CHECK(strstr(plan, "TEMP B-TREE") == NULL);
    store_close(s);
    tmpdb_deinit(&t);
}
