/* test_data_loader.c — background batches: order and flips fixed by the seed whatever the
 * thread count, every image once per epoch, partial and dropped last batches, stop and
 * restart, and the synchronous probe read. Also the normalization modes against
 * hand-computed values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/cache.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "data/scan.h"
#include "data/split.h"
#include "test.h"
#include "test_data_fixture.h"
#include "util/rng.h"

#define S 6

TEST(data_preprocess_modes_by_hand)
{
    uint8_t src[S * S * 3];
    for (int i = 0; i < S * S; i++) {
        src[3 * i] = 255;
        src[3 * i + 1] = 0;
        src[3 * i + 2] = 128;
    }
    float out[S * S * 3];
    DataPreprocess p;
    REQUIRE(data_pre_init(&p, DATA_PRE_TF, S, NULL) == 0);
    data_pre_apply(&p, src, false, out);
    CHECK_NEAR(out[0], 1.0, 1e-6);
    CHECK_NEAR(out[1], -1.0, 1e-6);
    CHECK_NEAR(out[2], 128 / 127.5 - 1, 1e-6);
    data_pre_deinit(&p);

    REQUIRE(data_pre_init(&p, DATA_PRE_CAFFE, S, NULL) == 0);
    data_pre_apply(&p, src, false, out);
    CHECK_NEAR(out[0], 128 - 103.939, 1e-4); /* B first */
    CHECK_NEAR(out[1], 0 - 116.779, 1e-4);
    CHECK_NEAR(out[2], 255 - 123.68, 1e-4);
    data_pre_deinit(&p);

    REQUIRE(data_pre_init(&p, DATA_PRE_TORCH, S, NULL) == 0);
    data_pre_apply(&p, src, false, out);
    CHECK_NEAR(out[0], (1.0 - 0.485) / 0.229, 1e-5);
    CHECK_NEAR(out[1], (0.0 - 0.456) / 0.224, 1e-5);
    CHECK_NEAR(out[2], (128 / 255.0 - 0.406) / 0.225, 1e-5);
    data_pre_deinit(&p);

    REQUIRE(data_pre_init(&p, DATA_PRE_NONE, S, NULL) == 0);
    data_pre_apply(&p, src, false, out);
    CHECK(out[0] == 255 && out[1] == 0 && out[2] == 128);
    data_pre_deinit(&p);

    float mean[S * S * 3];
    for (int i = 0; i < S * S * 3; i++)
        mean[i] = 0.5f * i;
    CHECK(data_pre_init(&p, DATA_PRE_PIXEL_MEAN, S, NULL) == -1);
    REQUIRE(data_pre_init(&p, DATA_PRE_PIXEL_MEAN, S, mean) == 0);
    data_pre_apply(&p, src, false, out);
    for (int i = 0; i < S * S * 3; i++)
        CHECK_NEAR(out[i], src[i] - 0.5 * i, 1e-5);
    data_pre_deinit(&p);

    DataPreMode m;
    CHECK(data_pre_parse("pixel_mean", &m) == 0 && m == DATA_PRE_PIXEL_MEAN);
    CHECK(data_pre_parse("imagenet", &m) == -1);
    CHECK_STR(data_pre_name(DATA_PRE_CAFFE), "caffe");
}

TEST(data_preprocess_flip_mirrors_columns)
{
    uint8_t src[S * S * 3];
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++)
                src[(y * S + x) * 3 + c] = (uint8_t)(10 * x + 100 * c + y);
    float a[S * S * 3];
    DataPreprocess p;
    REQUIRE(data_pre_init(&p, DATA_PRE_NONE, S, NULL) == 0);
    data_pre_apply(&p, src, true, a);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++)
                CHECK_NEAR(a[(y * S + x) * 3 + c], 10 * (S - 1 - x) + 100 * c + y, 0);
    data_pre_deinit(&p);
}

typedef struct {
    char *dir, *cdir;
    DatasetIndex *x;
    DataCache *cache;
    DataPreprocess pre;
} Fixture;

/* 3 classes x 10 images of S x S, each image distinct and left-right asymmetric. */
static int fixture_open(Fixture *f)
{
    memset(f, 0, sizeof *f);
    f->dir = fixture_data_tmpdir();
    f->cdir = fixture_data_tmpdir();
    if (!f->dir || !f->cdir)
        return -1;
    uint8_t rgb[S * S * 3];
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 10; k++) {
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    rgb[(y * S + x) * 3] = (uint8_t)(20 * c + 2 * k * (x + 1));
                    rgb[(y * S + x) * 3 + 1] = (uint8_t)(40 * x);
                    rgb[(y * S + x) * 3 + 2] = (uint8_t)(25 * k);
                }
            char rel[64];
            snprintf(rel, sizeof rel, "c%d/i%02d.jpg", c, k);
            if (fixture_data_write_jpeg(f->dir, rel, rgb, S, S, 3, 100) != 0)
                return -1;
        }
    char err[512];
    if (data_scan(f->dir, NULL, &f->x, err, sizeof err) != 0 ||
        data_split_assign(f->x, DATA_SPLIT_DEFAULT, 0) != 0)
        return -1;
    DataCacheConfig cfg = {.dir = f->cdir, .size = S};
    if (data_cache_open(f->x, &cfg, &f->cache, err, sizeof err) != 0)
        return -1;
    return data_pre_init(&f->pre, DATA_PRE_TF, S, NULL);
}

static void fixture_close(Fixture *f)
{
    data_pre_deinit(&f->pre);
    data_cache_free(f->cache);
    data_index_free(f->x);
    fixture_data_rmrf(f->dir);
    fixture_data_rmrf(f->cdir);
    free(f->dir);
    free(f->cdir);
}

#define MAXN 64

typedef struct {
    int n, batches, sizes[MAXN], idx[MAXN], labels[MAXN], flipped[MAXN];
    float first[MAXN]; /* first value of each image */
} Epoch;

/* Runs one epoch; records order, labels and whether each image came out mirrored. */
static void run_epoch(Fixture *f, int threads, int ring, int batch, bool flip, bool drop_last,
                      const int *indices, int n, uint64_t seed, Epoch *e)
{
    memset(e, 0, sizeof *e);
    DataLoader *ld = data_loader_create(&(DataLoaderConfig){
        .cache = f->cache, .pre = &f->pre, .batch_size = batch, .threads = threads,
        .ring = ring, .flip = flip, .drop_last = drop_last});
    if (!ld)
        return;
    data_loader_start(ld, indices, n, seed, true);
    DataBatch b;
    float plain[S * S * 3], mirror[S * S * 3];
    while (data_loader_next(ld, &b) == 1 && e->batches < MAXN) {
        CHECK_INT(b.number, e->batches);
        e->sizes[e->batches++] = b.n;
        for (int k = 0; k < b.n && e->n < MAXN; k++) {
            int i = b.indices[k];
            const float *img = b.images + (size_t)k * S * S * 3;
            data_pre_apply(&f->pre, data_cache_image(f->cache, i), false, plain);
            data_pre_apply(&f->pre, data_cache_image(f->cache, i), true, mirror);
            int is_plain = memcmp(img, plain, sizeof plain) == 0;
            int is_mirror = memcmp(img, mirror, sizeof mirror) == 0;
            CHECK(is_plain || is_mirror);
            e->idx[e->n] = i;
            e->labels[e->n] = b.labels[k];
            e->flipped[e->n] = !is_plain;
            e->first[e->n] = img[0];
            e->n++;
        }
    }
    data_loader_free(ld);
}

static int same_epoch(const Epoch *a, const Epoch *b)
{
    return a->n == b->n && a->batches == b->batches &&
           memcmp(a->idx, b->idx, sizeof a->idx) == 0 &&
           memcmp(a->flipped, b->flipped, sizeof a->flipped) == 0 &&
           memcmp(a->sizes, b->sizes, sizeof a->sizes) == 0 &&
           memcmp(a->first, b->first, sizeof a->first) == 0;
}

TEST(data_loader_order_is_deterministic_across_threads)
{
    Fixture f;
    REQUIRE(fixture_open(&f) == 0);
    int *train, n;
    REQUIRE(data_split_indices(f.x, DATA_SPLIT_TRAIN, &train, &n) == 0);
    CHECK_INT(n, 18);
    Epoch one, two, again, other;
    run_epoch(&f, 1, 2, 4, true, false, train, n, 77, &one);
    run_epoch(&f, 2, 0, 4, true, false, train, n, 77, &two);
    run_epoch(&f, 2, 5, 4, true, false, train, n, 77, &again);
    run_epoch(&f, 2, 0, 4, true, false, train, n, 78, &other);
    CHECK(same_epoch(&one, &two));
    CHECK(same_epoch(&one, &again));
    CHECK(!same_epoch(&one, &other));

    /* the documented contract: a Fisher-Yates shuffle with rng_derive(seed, 0), one flip
     * draw per position from rng_derive(seed, 1) */
    int want[18];
    memcpy(want, train, sizeof want);
    Rng r;
    rng_seed(&r, rng_derive(77, 0));
    rng_shuffle_int(&r, want, n);
    rng_seed(&r, rng_derive(77, 1));
    int flips = 0;
    for (int i = 0; i < n; i++) {
        CHECK_INT(one.idx[i], want[i]);
        int fl = (int)(rng_u64(&r) >> 63);
        CHECK_INT(one.flipped[i], fl);
        flips += fl;
        CHECK_INT(one.labels[i], f.x->labels[one.idx[i]]);
    }
    CHECK(flips > 0 && flips < n);
    /* 18 images in batches of 4: 4, 4, 4, 4, 2 */
    CHECK_INT(one.batches, 5);
    CHECK_INT(one.sizes[4], 2);
    free(train);
    fixture_close(&f);
}

TEST(data_loader_epoch_covers_every_image_once)
{
    Fixture f;
    REQUIRE(fixture_open(&f) == 0);
    int all[30];
    for (int i = 0; i < 30; i++)
        all[i] = i;
    Epoch e;
    run_epoch(&f, 2, 3, 7, false, false, all, 30, 5, &e);
    CHECK_INT(e.n, 30);
    int seen[30] = {0}, flips = 0, in_order = 1;
    for (int i = 0; i < e.n; i++) {
        seen[e.idx[i]]++;
        flips += e.flipped[i];
        in_order &= e.idx[i] == i;
    }
    for (int i = 0; i < 30; i++)
        CHECK_INT(seen[i], 1);
    CHECK_INT(flips, 0);
    CHECK(!in_order);
    /* drop_last: 30 = 4 * 7 + 2, the last 2 are dropped */
    run_epoch(&f, 2, 3, 7, false, true, all, 30, 5, &e);
    CHECK_INT(e.batches, 4);
    CHECK_INT(e.n, 28);
    fixture_close(&f);
}

TEST(data_loader_stop_and_restart)
{
    Fixture f;
    REQUIRE(fixture_open(&f) == 0);
    int all[30];
    for (int i = 0; i < 30; i++)
        all[i] = i;
    DataLoader *ld = data_loader_create(&(DataLoaderConfig){
        .cache = f.cache, .pre = &f.pre, .batch_size = 3, .threads = 2, .flip = true});
    REQUIRE(ld);
    DataBatch b;
    CHECK_INT(data_loader_next(ld, &b), 0); /* no epoch yet */
    for (int round = 0; round < 3; round++) {
        REQUIRE(data_loader_start(ld, all, 30, 11, true) == 0);
        CHECK_INT(data_loader_batches(ld), 10);
        REQUIRE(data_loader_next(ld, &b) == 1);
        CHECK_INT(b.number, 0);
        REQUIRE(data_loader_next(ld, &b) == 1);
        CHECK_INT(b.number, 1);
        data_loader_stop(ld);
        CHECK_INT(data_loader_next(ld, &b), 0);
    }
    /* restart runs a full epoch; the same seed yields the same first batch */
    REQUIRE(data_loader_start(ld, all, 30, 11, true) == 0);
    int count = 0, first[3];
    while (data_loader_next(ld, &b) == 1) {
        if (count == 0)
            memcpy(first, b.indices, sizeof first);
        count += b.n;
    }
    CHECK_INT(count, 30);
    CHECK(data_loader_wait_seconds(ld) >= 0);
    REQUIRE(data_loader_start(ld, all, 30, 11, true) == 0);
    REQUIRE(data_loader_next(ld, &b) == 1);
    CHECK(memcmp(first, b.indices, sizeof first) == 0);
    /* an empty epoch */
    REQUIRE(data_loader_start(ld, all, 0, 1, true) == 0);
    CHECK_INT(data_loader_next(ld, &b), 0);
    data_loader_free(ld);
    fixture_close(&f);
}

TEST(data_loader_read_batch_is_the_probe)
{
    Fixture f;
    REQUIRE(fixture_open(&f) == 0);
    int probe[6];
    int n = data_split_probe(f.x, 6, 0, probe);
    CHECK_INT(n, 6);
    float *imgs = malloc(sizeof(float) * 6 * S * S * 3), one[S * S * 3];
    int labels[6];
    REQUIRE(imgs);
    data_read_batch(f.cache, &f.pre, probe, n, imgs, labels);
    for (int k = 0; k < n; k++) {
        CHECK_INT(labels[k], f.x->labels[probe[k]]);
        CHECK_INT(f.x->split[probe[k]], DATA_SPLIT_VAL);
        const uint8_t *src = data_cache_image(f.cache, probe[k]);
        for (int j = 0; j < S * S * 3; j++)
            one[j] = src[j] / 127.5f - 1.0f;
        for (int j = 0; j < S * S * 3; j++)
            CHECK_NEAR(imgs[k * S * S * 3 + j], one[j], 1e-6);
    }
    free(imgs);
    fixture_close(&f);
}

TEST(data_loader_rejects_bad_config)
{
    Fixture f;
    REQUIRE(fixture_open(&f) == 0);
    CHECK(data_loader_create(&(DataLoaderConfig){.cache = f.cache, .pre = &f.pre}) == NULL);
    DataPreprocess other;
    REQUIRE(data_pre_init(&other, DATA_PRE_TF, S + 1, NULL) == 0);
    CHECK(data_loader_create(&(DataLoaderConfig){.cache = f.cache, .pre = &other,
                                                 .batch_size = 2}) == NULL);
    data_pre_deinit(&other);
    fixture_close(&f);
}
