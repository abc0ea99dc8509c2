/* worker.c — `initlab worker`: trains jobs leased from a remote daemon (jobs/remote.h), on
 * any machine: by hand, under systemd, in a Kubernetes Job, in a Slurm array or as the
 * Slurm executor's batch job. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "jobs/remote.h"
#include "util/httpc.h"
#include "util/log.h"

static const char usage_text[] =
    "usage: initlab worker --server URL [--token-file F] [--threads T] [--data-root DIR]\n"
    "                      [--cache-dir DIR] [--ca-file F] [--idle-exit S] [--poll S]\n"
    "                      [--once | --job ID] [--log-level L]\n"
    "\n"
    "Leases jobs from the daemon at URL (initlab serve) and trains them here with the same\n"
    "trainer the daemon runs: epochs, layer statistics, checkpoints and test results go back\n"
    "to the daemon, which stores them as it stores its own jobs'. A heartbeat renews the\n"
    "lease; a job whose worker disappears is queued again after --lease-timeout and resumes\n"
    "from the last checkpoint the daemon holds (nothing is shared but the HTTP connection).\n"
    "\n"
    "  --server URL       the daemon, http://HOST:PORT or https://HOST:PORT (required)\n"
    "  --token-file F     the bearer token (the daemon's --worker-token-file)\n"
    "  --threads T        compute threads (default: SLURM_CPUS_PER_TASK when set, else every\n"
    "                     core); use the daemon's --threads-per-job for identical results\n"
    "  --data-root DIR    datasets are found here, at their path below the daemon's\n"
    "                     --data-root (a shared file system, or a copy); the files are\n"
    "                     checked against the daemon's (names, sizes, split) before training\n"
    "                     (default: the daemon's own absolute path)\n"
    "  --cache-dir DIR    decoded-image caches and checkpoints in flight (default\n"
    "                     $XDG_CACHE_HOME/initlab, ~/.cache/initlab or /tmp/initlab-UID)\n"
    "  --ca-file F        PEM certificates to verify an https daemon (default: the system's)\n"
    "  --idle-exit S      exit 0 after S seconds without a job to lease (default: never)\n"
    "  --poll S           ask for a job every S seconds while idle (default 5)\n"
    "  --once             train one job, then exit\n"
    "  --job ID           train job ID only (queued, or started again by Slurm), then exit\n"
    "  --log-level L      error, warn, info (default) or debug\n"
    "\n"
    "SIGTERM, SIGINT or SIGUSR1 (Slurm's warning before the time limit): the running job\n"
    "checkpoints at its next step and goes back to the daemon's queue; then the worker exits 0.\n"
    "Exit status: 0 when the work is done (or there was none), 1 when the daemon could not be\n"
    "reached or refused the worker, 2 for a usage error.\n";

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    if (stop_flag && sig == SIGINT)
        _exit(130); /* a second Ctrl-C: at once, without the checkpoint */
    stop_flag = 1;
}

/* Reads a token file: the first line, trimmed. Returns a heap string or NULL. */
static char *read_token_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char buf[4200];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *s = buf;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t len = strcspn(s, " \t\r\n");
    char *token = strndup(s, len);
    explicit_bzero(buf, sizeof buf);
    return token;
}

static int parse_long(const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmd_worker(int argc, char **argv)
{
    const char *server = NULL, *token_file = NULL, *data_root = NULL, *cache_dir = NULL;
    const char *ca_file = NULL, *level_text = NULL;
    long threads = 0, idle_exit = -1, poll = 5, job = 0;
    bool once = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(a, "--once") == 0) {
            once = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "initlab worker: unknown option or missing value '%s'\n%s", a,
                    usage_text);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (strcmp(a, "--server") == 0)
            server = v;
        else if (strcmp(a, "--token-file") == 0)
            token_file = v;
        else if (strcmp(a, "--data-root") == 0)
            data_root = v;
        else if (strcmp(a, "--cache-dir") == 0)
            cache_dir = v;
        else if (strcmp(a, "--ca-file") == 0)
            ca_file = v;
        else if (strcmp(a, "--log-level") == 0)
            level_text = v;
        else if (strcmp(a, "--threads") == 0)
            bad = parse_long(v, 1, 4096, &threads);
        else if (strcmp(a, "--idle-exit") == 0)
            bad = parse_long(v, 0, 1L << 30, &idle_exit);
        else if (strcmp(a, "--poll") == 0)
            bad = parse_long(v, 1, 3600, &poll);
        else if (strcmp(a, "--job") == 0)
            bad = parse_long(v, 1, LONG_MAX, &job);
        else {
            fprintf(stderr, "initlab worker: unknown option '%s'\n%s", a, usage_text);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "initlab worker: %s: '%s' is not a valid value\n", a, v);
            return 2;
        }
    }
    if (!server || (strncmp(server, "http://", 7) != 0 && strncmp(server, "https://", 8) != 0)) {
        fprintf(stderr, "initlab worker: --server http(s)://HOST:PORT is required\n%s",
                usage_text);
        return 2;
    }
    LogLevel level = LOG_INFO;
    if (level_text && log_parse_level(level_text, &level) < 0) {
        fprintf(stderr, "initlab worker: --log-level: '%s' is not error, warn, info or "
                "debug\n", level_text);
        return 2;
    }
    log_set_level(level);
    const char *slurm_cpus = getenv("SLURM_CPUS_PER_TASK");
    long from_slurm = 0;
    if (!threads && slurm_cpus && parse_long(slurm_cpus, 1, 4096, &from_slurm) == 0)
        threads = from_slurm;
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? n : 1;
    }
    startup_wait_policy((int)threads);

    char *token = NULL;
    if (token_file && !(token = read_token_file(token_file))) {
        fprintf(stderr, "initlab worker: %s: %s\n", token_file, strerror(errno));
        return 1;
    }
    char cache[PATH_MAX];
    if (cache_dir)
        snprintf(cache, sizeof cache, "%s", cache_dir);
    else if (getenv("XDG_CACHE_HOME"))
        snprintf(cache, sizeof cache, "%s/initlab", getenv("XDG_CACHE_HOME"));
    else if (getenv("HOME"))
        snprintf(cache, sizeof cache, "%s/.cache/initlab", getenv("HOME"));
    else
        snprintf(cache, sizeof cache, "/tmp/initlab-%u", (unsigned)getuid());
    char host[256] = "localhost", name[320];
    gethostname(host, sizeof host - 1);
    const char *slurm_job = getenv("SLURM_JOB_ID");
    if (slurm_job)
        snprintf(name, sizeof name, "slurm %s", slurm_job);
    else
        snprintf(name, sizeof name, "%s:%ld", host, (long)getpid());

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    if (httpc_global_init() < 0) {
        fprintf(stderr, "initlab worker: libcurl could not start\n");
        free(token);
        return 1;
    }
    RemoteConfig cfg = {.server = server, .token = token, .ca_file = ca_file,
                        .data_root = data_root, .cache_dir = cache, .threads = (int)threads,
                        .worker = name, .host = host, .slurm_job_id = slurm_job,
                        .job_id = job, .stop = &stop_flag};
    log_info("worker", "%s: leasing %s from %s with %ld thread(s), cache %s", name,
             job ? "one job" : "jobs", server, threads, cache);
    int rc = 0, failures = 0;
    double idle_since = now_mono();
    char last_err[512] = "";
    while (!stop_flag) {
        char err[1024] = "";
        RemoteStats st;
        RemoteOutcome out = remote_run_one(&cfg, &st, err, sizeof err);
        if (out == REMOTE_RAN || out == REMOTE_LOST) {
            failures = 0;
            idle_since = now_mono();
            if (once || job)
                break;
            continue;
        }
        if (out == REMOTE_IDLE) {
            failures = 0;
            if (job) {
                log_info("worker", "job %ld: nothing to do: %s", job, err);
                break;
            }
        } else {
            if (strcmp(err, last_err) != 0)
                log_warn("worker", "%s", err);
            snprintf(last_err, sizeof last_err, "%.500s", err);
            if (++failures >= 3 && job) {
                rc = 1; /* the daemon never answered: Slurm records the failure */
                break;
            }
        }
        if (idle_exit >= 0 && now_mono() - idle_since >= (double)idle_exit) {
            log_info("worker", "no job for %ld s: exiting", idle_exit);
            break;
        }
        for (long w = 0; w < poll * 10 && !stop_flag; w++)
            usleep(100000);
    }
    if (token) {
        explicit_bzero(token, strlen(token));
        free(token);
    }
    return rc;
}

COMMAND(worker, "worker", cmd_worker, 12, "worker --server URL [--token-file F] ...",
        "lease jobs from a daemon and train them here (Slurm, Kubernetes, systemd)")
