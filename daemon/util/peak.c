/* peak.c — the fp32 FMA peak and the streaming memory bandwidth, measured (see peak.h).
 *
 * DESIGN: the kernels for AVX2 and AVX-512 carry GCC's target attribute, so a binary built
 * for x86-64-v2 (the Debian package, the image) still measures the widest set the CPU has;
 * peak_fma_run asserts that isa_best() allows the one asked for. A measurement runs in an
 * OpenMP team of the caller: every thread owns its chains (on its stack) or its contiguous
 * part of the buffers (first touched by the thread that streams it), so nothing is shared
 * but the two timestamps, which one thread takes between barriers.
 *
 * The FMA loop computes x = x·a + b on independent chains; its result is returned and
 * summed, so the compiler must do every step, and the constants of the measurement
 * (a = 0.5, b = 0.25) make every chain reach the fixed point 0.5 exactly after a few dozen
 * steps: the checksum of a measurement is 0.5 × peak_lanes(isa) whatever the step count,
 * which a test checks exactly. */
#include "util/peak.h"

#include <assert.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/sysmem.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PEAK_X86 1
#endif

/* The measurement's constants: the chains converge to b / (1 − a) = 0.5, exactly. */
#define FMA_A 0.5f
#define FMA_B 0.25f

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int peak_lanes(Isa isa)
{
    return PEAK_CHAINS * isa_floats(isa);
}

/* Portable C: a multiply and an add per float (ISO C mode keeps GCC from contracting
 * them into an FMA, so the result is the same with any -march). */
static void run_generic(long n, float a, float b, float *x)
{
    float r[PEAK_CHAINS * 4];
    memcpy(r, x, sizeof r);
    for (long i = 0; i < n; i++)
#pragma GCC unroll 48
        for (int j = 0; j < PEAK_CHAINS * 4; j++)
            r[j] = r[j] * a + b;
    memcpy(x, r, sizeof r);
}

#ifdef PEAK_X86
__attribute__((target("avx2,fma"))) static void run_avx2(long n, float a, float b, float *x)
{
    __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), r[PEAK_CHAINS];
#pragma GCC unroll 16
    for (int j = 0; j < PEAK_CHAINS; j++)
        r[j] = _mm256_loadu_ps(x + 8 * j);
    for (long i = 0; i < n; i++)
#pragma GCC unroll 16
        for (int j = 0; j < PEAK_CHAINS; j++)
            r[j] = _mm256_fmadd_ps(r[j], va, vb);
#pragma GCC unroll 16
    for (int j = 0; j < PEAK_CHAINS; j++)
        _mm256_storeu_ps(x + 8 * j, r[j]);
}

__attribute__((target("avx512f,avx512vl,fma"))) static void run_avx512(long n, float a,
                                                                        float b, float *x)
{
    __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), r[PEAK_CHAINS];
#pragma GCC unroll 16
    for (int j = 0; j < PEAK_CHAINS; j++)
        r[j] = _mm512_loadu_ps(x + 16 * j);
    for (long i = 0; i < n; i++)
#pragma GCC unroll 16
        for (int j = 0; j < PEAK_CHAINS; j++)
            r[j] = _mm512_fmadd_ps(r[j], va, vb);
#pragma GCC unroll 16
    for (int j = 0; j < PEAK_CHAINS; j++)
        _mm512_storeu_ps(x + 16 * j, r[j]);
}
#endif

double peak_fma_run(Isa isa, long n, float a, float b, float *x)
{
    assert(isa <= isa_best() && n >= 0);
    switch (isa) {
#ifdef PEAK_X86
    case ISA_AVX512:
        run_avx512(n, a, b, x);
        break;
    case ISA_AVX2:
        run_avx2(n, a, b, x);
        break;
#endif
    default:
        run_generic(n, a, b, x);
        break;
    }
    return 2.0 * (double)n * peak_lanes(isa);
}

/* One run of n steps on every thread of a team of threads at once: the wall time from
 * the barrier all start after to the one all end before. Sets *team to the team's size
 * and *checksum to the sum of thread 0's chains. */
static double fma_team(Isa isa, int threads, long n, int *team, float *checksum)
{
    /* read at run time, so that the loop's constants are unknown to the compiler */
    volatile float va = FMA_A, vb = FMA_B;
    float a = va, b = vb;
    double t0 = 0, t1 = 0;
    int lanes = peak_lanes(isa);
#pragma omp parallel num_threads(threads)
    {
        float x[PEAK_CHAINS * 16] __attribute__((aligned(64)));
        for (int j = 0; j < lanes; j++)
            x[j] = (float)(j % 17) * 0.25f; /* distinct starts, 0 to 4 */
#pragma omp barrier
#pragma omp single
        t0 = now();
        peak_fma_run(isa, n, a, b, x);
#pragma omp barrier
#pragma omp single
        t1 = now();
        if (omp_get_thread_num() == 0) {
            float sum = 0;
            for (int j = 0; j < lanes; j++)
                sum += x[j];
            *checksum = sum;
            *team = omp_get_num_threads();
        }
    }
    return t1 - t0;
}

int peak_fma(Isa isa, int threads, double seconds, PeakFma *out)
{
    if (threads < 1 || isa > isa_best())
        return -1;
    /* calibrate: double the steps until a run takes 20 ms (this also wakes the FMA units
     * up: AVX-512 runs slower for its first microseconds on some Intel cores) */
    long n = 1024;
    int team = threads;
    float checksum = 0;
    double t;
    while ((t = fma_team(isa, threads, n, &team, &checksum)) < 0.02 && n < (1L << 40))
        n *= 2;
    double per_run = seconds > 0.1 ? (seconds - 0.02) / 3 : 0.03;
    long steps = (long)((double)n * per_run / (t > 0 ? t : 1e-9));
    if (steps > n)
        n = steps;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        t = fma_team(isa, threads, n, &team, &checksum);
        double gflops = 2.0 * (double)n * peak_lanes(isa) * team / (t > 0 ? t : 1e-9) * 1e-9;
        if (gflops > best)
            best = gflops;
    }
    *out = (PeakFma){.isa = isa, .threads = team, .gflops = best, .checksum = checksum};
    return 0;
}

/* Thread t's part [lo, hi) of n floats split over threads. */
static void part(size_t n, int t, int threads, size_t *lo, size_t *hi)
{
    *lo = n / (size_t)threads * (size_t)t + (n % (size_t)threads < (size_t)t ?
                                            n % (size_t)threads : (size_t)t);
    *hi = *lo + n / (size_t)threads + ((size_t)t < n % (size_t)threads);
}

static void scale_part(float *restrict dst, const float *restrict src, size_t n, float s,
                       int t, int threads)
{
    size_t lo, hi;
    part(n, t, threads, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        dst[i] = s * src[i];
}

void peak_scale(float *dst, const float *src, size_t n, float s, int threads)
{
#pragma omp parallel num_threads(threads)
    scale_part(dst, src, n, s, omp_get_thread_num(), omp_get_num_threads());
}

size_t peak_stream_bytes(void)
{
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    size_t bytes = l3 > 0 ? 2 * (size_t)l3 : 0;
    if (bytes < (64u << 20))
        bytes = 64u << 20;
    if (bytes > (256u << 20))
        bytes = 256u << 20;
    int64_t avail = sysmem_available();
    if (avail > 0 && bytes > (size_t)(avail / 8))
        bytes = (size_t)(avail / 8);
    if (bytes < (1u << 20))
        bytes = 1u << 20;
    return bytes & ~(size_t)4095;
}

/* passes streaming passes on every thread of a team, each over its own part; the wall time
 * from the barrier all start after to the one all end before. */
static double stream_team(float *dst, const float *src, size_t n, float s, int threads,
                          int passes)
{
    double t0 = 0, t1 = 0;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
#pragma omp barrier
#pragma omp single
        t0 = now();
        for (int p = 0; p < passes; p++)
            scale_part(dst, src, n, s, t, team);
#pragma omp barrier
#pragma omp single
        t1 = now();
    }
    return t1 - t0;
}

int peak_bandwidth(int threads, size_t bytes, double seconds, PeakBandwidth *out)
{
    if (threads < 1)
        return -1;
    if (!bytes)
        bytes = peak_stream_bytes();
    size_t n = bytes / sizeof(float);
    bytes = n * sizeof(float);
    size_t alloc = (bytes + 63) & ~(size_t)63;
    float *src = aligned_alloc(64, alloc), *dst = aligned_alloc(64, alloc);
    if (!src || !dst || !n) {
        free(src);
        free(dst);
        return -1;
    }
    volatile float vs = 2.0f;
    float s = vs;
    int team = threads;
    /* first touch by the thread that streams each part, so its pages sit near it */
#pragma omp parallel num_threads(threads)
    {
        size_t lo, hi;
        int t = omp_get_thread_num(), size = omp_get_num_threads();
        if (t == 0)
            team = size;
        part(n, t, size, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
            src[i] = (float)(i & 1023);
            dst[i] = 0;
        }
    }
    double t = stream_team(dst, src, n, s, threads, 1);
    double per_run = seconds > 0.1 ? (seconds - t) / 3 : 0.03;
    int passes = t > 0 && per_run > t ? (int)(per_run / t) : 1;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        t = stream_team(dst, src, n, s, threads, passes);
        double gbs = 2.0 * (double)bytes * passes / (t > 0 ? t : 1e-9) * 1e-9;
        if (gbs > best)
            best = gbs;
    }
    /* a read of the result, so that no pass counts as a dead store */
    volatile float sink = dst[n / 2];
    (void)sink;
    free(src);
    free(dst);
    *out = (PeakBandwidth){.threads = team, .bytes = bytes, .gbs = best};
    return 0;
}
