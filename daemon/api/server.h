/* server.h — the HTTP server: a listen socket, libmicrohttpd's threads, request limits.
 *
 * The server owns the translation between HTTP connections and the router: it accumulates
 * the request body (refusing bodies above the limit with 413, judged by Content-Length
 * before reading and again while reading), applies the token check and CORS policy to
 * /api/ paths, dispatches to the router, serves every other path from the web directory,
 * counts responses in the metrics and sends the reply.
 *
 * Threading model: libmicrohttpd's internal epoll threads (a pool of `threads`). Sockets
 * are non-blocking, so a slow or stalled client costs a connection slot and a little
 * memory, not a thread; 200 concurrent keep-alive clients share the pool. Event streams
 * suspend their connection while idle. The costs: a handler that blocks holds up the other
 * connections of its pool thread, so handlers must stay short (reads from SQLite are;
 * training runs on the job workers, never in a handler). */
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
    unsigned connection_limit; /* open connections in all */
    unsigned per_ip_limit;     /* open connections per client address */
    unsigned timeout_s;        /* idle connections are closed after this many seconds */
} ServerConfig;

/* Defaults: 127.0.0.1:8470, 1 MiB bodies, 4 threads, 512 connections, 256 per address,
 * 30 s idle timeout. Can't fail. */
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

/* Performs GET /api/v1/health over a new loopback connection to the listen socket and
 * returns 0 when it answered 200 within timeout_ms, -1 otherwise. Thread-safe. */
int server_self_check(const Server *s, int timeout_ms);

/* Stops accepting new connections (closes the listen socket); open connections are still
 * served. Idempotent. Call from one thread at a time. */
void server_stop_accepting(Server *s);
/* Stops the threads (waiting for handlers that are running) and frees. Every event stream
 * must have ended (events_close) before. Accepts NULL. */
void server_free(Server *s);

#endif
