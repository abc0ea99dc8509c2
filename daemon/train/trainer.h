/* trainer.h — one training run: epochs, validation, layer statistics, checkpoints, test.
 *
 * train_run does the paper's protocol for one job configuration on one dataset:
 *   1. build the model, initialize it (config's init, fan convention, seed; for lsuv,
 *      once the data is open, LSUV on the first batch of a seeded shuffle of the training
 *      split — rerun on resume too, so the checkpoint replaces identical weights)
 *   2. open the decoded-image cache (built once per dataset and size), set up
 *      preprocessing (pixel_mean: mean image of the training split) and the loaders
 *   3. resume from <ckpt_dir>/latest.ckpt when it exists and is the job's (below), else
 *      record the statistics of epoch 0 (before any update) on the probe batch
 *   4. for each epoch: a fresh shuffle (seeded by seed and epoch), SGD steps, validation;
 *      the epoch row; statistics every `stats_every` epochs and at the last; best.ckpt
 *      when validation accuracy improves; latest.ckpt — in that order, so that what the
 *      callbacks stored is always covered by a later checkpoint or redone identically
 *      (with bn_recalibrate = N > 0, every validation is preceded by recomputing the
 *      BatchNorm moving statistics over N training batches: the mean of the batch means
 *      and the pooled variance, as "precise BN" does; the checkpoints keep them)
 *   5. evaluate the best checkpoint on the test split: accuracy, macro precision, recall,
 *      F1, loss, confusion matrix, per-class figures
 * A stop request (should_stop) is honoured in every phase within about one layer's time:
 *   - training: the step under way is abandoned and undone (BN moving statistics put
 *     back), latest.ckpt is written with the position inside the epoch;
 *   - validation, or the statistics after an epoch: latest.ckpt records the epoch as
 *     trained but unfinished (step = steps); the resumed run validates it again;
 *   - the statistics of epoch 0, the cache build or the mean image: nothing was trained,
 *     nothing is written; the next start begins from scratch;
 *   - the test: latest.ckpt of the last epoch is there; the resumed run tests again;
 * and the run returns TRAIN_STOPPED; a later train_run resumes from exactly there. With
 * the same thread count, a resumed run ends with bit-identical weights to an
 * uninterrupted one: the data order is a function of (seed, epoch), dropout masks of
 * (seed, step), and the checkpoint holds the rest.
 * A non-finite loss fails the run ("diverged at epoch E, step S"); the last good
 * checkpoint stays.
 *
 * Whose checkpoints (checkpoint.h). Every checkpoint carries setup->identity. Before
 * resuming, both files of ckpt_dir are read whole and judged (checkpoint_judge):
 *   - another job's file (another uid; one without identity unless adopt_legacy allows
 *     it) is moved to quarantine_dir with the reason beside it, never adopted;
 *   - the job's own file for another configuration or dataset fails the run with a
 *     message naming both hashes, as does a damaged file (CRC, truncation), so that a
 *     damaged best.ckpt is found before training, not after the last epoch;
 *   - the job's own latest.ckpt is resumed when best.ckpt agrees with it (the best epoch
 *     it records, or the epoch after it: a crash between the two renames) and the
 *     may_resume callback agrees (the store holds the epochs it covers); otherwise both
 *     files are set aside and the job trains from scratch.
 * Starting from scratch, every checkpoint left in ckpt_dir is set aside first: a later
 * resume never meets a file of an earlier, abandoned timeline.
 *
 * Epochs are numbered from 1 in callbacks; statistics of epoch 0 are those at
 * initialization. The probe batch is drawn from the validation split with a fixed seed,
 * so every job on a dataset sees the same probe images.
 *
 * Thread-safety: train_run uses its own net, loaders and threads; several runs may go on
 * at once in one process. Callbacks are called from the calling thread. */
#ifndef INITLAB_TRAIN_TRAINER_H
#define INITLAB_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/scan.h"
#include "nn/models.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/probe.h"

/* Every job on a dataset draws the same probe images: the probe seed is not the job's. */
#define TRAIN_PROBE_SEED 20211019

typedef struct {
    const char *phase;        /* "cache", "train", "validate", "statistics", "test" */
    double phase_done;        /* cache: fraction of images decoded */
    int epoch;                /* epoch being trained, 1-based */
    int epochs;
    int step, steps_per_epoch; /* steps of `epoch` done; 0 where not yet known */
    double loss, accuracy;    /* running means of the current epoch */
    double images_per_sec;    /* over the current epoch */
    double eta_seconds;       /* whole run, from the current speed */
    double best_val_acc;      /* -1 before any validation */
    int best_epoch;
} TrainProgress;

typedef struct {
    int epoch;
    double train_loss, train_acc, val_loss, val_acc;
    double lr;
    double seconds, images_per_sec;
    double data_wait_seconds; /* time the trainer waited for batches */
    int64_t steps;            /* optimizer steps since the start, this epoch's included */
    int bn_layers;            /* batch norms in the net (0: no moving statistics) */
    bool bn_recalibrated;     /* the moving statistics were recomputed before validation */
} TrainEpoch;

/* A point of the intra-epoch training curve: the mean loss and accuracy of the steps since
 * the previous point. About TRAIN_STEP_POINTS points per epoch (every
 * max(1, steps_per_epoch / TRAIN_STEP_POINTS) steps, and at the epoch's last step), so a
 * job stores at most TRAIN_STEP_POINTS + 1 per epoch however long its epochs are. */
#define TRAIN_STEP_POINTS 20
typedef struct {
    int epoch;                /* 1-based */
    int step;                 /* steps done in the epoch, 1..steps_per_epoch */
    int steps_per_epoch;
    int64_t global_step;      /* steps since the start of training */
    double loss, accuracy;    /* means over the steps since the previous point */
} TrainStep;

/* Keras' BatchNorm momentum, and how much of the initial moving statistics (mean 0,
 * variance 1) may remain for them to count as settled: after s steps a fraction
 * momentum^s of the initial values is left, so they settle after
 * train_bn_settle_steps(0.99, 0.01) = 459 steps. Until then inference mode (validation,
 * test, the probe's inference rows) normalizes with statistics that still lag: on a small
 * dataset validation can stay near chance while training learns. bn_recalibrate avoids
 * that. */
#define TRAIN_BN_MOMENTUM 0.99
#define TRAIN_BN_SETTLED 0.01
/* The smallest s with momentum^s <= left (0 < momentum < 1, 0 < left < 1). Can't fail. */
int train_bn_settle_steps(double momentum, double left);

typedef struct {
    int epoch;                /* the checkpoint evaluated (best validation accuracy) */
    double accuracy, precision_macro, recall_macro, f1_macro, loss;
    int classes;
    const int64_t *confusion; /* (classes, classes): [true][predicted] */
    const double *per_class;  /* (classes, 4): precision, recall, F1, support */
} TrainResults;

/* Every callback may be NULL. Those returning int abort the run with TRAIN_FAILED when
 * they return non-zero (the store could not write, say). */
typedef struct {
    void *user;
    void (*progress)(void *user, const TrainProgress *p); /* about twice a second */
    /* Resuming after epoch `epoch`, `step` steps into the next: whatever was recorded
     * after that point is stale. */
    int (*resumed)(void *user, int epoch, int step);
    /* Starting from scratch: whatever an earlier run of the job recorded is stale (its
     * checkpoints, if any, were set aside). */
    int (*from_scratch)(void *user);
    /* May the run resume from its own checkpoint of `epoch` (step `step` into the next)?
     * 0: yes; 1: no, start from scratch (why says why, n bytes); -1: fail the run. */
    int (*may_resume)(void *user, int epoch, int step, char *why, size_t n);
    int (*epoch_done)(void *user, const TrainEpoch *e);
    int (*step_point)(void *user, const TrainStep *s);      /* intra-epoch curve */
    int (*stats)(void *user, int epoch, const ProbeRow *rows, int n);
    /* A checkpoint is in place (kind "latest" or "best"; crc: the one in its header). */
    int (*checkpoint)(void *user, const char *kind, int epoch, const char *path,
                      double val_acc, uint32_t crc);
    int (*results)(void *user, const TrainResults *r);
    /* Polled between layers of every pass (net_set_stop), between evaluation batches,
     * statistics rows and 64 images of the mean image, and by the cache build: a stop is
     * honoured within about one layer's time in every phase. */
    bool (*should_stop)(void *user);
} TrainCallbacks;

typedef struct {
    const JobConfig *cfg;
    DatasetIndex *index;      /* scanned, split assigned; files failing to decode get
                                 excluded by the cache */
    const char *cache_dir;    /* decoded-image caches */
    const char *ckpt_dir;     /* this job's checkpoints (created when missing) */
    const char *quarantine_dir; /* where checkpoints that are not the job's are moved */
    const CheckpointIdentity *identity; /* the job and attempt: stamped on every checkpoint */
    bool adopt_legacy;        /* the job predates identities (checkpoint.h) */
    int loader_threads;       /* <= 0: 2 */
} TrainSetup;

typedef enum { TRAIN_DONE = 0, TRAIN_STOPPED = 1, TRAIN_FAILED = -1 } TrainOutcome;

/* The model configuration a job configuration asks for, on a dataset of `classes`
 * classes; the batch capacity covers both the batch and the probe batch. Returns 0, or -1
 * with a message for an unknown head or activation. */
int train_model_config(const JobConfig *cfg, int classes, ModelConfig *mc, char *err,
                       size_t errlen);

/* Runs (or resumes) the job; see above. On TRAIN_FAILED err holds the reason. */
TrainOutcome train_run(const TrainSetup *setup, const TrainCallbacks *cb, char *err,
                       size_t errlen);

#endif
