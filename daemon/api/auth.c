/* auth.c — bearer-token checks, Host names, cross-origin writes and the CORS policy (see
 * auth.h). Read-only once the server runs. */
#include "api/auth.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util/log.h"

#define TOKEN_MIN 16
#define TOKEN_MAX 4096
#define HOST_MAX 256
#define MAX_ALLOWED_HOSTS 32

/* What the listen address says about the Host names to accept. */
typedef enum { LISTEN_SPECIFIC, LISTEN_LOOPBACK, LISTEN_WILDCARD } ListenKind;

struct Auth {
    char *token;       /* NULL when no token is configured */
    size_t token_len;
    char *worker_token; /* NULL when no worker token is configured */
    size_t worker_token_len;
    char *cors_origin; /* NULL when CORS is off */
    bool hosts_set;    /* auth_set_hosts ran: Host is checked */
    bool hosts_any;    /* "*" in the allow-list */
    ListenKind listen_kind;
    int listen_family; /* AF_INET or AF_INET6 */
    unsigned char listen_addr[16];
    int nallowed;
    char *allowed[MAX_ALLOWED_HOSTS]; /* lower case; a leading '.' matches subdomains */
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* POSIX ACL as Linux stores it in the system.posix_acl_access attribute: a little-endian
 * header (version 2) and entries of tag, permissions and id. */
#define ACL_XATTR_VERSION 2
enum { ACL_TAG_USER = 0x02, ACL_TAG_GROUP_OBJ = 0x04, ACL_TAG_GROUP = 0x08,
       ACL_TAG_MASK = 0x10 };

static uint32_t le_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A group whose members may share the token: root's and the daemon's own. */
static bool trusted_gid(gid_t gid)
{
    return gid == 0 || gid == getegid();
}

/* True when someone other than root and the daemon's own user (and group) may read or
 * write the file behind fd, whose fstat is st; who then says who ("mode 0644", "group
 * 1000", "user 1001 by ACL"). The group bits of a file with an ACL are its mask, not the
 * group's permissions, so the ACL is read when there is one: systemd's LoadCredential=
 * gives the service's credential mode 0440 with an ACL entry for the service user and no
 * group access, which is private. Can't fail (an unreadable ACL counts as none). */
static bool token_exposed(int fd, const struct stat *st, char *who, size_t wholen)
{
    if (st->st_mode & S_IRWXO) {
        snprintf(who, wholen, "mode %04o", (unsigned)(st->st_mode & 07777));
        return true;
    }
    unsigned char acl[1024];
    ssize_t n = fgetxattr(fd, "system.posix_acl_access", acl, sizeof acl);
    if (n < 4 || (n - 4) % 8 != 0 || le_u32(acl) != ACL_XATTR_VERSION) {
        if ((st->st_mode & S_IRWXG) && !trusted_gid(st->st_gid)) {
            snprintf(who, wholen, "group %u, mode %04o", (unsigned)st->st_gid,
                     (unsigned)(st->st_mode & 07777));
            return true;
        }
        return false;
    }
    unsigned mask = 07;
    for (ssize_t off = 4; off < n; off += 8)
        if ((acl[off] | acl[off + 1] << 8) == ACL_TAG_MASK)
            mask = acl[off + 2] & 07;
    for (ssize_t off = 4; off < n; off += 8) {
        unsigned tag = acl[off] | acl[off + 1] << 8;
        unsigned perm = acl[off + 2] & 07 & mask;
        uint32_t id = le_u32(acl + off + 4);
        if (!perm)
            continue;
        if (tag == ACL_TAG_USER && id != 0 && id != (uint32_t)geteuid()) {
            snprintf(who, wholen, "user %u by ACL", (unsigned)id);
            return true;
        }
        if ((tag == ACL_TAG_GROUP && !trusted_gid((gid_t)id)) ||
            (tag == ACL_TAG_GROUP_OBJ && !trusted_gid(st->st_gid))) {
            snprintf(who, wholen, "group %u by ACL",
                     (unsigned)(tag == ACL_TAG_GROUP ? id : st->st_gid));
            return true;
        }
    }
    return false;
}

/* Reads and validates the token; 0, or -1 with err set. Wipes its buffer on every path. */
static int read_token(char **token, size_t *token_len, const char *path, char *err,
                      size_t errlen)
{
    char buf[TOKEN_MAX + 2];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    char who[96];
    if (fstat(fd, &st) == 0 && token_exposed(fd, &st, who, sizeof who))
        log_warn("auth", "token file %s is accessible by other users (%s); chmod 600 it",
                 path, who);
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
    *token = strndup(buf + start, end - start);
    if (!*token) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    *token_len = end - start;
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
    if (token_file && read_token(&a->token, &a->token_len, token_file, err, errlen) < 0)
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

int auth_set_worker_token(Auth *a, const char *token_file, char *err, size_t errlen)
{
    char *token = NULL;
    size_t len = 0;
    if (read_token(&token, &len, token_file, err, errlen) < 0)
        return -1;
    if (a->token && auth_equal_ct(token, len, a->token, a->token_len)) {
        explicit_bzero(token, len);
        free(token);
        snprintf(err, errlen, "%s: the worker token must differ from the token of "
                 "--token-file (which may administer)", token_file);
        return -1;
    }
    a->worker_token = token;
    a->worker_token_len = len;
    return 0;
}

bool auth_worker_path(const char *path)
{
    return strncmp(path, "/api/v1/worker/", 15) == 0;
}

void auth_free(Auth *a)
{
    if (!a)
        return;
    if (a->token) {
        explicit_bzero(a->token, a->token_len);
        free(a->token);
    }
    if (a->worker_token) {
        explicit_bzero(a->worker_token, a->worker_token_len);
        free(a->worker_token);
    }
    free(a->cors_origin);
    for (int i = 0; i < a->nallowed; i++)
        free(a->allowed[i]);
    free(a);
}

bool auth_enabled(const Auth *a)
{
    return a && a->token;
}

bool auth_required(const Auth *a, const ApiRequest *req)
{
    if (a && a->worker_token && auth_worker_path(req->path))
        return true;
    if (!auth_enabled(a))
        return false;
    if (strcmp(req->path, "/metrics") == 0)
        return true;
    if (strncmp(req->path, "/api/", 5) != 0 && strcmp(req->path, "/api") != 0)
        return false;
    return strcmp(req->path, "/api/v1/health") != 0;
}

/* ---- Host names ------------------------------------------------------------------- */

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* Copies the host part of a Host value ("name", "name:port", "[v6]", "[v6]:port") into buf,
 * lower case, without brackets or a final dot; *literal6 tells a bracketed IPv6 literal.
 * False when value is no valid host[:port] or does not fit. */
static bool host_part(const char *value, char *buf, size_t size, bool *literal6)
{
    const char *end, *port;
    *literal6 = value[0] == '[';
    if (*literal6) {
        value++;
        end = strchr(value, ']');
        if (!end)
            return false;
        port = end + 1;
    } else {
        end = strchr(value, ':');
        if (!end)
            end = value + strlen(value);
        port = end;
    }
    if (*port == ':')
        port++;
    else if (*port)
        return false;
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    size_t n = (size_t)(end - value);
    if (n > 1 && value[n - 1] == '.' && !*literal6)
        n--;
    if (n == 0 || n >= size)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = value[i];
        if (*literal6 ? !(isxdigit((unsigned char)c) || c == ':' || c == '.') : !host_char(c))
            return false;
        buf[i] = (char)tolower((unsigned char)c);
    }
    buf[n] = 0;
    return true;
}

/* Parses an IP literal (dotted IPv4, or IPv6 when literal6); the family, or 0. */
static int ip_literal(const char *host, bool literal6, unsigned char addr[16])
{
    if (literal6)
        return inet_pton(AF_INET6, host, addr) == 1 ? AF_INET6 : 0;
    return inet_pton(AF_INET, host, addr) == 1 ? AF_INET : 0;
}

static bool is_loopback(int family, const unsigned char *addr)
{
    static const unsigned char v6_loopback[16] = {[15] = 1};
    return family == AF_INET ? addr[0] == 127 : memcmp(addr, v6_loopback, 16) == 0;
}

static bool is_wildcard(int family, const unsigned char *addr)
{
    static const unsigned char zero[16];
    return memcmp(addr, zero, family == AF_INET ? 4 : 16) == 0;
}

int auth_set_hosts(Auth *a, const char *listen, const char *allowed, char *err, size_t errlen)
{
    char host[HOST_MAX];
    bool literal6;
    const char *colon = listen[0] == '[' ? strstr(listen, "]:") : strrchr(listen, ':');
    size_t n = colon ? (size_t)(colon - listen) + (listen[0] == '[') : 0;
    if (!colon || n >= sizeof host) {
        snprintf(err, errlen, "listen address '%s' has no host:port form", listen);
        return -1;
    }
    memcpy(host, listen, n);
    host[n] = 0;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    char name[HOST_MAX];
    if (!host_part(host, name, sizeof name, &literal6) ||
        !(a->listen_family = ip_literal(name, literal6, a->listen_addr))) {
        snprintf(err, errlen, "listen address '%s' is not an IP address", listen);
        return -1;
    }
    a->listen_kind = is_wildcard(a->listen_family, a->listen_addr)   ? LISTEN_WILDCARD
                     : is_loopback(a->listen_family, a->listen_addr) ? LISTEN_LOOPBACK
                                                                     : LISTEN_SPECIFIC;
    for (const char *p = allowed ? allowed : ""; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        char entry[HOST_MAX];
        if (len == 0 || len >= sizeof entry) {
            snprintf(err, errlen, "allowed host '%.*s': give host names separated by commas",
                     (int)(len < 64 ? len : 64), p);
            return -1;
        }
        memcpy(entry, p, len);
        entry[len] = 0;
        char norm[HOST_MAX];
        bool suffix = entry[0] == '.';
        const char *bracket = strchr(entry, ']');
        bool port = entry[0] == '[' ? bracket && bracket[1] : strchr(entry, ':') != NULL;
        if (strcmp(entry, "*") == 0) {
            a->hosts_any = true;
        } else if (port || (suffix && entry[1] == '[') ||
                   !host_part(entry + suffix, norm + suffix, sizeof norm - 1, &literal6)) {
            snprintf(err, errlen, "allowed host '%s' is not a host name or IP address "
                     "without a port (a leading '.' allows the subdomains too)", entry);
            return -1;
        } else if (a->nallowed == MAX_ALLOWED_HOSTS) {
            snprintf(err, errlen, "more than %d allowed hosts", MAX_ALLOWED_HOSTS);
            return -1;
        } else {
            norm[0] = suffix ? '.' : norm[0];
            if (!(a->allowed[a->nallowed] = strdup(norm))) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            a->nallowed++;
        }
        p += len;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == ',')
            p++;
    }
    a->hosts_set = true;
    return 0;
}

static bool host_allowed(const Auth *a, const char *name, bool literal6)
{
    if (a->hosts_any)
        return true;
    for (int i = 0; i < a->nallowed; i++) {
        const char *e = a->allowed[i];
        size_t n = strlen(name), m = strlen(e);
        if (strcmp(name, e) == 0 ||
            (e[0] == '.' && (strcmp(name, e + 1) == 0 ||
                             (n > m && strcmp(name + n - m, e) == 0))))
            return true;
    }
    unsigned char addr[16];
    int family = ip_literal(name, literal6, addr);
    if (family) {
        if (a->listen_kind == LISTEN_WILDCARD)
            return true;
        if (family == a->listen_family &&
            memcmp(addr, a->listen_addr, family == AF_INET ? 4 : 16) == 0)
            return true;
        return a->listen_kind == LISTEN_LOOPBACK && is_loopback(family, addr) &&
               (family == AF_INET6 || (addr[1] == 0 && addr[2] == 0 && addr[3] == 1));
    }
    return a->listen_kind != LISTEN_SPECIFIC && strcmp(name, "localhost") == 0;
}

int auth_check_host(const Auth *a, const ApiRequest *req, ApiReply *reply)
{
    const char *value = api_header(req, "Host");
    if (!a || !a->hosts_set || !value)
        return 0;
    char name[HOST_MAX];
    bool literal6;
    if (!host_part(value, name, sizeof name, &literal6)) {
        api_reply_problem(reply, 400, NULL, "Host '%.200s' is not a valid host[:port]", value);
        return -1;
    }
    if (host_allowed(a, name, literal6))
        return 0;
    api_reply_problem(reply, 421, NULL, "Host '%s' does not name this daemon; a name it "
                      "should answer to must be given with --allowed-host", name);
    return -1;
}

/* ---- cross-origin writes ---------------------------------------------------------- */

bool auth_unsafe_method(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0;
}

int auth_check_origin(const Auth *a, const ApiRequest *req, ApiReply *reply)
{
    const char *origin = api_header(req, "Origin");
    if (!origin || !auth_unsafe_method(req->method))
        return 0;
    if (a && a->cors_origin &&
        (strcmp(a->cors_origin, "*") == 0 || strcmp(a->cors_origin, origin) == 0))
        return 0;
    const char *host = api_header(req, "Host");
    const char *authority = strncasecmp(origin, "http://", 7) == 0    ? origin + 7
                            : strncasecmp(origin, "https://", 8) == 0 ? origin + 8
                                                                      : NULL;
    if (authority && host && *authority && strcasecmp(authority, host) == 0)
        return 0;
    api_reply_problem(reply, 403, NULL, "cross-origin %s from '%.200s' refused: only the "
                      "daemon's own pages and the origin given by --cors-origin may change "
                      "it", req->method, origin);
    return -1;
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
            /* Both comparisons always run: the time does not tell which token it was. */
            bool admin = a->token && auth_equal_ct(tok, len, a->token, a->token_len);
            bool worker = a->worker_token &&
                          auth_equal_ct(tok, len, a->worker_token, a->worker_token_len);
            if (admin || (worker && auth_worker_path(req->path)))
                return 0;
            if (worker) {
                api_reply_problem(reply, 403, NULL, "a worker token may only lease and report "
                                  "jobs (/api/v1/worker/); this needs the daemon's token");
                return -1;
            }
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
    api_reply_header(reply, "Access-Control-Allow-Methods", "GET, HEAD, POST, PATCH, DELETE");
    api_reply_header(reply, "Access-Control-Allow-Headers",
                     "Authorization, Content-Type, Idempotency-Key, Last-Event-ID");
    api_reply_header(reply, "Access-Control-Max-Age", "600");
    return true;
}
