/* db.c — per-thread store connections for handlers (fenced), and CSV rendering (db.h). */
#include "api/db.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/run.h"
#include "util/jsonout.h"

static pthread_key_t store_key;
static pthread_once_t store_key_once = PTHREAD_ONCE_INIT;

static void close_store(void *s)
{
    store_close(s);
}

static void make_key(void)
{
    pthread_key_create(&store_key, close_store);
}

/* This thread's Store, opened on first use; NULL with the reason in why. */
static Store *thread_store(ApiRequest *req, char *why, size_t n)
{
    pthread_once(&store_key_once, make_key);
    Store *s = pthread_getspecific(store_key);
    if (s)
        return s;
    char err[1024] = "no database";
    if (req->ctx->store_path)
        s = store_open(req->ctx->store_path, err, sizeof err);
    if (!s) {
        snprintf(why, n, "%s", err);
        return NULL;
    }
    if (req->ctx->state_dir && job_ids_fence(s, req->ctx->state_dir, err, sizeof err) < 0) {
        snprintf(why, n, "%s", err);
        store_close(s);
        return NULL;
    }
    pthread_setspecific(store_key, s);
    return s;
}

Store *api_store_checked(ApiRequest *req, char *why, size_t n)
{
    Store *s = thread_store(req, why, n);
    if (s && store_verify_file(s) != STORE_OK) {
        snprintf(why, n, "%s", store_errmsg(s));
        return NULL;
    }
    return s;
}

Store *api_store(ApiRequest *req, ApiReply *reply)
{
    char why[1024];
    Store *s = api_store_checked(req, why, sizeof why);
    if (!s)
        api_reply_problem(reply, 503, NULL, "the database is not available: %s", why);
    return s;
}

JobQueue *api_queue(ApiRequest *req)
{
    return req->ctx->jobs.handle;
}

int api_reply_store_error(ApiReply *reply, Store *s)
{
    if (store_errcode(s) == STORE_UNAVAILABLE)
        api_reply_problem(reply, 503, NULL, "the database is not available: %s",
                          store_errmsg(s));
    else
        api_reply_problem(reply, 500, NULL, "database error: %s", store_errmsg(s));
    return 0;
}

int api_wants_csv(ApiRequest *req, ApiReply *reply)
{
    const char *format = api_query(req, "format");
    if (!format || strcmp(format, "json") == 0)
        return 0;
    if (strcmp(format, "csv") == 0)
        return 1;
    api_reply_problem_field(reply, 400, "format", "must be json or csv, not \"%.40s\"", format);
    return -1;
}

static void csv_value(FILE *f, const json_t *v)
{
    if (!v || json_is_null(v))
        return;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strpbrk(s, ",\"\n\r") == NULL) {
            fputs(s, f);
            return;
        }
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
        return;
    }
    if (json_is_real(v)) {
        char num[NUM_TEXT_MAX];
        num_format_double(json_real_value(v), num);
        fputs(num, f);
        return;
    }
    char *text = json_text(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return;
    bool quote = !json_is_number(v) && !json_is_boolean(v);
    if (quote) {
        fputc('"', f);
        for (const char *s = text; *s; s++) {
            if (*s == '"')
                fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(text, f);
    }
    free(text);
}

int api_reply_csv(ApiReply *reply, const char *const *columns, const json_t *rows)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -1;
    for (int c = 0; columns[c]; c++)
        fprintf(f, "%s%s", c ? "," : "", columns[c]);
    fputs("\r\n", f);
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row) {
        for (int c = 0; columns[c]; c++) {
            if (c)
                fputc(',', f);
            csv_value(f, json_object_get(row, columns[c]));
        }
        fputs("\r\n", f);
    }
    fclose(f);
    return api_reply_take(reply, 200, "text/csv; charset=utf-8", buf, len);
}
