/* routes_worker.c — /api/v1/worker/: the protocol of remote `initlab worker` processes
 * (lease, heartbeat, reports, checkpoint upload and download), and /api/v1/workers, the
 * workers connected now. The logic lives in jobs/lease.c; this file is HTTP only.
 *
 * Every request of an attempt names it in the header "Initlab-Lease: <lease token>" (the
 * token the lease reply gave). Answers: 200/204 when stored; 409 when the attempt is no
 * longer the job's current one (superseded, its lease ended, the job was cancelled): the
 * worker must stop; 400 for a malformed report; 503 when the database is unavailable.
 * With --worker-token-file, these routes take the worker token (api/auth.h). */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "api/db.h"
#include "api/router.h"
#include "jobs/lease.h"
#include "jobs/queue.h"
#include "jobs/wire.h"
#include "store/store.h"

#define LEASE_HEADER "Initlab-Lease"

/* The lease book, or NULL after a 503 reply. */
static LeaseBook *book(ApiRequest *req, ApiReply *reply)
{
    JobQueue *q = api_queue(req);
    if (!q) {
        api_reply_problem(reply, 503, NULL, "the job queue is not running");
        return NULL;
    }
    return jobs_lease(q);
}

/* Replies to a LeaseResult other than LEASE_OK. Returns 0. */
static int reply_result(ApiReply *reply, LeaseResult r, const char *err)
{
    switch (r) {
    case LEASE_GONE:
        return api_reply_problem(reply, 409, "Lease gone", "%s", err);
    case LEASE_INVALID:
        return api_reply_problem(reply, 400, NULL, "%s", err);
    case LEASE_NONE:
        return api_reply_problem(reply, 404, NULL, "%s", err);
    case LEASE_UNAVAILABLE:
        return api_reply_problem(reply, 503, NULL, "%s", err);
    default:
        return api_reply_problem(reply, 500, NULL, "%s", err);
    }
}

/* The lease book, the store, the job id and the lease token of an attempt's request; -1
 * after a reply. */
static int attempt_of(ApiRequest *req, ApiReply *reply, LeaseBook **b, Store **s, int64_t *id,
                      const char **lease)
{
    if (!(*b = book(req, reply)) || !(*s = api_store(req, reply)))
        return -1;
    const char *text = api_param(req, "id");
    char *end;
    long long v = text ? strtoll(text, &end, 10) : 0;
    if (!text || *end || v <= 0) {
        api_reply_problem_field(reply, 404, "id", "\"%.40s\" is not a job id", text ? text : "");
        return -1;
    }
    *id = v;
    *lease = api_header(req, LEASE_HEADER);
    if (!*lease || strlen(*lease) != STORE_UID_LEN) {
        api_reply_problem_field(reply, 400, LEASE_HEADER, "required: the lease token of the "
                                "attempt (from POST /api/v1/worker/lease)");
        return -1;
    }
    return 0;
}

/* POST /api/v1/worker/lease */
static int post_lease(ApiRequest *req, ApiReply *reply)
{
    LeaseBook *b = book(req, reply);
    Store *s = b ? api_store(req, reply) : NULL;
    if (!s)
        return 0;
    json_t *body = api_request_json(req, reply, true);
    if (!body)
        return 0;
    static const char *const keys[] = {"worker", "host", "threads", "job_id", "slurm_job_id",
                                       NULL};
    LeaseRequest r = {0};
    long long threads = 0, job_id = 0;
    if (api_json_check_keys(body, keys, reply) < 0 ||
        api_json_string(body, "worker", true, reply, &r.worker) < 0 ||
        api_json_string(body, "host", true, reply, &r.host) < 0 ||
        api_json_int(body, "threads", false, 1, 4096, reply, &threads) < 0 ||
        api_json_int(body, "job_id", false, 1, INT64_MAX, reply, &job_id) < 0 ||
        api_json_string(body, "slurm_job_id", false, reply, &r.slurm_job_id) < 0) {
        json_decref(body);
        return 0;
    }
    r.threads = (int)threads;
    r.job_id = job_id;
    json_t *out;
    char err[1024];
    LeaseResult res = lease_grant(b, s, &r, &out, err, sizeof err);
    lease_seen(b, r.worker, r.host, res == LEASE_OK ? -1 : 0, NULL, r.threads);
    json_decref(body);
    if (res == LEASE_OK)
        return api_reply_json(reply, 200, out);
    if (res == LEASE_NONE) {
        api_reply_header(reply, "Initlab-Why", "no job to lease");
        return api_reply_empty(reply, 204);
    }
    return reply_result(reply, res == LEASE_GONE && job_id ? LEASE_GONE : res, err);
}

/* POST /api/v1/worker/jobs/{id}/heartbeat */
static int post_heartbeat(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    const char *lease;
    LeaseBook *b;
    Store *s;
    if (attempt_of(req, reply, &b, &s, &id, &lease) < 0)
        return 0;
    json_t *body = api_request_json(req, reply, true);
    if (!body)
        return 0;
    const char *worker = json_string_value(json_object_get(body, "worker"));
    bool stop;
    char err[1024];
    LeaseResult res = lease_heartbeat(b, s, id, lease, worker, body, &stop, err, sizeof err);
    json_decref(body);
    if (res != LEASE_OK)
        return reply_result(reply, res, err);
    return api_reply_json(reply, 200, json_pack("{s:b}", "stop", stop));
}

/* POST /api/v1/worker/jobs/{id}/reports/{kind} */
static int post_report(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    const char *lease;
    LeaseBook *b;
    Store *s;
    if (attempt_of(req, reply, &b, &s, &id, &lease) < 0)
        return 0;
    json_t *body = api_request_json(req, reply, true);
    if (!body)
        return 0;
    char err[1024];
    LeaseResult res = lease_report(b, s, id, lease, api_param(req, "kind"), body, err,
                                   sizeof err);
    json_decref(body);
    if (res != LEASE_OK)
        return reply_result(reply, res, err);
    return api_reply_empty(reply, 204);
}

/* PUT /api/v1/worker/jobs/{id}/checkpoints/{kind}?val_acc=V — the file as
 * application/octet-stream. */
static int put_checkpoint(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    const char *lease;
    LeaseBook *b;
    Store *s;
    if (attempt_of(req, reply, &b, &s, &id, &lease) < 0)
        return 0;
    if (!req->upload_path)
        return api_reply_problem_field(reply, 400, "body", "the checkpoint file is missing");
    double val_acc = NAN;
    const char *v = api_query(req, "val_acc");
    if (v) {
        json_t *num = json_loads(v, JSON_DECODE_ANY, NULL);
        if (!num)
            num = json_string(v);
        int bad = wire_number_get(num, &val_acc);
        json_decref(num);
        if (bad < 0)
            return api_reply_problem_field(reply, 400, "val_acc", "must be a number, nan, inf "
                                           "or -inf");
    }
    char err[1024];
    LeaseResult res = lease_checkpoint_put(b, s, id, lease, api_param(req, "kind"),
                                           req->upload_path, val_acc, err, sizeof err);
    if (res != LEASE_OK)
        return reply_result(reply, res, err);
    req->upload_path = NULL; /* moved into place */
    return api_reply_empty(reply, 204);
}

/* GET /api/v1/worker/jobs/{id}/checkpoints/{kind} */
static int get_checkpoint(ApiRequest *req, ApiReply *reply)
{
    int64_t id;
    const char *lease;
    LeaseBook *b;
    Store *s;
    if (attempt_of(req, reply, &b, &s, &id, &lease) < 0)
        return 0;
    char path[STORE_PATH_MAX], err[1024];
    LeaseResult res = lease_checkpoint_path(b, s, id, lease, api_param(req, "kind"), path,
                                            sizeof path, err, sizeof err);
    if (res != LEASE_OK)
        return reply_result(reply, res, err);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        return api_reply_problem(reply, 404, NULL, "job %lld: its checkpoint file is gone",
                                 (long long)id);
    }
    return api_reply_file(reply, 200, "application/octet-stream", fd, (uint64_t)st.st_size);
}

/* GET /api/v1/workers: the remote workers heard from lately. */
static int get_workers(ApiRequest *req, ApiReply *reply)
{
    LeaseBook *b = book(req, reply);
    if (!b)
        return 0;
    int n;
    json_t *list = lease_workers(b, &n);
    JobQueue *q = api_queue(req);
    return api_reply_json(reply, 200,
                          json_pack("{s:o, s:i, s:s}", "workers", list ? list : json_array(),
                                    "count", n, "executor",
                                    jobs_slurm(q) ? "slurm" : "local"));
}

int routes_worker_register(Router *r)
{
    if (router_add(r, "POST", "/api/v1/worker/lease", post_lease, NULL) < 0 ||
        router_add(r, "POST", "/api/v1/worker/jobs/{id}/heartbeat", post_heartbeat, NULL) < 0 ||
        router_add(r, "POST", "/api/v1/worker/jobs/{id}/reports/{kind}", post_report, NULL) <
            0 ||
        router_add_upload(r, "PUT", "/api/v1/worker/jobs/{id}/checkpoints/{kind}",
                          put_checkpoint, NULL) < 0 ||
        router_add(r, "GET", "/api/v1/worker/jobs/{id}/checkpoints/{kind}", get_checkpoint,
                   NULL) < 0 ||
        router_add(r, "GET", "/api/v1/workers", get_workers, NULL) < 0)
        return -1;
    return 0;
}
