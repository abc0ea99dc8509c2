/* depthwise.c — depthwise conv2d: 3×3 vector kernels per instruction set, general loops, naive reference.
 *
 * Shape letters as in layers.h; m = K / C is the depth multiplier and output channel
 * c·m + j reads input channel c through kernel entry (ky, kx, c, j). Both passes walk
 * the batch by (n, oy) output rows, each thread a contiguous share of the rows (the same
 * split for a given thread count); the backward computes, after each output row's weight
 * gradient, the input gradient of the input rows that row owns (see depthwise_backward),
 * so no two threads write the same output or input pixel.
 *
 * Vector path (3×3 kernel, stride 1 or 2, multiplier 1): the row kernels of
 * depthwise_vec.h, compiled for AVX-512 (16 channels a vector), AVX2 + FMA (8) and
 * portable vectors (4), the widest that isa_active() allows taking as many whole blocks of
 * channels as fit and the narrower ones the blocks left over (with AVX-512, C = 40 is two
 * blocks of 16 and one of 8). The stride-1 input gradient is the forward kernel run over
 * the output gradient with the taps flipped (pad 2 − pad); the stride-2 one gathers, each
 * input pixel summing the outputs whose window holds it. The weight gradient sums tiles
 * of pixels in float registers into a float buffer, added every DW_FLUSH_PX pixels to
 * per-thread double partials, reduced in thread order: deterministic for a thread count
 * and instruction set. Other kernel sizes, strides and multipliers, and the channels no
 * vector block covers, take the general loops, which follow the same row split.
 * Overwriting the input gradient never reads what dinp held: the vector kernels store each
 * pixel once from its accumulator (added to the old value only when accumulating), the
 * general loops store a pixel's first tap and add the rest, and write 0 where no output
 * reads the pixel.
 *
 * depthwise_forward_stats also gathers the moments of the batch norm reading the output
 * (BnStats): the vector kernels add each tile's values, shifted by the thread's first row, to
 * float sums from their registers, committed to the double sums every DW_COMMIT_PX pixels;
 * the first row itself goes through bnstats_rows from the cache. */
#include "nn/layers.h"

#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "util/isa.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DW_X86 1
#endif

#define CB 32 /* channels per register block of the general forward */
#define DW_COMMIT_PX 64 /* pixels whose moments the float sums take before their commit: rows of
                         * fewer pixels are committed together, as the double adds of a
                         * commit per 28-pixel row cost 8% of the kernel's time */
#define STREAM_BYTES ((size_t)8 << 20) /* tensors written past the caches: bigger than the
                                        * 1–2 MiB L2 of a core, so the next layer, which
                                        * reads them after the whole tensor is written, would
                                        * find little of them there */

/* One row of a vector kernel: where it reads, what it prefetches, which channels. */
typedef struct {
    const float *src[3]; /* the source row tap row ky reads; NULL where it falls outside */
    const float *pf[3];  /* source rows the thread's next row reads and this one does not
                          * (NULL: none), prefetched while this row runs */
    const float *pfd;    /* weight gradient: the next row's output gradient, or NULL */
    int in_w, out_w;     /* pixels of a source row and of the row written */
    int C;               /* channels of a pixel */
    int pad_left, stride;
    int c_lo, c_hi;      /* the channels to do, a multiple of the kernel's VL wide */
    int rs;              /* weight gradient: floats between the tap sums of rb */
    bool nt;             /* store the row written past the caches (every store VL-aligned) */
    const float *shift;  /* forward: with ms, the batch norm moments' shift (C), see BnStats */
    float *ms;           /* forward: the moments' float sums (2C) its outputs are added to, or
                          * NULL */
} DwRow;

/* The row kernels of one instruction set (depthwise_vec.h). */
typedef struct {
    int vl; /* channels a vector */
    /* Output row orow (out_w, C) from src rows (in_w, C): forward (flip and acc false),
     * or with the taps flipped (flip, bias NULL, stride 1) the stride-1 input gradient,
     * stored (acc false) or added (acc true). */
    void (*fwd)(float *orow, const float *w, const float *bias, const DwRow *r, bool flip,
                bool acc);
    /* Weight and bias gradients of output row dyrow (out_w, C) added to the float sums rb
     * (tap t at rb[t·rs], the bias at rb[9·rs]). */
    void (*dw)(float *rb, const float *dyrow, const DwRow *r);
    /* Stride-2 input gradient of input row drow (out_w, C), src the output-gradient rows. */
    void (*dx2)(float *drow, const float *w, const DwRow *r, bool acc);
} DwKernels;

/* Portable vectors: SSE on x86-64-v2, NEON elsewhere. */
typedef float Vf4 __attribute__((vector_size(16)));
#define VL 4
#define OB 4
#define V Vf4
#define VFMA(a, b, c) ((a) * (b) + (c))
#ifdef DW_X86
#define VSTREAM(p, v) _mm_stream_ps(p, v)
#else
#define VSTREAM(p, v) memcpy(p, &(v), sizeof(V))
#endif
#define SFX(name) name##_generic
#include "nn/depthwise_vec.h"

#ifdef DW_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
typedef float Vf8 __attribute__((vector_size(32)));
#define VL 8
#define OB 4 /* of 16 registers: a tap row's 3 weights, the stride-2 tile's 2·4 sums */
#define V Vf8
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VSTREAM(p, v) _mm256_stream_ps(p, v)
#define SFX(name) name##_avx2
#include "nn/depthwise_vec.h"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq")
typedef float Vf16 __attribute__((vector_size(64)));
#define VL 16
#define OB 8 /* of 32 registers */
#define V Vf16
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VSTREAM(p, v) _mm512_stream_ps(p, v)
#define SFX(name) name##_avx512
#include "nn/depthwise_vec.h"
#pragma GCC pop_options
#endif

/* Which vector kernels take which channels of a layer; channels [c_gen, C) go to the
 * general loops. */
typedef struct {
    int n;                   /* vector segments, widest first */
    const DwKernels *k[3];   /* kernels of segment i, channels [lo[i], hi[i]) */
    int lo[3], hi[3];
    int c_gen;
} DwPlan;

static void dw_plan(DwPlan *p, const ConvGeom *g)
{
    p->n = 0;
    p->c_gen = 0;
    if (g->K != g->C || g->kh != 3 || g->kw != 3 || (g->stride != 1 && g->stride != 2))
        return;
#ifdef DW_X86
    const DwKernels *const sets[] = {&dw3_kernels_generic, &dw3_kernels_avx2,
                                     &dw3_kernels_avx512};
    int top = (int)isa_active();
#else
    const DwKernels *const sets[] = {&dw3_kernels_generic};
    int top = 0;
#endif
    for (int i = top; i >= 0; i--) {
        int hi = p->c_gen + (g->C - p->c_gen) / sets[i]->vl * sets[i]->vl;
        if (hi == p->c_gen)
            continue;
        p->k[p->n] = sets[i], p->lo[p->n] = p->c_gen, p->hi[p->n] = hi;
        p->n++;
        p->c_gen = hi;
    }
}

/* This thread's share [*lo, *hi) of R rows: contiguous, the same for a thread count. */
static void thread_rows(long R, long *lo, long *hi)
{
    long t = omp_get_thread_num(), nt = omp_get_num_threads();
    *lo = R * t / nt;
    *hi = R * (t + 1) / nt;
}

/* The input rows output row i (of N·OH) reads through tap rows 0, 1, 2 (NULL: padding). */
static void fwd_src(const float *src[3], const float *inp, const ConvGeom *g, long i)
{
    int n = (int)(i / g->OH), oy = (int)(i % g->OH);
    for (int ky = 0; ky < 3; ky++) {
        int iy = oy * g->stride - g->pad_top + ky;
        src[ky] = iy >= 0 && iy < g->H ? inp + (((size_t)n * g->H + iy) * g->W) * g->C : NULL;
    }
}

/* The output-gradient rows input row i (of N·H) gathers: for stride 1 through the
 * flipped taps 0, 1, 2 (original tap rows 2, 1, 0), for stride 2 through tap rows 0, 1,
 * 2 (NULL where none). */
static void dx_src(const float *src[3], const float *dout, const ConvGeom *g, long i)
{
    int n = (int)(i / g->H), y = (int)(i % g->H), s = g->stride;
    for (int k = 0; k < 3; k++) {
        int t = s == 1 ? y + g->pad_top - 2 + k : y + g->pad_top - k;
        bool in = t >= 0 && t % s == 0 && t / s < g->OH;
        src[k] = in ? dout + (((size_t)n * g->OH + t / s) * g->OW) * g->K : NULL;
    }
}

/* Whether kernels write a tensor of n floats from base, C channels a pixel, with streaming
 * stores for the channels from c_lo by vectors of vl: when it is bigger than the caches
 * would keep until its reader comes (the next layer, after the whole tensor), and every
 * store is aligned. */
static bool dw_stream(const float *base, size_t n, int C, int c_lo, int vl)
{
    return n * sizeof(float) >= STREAM_BYTES && C % vl == 0 && c_lo % vl == 0 &&
           (uintptr_t)base % (vl * sizeof(float)) == 0;
}

/* Orders this thread's streaming stores before what follows (the end of the parallel
 * region, after which other threads read them). */
static void dw_fence(void)
{
#ifdef DW_X86
    _mm_sfence();
#endif
}

/* pf = the rows of nxt that cur does not hold. */
static void new_rows(const float *pf[3], const float *const cur[3], const float *const nxt[3])
{
    for (int j = 0; j < 3; j++) {
        const float *p = nxt[j];
        pf[j] = p && p != cur[0] && p != cur[1] && p != cur[2] ? p : NULL;
    }
}

/* Floats between the tap sums of the weight gradient's float buffer: K and one cache
 * line more, so that the ten sums of a channel block do not all fall in one set of the L1
 * cache when K·4 bytes is a multiple of 4 KiB (K = 1024). */
static size_t rb_stride(const ConvGeom *g)
{
    return (size_t)g->K + 16;
}

size_t depthwise_workspace(const ConvGeom *g, int threads)
{
    size_t per = (size_t)g->kh * g->kw * g->K + g->K;
    size_t rbn = (size_t)(g->kh * g->kw + 1) * rb_stride(g);
    /* per thread: double partials (2 floats each) and a float row buffer */
    return (size_t)(threads < 1 ? 1 : threads) * (per * 2 + rbn);
}

/* Valid [lo, hi) of kernel taps k with 0 <= o·s − pad + k < size. */
static inline void tap_range(int o, int s, int pad, int k, int size, int *lo, int *hi)
{
    int a = o * s - pad;
    *lo = a < 0 ? -a : 0;
    *hi = a + k > size ? size - a : k;
}

/* One output pixel over channels [c_lo, C), multiplier 1: out[c] = bias[c] + Σ_taps
 * x[c]·w[c], accumulated in registers a block of CB channels at a time. */
static inline void dw_pixel(float *restrict o, const float *restrict img,
                            const float *restrict weight, const float *restrict bias, int W,
                            int C, int kw, int iy0, int ix0, int ky0, int ky1, int kx0, int kx1,
                            int c_lo)
{
    int c0 = c_lo;
    for (; c0 + CB <= C; c0 += CB) {
        float acc[CB];
        for (int j = 0; j < CB; j++)
            acc[j] = bias ? bias[c0 + j] : 0.0f;
        for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++) {
                const float *x = img + ((size_t)(iy0 + ky) * W + ix0 + kx) * C + c0;
                const float *w = weight + ((size_t)ky * kw + kx) * C + c0;
                for (int j = 0; j < CB; j++)
                    acc[j] += x[j] * w[j];
            }
        for (int j = 0; j < CB; j++)
            o[c0 + j] = acc[j];
    }
    for (int c = c0; c < C; c++) {
        float acc = bias ? bias[c] : 0.0f;
        for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++)
                acc += img[((size_t)(iy0 + ky) * W + ix0 + kx) * C + c] *
                       weight[((size_t)ky * kw + kx) * C + c];
        o[c] = acc;
    }
}

/* Forward of output row oy over input channels [c_lo, C), any kernel, stride, multiplier. */
static void fwd_row_general(float *restrict orow, const float *restrict img,
                            const float *restrict weight, const float *restrict bias,
                            const ConvGeom *g, int oy, int c_lo)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, kw = g->kw, s = g->stride, m = K / C;
    int iy0 = oy * s - g->pad_top, ky0, ky1;
    tap_range(oy, s, g->pad_top, g->kh, H, &ky0, &ky1);
    for (int ox = 0; ox < g->OW; ox++) {
        float *restrict o = orow + (size_t)ox * K;
        int ix0 = ox * s - g->pad_left, kx0, kx1;
        tap_range(ox, s, g->pad_left, kw, W, &kx0, &kx1);
        if (m == 1) {
            dw_pixel(o, img, weight, bias, W, C, kw, iy0, ix0, ky0, ky1, kx0, kx1, c_lo);
            continue;
        }
        for (int k = c_lo * m; k < K; k++)
            o[k] = bias ? bias[k] : 0.0f;
        for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++) {
                const float *x = img + ((size_t)(iy0 + ky) * W + ix0 + kx) * C;
                const float *w = weight + ((size_t)ky * kw + kx) * K;
                for (int c = c_lo; c < C; c++)
                    for (int j = 0; j < m; j++)
                        o[c * m + j] += x[c] * w[c * m + j];
            }
    }
}

/* Adds channels [c_lo, C) of the n pixels of row (n, C), which the general loops wrote, to
 * thread t's float sums of stats (see bnstats_sums). */
static void general_moments(BnStats *stats, int t, const float *row, int n, int c_lo)
{
    const int C = stats->C;
    const float *restrict sh = bnstats_shift(stats, t);
    float *restrict fs = bnstats_sums(stats, t), *restrict fq = fs + C;
    for (int x = 0; x < n; x++)
        for (int c = c_lo; c < C; c++) {
            float d = row[(size_t)x * C + c] - sh[c];
            fs[c] += d;
            fq[c] += d * d;
        }
}

void depthwise_forward(float *out, const float *inp, const float *weight, const float *bias,
                       const ConvGeom *g, int threads)
{
    depthwise_forward_stats(out, inp, weight, bias, g, threads, NULL);
}

void depthwise_forward_stats(float *out, const float *inp, const float *weight,
                             const float *bias, const ConvGeom *g, int threads, BnStats *stats)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, OH = g->OH, OW = g->OW;
    DwPlan p;
    dw_plan(&p, g);
#pragma omp parallel num_threads(threads)
    {
        long lo, hi;
        thread_rows((long)g->N * OH, &lo, &hi);
        const int t = omp_get_thread_num();
        size_t pending = 0; /* pixels added to the float moments and not yet committed */
        for (long i = lo; i < hi; i++) {
            const float *img = inp + (size_t)(i / OH) * H * W * C;
            float *orow = out + (size_t)i * OW * K;
            /* the vector kernels add the moments of their channels from registers, once
             * the thread's first row, summed from the cache, has fixed the shift */
            const bool own = stats && p.n && i > lo;
            if (p.n) {
                DwRow r = {.in_w = W, .out_w = OW, .C = C, .pad_left = g->pad_left,
                           .stride = g->stride, .shift = own ? bnstats_shift(stats, t) : NULL,
                           .ms = own ? bnstats_sums(stats, t) : NULL};
                const float *nxt[3] = {NULL, NULL, NULL};
                fwd_src(r.src, inp, g, i);
                if (i + 1 < hi)
                    fwd_src(nxt, inp, g, i + 1);
                new_rows(r.pf, r.src, nxt);
                for (int s = 0; s < p.n; s++) {
                    r.c_lo = p.lo[s], r.c_hi = p.hi[s];
                    /* a row bnstats_rows reads next stays in the cache */
                    r.nt = (!stats || own) &&
                           dw_stream(out, (size_t)g->N * OH * OW * K, C, r.c_lo, p.k[s]->vl);
                    p.k[s]->fwd(orow, weight, bias, &r, false, false);
                }
            }
            if (p.c_gen < C)
                fwd_row_general(orow, img, weight, bias, g, (int)(i % OH), p.c_gen);
            if (own) {
                if (p.c_gen < C)
                    general_moments(stats, t, orow, OW, p.c_gen);
                pending += OW;
                if (pending >= DW_COMMIT_PX || i + 1 == hi) {
                    bnstats_commit(stats, t, pending);
                    pending = 0;
                }
            } else if (stats) {
                bnstats_rows(stats, t, orow, (size_t)OW);
            }
        }
        dw_fence();
    }
}

/* Weight and bias gradients of output row oy over input channels [c_lo, C), any kernel,
 * stride and multiplier: the row's products summed in the float buffer rb (L1-resident,
 * tap t at rb[t·rs], the bias after the kh·kw taps; only its channels [c_lo·m, K) are
 * touched, the vector kernels keep theirs below), then added to the double partials pw
 * (tap t at pw[t·K]). */
static void dw_row_general(double *restrict pw, float *restrict rb, size_t rs,
                           const float *restrict dyrow, const float *restrict img,
                           const ConvGeom *g, int oy, int c_lo)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, kw = g->kw, s = g->stride, m = K / C;
    const int taps = g->kh * kw;
    int iy0 = oy * s - g->pad_top, ky0, ky1;
    tap_range(oy, s, g->pad_top, g->kh, H, &ky0, &ky1);
    for (int t = 0; t <= taps; t++)
        memset(rb + t * rs + (size_t)c_lo * m, 0, sizeof(float) * (size_t)(K - c_lo * m));
    for (int ox = 0; ox < g->OW; ox++) {
        const float *restrict dy = dyrow + (size_t)ox * K;
        for (int k = c_lo * m; k < K; k++)
            rb[taps * rs + k] += dy[k];
        int ix0 = ox * s - g->pad_left, kx0, kx1;
        tap_range(ox, s, g->pad_left, kw, W, &kx0, &kx1);
        for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++) {
                const float *restrict x = img + ((size_t)(iy0 + ky) * W + ix0 + kx) * C;
                float *restrict rw = rb + ((size_t)ky * kw + kx) * rs;
                if (m == 1) {
                    for (int c = c_lo; c < C; c++)
                        rw[c] += dy[c] * x[c];
                } else {
                    for (int c = c_lo; c < C; c++)
                        for (int j = 0; j < m; j++)
                            rw[c * m + j] += dy[c * m + j] * x[c];
                }
            }
    }
    for (int t = 0; t <= taps; t++)
        for (int k = c_lo * m; k < K; k++)
            pw[(size_t)t * K + k] += rb[t * rs + k];
}

/* Taps k ≡ a (mod s) of a k-tap window whose output index (a − k) / s lies in [0, n):
 * [*lo, *hi) stepped by s, the first reaching output *o0 (the next ones o0 − 1, ...). */
static inline void gather_taps(int a, int s, int k, int n, int *lo, int *hi, int *o0)
{
    int l = a - s * (n - 1) > 0 ? a - s * (n - 1) : 0;
    *lo = l + (a - l) % s;
    *hi = a + 1 < k ? a + 1 : k;
    *o0 = (a - *lo) / s;
}

/* Input gradient of input row y over input channels [c_lo, C), any kernel, stride and
 * multiplier: each pixel gathers the outputs whose window holds it, a tap at a time over
 * all its channels (the address order that suits wide layers streaming from memory). When
 * overwriting, the pixel's first tap stores and the rest add, and a pixel no output reads
 * gets 0. */
static void dx_row_general(float *restrict drow, const float *restrict dimg,
                           const float *restrict weight, const ConvGeom *g, int y, int c_lo,
                           bool accumulate)
{
    const int C = g->C, K = g->K, OW = g->OW, kw = g->kw, s = g->stride, m = K / C;
    int ky0, ky1, oy0;
    gather_taps(y + g->pad_top, s, g->kh, g->OH, &ky0, &ky1, &oy0);
    for (int x = 0; x < g->W; x++) {
        float *restrict d = drow + (size_t)x * C;
        int kx0, kx1, ox0;
        gather_taps(x + g->pad_left, s, kw, OW, &kx0, &kx1, &ox0);
        bool store = !accumulate;
        for (int ky = ky0, oy = oy0; ky < ky1; ky += s, oy--)
            for (int kx = kx0, ox = ox0; kx < kx1; kx += s, ox--) {
                const float *restrict dy = dimg + ((size_t)oy * OW + ox) * K;
                const float *restrict w = weight + ((size_t)ky * kw + kx) * K;
                if (m == 1 && store) {
                    for (int c = c_lo; c < C; c++)
                        d[c] = dy[c] * w[c];
                } else if (m == 1) {
                    for (int c = c_lo; c < C; c++)
                        d[c] += dy[c] * w[c];
                } else {
                    for (int c = c_lo; c < C; c++) {
                        float acc = 0;
                        for (int j = 0; j < m; j++)
                            acc += dy[c * m + j] * w[c * m + j];
                        d[c] = store ? acc : d[c] + acc;
                    }
                }
                store = false;
            }
        if (store)
            memset(d + c_lo, 0, sizeof(float) * (size_t)(C - c_lo));
    }
}

/* The first input row (of N·H) whose gradient the thread doing output row i (of N·OH)
 * computes, i = N·OH giving N·H. Input row y belongs to the last output row that reads it,
 * min((y + pad_top) / s, OH − 1) (every output row reading it comes before or is that
 * row); a row no output reads falls to the nearest output row. Rows belong to output
 * rows in order, so a thread's contiguous output rows own contiguous input rows, and the
 * shares of the threads tile the N·H rows without overlap. */
static long dx_first(const ConvGeom *g, long i)
{
    long n = i / g->OH;
    int oy = (int)(i % g->OH), y = oy * g->stride - g->pad_top;
    return n * g->H + (y < 0 ? 0 : y > g->H ? g->H : y);
}

/* Flushes the vector kernels' float sums of channels [0, c) (rb, tap t at t·rs, the bias
 * at 9·rs) into the double partials pw (tap t at t·C) and clears them. */
static void dw_flush(double *restrict pw, float *restrict rb, size_t rs, int C, int c)
{
    for (int t = 0; t < 10; t++)
        for (int k = 0; k < c; k++) {
            pw[(size_t)t * C + k] += rb[t * rs + k];
            rb[t * rs + k] = 0;
        }
}

/* Pixels of output rows the vector kernels sum in float before adding the sums to the
 * double partials: about a row of the net's wide layers, several of its narrow ones (a
 * row of 7 pixels would otherwise pay a flush of 10·C doubles for 7 pixels' work). */
#define DW_FLUSH_PX 96

/* The backward: one pass over the rows for both gradients. Each thread walks its contiguous
 * share of output rows (thread_rows) once; after output row i's weight and bias gradients
 * it computes the input gradient of the input rows that row owns (dx_first), whose output
 * gradient rows (i and the one or two before it) it has just read, so the output gradient
 * is read from memory once. Every input pixel is computed by one thread from dout and the
 * weights alone, by the same row kernel whatever the split, so the input gradient is
 * bit-identical for every thread count. The weight gradient sums go to per-thread double
 * partials (after float sums over at least DW_FLUSH_PX pixels and the share's last row),
 * reduced in thread order after the team. */
void depthwise_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const ConvGeom *g, float *work,
                        int threads, bool accumulate)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, OH = g->OH, OW = g->OW;
    const size_t kwk = (size_t)g->kh * g->kw * K, per = kwk + K;
    DwPlan p;
    dw_plan(&p, g);
    if (threads < 1)
        threads = 1;
    const size_t rs = rb_stride(g), rbn = (size_t)(g->kh * g->kw + 1) * rs;
    double *part = (double *)work;                           /* (threads, per) */
    float *rowbuf = (float *)(part + (size_t)threads * per); /* (threads, rbn) */
    memset(part, 0, sizeof(double) * threads * per);
#pragma omp parallel num_threads(threads)
    {
        double *pw = part + (size_t)omp_get_thread_num() * per;
        float *rb = rowbuf + (size_t)omp_get_thread_num() * rbn;
        long lo, hi;
        thread_rows((long)g->N * OH, &lo, &hi);
        long y = dx_first(g, lo);
        int px = 0; /* pixels in the vector kernels' float sums */
        if (p.n)
            for (int t = 0; t < 10; t++)
                memset(rb + t * rs, 0, sizeof(float) * (size_t)p.c_gen);
        for (long i = lo; i < hi; i++) {
            const float *img = inp + (size_t)(i / OH) * H * W * C;
            const float *dyrow = dout + (size_t)i * OW * K;
            long y_end = dinp ? dx_first(g, i + 1) : y;
            if (p.n) {
                DwRow r = {.in_w = W, .out_w = OW, .C = C, .pad_left = g->pad_left,
                           .stride = g->stride, .rs = (int)rs};
                const float *nxt[3] = {NULL, NULL, NULL};
                fwd_src(r.src, inp, g, i);
                if (i + 1 < hi) {
                    fwd_src(nxt, inp, g, i + 1);
                    r.pfd = y_end > y ? NULL : dyrow + (size_t)OW * K;
                }
                new_rows(r.pf, r.src, nxt);
                for (int s = 0; s < p.n; s++) {
                    r.c_lo = p.lo[s], r.c_hi = p.hi[s];
                    p.k[s]->dw(rb, dyrow, &r);
                }
                for (long yy = y; yy < y_end; yy++) {
                    /* the rows it reads are those just read; it prefetches the next
                     * output row's gradient, which the weight gradient reads next */
                    float *drow = dinp + (size_t)yy * W * C;
                    DwRow d = {.in_w = OW, .out_w = W, .C = C, .stride = g->stride,
                               .pad_left = g->stride == 1 ? 2 - g->pad_left : g->pad_left};
                    dx_src(d.src, dout, g, yy);
                    if (i + 1 < hi)
                        d.pf[0] = dyrow + (size_t)OW * K;
                    for (int s = 0; s < p.n; s++) {
                        d.c_lo = p.lo[s], d.c_hi = p.hi[s];
                        d.nt = !accumulate && dw_stream(dinp, (size_t)g->N * H * W * C, C,
                                                        d.c_lo, p.k[s]->vl);
                        if (g->stride == 1)
                            p.k[s]->fwd(drow, weight, NULL, &d, true, accumulate);
                        else
                            p.k[s]->dx2(drow, weight, &d, accumulate);
                    }
                }
                px += OW;
                if (px >= DW_FLUSH_PX || i + 1 == hi) {
                    dw_flush(pw, rb, rs, C, p.c_gen);
                    px = 0;
                }
            }
            if (p.c_gen < C) {
                dw_row_general(pw, rb, rs, dyrow, img, g, (int)(i % OH), p.c_gen);
                for (long yy = y; yy < y_end; yy++)
                    dx_row_general(dinp + (size_t)yy * W * C,
                                   dout + (size_t)(yy / H) * OH * OW * K, weight, g,
                                   (int)(yy % H), p.c_gen, accumulate);
            }
            y = y_end;
        }
        dw_fence();
    }
    for (size_t i = 0; i < per; i++) {
        double acc = 0;
        for (int t = 0; t < threads; t++)
            acc += part[t * per + i];
        if (i < kwk)
            dweight[i] += (float)acc;
        else if (dbias)
            dbias[i - kwk] += (float)acc;
    }
}

void depthwise_forward_naive(float *out, const float *inp, const float *weight,
                             const float *bias, const ConvGeom *g)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, kh = g->kh, kw = g->kw, s = g->stride;
    const int m = K / C;
    for (int n = 0; n < g->N; n++)
        for (int oy = 0; oy < g->OH; oy++)
            for (int ox = 0; ox < g->OW; ox++)
                for (int k = 0; k < K; k++) {
                    int c = k / m;
                    double acc = bias ? bias[k] : 0.0;
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            int iy = oy * s - g->pad_top + ky, ix = ox * s - g->pad_left + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                continue;
                            acc += (double)inp[(((size_t)n * H + iy) * W + ix) * C + c] *
                                   weight[((size_t)ky * kw + kx) * K + k];
                        }
                    out[(((size_t)n * g->OH + oy) * g->OW + ox) * K + k] = (float)acc;
                }
}

void depthwise_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const ConvGeom *g)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, kh = g->kh, kw = g->kw, s = g->stride;
    const int OH = g->OH, OW = g->OW, m = K / C;
    for (int k = 0; k < K; k++) {
        int c = k / m;
        double db = 0;
        for (size_t r = 0; r < (size_t)g->N * OH * OW; r++)
            db += dout[r * K + k];
        if (dbias)
            dbias[k] += (float)db;
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++) {
                double acc = 0;
                for (int n = 0; n < g->N; n++)
                    for (int oy = 0; oy < OH; oy++)
                        for (int ox = 0; ox < OW; ox++) {
                            int iy = oy * s - g->pad_top + ky, ix = ox * s - g->pad_left + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                continue;
                            size_t o = (((size_t)n * OH + oy) * OW + ox) * K + k;
                            double dy = dout[o];
                            acc += dy * inp[(((size_t)n * H + iy) * W + ix) * C + c];
                            if (dinp)
                                dinp[(((size_t)n * H + iy) * W + ix) * C + c] +=
                                    (float)(dy * weight[((size_t)ky * kw + kx) * K + k]);
                        }
                dweight[((size_t)ky * kw + kx) * K + k] += (float)acc;
            }
    }
}
