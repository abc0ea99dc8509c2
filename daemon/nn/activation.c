/* activation.c — elementwise ReLU, ReLU6, tanh, sigmoid and softsign, forward and backward. */
#include "nn/layers.h"

#include <math.h>

const char *activation_name(Activation act)
{
    switch (act) {
    case ACT_RELU: return "relu";
    case ACT_RELU6: return "relu6";
    case ACT_TANH: return "tanh";
    case ACT_SIGMOID: return "sigmoid";
    case ACT_SOFTSIGN: return "softsign";
    }
    return "?";
}

void activation_forward(float *out, const float *inp, size_t n, Activation act, int threads)
{
    switch (act) {
    case ACT_RELU:
#pragma omp parallel for simd num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++)
            out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
        break;
    case ACT_RELU6:
#pragma omp parallel for simd num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++) {
            float x = inp[i] > 0.0f ? inp[i] : 0.0f;
            out[i] = x < 6.0f ? x : 6.0f;
        }
        break;
    case ACT_TANH:
#pragma omp parallel for num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++)
            out[i] = tanhf(inp[i]);
        break;
    case ACT_SIGMOID:
#pragma omp parallel for num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++)
            out[i] = 1.0f / (1.0f + expf(-inp[i]));
        break;
    case ACT_SOFTSIGN:
#pragma omp parallel for simd num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++)
            out[i] = inp[i] / (1.0f + fabsf(inp[i]));
        break;
    }
}

/* The ReLU masks load dout before selecting it, so that the loops vectorize without masked
 * loads too (see row_sums in batchnorm.c). */
void activation_backward(float *dinp, const float *dout, const float *out, size_t n,
                         Activation act, int threads)
{
    switch (act) {
    case ACT_RELU:
#pragma omp parallel for simd num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++) {
            float d = dout[i];
            dinp[i] += out[i] > 0.0f ? d : 0.0f;
        }
        break;
    case ACT_RELU6:
#pragma omp parallel for simd num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++) {
            float d = dout[i];
            dinp[i] += (out[i] > 0.0f && out[i] < 6.0f) ? d : 0.0f;
        }
        break;
    case ACT_TANH:
#pragma omp parallel for simd num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++)
            dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
        break;
    case ACT_SIGMOID:
#pragma omp parallel for simd num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++)
            dinp[i] += dout[i] * out[i] * (1.0f - out[i]);
        break;
    case ACT_SOFTSIGN:
#pragma omp parallel for simd num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++) {
            float d = 1.0f - fabsf(out[i]); /* = 1 / (1 + |x|) */
            dinp[i] += dout[i] * d * d;
        }
        break;
    }
}
