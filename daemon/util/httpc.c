/* httpc.c — libcurl behind httpc.h. */
#include "util/httpc.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct HttpClient {
    CURL *curl;
    char *base_url, *auth_header, *ca_file;
    long timeout_s, connect_timeout_s;
};

int httpc_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

HttpClient *httpc_create(const HttpClientConfig *cfg, char *err, size_t errlen)
{
    HttpClient *c = calloc(1, sizeof *c);
    if (!c)
        goto oom;
    c->curl = curl_easy_init();
    c->base_url = strdup(cfg->base_url);
    if (cfg->token && asprintf(&c->auth_header, "Authorization: Bearer %s", cfg->token) < 0)
        c->auth_header = NULL;
    c->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
    if (!c->curl || !c->base_url || (cfg->token && !c->auth_header) ||
        (cfg->ca_file && !c->ca_file))
        goto oom;
    /* Strip a trailing slash: paths start with one. */
    size_t n = strlen(c->base_url);
    while (n && c->base_url[n - 1] == '/')
        c->base_url[--n] = '\0';
    c->timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 300;
    c->connect_timeout_s = cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 10;
    return c;
oom:
    snprintf(err, errlen, "out of memory");
    httpc_free(c);
    return NULL;
}

void httpc_free(HttpClient *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    if (c->auth_header) {
        explicit_bzero(c->auth_header, strlen(c->auth_header));
        free(c->auth_header);
    }
    free(c->base_url);
    free(c->ca_file);
    free(c);
}

void httpc_response_deinit(HttpResponse *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}

typedef struct {
    HttpResponse *resp;
    FILE *file;            /* download target, opened at the first byte of a 200 */
    const char *file_path;
    bool file_failed;
    size_t cap;
    bool oom;
} Sink;

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    Sink *k = user;
    size_t n = size * nmemb;
    if (k->file_path && k->resp->status == 200) {
        if (!k->file && !k->file_failed && !(k->file = fopen(k->file_path, "wbe")))
            k->file_failed = true;
        if (k->file_failed || fwrite(data, 1, n, k->file) != n) {
            k->file_failed = true;
            return 0;
        }
        return n;
    }
    if (k->resp->len + n + 1 > k->cap) {
        size_t cap = k->cap ? k->cap : 1024;
        while (cap < k->resp->len + n + 1)
            cap *= 2;
        char *b = realloc(k->resp->body, cap);
        if (!b) {
            k->oom = true;
            return 0;
        }
        k->resp->body = b;
        k->cap = cap;
    }
    memcpy(k->resp->body + k->resp->len, data, n);
    k->resp->len += n;
    k->resp->body[k->resp->len] = '\0';
    return n;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *user)
{
    Sink *k = user;
    size_t n = size * nmemb;
    if (n > 9 && strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = memchr(line, ' ', n);
        if (sp)
            k->resp->status = atoi(sp + 1);
    } else if (n > 12 && strncasecmp(line, "Initlab-Why:", 12) == 0) {
        size_t v = 12;
        while (v < n && line[v] == ' ')
            v++;
        size_t len = n - v;
        while (len && (line[v + len - 1] == '\r' || line[v + len - 1] == '\n'))
            len--;
        snprintf(k->resp->why, sizeof k->resp->why, "%.*s", (int)len, line + v);
    }
    return n;
}

int httpc_request(HttpClient *c, const char *method, const char *path,
                  const char *const *headers, const char *content_type, const char *body,
                  size_t body_len, const char *upload_path, const char *download_path,
                  HttpResponse *resp, char *err, size_t errlen)
{
    memset(resp, 0, sizeof *resp);
    CURL *h = c->curl;
    curl_easy_reset(h);
    char *url = NULL;
    if (asprintf(&url, "%s%s", c->base_url, path) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct curl_slist *list = NULL;
    char ct[128];
    FILE *up = NULL;
    Sink sink = {.resp = resp, .file_path = download_path};
    int rc = -1;
    if (c->auth_header)
        list = curl_slist_append(list, c->auth_header);
    for (int i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    list = curl_slist_append(list, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &sink);
    if (upload_path) {
        struct stat st;
        if (!(up = fopen(upload_path, "rbe")) || fstat(fileno(up), &st) < 0) {
            snprintf(err, errlen, "%s: %s", upload_path, strerror(errno));
            goto out;
        }
        list = curl_slist_append(list, "Content-Type: application/octet-stream");
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READDATA, up);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
    } else if (body) {
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type ? content_type
                                                                 : "application/json");
        list = curl_slist_append(list, ct);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s %s: %s", method, url,
                 sink.file_failed ? "cannot write the download" : curl_easy_strerror(cc));
        goto out;
    }
    if (sink.oom) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    resp->status = (int)status;
    if (!resp->body && !(resp->body = calloc(1, 1))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    if (sink.file && fclose(sink.file) != 0 && rc == 0) {
        snprintf(err, errlen, "%s: %s", download_path, strerror(errno));
        rc = -1;
    }
    if (up)
        fclose(up);
    curl_slist_free_all(list);
    free(url);
    if (rc < 0)
        httpc_response_deinit(resp);
    return rc;
}
