/* test_data_fixture.c — temporary directories and JPEG datasets for the data tests. */
#include "test_data_fixture.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/decode.h"
#include "data/fsutil.h"

char *fixture_data_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char templ[512];
    snprintf(templ, sizeof templ, "%s/initlab-data-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(templ))
        return NULL;
    return strdup(templ);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

void fixture_data_rmrf(const char *dir)
{
    if (dir)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int fixture_data_write(const char *dir, const char *rel, const void *bytes, size_t n)
{
    char *path = data_path_join(dir, rel);
    if (!path)
        return -1;
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int rc = data_mkdirs(path);
    *slash = '/';
    if (rc == 0) {
        FILE *f = fopen(path, "wb");
        rc = f && fwrite(bytes, 1, n, f) == n ? 0 : -1;
        if (f && fclose(f) != 0)
            rc = -1;
    }
    free(path);
    return rc;
}

int fixture_data_link(const char *dir, const char *rel, const char *target)
{
    char *path = data_path_join(dir, rel);
    if (!path)
        return -1;
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int rc = data_mkdirs(path);
    *slash = '/';
    if (rc == 0)
        rc = symlink(target, path);
    free(path);
    return rc == 0 ? 0 : -1;
}

int fixture_data_encode(const uint8_t *pix, int w, int h, int channels, int quality,
                        uint8_t **out, size_t *n)
{
    DataCodec *c = data_codec_create();
    const uint8_t *jpeg;
    char reason[256];
    int rc = -1;
    if (c && data_jpeg_encode(c, pix, w, h, channels, quality, &jpeg, n, reason,
                              sizeof reason) == 0 && (*out = malloc(*n))) {
        memcpy(*out, jpeg, *n);
        rc = 0;
    }
    data_codec_free(c);
    return rc;
}

int fixture_data_write_jpeg(const char *dir, const char *rel, const uint8_t *pix, int w, int h,
                            int channels, int quality)
{
    uint8_t *jpeg;
    size_t n;
    if (fixture_data_encode(pix, w, h, channels, quality, &jpeg, &n) != 0)
        return -1;
    int rc = fixture_data_write(dir, rel, jpeg, n);
    free(jpeg);
    return rc;
}

void fixture_data_fill(uint8_t *rgb, int w, int h, const uint8_t c[3])
{
    for (int i = 0; i < w * h; i++)
        memcpy(rgb + 3 * i, c, 3);
}

void fixture_data_color(int c, int k, uint8_t out[3])
{
    out[0] = (uint8_t)(40 + 60 * c);
    out[1] = (uint8_t)(10 + 20 * k);
    out[2] = (uint8_t)(200 - 30 * c);
}

int fixture_data_solid_dataset(const char *dir, int classes, int per_class, int w, int h)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (!rgb)
        return -1;
    int rc = 0;
    for (int c = 0; c < classes && rc == 0; c++) {
        for (int k = 0; k < per_class && rc == 0; k++) {
            uint8_t col[3];
            char rel[64];
            fixture_data_color(c, k, col);
            fixture_data_fill(rgb, w, h, col);
            snprintf(rel, sizeof rel, "class_%d/img_%02d.jpg", c, k);
            rc = fixture_data_write_jpeg(dir, rel, rgb, w, h, 3, 100);
        }
    }
    free(rgb);
    return rc;
}
