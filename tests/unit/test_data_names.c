/* test_data_names.c — names are bytes: their lossless text form, and a dataset whose class
 * and file names are not UTF-8 recorded with every class in its place. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "data/names.h"
#include "jobs/scan.h"
#include "test.h"
#include "test_data_fixture.h"
#include "test_store_util.h"

TEST(data_name_text_is_lossless_and_json_safe)
{
    static const struct {
        const char *name, *text;
    } cases[] = {
        {"dandelion", "dandelion"},
        {"tr\xC3\xA8" "fle", "tr\xC3\xA8" "fle"},             /* valid UTF-8 stays */
        {"\xF0\x9F\x8C\xB1 seedling", "\xF0\x9F\x8C\xB1 seedling"},
        {"caf\xE9", "caf\\xE9"},                               /* Latin-1 byte */
        {"a\\b", "a\\\\b"},                                    /* backslash doubled */
        {"caf\\xE9", "caf\\\\xE9"},                            /* so this differs from caf\xE9 */
        {"tab\there\n", "tab\\x09here\\x0A"},                  /* control bytes */
        {"del\x7F", "del\\x7F"},
        {"\xC0\x80", "\\xC0\\x80"},                            /* overlong NUL */
        {"\xED\xA0\x80", "\\xED\\xA0\\x80"},                   /* surrogate */
        {"\xF4\x90\x80\x80", "\\xF4\\x90\\x80\\x80"},          /* above U+10FFFF */
        {"\xE2\x82", "\\xE2\\x82"},                            /* cut short */
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t = data_name_text(cases[i].name);
        REQUIRE(t);
        CHECK_STR(t, cases[i].text);
        CHECK(data_utf8_valid(t, strlen(t)));
        json_t *j = json_string(t);
        CHECK(j != NULL);
        json_decref(j);
        free(t);
    }
    CHECK(!data_utf8_valid("caf\xE9", 4));
    CHECK(data_utf8_valid("caf\xC3\xA9", 5));
    char buf[7];
    CHECK_STR(data_name_text_buf("ab\xE9" "cd", buf, sizeof buf), "ab\\xE9"); /* fits */
    CHECK_STR(data_name_text_buf("ab\xE9" "cd", buf, 6), "ab"); /* never half an escape */
}

/* The bug this guards against: a class folder named in Latin-1 was refused by jansson and
 * dropped from the stored class list while labels kept their index, so each later class's
 * figures were shown under the previous one's name; a skipped file with such a name
 * vanished from the skipped list. */
TEST(jobs_scan_dataset_keeps_every_class_in_its_place)
{
    char *dir = fixture_data_tmpdir();
    REQUIRE(dir);
    uint8_t rgb[8 * 8 * 3] = {0};
    /* class k has k + 1 images, so its counts name it */
    static const char *const classes[] = {"a", "caf\xE9", "z\\b"};
    for (int c = 0; c < 3; c++)
        for (int k = 0; k <= c; k++) {
            char rel[64];
            snprintf(rel, sizeof rel, "%s/%d\xFF.jpg", classes[c], k);
            REQUIRE(fixture_data_write_jpeg(dir, rel, rgb, 8, 8, 3, 90) == 0);
        }
    REQUIRE(fixture_data_write(dir, "z\\b/bad\xFF.jpg", "", 0) == 0);

    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreDatasetNew nd = {"latin", dir, 0.6, 0.2, 0.2, 0};
    int64_t id = 0;
    REQUIRE(store_dataset_insert(s, &nd, &id) == STORE_OK);
    char err[512];
    REQUIRE(jobs_scan_dataset(s, id, err, sizeof err) == 0);
    StoreDataset d;
    REQUIRE(store_dataset_get_by_id(s, id, &d) == STORE_OK);
    CHECK_STR(d.class_names_json, "[\"a\",\"caf\\\\xE9\",\"z\\\\\\\\b\"]");
    CHECK_INT(d.n_files, 6);
    int64_t *counts = NULL;
    int n_classes = 0;
    REQUIRE(store_dataset_class_counts(s, id, &counts, &n_classes) == STORE_OK);
    CHECK_INT(n_classes, 3);
    for (int c = 0; c < n_classes; c++) {
        int64_t total = 0;
        for (int k = 0; k < STORE_SPLIT_COUNT; k++)
            total += counts[c * STORE_SPLIT_COUNT + k];
        CHECK_INT(total, c + 1);
    }
    free(counts);
    StoreDatasetSkipped *sk = NULL;
    int n_sk = 0;
    REQUIRE(store_dataset_skipped(s, id, &sk, &n_sk) == STORE_OK);
    CHECK_INT(n_sk, 1);
    if (n_sk == 1) {
        CHECK_STR(sk[0].relpath, "z\\\\b/bad\\xFF.jpg");
        CHECK(strstr(sk[0].reason, "zero-byte") != NULL);
    }
    store_dataset_skipped_free(sk, n_sk);
    StoreDatasetFile *files = NULL;
    int n_files = 0;
    REQUIRE(store_dataset_files(s, id, -1, &files, &n_files) == STORE_OK);
    for (int i = 0; i < n_files; i++)
        CHECK(data_utf8_valid(files[i].relpath, strlen(files[i].relpath)) &&
              strstr(files[i].relpath, "\\xFF.jpg") != NULL);
    store_dataset_files_free(files, n_files);
    store_dataset_deinit(&d);
    store_close(s);
    tmpdb_deinit(&t);
    fixture_data_rmrf(dir);
    free(dir);
}
