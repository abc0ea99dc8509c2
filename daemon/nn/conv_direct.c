/* conv_direct.c — conv2d forward as a direct register-blocked kernel, for short kernels and few filters.
 *
 * Shape letters as in layers.h. conv.c's path (im2col + sgemm, or sgemm on the input of a
 * 1×1 conv) multiplies a (rows, kh·kw·C) matrix by the (kh·kw·C, K) kernel; with a short
 * inner dimension and few filters (a first layer, 3×3×3 → 8 or 32; MobileNet α 0.25's
 * first 1×1 layers, 8 → 16 and 16 → 32) sgemm spends its time packing and on edge tiles
 * and runs far below both the FMA peak and the memory bandwidth. Here each output pixel
 * keeps all K sums in vector registers and reads its receptive field straight from the
 * input, several pixels at once (conv_direct_vec.h): no im2col copy, one pass over the
 * input and one over the output.
 *
 * The kernels of conv_direct_vec.h are compiled for AVX-512 (16 filters a vector), AVX2 +
 * FMA (8) and portable vectors (4); isa_active() picks the widest allowed, except that K <=
 * 8 takes the AVX2 kernels even on AVX-512 (a 16-wide vector would be half empty). The
 * kernel is copied once per call with its rows padded to a whole number of vectors (zeros
 * after K), so the kernels load full vectors and only the stores are cut to K.
 *
 * Threads: each thread of the team takes a contiguous share of the output rows (n, oy) —
 * of the pixels for a 1×1 stride-1 unpadded conv — computes them in order and hands them to
 * bnstats_rows in blocks of about CD_STATS_PX pixels, while they are in its cache. Every
 * output element is computed by one thread in a fixed order: results do not depend on the
 * thread count (the statistics do, through their per-thread partials). */
#include "nn/layers.h"

#include <assert.h>
#include <omp.h>
#include <stdbool.h>
#include <string.h>

#include "util/isa.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CD_X86 1
#endif

#define CD_MAX_KK 64 /* longest kernel (kh·kw·C) the kernels take */
#define CD_MAX_K 64  /* most filters */
#define CD_STATS_PX 512 /* pixels a thread writes before adding them to the statistics */

/* What an input column outside the image reads (C <= CD_MAX_KK floats). */
static const float cd_zeros[CD_MAX_KK];

/* The kernels of one instruction set (conv_direct_vec.h). w is the kernel with its rows
 * padded to ⌈K / vl⌉·vl floats, bp the bias padded the same way (zeros without a bias). */
typedef struct {
    int vl; /* filters a vector */
    /* Output rows [r0, r1) of the batch, row r = n·OH + oy. */
    void (*rows)(float *out, const float *inp, const float *w, const float *bp,
                 const ConvGeom *g, size_t r0, size_t r1);
    /* Pixels [r0, r1) of a 1×1 stride-1 unpadded conv (C input channels). */
    void (*pixels)(float *out, const float *inp, const float *w, const float *bp, int C, int K,
                   size_t r0, size_t r1);
} CdKernels;

/* Portable vectors: SSE on x86-64-v2, NEON elsewhere. */
typedef float Vf4 __attribute__((vector_size(16)));
#define VL 4
#define NREG 16
#define KVMAX 16
#define V Vf4
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VSET1(x) ((V){0, 0, 0, 0} + (x))
#define VSTP(p, v, n) memcpy(p, &(v), sizeof(float) * (size_t)(n))
#define SFX(name) name##_generic
#include "nn/conv_direct_vec.h"

#ifdef CD_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
typedef float Vf8 __attribute__((vector_size(32)));
#define VL 8
#define NREG 16
#define KVMAX 8
#define V Vf8
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VSET1(x) _mm256_set1_ps(x)
#define VSTP(p, v, n)                                                                      \
    _mm256_maskstore_ps(p,                                                                 \
                        _mm256_cmpgt_epi32(_mm256_set1_epi32(n),                           \
                                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),     \
                        v)
#define SFX(name) name##_avx2
#include "nn/conv_direct_vec.h"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq")
typedef float Vf16 __attribute__((vector_size(64)));
#define VL 16
#define NREG 32
#define KVMAX 4
#define V Vf16
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VSET1(x) _mm512_set1_ps(x)
#define VSTP(p, v, n) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1), v)
#define SFX(name) name##_avx512
#include "nn/conv_direct_vec.h"
#pragma GCC pop_options
#endif

bool conv2d_direct_fits(const ConvGeom *g)
{
    return (size_t)g->kh * g->kw * g->C <= CD_MAX_KK && g->K >= 1 && g->K <= CD_MAX_K;
}

/* Measured with `initlab bench --model mobilenet --profile`, 2 threads, on a 2-core Xeon
 * with AVX-512 (2026-12-07), forward ms of im2col/sgemm → direct, min of 3–5 alternating
 * runs; α 0.25 128 px batch 64 unless named:
 *   k×k (a first layer, 3×3 stride 2, 3 → 8): AVX-512 5.7 → 1.65, AVX2 6.5 → 2.1,
 *     generic 6.6 → 3.9; MobileNet 224 batch 32, 3 → 32: AVX-512 14.2 → 6.1.
 *   1×1 with AVX-512: 8 → 16 1.76 → 1.62, 16 → 32 1.19 → 0.91, 32 → 32 1.62 → 1.05,
 *     32 → 64 0.70 → 0.41, 64 → 64 1.05 → 0.82; MobileNet 224's 32 → 64 18.1 → 11.7.
 *   1×1 with AVX2: 8 → 16 2.0 → 2.1 (medians, slower), 16 → 32 1.40 → 1.07, 32 → 32
 *     1.82 → 1.32, 32 → 64 0.86 → 0.67, 64 → 64 1.20 → 1.12.
 *   1×1 generic: every one slower (8 → 16 2.0 → 3.2, 64 → 64 1.18 → 2.40).
 * Hence: every k×k conv that fits; 1×1 with AVX-512, or with AVX2 from 16 channels in. */
bool conv2d_direct_eligible(const ConvGeom *g)
{
    if (!conv2d_direct_fits(g))
        return false;
    if (!conv2d_is_pointwise(g))
        return true;
    Isa isa = isa_active();
    return isa == ISA_AVX512 || (isa == ISA_AVX2 && g->C >= 16);
}

/* The kernels for K filters under the active instruction set. */
static const CdKernels *cd_pick(int K)
{
#ifdef CD_X86
    switch (isa_active()) {
    case ISA_AVX512:
        return K <= 8 ? &cd_kernels_avx2 : &cd_kernels_avx512;
    case ISA_AVX2:
        return &cd_kernels_avx2;
    default:
        break;
    }
#endif
    return &cd_kernels_generic;
}

/* [lo, hi): thread t's share of n items among T. */
static inline void share(size_t n, int t, int T, size_t *lo, size_t *hi)
{
    *lo = n * t / T;
    *hi = n * (t + 1) / T;
}

void conv2d_forward_direct(float *out, const float *inp, const float *weight, const float *bias,
                           const ConvGeom *g, int threads, BnStats *stats)
{
    const int K = g->K, C = g->C;
    const size_t kk = (size_t)g->kh * g->kw * C;
    assert(conv2d_direct_fits(g));
    assert(!stats || stats->C == K);
    const CdKernels *ks = cd_pick(K);
    const size_t kp = (size_t)(K + ks->vl - 1) / ks->vl * ks->vl;
    float w[CD_MAX_KK * CD_MAX_K] __attribute__((aligned(64)));
    float bp[CD_MAX_K] __attribute__((aligned(64)));
    for (size_t i = 0; i < kk; i++) {
        memcpy(w + i * kp, weight + i * K, sizeof(float) * K);
        memset(w + i * kp + K, 0, sizeof(float) * (kp - K));
    }
    memset(bp, 0, sizeof bp);
    if (bias)
        memcpy(bp, bias, sizeof(float) * K);
    const bool pw = conv2d_is_pointwise(g);
    /* rows of the split: pixels, or output rows of OW pixels */
    const size_t px = pw ? 1 : (size_t)g->OW, units = (size_t)g->N * g->OH * g->OW / px;
    const size_t block = stats ? (CD_STATS_PX + px - 1) / px : units;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        size_t a, b;
        share(units, t, omp_get_num_threads(), &a, &b);
        for (size_t r0 = a; r0 < b; r0 += block) {
            size_t r1 = b - r0 < block ? b : r0 + block;
            if (pw)
                ks->pixels(out, inp, w, bp, C, K, r0, r1);
            else
                ks->rows(out, inp, w, bp, g, r0, r1);
            if (stats)
                bnstats_rows(stats, t, out + r0 * px * K, (r1 - r0) * px);
        }
    }
}
