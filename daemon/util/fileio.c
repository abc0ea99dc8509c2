/* fileio.c — atomic, durable file replacement and directory creation (see fileio.h). */
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int fsync_parent(const char *path)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

int file_write_atomic(const char *path, const FilePart *parts, int n_parts, char *err,
                      size_t errlen)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "creating %s: %s", tmp, strerror(errno));
        return -1;
    }
    const char *step = "writing";
    for (int i = 0; i < n_parts; i++)
        if (write_all(fd, parts[i].data, parts[i].len) < 0)
            goto fail;
    step = "fsync of";
    if (fsync(fd) < 0)
        goto fail;
    step = "closing";
    int rc = close(fd);
    fd = -1;
    if (rc < 0)
        goto fail;
    step = "renaming over";
    if (rename(tmp, path) < 0)
        goto fail;
    if (fsync_parent(path) < 0) {
        snprintf(err, errlen, "%s: fsync of its directory: %s (the new file is in place but "
                 "may not survive a crash)", path, strerror(errno));
        return -1;
    }
    return 0;
fail:
    snprintf(err, errlen, "%s %s: %s (the previous file, if any, is unchanged)", step, path,
             strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

int file_mkdirs(const char *path, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
                snprintf(err, errlen, "%s: %s", buf, strerror(errno));
                return -1;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a directory", path);
        return -1;
    }
    return 0;
}

int file_install(const char *tmp, const char *path, char *err, size_t errlen)
{
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "fsync of %s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "renaming %s over %s: %s (the previous file, if any, is "
                 "unchanged)", tmp, path, strerror(errno));
        return -1;
    }
    if (fsync_parent(path) < 0) {
        snprintf(err, errlen, "%s: fsync of its directory: %s (the new file is in place but "
                 "may not survive a crash)", path, strerror(errno));
        return -1;
    }
    return 0;
}
