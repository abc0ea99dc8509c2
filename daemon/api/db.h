/* db.h — the store connection of the calling HTTP thread, and CSV replies. */
#ifndef INITLAB_API_DB_H
#define INITLAB_API_DB_H

#include <jansson.h>

#include "api/router.h"
#include "jobs/queue.h"
#include "store/store.h"

/* This thread's Store on ctx->store_path, opened on first use (which also keeps new job
 * ids above the job folders of the state directory, jobs/run.h job_ids_fence) and closed
 * when the thread exits (the store is one connection per thread). Every call first checks
 * that the database file is still the one the daemon opened (store.h, Fencing: one
 * stat(2)), so that no request reads from or writes to a file that was deleted or
 * replaced. Returns NULL after setting a 503 problem naming the reason when the database
 * cannot be opened or its file was deleted or replaced. */
Store *api_store(ApiRequest *req, ApiReply *reply);
/* As api_store, without a reply: the Store, or NULL with the reason in why (n bytes). For
 * the health check. */
Store *api_store_checked(ApiRequest *req, char *why, size_t n);
/* The daemon's job queue (ctx->jobs.handle), or NULL in a context without one. */
JobQueue *api_queue(ApiRequest *req);
/* A problem carrying the store's message: 503 when its database file was deleted or
 * replaced (STORE_UNAVAILABLE), 500 otherwise. Returns 0 (a reply was set). */
int api_reply_store_error(ApiReply *reply, Store *s);
/* True when the request asks for CSV (?format=csv); sets a 400 problem and returns -1
 * for another format. */
int api_wants_csv(ApiRequest *req, ApiReply *reply);
/* Replies text/csv with a header line of columns and one line per object of rows
 * (borrowed); values are printed as JSON scalars (strings quoted when needed, null empty,
 * nested values as compact JSON). */
int api_reply_csv(ApiReply *reply, const char *const *columns, const json_t *rows);

#endif
