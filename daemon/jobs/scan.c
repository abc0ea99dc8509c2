/* scan.c — dataset registration: scan, split and store (scan.h). */
#include "jobs/scan.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/log.h"
#include "util/jsonout.h"

DatasetIndex *jobs_scan_and_split(const char *path, DataSplitFractions f, uint64_t seed,
                                  char *err, size_t errlen)
{
    DatasetIndex *index = NULL;
    if (data_scan(path, NULL, &index, err, errlen) < 0)
        return NULL;
    if (data_split_assign(index, f, seed) < 0) {
        snprintf(err, errlen, "out of memory while splitting %s", path);
        data_index_free(index);
        return NULL;
    }
    return index;
}

static int store_index(Store *s, int64_t id, const DatasetIndex *index)
{
    json_t *names = json_array();
    for (int c = 0; names && c < index->n_classes; c++)
        json_array_append_new(names, json_string(index->class_names[c]));
    char *names_json = names ? json_text(names, JSON_COMPACT) : NULL;
    json_decref(names);
    StoreDatasetFile *files = calloc((size_t)index->n_files + 1, sizeof *files);
    StoreDatasetSkipped *skipped = calloc((size_t)index->n_skipped + 1, sizeof *skipped);
    int rc = STORE_ERROR;
    if (names_json && files && skipped) {
        for (int i = 0; i < index->n_files; i++)
            files[i] = (StoreDatasetFile){.relpath = index->paths[i], .label = index->labels[i],
                                          .split = (StoreSplit)index->split[i],
                                          .size = index->sizes[i],
                                          .mtime = index->mtimes[i] / 1000000000};
        for (int i = 0; i < index->n_skipped; i++)
            skipped[i] = (StoreDatasetSkipped){index->skipped[i].path, index->skipped[i].reason};
        rc = store_dataset_set_files(s, id, names_json, index->n_classes, files,
                                     index->n_files, skipped, index->n_skipped);
    }
    free(names_json);
    free(files);
    free(skipped);
    return rc;
}

int jobs_scan_dataset(Store *s, int64_t id, char *err, size_t errlen)
{
    StoreDataset d;
    if (store_dataset_get_by_id(s, id, &d) != STORE_OK) {
        snprintf(err, errlen, "dataset %lld is not registered", (long long)id);
        return -1;
    }
    DataSplitFractions f = {d.train_frac, d.val_frac, d.test_frac};
    DatasetIndex *index = jobs_scan_and_split(d.path, f, (uint64_t)d.seed, err, errlen);
    int rc = -1;
    if (!index) {
        store_dataset_set_status(s, id, STORE_DATASET_FAILED, err);
    } else if (store_index(s, id, index) != STORE_OK) {
        snprintf(err, errlen, "dataset %s not stored: %s", d.name, store_errmsg(s));
        store_dataset_set_status(s, id, STORE_DATASET_FAILED, err);
    } else {
        log_info("jobs", "dataset %s: %d classes, %d files, %d skipped", d.name,
                 index->n_classes, index->n_files, index->n_skipped);
        rc = 0;
    }
    data_index_free(index);
    store_dataset_deinit(&d);
    return rc;
}
