/* test_util_signif.c — Table 1's statistics against scipy.stats (values computed with scipy
 * 1.10: ttest_ind(equal_var=False), t.ppf, betainc, permutation_test(n_resamples=inf)). */
#include "test.h"

#include <math.h>

#include "util/signif.h"

TEST(util_signif_special_functions_match_scipy)
{
    CHECK_NEAR(signif_betainc(2.5, 0.5, 0.3), 0.01892712407194565, 1e-13);
    CHECK_NEAR(signif_betainc(10, 3, 0.9), 0.889130022255, 1e-11);
    /* scipy's t.ppf is good to about 1e-10; for 2 degrees of freedom the quantile has a
     * closed form, (2p − 1)/√(2p(1 − p)), which ours meets to the last digits */
    CHECK_NEAR(signif_t_quantile(0.975, 2), 4.302652729911275, 1e-9);
    CHECK_NEAR(signif_t_quantile(0.975, 2), 0.95 / sqrt(2 * 0.975 * 0.025), 1e-13);
    CHECK_NEAR(signif_t_quantile(0.975, 3.8059405940594067), 2.8331774490550985, 1e-9);
    CHECK_NEAR(signif_t_quantile(0.025, 7.5), -2.3330396265553763, 1e-9);
    CHECK_NEAR(signif_t_sf2(0, 5), 1.0, 1e-15);
    CHECK(isnan(signif_t_sf2(1, 0)));
}

TEST(util_signif_welch_matches_scipy)
{
    const double a[] = {0.91, 0.93, 0.92}, b[] = {0.89, 0.90, 0.915};
    SignifWelch w = signif_welch(a, 3, b, 3);
    CHECK_NEAR(w.t, 1.9756583222945199, 1e-12);
    CHECK_NEAR(w.p, 0.12299329488698928, 1e-12);
    CHECK_NEAR(w.df, 3.8059405940594067, 1e-12);
    double half = 2.8331774490550985 * (w.diff / w.t);
    CHECK_NEAR(w.lo, w.diff - half, 1e-11);
    CHECK_NEAR(w.hi, w.diff + half, 1e-11);
    const double c[] = {1, 2, 3, 4, 5.5}, d[] = {2, 4, 6, 8};
    w = signif_welch(c, 5, d, 4);
    CHECK_NEAR(w.t, -1.2592265631471111, 1e-12);
    CHECK_NEAR(w.p, 0.26263994655563233, 1e-12);
    /* undefined: one value a side, or no spread at all */
    CHECK(isnan(signif_welch(a, 1, b, 3).p));
    const double same[] = {0.5, 0.5, 0.5};
    CHECK(isnan(signif_welch(same, 3, same, 3).p));
}

TEST(util_signif_mean_interval_matches_scipy)
{
    const double a[] = {0.91, 0.93, 0.92};
    SignifMean m = signif_mean_ci(a, 3);
    CHECK_NEAR(m.mean, 0.92, 1e-15);
    CHECK_NEAR(m.std, 0.01, 1e-15);
    CHECK_NEAR(m.lo, 0.8951586228815624, 1e-11);
    CHECK_NEAR(m.hi, 0.9448413771184376, 1e-11);
    SignifMean one = signif_mean_ci(a, 1);
    CHECK(isnan(one.std) && isnan(one.lo) && one.mean == 0.91);
}

TEST(util_signif_permutation_exact_matches_scipy)
{
    const double a[] = {0.91, 0.93, 0.92}, b[] = {0.89, 0.90, 0.915};
    SignifPermutation p;
    REQUIRE(signif_permutation(a, 3, b, 3, 1000000, 1000, 1, &p) == 0);
    CHECK(p.exact);
    CHECK_INT(p.splits, 20);
    CHECK_NEAR(p.p, 0.2, 1e-15); /* 3 + 3 seeds can say no less than 2/20 */
    const double c[] = {1, 2, 3, 4, 5.5}, d[] = {2, 4, 6, 8};
    REQUIRE(signif_permutation(c, 5, d, 4, 1000000, 1000, 1, &p) == 0);
    CHECK_INT(p.splits, 126);
    CHECK_NEAR(p.p, 0.25396825396825395, 1e-15);
    /* identical groups: every split is as extreme */
    REQUIRE(signif_permutation(a, 3, a, 3, 1000000, 1000, 1, &p) == 0);
    CHECK_NEAR(p.p, 1.0, 0);
}

TEST(util_signif_permutation_samples_when_splits_are_many)
{
    double a[20], b[20];
    for (int i = 0; i < 20; i++) {
        a[i] = i;
        b[i] = i + 10.0; /* clearly apart: a small p */
    }
    SignifPermutation p, q;
    REQUIRE(signif_permutation(a, 20, b, 20, 1000000, 20000, 7, &p) == 0);
    CHECK(!p.exact);
    CHECK_INT(p.splits, 20000);
    CHECK(p.p > 0 && p.p < 0.01);
    /* seeded: the same answer again */
    REQUIRE(signif_permutation(a, 20, b, 20, 1000000, 20000, 7, &q) == 0);
    CHECK(p.p == q.p);
}
