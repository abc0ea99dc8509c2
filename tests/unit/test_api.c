/* test_api.c — unit tests of the HTTP layer without sockets: router, replies, JSON helpers,
 * static files, auth, metrics, the event hub and the OpenAPI document. */
#include "test.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/events.h"
#include "api/metrics.h"
#include "api/router.h"
#include "api/static.h"

/* ---- a hand-made request ---------------------------------------------------------- */

typedef struct {
    const char *headers[8][2];
    const char *query[8][2];
} FakeIo;

static const char *fake_lookup(const char *table[8][2], const char *name, int icase)
{
    for (int i = 0; i < 8 && table[i][0]; i++)
        if (icase ? strcasecmp(table[i][0], name) == 0 : strcmp(table[i][0], name) == 0)
            return table[i][1];
    return NULL;
}

static const char *fake_header(void *cls, const char *name)
{
    return fake_lookup(((FakeIo *)cls)->headers, name, 1);
}

static const char *fake_query(void *cls, const char *name)
{
    return fake_lookup(((FakeIo *)cls)->query, name, 0);
}

static const ApiRequestIo fake_io = {fake_header, fake_query, NULL};

static void fake_request(ApiRequest *req, FakeIo *io, const char *method, const char *path)
{
    api_request_init(req, method, path, NULL);
    req->io = &fake_io;
    req->io_cls = io;
}

/* Parses the reply body as JSON (new reference) or NULL. */
static json_t *reply_json(const ApiReply *reply)
{
    if (reply->kind != API_BODY_BUFFER)
        return NULL;
    return json_loadb(reply->body, reply->body_len, 0, NULL);
}

/* ---- router ----------------------------------------------------------------------- */

static int h_named(ApiRequest *req, ApiReply *reply)
{
    const char *id = api_param(req, "id");
    return api_reply_json(reply, 200, json_pack("{s:s, s:s?, s:s}", "route", (const char *)
                                                req->route_data, "id", id, "method",
                                                req->method));
}

static int h_silent(ApiRequest *req, ApiReply *reply)
{
    (void)req;
    (void)reply;
    return 0;
}

static int h_fails(ApiRequest *req, ApiReply *reply)
{
    (void)req;
    api_reply_text(reply, 200, "text/plain", "half done");
    return -1;
}

static Router *test_router(void)
{
    Router *r = router_create();
    router_add(r, "GET", "/api/v1/jobs", h_named, "list");
    router_add(r, "POST", "/api/v1/jobs", h_named, "create");
    router_add(r, "GET", "/api/v1/jobs/{id}", h_named, "get");
    router_add(r, "DELETE", "/api/v1/jobs/{id}", h_named, "delete");
    router_add(r, "GET", "/api/v1/jobs/stats", h_named, "literal");
    router_add(r, "POST", "/api/v1/jobs/{id}/cancel", h_named, "cancel");
    router_add(r, "GET", "/api/v1/silent", h_silent, NULL);
    router_add(r, "GET", "/api/v1/fails", h_fails, NULL);
    return r;
}

/* Dispatches method path; returns the result and fills *body (new) with the JSON reply. */
static RouterResult dispatch(Router *r, const char *method, const char *path, int *status,
                             json_t **body, char *allow, size_t allow_size)
{
    ApiRequest req;
    ApiReply reply;
    FakeIo io = {{{NULL}}, {{NULL}}};
    fake_request(&req, &io, method, path);
    api_reply_init(&reply, path);
    RouterResult rr = router_dispatch(r, &req, &reply);
    *status = reply.status;
    *body = reply_json(&reply);
    const char *a = api_reply_get_header(&reply, "Allow");
    snprintf(allow, allow_size, "%s", a ? a : "");
    api_reply_deinit(&reply);
    return rr;
}

TEST(api_router_matches_methods_params_and_literals)
{
    Router *r = test_router();
    REQUIRE(r);
    static const struct { const char *method, *path, *route, *id; } cases[] = {
        {"GET", "/api/v1/jobs", "list", NULL},
        {"POST", "/api/v1/jobs", "create", NULL},
        {"GET", "/api/v1/jobs/42", "get", "42"},
        {"HEAD", "/api/v1/jobs/42", "get", "42"},
        {"DELETE", "/api/v1/jobs/7", "delete", "7"},
        {"GET", "/api/v1/jobs/stats", "literal", NULL},
        {"POST", "/api/v1/jobs/abc/cancel", "cancel", "abc"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int status;
        json_t *body;
        char allow[128];
        RouterResult rr = dispatch(r, cases[i].method, cases[i].path, &status, &body, allow,
                                   sizeof allow);
        CHECK_INT(rr, ROUTER_HANDLED);
        CHECK_INT(status, 200);
        REQUIRE(body);
        CHECK_STR(json_string_value(json_object_get(body, "route")), cases[i].route);
        CHECK_STR(json_string_value(json_object_get(body, "method")), cases[i].method);
        const char *id = json_string_value(json_object_get(body, "id"));
        if (cases[i].id)
            CHECK_STR(id, cases[i].id);
        else
            CHECK(id == NULL);
        json_decref(body);
    }
    router_free(r);
}

TEST(api_router_unknown_paths_and_wrong_methods)
{
    Router *r = test_router();
    REQUIRE(r);
    int status;
    json_t *body;
    char allow[128];
    const char *unknown[] = {"/api/v1/job", "/api/v1/jobs/", "/api/v1/jobs//cancel",
                             "/api/v1/jobs/1/cancel/x", "/", "//", "api/v1/jobs", ""};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        CHECK_INT(dispatch(r, "GET", unknown[i], &status, &body, allow, sizeof allow),
                  ROUTER_NO_PATH);
        CHECK_INT(status, 0);
        CHECK(body == NULL);
    }
    CHECK_INT(dispatch(r, "PUT", "/api/v1/jobs/3", &status, &body, allow, sizeof allow),
              ROUTER_NO_METHOD);
    CHECK_INT(status, 405);
    CHECK_STR(allow, "GET, DELETE, HEAD");
    REQUIRE(body);
    CHECK_STR(json_string_value(json_object_get(body, "instance")), "/api/v1/jobs/3");
    json_decref(body);
    CHECK_INT(dispatch(r, "GET", "/api/v1/jobs/3/cancel", &status, &body, allow, sizeof allow),
              ROUTER_NO_METHOD);
    CHECK_STR(allow, "POST");
    json_decref(body);
    router_free(r);
}

TEST(api_router_handler_without_reply_is_500)
{
    Router *r = test_router();
    int status;
    json_t *body;
    char allow[8];
    CHECK_INT(dispatch(r, "GET", "/api/v1/silent", &status, &body, allow, sizeof allow),
              ROUTER_HANDLED);
    CHECK_INT(status, 500);
    CHECK(body && json_integer_value(json_object_get(body, "status")) == 500);
    json_decref(body);
    CHECK_INT(dispatch(r, "GET", "/api/v1/fails", &status, &body, allow, sizeof allow),
              ROUTER_HANDLED);
    CHECK_INT(status, 500);
    json_decref(body);
    router_free(r);
}

TEST(api_router_rejects_bad_patterns_and_duplicates)
{
    Router *r = router_create();
    REQUIRE(r);
    CHECK_INT(router_add(r, "GET", "/a/{id}", h_silent, NULL), 0);
    CHECK_INT(router_add(r, "GET", "/a/{id}", h_silent, NULL), -2);
    CHECK_INT(router_add(r, "GET", "no-slash", h_silent, NULL), -1);
    CHECK_INT(router_add(r, "GET", "/a//b", h_silent, NULL), -1);
    CHECK_INT(router_add(r, "GET", "/a/b/", h_silent, NULL), -1);
    CHECK_INT(router_add(r, "GET", "/a/x{id}", h_silent, NULL), -1);
    CHECK_INT(router_add(r, "GET", "/a/{}", h_silent, NULL), -1);
    CHECK_INT(router_count(r), 1);
    router_free(r);
}

/* ---- replies and request helpers ---------------------------------------------------- */

TEST(api_problem_reply_is_rfc9457)
{
    ApiReply reply;
    api_reply_init(&reply, "/api/v1/jobs");
    CHECK_INT(api_reply_problem_field(&reply, 400, "epochs", "must be an integer from %d to %d",
                                      1, 1000), 0);
    CHECK_INT(reply.status, 400);
    CHECK_STR(reply.content_type, "application/problem+json");
    json_t *p = reply_json(&reply);
    REQUIRE(p);
    CHECK_STR(json_string_value(json_object_get(p, "type")), "about:blank");
    CHECK_STR(json_string_value(json_object_get(p, "title")), "Bad Request");
    CHECK_INT(json_integer_value(json_object_get(p, "status")), 400);
    CHECK_STR(json_string_value(json_object_get(p, "detail")),
              "epochs: must be an integer from 1 to 1000");
    CHECK_STR(json_string_value(json_object_get(p, "field")), "epochs");
    CHECK_STR(json_string_value(json_object_get(p, "instance")), "/api/v1/jobs");
    json_decref(p);
    /* A detail with invalid UTF-8 still gives a valid document. */
    api_reply_problem(&reply, 404, "Gone", "no dataset '%s'", "\xff\xfe");
    p = reply_json(&reply);
    REQUIRE(p);
    CHECK_STR(json_string_value(json_object_get(p, "title")), "Gone");
    CHECK_INT(json_integer_value(json_object_get(p, "status")), 404);
    json_decref(p);
    api_reply_deinit(&reply);
}

TEST(api_reply_headers_replace_and_text)
{
    ApiReply reply;
    api_reply_init(&reply, "/x");
    api_reply_header(&reply, "Cache-Control", "no-store");
    api_reply_header(&reply, "cache-control", "max-age=5");
    CHECK_INT(reply.nheaders, 1);
    CHECK_STR(api_reply_get_header(&reply, "CACHE-CONTROL"), "max-age=5");
    api_reply_text(&reply, 200, "text/csv", "a,b\n1,2\n");
    CHECK_INT(reply.body_len, 8);
    CHECK(memcmp(reply.body, "a,b\n1,2\n", 8) == 0);
    CHECK_STR(reply.content_type, "text/csv");
    api_reply_empty(&reply, 204);
    CHECK(reply.body == NULL && reply.kind == API_BODY_NONE && reply.status == 204);
    CHECK_STR(api_reply_get_header(&reply, "Cache-Control"), "max-age=5");
    api_reply_deinit(&reply);
}

TEST(api_request_json_reports_position_and_fields)
{
    ApiRequest req;
    ApiReply reply;
    FakeIo io = {{{NULL}}, {{NULL}}};
    fake_request(&req, &io, "POST", "/api/v1/jobs");
    api_reply_init(&reply, req.path);

    CHECK(api_request_json(&req, &reply, true) == NULL);
    CHECK_INT(reply.status, 400);
    json_t *p = reply_json(&reply);
    CHECK_STR(json_string_value(json_object_get(p, "field")), "body");
    json_decref(p);

    req.body = "{\"a\": 1,\n \"b\": }";
    req.body_len = strlen(req.body);
    CHECK(api_request_json(&req, &reply, true) == NULL);
    p = reply_json(&reply);
    const char *detail = json_string_value(json_object_get(p, "detail"));
    CHECK(detail && strstr(detail, "line 2"));
    json_decref(p);

    req.body = "[1, 2]";
    req.body_len = 6;
    CHECK(api_request_json(&req, &reply, true) == NULL);
    json_t *arr = api_request_json(&req, &reply, false);
    CHECK(json_is_array(arr));
    json_decref(arr);

    req.body = "{\"model\": \"mobilenet\", \"epochs\": 0, \"lr\": 0.1, \"flip\": true, \"x\": 1}";
    req.body_len = strlen(req.body);
    json_t *o = api_request_json(&req, &reply, true);
    REQUIRE(o);
    static const char *const allowed[] = {"model", "epochs", "lr", "flip", NULL};
    CHECK_INT(api_json_check_keys(o, allowed, &reply), -1);
    p = reply_json(&reply);
    CHECK_STR(json_string_value(json_object_get(p, "field")), "x");
    json_decref(p);
    const char *model = NULL;
    long long epochs = -5;
    double lr = 0;
    bool flip = false;
    const char *absent = "kept";
    CHECK_INT(api_json_string(o, "model", true, &reply, &model), 1);
    CHECK_STR(model, "mobilenet");
    CHECK_INT(api_json_string(o, "dataset", false, &reply, &absent), 0);
    CHECK_STR(absent, "kept");
    CHECK_INT(api_json_string(o, "dataset", true, &reply, &absent), -1);
    CHECK_INT(api_json_int(o, "epochs", true, 1, 1000, &reply, &epochs), -1);
    CHECK_INT(epochs, -5);
    p = reply_json(&reply);
    CHECK_STR(json_string_value(json_object_get(p, "detail")),
              "epochs: must be an integer from 1 to 1000");
    json_decref(p);
    CHECK_INT(api_json_number(o, "lr", true, 0, 10, &reply, &lr), 1);
    CHECK_NEAR(lr, 0.1, 0);
    CHECK_INT(api_json_bool(o, "flip", true, &reply, &flip), 1);
    CHECK(flip);
    CHECK_INT(api_json_bool(o, "model", true, &reply, &flip), -1);
    json_decref(o);
    api_reply_deinit(&reply);
}

TEST(api_query_int_validates)
{
    ApiRequest req;
    ApiReply reply;
    FakeIo io = {{{NULL}}, {{"limit", "50"}, {"offset", "-1"}, {"epoch", "3x"}}};
    fake_request(&req, &io, "GET", "/api/v1/jobs");
    api_reply_init(&reply, req.path);
    long long v;
    CHECK_INT(api_query_int(&req, &reply, "limit", 100, 1, 1000, &v), 0);
    CHECK_INT(v, 50);
    CHECK_INT(api_query_int(&req, &reply, "missing", 7, 1, 1000, &v), 0);
    CHECK_INT(v, 7);
    CHECK_INT(api_query_int(&req, &reply, "offset", 0, 0, 1000, &v), -1);
    CHECK_INT(reply.status, 400);
    CHECK_INT(api_query_int(&req, &reply, "epoch", 0, 0, 1000, &v), -1);
    json_t *p = reply_json(&reply);
    CHECK_STR(json_string_value(json_object_get(p, "field")), "epoch");
    json_decref(p);
    api_reply_deinit(&reply);
}

/* ---- static files ------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

TEST(api_static_serves_inside_and_refuses_outside)
{
    char tmp[] = "/tmp/initlab-static-XXXXXX";
    REQUIRE(mkdtemp(tmp));
    char web[PATH_MAX], path[PATH_MAX + 64];
    snprintf(web, sizeof web, "%s/web", tmp);
    mkdir(web, 0755);
    snprintf(path, sizeof path, "%s/index.html", web);
    write_file(path, "<p>index</p>");
    snprintf(path, sizeof path, "%s/secret.txt", tmp);
    write_file(path, "secret");
    char link[PATH_MAX + 64];
    snprintf(link, sizeof link, "%s/out.txt", web);
    CHECK_INT(symlink(path, link), 0);
    snprintf(path, sizeof path, "%s/web..evil", tmp); /* a sibling sharing the prefix */
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/web..evil/x.txt", tmp);
    write_file(path, "sibling");

    char err[256];
    StaticDir *s = static_create(web, err, sizeof err);
    REQUIRE(s);
    static const struct { const char *path; int status; } cases[] = {
        {"/", 200}, {"/index.html", 200}, {"/missing.js", 404}, {"/out.txt", 404},
        {"/../secret.txt", 400}, {"/..", 400}, {"/a/../../secret.txt", 400},
        {"/..\\secret.txt", 400}, {"/%00", 400}, {"/x\001y", 400}, {"//secret.txt", 400},
        {"relative", 400}, {"/../web..evil/x.txt", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ApiRequest req;
        ApiReply reply;
        FakeIo io = {{{NULL}}, {{NULL}}};
        fake_request(&req, &io, "GET", cases[i].path);
        api_reply_init(&reply, req.path);
        static_serve(s, &req, &reply);
        if (reply.status != cases[i].status)
            test_fail(__FILE__, __LINE__, "%s: status %d, expected %d", cases[i].path,
                      reply.status, cases[i].status);
        CHECK(cases[i].status != 200 || reply.kind == API_BODY_FILE);
        api_reply_deinit(&reply);
    }
    ApiRequest req;
    ApiReply reply;
    FakeIo io = {{{NULL}}, {{NULL}}};
    fake_request(&req, &io, "GET", "/");
    api_reply_init(&reply, req.path);
    static_serve(NULL, &req, &reply); /* no web directory */
    CHECK_INT(reply.status, 404);
    api_reply_deinit(&reply);
    static_free(s);
    CHECK(static_create(link, err, sizeof err) == NULL);
    snprintf(path, sizeof path, "rm -rf '%s'", tmp);
    CHECK_INT(system(path), 0);
}

TEST(api_static_mime_types)
{
    CHECK_STR(static_mime_type("a/index.html"), "text/html; charset=utf-8");
    CHECK_STR(static_mime_type("app.JS"), "text/javascript; charset=utf-8");
    CHECK_STR(static_mime_type("m.mjs"), "text/javascript; charset=utf-8");
    CHECK_STR(static_mime_type("s.css"), "text/css; charset=utf-8");
    CHECK_STR(static_mime_type("d.json"), "application/json");
    CHECK_STR(static_mime_type("x.js.map"), "application/json");
    CHECK_STR(static_mime_type("i.svg"), "image/svg+xml");
    CHECK_STR(static_mime_type("i.png"), "image/png");
    CHECK_STR(static_mime_type("favicon.ico"), "image/vnd.microsoft.icon");
    CHECK_STR(static_mime_type("f.woff2"), "font/woff2");
    CHECK_STR(static_mime_type("n.txt"), "text/plain; charset=utf-8");
    CHECK_STR(static_mime_type("dir.d/noext"), "application/octet-stream");
    CHECK_STR(static_mime_type("archive.tar.gz"), "application/octet-stream");
}

/* ---- auth --------------------------------------------------------------------------- */

TEST(api_auth_constant_time_equal)
{
    const char *secret = "0123456789abcdef";
    CHECK(auth_equal_ct("0123456789abcdef", 16, secret, 16));
    CHECK(!auth_equal_ct("0123456789abcdeF", 16, secret, 16));
    CHECK(!auth_equal_ct("0123456789abcde", 15, secret, 16));
    CHECK(!auth_equal_ct("0123456789abcdef0", 17, secret, 16));
    CHECK(!auth_equal_ct("", 0, secret, 16));
    /* A presented value that repeats the secret's prefix is not mistaken for it. */
    CHECK(!auth_equal_ct("01234567", 8, "0123456701234567", 16));
}

TEST(api_auth_checks_bearer_token)
{
    char path[] = "/tmp/initlab-token-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const char *content = "\n  s3cret-token-0123456789  \r\n";
    CHECK(write(fd, content, strlen(content)) == (ssize_t)strlen(content));
    close(fd);
    char err[256];
    Auth *a = auth_create(path, NULL, err, sizeof err);
    REQUIRE(a);
    CHECK(auth_enabled(a));
    static const struct { const char *path, *header; int ok; } cases[] = {
        {"/api/v1/info", "Bearer s3cret-token-0123456789", 1},
        {"/api/v1/info", "bearer   s3cret-token-0123456789 ", 1},
        {"/api/v1/info", NULL, 0},
        {"/api/v1/info", "Bearer s3cret-token-012345678", 0},
        {"/api/v1/info", "Basic s3cret-token-0123456789", 0},
        {"/api/v1/info", "Bearers3cret-token-0123456789", 0},
        {"/api/v1/health", NULL, 1},
        {"/api/v1/health/x", NULL, 0},
        {"/api", NULL, 0},
        {"/index.html", NULL, 1},
        {"/metrics", NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ApiRequest req;
        ApiReply reply;
        FakeIo io = {{{"Authorization", cases[i].header}}, {{NULL}}};
        if (!cases[i].header)
            io.headers[0][0] = NULL;
        fake_request(&req, &io, "GET", cases[i].path);
        api_reply_init(&reply, req.path);
        int rc = auth_check(a, &req, &reply);
        if ((rc == 0) != cases[i].ok)
            test_fail(__FILE__, __LINE__, "%s with %s: rc %d", cases[i].path,
                      cases[i].header ? cases[i].header : "(none)", rc);
        if (rc < 0) {
            CHECK_INT(reply.status, 401);
            const char *www = api_reply_get_header(&reply, "WWW-Authenticate");
            CHECK(www && strncmp(www, "Bearer realm=\"initlab\"", 22) == 0);
            CHECK(!strstr(reply.body, "s3cret"));
        }
        api_reply_deinit(&reply);
    }
    auth_free(a);
    write_file(path, "short");
    CHECK(auth_create(path, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "at least") != NULL);
    write_file(path, "has a space inside it");
    CHECK(auth_create(path, NULL, err, sizeof err) == NULL);
    unlink(path);
    CHECK(auth_create(NULL, "ftp://x", err, sizeof err) == NULL);
    CHECK(auth_create(NULL, "http://x/path", err, sizeof err) == NULL);
    Auth *open = auth_create(NULL, "https://dash.example", err, sizeof err);
    REQUIRE(open);
    CHECK(!auth_enabled(open));
    ApiRequest req;
    ApiReply reply;
    FakeIo io = {{{"Origin", "https://dash.example"}}, {{NULL}}};
    fake_request(&req, &io, "GET", "/api/v1/info");
    api_reply_init(&reply, req.path);
    CHECK_INT(auth_check(open, &req, &reply), 0);
    auth_cors_headers(open, &req, &reply);
    CHECK_STR(api_reply_get_header(&reply, "Access-Control-Allow-Origin"), "https://dash.example");
    api_reply_deinit(&reply);
    auth_free(open);
}

/* ---- metrics ------------------------------------------------------------------------ */

TEST(api_metrics_render_text_format)
{
    Metrics *m = metrics_create();
    REQUIRE(m);
    static const double bounds[] = {1, 10};
    CHECK_INT(metrics_register(m, "t_jobs", METRIC_GAUGE, "Jobs by state.", NULL, 0), 0);
    CHECK_INT(metrics_register(m, "t_jobs", METRIC_GAUGE, "Jobs by state.", NULL, 0), 0);
    CHECK_INT(metrics_register(m, "t_jobs", METRIC_COUNTER, "clash", NULL, 0), -1);
    CHECK_INT(metrics_register(m, "9bad", METRIC_GAUGE, "x", NULL, 0), -1);
    CHECK_INT(metrics_register(m, "t_h", METRIC_HISTOGRAM, "x", (double[]){2, 1}, 2), -1);
    CHECK_INT(metrics_register(m, "t_epoch_seconds", METRIC_HISTOGRAM, "Epoch time.", bounds, 2), 0);
    CHECK_INT(metrics_register(m, "t_done", METRIC_COUNTER, "Finished.", NULL, 0), 0);
    CHECK_INT(metrics_gauge_set(m, "t_jobs", "state=\"queued\"", 3), 0);
    CHECK_INT(metrics_gauge_set(m, "t_jobs", "state=\"running\"", 1), 0);
    CHECK_INT(metrics_gauge_set(m, "t_jobs", "state=\"queued\"", 2), 0);
    CHECK_INT(metrics_counter_add(m, "t_done", "", 1), 0);
    CHECK_INT(metrics_counter_add(m, "t_done", "", 2), 0);
    CHECK_INT(metrics_counter_add(m, "t_done", "", -1), -1);
    CHECK_INT(metrics_gauge_set(m, "t_done", "", 1), -1);
    CHECK_INT(metrics_gauge_set(m, "t_missing", "", 1), -1);
    CHECK_INT(metrics_gauge_set(m, "t_jobs", "a=\"1\"\nb", 1), -1);
    double obs[] = {0.5, 1, 3, 20, 20};
    for (int i = 0; i < 5; i++)
        CHECK_INT(metrics_histogram_observe(m, "t_epoch_seconds", "model=\"m\"", obs[i]), 0);
    metrics_http_observe(m, 200, 0.002);
    metrics_http_observe(m, 404, 0.0001);
    metrics_http_observe(m, 404, 0.0001);
    size_t len;
    char *text = metrics_render(m, &len);
    REQUIRE(text);
    CHECK_INT(strlen(text), len);
    static const char *const expected[] = {
        "# HELP t_jobs Jobs by state.\n# TYPE t_jobs gauge\n"
        "t_jobs{state=\"queued\"} 2\nt_jobs{state=\"running\"} 1\n",
        "# TYPE t_epoch_seconds histogram\n"
        "t_epoch_seconds_bucket{model=\"m\",le=\"1\"} 2\n"
        "t_epoch_seconds_bucket{model=\"m\",le=\"10\"} 3\n"
        "t_epoch_seconds_bucket{model=\"m\",le=\"+Inf\"} 5\n"
        "t_epoch_seconds_sum{model=\"m\"} 44.5\n"
        "t_epoch_seconds_count{model=\"m\"} 5\n",
        "# TYPE t_done counter\nt_done 3\n",
        "initlab_http_requests_total{class=\"2xx\",code=\"200\"} 1\n"
        "initlab_http_requests_total{class=\"4xx\",code=\"404\"} 2\n",
        "initlab_http_request_duration_seconds_bucket{le=\"0.0005\"} 2\n",
        "initlab_http_request_duration_seconds_bucket{le=\"+Inf\"} 3\n",
        "initlab_http_request_duration_seconds_count 3\n",
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        if (!strstr(text, expected[i]))
            test_fail(__FILE__, __LINE__, "missing from the exposition:\n%s\n--- got:\n%s",
                      expected[i], text);
    free(text);
    CHECK_INT(metrics_series_remove(m, "t_jobs", "state=\"running\""), 0);
    CHECK_INT(metrics_series_remove(m, "t_jobs", "state=\"running\""), -1);
    text = metrics_render(m, &len);
    CHECK(text && !strstr(text, "running"));
    free(text);
    char buf[32];
    CHECK_STR(metrics_label_escape("a\"b\\c\nd", buf, sizeof buf), "a\\\"b\\\\c\\nd");
    metrics_free(m);
}

static void collect_count(Metrics *m, void *ud)
{
    int *calls = ud;
    metrics_gauge_set(m, "t_calls", "", ++*calls);
}

TEST(api_metrics_collectors_run_before_rendering)
{
    Metrics *m = metrics_create();
    int calls = 0;
    metrics_register(m, "t_calls", METRIC_GAUGE, "Renders.", NULL, 0);
    CHECK_INT(metrics_add_collector(m, collect_count, &calls), 0);
    size_t len;
    free(metrics_render(m, &len));
    char *text = metrics_render(m, &len);
    CHECK(text && strstr(text, "\nt_calls 2\n"));
    free(text);
    metrics_free(m);
}

/* ---- events ------------------------------------------------------------------------- */

typedef struct {
    ApiStream api;
    pthread_mutex_t lock;
    int paused, wakes;
} FakeStream;

static void fake_pause(ApiStream *s)
{
    FakeStream *f = (FakeStream *)s;
    pthread_mutex_lock(&f->lock);
    f->paused++;
    pthread_mutex_unlock(&f->lock);
}

static void fake_wake(ApiStream *s)
{
    FakeStream *f = (FakeStream *)s;
    pthread_mutex_lock(&f->lock);
    f->wakes++;
    pthread_mutex_unlock(&f->lock);
}

/* Reads everything pending from the stream into out; returns the last read's result. */
static long drain(ApiReply *reply, FakeStream *fs, char *out, size_t size)
{
    size_t n = 0;
    long r;
    out[0] = 0;
    while ((r = reply->stream_read(reply->stream_cls, &fs->api, out + n, size - 1 - n)) > 0) {
        n += (size_t)r;
        out[n] = 0;
    }
    return r;
}

TEST(api_events_deliver_in_order_and_drop_slow_clients)
{
    EventHubConfig cfg;
    events_config_default(&cfg);
    cfg.queue_bytes = 256;
    cfg.heartbeat_ms = 3600 * 1000;
    EventHub *hub = events_create(&cfg);
    REQUIRE(hub);
    ApiReply a, b;
    api_reply_init(&a, "/api/v1/events");
    api_reply_init(&b, "/api/v1/events");
    CHECK_INT(events_subscribe(hub, &a, NULL), 0);
    CHECK_INT(events_subscribe(hub, &b, NULL), 0);
    CHECK_INT(a.status, 200);
    CHECK_STR(a.content_type, "text/event-stream");
    CHECK_INT(events_client_count(hub), 2);
    FakeStream fa = {{fake_pause, fake_wake, NULL}, PTHREAD_MUTEX_INITIALIZER, 0, 0};
    FakeStream fb = {{fake_pause, fake_wake, NULL}, PTHREAD_MUTEX_INITIALIZER, 0, 0};
    char buf[4096];
    CHECK_INT(drain(&a, &fa, buf, sizeof buf), 0);
    CHECK_STR(buf, "retry: 3000\n: connected\n\n");
    CHECK_INT(fa.paused, 1);
    CHECK_INT(drain(&b, &fb, buf, sizeof buf), 0);

    CHECK_INT(events_publish(hub, "job", "{\"id\":1}"), 2);
    CHECK_INT(fa.wakes, 1);
    CHECK_INT(events_publish(hub, "progress", "{\"a\":\n1}"), 2);
    CHECK_INT(fa.wakes, 1); /* woken once per pause */
    CHECK_INT(events_publish(hub, "bad name", "{}"), -1);
    CHECK_INT(events_publish(hub, "x\ny", "{}"), -1);
    CHECK_INT(drain(&a, &fa, buf, sizeof buf), 0);
    CHECK_STR(buf, "id: 1\nevent: job\ndata: {\"id\":1}\n\n"
                   "id: 2\nevent: progress\ndata: {\"a\":\ndata: 1}\n\n");
    CHECK_INT(fa.paused, 2);

    /* b does not read: its 256-byte queue overflows and it is dropped; a keeps up. */
    int delivered_to_a = 0;
    for (int i = 0; i < 10; i++) {
        events_publish(hub, "job", "{\"id\":12345678901234567890}");
        if (drain(&a, &fa, buf, sizeof buf) == 0 && strstr(buf, "12345678901234567890"))
            delivered_to_a++;
    }
    CHECK_INT(delivered_to_a, 10);
    CHECK_INT(events_dropped_count(hub), 1);
    CHECK_INT(drain(&b, &fb, buf, sizeof buf), -1); /* the dropped stream ends */
    CHECK_INT(events_publish(hub, "job", "{}"), 1);

    api_reply_deinit(&b); /* the server frees the stream when the connection ends */
    CHECK_INT(events_client_count(hub), 1);
    events_close(hub);
    CHECK_INT(fa.wakes, fa.paused); /* the paused client was woken to end */
    CHECK_INT(drain(&a, &fa, buf, sizeof buf), -1);
    CHECK_INT(events_publish(hub, "job", "{}"), 0);
    ApiReply c;
    api_reply_init(&c, "/api/v1/events");
    events_subscribe(hub, &c, NULL);
    CHECK_INT(c.status, 503);
    api_reply_deinit(&c);
    api_reply_deinit(&a);
    CHECK_INT(events_client_count(hub), 0);
    events_free(hub);
}

TEST(api_events_heartbeat_wakes_idle_clients)
{
    EventHubConfig cfg;
    events_config_default(&cfg);
    cfg.heartbeat_ms = 20;
    EventHub *hub = events_create(&cfg);
    REQUIRE(hub);
    ApiReply a;
    api_reply_init(&a, "/api/v1/events");
    CHECK_INT(events_subscribe(hub, &a, NULL), 0);
    FakeStream fa = {{fake_pause, fake_wake, NULL}, PTHREAD_MUTEX_INITIALIZER, 0, 0};
    char buf[256];
    drain(&a, &fa, buf, sizeof buf);
    int wakes = 0;
    for (int i = 0; i < 200 && !wakes; i++) {
        usleep(5000);
        pthread_mutex_lock(&fa.lock);
        wakes = fa.wakes;
        pthread_mutex_unlock(&fa.lock);
    }
    CHECK_INT(wakes, 1);
    CHECK_INT(drain(&a, &fa, buf, sizeof buf), 0);
    CHECK_STR(buf, ": heartbeat\n\n");
    events_close(hub);
    api_reply_deinit(&a);
    events_free(hub);
}

/* ---- the OpenAPI document ----------------------------------------------------------- */

TEST(api_openapi_documents_every_route)
{
    json_error_t err;
    json_t *doc = json_loadb(openapi_json, openapi_json_len, 0, &err);
    if (!doc)
        test_fail(__FILE__, __LINE__, "openapi.json: line %d: %s", err.line, err.text);
    REQUIRE(doc);
    CHECK(strncmp(json_string_value(json_object_get(doc, "openapi")), "3.1", 3) == 0);
    Router *r = router_create();
    REQUIRE(r);
    CHECK_INT(api_routes_register(r), 0);
    CHECK(router_count(r) >= 5);
    json_t *paths = json_object_get(doc, "paths");
    for (int i = 0; i < router_count(r); i++) {
        const char *method, *pattern;
        router_route(r, i, &method, &pattern);
        char lower[16];
        size_t n = 0;
        for (; method[n] && n < sizeof lower - 1; n++)
            lower[n] = (char)(method[n] | 0x20);
        lower[n] = 0;
        json_t *item = json_object_get(paths, pattern);
        if (!item || !json_object_get(item, lower))
            test_fail(__FILE__, __LINE__, "%s %s is routed but not in openapi.json", method,
                      pattern);
    }
    router_free(r);
    json_decref(doc);
}
