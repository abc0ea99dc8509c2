/* test_store_leases.c — remote attempts in the store: leases and their end, the claim that
 * leaves jobs submitted to Slurm to their Slurm job, a restart that keeps leased jobs
 * running, and writes wrapped in the attempt's transaction (nested savepoints). */
#include "test.h"
#include "test_store_util.h"

#include <string.h>
#include <time.h>

static int64_t insert(Store *s, const char *model)
{
    StoreJobNew j = sample_job(model, "he_uniform", 1);
    int64_t id = 0;
    store_job_insert(s, &j, &id);
    return id;
}

TEST(store_lease_claim_renew_expire_and_restart)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    int64_t a = insert(s, "plain"), b = insert(s, "mlp");
    /* b waits for its Slurm job: neither a pull worker nor a local worker takes it. */
    REQUIRE(store_job_set_slurm(s, b, "4242") == STORE_OK);
    CHECK_INT(store_job_set_slurm(s, b, "4243"), STORE_CONFLICT);
    StoreLeaseRequest any = {.host = "h", .worker = "w:1", .ttl = 60};
    StoreJob got;
    REQUIRE(store_lease_claim(s, &any, &got) == STORE_OK);
    CHECK_INT(got.id, a);
    CHECK(got.lease_expires_at > 0);
    CHECK_STR(got.worker, "w:1");
    CHECK_STR(got.slurm_job_id, "");
    char lease_a[STORE_UID_LEN + 1];
    snprintf(lease_a, sizeof lease_a, "%s", got.attempt_uid);
    store_job_deinit(&got);
    CHECK_INT(store_lease_claim(s, &any, &got), STORE_NOT_FOUND);
    CHECK_INT(store_job_claim(s, &got), STORE_NOT_FOUND);
    /* Its own Slurm job leases it; another Slurm job may not while it runs. */
    StoreLeaseRequest mine = {.job_id = b, .host = "n1", .worker = "slurm 4242",
                              .slurm_job_id = "4242", .ttl = 60};
    REQUIRE(store_lease_claim(s, &mine, &got) == STORE_OK);
    CHECK_STR(got.slurm_job_id, "4242");
    store_job_deinit(&got);
    StoreLeaseRequest other = mine;
    other.slurm_job_id = "9";
    CHECK_INT(store_lease_claim(s, &other, &got), STORE_CONFLICT);
    CHECK(strstr(store_errmsg(s), "running") != NULL);

    /* A restart queues only what the daemon's own workers ran. */
    int n = -1;
    REQUIRE(store_job_requeue_running(s, &n) == STORE_OK);
    CHECK_INT(n, 0);
    bool stop = true;
    StoreJobProgress p = {.epoch = 2, .step = 5, .images_per_sec = NAN, .eta_seconds = NAN,
                          .best_val_acc = NAN};
    CHECK_INT(store_lease_renew(s, a, lease_a, 60, &p, &stop), STORE_OK);
    CHECK(!stop);
    REQUIRE(store_job_request_stop(s, a) == STORE_OK);
    CHECK_INT(store_lease_renew(s, a, lease_a, 60, NULL, &stop), STORE_OK);
    CHECK(stop);
    REQUIRE(store_job_get(s, a, &got) == STORE_OK);
    CHECK_INT(got.progress.step, 5);
    CHECK(got.stop_requested);
    store_job_deinit(&got);

    /* A lease that ends queues the job; its attempt is refused from then on. */
    int64_t *ids = NULL;
    REQUIRE(store_lease_expire(s, (double)time(NULL) + 3600, &ids, &n) == STORE_OK);
    CHECK_INT(n, 2);
    free(ids);
    CHECK_INT(store_lease_renew(s, a, lease_a, 60, NULL, &stop), STORE_CONFLICT);
    CHECK_INT(store_attempt_begin(s, a, lease_a), STORE_CONFLICT);
    REQUIRE(store_job_get(s, a, &got) == STORE_OK);
    CHECK_INT(got.status, STORE_JOB_QUEUED);
    CHECK(!got.stop_requested);
    store_job_deinit(&got);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_attempt_transaction_wraps_writes_and_rolls_them_back)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    int64_t a = insert(s, "plain");
    StoreLeaseRequest r = {.job_id = a, .host = "h", .worker = "w", .ttl = 60};
    StoreJob got;
    REQUIRE(store_lease_claim(s, &r, &got) == STORE_OK);
    StoreEpoch e = {.epoch = 1, .train_loss = 1, .train_acc = 0.5, .val_loss = 1,
                    .val_acc = 0.5, .lr = 0.1, .seconds = 1, .images_per_sec = 1};
    /* Writes inside the attempt's transaction commit together ... */
    REQUIRE(store_attempt_begin(s, a, got.attempt_uid) == STORE_OK);
    CHECK_INT(store_epoch_put(s, a, &e), STORE_OK);
    StoreLayerStat st;
    memset(&st, 0, sizeof st);
    snprintf(st.layer_name, sizeof st.layer_name, "conv");
    snprintf(st.layer_type, sizeof st.layer_type, "conv2d");
    st.n = 1;
    CHECK_INT(store_stats_put(s, a, 1, &st, 1), STORE_OK); /* its own BEGIN nests */
    CHECK_INT(store_attempt_end(s, STORE_OK), STORE_OK);
    StoreEpoch *rows = NULL;
    int n = 0;
    REQUIRE(store_epoch_list(s, a, &rows, &n) == STORE_OK);
    CHECK_INT(n, 1);
    free(rows);
    /* ... and roll back together. */
    REQUIRE(store_attempt_begin(s, a, got.attempt_uid) == STORE_OK);
    e.epoch = 2;
    CHECK_INT(store_epoch_put(s, a, &e), STORE_OK);
    CHECK_INT(store_stats_put(s, a, 2, &st, 1), STORE_OK);
    CHECK_INT(store_attempt_end(s, STORE_ERROR), STORE_ERROR);
    REQUIRE(store_epoch_list(s, a, &rows, &n) == STORE_OK);
    CHECK_INT(n, 1);
    free(rows);
    int *epochs = NULL;
    REQUIRE(store_stats_epochs(s, a, &epochs, &n) == STORE_OK);
    CHECK_INT(n, 1);
    free(epochs);
    /* A write failing inside a savepoint undoes only its own part. */
    REQUIRE(store_attempt_begin(s, a, got.attempt_uid) == STORE_OK);
    e.epoch = 3;
    CHECK_INT(store_epoch_put(s, a, &e), STORE_OK);
    st.mode = 7; /* invalid: store_stats_put fails inside its savepoint */
    CHECK(store_stats_put(s, a, 3, &st, 1) != STORE_OK);
    CHECK_INT(store_attempt_end(s, STORE_OK), STORE_OK);
    REQUIRE(store_epoch_list(s, a, &rows, &n) == STORE_OK);
    CHECK_INT(n, 2);
    free(rows);
    store_job_deinit(&got);
    store_close(s);
    tmpdb_deinit(&t);
}
