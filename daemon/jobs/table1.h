/* table1.h — the paper's Table 1 over seeds, with intervals and tests: for a grid, per
 * model × initializer the test metrics' 95% intervals and the epochs each run took to reach
 * a validation accuracy, and for each model every pair of initializers compared.
 *
 * table1_build returns (new reference) an object
 *   {"target": X,
 *    "groups": [{"model", "initializer", "n_jobs", "n",
 *                "accuracy" | "precision_macro" | "recall_macro" | "f1_macro" | "loss":
 *                     {"mean", "std", "ci95": [lo, hi]},
 *                "epochs_to_target": {"mean", "std", "ci95": [lo, hi], "reached", "n"},
 *                "runs": [{"job_id", "seed", "status", "accuracy", ..., "loss",
 *                          "best_val_acc", "epochs_to_target"}]}],
 *    "comparisons": [{"model", "a", "b", "metric", "n_a", "n_b", "diff", "ci95": [lo, hi],
 *                     "welch": {"t", "df", "p"},
 *                     "permutation": {"p", "exact", "splits"}}]}
 * groups in model, initializer order; a run's metrics are null until it has test results
 * and its epochs_to_target (the first epoch whose validation accuracy is >= X) null while
 * it has not reached X. Means, intervals and tests use the runs with a value (util/signif.h:
 * sample std, t intervals, Welch's t-test, the permutation test, exact up to 10⁶ splits,
 * else 10⁵ seeded random ones). diff is mean(a) − mean(b), a the initializer first in
 * name order (glorot before he). Values that do not exist (fewer than 2 runs) are null. */
#ifndef INITLAB_JOBS_TABLE1_H
#define INITLAB_JOBS_TABLE1_H

#include <jansson.h>

#include "store/store.h"

#define TABLE1_DEFAULT_TARGET 0.9
#define TABLE1_MAX_EXACT 1000000
#define TABLE1_RESAMPLES 100000

/* Builds the object above for grid grid_id with target accuracy target (0..1]. Returns
 * NULL with the store's code in *rc (STORE_NOT_FOUND for an unknown grid, STORE_ERROR for
 * a failure or no memory: store_errmsg(s) says which). Not thread-safe on one Store. */
json_t *table1_build(Store *s, int64_t grid_id, double target, int *rc);

#endif
