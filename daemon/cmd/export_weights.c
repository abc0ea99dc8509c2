/* export_weights.c — `initlab export-weights`: a checkpoint's weights as safetensors. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "train/export.h"

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
    char err[1024];
    CheckpointState state;
    if (export_checkpoint_weights(ckpt, out, NULL, true, &state, err, sizeof err) < 0) {
        fprintf(stderr, "initlab export-weights: %s\n", err);
        return 1;
    }
    fprintf(stderr, "wrote %s: the weights of %s after epoch %d\n", out, state.model,
            state.epoch);
    return 0;
}

COMMAND(export_weights, "export-weights", cmd_export_weights, 48,
        "export-weights CHECKPOINT FILE", "a checkpoint's weights as a safetensors file")
