/* storage.c — disk usage of the state directory and checkpoint retention (storage.h). */
#include "jobs/storage.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "jobs/run.h"
#include "train/checkpoint.h"
#include "util/log.h"

int retention_parse(const char *text, RetainKind *out)
{
    static const char *const names[] = {"all", "best", "none"};
    for (int i = 0; i < 3; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = (RetainKind)i;
            return 0;
        }
    return -1;
}

const char *retention_name(RetainKind kind)
{
    return kind == RETAIN_ALL ? "all" : kind == RETAIN_BEST ? "best" : "none";
}

/* Bytes on disk below path (a file or a folder, not following links). */
static int64_t tree_bytes(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    int64_t bytes = (int64_t)st.st_blocks * 512;
    if (!S_ISDIR(st.st_mode))
        return bytes;
    DIR *d = opendir(path);
    if (!d)
        return bytes;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child[4352];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        bytes += tree_bytes(child);
    }
    closedir(d);
    return bytes;
}

int64_t job_disk_bytes(const char *state_dir, int64_t id)
{
    char dir[4096];
    job_checkpoint_dir(state_dir, id, dir, sizeof dir);
    return tree_bytes(dir);
}

void job_fill_disk(const char *state_dir, StoreJob *j)
{
    j->disk_bytes = job_disk_bytes(state_dir, j->id);
}

int storage_usage(const char *state_dir, StorageUsage *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    DIR *d = opendir(state_dir);
    if (!d) {
        snprintf(err, errlen, "%.300s: %s", state_dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4352];
        snprintf(path, sizeof path, "%s/%s", state_dir, e->d_name);
        int64_t b = tree_bytes(path);
        if (strncmp(e->d_name, "initlab.db", 10) == 0)
            u->database += b;
        else if (strcmp(e->d_name, "jobs") == 0)
            u->checkpoints += b;
        else if (strcmp(e->d_name, "cache") == 0)
            u->caches += b;
        else if (strcmp(e->d_name, "quarantine") == 0)
            u->quarantine += b;
        else
            u->other += b;
    }
    closedir(d);
    u->total = u->database + u->checkpoints + u->caches + u->quarantine + u->other;
    struct statvfs vfs;
    if (statvfs(state_dir, &vfs) == 0) {
        u->free = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
        u->filesystem = (int64_t)vfs.f_blocks * (int64_t)vfs.f_frsize;
    }
    return 0;
}

/* The job's own keep_checkpoints, or "daemon" when its configuration has none. */
static void job_keep(const StoreJob *j, char *buf, size_t n)
{
    json_t *cfg = j->config_json ? json_loads(j->config_json, 0, NULL) : NULL;
    const char *v = json_string_value(json_object_get(cfg, "keep_checkpoints"));
    snprintf(buf, n, "%s", v ? v : "daemon");
    json_decref(cfg);
}

/* Forgets job j's checkpoint of kind, then deletes its file (its own file only); adds the
 * bytes to *freed. The record goes first, so that no download, backup or check meanwhile
 * finds a recorded checkpoint without its file. */
static void drop(Store *s, const char *state_dir, const StoreJob *j, StoreCheckpointKind kind,
                 int64_t *freed)
{
    char dir[4096], path[4352], err[1024], why[1024];
    job_checkpoint_dir(state_dir, j->id, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s.ckpt", dir, store_checkpoint_kind_name(kind));
    CheckpointIdentity want;
    CheckpointInfo info;
    struct stat st;
    if (lstat(path, &st) == 0) {
        int got = checkpoint_inspect(path, &info, err, sizeof err);
        bool own = got == -2 || (got == 0 && job_identity(j, &want, err, sizeof err) == 0 &&
                                 checkpoint_judge(path, &info, &want, j->pre_identity, why,
                                                  sizeof why) == CHECKPOINT_OWN);
        checkpoint_info_deinit(&info);
        if (!own) {
            log_warn("jobs", "retention: %s is not job %lld's own checkpoint; left in place",
                     path, (long long)j->id);
            return;
        }
        if (store_checkpoint_forget(s, j->id, (int)kind) != STORE_OK) {
            log_warn("jobs", "retention: job %lld: %s; %s left in place", (long long)j->id,
                     store_errmsg(s), path);
            return;
        }
        if (unlink(path) != 0) {
            log_warn("jobs", "retention: %s: %s", path, strerror(errno));
            return;
        }
        *freed += (int64_t)st.st_blocks * 512;
        log_info("jobs", "retention: deleted %s (%.1f MB)", path, st.st_blocks * 512 / 1e6);
    } else if (store_checkpoint_forget(s, j->id, (int)kind) != STORE_OK) {
        log_warn("jobs", "retention: job %lld: %s", (long long)j->id, store_errmsg(s));
    }
    rmdir(dir); /* only when empty */
}

int retention_apply(Store *s, const char *state_dir, const RetentionPolicy *p,
                    const StoreJob *ended, int64_t *freed)
{
    int64_t bytes = 0;
    char keep[16];
    if (ended && ended->status == STORE_JOB_DONE) {
        job_keep(ended, keep, sizeof keep);
        RetainKind kind = p->kind;
        if (strcmp(keep, "daemon") != 0)
            retention_parse(keep, &kind);
        if (kind != RETAIN_ALL)
            drop(s, state_dir, ended, STORE_CKPT_LATEST, &bytes);
        if (kind == RETAIN_NONE)
            drop(s, state_dir, ended, STORE_CKPT_BEST, &bytes);
    }
    int rc = 0;
    if (p->keep_finished > 0) {
        int64_t *ids = NULL;
        int n = 0;
        if (store_jobs_ended_with_checkpoints(s, &ids, &n) != STORE_OK) {
            log_warn("jobs", "retention: %s", store_errmsg(s));
            rc = -1;
        }
        int kept = 0;
        for (int i = 0; i < n; i++) {
            StoreJob j;
            if (store_job_get(s, ids[i], &j) != STORE_OK)
                continue;
            job_keep(&j, keep, sizeof keep);
            if (strcmp(keep, "all") != 0 && ++kept > p->keep_finished) {
                drop(s, state_dir, &j, STORE_CKPT_LATEST, &bytes);
                drop(s, state_dir, &j, STORE_CKPT_BEST, &bytes);
            }
            store_job_deinit(&j);
        }
        free(ids);
    }
    if (freed)
        *freed = bytes;
    return rc;
}
