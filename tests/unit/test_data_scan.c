/* test_data_scan.c — the ImageFolder scan: class order, hidden and stray files, and every
 * kind of bad file skipped with its reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/cache.h"
#include "data/scan.h"
#include "data/split.h"
#include "test.h"
#include "test_data_fixture.h"

/* The reason scan gave for rel, or NULL when rel was not skipped. */
static const char *reason_of(const DatasetIndex *x, const char *rel)
{
    for (int i = 0; i < x->n_skipped; i++)
        if (strcmp(x->skipped[i].path, rel) == 0)
            return x->skipped[i].reason;
    return NULL;
}

static int has_file(const DatasetIndex *x, const char *rel)
{
    for (int i = 0; i < x->n_files; i++)
        if (strcmp(x->paths[i], rel) == 0)
            return 1;
    return 0;
}

static int index_of(const DatasetIndex *x, const char *rel)
{
    for (int i = 0; i < x->n_files; i++)
        if (strcmp(x->paths[i], rel) == 0)
            return i;
    return -1;
}

static int starts(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

TEST(data_scan_skips_every_kind_of_bad_file)
{
    char *dir = fixture_data_tmpdir();
    REQUIRE(dir);
    int w = 48;
    uint8_t *rgb = malloc((size_t)w * w * 3);
    REQUIRE(rgb);
    for (int i = 0; i < w * w * 3; i++)
        rgb[i] = (uint8_t)(i * 31 % 253);
    uint8_t *jpeg;
    size_t n;
    REQUIRE(fixture_data_encode(rgb, w, w, 3, 90, &jpeg, &n) == 0);

    /* good files: several extensions and cases, a nested folder, greyscale */
    CHECK(fixture_data_write(dir, "b/one.jpg", jpeg, n) == 0);
    CHECK(fixture_data_write(dir, "b/two.JPEG", jpeg, n) == 0);
    CHECK(fixture_data_write(dir, "b/sub/three.Jpg", jpeg, n) == 0);
    CHECK(fixture_data_write(dir, "a/x.jpeg", jpeg, n) == 0);
    CHECK(fixture_data_write_jpeg(dir, "A/grey.jpg", rgb, w, w, 1, 80) == 0);
    /* ignored: hidden files and folders, files in the root */
    CHECK(fixture_data_write(dir, "b/.hidden.jpg", "junk", 4) == 0);
    CHECK(fixture_data_write(dir, ".cache/c.jpg", jpeg, n) == 0);
    CHECK(fixture_data_write(dir, "b/.thumbs/t.jpg", jpeg, n) == 0);
    CHECK(fixture_data_write(dir, "root.jpg", jpeg, n) == 0);
    /* bad */
    CHECK(fixture_data_write(dir, "b/empty.jpg", "", 0) == 0);
    CHECK(fixture_data_write(dir, "b/half.jpg", jpeg, n / 2) == 0);
    CHECK(fixture_data_write(dir, "b/header_only.jpg", jpeg, 40) == 0);
    CHECK(fixture_data_write(dir, "b/text.jpg", "plain text, not a picture\n", 26) == 0);
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
    CHECK(fixture_data_write(dir, "b/png.jpg", png, sizeof png) == 0);
    CHECK(fixture_data_write(dir, "b/notes.txt", "notes", 5) == 0);
    uint8_t *garbled = malloc(n);
    REQUIRE(garbled);
    memcpy(garbled, jpeg, n);
    for (size_t i = 2; i < 200 && i < n; i++) /* keep SOI, wreck the headers */
        garbled[i] = (uint8_t)(i * 13);
    CHECK(fixture_data_write(dir, "b/garbled.jpg", garbled, n) == 0);
    /* a Huffman table whose code counts overflow: the header parse fails inside DHT */
    memcpy(garbled, jpeg, n);
    for (size_t i = 2; i + 8 < n; i++) {
        if (garbled[i] == 0xFF && garbled[i + 1] == 0xC4) {
            memset(garbled + i + 5, 0xFF, 3);
            break;
        }
    }
    CHECK(fixture_data_write(dir, "b/bad_huffman.jpg", garbled, n) == 0);
    char link[1024];
    snprintf(link, sizeof link, "%s/b/dangling.jpg", dir);
    CHECK(symlink("missing/target.jpg", link) == 0);
    snprintf(link, sizeof link, "%s/b/dangling_out.jpg", dir); /* leads out, even dangling */
    CHECK(symlink("/nonexistent/initlab/target.jpg", link) == 0);
    if (geteuid() != 0) { /* root reads anything: permission tests only as a user */
        CHECK(fixture_data_write(dir, "b/locked.jpg", jpeg, n) == 0);
        snprintf(link, sizeof link, "%s/b/locked.jpg", dir);
        chmod(link, 0);
    }

    DatasetIndex *x = NULL;
    char err[512];
    /* one thread: each bad file is followed by good ones through the same codec */
    DataScanOptions opt = {.threads = 1};
    REQUIRE(data_scan(dir, &opt, &x, err, sizeof err) == 0);
    CHECK_INT(x->n_classes, 3);
    CHECK_STR(x->class_names[0], "A"); /* byte order: 'A' < 'a' < 'b' */
    CHECK_STR(x->class_names[1], "a");
    CHECK_STR(x->class_names[2], "b");
    CHECK_INT(x->n_files, 5);
    CHECK(has_file(x, "b/one.jpg") && has_file(x, "b/two.JPEG") &&
          has_file(x, "b/sub/three.Jpg") && has_file(x, "a/x.jpeg") && has_file(x, "A/grey.jpg"));
    CHECK_INT(data_index_count(x, 2, -1), 3);
    for (int i = 0; i < x->n_files; i++) {
        CHECK_INT(x->widths[i], w);
        CHECK_INT(x->heights[i], w);
        if (i > 0)
            CHECK(x->labels[i] > x->labels[i - 1] ||
                  (x->labels[i] == x->labels[i - 1] && strcmp(x->paths[i - 1], x->paths[i]) < 0));
    }
    CHECK(starts(reason_of(x, "b/empty.jpg"), "zero-byte"));
    CHECK(starts(reason_of(x, "b/half.jpg"), "truncated"));
    CHECK(starts(reason_of(x, "b/header_only.jpg"), "truncated"));
    CHECK(starts(reason_of(x, "b/text.jpg"), "not a JPEG"));
    CHECK(starts(reason_of(x, "b/png.jpg"), "not a JPEG"));
    CHECK(starts(reason_of(x, "b/notes.txt"), "not a .jpg"));
    CHECK(reason_of(x, "b/garbled.jpg") != NULL);
    CHECK(starts(reason_of(x, "b/bad_huffman.jpg"), "not a JPEG"));
    CHECK(starts(reason_of(x, "b/dangling.jpg"), "unreadable"));
    CHECK(starts(reason_of(x, "b/dangling_out.jpg"), "symbolic link out of the dataset folder"));
    if (geteuid() != 0)
        CHECK(starts(reason_of(x, "b/locked.jpg"), "unreadable"));
    CHECK_INT(x->n_skipped, geteuid() != 0 ? 11 : 10);
    CHECK(reason_of(x, "b/.hidden.jpg") == NULL && reason_of(x, "root.jpg") == NULL);
    data_index_free(x);

    free(garbled);
    free(jpeg);
    free(rgb);
    fixture_data_rmrf(dir);
    free(dir);
}

/* A file cut inside its entropy data but ending in an end-of-image marker passes the quick
 * check and fails the default one, which decodes every image. */
TEST(data_scan_decodes_everything_unless_quick)
{
    char *dir = fixture_data_tmpdir();
    REQUIRE(dir);
    int w = 64;
    uint8_t *rgb = malloc((size_t)w * w * 3);
    REQUIRE(rgb);
    for (int i = 0; i < w * w * 3; i++)
        rgb[i] = (uint8_t)(i * 17 % 251);
    uint8_t *jpeg;
    size_t n;
    REQUIRE(fixture_data_encode(rgb, w, w, 3, 95, &jpeg, &n) == 0);
    size_t cut = n * 2 / 3;
    jpeg[cut] = 0xFF;
    jpeg[cut + 1] = 0xD9;
    CHECK(fixture_data_write(dir, "k/cut.jpg", jpeg, cut + 2) == 0);
    CHECK(fixture_data_write_jpeg(dir, "k/good.jpg", rgb, w, w, 3, 90) == 0);

    DatasetIndex *x = NULL;
    char err[512];
    DataScanOptions quick = {.threads = 1, .quick = true};
    REQUIRE(data_scan(dir, &quick, &x, err, sizeof err) == 0);
    CHECK_INT(x->n_files, 2);
    data_index_free(x);
    REQUIRE(data_scan(dir, NULL, &x, err, sizeof err) == 0);
    CHECK_INT(x->n_files, 1);
    CHECK(starts(reason_of(x, "k/cut.jpg"), "truncated"));
    data_index_free(x);
    free(jpeg);
    free(rgb);
    fixture_data_rmrf(dir);
    free(dir);
}

TEST(data_scan_reports_missing_or_empty_root)
{
    DatasetIndex *x = (DatasetIndex *)1;
    char err[512] = "";
    CHECK(data_scan("/nonexistent/initlab-dataset", NULL, &x, err, sizeof err) == -1);
    CHECK(x == NULL);
    CHECK(strstr(err, "/nonexistent/initlab-dataset") != NULL);
    char *dir = fixture_data_tmpdir();
    REQUIRE(dir);
    CHECK(fixture_data_write(dir, "loose.jpg", "x", 1) == 0);
    CHECK(data_scan(dir, NULL, &x, err, sizeof err) == -1);
    CHECK(strstr(err, "no class folders") != NULL);
    fixture_data_rmrf(dir);
    free(dir);
}

TEST(data_scan_fingerprint_tracks_changes)
{
    char *dir = fixture_data_tmpdir();
    REQUIRE(dir);
    REQUIRE(fixture_data_solid_dataset(dir, 2, 3, 8, 8) == 0);
    DatasetIndex *a = NULL, *b = NULL;
    char err[512];
    REQUIRE(data_scan(dir, NULL, &a, err, sizeof err) == 0);
    REQUIRE(data_scan(dir, NULL, &b, err, sizeof err) == 0);
    CHECK(data_index_fingerprint(a) == data_index_fingerprint(b));
    data_index_free(b);
    uint8_t rgb[8 * 8 * 3] = {0};
    REQUIRE(fixture_data_write_jpeg(dir, "class_1/img_99.jpg", rgb, 8, 8, 3, 90) == 0);
    REQUIRE(data_scan(dir, NULL, &b, err, sizeof err) == 0);
    CHECK(data_index_fingerprint(a) != data_index_fingerprint(b));
    data_index_free(a);
    data_index_free(b);
    fixture_data_rmrf(dir);
    free(dir);
}

/* Offset of the first byte of entropy-coded data after the SOS segment, or 0. */
static size_t entropy_start(const uint8_t *j, size_t n)
{
    for (size_t i = 2; i + 4 < n; i++)
        if (j[i] == 0xFF && j[i + 1] == 0xDA)
            return i + 2 + ((size_t)j[i + 2] << 8 | j[i + 3]);
    return 0;
}

/* A header claiming 65500×65500 pixels, a bad Huffman code (an all-ones run, which no
 * Huffman table has) and bytes left over before the end marker: all pass a quick check
 * (header parses, end marker present) and are skipped by the default one with libjpeg's
 * words; the cache, given a quick scan, refuses to train on them too. */
TEST(data_scan_refuses_huge_and_damaged_images)
{
    char *dir = fixture_data_tmpdir(), *cdir = fixture_data_tmpdir();
    REQUIRE(dir && cdir);
    int w = 48;
    uint8_t *rgb = malloc((size_t)w * w * 3);
    REQUIRE(rgb);
    for (int i = 0; i < w * w * 3; i++)
        rgb[i] = (uint8_t)(i * 37 % 251);
    uint8_t *jpeg, *bad;
    size_t n;
    REQUIRE(fixture_data_encode(rgb, w, w, 3, 90, &jpeg, &n) == 0);
    REQUIRE((bad = malloc(n + 64)));
    CHECK(fixture_data_write(dir, "k/good.jpg", jpeg, n) == 0);
    CHECK(fixture_data_write(dir, "k/good2.jpg", jpeg, n) == 0);
    memcpy(bad, jpeg, n);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < n && !sof; i++)
        if (bad[i] == 0xFF && bad[i + 1] == 0xC0)
            sof = i;
    REQUIRE(sof);
    bad[sof + 5] = bad[sof + 7] = 0xFF; /* height, width: 65500 = 0xFFDC */
    bad[sof + 6] = bad[sof + 8] = 0xDC;
    CHECK(fixture_data_write(dir, "k/huge.jpg", bad, n) == 0);
    size_t es = entropy_start(jpeg, n);
    REQUIRE(es > 0 && es + 6 < n - 2);
    memcpy(bad, jpeg, n);
    memcpy(bad + es, "\xFF\x00\xFF\x00\xFF\x00", 6);
    CHECK(fixture_data_write(dir, "k/bad_code.jpg", bad, n) == 0);
    memcpy(bad, jpeg, n - 2);
    memset(bad + n - 2, 0x5A, 40);
    memcpy(bad + n + 38, "\xFF\xD9", 2);
    CHECK(fixture_data_write(dir, "k/extra.jpg", bad, n + 40) == 0);

    DatasetIndex *x = NULL;
    char err[512];
    REQUIRE(data_scan(dir, NULL, &x, err, sizeof err) == 0);
    CHECK_INT(x->n_files, 2);
    CHECK(starts(reason_of(x, "k/huge.jpg"), "too large: 65500x65500 pixels"));
    CHECK(starts(reason_of(x, "k/bad_code.jpg"), "corrupt: Corrupt JPEG data: bad Huffman code"));
    CHECK(starts(reason_of(x, "k/extra.jpg"), "corrupt: Corrupt JPEG data: ") &&
          strstr(reason_of(x, "k/extra.jpg"), "extraneous bytes before marker 0xd9"));
    data_index_free(x);

    /* a quick scan keeps the damaged ones (not the huge one: its header says enough) ... */
    DataScanOptions quick = {.quick = true};
    REQUIRE(data_scan(dir, &quick, &x, err, sizeof err) == 0);
    CHECK_INT(x->n_files, 4);
    CHECK(starts(reason_of(x, "k/huge.jpg"), "too large"));
    REQUIRE(data_split_assign(x, DATA_SPLIT_DEFAULT, 0) == 0);
    /* ... and the cache, which decodes every image, excludes them before any training */
    DataCacheConfig cfg = {.dir = cdir, .size = 16, .resize = DATA_RESIZE_SQUASH};
    DataCache *c = NULL;
    REQUIRE(data_cache_open(x, &cfg, &c, err, sizeof err) == 0);
    CHECK(starts(reason_of(x, "k/bad_code.jpg"), "corrupt (found while decoding)"));
    CHECK(starts(reason_of(x, "k/extra.jpg"), "corrupt (found while decoding)"));
    for (int i = 0; i < x->n_files; i++)
        CHECK((x->split[i] == DATA_SPLIT_NONE) == (strstr(x->paths[i], "good") == NULL));
    data_cache_free(c);
    data_index_free(x);
    free(bad);
    free(jpeg);
    free(rgb);
    fixture_data_rmrf(dir);
    fixture_data_rmrf(cdir);
    free(dir);
    free(cdir);
}

/* A class folder without a usable image is not an output class: it is reported, and the
 * classes after it move up, so that every label names a class with images. */
TEST(data_scan_leaves_out_class_folders_without_images)
{
    char *dir = fixture_data_tmpdir();
    REQUIRE(dir);
    uint8_t rgb[8 * 8 * 3] = {0};
    CHECK(fixture_data_write_jpeg(dir, "a/1.jpg", rgb, 8, 8, 3, 90) == 0);
    CHECK(fixture_data_write_jpeg(dir, "a/2.jpg", rgb, 8, 8, 3, 90) == 0);
    char b[600];
    snprintf(b, sizeof b, "%s/b", dir);
    CHECK(mkdir(b, 0755) == 0);                                   /* empty */
    CHECK(fixture_data_write(dir, "c/zero.jpg", "", 0) == 0);     /* nothing usable */
    CHECK(fixture_data_write(dir, "c/.hidden/x.jpg", "", 0) == 0);
    CHECK(fixture_data_write_jpeg(dir, "d/1.jpg", rgb, 8, 8, 3, 90) == 0);

    DatasetIndex *x = NULL;
    char err[512];
    REQUIRE(data_scan(dir, NULL, &x, err, sizeof err) == 0);
    CHECK_INT(x->n_classes, 2);
    CHECK_STR(x->class_names[0], "a");
    CHECK_STR(x->class_names[1], "d");
    CHECK_INT(x->n_files, 3);
    REQUIRE(index_of(x, "d/1.jpg") >= 0);
    CHECK_INT(x->labels[index_of(x, "d/1.jpg")], 1);
    CHECK(starts(reason_of(x, "b"), "no usable image in this class folder: not a class"));
    CHECK(starts(reason_of(x, "c"), "no usable image in this class folder: not a class"));
    CHECK(starts(reason_of(x, "c/zero.jpg"), "zero-byte"));
    CHECK_INT(x->n_skipped, 3);
    data_index_free(x);

    /* no class with an image at all: the scan fails and says why */
    char *empty = fixture_data_tmpdir();
    REQUIRE(empty);
    CHECK(fixture_data_write(empty, "only/zero.jpg", "", 0) == 0);
    CHECK_INT(data_scan(empty, NULL, &x, err, sizeof err), -1);
    CHECK(strstr(err, "no class folder") && strstr(err, "only/zero.jpg: zero-byte"));
    fixture_data_rmrf(empty);
    free(empty);
    fixture_data_rmrf(dir);
    free(dir);
}
