/* signif.h — statistics over seeds for Table 1: means with 95% intervals, Welch's t-test
 * and the permutation test of a difference of means.
 *
 * The definitions follow scipy.stats, so that a result can be checked against it:
 *   signif_t_sf2        two-sided p of Student's t: 2·P(T_df > |t|) = I_{df/(df+t²)}(df/2, 1/2)
 *                       (regularized incomplete beta by its continued fraction, Lentz)
 *   signif_t_quantile   t with P(T_df <= t) = p (bisection on the distribution function)
 *   signif_mean_ci      mean ± t_{0.975, n−1}·s/√n, s the sample std (n − 1)
 *   signif_welch        scipy.stats.ttest_ind(a, b, equal_var=False): t = (ā − b̄)/SE,
 *                       SE² = s_a²/n_a + s_b²/n_b, Welch–Satterthwaite df, two-sided p;
 *                       and the 95% interval of ā − b̄ (±t_{0.975, df}·SE)
 *   signif_permutation  scipy.stats.permutation_test((a, b), mean(a) − mean(b),
 *                       permutation_type="independent", alternative="two-sided"): every
 *                       split of the pooled values into groups of n_a and n_b when there are
 *                       at most max_exact of them (exact: p = 2·min(#{T ≤ t₀ + γ},
 *                       #{T ≥ t₀ − γ}) / count, clipped to 1, γ = max(1e-14, 1e-14·|t₀|));
 *                       otherwise `resamples` random splits from a seeded stream with
 *                       scipy's +1 correction ((# + 1)/(resamples + 1)), exact = false.
 * Functions are pure and thread-safe; none allocates except signif_permutation
 * (n_a + n_b doubles and ints). */
#ifndef INITLAB_UTIL_SIGNIF_H
#define INITLAB_UTIL_SIGNIF_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int n;
    double mean, std;        /* std: sample (n − 1); NAN for n < 2 */
    double lo, hi;           /* 95% interval of the mean; NAN for n < 2 */
} SignifMean;

typedef struct {
    double diff;             /* mean(a) − mean(b) */
    double t, df, p;         /* NAN when either group has fewer than 2 values or SE is 0 */
    double lo, hi;           /* 95% interval of diff (Welch) */
} SignifWelch;

typedef struct {
    double p;                /* NAN when a group is empty */
    bool exact;              /* every split counted */
    int64_t splits;          /* splits counted (C(n, n_a) when exact) */
} SignifPermutation;

/* Two-sided p of Student's t with df > 0 degrees of freedom; NAN for bad arguments. */
double signif_t_sf2(double t, double df);
/* The p-quantile (0 < p < 1) of Student's t with df > 0; NAN for bad arguments. */
double signif_t_quantile(double p, double df);
/* The regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1. */
double signif_betainc(double a, double b, double x);

SignifMean signif_mean_ci(const double *x, int n);
SignifWelch signif_welch(const double *a, int na, const double *b, int nb);
/* Returns -1 when the work arrays cannot be allocated (result untouched), else 0. */
int signif_permutation(const double *a, int na, const double *b, int nb, int64_t max_exact,
                       int resamples, uint64_t seed, SignifPermutation *out);

#endif
