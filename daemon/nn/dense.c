/* dense.c — fully connected layer forward and backward as sgemm, naive reference.
 *
 * Shape letters: N batch rows, D input features, K units; the kernel is Keras' (D, K).
 * Layers of DENSE_SPLIT_MACS multiply-adds or more split their GEMMs among the team by output
 * columns (units forward and for the weight gradient, features for the input gradient):
 * every element is one single-threaded sgemm's over the whole inner dimension, and each
 * thread reads only its part of the kernel. */
#include "nn/layers.h"

#include <omp.h>

#include "nn/gemm.h"

/* Fewest multiply-adds (N·D·K) for which a dense layer splits its GEMMs among threads: below
 * it a team's start costs more than it saves. */
#define DENSE_SPLIT_MACS ((size_t)1 << 18)

/* Thread t's columns [*lo, *hi) of n among T: contiguous, boundaries on 16 floats (a cache
 * line) so that no two threads write one line of an output row. */
static void dense_share(int n, int t, int T, int *lo, int *hi)
{
    int blocks = (n + 15) / 16;
    *lo = blocks * t / T * 16;
    *hi = blocks * (t + 1) / T * 16;
    if (*lo > n)
        *lo = n;
    if (*hi > n)
        *hi = n;
}

/* The team for a layer of N·D·K multiply-adds: 1 below DENSE_SPLIT_MACS. */
static int dense_team(int N, int D, int K, int threads)
{
    return (size_t)N * D * K < DENSE_SPLIT_MACS || threads < 1 ? 1 : threads;
}

void dense_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                   int D, int K, int threads)
{
    gemm_single_threaded();
#pragma omp parallel num_threads(dense_team(N, D, K, threads))
    {
        int k0, k1;
        dense_share(K, omp_get_thread_num(), omp_get_num_threads(), &k0, &k1);
        if (k1 > k0) {
            gemm(false, false, N, k1 - k0, D, 1, inp, D, weight + k0, K, 0, out + k0, K);
            for (int n = 0; bias && n < N; n++)
                for (int k = k0; k < k1; k++)
                    out[(size_t)n * K + k] += bias[k];
        }
    }
}

void dense_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                    const float *inp, const float *weight, int N, int D, int K, int threads)
{
    const int team = dense_team(N, D, K, threads);
    gemm_single_threaded();
    if (dbias)
        bias_backward_add(dbias, dout, (size_t)N, K, team);
#pragma omp parallel num_threads(team)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        int lo, hi;
        dense_share(K, t, T, &lo, &hi); /* dweight's columns */
        if (hi > lo)
            gemm(true, false, D, hi - lo, N, 1, inp, D, dout + lo, K, 1, dweight + lo, K);
        dense_share(D, t, T, &lo, &hi); /* dinp's columns: weight's rows */
        if (dinp && hi > lo)
            gemm(false, true, N, hi - lo, K, 1, dout, K, weight + (size_t)lo * K, K, 1,
                 dinp + lo, D);
    }
}

void dense_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int D, int K)
{
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            double acc = bias ? bias[k] : 0.0;
            for (int d = 0; d < D; d++)
                acc += (double)inp[(size_t)n * D + d] * weight[(size_t)d * K + k];
            out[(size_t)n * K + k] = (float)acc;
        }
}

void dense_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int D, int K)
{
    for (int d = 0; d < D; d++)
        for (int k = 0; k < K; k++) {
            double acc = 0;
            for (int n = 0; n < N; n++)
                acc += (double)inp[(size_t)n * D + d] * dout[(size_t)n * K + k];
            dweight[(size_t)d * K + k] += (float)acc;
        }
    if (dbias)
        for (int k = 0; k < K; k++) {
            double acc = 0;
            for (int n = 0; n < N; n++)
                acc += dout[(size_t)n * K + k];
            dbias[k] += (float)acc;
        }
    if (dinp)
        for (int n = 0; n < N; n++)
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int k = 0; k < K; k++)
                    acc += (double)dout[(size_t)n * K + k] * weight[(size_t)d * K + k];
                dinp[(size_t)n * D + d] += (float)acc;
            }
}
