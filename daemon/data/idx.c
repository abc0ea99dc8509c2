/* idx.c — IDX reader over zlib's gz* API (idx.h). */
#include "data/idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Refuse arrays above this many bytes (a corrupt header must not allocate gigabytes). */
#define MAX_BYTES ((size_t)1 << 34)

static int read_exact(gzFile f, void *buf, size_t n)
{
    uint8_t *b = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int r = gzread(f, b, chunk);
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

int data_idx_read(const char *path, IdxArray *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    gzFile f = gzopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, errno ? strerror(errno) : "zlib");
        return -1;
    }
    int rc = -1;
    uint8_t magic[4];
    if (read_exact(f, magic, 4) != 0 || magic[0] != 0 || magic[1] != 0) {
        snprintf(err, errlen, "%s is not an IDX file", path);
        goto cleanup;
    }
    if (magic[2] != 0x08) {
        snprintf(err, errlen, "%s: IDX type 0x%02x unsupported (only unsigned bytes, 0x08)",
                 path, magic[2]);
        goto cleanup;
    }
    if (magic[3] < 1 || magic[3] > 4) {
        snprintf(err, errlen, "%s: %d dimensions unsupported (1 to 4)", path, magic[3]);
        goto cleanup;
    }
    out->ndims = magic[3];
    size_t total = 1;
    for (int d = 0; d < out->ndims; d++) {
        uint8_t b[4];
        if (read_exact(f, b, 4) != 0) {
            snprintf(err, errlen, "%s: truncated header", path);
            goto cleanup;
        }
        uint32_t v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (v == 0 || v > (1u << 30) || total > MAX_BYTES / v) {
            snprintf(err, errlen, "%s: dimension %d of size %u unsupported", path, d, v);
            goto cleanup;
        }
        out->dims[d] = (int)v;
        total *= v;
    }
    out->data = malloc(total);
    if (!out->data) {
        snprintf(err, errlen, "%s: out of memory for %zu bytes", path, total);
        goto cleanup;
    }
    if (read_exact(f, out->data, total) != 0) {
        int zerr = 0;
        const char *zmsg = gzerror(f, &zerr);
        snprintf(err, errlen, "%s: truncated data%s%s", path, zerr ? ": " : "",
                 zerr ? zmsg : "");
        goto cleanup;
    }
    out->count = total;
    rc = 0;
cleanup:
    gzclose(f);
    if (rc != 0)
        data_idx_deinit(out);
    return rc;
}

void data_idx_deinit(IdxArray *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}
