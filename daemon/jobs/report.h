/* report.h — the JSON forms of stored results, shared by the HTTP API and the CLI.
 *
 * Each entity has one form, built here and nowhere else: an epoch (GET /jobs/{id}/epochs,
 * its CSV, the "epoch" server-sent event, `initlab train --json`), a job (the job routes,
 * the "job" event, `initlab train --json`), a dataset, a layer statistic. Reals that are
 * NaN or infinite (a diverging run's losses) are written as null, never dropped: jansson
 * refuses non-finite reals, so no other code path may hand it one.
 *
 * A layer statistic is
 *   {"layer_index", "layer", "type", "mode", "quantity", "n", "mean", "std", "min", "max",
 *    "q1", "median", "q3", "whisker_lo", "whisker_hi", "p1", "p99", "zero_frac",
 *    "nonfinite", "predicted_var", "dead_units", "saturation", "flags": ["dead", ...],
 *    "mean_abs", "theory_var", "theory_std" (its root), "theory_gap" (log10 of std over
 *    theory_std: decades between measurement and prediction), "fan_sum", "init_iters",
 *    "units" (channels looked at for dead units) and "dead_frac" (dead_units / units),
 *    "histogram": {"lo", "hi", "counts": [64 counts]}   (when asked for)}
 * with null for values that are absent or not finite. All functions return a new
 * reference, or NULL when out of memory. */
#ifndef INITLAB_JOBS_REPORT_H
#define INITLAB_JOBS_REPORT_H

#include <jansson.h>
#include <stdbool.h>

#include "nn/init.h"
#include "nn/models.h"
#include "store/store.h"
#include "train/probe.h"
#include "train/trainer.h"

/* The store row of the progress the trainer reports (NAN for the values not known yet). Can't
 * fail. */
void report_train_progress_to_store(const TrainProgress *p, StoreJobProgress *row);
/* A number, or null when x is NaN or infinite. */
json_t *report_number(double x);
json_t *report_layer_stat(const StoreLayerStat *s, bool histogram);
/* An epoch: {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
 * "images_per_sec"}, null for the values that are not finite. */
json_t *report_epoch(const StoreEpoch *e);
/* The "epoch" server-sent event: report_epoch(e) with "job_id" added. */
json_t *report_epoch_event(int64_t job_id, const StoreEpoch *e);
/* The store row of an epoch the trainer reports (the fields report_epoch shows). Can't fail. */
void report_train_epoch_to_store(const TrainEpoch *e, StoreEpoch *row);
/* A time in unix seconds, or null for 0 ("not yet"). */
json_t *report_time(double t);
/* A job as the API shows it: id, grid_id, status, priority, dataset, model, initializer,
 * seed, epochs, created_at, started_at, finished_at, error, attempts, waiting_for,
 * progress {...}, config {...}, name, tags [...], note, disk_bytes (null when not
 * measured: jobs/storage.h job_fill_disk) and where {host, worker, slurm_job_id,
 * lease_expires_at} (where the current or last attempt runs; null members when unknown).
 * phase (may be NULL) is the live phase of a running job. */
json_t *report_job(const StoreJob *j, const char *phase);
/* A grid: id, created_at, config {...} (its request), n_jobs, n_seeds (seeds its
 * configuration lists: the "n" of "k of n seeds done"), status_counts {status: n}, name,
 * tags, note. */
json_t *report_grid(const StoreGrid *g);
/* A point of the intra-epoch curve: global_step, epoch, step, steps_per_epoch, loss,
 * accuracy; the "step" event adds job_id. */
json_t *report_step(const StoreStep *p);
json_t *report_step_event(int64_t job_id, const StoreStep *p);
/* A job's test results: job_id, epoch, accuracy, precision_macro, recall_macro, f1_macro,
 * loss, class_names (borrowed here; [] when NULL), confusion [[...]], per_class [{class,
 * name, precision, recall, f1, support}]. */
json_t *report_results(const StoreResult *res, const json_t *class_names);
/* A dataset: id, name, path, split {train, val, test}, seed, status, error, classes [...],
 * n_files, n_split {train, val, test}, n_skipped, created_at. */
json_t *report_dataset(const StoreDataset *d);
/* A model's layer table (as `initlab summary --json` prints it): model, size, channels,
 * classes, head, init, fan_convention, seed, total_params, trainable_params,
 * non_trainable_params, n_layers and layers [{name, type, output_shape, params,
 * trainable_params, non_trainable_params, fan_in, fan_out, init_limit | init_std,
 * init_variance}]. Output shapes follow Keras: (C) after a layer that flattens. */
json_t *report_model_summary(const Net *net, const ModelConfig *cfg, Initializer init,
                             FanConvention conv, unsigned long long seed);
/* The same for any initializer: "init" is its name, with "init_gain" (and for
 * variance_scaling "init_scale", "init_mode", "init_distribution") beside it; a kernel's
 * init_limit or init_std is left out where the initializer has none (orthogonal, lsuv:
 * init_variance is gain² / max(rows, cols); lsuv then rescales on data). */
json_t *report_model_summary_spec(const Net *net, const ModelConfig *cfg,
                                  const InitSpec *spec, FanConvention conv,
                                  unsigned long long seed);
/* The store row of a probe row (the same conversion the trainer's results go through). */
void report_probe_to_store(const ProbeRow *p, StoreLayerStat *s);

#endif
