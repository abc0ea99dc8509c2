/* stats.c — distribution summaries of a tensor (moments, exact quantiles by radix
 * selection, Tukey whiskers, numpy-compatible histogram) and per-layer health flags.
 *
 * stats_summarize reads x four times and never copies it:
 *   A. non-finite and zero counts, min, max, sum, and a histogram of the top 11 bits of
 *      each finite value's order-preserving key (sign, exponent, 2 mantissa bits);
 *   B. centred second moment (corrected two-pass formula), the 64-bin histogram binned
 *      exactly as numpy.histogram(range=(min, max), bins=64) bins float64 data (same
 *      edges, same index fix-ups, so counts agree bin for bin), and a histogram of the
 *      next 11 key bits for the values whose top bits hold a wanted order statistic;
 *   C. a histogram of the last 10 key bits, likewise restricted: after it every wanted
 *      order statistic's key, hence its value, is known exactly;
 *   D. the Tukey whiskers, now that the quartiles are known.
 * The selection is O(n) whatever the data (ties, sorted input, heavy tails) and needs
 * only 160 KiB of counters. */
#include "train/stats.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The 5 quantiles need at most 10 order statistics (each floor((m-1)·p) and the next).
 * Key digits: 11 + 11 + 10 bits. Slot MAX_RANKS of the per-prefix tables is a sink for
 * values outside every wanted prefix, so the counting loops need no branch. */
enum { MAX_RANKS = 10, SINK = MAX_RANKS, D1 = 2048, D2 = 2048, D3 = 1024 };

static inline uint32_t float_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

/* True when the bits u are a finite float (so it holds under any math flags). */
static inline int bits_finite(uint32_t u)
{
    return (u & 0x7f800000u) != 0x7f800000u;
}

static inline int finite_f(float v)
{
    return bits_finite(float_bits(v));
}

/* Maps float bits to a uint32 whose unsigned order is the floats' order (-0 just
 * below +0): negative values get all bits flipped, positive ones the sign bit set. */
static inline uint32_t sort_key(uint32_t u)
{
    return u ^ ((uint32_t)-(int32_t)(u >> 31) | 0x80000000u);
}

static inline float key_value(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? k ^ 0x80000000u : ~k;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* Digit d of the counts h (bins long) whose cumulative range holds *rank; leaves in
 * *rank the rank within that digit. The rank is below the counts' total. */
static uint32_t find_digit(const uint32_t *h, int bins, uint64_t *rank)
{
    uint64_t below = 0;
    for (int d = 0; d < bins; d++) {
        if (*rank < below + h[d]) {
            *rank -= below;
            return (uint32_t)d;
        }
        below += h[d];
    }
    assert(!"rank beyond the counted values");
    return 0;
}

/* Index of prefix p in the list ps (np long), or -1. */
static int prefix_slot(const uint32_t *ps, int np, uint32_t p)
{
    for (int j = 0; j < np; j++)
        if (ps[j] == p)
            return j;
    return -1;
}

/* Adds p to the list ps (np long) unless present; returns the new length. */
static int prefix_add(uint32_t *ps, int np, uint32_t p)
{
    if (prefix_slot(ps, np, p) < 0)
        ps[np++] = p;
    return np;
}

/* Adds floor((m-1)·p) and the next index (when < m) to ranks, unless present. */
static int add_quantile_ranks(uint64_t *ranks, int nr, size_t m, double p)
{
    uint64_t k = (uint64_t)floor((double)(m - 1) * p);
    for (uint64_t r = k; r <= k + 1 && r < m; r++) {
        int seen = 0;
        for (int j = 0; j < nr; j++)
            seen |= ranks[j] == r;
        if (!seen)
            ranks[nr++] = r;
    }
    return nr;
}

/* Value of rank r among ranks / values (nr long); r must be listed. */
static double rank_value(const uint64_t *ranks, const float *values, int nr, uint64_t r)
{
    for (int j = 0; j < nr; j++)
        if (ranks[j] == r)
            return values[j];
    assert(!"rank not selected");
    return 0.0;
}

/* numpy's linear interpolation (numpy.lib.function_base._lerp), same operation order. */
static double lerp_np(double a, double b, double t)
{
    double d = b - a;
    return t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
}

/* Quantile p (type 7) of m values whose order statistics are in ranks / values. */
static double quantile_of(const uint64_t *ranks, const float *values, int nr, size_t m,
                          double p)
{
    double h = (double)(m - 1) * p;
    uint64_t k = (uint64_t)floor(h);
    double a = rank_value(ranks, values, nr, k);
    if (k + 1 >= m)
        return a;
    return lerp_np(a, rank_value(ranks, values, nr, k + 1), h - (double)k);
}

/* Bin edges as numpy.linspace(lo, hi, STATS_BINS + 1) computes them. (numpy's special
 * case for a step that underflows to 0 cannot arise from float data in double.) */
static void hist_edges(double lo, double hi, double *edges /* (STATS_BINS+1) */)
{
    double step = (hi - lo) / STATS_BINS;
    for (int i = 0; i <= STATS_BINS; i++)
        edges[i] = (double)i * step + lo;
    edges[STATS_BINS] = hi;
}

/* Bin of v in [lo, hi] exactly as numpy.histogram assigns it (including its ±1 fix-ups
 * against the edges and the closed last bin). */
static inline int hist_bin(double v, double lo, double norm, const double *edges)
{
    long idx = (long)((v - lo) * norm);
    if (idx >= STATS_BINS)
        idx = STATS_BINS - 1;
    if (v < edges[idx])
        idx--;
    if (idx != STATS_BINS - 1 && v >= edges[idx + 1])
        idx++;
    return (int)idx;
}

int stats_summarize(const float *x, size_t n, float *scratch, StatSummary *out)
{
    (void)scratch;
    assert(out && (x || n == 0));
    assert(n <= UINT32_MAX); /* counters and histogram bins are 32-bit */
    memset(out, 0, sizeof *out);
    out->n = (int64_t)n;
    if (n == 0)
        return 0;
    /* Counters: h1 (D1) of the top digit; h2 (SINK+1, D2) of the middle digit and h3
     * (SINK+1, D3) of the last one, per wanted prefix. slot2 (SINK+1, D2) maps a
     * level-1 slot and a middle digit to a level-2 slot. */
    enum { COUNTERS = D1 + (SINK + 1) * (D2 + D3) };
    uint32_t *h1 = calloc(COUNTERS * sizeof(uint32_t) + (SINK + 1) * D2, 1);
    if (!h1)
        return -1;
    uint32_t *h2 = h1 + D1, *h3 = h2 + (SINK + 1) * D2;
    unsigned char *slot2 = (unsigned char *)(h1 + COUNTERS);
    memset(slot2, SINK, (SINK + 1) * D2);

    /* Pass A. Sums go through 4096-value blocks to keep the double rounding error low. */
    size_t m = 0;
    int64_t zeros = 0;
    float lo = INFINITY, hi = -INFINITY;
    double sum = 0.0, asum = 0.0;
    for (size_t b = 0; b < n; b += 4096) {
        size_t e = b + 4096 < n ? b + 4096 : n;
        double bsum = 0.0, basum = 0.0;
        for (size_t i = b; i < e; i++) {
            uint32_t u = float_bits(x[i]);
            if (!bits_finite(u))
                continue;
            float v = x[i];
            m++;
            zeros += v == 0.0f;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            bsum += v;
            basum += fabsf(v);
            h1[sort_key(u) >> 21]++;
        }
        sum += bsum;
        asum += basum;
    }
    out->nonfinite = (int64_t)(n - m);
    out->zero_frac = (double)zeros / (double)n;
    if (m == 0)
        goto done;
    double mean = sum / (double)m;
    out->mean = mean;
    out->mean_abs = asum / (double)m;
    out->min = lo;
    out->max = hi;

    /* The wanted order statistics and their top digits. The percentages divide as
     * numpy.percentile divides q by 100. */
    const double ps[5] = {1.0 / 100.0, 25.0 / 100.0, 50.0 / 100.0, 75.0 / 100.0,
                          99.0 / 100.0};
    uint64_t ranks[MAX_RANKS], rest[MAX_RANKS];
    uint32_t key[MAX_RANKS], pre1[MAX_RANKS], pre2[MAX_RANKS];
    int nr = 0, n1 = 0, n2 = 0;
    for (int i = 0; i < 5; i++)
        nr = add_quantile_ranks(ranks, nr, m, ps[i]);
    unsigned char slot1[D1];
    memset(slot1, SINK, sizeof slot1);
    for (int t = 0; t < nr; t++) {
        rest[t] = ranks[t];
        key[t] = find_digit(h1, D1, &rest[t]);
        n1 = prefix_add(pre1, n1, key[t]);
    }
    for (int j = 0; j < n1; j++)
        slot1[pre1[j]] = (unsigned char)j;

    /* Pass B. A constant tensor gets numpy's range [v - 0.5, v + 0.5], which puts every
     * value in bin STATS_BINS / 2; where v ± 0.5 rounds back to v (|v| >= 2^53) the
     * values go to that bin directly. */
    double hlo = lo, hhi = hi;
    if (hlo == hhi) {
        hlo -= 0.5;
        hhi += 0.5;
    }
    out->hist_lo = hlo;
    out->hist_hi = hhi;
    double edges[STATS_BINS + 1];
    hist_edges(hlo, hhi, edges);
    double norm = STATS_BINS / (hhi - hlo);
    int degenerate = !(hhi > hlo);
    double ss = 0.0, sd = 0.0;
    for (size_t b = 0; b < n; b += 4096) {
        size_t e = b + 4096 < n ? b + 4096 : n;
        double bss = 0.0, bsd = 0.0;
        for (size_t i = b; i < e; i++) {
            uint32_t u = float_bits(x[i]);
            if (!bits_finite(u))
                continue;
            double v = x[i], d = v - mean;
            bss += d * d;
            bsd += d;
            out->hist[degenerate ? STATS_BINS / 2 : hist_bin(v, hlo, norm, edges)]++;
            uint32_t k = sort_key(u);
            h2[slot1[k >> 21] * D2 + ((k >> 10) & (D2 - 1))]++;
        }
        ss += bss;
        sd += bsd;
    }
    double var = (ss - sd * sd / (double)m) / (double)m;
    out->std = var > 0.0 ? sqrt(var) : 0.0;

    for (int t = 0; t < nr; t++) {
        int j = slot1[key[t]];
        key[t] = key[t] << 11 | find_digit(h2 + j * D2, D2, &rest[t]);
        n2 = prefix_add(pre2, n2, key[t]);
    }
    for (int j = 0; j < n2; j++)
        slot2[slot1[pre2[j] >> 11] * D2 + (pre2[j] & (D2 - 1))] = (unsigned char)j;

    /* Pass C. */
    for (size_t i = 0; i < n; i++) {
        uint32_t u = float_bits(x[i]);
        if (!bits_finite(u))
            continue;
        uint32_t k = sort_key(u);
        int j = slot2[slot1[k >> 21] * D2 + ((k >> 10) & (D2 - 1))];
        h3[j * D3 + (k & (D3 - 1))]++;
    }
    float values[MAX_RANKS];
    for (int t = 0; t < nr; t++) {
        int j = prefix_slot(pre2, n2, key[t]);
        values[t] = key_value(key[t] << 10 | find_digit(h3 + j * D3, D3, &rest[t]));
    }
    out->p1 = quantile_of(ranks, values, nr, m, ps[0]);
    out->q1 = quantile_of(ranks, values, nr, m, ps[1]);
    out->median = quantile_of(ranks, values, nr, m, ps[2]);
    out->q3 = quantile_of(ranks, values, nr, m, ps[3]);
    out->p99 = quantile_of(ranks, values, nr, m, ps[4]);

    /* Pass D: Tukey whiskers, the most extreme values inside the 1.5·IQR fences. Both
     * sets are non-empty (they contain the max and the min respectively). */
    double iqr = out->q3 - out->q1;
    double fence_lo = out->q1 - 1.5 * iqr, fence_hi = out->q3 + 1.5 * iqr;
    float wlo = INFINITY, whi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (!finite_f(v))
            continue;
        if ((double)v >= fence_lo && v < wlo)
            wlo = v;
        if ((double)v <= fence_hi && v > whi)
            whi = v;
    }
    out->whisker_lo = wlo;
    out->whisker_hi = whi;

done:
    free(h1);
    return 0;
}

/* Counts channels of x (rows, C) that are exactly zero in every row. Channels go in
 * blocks so one row of a block is contiguous; a block stops early once all its
 * channels have shown a non-zero value. */
static int count_dead(const float *x, size_t rows, int C)
{
    enum { BLOCK = 512 };
    unsigned char alive[BLOCK];
    int dead = 0;
    for (int c0 = 0; c0 < C; c0 += BLOCK) {
        int w = C - c0 < BLOCK ? C - c0 : BLOCK;
        memset(alive, 0, (size_t)w);
        int n_alive = 0;
        for (size_t r = 0; r < rows && n_alive < w; r++) {
            const float *row = x + r * (size_t)C + c0;
            for (int j = 0; j < w; j++)
                alive[j] |= row[j] != 0.0f;
            if ((r & 7) == 7 || r + 1 == rows) {
                n_alive = 0;
                for (int j = 0; j < w; j++)
                    n_alive += alive[j];
            }
        }
        dead += w - n_alive;
    }
    return dead;
}

void stats_health(const float *x, size_t rows, int C, HealthKind kind, HealthFlags *out)
{
    assert(out && C >= 0 && (x || rows == 0 || C == 0));
    memset(out, 0, sizeof *out);
    size_t total = rows * (size_t)C;
    if (total == 0)
        return;

    int64_t nonfinite = 0, sat = 0;
    switch (kind) {
    case HEALTH_RELU:
    case HEALTH_OTHER:
        for (size_t i = 0; i < total; i++)
            nonfinite += !finite_f(x[i]);
        break;
    case HEALTH_RELU6:
        for (size_t i = 0; i < total; i++) {
            float v = x[i];
            int fin = finite_f(v);
            nonfinite += !fin;
            sat += fin && v >= 6.0f;
        }
        break;
    case HEALTH_SIGMOID:
        for (size_t i = 0; i < total; i++) {
            float v = x[i];
            int fin = finite_f(v);
            nonfinite += !fin;
            sat += fin && (v < 0.01f || v > 0.99f);
        }
        break;
    case HEALTH_TANH:
        for (size_t i = 0; i < total; i++) {
            float v = x[i];
            int fin = finite_f(v);
            nonfinite += !fin;
            sat += fin && fabsf(v) > 0.99f;
        }
        break;
    case HEALTH_SOFTMAX:
        for (size_t r = 0; r < rows; r++) {
            const float *row = x + r * (size_t)C;
            int hit = 0;
            for (int j = 0; j < C; j++) {
                float v = row[j];
                int fin = finite_f(v);
                nonfinite += !fin;
                hit |= fin && v > 0.99f;
            }
            sat += hit;
        }
        break;
    }
    out->nonfinite = nonfinite;
    if (kind == HEALTH_SOFTMAX)
        out->saturated_frac = (double)sat / (double)rows;
    else
        out->saturated_frac = (double)sat / (double)total;
    if (kind == HEALTH_RELU || kind == HEALTH_RELU6) {
        out->units = C;
        out->dead_units = count_dead(x, rows, C);
    }
}
