/* split.h — the stratified train/validation/test split of a DatasetIndex.
 *
 * Per class, the class's files (in path order) are shuffled with an Rng seeded by
 * rng_derive(seed, hash of the class name) — so one class's split does not depend on the
 * other classes — and cut into train, val and test parts whose sizes are the
 * largest-remainder rounding of n·fractions: each part differs from n·fraction by less
 * than one image and the parts add up to n. The result is a pure function of the file
 * set (paths per class), the fractions and the seed; it is written to index->split[i],
 * one DataSplit per file, for the store to persist (and to restore by writing the array
 * back). */
#ifndef INITLAB_DATA_SPLIT_H
#define INITLAB_DATA_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "data/scan.h"

typedef struct {
    double train, val, test;  /* each >= 0, sum 1 */
} DataSplitFractions;

#define DATA_SPLIT_DEFAULT ((DataSplitFractions){0.6, 0.2, 0.2})

/* Parses "0.6,0.2,0.2" (three fractions, each >= 0, summing to 1 within 1e-6). Returns 0,
 * or -1 with a message in err[errlen]. */
int data_split_parse(const char *text, DataSplitFractions *f, char *err, size_t errlen);

/* "train", "val", "test", "none". Can't fail. */
const char *data_split_name(DataSplit s);

/* Assigns every file of index a split (see above). Fractions must be valid (parse checks
 * them). Returns 0, or -1 when out of memory (split unchanged). Not thread-safe on the
 * same index. */
int data_split_assign(DatasetIndex *index, DataSplitFractions f, uint64_t seed);

/* Per class c, the part sizes for n files: counts[0..3) = train, val, test. Can't fail. */
void data_split_counts(int n, DataSplitFractions f, int counts[3]);

/* The indices (into index->paths) of the files with split s, in index order, as a new
 * array in *out (free()) of *n entries. Returns 0, or -1 when out of memory. */
int data_split_indices(const DatasetIndex *index, DataSplit s, int **out, int *n);

/* A fixed probe set of up to n validation images, chosen from seed alone: each class's
 * validation files are shuffled (rng_derive(seed, class)) and classes are visited in
 * turn, taking one file each, so every class is represented as evenly as possible.
 * Writes the indices to out[0..n) and returns how many there are (fewer than n when the
 * validation split is smaller), or -1 when out of memory. */
int data_split_probe(const DatasetIndex *index, int n, uint64_t seed, int *out);

#endif
