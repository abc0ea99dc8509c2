/* test_util_peak.c — the FMA loop of every ISA path this CPU has computes exactly what a
 * scalar loop does, the measurements return their exact checksum and a positive rate, and
 * the streaming pass copies correctly. No speed is asserted. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "util/isa.h"
#include "util/peak.h"

/* Every path: n steps of x = x + 1 from x0 = j give j + n, exactly (all below 2^24). */
TEST(peak_fma_run_counts_steps_exactly)
{
    for (Isa isa = ISA_GENERIC; isa <= isa_best(); isa++) {
        int lanes = peak_lanes(isa);
        CHECK_INT(lanes, PEAK_CHAINS * isa_floats(isa));
        float x[PEAK_CHAINS * 16];
        for (int j = 0; j < lanes; j++)
            x[j] = (float)j;
        double flops = peak_fma_run(isa, 1000, 1.0f, 1.0f, x);
        CHECK(flops == 2.0 * 1000 * lanes);
        int wrong = 0;
        for (int j = 0; j < lanes; j++)
            wrong += x[j] != (float)(j + 1000);
        if (wrong)
            printf("  %s: %d of %d chains wrong\n", isa_name(isa), wrong, lanes);
        CHECK_INT(wrong, 0);
    }
}

/* With a multiplier that rounds, the vector paths match fmaf (one rounding) and the
 * generic path a multiply then an add (two), bit for bit. */
TEST(peak_fma_run_matches_the_scalar_loop)
{
    for (Isa isa = ISA_GENERIC; isa <= isa_best(); isa++) {
        int lanes = peak_lanes(isa);
        float x[PEAK_CHAINS * 16], want[PEAK_CHAINS * 16];
        for (int j = 0; j < lanes; j++)
            x[j] = want[j] = 0.1f * (float)j - 3.3f;
        const float a = 0.9f, b = 0.37f;
        const long n = 333;
        peak_fma_run(isa, n, a, b, x);
        for (int j = 0; j < lanes; j++)
            for (long i = 0; i < n; i++) {
                if (isa == ISA_GENERIC) {
                    volatile float p = want[j] * a; /* rounded before the add */
                    want[j] = p + b;
                } else {
                    want[j] = fmaf(want[j], a, b);
                }
            }
        int wrong = 0;
        for (int j = 0; j < lanes; j++)
            wrong += memcmp(&x[j], &want[j], sizeof(float)) != 0;
        if (wrong)
            printf("  %s: %d of %d chains differ from the scalar loop\n", isa_name(isa), wrong,
                   lanes);
        CHECK_INT(wrong, 0);
    }
}

/* A measurement's chains end at the fixed point 0.5, on one thread and on several. */
TEST(peak_fma_measures_every_isa)
{
    for (Isa isa = ISA_GENERIC; isa <= isa_best(); isa++)
        for (int threads = 1; threads <= 2; threads++) {
            PeakFma r;
            REQUIRE(peak_fma(isa, threads, 0.05, &r) == 0);
            CHECK_INT(r.isa, isa);
            CHECK(r.threads >= 1 && r.threads <= threads);
            CHECK(r.checksum == 0.5f * (float)peak_lanes(isa));
            CHECK(r.gflops > 0 && isfinite(r.gflops));
        }
    PeakFma r;
    CHECK_INT(peak_fma(ISA_GENERIC, 0, 0.05, &r), -1);
    if (isa_best() < ISA_AVX512)
        CHECK_INT(peak_fma(ISA_AVX512, 1, 0.05, &r), -1);
}

/* Odd lengths, more threads than floats: every element is scaled once, nothing beyond. */
TEST(peak_scale_streams_every_element)
{
    const size_t sizes[] = {1, 3, 1000, 4099};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
        for (int threads = 1; threads <= 5; threads += 2) {
            size_t n = sizes[k];
            float *src = malloc(n * sizeof *src), *dst = malloc((n + 1) * sizeof *dst);
            REQUIRE(src && dst);
            for (size_t i = 0; i < n; i++) {
                src[i] = (float)i - 7.5f;
                dst[i] = NAN;
            }
            dst[n] = 42;
            peak_scale(dst, src, n, 2.0f, threads);
            size_t wrong = 0;
            for (size_t i = 0; i < n; i++)
                wrong += dst[i] != 2.0f * src[i];
            CHECK_INT(wrong, 0);
            CHECK(dst[n] == 42);
            free(src);
            free(dst);
        }
}

TEST(peak_bandwidth_measures_a_small_buffer)
{
    PeakBandwidth r;
    REQUIRE(peak_bandwidth(2, (4u << 20) + 6, 0.05, &r) == 0);
    CHECK(r.bytes == (4u << 20) + 4);
    CHECK(r.threads >= 1 && r.threads <= 2);
    CHECK(r.gbs > 0 && isfinite(r.gbs));
    CHECK_INT(peak_bandwidth(0, 1 << 20, 0.05, &r), -1);
    size_t def = peak_stream_bytes();
    CHECK(def >= (1u << 20) && def <= (256u << 20) && def % 4096 == 0);
}
