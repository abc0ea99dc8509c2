/* api.h — what the HTTP handlers share: the daemon context and the route registration list.
 *
 * `initlab serve` fills one ApiContext at start-up and never changes it afterwards; every
 * handler reaches it through ApiRequest.ctx (router.h). Pointers are borrowed: serve owns
 * them and frees them after the HTTP server stopped, so handlers may use them without
 * locking. The objects they point to (EventHub, Metrics, the job queue) are thread-safe.
 *
 * Adding routes: write `int x_register(Router *r)` in a new api/routes_x.c that calls
 * router_add() for each route, and call it from api_routes_register() in api/api.c. Every
 * route must also be described in api/openapi.json (a unit test checks it). */
#ifndef INITLAB_API_API_H
#define INITLAB_API_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobs/slurm.h"

typedef struct Router Router;
typedef struct EventHub EventHub;
typedef struct Metrics Metrics;
typedef struct Auth Auth;
typedef struct StaticDir StaticDir;

/* A snapshot of the job queue, as /info, STATUS= and the watchdog show it. */
typedef struct {
    int queued;        /* jobs waiting for a worker (the queue depth) */
    int running;       /* jobs a worker is training now */
    int workers;       /* worker threads started */
    int workers_busy;  /* workers running a job */
    int remote_workers; /* remote workers heard from lately (initlab worker) */
} ApiQueueStats;

/* The job queue seen from the HTTP side. The jobs module fills it; every function pointer
 * may be NULL (then /info reports zeros, the watchdog assumes live workers and shutdown
 * has nothing to stop). All functions are called from HTTP or supervisor threads and must
 * be thread-safe. */
typedef struct {
    void *handle;  /* the queue, passed back to every function below */
    /* Fills *out; returns 0, or negative when the queue cannot tell (reported as unknown). */
    int (*stats)(void *handle, ApiQueueStats *out);
    /* Returns true when every worker thread is alive and making progress (a worker stuck
     * in one training step for minutes is not). Gates the systemd watchdog ping. */
    bool (*alive)(void *handle);
    /* Called once on SIGTERM/SIGINT after the HTTP server stopped accepting requests:
     * running jobs checkpoint at their next step boundary and go back to the queue.
     * Blocks until the workers stopped; must finish well within systemd's TimeoutStopSec. */
    void (*shutdown)(void *handle);
} ApiJobs;

/* Everything a handler may need. Strings are absolute paths unless said otherwise. */
typedef struct {
    const char *version;     /* INITLAB_VERSION */
    const char *listen;      /* the bound address, "127.0.0.1:8470" or "[::1]:8470" */
    const char *state_dir;   /* database, checkpoints, caches */
    const char *store_path;  /* the SQLite database file inside state_dir (NULL until the
                                store opened it); each thread opens its own connection */
    const char *data_root;   /* datasets must lie under it; NULL when not configured */
    const char *web_dir;     /* the dashboard's static files; NULL when none was found */
    int workers;             /* configured worker threads (0: remote workers only) */
    int threads_per_job;     /* compute threads per job: a submission's default */
    int retention_kind;      /* jobs/storage.h RetainKind: what a done job keeps */
    int keep_finished;       /* ended jobs that keep checkpoints; 0: all */
    double lease_seconds;    /* remote workers' leases (jobs/lease.h) */
    double heartbeat_seconds;/* and their heartbeat interval */
    const SlurmConfig *slurm;/* the Slurm executor's settings; NULL: local executor */
    size_t max_body;         /* request body limit in bytes */
    int64_t start_wall;      /* start time, seconds since the epoch */
    double start_mono;       /* start time, CLOCK_MONOTONIC seconds (for uptime) */
    const Auth *auth;        /* token and CORS policy; holds the token, never log it */
    EventHub *events;        /* Server-Sent Events broadcaster */
    Metrics *metrics;        /* Prometheus registry behind /metrics */
    const StaticDir *web;    /* static file server for web_dir, NULL when none */
    ApiJobs jobs;            /* the job queue; zeroed until the jobs module fills it */
} ApiContext;

/* Registers every route of the daemon on r: the system routes of routes_system.c and the
 * modules' routes. Returns 0, or negative on allocation failure. */
int api_routes_register(Router *r);

/* The system routes: /api/v1/health, /api/v1/info, /api/v1/openapi.json, /api/v1/events
 * and /metrics. Returns 0, or negative on allocation failure. */
int routes_system_register(Router *r);

/* The route modules: models, initializers and presets; datasets; jobs and grids; what
 * jobs recorded (epochs, statistics, histograms, results, grid summaries). Each returns 0,
 * or negative on allocation failure. */
int routes_catalog_register(Router *r);
int routes_datasets_register(Router *r);
int routes_jobs_register(Router *r);
int routes_results_register(Router *r);
/* The remote workers' protocol (/api/v1/worker/) and /api/v1/workers. */
int routes_worker_register(Router *r);
/* Names, tags, notes and priorities; grid operations; disk usage; downloads. */
int routes_lab_register(Router *r);

/* Starts the job queue (jobs/queue.h) on ctx->store_path with ctx's workers and threads,
 * publishing job changes and epochs as server-sent events and job metrics, and fills
 * ctx->jobs. Returns 0, or -1 with a message in err. */
int api_jobs_link(ApiContext *ctx, char *err, size_t errlen);
/* Stops and frees the job queue of ctx (workers checkpoint first); idempotent. */
void api_jobs_unlink(ApiContext *ctx);

/* Registers the daemon's own gauges on ctx->metrics (initlab_build_info, uptime, event
 * clients) with a collector reading ctx at scrape time; ctx must outlive the metrics.
 * Returns 0, or negative on allocation failure. */
int api_metrics_register(ApiContext *ctx);

/* Seconds on CLOCK_MONOTONIC. Can't fail; thread-safe. */
double api_now(void);

/* The OpenAPI document compiled into the binary (build/gen/openapi_json.c), NUL-terminated;
 * openapi_json_len excludes the NUL. */
extern const char openapi_json[];
extern const size_t openapi_json_len;

#endif
