/* conv.c — conv2d forward and backward: im2col + sgemm fast path, direct naive reference.
 *
 * Shape letters as in layers.h. The output pixels of the whole batch are R = N·OH·OW rows of
 * an NHWC tensor, so a 1×1 stride-1 unpadded conv is the GEMM out (R, K) = inp (R, C) ·
 * weight (C, K). A k×k conv copies the receptive fields of a chunk of output rows into
 * cols (rows, kh·kw·C) (im2col; the (ky, kx, c) order matches the kernel layout) and
 * multiplies by the kernel seen as (kh·kw·C, K). The backward recomputes cols per chunk for
 * dweight += colsᵀ · dout. The input gradient of a stride-1 conv is itself a stride-1 conv
 * of dout (padding kh-1-pad_top, kw-1-pad_left) with the kernel flipped in both spatial
 * axes and its channels transposed (kh, kw, K, C): im2col of dout and a GEMM whose inner
 * dimension is kh·kw·K, no scatter. Otherwise (stride 2, or a workspace too small for the
 * flipped kernel) dcols = dout · weightᵀ per chunk and col2im gathers dcols back into the
 * input gradient, each input pixel summing the entries that read it, so threads never
 * write the same pixel.
 *
 * Threads: sgemm runs single-threaded inside the kernel's own OpenMP team, each thread
 * taking a contiguous share: output rows for the forward (im2col and GEMM of the same rows,
 * so the gathered block is still in that core's cache), input pixels for the transposed
 * conv and for dcols, kernel rows (kh·kw·C) for dweight. Every output element is computed
 * by one thread in a fixed order, so results are bit-reproducible for a given thread count
 * and workspace size. conv2d_forward_stats also hands each thread's rows, right after its
 * GEMM wrote them and while they are in its cache, to the moments of the batch norm that
 * reads the output (bnstats_rows): that batch norm then skips its own pass over memory.
 *
 * The forward of a conv with a short kernel and few filters (a first layer, the first 1×1
 * layers of a narrow MobileNet; conv2d_direct_eligible) runs conv_direct.c's direct kernel
 * instead, under the same contract. */
#include "nn/layers.h"

#include <assert.h>
#include <omp.h>
#include <stdbool.h>
#include <string.h>

#include "nn/gemm.h"
#include "util/isa.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CONV_X86 1
#endif

bool conv2d_is_pointwise(const ConvGeom *g)
{
    return g->kh == 1 && g->kw == 1 && g->stride == 1 && g->pad_top == 0 && g->pad_left == 0 &&
           g->OH == g->H && g->OW == g->W;
}

/* A stride-1 conv's input gradient runs as a conv of dout (see conv2d_backward). */
static bool has_transposed_path(const ConvGeom *g)
{
    return g->stride == 1 && g->pad_top < g->kh && g->pad_left < g->kw;
}

/* Rows per thread from which a 1×1 backward runs chunked with per-thread weight-gradient
 * partials; below it the reduction is short and the plain split by channels is better. */
#define PW_CHUNKED_ROWS 4096
/* Bytes of inp and dout rows one chunk of the chunked 1×1 backward reads (L2-sized). */
#define PW_CHUNK_BYTES (512u << 10)

/* Fewest rows per GEMM of a 1×1 forward that gathers batch-norm statistics block by block. */
#define PW_STATS_MIN_ROWS 1024

/* Longest kernel (kh·kw·C) whose weight gradient runs in dw_short, with a (kh·kw·C, K)
 * partial per thread. */
#define DW_SHORT_KK 160

static bool pointwise_chunked(const ConvGeom *g, int threads)
{
    return (size_t)g->N * g->OH * g->OW >= (size_t)PW_CHUNKED_ROWS * threads;
}

size_t conv2d_workspace(const ConvGeom *g, size_t chunk_bytes, int threads)
{
    if (threads < 1)
        threads = 1;
    if (conv2d_is_pointwise(g))
        return pointwise_chunked(g, threads) ? (size_t)(threads - 1) * g->C * g->K : 0;
    size_t kk = (size_t)g->kh * g->kw * g->C;
    size_t rows_total = (size_t)g->N * g->OH * g->OW;
    size_t rows = chunk_bytes / (sizeof(float) * kk);
    if (rows < 1)
        rows = 1;
    if (rows > rows_total)
        rows = rows_total;
    size_t need = 2 * rows * kk;
    if (kk <= DW_SHORT_KK) /* dw_short's partials at the end */
        need += (size_t)threads * kk * g->K;
    if (has_transposed_path(g)) {
        /* the flipped kernel besides the chunk; a chunk this small still gives three
         * threads one dout row (kh·kw·K) each, more threads fall back to col2im */
        size_t kt = (size_t)g->kh * g->kw * g->K;
        need = kk * g->K + (need > 3 * kt ? need : 3 * kt);
    }
    return need;
}

/* cols (rows, kh·kw·C) = receptive fields of output rows [r0, r0 + rows), zeros in padding.
 * Runs in the calling thread. */
static void im2col(float *restrict cols, const float *restrict inp, const ConvGeom *g,
                   size_t r0, size_t rows)
{
    const int H = g->H, W = g->W, C = g->C, OH = g->OH, OW = g->OW;
    const int kh = g->kh, kw = g->kw, s = g->stride;
    const size_t kk = (size_t)kh * kw * C;
    /* the first row's coordinates, then a step per row: no division per row */
    int ox = (int)(r0 % OW), oy = (int)(r0 / OW % OH);
    size_t n = r0 / ((size_t)OW * OH);
    for (size_t i = 0; i < rows; i++) {
        const float *img = inp + n * H * W * C;
        float *dst = cols + i * kk;
        int iy0 = oy * s - g->pad_top, ix0 = ox * s - g->pad_left;
        for (int ky = 0; ky < kh; ky++) {
            float *d = dst + (size_t)ky * kw * C;
            int iy = iy0 + ky;
            if (iy < 0 || iy >= H) {
                memset(d, 0, sizeof(float) * kw * C);
                continue;
            }
            const float *row = img + (size_t)iy * W * C;
            if (ix0 >= 0 && ix0 + kw <= W) {
                memcpy(d, row + (size_t)ix0 * C, sizeof(float) * kw * C);
                continue;
            }
            for (int kx = 0; kx < kw; kx++) {
                int ix = ix0 + kx;
                if (ix < 0 || ix >= W)
                    memset(d + (size_t)kx * C, 0, sizeof(float) * C);
                else
                    memcpy(d + (size_t)kx * C, row + (size_t)ix * C, sizeof(float) * C);
            }
        }
        if (++ox == OW) {
            ox = 0;
            if (++oy == OH)
                oy = 0, n++;
        }
    }
}

/* dinp += the entries of dcols (rows, kh·kw·C) of output rows [r0, r0 + rows) that read
 * each input pixel. Visits only the input rows the chunk can touch. A worksharing loop:
 * call it from inside a parallel region (or outside one, then it runs serially). */
static void col2im_add(float *restrict dinp, const float *restrict dcols, const ConvGeom *g,
                       size_t r0, size_t rows)
{
    const int H = g->H, W = g->W, C = g->C, OH = g->OH, OW = g->OW;
    const int kh = g->kh, kw = g->kw, s = g->stride, pt = g->pad_top, pl = g->pad_left;
    const size_t kk = (size_t)kh * kw * C, plane = (size_t)OH * OW;
    const size_t r1 = r0 + rows;
    const int n0 = (int)(r0 / plane), nimg = (int)((r1 - 1) / plane) - n0 + 1;
#pragma omp for collapse(2) schedule(static)
    for (int a = 0; a < nimg; a++)
        for (int y = 0; y < H; y++) {
            size_t n = (size_t)(n0 + a), base = n * plane;
            size_t lo = r0 > base ? r0 : base;
            size_t hi = r1 < base + plane ? r1 : base + plane;
            int oy_lo = (int)((lo - base) / OW), oy_hi = (int)((hi - 1 - base) / OW);
            if (y < oy_lo * s - pt || y > oy_hi * s - pt + kh - 1)
                continue;
            for (int x = 0; x < W; x++) {
                float *restrict d = dinp + ((n * H + y) * W + x) * C;
                for (int ky = 0; ky < kh; ky++) {
                    int t = y + pt - ky;
                    if (t < 0 || t % s)
                        continue;
                    int oy = t / s;
                    if (oy >= OH)
                        continue;
                    for (int kx = 0; kx < kw; kx++) {
                        int u = x + pl - kx;
                        if (u < 0 || u % s)
                            continue;
                        int ox = u / s;
                        if (ox >= OW)
                            continue;
                        size_t r = base + (size_t)oy * OW + ox;
                        if (r < lo || r >= hi)
                            continue;
                        const float *restrict src =
                            dcols + (r - r0) * kk + ((size_t)ky * kw + kx) * C;
                        for (int c = 0; c < C; c++)
                            d[c] += src[c];
                    }
                }
            }
        }
}

/* [lo, hi): thread t's share of n items among T. */
static inline void share(size_t n, int t, int T, size_t *lo, size_t *hi)
{
    *lo = n * t / T;
    *hi = n * (t + 1) / T;
}

static void add_bias_rows(float *restrict out, const float *restrict bias, size_t rows, int K)
{
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < K; k++)
            out[r * K + k] += bias[k];
}

void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    const ConvGeom *g, float *work, size_t work_floats, int threads)
{
    conv2d_forward_stats(out, inp, weight, bias, g, work, work_floats, threads, NULL);
}

void conv2d_forward_stats(float *out, const float *inp, const float *weight, const float *bias,
                          const ConvGeom *g, float *work, size_t work_floats, int threads,
                          BnStats *stats)
{
    const int K = g->K, C = g->C;
    const size_t rows_total = (size_t)g->N * g->OH * g->OW;
    assert(!stats || stats->C == K);
    if (conv2d_direct_eligible(g)) {
        conv2d_forward_direct(out, inp, weight, bias, g, threads, stats);
        return;
    }
    gemm_single_threaded();
    if (conv2d_is_pointwise(g)) {
        /* with stats, each thread's share runs in blocks whose output is still in its
         * cache for bnstats_rows; enough rows per block that packing the kernel, once per
         * GEMM, stays amortized */
        size_t block = PW_CHUNK_BYTES / (sizeof(float) * (size_t)(C + K));
        if (block < PW_STATS_MIN_ROWS)
            block = PW_STATS_MIN_ROWS;
#pragma omp parallel num_threads(threads)
        {
            int t = omp_get_thread_num();
            size_t a, b;
            share(rows_total, t, omp_get_num_threads(), &a, &b);
            size_t step = stats ? block : b - a;
            for (size_t r0 = a; r0 < b; r0 += step) {
                size_t rows = b - r0 < step ? b - r0 : step;
                gemm(false, false, (int)rows, K, C, 1, inp + r0 * C, C, weight, K, 0,
                     out + r0 * K, K);
                if (bias)
                    add_bias_rows(out + r0 * K, bias, rows, K);
                if (stats)
                    bnstats_rows(stats, t, out + r0 * K, rows);
            }
        }
        return;
    }
    const size_t kk = (size_t)g->kh * g->kw * C;
    size_t chunk = work_floats / kk;
    assert(chunk >= 1);
    if (chunk > rows_total)
        chunk = rows_total;
    for (size_t r0 = 0; r0 < rows_total; r0 += chunk) {
        size_t rows = rows_total - r0 < chunk ? rows_total - r0 : chunk;
#pragma omp parallel num_threads(threads)
        {
            /* each thread gathers and multiplies its own rows: no barrier, warm cache */
            int t = omp_get_thread_num();
            size_t a, b;
            share(rows, t, omp_get_num_threads(), &a, &b);
            if (b > a) {
                im2col(work + a * kk, inp, g, r0 + a, b - a);
                gemm(false, false, (int)(b - a), K, (int)kk, 1, work + a * kk, (int)kk, weight,
                     K, 0, out + (r0 + a) * K, K);
                if (bias)
                    add_bias_rows(out + (r0 + a) * K, bias, b - a, K);
                if (stats)
                    bnstats_rows(stats, t, out + (r0 + a) * K, b - a);
            }
        }
    }
}

/* wt (kh, kw, K, C) = weight (kh, kw, C, K) flipped in both spatial axes, each tap's
 * (C, K) block transposed. A worksharing loop over taps. */
static void flip_kernel(float *restrict wt, const float *restrict weight, const ConvGeom *g)
{
    const int kh = g->kh, kw = g->kw, C = g->C, K = g->K;
#pragma omp for schedule(static)
    for (int tap = 0; tap < kh * kw; tap++) {
        int ky = tap / kw, kx = tap % kw;
        const float *src = weight + ((size_t)(kh - 1 - ky) * kw + (kw - 1 - kx)) * C * K;
        float *dst = wt + (size_t)tap * K * C;
        for (int c0 = 0; c0 < C; c0 += 16)
            for (int k = 0; k < K; k++)
                for (int c = c0; c < C && c < c0 + 16; c++)
                    dst[(size_t)k * C + c] = src[(size_t)c * K + k];
    }
}

/* dinp += conv(dout, flipped kernel) for a stride-1 conv: input pixel (y, x) receives
 * dout (y + pad_top - ky, x + pad_left - kx) · weight (ky, kx)ᵀ, i.e. a stride-1 conv of
 * dout (N, OH, OW, K) with padding kh-1-pad_top, kw-1-pad_left and the kernel wt
 * (kh, kw, K, C). Each thread takes a contiguous share of the input pixels and walks it in
 * sub-chunks gathered into its own slice of `area`: no barrier, and every dinp element is
 * written by one thread. */
static void dinp_transposed(float *dinp, const float *dout, const float *weight,
                            const ConvGeom *g, float *work, size_t work_floats, int threads,
                            float beta)
{
    const ConvGeom t = {.N = g->N, .H = g->OH, .W = g->OW, .C = g->K, .OH = g->H, .OW = g->W,
                        .K = g->C, .kh = g->kh, .kw = g->kw, .stride = 1,
                        .pad_top = g->kh - 1 - g->pad_top, .pad_left = g->kw - 1 - g->pad_left};
    const size_t kt = (size_t)g->kh * g->kw * g->K, nw = kt * g->C;
    const size_t rows_total = (size_t)g->N * g->H * g->W;
    float *wt = work, *area = work + nw;
#pragma omp parallel num_threads(threads)
    {
        flip_kernel(wt, weight, g); /* ends with the loop's implicit barrier */
        int tid = omp_get_thread_num(), T = omp_get_num_threads();
        size_t lo, hi;
        share(rows_total, tid, T, &lo, &hi);
        size_t slice = (work_floats - nw) / T, sub = slice / kt;
        float *cols = area + tid * slice;
        for (size_t r0 = lo; r0 < hi; r0 += sub) {
            size_t rows = hi - r0 < sub ? hi - r0 : sub;
            im2col(cols, dout, &t, r0, rows);
            gemm(false, false, (int)rows, g->C, (int)kt, 1, cols, (int)kt, wt, g->C, beta,
                 dinp + r0 * g->C, g->C);
        }
    }
}

/* The backward of a 1×1 stride-1 conv over many rows: each thread walks its own rows in
 * L2-sized chunks and uses each chunk of dout twice while it is in cache, for its share of
 * the weight gradient (inpᵀ · dout, into dweight for thread 0 and into a private partial
 * in work for the others) and for the chunk's input gradient (dout · weightᵀ). The
 * partials are then added to dweight in thread order. */
static void pointwise_backward_chunked(float *dinp, float *dweight, const float *dout,
                                       const float *inp, const float *weight,
                                       const ConvGeom *g, float *work, int threads, float beta)
{
    const int C = g->C, K = g->K;
    const size_t rows_total = (size_t)g->N * g->OH * g->OW, ck = (size_t)C * K;
    size_t chunk = PW_CHUNK_BYTES / (sizeof(float) * (size_t)(C + K));
    if (chunk < 64)
        chunk = 64;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        float *dw = t == 0 ? dweight : work + (size_t)(t - 1) * ck;
        if (t > 0)
            memset(dw, 0, sizeof(float) * ck);
        size_t a, b;
        share(rows_total, t, T, &a, &b);
        for (size_t r0 = a; r0 < b; r0 += chunk) {
            int rows = (int)(b - r0 < chunk ? b - r0 : chunk);
            gemm(true, false, C, K, rows, 1, inp + r0 * C, C, dout + r0 * K, K, 1, dw, K);
            if (dinp)
                gemm(false, true, rows, C, K, 1, dout + r0 * K, K, weight, K, beta,
                     dinp + r0 * C, C);
        }
#pragma omp barrier
#pragma omp for schedule(static)
        for (size_t i = 0; i < ck; i++) {
            float acc = dweight[i];
            for (int p = 1; p < T; p++)
                acc += work[(size_t)(p - 1) * ck + i];
            dweight[i] = acc;
        }
    }
}

/* ---- weight gradient of a short kernel (a first layer: kh·kw·C of 27 or 147) -------------
 * colsᵀ · dy as a GEMM has a (kh·kw·C, K) output too small to amortize packing. Instead each
 * thread walks its own rows of the chunk it just gathered: a tile of IB kernel rows × NV
 * vectors of filters stays in registers while the rows stream by (load NV vectors of dy,
 * FMA each with a broadcast cols entry), and every SK_ROWS rows the tile is added into the
 * thread's private (kh·kw·C, K) partial. After the last chunk the partials are added into
 * dweight in thread order, so the result depends only on the thread count and chunk size.
 * The tile kernels (conv_short_vec.h) are compiled for AVX-512, AVX2 + FMA and portable
 * vectors, and dw_short runs the widest that isa_active() allows. */
#define SK_ROWS 64           /* rows gathered and summed per flush */
#define SK_MAX_KK DW_SHORT_KK

/* Portable vectors: SSE on x86-64-v2, NEON elsewhere. */
typedef float Vf4 __attribute__((vector_size(16)));
#define VL 4
#define NACC 12 /* of 16 registers */
#define V Vf4
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VSET1(x) ((V){0, 0, 0, 0} + (x))
#define SFX(name) name##_generic
#include "nn/conv_short_vec.h"

#ifdef CONV_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
typedef float Vf8 __attribute__((vector_size(32)));
#define VL 8
#define NACC 12 /* of 16 registers */
#define V Vf8
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VSET1(x) _mm256_set1_ps(x)
#define SFX(name) name##_avx2
#include "nn/conv_short_vec.h"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq")
typedef float Vf16 __attribute__((vector_size(64)));
#define VL 16
#define NACC 24 /* of 32 registers */
#define V Vf16
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VSET1(x) _mm512_set1_ps(x)
#define SFX(name) name##_avx512
#include "nn/conv_short_vec.h"
#pragma GCC pop_options
#endif

/* part (kh·kw·C, K) += colsᵀ · dy for output rows [r0, r0 + rows) (see conv_short_vec.h),
 * by the widest kernels isa_active() allows. */
static void dw_short(float *part, const float *inp, const ConvGeom *g, size_t r0,
                     const float *dy, size_t rows)
{
#ifdef CONV_X86
    switch (isa_active()) {
    case ISA_AVX512:
        sk_dweight_avx512(part, inp, g, r0, dy, rows);
        return;
    case ISA_AVX2:
        sk_dweight_avx2(part, inp, g, r0, dy, rows);
        return;
    default:
        break;
    }
#endif
    sk_dweight_generic(part, inp, g, r0, dy, rows);
}

/* dweight[e] += Σ_u part[u][e] over the `parts` partials in order, for this thread's share
 * of the n entries. */
static void dw_reduce(float *restrict dweight, const float *restrict part, size_t n, int parts,
                      int t, int T)
{
    size_t lo, hi;
    share(n, t, T, &lo, &hi);
    for (size_t e = lo; e < hi; e++) {
        float s = part[e];
        for (int u = 1; u < parts; u++)
            s += part[(size_t)u * n + e];
        dweight[e] += s;
    }
}

void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, const ConvGeom *g, float *work,
                     size_t work_floats, int threads, bool accumulate)
{
    const float beta = accumulate ? 1.0f : 0.0f; /* of the GEMMs that write dinp */
    const int K = g->K, C = g->C;
    const size_t rows_total = (size_t)g->N * g->OH * g->OW;
    gemm_single_threaded();
    if (dbias)
        bias_backward_add(dbias, dout, rows_total, K, threads);
    if (conv2d_is_pointwise(g) && pointwise_chunked(g, threads) &&
        work_floats >= (size_t)(threads - 1) * C * K) {
        pointwise_backward_chunked(dinp, dweight, dout, inp, weight, g, work, threads, beta);
        return;
    }
    if (conv2d_is_pointwise(g)) {
#pragma omp parallel num_threads(threads)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            size_t a, b;
            /* dweight rows [a, b) of (C, K): inp[:, a:b]ᵀ · dout */
            share((size_t)C, t, T, &a, &b);
            if (b > a)
                gemm(true, false, (int)(b - a), K, (int)rows_total, 1, inp + a, C, dout, K, 1,
                     dweight + a * K, K);
            share(rows_total, t, T, &a, &b);
            if (dinp && b > a)
                gemm(false, true, (int)(b - a), C, K, 1, dout + a * K, K, weight, K, beta,
                     dinp + a * C, C);
        }
        return;
    }
    const size_t kk = (size_t)g->kh * g->kw * C, kt = (size_t)g->kh * g->kw * K;
    if (dinp && has_transposed_path(g) && work_floats >= kk * K + (size_t)threads * kt) {
        dinp_transposed(dinp, dout, weight, g, work, work_floats, threads, beta);
        dinp = NULL; /* done: the chunks below only need cols */
    }
    if (dinp && !accumulate) /* col2im adds the taps of every chunk */
        memset(dinp, 0, sizeof(float) * g->N * g->H * g->W * C);
    /* a short kernel (a first layer) keeps one (kh·kw·C, K) partial per thread at the
     * workspace's end when it fits (see dw_short) */
    const size_t nw = kk * K, npart = (size_t)threads * nw;
    const bool short_kk = kk <= DW_SHORT_KK && work_floats >= npart + (dinp ? 2 : 1) * kk;
    float *part = work + (work_floats - (short_kk ? npart : 0));
    size_t chunk = (size_t)(part - work) / (dinp ? 2 * kk : kk);
    assert(chunk >= 1);
    if (chunk > rows_total || (short_kk && !dinp)) /* dw_short gathers its own cols */
        chunk = rows_total;
    float *cols = work, *dcols = work + chunk * kk;
    /* otherwise a short kernel split by rows would leave each thread a sliver of a GEMM
     * tile; split the filters instead */
    const bool split_k = kk < 64 * (size_t)threads && K >= 8 * threads;
    for (size_t r0 = 0; r0 < rows_total; r0 += chunk) {
        size_t rows = rows_total - r0 < chunk ? rows_total - r0 : chunk;
        const float *dy = dout + r0 * K;
#pragma omp parallel num_threads(threads)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            size_t a, b;
            share(rows, t, T, &a, &b);
            if (b > a) {
                if (!short_kk)
                    im2col(cols + a * kk, inp, g, r0 + a, b - a);
                if (dinp)
                    gemm(false, true, (int)(b - a), (int)kk, K, 1, dy + a * K, K, weight, K, 0,
                         dcols + a * kk, (int)kk);
            }
            if (short_kk) {
                /* partials of threads absent from this team stay zero */
                for (int u = t; r0 == 0 && u < threads; u += T)
                    memset(part + (size_t)u * nw, 0, sizeof(float) * nw);
                if (b > a)
                    dw_short(part + (size_t)t * nw, inp, g, r0 + a, dy + a * K, b - a);
            }
#pragma omp barrier
            if (short_kk) {
                if (r0 + rows == rows_total)
                    dw_reduce(dweight, part, nw, threads, t, T);
            } else if (split_k) {
                /* dweight columns [a, b): colsᵀ · dy[:, a:b] */
                share((size_t)K, t, T, &a, &b);
                if (b > a)
                    gemm(true, false, (int)kk, (int)(b - a), (int)rows, 1, cols, (int)kk,
                         dy + a, K, 1, dweight + a, K);
            } else {
                /* dweight rows [a, b) of (kh·kw·C, K): cols[:, a:b]ᵀ · dy */
                share(kk, t, T, &a, &b);
                if (b > a)
                    gemm(true, false, (int)(b - a), K, (int)rows, 1, cols + a, (int)kk, dy, K,
                         1, dweight + a * K, K);
            }
            if (dinp)
                col2im_add(dinp, dcols, g, r0, rows);
        }
    }
}

void conv2d_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                          const ConvGeom *g)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, kh = g->kh, kw = g->kw, s = g->stride;
    for (int n = 0; n < g->N; n++)
        for (int oy = 0; oy < g->OH; oy++)
            for (int ox = 0; ox < g->OW; ox++)
                for (int k = 0; k < K; k++) {
                    double acc = bias ? bias[k] : 0.0;
                    for (int ky = 0; ky < kh; ky++) {
                        int iy = oy * s - g->pad_top + ky;
                        if (iy < 0 || iy >= H)
                            continue;
                        for (int kx = 0; kx < kw; kx++) {
                            int ix = ox * s - g->pad_left + kx;
                            if (ix < 0 || ix >= W)
                                continue;
                            for (int c = 0; c < C; c++)
                                acc += (double)inp[(((size_t)n * H + iy) * W + ix) * C + c] *
                                       weight[(((size_t)ky * kw + kx) * C + c) * K + k];
                        }
                    }
                    out[(((size_t)n * g->OH + oy) * g->OW + ox) * K + k] = (float)acc;
                }
}

void conv2d_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, const ConvGeom *g)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, kh = g->kh, kw = g->kw, s = g->stride;
    const int OH = g->OH, OW = g->OW;
    if (dbias)
        for (int k = 0; k < K; k++) {
            double acc = 0;
            for (size_t r = 0; r < (size_t)g->N * OH * OW; r++)
                acc += dout[r * K + k];
            dbias[k] += (float)acc;
        }
    /* dweight: one sum over every output pixel per kernel entry. */
    for (int ky = 0; ky < kh; ky++)
        for (int kx = 0; kx < kw; kx++)
            for (int c = 0; c < C; c++)
                for (int k = 0; k < K; k++) {
                    double acc = 0;
                    for (int n = 0; n < g->N; n++)
                        for (int oy = 0; oy < OH; oy++) {
                            int iy = oy * s - g->pad_top + ky;
                            if (iy < 0 || iy >= H)
                                continue;
                            for (int ox = 0; ox < OW; ox++) {
                                int ix = ox * s - g->pad_left + kx;
                                if (ix < 0 || ix >= W)
                                    continue;
                                acc += (double)dout[(((size_t)n * OH + oy) * OW + ox) * K + k] *
                                       inp[(((size_t)n * H + iy) * W + ix) * C + c];
                            }
                        }
                    dweight[(((size_t)ky * kw + kx) * C + c) * K + k] += (float)acc;
                }
    if (!dinp)
        return;
    /* dinp: every output pixel scatters into the inputs its window read. */
    for (int n = 0; n < g->N; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int ky = 0; ky < kh; ky++) {
                    int iy = oy * s - g->pad_top + ky;
                    if (iy < 0 || iy >= H)
                        continue;
                    for (int kx = 0; kx < kw; kx++) {
                        int ix = ox * s - g->pad_left + kx;
                        if (ix < 0 || ix >= W)
                            continue;
                        for (int c = 0; c < C; c++) {
                            double acc = 0;
                            for (int k = 0; k < K; k++)
                                acc += (double)dout[(((size_t)n * OH + oy) * OW + ox) * K + k] *
                                       weight[(((size_t)ky * kw + kx) * C + c) * K + k];
                            dinp[(((size_t)n * H + iy) * W + ix) * C + c] += (float)acc;
                        }
                    }
                }
}
