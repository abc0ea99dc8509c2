/* auth.h — bearer-token access control for /api/ and the CORS policy.
 *
 * With a token file, every request under /api/ except GET /api/v1/health must carry
 * "Authorization: Bearer <token>"; otherwise it gets a 401 problem with
 * `WWW-Authenticate: Bearer realm="initlab"`. The comparison takes the same time whatever
 * the presented token is; the token is never logged or echoed. Without a token file
 * everything is open (the daemon listens on loopback by default).
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
 * (unreadable file, bad token, bad origin). Warns when the file is readable by others. */
Auth *auth_create(const char *token_file, const char *cors_origin, char *err, size_t errlen);
/* Wipes the token and frees. Accepts NULL. */
void auth_free(Auth *a);

/* True when a token is configured. Thread-safe. */
bool auth_enabled(const Auth *a);

/* True when req->path needs a token (under /api/, not /api/v1/health). Thread-safe. */
bool auth_required(const Auth *a, const ApiRequest *req);
/* Checks the Authorization header of req. Returns 0 when access is granted, or -1 after
 * setting a 401 problem with WWW-Authenticate on reply. Thread-safe. */
int auth_check(const Auth *a, const ApiRequest *req, ApiReply *reply);

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
