/* shape.c — output sizes and TF padding of windowed layers, shared by the builders and kernels. */
#include "nn/layers.h"

int shape_window_out(int in, int k, int stride, Padding padding, int *pad_before)
{
    int out, total;
    if (in <= 0 || k <= 0 || stride <= 0)
        return 0;
    if (padding == PAD_VALID) {
        if (k > in)
            return 0;
        out = (in - k) / stride + 1;
        total = 0;
    } else {
        out = (in + stride - 1) / stride;
        total = (out - 1) * stride + k - in;
        if (total < 0)
            total = 0;
    }
    if (pad_before)
        *pad_before = total / 2;
    return out;
}

int shape_conv_geom(ConvGeom *g, int N, int H, int W, int C, int K, int kh, int kw, int stride,
                    Padding padding)
{
    if (N <= 0 || C <= 0 || K <= 0)
        return -1;
    int pt = 0, pl = 0;
    int oh = shape_window_out(H, kh, stride, padding, &pt);
    int ow = shape_window_out(W, kw, stride, padding, &pl);
    if (oh <= 0 || ow <= 0)
        return -1;
    *g = (ConvGeom){.N = N, .H = H, .W = W, .C = C, .OH = oh, .OW = ow, .K = K, .kh = kh,
                    .kw = kw, .stride = stride, .pad_top = pt, .pad_left = pl};
    return 0;
}
