/* static.c — the web directory's files over HTTP, confined to that directory (see static.h). */
#include "api/static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct StaticDir {
    char root[PATH_MAX]; /* realpath of the web directory, no trailing '/' unless "/" */
    size_t root_len;
};

StaticDir *static_create(const char *dir, char *err, size_t errlen)
{
    StaticDir *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct stat st;
    if (!realpath(dir, s->root) || stat(s->root, &st) < 0) {
        snprintf(err, errlen, "web directory %s: %s", dir, strerror(errno));
        free(s);
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "web directory %s: not a directory", dir);
        free(s);
        return NULL;
    }
    s->root_len = strlen(s->root);
    return s;
}

void static_free(StaticDir *s)
{
    free(s);
}

const char *static_root(const StaticDir *s)
{
    return s->root;
}

const char *static_mime_type(const char *name)
{
    static const struct { const char *ext, *type; } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"ico", "image/vnd.microsoft.icon"},
        {"woff2", "font/woff2"},
        {"woff", "font/woff"},
        {"txt", "text/plain; charset=utf-8"},
        {"csv", "text/csv; charset=utf-8"},
        {"wasm", "application/wasm"},
    };
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');
    if (dot)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* Why path may not be looked up at all, or NULL when it is acceptable. */
static const char *refuse_reason(const char *path)
{
    if (path[0] != '/' || path[1] == '/')
        return "the path must be absolute and start with a single '/'";
    for (const char *p = path; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            return "the path contains a control character";
        if (c == '\\')
            return "the path contains a backslash";
        if (c == '%')
            return "the path contains an undecodable or encoded '%'";
    }
    for (const char *p = path; (p = strstr(p, "..")); p += 2) {
        bool starts = p[-1] == '/';
        bool ends = p[2] == '/' || p[2] == 0;
        if (starts && ends)
            return "the path contains a '..' segment";
    }
    return NULL;
}

static int not_found(ApiReply *reply, const char *path)
{
    return api_reply_problem(reply, 404, NULL, "no file %s", path);
}

int static_serve(const StaticDir *s, ApiRequest *req, ApiReply *reply)
{
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        int rc = api_reply_problem(reply, 405, NULL, "%s is not allowed on static files",
                                   req->method);
        api_reply_header(reply, "Allow", "GET, HEAD");
        return rc;
    }
    const char *why = refuse_reason(req->path);
    if (why)
        return api_reply_problem(reply, 400, NULL, "%s", why);
    if (!s)
        return api_reply_problem(reply, 404, NULL, "no web directory is configured");

    char want[PATH_MAX + 16];
    size_t plen = strlen(req->path);
    const char *index = req->path[plen - 1] == '/' ? "index.html" : "";
    if (s->root_len + plen + strlen(index) + 1 > sizeof want - 1)
        return not_found(reply, req->path);
    snprintf(want, sizeof want, "%s%s%s", s->root, req->path, index);

    char real[PATH_MAX];
    if (!realpath(want, real))
        return not_found(reply, req->path);
    bool inside = strncmp(real, s->root, s->root_len) == 0 &&
                  (real[s->root_len] == '/' || (s->root_len == 1 && s->root[0] == '/'));
    if (!inside)
        return not_found(reply, req->path);

    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return not_found(reply, req->path);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return not_found(reply, req->path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        if (S_ISDIR(st.st_mode)) {
            /* "/docs" names a directory: send the client to "/docs/". */
            char loc[PATH_MAX + 2];
            snprintf(loc, sizeof loc, "%s/", req->path);
            int rc = api_reply_problem(reply, 301, "Moved Permanently", "see %s", loc);
            api_reply_header(reply, "Location", loc);
            return rc;
        }
        return not_found(reply, req->path);
    }
    char etag[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
                 (unsigned long long)st.st_mtim.tv_nsec);
    const char *inm = api_header(req, "If-None-Match");
    int rc;
    if (inm && (strstr(inm, etag) || strcmp(inm, "*") == 0)) {
        close(fd);
        rc = api_reply_empty(reply, 304);
    } else {
        rc = api_reply_file(reply, 200, static_mime_type(real), fd, (uint64_t)st.st_size);
    }
    api_reply_header(reply, "ETag", etag);
    api_reply_header(reply, "Cache-Control", "no-cache");
    return rc;
}
