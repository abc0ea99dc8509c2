/* test_data_cache.c — the decoded-image cache: contents, reuse, rebuild after a change,
 * exclusion of files that do not decode, cancellation, mean image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/cache.h"
#include "data/scan.h"
#include "data/split.h"
#include "test.h"
#include "test_data_fixture.h"

typedef struct {
    long calls, last_done, last_total;
    long cancel_at; /* cancel when called with done >= this; -1 never */
} Progress;

static int on_progress(void *user, long done, long total)
{
    Progress *p = user;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
    return p->cancel_at >= 0 && done >= p->cancel_at;
}

/* A split index of dir scanned with opt (NULL: the default, full check), or NULL. */
static DatasetIndex *scan_with(const char *dir, const DataScanOptions *opt)
{
    DatasetIndex *x = NULL;
    char err[512];
    if (data_scan(dir, opt, &x, err, sizeof err) != 0)
        return NULL;
    if (data_split_assign(x, DATA_SPLIT_DEFAULT, 5) != 0) {
        data_index_free(x);
        return NULL;
    }
    return x;
}

static DatasetIndex *scan_or_null(const char *dir)
{
    return scan_with(dir, NULL);
}

TEST(data_cache_holds_decoded_images_and_is_reused)
{
    char *dir = fixture_data_tmpdir(), *cdir = fixture_data_tmpdir();
    REQUIRE(dir && cdir);
    REQUIRE(fixture_data_solid_dataset(dir, 3, 4, 24, 16) == 0);
    DatasetIndex *x = scan_or_null(dir);
    REQUIRE(x);
    Progress p = {.cancel_at = -1};
    DataCacheConfig cfg = {.dir = cdir, .size = 8, .resize = DATA_RESIZE_SQUASH, .threads = 2,
                           .progress = on_progress, .user = &p};
    DataCache *c = NULL;
    char err[512];
    REQUIRE(data_cache_open(x, &cfg, &c, err, sizeof err) == 0);
    CHECK(data_cache_built(c));
    CHECK(p.calls >= 1);
    CHECK_INT(p.last_done, 12);
    CHECK_INT(p.last_total, 12);
    CHECK_INT(data_cache_count(c), 12);
    CHECK_INT(data_cache_size(c), 8);
    CHECK_INT(data_cache_classes(c), 3);
    for (int i = 0; i < 12; i++) {
        int cls = i / 4, k = i % 4; /* class_<c>/img_<k>, in order */
        uint8_t col[3];
        fixture_data_color(cls, k, col);
        CHECK_INT(data_cache_label(c, i), cls);
        const uint8_t *img = data_cache_image(c, i);
        for (int j = 0; j < 8 * 8; j++)
            for (int ch = 0; ch < 3; ch++)
                CHECK_NEAR(img[3 * j + ch], col[ch], 3);
    }
    struct stat st;
    CHECK(stat(data_cache_path(c), &st) == 0);
    CHECK(st.st_size >= 4096 + 12 * 8 * 8 * 3);
    data_cache_free(c);

    /* unchanged files: the same file is mapped again, nothing decoded */
    p.calls = 0;
    REQUIRE(data_cache_open(x, &cfg, &c, err, sizeof err) == 0);
    CHECK(!data_cache_built(c));
    CHECK_INT(p.calls, 0);
    data_cache_free(c);

    /* another size is another file */
    cfg.size = 4;
    REQUIRE(data_cache_open(x, &cfg, &c, err, sizeof err) == 0);
    CHECK(data_cache_built(c));
    data_cache_free(c);

    data_index_free(x);
    fixture_data_rmrf(dir);
    fixture_data_rmrf(cdir);
    free(dir);
    free(cdir);
}

TEST(data_cache_rebuilt_after_a_file_changes)
{
    char *dir = fixture_data_tmpdir(), *cdir = fixture_data_tmpdir();
    REQUIRE(dir && cdir);
    REQUIRE(fixture_data_solid_dataset(dir, 2, 3, 16, 16) == 0);
    DatasetIndex *x = scan_or_null(dir);
    REQUIRE(x);
    DataCacheConfig cfg = {.dir = cdir, .size = 8, .resize = DATA_RESIZE_SQUASH, .threads = 1};
    DataCache *c = NULL;
    char err[512];
    REQUIRE(data_cache_open(x, &cfg, &c, err, sizeof err) == 0);
    CHECK(data_cache_built(c));
    const uint8_t *old_img = data_cache_image(c, 1);
    uint8_t old_first = old_img[0];
    data_index_free(x);

    /* replace class_0/img_01.jpg with a white image (new size and mtime) */
    uint8_t rgb[16 * 16 * 3];
    memset(rgb, 255, sizeof rgb);
    char path[1024];
    snprintf(path, sizeof path, "%s/class_0/img_01.jpg", dir);
    REQUIRE(unlink(path) == 0);
    REQUIRE(fixture_data_write_jpeg(dir, "class_0/img_01.jpg", rgb, 16, 16, 3, 50) == 0);
    struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
    utimensat(AT_FDCWD, path, times, 0); /* a different mtime even within one clock tick */
    x = scan_or_null(dir);
    REQUIRE(x);
    DataCache *c2 = NULL;
    REQUIRE(data_cache_open(x, &cfg, &c2, err, sizeof err) == 0);
    CHECK(data_cache_built(c2));
    CHECK_NEAR(data_cache_image(c2, 1)[0], 255, 1);
    /* the old mapping stays valid and unchanged while it is open */
    CHECK_INT(data_cache_image(c, 1)[0], old_first);
    data_cache_free(c);
    data_cache_free(c2);

    /* adding a file changes the file set too */
    REQUIRE(fixture_data_write_jpeg(dir, "class_1/img_77.jpg", rgb, 16, 16, 3, 50) == 0);
    data_index_free(x);
    x = scan_or_null(dir);
    REQUIRE(x);
    REQUIRE(data_cache_open(x, &cfg, &c2, err, sizeof err) == 0);
    CHECK(data_cache_built(c2));
    CHECK_INT(data_cache_count(c2), 7);
    data_cache_free(c2);

    data_index_free(x);
    fixture_data_rmrf(dir);
    fixture_data_rmrf(cdir);
    free(dir);
    free(cdir);
}

/* A file that passes a quick scan (end marker present) but does not decode is excluded
 * from the index, on the build and on every later open. */
TEST(data_cache_excludes_images_that_fail_to_decode)
{
    char *dir = fixture_data_tmpdir(), *cdir = fixture_data_tmpdir();
    REQUIRE(dir && cdir);
    REQUIRE(fixture_data_solid_dataset(dir, 2, 5, 16, 16) == 0);
    int w = 64;
    uint8_t *rgb = malloc((size_t)w * w * 3), *jpeg;
    size_t n;
    REQUIRE(rgb);
    for (int i = 0; i < w * w * 3; i++)
        rgb[i] = (uint8_t)(i * 29 % 241);
    REQUIRE(fixture_data_encode(rgb, w, w, 3, 95, &jpeg, &n) == 0);
    size_t cut = n * 2 / 3;
    jpeg[cut] = 0xFF;
    jpeg[cut + 1] = 0xD9;
    REQUIRE(fixture_data_write(dir, "class_0/img_zz.jpg", jpeg, cut + 2) == 0);

    for (int round = 0; round < 2; round++) {
        DatasetIndex *x = scan_with(dir, &(DataScanOptions){.quick = true});
        REQUIRE(x);
        CHECK_INT(x->n_files, 11);
        int bad = -1;
        for (int i = 0; i < x->n_files; i++)
            if (strcmp(x->paths[i], "class_0/img_zz.jpg") == 0)
                bad = i;
        REQUIRE(bad >= 0);
        DataCacheConfig cfg = {.dir = cdir, .size = 8, .resize = DATA_RESIZE_SQUASH};
        DataCache *c = NULL;
        char err[512];
        REQUIRE(data_cache_open(x, &cfg, &c, err, sizeof err) == 0);
        CHECK(data_cache_built(c) == (round == 0));
        CHECK_INT(x->split[bad], DATA_SPLIT_NONE);
        CHECK_INT(x->n_skipped, 1);
        CHECK(x->n_skipped == 1 && strcmp(x->skipped[0].path, "class_0/img_zz.jpg") == 0);
        CHECK(x->n_skipped == 1 && strstr(x->skipped[0].reason, "truncated") != NULL);
        int *train, nt;
        REQUIRE(data_split_indices(x, DATA_SPLIT_TRAIN, &train, &nt) == 0);
        for (int i = 0; i < nt; i++)
            CHECK(train[i] != bad);
        free(train);
        /* opening again with the same index does not list the file twice */
        DataCache *c2 = NULL;
        REQUIRE(data_cache_open(x, &cfg, &c2, err, sizeof err) == 0);
        CHECK_INT(x->n_skipped, 1);
        data_cache_free(c2);
        data_cache_free(c);
        data_index_free(x);
    }
    free(jpeg);
    free(rgb);
    fixture_data_rmrf(dir);
    fixture_data_rmrf(cdir);
    free(dir);
    free(cdir);
}

TEST(data_cache_build_can_be_cancelled)
{
    char *dir = fixture_data_tmpdir(), *cdir = fixture_data_tmpdir();
    REQUIRE(dir && cdir);
    REQUIRE(fixture_data_solid_dataset(dir, 2, 3, 16, 16) == 0);
    DatasetIndex *x = scan_or_null(dir);
    REQUIRE(x);
    Progress p = {.cancel_at = 0};
    DataCacheConfig cfg = {.dir = cdir, .size = 8, .threads = 1, .progress = on_progress,
                           .user = &p};
    DataCache *c = NULL;
    char err[512];
    CHECK_INT(data_cache_open(x, &cfg, &c, err, sizeof err), -2);
    CHECK(c == NULL);
    /* nothing left behind but the lock file */
    p.cancel_at = -1;
    REQUIRE(data_cache_open(x, &cfg, &c, err, sizeof err) == 0);
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", data_cache_path(c));
    CHECK(access(tmp, F_OK) != 0);
    data_cache_free(c);
    data_index_free(x);
    fixture_data_rmrf(dir);
    fixture_data_rmrf(cdir);
    free(dir);
    free(cdir);
}

TEST(data_cache_mean_image_of_a_split)
{
    char *dir = fixture_data_tmpdir(), *cdir = fixture_data_tmpdir();
    REQUIRE(dir && cdir);
    REQUIRE(fixture_data_solid_dataset(dir, 2, 4, 8, 8) == 0);
    DatasetIndex *x = scan_or_null(dir);
    REQUIRE(x);
    DataCacheConfig cfg = {.dir = cdir, .size = 4};
    DataCache *c = NULL;
    char err[512];
    REQUIRE(data_cache_open(x, &cfg, &c, err, sizeof err) == 0);
    int idx[3] = {0, 5, 6}; /* class 0 img 0, class 1 imgs 1 and 2 */
    double want[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        uint8_t col[3];
        fixture_data_color(idx[k] / 4, idx[k] % 4, col);
        for (int ch = 0; ch < 3; ch++)
            want[ch] += col[ch] / 3.0;
    }
    float mean[4 * 4 * 3], again[4 * 4 * 3];
    REQUIRE(data_cache_mean_image(c, idx, 3, mean, err, sizeof err) == 0);
    for (int j = 0; j < 16; j++)
        for (int ch = 0; ch < 3; ch++)
            CHECK_NEAR(mean[3 * j + ch], want[ch], 2.0);
    /* the second call reads the stored mean: identical */
    REQUIRE(data_cache_mean_image(c, idx, 3, again, err, sizeof err) == 0);
    CHECK(memcmp(mean, again, sizeof mean) == 0);
    CHECK(data_cache_mean_image(c, idx, 0, mean, err, sizeof err) == -1);
    data_cache_free(c);
    data_index_free(x);
    fixture_data_rmrf(dir);
    fixture_data_rmrf(cdir);
    free(dir);
    free(cdir);
}
