/* probe.h — layer-by-layer distributions of a net on a fixed probe batch, in both BN modes.
 *
 * For each requested BatchNorm mode (train: batch statistics, moving averages untouched;
 * inference: moving statistics) the probe runs one forward pass, the loss and one
 * backward pass on the probe batch, then summarizes (stats.h):
 *   weight      every kernel (conv, depthwise, dense), with the variance the initializer
 *               predicts for its fans — the same in both modes, recorded in each
 *   activation  the preprocessed probe images (layer 0, type "input"), every activation
 *               layer's output with health flags, the logits (the last layer, type
 *               "logits") and the softmax probabilities (type "softmax", layer index =
 *               number of layers)
 *   gradient    every kernel's loss gradient
 * The net's parameters, moving statistics and parameter gradients are left as they were
 * found except that parameter gradients are cleared.
 *
 * With ProbeOptions.theory (the probe of epoch 0), every activation, logits and gradient
 * row also gets theory_var, what train/theory.h predicts for it from the measured input
 * and softmax of the same pass: the variance of the activations, the second moment of the
 * kernel gradients; weight rows get the initializer's variance there, and fan_sum, the
 * inputs each of the layer's outputs sums over. */
#ifndef INITLAB_TRAIN_PROBE_H
#define INITLAB_TRAIN_PROBE_H

#include <stdbool.h>

#include "nn/init.h"
#include "nn/net.h"
#include "train/stats.h"

typedef enum { PROBE_WEIGHT, PROBE_ACTIVATION, PROBE_GRADIENT } ProbeQuantity;
typedef enum { PROBE_MODE_TRAIN, PROBE_MODE_INFERENCE } ProbeMode;

#define PROBE_MODES_BOTH ((1u << PROBE_MODE_TRAIN) | (1u << PROBE_MODE_INFERENCE))

/* Health bits of ProbeRow.flags. */
#define PROBE_FLAG_DEAD 1u       /* more than PROBE_DEAD_FRACTION of the channels are zero
                                    over the whole probe batch */
#define PROBE_FLAG_SATURATED 2u  /* more than 10% of values at an activation bound */
#define PROBE_FLAG_NONFINITE 4u  /* NaN or infinity present */
/* A handful of dead channels in a wide layer is noise, not a finding (1 of 2048 is
 * 0.05 %): "dead" flags a layer where more than this fraction of channels is dead. */
#define PROBE_DEAD_FRACTION 0.1
#define PROBE_SATURATED_FRACTION 0.1

typedef struct {
    ProbeMode mode;
    ProbeQuantity quantity;
    int layer_index;
    char layer_name[64];
    char layer_type[32];
    StatSummary s;
    double predicted_var; /* kernels' weights: the initializer's variance; NAN otherwise */
    double theory_var;    /* with ProbeOptions.theory: the prediction (see above); NAN */
    double fan_sum;       /* with theory, weight rows: inputs each output sums over; NAN */
    int init_iters;       /* weight rows with kernel_iters: LSUV rescalings; -1 */
    bool has_health;      /* activation rows */
    HealthFlags health;
    unsigned flags;       /* PROBE_FLAG_* */
} ProbeRow;

typedef struct {
    ProbeRow *rows;
    int n, cap;
} ProbeResult;

/* What probe_run_opts measures and how. */
typedef struct {
    unsigned modes;              /* PROBE_MODES_BOTH or one 1u << ProbeMode */
    const InitSpec *spec;        /* the initializer, for predicted_var */
    FanConvention conv;
    const float *class_weights;  /* (K) or NULL */
    const double *kernel_var;    /* (net_n_params) overrides spec's variances (LSUV), or NULL */
    const int *kernel_iters;     /* (net_n_params) LSUV rescalings, or NULL */
    bool theory;                 /* add the theory's predictions (epoch 0) */
} ProbeOptions;

/* probe_run with options; the same contract. */
int probe_run_opts(Net *net, const float *x, const int *labels, int n, const ProbeOptions *o,
                   ProbeResult *out);

/* Runs the probe (see above) on x (n, H, W, C) with labels (n) for the modes in
 * modes_mask, appending rows to out (zero-initialize it before the first call, release
 * it with probe_result_deinit). init and conv give the predicted variances. class_weights
 * (K) may be NULL. Returns 0, -1 on allocation failure or an n the net can't take, or
 * NET_STOPPED when the net's stop check (net_set_stop) asked to stop: it is asked between
 * layers of the passes and before every row, and the rows of an unfinished probe are
 * incomplete. */
int probe_run(Net *net, const float *x, const int *labels, int n, unsigned modes_mask,
              Initializer init, FanConvention conv, const float *class_weights,
              ProbeResult *out);
/* Forgets the rows, keeping the buffers. Can't fail. */
void probe_result_clear(ProbeResult *r);
void probe_result_deinit(ProbeResult *r);

const char *probe_quantity_name(ProbeQuantity q); /* "weight", "activation", "gradient" */
const char *probe_mode_name(ProbeMode m);         /* "train", "inference" */

#endif
