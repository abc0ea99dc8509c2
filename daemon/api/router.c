/* router.c — the route table, request accessors, JSON validation helpers and reply builders. */
#include "api/router.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/jsonout.h"

#define MAX_SEGMENTS 16

typedef struct {
    char *method;
    char *pattern;
    int nseg;
    char *seg[MAX_SEGMENTS]; /* literal segment, or "{name}" for a parameter */
    ApiHandler fn;
    void *data;
    bool upload;             /* its body is a file (router_add_upload) */
} Route;

struct Router {
    Route *routes;
    int n, cap;
};

/* ---- requests --------------------------------------------------------------------- */

void api_request_init(ApiRequest *req, const char *method, const char *path, ApiContext *ctx)
{
    memset(req, 0, sizeof *req);
    req->method = method;
    req->path = path;
    req->ctx = ctx;
}

const char *api_param(const ApiRequest *req, const char *name)
{
    for (int i = 0; i < req->nparams; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

const char *api_query(const ApiRequest *req, const char *name)
{
    return req->io && req->io->query ? req->io->query(req->io_cls, name) : NULL;
}

const char *api_header(const ApiRequest *req, const char *name)
{
    return req->io && req->io->header ? req->io->header(req->io_cls, name) : NULL;
}

int api_query_each(const ApiRequest *req, int (*fn)(void *ud, const char *key,
                                                    const char *value), void *ud)
{
    return req->io && req->io->query_each ? req->io->query_each(req->io_cls, fn, ud) : 0;
}

int api_query_int(const ApiRequest *req, ApiReply *reply, const char *name, long long def,
                  long long min, long long max, long long *out)
{
    const char *text = api_query(req, name);
    if (!text) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        api_reply_problem_field(reply, 400, name, "must be an integer from %lld to %lld",
                                min, max);
        return -1;
    }
    *out = v;
    return 0;
}

json_t *api_request_json(ApiRequest *req, ApiReply *reply, bool want_object)
{
    if (!req->body || req->body_len == 0) {
        api_reply_problem_field(reply, 400, "body", "required: send a JSON %s",
                                want_object ? "object" : "document");
        return NULL;
    }
    json_error_t err;
    json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!j) {
        api_reply_problem_field(reply, 400, "body", "invalid JSON at line %d column %d: %s",
                                err.line, err.column, err.text);
        return NULL;
    }
    if (want_object && !json_is_object(j)) {
        json_decref(j);
        api_reply_problem_field(reply, 400, "body", "must be a JSON object");
        return NULL;
    }
    return j;
}

int api_json_check_keys(const json_t *obj, const char *const allowed[], ApiReply *reply)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        bool known = false;
        for (int i = 0; allowed[i] && !known; i++)
            known = strcmp(key, allowed[i]) == 0;
        if (!known) {
            api_reply_problem_field(reply, 400, key, "unknown field");
            return -1;
        }
    }
    return 0;
}

/* Shared start of the typed getters: 0 absent (problem set when required), 1 present. */
static int member(const json_t *obj, const char *key, bool required, ApiReply *reply,
                  json_t **out)
{
    *out = json_object_get(obj, key);
    if (*out && !json_is_null(*out))
        return 1;
    if (required) {
        api_reply_problem_field(reply, 400, key, "required");
        return -1;
    }
    return 0;
}

int api_json_string(const json_t *obj, const char *key, bool required, ApiReply *reply,
                    const char **out)
{
    json_t *v;
    int rc = member(obj, key, required, reply, &v);
    if (rc <= 0)
        return rc;
    if (!json_is_string(v)) {
        api_reply_problem_field(reply, 400, key, "must be a string");
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

int api_json_int(const json_t *obj, const char *key, bool required, long long min,
                 long long max, ApiReply *reply, long long *out)
{
    json_t *v;
    int rc = member(obj, key, required, reply, &v);
    if (rc <= 0)
        return rc;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        api_reply_problem_field(reply, 400, key, "must be an integer from %lld to %lld", min,
                                max);
        return -1;
    }
    *out = json_integer_value(v);
    return 1;
}

int api_json_number(const json_t *obj, const char *key, bool required, double min, double max,
                    ApiReply *reply, double *out)
{
    json_t *v;
    int rc = member(obj, key, required, reply, &v);
    if (rc <= 0)
        return rc;
    double x = json_number_value(v);
    if (!json_is_number(v) || !(x >= min && x <= max)) {
        api_reply_problem_field(reply, 400, key, "must be a number from %g to %g", min, max);
        return -1;
    }
    *out = x;
    return 1;
}

int api_json_bool(const json_t *obj, const char *key, bool required, ApiReply *reply, bool *out)
{
    json_t *v;
    int rc = member(obj, key, required, reply, &v);
    if (rc <= 0)
        return rc;
    if (!json_is_boolean(v)) {
        api_reply_problem_field(reply, 400, key, "must be true or false");
        return -1;
    }
    *out = json_is_true(v);
    return 1;
}

/* ---- streams ---------------------------------------------------------------------- */

void api_stream_pause(ApiStream *s)
{
    s->pause(s);
}

void api_stream_wake(ApiStream *s)
{
    s->wake(s);
}

/* ---- replies ---------------------------------------------------------------------- */

void api_reply_init(ApiReply *reply, const char *instance)
{
    memset(reply, 0, sizeof *reply);
    reply->fd = -1;
    reply->instance = instance;
}

void api_reply_reset(ApiReply *reply)
{
    free(reply->body);
    reply->body = NULL;
    reply->body_len = 0;
    if (reply->fd >= 0)
        close(reply->fd);
    reply->fd = -1;
    if (reply->kind == API_BODY_STREAM && reply->stream_free)
        reply->stream_free(reply->stream_cls);
    reply->stream_read = NULL;
    reply->stream_free = NULL;
    reply->stream_cls = NULL;
    free(reply->content_type);
    reply->content_type = NULL;
    reply->kind = API_BODY_NONE;
    reply->status = 0;
}

void api_reply_deinit(ApiReply *reply)
{
    api_reply_reset(reply);
    for (int i = 0; i < reply->nheaders; i++) {
        free(reply->headers[i].name);
        free(reply->headers[i].value);
    }
    free(reply->headers);
    reply->headers = NULL;
    reply->nheaders = reply->cap_headers = 0;
}

/* Replaces the body with the given kind; on allocation failure leaves a bare 500. */
static int set_type(ApiReply *reply, int status, const char *content_type)
{
    api_reply_reset(reply);
    reply->status = status;
    if (content_type && !(reply->content_type = strdup(content_type))) {
        reply->status = 500;
        return -1;
    }
    return 0;
}

int api_reply_take(ApiReply *reply, int status, const char *content_type, char *data, size_t len)
{
    if (set_type(reply, status, content_type) < 0) {
        free(data);
        return -1;
    }
    reply->kind = API_BODY_BUFFER;
    reply->body = data;
    reply->body_len = len;
    return 0;
}

int api_reply_text(ApiReply *reply, int status, const char *content_type, const char *text)
{
    size_t len = strlen(text);
    char *copy = malloc(len + 1);
    if (!copy) {
        set_type(reply, 500, NULL);
        return -1;
    }
    memcpy(copy, text, len + 1);
    return api_reply_take(reply, status, content_type, copy, len);
}

int api_reply_empty(ApiReply *reply, int status)
{
    set_type(reply, status, NULL);
    reply->kind = API_BODY_NONE;
    return 0;
}

int api_reply_json(ApiReply *reply, int status, json_t *json)
{
    if (!json) {
        set_type(reply, 500, NULL);
        return -1;
    }
    char *text = json_text(json, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(json);
    if (!text) {
        set_type(reply, 500, NULL);
        return -1;
    }
    return api_reply_take(reply, status, "application/json", text, strlen(text));
}

static int problem(ApiReply *reply, int status, const char *title, const char *field,
                   const char *detail_fmt, va_list ap)
{
    char detail[1024];
    detail[0] = 0;
    size_t off = 0;
    if (field) {
        int n = snprintf(detail, sizeof detail, "%s: ", field);
        off = n > 0 && (size_t)n < sizeof detail ? (size_t)n : 0;
    }
    if (detail_fmt)
        vsnprintf(detail + off, sizeof detail - off, detail_fmt, ap);
    json_t *j = json_object();
    if (!j) {
        set_type(reply, 500, NULL);
        return -1;
    }
    /* Inputs echoed in the detail may be any bytes; json_string would refuse invalid
     * UTF-8, so such details are replaced rather than dropped silently. */
    json_t *d = json_string(detail);
    if (!d)
        d = json_string(field ? field : "the request contains invalid UTF-8");
    json_object_set_new(j, "type", json_string("about:blank"));
    json_object_set_new(j, "title", json_string(title ? title : api_status_phrase(status)));
    json_object_set_new(j, "status", json_integer(status));
    if (detail_fmt || field)
        json_object_set_new(j, "detail", d);
    else
        json_decref(d);
    json_t *f = field ? json_string(field) : NULL;
    if (f)
        json_object_set_new(j, "field", f);
    if (reply->instance) {
        json_t *inst = json_string(reply->instance);
        if (inst)
            json_object_set_new(j, "instance", inst);
    }
    char *text = json_text(j, JSON_COMPACT);
    json_decref(j);
    if (!text) {
        set_type(reply, 500, NULL);
        return -1;
    }
    return api_reply_take(reply, status, "application/problem+json", text, strlen(text));
}

int api_reply_problem(ApiReply *reply, int status, const char *title, const char *detail_fmt,
                      ...)
{
    va_list ap;
    va_start(ap, detail_fmt);
    int rc = problem(reply, status, title, NULL, detail_fmt, ap);
    va_end(ap);
    return rc;
}

int api_reply_problem_field(ApiReply *reply, int status, const char *field,
                            const char *detail_fmt, ...)
{
    va_list ap;
    va_start(ap, detail_fmt);
    int rc = problem(reply, status, NULL, field, detail_fmt, ap);
    va_end(ap);
    return rc;
}

int api_reply_file(ApiReply *reply, int status, const char *content_type, int fd, uint64_t size)
{
    if (set_type(reply, status, content_type) < 0) {
        close(fd);
        return -1;
    }
    reply->kind = API_BODY_FILE;
    reply->fd = fd;
    reply->file_size = size;
    return 0;
}

int api_reply_stream(ApiReply *reply, int status, const char *content_type, ApiStreamRead read,
                     ApiStreamFree free_fn, void *cls)
{
    if (set_type(reply, status, content_type) < 0) {
        if (free_fn)
            free_fn(cls);
        return -1;
    }
    reply->kind = API_BODY_STREAM;
    reply->stream_read = read;
    reply->stream_free = free_fn;
    reply->stream_cls = cls;
    return 0;
}

int api_reply_header(ApiReply *reply, const char *name, const char *value)
{
    for (int i = 0; i < reply->nheaders; i++)
        if (strcasecmp(reply->headers[i].name, name) == 0) {
            char *v = strdup(value);
            if (!v)
                return -1;
            free(reply->headers[i].value);
            reply->headers[i].value = v;
            return 0;
        }
    if (reply->nheaders == reply->cap_headers) {
        int cap = reply->cap_headers ? 2 * reply->cap_headers : 8;
        void *h = realloc(reply->headers, (size_t)cap * sizeof reply->headers[0]);
        if (!h)
            return -1;
        reply->headers = h;
        reply->cap_headers = cap;
    }
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return -1;
    }
    reply->headers[reply->nheaders].name = n;
    reply->headers[reply->nheaders].value = v;
    reply->nheaders++;
    return 0;
}

const char *api_reply_get_header(const ApiReply *reply, const char *name)
{
    for (int i = 0; i < reply->nheaders; i++)
        if (strcasecmp(reply->headers[i].name, name) == 0)
            return reply->headers[i].value;
    return NULL;
}

const char *api_status_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* ---- the route table -------------------------------------------------------------- */

Router *router_create(void)
{
    return calloc(1, sizeof(Router));
}

static void route_deinit(Route *rt)
{
    free(rt->method);
    free(rt->pattern);
    for (int i = 0; i < rt->nseg; i++)
        free(rt->seg[i]);
}

void router_free(Router *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        route_deinit(&r->routes[i]);
    free(r->routes);
    free(r);
}

static bool is_param(const char *seg)
{
    size_t n = strlen(seg);
    return n >= 3 && seg[0] == '{' && seg[n - 1] == '}';
}

/* Splits pattern into rt->seg; -1 when malformed (no leading '/', empty segment, too deep,
 * a brace that is not a whole-segment parameter). */
static int split_pattern(Route *rt, const char *pattern)
{
    if (pattern[0] != '/')
        return -1;
    const char *p = pattern + 1;
    if (!*p)
        return 0; /* "/" has no segments */
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || rt->nseg == MAX_SEGMENTS)
            return -1;
        char *seg = strndup(p, len);
        if (!seg)
            return -1;
        rt->seg[rt->nseg++] = seg;
        if ((strchr(seg, '{') || strchr(seg, '}')) && !is_param(seg))
            return -1;
        p += len;
        if (*p == '/' && !*++p)
            return -1; /* trailing slash */
    }
    return 0;
}

int router_add(Router *r, const char *method, const char *pattern, ApiHandler fn, void *data)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->routes[i].method, method) == 0 &&
            strcmp(r->routes[i].pattern, pattern) == 0)
            return -2;
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 32;
        Route *rs = realloc(r->routes, (size_t)cap * sizeof *rs);
        if (!rs)
            return -1;
        r->routes = rs;
        r->cap = cap;
    }
    Route rt = {.fn = fn, .data = data};
    rt.method = strdup(method);
    rt.pattern = strdup(pattern);
    if (!rt.method || !rt.pattern || split_pattern(&rt, pattern) < 0) {
        route_deinit(&rt);
        return -1;
    }
    r->routes[r->n++] = rt;
    return 0;
}

int router_count(const Router *r)
{
    return r->n;
}

void router_route(const Router *r, int i, const char **method, const char **pattern)
{
    *method = r->routes[i].method;
    *pattern = r->routes[i].pattern;
}

typedef struct {
    int n;
    const char *start[MAX_SEGMENTS];
    size_t len[MAX_SEGMENTS];
} PathSegments;

/* Splits a request path; -1 when it has more segments than any route can match. An empty
 * segment ("//", trailing '/') is kept as a zero-length segment that matches nothing. */
static int split_path(const char *path, PathSegments *ps)
{
    ps->n = 0;
    if (path[0] != '/')
        return -1;
    const char *p = path + 1;
    if (!*p)
        return 0;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (ps->n == MAX_SEGMENTS)
            return -1;
        ps->start[ps->n] = p;
        ps->len[ps->n] = len;
        ps->n++;
        if (!slash)
            return 0;
        p = slash + 1;
    }
}

static bool route_matches(const Route *rt, const PathSegments *ps)
{
    if (rt->nseg != ps->n)
        return false;
    for (int i = 0; i < ps->n; i++) {
        if (ps->len[i] == 0)
            return false;
        if (is_param(rt->seg[i]))
            continue;
        if (strlen(rt->seg[i]) != ps->len[i] || memcmp(rt->seg[i], ps->start[i], ps->len[i]))
            return false;
    }
    return true;
}

/* Copies the parameters of rt out of ps into req; -1 when they do not fit. */
static int bind_params(const Route *rt, const PathSegments *ps, ApiRequest *req)
{
    size_t used = 0;
    req->nparams = 0;
    for (int i = 0; i < ps->n; i++) {
        if (!is_param(rt->seg[i]))
            continue;
        size_t nlen = strlen(rt->seg[i]) - 2, vlen = ps->len[i];
        if (req->nparams == API_MAX_PARAMS || used + nlen + vlen + 2 > sizeof req->param_buf)
            return -1;
        char *name = req->param_buf + used;
        memcpy(name, rt->seg[i] + 1, nlen);
        name[nlen] = 0;
        char *value = name + nlen + 1;
        memcpy(value, ps->start[i], vlen);
        value[vlen] = 0;
        used += nlen + vlen + 2;
        req->params[req->nparams].name = name;
        req->params[req->nparams].value = value;
        req->nparams++;
    }
    return 0;
}

static bool method_matches(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

int router_add_upload(Router *r, const char *method, const char *pattern, ApiHandler fn,
                      void *data)
{
    int rc = router_add(r, method, pattern, fn, data);
    if (rc == 0)
        r->routes[r->n - 1].upload = true;
    return rc;
}

bool router_is_upload(const Router *r, const char *method, const char *path)
{
    PathSegments ps;
    if (split_path(path, &ps) < 0)
        return false;
    for (int i = 0; i < r->n; i++)
        if (route_matches(&r->routes[i], &ps) && method_matches(r->routes[i].method, method))
            return r->routes[i].upload;
    return false;
}

bool router_has_route(const Router *r, const char *method, const char *path)
{
    PathSegments ps;
    if (split_path(path, &ps) < 0)
        return false;
    for (int i = 0; i < r->n; i++)
        if (route_matches(&r->routes[i], &ps) && method_matches(r->routes[i].method, method))
            return true;
    return false;
}

RouterResult router_dispatch(const Router *r, ApiRequest *req, ApiReply *reply)
{
    PathSegments ps;
    if (split_path(req->path, &ps) < 0)
        return ROUTER_NO_PATH;
    const Route *hit = NULL;
    /* Literal segments win over parameters: among matching routes, prefer the one whose
     * first parameter comes latest ("/jobs/stats" before "/jobs/{id}"). */
    int hit_score = -1;
    char allow[256] = "";
    size_t allow_len = 0;
    bool path_known = false, has_get = false;
    for (int i = 0; i < r->n; i++) {
        const Route *rt = &r->routes[i];
        if (!route_matches(rt, &ps))
            continue;
        path_known = true;
        if (method_matches(rt->method, req->method)) {
            int score = 0;
            while (score < rt->nseg && !is_param(rt->seg[score]))
                score++;
            if (score > hit_score) {
                hit = rt;
                hit_score = score;
            }
        }
        if (!strstr(allow, rt->method) && allow_len + strlen(rt->method) + 3 < sizeof allow) {
            allow_len += (size_t)snprintf(allow + allow_len, sizeof allow - allow_len, "%s%s",
                                          allow_len ? ", " : "", rt->method);
            has_get |= strcmp(rt->method, "GET") == 0;
        }
    }
    if (!path_known)
        return ROUTER_NO_PATH;
    if (!hit) {
        if (has_get && allow_len + 7 < sizeof allow)
            snprintf(allow + allow_len, sizeof allow - allow_len, ", HEAD");
        api_reply_problem(reply, 405, NULL, "%s is not allowed on %s; allowed: %s", req->method,
                          req->path, allow);
        api_reply_header(reply, "Allow", allow);
        return ROUTER_NO_METHOD;
    }
    if (bind_params(hit, &ps, req) < 0) {
        api_reply_problem(reply, 414, NULL, "path parameters are too long");
        return ROUTER_HANDLED;
    }
    req->route_data = hit->data;
    int rc = hit->fn(req, reply);
    if (reply->status == 0 || (rc < 0 && reply->status < 400))
        api_reply_problem(reply, 500, NULL, "the request could not be completed");
    return ROUTER_HANDLED;
}
