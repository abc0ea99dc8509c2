/* idx.h — reading IDX files (MNIST, Fashion-MNIST), gzipped or not.
 *
 * Format: two zero bytes, a type byte (only 0x08, unsigned byte, is supported), the number
 * of dimensions d (1..4), d big-endian uint32 sizes, then the data in row-major order.
 * Files are read through zlib's gzopen, which reads plain files unchanged. */
#ifndef INITLAB_DATA_IDX_H
#define INITLAB_DATA_IDX_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int ndims;
    int dims[4];
    uint8_t *data;   /* dims[0]·…·dims[ndims−1] bytes, owned */
    size_t count;    /* number of bytes in data */
} IdxArray;

/* Reads the IDX file at path into *out (release with data_idx_deinit). Returns 0, or -1
 * with a message in err[errlen]: unreadable, not IDX, unsupported type, truncated, too
 * large. *out is zeroed on failure. Thread-safe. */
int data_idx_read(const char *path, IdxArray *out, char *err, size_t errlen);

/* Frees the data; out may be zeroed or already deinitialized. */
void data_idx_deinit(IdxArray *a);

#endif
