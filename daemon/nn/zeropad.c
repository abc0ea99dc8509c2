/* zeropad.c — asymmetric zero padding (Keras ZeroPadding2D) forward and backward. */
#include "nn/layers.h"

#include <string.h>

void zeropad_forward(float *out, const float *inp, int N, int H, int W, int C, int top,
                     int bottom, int left, int right, int threads)
{
    const int OH = H + top + bottom, OW = W + left + right;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < OH; oy++) {
            float *o = out + ((size_t)n * OH + oy) * OW * C;
            int iy = oy - top;
            if (iy < 0 || iy >= H) {
                memset(o, 0, sizeof(float) * OW * C);
                continue;
            }
            memset(o, 0, sizeof(float) * left * C);
            memcpy(o + (size_t)left * C, inp + ((size_t)n * H + iy) * W * C,
                   sizeof(float) * W * C);
            memset(o + (size_t)(left + W) * C, 0, sizeof(float) * right * C);
        }
}

void zeropad_backward(float *dinp, const float *dout, int N, int H, int W, int C, int top,
                      int bottom, int left, int right, int threads)
{
    const int OH = H + top + bottom, OW = W + left + right;
    (void)OH;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < N; n++)
        for (int y = 0; y < H; y++) {
            float *restrict d = dinp + ((size_t)n * H + y) * W * C;
            const float *restrict dy = dout + (((size_t)n * OH + y + top) * OW + left) * C;
            for (size_t i = 0; i < (size_t)W * C; i++)
                d[i] += dy[i];
        }
}
