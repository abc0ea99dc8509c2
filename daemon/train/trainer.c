/* trainer.c — the epoch loop: steps, validation, statistics, checkpoints, test (trainer.h). */
#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "data/cache.h"
#include "data/loader.h"
#include "data/names.h"
#include "data/preprocess.h"
#include "data/split.h"
#include "nn/init.h"
#include "nn/models.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "train/checkpoint.h"
#include "train/lsuv.h"
#include "train/metrics.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/rng.h"
#include "util/sysmem.h"

/* Seed streams derived from the job seed (rng_derive), one per use. */
enum { STREAM_SHUFFLE = 1000000, STREAM_DROPOUT = 2000000, STREAM_LSUV = 3000000,
       STREAM_RECALIBRATE = 4000000 };

int train_bn_settle_steps(double momentum, double left)
{
    return (int)ceil(log(left) / log(momentum) - 1e-9);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int train_model_config(const JobConfig *cfg, int classes, ModelConfig *mc, char *err,
                       size_t errlen)
{
    *mc = model_config_default(cfg->model);
    mc->size = cfg->image_size;
    mc->classes = classes;
    mc->alpha = cfg->alpha;
    mc->depth_multiplier = cfg->depth_multiplier;
    mc->dropout = cfg->dropout;
    mc->batchnorm = cfg->batchnorm;
    if (strcmp(cfg->model, "plain") == 0 || strcmp(cfg->model, "mlp") == 0)
        mc->depth = cfg->depth;
    if (strcmp(cfg->model, "mobilenet") != 0)
        mc->width = cfg->width;
    mc->batch = cfg->batch_size > cfg->probe_size ? cfg->batch_size : cfg->probe_size;
    if (model_head_parse(cfg->head, &mc->head) < 0 ||
        model_activation_parse(cfg->activation, &mc->activation) < 0) {
        snprintf(err, errlen, "unknown head \"%s\" or activation \"%s\"", cfg->head,
                 cfg->activation);
        return -1;
    }
    return 0;
}

/* Everything one run owns; released by run_free. */
typedef struct {
    const TrainSetup *setup;
    const JobConfig *cfg;
    const TrainCallbacks *cb;
    Net *net;
    DataCache *cache;
    DataPreprocess pre;
    DataLoader *train_loader, *eval_loader;
    int *train_idx, *val_idx, *test_idx;
    int n_train, n_val, n_test;
    int probe_idx[512];
    int n_probe;
    float *probe_x;
    int *probe_y;
    float *class_weights;   /* (K) or NULL */
    int classes;
    Initializer init;
    InitSpec spec;
    double *kernel_var;     /* (n_params) the variance each kernel was drawn with */
    int *kernel_iters;      /* (n_params) LSUV rescalings, or NULL */
    float *batch_x;         /* (batch, H, W, C) LSUV and recalibration batches */
    int *batch_y;
    int bn_layers;
    FanConvention fans;
    SgdConfig sgd;
    ProbeResult probe;
    CheckpointState state;
    float *bn_saved;        /* the BN moving statistics before the current training step,
                               to undo a step a stop request cut short */
    size_t bn_floats;
    int64_t epoch_images;   /* images of the last epoch trained, resumed parts included */
    double window_loss;     /* sums of the steps since the last step point */
    int64_t window_correct, window_seen;
    char *config_text;      /* saved in every checkpoint, for export-weights */
    char latest_path[4096], best_path[4096];
    double last_progress;
    int steps_per_epoch;    /* of the training split, once the first epoch started */
    char *err;
    size_t errlen;
} Run;

static int fail(Run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(Run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void report(Run *r, TrainProgress *p, bool force)
{
    if (!r->cb->progress)
        return;
    double t = now();
    if (!force && t - r->last_progress < 0.5)
        return;
    r->last_progress = t;
    p->epochs = r->cfg->epochs;
    if (p->steps_per_epoch == 0)
        p->steps_per_epoch = r->steps_per_epoch; /* every phase says it once it is known */
    p->best_val_acc = r->state.best_val_acc;
    p->best_epoch = r->state.best_epoch;
    r->cb->progress(r->cb->user, p);
}

/* The net's stop check (net_set_stop): the job's stop request, asked between layers. */
static bool stop_requested(void *user)
{
    Run *r = user;
    return r->cb->should_stop && r->cb->should_stop(r->cb->user);
}

static int cache_progress(void *user, long done, long total)
{
    Run *r = user;
    TrainProgress p = {.phase = "cache", .phase_done = total ? (double)done / total : 0};
    report(r, &p, false);
    return r->cb->should_stop && r->cb->should_stop(r->cb->user) ? 1 : 0;
}

static int set_class_weights(Run *r)
{
    const JobConfig *cfg = r->cfg;
    if (strcmp(cfg->class_weight, "none") == 0)
        return 0;
    r->class_weights = calloc((size_t)r->classes, sizeof(float));
    if (!r->class_weights)
        return fail(r, "out of memory");
    if (strcmp(cfg->class_weight, "list") == 0) {
        if (cfg->n_class_weights != r->classes)
            return fail(r, "class_weight has %d weights but the dataset has %d classes",
                        cfg->n_class_weights, r->classes);
        for (int c = 0; c < r->classes; c++)
            r->class_weights[c] = (float)cfg->class_weights[c];
        return 0;
    }
    /* "balanced", as scikit-learn and Keras users compute it: n / (K · n_c). */
    for (int c = 0; c < r->classes; c++) {
        int nc = data_index_count(r->setup->index, c, DATA_SPLIT_TRAIN);
        r->class_weights[c] = nc ? (float)r->n_train / ((float)r->classes * nc) : 0.0f;
    }
    return 0;
}

/* Opens the cache (building it if needed), the preprocessing, the loaders and the probe
 * batch. Returns 0, -1 on failure, -2 when a stop request interrupted the cache build. */
static int open_data(Run *r)
{
    const JobConfig *cfg = r->cfg;
    DatasetIndex *index = r->setup->index;
    char err[512];
    DataCacheConfig cc = {.dir = r->setup->cache_dir, .size = cfg->image_size,
                          .resize = strcmp(cfg->crop, "center") == 0 ? DATA_RESIZE_CROP
                                                                     : DATA_RESIZE_SQUASH,
                          .threads = cfg->threads > 1 ? cfg->threads : 2,
                          .progress = cache_progress, .user = r};
    int skipped_before = index->n_skipped;
    int rc = data_cache_open(index, &cc, &r->cache, err, sizeof err);
    if (rc == -2) {
        fail(r, "stopped while building the image cache");
        return -2;
    }
    if (rc < 0)
        return fail(r, "image cache: %s", err);
    /* Files that passed the scan but did not decode (changed since): never trained on,
     * and said so. */
    for (int i = skipped_before; i < index->n_skipped; i++) {
        char name[512];
        log_warn("train", "%s: left out of training: %s",
                 data_name_text_buf(index->skipped[i].path, name, sizeof name),
                 index->skipped[i].reason);
    }
    if (data_split_indices(index, DATA_SPLIT_TRAIN, &r->train_idx, &r->n_train) < 0 ||
        data_split_indices(index, DATA_SPLIT_VAL, &r->val_idx, &r->n_val) < 0 ||
        data_split_indices(index, DATA_SPLIT_TEST, &r->test_idx, &r->n_test) < 0)
        return fail(r, "out of memory");
    if (r->n_train == 0 || r->n_val == 0)
        return fail(r, "the dataset has %d training and %d validation images; both must be "
                    "non-empty (check the split)", r->n_train, r->n_val);

    DataPreMode mode;
    if (data_pre_parse(cfg->preprocess, &mode) < 0)
        return fail(r, "unknown preprocessing \"%s\"", cfg->preprocess);
    float *mean = NULL;
    if (mode == DATA_PRE_PIXEL_MEAN) {
        size_t n = (size_t)cfg->image_size * cfg->image_size * 3;
        mean = malloc(n * sizeof(float));
        if (!mean)
            return fail(r, "out of memory");
        rc = data_cache_mean_image_cancellable(r->cache, r->train_idx, r->n_train, mean,
                                               stop_requested, r, err, sizeof err);
        if (rc == -2) {
            free(mean);
            fail(r, "stopped while computing the mean image");
            return -2;
        }
        if (rc < 0) {
            free(mean);
            return fail(r, "mean image: %s", err);
        }
    }
    rc = data_pre_init(&r->pre, mode, cfg->image_size, mean);
    free(mean);
    if (rc < 0)
        return fail(r, "out of memory");

    int threads = r->setup->loader_threads > 0 ? r->setup->loader_threads : 2;
    r->train_loader = data_loader_create(&(DataLoaderConfig){
        .cache = r->cache, .pre = &r->pre, .batch_size = cfg->batch_size,
        .threads = threads, .flip = cfg->flip});
    r->eval_loader = data_loader_create(&(DataLoaderConfig){
        .cache = r->cache, .pre = &r->pre, .batch_size = cfg->batch_size,
        .threads = threads});
    if (!r->train_loader || !r->eval_loader)
        return fail(r, "could not start the data loader threads");

    r->n_probe = data_split_probe(index, cfg->probe_size, TRAIN_PROBE_SEED, r->probe_idx);
    if (r->n_probe <= 0)
        return fail(r, "no validation images for the probe batch");
    size_t img = (size_t)cfg->image_size * cfg->image_size * 3;
    r->probe_x = malloc(sizeof(float) * img * (size_t)r->n_probe);
    r->probe_y = malloc(sizeof(int) * (size_t)r->n_probe);
    if (!r->probe_x || !r->probe_y)
        return fail(r, "out of memory");
    data_read_batch(r->cache, &r->pre, r->probe_idx, r->n_probe, r->probe_x, r->probe_y);
    return set_class_weights(r);
}

static int build_net(Run *r)
{
    const JobConfig *cfg = r->cfg;
    ModelConfig mc;
    char err[512];
    if (train_model_config(cfg, r->classes, &mc, err, sizeof err) < 0)
        return fail(r, "%s", err);
    r->net = model_build(&mc, cfg->threads, err, sizeof err);
    if (!r->net)
        return fail(r, "model: %s", err);
    /* The arena is reserved, not yet touched: refuse here rather than be killed for memory
     * halfway through the first step (and take the daemon with us). */
    int64_t available = sysmem_available();
    double need = (double)net_memory_bytes(r->net);
    if (available > 0 && need > 0.9 * (double)available)
        return fail(r, "the model needs %.1f GB for batch %d at %d px but only %.1f GB of "
                    "memory is available; lower batch_size or image_size",
                    need / 1e9, net_batch_capacity(r->net), cfg->image_size,
                    (double)available / 1e9);
    if (init_parse(cfg->init, &r->init) < 0 || config_init_spec(cfg, &r->spec) < 0 ||
        fan_convention_parse(cfg->fan_convention, &r->fans) < 0)
        return fail(r, "unknown initializer \"%s\" or fan convention \"%s\"", cfg->init,
                    cfg->fan_convention);
    if (init_net_spec(r->net, &r->spec, r->fans, (uint64_t)cfg->seed) < 0)
        return fail(r, "initializer %s: out of memory", cfg->init);
    net_set_stop(r->net, stop_requested, r);
    int P = net_n_params(r->net);
    r->kernel_var = malloc(sizeof(double) * (size_t)P);
    if (!r->kernel_var)
        return fail(r, "out of memory");
    for (int i = 0; i < P; i++) {
        r->kernel_var[i] = init_spec_variance(&r->spec, net_param(r->net, i), r->fans);
        r->bn_floats += net_param(r->net, i)->trainable ? 0 : net_param(r->net, i)->size;
    }
    if (r->bn_floats && !(r->bn_saved = malloc(sizeof(float) * r->bn_floats)))
        return fail(r, "out of memory");
    for (int i = 0; i < net_n_layers(r->net); i++)
        r->bn_layers += net_layer(r->net, i)->type == LAYER_BATCHNORM;
    r->sgd = (SgdConfig){.momentum = (float)cfg->momentum, .nesterov = cfg->nesterov,
                         .weight_decay = (float)cfg->weight_decay,
                         .decay_all = cfg->decay_all};
    return 0;
}

/* A seeded batch of the training split (the first batch_size images of a shuffle drawn
 * from stream) into r->batch_x / batch_y; returns its size, or -1. */
static int training_batch(Run *r, uint64_t stream, int offset_batches)
{
    const JobConfig *cfg = r->cfg;
    size_t img = (size_t)cfg->image_size * cfg->image_size * 3;
    if (!r->batch_x) {
        r->batch_x = malloc(sizeof(float) * img * (size_t)cfg->batch_size);
        r->batch_y = malloc(sizeof(int) * (size_t)cfg->batch_size);
        if (!r->batch_x || !r->batch_y)
            return fail(r, "out of memory");
    }
    int *order = malloc(sizeof(int) * (size_t)r->n_train);
    if (!order)
        return fail(r, "out of memory");
    memcpy(order, r->train_idx, sizeof(int) * (size_t)r->n_train);
    Rng rng;
    rng_seed(&rng, rng_derive((uint64_t)cfg->seed, stream));
    rng_shuffle_int(&rng, order, r->n_train);
    int start = offset_batches * cfg->batch_size;
    int n = start >= r->n_train ? 0 : r->n_train - start;
    if (n > cfg->batch_size)
        n = cfg->batch_size;
    if (n > 0)
        data_read_batch(r->cache, &r->pre, order + start, n, r->batch_x, r->batch_y);
    free(order);
    return n;
}

/* LSUV (train/lsuv.h) on the first batch of a seeded shuffle of the training split; the
 * kernels' variances become the ones LSUV left. */
static int run_lsuv(Run *r)
{
    const JobConfig *cfg = r->cfg;
    int n = training_batch(r, STREAM_LSUV, 0);
    if (n < 0)
        return -1;
    LsuvConfig lc = {.tol = cfg->lsuv_tol, .max_iter = cfg->lsuv_max_iter};
    LsuvReport rep;
    /* A few forward passes of one batch: a stop request waits for them to end. */
    net_set_stop(r->net, NULL, NULL);
    int lrc = lsuv_run(r->net, r->batch_x, n, &lc, &rep);
    net_set_stop(r->net, stop_requested, r);
    if (lrc < 0)
        return fail(r, "LSUV: out of memory");
    int P = net_n_params(r->net);
    for (int i = 0; i < P; i++) {
        Param *p = net_param(r->net, i);
        if (rep.iterations[i] < 0)
            continue;
        if (r->spec.gain != 1.0)
            for (size_t k = 0; k < p->size; k++)
                p->data[k] = (float)(r->spec.gain * p->data[k]);
        double sq = 0;
        for (size_t k = 0; k < p->size; k++)
            sq += (double)p->data[k] * p->data[k];
        r->kernel_var[i] = sq / (double)p->size;
    }
    r->kernel_iters = rep.iterations;
    rep.iterations = NULL;
    log_info("train", "LSUV on %d training images: %d layers, %d rescalings in %d forward "
             "passes, %d layer(s) not within tolerance %g of unit variance", n, rep.layers,
             rep.total, rep.passes, rep.unconverged, cfg->lsuv_tol);
    lsuv_report_deinit(&rep);
    return 0;
}

/* bn_recalibrate: the moving statistics of every batch norm become the mean of the batch
 * means and the pooled variance over N training batches (a seeded shuffle per epoch), as
 * a train step computes them; the images are not flipped. Returns 0, 1 when a stop request
 * cut it short (the moving statistics are left as they were), -1 on failure. */
static int recalibrate_bn(Run *r, int epoch)
{
    const JobConfig *cfg = r->cfg;
    if (cfg->bn_recalibrate <= 0 || r->bn_layers == 0)
        return 0;
    int L = net_n_layers(r->net);
    size_t channels = 0;
    for (int i = 0; i < L; i++)
        if (net_layer(r->net, i)->type == LAYER_BATCHNORM)
            channels += (size_t)net_layer(r->net, i)->c;
    double *sum = calloc(2 * channels, sizeof(double));
    if (!sum)
        return fail(r, "out of memory");
    int batches = 0;
    for (int b = 0; b < cfg->bn_recalibrate; b++) {
        int n = training_batch(r, STREAM_RECALIBRATE + (uint64_t)epoch, b);
        if (n < 0) {
            free(sum);
            return -1;
        }
        if (n == 0)
            break;
        if (net_forward(r->net, r->batch_x, n, NET_TRAIN_PROBE) == NET_STOPPED) {
            free(sum); /* a stop request: the moving statistics are left as they were */
            return 1;
        }
        size_t at = 0;
        for (int i = 0; i < L; i++) {
            const Layer *l = net_layer(r->net, i);
            const float *mean, *var;
            if (net_bn_batch_stats(r->net, i, &mean, &var) < 0)
                continue;
            for (int c = 0; c < l->c; c++) {
                sum[2 * (at + c)] += mean[c];
                sum[2 * (at + c) + 1] += (double)var[c] + (double)mean[c] * mean[c];
            }
            at += (size_t)l->c;
        }
        batches++;
    }
    size_t at = 0;
    for (int i = 0; batches && i < L; i++) {
        const Layer *l = net_layer(r->net, i);
        if (l->type != LAYER_BATCHNORM)
            continue;
        float *mm = net_param(r->net, l->param_first + 2)->data;
        float *mv = net_param(r->net, l->param_first + 3)->data;
        for (int c = 0; c < l->c; c++) {
            double m = sum[2 * (at + c)] / batches, sq = sum[2 * (at + c) + 1] / batches;
            mm[c] = (float)m;
            mv[c] = (float)(sq - m * m > 0 ? sq - m * m : 0);
        }
        at += (size_t)l->c;
    }
    free(sum);
    return 0;
}

/* Records the statistics of epoch `epoch`. Returns 0, 1 when a stop request cut the probe
 * short (nothing is recorded), -1 on failure. */
static int record_stats(Run *r, int epoch)
{
    if (!r->cb->stats)
        return 0;
    /* After epoch e its steps are all done: step = steps_per_epoch keeps the bar at e/epochs. */
    TrainProgress p = {.phase = "statistics", .epoch = epoch,
                       .step = epoch > 0 ? r->steps_per_epoch : 0};
    report(r, &p, true);
    probe_result_clear(&r->probe);
    ProbeOptions po = {.modes = PROBE_MODES_BOTH, .spec = &r->spec, .conv = r->fans,
                       .class_weights = r->class_weights, .kernel_var = r->kernel_var,
                       .kernel_iters = epoch == 0 ? r->kernel_iters : NULL,
                       .theory = epoch == 0};
    int rc = probe_run_opts(r->net, r->probe_x, r->probe_y, r->n_probe, &po, &r->probe);
    if (rc == NET_STOPPED)
        return 1;
    if (rc < 0)
        return fail(r, "layer statistics: out of memory");
    if (r->cb->stats(r->cb->user, epoch, r->probe.rows, r->probe.n) != 0)
        return fail(r, "could not store the statistics of epoch %d", epoch);
    return 0;
}

/* The class with the highest probability in row (K); the first on ties. */
static int predicted_class(const float *row, int K)
{
    int best = 0;
    for (int c = 1; c < K; c++)
        if (row[c] > row[best])
            best = c;
    return best;
}

/* Loss, accuracy and optionally the confusion matrix of a split, in inference mode.
 * Returns 0, 1 when a stop request cut it short, -1 on failure. */
static int evaluate(Run *r, const int *idx, int n, double *loss, double *acc,
                    int64_t *confusion)
{
    if (data_loader_start(r->eval_loader, idx, n, 0, false) < 0)
        return fail(r, "out of memory");
    DataBatch b;
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    while (data_loader_next(r->eval_loader, &b) == 1) {
        int rc = net_forward(r->net, b.images, b.n, NET_INFERENCE);
        if (rc == NET_STOPPED) {
            data_loader_stop(r->eval_loader);
            return 1;
        }
        if (rc < 0)
            return fail(r, "evaluation batch of %d does not fit the net", b.n);
        loss_sum += (double)net_loss(r->net, b.labels, NULL) * b.n;
        const float *probs = net_probs(r->net);
        for (int i = 0; i < b.n; i++) {
            int best = predicted_class(probs + (size_t)i * r->classes, r->classes);
            correct += best == b.labels[i];
            if (confusion)
                confusion[(size_t)b.labels[i] * r->classes + best]++;
        }
        seen += b.n;
    }
    *loss = seen ? loss_sum / seen : NAN;
    *acc = seen ? (double)correct / seen : NAN;
    return 0;
}

static int save_checkpoint(Run *r, const char *kind, const char *path, int epoch,
                           double val_acc)
{
    char err[512];
    uint32_t crc;
    r->state.config_json = r->config_text;
    if (checkpoint_save(path, r->net, &r->state, &crc, err, sizeof err) < 0)
        return fail(r, "checkpoint: %s", err);
    if (r->cb->checkpoint &&
        r->cb->checkpoint(r->cb->user, kind, epoch, path, val_acc, crc) != 0)
        return fail(r, "could not record the %s checkpoint", kind);
    return 0;
}

/* Copies the BN moving statistics into r->bn_saved (save) or back (!save). */
static void bn_state(Run *r, bool save)
{
    size_t off = 0;
    for (int i = 0; i < net_n_params(r->net); i++) {
        Param *p = net_param(r->net, i);
        if (p->trainable)
            continue;
        if (save)
            memcpy(r->bn_saved + off, p->data, sizeof(float) * p->size);
        else
            memcpy(p->data, r->bn_saved + off, sizeof(float) * p->size);
        off += p->size;
    }
}

/* Checkpoints a stop at step `step` of epoch e (0-based; step == steps: trained, not yet
 * validated), with the epoch's time so far, and returns 1. */
static int stop_at(Run *r, int e, int step, double seconds, int64_t images)
{
    r->state.step = step;
    r->state.epoch_seconds += seconds;
    r->state.epoch_images += images;
    if (save_checkpoint(r, "latest", r->latest_path, e, NAN) < 0)
        return -1;
    return 1;
}

/* Points of the intra-epoch curve: about TRAIN_STEP_POINTS per epoch, each the mean loss
 * and accuracy of the steps since the previous one. */
static int step_point(Run *r, int e, int step, int steps)
{
    int every = steps / TRAIN_STEP_POINTS > 1 ? steps / TRAIN_STEP_POINTS : 1;
    if ((step + 1) % every != 0 && step + 1 != steps)
        return 0;
    TrainStep p = {.epoch = e + 1, .step = step + 1, .steps_per_epoch = steps,
                   .global_step = r->state.global_step,
                   .loss = r->window_seen ? r->window_loss / r->window_seen : NAN,
                   .accuracy = r->window_seen ? (double)r->window_correct / r->window_seen
                                              : NAN};
    r->window_loss = 0;
    r->window_correct = r->window_seen = 0;
    if (r->cb->step_point && r->cb->step_point(r->cb->user, &p) != 0)
        return fail(r, "could not store the training curve at step %lld",
                    (long long)p.global_step);
    return 0;
}

/* Trains epoch e (0-based); returns 0, 1 when stopped, -1 on failure. A stop request is
 * honoured between layers (net_set_stop): a training step cut short is undone (the BN
 * moving statistics it moved are put back; the weights and velocities are only changed
 * by sgd_step, after the backward), so the checkpoint holds the state before it and a
 * resumed run redoes it identically. A stop during validation checkpoints the trained
 * epoch with step = steps, and the resumed run validates it. */
static int train_epoch(Run *r, int e, TrainEpoch *row)
{
    const JobConfig *cfg = r->cfg;
    double lr = config_lr_at(cfg, e);
    if (data_loader_start(r->train_loader, r->train_idx, r->n_train,
                          rng_derive((uint64_t)cfg->seed, STREAM_SHUFFLE + (uint64_t)e), true) < 0)
        return fail(r, "out of memory");
    int steps = data_loader_batches(r->train_loader);
    r->steps_per_epoch = steps;
    DataBatch b;
    /* Resuming inside the epoch: the order is the same, so skip the batches done. */
    for (int s = 0; s < r->state.step; s++)
        if (data_loader_next(r->train_loader, &b) != 1)
            return fail(r, "checkpoint step %d is past the epoch's %d steps", r->state.step,
                        steps);
    double t0 = now();
    int64_t images_this_run = 0;
    r->window_loss = 0;
    r->window_correct = r->window_seen = 0;
    for (int step = r->state.step; data_loader_next(r->train_loader, &b) == 1; step++) {
        if (stop_requested(r)) {
            data_loader_stop(r->train_loader);
            return stop_at(r, e, step, now() - t0, images_this_run);
        }
        net_seed_dropout(r->net, rng_derive((uint64_t)cfg->seed,
                                            STREAM_DROPOUT + (uint64_t)r->state.global_step));
        if (r->bn_saved)
            bn_state(r, true);
        int rc = net_forward(r->net, b.images, b.n, NET_TRAIN);
        float loss = rc == 0 ? net_loss(r->net, b.labels, r->class_weights) : NAN;
        if (rc == 0 && !isfinite(loss))
            return fail(r, "diverged at epoch %d, step %d: the loss is %g", e + 1, step + 1,
                        (double)loss);
        if (rc == 0) {
            net_zero_grad(r->net);
            rc = net_backward(r->net);
        }
        if (rc == NET_STOPPED) {
            if (r->bn_saved)
                bn_state(r, false);
            data_loader_stop(r->train_loader);
            return stop_at(r, e, step, now() - t0, images_this_run);
        }
        if (rc < 0)
            return fail(r, "training batch of %d does not fit the net", b.n);
        const float *probs = net_probs(r->net);
        int64_t correct = 0;
        for (int i = 0; i < b.n; i++)
            correct += predicted_class(probs + (size_t)i * r->classes, r->classes) == b.labels[i];
        r->state.correct += correct;
        r->state.loss_sum += (double)loss * b.n;
        r->state.seen += b.n;
        r->window_correct += correct;
        r->window_loss += (double)loss * b.n;
        r->window_seen += b.n;
        sgd_step(r->net, &r->sgd, (float)lr);
        r->state.global_step++;
        images_this_run += b.n;
        if (step_point(r, e, step, steps) < 0)
            return -1;

        double dt = now() - t0;
        double ips = dt > 0 ? images_this_run / dt : 0;
        double left = (double)(steps - step - 1) * cfg->batch_size +
                      (double)(cfg->epochs - e - 1) * r->n_train;
        TrainProgress p = {.phase = "train", .epoch = e + 1, .step = step + 1,
                           .steps_per_epoch = steps,
                           .loss = r->state.loss_sum / r->state.seen,
                           .accuracy = (double)r->state.correct / r->state.seen,
                           .images_per_sec = ips, .eta_seconds = ips > 0 ? left / ips : NAN};
        report(r, &p, false);
    }
    double seconds = r->state.epoch_seconds + (now() - t0);
    int64_t images = r->state.epoch_images + images_this_run;
    r->epoch_images = images;
    row->epoch = e + 1;
    row->train_loss = r->state.seen ? r->state.loss_sum / r->state.seen : NAN;
    row->train_acc = r->state.seen ? (double)r->state.correct / r->state.seen : NAN;
    row->lr = lr;
    row->seconds = seconds;
    row->images_per_sec = seconds > 0 ? images / seconds : 0;
    row->data_wait_seconds = data_loader_wait_seconds(r->train_loader);
    row->steps = r->state.global_step;
    row->bn_layers = r->bn_layers;
    row->bn_recalibrated = cfg->bn_recalibrate > 0 && r->bn_layers > 0;
    TrainProgress p = {.phase = "validate", .epoch = e + 1, .step = steps,
                       .steps_per_epoch = steps};
    report(r, &p, true);
    int rc = recalibrate_bn(r, e + 1);
    if (rc == 0)
        rc = evaluate(r, r->val_idx, r->n_val, &row->val_loss, &row->val_acc, NULL);
    if (rc == 1) {
        /* seconds and images are the whole epoch's: they replace the partial sums */
        r->state.epoch_seconds = 0;
        r->state.epoch_images = 0;
        return stop_at(r, e, steps, seconds, images);
    }
    return rc;
}

static int test_best(Run *r)
{
    TrainProgress p = {.phase = "test", .epoch = r->cfg->epochs, .step = r->steps_per_epoch};
    report(r, &p, true);
    char err[512];
    CheckpointState best;
    int epoch = r->cfg->epochs;
    struct stat st;
    if (stat(r->best_path, &st) == 0) {
        if (checkpoint_load(r->best_path, r->net, &best, err, sizeof err) < 0)
            return fail(r, "%s", err);
        /* Judged at the start; a file without identity was adopted then only by a job
         * that predates identities. */
        bool legacy = !best.identity.job_uid[0] && r->setup->adopt_legacy;
        if (!legacy && strcmp(best.identity.job_uid, r->state.identity.job_uid) != 0)
            return fail(r, "%s was replaced during the run by a checkpoint of another job "
                        "(uid %s, this job's is %s): no test results from it", r->best_path,
                        best.identity.job_uid[0] ? best.identity.job_uid : "none",
                        r->state.identity.job_uid);
        epoch = best.epoch;
    } else if (r->state.best_epoch > 0) {
        return fail(r, "%s (epoch %d, the best validation accuracy) is missing: the test "
                    "results would come from other weights", r->best_path,
                    r->state.best_epoch);
    }
    int K = r->classes;
    int64_t *confusion = calloc((size_t)K * K, sizeof(int64_t));
    double *per_class = calloc((size_t)K * 4, sizeof(double));
    if (!confusion || !per_class) {
        free(confusion);
        free(per_class);
        return fail(r, "out of memory");
    }
    double loss, acc;
    int rc = -1;
    if (r->n_test == 0) {
        fail(r, "the test split is empty");
        goto done;
    }
    rc = evaluate(r, r->test_idx, r->n_test, &loss, &acc, confusion);
    if (rc != 0)
        goto done;
    ClassMetrics m;
    metrics_from_confusion(confusion, K, &m, per_class);
    TrainResults res = {.epoch = epoch, .accuracy = m.accuracy,
                        .precision_macro = m.precision_macro, .recall_macro = m.recall_macro,
                        .f1_macro = m.f1_macro, .loss = loss, .classes = K,
                        .confusion = confusion, .per_class = per_class};
    rc = 0;
    if (r->cb->results && r->cb->results(r->cb->user, &res) != 0)
        rc = fail(r, "could not store the test results");
done:
    free(confusion);
    free(per_class);
    return rc;
}

static void run_free(Run *r)
{
    data_loader_free(r->train_loader);
    data_loader_free(r->eval_loader);
    data_pre_deinit(&r->pre);
    data_cache_free(r->cache);
    net_free(r->net);
    probe_result_deinit(&r->probe);
    free(r->train_idx);
    free(r->val_idx);
    free(r->test_idx);
    free(r->probe_x);
    free(r->probe_y);
    free(r->class_weights);
    free(r->config_text);
    free(r->bn_saved);
    free(r->kernel_var);
    free(r->kernel_iters);
    free(r->batch_x);
    free(r->batch_y);
}

/* Moves path (kind "latest" or "best") to the quarantine with why, and logs it. */
static int set_aside(Run *r, const char *path, const char *kind, const char *why)
{
    char label[64], dest[4096], err[512];
    snprintf(label, sizeof label, "job%lld-%s", (long long)r->setup->identity->job_id, kind);
    if (checkpoint_set_aside(path, r->setup->quarantine_dir, label, why, dest, sizeof dest,
                             err, sizeof err) < 0)
        return fail(r, "%s; setting it aside failed: %s", why, err);
    log_warn("train", "%s; moved to %s", why, dest);
    return 0;
}

/* Reads and judges the checkpoint at path. Returns 1 when it is the job's own (info
 * filled; release it), 0 when there is none (missing, or another job's and set aside), -1
 * when the run must fail (damaged, unreadable, the job's own for another configuration
 * or dataset). */
static int judge_file(Run *r, const char *path, const char *kind, CheckpointInfo *info)
{
    char err[1024], why[1024];
    int rc = checkpoint_inspect(path, info, err, sizeof err);
    if (rc == -1 && errno == ENOENT)
        return 0;
    if (rc == -2)
        return fail(r, "%s: move it aside (initlab check --quarantine) and retry the job to "
                    "train it from scratch", err);
    if (rc < 0)
        return fail(r, "%s", err);
    switch (checkpoint_judge(path, info, r->setup->identity, r->setup->adopt_legacy, why,
                             sizeof why)) {
    case CHECKPOINT_OWN:
        return 1;
    case CHECKPOINT_FOREIGN:
        checkpoint_info_deinit(info);
        return set_aside(r, path, kind, why) < 0 ? -1 : 0;
    case CHECKPOINT_MISMATCH:
    default:
        checkpoint_info_deinit(info);
        return fail(r, "%s", why);
    }
}

/* Whether the job's own best checkpoint agrees with its own latest one; why says how not. */
static bool best_agrees(const CheckpointInfo *latest, const CheckpointInfo *best,
                        bool have_best, char *why, size_t n)
{
    if (!have_best && latest->best_epoch == 0)
        return true;
    if (!have_best) {
        snprintf(why, n, "best.ckpt of epoch %d, which latest.ckpt refers to, is missing",
                 latest->best_epoch);
        return false;
    }
    /* The best of epoch E is renamed into place just before the latest of epoch E: a crash
     * between the two leaves it one epoch ahead, to be written again. */
    if (best->epoch == latest->best_epoch || best->epoch == latest->epoch + 1)
        return true;
    snprintf(why, n, "best.ckpt holds epoch %d but latest.ckpt (epoch %d) records epoch %d as "
             "the best", best->epoch, latest->epoch, latest->best_epoch);
    return false;
}

/* Resumes from the job's own checkpoint or starts from scratch (recording the statistics
 * of epoch 0). Returns 0, 1 when a stop request cut those statistics short, -1 on
 * failure. */
static int start_or_resume(Run *r)
{
    char err[512], why[1024];
    CheckpointInfo latest = {0}, best = {0};
    int have_latest = judge_file(r, r->latest_path, "latest", &latest);
    int have_best = have_latest < 0 ? -1 : judge_file(r, r->best_path, "best", &best);
    int rc = -1;
    if (have_latest < 0 || have_best < 0)
        goto out;
    if (have_latest) {
        int verdict = 0;
        if (!best_agrees(&latest, &best, have_best, why, sizeof why))
            verdict = 1;
        else if (r->cb->may_resume)
            verdict = r->cb->may_resume(r->cb->user, latest.epoch, latest.step, why,
                                        sizeof why);
        if (verdict < 0) {
            fail(r, "could not check the checkpoint against the job's records");
            goto out;
        }
        if (verdict == 0) {
            if (checkpoint_load(r->latest_path, r->net, &r->state, err, sizeof err) < 0) {
                fail(r, "%s", err);
                goto out;
            }
            r->state.identity = *r->setup->identity;
            if (latest.has_identity)
                log_info("train", "resuming after epoch %d, step %d from %s (written by "
                         "attempt %d)", r->state.epoch, r->state.step, r->latest_path,
                         latest.identity.attempt);
            else
                log_info("train", "resuming after epoch %d, step %d from %s (written before "
                         "checkpoints had identities)", r->state.epoch, r->state.step,
                         r->latest_path);
            if (r->cb->resumed &&
                r->cb->resumed(r->cb->user, r->state.epoch, r->state.step) != 0) {
                fail(r, "could not prepare the resumption");
                goto out;
            }
            rc = 0;
            goto out;
        }
        char full[1600];
        snprintf(full, sizeof full, "job %lld cannot resume from %.300s: %s; it trains from "
                 "scratch", (long long)r->setup->identity->job_id, r->latest_path, why);
        if (set_aside(r, r->latest_path, "latest", full) < 0)
            goto out;
    }
    if (have_best && set_aside(r, r->best_path, "best",
                               "the job trains from scratch: the best checkpoint of its "
                               "abandoned run is set aside") < 0)
        goto out;
    if (r->cb->from_scratch && r->cb->from_scratch(r->cb->user) != 0) {
        fail(r, "could not clear the records of an earlier run");
        goto out;
    }
    rc = record_stats(r, 0);
out:
    checkpoint_info_deinit(&latest);
    checkpoint_info_deinit(&best);
    return rc;
}

TrainOutcome train_run(const TrainSetup *setup, const TrainCallbacks *cb, char *err,
                       size_t errlen)
{
    static const TrainCallbacks none = {0};
    Run r = {.setup = setup, .cfg = setup->cfg, .cb = cb ? cb : &none, .err = err,
             .errlen = errlen};
    const JobConfig *cfg = setup->cfg;
    r.classes = setup->index->n_classes;
    r.state.best_val_acc = -1;
    snprintf(r.state.model, sizeof r.state.model, "%s", cfg->model);
    r.state.classes = r.classes;
    r.state.identity = *setup->identity;
    snprintf(r.latest_path, sizeof r.latest_path, "%s/latest.ckpt", setup->ckpt_dir);
    snprintf(r.best_path, sizeof r.best_path, "%s/best.ckpt", setup->ckpt_dir);
    r.config_text = config_to_text(cfg);

    TrainOutcome outcome = TRAIN_FAILED;
    char dir_err[512];
    if (r.classes < 2) {
        fail(&r, "the dataset has %d class(es); at least 2 are needed", r.classes);
        goto out;
    }
    if (file_mkdirs(setup->ckpt_dir, dir_err, sizeof dir_err) < 0) {
        fail(&r, "checkpoint directory: %s", dir_err);
        goto out;
    }
    if (build_net(&r) < 0)
        goto out;
    int data_rc = open_data(&r);
    if (data_rc == -2) { /* a stop request while decoding: nothing trained, nothing lost */
        outcome = TRAIN_STOPPED;
        goto out;
    }
    if (data_rc < 0 || (r.spec.kind == INIT_LSUV && run_lsuv(&r) < 0))
        goto out;
    int start = start_or_resume(&r);
    if (start < 0)
        goto out;
    if (start == 1) { /* nothing trained yet: the next start begins from scratch again */
        outcome = TRAIN_STOPPED;
        goto out;
    }

    for (int e = r.state.epoch; e < cfg->epochs; e++) {
        TrainEpoch row;
        int rc = train_epoch(&r, e, &row);
        if (rc < 0)
            goto out;
        if (rc == 1) {
            outcome = TRAIN_STOPPED;
            goto out;
        }
        if (r.cb->epoch_done && r.cb->epoch_done(r.cb->user, &row) != 0) {
            fail(&r, "could not store epoch %d", e + 1);
            goto out;
        }
        bool last = e + 1 == cfg->epochs;
        int stats = last || (e + 1) % cfg->stats_every == 0 ? record_stats(&r, e + 1) : 0;
        if (stats < 0)
            goto out;
        if (stats == 1) {
            /* Trained and validated, statistics cut short: the checkpoint keeps the epoch
             * unfinished (step = steps), and the resumed run validates it again (the same
             * figures) before recording its statistics. */
            int steps = data_loader_batches(r.train_loader);
            r.state.epoch_seconds = 0;
            r.state.epoch_images = 0;
            if (stop_at(&r, e, steps, row.seconds, r.epoch_images) < 0)
                goto out;
            outcome = TRAIN_STOPPED;
            goto out;
        }
        r.state.epoch = e + 1;
        r.state.step = 0;
        r.state.loss_sum = 0;
        r.state.correct = r.state.seen = 0;
        r.state.epoch_seconds = 0;
        r.state.epoch_images = 0;
        if (row.val_acc > r.state.best_val_acc) {
            r.state.best_val_acc = row.val_acc;
            r.state.best_epoch = e + 1;
            if (save_checkpoint(&r, "best", r.best_path, e + 1, row.val_acc) < 0)
                goto out;
        }
        if (save_checkpoint(&r, "latest", r.latest_path, e + 1, row.val_acc) < 0)
            goto out;
    }
    int tested = test_best(&r);
    if (tested < 0)
        goto out;
    outcome = tested == 1 ? TRAIN_STOPPED : TRAIN_DONE;
out:
    run_free(&r);
    return outcome;
}
