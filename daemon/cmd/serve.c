/* serve.c — `initlab serve`: settings, start-up, systemd notification and watchdog, shutdown.
 *
 * DESIGN
 * The main thread parses the settings (defaults < config file < flags), opens the state
 * directory, builds the ApiContext, starts the HTTP server and then sleeps until a stop
 * signal (util/stopsig.h: the copies of one Ctrl-C that reach it count once). Under
 * systemd a supervisor thread sends WATCHDOG=1 every half watchdog interval, but only
 * while the daemon's own threads are live: the HTTP threads (server_liveness: none stuck
 * in a request, and GET /api/v1/health answered over the server's own probe connection,
 * which needs no free connection slot, so clients holding every slot cannot stop the
 * pings) and the job workers (their heartbeats); it keeps STATUS= up to date, looking
 * at the queue twice a second.
 * Shutdown: STOPPING=1, stop the supervisor, stop accepting, end the event streams, stop
 * the HTTP threads, then the jobs' shutdown hook. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/events.h"
#include "api/metrics.h"
#include "api/router.h"
#include "api/server.h"
#include "api/static.h"
#include "cmd/cmd.h"
#include "data/cache.h"
#include "jobs/storage.h"
#include "store/store.h"
#include "util/config.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/stopsig.h"

/* An HTTP thread inside one request for longer than this is stuck: handlers only read
 * SQLite (busy timeout 5 s) or files, so a minute is far beyond any honest request. */
#define HTTP_STUCK_SECONDS 60.0

static const char usage_text[] =
    "usage: initlab serve [--listen ADDR:PORT] [--state-dir DIR] [--data-root DIR]\n"
    "                     [--workers N] [--threads-per-job T] [--token-file F] [--web-dir DIR]\n"
    "                     [--config FILE] [--cors-origin O] [--allowed-host H,...]\n"
    "                     [--max-body BYTES] [--log-level L] [limits below]\n"
    "\n"
    "Runs the daemon: the job queue, its workers and the HTTP API with the dashboard.\n"
    "\n"
    "  --listen ADDR:PORT     address to listen on (default 127.0.0.1:8470; [::1]:PORT for\n"
    "                         IPv6; port 0 picks a free port, logged as \"listening on\")\n"
    "  --state-dir DIR        database, checkpoints and caches (default ./state, created)\n"
    "  --data-root DIR        datasets must lie under DIR (default: none may be registered)\n"
    "  --workers N            jobs trained at the same time by the daemon itself (default 1;\n"
    "                         0: only remote workers train, the daemon coordinates)\n"
    "  --threads-per-job T    compute threads of a job submitted without \"threads\" (default:\n"
    "                         every core); each job runs with the threads its configuration\n"
    "                         records\n"
    "  --retention R          checkpoints a done job keeps unless its keep_checkpoints says\n"
    "                         otherwise: best (latest.ckpt deleted), all or none (default best)\n"
    "  --keep-finished K      only the K jobs that ended last keep checkpoints, 0 for no limit;\n"
    "                         a job with keep_checkpoints \"all\" is never pruned (default 0)\n"
    "  --cache-limit BYTES    decoded-image caches beyond this many bytes (k, M, G suffixes)\n"
    "                         evict the least recently used, 0 for no limit but the free\n"
    "                         space (default 0)\n"
    "  --token-file F         require \"Authorization: Bearer <token>\" on /api/ (except\n"
    "                         /api/v1/health) and /metrics; F holds the token (16+ visible\n"
    "                         characters)\n"
    "  --web-dir DIR          dashboard files (default ./web, else the installed copy)\n"
    "  --config FILE          key = value settings; the flags above override them\n"
    "  --cors-origin O        send CORS headers to this origin (\"https://host:port\" or *)\n"
    "                         and accept its writes; other origins may not POST or DELETE\n"
    "  --allowed-host H,...   host names requests may carry in Host besides the listen\n"
    "                         address (and localhost, 127.0.0.1, [::1] when listening on\n"
    "                         loopback or all addresses; any IP when on all); \".example.org\"\n"
    "                         includes subdomains, * turns the check off\n"
    "  --max-body BYTES       largest request body, with optional k/M suffix (default 1M)\n"
    "  --log-level L          error, warn, info (default) or debug\n"
    "  --http-threads N       HTTP threads (default 4)\n"
    "  --connection-limit N   open connections in all (default 1024); 1/16 stays in reserve\n"
    "  --per-ip-limit N       open connections per client address or IPv6 /64 (default 512);\n"
    "                         at most 7/8 of the connection limit; at the limit the\n"
    "                         address's connection waiting longest on its client makes\n"
    "                         room for a new one\n"
    "  --sse-limit N          open event streams (default 64); at most half the per-ip limit\n"
    "  --header-timeout S     close a connection whose request head is not complete S seconds\n"
    "                         after it opened or after the previous reply (default 10)\n"
    "  --body-timeout S       close a connection whose request body is not complete S seconds\n"
    "                         after its head (default 30)\n"
    "  --connection-timeout S close a connection whose reply makes no progress for S seconds\n"
    "                         (default 30)\n"
    "  --sse-heartbeat S      comment line to idle event streams every S seconds (default 15)\n"
    "\n"
    "Remote workers (initlab worker --help) and TLS:\n"
    "  --worker-token-file F  a second token that may only lease and report jobs\n"
    "                         (/api/v1/worker/); give it to the workers, not the admin token\n"
    "  --lease-timeout S      a remote worker's lease ends S seconds after its last heartbeat\n"
    "                         and its job is queued again (default 60)\n"
    "  --heartbeat S          workers send a heartbeat every S seconds (default 10)\n"
    "  --max-upload BYTES     largest checkpoint a worker may upload (default 8G)\n"
    "  --tls-cert FILE        serve HTTPS with this PEM certificate (chain) ...\n"
    "  --tls-key FILE         ... and this PEM key (both, or neither)\n"
    "\n"
    "Executor (where queued jobs run):\n"
    "  --executor E           local (default: the daemon's --workers threads, and any remote\n"
    "                         worker that asks) or slurm: every queued job is submitted with\n"
    "                         sbatch as a batch job running `initlab worker --job ID --once`,\n"
    "                         tracked with squeue/sacct, cancelled with scancel, adopted again\n"
    "                         after a restart; --workers is then ignored\n"
    "  --slurm-url URL        the daemon's address as the nodes reach it (required)\n"
    "  --slurm-token-file F   a worker token file readable on the nodes (required)\n"
    "  --slurm-worker PATH    initlab on the nodes (default: this binary's path)\n"
    "  --slurm-data-root DIR  the workers' --data-root (default: --data-root)\n"
    "  --slurm-cache-dir DIR  the workers' --cache-dir (default: theirs)\n"
    "  --slurm-ca-file F      the workers' --ca-file, to verify --tls-cert\n"
    "  --slurm-log-dir DIR    Slurm's output files (default STATE/slurm)\n"
    "  --slurm-partition P    sbatch --partition (default: Slurm's)\n"
    "  --slurm-account A      sbatch --account\n"
    "  --slurm-time T         sbatch --time, the time limit\n"
    "  --slurm-mem M          sbatch --mem\n"
    "  --slurm-gres G         sbatch --gres (GPU jobs)\n"
    "  --slurm-cpus-per-task N  CPUs of each job; the worker runs that many threads (1)\n"
    "  --slurm-options \"...\"  more sbatch options, split at spaces\n"
    "  --slurm-signal S       USR1 S seconds before the time limit: the worker checkpoints and\n"
    "                         hands the job back to the queue (default 120; 0: none)\n"
    "  --slurm-poll S         ask Slurm every S seconds (default 5)\n"
    "  --slurm-max-jobs N     Slurm jobs submitted and not ended at once (default 0: all)\n"
    "  A job's priority becomes --nice=10000-priority.\n"
    "\n"
    "Config file keys are the flag names with '_' for '-' (listen, state_dir, max_body, ...).\n"
    "SIGTERM or SIGINT stops the daemon: running jobs checkpoint and are queued again.\n"
    "Copies of one stop that arrive within half a second count once (a terminal's Ctrl-C\n"
    "reaches every process of its group); a second stop after that exits at once.\n"
    "Under systemd (Type=notify) it sends READY=1 once it serves, WATCHDOG=1 while the HTTP\n"
    "threads and the workers are live (judged from inside: clients holding every connection\n"
    "do not stop it), and STATUS= with the queue state.\n";

typedef struct {
    char *listen, *state_dir, *data_root, *token_file, *web_dir, *cors_origin, *log_level;
    char *allowed_host, *retention;
    long keep_finished;
    long long cache_limit;
    long workers, threads_per_job, http_threads, connection_limit, per_ip_limit;
    long connection_timeout, sse_heartbeat, sse_limit, header_timeout, body_timeout;
    long long max_body;
    /* remote workers, TLS, the executor */
    char *worker_token_file, *tls_cert, *tls_key, *executor;
    long lease_timeout, heartbeat;
    long long max_upload;
    char *slurm_url, *slurm_token_file, *slurm_worker, *slurm_data_root, *slurm_cache_dir;
    char *slurm_ca_file, *slurm_log_dir, *slurm_partition, *slurm_account, *slurm_time;
    char *slurm_mem, *slurm_gres, *slurm_options;
    long slurm_cpus_per_task, slurm_signal, slurm_poll, slurm_max_jobs;
} Settings;

typedef enum { SET_STRING, SET_INT, SET_SIZE } SettingKind;

static const struct {
    const char *key; /* config key; the flag is "--" + key with '-' for '_' */
    SettingKind kind;
    size_t offset;
    long long min, max;
} settings_table[] = {
    {"listen", SET_STRING, offsetof(Settings, listen), 0, 0},
    {"state_dir", SET_STRING, offsetof(Settings, state_dir), 0, 0},
    {"data_root", SET_STRING, offsetof(Settings, data_root), 0, 0},
    {"workers", SET_INT, offsetof(Settings, workers), 0, 256},
    {"threads_per_job", SET_INT, offsetof(Settings, threads_per_job), 1, 1024},
    {"token_file", SET_STRING, offsetof(Settings, token_file), 0, 0},
    {"web_dir", SET_STRING, offsetof(Settings, web_dir), 0, 0},
    {"cors_origin", SET_STRING, offsetof(Settings, cors_origin), 0, 0},
    {"allowed_host", SET_STRING, offsetof(Settings, allowed_host), 0, 0},
    {"max_body", SET_SIZE, offsetof(Settings, max_body), 1024, 1LL << 32},
    {"log_level", SET_STRING, offsetof(Settings, log_level), 0, 0},
    {"http_threads", SET_INT, offsetof(Settings, http_threads), 1, 64},
    {"connection_limit", SET_INT, offsetof(Settings, connection_limit), 4, 100000},
    {"per_ip_limit", SET_INT, offsetof(Settings, per_ip_limit), 1, 100000},
    {"connection_timeout", SET_INT, offsetof(Settings, connection_timeout), 1, 3600},
    {"sse_heartbeat", SET_INT, offsetof(Settings, sse_heartbeat), 1, 3600},
    {"sse_limit", SET_INT, offsetof(Settings, sse_limit), 1, 100000},
    {"header_timeout", SET_INT, offsetof(Settings, header_timeout), 1, 3600},
    {"body_timeout", SET_INT, offsetof(Settings, body_timeout), 1, 3600},
    {"worker_token_file", SET_STRING, offsetof(Settings, worker_token_file), 0, 0},
    {"tls_cert", SET_STRING, offsetof(Settings, tls_cert), 0, 0},
    {"tls_key", SET_STRING, offsetof(Settings, tls_key), 0, 0},
    {"executor", SET_STRING, offsetof(Settings, executor), 0, 0},
    {"lease_timeout", SET_INT, offsetof(Settings, lease_timeout), 2, 86400},
    {"heartbeat", SET_INT, offsetof(Settings, heartbeat), 1, 3600},
    {"max_upload", SET_SIZE, offsetof(Settings, max_upload), 1 << 20, 1LL << 40},
    {"slurm_url", SET_STRING, offsetof(Settings, slurm_url), 0, 0},
    {"slurm_token_file", SET_STRING, offsetof(Settings, slurm_token_file), 0, 0},
    {"slurm_worker", SET_STRING, offsetof(Settings, slurm_worker), 0, 0},
    {"slurm_data_root", SET_STRING, offsetof(Settings, slurm_data_root), 0, 0},
    {"slurm_cache_dir", SET_STRING, offsetof(Settings, slurm_cache_dir), 0, 0},
    {"slurm_ca_file", SET_STRING, offsetof(Settings, slurm_ca_file), 0, 0},
    {"slurm_log_dir", SET_STRING, offsetof(Settings, slurm_log_dir), 0, 0},
    {"slurm_partition", SET_STRING, offsetof(Settings, slurm_partition), 0, 0},
    {"slurm_account", SET_STRING, offsetof(Settings, slurm_account), 0, 0},
    {"slurm_time", SET_STRING, offsetof(Settings, slurm_time), 0, 0},
    {"slurm_mem", SET_STRING, offsetof(Settings, slurm_mem), 0, 0},
    {"slurm_gres", SET_STRING, offsetof(Settings, slurm_gres), 0, 0},
    {"slurm_options", SET_STRING, offsetof(Settings, slurm_options), 0, 0},
    {"slurm_cpus_per_task", SET_INT, offsetof(Settings, slurm_cpus_per_task), 1, 4096},
    {"slurm_signal", SET_INT, offsetof(Settings, slurm_signal), 0, 86400},
    {"slurm_poll", SET_INT, offsetof(Settings, slurm_poll), 1, 3600},
    {"slurm_max_jobs", SET_INT, offsetof(Settings, slurm_max_jobs), 0, 1000000},
    {"retention", SET_STRING, offsetof(Settings, retention), 0, 0},
    {"keep_finished", SET_INT, offsetof(Settings, keep_finished), 0, 1000000},
    {"cache_limit", SET_SIZE, offsetof(Settings, cache_limit), 0, 1LL << 50},
};
#define NSETTINGS (int)(sizeof settings_table / sizeof settings_table[0])

static const char *const config_keys[] = {
    "listen", "state_dir", "data_root", "workers", "threads_per_job", "token_file", "web_dir",
    "cors_origin", "allowed_host", "max_body", "log_level", "http_threads", "connection_limit",
    "per_ip_limit", "connection_timeout", "sse_heartbeat", "sse_limit", "header_timeout",
    "body_timeout", "retention", "keep_finished", "cache_limit", "worker_token_file", "tls_cert",
    "tls_key", "executor", "lease_timeout", "heartbeat", "max_upload", "slurm_url",
    "slurm_token_file", "slurm_worker", "slurm_data_root", "slurm_cache_dir", "slurm_ca_file",
    "slurm_log_dir", "slurm_partition", "slurm_account", "slurm_time", "slurm_mem",
    "slurm_gres", "slurm_options", "slurm_cpus_per_task", "slurm_signal", "slurm_poll",
    "slurm_max_jobs", NULL};

static void settings_default(Settings *s)
{
    memset(s, 0, sizeof *s);
    s->workers = 1;
    s->max_body = 1 << 20;
    s->http_threads = 4;
    s->connection_limit = 1024;
    s->per_ip_limit = 512;
    s->connection_timeout = 30;
    s->sse_heartbeat = 15;
    s->sse_limit = 64;
    s->header_timeout = 10;
    s->body_timeout = 30;
    s->lease_timeout = 60;
    s->heartbeat = 10;
    s->max_upload = 8LL << 30;
    s->slurm_cpus_per_task = 1;
    s->slurm_signal = 120;
    s->slurm_poll = 5;
}

static void settings_free(Settings *s)
{
    for (int i = 0; i < NSETTINGS; i++)
        if (settings_table[i].kind == SET_STRING)
            free(*(char **)((char *)s + settings_table[i].offset));
}

/* Parses "123", "64k", "1M", "2G" (binary multiples). */
static int parse_size(const char *text, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || v < 0)
        return -1;
    long long mult = 1;
    if (*end == 'k' || *end == 'K')
        mult = 1LL << 10;
    else if (*end == 'm' || *end == 'M')
        mult = 1LL << 20;
    else if (*end == 'g' || *end == 'G')
        mult = 1LL << 30;
    if (mult > 1)
        end++;
    if (*end || v > (1LL << 40) / mult)
        return -1;
    *out = v * mult;
    return 0;
}

/* ConfigSetFn for both the config file and the flags. */
static int setting_set(void *ud, const char *key, const char *value, char *err, size_t errlen)
{
    Settings *s = ud;
    for (int i = 0; i < NSETTINGS; i++) {
        if (strcmp(settings_table[i].key, key) != 0)
            continue;
        void *field = (char *)s + settings_table[i].offset;
        long long lo = settings_table[i].min, hi = settings_table[i].max;
        switch (settings_table[i].kind) {
        case SET_STRING: {
            if (!*value) {
                snprintf(err, errlen, "must not be empty");
                return -1;
            }
            LogLevel level;
            if (strcmp(key, "log_level") == 0 && log_parse_level(value, &level) < 0) {
                snprintf(err, errlen, "'%s' is not error, warn, info or debug", value);
                return -1;
            }
            if (strcmp(key, "executor") == 0 && strcmp(value, "local") != 0 &&
                strcmp(value, "slurm") != 0) {
                snprintf(err, errlen, "'%s' is not local or slurm", value);
                return -1;
            }
            RetainKind kind;
            if (strcmp(key, "retention") == 0 && retention_parse(value, &kind) < 0) {
                snprintf(err, errlen, "'%s' is not best, all or none", value);
                return -1;
            }
            char *copy = strdup(value);
            if (!copy) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            free(*(char **)field);
            *(char **)field = copy;
            return 0;
        }
        case SET_INT: {
            char *end;
            errno = 0;
            long long v = strtoll(value, &end, 10);
            if (errno || end == value || *end || v < lo || v > hi) {
                snprintf(err, errlen, "'%s' is not an integer from %lld to %lld", value, lo, hi);
                return -1;
            }
            *(long *)field = (long)v;
            return 0;
        }
        case SET_SIZE: {
            long long v;
            if (parse_size(value, &v) < 0 || v < lo || v > hi) {
                snprintf(err, errlen, "'%s' is not a byte count from %lld to %lld (k, M, G "
                         "suffixes allowed)", value, lo, hi);
                return -1;
            }
            *(long long *)field = v;
            return 0;
        }
        }
    }
    snprintf(err, errlen, "unknown setting");
    return -1;
}

/* Maps "--state-dir" to "state_dir" in key (size bytes); false when it is no setting. */
static bool flag_key(const char *flag, char *key, size_t size)
{
    if (strncmp(flag, "--", 2) != 0 || strlen(flag + 2) >= size)
        return false;
    size_t n = 0;
    for (const char *p = flag + 2; *p; p++)
        key[n++] = *p == '-' ? '_' : *p;
    key[n] = 0;
    for (int i = 0; i < NSETTINGS; i++)
        if (strcmp(settings_table[i].key, key) == 0)
            return true;
    return strcmp(key, "config") == 0;
}

/* Reads the settings: defaults, then the --config file, then the other flags. Returns 0,
 * 1 after printing the usage for --help, 2 on a usage error (message printed). */
static int settings_parse(Settings *s, int argc, char **argv)
{
    const char *config = NULL;
    char err[512];
    /* First pass: syntax and --config; second: the flags over the file's settings. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 1; i < argc; i++) {
            const char *arg = argv[i];
            if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
                fputs(usage_text, stdout);
                return 1;
            }
            char flag[64], key[64];
            const char *eq = strchr(arg, '=');
            const char *value;
            snprintf(flag, sizeof flag, "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
            if (!flag_key(flag, key, sizeof key)) {
                fprintf(stderr, "initlab serve: unknown option '%s'\n%s", arg, usage_text);
                return 2;
            }
            if (eq) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                fprintf(stderr, "initlab serve: %s needs a value\n", flag);
                return 2;
            }
            if (strcmp(key, "config") == 0) {
                config = value;
                continue;
            }
            if (pass == 1 && setting_set(s, key, value, err, sizeof err) < 0) {
                fprintf(stderr, "initlab serve: %s: %s\n", flag, err);
                return 2;
            }
        }
        if (pass == 0 && config &&
            config_load(config, config_keys, setting_set, s, err, sizeof err) < 0) {
            fprintf(stderr, "initlab serve: %s\n", err);
            return 2;
        }
    }
    return 0;
}

/* ---- the running daemon ----------------------------------------------------------- */

typedef struct {
    Settings set;
    ApiContext ctx;
    char *state_dir;  /* absolute */
    char *db_path;    /* state_dir/initlab.db */
    char *data_root;  /* absolute or NULL */
    char *web_dir;    /* absolute or NULL */
    Auth *auth;
    SlurmConfig slurm;     /* ctx.slurm points here with --executor slurm */
    char *slurm_log_dir, *worker_bin; /* owned strings slurm points to */
    Metrics *metrics;
    EventHub *events;
    StaticDir *web;
    Router *router;
    Server *server;
    pthread_t supervisor;
    bool supervisor_running;
    pthread_mutex_t lock;  /* guards stopping */
    pthread_cond_t wake;
    bool stopping;
} Serve;

/* Blocks until SIGTERM or SIGINT; logs and ignores SIGHUP. Returns the signal. */
static int wait_for_stop(void)
{
    for (;;) {
        int sig = stopsig_wait();
        if (sig != SIGHUP)
            return sig;
        log_info("serve", "SIGHUP ignored: restart the service to apply new settings");
    }
}

/* mkdir -p with mode 0750 for the directories it creates. */
static int make_dirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0750) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0750) < 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(buf, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Opens the state directory: creates it, checks it is writable and fills ctx->state_dir.
 * The store opens its database here and runs the migrations, before the HTTP server
 * starts, so READY=1 is only sent once they ran. Returns 0, or -1 after logging why. */
static int serve_open_state(Serve *sv)
{
    const char *dir = sv->set.state_dir ? sv->set.state_dir : "state";
    if (make_dirs(dir) < 0) {
        log_error("serve", "state directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (access(dir, W_OK | X_OK) < 0) {
        log_error("serve", "state directory %s is not writable: %s", dir, strerror(errno));
        return -1;
    }
    if (!(sv->state_dir = realpath(dir, NULL))) {
        log_error("serve", "state directory %s: %s", dir, strerror(errno));
        return -1;
    }
    sv->ctx.state_dir = sv->state_dir;
    /* Migrations run here, before the socket listens, so READY=1 follows them. Handlers
     * and workers open their own connections on the same file. */
    char err[512];
    if (asprintf(&sv->db_path, "%s/initlab.db", sv->state_dir) < 0) {
        sv->db_path = NULL;
        log_error("serve", "out of memory");
        return -1;
    }
    Store *st = store_open(sv->db_path, err, sizeof err);
    if (!st) {
        log_error("serve", "%s", err);
        return -1;
    }
    log_info("serve", "database %s at schema version %d", sv->db_path,
             store_schema_version(st));
    store_close(st);
    sv->ctx.store_path = sv->db_path;
    return 0;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The web directory: --web-dir, else ./web, else PREFIX/share/initlab/web next to the
 * binary (PREFIX/bin/initlab), else web/ beside the binary. NULL when none exists. */
static char *find_web_dir(const char *configured)
{
    if (configured)
        return realpath(configured, NULL);
    if (is_dir("web"))
        return realpath("web", NULL);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/../share/initlab/web", exe);
    if (is_dir(path))
        return realpath(path, NULL);
    snprintf(path, sizeof path, "%s/web", exe);
    if (is_dir(path))
        return realpath(path, NULL);
    return NULL;
}

/* Raises the open-file limit to its hard maximum and returns the usable count. */
static long raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 1024;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? 65536 : (long)rl.rlim_cur;
}

static void describe_queue(Serve *sv, char *buf, size_t size)
{
    ApiQueueStats q;
    if (sv->ctx.jobs.stats && sv->ctx.jobs.stats(sv->ctx.jobs.handle, &q) == 0)
        snprintf(buf, size, "serving on %s; %d queued, %d running, %d of %d workers busy",
                 server_address(sv->server), q.queued, q.running, q.workers_busy, q.workers);
    else
        snprintf(buf, size, "serving on %s", server_address(sv->server));
}

/* STATUS= is compared with the queue this often, so that `systemctl status` follows a job
 * that starts or ends within a second; the liveness checks keep their own interval. */
#define STATUS_POLL_SECONDS 0.5

static double monotonic_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The systemd supervisor: watchdog pings gated on the liveness of the daemon's threads,
 * every half watchdog interval (5 s without a watchdog), and STATUS= sent whenever the
 * queue's description changed, looked at every STATUS_POLL_SECONDS. */
static void *supervisor_main(void *arg)
{
    Serve *sv = arg;
    uint64_t wd_usec = notify_watchdog_usec();
    double interval = wd_usec ? (double)wd_usec / 2e6 : 5.0;
    int probe_ms = (int)(interval * 1e3 / 2);
    probe_ms = probe_ms < 20 ? 20 : probe_ms > 2000 ? 2000 : probe_ms;
    char status[256] = "", last[256] = "", why[256] = "";
    bool failing = false, unhealthy = false;
    double next_check = monotonic_seconds();
    pthread_mutex_lock(&sv->lock);
    while (!sv->stopping) {
        pthread_mutex_unlock(&sv->lock);
        if (monotonic_seconds() >= next_check) {
            next_check = monotonic_seconds() + interval;
            int live = server_liveness(sv->server, probe_ms, HTTP_STUCK_SECONDS, why,
                                       sizeof why);
            bool http_ok = live >= 0;
            bool workers_ok = !sv->ctx.jobs.alive || sv->ctx.jobs.alive(sv->ctx.jobs.handle);
            /* Health answering 503 (the database file was deleted or replaced) is not a
             * hung daemon: a watchdog restart would open a new file at the path and lose
             * the open one, which an operator may still copy out. The pings go on; the log
             * says why. */
            if (live == 1 && !unhealthy)
                log_warn("serve", "%s: the daemon refuses work until it is restarted", why);
            else if (live == 0 && unhealthy)
                log_info("serve", "health answers 200 again");
            unhealthy = live == 1;
            if (http_ok && workers_ok) {
                if (wd_usec)
                    notify_send("WATCHDOG=1");
                if (failing)
                    log_info("serve", "health check passes again");
                failing = false;
            } else if (!failing) {
                log_warn("serve", "health check failed (%s); withholding the watchdog ping",
                         !http_ok ? why : "a job worker is stuck");
                failing = true;
            }
        }
        describe_queue(sv, status, sizeof status);
        if (strcmp(status, last) != 0) {
            notify_sendf("STATUS=%s", status);
            memcpy(last, status, sizeof last);
        }
        double wait = next_check - monotonic_seconds();
        wait = wait > STATUS_POLL_SECONDS ? STATUS_POLL_SECONDS : wait < 0 ? 0 : wait;
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        long long ns = deadline.tv_nsec + (long long)(wait * 1e9);
        deadline.tv_sec += (time_t)(ns / 1000000000LL);
        deadline.tv_nsec = (long)(ns % 1000000000LL);
        pthread_mutex_lock(&sv->lock);
        while (!sv->stopping &&
               pthread_cond_timedwait(&sv->wake, &sv->lock, &deadline) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&sv->lock);
    return NULL;
}

static int start_supervisor(Serve *sv)
{
    if (!getenv("NOTIFY_SOCKET"))
        return 0;
    if (pthread_create(&sv->supervisor, NULL, supervisor_main, sv) != 0)
        return -1;
    sv->supervisor_running = true;
    return 0;
}

static void stop_supervisor(Serve *sv)
{
    pthread_mutex_lock(&sv->lock);
    sv->stopping = true;
    pthread_cond_broadcast(&sv->wake);
    pthread_mutex_unlock(&sv->lock);
    if (sv->supervisor_running)
        pthread_join(sv->supervisor, NULL);
    sv->supervisor_running = false;
}

/* Fills sv->slurm from the settings. Returns 0, or -1 after logging what is missing. */
static int serve_slurm_config(Serve *sv)
{
    Settings *s = &sv->set;
    if (!s->slurm_url || !s->slurm_token_file) {
        log_error("serve", "--executor slurm needs --slurm-url (the daemon's address as the "
                  "nodes reach it) and --slurm-token-file (a worker token file the nodes "
                  "can read)");
        return -1;
    }
    if (!s->worker_token_file && auth_enabled(sv->auth))
        log_warn("serve", "--executor slurm with --token-file but no --worker-token-file: "
                 "the workers need the admin token, which lets them do anything");
    if (!s->slurm_worker && !(sv->worker_bin = realpath("/proc/self/exe", NULL))) {
        log_error("serve", "the path of this binary: %s (give --slurm-worker)",
                  strerror(errno));
        return -1;
    }
    if (!s->slurm_log_dir && asprintf(&sv->slurm_log_dir, "%s/slurm", sv->state_dir) < 0) {
        sv->slurm_log_dir = NULL;
        log_error("serve", "out of memory");
        return -1;
    }
    sv->slurm = (SlurmConfig){
        .server_url = s->slurm_url, .token_file = s->slurm_token_file,
        .worker_bin = s->slurm_worker ? s->slurm_worker : sv->worker_bin,
        .data_root = s->slurm_data_root ? s->slurm_data_root : sv->data_root,
        .cache_dir = s->slurm_cache_dir, .ca_file = s->slurm_ca_file,
        .log_dir = s->slurm_log_dir ? s->slurm_log_dir : sv->slurm_log_dir,
        .partition = s->slurm_partition, .account = s->slurm_account,
        .time_limit = s->slurm_time, .mem = s->slurm_mem, .gres = s->slurm_gres,
        .extra_options = s->slurm_options, .cpus_per_task = (int)s->slurm_cpus_per_task,
        .signal_seconds = (int)s->slurm_signal, .poll_seconds = (double)s->slurm_poll,
        .max_submitted = (int)s->slurm_max_jobs};
    return 0;
}

/* Builds everything the HTTP side needs around ctx. Returns 0, or -1 after logging. */
static int serve_build_api(Serve *sv)
{
    char err[512];
    Settings *s = &sv->set;
    ServerConfig defaults;
    server_config_default(&defaults);
    if (!(sv->auth = auth_create(s->token_file, s->cors_origin, err, sizeof err)) ||
        auth_set_hosts(sv->auth, s->listen ? s->listen : defaults.listen, s->allowed_host,
                       err, sizeof err) < 0 ||
        (s->worker_token_file &&
         auth_set_worker_token(sv->auth, s->worker_token_file, err, sizeof err) < 0)) {
        log_error("serve", "%s", err);
        return -1;
    }
    sv->web_dir = find_web_dir(s->web_dir);
    if (sv->web_dir && !(sv->web = static_create(sv->web_dir, err, sizeof err))) {
        log_error("serve", "%s", err);
        return -1;
    }
    if (s->web_dir && !sv->web_dir) {
        log_error("serve", "web directory %s: %s", s->web_dir, strerror(errno));
        return -1;
    }
    if (!sv->web_dir)
        log_warn("serve", "no web directory found (--web-dir); the dashboard is not served");
    if (s->data_root && !(sv->data_root = realpath(s->data_root, NULL))) {
        log_error("serve", "data root %s: %s", s->data_root, strerror(errno));
        return -1;
    }
    EventHubConfig ecfg;
    events_config_default(&ecfg);
    ecfg.heartbeat_ms = (int)s->sse_heartbeat * 1000;
    ecfg.max_clients = (int)s->sse_limit;
    /* Event ids grow across restarts (milliseconds since the epoch at the start), so a
     * client resuming with an id of an earlier run is told to reload (events.h). */
    struct timespec start;
    clock_gettime(CLOCK_REALTIME, &start);
    ecfg.first_id = (unsigned long long)start.tv_sec * 1000ULL +
                    (unsigned long long)start.tv_nsec / 1000000ULL;
    sv->metrics = metrics_create();
    sv->events = events_create(&ecfg);
    sv->router = router_create();
    if (!sv->metrics || !sv->events || !sv->router) {
        log_error("serve", "out of memory");
        return -1;
    }
    ApiContext *c = &sv->ctx;
    c->version = INITLAB_VERSION;
    c->data_root = sv->data_root;
    c->web_dir = sv->web_dir;
    c->workers = (int)s->workers;
    c->threads_per_job = (int)s->threads_per_job;
    RetainKind kind = RETAIN_BEST;
    if (s->retention)
        retention_parse(s->retention, &kind);
    c->retention_kind = (int)kind;
    c->keep_finished = (int)s->keep_finished;
    data_cache_set_limit((uint64_t)s->cache_limit);
    c->max_body = (size_t)s->max_body;
    c->auth = sv->auth;
    c->events = sv->events;
    c->metrics = sv->metrics;
    c->web = sv->web;
    c->lease_seconds = (double)s->lease_timeout;
    c->heartbeat_seconds = (double)s->heartbeat;
    if (s->heartbeat * 2 > s->lease_timeout) {
        log_error("serve", "--heartbeat %ld must be at most half of --lease-timeout %ld",
                  s->heartbeat, s->lease_timeout);
        return -1;
    }
    if (s->executor && strcmp(s->executor, "slurm") == 0) {
        if (serve_slurm_config(sv) < 0)
            return -1;
        c->slurm = &sv->slurm;
    }
    if (api_metrics_register(c) < 0 || api_routes_register(sv->router) < 0) {
        log_error("serve", "could not register the routes");
        return -1;
    }
    if (api_jobs_link(c, err, sizeof err) < 0) {
        log_error("serve", "job queue: %s", err);
        return -1;
    }
    return 0;
}

static void serve_free(Serve *sv)
{
    server_free(sv->server);
    api_jobs_unlink(&sv->ctx);
    events_free(sv->events);
    router_free(sv->router);
    static_free(sv->web);
    auth_free(sv->auth);
    metrics_free(sv->metrics);
    free(sv->state_dir);
    free(sv->db_path);
    free(sv->data_root);
    free(sv->web_dir);
    free(sv->slurm_log_dir);
    free(sv->worker_bin);
    settings_free(&sv->set);
    pthread_cond_destroy(&sv->wake);
    pthread_mutex_destroy(&sv->lock);
}

static int cmd_serve(int argc, char **argv)
{
    Serve serve;
    Serve *sv = &serve;
    memset(sv, 0, sizeof *sv);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&sv->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&sv->lock, NULL);
    settings_default(&sv->set);
    int rc = settings_parse(&sv->set, argc, argv);
    if (rc) {
        serve_free(sv);
        return rc == 1 ? 0 : 2;
    }
    Settings *s = &sv->set;
    LogLevel level = LOG_INFO;
    if (s->log_level)
        log_parse_level(s->log_level, &level);
    log_set_level(level);
    if (!s->threads_per_job) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->threads_per_job = n > 0 ? n : 1;
    }
    startup_wait_policy((int)(s->workers * s->threads_per_job));
    if (s->sse_heartbeat >= s->connection_timeout) {
        /* An idle event stream would be closed before its heartbeat. */
        s->sse_heartbeat = s->connection_timeout > 1 ? s->connection_timeout / 2 : 1;
        log_warn("serve", "sse heartbeat lowered to %ld s, below the connection timeout",
                 s->sse_heartbeat);
    }
    long nofile = raise_nofile();
    if (s->connection_limit > nofile - 64) {
        s->connection_limit = nofile - 64 > 4 ? nofile - 64 : 4;
        log_warn("serve", "connection limit lowered to %ld by the open-file limit %ld",
                 s->connection_limit, nofile);
    }
    /* One address must leave room for others, and streams room for requests. */
    long per_ip_max = (long)server_per_ip_ceiling((unsigned)s->connection_limit);
    if (s->per_ip_limit > per_ip_max) {
        s->per_ip_limit = per_ip_max;
        log_warn("serve", "per-ip limit lowered to %ld, 7/8 of the connection limit %ld",
                 s->per_ip_limit, s->connection_limit);
    }
    if (s->sse_limit > s->per_ip_limit / 2) {
        s->sse_limit = s->per_ip_limit / 2 > 1 ? s->per_ip_limit / 2 : 1;
        log_warn("serve", "sse limit lowered to %ld, half the per-ip limit %ld", s->sse_limit,
                 s->per_ip_limit);
    }
    if (stopsig_install("initlab serve", true) < 0) {
        log_error("serve", "signal pipe: %s", strerror(errno));
        serve_free(sv);
        return 1;
    }

    sv->ctx.start_wall = (int64_t)time(NULL);
    sv->ctx.start_mono = api_now();
    rc = 1;
    if (serve_open_state(sv) < 0 || serve_build_api(sv) < 0)
        goto done;

    ServerConfig scfg;
    server_config_default(&scfg);
    if (s->listen)
        scfg.listen = s->listen;
    scfg.max_body = (size_t)s->max_body;
    scfg.threads = (unsigned)s->http_threads;
    scfg.connection_limit = (unsigned)s->connection_limit;
    scfg.per_ip_limit = (unsigned)s->per_ip_limit;
    scfg.timeout_s = (unsigned)s->connection_timeout;
    scfg.header_timeout_s = (unsigned)s->header_timeout;
    scfg.body_timeout_s = (unsigned)s->body_timeout;
    scfg.max_upload = (size_t)s->max_upload;
    scfg.tls_cert_file = s->tls_cert;
    scfg.tls_key_file = s->tls_key;
    char uploads[PATH_MAX];
    snprintf(uploads, sizeof uploads, "%s/uploads", sv->state_dir);
    if (make_dirs(uploads) < 0) {
        log_error("serve", "%s: %s", uploads, strerror(errno));
        goto done;
    }
    scfg.upload_dir = uploads;
    char err[512];
    if (!(sv->server = server_start(&scfg, &sv->ctx, sv->router, err, sizeof err))) {
        log_error("serve", "%s", err);
        goto done;
    }
    sv->ctx.listen = server_address(sv->server);
    const char *addr = server_address(sv->server);
    bool loopback = strncmp(addr, "127.", 4) == 0 || strncmp(addr, "[::1]", 5) == 0;
    if (!loopback && !auth_enabled(sv->auth))
        log_warn("serve", "listening on %s without --token-file: anyone who can reach this "
                 "address can submit and delete jobs", addr);
    if (s->cors_origin && strcmp(s->cors_origin, "*") == 0 && !auth_enabled(sv->auth))
        log_warn("serve", "--cors-origin * without --token-file: any web page a user of this "
                 "machine opens can submit and delete jobs");
    log_info("serve", "initlab %s: state %s, web %s, %d worker(s) x %d thread(s), token %s",
             INITLAB_VERSION, sv->state_dir, sv->web_dir ? sv->web_dir : "(none)",
             sv->ctx.workers, sv->ctx.threads_per_job, auth_enabled(sv->auth) ? "on" : "off");
    log_info("serve", "listening on %s://%s/", s->tls_cert ? "https" : "http", addr);
    if (start_supervisor(sv) < 0) {
        log_error("serve", "could not start the supervisor thread");
        goto done;
    }
    notify_send("READY=1");

    int sig = wait_for_stop();
    log_info("serve", "stopping (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
    notify_send("STOPPING=1");
    stop_supervisor(sv);
    server_stop_accepting(sv->server);
    events_close(sv->events);
    int open_streams = events_wait_drained(sv->events, 2000);
    if (open_streams)
        log_info("serve", "closing %d event stream(s) that did not finish", open_streams);
    server_free(sv->server);
    sv->server = NULL;
    if (sv->ctx.jobs.shutdown)
        sv->ctx.jobs.shutdown(sv->ctx.jobs.handle);
    log_info("serve", "stopped");
    rc = 0;
done:
    stop_supervisor(sv);
    serve_free(sv);
    return rc;
}

COMMAND(serve, "serve", cmd_serve, 10, "serve [--listen ADDR:PORT] [--state-dir DIR] ...",
        "run the daemon: job queue, workers, HTTP API and dashboard")
