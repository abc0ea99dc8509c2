/* pool.c — max pool, average pool and global average pool, forward and backward, naive references.
 *
 * Shape letters as in layers.h; for the windowed pools g->K = C. TF semantics: max pool
 * ignores padded positions, "same" average pool divides by the pixels inside the input.
 * Fast loops are vectorized over the contiguous channels; the max-pool backward scatters
 * per (image, block of channels), so threads never share a destination, and routes a
 * vector of channels at a time: a lane mask marks the channels whose first maximum (in
 * row-major window order, the naive reference's tie rule) is already found. */
#include "nn/layers.h"

#include <math.h>
#include <string.h>

#define CBLOCK 64 /* channels per task of the max-pool backward */
#ifdef __AVX__
#define VL 8 /* floats per vector: one AVX register */
#else
#define VL 4 /* floats per vector: one SSE / NEON register */
#endif

typedef float Vf __attribute__((vector_size(VL * sizeof(float))));
typedef int Vi __attribute__((vector_size(VL * sizeof(int))));

static inline Vf vload(const float *p)
{
    Vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vstore(float *p, Vf v)
{
    memcpy(p, &v, sizeof v);
}

/* First and one-past-last input index of window o along one axis, clipped to [0, size). */
static inline void window_range(int o, int s, int pad, int k, int size, int *lo, int *hi)
{
    int a = o * s - pad, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > size ? size : b;
}

void maxpool_forward(float *out, const float *inp, const ConvGeom *g, int threads)
{
    const int H = g->H, W = g->W, C = g->C, OH = g->OH, OW = g->OW;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < g->N; n++)
        for (int oy = 0; oy < OH; oy++) {
            int y0, y1;
            window_range(oy, g->stride, g->pad_top, g->kh, H, &y0, &y1);
            for (int ox = 0; ox < OW; ox++) {
                int x0, x1;
                window_range(ox, g->stride, g->pad_left, g->kw, W, &x0, &x1);
                float *restrict o = out + (((size_t)n * OH + oy) * OW + ox) * C;
                for (int c = 0; c < C; c++)
                    o[c] = -INFINITY;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        const float *restrict x = inp + (((size_t)n * H + iy) * W + ix) * C;
                        for (int c = 0; c < C; c++)
                            o[c] = x[c] > o[c] ? x[c] : o[c];
                    }
            }
        }
}

void maxpool_backward(float *dinp, const float *dout, const float *inp, const float *out,
                      const ConvGeom *g, int threads)
{
    const int H = g->H, W = g->W, C = g->C, OH = g->OH, OW = g->OW;
    const int nb = (C + CBLOCK - 1) / CBLOCK;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < g->N; n++)
        for (int b = 0; b < nb; b++) {
            int c0 = b * CBLOCK, c1 = c0 + CBLOCK < C ? c0 + CBLOCK : C;
            int cv = c0 + (c1 - c0) / VL * VL;
            const float *img = inp + (size_t)n * H * W * C;
            float *dimg = dinp + (size_t)n * H * W * C;
            for (int oy = 0; oy < OH; oy++) {
                int y0, y1;
                window_range(oy, g->stride, g->pad_top, g->kh, H, &y0, &y1);
                for (int ox = 0; ox < OW; ox++) {
                    int x0, x1;
                    window_range(ox, g->stride, g->pad_left, g->kw, W, &x0, &x1);
                    size_t o = (((size_t)n * OH + oy) * OW + ox) * C;
                    /* per lane: the first window pixel equal to the maximum takes dout */
                    for (int c = c0; c < cv; c += VL) {
                        Vf m = vload(out + o + c), dy = vload(dout + o + c);
                        Vi done = {0};
                        for (int iy = y0; iy < y1; iy++)
                            for (int ix = x0; ix < x1; ix++) {
                                size_t i = ((size_t)iy * W + ix) * C + c;
                                Vi hit = (vload(img + i) == m) & ~done;
                                done |= hit;
                                vstore(dimg + i, vload(dimg + i) + (Vf)((Vi)dy & hit));
                            }
                    }
                    for (int c = cv; c < c1; c++) {
                        float m = out[o + c];
                        for (int iy = y0; iy < y1; iy++)
                            for (int ix = x0; ix < x1; ix++) {
                                size_t i = ((size_t)iy * W + ix) * C + c;
                                if (img[i] == m) {
                                    dimg[i] += dout[o + c];
                                    goto next;
                                }
                            }
                    next:;
                    }
                }
            }
        }
}

void avgpool_forward(float *out, const float *inp, const ConvGeom *g, int threads)
{
    const int H = g->H, W = g->W, C = g->C, OH = g->OH, OW = g->OW;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < g->N; n++)
        for (int oy = 0; oy < OH; oy++) {
            int y0, y1;
            window_range(oy, g->stride, g->pad_top, g->kh, H, &y0, &y1);
            for (int ox = 0; ox < OW; ox++) {
                int x0, x1;
                window_range(ox, g->stride, g->pad_left, g->kw, W, &x0, &x1);
                float *restrict o = out + (((size_t)n * OH + oy) * OW + ox) * C;
                memset(o, 0, sizeof(float) * C);
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        const float *restrict x = inp + (((size_t)n * H + iy) * W + ix) * C;
                        for (int c = 0; c < C; c++)
                            o[c] += x[c];
                    }
                float inv = 1.0f / (float)((y1 - y0) * (x1 - x0));
                for (int c = 0; c < C; c++)
                    o[c] *= inv;
            }
        }
}

void avgpool_backward(float *dinp, const float *dout, const ConvGeom *g, int threads)
{
    const int H = g->H, W = g->W, C = g->C, OH = g->OH, OW = g->OW;
    const int s = g->stride, pt = g->pad_top, pl = g->pad_left;
    /* Gather: each input pixel sums dout/count over the windows that contain it. */
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < g->N; n++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float *restrict d = dinp + (((size_t)n * H + y) * W + x) * C;
                for (int ky = 0; ky < g->kh; ky++) {
                    int t = y + pt - ky;
                    if (t < 0 || t % s || t / s >= OH)
                        continue;
                    int oy = t / s, y0, y1;
                    window_range(oy, s, pt, g->kh, H, &y0, &y1);
                    for (int kx = 0; kx < g->kw; kx++) {
                        int u = x + pl - kx;
                        if (u < 0 || u % s || u / s >= OW)
                            continue;
                        int ox = u / s, x0, x1;
                        window_range(ox, s, pl, g->kw, W, &x0, &x1);
                        float inv = 1.0f / (float)((y1 - y0) * (x1 - x0));
                        const float *restrict dy = dout + (((size_t)n * OH + oy) * OW + ox) * C;
                        for (int c = 0; c < C; c++)
                            d[c] += dy[c] * inv;
                    }
                }
            }
}

void maxpool_forward_naive(float *out, const float *inp, const ConvGeom *g)
{
    const int H = g->H, W = g->W, C = g->C;
    for (int n = 0; n < g->N; n++)
        for (int oy = 0; oy < g->OH; oy++)
            for (int ox = 0; ox < g->OW; ox++)
                for (int c = 0; c < C; c++) {
                    float m = -INFINITY;
                    for (int ky = 0; ky < g->kh; ky++)
                        for (int kx = 0; kx < g->kw; kx++) {
                            int iy = oy * g->stride - g->pad_top + ky;
                            int ix = ox * g->stride - g->pad_left + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                continue;
                            float v = inp[(((size_t)n * H + iy) * W + ix) * C + c];
                            if (v > m)
                                m = v;
                        }
                    out[(((size_t)n * g->OH + oy) * g->OW + ox) * C + c] = m;
                }
}

void maxpool_backward_naive(float *dinp, const float *dout, const float *inp, const ConvGeom *g)
{
    const int H = g->H, W = g->W, C = g->C;
    for (int n = 0; n < g->N; n++)
        for (int oy = 0; oy < g->OH; oy++)
            for (int ox = 0; ox < g->OW; ox++)
                for (int c = 0; c < C; c++) {
                    float m = -INFINITY;
                    size_t arg = 0;
                    for (int ky = 0; ky < g->kh; ky++)
                        for (int kx = 0; kx < g->kw; kx++) {
                            int iy = oy * g->stride - g->pad_top + ky;
                            int ix = ox * g->stride - g->pad_left + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                continue;
                            size_t i = (((size_t)n * H + iy) * W + ix) * C + c;
                            if (inp[i] > m) {
                                m = inp[i];
                                arg = i;
                            }
                        }
                    dinp[arg] += dout[(((size_t)n * g->OH + oy) * g->OW + ox) * C + c];
                }
}

/* Number of input pixels under window (oy, ox). */
static int window_count(const ConvGeom *g, int oy, int ox)
{
    int cnt = 0;
    for (int ky = 0; ky < g->kh; ky++)
        for (int kx = 0; kx < g->kw; kx++) {
            int iy = oy * g->stride - g->pad_top + ky, ix = ox * g->stride - g->pad_left + kx;
            cnt += iy >= 0 && iy < g->H && ix >= 0 && ix < g->W;
        }
    return cnt;
}

void avgpool_forward_naive(float *out, const float *inp, const ConvGeom *g)
{
    const int H = g->H, W = g->W, C = g->C;
    for (int n = 0; n < g->N; n++)
        for (int oy = 0; oy < g->OH; oy++)
            for (int ox = 0; ox < g->OW; ox++) {
                int cnt = window_count(g, oy, ox);
                for (int c = 0; c < C; c++) {
                    double acc = 0;
                    for (int ky = 0; ky < g->kh; ky++)
                        for (int kx = 0; kx < g->kw; kx++) {
                            int iy = oy * g->stride - g->pad_top + ky;
                            int ix = ox * g->stride - g->pad_left + kx;
                            if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                acc += inp[(((size_t)n * H + iy) * W + ix) * C + c];
                        }
                    out[(((size_t)n * g->OH + oy) * g->OW + ox) * C + c] = (float)(acc / cnt);
                }
            }
}

void avgpool_backward_naive(float *dinp, const float *dout, const ConvGeom *g)
{
    const int H = g->H, W = g->W, C = g->C;
    for (int n = 0; n < g->N; n++)
        for (int oy = 0; oy < g->OH; oy++)
            for (int ox = 0; ox < g->OW; ox++) {
                int cnt = window_count(g, oy, ox);
                for (int ky = 0; ky < g->kh; ky++)
                    for (int kx = 0; kx < g->kw; kx++) {
                        int iy = oy * g->stride - g->pad_top + ky;
                        int ix = ox * g->stride - g->pad_left + kx;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                            continue;
                        for (int c = 0; c < C; c++)
                            dinp[(((size_t)n * H + iy) * W + ix) * C + c] +=
                                (float)((double)dout[(((size_t)n * g->OH + oy) * g->OW + ox) * C + c] / cnt);
                    }
            }
}

void gap_forward(float *out, const float *inp, int N, int HW, int C, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int n = 0; n < N; n++) {
        float *restrict o = out + (size_t)n * C;
        memset(o, 0, sizeof(float) * C);
        for (int p = 0; p < HW; p++) {
            const float *restrict x = inp + ((size_t)n * HW + p) * C;
            for (int c = 0; c < C; c++)
                o[c] += x[c];
        }
        float inv = 1.0f / (float)HW;
        for (int c = 0; c < C; c++)
            o[c] *= inv;
    }
}

void gap_backward(float *dinp, const float *dout, int N, int HW, int C, int threads)
{
    const float inv = 1.0f / (float)HW;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++) {
            const float *restrict dy = dout + (size_t)n * C;
            float *restrict d = dinp + ((size_t)n * HW + p) * C;
            for (int c = 0; c < C; c++)
                d[c] += dy[c] * inv;
        }
}
