/* test_data_decode.c — bilinear resize against hand-computed values, JPEG decode with DCT
 * scaling, grey and CMYK conversion, against images encoded here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/decode.h"
#include "data/resize.h"
#include "test.h"
#include "test_data_fixture.h"
#include "util/rng.h"

/* Upsampling 2 -> 4 with half-pixel centres: sample points -0.25, 0.25, 0.75, 1.25 clamp
 * to [0, 1], so a row (0, 100) becomes (0, 25, 75, 100). */
TEST(data_resize_upsample_by_hand)
{
    uint8_t src[2 * 1 * 3] = {0, 0, 0, 100, 200, 40};
    uint8_t dst[4 * 1 * 3];
    data_resize_bilinear(src, 2 * 3, 0, 0, 2, 1, dst, 4, 1);
    const int r[4] = {0, 25, 75, 100}, g[4] = {0, 50, 150, 200}, b[4] = {0, 10, 30, 40};
    for (int x = 0; x < 4; x++) {
        CHECK_INT(dst[3 * x], r[x]);
        CHECK_INT(dst[3 * x + 1], g[x]);
        CHECK_INT(dst[3 * x + 2], b[x]);
    }
}

/* Downsampling 4 -> 2: sample points 0.5 and 2.5, the means of neighbouring pairs; in 2-D
 * a 4x4 -> 2x2 resize averages 2x2 blocks. */
TEST(data_resize_downsample_by_hand)
{
    uint8_t src[4 * 4 * 3], dst[2 * 2 * 3];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            for (int c = 0; c < 3; c++)
                src[(y * 4 + x) * 3 + c] = (uint8_t)(10 * x + 40 * y + c);
    data_resize_bilinear(src, 4 * 3, 0, 0, 4, 4, dst, 2, 2);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
            for (int c = 0; c < 3; c++) {
                double want = (10 * (2 * x) + 10 * (2 * x + 1)) / 2.0 +
                              (40 * (2 * y) + 40 * (2 * y + 1)) / 2.0 + c;
                CHECK_NEAR(dst[(y * 2 + x) * 3 + c], floor(want + 0.5), 0);
            }
}

/* 3 -> 2 (scale 1.5): sample points 0.25 and 1.75: row (0, 90, 180) -> (22.5, 157.5),
 * rounded half up to 23 and 158. */
TEST(data_resize_fractional_scale_by_hand)
{
    uint8_t src[3 * 3] = {0, 0, 0, 90, 90, 90, 180, 180, 180}, dst[2 * 3];
    data_resize_bilinear(src, 3 * 3, 0, 0, 3, 1, dst, 2, 1);
    CHECK_INT(dst[0], 23);
    CHECK_INT(dst[3], 158);
}

TEST(data_resize_constant_stays_constant)
{
    int sw = 37, sh = 23;
    uint8_t *src = malloc((size_t)sw * sh * 3), dst[19 * 19 * 3];
    REQUIRE(src);
    const uint8_t col[3] = {7, 130, 254};
    fixture_data_fill(src, sw, sh, col);
    data_resize_bilinear(src, sw * 3, 0, 0, sw, sh, dst, 19, 19);
    for (int i = 0; i < 19 * 19; i++)
        for (int c = 0; c < 3; c++)
            CHECK_INT(dst[3 * i + c], col[c]);
    free(src);
}

TEST(data_resize_crop_window_is_centered_square)
{
    int x0, y0, cw, ch;
    data_resize_window(DATA_RESIZE_CROP, 7, 4, &x0, &y0, &cw, &ch);
    CHECK_INT(x0, 1);
    CHECK_INT(y0, 0);
    CHECK_INT(cw, 4);
    CHECK_INT(ch, 4);
    data_resize_window(DATA_RESIZE_CROP, 3, 10, &x0, &y0, &cw, &ch);
    CHECK_INT(x0, 0);
    CHECK_INT(y0, 3);
    CHECK_INT(cw, 3);
    data_resize_window(DATA_RESIZE_SQUASH, 7, 4, &x0, &y0, &cw, &ch);
    CHECK(x0 == 0 && y0 == 0 && cw == 7 && ch == 4);
}

TEST(data_decode_chooses_smallest_dct_scale)
{
    int num, den;
    data_jpeg_scale_for(1600, 1200, 224, &num, &den); /* 400x300 */
    CHECK(num * 4 == den);
    data_jpeg_scale_for(1600, 1200, 300, &num, &den); /* 1/4 gives 300 exactly */
    CHECK(num * 4 == den);
    data_jpeg_scale_for(1600, 1200, 301, &num, &den); /* 3/8: 600x450 */
    CHECK(num * 8 == den * 3);
    data_jpeg_scale_for(1600, 1200, 100, &num, &den); /* 1/8: 200x150 */
    CHECK(num * 8 == den);
    data_jpeg_scale_for(96, 96, 224, &num, &den); /* smaller than the target: 1/1 */
    CHECK(num == den);
}

/* A smooth RGB image at quality 100 (4:4:4) decodes within a few levels of the source. */
TEST(data_decode_quality100_matches_source)
{
    int w = 64, h = 48;
    uint8_t *src = malloc((size_t)w * h * 3), *out = malloc((size_t)w * w * 3);
    REQUIRE(src && out);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            src[(y * w + x) * 3] = (uint8_t)(x * 4);
            src[(y * w + x) * 3 + 1] = (uint8_t)(y * 5);
            src[(y * w + x) * 3 + 2] = (uint8_t)(128 + 60 * sin(x * 0.2) * cos(y * 0.15));
        }
    uint8_t *jpeg;
    size_t n;
    REQUIRE(fixture_data_encode(src, w, h, 3, 100, &jpeg, &n) == 0);
    DataCodec *c = data_codec_create();
    REQUIRE(c);
    const uint8_t *rgb;
    int dw, dh;
    char reason[256];
    REQUIRE(data_jpeg_decode_full(c, jpeg, n, &rgb, &dw, &dh, reason, sizeof reason) ==
            DATA_JPEG_OK);
    CHECK_INT(dw, w);
    CHECK_INT(dh, h);
    int maxd = 0;
    double sum = 0;
    for (int i = 0; i < w * h * 3; i++) {
        int d = abs((int)rgb[i] - src[i]);
        maxd = d > maxd ? d : maxd;
        sum += d;
    }
    CHECK(maxd <= 4);             /* colour conversion and IDCT rounding */
    CHECK(sum / (w * h * 3) < 1.0);
    free(jpeg);
    free(src);
    free(out);
    data_codec_free(c);
}

/* A linear ramp stays linear under DCT scaling and bilinear resizing: pixel (i, j) of the
 * 224x224 squash of a 1600x1200 ramp is the ramp at the pixel's centre,
 * ((i + 0.5) * 1600 / 224, (j + 0.5) * 1200 / 224). */
TEST(data_decode_camera_size_ramp_with_dct_scaling)
{
    int w = 1600, h = 1200, s = 224;
    uint8_t *src = malloc((size_t)w * h * 3), *out = malloc((size_t)s * s * 3);
    REQUIRE(src && out);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            src[((size_t)y * w + x) * 3] = (uint8_t)(20 + x * 200 / w);
            src[((size_t)y * w + x) * 3 + 1] = (uint8_t)(30 + y * 180 / h);
            src[((size_t)y * w + x) * 3 + 2] = 90;
        }
    uint8_t *jpeg;
    size_t n;
    REQUIRE(fixture_data_encode(src, w, h, 3, 95, &jpeg, &n) == 0);
    DataCodec *c = data_codec_create();
    char reason[256];
    REQUIRE(c);
    REQUIRE(data_jpeg_decode(c, jpeg, n, s, DATA_RESIZE_SQUASH, out, reason, sizeof reason) ==
            DATA_JPEG_OK);
    double maxd = 0;
    for (int j = 0; j < s; j++)
        for (int i = 0; i < s; i++) {
            double x = (i + 0.5) * w / s, y = (j + 0.5) * h / s;
            double want[3] = {20 + x * 200 / w, 30 + y * 180 / h, 90};
            for (int k = 0; k < 3; k++)
                maxd = fmax(maxd, fabs(out[(j * s + i) * 3 + k] - want[k]));
        }
    CHECK(maxd <= 3.0);
    /* center crop: the middle 1200x1200 square */
    REQUIRE(data_jpeg_decode(c, jpeg, n, s, DATA_RESIZE_CROP, out, reason, sizeof reason) ==
            DATA_JPEG_OK);
    maxd = 0;
    for (int i = 0; i < s; i++) {
        double x = 200 + (i + 0.5) * 1200 / s;
        maxd = fmax(maxd, fabs(out[(100 * s + i) * 3] - (20 + x * 200 / w)));
    }
    CHECK(maxd <= 3.0);
    free(jpeg);
    free(src);
    free(out);
    data_codec_free(c);
}

TEST(data_decode_grey_becomes_rgb)
{
    int w = 16;
    uint8_t grey[16 * 16], out[8 * 8 * 3];
    for (int i = 0; i < w * w; i++)
        grey[i] = (uint8_t)(i % 16 * 16);
    uint8_t *jpeg;
    size_t n;
    REQUIRE(fixture_data_encode(grey, w, w, 1, 100, &jpeg, &n) == 0);
    DataCodec *c = data_codec_create();
    char reason[256];
    REQUIRE(c);
    REQUIRE(data_jpeg_decode(c, jpeg, n, 8, DATA_RESIZE_SQUASH, out, reason, sizeof reason) ==
            DATA_JPEG_OK);
    for (int i = 0; i < 64; i++) {
        CHECK_INT(out[3 * i], out[3 * i + 1]);
        CHECK_INT(out[3 * i], out[3 * i + 2]);
    }
    /* columns 2x, 2x+1 average to 16 * (2x + 0.5) */
    CHECK_NEAR(out[3 * 3], 16 * 6.5, 3);
    free(jpeg);
    data_codec_free(c);
}

/* Adobe-style inverted CMYK: R = C*K/255, G = M*K/255, B = Y*K/255. */
TEST(data_decode_cmyk_to_rgb)
{
    int w = 16;
    uint8_t cmyk[16 * 16 * 4], out[16 * 16 * 3];
    for (int i = 0; i < w * w; i++) {
        int left = i % 16 < 8;
        cmyk[4 * i] = 200;
        cmyk[4 * i + 1] = 100;
        cmyk[4 * i + 2] = 50;
        cmyk[4 * i + 3] = left ? 255 : 128;
    }
    uint8_t *jpeg;
    size_t n;
    REQUIRE(fixture_data_encode(cmyk, w, w, 4, 100, &jpeg, &n) == 0);
    DataCodec *c = data_codec_create();
    char reason[256];
    REQUIRE(c);
    REQUIRE(data_jpeg_decode(c, jpeg, n, 16, DATA_RESIZE_SQUASH, out, reason, sizeof reason) ==
            DATA_JPEG_OK);
    int l = (8 * 16 + 2) * 3, r = (8 * 16 + 13) * 3;
    CHECK_NEAR(out[l], 200, 3);
    CHECK_NEAR(out[l + 1], 100, 3);
    CHECK_NEAR(out[l + 2], 50, 3);
    CHECK_NEAR(out[r], 200 * 128 / 255.0, 3);
    CHECK_NEAR(out[r + 1], 100 * 128 / 255.0, 3);
    CHECK_NEAR(out[r + 2], 50 * 128 / 255.0, 3);
    free(jpeg);
    data_codec_free(c);
}

TEST(data_decode_rejects_truncated_and_garbage)
{
    int w = 64;
    uint8_t *src = malloc((size_t)w * w * 3), out[8 * 8 * 3];
    REQUIRE(src);
    for (int i = 0; i < w * w * 3; i++)
        src[i] = (uint8_t)(i * 7919 % 251);
    uint8_t *jpeg;
    size_t n;
    REQUIRE(fixture_data_encode(src, w, w, 3, 90, &jpeg, &n) == 0);
    DataCodec *c = data_codec_create();
    char reason[256];
    REQUIRE(c);
    CHECK_INT(data_jpeg_decode(c, jpeg, n / 2, 8, DATA_RESIZE_SQUASH, out, reason, sizeof reason),
              DATA_JPEG_TRUNCATED);
    CHECK(strstr(reason, "truncated") == reason);
    const uint8_t text[] = "hello, this is not a picture";
    CHECK_INT(data_jpeg_decode(c, text, sizeof text, 8, DATA_RESIZE_SQUASH, out, reason,
                               sizeof reason),
              DATA_JPEG_NOT_JPEG);
    free(jpeg);
    free(src);
    data_codec_free(c);
}

/* Damaged files never crash the decoder: random byte changes and cuts of a valid JPEG give
 * either a decoded image or one of the error statuses with a reason (run under ASan), and
 * never spoil the codec for the files after them. */
TEST(data_decode_survives_random_damage)
{
    int w = 40;
    uint8_t *src = malloc((size_t)w * w * 3), out[16 * 16 * 3];
    REQUIRE(src);
    for (int i = 0; i < w * w * 3; i++)
        src[i] = (uint8_t)(i * 131 % 253);
    uint8_t *jpeg, *bad;
    size_t n;
    REQUIRE(fixture_data_encode(src, w, w, 3, 85, &jpeg, &n) == 0);
    bad = malloc(n);
    DataCodec *c = data_codec_create();
    REQUIRE(bad && c);
    Rng r;
    rng_seed(&r, 99);
    int ok = 0, failed = 0;
    for (int trial = 0; trial < 400; trial++) {
        memcpy(bad, jpeg, n);
        size_t len = n;
        int edits = 1 + (int)rng_below(&r, 8);
        for (int e = 0; e < edits; e++)
            bad[rng_below(&r, n)] = (uint8_t)rng_below(&r, 256);
        if (trial % 3 == 0)
            len = 1 + rng_below(&r, n);
        char reason[256] = "";
        DataJpegStatus st = data_jpeg_decode(c, bad, len, 16, DATA_RESIZE_SQUASH, out, reason,
                                             sizeof reason);
        CHECK(st >= DATA_JPEG_OK && st <= DATA_JPEG_TOO_LARGE);
        if (st == DATA_JPEG_OK) {
            ok++;
        } else {
            failed++;
            CHECK(reason[0] != '\0');
        }
        /* a failure leaves the codec usable for the next, intact file */
        CHECK_INT(data_jpeg_decode(c, jpeg, n, 16, DATA_RESIZE_SQUASH, out, reason,
                                   sizeof reason),
                  DATA_JPEG_OK);
    }
    CHECK(ok > 0 && failed > 0);
    free(bad);
    free(jpeg);
    free(src);
    data_codec_free(c);
}
