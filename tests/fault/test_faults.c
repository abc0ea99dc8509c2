/* test_faults.c — fault loops over what initlab stores and builds: the store (SQLite),
 * checkpoints, the net's allocation and the safetensors writer. For n = 1, 2, ... the n-th
 * allocation, file write or fsync fails; each failure must be reported with a message and
 * leave what was stored before intact, until the run in which no fault fires succeeds.
 * Each loop prints the number of fault points it exercised. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../unit/test.h"
#include "../unit/test_store_util.h"
#include "fault.h"
#include "fault_sqlite.h"
#include "nn/init.h"
#include "nn/models.h"
#include "nn/net.h"
#include "store/store.h"
#include "train/checkpoint.h"
#include "util/log.h"
#include "util/safetensors.h"

static const FaultKind kinds[] = {FAULT_ALLOC, FAULT_WRITE, FAULT_SYNC};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

/* The loops repeat their operation thousands of times: keep the store's info lines out. */
__attribute__((constructor)) static void quiet_log(void)
{
    log_set_level(LOG_WARN);
}

/* A new directory for one loop's files: in /dev/shm where it exists (every run fsyncs;
 * on a tmpfs that costs nothing), else in /tmp. Returns 0 or -1. */
static int make_dir(char *dir, size_t size)
{
    bool shm = access("/dev/shm", W_OK | X_OK) == 0;
    snprintf(dir, size, "%s/initlab-fault-XXXXXX", shm ? "/dev/shm" : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static int make_db(TmpDb *t)
{
    if (make_dir(t->dir, sizeof t->dir) < 0)
        return -1;
    snprintf(t->db, sizeof t->db, "%s/initlab.db", t->dir);
    return 0;
}

/* ---- files ------------------------------------------------------------------------ */

typedef struct {
    unsigned char *data;
    size_t len;
} Bytes;

static int read_bytes(const char *path, Bytes *b)
{
    b->data = NULL;
    b->len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !(b->data = malloc((size_t)st.st_size + 1))) {
        fclose(f);
        return -1;
    }
    b->len = fread(b->data, 1, (size_t)st.st_size, f);
    fclose(f);
    return b->len == (size_t)st.st_size ? 0 : -1;
}

static bool bytes_equal(const Bytes *a, const Bytes *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static int write_bytes(const char *path, const Bytes *b)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(b->data, 1, b->len, f);
    return fclose(f) == 0 && n == b->len ? 0 : -1;
}

/* Number of temporary files ("*.tmp.*") left in dir. */
static int temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

/* What an atomic file replacement must leave after each run: the old file, or (when the
 * operation succeeded, or failed only after the rename, at the directory's fsync) the
 * whole new one; never a temporary file. */
static void check_replaced(const char *what, const char *dir, const char *path,
                           const Bytes *before, const Bytes *after, long n, int rc)
{
    Bytes now;
    if (read_bytes(path, &now) < 0) {
        test_fail(__FILE__, __LINE__, "%s, run %ld: %s cannot be read", what, n, path);
        return;
    }
    if (rc == 0 && !bytes_equal(&now, after))
        test_fail(__FILE__, __LINE__, "%s, run %ld: reported success but the file is not "
                  "the one written without faults", what, n);
    if (rc != 0 && !bytes_equal(&now, before) && !bytes_equal(&now, after))
        test_fail(__FILE__, __LINE__, "%s, run %ld: after a reported failure the file is "
                  "neither the previous one nor the new one (%zu bytes)", what, n, now.len);
    if (temp_files(dir))
        test_fail(__FILE__, __LINE__, "%s, run %ld: a temporary file is left in %s", what, n,
                  dir);
    free(now.data);
}

static void remove_tree(const char *dir)
{
    TmpDb t;
    snprintf(t.dir, sizeof t.dir, "%s", dir);
    tmpdb_deinit(&t);
}

/* ---- checkpoints ------------------------------------------------------------------ */

typedef struct {
    char dir[64], path[128];
    Net *net;                    /* what is saved */
    Net *loaded;                 /* the same model, to load what was left */
    CheckpointState state;
    Bytes before, after;
} CkptCtx;

static void ckpt_setup(void *p)
{
    CkptCtx *c = p;
    if (write_bytes(c->path, &c->before) < 0)
        test_fail(__FILE__, __LINE__, "cannot restore %s", c->path);
}

static int ckpt_op(void *p, char *err, size_t errlen)
{
    CkptCtx *c = p;
    return checkpoint_save(c->path, c->net, &c->state, NULL, err, errlen);
}

static void ckpt_check(void *p, long n, int rc, const char *err)
{
    CkptCtx *c = p;
    check_replaced("checkpoint_save", c->dir, c->path, &c->before, &c->after, n, rc);
    CheckpointState s;
    char lerr[512];
    if (checkpoint_load(c->path, c->loaded, &s, lerr, sizeof lerr) < 0)
        test_fail(__FILE__, __LINE__, "checkpoint_save, run %ld: the checkpoint left does "
                  "not load: %s", n, lerr);
}

/* A small net with distinct weights, saved as the previous checkpoint (epoch 1) and, with
 * changed weights, as the new one (epoch 2). */
static int ckpt_init(CkptCtx *c)
{
    memset(c, 0, sizeof *c);
    if (make_dir(c->dir, sizeof c->dir) < 0)
        return -1;
    snprintf(c->path, sizeof c->path, "%s/latest.ckpt", c->dir);
    ModelConfig cfg = model_config_default("plain");
    cfg.depth = 3;
    cfg.width = 4;
    cfg.classes = 3;
    cfg.batch = 2;
    char err[512], ref[160];
    if (!(c->net = model_build(&cfg, 1, err, sizeof err)) ||
        !(c->loaded = model_build(&cfg, 1, err, sizeof err)))
        return -1;
    init_net(c->net, INIT_HE_UNIFORM, FAN_KERAS, 7);
    c->state = (CheckpointState){.epoch = 1, .global_step = 10, .loss_sum = 12.5,
                                 .correct = 7, .seen = 20, .best_val_acc = 0.25,
                                 .best_epoch = 1, .classes = 3,
                                 .config_json = "{\"model\":\"plain\"}"};
    snprintf(c->state.model, sizeof c->state.model, "plain");
    /* With an identity, so that its metadata is written (and failed) too. */
    CheckpointIdentity *id = &c->state.identity;
    snprintf(id->job_uid, sizeof id->job_uid, "0123456789abcdef0123456789abcdef");
    snprintf(id->attempt_uid, sizeof id->attempt_uid, "fedcba9876543210fedcba9876543210");
    snprintf(id->config_hash, sizeof id->config_hash, "00112233445566ff");
    snprintf(id->data_hash, sizeof id->data_hash, "ffeeddccbbaa0099");
    id->job_id = 1;
    id->attempt = 1;
    snprintf(ref, sizeof ref, "%s/reference.ckpt", c->dir);
    if (checkpoint_save(c->path, c->net, &c->state, NULL, err, sizeof err) < 0 ||
        read_bytes(c->path, &c->before) < 0)
        return -1;
    for (int i = 0; i < net_n_params(c->net); i++) {
        Param *p = net_param(c->net, i);
        for (size_t k = 0; k < p->size; k++) {
            p->data[k] += 0.5f;
            if (p->trainable)
                p->velocity[k] = 0.25f;
        }
    }
    c->state.epoch = 2;
    c->state.global_step = 20;
    if (checkpoint_save(ref, c->net, &c->state, NULL, err, sizeof err) < 0 ||
        read_bytes(ref, &c->after) < 0 || unlink(ref) < 0)
        return -1;
    return 0;
}

TEST(fault_checkpoint_save)
{
    CkptCtx c;
    if (ckpt_init(&c) < 0) {
        test_fail(__FILE__, __LINE__, "cannot set up the checkpoints in %s", c.dir);
        goto out;
    }
    for (size_t k = 0; k <= N_KINDS; k++) {
        /* Last, every allocation from the n-th on fails: the error paths' own too. */
        FaultLoop loop = {.name = "checkpoint_save", .kind = k < N_KINDS ? kinds[k] : FAULT_ALLOC,
                          .ctx = &c, .setup = ckpt_setup, .op = ckpt_op, .check = ckpt_check,
                          .persist = k == N_KINDS};
        FaultLoopResult r = fault_loop(&loop);
        CHECK(r.points > 0);
    }
out:
    net_free(c.net);
    net_free(c.loaded);
    free(c.before.data);
    free(c.after.data);
    remove_tree(c.dir);
}

/* ---- safetensors -------------------------------------------------------------------- */

typedef struct {
    char dir[64], path[128];
    StTensor tensors[3];
    float values[3][24];
    Bytes before, after;
} StCtx;

static const char *const st_metadata_pairs[] = {"format", "pt", "model", "plain", NULL};

static void st_setup(void *p)
{
    StCtx *c = p;
    if (write_bytes(c->path, &c->before) < 0)
        test_fail(__FILE__, __LINE__, "cannot restore %s", c->path);
}

static int st_op(void *p, char *err, size_t errlen)
{
    StCtx *c = p;
    return st_write(c->path, c->tensors, 3, st_metadata_pairs, err, errlen);
}

static void st_check(void *p, long n, int rc, const char *err)
{
    StCtx *c = p;
    check_replaced("st_write", c->dir, c->path, &c->before, &c->after, n, rc);
    char rerr[512];
    SafeTensors *st = st_read(c->path, rerr, sizeof rerr);
    if (!st)
        test_fail(__FILE__, __LINE__, "st_write, run %ld: the file left does not read: %s",
                  n, rerr);
    st_free(st);
}

static int st_init(StCtx *c)
{
    memset(c, 0, sizeof *c);
    if (make_dir(c->dir, sizeof c->dir) < 0)
        return -1;
    snprintf(c->path, sizeof c->path, "%s/weights.safetensors", c->dir);
    static const int64_t shapes[3][4] = {{2, 3, 4, 1}, {24, 0, 0, 0}, {4, 6, 0, 0}};
    static const int ndims[3] = {4, 1, 2};
    for (int i = 0; i < 3; i++) {
        StTensor *t = &c->tensors[i];
        snprintf(t->name, sizeof t->name, "layer_%d/kernel", i);
        t->ndim = ndims[i];
        memcpy(t->shape, shapes[i], sizeof shapes[i]);
        t->count = 24;
        t->data = c->values[i];
        for (int k = 0; k < 24; k++)
            c->values[i][k] = (float)(i * 100 + k);
    }
    char err[512], ref[160];
    if (st_write(c->path, c->tensors, 3, st_metadata_pairs, err, sizeof err) < 0 ||
        read_bytes(c->path, &c->before) < 0)
        return -1;
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 24; k++)
            c->values[i][k] = -c->values[i][k] - 1;
    snprintf(ref, sizeof ref, "%s/reference.safetensors", c->dir);
    if (st_write(ref, c->tensors, 3, st_metadata_pairs, err, sizeof err) < 0 ||
        read_bytes(ref, &c->after) < 0 || unlink(ref) < 0)
        return -1;
    return 0;
}

TEST(fault_safetensors_write)
{
    StCtx c;
    if (st_init(&c) < 0) {
        test_fail(__FILE__, __LINE__, "cannot set up the safetensors files in %s", c.dir);
        goto out;
    }
    for (size_t k = 0; k <= N_KINDS; k++) {
        FaultLoop loop = {.name = "st_write", .kind = k < N_KINDS ? kinds[k] : FAULT_ALLOC,
                          .ctx = &c, .setup = st_setup, .op = st_op, .check = st_check,
                          .persist = k == N_KINDS};
        FaultLoopResult r = fault_loop(&loop);
        CHECK(r.points > 0);
    }
out:
    free(c.before.data);
    free(c.after.data);
    remove_tree(c.dir);
}

/* ---- the net's allocation ------------------------------------------------------------- */

typedef struct {
    ModelConfig cfg;
    Net *net;                    /* the last build, until checked */
    int n_layers, n_params;      /* of a build without faults */
    size_t params, memory;
} NetCtx;

static int net_op(void *p, char *err, size_t errlen)
{
    NetCtx *c = p;
    c->net = model_build(&c->cfg, 1, err, errlen);
    return c->net ? 0 : -1;
}

/* A net built in spite of a failed allocation must be the net built without one. */
static void net_check(void *p, long n, int rc, const char *err)
{
    NetCtx *c = p;
    if (c->net && (net_n_layers(c->net) != c->n_layers || net_n_params(c->net) != c->n_params ||
                   net_count_params(c->net, true) + net_count_params(c->net, false) != c->params ||
                   net_memory_bytes(c->net) != c->memory))
        test_fail(__FILE__, __LINE__, "model_build(%s), run %ld: the net differs from the one "
                  "built without faults", c->cfg.name, n);
    net_free(c->net);
    c->net = NULL;
}

TEST(fault_net_allocation)
{
    static const char *const models[] = {"plain", "mobilenet", "resnet18", "resnet50"};
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        NetCtx c = {.cfg = model_config_default(models[m])};
        c.cfg.size = 32;
        c.cfg.classes = 4;
        c.cfg.batch = 2;
        c.cfg.alpha = 0.25;
        if (strcmp(models[m], "resnet50") != 0)
            c.cfg.width = 8;
        char err[512], name[64];
        Net *ref = model_build(&c.cfg, 1, err, sizeof err);
        if (!ref) {
            test_fail(__FILE__, __LINE__, "model_build(%s): %s", models[m], err);
            continue;
        }
        c.n_layers = net_n_layers(ref);
        c.n_params = net_n_params(ref);
        c.params = net_count_params(ref, true) + net_count_params(ref, false);
        c.memory = net_memory_bytes(ref);
        net_free(ref);
        snprintf(name, sizeof name, "model_build(%s)", models[m]);
        for (int persist = 0; persist < 2; persist++) {
            FaultLoop loop = {.name = name, .kind = FAULT_ALLOC, .ctx = &c, .op = net_op,
                              .check = net_check, .persist = persist};
            CHECK(fault_loop(&loop).points > 0);
        }
    }
}

/* ---- the store -------------------------------------------------------------------------- */

#define STATS_ROWS 6

typedef struct {
    TmpDb db;
    Store *s;                      /* the connection under faults, kept across runs */
    Store *reader;                 /* another connection: what other threads see */
    int64_t job;                   /* the job stored before the loops */
    StoreEpoch epochs[2];          /* its epochs */
    StoreLayerStat stats[STATS_ROWS];
    int jobs_before;               /* jobs stored when the run started */
    int stats_epoch;               /* the epoch the run's statistics go to */
} StoreCtx;

static int count_jobs(Store *s)
{
    int counts[STORE_JOB_STATUS_COUNT], total = 0;
    if (store_job_counts(s, counts) != STORE_OK)
        return -1;
    for (int i = 0; i < STORE_JOB_STATUS_COUNT; i++)
        total += counts[i];
    return total;
}

/* Statistics rows of the job at epoch, or -1 when the store cannot read them. */
static int count_stats(Store *s, int64_t job, int epoch)
{
    int total = 0;
    for (int m = 0; m < 2; m++) {
        StoreLayerStat *rows = NULL;
        int n = 0;
        if (store_stats_get(s, job, epoch, m ? STORE_MODE_TRAIN : STORE_MODE_INFERENCE,
                            STORE_QTY_WEIGHT, &rows, &n) != STORE_OK)
            return -1;
        free(rows);
        total += n;
    }
    return total;
}

/* What every run must leave: the database passes integrity_check, the rows stored before
 * the loops are as they were, and both connections can still read. */
static void check_store_intact(StoreCtx *c, const char *what, long n)
{
    char msg[512];
    if (fault_sqlite_integrity(c->db.db, msg, sizeof msg) < 0)
        test_fail(__FILE__, __LINE__, "%s, run %ld: integrity_check: %s", what, n, msg);
    Store *views[2] = {c->reader, c->s};
    for (int v = 0; v < 2; v++) {
        StoreJob job;
        StoreEpoch *rows = NULL;
        int n_rows = 0;
        if (store_job_get(views[v], c->job, &job) != STORE_OK) {
            test_fail(__FILE__, __LINE__, "%s, run %ld: the earlier job cannot be read (%s "
                      "connection): %s", what, n, v ? "faulted" : "other",
                      store_errmsg(views[v]));
            continue;
        }
        store_job_deinit(&job);
        if (store_epoch_list(views[v], c->job, &rows, &n_rows) != STORE_OK || n_rows != 2 ||
            rows[0].val_acc != c->epochs[0].val_acc || rows[1].train_loss != c->epochs[1].train_loss)
            test_fail(__FILE__, __LINE__, "%s, run %ld: the earlier epochs changed (%s "
                      "connection)", what, n, v ? "faulted" : "other");
        free(rows);
        if (count_stats(views[v], c->job, 0) != STATS_ROWS)
            test_fail(__FILE__, __LINE__, "%s, run %ld: the earlier statistics changed (%s "
                      "connection)", what, n, v ? "faulted" : "other");
    }
}

static StoreJobNew fault_job(int64_t seed)
{
    return sample_job("plain", "he_uniform", seed);
}

static void submit_setup(void *p)
{
    StoreCtx *c = p;
    c->jobs_before = count_jobs(c->reader);
}

static int submit_op(void *p, char *err, size_t errlen)
{
    StoreCtx *c = p;
    StoreJobNew jobs[3] = {fault_job(1), fault_job(2), fault_job(3)};
    StoreSubmit sub = {.grid_config_json = "{\"seeds\":[1,2,3]}", .jobs = jobs, .n_jobs = 3};
    StoreSubmitResult res = {0};
    int rc = store_submit(c->s, &sub, &res);
    store_submit_result_deinit(&res);
    if (rc != STORE_OK) {
        snprintf(err, errlen, "%s", store_errmsg(c->s));
        return -1;
    }
    return 0;
}

static void submit_check(void *p, long n, int rc, const char *err)
{
    StoreCtx *c = p;
    check_store_intact(c, "store_submit", n);
    int now = count_jobs(c->reader);
    if (rc == 0 ? now != c->jobs_before + 3
                : now != c->jobs_before && now != c->jobs_before + 3)
        test_fail(__FILE__, __LINE__, "store_submit, run %ld (%s): %d jobs stored, %d before; "
                  "a grid of 3 must be stored whole or not at all", n,
                  rc == 0 ? "succeeded" : "failed", now, c->jobs_before);
}

static void stats_setup(void *p)
{
    StoreCtx *c = p;
    c->stats_epoch++;
}

static int stats_op(void *p, char *err, size_t errlen)
{
    StoreCtx *c = p;
    if (store_stats_put(c->s, c->job, c->stats_epoch, c->stats, STATS_ROWS) != STORE_OK) {
        snprintf(err, errlen, "%s", store_errmsg(c->s));
        return -1;
    }
    return 0;
}

static void stats_check(void *p, long n, int rc, const char *err)
{
    StoreCtx *c = p;
    check_store_intact(c, "store_stats_put", n);
    int now = count_stats(c->reader, c->job, c->stats_epoch);
    if (rc == 0 ? now != STATS_ROWS : now != 0 && now != STATS_ROWS)
        test_fail(__FILE__, __LINE__, "store_stats_put, run %ld (%s): %d of %d rows stored",
                  n, rc == 0 ? "succeeded" : "failed", now, STATS_ROWS);
}

static int store_init(StoreCtx *c)
{
    char err[512];
    memset(c, 0, sizeof *c);
    if (make_db(&c->db) < 0 || fault_sqlite_install(err, sizeof err) < 0 ||
        !(c->s = tmpdb_open(&c->db)) || !(c->reader = tmpdb_open(&c->db)))
        return -1;
    StoreJobNew j = fault_job(0);
    if (store_job_insert(c->s, &j, &c->job) != STORE_OK)
        return -1;
    c->epochs[0] = (StoreEpoch){.epoch = 1, .train_loss = 1.5, .train_acc = 0.4,
                                .val_loss = 1.75, .val_acc = 0.375, .lr = 0.01, .seconds = 2};
    c->epochs[1] = (StoreEpoch){.epoch = 2, .train_loss = 1.25, .train_acc = 0.5,
                                .val_loss = 1.5, .val_acc = 0.5, .lr = 0.01, .seconds = 2};
    for (int i = 0; i < STATS_ROWS; i++) {
        StoreLayerStat *s = &c->stats[i];
        s->mode = i % 2 ? STORE_MODE_TRAIN : STORE_MODE_INFERENCE;
        s->quantity = STORE_QTY_WEIGHT;
        s->layer_index = i / 2;
        snprintf(s->layer_name, sizeof s->layer_name, "conv_%d", i / 2);
        snprintf(s->layer_type, sizeof s->layer_type, "conv2d");
        s->n = 864;
        s->mean = 0.01 * i;
        s->std = 0.1;
        s->min = -0.3;
        s->max = 0.3;
        s->predicted_var = 0.01;
        s->hist_lo = -0.3;
        s->hist_hi = 0.3;
        for (int b = 0; b < STORE_HIST_BINS; b++)
            s->hist[b] = (uint32_t)(b + i);
    }
    return store_epoch_put(c->s, c->job, &c->epochs[0]) == STORE_OK &&
                   store_epoch_put(c->s, c->job, &c->epochs[1]) == STORE_OK &&
                   store_stats_put(c->s, c->job, 0, c->stats, STATS_ROWS) == STORE_OK
               ? 0 : -1;
}

TEST(fault_store)
{
    StoreCtx c;
    if (store_init(&c) < 0) {
        test_fail(__FILE__, __LINE__, "cannot set up the database in %s: %s", c.db.dir,
                  c.s ? store_errmsg(c.s) : "(no connection)");
        goto out;
    }
    for (size_t k = 0; k < N_KINDS; k++) {
        /* SQLite recovers from some failed allocations by itself (benign failures);
         * checks verify what it stored then. */
        bool absorb = kinds[k] == FAULT_ALLOC;
        FaultLoop submit = {.name = "store_submit (grid of 3 jobs)", .kind = kinds[k],
                            .ctx = &c, .setup = submit_setup, .op = submit_op,
                            .check = submit_check, .may_absorb = absorb};
        FaultLoop stats = {.name = "store_stats_put (6 layers)", .kind = kinds[k], .ctx = &c,
                           .setup = stats_setup, .op = stats_op, .check = stats_check,
                           .may_absorb = absorb};
        CHECK(fault_loop(&submit).points > 0);
        CHECK(fault_loop(&stats).points > 0);
    }
out:
    store_close(c.s);
    store_close(c.reader);
    tmpdb_deinit(&c.db);
}

/* ---- opening a new database: the migrations -------------------------------------------- */

typedef struct {
    TmpDb db;
    Store *s;
} OpenCtx;

static void open_setup(void *p)
{
    OpenCtx *c = p;
    char path[160];
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s%s", c->db.db, suffixes[i]);
        unlink(path);
    }
}

static int open_op(void *p, char *err, size_t errlen)
{
    OpenCtx *c = p;
    c->s = store_open(c->db.db, err, errlen);
    return c->s ? 0 : -1;
}

/* A failed open leaves a database that opens (migrating the rest) and passes
 * integrity_check, at the latest schema version. */
static void open_check(void *p, long n, int rc, const char *err)
{
    OpenCtx *c = p;
    store_close(c->s);
    c->s = NULL;
    char oerr[512], msg[512];
    Store *s = store_open(c->db.db, oerr, sizeof oerr);
    if (!s) {
        test_fail(__FILE__, __LINE__, "store_open, run %ld (%s): the database does not open "
                  "afterwards: %s", n, rc ? "failed" : "succeeded", oerr);
        return;
    }
    if (store_schema_version(s) != store_schema_latest())
        test_fail(__FILE__, __LINE__, "store_open, run %ld: schema version %d, not %d", n,
                  store_schema_version(s), store_schema_latest());
    store_close(s);
    if (fault_sqlite_integrity(c->db.db, msg, sizeof msg) < 0)
        test_fail(__FILE__, __LINE__, "store_open, run %ld: integrity_check: %s", n, msg);
}

/* On a new, empty database SQLite treats some failed writes and syncs of its switch to
 * WAL mode as harmless (there is no earlier content to protect) and goes on; the check
 * then verifies what it made of them, as it does for absorbed allocations. */
TEST(fault_store_open_new_database)
{
    OpenCtx c = {0};
    char err[512];
    if (make_db(&c.db) < 0 || fault_sqlite_install(err, sizeof err) < 0) {
        test_fail(__FILE__, __LINE__, "cannot set up the database directory");
        return;
    }
    for (size_t k = 0; k < N_KINDS; k++) {
        /* Some 19,000 allocations, each run replaying the open up to its point: every
         * 8th is tried, from an offset drawn per run. */
        FaultLoop loop = {.name = "store_open (new database)", .kind = kinds[k], .ctx = &c,
                          .setup = open_setup, .op = open_op, .check = open_check,
                          .may_absorb = true, .stride = kinds[k] == FAULT_ALLOC ? 8 : 1};
        CHECK(fault_loop(&loop).points > 0);
    }
    tmpdb_deinit(&c.db);
}

/* The loops must be able to fail: a write error that the code under test swallowed is
 * caught. */
static int swallowing_op(void *p, char *err, size_t errlen)
{
    const char *path = p;
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int fd = fileno(f);
    ssize_t w = write(fd, "x", 1); /* the error is dropped on purpose */
    (void)w;
    fclose(f);
    return 0;
}

static void no_check(void *p, long n, int rc, const char *err)
{
}

TEST(fault_loop_catches_a_swallowed_write_error)
{
    char path[] = "/tmp/initlab-fault-swallow-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    FaultLoop loop = {.name = "swallowing writer", .kind = FAULT_WRITE, .ctx = path,
                      .op = swallowing_op, .check = no_check};
    FaultLoopResult r = fault_loop_run(&loop);
    unlink(path);
    CHECK_INT(r.points, 1);
    CHECK_INT(r.absorbed, 1);
    CHECK_INT(r.problems, 1);
}
