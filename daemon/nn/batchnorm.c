/* batchnorm.c — batch normalization (Keras 3 semantics) forward and backward, naive reference.
 *
 * Shape letters: M = N·H·W rows of C channels (an NHWC tensor seen as (M, C)). Sums over
 * rows run per thread in double and are reduced in thread order. Train mode uses the
 * batch mean and the biased batch variance Σ(x - mean)²/M for both the normalization and
 * the moving-average update, as Keras 3 does (keras/src/layers/normalization/
 * batch_normalization.py: ops.moments, then moving * momentum + batch * (1 - momentum)).
 * PyTorch and TF's fused kernel update their running variance with the unbiased
 * variance instead; the difference is a factor M/(M-1) on the batch term.
 *
 * Narrow layers run as wide rows: with C < 64 channels, R = 64 / C consecutive rows (contiguous
 * in NHWC) form one row of W = R·C floats, and the per-channel vectors are repeated R times
 * (widen), so the inner loops run over a full set of vector registers instead of a few lanes
 * with a loop's overhead per pixel (MobileNet α 0.25 begins with 8 and 16 channels). Each
 * element is computed by the same expression from the same coefficients, so outputs and
 * input gradients are those of the plain loops bit for bit; the sums over rows keep W lanes
 * that are folded into C channels at the end. The M mod R rows left over form one shorter
 * row at the end, handled by the last thread.
 *
 * Workspace (batchnorm_workspace floats, BnWork): per-thread double sums (threads, 2W),
 * per-thread float block sums (threads, 2W), three per-channel float vectors (3, C) and six
 * widened ones (6, W).
 *
 * The mean and variance come from one pass of Σd and Σd² with d = x − x_first (the first
 * row's value of the channel): var = Σd²/M − (Σd/M)² does not cancel because the shift is
 * within a few standard deviations of the mean. A producer that hands over its rows' moments
 * (BnStats, filled by bnstats_rows while each thread's rows are in its cache) saves that
 * pass: each thread shifts by its own first row, and the per-thread partials are merged in
 * thread order in double (Chan's pairwise update of mean and M2).
 *
 * The backward of a batch norm fused with a ReLU/ReLU6 and no residual add masks dout by
 * 0 < v < hi with v recomputed from x by bn_affine, the very expression the forward
 * clipped: in ISO C (no FMA contraction) both sites round alike, so the mask is the one the
 * output y = min(max(v, 0), hi) gives, and the backward never reads y.
 *
 * The passes over the rows (batchnorm_vec.h) are compiled for AVX-512, AVX2 and the build's
 * own flags, and the widest that isa_active() allows runs: the portable x86-64-v2 build
 * would otherwise run them with SSE. */
#include "nn/layers.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "util/isa.h"

#if defined(__x86_64__) || defined(__i386__)
#define BN_X86 1
#endif

/* Floats per wide row: C, or R·C with R = 64 / C for narrow layers (see the top). */
static int wide_width(int C)
{
    return C < 64 ? 64 / C * C : C;
}

size_t batchnorm_workspace(int C, int threads)
{
    size_t W = (size_t)wide_width(C);
    return (size_t)(threads < 1 ? 1 : threads) * 6 * W + 3 * (size_t)C + 6 * W;
}

/* The workspace laid out: part (threads, 2W) doubles, scratch (threads, 2W) floats, the
 * per-channel vectors c[0..3) (C each) and the widened ones w[0..6) (W each). */
typedef struct {
    double *part;
    float *scratch;
    float *c[3];
    float *w[6];
    int W;
} BnWork;

static BnWork bn_work(float *work, int C, int threads)
{
    BnWork b = {.W = wide_width(C)};
    b.part = (double *)work;
    b.scratch = (float *)(b.part + (size_t)threads * 2 * b.W);
    b.c[0] = b.scratch + (size_t)threads * 2 * b.W;
    for (int i = 1; i < 3; i++)
        b.c[i] = b.c[i - 1] + C;
    b.w[0] = b.c[2] + C;
    for (int i = 1; i < 6; i++)
        b.w[i] = b.w[i - 1] + b.W;
    return b;
}

/* dst[j] = src[j mod C] for j < W: a per-channel vector over a wide row. Returns dst. */
static float *widen(float *dst, const float *src, int C, int W)
{
    for (int j = 0; j < W; j++)
        dst[j] = src[j % C];
    return dst;
}

/* Thread t's wide rows [*lo, *hi) of M rows of C channels (W per wide row), and the floats
 * of the shorter last row it also takes (*tail: the M mod R rows left over; last thread
 * only). */
static void wide_share(int M, int C, int W, int t, int T, long *lo, long *hi, int *tail)
{
    long rows = M / (W / C);
    *lo = rows * t / T;
    *hi = rows * (t + 1) / T;
    *tail = t == T - 1 ? (int)((M - rows * (W / C)) * C) : 0;
}

#define ROW_BLOCK 16 /* rows summed in float before each flush into the double sums */

/* The scale a = gamma·invstd of train mode, from the float invstd both directions hold. */
static inline float bn_train_scale(float gamma, float invstd)
{
    return (float)((double)gamma * invstd);
}

/* The scale a = gamma / sqrt(moving_var + eps) of inference mode. */
static inline float bn_infer_scale(float gamma, float moving_var, float eps)
{
    return (float)(gamma / sqrt((double)moving_var + eps));
}

/* How the backward masks dout for a fused ReLU/ReLU6: by its output y (0 < y < hi), or, with
 * y NULL and a non-NULL, by v = bn_affine(x, m, a, b) (0 < v < hi, the same set); neither:
 * no mask. */
typedef struct {
    const float *y;    /* (M, C) or NULL */
    const float *a, *b; /* (W) the forward's scale and beta, widened, or NULL */
    float hi;
} Mask;

/* The mask of f; a (W) is the forward's scale widened, bw (W floats) receives beta widened. */
static Mask make_mask(const BnFused *f, const float *a, float *bw, int C, int W)
{
    Mask k = {0};
    if (!f)
        return k;
    k.hi = f->hi;
    if (f->out) {
        k.y = f->out;
    } else {
        assert(f->beta);
        k.a = a;
        k.b = widen(bw, f->beta, C, W);
    }
    return k;
}

#define MAX_ROW_BLOCK 256 /* channels masked at a time into a stack buffer */

/* The passes of one instruction set (batchnorm_vec.h). */
typedef struct {
    /* Per-channel sums over the rows (see channel_sums there). */
    void (*sums)(double *part, float *scratch, const float *dout, const Mask *k,
                 const float *inp, const float *mean, const float *invstd, int M, int C, int W,
                 int threads);
    /* out = (x − m)·a + b, with f's add and clip (see affine_rows there). */
    void (*affine)(float *out, const float *inp, const float *m, const float *a, const float *b,
                   int M, int C, int W, const BnFused *f, int threads);
    /* The input gradient (see input_gradient there). */
    void (*grad)(float *dinp, const float *dout, const float *inp, const float *m,
                 const float *k1, const float *k2, const float *k3, int M, int C, int W,
                 const BnFused *f, const Mask *k, int threads);
} BnKernels;

#define SFX(name) name##_generic
#include "nn/batchnorm_vec.h"

#ifdef BN_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define SFX(name) name##_avx2
#include "nn/batchnorm_vec.h"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq")
#define SFX(name) name##_avx512
#include "nn/batchnorm_vec.h"
#pragma GCC pop_options
#endif

/* The passes for the instruction set isa_active() allows. */
static const BnKernels *bn_pick(void)
{
#ifdef BN_X86
    switch (isa_active()) {
    case ISA_AVX512:
        return &bn_kernels_avx512;
    case ISA_AVX2:
        return &bn_kernels_avx2;
    default:
        break;
    }
#endif
    return &bn_kernels_generic;
}

/* ---- moments gathered by the producing layer ------------------------------------------- */

#define LINE 64 /* bytes of a cache line: each thread's partials start on one of their own */

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* Byte offset of the count in a thread's partials (after 2C doubles, 2C floats and C floats),
 * and the bytes from one thread's partials to the next. */
static size_t count_offset(int C)
{
    return round_up((size_t)C * (2 * sizeof(double) + 3 * sizeof(float)), sizeof(size_t));
}

static size_t part_step(int C)
{
    return round_up(count_offset(C) + sizeof(size_t), LINE);
}

/* Thread t's partials (see BnStats). */
static double *st_sum(const BnStats *s, int t)
{
    return (double *)(s->part + (size_t)t * s->step);
}

static float *st_blk(const BnStats *s, int t)
{
    return (float *)(st_sum(s, t) + 2 * (size_t)s->C);
}

static float *st_shift(const BnStats *s, int t)
{
    return st_blk(s, t) + 2 * (size_t)s->C;
}

static size_t *st_count(const BnStats *s, int t)
{
    return (size_t *)(s->part + (size_t)t * s->step + count_offset(s->C));
}

size_t bnstats_bytes(int C, int threads)
{
    return (size_t)(threads < 1 ? 1 : threads) * part_step(C) + LINE; /* LINE: the alignment */
}

void bnstats_init(BnStats *s, void *mem, int C, int threads)
{
    if (threads < 1)
        threads = 1;
    s->C = C;
    s->threads = threads;
    s->step = part_step(C);
    s->part = (unsigned char *)round_up((uintptr_t)mem, LINE);
    for (int t = 0; t < threads; t++) {
        memset(st_sum(s, t), 0, sizeof(double) * 2 * (size_t)C);
        *st_count(s, t) = 0;
    }
}

/* Adds the float block sums of thread t into its double sums and clears them. */
static void bnstats_flush(BnStats *s, int t)
{
    const int C = s->C;
    double *restrict sd = st_sum(s, t);
    float *restrict fs = st_blk(s, t);
    for (int c = 0; c < 2 * C; c++) {
        sd[c] += fs[c];
        fs[c] = 0.0f;
    }
}

/* Rows [r, e) of x into thread t's float block sums, flushing each completed block. */
static size_t bnstats_partial(BnStats *s, int t, const float *rows, size_t r, size_t e,
                              size_t have)
{
    const int C = s->C;
    const float *restrict sh = st_shift(s, t);
    float *restrict fs = st_blk(s, t), *restrict fq = fs + C;
    for (; r < e; r++) {
        const float *restrict x = rows + r * C;
#pragma omp simd
        for (int c = 0; c < C; c++) {
            float d = x[c] - sh[c];
            fs[c] += d;
            fq[c] += d * d;
        }
        if (++have % ROW_BLOCK == 0)
            bnstats_flush(s, t);
    }
    return have;
}

void bnstats_rows(BnStats *s, int t, const float *rows, size_t n)
{
    assert(t >= 0 && t < s->threads);
    const int C = s->C;
    size_t *cnt = st_count(s, t);
    float *restrict sh = st_shift(s, t);
    double *restrict sd = st_sum(s, t), *restrict sq = sd + C;
    size_t have = *cnt, r = 0;
    if (n && !have) { /* the thread's first row is its shift */
        memcpy(sh, rows, sizeof(float) * C);
        memset(st_blk(s, t), 0, sizeof(float) * 2 * C);
    }
    /* complete a block begun by an earlier call, row by row */
    size_t head = have % ROW_BLOCK ? ROW_BLOCK - have % ROW_BLOCK : 0;
    have = bnstats_partial(s, t, rows, 0, head < n ? head : n, have);
    r = head < n ? head : n;
    /* whole blocks: the same float sums, 16 rows at a time in registers */
    for (; r + ROW_BLOCK <= n; r += ROW_BLOCK, have += ROW_BLOCK) {
        const float *restrict x = rows + r * C;
#pragma omp simd
        for (int c = 0; c < C; c++) {
            float a = 0.0f, b = 0.0f;
            for (int k = 0; k < ROW_BLOCK; k++) {
                float d = x[(size_t)k * C + c] - sh[c];
                a += d;
                b += d * d;
            }
            sd[c] += a;
            sq[c] += b;
        }
    }
    *cnt = bnstats_partial(s, t, rows, r, n, have);
}

const float *bnstats_shift(const BnStats *s, int t)
{
    assert(t >= 0 && t < s->threads && *st_count(s, t) > 0);
    return st_shift(s, t);
}

float *bnstats_sums(BnStats *s, int t)
{
    assert(t >= 0 && t < s->threads && *st_count(s, t) > 0);
    return st_blk(s, t);
}

void bnstats_commit(BnStats *s, int t, size_t n)
{
    *st_count(s, t) += n;
    bnstats_flush(s, t);
}

void bnstats_moments(const BnStats *s, double *mean, double *var)
{
    const int C = s->C;
    for (int c = 0; c < C; c++) {
        double n = 0, mu = 0, m2 = 0;
        for (int t = 0; t < s->threads; t++) {
            double nt = (double)*st_count(s, t);
            if (nt == 0)
                continue;
            const double *sd = st_sum(s, t);
            const float *fs = st_blk(s, t);
            double sum = sd[c] + fs[c], sq = sd[C + c] + fs[C + c];
            double mt = st_shift(s, t)[c] + sum / nt;
            double m2t = sq - sum * sum / nt;
            if (m2t < 0)
                m2t = 0;
            if (n == 0) {
                n = nt, mu = mt, m2 = m2t;
                continue;
            }
            double delta = mt - mu, nn = n + nt;
            mu += delta * nt / nn;
            m2 += m2t + delta * delta * n * nt / nn;
            n = nn;
        }
        mean[c] = mu;
        var[c] = n > 0 ? m2 / n : 0;
    }
}

void batchnorm_fused_forward_train(float *out, float *mean, float *invstd, float *var,
                                   const float *inp, const float *gamma, const float *beta,
                                   int M, int C, float eps, const BnFused *f,
                                   const BnStats *stats, float *work, int threads)
{
    if (threads < 1)
        threads = 1;
    BnWork w = bn_work(work, C, threads);
    double *part = w.part;
    float *a = w.c[0];
    if (stats) {
        assert(stats->C == C);
        bnstats_moments(stats, part, part + C);
    } else {
        /* sums of x − shift with shift = the first row: no cancellation however large the
         * mean */
        float *shift = w.c[1];
        memcpy(shift, inp, sizeof(float) * C);
        bn_pick()->sums(part, w.scratch, NULL, NULL, inp, widen(w.w[0], shift, C, w.W), NULL, M,
                     C, w.W, threads);
        for (int c = 0; c < C; c++) {
            double d = part[c] / M;
            part[c] = shift[c] + d;
            part[C + c] = part[C + c] / M - d * d;
        }
    }
    for (int c = 0; c < C; c++) {
        double v = part[C + c] < 0 ? 0 : part[C + c];
        mean[c] = (float)part[c];
        var[c] = (float)v;
        invstd[c] = (float)(1.0 / sqrt(v + eps));
        a[c] = bn_train_scale(gamma[c], invstd[c]);
    }
    bn_pick()->affine(out, inp, widen(w.w[0], mean, C, w.W), widen(w.w[1], a, C, w.W),
                widen(w.w[2], beta, C, w.W), M, C, w.W, f, threads);
}

void batchnorm_forward_train(float *out, float *mean, float *invstd, float *var,
                             const float *inp, const float *gamma, const float *beta, int M,
                             int C, float eps, float *work, int threads)
{
    batchnorm_fused_forward_train(out, mean, invstd, var, inp, gamma, beta, M, C, eps, NULL,
                                  NULL, work, threads);
}

void batchnorm_fused_forward_infer(float *out, const float *inp, const float *gamma,
                                   const float *beta, const float *moving_mean,
                                   const float *moving_var, int M, int C, float eps,
                                   const BnFused *f, float *work, int threads)
{
    BnWork w = bn_work(work, C, threads < 1 ? 1 : threads);
    float *a = w.c[0];
    for (int c = 0; c < C; c++)
        a[c] = bn_infer_scale(gamma[c], moving_var[c], eps);
    bn_pick()->affine(out, inp, widen(w.w[0], moving_mean, C, w.W), widen(w.w[1], a, C, w.W),
                widen(w.w[2], beta, C, w.W), M, C, w.W, f, threads);
}

void batchnorm_forward_infer(float *out, const float *inp, const float *gamma,
                             const float *beta, const float *moving_mean,
                             const float *moving_var, int M, int C, float eps, float *work,
                             int threads)
{
    batchnorm_fused_forward_infer(out, inp, gamma, beta, moving_mean, moving_var, M, C, eps,
                                  NULL, work, threads);
}

void batchnorm_update_moving(float *moving_mean, float *moving_var, const float *mean,
                             const float *var, int C, float momentum)
{
    for (int c = 0; c < C; c++) {
        moving_mean[c] = moving_mean[c] * momentum + mean[c] * (1.0f - momentum);
        moving_var[c] = moving_var[c] * momentum + var[c] * (1.0f - momentum);
    }
}

void batchnorm_fused_backward_train(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                    const float *inp, const float *gamma, const float *mean,
                                    const float *invstd, int M, int C, const BnFused *f,
                                    float *work, int threads)
{
    if (threads < 1)
        threads = 1;
    BnWork w = bn_work(work, C, threads);
    double *part = w.part;
    float *k1 = w.c[0], *k2 = w.c[1], *k3 = w.c[2];
    for (int c = 0; c < C; c++)
        k1[c] = bn_train_scale(gamma[c], invstd[c]); /* the forward's a */
    const float *mw = widen(w.w[0], mean, C, w.W), *k1w = widen(w.w[1], k1, C, w.W);
    const Mask k = make_mask(f, k1w, w.w[2], C, w.W);
    bn_pick()->sums(part, w.scratch, dout, &k, inp, mw, widen(w.w[3], invstd, C, w.W), M, C, w.W,
                 threads);
    for (int c = 0; c < C; c++) {
        dbeta[c] += (float)part[c];
        dgamma[c] += (float)part[C + c];
        /* dx = a·(g - Σg/M - xhat·Σ(g·xhat)/M), xhat = (x - mean)·invstd, a = gamma·invstd
         *    = k1·g + k3·(x - mean) + k2 */
        double a = (double)gamma[c] * invstd[c];
        double mdy = part[c] / M, mdyx = part[C + c] / M;
        k3[c] = (float)(-a * invstd[c] * mdyx);
        k2[c] = (float)(-a * mdy);
    }
    if (dinp || (f && f->dres))
        bn_pick()->grad(dinp, dout, inp, mw, k1w, widen(w.w[4], k2, C, w.W),
                       widen(w.w[5], k3, C, w.W), M, C, w.W, f, &k, threads);
}

void batchnorm_backward_train(float *dinp, float *dgamma, float *dbeta, const float *dout,
                              const float *inp, const float *gamma, const float *mean,
                              const float *invstd, int M, int C, float *work, int threads)
{
    batchnorm_fused_backward_train(dinp, dgamma, dbeta, dout, inp, gamma, mean, invstd, M, C,
                                   NULL, work, threads);
}

void batchnorm_fused_backward_infer(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                    const float *inp, const float *gamma,
                                    const float *moving_mean, const float *moving_var, int M,
                                    int C, float eps, const BnFused *f, float *work,
                                    int threads)
{
    if (threads < 1)
        threads = 1;
    BnWork w = bn_work(work, C, threads);
    double *part = w.part;
    float *is = w.c[0], *a = w.c[1];
    for (int c = 0; c < C; c++) {
        is[c] = (float)(1.0 / sqrt((double)moving_var[c] + eps));
        a[c] = bn_infer_scale(gamma[c], moving_var[c], eps); /* the forward's a */
    }
    const float *mw = widen(w.w[0], moving_mean, C, w.W), *aw = widen(w.w[1], a, C, w.W);
    const Mask k = make_mask(f, aw, w.w[2], C, w.W);
    bn_pick()->sums(part, w.scratch, dout, &k, inp, mw, widen(w.w[3], is, C, w.W), M, C, w.W,
                 threads);
    for (int c = 0; c < C; c++) {
        dbeta[c] += (float)part[c];
        dgamma[c] += (float)part[C + c];
    }
    if (dinp || (f && f->dres))
        bn_pick()->grad(dinp, dout, inp, mw, aw, NULL, NULL, M, C, w.W, f, &k, threads);
}

void batchnorm_backward_infer(float *dinp, float *dgamma, float *dbeta, const float *dout,
                              const float *inp, const float *gamma, const float *moving_mean,
                              const float *moving_var, int M, int C, float eps, float *work,
                              int threads)
{
    batchnorm_fused_backward_infer(dinp, dgamma, dbeta, dout, inp, gamma, moving_mean,
                                   moving_var, M, C, eps, NULL, work, threads);
}

void batchnorm_forward_train_naive(float *out, float *mean, float *invstd, float *var,
                                   const float *inp, const float *gamma, const float *beta,
                                   int M, int C, float eps)
{
    for (int c = 0; c < C; c++) {
        double mu = 0, v = 0;
        for (int r = 0; r < M; r++)
            mu += inp[(size_t)r * C + c];
        mu /= M;
        for (int r = 0; r < M; r++) {
            double d = inp[(size_t)r * C + c] - mu;
            v += d * d;
        }
        v /= M;
        double is = 1.0 / sqrt(v + eps);
        for (int r = 0; r < M; r++)
            out[(size_t)r * C + c] =
                (float)(gamma[c] * (inp[(size_t)r * C + c] - mu) * is + beta[c]);
        mean[c] = (float)mu;
        var[c] = (float)v;
        invstd[c] = (float)is;
    }
}

void batchnorm_backward_train_naive(float *dinp, float *dgamma, float *dbeta,
                                    const float *dout, const float *inp, const float *gamma,
                                    const float *mean, const float *invstd, int M, int C)
{
    for (int c = 0; c < C; c++) {
        double sdy = 0, sdyx = 0;
        for (int r = 0; r < M; r++) {
            double xhat = ((double)inp[(size_t)r * C + c] - mean[c]) * invstd[c];
            sdy += dout[(size_t)r * C + c];
            sdyx += dout[(size_t)r * C + c] * xhat;
        }
        dbeta[c] += (float)sdy;
        dgamma[c] += (float)sdyx;
        if (!dinp)
            continue;
        for (int r = 0; r < M; r++) {
            double xhat = ((double)inp[(size_t)r * C + c] - mean[c]) * invstd[c];
            double dx = (double)gamma[c] * invstd[c] *
                        (dout[(size_t)r * C + c] - sdy / M - xhat * sdyx / M);
            dinp[(size_t)r * C + c] += (float)dx;
        }
    }
}
