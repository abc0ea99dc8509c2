/* depthwise.c — depthwise conv2d forward and backward: direct channel loops, naive reference.
 *
 * Shape letters as in layers.h; m = K / C is the depth multiplier and output channel
 * c·m + j reads input channel c through kernel entry (ky, kx, c, j). Every pass walks the
 * batch by rows, (n, oy) output rows for the forward and the weight gradient, (n, iy)
 * input rows for the input gradient, so no two threads write the same output or input
 * pixel (schedule(static): the same split for a given thread count).
 *
 * Vector path (3×3 kernel, stride 1 or 2, multiplier 1, blocks of VL channels): per row
 * and channel block the nine tap weights stay in registers while the loop walks the row's
 * pixels; one vector accumulator per output pixel (forward), per input pixel (input
 * gradient: each input pixel gathers the outputs whose window holds it, visiting the
 * pixels of one stride phase at a time so the taps it meets are fixed), or per tap (weight
 * gradient: the row's products summed in float registers, then added to per-thread double
 * partials that are reduced in thread order, deterministic for a thread count). Other
 * kernel sizes, strides and multipliers, and the C mod VL channels left over, take the
 * general loops, which follow the same row split. Overwriting the input gradient never
 * reads what dinp held: the vector path stores each pixel once from its accumulator
 * (added to the old value only when accumulating), the general loops store a pixel's
 * first tap and add the rest, and write 0 where no output reads the pixel. */
#include "nn/layers.h"

#include <omp.h>
#include <stdbool.h>
#include <string.h>

#ifdef __AVX__
#define VL 8 /* floats per vector: one AVX register */
#else
#define VL 4 /* floats per vector: one SSE / NEON register */
#endif
#define VK 3 /* kernel rows and columns of the vector path */
#define OB 4 /* interior pixels the vector path computes at once */
#define VMAX 32 /* most channels the vector path takes (measured: wider layers streaming
                 * from memory run faster in the general loops' address order) */
#define CB 32   /* channels per register block of the general forward */

typedef float Vf __attribute__((vector_size(VL * sizeof(float))));

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

/* Whether the vector path takes this layer: how many channels it covers (0: none). */
static int vector_channels(const ConvGeom *g)
{
    bool fits = g->K == g->C && g->C <= VMAX && g->kh == VK && g->kw == VK &&
                (g->stride == 1 || g->stride == 2);
    return fits ? g->C / VL * VL : 0;
}

/* Forward of output pixel (oy, ox), channels [c0, c0 + VL), taps tested against the
 * input's edges. */
static inline __attribute__((always_inline)) void
fwd_pixel_vec(float *restrict orow, const float *const *xr, const Vf *wv, Vf b,
              const ConvGeom *g, int ox, int c0, const int S)
{
    const int W = g->W, C = g->C;
    int ix0 = ox * S - g->pad_left;
    Vf acc = b;
#pragma GCC unroll 3
    for (int ky = 0; ky < VK; ky++) {
        if (!xr[ky])
            continue;
#pragma GCC unroll 3
        for (int kx = 0; kx < VK; kx++) {
            int ix = ix0 + kx;
            if ((unsigned)ix < (unsigned)W)
                acc += vload(xr[ky] + (size_t)ix * C + c0) * wv[ky * VK + kx];
        }
    }
    vstore(orow + (size_t)ox * C + c0, acc);
}

/* [lo, hi) of the output columns whose VK taps all fall inside the W input columns. */
static inline void interior_cols(int OW, int S, int pl, int W, int *lo, int *hi)
{
    *lo = (pl + S - 1) / S;
    *hi = W - VK + pl < 0 ? 0 : (W - VK + pl) / S + 1;
    if (*hi > OW)
        *hi = OW;
    if (*lo > *hi)
        *lo = *hi;
}

/* Forward of output row oy of image img over channels [0, cv), kernel VK × VK, stride S;
 * xr[ky] is the input row tap row ky reads, or NULL in the padding. Interior columns go
 * OB at a time (independent accumulators), edge columns test each tap. */
static inline __attribute__((always_inline)) void
fwd_row_vec(float *restrict orow, const float *restrict img, const float *restrict weight,
            const float *restrict bias, const ConvGeom *g, int oy, int cv, const int S)
{
    const int H = g->H, W = g->W, C = g->C, OW = g->OW, pl = g->pad_left;
    const float *xr[VK];
    for (int ky = 0; ky < VK; ky++) {
        int iy = oy * S - g->pad_top + ky;
        xr[ky] = iy >= 0 && iy < H ? img + (size_t)iy * W * C : NULL;
    }
    int oxa, oxb;
    interior_cols(OW, S, pl, W, &oxa, &oxb);
    for (int ox = 0; ox < OW;) {
        bool blk = ox >= oxa && ox + OB <= oxb;
        for (int c0 = 0; c0 < cv; c0 += VL) {
            Vf wv[VK * VK], b = bias ? vload(bias + c0) : (Vf){0};
#pragma GCC unroll 9
            for (int t = 0; t < VK * VK; t++)
                wv[t] = vload(weight + (size_t)t * C + c0);
            if (!blk) {
                fwd_pixel_vec(orow, xr, wv, b, g, ox, c0, S);
                continue;
            }
            Vf acc[OB];
#pragma GCC unroll 4
            for (int i = 0; i < OB; i++)
                acc[i] = b;
#pragma GCC unroll 3
            for (int ky = 0; ky < VK; ky++) {
                if (!xr[ky])
                    continue;
                const float *x = xr[ky] + (size_t)(ox * S - pl) * C + c0;
#pragma GCC unroll 3
                for (int kx = 0; kx < VK; kx++)
#pragma GCC unroll 4
                    for (int i = 0; i < OB; i++)
                        acc[i] += vload(x + (size_t)(i * S + kx) * C) * wv[ky * VK + kx];
            }
#pragma GCC unroll 4
            for (int i = 0; i < OB; i++)
                vstore(orow + (size_t)(ox + i) * C + c0, acc[i]);
        }
        ox += blk ? OB : 1;
    }
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

void depthwise_forward(float *out, const float *inp, const float *weight, const float *bias,
                       const ConvGeom *g, int threads)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, OH = g->OH, OW = g->OW;
    const int cv = vector_channels(g);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < g->N; n++)
        for (int oy = 0; oy < OH; oy++) {
            const float *img = inp + (size_t)n * H * W * C;
            float *orow = out + ((size_t)n * OH + oy) * OW * K;
            if (cv && g->stride == 1)
                fwd_row_vec(orow, img, weight, bias, g, oy, cv, 1);
            else if (cv)
                fwd_row_vec(orow, img, weight, bias, g, oy, cv, 2);
            if (cv < C)
                fwd_row_general(orow, img, weight, bias, g, oy, cv);
        }
}

/* Weight and bias gradients of output row oy over channels [0, cv) into the double
 * partials pw ((VK·VK + 1)·C): the row's sums in float registers, then added to pw. */
static inline __attribute__((always_inline)) void
dw_row_vec(double *restrict pw, const float *restrict dyrow, const float *restrict img,
           const ConvGeom *g, int oy, int cv, const int S)
{
    const int H = g->H, W = g->W, C = g->C, OW = g->OW, pl = g->pad_left;
    const float *xr[VK];
    for (int ky = 0; ky < VK; ky++) {
        int iy = oy * S - g->pad_top + ky;
        xr[ky] = iy >= 0 && iy < H ? img + (size_t)iy * W * C : NULL;
    }
    for (int c0 = 0; c0 < cv; c0 += VL) {
        Vf acc[VK * VK], ab = {0};
#pragma GCC unroll 9
        for (int t = 0; t < VK * VK; t++)
            acc[t] = (Vf){0};
        for (int ox = 0; ox < OW; ox++) {
            int ix0 = ox * S - pl;
            Vf dy = vload(dyrow + (size_t)ox * C + c0);
            ab += dy;
#pragma GCC unroll 3
            for (int ky = 0; ky < VK; ky++) {
                if (!xr[ky])
                    continue;
#pragma GCC unroll 3
                for (int kx = 0; kx < VK; kx++) {
                    int ix = ix0 + kx;
                    if ((unsigned)ix < (unsigned)W)
                        acc[ky * VK + kx] += dy * vload(xr[ky] + (size_t)ix * C + c0);
                }
            }
        }
#pragma GCC unroll 9
        for (int t = 0; t < VK * VK; t++)
            for (int j = 0; j < VL; j++)
                pw[(size_t)t * C + c0 + j] += acc[t][j];
        for (int j = 0; j < VL; j++)
            pw[(size_t)VK * VK * C + c0 + j] += ab[j];
    }
}

/* Weight and bias gradients of output row oy over input channels [c_lo, C), any kernel,
 * stride and multiplier: the row's products summed in the float buffer rb (L1-resident,
 * (kh·kw + 1)·K), then added to the double partials pw. */
static void dw_row_general(double *restrict pw, float *restrict rb, const float *restrict dyrow,
                           const float *restrict img, const ConvGeom *g, int oy, int c_lo)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, kw = g->kw, s = g->stride, m = K / C;
    const size_t kwk = (size_t)g->kh * kw * K, per = kwk + K;
    int iy0 = oy * s - g->pad_top, ky0, ky1;
    tap_range(oy, s, g->pad_top, g->kh, H, &ky0, &ky1);
    memset(rb, 0, sizeof(float) * per);
    for (int ox = 0; ox < g->OW; ox++) {
        const float *restrict dy = dyrow + (size_t)ox * K;
        for (int k = c_lo * m; k < K; k++)
            rb[kwk + k] += dy[k];
        int ix0 = ox * s - g->pad_left, kx0, kx1;
        tap_range(ox, s, g->pad_left, kw, W, &kx0, &kx1);
        for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++) {
                const float *restrict x = img + ((size_t)(iy0 + ky) * W + ix0 + kx) * C;
                float *restrict rw = rb + ((size_t)ky * kw + kx) * K;
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
    for (size_t t = 0; t < per; t += K)
        for (int k = c_lo * m; k < K; k++)
            pw[t + k] += rb[t + k];
}

/* Input gradient of the pixels ix ≡ r − pad_left (mod S) of input row drow, channels
 * [c0, c0 + VL): the taps kx ≡ r (mod S) reach output column q − (kx − r) / S with
 * q = (ix + pad_left − r) / S; dr[ky] is the output row tap row ky reaches, or NULL. */
static inline __attribute__((always_inline)) void
dx_phase_vec(float *restrict drow, const float *const *dr, const Vf *wv, const ConvGeom *g,
             int c0, const int S, const int r, bool accumulate)
{
    const int W = g->W, C = g->C, OW = g->OW, pl = g->pad_left;
    for (int ix = ((r - pl) % S + S) % S; ix < W; ix += S) {
        int q = (ix + pl - r) / S;
        Vf acc = {0};
#pragma GCC unroll 3
        for (int ky = 0; ky < VK; ky++) {
            if (!dr[ky])
                continue;
#pragma GCC unroll 3
            for (int kx = r; kx < VK; kx += S) {
                int ox = q - (kx - r) / S;
                if ((unsigned)ox < (unsigned)OW)
                    acc += vload(dr[ky] + (size_t)ox * C + c0) * wv[ky * VK + kx];
            }
        }
        float *d = drow + (size_t)ix * C + c0;
        vstore(d, accumulate ? vload(d) + acc : acc);
    }
}

/* Input gradient of input row iy of one image over channels [0, cv); dimg is the image's
 * output gradient. */
static inline __attribute__((always_inline)) void
dx_row_vec(float *restrict drow, const float *restrict dimg, const float *restrict weight,
           const ConvGeom *g, int iy, int cv, const int S, bool accumulate)
{
    const int C = g->C, OH = g->OH, OW = g->OW;
    const float *dr[VK];
    for (int ky = 0; ky < VK; ky++) {
        int t = iy + g->pad_top - ky;
        dr[ky] = t >= 0 && t % S == 0 && t / S < OH ? dimg + (size_t)(t / S) * OW * C : NULL;
    }
    for (int c0 = 0; c0 < cv; c0 += VL) {
        Vf wv[VK * VK];
#pragma GCC unroll 9
        for (int t = 0; t < VK * VK; t++)
            wv[t] = vload(weight + (size_t)t * C + c0);
        dx_phase_vec(drow, dr, wv, g, c0, S, 0, accumulate);
        if (S == 2)
            dx_phase_vec(drow, dr, wv, g, c0, S, 1, accumulate);
    }
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

void depthwise_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const ConvGeom *g, float *work,
                        int threads, bool accumulate)
{
    const int H = g->H, W = g->W, C = g->C, K = g->K, OH = g->OH, OW = g->OW;
    const int cv = vector_channels(g);
    const size_t kwk = (size_t)g->kh * g->kw * K, per = kwk + K;
    if (threads < 1)
        threads = 1;
    double *part = (double *)work;                           /* (threads, per) */
    float *rowbuf = (float *)(part + (size_t)threads * per); /* (threads, per) */
    memset(part, 0, sizeof(double) * threads * per);
#pragma omp parallel num_threads(threads)
    {
        double *pw = part + (size_t)omp_get_thread_num() * per;
        float *rb = rowbuf + (size_t)omp_get_thread_num() * per;
#pragma omp for collapse(2) schedule(static)
        for (int n = 0; n < g->N; n++)
            for (int oy = 0; oy < OH; oy++) {
                const float *img = inp + (size_t)n * H * W * C;
                const float *dyrow = dout + ((size_t)n * OH + oy) * OW * K;
                if (cv && g->stride == 1)
                    dw_row_vec(pw, dyrow, img, g, oy, cv, 1);
                else if (cv)
                    dw_row_vec(pw, dyrow, img, g, oy, cv, 2);
                if (cv < C)
                    dw_row_general(pw, rb, dyrow, img, g, oy, cv);
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
        for (int y = 0; y < H; y++) {
            float *drow = dinp + ((size_t)n * H + y) * W * C;
            const float *dimg = dout + (size_t)n * OH * OW * K;
            if (cv && g->stride == 1)
                dx_row_vec(drow, dimg, weight, g, y, cv, 1, accumulate);
            else if (cv)
                dx_row_vec(drow, dimg, weight, g, y, cv, 2, accumulate);
            if (cv < C)
                dx_row_general(drow, dimg, weight, g, y, cv, accumulate);
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
