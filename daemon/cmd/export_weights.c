/* export_weights.c — `initlab export-weights`: a checkpoint's weights as safetensors. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "nn/models.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/trainer.h"
#include "train/weights.h"

static const char usage_text[] =
    "usage: initlab export-weights CHECKPOINT FILE\n\n"
    "Writes the parameters and batch-norm statistics held in a training checkpoint\n"
    "(state/jobs/ID/latest.ckpt or best.ckpt) to FILE in the safetensors format, with the\n"
    "tensor names and layouts of `initlab summary --save-weights` (Keras names such as\n"
    "conv1/kernel and conv1_bn/moving_mean, Keras layouts). The checkpoint is checked\n"
    "(magic, version, CRC) and refused with a clear message when damaged.\n";

static int cmd_export_weights(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (argc != 3) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *ckpt = argv[1], *out = argv[2];
    char err[1024], *config_text = NULL;
    int classes = 0, status = 1;
    Net *net = NULL;
    json_t *obj = NULL;
    if (checkpoint_peek(ckpt, &config_text, &classes, err, sizeof err) < 0) {
        fprintf(stderr, "initlab export-weights: %s\n", err);
        return 1;
    }
    JobConfig cfg;
    ConfigError cerr;
    ModelConfig mc;
    obj = config_text ? json_loads(config_text, 0, NULL) : NULL;
    if (!obj || config_from_json(obj, false, &cfg, &cerr) < 0) {
        fprintf(stderr, "initlab export-weights: %s holds no usable job configuration\n", ckpt);
        goto out;
    }
    cfg.batch_size = cfg.probe_size = 1;
    if (train_model_config(&cfg, classes, &mc, err, sizeof err) < 0 ||
        !(net = model_build(&mc, 1, err, sizeof err))) {
        fprintf(stderr, "initlab export-weights: %s\n", err);
        goto out;
    }
    CheckpointState state;
    if (checkpoint_load(ckpt, net, &state, err, sizeof err) < 0) {
        fprintf(stderr, "initlab export-weights: %s\n", err);
        goto out;
    }
    char epoch[16], classes_text[16];
    snprintf(epoch, sizeof epoch, "%d", state.epoch);
    snprintf(classes_text, sizeof classes_text, "%d", classes);
    const char *meta[] = {"model", cfg.model, "init", cfg.init, "epoch", epoch, "classes",
                          classes_text, "config", config_text, NULL};
    if (weights_save_safetensors(net, out, meta, err, sizeof err) < 0) {
        fprintf(stderr, "initlab export-weights: %s\n", err);
        goto out;
    }
    fprintf(stderr, "wrote %s: %d tensors of %s after epoch %d\n", out, net_n_params(net),
            cfg.model, state.epoch);
    status = 0;
out:
    json_decref(obj);
    net_free(net);
    free(config_text);
    return status;
}

COMMAND(export_weights, "export-weights", cmd_export_weights, 48,
        "export-weights CHECKPOINT FILE", "a checkpoint's weights as a safetensors file")
