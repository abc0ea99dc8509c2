/* stats.h — distribution summaries of a tensor (the paper's box plots and histograms) and
 * per-layer health flags.
 *
 * A summary describes one quantity (weights, activations or gradients) of one layer:
 * count, moments (mean, std, mean |x|), extremes, quartiles with Tukey whiskers, 1st/99th percentiles, the
 * fraction of exact zeros, the number of non-finite values and a 64-bin histogram over
 * [min, max] of the finite values. Quantiles use linear interpolation between closest
 * ranks (numpy's default, "type 7"): q(p) = x[floor(h)] + (h - floor(h))·(x[floor(h)+1] -
 * x[floor(h)]), h = (n-1)·p over the sorted finite values. Tukey whiskers are the most
 * extreme data points within [q1 - 1.5·IQR, q3 + 1.5·IQR]. Non-finite values are counted
 * and left out of every other figure. */
#ifndef INITLAB_TRAIN_STATS_H
#define INITLAB_TRAIN_STATS_H

#include <stddef.h>
#include <stdint.h>

#define STATS_BINS 64

typedef struct {
    int64_t n;            /* values summarized, non-finite ones included */
    double mean, std;     /* population std (divide by the finite count) */
    double mean_abs;      /* mean of |x| over the finite values */
    double min, max;
    double q1, median, q3;
    double whisker_lo, whisker_hi;
    double p1, p99;
    double zero_frac;     /* exact zeros / n */
    int64_t nonfinite;    /* NaN and ±inf */
    double hist_lo, hist_hi;          /* histogram range: [min, max] of finite values;
                                         [v - 0.5, v + 0.5] when all equal v (numpy's
                                         rule), so they all land in bin STATS_BINS / 2 */
    uint32_t hist[STATS_BINS];        /* bin i covers [lo + i·w, lo + (i+1)·w), last closed;
                                         counts equal numpy.histogram(finite values as
                                         float64, bins=64, range=(hist_lo, hist_hi)) */
} StatSummary;

/* Summarizes x (n values) in O(n) time (four reads of x; quantiles are exact, by radix
 * selection). scratch is not used — x is never copied — and may be NULL. n may be 0, and
 * all values may be non-finite: then every figure but n and nonfinite is 0. Returns 0,
 * or -1 when 160 KiB of counters cannot be allocated. Thread-safe (no shared state). */
int stats_summarize(const float *x, size_t n, float *scratch, StatSummary *out);

/* Health flags of one layer's activations, measured on the probe batch. */
typedef struct {
    int dead_units;        /* channels that are exactly 0 for every probe value (ReLU family) */
    int units;             /* channels looked at: C for the ReLU family, else 0 */
    double saturated_frac; /* fraction of values at a bound: ReLU6 >= 6; sigmoid < 0.01 or
                              > 0.99; tanh and softsign |x| > 0.99; softmax max > 0.99.
                              Bounds are the floats nearest 0.01 and 0.99, compared
                              strictly. Over all rows·C values (softmax: over rows); a
                              non-finite value is never at a bound. ReLU and other: 0 */
    int64_t nonfinite;
} HealthFlags;

typedef enum {
    HEALTH_RELU,
    HEALTH_RELU6,
    HEALTH_SIGMOID,
    HEALTH_TANH,     /* also softsign: bounds ±1 */
    HEALTH_SOFTMAX,  /* x is (rows, C) probabilities: saturation = rows whose max > 0.99 */
    HEALTH_OTHER,    /* only non-finite values are counted */
} HealthKind;

/* Flags of activations x laid out (rows, C) — NHWC flattened, rows = N·H·W. rows or C
 * may be 0 (all zeros out). Can't fail; thread-safe (no shared state). */
void stats_health(const float *x, size_t rows, int C, HealthKind kind, HealthFlags *out);

#endif
