/* cache.h — the decoded-image cache: every image of a dataset as uint8 (S, S, 3) RGB in one
 * memory-mapped file per (dataset, size, resize mode).
 *
 * File: <dir>/<root basename>-<hash of root path>-<S>-<squash|crop>.cache, laid out as
 *   [0, 4096)          header: magic "INITLABC", version, S, resize mode, count,
 *                      fingerprint (data_index_fingerprint), offsets, failed count
 *   [4096, 4096 + n)   status: one DataJpegStatus byte per image (0 = decoded)
 *   [data_offset, ...) images, page aligned: image i at data_offset + i·S·S·3
 * Opening checks every header field against the index; any mismatch (a file added,
 * removed, resized or touched, another S) rebuilds the file. Building decodes with
 * several threads, writes a temporary file with pwrite and renames it into place, under
 * an flock on <file>.lock so that concurrent jobs build it once; readers that mapped an
 * older file keep their (unlinked) copy. Memory stays bounded: images are written
 * through the page cache and read through the mapping, never held whole in RAM.
 * Images are read sealed in the dataset folder (data_jpeg_decode_at): a file replaced by a
 * symbolic link out of the folder after the scan is not read but excluded. Version 2
 * counts libjpeg's damaged-data warnings as failures (decode.h), so files of version 1,
 * which kept such images, are rebuilt.
 *
 * Size. Before building a file the directory's caches are kept within a limit
 * (data_cache_set_limit, 0: none) and within the file system's free space by deleting the
 * least recently used files that no process has open (a shared flock on <file>.use is
 * held while a cache is open; opening one marks it used: its mtime). A build that cannot
 * fit fails with a message saying which limit.
 *
 * Thread-safety: a DataCache is immutable after open; its reading functions may be
 * called from any number of threads. */
#ifndef INITLAB_DATA_CACHE_H
#define INITLAB_DATA_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/progress.h"
#include "data/resize.h"
#include "data/scan.h"

#define DATA_CACHE_VERSION 2

typedef struct DataCache DataCache;

typedef struct {
    const char *dir;          /* cache directory; created when missing */
    int size;                 /* S, 1..DATA_RESIZE_MAX */
    DataResize resize;        /* squash (Keras default) or crop */
    int threads;              /* decode threads while building; <= 0 means 2 */
    DataProgressFn progress;  /* may be NULL; (images decoded, total): once with 0 before
                                 decoding, ~10 times a second, once with total at the end */
    void *user;
} DataCacheConfig;

/* Opens the cache of index for cfg, building (or rebuilding) it when missing or stale.
 * Images that fail to decode are excluded from index (data_index_exclude: split NONE,
 * listed in skipped with "<status> (found while decoding)"), never trained on as zeros or
 * garbage — every time the cache is opened, so call this after
 * data_split_assign and before using or persisting the split. Returns 0 and a new cache
 * in *out; -1 with a message in err[errlen] on I/O errors, -2 when the progress callback
 * cancelled the build (the old file, if any, is left as it was). Safe to call from
 * several threads and processes for the same dataset (they build once, under the
 * flock), but each with its own index: it changes index. */
int data_cache_open(DatasetIndex *index, const DataCacheConfig *cfg, DataCache **out,
                    char *err, size_t errlen);

/* Sets the size limit of every cache directory of the process in bytes (0: none), applied
 * at the next build. Thread-safe. */
void data_cache_set_limit(uint64_t bytes);
uint64_t data_cache_limit(void);

/* One cache file of a directory, as data_cache_usage lists them. */
typedef struct {
    char name[256];
    uint64_t bytes;       /* on disk */
    double last_used;     /* unix seconds */
    bool in_use;          /* open by some process now */
} DataCacheFile;

/* The cache files of dir and their total size on disk. *files is heap (free()); a missing
 * directory has none. Returns 0, or -1 when dir cannot be read. */
int data_cache_usage(const char *dir, DataCacheFile **files, int *n, uint64_t *total);

/* Deletes the cache files of dir made for the dataset folder root (every size and
 * resize mode, with their mean images). Returns how many cache files went. Can't fail. */
int data_cache_remove_dataset(const char *dir, const char *root);

/* Unmaps and frees; NULL is fine. Pointers from data_cache_image become invalid. */
void data_cache_free(DataCache *cache);

/* Image i (0 <= i < count) as (S, S, 3) RGB, valid while the cache is open; all zeros for
 * an image that failed to decode. Can't fail. */
const uint8_t *data_cache_image(const DataCache *cache, int i);
/* Label of image i (a copy of index->labels). Can't fail. */
int data_cache_label(const DataCache *cache, int i);
/* Asks the kernel to read image i ahead (madvise WILLNEED). Can't fail. */
void data_cache_prefetch(const DataCache *cache, int i);

int data_cache_count(const DataCache *cache);
int data_cache_size(const DataCache *cache);
int data_cache_classes(const DataCache *cache);
/* The cache file's path (owned by the cache). */
const char *data_cache_path(const DataCache *cache);
/* True when this open decoded the images (the file was missing or stale). */
bool data_cache_built(const DataCache *cache);

/* The mean image over images indices[0..n) (the training split for pixel_mean), (S, S, 3)
 * floats on the 0–255 scale, accumulated in double. Computed once per (cache contents,
 * index list) and kept beside the cache file as <file>.mean-<hash>; later calls read it.
 * Returns 0, or -1 with a message (n == 0 or I/O error). Thread-safe. */
int data_cache_mean_image(const DataCache *cache, const int *indices, int n, float *mean,
                          char *err, size_t errlen);
/* data_cache_mean_image asking cancel (may be NULL) every 64 images: returns -2 when it
 * said to stop (nothing is written beside the cache). */
int data_cache_mean_image_cancellable(const DataCache *cache, const int *indices, int n,
                                      float *mean, bool (*cancel)(void *user), void *user,
                                      char *err, size_t errlen);

#endif
