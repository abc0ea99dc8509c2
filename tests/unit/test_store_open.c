/* test_store_open.c — opening the store: migrations from scratch and from version 1 (job
 * uids included), refusal of newer databases, WAL mode and page size on disk,
 * enumerations, backup. */
#include "test.h"
#include "test_store_util.h"

#include <fcntl.h>
#include <string.h>

/* Reads `len` bytes at `off` of a file (the SQLite header is documented: page size at
 * 16 big-endian, write/read versions at 18/19 (2 = WAL), user_version at 60). */
static int read_bytes(const char *path, long off, unsigned char *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t got = pread(fd, buf, len, off);
    close(fd);
    return got == (ssize_t)len ? 0 : -1;
}

static int write_user_version(const char *path, int version)
{
    unsigned char b[4] = {(unsigned char)(version >> 24), (unsigned char)(version >> 16),
                          (unsigned char)(version >> 8), (unsigned char)version};
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t put = pwrite(fd, b, 4, 60);
    close(fd);
    return put == 4 ? 0 : -1;
}

static int header_user_version(const char *path)
{
    unsigned char b[4];
    if (read_bytes(path, 60, b, 4))
        return -1;
    return b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
}

TEST(store_migrates_from_scratch)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    CHECK(store_schema_latest() >= 2);
    CHECK_INT(store_schema_version(s), store_schema_latest());
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", t.db);
    CHECK(file_exists(wal));  /* WAL mode: writes went to the -wal file */
    store_close(s);
    CHECK(!file_exists(wal)); /* the last connection checkpointed and removed it */

    unsigned char h[4];
    REQUIRE(read_bytes(t.db, 16, h, 4) == 0);
    CHECK_INT(h[0] << 8 | h[1], 16384); /* page size of a new database */
    CHECK_INT(h[2], 2);                 /* file format versions 2 = WAL, persistent */
    CHECK_INT(h[3], 2);
    CHECK_INT(header_user_version(t.db), store_schema_latest());

    /* Opening again applies nothing and keeps the version. */
    s = tmpdb_open(&t);
    REQUIRE(s);
    CHECK_INT(store_schema_version(s), store_schema_latest());
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_migrates_v1_keeping_data)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    char err[256];
    Store *s = store_open_version(t.db, 1, err, sizeof err);
    REQUIRE(s);
    CHECK_INT(store_schema_version(s), 1);

    /* Rows written by the version-1 schema (these calls touch only version-1 columns). */
    StoreDatasetNew d = {"weeds", "/data/weeds", 0.6, 0.2, 0.2, 7};
    int64_t dataset_id = 0, job_id = 0;
    CHECK_INT(store_dataset_insert(s, &d, &dataset_id), STORE_OK);
    StoreJobNew j = sample_job("mobilenet", "he_uniform", 42);
    j.priority = 3;
    CHECK_INT(store_job_insert(s, &j, &job_id), STORE_OK);
    StoreEpoch e = {1, 2.5, 0.3, 2.4, 0.35, 0.01, 12.0, 100.0};
    CHECK_INT(store_epoch_put(s, job_id, &e), STORE_OK);
    store_close(s);
    CHECK_INT(header_user_version(t.db), 1);

    s = tmpdb_open(&t);
    REQUIRE(s);
    CHECK_INT(store_schema_version(s), store_schema_latest());
    StoreDataset got_d;
    REQUIRE(store_dataset_get(s, "weeds", &got_d) == STORE_OK);
    CHECK_INT(got_d.id, dataset_id);
    CHECK_STR(got_d.path, "/data/weeds");
    CHECK_INT(got_d.seed, 7);
    store_dataset_deinit(&got_d);

    StoreJob got;
    REQUIRE(store_job_get(s, job_id, &got) == STORE_OK);
    CHECK_STR(got.model, "mobilenet");
    CHECK_STR(got.initializer, "he_uniform");
    CHECK_INT(got.seed, 42);
    CHECK_INT(got.priority, 3);
    CHECK_STR(got.config_json, j.config_json);
    CHECK_INT(got.attempts, 0); /* the column 002 added, at its default */
    /* 004 gave the job a uid and marks it as created before identities. */
    CHECK_INT((long long)strlen(got.uid), STORE_UID_LEN);
    CHECK(got.pre_identity);
    char old_uid[STORE_UID_LEN + 1];
    snprintf(old_uid, sizeof old_uid, "%s", got.uid);
    store_job_deinit(&got);
    int64_t new_id = 0;
    REQUIRE(store_job_insert(s, &j, &new_id) == STORE_OK);
    REQUIRE(store_job_get(s, new_id, &got) == STORE_OK);
    CHECK(!got.pre_identity);
    CHECK(strcmp(got.uid, old_uid) != 0);
    store_job_deinit(&got);

    StoreEpoch *rows;
    int n;
    REQUIRE(store_epoch_list(s, job_id, &rows, &n) == STORE_OK);
    REQUIRE(n == 1);
    CHECK_NEAR(rows[0].val_acc, 0.35, 0);
    free(rows);

    /* The new column works: a claim counts as an attempt (once the dataset is scanned:
     * 003's claim holds jobs on a dataset still scanning). */
    CHECK_INT(store_dataset_set_status(s, dataset_id, STORE_DATASET_READY, NULL), STORE_OK);
    StoreJob claimed;
    REQUIRE(store_job_claim(s, &claimed) == STORE_OK);
    CHECK_INT(claimed.id, job_id);
    CHECK_INT(claimed.attempts, 1);
    CHECK_STR(claimed.uid, old_uid);
    store_job_deinit(&claimed);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_refuses_newer_database)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    store_close(s);
    int newer = store_schema_latest() + 1;
    REQUIRE(write_user_version(t.db, newer) == 0);

    char err[512] = "";
    s = store_open(t.db, err, sizeof err);
    CHECK(s == NULL);
    store_close(s);
    CHECK(strstr(err, "newer") != NULL);
    CHECK(strstr(err, t.db) != NULL);
    CHECK_INT(header_user_version(t.db), newer); /* left untouched */

    /* A tool asking for version 1 of a database at the latest version is refused too. */
    REQUIRE(write_user_version(t.db, store_schema_latest()) == 0);
    s = store_open_version(t.db, 1, err, sizeof err);
    CHECK(s == NULL);
    store_close(s);
    CHECK(strstr(err, "newer") != NULL);
    s = store_open_version(t.db, 0, err, sizeof err);
    CHECK(s == NULL);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_open_reports_bad_files)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    char err[512] = "";
    char path[200];
    snprintf(path, sizeof path, "%s/missing/initlab.db", t.dir);
    CHECK(store_open(path, err, sizeof err) == NULL);
    CHECK(strstr(err, path) != NULL);

    FILE *f = fopen(t.db, "w");
    REQUIRE(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database\n", f);
    fclose(f);
    err[0] = '\0';
    CHECK(store_open(t.db, err, sizeof err) == NULL);
    CHECK(strstr(err, "not a database") != NULL);
    tmpdb_deinit(&t);
}

TEST(store_enum_names_round_trip)
{
    for (int i = 0; i < STORE_JOB_STATUS_COUNT; i++) {
        StoreJobStatus v;
        CHECK_INT(store_job_status_parse(store_job_status_name((StoreJobStatus)i), &v), 0);
        CHECK_INT(v, i);
    }
    StoreJobStatus js = STORE_JOB_DONE;
    CHECK_INT(store_job_status_parse("Running", &js), -1);
    CHECK_INT(js, STORE_JOB_DONE);
    CHECK_INT(store_job_status_parse(NULL, &js), -1);
    CHECK_STR(store_job_status_name((StoreJobStatus)99), "?");
    CHECK_STR(store_job_status_name(STORE_JOB_CANCELLED), "cancelled");
    CHECK_STR(store_split_name(STORE_SPLIT_VAL), "val");
    CHECK_STR(store_mode_name(STORE_MODE_INFERENCE), "inference");
    CHECK_STR(store_quantity_name(STORE_QTY_GRADIENT), "gradient");
    CHECK_STR(store_checkpoint_kind_name(STORE_CKPT_BEST), "best");
    CHECK_STR(store_dataset_status_name(STORE_DATASET_READY), "ready");
    StoreMode m;
    StoreQuantity q;
    StoreSplit sp;
    StoreCheckpointKind k;
    StoreDatasetStatus ds;
    CHECK(store_mode_parse("train", &m) == 0 && m == STORE_MODE_TRAIN);
    CHECK(store_quantity_parse("activation", &q) == 0 && q == STORE_QTY_ACTIVATION);
    CHECK(store_split_parse("test", &sp) == 0 && sp == STORE_SPLIT_TEST);
    CHECK(store_checkpoint_kind_parse("latest", &k) == 0 && k == STORE_CKPT_LATEST);
    CHECK(store_dataset_status_parse("failed", &ds) == 0 && ds == STORE_DATASET_FAILED);
    CHECK_INT(store_quantity_parse("weights", &q), -1);
}
