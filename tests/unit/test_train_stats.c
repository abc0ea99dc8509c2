/* test_train_stats.c — tensor summaries against hand-computed values and a sort-based
 * reference, and health flags on crafted activations. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "train/stats.h"
#include "util/rng.h"

static int64_t hist_total(const StatSummary *s)
{
    int64_t t = 0;
    for (int i = 0; i < STATS_BINS; i++)
        t += s->hist[i];
    return t;
}

TEST(train_stats_one_to_ten)
{
    /* 1..10 in scrambled order: the selection must not rely on sorted input. */
    const float x[10] = {7, 2, 10, 5, 1, 9, 3, 8, 6, 4};
    float scratch[10];
    StatSummary s;
    REQUIRE(stats_summarize(x, 10, scratch, &s) == 0);
    CHECK_INT(s.n, 10);
    CHECK_INT(s.nonfinite, 0);
    CHECK_NEAR(s.mean, 5.5, 1e-12);
    CHECK_NEAR(s.std, sqrt(8.25), 1e-12); /* population variance (n²-1)/12 */
    CHECK_NEAR(s.min, 1, 0);
    CHECK_NEAR(s.max, 10, 0);
    CHECK_NEAR(s.q1, 3.25, 1e-12);
    CHECK_NEAR(s.median, 5.5, 1e-12);
    CHECK_NEAR(s.q3, 7.75, 1e-12);
    CHECK_NEAR(s.p1, 1.09, 1e-12);  /* h = 9·0.01 = 0.09 */
    CHECK_NEAR(s.p99, 9.91, 1e-12); /* h = 8.91 */
    CHECK_NEAR(s.whisker_lo, 1, 0); /* fences -3.5 and 14.5 hold everything */
    CHECK_NEAR(s.whisker_hi, 10, 0);
    CHECK_NEAR(s.zero_frac, 0, 0);
    CHECK_NEAR(s.hist_lo, 1, 0);
    CHECK_NEAR(s.hist_hi, 10, 0);
    CHECK_INT(hist_total(&s), 10);
    /* Width 9/64: value v sits in bin floor((v-1)·64/9); 10 closes the last bin. */
    const int bins[10] = {0, 7, 14, 21, 28, 35, 42, 49, 56, 63};
    for (int i = 0; i < 10; i++)
        CHECK_INT(s.hist[bins[i]], 1);
}

TEST(train_stats_whiskers_exclude_outliers)
{
    /* Sorted: -50, 1..10, 100. q1 at h = 2.75 → 2.75, q3 at h = 8.25 → 8.25, IQR 5.5,
     * fences -5.5 and 16.5: the whiskers stop at 1 and 10. */
    const float x[12] = {100, 3, 1, -50, 10, 2, 9, 4, 8, 5, 7, 6};
    StatSummary s;
    REQUIRE(stats_summarize(x, 12, NULL, &s) == 0);
    CHECK_NEAR(s.q1, 2.75, 1e-12);
    CHECK_NEAR(s.median, 5.5, 1e-12);
    CHECK_NEAR(s.q3, 8.25, 1e-12);
    CHECK_NEAR(s.whisker_lo, 1, 0);
    CHECK_NEAR(s.whisker_hi, 10, 0);
    CHECK_NEAR(s.min, -50, 0);
    CHECK_NEAR(s.max, 100, 0);
    /* A point exactly on a fence is inside, one just beyond it is not. Sorted: -50, 1..5,
     * 7..10, v, 100 → q1 2.75, q3 9.25, IQR 6.5, upper fence 19. */
    float y[12] = {100, 3, 1, -50, 10, 2, 9, 4, 8, 5, 7, 19};
    REQUIRE(stats_summarize(y, 12, NULL, &s) == 0);
    CHECK_NEAR(s.q1, 2.75, 1e-12);
    CHECK_NEAR(s.q3, 9.25, 1e-12);
    CHECK_NEAR(s.whisker_hi, 19, 0);
    CHECK_NEAR(s.whisker_lo, 1, 0);
    y[11] = 19.5f;
    REQUIRE(stats_summarize(y, 12, NULL, &s) == 0);
    CHECK_NEAR(s.whisker_hi, 10, 0);
}

TEST(train_stats_histogram_counts)
{
    /* 0..64: bin width 1, value i in bin i, and 64 on the closed right edge joins 63. */
    float x[65];
    for (int i = 0; i < 65; i++)
        x[64 - i] = (float)i;
    StatSummary s;
    REQUIRE(stats_summarize(x, 65, NULL, &s) == 0);
    for (int i = 0; i < 63; i++)
        CHECK_INT(s.hist[i], 1);
    CHECK_INT(s.hist[63], 2);

    /* Range [0, 1], width 1/64: 0.5 opens bin 32, 0.25 bin 16, 0.2 is in bin 12
     * (12.8), 1/64 opens bin 1. */
    const float y[6] = {0, 1, 0.5f, 0.25f, 0.2f, 0.015625f};
    REQUIRE(stats_summarize(y, 6, NULL, &s) == 0);
    CHECK_INT(s.hist[0], 1);
    CHECK_INT(s.hist[1], 1);
    CHECK_INT(s.hist[12], 1);
    CHECK_INT(s.hist[16], 1);
    CHECK_INT(s.hist[32], 1);
    CHECK_INT(s.hist[63], 1);
    CHECK_INT(hist_total(&s), 6);
}

TEST(train_stats_zeros_and_nonfinite)
{
    /* Finite: 0, -0, 1, 2, 3 (mean 1.2); zero_frac counts over all n = 8. */
    const float x[8] = {0.0f, NAN, -0.0f, 1, INFINITY, 2, -INFINITY, 3};
    StatSummary s;
    REQUIRE(stats_summarize(x, 8, NULL, &s) == 0);
    CHECK_INT(s.n, 8);
    CHECK_INT(s.nonfinite, 3);
    CHECK_NEAR(s.zero_frac, 2.0 / 8.0, 1e-15);
    CHECK_NEAR(s.mean, 1.2, 1e-12);
    CHECK_NEAR(s.std, sqrt((1.44 + 1.44 + 0.04 + 0.64 + 3.24) / 5), 1e-12);
    CHECK_NEAR(s.min, 0, 0);
    CHECK_NEAR(s.max, 3, 0);
    CHECK_NEAR(s.median, 1, 1e-12);
    CHECK_INT(hist_total(&s), 5);
    CHECK_INT(s.hist[0], 2);
    CHECK(isfinite(s.p1) && isfinite(s.p99) && isfinite(s.whisker_lo));
}

TEST(train_stats_empty_and_all_nonfinite)
{
    StatSummary s;
    memset(&s, 0x5a, sizeof s);
    REQUIRE(stats_summarize(NULL, 0, NULL, &s) == 0);
    CHECK_INT(s.n, 0);
    CHECK_INT(s.nonfinite, 0);
    CHECK_NEAR(s.mean, 0, 0);
    CHECK_NEAR(s.zero_frac, 0, 0);
    CHECK_INT(hist_total(&s), 0);

    const float x[3] = {NAN, INFINITY, -NAN};
    memset(&s, 0x5a, sizeof s);
    REQUIRE(stats_summarize(x, 3, NULL, &s) == 0);
    CHECK_INT(s.n, 3);
    CHECK_INT(s.nonfinite, 3);
    CHECK_NEAR(s.mean, 0, 0);
    CHECK_NEAR(s.std, 0, 0);
    CHECK_NEAR(s.q3, 0, 0);
    CHECK_NEAR(s.whisker_hi, 0, 0);
    CHECK_NEAR(s.hist_hi, 0, 0);
    CHECK_INT(hist_total(&s), 0);
}

TEST(train_stats_constant_uses_middle_bin)
{
    float x[7];
    for (int i = 0; i < 7; i++)
        x[i] = 2.5f;
    StatSummary s;
    REQUIRE(stats_summarize(x, 7, NULL, &s) == 0);
    CHECK_NEAR(s.mean, 2.5, 0);
    CHECK_NEAR(s.std, 0, 0);
    CHECK_NEAR(s.q1, 2.5, 0);
    CHECK_NEAR(s.p99, 2.5, 0);
    CHECK_NEAR(s.whisker_lo, 2.5, 0);
    CHECK_NEAR(s.whisker_hi, 2.5, 0);
    CHECK_NEAR(s.hist_lo, 2.0, 0); /* numpy widens an empty range by ±0.5 */
    CHECK_NEAR(s.hist_hi, 3.0, 0);
    CHECK_INT(s.hist[STATS_BINS / 2], 7);
    CHECK_INT(hist_total(&s), 7);

    /* So large that v ± 0.5 rounds back to v: still one bin, no division by zero. */
    const float big[3] = {1e20f, 1e20f, 1e20f};
    REQUIRE(stats_summarize(big, 3, NULL, &s) == 0);
    CHECK_INT(s.hist[STATS_BINS / 2], 3);
    CHECK_NEAR(s.median, 1e20f, 0);
}

TEST(train_stats_one_and_two_values)
{
    const float one = -4.0f;
    StatSummary s;
    REQUIRE(stats_summarize(&one, 1, NULL, &s) == 0);
    CHECK_NEAR(s.median, -4, 0);
    CHECK_NEAR(s.p1, -4, 0);
    CHECK_NEAR(s.p99, -4, 0);
    CHECK_NEAR(s.std, 0, 0);
    CHECK_INT(s.hist[STATS_BINS / 2], 1);

    const float two[2] = {3, 1};
    REQUIRE(stats_summarize(two, 2, NULL, &s) == 0);
    CHECK_NEAR(s.q1, 1.5, 1e-12);
    CHECK_NEAR(s.median, 2, 1e-12);
    CHECK_NEAR(s.q3, 2.5, 1e-12);
    CHECK_NEAR(s.p1, 1.02, 1e-12);
    CHECK_NEAR(s.p99, 2.98, 1e-12);
    CHECK_NEAR(s.std, 1, 1e-12);
    CHECK_INT(s.hist[0], 1);
    CHECK_INT(s.hist[63], 1);
}

/* Reference quantile: full sort, then type-7 interpolation written from the definition. */
static double ref_quantile(const float *sorted, size_t m, double p)
{
    double h = (double)(m - 1) * p;
    size_t k = (size_t)h;
    if (k + 1 >= m)
        return sorted[m - 1];
    return sorted[k] + (h - (double)k) * ((double)sorted[k + 1] - sorted[k]);
}

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Compares quantiles and whiskers with the sort-based reference on x (no NaN). */
static void check_against_sort(const float *x, size_t n)
{
    float *sorted = malloc(n * sizeof *sorted);
    float *scratch = malloc(n * sizeof *scratch);
    REQUIRE(sorted && scratch);
    memcpy(sorted, x, n * sizeof *x);
    qsort(sorted, n, sizeof *sorted, cmp_f);
    StatSummary s;
    REQUIRE(stats_summarize(x, n, scratch, &s) == 0);
    double scale = fabs(sorted[0]) + fabs(sorted[n - 1]) + 1.0;
    CHECK_NEAR(s.p1, ref_quantile(sorted, n, 0.01), 1e-12 * scale);
    CHECK_NEAR(s.q1, ref_quantile(sorted, n, 0.25), 1e-12 * scale);
    CHECK_NEAR(s.median, ref_quantile(sorted, n, 0.5), 1e-12 * scale);
    CHECK_NEAR(s.q3, ref_quantile(sorted, n, 0.75), 1e-12 * scale);
    CHECK_NEAR(s.p99, ref_quantile(sorted, n, 0.99), 1e-12 * scale);
    double iqr = s.q3 - s.q1;
    size_t i = 0;
    while (sorted[i] < s.q1 - 1.5 * iqr)
        i++;
    CHECK_NEAR(s.whisker_lo, sorted[i], 0);
    size_t j = n - 1;
    while (sorted[j] > s.q3 + 1.5 * iqr)
        j--;
    CHECK_NEAR(s.whisker_hi, sorted[j], 0);
    CHECK_NEAR(s.min, sorted[0], 0);
    CHECK_NEAR(s.max, sorted[n - 1], 0);
    free(sorted);
    free(scratch);
}

TEST(train_stats_selection_matches_sort)
{
    Rng r;
    rng_seed(&r, 17);
    size_t sizes[] = {3, 31, 33, 100, 1001, 65537};
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        size_t n = sizes[t];
        float *x = malloc(n * sizeof *x);
        REQUIRE(x);
        for (size_t i = 0; i < n; i++) /* heavy tail: a cube of a normal */
            x[i] = (float)pow(rng_normal(&r), 3);
        check_against_sort(x, n);
        /* ReLU-like: half exact zeros, so the pivot often equals many values. */
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] < 0 ? 0.0f : x[i];
        check_against_sort(x, n);
        /* Few distinct values. */
        for (size_t i = 0; i < n; i++)
            x[i] = (float)rng_below(&r, 4);
        check_against_sort(x, n);
        /* Sorted and reverse-sorted inputs. */
        for (size_t i = 0; i < n; i++)
            x[i] = (float)i;
        check_against_sort(x, n);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(n - i);
        check_against_sort(x, n);
        free(x);
    }
}

TEST(train_stats_large_moments_are_stable)
{
    /* A big offset with a small spread: a one-pass E[x²] - E[x]² formula loses it. */
    enum { N = 100000 };
    float *x = malloc(N * sizeof *x);
    REQUIRE(x);
    for (int i = 0; i < N; i++)
        x[i] = 1000.0f + (i % 2 ? 0.125f : -0.125f);
    StatSummary s;
    REQUIRE(stats_summarize(x, N, NULL, &s) == 0);
    CHECK_NEAR(s.mean, 1000.0, 1e-9);
    CHECK_NEAR(s.std, 0.125, 1e-9);
    CHECK_INT(s.hist[0], N / 2);
    CHECK_INT(s.hist[63], N / 2);
    free(x);
}

TEST(train_stats_health_relu_dead_units)
{
    /* rows 5, C 4: channels 1 and 3 are zero everywhere, channel 2 only in the last row
     * is not. A NaN is not zero, so a channel holding one is not dead. */
    float x[5 * 4] = {0};
    for (int r = 0; r < 5; r++)
        x[r * 4 + 0] = (float)(r + 1);
    x[4 * 4 + 2] = 0.5f;
    HealthFlags h;
    stats_health(x, 5, 4, HEALTH_RELU, &h);
    CHECK_INT(h.units, 4);
    CHECK_INT(h.dead_units, 2);
    CHECK_NEAR(h.saturated_frac, 0, 0);
    CHECK_INT(h.nonfinite, 0);
    x[2 * 4 + 3] = NAN;
    stats_health(x, 5, 4, HEALTH_RELU, &h);
    CHECK_INT(h.dead_units, 1);
    CHECK_INT(h.nonfinite, 1);
}

TEST(train_stats_health_dead_units_many_channels)
{
    /* C 600 spans two channel blocks; dead channels on both sides of the block edge, and
     * channel 7 comes alive only in the last of 20 rows. */
    enum { R = 20, C = 600 };
    float *x = calloc((size_t)R * C, sizeof *x);
    REQUIRE(x);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            if (c != 0 && c != 7 && c != 511 && c != 512 && c != 599)
                x[r * C + c] = (r + c) % 3 ? 1.0f : 0.0f;
    x[(R - 1) * C + 7] = 2.0f;
    HealthFlags h;
    stats_health(x, R, C, HEALTH_RELU6, &h);
    CHECK_INT(h.units, C);
    CHECK_INT(h.dead_units, 4);
    free(x);
}

TEST(train_stats_health_saturation)
{
    HealthFlags h;
    const float relu6[8] = {6, 0, 3, 6, 5.99f, 6, 0, 1};
    stats_health(relu6, 2, 4, HEALTH_RELU6, &h);
    CHECK_NEAR(h.saturated_frac, 3.0 / 8.0, 1e-15);
    CHECK_INT(h.dead_units, 0);

    /* Strict bounds at the floats 0.01 and 0.99; the NaN counts in the denominator. */
    const float sig[8] = {0.005f, 0.5f, 0.995f, 0.01f, 0.99f, NAN, 0.0f, 0.2f};
    stats_health(sig, 4, 2, HEALTH_SIGMOID, &h);
    CHECK_NEAR(h.saturated_frac, 3.0 / 8.0, 1e-15);
    CHECK_INT(h.nonfinite, 1);
    CHECK_INT(h.units, 0);
    CHECK_INT(h.dead_units, 0);

    const float tanh_[6] = {-0.995f, 0.995f, 0.5f, -0.5f, 0.99f, -1.0f};
    stats_health(tanh_, 3, 2, HEALTH_TANH, &h);
    CHECK_NEAR(h.saturated_frac, 3.0 / 6.0, 1e-15);

    /* Softmax rows: saturated when the row's maximum exceeds 0.99. */
    const float sm[9] = {0.995f, 0.003f, 0.002f, 0.5f, 0.3f, 0.2f, 0.001f, 0.998f, 0.001f};
    stats_health(sm, 3, 3, HEALTH_SOFTMAX, &h);
    CHECK_NEAR(h.saturated_frac, 2.0 / 3.0, 1e-15);

    const float other[4] = {1e30f, INFINITY, -INFINITY, 0};
    stats_health(other, 1, 4, HEALTH_OTHER, &h);
    CHECK_INT(h.nonfinite, 2);
    CHECK_NEAR(h.saturated_frac, 0, 0);
    CHECK_INT(h.units, 0);

    stats_health(NULL, 0, 8, HEALTH_RELU, &h);
    CHECK_INT(h.units, 0);
    CHECK_INT(h.dead_units, 0);
    CHECK_INT(h.nonfinite, 0);
}
