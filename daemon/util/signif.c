/* signif.c — means with intervals, Welch's t-test and permutation tests (signif.h). */
#include "util/signif.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/rng.h"

/* Continued fraction of the incomplete beta function (modified Lentz's method). */
static double betacf(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-16;
    double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny)
        d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 10000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < eps)
            break;
    }
    return h;
}

double signif_betainc(double a, double b, double x)
{
    if (!(a > 0 && b > 0 && x >= 0 && x <= 1))
        return NAN;
    if (x == 0 || x == 1)
        return x;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2))
        return exp(lbt) * betacf(a, b, x) / a;
    return 1 - exp(lbt) * betacf(b, a, 1 - x) / b;
}

double signif_t_sf2(double t, double df)
{
    if (!(df > 0) || isnan(t))
        return NAN;
    if (isinf(t))
        return 0;
    double x = df / (df + t * t);
    return signif_betainc(df / 2, 0.5, x);
}

double signif_t_quantile(double p, double df)
{
    if (!(p > 0 && p < 1 && df > 0))
        return NAN;
    if (p == 0.5)
        return 0;
    /* P(T <= t) for t > 0 is 1 − sf2(t)/2; solve for |t| with the upper tail. */
    double tail = p < 0.5 ? p : 1 - p, lo = 0, hi = 1;
    while (signif_t_sf2(hi, df) / 2 > tail && hi < 1e300)
        hi *= 2;
    for (int i = 0; i < 300 && hi - lo > 1e-15 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (signif_t_sf2(mid, df) / 2 > tail)
            lo = mid;
        else
            hi = mid;
    }
    double t = 0.5 * (lo + hi);
    return p < 0.5 ? -t : t;
}

/* Mean and sample variance (n − 1), two passes. */
static void moments(const double *x, int n, double *mean, double *var)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += x[i];
    *mean = n ? s / n : NAN;
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (x[i] - *mean) * (x[i] - *mean);
    *var = n > 1 ? ss / (n - 1) : NAN;
}

SignifMean signif_mean_ci(const double *x, int n)
{
    SignifMean m = {.n = n, .lo = NAN, .hi = NAN};
    double var;
    moments(x, n, &m.mean, &var);
    m.std = n > 1 ? sqrt(var) : NAN;
    if (n > 1) {
        double half = signif_t_quantile(0.975, n - 1) * m.std / sqrt((double)n);
        m.lo = m.mean - half;
        m.hi = m.mean + half;
    }
    return m;
}

SignifWelch signif_welch(const double *a, int na, const double *b, int nb)
{
    SignifWelch w = {.diff = NAN, .t = NAN, .df = NAN, .p = NAN, .lo = NAN, .hi = NAN};
    double ma, va, mb, vb;
    moments(a, na, &ma, &va);
    moments(b, nb, &mb, &vb);
    if (na > 0 && nb > 0)
        w.diff = ma - mb;
    if (na < 2 || nb < 2)
        return w;
    double sa = va / na, sb = vb / nb, se2 = sa + sb;
    if (!(se2 > 0))
        return w;
    double se = sqrt(se2);
    w.t = w.diff / se;
    w.df = se2 * se2 / (sa * sa / (na - 1) + sb * sb / (nb - 1));
    w.p = signif_t_sf2(w.t, w.df);
    double half = signif_t_quantile(0.975, w.df) * se;
    w.lo = w.diff - half;
    w.hi = w.diff + half;
    return w;
}

/* C(n, k), or INT64_MAX when it exceeds cap. */
static int64_t choose_capped(int n, int k, int64_t cap)
{
    if (k > n - k)
        k = n - k;
    double c = 1;
    for (int i = 1; i <= k; i++) {
        c = c * (n - k + i) / i;
        if (c > (double)cap)
            return INT64_MAX;
    }
    return (int64_t)llround(c);
}

int signif_permutation(const double *a, int na, const double *b, int nb, int64_t max_exact,
                       int resamples, uint64_t seed, SignifPermutation *out)
{
    SignifPermutation r = {.p = NAN};
    if (na < 1 || nb < 1) {
        *out = r;
        return 0;
    }
    int n = na + nb;
    double *pool = malloc(sizeof(double) * (size_t)n);
    int *pick = malloc(sizeof(int) * (size_t)n);
    if (!pool || !pick) {
        free(pool);
        free(pick);
        return -1;
    }
    memcpy(pool, a, sizeof(double) * (size_t)na);
    memcpy(pool + na, b, sizeof(double) * (size_t)nb);
    double total = 0;
    for (int i = 0; i < n; i++)
        total += pool[i];
    double ma, va, mb, vb;
    moments(a, na, &ma, &va);
    moments(b, nb, &mb, &vb);
    double observed = ma - mb;
    double gamma = fmax(1e-14, fabs(1e-14 * observed));
    int64_t less = 0, greater = 0, count = 0;
    int64_t combos = choose_capped(n, na, max_exact);
    /* The statistic of a split from the sum of group a: mean(a) − mean(rest). */
#define COUNT_SPLIT(sum_a)                                                                \
    do {                                                                                  \
        double t_ = (sum_a) / na - (total - (sum_a)) / nb;                                \
        less += t_ <= observed + gamma;                                                   \
        greater += t_ >= observed - gamma;                                                \
        count++;                                                                          \
    } while (0)
    if (combos != INT64_MAX) {
        /* Every k-subset in lexicographic order. */
        for (int i = 0; i < na; i++)
            pick[i] = i;
        for (;;) {
            double s = 0;
            for (int i = 0; i < na; i++)
                s += pool[pick[i]];
            COUNT_SPLIT(s);
            int i = na - 1;
            while (i >= 0 && pick[i] == n - na + i)
                i--;
            if (i < 0)
                break;
            pick[i]++;
            for (int j = i + 1; j < na; j++)
                pick[j] = pick[j - 1] + 1;
        }
        r.exact = true;
        r.splits = count;
        r.p = 2.0 * (double)(less < greater ? less : greater) / (double)count;
    } else {
        Rng rng;
        rng_seed(&rng, seed);
        for (int i = 0; i < n; i++)
            pick[i] = i;
        for (int k = 0; k < resamples; k++) {
            /* the first na of a partial Fisher–Yates shuffle */
            double s = 0;
            for (int i = 0; i < na; i++) {
                int j = i + (int)rng_below(&rng, (uint64_t)(n - i));
                int t = pick[i];
                pick[i] = pick[j];
                pick[j] = t;
                s += pool[pick[i]];
            }
            COUNT_SPLIT(s);
        }
        r.exact = false;
        r.splits = count;
        r.p = 2.0 * (double)((less < greater ? less : greater) + 1) / (double)(count + 1);
    }
#undef COUNT_SPLIT
    if (r.p > 1)
        r.p = 1;
    free(pool);
    free(pick);
    *out = r;
    return 0;
}
