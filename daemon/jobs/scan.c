/* scan.c — dataset registration: scan, split and store (scan.h). */
#include "jobs/scan.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/names.h"
#include "util/jsonout.h"
#include "util/log.h"

/* Scans path with opt and assigns the split; NULL with a message (and *cancelled set when
 * opt's cancel stopped it). */
static DatasetIndex *scan_and_split(const char *path, const DataScanOptions *opt,
                                    DataSplitFractions f, uint64_t seed, bool *cancelled,
                                    char *err, size_t errlen)
{
    DatasetIndex *index = NULL;
    int rc = data_scan(path, opt, &index, err, errlen);
    if (cancelled)
        *cancelled = rc == -2;
    if (rc < 0)
        return NULL;
    if (data_split_assign(index, f, seed) < 0) {
        snprintf(err, errlen, "out of memory while splitting %s", index->root);
        data_index_free(index);
        return NULL;
    }
    return index;
}

DatasetIndex *jobs_scan_and_split(const char *path, DataSplitFractions f, uint64_t seed,
                                  char *err, size_t errlen)
{
    return scan_and_split(path, NULL, f, seed, NULL, err, errlen);
}

DatasetIndex *jobs_scan_registered(const char *path, DataSplitFractions f, uint64_t seed,
                                   char *err, size_t errlen)
{
    return jobs_scan_registered_cancellable(path, f, seed, NULL, NULL, NULL, err, errlen);
}

DatasetIndex *jobs_scan_registered_cancellable(const char *path, DataSplitFractions f,
                                               uint64_t seed, bool (*cancel)(void *user),
                                               void *cancel_user, bool *cancelled, char *err,
                                               size_t errlen)
{
    DataScanOptions opt = {.canonical = true, .cancel = cancel, .cancel_user = cancel_user};
    return scan_and_split(path, &opt, f, seed, cancelled, err, errlen);
}

static void free_texts(char **t, int n)
{
    for (int i = 0; t && i < n; i++)
        free(t[i]);
    free(t);
}

static int store_index(Store *s, int64_t id, const DatasetIndex *index)
{
    /* Every name goes out in its text form: a name that is not UTF-8 can no longer be
     * refused by jansson and drop out of the class list, shifting the labels after it. */
    int nc = index->n_classes, nf = index->n_files, ns = index->n_skipped;
    char **classes = calloc((size_t)nc + 1, sizeof *classes);
    char **paths = calloc((size_t)nf + 1, sizeof *paths);
    char **skipped_paths = calloc((size_t)ns + 1, sizeof *skipped_paths);
    StoreDatasetFile *files = calloc((size_t)nf + 1, sizeof *files);
    StoreDatasetSkipped *skipped = calloc((size_t)ns + 1, sizeof *skipped);
    json_t *names = json_array();
    char *names_json = NULL;
    int rc = STORE_ERROR;
    if (!classes || !paths || !skipped_paths || !files || !skipped || !names)
        goto out;
    for (int c = 0; c < nc; c++)
        if (!(classes[c] = data_name_text(index->class_names[c])) ||
            json_array_append_new(names, json_string(classes[c])) != 0)
            goto out;
    for (int i = 0; i < nf; i++)
        if (!(paths[i] = data_name_text(index->paths[i])))
            goto out;
    for (int i = 0; i < ns; i++)
        if (!(skipped_paths[i] = data_name_text(index->skipped[i].path)))
            goto out;
    if (!(names_json = json_text(names, JSON_COMPACT)))
        goto out;
    for (int i = 0; i < nf; i++)
        files[i] = (StoreDatasetFile){.relpath = paths[i], .label = index->labels[i],
                                      .split = (StoreSplit)index->split[i],
                                      .size = index->sizes[i],
                                      .mtime = index->mtimes[i] / 1000000000};
    for (int i = 0; i < ns; i++)
        skipped[i] = (StoreDatasetSkipped){skipped_paths[i], index->skipped[i].reason};
    rc = store_dataset_set_files(s, id, names_json, nc, files, nf, skipped, ns);
out:
    json_decref(names);
    free(names_json);
    free(files);
    free(skipped);
    free_texts(classes, nc);
    free_texts(paths, nf);
    free_texts(skipped_paths, ns);
    return rc;
}

int jobs_scan_dataset_cancellable(Store *s, int64_t id, bool (*cancel)(void *user), void *user,
                                  char *err, size_t errlen)
{
    StoreDataset d;
    if (store_dataset_get_by_id(s, id, &d) != STORE_OK) {
        snprintf(err, errlen, "dataset %lld is not registered", (long long)id);
        return -1;
    }
    DataSplitFractions f = {d.train_frac, d.val_frac, d.test_frac};
    DataScanOptions opt = {.canonical = true, .cancel = cancel, .cancel_user = user};
    bool cancelled = false;
    DatasetIndex *index = scan_and_split(d.path, &opt, f, (uint64_t)d.seed, &cancelled, err,
                                         errlen);
    int rc = -1;
    if (cancelled) {
        rc = -2;
    } else if (!index) {
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

int jobs_scan_dataset(Store *s, int64_t id, char *err, size_t errlen)
{
    return jobs_scan_dataset_cancellable(s, id, NULL, NULL, err, errlen);
}
