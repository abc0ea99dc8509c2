/* loadgen.c — loopback HTTP load generator: N keep-alive clients × M GET requests each.
 *
 * usage: loadgen -p PORT [-H 127.0.0.1|::1] [-c CLIENTS] [-n REQUESTS] [-t TOKEN] PATH...
 *
 * Each client is a thread with one HTTP/1.1 keep-alive connection (reopened when the server
 * closes it) that sends its M requests one after another, cycling through the paths from
 * a different starting point per client. A request counts as an error when the connection
 * fails or the status is not 2xx/3xx. Prints the count, errors, latency percentiles
 * (p50/p90/p99/max) and the throughput, then a one-line summary for scripts:
 *   loadgen: requests=10000 errors=0 p50_ms=1.2 p90_ms=3.4 p99_ms=9.8 max_ms=20.1 rps=4000
 * Only loopback targets are accepted. Exit status 0 when there were no errors, 1 otherwise,
 * 2 on a usage error. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_MS 30000

typedef struct {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const char *host_header;
    const char *token;
    char **paths;
    int npaths;
    int requests;
} Target;

typedef struct {
    const Target *t;
    int id;
    double *lat_ms;   /* (requests) latency of each request; < 0 for a failed one */
    int done, errors;
    char first_error[160];
} Client;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A connection with a read buffer. */
typedef struct {
    int fd;
    char buf[65536];
    size_t off, len;
} Conn;

static int conn_open(Conn *c, const Target *t)
{
    c->off = c->len = 0;
    c->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (const struct sockaddr *)&t->addr, t->addrlen) < 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void conn_close(Conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Reads more bytes into the buffer; 0 on success, -1 on EOF, error or timeout. */
static int conn_fill(Conn *c)
{
    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len);
        c->off = 0;
    }
    if (c->len == sizeof c->buf)
        return -1;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, IO_TIMEOUT_MS) != 1)
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0)
        return -1;
    c->len += (size_t)n;
    return 0;
}

/* Reads one line (without CRLF) into out; -1 on failure. */
static int conn_line(Conn *c, char *out, size_t size)
{
    for (;;) {
        char *start = c->buf + c->off;
        char *nl = memchr(start, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - start);
            size_t copy = n && start[n - 1] == '\r' ? n - 1 : n;
            if (copy >= size)
                copy = size - 1;
            memcpy(out, start, copy);
            out[copy] = 0;
            c->off += n + 1;
            c->len -= n + 1;
            return 0;
        }
        if (conn_fill(c) < 0)
            return -1;
    }
}

/* Skips n body bytes. */
static int conn_skip(Conn *c, size_t n)
{
    while (n > 0) {
        if (c->len == 0 && conn_fill(c) < 0)
            return -1;
        size_t k = n < c->len ? n : c->len;
        c->off += k;
        c->len -= k;
        n -= k;
    }
    return 0;
}

/* Reads one response; returns its status (and *keep = whether the connection stays
 * open), or -1 on a connection failure. */
static int read_response(Conn *c, bool *keep)
{
    char line[8192];
    if (conn_line(c, line, sizeof line) < 0)
        return -1;
    int status = 0;
    if (sscanf(line, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    long long length = -1;
    bool chunked = false;
    *keep = strncmp(line, "HTTP/1.1", 8) == 0;
    for (;;) {
        if (conn_line(c, line, sizeof line) < 0)
            return -1;
        if (!line[0])
            break;
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            length = atoll(line + 15);
        else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strstr(line, "chunked"))
            chunked = true;
        else if (strncasecmp(line, "Connection:", 11) == 0 && strcasestr(line, "close"))
            *keep = false;
    }
    if (status == 204 || status == 304 || (status >= 100 && status < 200))
        return status;
    if (chunked) {
        for (;;) {
            if (conn_line(c, line, sizeof line) < 0)
                return -1;
            long long n = strtoll(line, NULL, 16);
            if (n < 0)
                return -1;
            if (n == 0) {
                do
                    if (conn_line(c, line, sizeof line) < 0)
                        return -1;
                while (line[0]);
                return status;
            }
            if (conn_skip(c, (size_t)n) < 0 || conn_line(c, line, sizeof line) < 0)
                return -1;
        }
    }
    if (length >= 0)
        return conn_skip(c, (size_t)length) < 0 ? -1 : status;
    /* No length: the body runs to the end of the connection. */
    *keep = false;
    while (conn_fill(c) == 0)
        c->off += c->len, c->len = 0;
    return status;
}

static void note_error(Client *cl, const char *fmt, const char *path, int status)
{
    cl->errors++;
    if (!cl->first_error[0])
        snprintf(cl->first_error, sizeof cl->first_error, fmt, path, status);
}

static void *client_main(void *arg)
{
    Client *cl = arg;
    const Target *t = cl->t;
    Conn c = {.fd = -1};
    char req[4096];
    for (int i = 0; i < t->requests; i++) {
        const char *path = t->paths[(cl->id + i) % t->npaths];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n%s%s%s"
                         "User-Agent: initlab-loadgen\r\n\r\n", path, t->host_header,
                         t->token ? "Authorization: Bearer " : "", t->token ? t->token : "",
                         t->token ? "\r\n" : "");
        double t0 = now_ms();
        int status = -1;
        for (int attempt = 0; attempt < 2 && status < 0; attempt++) {
            /* A keep-alive connection the server closed meanwhile is retried once. */
            if (c.fd < 0 && conn_open(&c, t) < 0)
                break;
            bool keep = false;
            if (send(c.fd, req, (size_t)n, MSG_NOSIGNAL) == n)
                status = read_response(&c, &keep);
            if (status < 0 || !keep) {
                conn_close(&c);
                if (status >= 0 || attempt == 1 || i == 0)
                    break;
            }
        }
        cl->lat_ms[i] = now_ms() - t0;
        if (status < 0) {
            cl->lat_ms[i] = -1;
            note_error(cl, "%s: connection failed (%d)", path, status);
        } else if (status >= 400) {
            note_error(cl, "%s: status %d", path, status);
        }
        cl->done++;
    }
    conn_close(&c);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted values. */
static double percentile(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static int usage(void)
{
    fputs("usage: loadgen -p PORT [-H 127.0.0.1|::1] [-c CLIENTS] [-n REQUESTS] [-t TOKEN] "
          "PATH...\n"
          "  -c CLIENTS   concurrent keep-alive connections (default 200)\n"
          "  -n REQUESTS  requests per client (default 50)\n"
          "  -t TOKEN     sent as Authorization: Bearer TOKEN\n"
          "  PATH...      GET paths, cycled through (default /api/v1/health)\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0, clients = 200, requests = 50;
    Target t = {0};
    int opt;
    while ((opt = getopt(argc, argv, "p:H:c:n:t:h")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'H': host = optarg; break;
        case 'c': clients = atoi(optarg); break;
        case 'n': requests = atoi(optarg); break;
        case 't': t.token = optarg; break;
        default: return usage();
        }
    }
    if (port <= 0 || port > 65535 || clients < 1 || clients > 10000 || requests < 1)
        return usage();
    static char *default_paths[] = {"/api/v1/health"};
    t.paths = optind < argc ? argv + optind : default_paths;
    t.npaths = optind < argc ? argc - optind : 1;
    t.requests = requests;
    char host_header[128];
    struct sockaddr_in *a4 = (struct sockaddr_in *)&t.addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&t.addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127) {
            fprintf(stderr, "loadgen: %s is not a loopback address\n", host);
            return 2;
        }
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        t.addrlen = sizeof *a4;
        snprintf(host_header, sizeof host_header, "%s:%d", host, port);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1 &&
               IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        t.addrlen = sizeof *a6;
        snprintf(host_header, sizeof host_header, "[%s]:%d", host, port);
    } else {
        fprintf(stderr, "loadgen: %s is not a loopback address (127.0.0.0/8 or ::1)\n", host);
        return 2;
    }
    t.host_header = host_header;

    Client *cl = calloc((size_t)clients, sizeof *cl);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    double *lat = calloc((size_t)clients * (size_t)requests, sizeof *lat);
    if (!cl || !th || !lat) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    double t0 = now_ms();
    int started = 0;
    for (int i = 0; i < clients; i++) {
        cl[i].t = &t;
        cl[i].id = i;
        cl[i].lat_ms = lat + (size_t)i * (size_t)requests;
        if (pthread_create(&th[i], &attr, client_main, &cl[i]) != 0) {
            fprintf(stderr, "loadgen: could only start %d client threads\n", i);
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double wall = now_ms() - t0;

    long total = 0, errors = 0;
    size_t nok = 0;
    const char *first = NULL;
    for (int i = 0; i < started; i++) {
        total += cl[i].done;
        errors += cl[i].errors;
        if (!first && cl[i].first_error[0])
            first = cl[i].first_error;
        for (int k = 0; k < cl[i].done; k++)
            if (cl[i].lat_ms[k] >= 0)
                lat[nok++] = cl[i].lat_ms[k];
    }
    qsort(lat, nok, sizeof *lat, cmp_double);
    double p50 = percentile(lat, nok, 50), p90 = percentile(lat, nok, 90);
    double p99 = percentile(lat, nok, 99), max = nok ? lat[nok - 1] : 0;
    double rps = wall > 0 ? total / (wall / 1e3) : 0;
    printf("clients   %d x %d requests over %d path(s)\n", started, requests, t.npaths);
    printf("requests  %ld in %.2f s (%.0f req/s)\n", total, wall / 1e3, rps);
    printf("errors    %ld%s%s\n", errors, first ? ", first: " : "", first ? first : "");
    printf("latency   p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50, p90, p99, max);
    printf("loadgen: requests=%ld errors=%ld p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
           "rps=%.0f\n", total, errors, p50, p90, p99, max, rps);
    free(cl);
    free(th);
    free(lat);
    return errors || started < clients ? 1 : 0;
}
