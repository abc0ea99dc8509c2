/* test_data_split.c — the stratified split: exact part sizes, determinism, independence of
 * classes, parsing, and the probe set. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/scan.h"
#include "data/split.h"
#include "test.h"
#include "util/rng.h"

/* An index without files on disk: class c has sizes[c] files "<name>/f_<k>.jpg". */
static DatasetIndex *fake_index(int n_classes, const int *sizes, const char *const *names)
{
    int n = 0;
    for (int c = 0; c < n_classes; c++)
        n += sizes[c];
    DatasetIndex *x = calloc(1, sizeof *x);
    x->root = strdup("/nonexistent");
    x->n_classes = n_classes;
    x->class_names = calloc((size_t)n_classes, sizeof *x->class_names);
    x->paths = calloc((size_t)n + 1, sizeof *x->paths);
    x->labels = calloc((size_t)n + 1, sizeof *x->labels);
    x->sizes = calloc((size_t)n + 1, sizeof *x->sizes);
    x->mtimes = calloc((size_t)n + 1, sizeof *x->mtimes);
    x->widths = calloc((size_t)n + 1, sizeof *x->widths);
    x->heights = calloc((size_t)n + 1, sizeof *x->heights);
    x->split = malloc((size_t)n + 1);
    memset(x->split, DATA_SPLIT_NONE, (size_t)n + 1);
    for (int c = 0; c < n_classes; c++) {
        char buf[64];
        if (names)
            x->class_names[c] = strdup(names[c]);
        else {
            snprintf(buf, sizeof buf, "class_%03d", c);
            x->class_names[c] = strdup(buf);
        }
        for (int k = 0; k < sizes[c]; k++) {
            snprintf(buf, sizeof buf, "%s/f_%05d.jpg", x->class_names[c], k);
            x->paths[x->n_files] = strdup(buf);
            x->labels[x->n_files] = c;
            x->n_files++;
        }
    }
    return x;
}

TEST(data_split_counts_are_within_one_image)
{
    Rng r;
    rng_seed(&r, 7);
    for (int trial = 0; trial < 2000; trial++) {
        int n = (int)rng_below(&r, 500);
        double a = rng_uniform(&r), b = rng_uniform(&r) * (1 - a);
        DataSplitFractions f = {a, b, 1 - a - b};
        if (trial == 0)
            f = DATA_SPLIT_DEFAULT;
        int k[3];
        data_split_counts(n, f, k);
        CHECK_INT(k[0] + k[1] + k[2], n);
        CHECK(fabs(k[0] - n * f.train) < 1.0);
        CHECK(fabs(k[1] - n * f.val) < 1.0);
        CHECK(fabs(k[2] - n * f.test) < 1.0);
    }
    int k[3];
    data_split_counts(10, DATA_SPLIT_DEFAULT, k);
    CHECK(k[0] == 6 && k[1] == 2 && k[2] == 2);
    data_split_counts(7, DATA_SPLIT_DEFAULT, k); /* 4.2, 1.4, 1.4 -> 4, 2, 1 */
    CHECK(k[0] == 4 && k[1] == 2 && k[2] == 1);
}

TEST(data_split_is_stratified)
{
    /* imbalanced, like the paper's 800..24,300 per species, scaled down */
    const int sizes[5] = {8, 243, 1, 57, 1000};
    DatasetIndex *x = fake_index(5, sizes, NULL);
    DataSplitFractions f = DATA_SPLIT_DEFAULT;
    REQUIRE(data_split_assign(x, f, 42) == 0);
    for (int c = 0; c < 5; c++) {
        double want[3] = {sizes[c] * f.train, sizes[c] * f.val, sizes[c] * f.test};
        int total = 0;
        for (int s = 0; s < 3; s++) {
            int got = data_index_count(x, c, s);
            CHECK(fabs(got - want[s]) < 1.0);
            total += got;
        }
        CHECK_INT(total, sizes[c]);
    }
    f = (DataSplitFractions){0.7, 0.3, 0.0};
    REQUIRE(data_split_assign(x, f, 42) == 0);
    CHECK_INT(data_index_count(x, 4, DATA_SPLIT_TRAIN), 700);
    CHECK_INT(data_index_count(x, 4, DATA_SPLIT_TEST), 0);
    data_index_free(x);
}

TEST(data_split_is_deterministic)
{
    const int sizes[3] = {100, 37, 250};
    DatasetIndex *a = fake_index(3, sizes, NULL), *b = fake_index(3, sizes, NULL);
    REQUIRE(data_split_assign(a, DATA_SPLIT_DEFAULT, 9) == 0);
    REQUIRE(data_split_assign(b, DATA_SPLIT_DEFAULT, 9) == 0);
    CHECK(memcmp(a->split, b->split, (size_t)a->n_files) == 0);
    REQUIRE(data_split_assign(b, DATA_SPLIT_DEFAULT, 10) == 0);
    CHECK(memcmp(a->split, b->split, (size_t)a->n_files) != 0);
    /* not simply the first 60% of each class */
    int first_train = 0;
    for (int i = 0; i < 60; i++)
        first_train += a->split[i] == DATA_SPLIT_TRAIN;
    CHECK(first_train < 60);
    data_index_free(a);
    data_index_free(b);
}

/* One class's split depends on its own files only: adding a class leaves the others. */
TEST(data_split_classes_are_independent)
{
    const char *names2[2] = {"b_nettle", "c_clover"}, *names3[3] = {"a_new", "b_nettle",
                                                                     "c_clover"};
    const int s2[2] = {50, 70}, s3[3] = {33, 50, 70};
    DatasetIndex *a = fake_index(2, s2, names2), *b = fake_index(3, s3, names3);
    REQUIRE(data_split_assign(a, DATA_SPLIT_DEFAULT, 3) == 0);
    REQUIRE(data_split_assign(b, DATA_SPLIT_DEFAULT, 3) == 0);
    CHECK(memcmp(a->split, b->split + 33, 120) == 0);
    data_index_free(a);
    data_index_free(b);
}

TEST(data_split_parse_checks_fractions)
{
    DataSplitFractions f;
    char err[256];
    CHECK(data_split_parse("0.6,0.2,0.2", &f, err, sizeof err) == 0);
    CHECK_NEAR(f.train, 0.6, 1e-12);
    CHECK_NEAR(f.test, 0.2, 1e-12);
    CHECK(data_split_parse("0.8,0.1,0.1", &f, err, sizeof err) == 0);
    CHECK(data_split_parse("0.6,0.2", &f, err, sizeof err) != 0);
    CHECK(data_split_parse("0.6,0.2,0.3", &f, err, sizeof err) != 0);
    CHECK(data_split_parse("1.2,-0.1,-0.1", &f, err, sizeof err) != 0);
    CHECK(data_split_parse("0.6,0.2,0.2x", &f, err, sizeof err) != 0);
}

TEST(data_split_indices_and_probe)
{
    const int sizes[4] = {40, 5, 100, 12};
    DatasetIndex *x = fake_index(4, sizes, NULL);
    REQUIRE(data_split_assign(x, DATA_SPLIT_DEFAULT, 1) == 0);
    int *val, n_val;
    REQUIRE(data_split_indices(x, DATA_SPLIT_VAL, &val, &n_val) == 0);
    /* 0.2 * sizes: 8, 1, 20 exactly; 12 files: 7.2, 2.4, 2.4 -> 7, 2, 2 and the image
     * left over goes to the first largest remainder, validation: 7, 3, 2 */
    CHECK_INT(n_val, 8 + 1 + 20 + 3);
    for (int i = 0; i < n_val; i++)
        CHECK_INT(x->split[val[i]], DATA_SPLIT_VAL);
    for (int i = 1; i < n_val; i++)
        CHECK(val[i] > val[i - 1]);

    int probe[64], again[64];
    int n = data_split_probe(x, 12, 0, probe);
    CHECK_INT(n, 12);
    CHECK_INT(data_split_probe(x, 12, 0, again), 12);
    CHECK(memcmp(probe, again, sizeof(int) * 12) == 0);
    int per_class[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i++) {
        CHECK_INT(x->split[probe[i]], DATA_SPLIT_VAL);
        per_class[x->labels[probe[i]]]++;
        for (int j = 0; j < i; j++)
            CHECK(probe[i] != probe[j]);
    }
    /* round robin: class 1 has one validation image, class 3 three, 0 and 2 share the rest */
    CHECK_INT(per_class[0], 4);
    CHECK_INT(per_class[1], 1);
    CHECK_INT(per_class[2], 4);
    CHECK_INT(per_class[3], 3);
    CHECK_INT(data_split_probe(x, 64, 0, probe), n_val);
    free(val);
    data_index_free(x);
}
