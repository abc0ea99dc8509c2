/* split.c — seeded, stratified, deterministic train/val/test split (split.h). */
#include "data/split.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/fsutil.h"
#include "util/rng.h"

int data_split_parse(const char *text, DataSplitFractions *f, char *err, size_t errlen)
{
    double v[3];
    char tail;
    if (sscanf(text, "%lf,%lf,%lf %c", &v[0], &v[1], &v[2], &tail) != 3) {
        snprintf(err, errlen, "split must be three fractions like 0.6,0.2,0.2, not '%s'", text);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (!(v[i] >= 0.0 && v[i] <= 1.0)) {
            snprintf(err, errlen, "split fractions must lie in [0, 1]: '%s'", text);
            return -1;
        }
    }
    if (fabs(v[0] + v[1] + v[2] - 1.0) > 1e-6) {
        snprintf(err, errlen, "split fractions must sum to 1: '%s'", text);
        return -1;
    }
    f->train = v[0];
    f->val = v[1];
    f->test = v[2];
    return 0;
}

const char *data_split_name(DataSplit s)
{
    switch (s) {
    case DATA_SPLIT_TRAIN: return "train";
    case DATA_SPLIT_VAL: return "val";
    case DATA_SPLIT_TEST: return "test";
    case DATA_SPLIT_NONE: break;
    }
    return "none";
}

void data_split_counts(int n, DataSplitFractions f, int counts[3])
{
    double exact[3] = {n * f.train, n * f.val, n * f.test};
    double rem[3];
    int total = 0;
    for (int k = 0; k < 3; k++) {
        counts[k] = (int)floor(exact[k] + 1e-9);
        if (counts[k] > n)
            counts[k] = n;
        rem[k] = exact[k] - counts[k];
        total += counts[k];
    }
    /* hand the images left over to the largest remainders (ties: train, val, test) */
    while (total < n) {
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (rem[k] > rem[best])
                best = k;
        counts[best]++;
        rem[best] = -1.0;
        total++;
    }
    while (total > n) { /* only from rounding noise in the fractions */
        int k = counts[2] ? 2 : counts[1] ? 1 : 0;
        counts[k]--;
        total--;
    }
}

static uint64_t class_stream(const char *name)
{
    return data_hash(DATA_HASH_INIT, name, strlen(name));
}

/* First index of class c and the number of its files (files are grouped by label). */
static void class_range(const DatasetIndex *x, int c, int *first, int *n)
{
    int lo = 0, hi = x->n_files;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (x->labels[mid] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    int end = lo;
    while (end < x->n_files && x->labels[end] == c)
        end++;
    *first = lo;
    *n = end - lo;
}

int data_split_assign(DatasetIndex *x, DataSplitFractions f, uint64_t seed)
{
    int *perm = malloc((size_t)(x->n_files > 0 ? x->n_files : 1) * sizeof *perm);
    if (!perm)
        return -1;
    for (int c = 0; c < x->n_classes; c++) {
        int first, n, counts[3];
        class_range(x, c, &first, &n);
        data_split_counts(n, f, counts);
        Rng rng;
        rng_seed(&rng, rng_derive(seed, class_stream(x->class_names[c])));
        for (int i = 0; i < n; i++)
            perm[i] = first + i;
        rng_shuffle_int(&rng, perm, n);
        for (int i = 0; i < n; i++)
            x->split[perm[i]] = i < counts[0]             ? DATA_SPLIT_TRAIN
                                : i < counts[0] + counts[1] ? DATA_SPLIT_VAL
                                                            : DATA_SPLIT_TEST;
    }
    free(perm);
    return 0;
}

int data_split_indices(const DatasetIndex *x, DataSplit s, int **out, int *n)
{
    int k = 0;
    for (int i = 0; i < x->n_files; i++)
        k += x->split[i] == s;
    int *v = malloc((size_t)(k > 0 ? k : 1) * sizeof *v);
    if (!v)
        return -1;
    k = 0;
    for (int i = 0; i < x->n_files; i++)
        if (x->split[i] == s)
            v[k++] = i;
    *out = v;
    *n = k;
    return 0;
}

int data_split_probe(const DatasetIndex *x, int n, uint64_t seed, int *out)
{
    int nc = x->n_classes;
    int *vals = malloc((size_t)(x->n_files > 0 ? x->n_files : 1) * sizeof *vals);
    int *start = calloc((size_t)nc + 1, sizeof *start);
    int *taken = calloc((size_t)nc + 1, sizeof *taken);
    if (!vals || !start || !taken) {
        free(vals);
        free(start);
        free(taken);
        return -1;
    }
    int k = 0;
    for (int c = 0; c < nc; c++) {
        int first, m;
        class_range(x, c, &first, &m);
        start[c] = k;
        for (int i = first; i < first + m; i++)
            if (x->split[i] == DATA_SPLIT_VAL)
                vals[k++] = i;
        Rng rng;
        rng_seed(&rng, rng_derive(seed, (uint64_t)c));
        rng_shuffle_int(&rng, vals + start[c], k - start[c]);
    }
    start[nc] = k;
    int got = 0;
    for (int progress = 1; got < n && progress;) {
        progress = 0;
        for (int c = 0; c < nc && got < n; c++) {
            if (start[c] + taken[c] < start[c + 1]) {
                out[got++] = vals[start[c] + taken[c]++];
                progress = 1;
            }
        }
    }
    free(vals);
    free(start);
    free(taken);
    return got;
}
