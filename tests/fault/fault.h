/* fault.h — fault injection for the fault-test build: the n-th allocation, file write or
 * fsync fails, in the manner of SQLite's test harness.
 *
 * The fault-test binary (build/rel/fault_tests, build/asan/fault_tests) links the daemon's
 * objects with -Wl,--wrap for malloc, calloc, realloc, aligned_alloc, posix_memalign,
 * strdup, strndup, write, pwrite, fsync and fdatasync: every such call from initlab's own
 * code passes through fault.c, which lets it through or fails it. Calls made inside shared
 * libraries are not wrapped; jansson's allocations are routed here with
 * json_set_alloc_funcs, SQLite's with its own hooks (fault_sqlite.c: an allocator set with
 * sqlite3_config and a VFS wrapping the default one). The production build is not linked
 * this way and pays nothing.
 *
 * Counting starts at fault_arm and covers one kind of operation; writes count only when
 * they go to a regular file (a log line on stderr is not a stored write). Single-threaded
 * use: the operations under test run in the calling thread; the counters are atomic so
 * that a stray thread cannot corrupt them. */
#ifndef INITLAB_TEST_FAULT_H
#define INITLAB_TEST_FAULT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    FAULT_ALLOC, /* malloc and friends: NULL (ENOMEM) */
    FAULT_WRITE, /* write/pwrite to a regular file, SQLite's xWrite/xTruncate: ENOSPC */
    FAULT_SYNC,  /* fsync/fdatasync, SQLite's xSync: EIO */
    FAULT_KINDS
} FaultKind;

/* The kind's name ("allocation", "write", "fsync"). */
const char *fault_kind_name(FaultKind kind);

/* Starts counting operations of kind; the nth of them (1-based) fails, and every later one
 * too when persist is set. nth 0 only counts. Can't fail. */
void fault_arm(FaultKind kind, long nth, bool persist);
/* Stops counting and failing; returns the number of operations counted since fault_arm. */
long fault_disarm(void);
/* True when an operation failed since the last fault_arm. */
bool fault_fired(void);
/* Called by the wrappers (and fault_sqlite.c): true when this operation of kind must
 * fail. */
bool fault_should_fail(FaultKind kind);

/* One fault loop: op runs with the n-th operation of `kind` failing, for n = 1, 2, ...,
 * until a run in which no fault fired; that run must succeed. */
typedef struct {
    const char *name;   /* "checkpoint_save" */
    FaultKind kind;
    void *ctx;
    /* Puts the stored data back in its state before the operation (faults off); may be
     * NULL. */
    void (*setup)(void *ctx);
    /* The operation: 0, or -1 with a message in err. */
    int (*op)(void *ctx, char *err, size_t errlen);
    /* After each run, faults off: checks that the stored data is intact (the state before
     * the operation or, where the operation is atomic, the whole state after it) and
     * records test failures naming n. rc is op's result. */
    void (*check)(void *ctx, long n, int rc, const char *err);
    /* The failure of an allocation may be absorbed by the code (a library retrying
     * smaller, SQLite's benign allocations): the run may then succeed, and check decides
     * whether its result is right. A failed write or fsync must always be reported. */
    bool may_absorb;
    bool persist;       /* every operation from the n-th on fails, not just the n-th */
    /* > 1: only every stride-th point is tried, from an offset drawn per run (printed;
     * INITLAB_FAULT_OFFSET=K replays it, INITLAB_FAULT_STRIDE=1 tries every point). For
     * loops of many thousand points, whose cost grows with the square of their length:
     * successive runs cover the others. 0 or 1: every point. */
    long stride;
} FaultLoop;

typedef struct {
    long points;        /* fault points exercised: runs in which a fault fired */
    long reported;      /* of those, runs in which op reported the failure */
    long absorbed;      /* of those, runs in which op succeeded anyway (checked) */
    long problems;      /* a failed write or fsync reported as success, an empty error
                           message, a failure with no fault injected, a loop without end */
} FaultLoopResult;

/* Runs the loop, prints each problem and one line with the figures, and returns them.
 * check's own findings are recorded by check. */
FaultLoopResult fault_loop_run(const FaultLoop *loop);
/* fault_loop_run, recording a test failure when it found problems. */
FaultLoopResult fault_loop(const FaultLoop *loop);

#endif
