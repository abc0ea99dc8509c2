/* backup.c — `initlab backup`: a consistent copy of a state directory's database and of the
 * checkpoints it records, taken while the daemon runs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
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
#include "util/fileio.h"

static const char usage_text[] =
    "usage: initlab backup DEST [--state-dir DIR]\n\n"
    "Copies the state directory DIR (default ./state) to the new folder DEST while the\n"
    "daemon (or `initlab train`) may keep running: DEST/initlab.db, one consistent snapshot\n"
    "of the database taken with SQLite's online backup, and DEST/jobs/ID/latest.ckpt and\n"
    "best.ckpt for every checkpoint the database records. Each checkpoint is copied from\n"
    "one open file (a rename by a running job does not tear it), checked after the copy\n"
    "(CRC, and that it carries the identity of its job), and copied before the database\n"
    "snapshot is taken, so no checkpoint in DEST is newer than the database beside it: a\n"
    "job restored from DEST resumes from its checkpoint and trains again what came after.\n"
    "Decoded-image caches are not copied (they are rebuilt). DEST must not exist, or be\n"
    "an empty folder, outside DIR.\n\n"
    "To restore, see docs/operations.md; `initlab check --state-dir DEST` checks a copy.\n\n"
    "Exit status: 0 when everything was copied, 1 when the database could not be copied\n"
    "or a recorded checkpoint was missing, damaged or not its job's (the others are in\n"
    "DEST; the messages name each), 2 on a usage error.\n";

/* Copies src into dst through dst.tmp.PID: data, fsync, rename, directory fsync. Reads
 * from one open descriptor, so a rename over src meanwhile does not matter. Returns 0, or
 * -1 with a message in err (the temporary file is removed). */
static int copy_file(const char *src, const char *dst, char *err, size_t errlen)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%.4000s.tmp.%ld", dst, (long)getpid());
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        snprintf(err, errlen, "%.1000s: %s", src, strerror(errno));
        return -1;
    }
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        snprintf(err, errlen, "%.1000s: %s", tmp, strerror(errno));
        close(in);
        return -1;
    }
    static char buf[1 << 20];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "reading %.1000s: %s", src, strerror(errno));
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                snprintf(err, errlen, "writing %.1000s: %s", tmp, strerror(errno));
                rc = -1;
                break;
            }
            done += w;
        }
        if (rc)
            break;
    }
    if (rc == 0 && fsync(out) < 0) {
        snprintf(err, errlen, "syncing %.1000s: %s", tmp, strerror(errno));
        rc = -1;
    }
    close(in);
    if (close(out) < 0 && rc == 0) {
        snprintf(err, errlen, "closing %.1000s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, dst) < 0) {
        snprintf(err, errlen, "renaming %.1000s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc) {
        unlink(tmp);
        return -1;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.4000s", dst);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* Copies the recorded checkpoint c of the state directory into dest, checking the copy.
 * Returns 0, or -1 with the reason in err (nothing of it stays in dest). */
static int copy_checkpoint(Store *s, const char *state_dir, const char *dest,
                           const StoreCheckpoint *c, char *err, size_t errlen)
{
    const char *kind = store_checkpoint_kind_name(c->kind);
    char src_dir[4096], dst_dir[4096], src[4352], dst[4352], why[1536];
    job_checkpoint_dir(state_dir, c->job_id, src_dir, sizeof src_dir);
    job_checkpoint_dir(dest, c->job_id, dst_dir, sizeof dst_dir);
    snprintf(src, sizeof src, "%s/%s.ckpt", src_dir, kind);
    snprintf(dst, sizeof dst, "%s/%s.ckpt", dst_dir, kind);
    StoreJob job;
    if (store_job_get(s, c->job_id, &job) != STORE_OK) {
        snprintf(err, errlen, "%.1000s: %s", src, store_errmsg(s));
        return -1;
    }
    CheckpointIdentity want;
    CheckpointInfo info = {0};
    int rc = job_identity(&job, &want, err, errlen);
    if (rc == 0)
        rc = file_mkdirs(dst_dir, err, errlen);
    if (rc == 0)
        rc = copy_file(src, dst, err, errlen);
    if (rc == 0) {
        if (checkpoint_inspect(dst, &info, err, errlen) < 0) {
            rc = -1;
        } else if (checkpoint_judge(src, &info, &want, job.pre_identity, why, sizeof why) !=
                   CHECKPOINT_OWN) {
            snprintf(err, errlen, "%s", why);
            rc = -1;
        }
        if (rc)
            unlink(dst);
        else
            printf("  job %lld: %s checkpoint of epoch %d (%llu bytes)\n",
                   (long long)c->job_id, kind, info.epoch, (unsigned long long)info.bytes);
    }
    checkpoint_info_deinit(&info);
    store_job_deinit(&job);
    return rc;
}

/* DEST may be used: it does not exist, or is an empty folder; it is not inside the state
 * directory. Creates it. Returns 0, or -1 with a message. */
static int prepare_dest(const char *dest, const char *state_dir, char *err, size_t errlen)
{
    char real_state[PATH_MAX], real_dest[PATH_MAX];
    if (!realpath(state_dir, real_state)) {
        snprintf(err, errlen, "state directory %s: %s", state_dir, strerror(errno));
        return -1;
    }
    if (file_mkdirs(dest, err, errlen) < 0)
        return -1;
    if (!realpath(dest, real_dest)) {
        snprintf(err, errlen, "%s: %s", dest, strerror(errno));
        return -1;
    }
    size_t n = strlen(real_state);
    if (strncmp(real_dest, real_state, n) == 0 && (real_dest[n] == '/' || !real_dest[n])) {
        snprintf(err, errlen, "%s is inside the state directory %s: choose a folder "
                 "outside it", dest, state_dir);
        return -1;
    }
    char jobs[PATH_MAX + 8];
    snprintf(jobs, sizeof jobs, "%s/jobs", real_dest);
    return file_mkdirs(jobs, err, errlen);
}

/* True when dest exists and is not an empty folder. */
static bool dest_taken(const char *dest)
{
    struct stat st;
    if (stat(dest, &st) != 0)
        return false;
    if (!S_ISDIR(st.st_mode))
        return true;
    DIR *d = opendir(dest);
    if (!d)
        return true;
    bool any = false;
    struct dirent *e;
    while (!any && (e = readdir(d)))
        any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return any;
}

static int cmd_backup(int argc, char **argv)
{
    static const struct option opts[] = {{"state-dir", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *state_dir = "state";
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 's': state_dir = optarg; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *dest = argv[optind];
    char db[4352], dest_db[4352], err[2048];
    snprintf(db, sizeof db, "%s/initlab.db", state_dir);
    snprintf(dest_db, sizeof dest_db, "%s/initlab.db", dest);
    if (dest_taken(dest)) {
        fprintf(stderr, "initlab backup: %s exists and is not an empty folder: choose a new "
                "one\n", dest);
        return 1;
    }
    Store *s = store_open_existing(db, err, sizeof err);
    if (!s) {
        fprintf(stderr, "initlab backup: %s\n", err);
        return 1;
    }
    int status = 1;
    StoreCheckpoint *rows = NULL;
    int n = 0, failed = 0;
    if (prepare_dest(dest, state_dir, err, sizeof err) < 0) {
        fprintf(stderr, "initlab backup: %s\n", err);
        goto out;
    }
    if (store_checkpoint_list_all(s, &rows, &n) != STORE_OK) {
        fprintf(stderr, "initlab backup: %s\n", store_errmsg(s));
        goto out;
    }
    printf("initlab backup: %s -> %s\n", state_dir, dest);
    /* Checkpoints first, the database after: no checkpoint copied is newer than the
     * database copy, whose records then cover every epoch a checkpoint holds. */
    for (int i = 0; i < n; i++)
        if (copy_checkpoint(s, state_dir, dest, &rows[i], err, sizeof err) < 0) {
            fprintf(stderr, "initlab backup: not copied: %s\n", err);
            failed++;
        }
    if (store_backup(s, dest_db) != STORE_OK) {
        fprintf(stderr, "initlab backup: %s\n", store_errmsg(s));
        goto out;
    }
    printf("  the database, %s\n", dest_db);
    printf("initlab backup: %d of %d checkpoint(s) and the database copied%s\n", n - failed, n,
           failed ? "; see the messages above for the others" : "");
    status = failed ? 1 : 0;
out:
    free(rows);
    store_close(s);
    return status;
}

COMMAND(backup, "backup", cmd_backup, 56, "backup DEST [--state-dir DIR]",
        "a consistent copy of the database and its checkpoints, while the daemon runs")
