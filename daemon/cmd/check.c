/* check.c — `initlab check`: the integrity of a state directory's database and of every
 * checkpoint file in it (orphan, foreign, damaged), with an option to set them aside. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "jobs/run.h"
#include "store/store.h"
#include "train/checkpoint.h"
#include "util/jsonout.h"

static const char usage_text[] =
    "usage: initlab check [--state-dir DIR] [--quarantine] [--json]\n\n"
    "Checks a state directory (the daemon's, or a copy made by `initlab backup`): the\n"
    "database's integrity (SQLite's integrity_check and foreign_key_check) and every file\n"
    "of its job folders, jobs/ID/. Each checkpoint is read whole and compared with the job\n"
    "the database holds under ID:\n"
    "  orphan      no job has that id in this database\n"
    "  foreign     it belongs to another job (another uid), or has no identity while the\n"
    "              job was created after checkpoints had one\n"
    "  mismatch    the job's own, but for another configuration than the job's\n"
    "  damaged     its CRC fails or it is truncated\n"
    "  temporary   a half-written file (*.tmp.PID) whose writer is gone\n"
    "  missing     the database records a checkpoint whose file is not there\n"
    "  unexpected  a file or folder that initlab did not write there\n"
    "None of them is ever resumed from by a job: a job sets aside what is not its own and\n"
    "fails on a damaged file. Safe while the daemon runs.\n\n"
    "  --state-dir DIR  the state directory (default ./state): DIR/initlab.db, DIR/jobs/\n"
    "  --quarantine     move orphan, foreign, mismatched and damaged checkpoints to\n"
    "                   DIR/quarantine/ (with a .txt file saying why), delete stale\n"
    "                   temporary files and forget the records of missing checkpoints\n"
    "                   (a job without its checkpoint trains from scratch)\n"
    "  --json           one JSON object on stdout\n\n"
    "Exit status: 0 when everything is well, 1 when something was found (also when\n"
    "--quarantine set it aside) or the database cannot be read, 2 on a usage error.\n";

typedef struct {
    Store *store;
    const char *state_dir;
    char quarantine_dir[4096];
    bool quarantine, json;
    json_t *findings;         /* array of finding objects */
    int problems, checkpoints, ok, folders;
} Check;

/* Records one finding: kind, the file, the job id (0: none), what it is and, when the
 * file was acted on, what was done. Prints it unless the output is JSON. */
static void finding(Check *c, const char *kind, const char *path, long long job_id,
                    const char *detail, const char *action)
{
    c->problems++;
    json_t *o = json_pack("{s:s, s:s, s:s}", "kind", kind, "path", path, "detail", detail);
    if (o && job_id)
        json_object_set_new(o, "job_id", json_integer(job_id));
    if (o && action)
        json_object_set_new(o, "action", json_string(action));
    json_array_append_new(c->findings, o);
    if (!c->json) {
        printf("%-10s  %s: %s\n", kind, path, detail);
        if (action)
            printf("%-10s  -> %s\n", "", action);
    }
}

/* Sets path aside when --quarantine asks for it, and forgets the job's record of it;
 * returns the action taken, or NULL. */
static const char *set_aside(Check *c, const char *path, long long id, const char *kind,
                             const char *why, char *action, size_t n)
{
    if (!c->quarantine)
        return NULL;
    char label[64], dest[4096], err[1024];
    snprintf(label, sizeof label, "job%lld-%s", id, kind);
    StoreCheckpointKind k = STORE_CKPT_LATEST;
    store_checkpoint_kind_parse(kind, &k);
    if (checkpoint_set_aside(path, c->quarantine_dir, label, why, dest, sizeof dest, err,
                             sizeof err) < 0)
        snprintf(action, n, "not moved: %s", err);
    else if (store_checkpoint_forget(c->store, id, (int)k) != STORE_OK)
        snprintf(action, n, "moved to %s, but its record stays: %s", dest,
                 store_errmsg(c->store));
    else
        snprintf(action, n, "moved to %s", dest);
    return action;
}

/* One checkpoint file (kind "latest" or "best") of job folder id; job is NULL when the
 * database has no job with that id. */
static void check_checkpoint(Check *c, const char *path, long long id, const char *kind,
                             const StoreJob *job)
{
    char err[1024], why[1536], action[4200];
    CheckpointInfo info;
    c->checkpoints++;
    int rc = checkpoint_inspect(path, &info, err, sizeof err);
    if (rc == -2) {
        finding(c, "damaged", path, id, err, set_aside(c, path, id, kind, err, action,
                                                       sizeof action));
    } else if (rc < 0) {
        finding(c, "unreadable", path, id, err, NULL);
    } else if (!job) {
        snprintf(why, sizeof why, "no job %lld in the database (the checkpoint is of job uid "
                 "%s, epoch %d)", id, info.has_identity ? info.identity.job_uid : "unknown",
                 info.epoch);
        finding(c, "orphan", path, id, why, set_aside(c, path, id, kind, why, action,
                                                      sizeof action));
    } else {
        CheckpointIdentity want;
        if (job_identity(job, &want, err, sizeof err) < 0) {
            finding(c, "unreadable", path, id, err, NULL);
        } else {
            CheckpointVerdict v = checkpoint_judge(path, &info, &want, job->pre_identity, why,
                                                   sizeof why);
            if (v == CHECKPOINT_OWN)
                c->ok++;
            else
                finding(c, v == CHECKPOINT_FOREIGN ? "foreign" : "mismatch", path, id, why,
                        set_aside(c, path, id, kind, why, action, sizeof action));
        }
    }
    checkpoint_info_deinit(&info);
}

/* Every file of job folder dir (named id). */
static void check_folder(Check *c, const char *dir, long long id)
{
    DIR *d = opendir(dir);
    if (!d) {
        finding(c, "unreadable", dir, id, strerror(errno), NULL);
        return;
    }
    c->folders++;
    StoreJob job;
    int got = store_job_get(c->store, id, &job);
    if (got != STORE_OK && got != STORE_NOT_FOUND)
        finding(c, "unreadable", dir, id, store_errmsg(c->store), NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4608], action[4700];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        long pid = 0;
        if (strcmp(e->d_name, "latest.ckpt") == 0 || strcmp(e->d_name, "best.ckpt") == 0) {
            check_checkpoint(c, path, id, strcmp(e->d_name, "best.ckpt") == 0 ? "best"
                                                                              : "latest",
                             got == STORE_OK ? &job : NULL);
        } else if (job_temp_is_stale(e->d_name, &pid)) {
            char detail[96];
            snprintf(detail, sizeof detail, "left by a write that never finished (process "
                     "%ld is gone)", pid);
            const char *done = NULL;
            if (c->quarantine) {
                if (unlink(path) == 0)
                    snprintf(action, sizeof action, "removed");
                else
                    snprintf(action, sizeof action, "not removed: %s", strerror(errno));
                done = action;
            }
            finding(c, "temporary", path, id, detail, done);
        } else if (!pid) {
            finding(c, "unexpected", path, id, "initlab writes no such file in a job folder",
                    NULL);
        }
    }
    closedir(d);
    if (got == STORE_OK)
        store_job_deinit(&job);
}

/* Every folder of state/jobs/. */
static void check_jobs(Check *c)
{
    char jobs[4096];
    snprintf(jobs, sizeof jobs, "%s/jobs", c->state_dir);
    DIR *d = opendir(jobs);
    if (!d) {
        if (errno != ENOENT)
            finding(c, "unreadable", jobs, 0, strerror(errno), NULL);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4352];
        snprintf(path, sizeof path, "%s/%s", jobs, e->d_name);
        struct stat st;
        if (job_folder_name(e->d_name) && lstat(path, &st) == 0 &&
            S_ISDIR(st.st_mode))
            check_folder(c, path, atoll(e->d_name));
        else
            finding(c, "unexpected", path, 0, "not a job folder (jobs/ID/)", NULL);
    }
    closedir(d);
}

/* Checkpoints the database records whose file is gone. */
static void check_recorded(Check *c)
{
    StoreCheckpoint *rows = NULL;
    int n = 0;
    if (store_checkpoint_list_all(c->store, &rows, &n) != STORE_OK) {
        finding(c, "unreadable", "checkpoints table", 0, store_errmsg(c->store), NULL);
        return;
    }
    for (int i = 0; i < n; i++) {
        char dir[4096], path[4352], detail[256];
        job_checkpoint_dir(c->state_dir, rows[i].job_id, dir, sizeof dir);
        snprintf(path, sizeof path, "%s/%s.ckpt", dir,
                 store_checkpoint_kind_name(rows[i].kind));
        if (access(path, F_OK) == 0)
            continue;
        snprintf(detail, sizeof detail, "job %lld records its %s checkpoint of epoch %d, but "
                 "the file is not there", (long long)rows[i].job_id,
                 store_checkpoint_kind_name(rows[i].kind), rows[i].epoch);
        char action[1100];
        const char *done = NULL;
        if (c->quarantine) {
            if (store_checkpoint_forget(c->store, rows[i].job_id, (int)rows[i].kind) ==
                STORE_OK)
                snprintf(action, sizeof action, "record removed");
            else
                snprintf(action, sizeof action, "record not removed: %s",
                         store_errmsg(c->store));
            done = action;
        }
        finding(c, "missing", path, rows[i].job_id, detail, done);
    }
    free(rows);
}

static int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 's'}, {"quarantine", no_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    Check c = {.state_dir = "state"};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 's': c.state_dir = optarg; break;
        case 'q': c.quarantine = true; break;
        case 'j': c.json = true; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (optind != argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    char db[4352], err[1024];
    snprintf(db, sizeof db, "%s/initlab.db", c.state_dir);
    job_quarantine_dir(c.state_dir, c.quarantine_dir, sizeof c.quarantine_dir);
    c.store = store_open_existing(db, err, sizeof err);
    if (!c.store) {
        fprintf(stderr, "initlab check: %s\n", err);
        return 1;
    }
    c.findings = json_array();
    char *report = NULL;
    if (store_check_integrity(c.store, &report) != STORE_OK) {
        finding(&c, "database", db, 0, store_errmsg(c.store), NULL);
    } else if (report) {
        for (char *line = strtok(report, "\n"); line; line = strtok(NULL, "\n"))
            finding(&c, "database", db, 0, line, NULL);
    }
    free(report);
    check_jobs(&c);
    check_recorded(&c);
    store_close(c.store);

    if (c.json) {
        json_t *out = json_pack("{s:s, s:b, s:b, s:i, s:i, s:i, s:o}", "state_dir",
                                c.state_dir, "ok", c.problems == 0, "quarantine",
                                c.quarantine, "job_folders", c.folders, "checkpoints",
                                c.checkpoints, "checkpoints_ok", c.ok, "findings",
                                c.findings);
        char *text = out ? json_text(out, JSON_INDENT(2)) : NULL;
        json_decref(out);
        if (!text) {
            fprintf(stderr, "initlab check: out of memory\n");
            return 1;
        }
        puts(text);
        free(text);
    } else {
        json_decref(c.findings);
        printf("%s: %d job folder(s), %d checkpoint(s), %d of them the job's own and whole; "
               "%s\n", c.state_dir, c.folders, c.checkpoints, c.ok,
               c.problems ? "problems found" : "all well");
    }
    return c.problems ? 1 : 0;
}

COMMAND(check, "check", cmd_check, 58, "check [--state-dir DIR] [--quarantine] [--json]",
        "integrity of the database and of every checkpoint (orphan, foreign, damaged)")
