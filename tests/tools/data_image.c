/* data_image.c — the data module's image paths as a command-line tool, for the Python
 * cross-checks in tests/torch/test_data.py.
 *
 *   data_image resize IN.raw W H DW DH OUT.raw      (h, w, 3) uint8 -> (DH, DW, 3) uint8
 *   data_image decode IN.jpg S squash|crop OUT.raw  JPEG -> (S, S, 3) uint8
 * Raw files are packed RGB bytes, row-major. Exit status 0 on success, 1 on error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/decode.h"
#include "data/resize.h"

static int write_all(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(buf, 1, n, f) == n;
    if (f && fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

static int resize(int argc, char **argv)
{
    if (argc != 8)
        return -1;
    int w = atoi(argv[3]), h = atoi(argv[4]), dw = atoi(argv[5]), dh = atoi(argv[6]);
    if (w < 1 || h < 1 || dw < 1 || dh < 1 || dw > DATA_RESIZE_MAX || dh > DATA_RESIZE_MAX)
        return -1;
    size_t n = (size_t)w * h * 3;
    uint8_t *src = malloc(n), *dst = malloc((size_t)dw * dh * 3);
    FILE *f = fopen(argv[2], "rb");
    int rc = -1;
    if (src && dst && f && fread(src, 1, n, f) == n) {
        data_resize_bilinear(src, w * 3, 0, 0, w, h, dst, dw, dh);
        rc = write_all(argv[7], dst, (size_t)dw * dh * 3);
    }
    if (f)
        fclose(f);
    free(src);
    free(dst);
    return rc;
}

static int decode(int argc, char **argv)
{
    DataResize mode;
    if (argc != 6 || data_resize_parse(argv[4], &mode) != 0)
        return -1;
    int s = atoi(argv[3]);
    if (s < 1 || s > DATA_RESIZE_MAX)
        return -1;
    DataCodec *c = data_codec_create();
    uint8_t *out = malloc((size_t)s * s * 3);
    char reason[256];
    int rc = -1;
    if (c && out) {
        if (data_jpeg_decode_file(c, argv[2], s, mode, out, reason, sizeof reason) ==
            DATA_JPEG_OK)
            rc = write_all(argv[5], out, (size_t)s * s * 3);
        else
            fprintf(stderr, "data_image: %s\n", reason);
    }
    free(out);
    data_codec_free(c);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = -1;
    if (argc > 1 && strcmp(argv[1], "resize") == 0)
        rc = resize(argc, argv);
    else if (argc > 1 && strcmp(argv[1], "decode") == 0)
        rc = decode(argc, argv);
    if (rc != 0) {
        fprintf(stderr, "usage: data_image resize IN.raw W H DW DH OUT.raw\n"
                        "       data_image decode IN.jpg S squash|crop OUT.raw\n");
        return 1;
    }
    return 0;
}
