/* checkpoint.h — a training run's complete state in one file, written atomically, and whose
 * it is: the job and attempt that wrote it and the configuration and data it was trained on.
 *
 * Layout (little-endian):
 *   offset 0   magic "INITLABK"                       8 bytes
 *          8   format version (2; 1 is still read)    u32
 *         12   metadata length M                      u32
 *         16   tensor data length D                   u64
 *         24   CRC-32 of the M + D bytes that follow  u32
 *         28   reserved, 0                            u32
 *         32   metadata: JSON text (M bytes) — the CheckpointState, the identity and the
 *              tensor table
 *     32 + M   tensor data (D bytes): for each parameter of the net in net order, its
 *              values, then its velocity (SGD momentum buffer) when it is trainable
 * Parameters include the BN moving statistics. A file is refused when the magic, version,
 * lengths or CRC are wrong, or when its tensor table does not match the net (names and
 * sizes), each with a message that names the file and the problem.
 *
 * Identity (version 2). Checkpoints live in state/jobs/ID/, and a job id can name another
 * job after the database is lost or restored, so the metadata carries "identity": the
 * job's random uid, the attempt (number and random uid) that wrote the file, and two
 * hashes: of the job configuration minus the keys that do not shape the weights
 * (checkpoint_config_hash) and of the data it trains on (checkpoint_data_hash). Before a
 * job resumes, checkpoint_judge compares a found file with the job: another uid means
 * another job's file, never adopted; the job's own uid with another hash means the job's
 * configuration or dataset changed since, refused. Hashes are 64-bit FNV-1a: they catch
 * accidents, not forgery (whoever can write the state directory can write anything).
 *
 * Version 1 files carry no identity. They are adopted only by a job created before jobs
 * had uids (store.h pre_identity) and only when the configuration saved in them hashes
 * the same as the job's; any other job treats them as another job's. */
#ifndef INITLAB_TRAIN_CHECKPOINT_H
#define INITLAB_TRAIN_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/scan.h"
#include "nn/net.h"

#define CHECKPOINT_VERSION 2
#define CHECKPOINT_UID_LEN 32    /* hex digits of a job or attempt uid */
#define CHECKPOINT_HASH_LEN 16   /* hex digits of a configuration or data hash */

/* Whose a checkpoint is. A string is "" when unknown. */
typedef struct {
    char job_uid[CHECKPOINT_UID_LEN + 1];      /* the job's uid, unique across databases */
    int64_t job_id;                            /* the job's id when written: informative only */
    int attempt;                               /* the start of the job that wrote it (1, 2..) */
    char attempt_uid[CHECKPOINT_UID_LEN + 1];  /* that start's uid */
    char config_hash[CHECKPOINT_HASH_LEN + 1]; /* checkpoint_config_hash of the job's config */
    char data_hash[CHECKPOINT_HASH_LEN + 1];   /* checkpoint_data_hash of its dataset */
} CheckpointIdentity;

/* Where the run stands. A checkpoint at an epoch boundary has step 0; one written on a
 * stop request mid-epoch carries the step reached and the running sums of that epoch. */
typedef struct {
    int epoch;              /* epochs completed */
    int step;               /* steps done in the next epoch (0 at a boundary) */
    int64_t global_step;    /* steps since the start of training */
    double loss_sum;        /* running sums of the interrupted epoch */
    int64_t correct, seen;
    double epoch_seconds;   /* time spent on the interrupted epoch by earlier runs */
    int64_t epoch_images;   /* images they trained of it */
    double best_val_acc;    /* best validation accuracy so far, -1 before any */
    int best_epoch;
    char model[32];         /* what the weights belong to, for a clear refusal */
    int classes;
    const char *config_json; /* the job configuration (config_to_text); saved when set,
                                NULL after checkpoint_load (see checkpoint_peek) */
    CheckpointIdentity identity; /* saved when job_uid is set; checkpoint_load fills it
                                    ("" everywhere for a file without identity) */
} CheckpointState;

/* What checkpoint_inspect reads without a net. */
typedef struct {
    int version;            /* format version of the file */
    bool has_identity;      /* false: written without identity (version 1) */
    CheckpointIdentity identity;
    char model[32];
    int classes;
    int epoch, step, best_epoch;
    double best_val_acc;
    uint32_t crc;           /* the CRC in the header (verified) */
    uint64_t bytes;         /* file size */
    char *config_json;      /* heap, NULL when the file holds none */
} CheckpointInfo;

/* What checkpoint_judge makes of a found checkpoint. */
typedef enum {
    CHECKPOINT_OWN = 0,      /* the job's own, for its configuration and data: resumable */
    CHECKPOINT_FOREIGN = 1,  /* another job's, or of no job it can be shown to be: never
                                adopted; set it aside and start from scratch */
    CHECKPOINT_MISMATCH = 2, /* the job's own, but for another configuration or dataset:
                                refused with a message */
} CheckpointVerdict;

/* Writes net's parameters, velocities and state to path atomically (util/fileio.h); *crc
 * (may be NULL) receives the CRC in its header. Returns 0, or -1 with a message in
 * err[errlen]. Thread-safe for distinct paths. */
int checkpoint_save(const char *path, const Net *net, const CheckpointState *state,
                    uint32_t *crc, char *err, size_t errlen);

/* Reads path into net (whose graph must match) and state (identity included). On any error
 * returns -1 with a message in err[errlen] and leaves net unchanged. It does not judge
 * whose the file is: see checkpoint_judge. */
int checkpoint_load(const char *path, Net *net, CheckpointState *state, char *err,
                    size_t errlen);

/* Reads and checks the whole file (magic, version, lengths, CRC) and fills *info from its
 * header and metadata. Returns 0; -1 when the file cannot be read (err names the system
 * error; errno is kept, ENOENT for a missing file); -2 when it is damaged (err says how:
 * truncated, CRC mismatch, ...). Release *info with checkpoint_info_deinit (also after a
 * failure). */
int checkpoint_inspect(const char *path, CheckpointInfo *info, char *err, size_t errlen);
void checkpoint_info_deinit(CheckpointInfo *info);   /* accepts NULL; can't fail */

/* Judges the found checkpoint (file `path`, for messages) for a job whose identity is want
 * (its attempt fields are not compared; an empty data_hash is not compared) and which may
 * adopt a file without identity when adopt_legacy is set (the job predates identities).
 * Writes a sentence for the log or the job's error into why (n bytes) for FOREIGN and
 * MISMATCH, naming both identities. Can't fail. */
CheckpointVerdict checkpoint_judge(const char *path, const CheckpointInfo *found,
                                   const CheckpointIdentity *want, bool adopt_legacy,
                                   char *why, size_t n);

/* The hash of a job configuration (a JSON object's text) over every key but those that do
 * not shape the weights — threads (summation order only), priority, stats_every and
 * probe_size (statistics only), preset (its values are spelled out) and keep_checkpoints
 * (what is kept after the run) — so that a key
 * added to configurations later counts by default. Keys are sorted; equal values give
 * equal hashes. Writes CHECKPOINT_HASH_LEN hex digits and a NUL to out. Returns 0, or -1
 * when config_json is not a JSON object. Thread-safe. */
int checkpoint_config_hash(const char *config_json, char *out);
/* The hash of what a job trains and validates on: the class names in label order and, for
 * each file, its relative path, label and split (data_split_assign must have run). Sizes
 * and modification times do not count: copying a dataset keeps its hash. Writes
 * CHECKPOINT_HASH_LEN hex digits and a NUL to out. Can't fail; thread-safe. */
void checkpoint_data_hash(const DatasetIndex *index, char *out);

/* Moves the checkpoint at path into dir (created when missing) as
 * "<label>.<UTC time>.ckpt" (".N" added before ".ckpt" when taken) and writes why beside it
 * in the same name with ".txt" for ".ckpt", so that nothing another job trained is lost.
 * dir must be on the same file system as path (both in the state directory). The new
 * path goes to dest (destlen bytes, may be 0). Returns 0, or -1 with a message in err;
 * the file is then where it was. */
int checkpoint_set_aside(const char *path, const char *dir, const char *label,
                         const char *why, char *dest, size_t destlen, char *err,
                         size_t errlen);

/* Reads only the header and metadata of path (checking magic, version and CRC): the job
 * configuration it was saved with (*config_json, new string or NULL when absent; free())
 * and the class count, so that the net can be rebuilt before checkpoint_load. Returns 0,
 * or -1 with a message in err. */
int checkpoint_peek(const char *path, char **config_json, int *classes, char *err,
                    size_t errlen);

#endif
