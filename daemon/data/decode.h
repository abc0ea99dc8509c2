/* decode.h — JPEG decoding to S×S RGB and JPEG encoding: the data module's TurboJPEG wrapper.
 *
 * decode.c is the only file of initlab that includes turbojpeg.h. Decoding uses TurboJPEG's
 * DCT scaling: among the scaling factors m/8 <= 1 it picks the smallest whose output is at
 * least the target window in both dimensions (1/1 when the image is smaller than the
 * target), so a 1600×1200 photo decodes as 400×300 for S = 224. Greyscale JPEGs come out
 * as R = G = B; CMYK/YCCK JPEGs are decoded to CMYK and converted with the Adobe
 * (inverted) convention libjpeg-turbo writes and reads: R = C·K/255, G = M·K/255,
 * B = Y·K/255. The decoded image is then resized with data_resize_bilinear (resize.h),
 * squashed or center-cropped.
 *
 * A DataCodec holds one TurboJPEG decompressor, one compressor (created on first use) and
 * scratch buffers that only grow, so steady-state decoding allocates nothing. A codec is
 * used by one thread at a time; use one per thread. */
#ifndef INITLAB_DATA_DECODE_H
#define INITLAB_DATA_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/resize.h"

typedef struct DataCodec DataCodec;

/* Why a file is not a usable JPEG. DATA_JPEG_OK is 0; the others are what scan reports. */
typedef enum {
    DATA_JPEG_OK = 0,
    DATA_JPEG_UNREADABLE,   /* open/read failed */
    DATA_JPEG_EMPTY,        /* zero bytes */
    DATA_JPEG_NOT_JPEG,     /* no JPEG signature, or a header TurboJPEG rejects */
    DATA_JPEG_TRUNCATED,    /* end-of-image marker missing and the data ends early */
    DATA_JPEG_CORRUPT,      /* the entropy-coded data does not decode, or decodes with
                               libjpeg's "Corrupt JPEG data" warnings (see below) */
    DATA_JPEG_TOO_LARGE,    /* more than DATA_JPEG_MAX_PIXELS pixels */
} DataJpegStatus;

/* The most pixels (width × height at full size) an image may have: 2^27, 384 MiB as RGB.
 * Larger headers (a 65500×65500 one, say) are refused before anything is allocated, so
 * that every accepted image decodes within that bound at any scale. */
#define DATA_JPEG_MAX_PIXELS (1L << 27)

/* Short fixed text for a status ("unreadable", "zero-byte file", "not a JPEG",
 * "truncated", "corrupt", "too large"). Can't fail. */
const char *data_jpeg_status_name(DataJpegStatus st);

/* A new codec, or NULL when out of memory / TurboJPEG cannot initialize. */
DataCodec *data_codec_create(void);
/* Frees codec and its buffers; NULL is fine. */
void data_codec_free(DataCodec *codec);

/* What a decode makes of damaged data. A fatal libjpeg error is corrupt; a "premature end"
 * warning (of the file or of a data segment) is truncated; the warnings that say the
 * image data itself is damaged — "Corrupt JPEG data: ..." (bad Huffman or arithmetic code,
 * extraneous bytes before a marker, a wrong restart marker), "Invalid SOS parameters",
 * "Inconsistent progression sequence" — are corrupt too: the pixels after them are
 * garbage, and initlab never trains on garbage. Warnings about metadata only (an unknown
 * JFIF revision or Adobe transform, a bad ICC marker) are tolerated. TurboJPEG reports the
 * first warning of an image only, so damage behind a metadata warning goes unseen. */

/* Checks the open file fd (read with pread from offset 0; fd is not closed): a regular
 * file, not empty, JPEG signature, a header TurboJPEG parses (tjDecompressHeader3, on the
 * first 256 KiB and on the whole file if the header runs past that), at most
 * DATA_JPEG_MAX_PIXELS pixels, and an end-of-image marker in the last 4 KiB. When full is
 * true, or when the marker is missing, the image is also decoded at the smallest scale
 * (1/8: every entropy-coded bit is read, little is computed), with the verdicts above.
 * Returns DATA_JPEG_OK and fills *w, *h (may be NULL), or another status with a one-line
 * reason in reason[len] (always terminated). */
DataJpegStatus data_jpeg_check(DataCodec *codec, int fd, bool full, int *w, int *h,
                               char *reason, size_t len);

/* Decodes jpeg[0..n) and resizes it to out (size, size, 3) with mode. Returns DATA_JPEG_OK,
 * or a status and a one-line reason (the decode errors of data_jpeg_check). On error out
 * is left unspecified. 1 <= size <= DATA_RESIZE_MAX. */
DataJpegStatus data_jpeg_decode(DataCodec *codec, const uint8_t *jpeg, size_t n, int size,
                                DataResize mode, uint8_t *out, char *reason, size_t len);

/* data_jpeg_decode of the file at path (read into the codec's buffer). For a path a user
 * names (tools); the images of a dataset are read with data_jpeg_decode_at. */
DataJpegStatus data_jpeg_decode_file(DataCodec *codec, const char *path, int size,
                                     DataResize mode, uint8_t *out, char *reason, size_t len);

/* data_jpeg_decode of the file rel below the dataset folder root_fd, opened with
 * data_open_beneath (fsutil.h): a file that leads out of the folder is unreadable. */
DataJpegStatus data_jpeg_decode_at(DataCodec *codec, int root_fd, const char *rel, int size,
                                   DataResize mode, uint8_t *out, char *reason, size_t len);

/* Decodes jpeg[0..n) at full size into *rgb (w, h, 3), a buffer owned by the codec and
 * valid until its next call. Same errors as data_jpeg_decode. */
DataJpegStatus data_jpeg_decode_full(DataCodec *codec, const uint8_t *jpeg, size_t n,
                                     const uint8_t **rgb, int *w, int *h, char *reason,
                                     size_t len);

/* The DCT scaling factor num/denom data_jpeg_decode uses for a w×h JPEG and target side
 * size (crop mode needs the same factor). Can't fail. */
void data_jpeg_scale_for(int w, int h, int size, int *num, int *denom);

/* Encodes pix (h, w, channels) — channels 1 (grey), 3 (RGB) or 4 (CMYK, inverted as
 * above) — as a baseline JPEG of quality 1..100 with 4:2:0 chroma (4:4:4 at quality 100,
 * greyscale for 1 channel). On success returns 0 and sets *jpeg and *n to a buffer owned by
 * the codec, valid until its next call; -1 on error with a reason. */
int data_jpeg_encode(DataCodec *codec, const uint8_t *pix, int w, int h, int channels,
                     int quality, const uint8_t **jpeg, size_t *n, char *reason, size_t len);

#endif
