/* config.h — a training job's full configuration: presets, defaults, validation, JSON.
 *
 * One description serves every door: `POST /api/v1/jobs` bodies, `initlab train --key value`
 * flags and the configuration stored with each job are the same JSON object. Keys:
 *
 *   preset        "paper" | "quick"                     defaults for everything below
 *   dataset       dataset name (daemon) or directory (`initlab train --data`)
 *   model         mobilenet | resnet50 | resnet18 | resnet34 | plain | mlp
 *   alpha, depth_multiplier, dropout           MobileNet options
 *   depth, width, activation, batchnorm        plain / mlp options; width also scales
 *                                              the ResNets (64, Keras' width, by default)
 *   head          "paper" | "keras"
 *   init          glorot_uniform | glorot_normal | he_uniform | he_normal | lecun_uniform |
 *                 lecun_normal | variance_scaling | orthogonal | lsuv   (nn/init.h)
 *   init_gain     multiplies every kernel after it is drawn (1; orthogonal: Keras' gain)
 *   init_scale, init_mode, init_distribution   variance_scaling's parameters (1, "fan_in",
 *                 "truncated_normal"); ignored by the other initializers
 *   zero_gamma    γ = 0 in the batch norm ending each residual branch (false)
 *   lsuv_tol, lsuv_max_iter   LSUV: |Var − 1| < tol, at most max_iter rescalings per layer
 *                 (0.1, 10; train/lsuv.h)
 *   fan_convention "keras" | "pytorch"
 *   seed          integer >= 0
 *   epochs, batch_size, image_size
 *   preprocess    tf | pixel_mean | caffe | torch | none
 *   crop          "squash" | "center"
 *   lr, schedule ("step" | "cosine" | "constant"), milestones [epochs], gamma
 *   momentum, nesterov, weight_decay, decay_all (weight decay on biases and BN too)
 *   class_weight  "none" | "balanced" | [w0, w1, ...]
 *   flip          random horizontal flip while training
 *   stats_every   layer statistics every k epochs (epoch 0 and the last always)
 *   probe_size    images in the fixed probe batch
 *   bn_recalibrate  before each evaluation, recompute the BatchNorm moving statistics
 *                 over this many training batches ("precise BN"); 0 = off (the default,
 *                 and the paper's protocol)
 *   threads       compute threads of the job (the daemon's --threads-per-job when a
 *                 submission leaves it out)
 *   priority      queue priority (higher first)
 *   keep_checkpoints  "daemon" (its --retention), "all", "best" or "none": the checkpoints
 *                 kept once the job is done (jobs/storage.h)
 *
 * The paper preset follows the paper's protocol (DESIGN.md): SGD with Nesterov momentum
 * 0.9, lr 0.01 divided by 10 at epochs 30 and 60 of 100, batch 128 for MobileNet and 32
 * for the ResNets, 224 px, `tf` preprocessing for MobileNet and `pixel_mean` for the ResNets.
 * The quick preset is CPU-sized: 64 px, batch 32, 5 epochs, cosine schedule from lr 0.05. */
#ifndef INITLAB_TRAIN_CONFIG_H
#define INITLAB_TRAIN_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "nn/init.h"

#define CONFIG_MAX_MILESTONES 16
#define CONFIG_MAX_CLASSES 1000

typedef struct {
    char preset[16];
    char dataset[4096];
    char model[16];
    double alpha;
    int depth_multiplier;
    double dropout;
    int depth, width;
    char activation[16];
    bool batchnorm;
    char head[16];
    char init[24];
    double init_gain;
    double init_scale;
    char init_mode[16];
    char init_distribution[24];
    bool zero_gamma;
    double lsuv_tol;
    int lsuv_max_iter;
    char fan_convention[16];
    int64_t seed;
    int epochs, batch_size, image_size;
    char preprocess[16];
    char crop[16];
    double lr;
    char schedule[16];
    int milestones[CONFIG_MAX_MILESTONES];
    int n_milestones;
    double gamma;
    double momentum;
    bool nesterov;
    double weight_decay;
    bool decay_all;
    char class_weight[16];            /* "none", "balanced" or "list" */
    int n_class_weights;
    double class_weights[CONFIG_MAX_CLASSES]; /* when class_weight is "list" */
    bool flip;
    int stats_every;
    int probe_size;
    int bn_recalibrate;
    int threads;
    int priority;
    char keep_checkpoints[16];
} JobConfig;

/* A validation failure: the offending key and a sentence for the user. */
typedef struct {
    char field[64];
    char message[256];
} ConfigError;

/* Fills cfg with the defaults of preset ("paper" or "quick") for model. Returns 0, or -1
 * for an unknown preset or model (err says which). */
int config_defaults(JobConfig *cfg, const char *preset, const char *model, ConfigError *err);

/* Builds a configuration from a JSON object (borrowed): the preset's defaults for its
 * model, then every key of obj. Unknown keys, wrong types and impossible values are
 * refused with err naming the key. "dataset" is required when require_dataset is set.
 * "initializer" is accepted for "init" (the name the job's listing uses); both at once
 * must agree.
 * Returns 0 or -1. Thread-safe. */
int config_from_json(const json_t *obj, bool require_dataset, JobConfig *cfg, ConfigError *err);

/* The configuration as a JSON object with every key (new reference), or NULL on OOM. */
json_t *config_to_json(const JobConfig *cfg);

/* The canonical text of a configuration (compact JSON, sorted keys): what the store keeps,
 * and equal for equal configurations. New string (free()), or NULL on OOM. */
char *config_to_text(const JobConfig *cfg);

/* Learning rate of an epoch (0-based) under cfg's schedule (nn/optim.h lr_schedule_at):
 * step multiplies by gamma at each milestone reached, cosine goes from lr to 0 over the
 * epochs, constant keeps lr. The optimizer's rate is a float32; it is returned as the
 * double of its shortest decimal (0.02, not 0.019999999552965164), which converts back to
 * the same float32. */
double config_lr_at(const JobConfig *cfg, int epoch);

/* One key of the table config_from_json validates with, for documents and tests that
 * must agree with it (the OpenAPI document). type is "integer", "number", "boolean",
 * "string" (names: its values when it is an enumeration, else NULL) or "special"
 * (milestones, class_weight: checked by their own rules); min and max bound numbers. */
typedef struct {
    const char *key;
    const char *type;
    double min, max;
    const char *const *names;
} ConfigFieldInfo;

/* Number of keys, and key i (0 <= i < count) into *out. Can't fail. */
int config_field_count(void);
void config_field_info(int i, ConfigFieldInfo *out);
/* The initializer the configuration asks for (nn/init.h). Returns 0, or -1 for a name
 * config_from_json would have refused. */
int config_init_spec(const JobConfig *cfg, InitSpec *spec);

/* The known names, for listings (NULL-terminated). */
extern const char *const config_presets[];
extern const char *const config_models[];
extern const char *const config_preprocess_modes[];

#endif
