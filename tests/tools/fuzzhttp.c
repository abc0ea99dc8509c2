/* fuzzhttp.c — throws malformed HTTP at a daemon on loopback, then checks it still answers.
 *
 * usage: fuzzhttp -p PORT [-H 127.0.0.1|::1] [-n REQUESTS] [-s SEED] [-d SECONDS]
 *                 [-j THREADS] [-t TOKEN] [-x SUBSTRING]...
 *
 * Sends REQUESTS (default 10000) malformed or hostile requests, each on its own connection,
 * from THREADS threads (default 4): random bytes, garbage request lines, invalid methods,
 * huge and numerous headers, truncated and malformed JSON bodies, bad Content-Length
 * values, bad chunked encodings, traversal and percent-encoding tricks in URLs, byte-level
 * mutations of valid requests, pipelined bursts, HTTP/0.9 and HTTP/2 prefaces, foreign
 * Host and Origin headers, and slow clients that trickle a request and then stall (these
 * run beside the others). Requests name the target in Host (so that they pass the
 * daemon's Host check and reach its handlers) unless they are meant not to. -x leaves
 * out the target paths containing SUBSTRING (sent as /api/v1/health instead). Every 500
 * requests and at the end it checks that GET /api/v1/health answers 200. Bodies are never
 * valid job submissions, but DELETE and POST requests do reach the API: run it against a
 * scratch state directory only. Exit status 0 when the daemon answered at the end, 1 when
 * it stopped answering, 2 on a usage error. The run stops early at the time bound
 * (default 300 s) and says how many requests it sent. Deterministic for a given seed
 * except for timing. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQ (1 << 20)
#define SLOW_CLIENTS 24
#define HEALTH_EVERY 500

static struct sockaddr_storage target;
static socklen_t target_len;
static const char *token;
static char target_host[INET6_ADDRSTRLEN + 16]; /* "127.0.0.1:PORT", the Host to send */
static atomic_long next_index;
static atomic_long sent_count;
static atomic_long health_failures;
static atomic_bool stop_now;
static long total_requests = 10000;
static double deadline_s;
static uint64_t base_seed = 1;
static long category_count[16];
static const char *excluded[16];
static int nexcluded;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* splitmix64: a small deterministic generator per request. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(next_u64(s) % n);
}

static int connect_target(int timeout_ms)
{
    int fd = socket(target.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&target, target_len) < 0) {
        if (errno != EINPROGRESS) {
            close(fd);
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ||
            err) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* Sends what the socket takes within timeout_ms; the peer may close early (fine). */
static void send_all(int fd, const char *data, size_t len, int timeout_ms)
{
    double end = now_s() + timeout_ms / 1e3;
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int left = (int)((end - now_s()) * 1e3);
        if (left <= 0 || poll(&p, 1, left) != 1)
            return;
    }
}

/* Reads and discards the answer until the peer closes or stays quiet for idle_ms. */
static void drain(int fd, int idle_ms, int total_ms)
{
    char buf[16384];
    double end = now_s() + total_ms / 1e3;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)((end - now_s()) * 1e3);
        if (left <= 0 || poll(&p, 1, left < idle_ms ? left : idle_ms) != 1)
            return;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return;
    }
}

/* GET /api/v1/health; true when it answered 200 within timeout_ms. */
static bool health_ok(int timeout_ms)
{
    int fd = connect_target(timeout_ms);
    if (fd < 0)
        return false;
    char req[160];
    int n = snprintf(req, sizeof req, "GET /api/v1/health HTTP/1.1\r\nHost: %s\r\n"
                     "Connection: close\r\n\r\n", target_host);
    send_all(fd, req, (size_t)n, timeout_ms);
    char buf[64];
    size_t got = 0;
    double end = now_s() + timeout_ms / 1e3;
    while (got < 12) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)((end - now_s()) * 1e3);
        if (left <= 0 || poll(&p, 1, left) != 1)
            break;
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = 0;
    return got >= 12 && strncmp(buf, "HTTP/1.1 200", 12) == 0;
}

/* Health with patience: slow clients may hold connection slots for a while. */
static bool health_eventually(int attempts)
{
    for (int i = 0; i < attempts; i++) {
        if (health_ok(2000))
            return true;
        usleep(500 * 1000);
    }
    return false;
}

/* ---- request builders: each writes at most cap bytes into b and returns the length ---- */

typedef struct {
    char *b;
    size_t len, cap;
} Buf;

static void put(Buf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap)
        n = b->cap - b->len;
    memcpy(b->b + b->len, s, n);
    b->len += n;
}

static void puts_(Buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void printf_(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void printf_(Buf *b, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* The Host line, mostly the target's; one request in 16 sends a foreign name, another a
 * foreign Origin as well, another none at all. */
static void host_line(Buf *b, uint64_t *rs)
{
    switch (below(rs, 16)) {
    case 0: puts_(b, "Host: evil.example\r\n"); break;
    case 1: printf_(b, "Host: %s\r\nOrigin: http://evil.example\r\n", target_host); break;
    case 2: break;
    default: printf_(b, "Host: %s\r\n", target_host); break;
    }
}

static const char *const api_paths[] = {
    "/api/v1/health", "/api/v1/info", "/api/v1/models", "/api/v1/models/mobilenet",
    "/api/v1/models/resnet50", "/api/v1/initializers", "/api/v1/presets", "/api/v1/datasets",
    "/api/v1/datasets/demo", "/api/v1/jobs", "/api/v1/jobs/1", "/api/v1/jobs/1/epochs",
    "/api/v1/jobs/1/stats", "/api/v1/jobs/1/histograms", "/api/v1/jobs/1/results",
    "/api/v1/jobs/1/cancel", "/api/v1/jobs/1/retry", "/api/v1/grids", "/api/v1/grids/1",
    "/api/v1/grids/1/summary", "/api/v1/openapi.json", "/metrics", "/", "/index.html",
    "/api/v1/events",
};
#define NPATHS (sizeof api_paths / sizeof api_paths[0])

/* path, or /api/v1/health when an -x substring excludes it. */
static const char *pick(const char *path)
{
    for (int i = 0; i < nexcluded; i++)
        if (strstr(path, excluded[i]))
            return "/api/v1/health";
    return path;
}

static const char *const methods[] = {"GET", "POST", "DELETE", "PUT", "HEAD", "OPTIONS",
                                      "PATCH", "TRACE", "CONNECT", "get", "G ET", "GETT",
                                      "\x01\x02", "POST\t", "X-CUSTOM", ""};
#define NMETHODS (sizeof methods / sizeof methods[0])

static const char *const nasty_urls[] = {
    "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd",
    "/%00", "/index.html%00.js", "/%", "/%%", "/%zz", "/%c0%ae%c0%ae/", "//", "///etc/passwd",
    "/api/v1/jobs/%00", "/api/v1/jobs/-1", "/api/v1/jobs/99999999999999999999999",
    "/api/v1/jobs/1/stats?epoch=-1&mode=%00&quantity=%ff",
    "/api/v1/jobs?limit=0&offset=-5&status=bogus,,queued&grid=1e9",
    "/api/v1/jobs/1/histograms?layer=99999999999&epoch=99999999999",
    "/api/v1/models/mobilenet?size=0&classes=-1&alpha=nan&depth=1e9",
    "/api/v1/models/resnet50?size=1024&classes=100000",
    "/api/v1/datasets/..", "/api/v1/datasets/%2e%2e%2f", "*", "http://x/api/v1/info",
    "/\\..\\..\\etc\\passwd", "/api/v1/grids/1/summary?format=xml",
    "/api/v1/jobs?format=csv&model=%22%0d%0aX:%20y",
};
#define NURLS (sizeof nasty_urls / sizeof nasty_urls[0])

static const char *const json_bodies[] = {
    "{", "{\"model\":", "{\"model\": \"mobilenet\", \"dataset\": ", "[", "[[[[[[[[[[[[",
    "{\"a\":1,\"a\":2}", "null", "\"just a string\"", "{\"epochs\": -1}", "{\"epochs\": 1e999}",
    "{\"model\": \"\\ud800\"}", "{\"model\": \"mobilenet\", \"dataset\": \"x\", \"x\": 1}",
    "{\"models\": [], \"initializers\": [], \"seeds\": []}",
    "{\"models\": \"mobilenet\", \"initializers\": 3, \"seeds\": [\"a\"]}",
    "{\"name\": \"../../etc\", \"path\": \"/etc\"}", "{\"name\": \"x\", \"path\": \"/\"}",
    "{\"split\": [0.5, 0.5]}", "{\"split\": \"1,2\"}", "\xff\xfe\x00\x01", "{}",
    "{\"lr\": \"0.1\", \"momentum\": true, \"milestones\": [1, -2]}",
    "{\"class_weight\": [1, 2, 3, \"x\"]}", "{\"seed\": 18446744073709551616}",
};
#define NBODIES (sizeof json_bodies / sizeof json_bodies[0])

static void auth_header(Buf *b, uint64_t *rs)
{
    if (token && below(rs, 2))
        printf_(b, "Authorization: Bearer %s\r\n", token);
    else if (below(rs, 8) == 0)
        puts_(b, "Authorization: Bearer wrong-token-xxxxxxxxxxxx\r\n");
}

static void random_bytes(Buf *b, uint64_t *rs)
{
    size_t n = below(rs, 4096) + 1;
    for (size_t i = 0; i < n && b->len < b->cap; i++)
        b->b[b->len++] = (char)next_u64(rs);
}

static void garbage_line(Buf *b, uint64_t *rs)
{
    size_t n = below(rs, 300) + 1;
    for (size_t i = 0; i < n && b->len < b->cap; i++)
        b->b[b->len++] = (char)(0x20 + below(rs, 95));
    puts_(b, below(rs, 2) ? "\r\n\r\n" : "\n\n");
}

static void bad_method(Buf *b, uint64_t *rs)
{
    printf_(b, "%s %s HTTP/1.1\r\n", methods[below(rs, NMETHODS)],
            pick(api_paths[below(rs, NPATHS)]));
    host_line(b, rs);
    auth_header(b, rs);
    puts_(b, "\r\n");
}

static void huge_headers(Buf *b, uint64_t *rs)
{
    printf_(b, "GET %s HTTP/1.1\r\n", pick(api_paths[below(rs, NPATHS)]));
    host_line(b, rs);
    if (below(rs, 2)) {
        puts_(b, "X-Huge: ");
        size_t n = 1000 + below(rs, 200000);
        for (size_t i = 0; i < n && b->len < b->cap; i++)
            b->b[b->len++] = 'a' + (char)(i % 26);
        puts_(b, "\r\n");
    } else {
        int n = 100 + (int)below(rs, 5000);
        for (int i = 0; i < n && b->len + 64 < b->cap; i++)
            printf_(b, "X-H-%d: %d\r\n", i, i);
    }
    puts_(b, "\r\n");
}

static const char *post_path(uint64_t *rs)
{
    static const char *const p[] = {"/api/v1/jobs", "/api/v1/grids", "/api/v1/datasets",
                                    "/api/v1/jobs/1/cancel", "/api/v1/jobs/1/retry",
                                    "/api/v1/health"};
    return pick(p[below(rs, sizeof p / sizeof p[0])]);
}

static void truncated_json(Buf *b, uint64_t *rs)
{
    const char *body = json_bodies[below(rs, NBODIES)];
    size_t len = strlen(body);
    size_t claimed = len + 1 + below(rs, 1000);
    printf_(b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %zu\r\n", post_path(rs), target_host, claimed);
    auth_header(b, rs);
    puts_(b, "\r\n");
    put(b, body, len);
}

static void malformed_json(Buf *b, uint64_t *rs)
{
    const char *body = json_bodies[below(rs, NBODIES)];
    size_t len = strlen(body);
    printf_(b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %zu\r\nIdempotency-Key: %s\r\n", post_path(rs), target_host, len,
            below(rs, 3) ? "k" : "");
    auth_header(b, rs);
    puts_(b, "\r\n");
    put(b, body, len);
}

static void bad_content_length(Buf *b, uint64_t *rs)
{
    static const char *const values[] = {"-1", "abc", "18446744073709551616", "1e3", " 5",
                                         "5, 5", "0x10", "99999999999999999999999999", "",
                                         "4294967296", "+7"};
    printf_(b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %s\r\n", post_path(rs),
            target_host,
            values[below(rs, sizeof values / sizeof values[0])]);
    if (below(rs, 2))
        puts_(b, "Content-Length: 3\r\n");
    if (below(rs, 3) == 0)
        puts_(b, "Transfer-Encoding: chunked\r\n");
    puts_(b, "\r\n{}x");
}

static void bad_chunks(Buf *b, uint64_t *rs)
{
    static const char *const bodies[] = {
        "zz\r\nhello\r\n0\r\n\r\n", "5\r\nhel", "ffffffffffffffffffff\r\nx\r\n",
        "-5\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n", "5;ext=\"\r\nhello\r\n0\r\n\r\n",
        "0\r\nTrailer: x\r\nBad trailer\r\n\r\n", "3\r\nabc\r\n", "\r\n\r\n\r\n",
        "7fffffffffffffff\r\n", "1\r\n{\r\n1\r\n\"\r\n0\r\n\r\n", "5 \r\nhello\r\n0\r\n\r\n",
    };
    printf_(b, "POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: %s\r\n", post_path(rs),
            target_host,
            below(rs, 4) ? "chunked" : "gzip, chunked");
    auth_header(b, rs);
    puts_(b, "\r\n");
    puts_(b, bodies[below(rs, sizeof bodies / sizeof bodies[0])]);
}

static void nasty_url(Buf *b, uint64_t *rs)
{
    printf_(b, "GET %s HTTP/1.%d\r\n", pick(nasty_urls[below(rs, NURLS)]), (int)below(rs, 2));
    host_line(b, rs);
    auth_header(b, rs);
    puts_(b, "\r\n");
}

static void valid_request(Buf *b, uint64_t *rs)
{
    const char *m = below(rs, 4) ? "GET" : below(rs, 2) ? "POST" : "DELETE";
    printf_(b, "%s %s?x=%u&format=%s HTTP/1.1\r\n", m, pick(api_paths[below(rs, NPATHS)]),
            (unsigned)below(rs, 1000), below(rs, 2) ? "csv" : "json");
    host_line(b, rs);
    auth_header(b, rs);
    if (m[0] == 'P') {
        const char *body = json_bodies[below(rs, NBODIES)];
        static const char *const types[] = {"application/json", "application/json; charset=utf-8",
                                            "text/plain", "application/x-www-form-urlencoded"};
        printf_(b, "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n%s",
                types[below(rs, 8) < 6 ? below(rs, 2) : 2 + below(rs, 2)], strlen(body), body);
    } else {
        puts_(b, "\r\n");
    }
}

static void mutated(Buf *b, uint64_t *rs)
{
    valid_request(b, rs);
    int flips = 1 + (int)below(rs, 8);
    for (int i = 0; i < flips && b->len; i++) {
        size_t at = below(rs, (uint32_t)b->len);
        switch (below(rs, 3)) {
        case 0: b->b[at] = (char)next_u64(rs); break;
        case 1: b->len = at; break;                       /* truncate */
        default: b->b[at] = "\r\n\0: %/?"[below(rs, 8)]; break;
        }
    }
}

static void pipelined(Buf *b, uint64_t *rs)
{
    int n = 2 + (int)below(rs, 50);
    for (int i = 0; i < n && b->len + 256 < b->cap; i++)
        printf_(b, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", pick(api_paths[below(rs, NPATHS)]),
                target_host);
    if (below(rs, 2))
        puts_(b, "GARBAGE AT THE END\r\n\r\n");
}

static void old_and_new_protocols(Buf *b, uint64_t *rs)
{
    static const char *const v[] = {"GET /\r\n", "GET / HTTP/0.9\r\n\r\n",
                                     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                                     "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
                                     "GET / HTTP/1.1\r\n\r\n", "GET / HTTP/1.0\r\n\r\n",
                                     "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                                     "GET / HTTP/1.1\r\n Host: folded\r\n\r\n",
                                     "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                     "Content-Length: 10\r\n\r\n",
                                     "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"};
    puts_(b, v[below(rs, sizeof v / sizeof v[0])]);
}

typedef void (*Builder)(Buf *b, uint64_t *rs);
static const struct { const char *name; Builder fn; } builders[] = {
    {"random bytes", random_bytes},       {"garbage lines", garbage_line},
    {"invalid methods", bad_method},      {"huge headers", huge_headers},
    {"truncated JSON", truncated_json},   {"malformed JSON", malformed_json},
    {"bad Content-Length", bad_content_length}, {"bad chunking", bad_chunks},
    {"nasty URLs", nasty_url},            {"mutated requests", mutated},
    {"pipelined bursts", pipelined},      {"protocol versions", old_and_new_protocols},
    {"plausible requests", valid_request},
};
#define NBUILDERS (int)(sizeof builders / sizeof builders[0])

static void *sender_main(void *arg)
{
    (void)arg;
    Buf b = {.b = malloc(MAX_REQ), .cap = MAX_REQ};
    if (!b.b)
        return NULL;
    for (;;) {
        long i = atomic_fetch_add(&next_index, 1);
        if (i >= total_requests || atomic_load(&stop_now) || now_s() > deadline_s)
            break;
        uint64_t rs = base_seed * 1000003ULL + (uint64_t)i;
        int cat = (int)below(&rs, NBUILDERS);
        b.len = 0;
        builders[cat].fn(&b, &rs);
        int fd = connect_target(2000);
        if (fd >= 0) {
            send_all(fd, b.b, b.len, 1000);
            if (below(&rs, 4) == 0)
                shutdown(fd, SHUT_WR);
            drain(fd, 100, 1000);
            close(fd);
        }
        pthread_mutex_lock(&count_lock);
        category_count[cat]++;
        pthread_mutex_unlock(&count_lock);
        long sent = atomic_fetch_add(&sent_count, 1) + 1;
        if (sent % HEALTH_EVERY == 0 && !health_eventually(20)) {
            fprintf(stderr, "fuzzhttp: /api/v1/health stopped answering after %ld requests "
                    "(last: %s)\n", sent, builders[cat].name);
            atomic_fetch_add(&health_failures, 1);
            atomic_store(&stop_now, true);
        }
    }
    free(b.b);
    return NULL;
}

/* A client that sends part of a request a few bytes at a time, then stalls. */
static void *slow_main(void *arg)
{
    uint64_t rs = base_seed * 7919ULL + (uint64_t)(uintptr_t)arg;
    while (!atomic_load(&stop_now) && now_s() < deadline_s &&
           atomic_load(&sent_count) < total_requests) {
        char req[512];
        int n = snprintf(req, sizeof req, "POST /api/v1/jobs HTTP/1.1\r\nHost: %s\r\n"
                         "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
                         "{\"model\": \"mobilenet\", \"epochs\": 3", target_host);
        size_t upto = below(&rs, (uint32_t)n);
        int fd = connect_target(2000);
        if (fd < 0) {
            usleep(100 * 1000);
            continue;
        }
        for (size_t k = 0; k < upto && !atomic_load(&stop_now); k += 1 + below(&rs, 4)) {
            size_t len = k + 4 <= upto ? 4 : upto - k;
            send_all(fd, req + k, len, 500);
            usleep(20000 + below(&rs, 80000));
        }
        drain(fd, 1000 + (int)below(&rs, 3000), 5000); /* stall */
        close(fd);
        atomic_fetch_add(&sent_count, 1);
        pthread_mutex_lock(&count_lock);
        category_count[NBUILDERS]++;
        pthread_mutex_unlock(&count_lock);
    }
    return NULL;
}

static int usage(void)
{
    fputs("usage: fuzzhttp -p PORT [-H 127.0.0.1|::1] [-n REQUESTS] [-s SEED] [-d SECONDS]\n"
          "                [-j THREADS] [-t TOKEN] [-x SUBSTRING]...\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0, threads = 4;
    double seconds = 300;
    int opt;
    while ((opt = getopt(argc, argv, "p:H:n:s:d:j:t:x:h")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'H': host = optarg; break;
        case 'n': total_requests = atol(optarg); break;
        case 's': base_seed = strtoull(optarg, NULL, 10); break;
        case 'd': seconds = atof(optarg); break;
        case 'j': threads = atoi(optarg); break;
        case 't': token = optarg; break;
        case 'x':
            if (nexcluded == (int)(sizeof excluded / sizeof excluded[0]))
                return usage();
            excluded[nexcluded++] = optarg;
            break;
        default: return usage();
        }
    }
    if (port <= 0 || port > 65535 || total_requests < 1 || threads < 1 || threads > 64 ||
        seconds <= 0)
        return usage();
    struct sockaddr_in *a4 = (struct sockaddr_in *)&target;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&target;
    snprintf(target_host, sizeof target_host, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
             port);
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1 && (ntohl(a4->sin_addr.s_addr) >> 24) == 127) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        target_len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1 &&
               IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        target_len = sizeof *a6;
    } else {
        fprintf(stderr, "fuzzhttp: %s is not a loopback address\n", host);
        return 2;
    }
    if (!health_eventually(5)) {
        fprintf(stderr, "fuzzhttp: no daemon answers /api/v1/health on %s:%d\n", host, port);
        return 1;
    }
    double t0 = now_s();
    deadline_s = t0 + seconds;
    pthread_t th[64 + SLOW_CLIENTS];
    int n = 0;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&th[n], NULL, sender_main, NULL) == 0)
            n++;
    for (int i = 0; i < SLOW_CLIENTS; i++)
        if (pthread_create(&th[n], NULL, slow_main, (void *)(uintptr_t)i) == 0)
            n++;
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    double elapsed = now_s() - t0;
    long sent = atomic_load(&sent_count);
    printf("fuzzhttp: %ld requests in %.1f s (seed %llu)\n", sent, elapsed,
           (unsigned long long)base_seed);
    for (int c = 0; c <= NBUILDERS; c++)
        printf("  %-20s %ld\n", c < NBUILDERS ? builders[c].name : "slow clients",
               category_count[c]);
    if (sent < total_requests)
        printf("fuzzhttp: stopped at the time bound after %ld of %ld requests\n", sent,
               total_requests);
    bool alive = atomic_load(&health_failures) == 0 && health_eventually(20);
    printf("fuzzhttp: daemon %s\n", alive ? "still answers /api/v1/health"
                                          : "STOPPED ANSWERING /api/v1/health");
    return alive ? 0 : 1;
}
