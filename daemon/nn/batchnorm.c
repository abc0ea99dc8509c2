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
 * Workspace (batchnorm_workspace floats): per-thread double sums (threads, 2C), three
 * per-channel float coefficient vectors (3, C), per-thread float block sums (threads, 2C).
 *
 * The mean and variance come from one pass of Σd and Σd² with d = x − x_first (the first
 * row's value of the channel): var = Σd²/M − (Σd/M)² does not cancel because the shift is
 * within a few standard deviations of the mean. */
#include "nn/layers.h"

#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <string.h>

size_t batchnorm_workspace(int C, int threads)
{
    return (size_t)(threads < 1 ? 1 : threads) * 6 * C + 3 * (size_t)C;
}

#define ROW_BLOCK 16 /* rows summed in float before each flush into the double sums */

/* Per-channel sums over rows, per thread, reduced into part[0..2C): (Σ a, Σ a·b) where
 * a = b = x − mean when dout is NULL (mean is then a shift, any value near the true mean),
 * else a = g, b = xhat = (x − mean)·invstd, with g = dout, or, when y is given (a fused
 * ReLU's output), g = dout where 0 < y < hi and 0 elsewhere. Each thread sums ROW_BLOCK
 * rows in float (fs, fq: 2C floats of scratch per thread), then adds them into its double
 * sums, which keeps the inner loop in single precision. */
static void channel_sums(double *part, float *scratch, const float *dout, const float *y,
                         float hi, const float *inp, const float *mean, const float *invstd,
                         int M, int C, int threads)
{
    memset(part, 0, sizeof(double) * threads * 2 * C);
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        double *restrict s = part + (size_t)t * 2 * C;
        double *restrict q = s + C;
        float *restrict fs = scratch + (size_t)t * 2 * C;
        float *restrict fq = fs + C;
        int r0 = (int)((long)M * t / T), r1 = (int)((long)M * (t + 1) / T);
        for (int b = r0; b < r1; b += ROW_BLOCK) {
            int e = b + ROW_BLOCK < r1 ? b + ROW_BLOCK : r1;
            memset(fs, 0, sizeof(float) * 2 * C);
            for (int r = b; r < e; r++) {
                const float *restrict x = inp + (size_t)r * C;
                if (!dout) {
                    for (int c = 0; c < C; c++) {
                        float d = x[c] - mean[c];
                        fs[c] += d;
                        fq[c] += d * d;
                    }
                } else if (!y) {
                    const float *restrict dy = dout + (size_t)r * C;
                    for (int c = 0; c < C; c++) {
                        fs[c] += dy[c];
                        fq[c] += dy[c] * ((x[c] - mean[c]) * invstd[c]);
                    }
                } else {
                    const float *restrict dy = dout + (size_t)r * C;
                    const float *restrict yr = y + (size_t)r * C;
#pragma omp simd
                    for (int c = 0; c < C; c++) {
                        float d = dy[c];
                        float g = (yr[c] > 0.0f) & (yr[c] < hi) ? d : 0.0f;
                        fs[c] += g;
                        fq[c] += g * ((x[c] - mean[c]) * invstd[c]);
                    }
                }
            }
            for (int c = 0; c < C; c++) {
                s[c] += fs[c];
                q[c] += fq[c];
            }
        }
    }
    for (int t = 1; t < threads; t++)
        for (int c = 0; c < 2 * C; c++)
            part[c] += part[(size_t)t * 2 * C + c];
}

/* out = (x - m)·a + b per channel (subtracting first keeps a large mean exact); with f,
 * plus f->res and clipped to [0, f->hi] (a fused residual add and ReLU/ReLU6). */
static void affine_rows(float *out, const float *inp, const float *m, const float *a,
                        const float *b, int M, int C, const BnFused *f, int threads)
{
    const float hi = f ? f->hi : 0;
    const float *res = f ? f->res : NULL;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < M; r++) {
        const float *restrict x = inp + (size_t)r * C;
        float *restrict o = out + (size_t)r * C;
        if (!f) {
            for (int c = 0; c < C; c++)
                o[c] = (x[c] - m[c]) * a[c] + b[c];
        } else if (!res) {
            for (int c = 0; c < C; c++) {
                float v = (x[c] - m[c]) * a[c] + b[c];
                v = v > 0.0f ? v : 0.0f;
                o[c] = v < hi ? v : hi;
            }
        } else {
            const float *restrict z = res + (size_t)r * C;
            for (int c = 0; c < C; c++) {
                float v = (x[c] - m[c]) * a[c] + b[c] + z[c];
                v = v > 0.0f ? v : 0.0f;
                o[c] = v < hi ? v : hi;
            }
        }
    }
}

void batchnorm_fused_forward_train(float *out, float *mean, float *invstd, float *var,
                                   const float *inp, const float *gamma, const float *beta,
                                   int M, int C, float eps, const BnFused *f, float *work,
                                   int threads)
{
    if (threads < 1)
        threads = 1;
    double *part = (double *)work;
    float *a = (float *)(part + (size_t)threads * 2 * C), *shift = a + C;
    /* sums of x − shift with shift = the first row: no cancellation however large the mean */
    memcpy(shift, inp, sizeof(float) * C);
    channel_sums(part, a + 3 * C, NULL, NULL, 0, inp, shift, NULL, M, C, threads);
    for (int c = 0; c < C; c++) {
        double d = part[c] / M;
        double mu = shift[c] + d;
        double v = part[C + c] / M - d * d;
        if (v < 0)
            v = 0;
        double is = 1.0 / sqrt(v + eps);
        mean[c] = (float)mu;
        var[c] = (float)v;
        invstd[c] = (float)is;
        a[c] = (float)(gamma[c] * is);
    }
    affine_rows(out, inp, mean, a, beta, M, C, f, threads);
}

void batchnorm_forward_train(float *out, float *mean, float *invstd, float *var,
                             const float *inp, const float *gamma, const float *beta, int M,
                             int C, float eps, float *work, int threads)
{
    batchnorm_fused_forward_train(out, mean, invstd, var, inp, gamma, beta, M, C, eps, NULL,
                                  work, threads);
}

void batchnorm_fused_forward_infer(float *out, const float *inp, const float *gamma,
                                   const float *beta, const float *moving_mean,
                                   const float *moving_var, int M, int C, float eps,
                                   const BnFused *f, float *work, int threads)
{
    float *a = work;
    for (int c = 0; c < C; c++)
        a[c] = (float)(gamma[c] / sqrt((double)moving_var[c] + eps));
    affine_rows(out, inp, moving_mean, a, beta, M, C, f, threads);
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

#define MAX_ROW_BLOCK 256 /* channels masked at a time into a stack buffer */

/* g = dy where 0 < y < hi and 0 elsewhere; g = dy when y is NULL. */
static inline void mask_row(float *restrict g, const float *restrict dy, const float *restrict y,
                            float hi, int n)
{
    if (!y) {
        memcpy(g, dy, sizeof(float) * n);
        return;
    }
#pragma omp simd
    for (int c = 0; c < n; c++) {
        float d = dy[c];
        g[c] = (y[c] > 0.0f) & (y[c] < hi) ? d : 0.0f;
    }
}

/* d = or += s (n floats). */
static inline void put_row(float *restrict d, const float *restrict s, int n, bool accumulate)
{
    if (accumulate)
        for (int c = 0; c < n; c++)
            d[c] += s[c];
    else
        memcpy(d, s, sizeof(float) * n);
}

/* The input gradient of both modes, row by row: g = dout masked by the fused activation's
 * output, dres = or += g, and dinp = or += k1·g + k3·(x − m) + k2 (k3 = k2 = NULL: k1·g). A
 * reused buffer may hold anything, so overwriting never reads it. */
static void input_gradient(float *dinp, const float *dout, const float *inp, const float *m,
                           const float *k1, const float *k2, const float *k3, int M, int C,
                           const BnFused *f, int threads)
{
    const float *y = f ? f->out : NULL;
    const float hi = f ? f->hi : 0;
    float *dres = f ? f->dres : NULL;
    const bool acc = f ? f->accumulate : true, res_acc = f ? f->res_accumulate : true;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < M; r++) {
        const float *restrict x = inp + (size_t)r * C;
        const float *restrict dy = dout + (size_t)r * C;
        const float *restrict yr = y ? y + (size_t)r * C : NULL;
        float *restrict dx = dinp ? dinp + (size_t)r * C : NULL;
        float g[MAX_ROW_BLOCK], v[MAX_ROW_BLOCK];
        for (int c0 = 0; c0 < C; c0 += MAX_ROW_BLOCK) {
            int n = C - c0 < MAX_ROW_BLOCK ? C - c0 : MAX_ROW_BLOCK;
            mask_row(g, dy + c0, yr ? yr + c0 : NULL, hi, n);
            if (dres)
                put_row(dres + (size_t)r * C + c0, g, n, res_acc);
            if (!dx)
                continue;
            const float *restrict a1 = k1 + c0;
            if (k3) {
                const float *restrict xc = x + c0, *restrict mc = m + c0;
                const float *restrict a2 = k2 + c0, *restrict a3 = k3 + c0;
                for (int c = 0; c < n; c++)
                    v[c] = a1[c] * g[c] + a3[c] * (xc[c] - mc[c]) + a2[c];
            } else {
                for (int c = 0; c < n; c++)
                    v[c] = a1[c] * g[c];
            }
            put_row(dx + c0, v, n, acc);
        }
    }
}

void batchnorm_fused_backward_train(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                    const float *inp, const float *gamma, const float *mean,
                                    const float *invstd, int M, int C, const BnFused *f,
                                    float *work, int threads)
{
    if (threads < 1)
        threads = 1;
    double *part = (double *)work;
    float *k1 = (float *)(part + (size_t)threads * 2 * C), *k2 = k1 + C, *k3 = k2 + C;
    channel_sums(part, k1 + 3 * C, dout, f ? f->out : NULL, f ? f->hi : 0, inp, mean, invstd,
                 M, C, threads);
    for (int c = 0; c < C; c++) {
        dbeta[c] += (float)part[c];
        dgamma[c] += (float)part[C + c];
        /* dx = a·(g - Σg/M - xhat·Σ(g·xhat)/M), xhat = (x - mean)·invstd, a = gamma·invstd
         *    = k1·g + k3·(x - mean) + k2 */
        double a = (double)gamma[c] * invstd[c];
        double mdy = part[c] / M, mdyx = part[C + c] / M;
        k1[c] = (float)a;
        k3[c] = (float)(-a * invstd[c] * mdyx);
        k2[c] = (float)(-a * mdy);
    }
    if (dinp || (f && f->dres))
        input_gradient(dinp, dout, inp, mean, k1, k2, k3, M, C, f, threads);
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
    double *part = (double *)work;
    float *is = (float *)(part + (size_t)threads * 2 * C), *a = is + C;
    for (int c = 0; c < C; c++) {
        double s = 1.0 / sqrt((double)moving_var[c] + eps);
        is[c] = (float)s;
        a[c] = (float)(gamma[c] * s);
    }
    channel_sums(part, is + 3 * C, dout, f ? f->out : NULL, f ? f->hi : 0, inp, moving_mean, is,
                 M, C, threads);
    for (int c = 0; c < C; c++) {
        dbeta[c] += (float)part[c];
        dgamma[c] += (float)part[C + c];
    }
    if (dinp || (f && f->dres))
        input_gradient(dinp, dout, inp, moving_mean, a, NULL, NULL, M, C, f, threads);
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
