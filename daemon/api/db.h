/* db.h — the store connection of the calling HTTP thread, and CSV replies. */
#ifndef INITLAB_API_DB_H
#define INITLAB_API_DB_H

#include <jansson.h>

#include "api/router.h"
#include "jobs/queue.h"
#include "store/store.h"

/* This thread's Store on ctx->store_path, opened on first use and closed when the thread
 * exits (the store is one connection per thread). Returns NULL after setting a 503
 * problem when the database cannot be opened. */
Store *api_store(ApiRequest *req, ApiReply *reply);
/* The daemon's job queue (ctx->jobs.handle), or NULL in a context without one. */
JobQueue *api_queue(ApiRequest *req);
/* A 500 problem carrying the store's message. Returns 0 (a reply was set). */
int api_reply_store_error(ApiReply *reply, Store *s);
/* True when the request asks for CSV (?format=csv); sets a 400 problem and returns -1
 * for another format. */
int api_wants_csv(ApiRequest *req, ApiReply *reply);
/* Replies text/csv with a header line of columns and one line per object of rows
 * (borrowed); values are printed as JSON scalars (strings quoted when needed, null empty,
 * nested values as compact JSON). */
int api_reply_csv(ApiReply *reply, const char *const *columns, const json_t *rows);

#endif
