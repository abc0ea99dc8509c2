/* resize.h — bilinear resizing of packed RGB uint8 images, with TensorFlow's semantics.
 *
 * The sampling is that of tf.image.resize(method="bilinear", antialias=False), which
 * Keras' image_dataset_from_directory uses by default, and of PyTorch's
 * F.interpolate(mode="bilinear", align_corners=False, antialias=False): output pixel x
 * samples the source at in = (x + 0.5) * (in_w / out_w) - 0.5 (half-pixel centers);
 * lo = max(floor(in), 0), hi = min(ceil(in), in_w - 1), t = in - floor(in);
 * top = tl + (tr - tl) * tx, bottom = bl + (br - bl) * tx, out = top + (bottom - top) * ty,
 * computed in float and rounded to the nearest integer (halves up) for uint8 storage.
 * No antialiasing: downscaling by more than 2 aliases, exactly as Keras does. */
#ifndef INITLAB_DATA_RESIZE_H
#define INITLAB_DATA_RESIZE_H

#include <stdint.h>

/* Largest output side the resizers accept (their per-column tables live on the stack). */
#define DATA_RESIZE_MAX 4096

typedef enum {
    DATA_RESIZE_SQUASH = 0,  /* whole image to S×S, aspect ratio not kept (Keras default) */
    DATA_RESIZE_CROP = 1,    /* largest centered square, then to S×S (crop_to_aspect_ratio) */
} DataResize;

/* "squash" / "crop" <-> DataResize. Parse returns 0, or -1 for an unknown name. */
int data_resize_parse(const char *name, DataResize *mode);
const char *data_resize_name(DataResize mode);

/* Resizes the window (x0, y0, cw, ch) of src — a packed RGB image with row stride
 * src_stride bytes — to dst (dw, dh, 3), packed. The window must lie inside src;
 * 1 <= dw, dh <= DATA_RESIZE_MAX. Can't fail; thread-safe. */
void data_resize_bilinear(const uint8_t *src, int src_stride, int x0, int y0, int cw, int ch,
                          uint8_t *dst, int dw, int dh);

/* The window data_resize_bilinear gets for mode on a w×h image: the whole image for
 * squash; for crop the centered square of side min(w, h), offset floor((w - side) / 2)
 * and floor((h - side) / 2) as Keras' smart_resize. Can't fail. */
void data_resize_window(DataResize mode, int w, int h, int *x0, int *y0, int *cw, int *ch);

#endif
