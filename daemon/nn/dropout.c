/* dropout.c — inverted dropout: seeded mask, forward and backward. */
#include "nn/layers.h"

void dropout_make_mask(float *mask, size_t n, float rate, Rng *rng)
{
    const float keep = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < n; i++)
        mask[i] = rng_uniform(rng) < rate ? 0.0f : keep;
}

void dropout_forward(float *out, const float *inp, const float *mask, size_t n, int threads)
{
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = inp[i] * mask[i];
}

void dropout_backward(float *dinp, const float *dout, const float *mask, size_t n, int threads)
{
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++)
        dinp[i] += dout[i] * mask[i];
}
