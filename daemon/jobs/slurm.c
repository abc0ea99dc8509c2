/* slurm.c — the Slurm executor: sbatch, squeue, sacct and scancel, run from one thread
 * (slurm.h). */
#include "jobs/slurm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/fileio.h"
#include "util/log.h"

extern char **environ;

#define MAX_CANCELS 256
#define OUTPUT_MAX (1 << 20)

typedef struct {
    int64_t id;
    char slurm_id[STORE_SLURM_ID_MAX];
} Cancel;

struct SlurmExecutor {
    SlurmConfig cfg;
    char *strings;          /* one block holding copies of cfg's strings */
    char *db_path;
    void (*changed)(void *user, Store *s, int64_t id);
    void *user;
    pthread_mutex_t lock;   /* guards cancels, n_cancels, stopping */
    pthread_cond_t wake;
    Cancel cancels[MAX_CANCELS];
    int n_cancels;
    bool stopping;
    pthread_t thread;
    bool started;
    char last_error[512];   /* the last command failure, logged once while it lasts */
};

/* ---- commands ----------------------------------------------------------------------- */

/* Runs argv (argv[0] looked up in PATH) with input on its standard input (may be NULL),
 * collecting its standard output into *out (heap, NUL-terminated) and the first line of
 * its standard error into err. Returns the exit status (0..255), or -1 with err set when
 * it could not run or died of a signal. */
static int run_command(char *const argv[], const char *input, char **out, char *err,
                       size_t errlen)
{
    int in[2] = {-1, -1}, o[2] = {-1, -1}, e[2] = {-1, -1};
    *out = NULL;
    err[0] = '\0';
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, o[1], 1);
    posix_spawn_file_actions_adddup2(&fa, e[1], 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(o[1]);
    close(e[1]);
    in[0] = o[1] = e[1] = -1;
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", argv[0], strerror(rc));
        goto fail;
    }
    if (input) {
        size_t n = strlen(input), done = 0;
        while (done < n) {
            ssize_t w = write(in[1], input + done, n - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            done += (size_t)w;
        }
    }
    close(in[1]);
    in[1] = -1;
    size_t cap = 4096, len = 0, elen = 0;
    char *buf = malloc(cap);
    char ebuf[1024];
    struct pollfd p[2] = {{.fd = o[0], .events = POLLIN}, {.fd = e[0], .events = POLLIN}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int k = 0; k < 2; k++) {
            if (p[k].fd < 0 || !(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[4096];
            ssize_t r = read(p[k].fd, chunk, sizeof chunk);
            if (r <= 0) {
                close(p[k].fd);
                p[k].fd = -1;
                open_fds--;
                continue;
            }
            if (k == 0 && buf && len + (size_t)r + 1 <= OUTPUT_MAX) {
                if (len + (size_t)r + 1 > cap) {
                    while (len + (size_t)r + 1 > cap)
                        cap *= 2;
                    char *g = realloc(buf, cap);
                    if (!g) {
                        free(buf);
                        buf = NULL;
                        continue;
                    }
                    buf = g;
                }
                memcpy(buf + len, chunk, (size_t)r);
                len += (size_t)r;
            } else if (k == 1 && elen < sizeof ebuf - 1) {
                size_t take = (size_t)r < sizeof ebuf - 1 - elen ? (size_t)r
                                                                : sizeof ebuf - 1 - elen;
                memcpy(ebuf + elen, chunk, take);
                elen += take;
            }
        }
    }
    o[0] = e[0] = -1;
    ebuf[elen] = '\0';
    char *nl = strchr(ebuf, '\n');
    if (nl)
        *nl = '\0';
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    buf[len] = '\0';
    *out = buf;
    snprintf(err, errlen, "%.200s", ebuf);
    if (!WIFEXITED(status)) {
        snprintf(err, errlen, "%s died of signal %d", argv[0], WTERMSIG(status));
        return -1;
    }
    return WEXITSTATUS(status);
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (o[i] >= 0)
            close(o[i]);
        if (e[i] >= 0)
            close(e[i]);
    }
    return -1;
}

/* Logs a command failure once while the same failure lasts. */
static void command_failed(SlurmExecutor *x, const char *what, const char *why)
{
    char line[512];
    snprintf(line, sizeof line, "%s: %s", what, why);
    if (strcmp(line, x->last_error) != 0)
        log_warn("slurm", "%s", line);
    snprintf(x->last_error, sizeof x->last_error, "%s", line);
}

/* ---- the batch job ------------------------------------------------------------------ */

void slurm_argv_free(char **argv)
{
    for (char **a = argv; a && *a; a++)
        free(*a);
    free(argv);
}

/* Appends a single-quoted copy of s to the heap string *text. */
static int append_quoted(char **text, const char *s)
{
    size_t n = strlen(*text), extra = 3;
    for (const char *p = s; *p; p++)
        extra += *p == '\'' ? 4 : 1;
    char *t = realloc(*text, n + extra + 2);
    if (!t)
        return -1;
    *text = t;
    char *w = t + n;
    *w++ = ' ';
    *w++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(w, "'\\''", 4);
            w += 4;
        } else {
            *w++ = *p;
        }
    }
    *w++ = '\'';
    *w = '\0';
    return 0;
}

static int append(char **text, const char *s)
{
    size_t n = strlen(*text), m = strlen(s);
    char *t = realloc(*text, n + m + 1);
    if (!t)
        return -1;
    memcpy(t + n, s, m + 1);
    *text = t;
    return 0;
}

int slurm_batch(const SlurmConfig *cfg, int64_t job_id, int priority, char ***argv_out,
                char **script_out)
{
    *argv_out = NULL;
    *script_out = NULL;
    char **argv = calloc(64, sizeof *argv);
    int n = 0;
    if (!argv)
        return -1;
#define ADD(...)                                                                           \
    do {                                                                                   \
        if (n >= 62 || asprintf(&argv[n], __VA_ARGS__) < 0) {                              \
            argv[n] = NULL;                                                                \
            goto fail;                                                                     \
        }                                                                                  \
        n++;                                                                               \
    } while (0)
    ADD("sbatch");
    ADD("--parsable");
    ADD("--job-name=initlab-%lld", (long long)job_id);
    ADD("--output=%s/initlab-%lld-%%j.out", cfg->log_dir, (long long)job_id);
    ADD("--cpus-per-task=%d", cfg->cpus_per_task > 0 ? cfg->cpus_per_task : 1);
    /* Higher initlab priority, lower nice: Slurm starts it first among initlab's jobs. */
    int p = priority < -10000 ? -10000 : priority > 10000 ? 10000 : priority;
    ADD("--nice=%d", 10000 - p);
    ADD("--no-requeue");
    if (cfg->signal_seconds > 0)
        ADD("--signal=B:USR1@%d", cfg->signal_seconds);
    if (cfg->partition)
        ADD("--partition=%s", cfg->partition);
    if (cfg->account)
        ADD("--account=%s", cfg->account);
    if (cfg->time_limit)
        ADD("--time=%s", cfg->time_limit);
    if (cfg->mem)
        ADD("--mem=%s", cfg->mem);
    if (cfg->gres)
        ADD("--gres=%s", cfg->gres);
    if (cfg->extra_options) {
        char *copy = strdup(cfg->extra_options), *save = NULL;
        if (!copy)
            goto fail;
        for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
            if (n >= 62 || !(argv[n++] = strdup(tok))) {
                free(copy);
                goto fail;
            }
        free(copy);
    }
#undef ADD
    char *script = strdup("#!/bin/sh\n");
    char head[160];
    snprintf(head, sizeof head, "# initlab job %lld: one attempt, leased from the daemon "
             "(initlab serve --executor slurm)\nexec", (long long)job_id);
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%lld", (long long)job_id);
    if (!script || append(&script, head) < 0 || append_quoted(&script, cfg->worker_bin) < 0 ||
        append(&script, " worker --server") < 0 ||
        append_quoted(&script, cfg->server_url) < 0 ||
        append(&script, " --token-file") < 0 || append_quoted(&script, cfg->token_file) < 0 ||
        append(&script, " --once --job") < 0 || append_quoted(&script, idtext) < 0 ||
        (cfg->data_root && (append(&script, " --data-root") < 0 ||
                            append_quoted(&script, cfg->data_root) < 0)) ||
        (cfg->cache_dir && (append(&script, " --cache-dir") < 0 ||
                            append_quoted(&script, cfg->cache_dir) < 0)) ||
        (cfg->ca_file && (append(&script, " --ca-file") < 0 ||
                          append_quoted(&script, cfg->ca_file) < 0)) ||
        append(&script, "\n") < 0) {
        free(script);
        goto fail;
    }
    *argv_out = argv;
    *script_out = script;
    return 0;
fail:
    slurm_argv_free(argv);
    return -1;
}

/* ---- tracking ----------------------------------------------------------------------- */

/* True for the states of a Slurm job that will not run (again) by itself. */
static bool state_ended(const char *st)
{
    static const char *const ended[] = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                        "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
                                        "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED", NULL};
    for (int i = 0; ended[i]; i++)
        if (strncmp(st, ended[i], strlen(ended[i])) == 0)
            return true;
    return false;
}

/* The state of slurm_id in squeue's output text ("ID|STATE" lines), or NULL. Writes it to
 * buf. */
static const char *squeue_state(const char *text, const char *slurm_id, char *buf, size_t n)
{
    size_t idlen = strlen(slurm_id);
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > idlen && strncmp(line, slurm_id, idlen) == 0 && line[idlen] == '|') {
            size_t sl = len - idlen - 1;
            snprintf(buf, n, "%.*s", (int)(sl < n ? sl : n - 1), line + idlen + 1);
            return buf;
        }
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

/* The state sacct reports for slurm_id (accounting, then the job-completion log), or
 * "UNKNOWN" when neither knows it. */
static void sacct_state(SlurmExecutor *x, const char *slurm_id, char *buf, size_t n)
{
    static const char *const modes[2][10] = {
        {"sacct", "-n", "-P", "-X", "-o", "State", "-j", NULL},
        {"sacct", "-c", "-n", "-P", "-o", "State", "-j", NULL},
    };
    snprintf(buf, n, "UNKNOWN");
    for (int m = 0; m < 2; m++) {
        char *argv[10] = {0};
        int k = 0;
        for (; modes[m][k]; k++)
            argv[k] = (char *)modes[m][k];
        argv[k++] = (char *)slurm_id;
        argv[k] = NULL;
        char *out = NULL, err[256];
        int rc = run_command(argv, NULL, &out, err, sizeof err);
        /* The last non-empty line is the last attempt's record. */
        const char *last = NULL;
        char *save = NULL;
        for (char *line = rc == 0 && out ? strtok_r(out, "\n", &save) : NULL; line;
             line = strtok_r(NULL, "\n", &save))
            last = line;
        if (last) {
            snprintf(buf, n, "%s", last);
            free(out);
            return;
        }
        free(out);
    }
    (void)x;
}

static void scancel(SlurmExecutor *x, const char *slurm_id)
{
    char *argv[] = {"scancel", (char *)slurm_id, NULL};
    char *out = NULL, err[256];
    int rc = run_command(argv, NULL, &out, err, sizeof err);
    free(out);
    if (rc != 0)
        command_failed(x, "scancel", err[0] ? err : "failed");
    else
        log_info("slurm", "Slurm job %s cancelled (scancel)", slurm_id);
}

/* Acts on tracked job j whose Slurm job ended in state st. */
static void job_ended_in_slurm(SlurmExecutor *x, Store *s, const StoreJob *j, const char *st)
{
    bool cancelled = strncmp(st, "CANCELLED", 9) == 0;
    char why[256];
    if (j->status == STORE_JOB_RUNNING && j->lease_expires_at > 0) {
        /* Its worker is gone (or an orphan Slurm gave up on): end the attempt, so that
         * whatever it still sends is refused. */
        snprintf(why, sizeof why, "its Slurm job %s was cancelled (scancel)", j->slurm_job_id);
        if (store_job_end_attempt(s, j->id, j->attempt_uid,
                                  cancelled ? STORE_JOB_CANCELLED : STORE_JOB_QUEUED,
                                  cancelled ? why : NULL) == STORE_OK) {
            log_warn("slurm", "job %lld: its Slurm job %s ended (%s) while it ran: %s",
                     (long long)j->id, j->slurm_job_id, st,
                     cancelled ? "cancelled" : "queued again; it resumes from its last "
                                               "checkpoint");
            if (cancelled)
                store_job_set_slurm(s, j->id, NULL);
            x->changed(x->user, s, j->id);
        }
        return;
    }
    if (j->status != STORE_JOB_QUEUED)
        return;
    if (cancelled) {
        snprintf(why, sizeof why, "its Slurm job %s was cancelled (scancel)", j->slurm_job_id);
        if (store_job_set_status(s, j->id, STORE_JOB_BIT(STORE_JOB_QUEUED), STORE_JOB_CANCELLED,
                                 why) == STORE_OK)
            log_info("slurm", "job %lld cancelled: %s", (long long)j->id, why);
    } else {
        log_info("slurm", "job %lld: Slurm job %s ended (%s) before its job did; submitting "
                 "it again", (long long)j->id, j->slurm_job_id, st);
    }
    store_job_set_slurm(s, j->id, NULL);
    x->changed(x->user, s, j->id);
}

/* One round: cancellations, the states of the tracked jobs, new submissions. */
static void poll_once(SlurmExecutor *x, Store *s)
{
    Cancel cancels[MAX_CANCELS];
    pthread_mutex_lock(&x->lock);
    int n_cancels = x->n_cancels;
    memcpy(cancels, x->cancels, sizeof cancels[0] * (size_t)n_cancels);
    x->n_cancels = 0;
    pthread_mutex_unlock(&x->lock);
    for (int i = 0; i < n_cancels; i++)
        scancel(x, cancels[i].slurm_id);

    StoreJob *jobs = NULL;
    int n = 0, active = 0;
    if (store_job_list_slurm(s, &jobs, &n) != STORE_OK) {
        command_failed(x, "listing the jobs submitted to Slurm", store_errmsg(s));
        return;
    }
    if (n > 0) {
        char uid[32];
        snprintf(uid, sizeof uid, "%u", (unsigned)getuid());
        char *argv[] = {"squeue", "-h", "-a", "-t", "all", "-u", uid, "-o", "%i|%T", NULL};
        char *out = NULL, err[256];
        int rc = run_command(argv, NULL, &out, err, sizeof err);
        if (rc != 0) {
            command_failed(x, "squeue", err[0] ? err : "failed");
            free(out);
            store_jobs_free(jobs, n);
            return;
        }
        for (int i = 0; i < n; i++) {
            char st[64];
            if (!squeue_state(out, jobs[i].slurm_job_id, st, sizeof st))
                sacct_state(x, jobs[i].slurm_job_id, st, sizeof st);
            if (state_ended(st) || strcmp(st, "UNKNOWN") == 0)
                job_ended_in_slurm(x, s, &jobs[i], st);
            else
                active++;
        }
        free(out);
    }
    store_jobs_free(jobs, n);

    int room = x->cfg.max_submitted > 0 ? x->cfg.max_submitted - active : 64;
    if (room <= 0)
        return;
    if (store_job_list_unsubmitted(s, room, &jobs, &n) != STORE_OK) {
        command_failed(x, "listing queued jobs", store_errmsg(s));
        return;
    }
    for (int i = 0; i < n; i++) {
        char **argv, *script, *out = NULL, err[256];
        if (slurm_batch(&x->cfg, jobs[i].id, jobs[i].priority, &argv, &script) < 0) {
            command_failed(x, "sbatch", "out of memory");
            break;
        }
        int rc = run_command(argv, script, &out, err, sizeof err);
        slurm_argv_free(argv);
        free(script);
        char id[STORE_SLURM_ID_MAX] = "";
        if (rc == 0 && out)
            sscanf(out, "%31[0-9_]", id);
        free(out);
        if (rc != 0 || !id[0]) {
            command_failed(x, "sbatch", err[0] ? err : "no job id in its output");
            break;
        }
        x->last_error[0] = '\0';
        if (store_job_set_slurm(s, jobs[i].id, id) != STORE_OK) {
            /* Claimed meanwhile by a pull worker, or cancelled: not needed any more. */
            log_info("slurm", "job %lld: %s; cancelling its Slurm job %s", (long long)jobs[i].id,
                     store_errmsg(s), id);
            scancel(x, id);
            continue;
        }
        log_info("slurm", "job %lld submitted as Slurm job %s", (long long)jobs[i].id, id);
        x->changed(x->user, s, jobs[i].id);
    }
    store_jobs_free(jobs, n);
}

static void *executor_main(void *arg)
{
    SlurmExecutor *x = arg;
    /* A command that exits before reading its input must not kill the daemon: SIGPIPE is
     * blocked in this thread (the write fails with EPIPE instead). */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    char err[512];
    Store *s = store_open(x->db_path, err, sizeof err);
    if (!s)
        log_error("slurm", "executor: %s", err);
    pthread_mutex_lock(&x->lock);
    while (s && !x->stopping) {
        pthread_mutex_unlock(&x->lock);
        poll_once(x, s);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long ns = until.tv_nsec + (long long)(x->cfg.poll_seconds * 1e9);
        until.tv_sec += (time_t)(ns / 1000000000LL);
        until.tv_nsec = (long)(ns % 1000000000LL);
        pthread_mutex_lock(&x->lock);
        if (!x->stopping && x->n_cancels == 0)
            pthread_cond_timedwait(&x->wake, &x->lock, &until);
    }
    pthread_mutex_unlock(&x->lock);
    store_close(s);
    return NULL;
}

/* Copies cfg's strings into one heap block owned by x. */
static int copy_config(SlurmExecutor *x, const SlurmConfig *cfg)
{
    const char **fields[] = {&x->cfg.server_url, &x->cfg.token_file, &x->cfg.worker_bin,
                             &x->cfg.data_root, &x->cfg.cache_dir, &x->cfg.ca_file,
                             &x->cfg.log_dir, &x->cfg.partition, &x->cfg.account,
                             &x->cfg.time_limit, &x->cfg.mem, &x->cfg.gres,
                             &x->cfg.extra_options};
    size_t nf = sizeof fields / sizeof fields[0], total = 0;
    x->cfg = *cfg;
    for (size_t i = 0; i < nf; i++)
        total += *fields[i] ? strlen(*fields[i]) + 1 : 0;
    if (!(x->strings = malloc(total + 1)))
        return -1;
    char *w = x->strings;
    for (size_t i = 0; i < nf; i++)
        if (*fields[i]) {
            size_t len = strlen(*fields[i]) + 1;
            memcpy(w, *fields[i], len);
            *fields[i] = w;
            w += len;
        }
    return 0;
}

SlurmExecutor *slurm_create(const SlurmConfig *cfg, const char *db_path,
                            void (*changed)(void *user, Store *s, int64_t id), void *user,
                            char *err, size_t errlen)
{
    if (!cfg->server_url || !cfg->token_file || !cfg->worker_bin || !cfg->log_dir) {
        snprintf(err, errlen, "the Slurm executor needs the URL the nodes reach the daemon "
                 "at, a worker token file, the worker binary and a log folder");
        return NULL;
    }
    if (file_mkdirs(cfg->log_dir, err, errlen) < 0)
        return NULL;
    SlurmExecutor *x = calloc(1, sizeof *x);
    if (!x || copy_config(x, cfg) < 0 || !(x->db_path = strdup(db_path))) {
        snprintf(err, errlen, "out of memory");
        slurm_free(x);
        return NULL;
    }
    if (!(x->cfg.poll_seconds > 0))
        x->cfg.poll_seconds = 5;
    x->changed = changed;
    x->user = user;
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->wake, NULL);
    if (pthread_create(&x->thread, NULL, executor_main, x) != 0) {
        snprintf(err, errlen, "cannot start the Slurm executor thread");
        slurm_free(x);
        return NULL;
    }
    x->started = true;
    log_info("slurm", "executor started: workers reach the daemon at %s, %d CPU(s) per job",
             x->cfg.server_url, x->cfg.cpus_per_task > 0 ? x->cfg.cpus_per_task : 1);
    return x;
}

void slurm_cancel(SlurmExecutor *x, int64_t id, const char *slurm_job_id)
{
    pthread_mutex_lock(&x->lock);
    if (x->n_cancels < MAX_CANCELS) {
        x->cancels[x->n_cancels].id = id;
        snprintf(x->cancels[x->n_cancels].slurm_id, sizeof x->cancels[0].slurm_id, "%s",
                 slurm_job_id);
        x->n_cancels++;
    } else {
        log_warn("slurm", "job %lld: too many cancellations pending; Slurm job %s is left to "
                 "end by itself", (long long)id, slurm_job_id);
    }
    pthread_cond_broadcast(&x->wake);
    pthread_mutex_unlock(&x->lock);
}

void slurm_free(SlurmExecutor *x)
{
    if (!x)
        return;
    if (x->started) {
        pthread_mutex_lock(&x->lock);
        x->stopping = true;
        pthread_cond_broadcast(&x->wake);
        pthread_mutex_unlock(&x->lock);
        pthread_join(x->thread, NULL);
        pthread_mutex_destroy(&x->lock);
        pthread_cond_destroy(&x->wake);
    }
    free(x->strings);
    free(x->db_path);
    free(x);
}
