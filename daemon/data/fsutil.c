/* fsutil.c — sealed opens below a dataset folder, whole-file reads, path joins, mkdir -p,
 * exclusive writes, FNV-1a (fsutil.h). */
#include "data/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Symbolic links followed in one resolution, as the kernel's MAXSYMLINKS. */
#define MAX_LINKS 40
/* Directory levels held open by the portable resolver. */
#define MAX_LEVELS 256
/* Tries of openat2 when it reports a concurrent rename (EAGAIN). */
#define OPENAT2_TRIES 8

/* openat2(2) through syscall(2): Debian 12's glibc has no wrapper. Returns a descriptor,
 * or -1 with errno set. */
static int sys_openat2(int dirfd, const char *path, int flags, uint64_t resolve)
{
    struct open_how how = {.flags = (uint64_t)(unsigned)flags, .mode = 0, .resolve = resolve};
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/* True when an openat2 failure means "no openat2 here" rather than an answer about the
 * path: missing (ENOSYS), filtered by seccomp (EPERM), or an older struct/flag set. */
static int openat2_unavailable(int e)
{
    return e == ENOSYS || e == EPERM || e == E2BIG || e == EINVAL;
}

int data_root_open(const char *abs)
{
    if (abs[0] != '/')
        return -EINVAL;
    int fd = sys_openat2(AT_FDCWD, abs, O_PATH | O_DIRECTORY | O_CLOEXEC,
                         RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    if (fd >= 0)
        return fd;
    if (!openat2_unavailable(errno))
        return -errno;
    int cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0)
        return -errno;
    const char *p = abs;
    while (*p) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if (n == 0)
            break;
        char comp[NAME_MAX + 1];
        if (n > NAME_MAX) {
            close(cur);
            return -ENAMETOOLONG;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        p += n;
        int next = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        int e = next < 0 ? errno : fstat(next, &st) != 0 ? errno
                                 : S_ISLNK(st.st_mode)   ? ELOOP
                                 : !S_ISDIR(st.st_mode)  ? ENOTDIR
                                                         : 0;
        close(cur);
        if (e) {
            if (next >= 0)
                close(next);
            return -e;
        }
        cur = next;
    }
    return cur;
}

int data_open_beneath(int root_fd, const char *rel, int flags)
{
    for (int t = 0; t < OPENAT2_TRIES; t++) {
        int fd = sys_openat2(root_fd, rel, flags | O_CLOEXEC,
                             RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
        if (fd >= 0)
            return fd;
        if (errno == EAGAIN)
            continue;
        if (!openat2_unavailable(errno))
            return -errno;
        break;
    }
    return data_open_beneath_portable(root_fd, rel, flags);
}

/* The portable resolver's state: the path still to walk and the directories walked, each
 * held open (O_PATH) so that ".." goes back to the very directory it came from. */
typedef struct {
    char *todo;               /* heap; components still to resolve */
    size_t pos;               /* next unread byte of todo */
    int dirs[MAX_LEVELS];     /* dirs[0] = root_fd (borrowed), dirs[1..depth] owned */
    int depth;
} Walk;

/* Replaces the link just read by its target: the unread part of w->todo (empty, or
 * starting with '/') is appended to target. Returns 0 or -ENOMEM. */
static int walk_splice(Walk *w, const char *target)
{
    const char *rest = w->todo + w->pos;
    size_t lt = strlen(target), lr = strlen(rest);
    char *n = malloc(lt + lr + 1);
    if (!n)
        return -ENOMEM;
    memcpy(n, target, lt);
    memcpy(n + lt, rest, lr + 1);
    free(w->todo);
    w->todo = n;
    w->pos = 0;
    return 0;
}

int data_open_beneath_portable(int root_fd, const char *rel, int flags)
{
    if (rel[0] == '\0')
        return -ENOENT;
    if (rel[0] == '/')
        return -EXDEV;
    Walk w = {.todo = strdup(rel), .dirs = {root_fd}};
    if (!w.todo)
        return -ENOMEM;
    int links = 0, rc = -ENOENT;
    for (;;) {
        const char *p = w.todo + w.pos;
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        int cur = w.dirs[w.depth];
        if (n == 0) { /* the path ends on a directory: open it */
            rc = openat(cur, ".", flags | O_CLOEXEC);
            rc = rc >= 0 ? rc : -errno;
            break;
        }
        if (n > NAME_MAX) {
            rc = -ENAMETOOLONG;
            break;
        }
        char comp[NAME_MAX + 1];
        memcpy(comp, p, n);
        comp[n] = '\0';
        const char *after = p + n;
        int trailing_slash = *after == '/';
        const char *q = after;
        while (*q == '/')
            q++;
        int last = *q == '\0';
        w.pos = (size_t)(after - w.todo);
        if (strcmp(comp, ".") == 0)
            continue;
        if (strcmp(comp, "..") == 0) {
            if (w.depth == 0) {
                rc = -EXDEV;
                break;
            }
            close(w.dirs[w.depth--]);
            continue;
        }
        int probe = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (probe < 0 || fstat(probe, &st) != 0) {
            rc = -errno;
            if (probe >= 0)
                close(probe);
            break;
        }
        if (S_ISLNK(st.st_mode) && !(last && !trailing_slash && (flags & O_NOFOLLOW))) {
            char target[PATH_MAX];
            ssize_t len = ++links > MAX_LINKS ? -2 : readlinkat(probe, "", target,
                                                                 sizeof target - 1);
            int e = len == -2 ? ELOOP : len < 0 ? errno : 0;
            close(probe);
            if (e || len == 0) {
                rc = e ? -e : -ENOENT;
                break;
            }
            target[len] = '\0';
            if (target[0] == '/') {
                rc = -EXDEV;
                break;
            }
            if ((rc = walk_splice(&w, target)) != 0)
                break;
            continue;
        }
        if (!last || trailing_slash) {
            if (!S_ISDIR(st.st_mode)) {
                close(probe);
                rc = -ENOTDIR;
                break;
            }
            if (!last) {
                if (w.depth + 1 >= MAX_LEVELS) {
                    close(probe);
                    rc = -ENAMETOOLONG;
                    break;
                }
                w.dirs[++w.depth] = probe;
                continue;
            }
        }
        /* the last component, not a link to follow: open it without following a link that
         * may have replaced it since the probe, and make sure it is the probed file */
        if (S_ISLNK(st.st_mode)) {
            if (flags & O_PATH) {
                rc = probe;
                break;
            }
            close(probe);
            rc = -ELOOP;
            break;
        }
        int fd = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC);
        struct stat fst;
        if (fd < 0) {
            rc = -errno;
        } else if (fstat(fd, &fst) != 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
            close(fd);
            rc = -EAGAIN;
        } else {
            rc = fd;
        }
        close(probe);
        break;
    }
    while (w.depth > 0)
        close(w.dirs[w.depth--]);
    free(w.todo);
    return rc;
}

const char *data_open_error(int neg_errno)
{
    switch (-neg_errno) {
    case EXDEV: return "symbolic link out of the dataset folder";
    case ELOOP: return "symbolic link loop, or a link into /proc";
    case EAGAIN: return "the file changed while it was being opened";
    default: return strerror(-neg_errno);
    }
}

int data_read_fd(int fd, uint8_t **buf, size_t *cap, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    size_t want = st.st_size > 0 ? (size_t)st.st_size : 0;
    if (want + 1 > *cap || !*buf) {
        uint8_t *nb = realloc(*buf, want + 1);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = want + 1;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, *buf + got, want - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break; /* the file shrank while we read: return what is there */
        got += (size_t)r;
    }
    *len = got;
    return 0;
}

int data_read_file(const char *path, uint8_t **buf, size_t *cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = data_read_fd(fd, buf, cap, len);
    close(fd);
    return rc;
}

char *data_path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    size_t o = la;
    if (la && a[la - 1] != '/')
        p[o++] = '/';
    memcpy(p + o, b, lb + 1);
    return p;
}

int data_mkdirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return -ENOMEM;
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                rc = -errno;
                break;
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    if (rc == 0) {
        struct stat st;
        if (stat(path, &st) != 0)
            rc = -errno;
        else if (!S_ISDIR(st.st_mode))
            rc = -ENOTDIR;
    }
    free(p);
    return rc;
}

int data_write_new_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0)
        return -errno;
    const uint8_t *b = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, b + done, len - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            close(fd);
            unlink(path);
            return e;
        }
        done += (size_t)w;
    }
    if (close(fd) != 0) {
        int e = -errno;
        unlink(path);
        return e;
    }
    return 0;
}

uint64_t data_hash(uint64_t h, const void *buf, size_t len)
{
    const uint8_t *b = buf;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
