/* checkpoint.h — a training run's complete state in one file, written atomically.
 *
 * Layout (little-endian):
 *   offset 0   magic "INITLABK"                       8 bytes
 *          8   format version (1)                     u32
 *         12   metadata length M                      u32
 *         16   tensor data length D                   u64
 *         24   CRC-32 of the M + D bytes that follow  u32
 *         28   reserved, 0                            u32
 *         32   metadata: JSON text (M bytes) — the CheckpointState and the tensor table
 *     32 + M   tensor data (D bytes): for each parameter of the net in net order, its
 *              values, then its velocity (SGD momentum buffer) when it is trainable
 * Parameters include the BN moving statistics. A file is refused when the magic, version,
 * lengths or CRC are wrong, or when its tensor table does not match the net (names and
 * sizes), each with a message that names the file and the problem. */
#ifndef INITLAB_TRAIN_CHECKPOINT_H
#define INITLAB_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "nn/net.h"

#define CHECKPOINT_VERSION 1

/* Where the run stands. A checkpoint at an epoch boundary has step 0; one written on a
 * stop request mid-epoch carries the step reached and the running sums of that epoch. */
typedef struct {
    int epoch;              /* epochs completed */
    int step;               /* steps done in the next epoch (0 at a boundary) */
    int64_t global_step;    /* steps since the start of training */
    double loss_sum;        /* running sums of the interrupted epoch */
    int64_t correct, seen;
    double best_val_acc;    /* best validation accuracy so far, -1 before any */
    int best_epoch;
    char model[32];         /* what the weights belong to, for a clear refusal */
    int classes;
    const char *config_json; /* the job configuration (config_to_text); saved when set,
                                NULL after checkpoint_load (see checkpoint_peek) */
} CheckpointState;

/* Writes net's parameters, velocities and state to path atomically (util/fileio.h).
 * Returns 0, or -1 with a message in err[errlen]. Thread-safe for distinct paths. */
int checkpoint_save(const char *path, const Net *net, const CheckpointState *state,
                    char *err, size_t errlen);

/* Reads path into net (whose graph must match) and state. On any error returns -1 with a
 * message in err[errlen] and leaves net unchanged. */
int checkpoint_load(const char *path, Net *net, CheckpointState *state, char *err,
                    size_t errlen);

/* Reads only the header and metadata of path (checking magic, version and CRC): the job
 * configuration it was saved with (*config_json, new string or NULL when absent; free())
 * and the class count, so that the net can be rebuilt before checkpoint_load. Returns 0,
 * or -1 with a message in err. */
int checkpoint_peek(const char *path, char **config_json, int *classes, char *err,
                    size_t errlen);

#endif
