/* scan.h — registering a dataset: scan its folder, split it, record files and split. */
#ifndef INITLAB_JOBS_SCAN_H
#define INITLAB_JOBS_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/scan.h"
#include "data/split.h"
#include "store/store.h"

/* Scans the ImageFolder at path and assigns the stratified split (fractions, seed).
 * Returns a new index (data_index_free) or NULL with a message. Thread-safe. For a folder
 * a user names: links in path are resolved first, and the folder they lead to is the
 * root the scan is sealed in. */
DatasetIndex *jobs_scan_and_split(const char *path, DataSplitFractions f, uint64_t seed,
                                  char *err, size_t errlen);

/* jobs_scan_and_split for a registered dataset: path is the canonical path stored at
 * registration (DataScanOptions.canonical), so a folder on it swapped for a symbolic link
 * since — which could lead out of --data-root — fails the scan with a clear message
 * instead of being followed. */
DatasetIndex *jobs_scan_registered(const char *path, DataSplitFractions f, uint64_t seed,
                                   char *err, size_t errlen);

/* jobs_scan_registered with a cancel check (data/scan.h: DataScanOptions.cancel; may be
 * NULL); *cancelled (may be NULL) tells whether cancel stopped the scan. */
DatasetIndex *jobs_scan_registered_cancellable(const char *path, DataSplitFractions f,
                                               uint64_t seed, bool (*cancel)(void *user),
                                               void *cancel_user, bool *cancelled, char *err,
                                               size_t errlen);

/* Scans the dataset registered as `id` in s (status scanning), sealed as
 * jobs_scan_registered, and records its classes, files with their split and skipped
 * files, marking it ready; on a scan failure marks it failed with the reason. Names go to
 * the store in their text form (data_name_text), so that names that are not UTF-8 keep
 * their place and their bytes. Returns 0 when ready, -1 otherwise (err says why). */
int jobs_scan_dataset(Store *s, int64_t id, char *err, size_t errlen);

/* jobs_scan_dataset with a cancel check (data/scan.h: DataScanOptions.cancel; may be NULL):
 * returns -2 when cancel stopped the scan, leaving the dataset in status scanning so that
 * the next start scans it again. */
int jobs_scan_dataset_cancellable(Store *s, int64_t id, bool (*cancel)(void *user), void *user,
                                  char *err, size_t errlen);

#endif
