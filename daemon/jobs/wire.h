/* wire.h — the JSON forms of the worker protocol: what a remote `initlab worker` sends the
 * daemon (epochs, layer statistics, progress, test results), in both directions.
 *
 * The daemon stores what a worker sends exactly as it stores a local job's records, so the
 * forms must carry every bit: a real goes out in its shortest round-trip decimal
 * (util/jsonout.h json_text) and comes back as the same double; a value that is not finite
 * goes out as the string "nan", "inf" or "-inf" (JSON has no such numbers) and comes back
 * as it was. NaN reads back as NAN (the store's "absent").
 *
 * Builders return a new reference, or NULL when out of memory. Parsers return 0, or -1
 * with the offending member named in err ("rows[3].hist: ..."); they never keep a
 * reference to their argument. All functions are thread-safe. */
#ifndef INITLAB_JOBS_WIRE_H
#define INITLAB_JOBS_WIRE_H

#include <jansson.h>
#include <stddef.h>

#include "store/store.h"

/* A double: a JSON real (or integer), or "nan", "inf", "-inf" for non-finite values. */
json_t *wire_number(double x);
/* Reads a wire number (a real, an integer or one of the three strings); -1 otherwise. */
int wire_number_get(const json_t *v, double *out);

/* {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
 *  "images_per_sec"} */
json_t *wire_epoch(const StoreEpoch *e);
int wire_epoch_parse(const json_t *v, StoreEpoch *e, char *err, size_t errlen);

/* One layer statistic: every StoreLayerStat field by its name, "hist": [64 counts]. */
json_t *wire_stat(const StoreLayerStat *s);
int wire_stat_parse(const json_t *v, StoreLayerStat *s, char *err, size_t errlen);

/* {"epoch", "step", "steps_per_epoch", "images_per_sec", "eta_seconds", "best_val_acc",
 *  "best_epoch"} */
json_t *wire_progress(const StoreJobProgress *p);
/* A point of the intra-epoch curve: {global_step, epoch, step, steps_per_epoch, loss,
 * accuracy}. */
json_t *wire_step(const StoreStep *p);
int wire_step_parse(const json_t *v, StoreStep *p, char *err, size_t errlen);
int wire_progress_parse(const json_t *v, StoreJobProgress *p, char *err, size_t errlen);

/* {"epoch", "accuracy", "precision_macro", "recall_macro", "f1_macro", "loss",
 *  "confusion": [[...]], "per_class": [...]}; r->confusion_json and r->per_class_json
 * are JSON texts. The parser fills r's heap texts (store_result_deinit). */
json_t *wire_results(const StoreResult *r);
int wire_results_parse(const json_t *v, StoreResult *r, char *err, size_t errlen);

/* The digest of a dataset's files as a worker checks it: FNV-1a 64 over each file's
 * relative path (its text form, data/names.h), a NUL, its size in decimal and a NUL, in
 * the dataset's file order; 16 hex digits and a NUL into out. Can't fail. */
void wire_files_digest_begin(uint64_t *h);
void wire_files_digest_add(uint64_t *h, const char *relpath, int64_t size);
void wire_files_digest_end(uint64_t h, char out[17]);

#endif
