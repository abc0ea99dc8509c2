/* add.c — residual add, accumulate-copy and bias broadcast, forward and backward. */
#include "nn/layers.h"

void add_forward(float *out, const float *a, const float *b, size_t n, int threads)
{
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void add_backward(float *da, float *db, const float *dout, size_t n, int threads)
{
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

void add_inplace(float *dst, const float *src, size_t n, int threads)
{
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

void bias_forward_add(float *out, const float *bias, size_t rows, int K, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float *restrict o = out + r * K;
        for (int k = 0; k < K; k++)
            o[k] += bias[k];
    }
}

#define KBLOCK 16

void bias_backward_add(float *dbias, const float *dout, size_t rows, int K, int threads)
{
    /* Each thread owns blocks of KBLOCK channels and sums their column in double. */
    const int nb = (K + KBLOCK - 1) / KBLOCK;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int b = 0; b < nb; b++) {
        int k0 = b * KBLOCK, len = K - k0 < KBLOCK ? K - k0 : KBLOCK;
        double acc[KBLOCK] = {0};
        for (size_t r = 0; r < rows; r++) {
            const float *restrict dy = dout + r * K + k0;
            for (int j = 0; j < len; j++)
                acc[j] += dy[j];
        }
        for (int j = 0; j < len; j++)
            dbias[k0 + j] += (float)acc[j];
    }
}
