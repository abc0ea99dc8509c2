/* peak.h — the machine's limits for fp32 training, measured: the FMA peak of a vector
 * instruction set and the bandwidth of a streaming pass over memory.
 *
 * Benchmarks judge achieved GFLOP/s and GB/s as shares of these two numbers (`initlab info`,
 * `initlab bench --profile`, `make bench`): absolute rates drift between hosts, shares of
 * the same run's limits do not. */
#ifndef INITLAB_UTIL_PEAK_H
#define INITLAB_UTIL_PEAK_H

#include <stddef.h>

#include "util/isa.h"

/* Independent FMA chains per thread, each one vector of the ISA wide. The FMA unit keeps
 * latency × throughput instructions in flight (4 cycles × 2 units on current x86 cores:
 * 8); 12 cover a 6-cycle latency and still fit AVX2's 16 registers with the two
 * constants. */
#define PEAK_CHAINS 12

/* Floats one thread's chains hold for isa: PEAK_CHAINS × isa_floats(isa). */
int peak_lanes(Isa isa);

/* Runs n steps of x = x·a + b on each of the peak_lanes(isa) floats of x, in place, with
 * isa's kernel: one fused multiply-add per step (one rounding, as fmaf) for ISA_AVX2 and
 * ISA_AVX512, a multiply then an add (two roundings) for ISA_GENERIC. Returns the FLOPs
 * done, 2 · n · peak_lanes(isa). isa must not exceed isa_best() (asserted). Thread-safe
 * for distinct x. */
double peak_fma_run(Isa isa, long n, float a, float b, float *x);

/* The FMA peak of isa on a number of threads. */
typedef struct {
    Isa isa;
    int threads;
    double gflops;   /* the team's rate: the sum over its threads */
    float checksum;  /* the sum of the first thread's chains after its last run; kept so
                        the loop has a result nothing may discard */
} PeakFma;

/* Measures the FMA peak of isa (≤ isa_best()) on threads threads (an OpenMP team, each
 * thread running its own chains at once): the best of three timed runs after a
 * calibration, about `seconds` in all. Returns 0, or -1 when threads < 1 or isa exceeds
 * isa_best() (out untouched). Not to be called while another OpenMP team of this thread
 * runs; otherwise thread-safe. */
int peak_fma(Isa isa, int threads, double seconds, PeakFma *out);

/* One streaming pass, dst[i] = s·src[i] for i < n, split in contiguous parts over an
 * OpenMP team of threads threads (the same split as peak_bandwidth's first touch). Can't
 * fail. */
void peak_scale(float *dst, const float *src, size_t n, float s, int threads);

/* Bytes of each of the two buffers peak_bandwidth uses by default: twice the last-level
 * cache (sysconf), at least 64 MiB, at most 256 MiB and an eighth of the available memory,
 * so that a pass streams from memory where the cache allows it without making `info` slow
 * or large. Can't fail. */
size_t peak_stream_bytes(void);

/* The bandwidth of a streaming pass on a number of threads. */
typedef struct {
    int threads;
    size_t bytes;   /* of each buffer */
    double gbs;     /* bytes read + bytes written per second, 1e9 */
} PeakBandwidth;

/* Measures peak_scale over two buffers of bytes each (0: peak_stream_bytes()) on threads
 * threads: the best of three timed runs of whole passes after one untimed pass, about
 * `seconds` in all, counting each pass as 2 × bytes (read once, written once; the cache
 * line a store first reads is not counted). Returns 0, or -1 when threads < 1 or the
 * buffers cannot be allocated (out untouched). Frees what it allocates. Same thread rule
 * as peak_fma. */
int peak_bandwidth(int threads, size_t bytes, double seconds, PeakBandwidth *out);

#endif
