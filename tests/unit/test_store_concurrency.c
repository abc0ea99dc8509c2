/* test_store_concurrency.c — several connections on one file from several threads: writers
 * never see SQLITE_BUSY, two workers never claim the same job, and an online backup taken
 * during writes is a consistent, readable database. */
#include "test.h"
#include "test_store_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

enum { WRITES = 80, LAYERS = 20 };

typedef struct {
    const char *db;
    int tag;                 /* model name suffix, to tell the writers' jobs apart */
    int rc;                  /* first failure, STORE_OK if none */
    char msg[512];
    atomic_int *writers_left;
} Worker;

static void worker_fail(Worker *w, Store *s, int rc, const char *what)
{
    if (w->rc == STORE_OK) {
        w->rc = rc;
        snprintf(w->msg, sizeof w->msg, "%s: %s", what, s ? store_errmsg(s) : "open");
    }
}

/* Each iteration is what a worker thread does per epoch: a job row, an epoch, progress,
 * a batch of layer statistics, and a read of the job list. */
static void *writer_main(void *arg)
{
    Worker *w = arg;
    char err[512], model[32];
    Store *s = store_open(w->db, err, sizeof err);
    if (!s) {
        w->rc = STORE_ERROR;
        snprintf(w->msg, sizeof w->msg, "%s", err);
        atomic_fetch_sub(w->writers_left, 1);
        return NULL;
    }
    snprintf(model, sizeof model, "model%d", w->tag);
    StoreLayerStat stats[LAYERS];
    memset(stats, 0, sizeof stats);
    for (int l = 0; l < LAYERS; l++) {
        stats[l].layer_index = l;
        snprintf(stats[l].layer_name, sizeof stats[l].layer_name, "layer%d", l);
        snprintf(stats[l].layer_type, sizeof stats[l].layer_type, "conv2d");
        stats[l].mean = l;
    }
    for (int i = 0; i < WRITES && w->rc == STORE_OK; i++) {
        StoreJobNew j = sample_job(model, "he_uniform", i);
        int64_t id;
        int rc;
        if ((rc = store_job_insert(s, &j, &id))) {
            worker_fail(w, s, rc, "job insert");
            break;
        }
        StoreEpoch e = {1, 1.0, 0.5, 1.0, 0.5, 0.01, 1.0, 10.0};
        if ((rc = store_epoch_put(s, id, &e)))
            worker_fail(w, s, rc, "epoch put");
        StoreJobProgress p = {1, i, WRITES, 10, 1, 0.5, 1};
        if ((rc = store_job_set_progress(s, id, &p)))
            worker_fail(w, s, rc, "progress");
        if ((rc = store_stats_put(s, id, 1, stats, LAYERS)))
            worker_fail(w, s, rc, "stats put");
        StoreJobFilter f = {0};
        f.model = model;
        f.limit = 10;
        StoreJob *rows;
        int n, total;
        if ((rc = store_job_list(s, &f, &rows, &n, &total)))
            worker_fail(w, s, rc, "job list");
        else
            store_jobs_free(rows, n);
    }
    store_close(s);
    atomic_fetch_sub(w->writers_left, 1);
    return NULL;
}

/* Reads what the dashboard reads until the writers are done. */
static void *reader_main(void *arg)
{
    Worker *w = arg;
    char err[256];
    Store *s = NULL;
    /* The writers create the database; wait for it to exist at the latest version. */
    while (!s && atomic_load(w->writers_left) > 0) {
        if (!file_exists(w->db)) {
            usleep(1000);
            continue;
        }
        s = store_open(w->db, err, sizeof err);
        if (!s) {
            w->rc = STORE_ERROR;
            snprintf(w->msg, sizeof w->msg, "reader open: %s", err);
            return NULL;
        }
    }
    while (s && atomic_load(w->writers_left) > 0) {
        int counts[STORE_JOB_STATUS_COUNT], rc;
        if ((rc = store_job_counts(s, counts)))
            worker_fail(w, s, rc, "counts");
        StoreLayerStat *rows;
        int n;
        if ((rc = store_stats_get(s, 1, 1, STORE_MODE_TRAIN, STORE_QTY_WEIGHT, &rows, &n)))
            worker_fail(w, s, rc, "stats get");
        else
            free(rows);
    }
    store_close(s);
    return NULL;
}

TEST(store_two_threads_write_without_busy)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    atomic_int left = 2;
    /* Both writers open (create and migrate) the same new file at the same time. */
    Worker w[3] = {{t.db, 1, STORE_OK, "", &left}, {t.db, 2, STORE_OK, "", &left},
                   {t.db, 0, STORE_OK, "", &left}};
    pthread_t th[3];
    REQUIRE(pthread_create(&th[0], NULL, writer_main, &w[0]) == 0);
    REQUIRE(pthread_create(&th[1], NULL, writer_main, &w[1]) == 0);
    REQUIRE(pthread_create(&th[2], NULL, reader_main, &w[2]) == 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(w[i].rc, STORE_OK);
        if (w[i].rc != STORE_OK)
            printf("    thread %d: %s\n", i, w[i].msg);
    }

    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    CHECK_INT(store_schema_version(s), store_schema_latest());
    for (int k = 1; k <= 2; k++) {
        char model[32];
        snprintf(model, sizeof model, "model%d", k);
        StoreJobFilter f = {0};
        f.model = model;
        f.limit = 1000;
        StoreJob *rows;
        int n, total;
        REQUIRE(store_job_list(s, &f, &rows, &n, &total) == STORE_OK);
        CHECK_INT(total, WRITES);
        for (int i = 0; i < n; i++) {
            StoreEpoch *ep;
            int ne;
            REQUIRE(store_epoch_list(s, rows[i].id, &ep, &ne) == STORE_OK);
            CHECK_INT(ne, 1);
            free(ep);
            StoreLayerStat *st;
            REQUIRE(store_stats_get(s, rows[i].id, 1, STORE_MODE_TRAIN, STORE_QTY_WEIGHT, &st, &ne)
                    == STORE_OK);
            CHECK_INT(ne, LAYERS);
            free(st);
        }
        store_jobs_free(rows, n);
    }
    store_close(s);
    tmpdb_deinit(&t);
}

enum { CLAIM_JOBS = 80 };

typedef struct {
    const char *db;
    int64_t ids[CLAIM_JOBS];
    int n;
    int rc;
    char msg[512];
} Claimer;

static void *claimer_main(void *arg)
{
    Claimer *c = arg;
    char err[512];
    Store *s = store_open(c->db, err, sizeof err);
    if (!s) {
        c->rc = STORE_ERROR;
        snprintf(c->msg, sizeof c->msg, "%s", err);
        return NULL;
    }
    for (;;) {
        StoreJob j;
        int rc = store_job_claim(s, &j);
        if (rc == STORE_NOT_FOUND)
            break;
        if (rc != STORE_OK || c->n == CLAIM_JOBS) {
            c->rc = rc ? rc : STORE_ERROR;
            snprintf(c->msg, sizeof c->msg, "claim: %s", store_errmsg(s));
            break;
        }
        c->ids[c->n++] = j.id;
        store_job_deinit(&j);
        /* Finishing is a second write that competes with the other claimer. */
        rc = store_job_set_status(s, c->ids[c->n - 1], STORE_JOB_BIT(STORE_JOB_RUNNING),
                                  STORE_JOB_DONE, NULL);
        if (rc != STORE_OK) {
            c->rc = rc;
            snprintf(c->msg, sizeof c->msg, "finish: %s", store_errmsg(s));
            break;
        }
    }
    store_close(s);
    return NULL;
}

TEST(store_two_workers_never_claim_the_same_job)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    int64_t first = 0;
    for (int i = 0; i < CLAIM_JOBS; i++) {
        StoreJobNew j = sample_job("mobilenet", "he_uniform", i);
        int64_t id;
        REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);
        if (i == 0)
            first = id;
    }
    Claimer c[2] = {{t.db, {0}, 0, STORE_OK, ""}, {t.db, {0}, 0, STORE_OK, ""}};
    pthread_t th[2];
    REQUIRE(pthread_create(&th[0], NULL, claimer_main, &c[0]) == 0);
    REQUIRE(pthread_create(&th[1], NULL, claimer_main, &c[1]) == 0);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    for (int k = 0; k < 2; k++) {
        CHECK_INT(c[k].rc, STORE_OK);
        if (c[k].rc != STORE_OK)
            printf("    claimer %d: %s\n", k, c[k].msg);
    }
    CHECK_INT(c[0].n + c[1].n, CLAIM_JOBS);
    int seen[CLAIM_JOBS] = {0};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < c[k].n; i++) {
            int64_t slot = c[k].ids[i] - first;
            REQUIRE(slot >= 0 && slot < CLAIM_JOBS);
            seen[slot]++;
            /* Each claimer takes jobs in queue order. */
            if (i > 0)
                CHECK(c[k].ids[i] > c[k].ids[i - 1]);
        }
    for (int i = 0; i < CLAIM_JOBS; i++)
        CHECK_INT(seen[i], 1);
    int counts[STORE_JOB_STATUS_COUNT];
    REQUIRE(store_job_counts(s, counts) == STORE_OK);
    CHECK_INT(counts[STORE_JOB_DONE], CLAIM_JOBS);
    StoreJob j;
    REQUIRE(store_job_get(s, first, &j) == STORE_OK);
    CHECK_INT(j.attempts, 1);
    store_job_deinit(&j);
    store_close(s);
    tmpdb_deinit(&t);
}

enum { BACKUP_EPOCHS = 300 };

typedef struct {
    const char *db;
    int64_t job;
    atomic_int written;
    atomic_int finished;
    int rc;
    char msg[512];
} EpochWriter;

static void *epoch_writer_main(void *arg)
{
    EpochWriter *w = arg;
    char err[512];
    Store *s = store_open(w->db, err, sizeof err);
    if (!s) {
        w->rc = STORE_ERROR;
        snprintf(w->msg, sizeof w->msg, "%s", err);
        atomic_store(&w->finished, 1);
        return NULL;
    }
    for (int e = 1; e <= BACKUP_EPOCHS; e++) {
        StoreEpoch row = {e, 1.0 / e, 0, 0, 0, 0, 0, 0};
        int rc = store_epoch_put(s, w->job, &row);
        if (rc) {
            w->rc = rc;
            snprintf(w->msg, sizeof w->msg, "%s", store_errmsg(s));
            break;
        }
        atomic_store(&w->written, e);
    }
    store_close(s);
    atomic_store(&w->finished, 1);
    return NULL;
}

TEST(store_backup_is_a_consistent_copy)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreJobNew j = sample_job("mobilenet", "he_uniform", 1);
    EpochWriter w = {t.db, 0, 0, 0, STORE_OK, ""};
    REQUIRE(store_job_insert(s, &j, &w.job) == STORE_OK);
    StoreDatasetNew d = {"weeds", "/data/weeds", 0.6, 0.2, 0.2, 3};
    REQUIRE(store_dataset_insert(s, &d, NULL) == STORE_OK);

    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, epoch_writer_main, &w) == 0);
    while (atomic_load(&w.written) < BACKUP_EPOCHS / 3 && !atomic_load(&w.finished))
        usleep(1000);
    char dest[200], dest_wal[210];
    snprintf(dest, sizeof dest, "%s/backup.db", t.dir);
    snprintf(dest_wal, sizeof dest_wal, "%s-wal", dest);
    int rc = store_backup(s, dest);
    pthread_join(th, NULL);
    CHECK_INT(w.rc, STORE_OK);
    REQUIRE(rc == STORE_OK);
    CHECK(!file_exists(dest_wal)); /* self-contained */

    CHECK_INT(store_backup(s, t.db), STORE_INVALID); /* never onto the live database */
    char nowhere[200];
    snprintf(nowhere, sizeof nowhere, "%s/no/such/dir/b.db", t.dir);
    CHECK_INT(store_backup(s, nowhere), STORE_ERROR);
    CHECK(strstr(store_errmsg(s), nowhere) != NULL);
    store_close(s);

    char err[512];
    Store *b = store_open(dest, err, sizeof err);
    REQUIRE(b);
    CHECK_INT(store_schema_version(b), store_schema_latest());
    StoreDataset ds;
    REQUIRE(store_dataset_get(b, "weeds", &ds) == STORE_OK);
    CHECK_INT(ds.seed, 3);
    store_dataset_deinit(&ds);
    StoreEpoch *rows;
    int n;
    REQUIRE(store_epoch_list(b, w.job, &rows, &n) == STORE_OK);
    /* A snapshot: epochs 1..n with no gap, taken while the writer was running. */
    CHECK(n >= BACKUP_EPOCHS / 3 && n <= BACKUP_EPOCHS);
    for (int i = 0; i < n; i++)
        CHECK_INT(rows[i].epoch, i + 1);
    free(rows);
    store_close(b);
    tmpdb_deinit(&t);
}
