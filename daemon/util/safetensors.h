/* safetensors.h — reading and writing float32 tensors in the safetensors format.
 *
 * Format (huggingface/safetensors): 8-byte little-endian header length L, then L bytes of
 * JSON {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"key": "value"}}, then the raw little-endian data. Only F32 is written;
 * F32 is read. Files are written to a temporary name, fsynced and renamed into place. */
#ifndef INITLAB_UTIL_SAFETENSORS_H
#define INITLAB_UTIL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t count;       /* product of shape */
    const float *data;  /* borrowed when writing; owned by the SafeTensors when reading */
} StTensor;

/* Writes n tensors (in the given order) and optional metadata (NULL-terminated key, value
 * pairs, may be NULL) to path atomically. Returns 0, or -1 with errno-style text in err. */
int st_write(const char *path, const StTensor *tensors, int n, const char *const *metadata,
             char *err, size_t errlen);

typedef struct SafeTensors SafeTensors;

/* Reads a whole file; tensors must be F32. Returns NULL with a message in err on a missing
 * file, bad header, unsupported dtype or out-of-range offsets. Caller frees with st_free. */
SafeTensors *st_read(const char *path, char *err, size_t errlen);
void st_free(SafeTensors *st); /* accepts NULL */
int st_count(const SafeTensors *st);
const StTensor *st_at(const SafeTensors *st, int i);
const StTensor *st_find(const SafeTensors *st, const char *name); /* NULL when absent */
/* Metadata value for key, or NULL. */
const char *st_metadata(const SafeTensors *st, const char *key);

#endif
