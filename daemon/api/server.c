/* server.c — libmicrohttpd glue: listen socket, admission and timeouts, request bodies,
 * dispatch, responses, and the watchdog's probe.
 *
 * DESIGN
 * This is the only file that includes microhttpd.h. libmicrohttpd runs `threads` internal
 * epoll threads; each calls on_request for the connections it owns. Per-request state (an
 * Exchange: the body buffer and the start time) lives in *req_cls and is freed in
 * on_completed. Every response is created, queued and destroyed within one on_request
 * call. Shared state (ApiContext, Router, StaticDir, Auth) is read-only while the server
 * runs; Metrics and EventHub are thread-safe. Event streams pause their connection with
 * MHD_suspend_connection from inside the content reader and are resumed from other threads
 * with MHD_resume_connection (events.c explains the locking).
 *
 * Admission (server.h says what it promises). Every connection has a Conn record, its
 * socket context, made in on_connection when libmicrohttpd starts the connection and freed
 * there when it closes, before libmicrohttpd closes the socket. conn_lock guards the list
 * of records (oldest first), every record's fields and the count. on_accept, libmicrohttpd's
 * accept policy, runs on the accepting thread: it counts the newcomer's address and evicts
 * with shutdown(2) of the victim's socket, under conn_lock, so that socket cannot have
 * been closed and reused meanwhile; the owning thread then sees the stream end and closes
 * the connection as it would for any peer that left. The reaper thread does the same to
 * connections past their head or body deadline. A connection's phase moves HEAD (waiting
 * for a request head) -> BODY (on_request's first call) -> REPLY (a response was queued)
 * -> HEAD (on_completed), each move under conn_lock.
 *
 * Liveness. Each pool thread owns a slot of busy[] holding the time it entered on_request
 * or a stream read (0 outside them); server_liveness reads the slots. The probe connection
 * is one end of a socket pair handed to MHD_add_connection with an AF_UNIX address, by
 * which on_accept and on_connection know it: it is never counted, evicted or timed out,
 * and only the supervisor thread touches the other end. */
#include "api/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/auth.h"
#include "api/metrics.h"
#include "api/static.h"
#include "util/log.h"

/* A body found too large while streaming (chunked, no Content-Length) is read to its end
 * and thrown away, then answered with 413: libmicrohttpd cannot queue a response in the
 * middle of an upload. After this many discarded bytes the connection is closed instead. */
#define DISCARD_LIMIT ((size_t)64 << 20)
#define STREAM_BLOCK 8192
/* libmicrohttpd keeps a request head in a per-connection pool of MEMORY_LIMIT bytes and
 * answers a head that does not fit with its own HTML 414 or 431 page (it has no hook for
 * it). Below that, longer paths and heads than these get the server's own problem. */
#define MEMORY_LIMIT ((size_t)64 * 1024)
#define MAX_PATH_BYTES 8192
#define MAX_HEAD_BYTES (32 * 1024)
#define MAX_HTTP_THREADS 80
#define REAPER_PERIOD_MS 200
#define PROBE_NAME "initlab-watchdog-probe"

typedef enum { PHASE_HEAD, PHASE_BODY, PHASE_REPLY } Phase;

typedef enum { CLOSE_EVICTED, CLOSE_HEADER_TIMEOUT, CLOSE_BODY_TIMEOUT, NCLOSE } CloseReason;

static const char *const close_labels[NCLOSE] = {
    "reason=\"evicted\"", "reason=\"header_timeout\"", "reason=\"body_timeout\""};

/* One open connection (see DESIGN). */
typedef struct Conn {
    struct Conn *prev, *next;
    int fd;
    unsigned char key[17]; /* family, then the IPv4 address or the IPv6 /64 prefix */
    Phase phase;
    double since;          /* when the current phase began, CLOCK_MONOTONIC seconds */
    bool internal;         /* the watchdog's probe connection */
    bool stream;           /* an event stream: capped by the hub, never evicted */
    bool closing;          /* shut down by the server; libmicrohttpd closes it next */
} Conn;

struct Server {
    ServerConfig cfg;
    ApiContext *ctx;
    const Router *router;
    struct MHD_Daemon *mhd;
    int listen_fd;
    int quiesced_fd;  /* the listen socket after server_stop_accepting, closed at the end */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int port;
    char address[INET6_ADDRSTRLEN + 16];
    unsigned soft_limit;      /* connections admitted before eviction starts */

    pthread_mutex_t conn_lock; /* guards conns, conns_tail, nconns, stopping, every Conn */
    pthread_cond_t reaper_wake;
    Conn *conns, *conns_tail; /* oldest first */
    unsigned nconns;          /* counted connections: neither internal nor closing */
    bool stopping;
    pthread_t reaper;
    bool reaper_running;

    atomic_llong busy[MAX_HTTP_THREADS]; /* microseconds since start+1 when in a callback */
    atomic_int nbusy;                    /* slots handed out */
    int probe_fd;                        /* our end of the probe connection, -1 if none */
    bool tls;                            /* HTTPS (cfg.tls_cert_file) */
    char *tls_cert, *tls_key;            /* PEM texts, libmicrohttpd keeps pointers */
};

typedef struct {
    double t0;
    Conn *conn;       /* the connection's record, NULL when it could not be made */
    char *body;
    size_t len, cap;
    bool too_large;
    size_t discarded;
    bool upload;      /* an upload route: the body goes to upload_fd (router.h) */
    int upload_fd;    /* -1 when none */
    char *upload_path;
    uint64_t upload_len;
    bool upload_failed; /* writing the file failed: answered 507 */
} Exchange;

void server_config_default(ServerConfig *cfg)
{
    cfg->listen = "127.0.0.1:8470";
    cfg->max_body = 1u << 20;
    cfg->max_upload = (size_t)8 << 30;
    cfg->upload_dir = NULL;
    cfg->tls_cert_file = cfg->tls_key_file = NULL;
    cfg->threads = 4;
    cfg->connection_limit = 1024;
    cfg->per_ip_limit = 512;
    cfg->timeout_s = 30;
    cfg->header_timeout_s = 10;
    cfg->body_timeout_s = 30;
}

unsigned server_per_ip_ceiling(unsigned connection_limit)
{
    unsigned c = connection_limit - connection_limit / 8;
    return c ? c : 1;
}

/* ---- addresses -------------------------------------------------------------------- */

static int parse_port(const char *text, int *port)
{
    if (!*text || strlen(text) > 5)
        return -1;
    int p = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        p = p * 10 + (*c - '0');
    }
    if (p > 65535)
        return -1;
    *port = p;
    return 0;
}

int server_parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *addrlen,
                        char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN + 8];
    const char *port_text;
    memset(addr, 0, sizeof *addr);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof host)
            goto bad;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = 0;
        port_text = close + 2;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            goto bad;
        int port;
        if (parse_port(port_text, &port) < 0)
            goto bad;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *addrlen = sizeof *a6;
        return 0;
    }
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host || strchr(text, ':') != colon)
        goto bad;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = 0;
    port_text = colon + 1;
    struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
        goto bad;
    int port;
    if (parse_port(port_text, &port) < 0)
        goto bad;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *addrlen = sizeof *a4;
    return 0;
bad:
    snprintf(err, errlen, "listen address '%s' is not IPv4:PORT, [IPv6]:PORT or "
             "localhost:PORT (port 0 to 65535)", text);
    return -1;
}

static void format_address(const struct sockaddr_storage *ss, char *buf, size_t size, int *port)
{
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
        *port = ntohs(a6->sin6_port);
        snprintf(buf, size, "[%s]:%d", host, *port);
    } else {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
        *port = ntohs(a4->sin_port);
        snprintf(buf, size, "%s:%d", host, *port);
    }
}

static int open_listen_socket(Server *s, char *err, size_t errlen)
{
    if (server_parse_listen(s->cfg.listen, &s->addr, &s->addrlen, err, errlen) < 0)
        return -1;
    int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&s->addr, s->addrlen) < 0 || listen(fd, 511) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", s->cfg.listen, strerror(errno));
        close(fd);
        return -1;
    }
    s->addrlen = sizeof s->addr;
    getsockname(fd, (struct sockaddr *)&s->addr, &s->addrlen);
    format_address(&s->addr, s->address, sizeof s->address, &s->port);
    s->listen_fd = fd;
    return 0;
}

/* ---- request accessors for the router --------------------------------------------- */

static const char *io_header(void *cls, const char *name)
{
    return MHD_lookup_connection_value(cls, MHD_HEADER_KIND, name);
}

static const char *io_query(void *cls, const char *name)
{
    return MHD_lookup_connection_value(cls, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct {
    int (*fn)(void *ud, const char *key, const char *value);
    void *ud;
    int rc;
} QueryWalk;

static enum MHD_Result query_step(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    QueryWalk *w = cls;
    (void)kind;
    w->rc = w->fn(w->ud, key, value);
    return w->rc ? MHD_NO : MHD_YES;
}

static int io_query_each(void *cls, int (*fn)(void *ud, const char *key, const char *value),
                         void *ud)
{
    QueryWalk w = {fn, ud, 0};
    MHD_get_connection_values(cls, MHD_GET_ARGUMENT_KIND, query_step, &w);
    return w.rc;
}

static const ApiRequestIo mhd_io = {io_header, io_query, io_query_each};

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes %XX in place, except %00: a NUL would silently cut the path short, so it stays
 * as the three characters "%00" (which static.c refuses and no route matches). Invalid
 * escapes stay as they are. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    char *w = s;
    for (const char *r = s; *r;) {
        int hi = r[0] == '%' ? hex_value(r[1]) : -1;
        int lo = hi >= 0 ? hex_value(r[2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

/* ---- connections: records, eviction, deadlines ------------------------------------ */

static long long micros_now(void)
{
    return (long long)(api_now() * 1e6) + 1;
}

/* The admission key of a client address: IPv4 (also when mapped into IPv6) or the /64 of
 * an IPv6 address, which one client usually holds whole. */
static void address_key(const struct sockaddr *sa, unsigned char key[17])
{
    memset(key, 0, 17);
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in a4;
        memcpy(&a4, sa, sizeof a4);
        key[0] = AF_INET;
        memcpy(key + 1, &a4.sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 a6;
        memcpy(&a6, sa, sizeof a6);
        if (IN6_IS_ADDR_V4MAPPED(&a6.sin6_addr)) {
            key[0] = AF_INET;
            memcpy(key + 1, a6.sin6_addr.s6_addr + 12, 4);
        } else {
            key[0] = AF_INET6;
            memcpy(key + 1, a6.sin6_addr.s6_addr, 8);
        }
    }
}

/* Publishes the open-connection count; called with conn_lock held. */
static void conns_gauge(Server *s)
{
    if (s->ctx->metrics)
        metrics_gauge_set(s->ctx->metrics, "initlab_http_connections", "", s->nconns);
}

/* Shuts c's socket down so that its thread closes it; called with conn_lock held. */
static void conn_close(Server *s, Conn *c, CloseReason why)
{
    shutdown(c->fd, SHUT_RDWR);
    c->closing = true;
    s->nconns--;
    conns_gauge(s);
    if (s->ctx->metrics)
        metrics_counter_add(s->ctx->metrics, "initlab_http_connections_closed_total",
                            close_labels[why], 1);
}

/* Which of two connections to evict first: one still sending its request head, then its
 * body, then one receiving its reply; among equals the one waiting longest. */
static bool evict_before(const Conn *c, const Conn *than)
{
    return !than || c->phase < than->phase || (c->phase == than->phase && c->since < than->since);
}

/* libmicrohttpd's accept policy: admits every connection, evicting to make room (see
 * server.h); refuses only when every slot of the address, or of all, holds a stream. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    Server *s = cls;
    if (addrlen < sizeof(sa_family_t) ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return MHD_YES; /* the probe connection (server_liveness) */
    unsigned char key[17];
    address_key(addr, key);
    pthread_mutex_lock(&s->conn_lock);
    unsigned same = 0;
    Conn *mine = NULL, *any = NULL;
    for (Conn *c = s->conns; c; c = c->next) {
        if (c->internal || c->closing)
            continue;
        bool ours = memcmp(c->key, key, sizeof key) == 0;
        same += ours;
        if (c->stream)
            continue;
        if (ours && evict_before(c, mine))
            mine = c;
        if (evict_before(c, any))
            any = c;
    }
    Conn *victim = NULL;
    bool refuse = false;
    if (same >= s->cfg.per_ip_limit) {
        victim = mine;
        refuse = !mine;
    } else if (s->nconns >= s->soft_limit) {
        victim = any;
        refuse = !any;
    }
    if (victim)
        conn_close(s, victim, CLOSE_EVICTED);
    pthread_mutex_unlock(&s->conn_lock);
    if (refuse) {
        if (s->ctx->metrics)
            metrics_counter_add(s->ctx->metrics, "initlab_http_connections_refused_total", "",
                                1);
        log_debug("http", "connection refused: every slot of its address holds a stream");
    }
    return refuse ? MHD_NO : MHD_YES;
}

/* libmicrohttpd's connection start and end: makes and frees the Conn record. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    Server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fdi =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ai =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        Conn *c = calloc(1, sizeof *c);
        if (!c || !fdi) {
            free(c); /* unaccountable: let it go rather than bypass the limits */
            if (fdi)
                shutdown(fdi->connect_fd, SHUT_RDWR);
            *socket_context = NULL;
            return;
        }
        c->fd = fdi->connect_fd;
        const struct sockaddr *sa = ai ? ai->client_addr : NULL;
        c->internal = sa && sa->sa_family == AF_UNIX;
        if (sa && !c->internal)
            address_key(sa, c->key);
        c->phase = PHASE_HEAD;
        c->since = api_now();
        pthread_mutex_lock(&s->conn_lock);
        c->prev = s->conns_tail;
        if (s->conns_tail)
            s->conns_tail->next = c;
        else
            s->conns = c;
        s->conns_tail = c;
        if (!c->internal) {
            s->nconns++;
            conns_gauge(s);
        }
        pthread_mutex_unlock(&s->conn_lock);
        *socket_context = c;
        return;
    }
    Conn *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&s->conn_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        s->conns_tail = c->prev;
    if (!c->internal && !c->closing) {
        s->nconns--;
        conns_gauge(s);
    }
    pthread_mutex_unlock(&s->conn_lock);
    free(c);
    *socket_context = NULL;
}

static Conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

static void conn_phase(Server *s, Conn *c, Phase phase, bool stream)
{
    if (!c)
        return;
    pthread_mutex_lock(&s->conn_lock);
    c->phase = phase;
    c->since = api_now();
    c->stream |= stream;
    pthread_mutex_unlock(&s->conn_lock);
}

/* Closes connections past their head or body deadline, every REAPER_PERIOD_MS. */
static void *reaper_main(void *arg)
{
    Server *s = arg;
    double head = s->cfg.header_timeout_s, body = s->cfg.body_timeout_s;
    pthread_mutex_lock(&s->conn_lock);
    while (!s->stopping) {
        double now = api_now();
        for (Conn *c = s->conns; c; c = c->next) {
            if (c->internal || c->closing || c->stream)
                continue;
            if (head > 0 && c->phase == PHASE_HEAD && now - c->since > head)
                conn_close(s, c, CLOSE_HEADER_TIMEOUT);
            else if (body > 0 && c->phase == PHASE_BODY && now - c->since > body)
                conn_close(s, c, CLOSE_BODY_TIMEOUT);
        }
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        long long ns = deadline.tv_nsec + REAPER_PERIOD_MS * 1000000LL;
        deadline.tv_sec += (time_t)(ns / 1000000000LL);
        deadline.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&s->reaper_wake, &s->conn_lock, &deadline);
    }
    pthread_mutex_unlock(&s->conn_lock);
    return NULL;
}

/* ---- liveness of the HTTP threads ------------------------------------------------- */

static _Thread_local Server *busy_server;
static _Thread_local int busy_slot = -1;

/* Marks the calling pool thread as inside a callback from now on. */
static void busy_enter(Server *s)
{
    if (busy_server != s) {
        busy_server = s;
        int i = atomic_fetch_add(&s->nbusy, 1);
        busy_slot = i < MAX_HTTP_THREADS ? i : -1;
    }
    if (busy_slot >= 0)
        atomic_store(&s->busy[busy_slot], micros_now());
}

static void busy_leave(Server *s)
{
    if (busy_server == s && busy_slot >= 0)
        atomic_store(&s->busy[busy_slot], 0);
}

/* ---- event streams ---------------------------------------------------------------- */

typedef struct {
    ApiStream api;        /* first: the router-side handle */
    Server *server;
    ApiStreamRead read;
    ApiStreamFree free_fn;
    void *cls;
} Stream;

static void stream_pause(ApiStream *s)
{
    MHD_suspend_connection(s->server_data);
}

static void stream_wake(ApiStream *s)
{
    MHD_resume_connection(s->server_data);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    Stream *st = cls;
    (void)pos;
    busy_enter(st->server);
    long n = st->read(st->cls, &st->api, buf, max);
    busy_leave(st->server);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void stream_release(void *cls)
{
    Stream *st = cls;
    if (st->free_fn)
        st->free_fn(st->cls);
    free(st);
}

/* ---- responses -------------------------------------------------------------------- */

static bool is_api_path(const char *path)
{
    return strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0;
}

/* Turns reply into an MHD response (taking over its body); NULL on failure. */
static struct MHD_Response *make_response(Server *s, struct MHD_Connection *conn,
                                          ApiReply *reply)
{
    struct MHD_Response *r = NULL;
    switch (reply->kind) {
    case API_BODY_BUFFER:
        r = MHD_create_response_from_buffer(reply->body_len, reply->body, MHD_RESPMEM_MUST_FREE);
        if (r)
            reply->body = NULL;
        break;
    case API_BODY_FILE:
        r = MHD_create_response_from_fd64(reply->file_size, reply->fd);
        if (r)
            reply->fd = -1;
        break;
    case API_BODY_STREAM: {
        Stream *st = calloc(1, sizeof *st);
        if (!st)
            break;
        st->api.pause = stream_pause;
        st->api.wake = stream_wake;
        st->api.server_data = conn;
        st->server = s;
        st->read = reply->stream_read;
        st->free_fn = reply->stream_free;
        st->cls = reply->stream_cls;
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_reader, st,
                                              stream_release);
        if (r) {
            reply->kind = API_BODY_NONE; /* the response owns the stream now */
            reply->stream_free = NULL;
        } else {
            free(st);
        }
        break;
    }
    case API_BODY_NONE:
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        break;
    }
    if (!r)
        return NULL;
    bool ok = true;
    if (reply->content_type)
        ok &= MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, reply->content_type) ==
              MHD_YES;
    for (int i = 0; i < reply->nheaders; i++)
        ok &= MHD_add_response_header(r, reply->headers[i].name, reply->headers[i].value) ==
              MHD_YES;
    if (!ok) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* Queues reply on conn, counting it (the probe's requests are not counted); falls back to
 * a bare 500 when no response can be built. Returns MHD_YES, or MHD_NO to close the
 * connection when even that failed. */
static enum MHD_Result send_reply(Server *s, struct MHD_Connection *conn, Exchange *ex,
                                  const ApiRequest *req, ApiReply *reply)
{
    if (!api_reply_get_header(reply, "Cache-Control"))
        api_reply_header(reply, "Cache-Control", "no-store");
    api_reply_header(reply, "X-Content-Type-Options", "nosniff");
    api_reply_header(reply, "Referrer-Policy", "no-referrer");
    int status = reply->status ? reply->status : 500;
    bool stream = reply->kind == API_BODY_STREAM;
    struct MHD_Response *r = make_response(s, conn, reply);
    if (!r) {
        status = 500;
        stream = false;
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
    }
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    conn_phase(s, ex->conn, PHASE_REPLY, stream && ok == MHD_YES);
    if (ex->conn && ex->conn->internal)
        return ok;
    if (s->ctx->metrics)
        metrics_http_observe(s->ctx->metrics, status, api_now() - ex->t0);
    if (status >= 500)
        log_warn("http", "%s %s -> %d", req->method, req->path, status);
    else
        log_debug("http", "%s %s -> %d", req->method, req->path, status);
    return ok;
}

/* The path of an absolute-form request target ("http://host:port/path" -> "/path"). */
static const char *origin_form(const char *url)
{
    const char *rest = strncasecmp(url, "http://", 7) == 0    ? url + 7
                       : strncasecmp(url, "https://", 8) == 0 ? url + 8
                                                              : NULL;
    if (!rest)
        return url;
    const char *slash = strchr(rest, '/');
    return slash ? slash : "/";
}

/* ---- admission of a request head -------------------------------------------------- */

/* What the headers say about the framing of the body and the Host. */
typedef struct {
    int hosts;                 /* Host header fields */
    int lengths;               /* Content-Length fields */
    const char *length;        /* the first one */
    bool lengths_differ;
    int encodings;             /* Transfer-Encoding fields */
    const char *encoding;      /* the first one */
    const char *content_type;
} Framing;

static enum MHD_Result framing_step(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    Framing *f = cls;
    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
        f->hosts++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (f->lengths++ == 0)
            f->length = value;
        else if (strcmp(value ? value : "", f->length ? f->length : "") != 0)
            f->lengths_differ = true;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        if (f->encodings++ == 0)
            f->encoding = value;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_TYPE) == 0 && !f->content_type) {
        f->content_type = value;
    }
    return MHD_YES;
}

/* True when a Content-Type names the media type want (parameters such as charset
 * allowed). */
static bool media_is(const char *type, const char *want)
{
    while (*type == ' ' || *type == '\t')
        type++;
    size_t n = strlen(want);
    if (strncasecmp(type, want, n) != 0)
        return false;
    char after = type[n];
    return after == 0 || after == ';' || after == ' ' || after == '\t';
}

/* True when a Content-Type names application/json. */
static bool media_is_json(const char *type)
{
    return media_is(type, "application/json");
}

/* Judges what the request head alone decides, before any body is read: framing, size,
 * Host, Origin, token and media type (in that order). Returns true when reply was set:
 * the request is answered at once (and the connection closed if a body was announced). */
static bool admit(Server *s, struct MHD_Connection *conn, Exchange *ex, const char *version,
                  ApiRequest *req, ApiReply *reply)
{
    const Auth *auth = s->ctx->auth;
    Framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_step, &f);
    const union MHD_ConnectionInfo *head =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    unsigned long long length = 0;
    bool length_overflows = false;
    ex->upload = auth_unsafe_method(req->method) &&
                 router_is_upload(s->router, req->method, req->path);
    size_t limit = ex->upload ? s->cfg.max_upload : s->cfg.max_body;
    if (f.length) {
        char *end;
        errno = 0;
        length = strtoull(f.length, &end, 10);
        length_overflows = errno == ERANGE || (end != f.length && length > limit);
    }
    if (f.hosts > 1) {
        api_reply_problem(reply, 400, NULL, "Host: sent %d times; send it once", f.hosts);
    } else if (f.hosts == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0) {
        api_reply_problem(reply, 400, NULL, "Host: required in an HTTP/1.1 request");
    } else if (f.encodings > 1 || (f.encodings && strcasecmp(f.encoding, "chunked") != 0)) {
        api_reply_problem(reply, 501, NULL, "Transfer-Encoding '%.100s' is not supported: "
                          "send the body chunked or with a Content-Length", f.encoding);
    } else if (f.encodings && f.lengths) {
        api_reply_problem(reply, 400, NULL, "Content-Length and Transfer-Encoding together: "
                          "send one of them");
    } else if (f.lengths_differ) {
        api_reply_problem(reply, 400, NULL, "Content-Length: two different values ('%.40s' "
                          "and another)", f.length);
    } else if (strlen(req->path) > MAX_PATH_BYTES) {
        reply->instance = NULL; /* not worth echoing */
        api_reply_problem(reply, 414, NULL, "the path is longer than %d bytes",
                          MAX_PATH_BYTES);
    } else if (head && head->header_size > MAX_HEAD_BYTES) {
        api_reply_problem(reply, 431, NULL, "the request head has %zu bytes, more than %d",
                          head->header_size, MAX_HEAD_BYTES);
    } else if (length_overflows) {
        ex->too_large = true;
        api_reply_problem_field(reply, 413, "body", "larger than the limit of %zu bytes",
                                limit);
    }
    if (reply->status)
        return true;
    if (auth_check_host(auth, req, reply) < 0 || auth_cors_preflight(auth, req, reply) ||
        auth_check_origin(auth, req, reply) < 0 || auth_check(auth, req, reply) < 0)
        return true;
    bool body = f.encodings || length > 0;
    if (ex->upload) {
        /* A file, not JSON: application/octet-stream and nothing else, body or not. */
        if (!f.content_type || !media_is(f.content_type, "application/octet-stream")) {
            api_reply_problem_field(reply, 415, "Content-Type", "send the file as "
                                    "application/octet-stream (got '%.100s')",
                                    f.content_type ? f.content_type : "none");
            api_reply_header(reply, "Accept-Put", "application/octet-stream");
            return true;
        }
        return false;
    }
    if (auth_unsafe_method(req->method) && (f.content_type || body) &&
        !(f.content_type && media_is_json(f.content_type)) &&
        router_has_route(s->router, req->method, req->path)) {
        if (f.content_type)
            api_reply_problem_field(reply, 415, "Content-Type", "send application/json "
                                    "(got '%.100s')", f.content_type);
        else
            api_reply_problem_field(reply, 415, "Content-Type", "required with a body: send "
                                    "application/json");
        api_reply_header(reply, "Accept-Post", "application/json");
        return true;
    }
    return false;
}

/* ---- the request handler ---------------------------------------------------------- */

static void request_init(Server *s, struct MHD_Connection *conn, ApiRequest *req,
                         ApiReply *reply, const char *method, const char *url)
{
    url = origin_form(url);
    api_request_init(req, method, url, s->ctx);
    req->io = &mhd_io;
    req->io_cls = conn;
    api_reply_init(reply, url);
}

/* Adds the CORS headers, sends reply and frees it. */
static enum MHD_Result finish(Server *s, struct MHD_Connection *conn, Exchange *ex,
                              ApiRequest *req, ApiReply *reply)
{
    auth_cors_headers(s->ctx->auth, req, reply);
    enum MHD_Result rc = send_reply(s, conn, ex, req, reply);
    api_reply_deinit(reply);
    return rc;
}

static int upload_open(Server *s, Exchange *ex);

/* The first call of a request (its head is complete): the Exchange, then admission. */
static enum MHD_Result request_start(Server *s, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version, void **req_cls)
{
    Exchange *ex = calloc(1, sizeof *ex);
    if (!ex)
        return MHD_NO;
    ex->upload_fd = -1;
    ex->t0 = api_now();
    ex->conn = conn_of(conn);
    *req_cls = ex;
    conn_phase(s, ex->conn, PHASE_BODY, false);
    if (ex->conn && ex->conn->internal)
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    ApiRequest req;
    ApiReply reply;
    request_init(s, conn, &req, &reply, method, url);
    if (admit(s, conn, ex, version, &req, &reply))
        return finish(s, conn, ex, &req, &reply);
    if (ex->upload && upload_open(s, ex) < 0) {
        api_reply_problem(&reply, 507, NULL, "no room for the upload: %s", strerror(errno));
        return finish(s, conn, ex, &req, &reply);
    }
    api_reply_deinit(&reply);
    return MHD_YES;
}

/* Opens the temporary file of an upload in cfg.upload_dir. Returns 0, or -1 with errno. */
static int upload_open(Server *s, Exchange *ex)
{
    const char *dir = s->cfg.upload_dir ? s->cfg.upload_dir : "/tmp";
    if (asprintf(&ex->upload_path, "%s/upload.XXXXXX", dir) < 0) {
        ex->upload_path = NULL;
        errno = ENOMEM;
        return -1;
    }
    ex->upload_fd = mkostemp(ex->upload_path, O_CLOEXEC);
    if (ex->upload_fd < 0) {
        int e = errno;
        free(ex->upload_path);
        ex->upload_path = NULL;
        errno = e;
        return -1;
    }
    return 0;
}

/* Closes and removes what is left of an upload (the handler may have moved the file). */
static void upload_close(Exchange *ex)
{
    if (ex->upload_fd >= 0)
        close(ex->upload_fd);
    ex->upload_fd = -1;
    if (ex->upload_path)
        unlink(ex->upload_path);
    free(ex->upload_path);
    ex->upload_path = NULL;
}

/* Writes a piece of an upload to its file, or counts it away once it is too large. */
static enum MHD_Result upload_body(Server *s, Exchange *ex, const char *data, size_t n)
{
    if (ex->too_large || ex->upload_failed || ex->upload_fd < 0) {
        ex->discarded += n;
        return ex->discarded > DISCARD_LIMIT ? MHD_NO : MHD_YES;
    }
    if (n > s->cfg.max_upload - ex->upload_len) {
        ex->too_large = true;
        return MHD_YES;
    }
    for (size_t done = 0; done < n;) {
        ssize_t w = write(ex->upload_fd, data + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            ex->upload_failed = true;
            return MHD_YES;
        }
        done += (size_t)w;
    }
    ex->upload_len += n;
    return MHD_YES;
}

/* Appends a piece of the body, or counts it away once the body is too large. */
static enum MHD_Result request_body(Server *s, Exchange *ex, const char *data, size_t n)
{
    if (ex->upload)
        return upload_body(s, ex, data, n);
    if (ex->too_large) {
        ex->discarded += n;
        return ex->discarded > DISCARD_LIMIT ? MHD_NO : MHD_YES;
    }
    if (n > s->cfg.max_body - ex->len) {
        ex->too_large = true;
        ex->discarded = ex->len + n;
        free(ex->body);
        ex->body = NULL;
        ex->len = ex->cap = 0;
        return MHD_YES;
    }
    if (ex->len + n + 1 > ex->cap) {
        size_t cap = ex->cap ? ex->cap : 1024;
        while (cap < ex->len + n + 1)
            cap *= 2;
        char *b = realloc(ex->body, cap);
        if (!b)
            return MHD_NO;
        ex->body = b;
        ex->cap = cap;
    }
    memcpy(ex->body + ex->len, data, n);
    ex->len += n;
    ex->body[ex->len] = 0;
    return MHD_YES;
}

/* The last call: the whole body is in; route and answer. */
static enum MHD_Result request_end(Server *s, struct MHD_Connection *conn, Exchange *ex,
                                   const char *url, const char *method)
{
    ApiRequest req;
    ApiReply reply;
    request_init(s, conn, &req, &reply, method, url);
    if (ex->body) {
        req.body = ex->body;
        req.body_len = ex->len;
    }
    if (ex->upload) {
        req.upload_path = ex->upload_path;
        req.upload_len = ex->upload_len;
    }
    if (ex->too_large)
        api_reply_problem_field(&reply, 413, "body", "larger than the limit of %zu bytes",
                                ex->upload ? s->cfg.max_upload : s->cfg.max_body);
    else if (ex->upload_failed)
        api_reply_problem(&reply, 507, NULL, "the upload could not be written: %s",
                          strerror(errno));
    else if (router_dispatch(s->router, &req, &reply) == ROUTER_NO_PATH) {
        if (is_api_path(req.path))
            api_reply_problem(&reply, 404, NULL, "no API route %s", req.path);
        else
            static_serve(s->ctx->web, &req, &reply);
    }
    if (ex->upload && !req.upload_path) {
        /* The handler moved the file away: its old name is not ours any more. */
        free(ex->upload_path);
        ex->upload_path = NULL;
    }
    upload_close(ex);
    return finish(s, conn, ex, &req, &reply);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    Server *s = cls;
    Exchange *ex = *req_cls;
    enum MHD_Result rc;
    busy_enter(s);
    if (!ex) {
        rc = request_start(s, conn, url, method, version, req_cls);
    } else if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        rc = request_body(s, ex, upload_data, n);
    } else {
        rc = request_end(s, conn, ex, url, method);
    }
    busy_leave(s);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    Server *s = cls;
    (void)toe;
    Exchange *ex = *req_cls;
    if (!ex)
        return;
    conn_phase(s, conn_of(conn), PHASE_HEAD, false);
    upload_close(ex);
    free(ex->body);
    free(ex);
    *req_cls = NULL;
}

/* libmicrohttpd's own messages are mostly about malformed client input: debug level. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    log_debug("http", "%s", msg);
}

/* ---- lifecycle -------------------------------------------------------------------- */

/* The whole PEM file at path as a heap string; NULL with a message. */
static char *read_pem(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0;
    if (f) {
        text = calloc(1, 1 << 20);
        len = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
        fclose(f);
    }
    if (!text || len == 0 || !strstr(text, "-----BEGIN ")) {
        snprintf(err, errlen, "%s: %s", path, !f ? strerror(errno) : "not a PEM file");
        free(text);
        return NULL;
    }
    return text;
}

/* Wipes (a key) and frees a PEM text; accepts NULL. */
static void free_pem(char *text)
{
    if (!text)
        return;
    explicit_bzero(text, strlen(text));
    free(text);
}

static int register_metrics(Metrics *m)
{
    if (!m)
        return 0;
    if (metrics_register(m, "initlab_http_connections", METRIC_GAUGE,
                         "Open HTTP connections.", NULL, 0) < 0 ||
        metrics_register(m, "initlab_http_connections_closed_total", METRIC_COUNTER,
                         "HTTP connections the server closed: evicted to admit a newcomer of "
                         "the same address or past the total, or past the deadline of their "
                         "request head or body.", NULL, 0) < 0 ||
        metrics_register(m, "initlab_http_connections_refused_total", METRIC_COUNTER,
                         "HTTP connections refused because every slot of their address held "
                         "an event stream.", NULL, 0) < 0)
        return -1;
    for (int i = 0; i < NCLOSE; i++)
        if (metrics_counter_add(m, "initlab_http_connections_closed_total", close_labels[i],
                                0) < 0)
            return -1;
    return metrics_counter_add(m, "initlab_http_connections_refused_total", "", 0);
}

Server *server_start(const ServerConfig *cfg, ApiContext *ctx, const Router *router, char *err,
                     size_t errlen)
{
    Server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->ctx = ctx;
    s->router = router;
    s->listen_fd = -1;
    s->quiesced_fd = MHD_INVALID_SOCKET;
    s->probe_fd = -1;
    if (s->cfg.max_body == 0 || s->cfg.max_body > ((size_t)1 << 40))
        s->cfg.max_body = (size_t)1 << 40;
    if (s->cfg.connection_limit < 2)
        s->cfg.connection_limit = 2;
    unsigned reserve = s->cfg.connection_limit / 16 ? s->cfg.connection_limit / 16 : 1;
    s->soft_limit = s->cfg.connection_limit - reserve;
    unsigned ceiling = server_per_ip_ceiling(s->cfg.connection_limit);
    if (s->cfg.per_ip_limit == 0 || s->cfg.per_ip_limit > ceiling)
        s->cfg.per_ip_limit = ceiling;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->reaper_wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&s->conn_lock, NULL);
    if (register_metrics(ctx->metrics) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (open_listen_socket(s, err, errlen) < 0)
        goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (s->cfg.tls_cert_file || s->cfg.tls_key_file) {
        if (!s->cfg.tls_cert_file || !s->cfg.tls_key_file) {
            snprintf(err, errlen, "TLS needs both a certificate and a key file");
            close(s->listen_fd);
            goto fail;
        }
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "this libmicrohttpd was built without TLS (GnuTLS)");
            close(s->listen_fd);
            goto fail;
        }
        if (!(s->tls_cert = read_pem(s->cfg.tls_cert_file, err, errlen)) ||
            !(s->tls_key = read_pem(s->cfg.tls_key_file, err, errlen))) {
            close(s->listen_fd);
            goto fail;
        }
        flags |= MHD_USE_TLS;
        s->tls = true;
    }
    if (s->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned threads = cfg->threads ? cfg->threads : 1;
    s->mhd = MHD_start_daemon(
        flags, 0, on_accept, s, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0,
        MHD_OPTION_CONNECTION_LIMIT, s->cfg.connection_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, MEMORY_LIMIT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, s,
        s->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->tls_cert,
        MHD_OPTION_HTTPS_MEM_KEY, s->tls_key,
        MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(err, errlen, "libmicrohttpd could not start on %s", s->address);
        close(s->listen_fd);
        goto fail;
    }
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        snprintf(err, errlen, "could not start the connection reaper thread");
        MHD_stop_daemon(s->mhd);
        goto fail;
    }
    s->reaper_running = true;
    return s;
fail:
    pthread_cond_destroy(&s->reaper_wake);
    pthread_mutex_destroy(&s->conn_lock);
    free_pem(s->tls_key);
    free_pem(s->tls_cert);
    free(s);
    return NULL;
}

int server_port(const Server *s)
{
    return s->port;
}

const char *server_address(const Server *s)
{
    return s->address;
}

int server_listen_fd(const Server *s)
{
    return s->listen_fd;
}

void server_stop_accepting(Server *s)
{
    if (!s || s->listen_fd < 0)
        return;
    /* libmicrohttpd hands the socket back but it must stay open until the threads are
     * gone; shutting it down makes the kernel refuse new connections right away. */
    s->quiesced_fd = MHD_quiesce_daemon(s->mhd);
    if (s->quiesced_fd != MHD_INVALID_SOCKET)
        shutdown(s->quiesced_fd, SHUT_RDWR);
    s->listen_fd = -1;
}

void server_free(Server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->conn_lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->reaper_wake);
    pthread_mutex_unlock(&s->conn_lock);
    if (s->reaper_running)
        pthread_join(s->reaper, NULL);
    MHD_stop_daemon(s->mhd); /* closes the listen socket unless it was quiesced */
    if (s->quiesced_fd != MHD_INVALID_SOCKET)
        close(s->quiesced_fd);
    if (s->probe_fd >= 0)
        close(s->probe_fd);
    pthread_cond_destroy(&s->reaper_wake);
    pthread_mutex_destroy(&s->conn_lock);
    free_pem(s->tls_key);
    free_pem(s->tls_cert);
    free(s);
}

/* ---- liveness --------------------------------------------------------------------- */

static int ms_left(double deadline)
{
    double left = (deadline - api_now()) * 1e3;
    return left > 0 ? (int)left + 1 : 0;
}

/* Hands one end of a new socket pair to libmicrohttpd as the probe connection and keeps
 * the other in s->probe_fd. Returns 0, or -1 with errno set. */
static int probe_open(Server *s)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        return -1;
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    memcpy(un.sun_path, PROBE_NAME, sizeof PROBE_NAME);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sizeof PROBE_NAME);
    if (MHD_add_connection(s->mhd, sv[1], (struct sockaddr *)&un, len) != MHD_YES) {
        int e = errno;
        close(sv[0]); /* libmicrohttpd closed sv[1] */
        errno = e;
        return -1;
    }
    s->probe_fd = sv[0];
    return 0;
}

/* Sends GET /api/v1/health on the probe connection and reads the whole reply. Returns the
 * status, or -1 when no complete reply came within the deadline. */
static int probe_exchange(Server *s, double deadline)
{
    char req[160];
    int n = snprintf(req, sizeof req, "GET /api/v1/health HTTP/1.1\r\nHost: %s\r\n"
                     "User-Agent: initlab-watchdog\r\n\r\n", s->address);
    if (send(s->probe_fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return -1;
    char buf[2048];
    size_t got = 0, need = 0;
    struct pollfd p = {.fd = s->probe_fd, .events = POLLIN};
    while (!need || got < need) {
        if (poll(&p, 1, ms_left(deadline)) != 1)
            return -1;
        ssize_t r = recv(s->probe_fd, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        buf[got] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (!need && end) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            if (!cl || cl > end)
                return -1;
            need = (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10);
            if (need >= sizeof buf)
                return -1;
        }
        if (!need && got == sizeof buf - 1)
            return -1;
    }
    if (got != need || strncmp(buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    return atoi(buf + 9);
}

int server_liveness(Server *s, int timeout_ms, double stuck_s, char *why, size_t whylen)
{
    long long now = micros_now();
    int slots = atomic_load(&s->nbusy);
    for (int i = 0; i < slots && i < MAX_HTTP_THREADS; i++) {
        long long since = atomic_load(&s->busy[i]);
        if (since && (double)(now - since) > stuck_s * 1e6) {
            snprintf(why, whylen, "an HTTP thread has been handling one request for %.0f s",
                     (double)(now - since) / 1e6);
            return -1;
        }
    }
    /* Over TLS the probe would need a TLS client of its own: the threads' busy slots
     * above are then the whole judgement. */
    if (s->tls)
        return 0;
    double deadline = api_now() + timeout_ms / 1e3;
    if (s->probe_fd < 0 && probe_open(s) < 0) {
        snprintf(why, whylen, "the probe connection could not be made: %s", strerror(errno));
        return -1;
    }
    int status = probe_exchange(s, deadline);
    if (status == 200)
        return 0;
    if (status > 0) {
        snprintf(why, whylen, "GET /api/v1/health answered %d", status);
        return 1;
    }
    close(s->probe_fd); /* a late or partial reply must not be read as the next one */
    s->probe_fd = -1;
    snprintf(why, whylen, "GET /api/v1/health did not answer within %d ms", timeout_ms);
    return -1;
}
