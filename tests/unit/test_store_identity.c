/* test_store_identity.c — job and attempt uids, writes fenced by the current attempt, job
 * ids kept above a given id, and the fencing of a database file that is deleted or
 * replaced while open (real files: unlink and rename under open connections). */
#include "test.h"
#include "test_store_util.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

static bool is_uid(const char *s)
{
    if (strlen(s) != STORE_UID_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
            return false;
    return true;
}

static void remove_db(const char *db)
{
    char path[160];
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", db, suffixes[i]);
        unlink(path);
    }
}

TEST(store_jobs_get_random_uids_and_each_start_a_new_attempt_uid)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreJobNew j = sample_job("plain", "he_uniform", 1);
    int64_t a = 0, b = 0, c = 0;
    REQUIRE(store_job_insert(s, &j, &a) == STORE_OK);
    REQUIRE(store_job_insert(s, &j, &b) == STORE_OK);
    StoreJob ja, jb;
    REQUIRE(store_job_get(s, a, &ja) == STORE_OK);
    REQUIRE(store_job_get(s, b, &jb) == STORE_OK);
    CHECK(is_uid(ja.uid));
    CHECK(is_uid(jb.uid));
    CHECK(strcmp(ja.uid, jb.uid) != 0);
    CHECK_STR(ja.attempt_uid, "");
    CHECK(!ja.pre_identity);

    StoreJob claimed;
    REQUIRE(store_job_claim(s, &claimed) == STORE_OK);
    CHECK_INT(claimed.id, a);
    CHECK_STR(claimed.uid, ja.uid);
    CHECK(is_uid(claimed.attempt_uid));
    CHECK_INT(claimed.attempts, 1);
    /* Queued again and started again: the same job, another attempt. */
    REQUIRE(store_job_set_status(s, a, 0, STORE_JOB_QUEUED, NULL) == STORE_OK);
    StoreJob again;
    REQUIRE(store_job_claim(s, &again) == STORE_OK);
    CHECK_INT(again.id, a);
    CHECK_STR(again.uid, ja.uid);
    CHECK(is_uid(again.attempt_uid));
    CHECK(strcmp(again.attempt_uid, claimed.attempt_uid) != 0);
    CHECK_INT(again.attempts, 2);
    REQUIRE(store_job_set_status(s, a, 0, STORE_JOB_RUNNING, NULL) == STORE_OK);
    StoreJob third;
    REQUIRE(store_job_get(s, a, &third) == STORE_OK);
    CHECK(strcmp(third.attempt_uid, again.attempt_uid) != 0);
    CHECK_INT(third.attempts, 3);

    /* A foreground job starts with its first attempt. */
    j.start_running = 1;
    REQUIRE(store_job_insert(s, &j, &c) == STORE_OK);
    StoreJob jc;
    REQUIRE(store_job_get(s, c, &jc) == STORE_OK);
    CHECK(is_uid(jc.uid) && is_uid(jc.attempt_uid));
    CHECK_INT(jc.attempts, 1);
    store_job_deinit(&ja);
    store_job_deinit(&jb);
    store_job_deinit(&claimed);
    store_job_deinit(&again);
    store_job_deinit(&third);
    store_job_deinit(&jc);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_only_the_current_attempt_records_checkpoints_and_ends_the_job)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreJobNew j = sample_job("plain", "he_uniform", 1);
    int64_t id = 0;
    REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);
    StoreJob first, second;
    REQUIRE(store_job_claim(s, &first) == STORE_OK);
    /* Requeued at a restart and claimed by another worker while the first still runs. */
    REQUIRE(store_job_set_status(s, id, 0, STORE_JOB_QUEUED, NULL) == STORE_OK);
    REQUIRE(store_job_claim(s, &second) == STORE_OK);

    StoreCheckpoint ck = {.job_id = id, .kind = STORE_CKPT_LATEST, .epoch = 3, .val_acc = 0.5};
    snprintf(ck.path, sizeof ck.path, "/state/jobs/%lld/latest.ckpt", (long long)id);
    snprintf(ck.attempt_uid, sizeof ck.attempt_uid, "%s", first.attempt_uid);
    CHECK_INT(store_checkpoint_put(s, &ck), STORE_CONFLICT);
    CHECK(strstr(store_errmsg(s), "another attempt") != NULL);
    CHECK(strstr(store_errmsg(s), second.attempt_uid) != NULL);
    StoreCheckpoint got;
    CHECK_INT(store_checkpoint_get(s, id, STORE_CKPT_LATEST, &got), STORE_NOT_FOUND);
    snprintf(ck.attempt_uid, sizeof ck.attempt_uid, "%s", second.attempt_uid);
    CHECK_INT(store_checkpoint_put(s, &ck), STORE_OK);
    REQUIRE(store_checkpoint_get(s, id, STORE_CKPT_LATEST, &got) == STORE_OK);
    CHECK_INT(got.epoch, 3);
    ck.attempt_uid[0] = '\0'; /* unchecked */
    ck.epoch = 4;
    CHECK_INT(store_checkpoint_put(s, &ck), STORE_OK);

    CHECK_INT(store_job_end_attempt(s, id, first.attempt_uid, STORE_JOB_FAILED, "stale"),
              STORE_CONFLICT);
    CHECK(strstr(store_errmsg(s), "another attempt") != NULL);
    StoreJob now;
    REQUIRE(store_job_get(s, id, &now) == STORE_OK);
    CHECK_INT(now.status, STORE_JOB_RUNNING);
    store_job_deinit(&now);
    CHECK_INT(store_job_end_attempt(s, id, second.attempt_uid, STORE_JOB_DONE, NULL), STORE_OK);
    REQUIRE(store_job_get(s, id, &now) == STORE_OK);
    CHECK_INT(now.status, STORE_JOB_DONE);
    store_job_deinit(&now);
    /* Ended: no attempt ends it again. */
    CHECK_INT(store_job_end_attempt(s, id, second.attempt_uid, STORE_JOB_FAILED, NULL),
              STORE_CONFLICT);
    CHECK_INT(store_job_end_attempt(s, id + 1, second.attempt_uid, STORE_JOB_DONE, NULL),
              STORE_NOT_FOUND);

    CHECK_INT(store_checkpoint_forget(s, id, STORE_CKPT_LATEST), STORE_OK);
    CHECK_INT(store_checkpoint_get(s, id, STORE_CKPT_LATEST, &got), STORE_NOT_FOUND);
    CHECK_INT(store_checkpoint_forget(s, id, -1), STORE_OK);
    CHECK_INT(store_checkpoint_forget(s, id, 7), STORE_INVALID);
    store_job_deinit(&first);
    store_job_deinit(&second);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_job_ids_stay_above_a_reserved_id)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreJobNew j = sample_job("plain", "he_uniform", 1);
    int64_t id = 0;
    CHECK_INT(store_job_reserve_ids(s, 5), STORE_OK);   /* before any job */
    REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);
    CHECK_INT(id, 6);
    CHECK_INT(store_job_reserve_ids(s, 3), STORE_OK);   /* lower: nothing changes */
    REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);
    CHECK_INT(id, 7);
    CHECK_INT(store_job_reserve_ids(s, 20), STORE_OK);
    REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);
    CHECK_INT(id, 21);
    /* Deleting the newest job does not give its id back. */
    REQUIRE(store_job_delete(s, id) == STORE_OK);
    REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);
    CHECK_INT(id, 22);
    CHECK_INT(store_job_reserve_ids(s, -1), STORE_INVALID);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_refuses_writes_to_a_deleted_database_file)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t), *reader = tmpdb_open(&t);
    REQUIRE(s && reader);
    StoreJobNew j = sample_job("plain", "he_uniform", 1);
    int64_t id = 0;
    REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);
    CHECK_INT(store_verify_file(s), STORE_OK);

    remove_db(t.db);
    CHECK_INT(store_verify_file(s), STORE_UNAVAILABLE);
    CHECK(strstr(store_errmsg(s), "was deleted") != NULL);
    CHECK(strstr(store_errmsg(s), t.db) != NULL);
    CHECK_INT(store_job_insert(s, &j, &id), STORE_UNAVAILABLE);
    CHECK_INT(store_errcode(s), STORE_UNAVAILABLE);
    CHECK(strstr(store_errmsg(s), "writes are refused") != NULL);
    /* Every kind of write: one statement, a transaction, the claim of a worker. */
    StoreJobProgress p = {.epoch = 1, .images_per_sec = NAN, .eta_seconds = NAN,
                          .best_val_acc = NAN};
    CHECK_INT(store_job_set_progress(reader, 1, &p), STORE_UNAVAILABLE);
    CHECK_INT(store_job_set_status(reader, 1, 0, STORE_JOB_CANCELLED, NULL), STORE_UNAVAILABLE);
    StoreJob claimed;
    CHECK_INT(store_job_claim(reader, &claimed), STORE_UNAVAILABLE);
    /* Reads of the open file still work; a new connection is refused and creates nothing. */
    StoreJob got;
    REQUIRE(store_job_get(s, 1, &got) == STORE_OK);
    CHECK_INT(got.status, STORE_JOB_QUEUED);
    store_job_deinit(&got);
    char err[1024];
    Store *late = store_open(t.db, err, sizeof err);
    CHECK(late == NULL);
    CHECK(strstr(err, "was deleted") != NULL);
    store_close(late);
    CHECK(!file_exists(t.db));

    /* Once no connection holds the path, it is opened afresh. */
    store_close(s);
    store_close(reader);
    s = tmpdb_open(&t);
    REQUIRE(s);
    REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);
    CHECK_INT(id, 1);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_refuses_writes_to_a_replaced_database_file_and_resumes_when_it_is_back)
{
    TmpDb t, other;
    REQUIRE(tmpdb_init(&t) == 0 && tmpdb_init(&other) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    Store *o = tmpdb_open(&other);
    REQUIRE(o);
    store_close(o);
    StoreJobNew j = sample_job("plain", "he_uniform", 1);
    int64_t id = 0;
    REQUIRE(store_job_insert(s, &j, &id) == STORE_OK);

    char aside[160];
    snprintf(aside, sizeof aside, "%s/aside.db", t.dir);
    REQUIRE(rename(t.db, aside) == 0);
    REQUIRE(rename(other.db, t.db) == 0);   /* a restore by hand under a running daemon */
    CHECK_INT(store_verify_file(s), STORE_UNAVAILABLE);
    CHECK(strstr(store_errmsg(s), "was replaced by another file") != NULL);
    CHECK_INT(store_job_insert(s, &j, &id), STORE_UNAVAILABLE);
    char err[1024];
    Store *late = store_open(t.db, err, sizeof err);
    CHECK(late == NULL);
    CHECK(strstr(err, "replaced") != NULL);
    store_close(late);

    /* The file it opened comes back: the writes go on in it. */
    REQUIRE(rename(t.db, other.db) == 0);
    REQUIRE(rename(aside, t.db) == 0);
    CHECK_INT(store_verify_file(s), STORE_OK);
    CHECK_INT(store_job_insert(s, &j, &id), STORE_OK);
    CHECK_INT(id, 2);
    store_close(s);
    tmpdb_deinit(&t);
    tmpdb_deinit(&other);
}

TEST(store_open_existing_refuses_a_missing_database)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    char err[1024];
    Store *s = store_open_existing(t.db, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "no database at") != NULL);
    CHECK(!file_exists(t.db));
    store_close(s);
    s = tmpdb_open(&t);
    REQUIRE(s);
    store_close(s);
    s = store_open_existing(t.db, err, sizeof err);
    CHECK(s != NULL);
    char *report = (char *)"unset";
    CHECK_INT(store_check_integrity(s, &report), STORE_OK);
    CHECK(report == NULL);
    store_close(s);
    tmpdb_deinit(&t);
}
