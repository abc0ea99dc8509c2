/* metrics.c — the Prometheus registry: families, series, collectors, text exposition.
 *
 * DESIGN
 * m->lock guards the families, their series and the collector list. HTTP response counts
 * are the hot path (every request) and live outside the lock in atomic counters indexed by
 * status code and duration bucket. Collectors run before rendering without the lock held,
 * so they may update gauges; rendering then copies everything under the lock. */
#include "api/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonout.h"

#define MAX_BOUNDS 32
#define HTTP_CODES 600

static const double http_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define HTTP_NB (int)(sizeof http_bounds / sizeof http_bounds[0])

typedef struct {
    char *labels;
    double value;                 /* counter or gauge */
    unsigned long long *buckets;  /* histogram: per-bucket (not cumulative), nbounds + 1 */
    double sum;
    unsigned long long count;
} Series;

typedef struct {
    char *name, *help;
    MetricType type;
    int nbounds;
    double bounds[MAX_BOUNDS];
    Series *series;
    int nseries, cap;
} Family;

typedef struct {
    MetricsCollectFn fn;
    void *ud;
} Collector;

struct Metrics {
    pthread_mutex_t lock;
    Family *families;
    int nfam, capfam;
    Collector *collectors;
    int ncol, capcol;
    atomic_ullong http_count[HTTP_CODES];
    atomic_ullong http_bucket[HTTP_NB + 1];
    atomic_ullong http_sum_us;
};

Metrics *metrics_create(void)
{
    Metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_free(Metrics *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->nfam; i++) {
        Family *f = &m->families[i];
        for (int j = 0; j < f->nseries; j++) {
            free(f->series[j].labels);
            free(f->series[j].buckets);
        }
        free(f->series);
        free(f->name);
        free(f->help);
    }
    free(m->families);
    free(m->collectors);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static bool valid_name(const char *name)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p > name && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static Family *find_family(Metrics *m, const char *name)
{
    for (int i = 0; i < m->nfam; i++)
        if (strcmp(m->families[i].name, name) == 0)
            return &m->families[i];
    return NULL;
}

int metrics_register(Metrics *m, const char *name, MetricType type, const char *help,
                     const double *bounds, int nbounds)
{
    if (!valid_name(name) || !help || strchr(help, '\n'))
        return -1;
    if (type == METRIC_HISTOGRAM) {
        if (nbounds < 1 || nbounds > MAX_BOUNDS)
            return -1;
        for (int i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
                return -1;
    } else if (nbounds) {
        return -1;
    }
    pthread_mutex_lock(&m->lock);
    int rc = 0;
    Family *f = find_family(m, name);
    if (f) {
        rc = f->type == type ? 0 : -1;
        goto done;
    }
    if (m->nfam == m->capfam) {
        int cap = m->capfam ? 2 * m->capfam : 16;
        Family *fs = realloc(m->families, (size_t)cap * sizeof *fs);
        if (!fs) {
            rc = -1;
            goto done;
        }
        m->families = fs;
        m->capfam = cap;
    }
    f = &m->families[m->nfam];
    memset(f, 0, sizeof *f);
    f->name = strdup(name);
    f->help = strdup(help);
    if (!f->name || !f->help) {
        free(f->name);
        free(f->help);
        rc = -1;
        goto done;
    }
    f->type = type;
    f->nbounds = nbounds;
    for (int i = 0; i < nbounds; i++)
        f->bounds[i] = bounds[i];
    m->nfam++;
done:
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* The series labels of f, created when missing; NULL on allocation failure. Lock held. */
static Series *get_series(Family *f, const char *labels)
{
    for (int i = 0; i < f->nseries; i++)
        if (strcmp(f->series[i].labels, labels) == 0)
            return &f->series[i];
    if (f->nseries == f->cap) {
        int cap = f->cap ? 2 * f->cap : 8;
        Series *s = realloc(f->series, (size_t)cap * sizeof *s);
        if (!s)
            return NULL;
        f->series = s;
        f->cap = cap;
    }
    Series *s = &f->series[f->nseries];
    memset(s, 0, sizeof *s);
    s->labels = strdup(labels);
    if (!s->labels)
        return NULL;
    if (f->type == METRIC_HISTOGRAM &&
        !(s->buckets = calloc((size_t)f->nbounds + 1, sizeof *s->buckets))) {
        free(s->labels);
        return NULL;
    }
    f->nseries++;
    return s;
}

typedef enum { OP_ADD, OP_SET, OP_OBSERVE } Op;

static int update(Metrics *m, const char *name, const char *labels, MetricType type, Op op,
                  double v)
{
    if (!labels)
        labels = "";
    if (strchr(labels, '\n'))
        return -1;
    pthread_mutex_lock(&m->lock);
    int rc = -1;
    Family *f = find_family(m, name);
    Series *s;
    if (!f || f->type != type || !(s = get_series(f, labels)))
        goto done;
    switch (op) {
    case OP_ADD:
        if (type == METRIC_COUNTER && !(v >= 0))
            goto done;
        s->value += v;
        break;
    case OP_SET:
        s->value = v;
        break;
    case OP_OBSERVE: {
        int b = 0;
        while (b < f->nbounds && !(v <= f->bounds[b]))
            b++;
        s->buckets[b]++;
        s->sum += v;
        s->count++;
        break;
    }
    }
    rc = 0;
done:
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int metrics_counter_add(Metrics *m, const char *name, const char *labels, double delta)
{
    return update(m, name, labels, METRIC_COUNTER, OP_ADD, delta);
}

int metrics_gauge_set(Metrics *m, const char *name, const char *labels, double value)
{
    return update(m, name, labels, METRIC_GAUGE, OP_SET, value);
}

int metrics_histogram_observe(Metrics *m, const char *name, const char *labels, double value)
{
    return update(m, name, labels, METRIC_HISTOGRAM, OP_OBSERVE, value);
}

int metrics_series_remove(Metrics *m, const char *name, const char *labels)
{
    pthread_mutex_lock(&m->lock);
    int rc = -1;
    Family *f = find_family(m, name);
    for (int i = 0; f && i < f->nseries; i++)
        if (strcmp(f->series[i].labels, labels ? labels : "") == 0) {
            free(f->series[i].labels);
            free(f->series[i].buckets);
            f->series[i] = f->series[--f->nseries];
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int metrics_add_collector(Metrics *m, MetricsCollectFn fn, void *ud)
{
    pthread_mutex_lock(&m->lock);
    int rc = 0;
    if (m->ncol == m->capcol) {
        int cap = m->capcol ? 2 * m->capcol : 4;
        Collector *c = realloc(m->collectors, (size_t)cap * sizeof *c);
        if (!c) {
            rc = -1;
            goto done;
        }
        m->collectors = c;
        m->capcol = cap;
    }
    m->collectors[m->ncol].fn = fn;
    m->collectors[m->ncol].ud = ud;
    m->ncol++;
done:
    pthread_mutex_unlock(&m->lock);
    return rc;
}

void metrics_http_observe(Metrics *m, int status, double seconds)
{
    if (status < 100 || status >= HTTP_CODES)
        status = 0;
    atomic_fetch_add_explicit(&m->http_count[status], 1, memory_order_relaxed);
    int b = 0;
    while (b < HTTP_NB && !(seconds <= http_bounds[b]))
        b++;
    atomic_fetch_add_explicit(&m->http_bucket[b], 1, memory_order_relaxed);
    if (seconds > 0)
        atomic_fetch_add_explicit(&m->http_sum_us, (unsigned long long)(seconds * 1e6),
                                  memory_order_relaxed);
}

char *metrics_label_escape(const char *value, char *buf, size_t size)
{
    size_t n = 0;
    for (const char *p = value; *p && n + 3 < size; p++) {
        if (*p == '\\' || *p == '"') {
            buf[n++] = '\\';
            buf[n++] = *p;
        } else if (*p == '\n') {
            buf[n++] = '\\';
            buf[n++] = 'n';
        } else {
            buf[n++] = *p;
        }
    }
    if (size)
        buf[n < size ? n : size - 1] = 0;
    return buf;
}

/* A growing text buffer; a failed append sets oom and turns later appends into no-ops. */
typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} Text;

static void text_printf(Text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_printf(Text *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->oom = true;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

/* A sample value as Prometheus reads it (Go's ParseFloat spellings for the specials), in
 * the shortest form that reads back the same. */
static const char *fmt_value(double v, char *buf, size_t size)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    char num[NUM_TEXT_MAX];
    int n = num_format_double(v, num);
    if (n > 2 && strcmp(num + n - 2, ".0") == 0)
        num[n - 2] = '\0';   /* Prometheus writes whole numbers as integers: le="1" */
    snprintf(buf, size, "%s", num);
    return buf;
}

static void render_http(Metrics *m, Text *t)
{
    text_printf(t, "# HELP initlab_http_requests_total HTTP responses sent, by status class "
                   "and code.\n# TYPE initlab_http_requests_total counter\n");
    for (int code = 0; code < HTTP_CODES; code++) {
        unsigned long long n = atomic_load_explicit(&m->http_count[code], memory_order_relaxed);
        if (n)
            text_printf(t, "initlab_http_requests_total{class=\"%dxx\",code=\"%d\"} %llu\n",
                        code / 100, code, n);
    }
    text_printf(t, "# HELP initlab_http_request_duration_seconds Time from the complete "
                   "request to the queued response.\n"
                   "# TYPE initlab_http_request_duration_seconds histogram\n");
    unsigned long long cum = 0;
    char b[40];
    for (int i = 0; i <= HTTP_NB; i++) {
        cum += atomic_load_explicit(&m->http_bucket[i], memory_order_relaxed);
        text_printf(t, "initlab_http_request_duration_seconds_bucket{le=\"%s\"} %llu\n",
                    i < HTTP_NB ? fmt_value(http_bounds[i], b, sizeof b) : "+Inf", cum);
    }
    double sum = (double)atomic_load_explicit(&m->http_sum_us, memory_order_relaxed) / 1e6;
    text_printf(t, "initlab_http_request_duration_seconds_sum %s\n", fmt_value(sum, b, sizeof b));
    text_printf(t, "initlab_http_request_duration_seconds_count %llu\n", cum);
}

static void render_family(const Family *f, Text *t)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    char b[40];
    text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                type_names[f->type]);
    for (int i = 0; i < f->nseries; i++) {
        const Series *s = &f->series[i];
        const char *open = s->labels[0] ? "{" : "", *close = s->labels[0] ? "}" : "";
        if (f->type != METRIC_HISTOGRAM) {
            text_printf(t, "%s%s%s%s %s\n", f->name, open, s->labels, close,
                        fmt_value(s->value, b, sizeof b));
            continue;
        }
        unsigned long long cum = 0;
        const char *sep = s->labels[0] ? "," : "";
        for (int k = 0; k <= f->nbounds; k++) {
            cum += s->buckets[k];
            char le[40];
            text_printf(t, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, s->labels, sep,
                        k < f->nbounds ? fmt_value(f->bounds[k], le, sizeof le) : "+Inf", cum);
        }
        text_printf(t, "%s_sum%s%s%s %s\n", f->name, open, s->labels, close,
                    fmt_value(s->sum, b, sizeof b));
        text_printf(t, "%s_count%s%s%s %llu\n", f->name, open, s->labels, close, s->count);
    }
}

char *metrics_render(Metrics *m, size_t *len)
{
    pthread_mutex_lock(&m->lock);
    int ncol = m->ncol;
    Collector *cols = ncol ? malloc((size_t)ncol * sizeof *cols) : NULL;
    if (cols)
        memcpy(cols, m->collectors, (size_t)ncol * sizeof *cols);
    pthread_mutex_unlock(&m->lock);
    for (int i = 0; cols && i < ncol; i++)
        cols[i].fn(m, cols[i].ud);
    free(cols);

    Text t = {.cap = 4096};
    if (!(t.s = malloc(t.cap)))
        return NULL;
    t.s[0] = 0;
    render_http(m, &t);
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < m->nfam; i++)
        render_family(&m->families[i], &t);
    pthread_mutex_unlock(&m->lock);
    if (t.oom) {
        free(t.s);
        return NULL;
    }
    *len = t.len;
    return t.s;
}
