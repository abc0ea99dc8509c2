/* events.c — Server-Sent Events broadcaster: per-client bounded queues, heartbeats, shutdown.
 *
 * DESIGN
 * One mutex (hub->lock) guards the client list and every client's queue and flags. The
 * HTTP server pulls bytes from a client with client_read on one of its threads; when the
 * queue is empty the reader pauses the connection (api_stream_pause) while still holding
 * the lock, so a publisher can never see "paused" before the pause happened. Publishers and
 * the heartbeat thread append under the lock, clear "paused" and collect the streams to
 * wake; they wake them after unlocking (the server's own locks are never taken under ours
 * on that path) and count such in-flight wakes in hub->waking so events_close can wait for
 * them. A paused connection cannot be closed by the server, so its client stays valid until
 * it is woken. The server frees a client (client_free) once its connection is done.
 * hub->cond serves the heartbeat timer, "waking reached 0" and "no client left". */
#include "api/events.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

#define INITIAL_QUEUE 4096
/* Events kept for Last-Event-ID resumption: the last RING_EVENTS, at most RING_BYTES. */
#define RING_EVENTS 1024
#define RING_BYTES (1 << 20)

typedef struct EventClient {
    EventHub *hub;
    struct EventClient *prev, *next;
    char *buf;           /* pending bytes are buf[off .. off+len) */
    size_t off, len, cap;
    bool paused;         /* the connection is (being) suspended; wake before anything else */
    bool closed;         /* end the stream once the queue is drained */
    ApiStream *stream;   /* known from the first read on */
} EventClient;

struct EventHub {
    pthread_mutex_t lock;
    pthread_cond_t cond;     /* heartbeat timer, waking == 0, nclients == 0 */
    pthread_t heartbeat;
    bool thread_running;
    bool closing;
    int waking;              /* streams being woken outside the lock */
    EventClient *clients;
    int nclients;
    long dropped;
    unsigned long long seq;  /* id of the last event */
    EventHubConfig cfg;
    /* The last events sent, oldest first at ring[ring_head]: "id: N\n" + event text. */
    struct { char *text; size_t len; unsigned long long id; } ring[RING_EVENTS];
    int ring_head, ring_n;
    size_t ring_bytes;
};

void events_config_default(EventHubConfig *cfg)
{
    cfg->queue_bytes = 256 * 1024;
    cfg->heartbeat_ms = 15000;
    cfg->max_clients = 64;
    cfg->first_id = 0;
}

/* Keeps msg (len bytes, the whole event with its id line; the ring takes it) as event id;
 * drops the oldest beyond the ring's limits. Called with the lock held. */
static void ring_push(EventHub *hub, char *msg, size_t len, unsigned long long id)
{
    while (hub->ring_n > 0 &&
           (hub->ring_n == RING_EVENTS || hub->ring_bytes + len > RING_BYTES)) {
        free(hub->ring[hub->ring_head].text);
        hub->ring_bytes -= hub->ring[hub->ring_head].len;
        hub->ring_head = (hub->ring_head + 1) % RING_EVENTS;
        hub->ring_n--;
    }
    int at = (hub->ring_head + hub->ring_n) % RING_EVENTS;
    hub->ring[at].text = msg;
    hub->ring[at].len = len;
    hub->ring[at].id = id;
    hub->ring_n++;
    hub->ring_bytes += len;
}

/* Appends n bytes to c's queue; false when the queue limit would be exceeded or memory ran
 * out. Called with the lock held. */
static bool queue_append(EventClient *c, const char *data, size_t n)
{
    size_t limit = c->hub->cfg.queue_bytes;
    if (c->len + n > limit)
        return false;
    if (c->off + c->len + n > c->cap) {
        if (c->off) {
            memmove(c->buf, c->buf + c->off, c->len);
            c->off = 0;
        }
        if (c->len + n > c->cap) {
            size_t cap = c->cap ? c->cap : INITIAL_QUEUE;
            while (cap < c->len + n)
                cap *= 2;
            if (cap > limit)
                cap = limit;
            char *b = realloc(c->buf, cap);
            if (!b)
                return false;
            c->buf = b;
            c->cap = cap;
        }
    }
    memcpy(c->buf + c->off + c->len, data, n);
    c->len += n;
    return true;
}

/* Marks c for waking if it is paused: clears the flag and records its stream in wake[]. */
static void mark_wake(EventClient *c, ApiStream **wake, int *nwake)
{
    if (c->paused) {
        c->paused = false;
        wake[(*nwake)++] = c->stream;
    }
}

/* Wakes the collected streams outside the lock; the caller counted them in hub->waking. */
static void wake_all(EventHub *hub, ApiStream **wake, int nwake)
{
    for (int i = 0; i < nwake; i++)
        api_stream_wake(wake[i]);
    pthread_mutex_lock(&hub->lock);
    hub->waking -= nwake;
    if (hub->waking == 0)
        pthread_cond_broadcast(&hub->cond);
    pthread_mutex_unlock(&hub->lock);
}

/* Allocates room for one stream per client; called with the lock held. NULL when memory
 * ran out, in which case the caller wakes under the lock instead. */
static ApiStream **wake_list(EventHub *hub)
{
    return malloc(((size_t)hub->nclients + 1) * sizeof(ApiStream *));
}

/* Finishes a pass over the clients: wakes what was collected, or, without a list, what
 * is paused right under the lock (the lock is held on entry and released on return). */
static void finish_pass(EventHub *hub, ApiStream **wake, int nwake)
{
    hub->waking += nwake;
    pthread_mutex_unlock(&hub->lock);
    wake_all(hub, wake, nwake);
    free(wake);
}

static void clients_wake_locked(EventHub *hub)
{
    for (EventClient *c = hub->clients; c; c = c->next)
        if (c->paused) {
            c->paused = false;
            api_stream_wake(c->stream);
        }
}

static void *heartbeat_main(void *arg)
{
    EventHub *hub = arg;
    static const char beat[] = ": heartbeat\n\n";
    pthread_mutex_lock(&hub->lock);
    while (!hub->closing) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        long long ns = deadline.tv_nsec + (long long)hub->cfg.heartbeat_ms * 1000000LL;
        deadline.tv_sec += (time_t)(ns / 1000000000LL);
        deadline.tv_nsec = (long)(ns % 1000000000LL);
        int rc = 0;
        while (!hub->closing && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&hub->cond, &hub->lock, &deadline);
        if (hub->closing)
            break;
        ApiStream **wake = wake_list(hub);
        int nwake = 0;
        for (EventClient *c = hub->clients; c; c = c->next) {
            if (c->closed || c->len > 0)
                continue;
            queue_append(c, beat, sizeof beat - 1);
            if (wake)
                mark_wake(c, wake, &nwake);
        }
        if (!wake) {
            clients_wake_locked(hub);
            continue;
        }
        finish_pass(hub, wake, nwake);
        pthread_mutex_lock(&hub->lock);
    }
    pthread_mutex_unlock(&hub->lock);
    return NULL;
}

EventHub *events_create(const EventHubConfig *cfg)
{
    EventHub *hub = calloc(1, sizeof *hub);
    if (!hub)
        return NULL;
    hub->cfg = *cfg;
    hub->seq = cfg->first_id;
    if (hub->cfg.heartbeat_ms < 10)
        hub->cfg.heartbeat_ms = 10;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&hub->lock, NULL);
    pthread_cond_init(&hub->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&hub->heartbeat, NULL, heartbeat_main, hub) != 0) {
        pthread_cond_destroy(&hub->cond);
        pthread_mutex_destroy(&hub->lock);
        free(hub);
        return NULL;
    }
    hub->thread_running = true;
    return hub;
}

void events_close(EventHub *hub)
{
    pthread_mutex_lock(&hub->lock);
    bool join = !hub->closing && hub->thread_running;
    hub->closing = true;
    pthread_cond_broadcast(&hub->cond);
    ApiStream **wake = wake_list(hub);
    int nwake = 0;
    for (EventClient *c = hub->clients; c; c = c->next) {
        c->closed = true;
        if (wake)
            mark_wake(c, wake, &nwake);
    }
    if (!wake)
        clients_wake_locked(hub);
    hub->waking += nwake;
    pthread_mutex_unlock(&hub->lock);
    wake_all(hub, wake, nwake);
    free(wake);
    pthread_mutex_lock(&hub->lock);
    while (hub->waking > 0)
        pthread_cond_wait(&hub->cond, &hub->lock);
    pthread_mutex_unlock(&hub->lock);
    if (join) {
        pthread_join(hub->heartbeat, NULL);
        pthread_mutex_lock(&hub->lock);
        hub->thread_running = false;
        pthread_mutex_unlock(&hub->lock);
    }
}

void events_free(EventHub *hub)
{
    if (!hub)
        return;
    events_close(hub);
    /* Clients still linked here were never handed to a connection; the server frees the
     * others before this point. */
    while (hub->clients) {
        EventClient *c = hub->clients;
        hub->clients = c->next;
        free(c->buf);
        free(c);
    }
    for (int i = 0; i < hub->ring_n; i++)
        free(hub->ring[(hub->ring_head + i) % RING_EVENTS].text);
    pthread_cond_destroy(&hub->cond);
    pthread_mutex_destroy(&hub->lock);
    free(hub);
}

static bool valid_event_name(const char *name)
{
    if (!name || !*name || strlen(name) > 64)
        return false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

/* "event: NAME\n" and one "data: " line per line of json, then the blank line. */
static char *format_event(const char *event, const char *json, size_t *len)
{
    size_t lines = 1;
    for (const char *p = json; *p; p++)
        lines += *p == '\n';
    size_t cap = strlen(event) + strlen(json) + 16 + lines * 8;
    char *msg = malloc(cap);
    if (!msg)
        return NULL;
    size_t n = (size_t)snprintf(msg, cap, "event: %s\n", event);
    const char *p = json;
    for (;;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        if (l && p[l - 1] == '\r')
            l--;
        memcpy(msg + n, "data: ", 6);
        n += 6;
        memcpy(msg + n, p, l);
        n += l;
        msg[n++] = '\n';
        if (!nl)
            break;
        p = nl + 1;
    }
    msg[n++] = '\n';
    *len = n;
    return msg;
}

int events_publish(EventHub *hub, const char *event, const char *json)
{
    if (!valid_event_name(event) || !json)
        return -1;
    size_t len;
    char *msg = format_event(event, json, &len);
    if (!msg)
        return -1;
    if (len + 32 > hub->cfg.queue_bytes) {
        free(msg);
        return -1; /* larger than any client's queue */
    }
    pthread_mutex_lock(&hub->lock);
    if (hub->closing) {
        pthread_mutex_unlock(&hub->lock);
        free(msg);
        return 0;
    }
    char id[40];
    int idlen = snprintf(id, sizeof id, "id: %llu\n", ++hub->seq);
    char *kept = malloc((size_t)idlen + len);
    if (kept) {
        memcpy(kept, id, (size_t)idlen);
        memcpy(kept + idlen, msg, len);
        ring_push(hub, kept, (size_t)idlen + len, hub->seq);
    }
    ApiStream **wake = wake_list(hub);
    int nwake = 0, delivered = 0;
    for (EventClient *c = hub->clients; c; c = c->next) {
        if (c->closed)
            continue;
        if (c->len + (size_t)idlen + len > hub->cfg.queue_bytes ||
            !queue_append(c, id, (size_t)idlen) || !queue_append(c, msg, len)) {
            /* Too slow (or out of memory): drop it rather than block or grow. */
            c->closed = true;
            c->len = 0;
            hub->dropped++;
            log_info("events", "dropped a slow event-stream client (%d connected)",
                     hub->nclients - 1);
        } else {
            delivered++;
        }
        if (wake)
            mark_wake(c, wake, &nwake);
    }
    if (!wake) {
        clients_wake_locked(hub);
        pthread_mutex_unlock(&hub->lock);
    } else {
        finish_pass(hub, wake, nwake);
    }
    free(msg);
    return delivered;
}

/* ApiStreamRead of a client; see the DESIGN note. */
static long client_read(void *cls, ApiStream *s, char *buf, size_t max)
{
    EventClient *c = cls;
    EventHub *hub = c->hub;
    pthread_mutex_lock(&hub->lock);
    c->stream = s;
    if (c->len > 0) {
        size_t n = c->len < max ? c->len : max;
        memcpy(buf, c->buf + c->off, n);
        c->off += n;
        c->len -= n;
        if (c->len == 0)
            c->off = 0;
        pthread_mutex_unlock(&hub->lock);
        return (long)n;
    }
    if (c->closed) {
        pthread_mutex_unlock(&hub->lock);
        return -1;
    }
    c->paused = true;
    api_stream_pause(s);
    pthread_mutex_unlock(&hub->lock);
    return 0;
}

static void client_free(void *cls)
{
    EventClient *c = cls;
    EventHub *hub = c->hub;
    pthread_mutex_lock(&hub->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        hub->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    hub->nclients--;
    if (hub->nclients == 0)
        pthread_cond_broadcast(&hub->cond);
    pthread_mutex_unlock(&hub->lock);
    free(c->buf);
    free(c);
}

int events_wait_drained(EventHub *hub, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    long long ns = deadline.tv_nsec + (long long)timeout_ms * 1000000LL;
    deadline.tv_sec += (time_t)(ns / 1000000000LL);
    deadline.tv_nsec = (long)(ns % 1000000000LL);
    pthread_mutex_lock(&hub->lock);
    int rc = 0;
    while (hub->nclients > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&hub->cond, &hub->lock, &deadline);
    int n = hub->nclients;
    pthread_mutex_unlock(&hub->lock);
    return n;
}

/* Queues for c what a client that last saw event `last` missed: the kept events after it,
 * or a "reset" event when they are not all kept (or last is not an id of this hub), so
 * that the client reloads what it shows. Called with the lock held. Returns false when
 * out of memory. */
static bool queue_replay(EventHub *hub, EventClient *c, const char *last)
{
    char *end;
    errno = 0;
    unsigned long long want = strtoull(last, &end, 10);
    bool parsed = *last && !*end && errno == 0;
    if (parsed && want == hub->seq)
        return true;
    unsigned long long oldest = hub->ring_n ? hub->ring[hub->ring_head].id : hub->seq + 1;
    size_t bytes = 0;
    bool whole = parsed && want < hub->seq && want + 1 >= oldest &&
                 want >= hub->cfg.first_id;
    for (int i = 0; whole && i < hub->ring_n; i++) {
        int at = (hub->ring_head + i) % RING_EVENTS;
        if (hub->ring[at].id > want)
            bytes += hub->ring[at].len;
    }
    if (!whole || c->len + bytes + 64 > hub->cfg.queue_bytes) {
        char reset[160];
        int n = snprintf(reset, sizeof reset, "id: %llu\nevent: reset\ndata: {\"last_event_id\":"
                         "%s}\n\n", hub->seq, parsed ? last : "null");
        return queue_append(c, reset, (size_t)n);
    }
    for (int i = 0; i < hub->ring_n; i++) {
        int at = (hub->ring_head + i) % RING_EVENTS;
        if (hub->ring[at].id > want && !queue_append(c, hub->ring[at].text, hub->ring[at].len))
            return false;
    }
    return true;
}

int events_subscribe(EventHub *hub, ApiReply *reply, const char *last_event_id)
{
    static const char hello[] = "retry: 3000\n: connected\n\n";
    EventClient *c = calloc(1, sizeof *c);
    if (!c)
        return api_reply_problem(reply, 503, NULL, "out of memory");
    c->hub = hub;
    pthread_mutex_lock(&hub->lock);
    if (hub->closing || hub->nclients >= hub->cfg.max_clients) {
        bool closing = hub->closing;
        pthread_mutex_unlock(&hub->lock);
        free(c);
        int rc = closing ? api_reply_problem(reply, 503, NULL, "the daemon is shutting down")
                         : api_reply_problem(reply, 503, NULL, "too many event-stream clients: "
                                             "%d streams are open, the limit (--sse-limit)",
                                             hub->cfg.max_clients);
        api_reply_header(reply, "Retry-After", "10");
        api_reply_header(reply, "Connection", "close");
        return rc;
    }
    if (!queue_append(c, hello, sizeof hello - 1) ||
        (last_event_id && !queue_replay(hub, c, last_event_id))) {
        pthread_mutex_unlock(&hub->lock);
        free(c->buf);
        free(c);
        return api_reply_problem(reply, 503, NULL, "out of memory");
    }
    c->next = hub->clients;
    if (c->next)
        c->next->prev = c;
    hub->clients = c;
    hub->nclients++;
    pthread_mutex_unlock(&hub->lock);
    if (api_reply_stream(reply, 200, "text/event-stream", client_read, client_free, c) < 0)
        return -1;
    api_reply_header(reply, "Cache-Control", "no-store");
    api_reply_header(reply, "X-Accel-Buffering", "no");
    return 0;
}

int events_client_count(EventHub *hub)
{
    pthread_mutex_lock(&hub->lock);
    int n = hub->nclients;
    pthread_mutex_unlock(&hub->lock);
    return n;
}

long events_dropped_count(EventHub *hub)
{
    pthread_mutex_lock(&hub->lock);
    long n = hub->dropped;
    pthread_mutex_unlock(&hub->lock);
    return n;
}
