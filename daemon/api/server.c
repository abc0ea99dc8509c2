/* server.c — libmicrohttpd glue: listen socket, request bodies, dispatch, responses.
 *
 * DESIGN
 * This is the only file that includes microhttpd.h. libmicrohttpd runs `threads` internal
 * epoll threads; each calls on_request for the connections it owns. Per-request state (an
 * Exchange: the body buffer and the start time) lives in *req_cls and is freed in
 * on_completed. Every response is created, queued and destroyed within one on_request
 * call. Shared state (ApiContext, Router, StaticDir, Auth) is read-only while the server
 * runs; Metrics and EventHub are thread-safe. Event streams pause their connection with
 * MHD_suspend_connection from inside the content reader and are resumed from other threads
 * with MHD_resume_connection (events.c explains the locking). */
#include "api/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
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
};

typedef struct {
    double t0;
    char *body;
    size_t len, cap;
    bool too_large;
    size_t discarded;
} Exchange;

void server_config_default(ServerConfig *cfg)
{
    cfg->listen = "127.0.0.1:8470";
    cfg->max_body = 1u << 20;
    cfg->threads = 4;
    cfg->connection_limit = 512;
    cfg->per_ip_limit = 256;
    cfg->timeout_s = 30;
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

/* ---- event streams ---------------------------------------------------------------- */

typedef struct {
    ApiStream api;        /* first: the router-side handle */
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
    long n = st->read(st->cls, &st->api, buf, max);
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
static struct MHD_Response *make_response(struct MHD_Connection *conn, ApiReply *reply)
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

/* Queues reply on conn, counting it; falls back to a bare 500 when no response can be
 * built. Returns MHD_YES, or MHD_NO to close the connection when even that failed. */
static enum MHD_Result send_reply(Server *s, struct MHD_Connection *conn, const char *path,
                                  const char *method, ApiReply *reply, double t0)
{
    if (!api_reply_get_header(reply, "Cache-Control"))
        api_reply_header(reply, "Cache-Control", "no-store");
    api_reply_header(reply, "X-Content-Type-Options", "nosniff");
    api_reply_header(reply, "Referrer-Policy", "no-referrer");
    int status = reply->status ? reply->status : 500;
    struct MHD_Response *r = make_response(conn, reply);
    if (!r) {
        status = 500;
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
    }
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    if (s->ctx->metrics)
        metrics_http_observe(s->ctx->metrics, status, api_now() - t0);
    if (status >= 500)
        log_warn("http", "%s %s -> %d", method, path, status);
    else
        log_debug("http", "%s %s -> %d", method, path, status);
    return ok;
}

static void handle(Server *s, ApiRequest *req, ApiReply *reply)
{
    const Auth *auth = s->ctx->auth;
    bool api = is_api_path(req->path);
    if (auth_cors_preflight(auth, req, reply))
        return;
    if (api && auth_check(auth, req, reply) < 0)
        return;
    if (router_dispatch(s->router, req, reply) == ROUTER_NO_PATH) {
        if (api)
            api_reply_problem(reply, 404, NULL, "no API route %s", req->path);
        else
            static_serve(s->ctx->web, req, reply);
    }
    auth_cors_headers(auth, req, reply);
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

static enum MHD_Result respond(Server *s, struct MHD_Connection *conn, Exchange *ex,
                               const char *url, const char *method)
{
    url = origin_form(url);
    ApiRequest req;
    ApiReply reply;
    api_request_init(&req, method, url, s->ctx);
    req.io = &mhd_io;
    req.io_cls = conn;
    if (ex->body) {
        req.body = ex->body;
        req.body_len = ex->len;
    }
    api_reply_init(&reply, url);
    if (ex->too_large)
        api_reply_problem_field(&reply, 413, "body", "larger than the limit of %zu bytes",
                                s->cfg.max_body);
    else
        handle(s, &req, &reply);
    enum MHD_Result rc = send_reply(s, conn, url, method, &reply, ex->t0);
    api_reply_deinit(&reply);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    Server *s = cls;
    Exchange *ex = *req_cls;
    (void)version;
    if (!ex) {
        ex = calloc(1, sizeof *ex);
        if (!ex)
            return MHD_NO;
        ex->t0 = api_now();
        *req_cls = ex;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno == ERANGE || (end != cl && n > s->cfg.max_body)) {
                /* Answer before reading the body; the connection closes afterwards. */
                ex->too_large = true;
                return respond(s, conn, ex, url, method);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
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
        memcpy(ex->body + ex->len, upload_data, n);
        ex->len += n;
        ex->body[ex->len] = 0;
        return MHD_YES;
    }
    return respond(s, conn, ex, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    Exchange *ex = *req_cls;
    if (!ex)
        return;
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
    if (s->cfg.max_body == 0 || s->cfg.max_body > ((size_t)1 << 40))
        s->cfg.max_body = (size_t)1 << 40;
    if (open_listen_socket(s, err, errlen) < 0) {
        free(s);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (s->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned threads = cfg->threads ? cfg->threads : 1;
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0,
        MHD_OPTION_CONNECTION_LIMIT, cfg->connection_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->per_ip_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, s,
        MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(err, errlen, "libmicrohttpd could not start on %s", s->address);
        close(s->listen_fd);
        free(s);
        return NULL;
    }
    return s;
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
    MHD_stop_daemon(s->mhd); /* closes the listen socket unless it was quiesced */
    if (s->quiesced_fd != MHD_INVALID_SOCKET)
        close(s->quiesced_fd);
    free(s);
}

/* ---- self check ------------------------------------------------------------------- */

static double ms_left(double deadline)
{
    double left = (deadline - api_now()) * 1e3;
    return left > 0 ? left : 0;
}

int server_self_check(const Server *s, int timeout_ms)
{
    struct sockaddr_storage to = s->addr;
    /* A wildcard address is reached through loopback. */
    if (to.ss_family == AF_INET) {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&to;
        if (a4->sin_addr.s_addr == htonl(INADDR_ANY))
            a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&to;
        if (IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr))
            a6->sin6_addr = in6addr_loopback;
    }
    double deadline = api_now() + timeout_ms / 1e3;
    int fd = socket(to.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int rc = -1;
    struct pollfd p = {.fd = fd};
    if (connect(fd, (struct sockaddr *)&to, s->addrlen) < 0) {
        if (errno != EINPROGRESS)
            goto done;
        p.events = POLLOUT;
        int err = 0;
        socklen_t len = sizeof err;
        if (poll(&p, 1, (int)ms_left(deadline)) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)
            goto done;
    }
    static const char req[] = "GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n"
                              "User-Agent: initlab-watchdog\r\nConnection: close\r\n\r\n";
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1))
        goto done;
    char buf[64];
    size_t got = 0;
    p.events = POLLIN;
    while (got < 12) {
        if (poll(&p, 1, (int)ms_left(deadline)) != 1)
            goto done;
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0)
            goto done;
        got += (size_t)n;
    }
    buf[got] = 0;
    rc = strncmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : -1;
done:
    close(fd);
    return rc;
}
