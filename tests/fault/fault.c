/* fault.c — the wrapped allocation, write and fsync calls of the fault-test build, the
 * counters that decide which one fails, and the fault loop (fault.h). */
#include "fault.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../unit/test.h"

/* A loop that passes this many points has no end: something retries forever. */
#define MAX_POINTS 200000

static struct {
    atomic_bool armed;
    atomic_int kind;
    atomic_long count;
    atomic_bool fired;
    long nth;
    bool persist;
} F;

const char *fault_kind_name(FaultKind kind)
{
    static const char *const names[FAULT_KINDS] = {"allocation", "write", "fsync"};
    return kind >= 0 && kind < FAULT_KINDS ? names[kind] : "?";
}

void fault_arm(FaultKind kind, long nth, bool persist)
{
    atomic_store(&F.armed, false);
    atomic_store(&F.kind, (int)kind);
    atomic_store(&F.count, 0);
    atomic_store(&F.fired, false);
    F.nth = nth;
    F.persist = persist;
    atomic_store(&F.armed, true);
}

long fault_disarm(void)
{
    atomic_store(&F.armed, false);
    return atomic_load(&F.count);
}

bool fault_fired(void)
{
    return atomic_load(&F.fired);
}

bool fault_should_fail(FaultKind kind)
{
    if (!atomic_load(&F.armed) || atomic_load(&F.kind) != (int)kind)
        return false;
    long c = atomic_fetch_add(&F.count, 1) + 1;
    if (F.nth <= 0 || (F.persist ? c < F.nth : c != F.nth))
        return false;
    atomic_store(&F.fired, true);
    return true;
}

/* ---- the wrapped calls ------------------------------------------------------------ */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t offset);
int __real_fsync(int fd);
int __real_fdatasync(int fd);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t offset);
int __wrap_fsync(int fd);
int __wrap_fdatasync(int fd);

static bool alloc_fails(void)
{
    if (!fault_should_fail(FAULT_ALLOC))
        return false;
    errno = ENOMEM;
    return true;
}

void *__wrap_malloc(size_t n)
{
    return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return alloc_fails() ? NULL : __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    return alloc_fails() ? NULL : __real_aligned_alloc(align, n);
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    return alloc_fails() ? ENOMEM : __real_posix_memalign(p, align, n);
}

char *__wrap_strdup(const char *s)
{
    return alloc_fails() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    return alloc_fails() ? NULL : __real_strndup(s, n);
}

/* A write to a regular file fails with ENOSPC when its turn comes. */
static bool write_fails(int fd)
{
    struct stat st;
    if (!atomic_load(&F.armed) || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        !fault_should_fail(FAULT_WRITE))
        return false;
    errno = ENOSPC;
    return true;
}

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    return write_fails(fd) ? -1 : __real_write(fd, buf, n);
}

ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t offset)
{
    return write_fails(fd) ? -1 : __real_pwrite(fd, buf, n, offset);
}

static bool sync_fails(void)
{
    if (!fault_should_fail(FAULT_SYNC))
        return false;
    errno = EIO;
    return true;
}

int __wrap_fsync(int fd)
{
    return sync_fails() ? -1 : __real_fsync(fd);
}

int __wrap_fdatasync(int fd)
{
    return sync_fails() ? -1 : __real_fdatasync(fd);
}

/* ---- jansson ---------------------------------------------------------------------- */

static void *json_alloc(size_t n)
{
    return __wrap_malloc(n);
}

static void json_release(void *p)
{
    free(p);
}

/* Before main, so that every JSON value of the process comes from here. */
__attribute__((constructor)) static void install_json(void)
{
    json_set_alloc_funcs(json_alloc, json_release);
}

/* ---- the loop --------------------------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static void problem(FaultLoopResult *r, const char *fmt, ...)
{
    va_list ap;
    r->problems++;
    printf("    fault loop problem: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* The stride a loop runs with: the loop's own, or INITLAB_FAULT_STRIDE's when set. */
static long loop_stride(const FaultLoop *l)
{
    const char *env = getenv("INITLAB_FAULT_STRIDE");
    long s = env && *env ? strtol(env, NULL, 10) : l->stride;
    return s > 1 ? s : 1;
}

/* The first point tried with stride s: INITLAB_FAULT_OFFSET's, or drawn from the clock. */
static long loop_offset(long s)
{
    const char *env = getenv("INITLAB_FAULT_OFFSET");
    if (env && *env)
        return strtol(env, NULL, 10) % s;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long)((unsigned long)(ts.tv_sec ^ ts.tv_nsec) % (unsigned long)s);
}

FaultLoopResult fault_loop_run(const FaultLoop *l)
{
    FaultLoopResult r = {0};
    char err[1024];
    const char *kind = fault_kind_name(l->kind);
    long stride = loop_stride(l), offset = stride > 1 ? loop_offset(stride) : 0;
    for (long n = 1 + offset;; n += stride) {
        if (n > MAX_POINTS) {
            problem(&r, "%s: %s faults: no end after %d points", l->name, kind, MAX_POINTS);
            break;
        }
        if (l->setup)
            l->setup(l->ctx);
        err[0] = '\0';
        fault_arm(l->kind, n, l->persist);
        int rc = l->op(l->ctx, err, sizeof err);
        bool fired = fault_fired();
        fault_disarm();
        l->check(l->ctx, n, rc, err);
        if (!fired) {
            if (rc != 0)
                problem(&r, "%s: failed with no fault injected (run %ld): %s", l->name, n, err);
            break;
        }
        r.points++;
        if (rc == 0) {
            r.absorbed++;
            if (!l->may_absorb)
                problem(&r, "%s: %s %ld failed and the operation reported success", l->name,
                        kind, n);
            continue;
        }
        r.reported++;
        if (!err[0])
            problem(&r, "%s: %s %ld failed with an empty error message", l->name, kind, n);
    }
    printf("    %-32s %-10s %-10s %5ld fault points: %ld reported, %ld absorbed", l->name,
           kind, l->persist ? "persistent" : "once", r.points, r.reported, r.absorbed);
    if (stride > 1)
        printf(" (every %ldth from %ld: INITLAB_FAULT_OFFSET=%ld replays it)", stride,
               1 + offset, offset);
    printf("\n");
    fflush(stdout);
    return r;
}

FaultLoopResult fault_loop(const FaultLoop *l)
{
    FaultLoopResult r = fault_loop_run(l);
    if (r.problems)
        test_fail(__FILE__, __LINE__, "%s, %s faults: %ld problem(s), listed above", l->name,
                  fault_kind_name(l->kind), r.problems);
    return r;
}
