/* auth.c — bearer-token checks and the CORS policy (see auth.h). Immutable after creation. */
#include "api/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

#define TOKEN_MIN 16
#define TOKEN_MAX 4096

struct Auth {
    char *token;       /* NULL when no token is configured */
    size_t token_len;
    char *cors_origin; /* NULL when CORS is off */
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Reads and validates the token; 0, or -1 with err set. Wipes its buffer on every path. */
static int read_token(Auth *a, const char *path, char *err, size_t errlen)
{
    char buf[TOKEN_MAX + 2];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
        log_warn("auth", "token file %s is accessible by other users; chmod 600 it", path);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            close(fd);
            explicit_bzero(buf, sizeof buf);
            return -1;
        }
        n += (size_t)r;
    }
    close(fd);
    size_t start = 0, end = n;
    while (start < end && is_space(buf[start]))
        start++;
    while (end > start && is_space(buf[end - 1]))
        end--;
    int rc = -1;
    if (n > TOKEN_MAX) {
        snprintf(err, errlen, "%s: the token is longer than %d bytes", path, TOKEN_MAX);
        goto done;
    }
    if (end - start < TOKEN_MIN) {
        snprintf(err, errlen, "%s: the token must have at least %d characters", path,
                 TOKEN_MIN);
        goto done;
    }
    for (size_t i = start; i < end; i++)
        if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f) {
            snprintf(err, errlen, "%s: the token may only contain visible ASCII characters",
                     path);
            goto done;
        }
    a->token = strndup(buf + start, end - start);
    if (!a->token) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    a->token_len = end - start;
    rc = 0;
done:
    explicit_bzero(buf, sizeof buf);
    return rc;
}

static bool valid_origin(const char *o)
{
    if (strcmp(o, "*") == 0)
        return true;
    const char *host = NULL;
    if (strncmp(o, "http://", 7) == 0)
        host = o + 7;
    else if (strncmp(o, "https://", 8) == 0)
        host = o + 8;
    if (!host || !*host)
        return false;
    for (const char *p = host; *p; p++)
        if (*p == '/' || (unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return false;
    return true;
}

Auth *auth_create(const char *token_file, const char *cors_origin, char *err, size_t errlen)
{
    Auth *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (token_file && read_token(a, token_file, err, errlen) < 0)
        goto fail;
    if (cors_origin && *cors_origin) {
        if (!valid_origin(cors_origin)) {
            snprintf(err, errlen, "cors origin '%s' is not \"*\" or scheme://host[:port] "
                     "without a path", cors_origin);
            goto fail;
        }
        if (!(a->cors_origin = strdup(cors_origin))) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    return a;
fail:
    auth_free(a);
    return NULL;
}

void auth_free(Auth *a)
{
    if (!a)
        return;
    if (a->token) {
        explicit_bzero(a->token, a->token_len);
        free(a->token);
    }
    free(a->cors_origin);
    free(a);
}

bool auth_enabled(const Auth *a)
{
    return a && a->token;
}

bool auth_required(const Auth *a, const ApiRequest *req)
{
    if (!auth_enabled(a))
        return false;
    if (strncmp(req->path, "/api/", 5) != 0 && strcmp(req->path, "/api") != 0)
        return false;
    return strcmp(req->path, "/api/v1/health") != 0;
}

bool auth_equal_ct(const char *presented, size_t presented_len, const char *secret,
                   size_t secret_len)
{
    /* Walks the secret's length whatever was presented; index the presented bytes modulo
     * their length so no access depends on where the first difference is. */
    volatile unsigned char diff = (unsigned char)(presented_len != secret_len);
    for (size_t i = 0; i < secret_len; i++) {
        unsigned char p = presented_len ? (unsigned char)presented[i % presented_len] : 0;
        diff |= p ^ (unsigned char)secret[i];
    }
    return diff == 0;
}

int auth_check(const Auth *a, const ApiRequest *req, ApiReply *reply)
{
    if (!auth_required(a, req))
        return 0;
    const char *h = api_header(req, "Authorization");
    const char *why = "send Authorization: Bearer <token>";
    if (h) {
        while (*h == ' ' || *h == '\t')
            h++;
        if (strncasecmp(h, "Bearer", 6) == 0 && (h[6] == ' ' || h[6] == '\t')) {
            const char *tok = h + 7;
            while (*tok == ' ' || *tok == '\t')
                tok++;
            size_t len = strlen(tok);
            while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
                len--;
            if (auth_equal_ct(tok, len, a->token, a->token_len))
                return 0;
            why = "the bearer token is not valid";
        } else {
            why = "the Authorization scheme must be Bearer";
        }
    }
    api_reply_problem(reply, 401, NULL, "%s", why);
    api_reply_header(reply, "WWW-Authenticate",
                     h ? "Bearer realm=\"initlab\", error=\"invalid_token\""
                       : "Bearer realm=\"initlab\"");
    return -1;
}

static bool origin_allowed(const Auth *a, const ApiRequest *req, const char **origin)
{
    if (!a || !a->cors_origin)
        return false;
    *origin = api_header(req, "Origin");
    if (!*origin)
        return false;
    return strcmp(a->cors_origin, "*") == 0 || strcmp(a->cors_origin, *origin) == 0;
}

void auth_cors_headers(const Auth *a, const ApiRequest *req, ApiReply *reply)
{
    const char *origin;
    if (!origin_allowed(a, req, &origin))
        return;
    api_reply_header(reply, "Access-Control-Allow-Origin",
                     strcmp(a->cors_origin, "*") == 0 ? "*" : origin);
    api_reply_header(reply, "Vary", "Origin");
}

bool auth_cors_preflight(const Auth *a, const ApiRequest *req, ApiReply *reply)
{
    const char *origin;
    if (strcmp(req->method, "OPTIONS") != 0 || !api_header(req, "Access-Control-Request-Method")
        || !origin_allowed(a, req, &origin))
        return false;
    api_reply_empty(reply, 204);
    auth_cors_headers(a, req, reply);
    api_reply_header(reply, "Access-Control-Allow-Methods", "GET, HEAD, POST, DELETE");
    api_reply_header(reply, "Access-Control-Allow-Headers",
                     "Authorization, Content-Type, Idempotency-Key, Last-Event-ID");
    api_reply_header(reply, "Access-Control-Max-Age", "600");
    return true;
}
