/* api.c — the list of route modules and the small shared helpers of api.h. */
#include "api/api.h"

#include <stdio.h>
#include <time.h>

#include "api/events.h"
#include "api/metrics.h"
#include "api/router.h"

int api_routes_register(Router *r)
{
    if (routes_system_register(r) < 0 || routes_catalog_register(r) < 0 ||
        routes_datasets_register(r) < 0 || routes_jobs_register(r) < 0 ||
        routes_results_register(r) < 0 || routes_worker_register(r) < 0 ||
        routes_lab_register(r) < 0)
        return -1;
    return 0;
}

double api_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void collect_daemon(Metrics *m, void *ud)
{
    ApiContext *ctx = ud;
    metrics_gauge_set(m, "initlab_uptime_seconds", "", api_now() - ctx->start_mono);
    if (ctx->events) {
        metrics_gauge_set(m, "initlab_event_clients", "", events_client_count(ctx->events));
        metrics_gauge_set(m, "initlab_event_clients_dropped", "",
                          (double)events_dropped_count(ctx->events));
    }
}

int api_metrics_register(ApiContext *ctx)
{
    Metrics *m = ctx->metrics;
    char version[64], labels[96];
    snprintf(labels, sizeof labels, "version=\"%s\"",
             metrics_label_escape(ctx->version, version, sizeof version));
    if (metrics_register(m, "initlab_build_info", METRIC_GAUGE,
                         "Always 1; the version is in the label.", NULL, 0) < 0 ||
        metrics_gauge_set(m, "initlab_build_info", labels, 1) < 0 ||
        metrics_register(m, "initlab_uptime_seconds", METRIC_GAUGE,
                         "Seconds since the daemon started.", NULL, 0) < 0 ||
        metrics_register(m, "initlab_event_clients", METRIC_GAUGE,
                         "Connected event-stream (SSE) clients.", NULL, 0) < 0 ||
        metrics_register(m, "initlab_event_clients_dropped", METRIC_GAUGE,
                         "Event-stream clients dropped for reading too slowly since the start.",
                         NULL, 0) < 0)
        return -1;
    return metrics_add_collector(m, collect_daemon, ctx);
}
