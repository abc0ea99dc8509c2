/* test_store_datasets.c — datasets: registration, scan results with files and skipped
 * files, per-class counts, listing and deletion rules. */
#include "test.h"
#include "test_store_util.h"

#include <string.h>

TEST(store_dataset_insert_get_and_validation)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreDatasetNew d = {"weeds", "/data/weeds", 0.6, 0.2, 0.2, 1234};
    int64_t id = 0;
    REQUIRE(store_dataset_insert(s, &d, &id) == STORE_OK);
    CHECK(id > 0);
    CHECK_INT(store_dataset_insert(s, &d, NULL), STORE_CONFLICT);
    CHECK(strstr(store_errmsg(s), "already exists") != NULL);

    StoreDatasetNew bad = d;
    bad.name = "other";
    bad.val_frac = 0.3; /* sums to 1.1 */
    CHECK_INT(store_dataset_insert(s, &bad, NULL), STORE_INVALID);
    bad.val_frac = -0.1;
    bad.train_frac = 0.9;
    CHECK_INT(store_dataset_insert(s, &bad, NULL), STORE_INVALID);
    bad = d;
    bad.name = "";
    CHECK_INT(store_dataset_insert(s, &bad, NULL), STORE_INVALID);
    char longname[STORE_NAME_MAX + 1];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    bad.name = longname;
    CHECK_INT(store_dataset_insert(s, &bad, NULL), STORE_INVALID);
    longname[STORE_NAME_MAX - 1] = '\0'; /* exactly the largest name that fits */
    CHECK_INT(store_dataset_insert(s, &bad, NULL), STORE_OK);

    StoreDataset got;
    REQUIRE(store_dataset_get(s, "weeds", &got) == STORE_OK);
    CHECK_INT(got.id, id);
    CHECK_STR(got.name, "weeds");
    CHECK_STR(got.path, "/data/weeds");
    CHECK_NEAR(got.train_frac, 0.6, 0);
    CHECK_NEAR(got.val_frac, 0.2, 0);
    CHECK_NEAR(got.test_frac, 0.2, 0);
    CHECK_INT(got.seed, 1234);
    CHECK_INT(got.status, STORE_DATASET_SCANNING);
    CHECK(got.error == NULL);
    CHECK_STR(got.class_names_json, "[]");
    CHECK(got.created_at > 1.7e9);
    store_dataset_deinit(&got);
    REQUIRE(store_dataset_get(s, longname, &got) == STORE_OK);
    CHECK_STR(got.name, longname);
    store_dataset_deinit(&got);

    CHECK_INT(store_dataset_get(s, "nope", &got), STORE_NOT_FOUND);
    CHECK(strstr(store_errmsg(s), "nope") != NULL);
    CHECK_INT(store_dataset_get_by_id(s, id + 100, &got), STORE_NOT_FOUND);

    CHECK_INT(store_dataset_set_status(s, id, STORE_DATASET_FAILED, "no class folders"), STORE_OK);
    REQUIRE(store_dataset_get_by_id(s, id, &got) == STORE_OK);
    CHECK_INT(got.status, STORE_DATASET_FAILED);
    CHECK_STR(got.error, "no class folders");
    store_dataset_deinit(&got);
    CHECK_INT(store_dataset_set_status(s, id, STORE_DATASET_SCANNING, "ignored"), STORE_OK);
    REQUIRE(store_dataset_get_by_id(s, id, &got) == STORE_OK);
    CHECK_INT(got.status, STORE_DATASET_SCANNING);
    CHECK(got.error == NULL);
    store_dataset_deinit(&got);
    CHECK_INT(store_dataset_set_status(s, id + 100, STORE_DATASET_READY, NULL), STORE_NOT_FOUND);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_dataset_files_counts_and_splits)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreDatasetNew d = {"tiny", "/data/tiny", 0.5, 0.25, 0.25, 1};
    int64_t id;
    REQUIRE(store_dataset_insert(s, &d, &id) == STORE_OK);

    /* 3 classes; hand-counted per (label, split) below. */
    static const StoreDatasetFile files[] = {
        {"a/1.jpg", 0, STORE_SPLIT_TRAIN, 100, 1000}, {"a/2.jpg", 0, STORE_SPLIT_TRAIN, 101, 1001},
        {"a/3.jpg", 0, STORE_SPLIT_VAL, 102, 1002},   {"a/4.jpg", 0, STORE_SPLIT_TEST, 103, 1003},
        {"b/1.jpg", 1, STORE_SPLIT_TRAIN, 200, 2000}, {"b/2.jpg", 1, STORE_SPLIT_TEST, 201, 2001},
        {"c/1.jpg", 2, STORE_SPLIT_VAL, 300, 3000},   {"c/2.jpg", 2, STORE_SPLIT_VAL, 301, 3001},
        {"c/3.jpg", 2, STORE_SPLIT_TRAIN, 302, 3002},
    };
    static const int64_t expect[3][3] = {{2, 1, 1}, {1, 0, 1}, {1, 2, 0}};
    static const StoreDatasetSkipped skipped[] = {
        {"b/readme.txt", "not a JPEG"}, {"a/broken.jpg", "truncated"},
        {"b/readme.txt", "not a JPEG file"},
    };
    const int nf = (int)(sizeof files / sizeof files[0]);
    const char *classes = "[\"a\",\"b\",\"c\"]";

    /* A label outside [0, n_classes) is refused and nothing is stored. */
    StoreDatasetFile badf = files[0];
    badf.label = 3;
    CHECK_INT(store_dataset_set_files(s, id, classes, 3, &badf, 1, NULL, 0), STORE_INVALID);
    CHECK_INT(store_dataset_set_files(s, id + 9, classes, 3, files, nf, NULL, 0),
              STORE_NOT_FOUND);

    REQUIRE(store_dataset_set_files(s, id, classes, 3, files, nf, skipped, 3) == STORE_OK);
    StoreDataset got;
    REQUIRE(store_dataset_get_by_id(s, id, &got) == STORE_OK);
    CHECK_INT(got.status, STORE_DATASET_READY);
    CHECK_STR(got.class_names_json, classes);
    CHECK_INT(got.n_classes, 3);
    CHECK_INT(got.n_files, 9);
    CHECK_INT(got.n_split[STORE_SPLIT_TRAIN], 4);
    CHECK_INT(got.n_split[STORE_SPLIT_VAL], 3);
    CHECK_INT(got.n_split[STORE_SPLIT_TEST], 2);
    CHECK_INT(got.n_skipped, 3);
    store_dataset_deinit(&got);

    int64_t *counts;
    int nc;
    REQUIRE(store_dataset_class_counts(s, id, &counts, &nc) == STORE_OK);
    REQUIRE(nc == 3);
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 3; k++)
            CHECK_INT(counts[c * STORE_SPLIT_COUNT + k], expect[c][k]);
    free(counts);
    CHECK_INT(store_dataset_class_counts(s, id + 9, &counts, &nc), STORE_NOT_FOUND);

    StoreDatasetFile *all;
    int n;
    REQUIRE(store_dataset_files(s, id, -1, &all, &n) == STORE_OK);
    REQUIRE(n == nf);
    for (int i = 0; i < n; i++) {
        CHECK_STR(all[i].relpath, files[i].relpath);
        CHECK_INT(all[i].label, files[i].label);
        CHECK_INT(all[i].split, files[i].split);
        CHECK_INT(all[i].size, files[i].size);
        CHECK_INT(all[i].mtime, files[i].mtime);
    }
    store_dataset_files_free(all, n);

    StoreDatasetFile *val;
    REQUIRE(store_dataset_files(s, id, STORE_SPLIT_VAL, &val, &n) == STORE_OK);
    REQUIRE(n == 3);
    CHECK_STR(val[0].relpath, "a/3.jpg"); /* idx order */
    CHECK_STR(val[1].relpath, "c/1.jpg");
    CHECK_STR(val[2].relpath, "c/2.jpg");
    store_dataset_files_free(val, n);
    CHECK_INT(store_dataset_files(s, id, 5, &val, &n), STORE_INVALID);

    StoreDatasetSkipped *sk;
    REQUIRE(store_dataset_skipped(s, id, &sk, &n) == STORE_OK);
    REQUIRE(n == 2); /* the repeated path kept its last reason */
    CHECK_STR(sk[0].relpath, "a/broken.jpg");
    CHECK_STR(sk[0].reason, "truncated");
    CHECK_STR(sk[1].relpath, "b/readme.txt");
    CHECK_STR(sk[1].reason, "not a JPEG file");
    store_dataset_skipped_free(sk, n);

    /* A rescan replaces the files. */
    REQUIRE(store_dataset_set_files(s, id, "[\"a\"]", 1, files, 2, NULL, 0) == STORE_OK);
    REQUIRE(store_dataset_files(s, id, -1, &all, &n) == STORE_OK);
    CHECK_INT(n, 2);
    store_dataset_files_free(all, n);
    REQUIRE(store_dataset_skipped(s, id, &sk, &n) == STORE_OK);
    CHECK_INT(n, 0);
    CHECK(sk == NULL);
    REQUIRE(store_dataset_get_by_id(s, id, &got) == STORE_OK);
    CHECK_INT(got.n_files, 2);
    CHECK_INT(got.n_skipped, 0);
    store_dataset_deinit(&got);

    char plan[1024];
    REQUIRE(store_explain(s, STORE_QUERY_DATASET_FILES, plan, sizeof plan) == STORE_OK);
    CHECK(strstr(plan, "SEARCH dataset_files USING PRIMARY KEY (dataset_id=?)") != NULL);
    CHECK(strstr(plan, "TEMP B-TREE") == NULL);
    store_close(s);
    tmpdb_deinit(&t);
}

TEST(store_dataset_list_and_delete)
{
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreDataset *rows;
    int n;
    REQUIRE(store_dataset_list(s, &rows, &n) == STORE_OK);
    CHECK_INT(n, 0);
    CHECK(rows == NULL);

    const char *names[] = {"zeta", "alpha", "mid"};
    int64_t ids[3];
    for (int i = 0; i < 3; i++) {
        StoreDatasetNew d = {names[i], "/data/x", 1.0, 0.0, 0.0, i};
        REQUIRE(store_dataset_insert(s, &d, &ids[i]) == STORE_OK);
    }
    StoreDatasetFile f = {"x/1.jpg", 0, STORE_SPLIT_TRAIN, 1, 1};
    REQUIRE(store_dataset_set_files(s, ids[0], "[\"x\"]", 1, &f, 1, NULL, 0) == STORE_OK);
    REQUIRE(store_dataset_list(s, &rows, &n) == STORE_OK);
    REQUIRE(n == 3);
    CHECK_STR(rows[0].name, "alpha");
    CHECK_STR(rows[1].name, "mid");
    CHECK_STR(rows[2].name, "zeta");
    CHECK_INT(rows[2].status, STORE_DATASET_READY);
    store_datasets_free(rows, n);

    /* A queued job on "zeta" blocks its deletion; a finished one does not. */
    StoreJobNew j = sample_job("mobilenet", "he_uniform", 1);
    j.dataset = "zeta";
    int64_t job;
    REQUIRE(store_job_insert(s, &j, &job) == STORE_OK);
    CHECK_INT(store_dataset_delete(s, "zeta"), STORE_CONFLICT);
    CHECK(strstr(store_errmsg(s), "1 queued or running job") != NULL);
    REQUIRE(store_job_set_status(s, job, 0, STORE_JOB_DONE, NULL) == STORE_OK);
    CHECK_INT(store_dataset_delete(s, "zeta"), STORE_OK);
    CHECK_INT(store_dataset_delete(s, "zeta"), STORE_NOT_FOUND);

    /* Its files went with it. */
    StoreDatasetFile *files;
    REQUIRE(store_dataset_files(s, ids[0], -1, &files, &n) == STORE_OK);
    CHECK_INT(n, 0);
    REQUIRE(store_dataset_list(s, &rows, &n) == STORE_OK);
    CHECK_INT(n, 2);
    store_datasets_free(rows, n);

    /* A new dataset never gets the id of a deleted one (caches are keyed by id). */
    StoreDatasetNew d = {"zeta", "/data/x", 1.0, 0.0, 0.0, 0};
    int64_t again;
    REQUIRE(store_dataset_insert(s, &d, &again) == STORE_OK);
    CHECK(again > ids[2]);
    store_close(s);
    tmpdb_deinit(&t);
}
