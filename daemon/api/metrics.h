/* metrics.h — a small thread-safe Prometheus registry rendered as text at GET /metrics.
 *
 * A metric family is registered once by name (counter, gauge or histogram) and then updated
 * per label set. Labels are passed pre-formatted in Prometheus syntax, without braces:
 * "" for none, or `state="running"`, `model="mobilenet",init="he_uniform"`; use
 * metrics_label_escape for values that come from users. Modules that know a value only at
 * scrape time (jobs by state) add a collector, called before each rendering.
 *
 *     metrics_register(m, "initlab_jobs", METRIC_GAUGE, "Jobs by state.", NULL, 0);
 *     metrics_gauge_set(m, "initlab_jobs", "state=\"queued\"", 3);
 *     static const double b[] = {1, 10, 60, 600, 3600};
 *     metrics_register(m, "initlab_epoch_duration_seconds", METRIC_HISTOGRAM,
 *                      "Duration of one training epoch.", b, 5);
 *     metrics_histogram_observe(m, "initlab_epoch_duration_seconds", "model=\"resnet50\"", 42.0);
 */
#ifndef INITLAB_API_METRICS_H
#define INITLAB_API_METRICS_H

#include <stddef.h>

typedef struct Metrics Metrics;

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } MetricType;

/* Called (without the registry's lock held) before each rendering; may update metrics. */
typedef void (*MetricsCollectFn)(Metrics *m, void *ud);

/* New registry holding the HTTP metrics (initlab_http_requests_total by class and code,
 * initlab_http_request_duration_seconds). NULL on allocation failure. */
Metrics *metrics_create(void);
/* Accepts NULL. No other thread may use m any more. */
void metrics_free(Metrics *m);

/* Registers a family. name must match [a-zA-Z_:][a-zA-Z0-9_:]*; help is one line. A
 * histogram takes nbounds increasing upper bounds (the +Inf bucket is implicit); others
 * pass NULL, 0. Returns 0; 0 too when the same name is registered again with the same
 * type; -1 for a bad name, a type clash, bad bounds or allocation failure. Thread-safe. */
int metrics_register(Metrics *m, const char *name, MetricType type, const char *help,
                     const double *bounds, int nbounds);

/* Updates the series `labels` of family name (created on first use). Each returns 0, or -1
 * when the family is missing or of another type, labels contain a newline, or
 * memory ran out. Thread-safe. */
int metrics_counter_add(Metrics *m, const char *name, const char *labels, double delta);
int metrics_gauge_set(Metrics *m, const char *name, const char *labels, double value);
int metrics_histogram_observe(Metrics *m, const char *name, const char *labels, double value);
/* Removes one series (a job that finished); 0 when it existed, -1 otherwise. */
int metrics_series_remove(Metrics *m, const char *name, const char *labels);

/* Adds a collector; returns 0 or -1 (allocation failure). Thread-safe. */
int metrics_add_collector(Metrics *m, MetricsCollectFn fn, void *ud);

/* Counts one HTTP response with its status and duration. Thread-safe, can't fail. */
void metrics_http_observe(Metrics *m, int status, double seconds);

/* Renders every family in the text exposition format 0.0.4 (runs the collectors first).
 * Returns a malloc'd NUL-terminated text (its length in *len), or NULL on allocation
 * failure. Thread-safe. */
char *metrics_render(Metrics *m, size_t *len);

/* Writes value escaped for a label value (backslash, quote, newline) into buf, always
 * NUL-terminated (truncated to fit). Returns buf. */
char *metrics_label_escape(const char *value, char *buf, size_t size);

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
