/* resize.c — TensorFlow-compatible half-pixel bilinear resize of RGB uint8 images (resize.h). */
#include "data/resize.h"

#include <assert.h>
#include <math.h>
#include <string.h>

int data_resize_parse(const char *name, DataResize *mode)
{
    if (strcmp(name, "squash") == 0)
        *mode = DATA_RESIZE_SQUASH;
    else if (strcmp(name, "crop") == 0)
        *mode = DATA_RESIZE_CROP;
    else
        return -1;
    return 0;
}

const char *data_resize_name(DataResize mode)
{
    return mode == DATA_RESIZE_CROP ? "crop" : "squash";
}

void data_resize_window(DataResize mode, int w, int h, int *x0, int *y0, int *cw, int *ch)
{
    if (mode == DATA_RESIZE_CROP) {
        int side = w < h ? w : h;
        *x0 = (w - side) / 2;
        *y0 = (h - side) / 2;
        *cw = *ch = side;
    } else {
        *x0 = *y0 = 0;
        *cw = w;
        *ch = h;
    }
}

/* Source coordinates of the out_n output samples over in_n inputs (TF's
 * compute_interpolation_weights with the half-pixel scaler). */
static void weights(int in_n, int out_n, int *lo, int *hi, float *t)
{
    float scale = (float)in_n / (float)out_n;
    for (int i = 0; i < out_n; i++) {
        float in = ((float)i + 0.5f) * scale - 0.5f;
        float f = floorf(in);
        int l = (int)f, h = (int)ceilf(in);
        lo[i] = l < 0 ? 0 : l;
        hi[i] = h > in_n - 1 ? in_n - 1 : h;
        t[i] = in - f;
    }
}

void data_resize_bilinear(const uint8_t *src, int src_stride, int x0, int y0, int cw, int ch,
                          uint8_t *dst, int dw, int dh)
{
    assert(dw >= 1 && dh >= 1 && dw <= DATA_RESIZE_MAX && dh <= DATA_RESIZE_MAX);
    assert(cw >= 1 && ch >= 1);
    int xl[DATA_RESIZE_MAX], xh[DATA_RESIZE_MAX];
    float xt[DATA_RESIZE_MAX];
    weights(cw, dw, xl, xh, xt);
    for (int x = 0; x < dw; x++) {
        xl[x] = (xl[x] + x0) * 3;
        xh[x] = (xh[x] + x0) * 3;
    }
    float scale = (float)ch / (float)dh;
    for (int y = 0; y < dh; y++) {
        float in = ((float)y + 0.5f) * scale - 0.5f; /* as weights() computes it */
        float f = floorf(in);
        int lo = (int)f, hi = (int)ceilf(in);
        lo = lo < 0 ? 0 : lo;
        hi = hi > ch - 1 ? ch - 1 : hi;
        float ty = in - f;
        const uint8_t *top = src + (size_t)(lo + y0) * src_stride;
        const uint8_t *bot = src + (size_t)(hi + y0) * src_stride;
        uint8_t *d = dst + (size_t)y * dw * 3;
        for (int x = 0; x < dw; x++) {
            float tx = xt[x];
            const uint8_t *tl = top + xl[x], *tr = top + xh[x];
            const uint8_t *bl = bot + xl[x], *br = bot + xh[x];
            for (int c = 0; c < 3; c++) {
                float t = (float)tl[c] + ((float)tr[c] - (float)tl[c]) * tx;
                float b = (float)bl[c] + ((float)br[c] - (float)bl[c]) * tx;
                float v = t + (b - t) * ty;
                int q = (int)(v + 0.5f);
                d[x * 3 + c] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
        }
    }
}
