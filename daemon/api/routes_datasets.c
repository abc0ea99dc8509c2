/* routes_datasets.c — /api/v1/datasets: register (background scan), list, inspect. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api.h"
#include "api/db.h"
#include "api/events.h"
#include "api/records.h"
#include "api/router.h"
#include "data/cache.h"
#include "data/names.h"
#include "data/split.h"
#include "jobs/report.h"
#include "util/jsonout.h"
#include "util/log.h"

/* Publishes dataset d's form as a "dataset" event. */
static void publish_dataset(ApiRequest *req, const StoreDataset *d)
{
    json_t *o = report_dataset(d);
    char *text = o ? json_text(o, JSON_COMPACT) : NULL;
    if (text && req->ctx->events)
        events_publish(req->ctx->events, "dataset", text);
    free(text);
    json_decref(o);
}

/* Is real (a resolved path) root itself or below it? */
static bool under_root(const char *real, const char *root)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/')
        return true;
    return strncmp(real, root, n) == 0 && (real[n] == '\0' || real[n] == '/');
}

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = name; *p; p++)
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
            !(*p >= '0' && *p <= '9') && *p != '-' && *p != '_' && *p != '.')
            return false;
    return name[0] != '.';
}

/* A new JSON string of a name read from the store: stored names are text already
 * (jobs/scan.c); a row written before names were escaped may hold bytes jansson refuses,
 * and gets their text form rather than vanishing from the reply. */
static json_t *stored_name(const char *text)
{
    json_t *j = json_string(text);
    if (j)
        return j;
    char *t = data_name_text(text);
    j = t ? json_string(t) : NULL;
    free(t);
    return j;
}

/* split: [train, val, test] or "train,val,test" (exactly three numbers); absent means
 * 0.6, 0.2, 0.2. */
static int parse_split(const json_t *v, double f[3], ApiReply *reply)
{
    f[0] = 0.6, f[1] = 0.2, f[2] = 0.2;
    if (!v)
        return 0;
    if (json_is_string(v)) {
        DataSplitFractions sf;
        char msg[256];
        if (data_split_parse(json_string_value(v), &sf, msg, sizeof msg) != 0)
            goto bad;
        f[0] = sf.train, f[1] = sf.val, f[2] = sf.test;
    } else if (json_is_array(v) && json_array_size(v) == 3) {
        for (int i = 0; i < 3; i++) {
            if (!json_is_number(json_array_get(v, (size_t)i)))
                goto bad;
            f[i] = json_number_value(json_array_get(v, (size_t)i));
        }
    } else {
        goto bad;
    }
    for (int i = 0; i < 3; i++)
        if (!(f[i] >= 0 && f[i] <= 1))
            goto bad;
    if (f[0] <= 0 || f[1] <= 0 || (f[0] + f[1] + f[2] < 1 - 1e-6) ||
        (f[0] + f[1] + f[2] > 1 + 1e-6))
        goto bad;
    return 0;
bad:
    api_reply_problem_field(reply, 400, "split", "must be three fractions train, val, test "
                            "in [0, 1] summing to 1, with train and val above 0, e.g. "
                            "[0.6, 0.2, 0.2]");
    return -1;
}

static int post_dataset(ApiRequest *req, ApiReply *reply)
{
    static const char *const keys[] = {"name", "path", "split", "seed", NULL};
    Store *s = api_store(req, reply);
    json_t *obj = s ? api_request_json(req, reply, true) : NULL;
    if (!obj)
        return 0;
    const char *name, *path;
    long long seed = 0;
    double f[3];
    int rc = 0;
    if (api_json_check_keys(obj, keys, reply) < 0 ||
        api_json_string(obj, "name", true, reply, &name) < 0 ||
        api_json_string(obj, "path", true, reply, &path) < 0 ||
        api_json_int(obj, "seed", false, 0, 1LL << 53, reply, &seed) < 0 ||
        parse_split(json_object_get(obj, "split"), f, reply) < 0)
        goto out;
    if (!valid_name(name)) {
        api_reply_problem_field(reply, 400, "name", "must be 1 to 64 letters, digits, '-', "
                                "'_' or '.', not starting with '.'");
        goto out;
    }
    const char *root = req->ctx->data_root;
    if (!root) {
        api_reply_problem_field(reply, 400, "path", "the daemon was started without "
                                "--data-root, so no dataset path is allowed");
        goto out;
    }
    /* a relative path is relative to the data root, not to the daemon's directory */
    char given[PATH_MAX], real[PATH_MAX];
    if (snprintf(given, sizeof given, "%s%s%s", path[0] == '/' ? "" : root,
                 path[0] == '/' || root[strlen(root) - 1] == '/' ? "" : "/",
                 path) >= (int)sizeof given) {
        api_reply_problem_field(reply, 400, "path", "is too long");
        goto out;
    }
    struct stat st;
    if (!realpath(given, real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
        api_reply_problem_field(reply, 400, "path", "\"%.200s\" is not a directory", given);
        goto out;
    }
    if (!under_root(real, root)) {
        api_reply_problem_field(reply, 400, "path", "\"%.200s\" is outside the data root "
                                "%.200s", given, root);
        goto out;
    }
    if (!data_utf8_valid(real, strlen(real))) {
        char shown[512];
        api_reply_problem_field(reply, 400, "path", "\"%.200s\" resolves to %.300s, which is "
                                "not UTF-8; rename the folder", given,
                                data_name_text_buf(real, shown, sizeof shown));
        goto out;
    }
    StoreDatasetNew nd = {.name = name, .path = real, .train_frac = f[0], .val_frac = f[1],
                          .test_frac = f[2], .seed = seed};
    int64_t id;
    int src = store_dataset_insert(s, &nd, &id);
    if (src == STORE_CONFLICT) {
        api_reply_problem_field(reply, 409, "name", "a dataset named \"%s\" exists", name);
        goto out;
    }
    if (src != STORE_OK) {
        api_reply_store_error(reply, s);
        goto out;
    }
    if (api_queue(req) && jobs_scan(api_queue(req), id) < 0) {
        rc = -1;
        goto out;
    }
    StoreDataset d;
    if (store_dataset_get_by_id(s, id, &d) != STORE_OK) {
        api_reply_store_error(reply, s);
        goto out;
    }
    char location[200];
    snprintf(location, sizeof location, "/api/v1/datasets/%s", name);
    publish_dataset(req, &d);
    api_reply_header(reply, "Location", location);
    api_reply_json(reply, 202, report_dataset(&d));
    store_dataset_deinit(&d);
out:
    json_decref(obj);
    return rc;
}

static int list_datasets(ApiRequest *req, ApiReply *reply)
{
    Store *s = api_store(req, reply);
    if (!s)
        return 0;
    int csv = api_wants_csv(req, reply);
    if (csv < 0)
        return 0;
    StoreDataset *rows = NULL;
    int n = 0;
    if (store_dataset_list(s, &rows, &n) != STORE_OK)
        return api_reply_store_error(reply, s);
    json_t *list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(list, report_dataset(&rows[i]));
    store_datasets_free(rows, n);
    if (csv) {
        static const char *const columns[] = {"id", "name", "status", "path", "n_classes",
                                              "n_files", "train", "val", "test", "n_skipped",
                                              "created_at", "error", NULL};
        size_t i;
        json_t *d;
        json_array_foreach(list, i, d) {
            json_object_set_new(d, "n_classes",
                                json_integer((json_int_t)json_array_size(
                                    json_object_get(d, "classes"))));
            const char *splits[] = {"train", "val", "test"};
            for (int k = 0; k < 3; k++)
                json_object_set(d, splits[k],
                                json_object_get(json_object_get(d, "n_split"), splits[k]));
        }
        int rc = api_reply_csv(reply, columns, list);
        json_decref(list);
        return rc;
    }
    return api_reply_json(reply, 200, json_pack("{s:o}", "datasets", list));
}

/* The dataset the path's {name} names, into *d (store_dataset_deinit it), with the
 * request's store: 0, or -1 after replying (404 when there is none). */
static int path_dataset(ApiRequest *req, ApiReply *reply, Store **s, StoreDataset *d)
{
    if (!(*s = api_store(req, reply)))
        return -1;
    const char *name = api_param(req, "name");
    int rc = store_dataset_get(*s, name, d);
    if (rc == STORE_OK)
        return 0;
    if (rc == STORE_NOT_FOUND)
        api_reply_problem(reply, 404, NULL, "no dataset named \"%.100s\"", name);
    else
        api_reply_store_error(reply, *s);
    return -1;
}

/* DELETE /datasets/{name}: the registration, its file list and its image caches; refused
 * while a queued or running job uses it (409). Jobs that ended keep their records. */
static int delete_dataset(ApiRequest *req, ApiReply *reply)
{
    Store *s;
    StoreDataset d;
    if (path_dataset(req, reply, &s, &d) < 0)
        return 0;
    const char *name = d.name;
    if (d.status == STORE_DATASET_SCANNING) {
        store_dataset_deinit(&d);
        return api_reply_problem(reply, 409, NULL, "dataset \"%.100s\" is being scanned; "
                                 "delete it when the scan has ended", name);
    }
    int rc = store_dataset_delete(s, name);
    if (rc == STORE_OK) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/cache", req->ctx->state_dir);
        int n = data_cache_remove_dataset(dir, d.path);
        if (n > 0)
            log_info("api", "dataset %s deleted with %d image cache file(s)", name, n);
        char text[64];
        snprintf(text, sizeof text, "{\"id\":%lld}", (long long)d.id);
        if (req->ctx->events)
            events_publish(req->ctx->events, "dataset_deleted", text);
    }
    store_dataset_deinit(&d);
    if (rc == STORE_CONFLICT)
        return api_reply_problem(reply, 409, NULL, "%s", store_errmsg(s));
    if (rc != STORE_OK)
        return api_reply_store_error(reply, s);
    return api_reply_empty(reply, 204);
}

/* POST /datasets/{name}/rescan: scans the folder again (files added, removed or changed
 * since), in the background; jobs queued on it wait for the scan, running ones go on with
 * the files they started with. */
static int rescan_dataset(ApiRequest *req, ApiReply *reply)
{
    Store *s;
    StoreDataset d;
    if (path_dataset(req, reply, &s, &d) < 0)
        return 0;
    const char *name = d.name;
    int64_t id = d.id;
    bool scanning = d.status == STORE_DATASET_SCANNING;
    store_dataset_deinit(&d);
    if (scanning)
        return api_reply_problem(reply, 409, NULL, "dataset \"%.100s\" is being scanned "
                                 "already", name);
    if (store_dataset_set_status(s, id, STORE_DATASET_SCANNING, NULL) != STORE_OK)
        return api_reply_store_error(reply, s);
    if (api_queue(req) && jobs_scan(api_queue(req), id) < 0)
        return -1;
    if (store_dataset_get_by_id(s, id, &d) != STORE_OK)
        return api_reply_store_error(reply, s);
    publish_dataset(req, &d);
    int rc = api_reply_json(reply, 202, report_dataset(&d));
    store_dataset_deinit(&d);
    return rc;
}

static int get_dataset(ApiRequest *req, ApiReply *reply)
{
    Store *s;
    StoreDataset d;
    if (path_dataset(req, reply, &s, &d) < 0)
        return 0;
    json_t *out = report_dataset(&d);
    json_t *classes = json_object_get(out, "classes");
    int64_t *counts = NULL;
    int n_classes = 0;
    json_t *per_class = json_array();
    if (store_dataset_class_counts(s, d.id, &counts, &n_classes) == STORE_OK)
        for (int c = 0; c < n_classes; c++) {
            const char *cname = json_string_value(json_array_get(classes, (size_t)c));
            json_array_append_new(per_class, json_pack(
                "{s:s, s:i, s:I, s:I, s:I}", "class", cname ? cname : "", "label", c,
                "train", (json_int_t)counts[c * STORE_SPLIT_COUNT + STORE_SPLIT_TRAIN],
                "val", (json_int_t)counts[c * STORE_SPLIT_COUNT + STORE_SPLIT_VAL],
                "test", (json_int_t)counts[c * STORE_SPLIT_COUNT + STORE_SPLIT_TEST]));
        }
    free(counts);
    json_object_set_new(out, "class_counts", per_class);
    StoreDatasetSkipped *skipped = NULL;
    int n_skipped = 0;
    json_t *sk = json_array();
    if (store_dataset_skipped(s, d.id, &skipped, &n_skipped) == STORE_OK)
        for (int i = 0; i < n_skipped; i++)
            json_array_append_new(sk, json_pack("{s:o, s:o}", "path",
                                                stored_name(skipped[i].relpath), "reason",
                                                stored_name(skipped[i].reason)));
    store_dataset_skipped_free(skipped, n_skipped);
    json_object_set_new(out, "skipped", sk);
    store_dataset_deinit(&d);
    int csv = api_wants_csv(req, reply);
    if (csv < 0) {
        json_decref(out);
        return 0;
    }
    if (csv) {
        static const char *const columns[] = {"label", "class", "train", "val", "test", NULL};
        int rc = api_reply_csv(reply, columns, json_object_get(out, "class_counts"));
        json_decref(out);
        return rc;
    }
    return api_reply_json(reply, 200, out);
}

int routes_datasets_register(Router *r)
{
    return router_add(r, "POST", "/api/v1/datasets", post_dataset, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/datasets", list_datasets, NULL) < 0 ||
                   router_add(r, "GET", "/api/v1/datasets/{name}", get_dataset, NULL) < 0 ||
                   router_add(r, "DELETE", "/api/v1/datasets/{name}", delete_dataset,
                              NULL) < 0 ||
                   router_add(r, "POST", "/api/v1/datasets/{name}/rescan", rescan_dataset,
                              NULL) < 0
               ? -1
               : 0;
}
