/* preprocess.h — turning a cached uint8 RGB image into the network's float input.
 *
 * Modes (Keras' imagenet_utils.preprocess_input and the paper; x is a 0–255 value, c the
 * output channel, output NHWC float32):
 *   none        y = x                                  (RGB)
 *   tf          y = x / 127.5 − 1                      (RGB, in [−1, 1]; paper's MobileNet)
 *   pixel_mean  y = x − mean[h][w][c]                  (RGB; mean image of the training
 *                                                       split on the 0–255 scale, computed
 *                                                       once: data_cache_mean_image; the
 *                                                       paper's ResNet)
 *   caffe       y = x[2 − c] − m[c], m = (103.939, 116.779, 123.68)
 *                                                      (BGR order, ImageNet means, no scaling)
 *   torch       y = (x / 255 − μ[c]) / σ[c], μ = (0.485, 0.456, 0.406),
 *               σ = (0.229, 0.224, 0.225)              (RGB, ImageNet statistics)
 * A horizontal flip, when asked for, mirrors the source image first (output column w
 * reads source column S − 1 − w); the pixel_mean mean is then subtracted at the output
 * position. Per-value transforms go through a 3×256 lookup table built once. */
#ifndef INITLAB_DATA_PREPROCESS_H
#define INITLAB_DATA_PREPROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    DATA_PRE_NONE = 0,
    DATA_PRE_TF,
    DATA_PRE_PIXEL_MEAN,
    DATA_PRE_CAFFE,
    DATA_PRE_TORCH,
} DataPreMode;

typedef struct {
    DataPreMode mode;
    int size;              /* S */
    int src_channel[3];    /* output channel c reads source channel src_channel[c] */
    float lut[3][256];     /* output channel c, source value v -> lut[c][v] */
    float *mean;           /* (S, S, 3), pixel_mean only; owned */
} DataPreprocess;

/* "none", "tf", "pixel_mean", "caffe", "torch" <-> DataPreMode. Parse returns 0 or -1. */
int data_pre_parse(const char *name, DataPreMode *mode);
const char *data_pre_name(DataPreMode mode);

/* Sets up p for mode and image side size. mean (S, S, 3) is required for pixel_mean and
 * copied; ignored otherwise. Returns 0, or -1 (out of memory, or pixel_mean without a
 * mean). */
int data_pre_init(DataPreprocess *p, DataPreMode mode, int size, const float *mean);
/* Releases p's mean; p may be zeroed or already deinitialized. */
void data_pre_deinit(DataPreprocess *p);

/* src (S, S, 3) RGB uint8 -> dst (S, S, 3) float, mirrored when flip. Can't fail;
 * thread-safe (p is read only). */
void data_pre_apply(const DataPreprocess *p, const uint8_t *src, bool flip, float *dst);

#endif
