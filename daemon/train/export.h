/* export.h — a checkpoint's weights as a safetensors file: the net rebuilt from the job
 * configuration the checkpoint carries, its parameters loaded and written with Keras names
 * and layouts (weights.h). Shared by `initlab export-weights` and the API's downloads. */
#ifndef INITLAB_TRAIN_EXPORT_H
#define INITLAB_TRAIN_EXPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "train/checkpoint.h"

/* Writes the weights of checkpoint ckpt to out (atomically). With want_uid non-NULL the
 * checkpoint must carry that job uid (or none, when accept_legacy), else it is refused as
 * another job's. *state (may be NULL) receives its state (epoch, ...). Returns 0, or -1
 * with a message in err (damaged, another job's, unknown configuration, I/O). */
int export_checkpoint_weights(const char *ckpt, const char *out, const char *want_uid,
                              bool accept_legacy, CheckpointState *state, char *err,
                              size_t errlen);

#endif
