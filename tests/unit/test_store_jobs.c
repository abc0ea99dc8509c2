/* test_store_jobs.c — jobs and grids: insert and read back, filtered pages, status moves
 * with their timestamps, the claim order, start-up requeue, deletion rules, submissions with
 * idempotency keys. */
#include "test.h"
#include "test_store_util.h"

#include <string.h>
#include <time.h>

TEST(store_job_insert_get_round_trip)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreJobNew j = sample_job("resnet50", "glorot_uniform", -5);
    j.priority = 7;
    j.epochs = 100;
    j.config_json = "{\"model\": \"resnet50\", \"epochs\": 100, \"lr\": 0.01}";
    int64_t id = 0;
    double before = (double)time(NULL);
    REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);
    StoreJob got;
    REQUIRE(store_job_get(s, id, &got) == STORE_OK);
    CHECK_INT(got.id, id);
    CHECK_INT(got.grid_id, 0);
    CHECK_INT(got.status, STORE_JOB_QUEUED);
    CHECK_INT(got.priority, 7);
    CHECK_STR(got.config_json, j.config_json);
    CHECK_STR(got.dataset, "weeds");
    CHECK_STR(got.model, "resnet50");
    CHECK_STR(got.initializer, "glorot_uniform");
    CHECK_INT(got.seed, -5);
    CHECK_INT(got.epochs, 100);
    CHECK(got.created_at >= before - 1 && got.created_at <= before + 60);
    CHECK(got.started_at == 0 && got.finished_at == 0);
    CHECK(got.error == NULL);
    CHECK_INT(got.attempts, 0);
    CHECK_INT(got.progress.epoch, 0);
    CHECK(isnan(got.progress.images_per_sec));
    CHECK(isnan(got.progress.best_val_acc));
    store_job_deinit(&got);

    CHECK_INT(store_job_get(s, id + 1, &got), STORE_NOT_FOUND);
    CHECK(strstr(store_errmsg(s), "not found") != NULL);

    StoreJobNew bad = j;
    bad.model = NULL;
    CHECK_INT(store_job_insert(s, &bad, NULL), STORE_INVALID);
    bad = j;
    bad.epochs = -1;
    CHECK_INT(store_job_insert(s, &bad, NULL), STORE_INVALID);
    bad = j;
    bad.grid_id = 999;
    CHECK_INT(store_job_insert(s, &bad, NULL), STORE_NOT_FOUND);
    CHECK(strstr(store_errmsg(s), "grid 999") != NULL);

    /* A foreground job is stored running, so that no worker claims it. */
    StoreJobNew fg = j;
    fg.start_running = 1;
    int64_t fg_id;
    REQUIRE(store_job_insert(s, &fg, &fg_id) == STORE_OK);
    REQUIRE(store_job_get(s, fg_id, &got) == STORE_OK);
    CHECK_INT(got.status, STORE_JOB_RUNNING);
    CHECK(got.started_at > 0);
    CHECK_INT(got.attempts, 1);
    store_job_deinit(&got);
    StoreJob claimed;
    REQUIRE(store_job_claim(s, &claimed) == STORE_OK);
    CHECK_INT(claimed.id, id);
    store_job_deinit(&claimed);
    CHECK_INT(store_job_claim(s, &claimed), STORE_NOT_FOUND);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_job_claim_priority_then_fifo)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    /* Submission order with priorities; the expected claim order is by priority (high
     * first), ties in submission order. */
    static const int prio[] = {0, 5, 0, 10, 5, -1, 10, 0};
    static const int order[] = {3, 6, 1, 4, 0, 2, 7, 5};
    int64_t ids[8];
    for (int i = 0; i < 8; i++) {
        StoreJobNew j = sample_job("mobilenet", "he_uniform", i);
        j.priority = prio[i];
        REQUIRE(store_job_insert(s, &j, &ids[i]) == STORE_OK);
    }
    /* A cancelled high-priority job is not claimed. */
    StoreJobNew hi = sample_job("mobilenet", "he_uniform", 99);
    hi.priority = 100;
    int64_t hi_id;
    REQUIRE(store_job_insert(s, &hi, &hi_id) == STORE_OK);
    REQUIRE(store_job_set_status(s, hi_id, STORE_JOB_BIT(STORE_JOB_QUEUED), STORE_JOB_CANCELLED,
                                 NULL) == STORE_OK);

    for (int k = 0; k < 8; k++) {
        StoreJob c;
        REQUIRE(store_job_claim(s, &c) == STORE_OK);
        CHECK_INT(c.id, ids[order[k]]);
        CHECK_INT(c.status, STORE_JOB_RUNNING);
        CHECK(c.started_at > 0);
        CHECK_INT(c.attempts, 1);
        store_job_deinit(&c);
    }
    StoreJob none;
    CHECK_INT(store_job_claim(s, &none), STORE_NOT_FOUND);

    char plan[1024];
    REQUIRE(store_explain(s, STORE_QUERY_JOB_CLAIM, plan, sizeof plan) == STORE_OK);
    CHECK(strstr(plan, "USING COVERING INDEX jobs_queue (status=? AND slurm_job_id=?)") != NULL);
    CHECK(strstr(plan, "SCAN") == NULL);
    CHECK(strstr(plan, "TEMP B-TREE") == NULL);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_job_claim_waits_for_a_dataset_scan)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreDatasetNew d = {"weeds", "/data/weeds", 0.6, 0.2, 0.2, 0};
    StoreDatasetNew other = {"other", "/data/other", 0.6, 0.2, 0.2, 0};
    int64_t weeds_id, other_id, first, second;
    REQUIRE(store_dataset_insert(s, &d, &weeds_id) == STORE_OK);
    REQUIRE(store_dataset_insert(s, &other, &other_id) == STORE_OK);
    StoreJobNew j = sample_job("mobilenet", "he_uniform", 1);
    j.priority = 5;
    REQUIRE(store_job_insert(s, &j, &first) == STORE_OK);      /* on "weeds", scanning */
    StoreJobNew k = sample_job("mobilenet", "he_uniform", 2);
    k.dataset = "other";
    REQUIRE(store_job_insert(s, &k, &second) == STORE_OK);     /* on "other", scanning */

    StoreJob c;
    CHECK_INT(store_job_claim(s, &c), STORE_NOT_FOUND);
    REQUIRE(store_job_get(s, first, &c) == STORE_OK);
    CHECK(c.dataset_scanning);
    CHECK_INT(c.status, STORE_JOB_QUEUED);
    store_job_deinit(&c);

    /* "other" fails its scan: its job no longer waits (the worker fails it with the
     * scan's error); the higher-priority job on "weeds" still waits. */
    REQUIRE(store_dataset_set_status(s, other_id, STORE_DATASET_FAILED, "no classes") ==
            STORE_OK);
    REQUIRE(store_job_claim(s, &c) == STORE_OK);
    CHECK_INT(c.id, second);
    CHECK(!c.dataset_scanning);
    store_job_deinit(&c);
    CHECK_INT(store_job_claim(s, &c), STORE_NOT_FOUND);

    REQUIRE(store_dataset_set_status(s, weeds_id, STORE_DATASET_READY, NULL) == STORE_OK);
    REQUIRE(store_job_claim(s, &c) == STORE_OK);
    CHECK_INT(c.id, first);
    store_job_deinit(&c);

    /* A job on a dataset nobody registered does not wait either. */
    StoreJobNew u = sample_job("mobilenet", "he_uniform", 3);
    u.dataset = "unknown";
    int64_t third;
    REQUIRE(store_job_insert(s, &u, &third) == STORE_OK);
    REQUIRE(store_job_claim(s, &c) == STORE_OK);
    CHECK_INT(c.id, third);
    store_job_deinit(&c);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_job_status_moves_and_timestamps)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreJobNew j = sample_job("mobilenet", "he_uniform", 1);
    int64_t id;
    REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);
    const unsigned queued = STORE_JOB_BIT(STORE_JOB_QUEUED);
    const unsigned running = STORE_JOB_BIT(STORE_JOB_RUNNING);

    /* Only a running job can finish; the message names the actual status. */
    CHECK_INT(store_job_set_status(s, id, running, STORE_JOB_DONE, NULL), STORE_CONFLICT);
    CHECK(strstr(store_errmsg(s), "queued") != NULL);
    CHECK_INT(store_job_set_status(s, id + 5, 0, STORE_JOB_DONE, NULL), STORE_NOT_FOUND);
    CHECK_INT(store_job_set_status(s, id, 0, (StoreJobStatus)17, NULL), STORE_INVALID);

    StoreJob got;
    REQUIRE(store_job_claim(s, &got) == STORE_OK);
    double started = got.started_at;
    store_job_deinit(&got);
    StoreJobProgress p = {3, 17, 40, 123.5, 61.0, 0.75, 2};
    CHECK_INT(store_job_set_progress(s, id, &p), STORE_OK);
    CHECK_INT(store_job_set_progress(s, id + 5, &p), STORE_NOT_FOUND);
    REQUIRE(store_job_set_status(s, id, running, STORE_JOB_FAILED,
                                 "loss is NaN at epoch 3, step 17") == STORE_OK);
    REQUIRE(store_job_get(s, id, &got) == STORE_OK);
    CHECK_INT(got.status, STORE_JOB_FAILED);
    CHECK_STR(got.error, "loss is NaN at epoch 3, step 17");
    CHECK(got.finished_at >= started);
    CHECK_INT(got.progress.epoch, 3);
    CHECK_INT(got.progress.step, 17);
    CHECK_INT(got.progress.steps_per_epoch, 40);
    CHECK_NEAR(got.progress.images_per_sec, 123.5, 0);
    CHECK_NEAR(got.progress.eta_seconds, 61.0, 0);
    CHECK_NEAR(got.progress.best_val_acc, 0.75, 0);
    CHECK_INT(got.progress.best_epoch, 2);
    store_job_deinit(&got);

    /* Retry: failed -> queued clears the error and finish time, keeps the first start and
     * the progress; the next claim is attempt 2. */
    const unsigned retryable = STORE_JOB_BIT(STORE_JOB_FAILED) | STORE_JOB_BIT(STORE_JOB_CANCELLED);
    REQUIRE(store_job_set_status(s, id, retryable, STORE_JOB_QUEUED, "ignored") == STORE_OK);
    REQUIRE(store_job_get(s, id, &got) == STORE_OK);
    CHECK_INT(got.status, STORE_JOB_QUEUED);
    CHECK(got.error == NULL);
    CHECK(got.finished_at == 0);
    CHECK(got.started_at == started);
    CHECK_INT(got.progress.epoch, 3);
    store_job_deinit(&got);
    CHECK_INT(store_job_set_status(s, id, retryable, STORE_JOB_QUEUED, NULL), STORE_CONFLICT);
    REQUIRE(store_job_claim(s, &got) == STORE_OK);
    CHECK_INT(got.attempts, 2);
    CHECK(got.started_at == started);
    store_job_deinit(&got);

    /* NaN progress values read back as NaN. */
    StoreJobProgress unknown = {1, 0, 40, NAN, NAN, NAN, 0};
    REQUIRE(store_job_set_progress(s, id, &unknown) == STORE_OK);
    REQUIRE(store_job_get(s, id, &got) == STORE_OK);
    CHECK(isnan(got.progress.images_per_sec) && isnan(got.progress.eta_seconds));
    CHECK(isnan(got.progress.best_val_acc));
    store_job_deinit(&got);

    /* Cancel a running job, then a set_status to running counts as an attempt. */
    REQUIRE(store_job_set_status(s, id, running, STORE_JOB_CANCELLED, NULL) == STORE_OK);
    REQUIRE(store_job_set_status(s, id, retryable, STORE_JOB_RUNNING, NULL) == STORE_OK);
    REQUIRE(store_job_get(s, id, &got) == STORE_OK);
    CHECK_INT(got.status, STORE_JOB_RUNNING);
    CHECK_INT(got.attempts, 3);
    CHECK(got.finished_at == 0);
    store_job_deinit(&got);
    REQUIRE(store_job_set_status(s, id, running, STORE_JOB_DONE, NULL) == STORE_OK);
    REQUIRE(store_job_get(s, id, &got) == STORE_OK);
    CHECK_INT(got.status, STORE_JOB_DONE);
    CHECK(got.error == NULL);
    CHECK(got.finished_at > 0);
    store_job_deinit(&got);
    CHECK_INT(store_job_set_status(s, id, queued, STORE_JOB_CANCELLED, NULL), STORE_CONFLICT);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_job_list_filters_and_pages)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    int64_t grid;
    REQUIRE(store_grid_insert(s, "{\"seeds\": [1, 2, 3]}", &grid) == STORE_OK);
    /* 12 jobs: models alternate, initializers in pairs, the first 6 in the grid. */
    const char *models[] = {"mobilenet", "resnet50"};
    const char *inits[] = {"glorot_uniform", "he_uniform"};
    int64_t ids[12];
    for (int i = 0; i < 12; i++) {
        StoreJobNew j = sample_job(models[i % 2], inits[(i / 2) % 2], i);
        j.grid_id = i < 6 ? grid : 0;
        if (i == 11)
            j.dataset = "fashion";
        REQUIRE(store_job_insert(s, &j, &ids[i]) == STORE_OK);
    }
    /* Statuses: ids[0] running, ids[1] done, ids[2] failed, rest queued. */
    StoreJob c;
    REQUIRE(store_job_claim(s, &c) == STORE_OK);
    store_job_deinit(&c);
    REQUIRE(store_job_set_status(s, ids[1], 0, STORE_JOB_DONE, NULL) == STORE_OK);
    REQUIRE(store_job_set_status(s, ids[2], 0, STORE_JOB_FAILED, "x") == STORE_OK);

    StoreJob *rows;
    int n, total;
    REQUIRE(store_job_list(s, NULL, &rows, &n, &total) == STORE_OK);
    CHECK_INT(n, 12);
    CHECK_INT(total, 12);
    for (int i = 0; i < n; i++)
        CHECK_INT(rows[i].id, ids[i]);
    store_jobs_free(rows, n);

    /* Model, initializer and grid together: resnet50, glorot_uniform, i < 6 -> i = 1, 5. */
    StoreJobFilter f = {0};
    f.model = "resnet50";
    f.initializer = "glorot_uniform";
    f.grid_id = grid;
    REQUIRE(store_job_list(s, &f, &rows, &n, &total) == STORE_OK);
    REQUIRE(n == 2);
    CHECK_INT(total, 2);
    CHECK_INT(rows[0].id, ids[1]);
    CHECK_INT(rows[1].id, ids[5]);
    store_jobs_free(rows, n);

    /* Status mask: done or failed. */
    memset(&f, 0, sizeof f);
    f.status_mask = STORE_JOB_BIT(STORE_JOB_DONE) | STORE_JOB_BIT(STORE_JOB_FAILED);
    REQUIRE(store_job_list(s, &f, &rows, &n, &total) == STORE_OK);
    REQUIRE(n == 2);
    CHECK_INT(rows[0].id, ids[1]);
    CHECK_INT(rows[1].id, ids[2]);
    store_jobs_free(rows, n);
    f.status_mask = STORE_JOB_BIT(STORE_JOB_QUEUED);
    REQUIRE(store_job_list(s, &f, &rows, &n, &total) == STORE_OK);
    CHECK_INT(total, 9);
    store_jobs_free(rows, n);

    memset(&f, 0, sizeof f);
    f.dataset = "fashion";
    REQUIRE(store_job_list(s, &f, &rows, &n, &total) == STORE_OK);
    REQUIRE(n == 1);
    CHECK_INT(rows[0].id, ids[11]);
    store_jobs_free(rows, n);

    /* Pages: newest first, 5 per page. */
    memset(&f, 0, sizeof f);
    f.limit = 5;
    f.newest_first = 1;
    int seen = 0;
    for (f.offset = 0; f.offset < 15; f.offset += 5) {
        REQUIRE(store_job_list(s, &f, &rows, &n, &total) == STORE_OK);
        CHECK_INT(total, 12);
        CHECK_INT(n, f.offset == 10 ? 2 : 5);
        for (int i = 0; i < n; i++)
            CHECK_INT(rows[i].id, ids[11 - seen - i]);
        seen += n;
        store_jobs_free(rows, n);
    }
    CHECK_INT(seen, 12);
    f.offset = 40; /* past the end: empty page, true total */
    REQUIRE(store_job_list(s, &f, &rows, &n, &total) == STORE_OK);
    CHECK_INT(n, 0);
    CHECK(rows == NULL);
    CHECK_INT(total, 12);
    f.limit = 1001;
    CHECK_INT(store_job_list(s, &f, &rows, &n, &total), STORE_INVALID);
    f.limit = 5;
    f.offset = -1;
    CHECK_INT(store_job_list(s, &f, &rows, &n, &total), STORE_INVALID);

    int counts[STORE_JOB_STATUS_COUNT];
    REQUIRE(store_job_counts(s, counts) == STORE_OK);
    CHECK_INT(counts[STORE_JOB_QUEUED], 9);
    CHECK_INT(counts[STORE_JOB_RUNNING], 1);
    CHECK_INT(counts[STORE_JOB_DONE], 1);
    CHECK_INT(counts[STORE_JOB_FAILED], 1);
    CHECK_INT(counts[STORE_JOB_CANCELLED], 0);

    StoreGrid g;
    REQUIRE(store_grid_get(s, grid, &g) == STORE_OK);
    CHECK_STR(g.config_json, "{\"seeds\": [1, 2, 3]}");
    CHECK_INT(g.n_jobs, 6);
    CHECK_INT(g.n_status[STORE_JOB_QUEUED], 3);
    CHECK_INT(g.n_status[STORE_JOB_RUNNING], 1);
    CHECK_INT(g.n_status[STORE_JOB_DONE], 1);
    CHECK_INT(g.n_status[STORE_JOB_FAILED], 1);
    CHECK(g.created_at > 0);
    store_grid_deinit(&g);
    CHECK_INT(store_grid_get(s, grid + 1, &g), STORE_NOT_FOUND);
    int64_t grid2;
    REQUIRE(store_grid_insert(s, "{}", &grid2) == STORE_OK);
    CHECK_INT(store_grid_insert(s, NULL, NULL), STORE_INVALID);
    StoreGrid *grids;
    REQUIRE(store_grid_list(s, &grids, &n) == STORE_OK);
    REQUIRE(n == 2);
    CHECK_INT(grids[0].id, grid2); /* newest first */
    CHECK_INT(grids[0].n_jobs, 0);
    CHECK_INT(grids[1].id, grid);
    CHECK_INT(grids[1].n_jobs, 6);
    store_grids_free(grids, n);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_job_delete_rules_and_cascade)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreJobNew j = sample_job("mobilenet", "he_uniform", 1);
    int64_t a, b;
    REQUIRE(store_job_insert(s, &j, &a) == STORE_OK);
    REQUIRE(store_job_insert(s, &j, &b) == STORE_OK);
    StoreJob c;
    REQUIRE(store_job_claim(s, &c) == STORE_OK); /* a is running */
    store_job_deinit(&c);
    StoreEpoch e = {1, 1, 0.5, 1, 0.5, 0.01, 1, 1};
    REQUIRE(store_epoch_put(s, a, &e) == STORE_OK);
    StoreLayerStat st;
    memset(&st, 0, sizeof st);
    strcpy(st.layer_name, "conv1");
    strcpy(st.layer_type, "conv2d");
    REQUIRE(store_stats_put(s, a, 1, &st, 1) == STORE_OK);
    StoreResult r = {a, 1, 0.9, 0.8, 0.7, 0.75, 0.3, NULL, NULL, 0};
    REQUIRE(store_result_put(s, &r) == STORE_OK);
    StoreCheckpoint ck = {0};
    ck.job_id = a;
    strcpy(ck.path, "/state/ckpt/1-latest.bin");
    REQUIRE(store_checkpoint_put(s, &ck) == STORE_OK);

    CHECK_INT(store_job_delete(s, a), STORE_CONFLICT);
    CHECK(strstr(store_errmsg(s), "running") != NULL);
    CHECK_INT(store_job_delete(s, 9999), STORE_NOT_FOUND);
    CHECK_INT(store_job_delete(s, b), STORE_OK);
    CHECK_INT(store_job_get(s, b, &c), STORE_NOT_FOUND);

    REQUIRE(store_job_set_status(s, a, 0, STORE_JOB_CANCELLED, NULL) == STORE_OK);
    CHECK_INT(store_job_delete(s, a), STORE_OK);
    StoreEpoch *ep;
    int n;
    REQUIRE(store_epoch_list(s, a, &ep, &n) == STORE_OK);
    CHECK_INT(n, 0);
    StoreLayerStat *sr;
    REQUIRE(store_stats_get(s, a, 1, STORE_MODE_TRAIN, STORE_QTY_WEIGHT, &sr, &n) == STORE_OK);
    CHECK_INT(n, 0);
    StoreResult rr;
    CHECK_INT(store_result_get(s, a, &rr), STORE_NOT_FOUND);
    StoreCheckpoint *cks;
    REQUIRE(store_checkpoint_list(s, a, &cks, &n) == STORE_OK);
    CHECK_INT(n, 0);

    /* Ids are never reused: checkpoint files are named by them. */
    int64_t next;
    REQUIRE(store_job_insert(s, &j, &next) == STORE_OK);
    CHECK(next > b);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_job_requeue_running_at_startup)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    int64_t ids[4];
    for (int i = 0; i < 4; i++) {
        StoreJobNew j = sample_job("mobilenet", "he_uniform", i);
        REQUIRE(store_job_insert(s, &j, &ids[i]) == STORE_OK);
    }
    StoreJob c;
    for (int i = 0; i < 3; i++) {
        REQUIRE(store_job_claim(s, &c) == STORE_OK);
        store_job_deinit(&c);
    }
    REQUIRE(store_job_set_status(s, ids[2], 0, STORE_JOB_DONE, NULL) == STORE_OK);
    StoreJobProgress p = {4, 10, 20, 50, 100, 0.6, 3};
    REQUIRE(store_job_set_progress(s, ids[0], &p) == STORE_OK);
    store_close(s); /* "crash" with ids[0] and ids[1] running */

    s = tmpdb_open(&t);
    REQUIRE(s);
    int count = -1;
    REQUIRE(store_job_requeue_running(s, &count) == STORE_OK);
    CHECK_INT(count, 2);
    REQUIRE(store_job_get(s, ids[0], &c) == STORE_OK);
    CHECK_INT(c.status, STORE_JOB_QUEUED);
    CHECK_INT(c.progress.epoch, 4); /* kept for the resume */
    CHECK(c.started_at > 0);
    store_job_deinit(&c);
    REQUIRE(store_job_get(s, ids[2], &c) == STORE_OK);
    CHECK_INT(c.status, STORE_JOB_DONE);
    store_job_deinit(&c);
    REQUIRE(store_job_requeue_running(s, &count) == STORE_OK);
    CHECK_INT(count, 0);
    /* The requeued jobs run again in their original order, as second attempts. */
    REQUIRE(store_job_claim(s, &c) == STORE_OK);
    CHECK_INT(c.id, ids[0]);
    CHECK_INT(c.attempts, 2);
    store_job_deinit(&c);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_submit_is_atomic_and_idempotent)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreJobNew jobs[4] = {
        sample_job("mobilenet", "glorot_uniform", 1), sample_job("mobilenet", "he_uniform", 1),
        sample_job("resnet50", "glorot_uniform", 1), sample_job("resnet50", "he_uniform", 1),
    };
    StoreSubmit sub = {.idem_key = "key-1", .fingerprint = "sha256:aaaa",
                       .grid_config_json = "{\"models\": 2}", .jobs = jobs, .n_jobs = 4};
    StoreSubmitResult r1, r2;
    REQUIRE(store_submit(s, &sub, &r1) == STORE_OK);
    CHECK_INT(r1.replayed, 0);
    CHECK(r1.grid_id > 0);
    REQUIRE(r1.n_jobs == 4);
    for (int i = 0; i < 4; i++) {
        StoreJob j;
        REQUIRE(store_job_get(s, r1.job_ids[i], &j) == STORE_OK);
        CHECK_INT(j.grid_id, r1.grid_id);
        CHECK_STR(j.model, jobs[i].model);
        CHECK_STR(j.initializer, jobs[i].initializer);
        store_job_deinit(&j);
    }

    /* The retried request gets the same grid and jobs, and nothing new is created. */
    REQUIRE(store_submit(s, &sub, &r2) == STORE_OK);
    CHECK_INT(r2.replayed, 1);
    CHECK_INT(r2.grid_id, r1.grid_id);
    REQUIRE(r2.n_jobs == 4);
    for (int i = 0; i < 4; i++)
        CHECK_INT(r2.job_ids[i], r1.job_ids[i]);
    store_submit_result_deinit(&r2);
    int counts[STORE_JOB_STATUS_COUNT];
    REQUIRE(store_job_counts(s, counts) == STORE_OK);
    CHECK_INT(counts[STORE_JOB_QUEUED], 4);

    /* The same key for another body is refused. */
    StoreSubmit other = sub;
    other.fingerprint = "sha256:bbbb";
    CHECK_INT(store_submit(s, &other, &r2), STORE_CONFLICT);
    CHECK(strstr(store_errmsg(s), "key-1") != NULL);
    CHECK(r2.job_ids == NULL);

    StoreIdempotency k;
    REQUIRE(store_idempotency_get(s, "key-1", &k) == STORE_OK);
    CHECK_STR(k.fingerprint, "sha256:aaaa");
    CHECK_INT(k.grid_id, r1.grid_id);
    REQUIRE(k.n_jobs == 4);
    CHECK_INT(k.job_ids[3], r1.job_ids[3]);
    store_idempotency_deinit(&k);
    store_submit_result_deinit(&r1);

    /* A failure in the middle (job 3 names a grid that does not exist) stores nothing:
     * neither the first jobs nor the key. */
    StoreJobNew broken[3] = {jobs[0], jobs[1], jobs[2]};
    broken[2].grid_id = 424242;
    StoreSubmit bad = {.idem_key = "key-2", .jobs = broken, .n_jobs = 3};
    CHECK_INT(store_submit(s, &bad, &r2), STORE_NOT_FOUND);
    REQUIRE(store_job_counts(s, counts) == STORE_OK);
    CHECK_INT(counts[STORE_JOB_QUEUED], 4);
    CHECK_INT(store_idempotency_get(s, "key-2", &k), STORE_NOT_FOUND);

    /* Without a key and without a grid: plain jobs, submitted twice, stored twice. */
    StoreSubmit plain = {.jobs = jobs, .n_jobs = 1};
    REQUIRE(store_submit(s, &plain, &r2) == STORE_OK);
    CHECK_INT(r2.grid_id, 0);
    store_submit_result_deinit(&r2);
    REQUIRE(store_submit(s, &plain, &r2) == STORE_OK);
    CHECK_INT(r2.replayed, 0);
    store_submit_result_deinit(&r2);
    REQUIRE(store_job_counts(s, counts) == STORE_OK);
    CHECK_INT(counts[STORE_JOB_QUEUED], 6);
    StoreSubmit empty = {.jobs = jobs, .n_jobs = 0};
    CHECK_INT(store_submit(s, &empty, &r2), STORE_INVALID);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_idempotency_put_get_purge)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    const int64_t ids[] = {5, 6, 12345678901234LL};
    REQUIRE(store_idempotency_put(s, "abc", "fp", 0, ids, 3) == STORE_OK);
    CHECK_INT(store_idempotency_put(s, "abc", "fp", 0, ids, 3), STORE_CONFLICT);
    CHECK_INT(store_idempotency_put(s, "", "fp", 0, ids, 3), STORE_INVALID);
    REQUIRE(store_idempotency_put(s, "none", NULL, 0, NULL, 0) == STORE_OK);
    StoreIdempotency k;
    REQUIRE(store_idempotency_get(s, "abc", &k) == STORE_OK);
    CHECK_STR(k.key, "abc");
    CHECK_INT(k.grid_id, 0);
    REQUIRE(k.n_jobs == 3);
    for (int i = 0; i < 3; i++)
        CHECK_INT(k.job_ids[i], ids[i]);
    double created = k.created_at;
    store_idempotency_deinit(&k);
    REQUIRE(store_idempotency_get(s, "none", &k) == STORE_OK);
    CHECK_INT(k.n_jobs, 0);
    CHECK_STR(k.fingerprint, "");
    store_idempotency_deinit(&k);
    CHECK_INT(store_idempotency_get(s, "zzz", &k), STORE_NOT_FOUND);

    int purged = -1;
    REQUIRE(store_idempotency_purge(s, created - 10, &purged) == STORE_OK);
    CHECK_INT(purged, 0);
    REQUIRE(store_idempotency_purge(s, created + 10, &purged) == STORE_OK);
    CHECK_INT(purged, 2);
    CHECK_INT(store_idempotency_get(s, "abc", &k), STORE_NOT_FOUND);
    store_close(s);
    tmpdb_deinit(&t);
}
