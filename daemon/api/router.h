/* router.h — the route table and the request/reply objects every HTTP handler works with.
 *
 * A route is a method plus a path pattern whose segments may be parameters ("{id}",
 * "{name}"); a parameter matches one whole non-empty segment. The router answers the
 * errors shared by all routes itself: 404 problem for an unknown /api path, 405 with
 * Allow for a known path with another method. GET routes also answer HEAD.
 *
 * A handler is `int handler(ApiRequest *req, ApiReply *reply)`: it reads the request,
 * sets exactly one reply with one of the api_reply_* functions and returns 0. When it
 * returns negative without having set a reply, the client gets a 500 problem.
 *
 *     static int get_thing(ApiRequest *req, ApiReply *reply)
 *     {
 *         const char *id = api_param(req, "id");        // "/api/v1/things/{id}"
 *         if (!valid(id))
 *             return api_reply_problem_field(reply, 400, "id", "no thing '%s'", id);
 *         return api_reply_json(reply, 200, json_pack("{s:s}", "id", id));
 *     }
 *     router_add(r, "GET", "/api/v1/things/{id}", get_thing, NULL);
 *
 * Nothing here includes microhttpd.h: the server (server.c) builds ApiRequest from its
 * connection and turns ApiReply into a response, so handlers can be unit-tested with a
 * request built by hand (api_request_init). */
#ifndef INITLAB_API_ROUTER_H
#define INITLAB_API_ROUTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"

#define API_MAX_PARAMS 8

typedef struct ApiRequest ApiRequest;
typedef struct ApiReply ApiReply;
typedef int (*ApiHandler)(ApiRequest *req, ApiReply *reply);

/* Access to what only the server can see (headers, query arguments). */
typedef struct {
    /* The value of header/query argument name (case-insensitive for headers), or NULL. */
    const char *(*header)(void *cls, const char *name);
    const char *(*query)(void *cls, const char *name);
    /* Calls fn for every query argument in order; stops when fn returns non-zero and
     * returns that value; value is NULL for "?flag" without '='. */
    int (*query_each)(void *cls, int (*fn)(void *ud, const char *key, const char *value),
                      void *ud);
} ApiRequestIo;

struct ApiRequest {
    const char *method;   /* "GET", "HEAD", "POST", ... */
    const char *path;     /* percent-decoded path without the query string */
    const char *body;     /* request body, NUL-terminated copy; NULL when there is none */
    size_t body_len;      /* bytes in body, without the NUL */
    ApiContext *ctx;      /* the daemon's shared context (api.h) */
    void *route_data;     /* the data given to router_add for the matched route */
    int nparams;
    struct { const char *name, *value; } params[API_MAX_PARAMS]; /* path parameters */
    const ApiRequestIo *io;
    void *io_cls;
    const char *upload_path; /* an upload route's body, whole in this temporary file on the
                                state directory's file system (NULL otherwise); the handler
                                may rename it away, the server removes what is left */
    uint64_t upload_len;     /* its size in bytes */
    char param_buf[512];  /* storage of the parameter names and values */
};

/* Prepares req for method and path with no body, headers or query (a hand-made request for
 * tests, or the server's starting point). Borrows method, path and ctx. Can't fail. */
void api_request_init(ApiRequest *req, const char *method, const char *path, ApiContext *ctx);

/* The path parameter called name ("id" for "{id}"), or NULL. Can't fail. */
const char *api_param(const ApiRequest *req, const char *name);
/* The query argument / request header called name, or NULL. Borrowed, valid during the
 * handler. Can't fail. */
const char *api_query(const ApiRequest *req, const char *name);
const char *api_header(const ApiRequest *req, const char *name);
/* Calls fn(ud, key, value) for every query argument; see ApiRequestIo.query_each. */
int api_query_each(const ApiRequest *req, int (*fn)(void *ud, const char *key,
                                                    const char *value), void *ud);

/* Parses query argument name as an integer in [min, max]; absent gives def. Returns 0, or
 * -1 after setting a 400 problem naming the argument. */
int api_query_int(const ApiRequest *req, ApiReply *reply, const char *name, long long def,
                  long long min, long long max, long long *out);

/* Parses the body as JSON. Returns a new reference, or NULL after setting a 400 problem
 * ("body: invalid JSON at line L column C: reason", or "body: required" when empty).
 * When want_object, anything but an object is rejected too. */
json_t *api_request_json(ApiRequest *req, ApiReply *reply, bool want_object);

/* Rejects members of obj not in allowed (NULL-terminated): returns 0, or -1 after setting a
 * 400 problem naming the first unknown member. */
int api_json_check_keys(const json_t *obj, const char *const allowed[], ApiReply *reply);

/* Typed member getters for request validation. Each returns 1 when the member was present
 * and valid (stored in *out), 0 when it is absent and not required (*out untouched), and
 * -1 after setting a 400 problem naming the member ("epochs: must be an integer from 1 to
 * 1000", "model: required"). Borrowed strings live as long as obj. */
int api_json_string(const json_t *obj, const char *key, bool required, ApiReply *reply,
                    const char **out);
int api_json_int(const json_t *obj, const char *key, bool required, long long min,
                 long long max, ApiReply *reply, long long *out);
int api_json_number(const json_t *obj, const char *key, bool required, double min, double max,
                    ApiReply *reply, double *out);
int api_json_bool(const json_t *obj, const char *key, bool required, ApiReply *reply,
                  bool *out);

/* ---- replies ---------------------------------------------------------------------- */

/* A streamed body (Server-Sent Events). The server creates one per streaming reply and
 * frees it after the stream's free function ran. */
typedef struct ApiStream ApiStream;
struct ApiStream {
    void (*pause)(ApiStream *s);  /* set by the server */
    void (*wake)(ApiStream *s);
    void *server_data;
};
/* Fills buf with up to max bytes of the stream. Returns the byte count (> 0); 0 after
 * calling api_stream_pause because nothing is pending (the stream's owner calls
 * api_stream_wake later); or -1 at the end of the stream. */
typedef long (*ApiStreamRead)(void *cls, ApiStream *s, char *buf, size_t max);
typedef void (*ApiStreamFree)(void *cls);

/* Suspends the connection until api_stream_wake. Only from inside an ApiStreamRead, and
 * atomically with the owner's "nothing pending" decision (under the owner's lock). */
void api_stream_pause(ApiStream *s);
/* Resumes a paused stream; any thread, once per pause, never for a stream not paused. */
void api_stream_wake(ApiStream *s);

typedef enum { API_BODY_NONE, API_BODY_BUFFER, API_BODY_FILE, API_BODY_STREAM } ApiBodyKind;

struct ApiReply {
    int status;                /* 0 until a reply was set */
    char *content_type;        /* owned */
    ApiBodyKind kind;
    char *body;                /* API_BODY_BUFFER: owned, malloc'd */
    size_t body_len;
    int fd;                    /* API_BODY_FILE: owned until the server takes it */
    uint64_t file_size;
    ApiStreamRead stream_read; /* API_BODY_STREAM */
    ApiStreamFree stream_free;
    void *stream_cls;
    int nheaders, cap_headers;
    struct { char *name, *value; } *headers; /* owned */
    const char *instance;      /* the request path, for problem details; borrowed */
};

/* Prepares an empty reply whose problems name instance (the request path). Can't fail. */
void api_reply_init(ApiReply *reply, const char *instance);
/* Frees what the reply owns (body, fd, headers; a stream not yet handed over is freed with
 * its free function). Accepts a zeroed reply. */
void api_reply_deinit(ApiReply *reply);
/* Drops the body and content type (not the headers) so another reply can be set. */
void api_reply_reset(ApiReply *reply);

/* Each setter replaces any body set before and returns 0, or -1 on allocation failure
 * (the reply is then a bare 500 the server sends as such). */

/* Serializes json (steals the reference; NULL gives a 500) compactly as application/json. */
int api_reply_json(ApiReply *reply, int status, json_t *json);
/* RFC 9457 application/problem+json: {"type": "about:blank", "title", "status", "detail",
 * "instance"}. title NULL uses the status' reason phrase; detail_fmt may be NULL. */
int api_reply_problem(ApiReply *reply, int status, const char *title, const char *detail_fmt,
                      ...) __attribute__((format(printf, 4, 5)));
/* A problem that names the offending input: the detail starts with "field: " and the
 * member "field" carries the name (the dashboard shows it next to that form field). */
int api_reply_problem_field(ApiReply *reply, int status, const char *field,
                            const char *detail_fmt, ...) __attribute__((format(printf, 4, 5)));
/* A copy of text (NUL-terminated) with the given content type (CSV, Prometheus text). */
int api_reply_text(ApiReply *reply, int status, const char *content_type, const char *text);
/* Takes ownership of data (malloc'd, len bytes), even on failure. */
int api_reply_take(ApiReply *reply, int status, const char *content_type, char *data,
                   size_t len);
/* No body (204, 304). */
int api_reply_empty(ApiReply *reply, int status);
/* Sends size bytes of the open file fd; takes ownership of fd, even on failure. */
int api_reply_file(ApiReply *reply, int status, const char *content_type, int fd,
                   uint64_t size);
/* A body of unknown length produced by read (chunked); the reply owns cls and frees it
 * with free_fn when the connection is done (or on failure). */
int api_reply_stream(ApiReply *reply, int status, const char *content_type, ApiStreamRead read,
                     ApiStreamFree free_fn, void *cls);
/* Adds (or, for a name already present, replaces) a response header. Returns 0 or -1. */
int api_reply_header(ApiReply *reply, const char *name, const char *value);
/* The value of a header set on the reply, or NULL. */
const char *api_reply_get_header(const ApiReply *reply, const char *name);

/* The reason phrase of an HTTP status ("Not Found"), "Unknown" for others. */
const char *api_status_phrase(int status);

/* ---- the route table -------------------------------------------------------------- */

/* New empty table, or NULL on allocation failure. Not thread-safe while routes are added;
 * read-only (and so thread-safe) once the server runs. */
Router *router_create(void);
void router_free(Router *r);
/* Adds a route; method is upper case, pattern starts with '/'. data is handed to the
 * handler as req->route_data. Returns 0, -1 on allocation failure or a malformed pattern,
 * -2 when the same method and pattern exist already. */
int router_add(Router *r, const char *method, const char *pattern, ApiHandler fn, void *data);

typedef enum {
    ROUTER_HANDLED,   /* a route matched; its handler ran (the reply is set) */
    ROUTER_NO_METHOD, /* the path is known, the method not: reply is a 405 with Allow */
    ROUTER_NO_PATH,   /* no route has this path; reply untouched */
} RouterResult;

/* Finds the route for req->method and req->path, fills req->params and runs the handler.
 * Guarantees a set reply for ROUTER_HANDLED (500 when the handler left none). */
RouterResult router_dispatch(const Router *r, ApiRequest *req, ApiReply *reply);

/* True when a route handles method on path (HEAD counts for GET), without running it.
 * Thread-safe once the server runs. */
bool router_has_route(const Router *r, const char *method, const char *path);

/* router_add for a route whose request body is a file (Content-Type:
 * application/octet-stream, up to the server's upload limit): the server streams it to a
 * temporary file instead of memory and hands the handler req->upload_path. */
int router_add_upload(Router *r, const char *method, const char *pattern, ApiHandler fn,
                      void *data);
/* True when the route for method and path was added with router_add_upload. */
bool router_is_upload(const Router *r, const char *method, const char *path);

/* The number of routes and the i-th route's method and pattern (for the OpenAPI check). */
int router_count(const Router *r);
void router_route(const Router *r, int i, const char **method, const char **pattern);

#endif
