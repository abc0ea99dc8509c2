/* auth.h — who may ask: the bearer token, the Host names, cross-origin writes and CORS.
 *
 * With a token file, every request under /api/ except GET /api/v1/health, and /metrics,
 * must carry "Authorization: Bearer <token>"; otherwise it gets a 401 problem with
 * `WWW-Authenticate: Bearer realm="initlab"`. The comparison takes the same time whatever
 * the presented token is; the token is never logged or echoed. Without a token file
 * everything is open (the daemon listens on loopback by default).
 *
 * Without a token, a browser is what could be turned against the daemon, so:
 *   - Host must name this daemon (DNS rebinding: a page of evil.example whose name now
 *     resolves to 127.0.0.1 sends "Host: evil.example"); otherwise 421.
 *   - A POST, PUT, PATCH or DELETE that carries an Origin must come from the daemon's own
 *     pages or the configured CORS origin; otherwise 403 (cross-site request forgery).
 *
 * CORS: no Access-Control-* header is ever sent unless an allowed origin is configured,
 * and then only to requests whose Origin equals it. */
#ifndef INITLAB_API_AUTH_H
#define INITLAB_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "api/router.h"

/* Reads the token from token_file (NULL: no token) — surrounding whitespace trimmed; it
 * must then be 16 to 4096 visible ASCII characters — and keeps cors_origin (NULL: none;
 * otherwise "scheme://host[:port]" or "*"). Returns NULL with a message in err on failure
 * (unreadable file, bad token, bad origin). Warns when anyone but root and the daemon's
 * own user and group may read or write the file: its "other" bits, its group bits for
 * another group, or, for a file with a POSIX ACL (systemd's credentials: mode 0440, the
 * group bits being the ACL's mask), an entry for another user or group. */
Auth *auth_create(const char *token_file, const char *cors_origin, char *err, size_t errlen);
/* Adds the worker token read from token_file (the same rules as the token): it grants
 * /api/v1/worker/ only (leasing and reporting jobs, jobs/lease.h), and every other path
 * answers it 403. With a worker token, /api/v1/worker/ needs a token (the worker token or
 * the daemon's) even when the daemon has none. It must differ from the daemon's token.
 * Returns 0, or -1 with a message. Call before the server starts. */
int auth_set_worker_token(Auth *a, const char *token_file, char *err, size_t errlen);
/* True for the paths a worker token may use: under /api/v1/worker/. Can't fail. */
bool auth_worker_path(const char *path);
/* Wipes the tokens and frees. Accepts NULL. */
void auth_free(Auth *a);

/* True when a token is configured. Thread-safe. */
bool auth_enabled(const Auth *a);

/* True when req->path needs a token (under /api/ but /api/v1/health, and /metrics; with
 * a worker token also /api/v1/worker/). Thread-safe. */
bool auth_required(const Auth *a, const ApiRequest *req);
/* Checks the Authorization header of req: the daemon's token grants every path, the
 * worker token only /api/v1/worker/ (403 elsewhere). Returns 0 when access is granted, or
 * -1 after setting a 401 problem with WWW-Authenticate (or the 403) on reply.
 * Thread-safe. */
int auth_check(const Auth *a, const ApiRequest *req, ApiReply *reply);

/* Sets the names a request's Host may carry: the host of the listen address (listen as
 * "127.0.0.1:8470", "[::1]:0", "0.0.0.0:8470" or "localhost:8470"); for a loopback or
 * wildcard listener also "localhost", "127.0.0.1" and "::1"; for a wildcard listener any IP
 * literal; and the names in allowed, comma-separated (".example.org" also matches its
 * subdomains, "*" turns the check off; NULL or "" adds none). Until it is called, every
 * Host passes. Returns 0, or -1 with a message in err (a malformed entry or address,
 * allocation failure). Call before the server starts: Auth is read-only afterwards. */
int auth_set_hosts(Auth *a, const char *listen, const char *allowed, char *err, size_t errlen);

/* Checks the host part of req's Host header against the names above; the port is not
 * compared (an SSH tunnel or a port forward changes it, DNS rebinding changes the name). A
 * request without Host passes (the server refuses HTTP/1.1 without one). Returns 0, or -1
 * after setting a 421 problem naming the refused host. Thread-safe. */
int auth_check_host(const Auth *a, const ApiRequest *req, ApiReply *reply);

/* True for the methods that change state: POST, PUT, PATCH and DELETE. Can't fail. */
bool auth_unsafe_method(const char *method);

/* Refuses a cross-origin write: a POST, PUT, PATCH or DELETE whose Origin header is
 * present passes only when that origin's host[:port] equals the Host header (the daemon's
 * own pages) or the origin is the configured CORS origin ("*": any origin). Requests
 * without Origin (curl, scripts) pass. Returns 0, or -1 after setting a 403 problem.
 * Thread-safe. */
int auth_check_origin(const Auth *a, const ApiRequest *req, ApiReply *reply);

/* Adds the CORS response headers when req's Origin is allowed. Thread-safe. */
void auth_cors_headers(const Auth *a, const ApiRequest *req, ApiReply *reply);
/* Answers a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) with
 * 204 when the origin is allowed. Returns true when it set the reply. Thread-safe. */
bool auth_cors_preflight(const Auth *a, const ApiRequest *req, ApiReply *reply);

/* Constant-time comparison of the presented bytes with the secret: the time depends only
 * on secret_len. True when equal. Exposed for the tests. */
bool auth_equal_ct(const char *presented, size_t presented_len, const char *secret,
                   size_t secret_len);

#endif
