/* jobs_link.c — connects the daemon's job queue to the HTTP side: the ApiJobs hooks,
 * server-sent events for job changes and epochs, and the job metrics. */
#include <stdio.h>
#include <stdlib.h>

#include "api/api.h"
#include "api/events.h"
#include "api/metrics.h"
#include "jobs/queue.h"
#include "store/store.h"

static void publish(void *user, const char *event, const char *json)
{
    ApiContext *ctx = user;
    events_publish(ctx->events, event, json);
}

static void observe_epoch(void *user, int64_t job_id, const TrainEpoch *e)
{
    ApiContext *ctx = user;
    metrics_histogram_observe(ctx->metrics, "initlab_epoch_seconds", "", e->seconds);
    metrics_gauge_set(ctx->metrics, "initlab_images_per_second", "", e->images_per_sec);
}

static int queue_stats(void *handle, ApiQueueStats *out)
{
    JobQueueStats s;
    if (jobs_stats(handle, &s) < 0)
        return -1;
    *out = (ApiQueueStats){s.queued, s.running, s.workers, s.workers_busy, s.remote_workers};
    return 0;
}

static bool queue_alive(void *handle)
{
    return jobs_alive(handle);
}

static void queue_shutdown(void *handle)
{
    jobs_shutdown(handle);
}

static void collect_jobs(Metrics *m, void *ud)
{
    ApiContext *ctx = ud;
    JobQueueStats s;
    if (!ctx->jobs.handle || jobs_stats(ctx->jobs.handle, &s) < 0)
        return;
    char labels[64];
    snprintf(labels, sizeof labels, "state=\"queued\"");
    metrics_gauge_set(m, "initlab_jobs", labels, s.queued);
    snprintf(labels, sizeof labels, "state=\"running\"");
    metrics_gauge_set(m, "initlab_jobs", labels, s.running);
    metrics_gauge_set(m, "initlab_workers_busy", "", s.workers_busy);
    metrics_gauge_set(m, "initlab_remote_workers", "", s.remote_workers);
    metrics_gauge_set(m, "initlab_worker_reports_refused", "",
                      (double)lease_refused_count(jobs_lease(ctx->jobs.handle)));
}

int api_jobs_link(ApiContext *ctx, char *err, size_t errlen)
{
    static const double epoch_bounds[] = {1, 5, 15, 60, 300, 900, 3600, 14400};
    if (metrics_register(ctx->metrics, "initlab_jobs", METRIC_GAUGE,
                         "Jobs by state (queued, running).", NULL, 0) < 0 ||
        metrics_register(ctx->metrics, "initlab_workers_busy", METRIC_GAUGE,
                         "Workers training a job now.", NULL, 0) < 0 ||
        metrics_register(ctx->metrics, "initlab_remote_workers", METRIC_GAUGE,
                         "Remote workers (initlab worker) heard from lately.", NULL, 0) < 0 ||
        metrics_register(ctx->metrics, "initlab_worker_reports_refused", METRIC_GAUGE,
                         "Reports of remote attempts refused since the start: superseded, "
                         "their lease ended, or their job ended.", NULL, 0) < 0 ||
        metrics_register(ctx->metrics, "initlab_images_per_second", METRIC_GAUGE,
                         "Training throughput of the last finished epoch.", NULL, 0) < 0 ||
        metrics_register(ctx->metrics, "initlab_epoch_seconds", METRIC_HISTOGRAM,
                         "Wall time of training epochs.", epoch_bounds,
                         sizeof epoch_bounds / sizeof epoch_bounds[0]) < 0 ||
        metrics_add_collector(ctx->metrics, collect_jobs, ctx) < 0) {
        snprintf(err, errlen, "could not register the job metrics");
        return -1;
    }
    JobQueueConfig cfg = {.db_path = ctx->store_path, .state_dir = ctx->state_dir,
                          .data_root = ctx->data_root, .workers = ctx->workers,
                          .threads_per_job = ctx->threads_per_job,
                          .retention = {.kind = (RetainKind)ctx->retention_kind,
                                        .keep_finished = ctx->keep_finished},
                          .lease_seconds = ctx->lease_seconds,
                          .heartbeat_seconds = ctx->heartbeat_seconds, .slurm = ctx->slurm,
                          .events = {.user = ctx, .publish = publish, .epoch = observe_epoch}};
    JobQueue *q = jobs_create(&cfg, err, errlen);
    if (!q)
        return -1;
    ctx->jobs = (ApiJobs){.handle = q, .stats = queue_stats, .alive = queue_alive,
                          .shutdown = queue_shutdown};
    return 0;
}

void api_jobs_unlink(ApiContext *ctx)
{
    jobs_free(ctx->jobs.handle);
    ctx->jobs = (ApiJobs){0};
}
