/* loader.h — background batch production: shuffled, normalized float NHWC batches from the
 * decoded-image cache while the trainer computes.
 *
 * Use:
 *   DataLoader *ld = data_loader_create(&(DataLoaderConfig){cache, &pre, 128, 2, 0, true});
 *   data_loader_start(ld, train_idx, n_train, rng_derive(job_seed, epoch), true);
 *   DataBatch b;
 *   while (data_loader_next(ld, &b) == 1)  ... b.images (b.n, S, S, 3), b.labels (b.n) ...
 *   data_loader_free(ld);
 *
 * Determinism: the epoch's order (a Fisher–Yates shuffle with rng_derive(seed, 0)) and
 * the flip of each position (one draw per position from rng_derive(seed, 1)) are fixed
 * when the epoch starts, before any thread runs, and batch b always holds positions
 * [b·B, min((b+1)·B, n)) — so the same seed gives the same batches, bit for bit, with any
 * number of threads. The last batch is partial unless drop_last.
 *
 * Memory: `ring` buffers of batch_size·S·S·3 floats, allocated by create; starting an
 * epoch grows the order array only when the index list is longer than before; nothing
 * is allocated per batch. */
#ifndef INITLAB_DATA_LOADER_H
#define INITLAB_DATA_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "data/cache.h"
#include "data/preprocess.h"

typedef struct DataLoader DataLoader;

typedef struct {
    const DataCache *cache;         /* borrowed; must outlive the loader */
    const DataPreprocess *pre;      /* borrowed; must outlive the loader; size == cache S */
    int batch_size;                 /* >= 1 */
    int threads;                    /* producer threads; <= 0 means 2 */
    int ring;                       /* batch buffers, >= 2; <= 0 means threads + 2 */
    bool flip;                      /* random horizontal flips (p = 1/2 per image) */
    bool drop_last;                 /* drop the last partial batch */
} DataLoaderConfig;

typedef struct {
    const float *images;  /* (n, S, S, 3), owned by the loader */
    const int *labels;    /* (n) */
    const int *indices;   /* (n) positions in the DatasetIndex */
    int n;                /* 1..batch_size */
    int number;           /* batch number in the epoch, from 0 */
} DataBatch;

/* Starts the producer threads (idle until an epoch starts). Returns NULL when the config
 * is invalid, memory runs out or no thread can start. */
DataLoader *data_loader_create(const DataLoaderConfig *cfg);

/* Stops and joins the threads, frees the buffers; NULL is fine. */
void data_loader_free(DataLoader *loader);

/* Stops any running epoch and starts one over indices[0..n) (copied; positions in the
 * DatasetIndex, e.g. from data_split_indices), shuffled when shuffle is true, with flips
 * when the config asks for them. Returns 0, or -1 when out of memory (no epoch runs). */
int data_loader_start(DataLoader *loader, const int *indices, int n, uint64_t seed,
                      bool shuffle);

/* The next batch of the epoch, in order. Returns 1 and fills *batch — its buffers stay
 * valid until the next call of next/start/stop/free — or 0 when the epoch is over (or
 * none was started). Blocks while the batch is being produced; the time blocked adds
 * to data_loader_wait_seconds. Call from one consumer thread. */
int data_loader_next(DataLoader *loader, DataBatch *batch);

/* Abandons the epoch: waits for batches in production, then discards all. Can't fail. */
void data_loader_stop(DataLoader *loader);

/* Seconds the consumer spent blocked in data_loader_next since the epoch started. */
double data_loader_wait_seconds(DataLoader *loader);

/* Number of batches of the current epoch. */
int data_loader_batches(DataLoader *loader);

/* Synchronously reads the fixed images indices[0..n) (no shuffle, no flip) into images
 * (n, S, S, 3) and labels (n) — for the probe batch and evaluation. Can't fail;
 * thread-safe. */
void data_read_batch(const DataCache *cache, const DataPreprocess *pre, const int *indices,
                     int n, float *images, int *labels);

#endif
