/* server.h — the HTTP server: a listen socket, libmicrohttpd's threads, admission and limits.
 *
 * The server owns the translation between HTTP connections and the router: it accumulates
 * the request body (refusing bodies above the limit with 413, judged by Content-Length
 * before reading and again while reading), checks the request's framing, Host, Origin,
 * token and media type before the body is read, dispatches to the router, serves every
 * other path from the web directory, counts responses in the metrics and sends the reply.
 *
 * Admission: no client can starve the others or the watchdog.
 *   - One address (an IPv4 address or an IPv6 /64) holds at most per_ip_limit connections,
 *     and all addresses together at most connection_limit less a reserve of 1/16. When a
 *     new connection would exceed either, the server closes the connection of that address
 *     (or, for the total, of any address) that has waited longest on its client — a request
 *     head not yet complete first, then a body, then a reply — and admits the new one;
 *     only when there is none (every slot holds an event stream) is the newcomer refused.
 *     So a request that arrives whole, such as GET /api/v1/health, is answered however
 *     many slow or idle connections its own address holds.
 *   - A request head must arrive within header_timeout seconds of the connection's start
 *     or of the previous response (idle keep-alive connections included), a body within
 *     body_timeout seconds of its head; otherwise the connection is closed without a reply.
 *     The idle timeout (timeout_s) applies besides, while a reply is sent.
 *   - Event streams are capped by the event hub (events.h), below per_ip_limit, and are
 *     never evicted.
 *   - The watchdog's probe (server_liveness) goes over a connection the server made for
 *     itself, outside every limit, so it needs no free slot.
 *
 * Bodies. A request body is JSON (Content-Type: application/json, 415 otherwise) held in
 * memory up to max_body, except on upload routes (router_add_upload: checkpoint files of
 * remote workers), whose body must be application/octet-stream and is streamed to a
 * temporary file in upload_dir, up to max_upload.
 *
 * TLS. With a certificate and key the server speaks only HTTPS (libmicrohttpd's GnuTLS).
 * The watchdog's probe (below) speaks plain HTTP, so over TLS server_liveness judges the
 * threads by their busy slots alone.
 *
 * Threading model: libmicrohttpd's internal epoll threads (a pool of `threads`) plus one
 * reaper thread for the timeouts. Sockets are non-blocking, so a slow or stalled client
 * costs a connection slot and a little memory, not a thread. Event streams suspend their
 * connection while idle. The costs: a handler that blocks holds up the other connections of
 * its pool thread, so handlers must stay short (reads from SQLite are; training runs on the
 * job workers, never in a handler); server_liveness reports a handler busy for too long. */
#ifndef INITLAB_API_SERVER_H
#define INITLAB_API_SERVER_H

#include <stddef.h>
#include <sys/socket.h>

#include "api/api.h"
#include "api/router.h"

typedef struct Server Server;

typedef struct {
    const char *listen;        /* "127.0.0.1:8470", "[::1]:8470", "0.0.0.0:0" (0: any free port) */
    size_t max_body;           /* largest request body in bytes */
    unsigned threads;          /* polling threads */
    unsigned connection_limit; /* open connections in all (a reserve of 1/16 kept free) */
    unsigned per_ip_limit;     /* open connections per client address (IPv6: per /64) */
    unsigned timeout_s;        /* a reply that makes no progress is cut after this many s */
    unsigned header_timeout_s; /* a request head must be complete within this many s */
    unsigned body_timeout_s;   /* a request body must be complete within this many s */
    size_t max_upload;         /* largest body of an upload route (router_add_upload) */
    const char *upload_dir;    /* where upload bodies are written (NULL: /tmp); must be on
                                  the file system their handlers move them to */
    const char *tls_cert_file; /* PEM certificate (chain) and key: serve HTTPS (GnuTLS in */
    const char *tls_key_file;  /* libmicrohttpd); both NULL: plain HTTP */
} ServerConfig;

/* Defaults: 127.0.0.1:8470, 1 MiB bodies, 8 GiB uploads into /tmp, 4 threads, 1024
 * connections, 512 per address, 30 s idle timeout, 10 s for a request head, 30 s for a
 * body, no TLS. Can't fail. */
void server_config_default(ServerConfig *cfg);

/* Parses "IPv4:PORT", "[IPv6]:PORT" or "localhost:PORT" into addr. Returns 0, or -1 with a
 * message in err. Can't fail otherwise; thread-safe. */
int server_parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *addrlen,
                        char *err, size_t errlen);

/* Binds and listens on cfg->listen, then starts the HTTP threads. ctx and router are
 * borrowed and must outlive the server; router must not change any more. When this
 * returns, the socket accepts connections. Returns NULL with a message in err on failure
 * (address in use, permission, bad address). */
Server *server_start(const ServerConfig *cfg, ApiContext *ctx, const Router *router, char *err,
                     size_t errlen);

/* The bound port (the real one when cfg->listen asked for port 0). */
int server_port(const Server *s);
/* The bound address, "127.0.0.1:34567" or "[::1]:34567". */
const char *server_address(const Server *s);
/* The listen socket, or -1 once the server stopped accepting. */
int server_listen_fd(const Server *s);

/* The largest per_ip_limit that leaves headroom under connection_limit (7/8 of it, at
 * least 1). Can't fail; thread-safe. */
unsigned server_per_ip_ceiling(unsigned connection_limit);

/* Judges the HTTP threads without needing a free connection slot: no HTTP thread may have
 * been inside one callback (a handler, a stream read) for more than stuck_s seconds, and
 * GET /api/v1/health must answer within timeout_ms over the server's own probe connection
 * (a socket pair handed to libmicrohttpd, exempt from the limits and timeouts; made on the
 * first call and again after a failure). Returns 0 when both hold and health answered 200;
 * 1 when the threads are live but health answered another status (e.g. 503: the database
 * file is gone), with that status in why; -1 with the reason in why when the threads are
 * not live. Call from one thread at a time (the supervisor). */
int server_liveness(Server *s, int timeout_ms, double stuck_s, char *why, size_t whylen);

/* Stops accepting new connections (closes the listen socket); open connections are still
 * served. Idempotent. Call from one thread at a time. */
void server_stop_accepting(Server *s);
/* Stops the threads (waiting for handlers that are running) and frees. Every event stream
 * must have ended (events_close) before, and no other thread may call server_liveness.
 * Accepts NULL. */
void server_free(Server *s);

#endif
