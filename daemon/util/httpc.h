/* httpc.h — a small HTTP(S) client for `initlab worker`: JSON requests, file uploads and
 * downloads against one base URL, with a bearer token. The only file that includes
 * libcurl's header.
 *
 * An HttpClient is one libcurl easy handle: it keeps its connection alive between
 * requests and belongs to one thread at a time (make one per thread). TLS peers are
 * verified (certificate and host name) against the system's CAs, or ca_file.
 * httpc_global_init must run once before any thread creates a client. */
#ifndef INITLAB_UTIL_HTTPC_H
#define INITLAB_UTIL_HTTPC_H

#include <stddef.h>
#include <stdint.h>

typedef struct HttpClient HttpClient;

typedef struct {
    const char *base_url;   /* "https://head:8470": paths are appended to it */
    const char *token;      /* Authorization: Bearer TOKEN; NULL: none */
    const char *ca_file;    /* PEM CA bundle to verify the server; NULL: the system's */
    long timeout_s;         /* a request that takes longer fails; 0: 300 */
    long connect_timeout_s; /* 0: 10 */
} HttpClientConfig;

typedef struct {
    int status;             /* HTTP status */
    char *body;             /* heap, NUL-terminated (empty when downloaded to a file) */
    size_t len;
    char why[256];          /* the value of an Initlab-Why header, "" when none */
} HttpResponse;

/* Once per process, before threads: libcurl's global set-up. Returns 0 or -1. */
int httpc_global_init(void);

/* A client for cfg (its strings are copied). NULL with a message when out of memory. */
HttpClient *httpc_create(const HttpClientConfig *cfg, char *err, size_t errlen);
void httpc_free(HttpClient *c);   /* accepts NULL */

/* Sends method on base_url + path with the extra header lines in headers (NULL-terminated
 * "Name: value" strings, may be NULL) and a body: body_len bytes of body with
 * content_type, or the file upload_path (application/octet-stream), or none. The reply's
 * body goes to resp->body, or to the file download_path (created or truncated; for a 200
 * only). Returns 0 when a reply came (any status: see resp->status), -1 with a message in
 * err when none did (connection refused, TLS verification failed, timeout). Release resp
 * with httpc_response_deinit. */
int httpc_request(HttpClient *c, const char *method, const char *path,
                  const char *const *headers, const char *content_type, const char *body,
                  size_t body_len, const char *upload_path, const char *download_path,
                  HttpResponse *resp, char *err, size_t errlen);
void httpc_response_deinit(HttpResponse *resp);  /* accepts a zeroed one */

#endif
