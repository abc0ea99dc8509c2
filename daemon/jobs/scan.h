/* scan.h — registering a dataset: scan its folder, split it, record files and split. */
#ifndef INITLAB_JOBS_SCAN_H
#define INITLAB_JOBS_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "data/scan.h"
#include "data/split.h"
#include "store/store.h"

/* Scans the ImageFolder at path and assigns the stratified split (fractions, seed).
 * Returns a new index (data_index_free) or NULL with a message. Thread-safe. */
DatasetIndex *jobs_scan_and_split(const char *path, DataSplitFractions f, uint64_t seed,
                                  char *err, size_t errlen);

/* Scans the dataset registered as `id` in s (status scanning) and records its classes,
 * files with their split and skipped files, marking it ready; on a scan failure marks it
 * failed with the reason. Returns 0 when ready, -1 otherwise (err says why). */
int jobs_scan_dataset(Store *s, int64_t id, char *err, size_t errlen);

#endif
