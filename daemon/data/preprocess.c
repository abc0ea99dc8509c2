/* preprocess.c — the normalization modes of preprocess.h, through per-channel lookup tables. */
#include "data/preprocess.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"none", "tf", "pixel_mean", "caffe", "torch"};

int data_pre_parse(const char *name, DataPreMode *mode)
{
    for (int i = 0; i < 5; i++) {
        if (strcmp(name, names[i]) == 0) {
            *mode = (DataPreMode)i;
            return 0;
        }
    }
    return -1;
}

const char *data_pre_name(DataPreMode mode)
{
    return (unsigned)mode < 5 ? names[mode] : "unknown";
}

int data_pre_init(DataPreprocess *p, DataPreMode mode, int size, const float *mean)
{
    static const double caffe_mean[3] = {103.939, 116.779, 123.68};        /* B, G, R */
    static const double torch_mean[3] = {0.485, 0.456, 0.406};             /* R, G, B */
    static const double torch_std[3] = {0.229, 0.224, 0.225};
    memset(p, 0, sizeof *p);
    p->mode = mode;
    p->size = size;
    for (int c = 0; c < 3; c++) {
        p->src_channel[c] = mode == DATA_PRE_CAFFE ? 2 - c : c;
        for (int v = 0; v < 256; v++) {
            double y = v;
            switch (mode) {
            case DATA_PRE_TF: y = v / 127.5 - 1.0; break;
            case DATA_PRE_CAFFE: y = v - caffe_mean[c]; break;
            case DATA_PRE_TORCH: y = (v / 255.0 - torch_mean[c]) / torch_std[c]; break;
            case DATA_PRE_NONE:
            case DATA_PRE_PIXEL_MEAN: break;
            }
            p->lut[c][v] = (float)y;
        }
    }
    if (mode == DATA_PRE_PIXEL_MEAN) {
        size_t m = (size_t)size * size * 3;
        if (!mean || !(p->mean = malloc(m * sizeof *p->mean)))
            return -1;
        memcpy(p->mean, mean, m * sizeof *p->mean);
    }
    return 0;
}

void data_pre_deinit(DataPreprocess *p)
{
    free(p->mean);
    p->mean = NULL;
}

void data_pre_apply(const DataPreprocess *p, const uint8_t *src, bool flip, float *dst)
{
    int s = p->size;
    int c0 = p->src_channel[0], c1 = p->src_channel[1], c2 = p->src_channel[2];
    const float *l0 = p->lut[0], *l1 = p->lut[1], *l2 = p->lut[2];
    for (int y = 0; y < s; y++) {
        const uint8_t *row = src + (size_t)y * s * 3;
        float *out = dst + (size_t)y * s * 3;
        for (int x = 0; x < s; x++) {
            const uint8_t *px = row + (size_t)(flip ? s - 1 - x : x) * 3;
            out[3 * x] = l0[px[c0]];
            out[3 * x + 1] = l1[px[c1]];
            out[3 * x + 2] = l2[px[c2]];
        }
        if (p->mean) {
            const float *m = p->mean + (size_t)y * s * 3;
            for (int k = 0; k < s * 3; k++)
                out[k] -= m[k];
        }
    }
}
