/* export.c — a checkpoint's weights as safetensors (export.h). */
#include "train/export.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/models.h"
#include "train/config.h"
#include "train/trainer.h"
#include "train/weights.h"

int export_checkpoint_weights(const char *ckpt, const char *out, const char *want_uid,
                              bool accept_legacy, CheckpointState *state_out, char *err,
                              size_t errlen)
{
    char *config_text = NULL;
    int classes = 0, rc = -1;
    Net *net = NULL;
    json_t *obj = NULL;
    if (checkpoint_peek(ckpt, &config_text, &classes, err, errlen) < 0)
        return -1;
    JobConfig cfg;
    ConfigError cerr;
    ModelConfig mc;
    obj = config_text ? json_loads(config_text, 0, NULL) : NULL;
    if (!obj || config_from_json(obj, false, &cfg, &cerr) < 0) {
        snprintf(err, errlen, "%s holds no usable job configuration", ckpt);
        goto out;
    }
    cfg.batch_size = cfg.probe_size = 1;
    if (train_model_config(&cfg, classes, &mc, err, errlen) < 0 ||
        !(net = model_build(&mc, 1, err, errlen)))
        goto out;
    CheckpointState state;
    if (checkpoint_load(ckpt, net, &state, err, errlen) < 0)
        goto out;
    if (want_uid && strcmp(state.identity.job_uid, want_uid) != 0 &&
        !(accept_legacy && !state.identity.job_uid[0])) {
        snprintf(err, errlen, "%s is not this job's checkpoint (it carries job uid %s)", ckpt,
                 state.identity.job_uid[0] ? state.identity.job_uid : "none");
        goto out;
    }
    char epoch[16], classes_text[16];
    snprintf(epoch, sizeof epoch, "%d", state.epoch);
    snprintf(classes_text, sizeof classes_text, "%d", classes);
    const char *meta[] = {"model", cfg.model, "init", cfg.init, "epoch", epoch, "classes",
                          classes_text, "config", config_text, NULL};
    if (weights_save_safetensors(net, out, meta, err, errlen) < 0)
        goto out;
    if (state_out)
        *state_out = state;
    rc = 0;
out:
    json_decref(obj);
    net_free(net);
    free(config_text);
    return rc;
}
