/* depthwise.c — depthwise conv2d forward and backward: direct channel loops, naive reference.
 *
 * Shape letters as in layers.h; m = K / C is the depth multiplier and output channel
 * c·m + j reads input channel c through kernel entry (ky, kx, c, j). The fast loops walk
 * the batch by (n, oy) output rows, innermost over the contiguous NHWC channels so the
 * compiler vectorizes them; the forward accumulates blocks of CB channels in registers over
 * the kernel taps. The weight gradient sums an output row's products in a per-thread float
 * buffer (L1-resident), adds it into per-thread double partials and reduces those in
 * thread order (deterministic for a thread count); the input gradient gathers, for each
 * input pixel, the outputs whose window holds it, so no two threads write the same pixel.
 * (Measured on MobileNet shapes: register blocks pay off in the forward, the simple
 * read-modify-write loops in the two gradients.) */
#include "nn/layers.h"

#include <omp.h>
#include <string.h>

#define CB 32 /* channels per register block */

size_t depthwise_workspace(const ConvGeom *g, int threads)
{
    size_t per = (size_t)g->kh * g->kw * g->K + g->K;
    /* per thread: double partials (2 floats each) and a float row buffer */
    return (size_t)(threads < 1 ? 1 : threads) * per * 3;
}

/* Valid [lo, hi) of kernel taps k with 0 <= o·s − pad + k < size. */
static inline void tap_range(int o, int s, int pad, int k, int size, int *lo, int *hi)
{
    int a = o * s - pad;
    *lo = a < 0 ? -a : 0;
    *hi = a + k > size ? size - a : k;
}

/* One output pixel, multiplier 1: out[c] = bias[c] + Σ_taps x[c]·w[c], accumulated in
 * registers a block of CB channels at a time. */
static inline void dw_pixel(float *restrict o, const float *restrict img,
                            const float *restrict weight, const float *restrict bias, int W,
                            int C, int kw, int iy0, int ix0, int ky0, int ky1, int kx0, int kx1)
{
    int c0 = 0;
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

void depthwise_forward(float *out, const float *inp, const float *weight, const float *bias,
                       const ConvGeom *g, int threads)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, OH = g->OH, OW = g->OW;
    const int kh = g->kh, kw = g->kw, s = g->stride, m = K / C;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < g->N; n++)
        for (int oy = 0; oy < OH; oy++) {
            const float *img = inp + (size_t)n * H * W * C;
            int iy0 = oy * s - g->pad_top, ky0, ky1;
            tap_range(oy, s, g->pad_top, kh, H, &ky0, &ky1);
            for (int ox = 0; ox < OW; ox++) {
                float *restrict o = out + (((size_t)n * OH + oy) * OW + ox) * K;
                int ix0 = ox * s - g->pad_left, kx0, kx1;
                tap_range(ox, s, g->pad_left, kw, W, &kx0, &kx1);
                if (m == 1) {
                    dw_pixel(o, img, weight, bias, W, C, kw, iy0, ix0, ky0, ky1, kx0, kx1);
                    continue;
                }
                for (int k = 0; k < K; k++)
                    o[k] = bias ? bias[k] : 0.0f;
                for (int ky = ky0; ky < ky1; ky++)
                    for (int kx = kx0; kx < kx1; kx++) {
                        const float *x = img + ((size_t)(iy0 + ky) * W + ix0 + kx) * C;
                        const float *w = weight + ((size_t)ky * kw + kx) * K;
                        for (int c = 0; c < C; c++)
                            for (int j = 0; j < m; j++)
                                o[c * m + j] += x[c] * w[c * m + j];
                    }
            }
        }
}

void depthwise_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const ConvGeom *g, float *work,
                        int threads)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, OH = g->OH, OW = g->OW;
    const int kh = g->kh, kw = g->kw, s = g->stride, pt = g->pad_top, pl = g->pad_left;
    const int m = K / C;
    const size_t kwk = (size_t)kh * kw * K, per = kwk + K;
    if (threads < 1)
        threads = 1;
    double *part = (double *)work;                              /* (threads, per) */
    float *rowbuf = (float *)(part + (size_t)threads * per);    /* (threads, per) */
    memset(part, 0, sizeof(double) * threads * per);
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        double *restrict pw = part + (size_t)t * per;
        float *restrict rb = rowbuf + (size_t)t * per;
#pragma omp for collapse(2) schedule(static)
        for (int n = 0; n < g->N; n++)
            for (int oy = 0; oy < OH; oy++) {
                /* sum the row's products in the L1-resident float buffer rb, then into pw */
                memset(rb, 0, sizeof(float) * per);
                int ky0, ky1;
                tap_range(oy, s, pt, kh, H, &ky0, &ky1);
                for (int ox = 0; ox < OW; ox++) {
                    const float *restrict dy = dout + (((size_t)n * OH + oy) * OW + ox) * K;
                    for (int k = 0; k < K; k++)
                        rb[kwk + k] += dy[k];
                    int kx0, kx1;
                    tap_range(ox, s, pl, kw, W, &kx0, &kx1);
                    for (int ky = ky0; ky < ky1; ky++)
                        for (int kx = kx0; kx < kx1; kx++) {
                            int iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                            const float *restrict x = inp + (((size_t)n * H + iy) * W + ix) * C;
                            float *restrict rw = rb + ((size_t)ky * kw + kx) * K;
                            if (m == 1) {
                                for (int c = 0; c < C; c++)
                                    rw[c] += dy[c] * x[c];
                            } else {
                                for (int c = 0; c < C; c++)
                                    for (int j = 0; j < m; j++)
                                        rw[c * m + j] += dy[c * m + j] * x[c];
                            }
                        }
                }
                for (size_t i = 0; i < per; i++)
                    pw[i] += rb[i];
            }
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
    if (!dinp)
        return;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < g->N; n++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float *restrict d = dinp + (((size_t)n * H + y) * W + x) * C;
                for (int ky = 0; ky < kh; ky++) {
                    int t = y + pt - ky;
                    if (t < 0 || t % s || t / s >= OH)
                        continue;
                    for (int kx = 0; kx < kw; kx++) {
                        int u = x + pl - kx;
                        if (u < 0 || u % s || u / s >= OW)
                            continue;
                        const float *restrict dy =
                            dout + (((size_t)n * OH + t / s) * OW + u / s) * K;
                        const float *restrict w = weight + ((size_t)ky * kw + kx) * K;
                        if (m == 1) {
                            for (int c = 0; c < C; c++)
                                d[c] += dy[c] * w[c];
                        } else {
                            for (int c = 0; c < C; c++) {
                                float acc = 0;
                                for (int j = 0; j < m; j++)
                                    acc += dy[c * m + j] * w[c * m + j];
                                d[c] += acc;
                            }
                        }
                    }
                }
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
