/* optim.h — SGD with (Nesterov) momentum and L2 weight decay, learning-rate schedules.
 *
 * The update is Keras' (keras/src/optimizers/sgd.py), per trainable parameter w with
 * gradient g and velocity v (Param.velocity, zero at initialization):
 *
 *   g ← g + wd·w                  L2 decay, kernels only unless decay_all
 *   v ← momentum·v − lr·g
 *   w ← w + momentum·v − lr·g     nesterov
 *   w ← w + v                     plain momentum
 *
 * With a constant lr this equals PyTorch's torch.optim.SGD(momentum, nesterov) whose
 * buffer b = −v/lr (b ← momentum·b + g; w ← w − lr·(g + momentum·b)); when lr changes
 * the two differ (Keras' velocity carries the old lr). Non-trainable parameters (BN moving
 * statistics) are never touched. */
#ifndef INITLAB_NN_OPTIM_H
#define INITLAB_NN_OPTIM_H

#include <stdbool.h>

#include "nn/net.h"

typedef struct {
    float momentum;     /* 0 disables momentum (then v = −lr·g) */
    bool nesterov;
    float weight_decay; /* L2 coefficient wd added to the gradient; 0 = off */
    bool decay_all;     /* decay biases and BN gamma/beta too (default: kernels only) */
} SgdConfig;

/* Applies one update to every trainable parameter of the net from its current gradients,
 * with the net's thread count. Gradients are read (and left as they were). Can't fail. */
void sgd_step(Net *net, const SgdConfig *cfg, float lr);

typedef enum { LR_CONSTANT, LR_STEP, LR_COSINE } LrScheduleKind;

#define LR_MAX_MILESTONES 16

typedef struct {
    LrScheduleKind kind;
    int milestones[LR_MAX_MILESTONES]; /* step: epochs where lr is multiplied by gamma */
    int n_milestones;
    float gamma;                       /* step: factor per milestone passed, e.g. 0.1 */
    int total_epochs;                  /* cosine: lr reaches 0 at this epoch */
} LrSchedule;

/* The learning rate for 0-based `epoch` (as Keras' LearningRateScheduler counts):
 *   constant  base_lr
 *   step      base_lr · gamma^(number of milestones m with epoch >= m); the paper's
 *             "×0.1 at epochs 30 and 60" is milestones {30, 60}, gamma 0.1: epochs 0–29 run
 *             at base_lr, 30–59 at base_lr/10, 60– at base_lr/100
 *   cosine    base_lr · (1 + cos(π · min(epoch, total) / total)) / 2
 * Can't fail. */
float lr_schedule_at(const LrSchedule *s, int epoch, float base_lr);
/* "constant", "step", "cosine" <-> LrScheduleKind; parse returns 0, or -1 if unknown. */
const char *lr_schedule_name(LrScheduleKind kind);
int lr_schedule_parse(const char *name, LrScheduleKind *kind);

#endif
