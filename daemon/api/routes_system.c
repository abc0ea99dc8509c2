/* routes_system.c — the daemon's own routes: health, info, the OpenAPI document, the event
 * stream and the Prometheus metrics. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/db.h"
#include "api/events.h"
#include "api/metrics.h"
#include "api/router.h"
#include "cmd/cmd.h"
#include "nn/gemm.h"
#include "util/cpu.h"

/* GET /api/v1/health: 200 {"status": "ok"} while the HTTP threads answer and the database
 * file is the one the daemon opened; 503 {"status": "unavailable", "reason": ...} when it
 * cannot be opened or was deleted or replaced (writes are refused then: api/db.h). */
static int get_health(ApiRequest *req, ApiReply *reply)
{
    char why[1024];
    if (!api_store_checked(req, why, sizeof why))
        return api_reply_json(reply, 503, json_pack("{s:s, s:s}", "status", "unavailable",
                                                    "reason", why));
    return api_reply_json(reply, 200, json_pack("{s:s}", "status", "ok"));
}

static CpuFeatures cpu;
static char cpu_features[256];
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_init(void)
{
    cpu_detect(&cpu);
    cpu_features_string(&cpu, cpu_features, sizeof cpu_features);
}

static void iso_time(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* GET /api/v1/info: version, CPU, BLAS core, workers, queue depth, uptime. */
static int get_info(ApiRequest *req, ApiReply *reply)
{
    ApiContext *ctx = req->ctx;
    pthread_once(&cpu_once, cpu_init);
    ApiQueueStats q = {0};
    bool known = !ctx->jobs.stats || ctx->jobs.stats(ctx->jobs.handle, &q) == 0;
    char started[32];
    iso_time(ctx->start_wall, started, sizeof started);
    json_t *o = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:{s:s, s:s}, s:i, s:i, s:o, s:o, s:i, s:f, s:s, s:b, s:I, "
        "s:s, s:i}",
        "version", ctx->version,
        "cpu", "model", cpu.model[0] ? cpu.model : "unknown", "vendor", cpu.vendor,
               "features", cpu_features,
        "blas", "core", gemm_core_name(), "source", startup_blas_source(),
        "workers", ctx->workers,
        "threads_per_job", ctx->threads_per_job,
        "queue_depth", known ? json_integer(q.queued) : json_null(),
        "running", known ? json_integer(q.running) : json_null(),
        "workers_busy", q.workers_busy,
        "uptime_seconds", api_now() - ctx->start_mono,
        "started_at", started,
        "auth", auth_enabled(ctx->auth),
        "max_body", (json_int_t)ctx->max_body,
        "executor", ctx->slurm ? "slurm" : "local",
        "remote_workers", q.remote_workers);
    return api_reply_json(reply, 200, o);
}

/* GET /api/v1/openapi.json: the document compiled into the binary. */
static int get_openapi(ApiRequest *req, ApiReply *reply)
{
    (void)req;
    return api_reply_text(reply, 200, "application/json", openapi_json);
}

/* GET /api/v1/events: Server-Sent Events (events.h). */
static int get_events(ApiRequest *req, ApiReply *reply)
{
    if (!req->ctx->events)
        return api_reply_problem(reply, 503, NULL, "event streaming is not available");
    return events_subscribe(req->ctx->events, reply, api_header(req, "Last-Event-ID"));
}

/* GET /metrics: Prometheus text exposition. */
static int get_metrics(ApiRequest *req, ApiReply *reply)
{
    if (!req->ctx->metrics)
        return api_reply_problem(reply, 503, NULL, "metrics are not available");
    size_t len;
    char *text = metrics_render(req->ctx->metrics, &len);
    if (!text)
        return -1;
    return api_reply_take(reply, 200, METRICS_CONTENT_TYPE, text, len);
}

int routes_system_register(Router *r)
{
    if (router_add(r, "GET", "/api/v1/health", get_health, NULL) < 0 ||
        router_add(r, "GET", "/api/v1/info", get_info, NULL) < 0 ||
        router_add(r, "GET", "/api/v1/openapi.json", get_openapi, NULL) < 0 ||
        router_add(r, "GET", "/api/v1/events", get_events, NULL) < 0 ||
        router_add(r, "GET", "/metrics", get_metrics, NULL) < 0)
        return -1;
    return 0;
}
