/* dense.c — fully connected layer forward and backward as sgemm, naive reference.
 *
 * Shape letters: N batch rows, D input features, K units; the kernel is Keras' (D, K). */
#include "nn/layers.h"

#include "nn/gemm.h"

void dense_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                   int D, int K)
{
    gemm(false, false, N, K, D, 1, inp, D, weight, K, 0, out, K);
    if (bias)
        bias_forward_add(out, bias, (size_t)N, K, 1);
}

void dense_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                    const float *inp, const float *weight, int N, int D, int K)
{
    gemm(true, false, D, K, N, 1, inp, D, dout, K, 1, dweight, K);
    if (dbias)
        bias_backward_add(dbias, dout, (size_t)N, K, 1);
    if (dinp)
        gemm(false, true, N, D, K, 1, dout, K, weight, K, 1, dinp, D);
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
