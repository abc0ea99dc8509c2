/* records.h — what the job, grid and lab routes share: one job's or grid's API form with
 * its live phase and disk usage, their events, the validation of a submitted job
 * configuration, and of the name, tags and note a person gives jobs and grids. */
#ifndef INITLAB_API_RECORDS_H
#define INITLAB_API_RECORDS_H

#include <jansson.h>
#include <stdbool.h>

#include "api/router.h"
#include "store/store.h"
#include "train/config.h"

/* Job j's API form (jobs/report.h) with its live phase and disk_bytes (new reference, or
 * NULL when out of memory). Fills j->disk_bytes. */
json_t *api_job_json(ApiRequest *req, StoreJob *j);
/* Publishes job id's form as event ("job", "progress") on the event stream; a job that
 * cannot be read is skipped. */
void api_publish_job(ApiRequest *req, Store *s, int64_t id, const char *event);
/* Publishes grid id's form as a "grid" event. */
void api_publish_grid(ApiRequest *req, Store *s, int64_t id);
/* Publishes event with data {"id": id} (deletions: "job_deleted", "grid_deleted"). */
void api_publish_id(ApiRequest *req, const char *event, int64_t id);

/* The columns of a job list's CSV form (GET /jobs, GET /grids/{id}). */
extern const char *const api_job_csv_columns[];

/* Validates one job configuration (train/config.h) against the configuration rules and
 * the store (the dataset must be registered and not failed). A configuration without
 * "threads" gets the daemon's --threads-per-job, so that it records what the job runs
 * with. On success fills *cfg and returns 0; otherwise sets a 400 problem naming the field
 * and returns -1. */
int api_job_config(ApiRequest *req, Store *s, const json_t *obj, JobConfig *cfg,
                   ApiReply *reply);

/* A name, tags and note as a request gave them: strings owned by the caller's json (name,
 * note: NULL when absent, "" to clear; tags: new JSON text (free()) or NULL when absent). */
typedef struct {
    const char *name, *note;
    char *tags_json;
} ApiMeta;

/* Reads and removes "name", "tags" and "note" from obj (a request body): name at most 200
 * characters, note at most 10000, tags a list of at most 32 distinct tags of 1 to 64
 * letters, digits, '-', '_', '.' or ':'; null clears name and note when allow_null.
 * Returns 0, or -1 after setting a 400 problem naming the member. The strings stay valid
 * while *held (a new reference to what was removed, to json_decref) lives. */
int api_meta_take(json_t *obj, bool allow_null, ApiMeta *out, json_t **held, ApiReply *reply);
void api_meta_deinit(ApiMeta *m);

#endif
