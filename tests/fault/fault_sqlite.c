/* fault_sqlite.c — SQLite's side of the fault-test build: a failing allocator installed
 * with sqlite3_config(SQLITE_CONFIG_MALLOC), a VFS that wraps the default one and fails
 * the chosen xWrite/xTruncate or xSync, and PRAGMA integrity_check on a separate
 * connection. The only test file that includes sqlite3.h: the store's own code is driven
 * through store.h, unchanged. */
#include "fault_sqlite.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "fault.h"

/* ---- the allocator ---------------------------------------------------------------- */

static sqlite3_mem_methods real_mem;

static void *mem_malloc(int n)
{
    return fault_should_fail(FAULT_ALLOC) ? NULL : real_mem.xMalloc(n);
}

static void *mem_realloc(void *p, int n)
{
    return fault_should_fail(FAULT_ALLOC) ? NULL : real_mem.xRealloc(p, n);
}

/* ---- the VFS ---------------------------------------------------------------------- */

typedef struct {
    sqlite3_file base;
    sqlite3_file *real; /* the default VFS's file, stored right after this struct */
} FaultFile;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static sqlite3_io_methods fault_io;

#define REAL(f) (((FaultFile *)(f))->real)

static int f_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}

static int f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    if (fault_should_fail(FAULT_WRITE))
        return SQLITE_IOERR_WRITE;
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    if (fault_should_fail(FAULT_WRITE))
        return SQLITE_IOERR_TRUNCATE;
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int f_sync(sqlite3_file *f, int flags)
{
    if (fault_should_fail(FAULT_SYNC))
        return SQLITE_IOERR_FSYNC;
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int f_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int f_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int f_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int f_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int f_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int f_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int f_device_characteristics(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int f_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **p)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, p);
}

static int f_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void f_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int f_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **p)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, p);
}

static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static sqlite3_io_methods fault_io = {
    .iVersion = 3,
    .xClose = f_close, .xRead = f_read, .xWrite = f_write, .xTruncate = f_truncate,
    .xSync = f_sync, .xFileSize = f_file_size, .xLock = f_lock, .xUnlock = f_unlock,
    .xCheckReservedLock = f_check_reserved, .xFileControl = f_file_control,
    .xSectorSize = f_sector_size, .xDeviceCharacteristics = f_device_characteristics,
    .xShmMap = f_shm_map, .xShmLock = f_shm_lock, .xShmBarrier = f_shm_barrier,
    .xShmUnmap = f_shm_unmap, .xFetch = f_fetch, .xUnfetch = f_unfetch,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                  int *out_flags)
{
    (void)vfs;
    FaultFile *f = (FaultFile *)file;
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    /* The real file's methods decide whether SQLite will call xClose. */
    file->pMethods = f->real->pMethods ? &fault_io : NULL;
    return rc;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *v_dlopen(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return real_vfs->xDlOpen(real_vfs, name);
}

static void v_dlerror(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    real_vfs->xDlError(real_vfs, n, out);
}

static void (*v_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    (void)vfs;
    return real_vfs->xDlSym(real_vfs, h, sym);
}

static void v_dlclose(sqlite3_vfs *vfs, void *h)
{
    (void)vfs;
    real_vfs->xDlClose(real_vfs, h);
}

static int v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int v_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return real_vfs->xSleep(real_vfs, us);
}

static int v_current_time(sqlite3_vfs *vfs, double *t)
{
    (void)vfs;
    return real_vfs->xCurrentTime(real_vfs, t);
}

static int v_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
    (void)vfs;
    return real_vfs->xCurrentTimeInt64(real_vfs, t);
}

/* ---- public ----------------------------------------------------------------------- */

int fault_sqlite_install(char *err, size_t errlen)
{
    static bool installed;
    if (installed)
        return 0;
    sqlite3_mem_methods mem;
    int rc = sqlite3_shutdown();
    if (rc == SQLITE_OK)
        rc = sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem);
    if (rc == SQLITE_OK) {
        mem = real_mem;
        mem.xMalloc = mem_malloc;
        mem.xRealloc = mem_realloc;
        rc = sqlite3_config(SQLITE_CONFIG_MALLOC, &mem);
    }
    /* Without lookaside memory every small allocation reaches the allocator above. */
    if (rc == SQLITE_OK)
        rc = sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_initialize();
    if (rc == SQLITE_OK && !(real_vfs = sqlite3_vfs_find(NULL)))
        rc = SQLITE_ERROR;
    if (rc == SQLITE_OK) {
        fault_vfs = (sqlite3_vfs){
            .iVersion = 2, .szOsFile = (int)sizeof(FaultFile) + real_vfs->szOsFile,
            .mxPathname = real_vfs->mxPathname, .zName = "initlab-fault",
            .xOpen = v_open, .xDelete = v_delete, .xAccess = v_access,
            .xFullPathname = v_full_pathname, .xDlOpen = v_dlopen, .xDlError = v_dlerror,
            .xDlSym = v_dlsym, .xDlClose = v_dlclose, .xRandomness = v_randomness,
            .xSleep = v_sleep, .xCurrentTime = v_current_time,
            .xGetLastError = v_last_error, .xCurrentTimeInt64 = v_current_time64,
        };
        rc = sqlite3_vfs_register(&fault_vfs, 1);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "installing the failing allocator and VFS: %s",
                 sqlite3_errstr(rc));
        return -1;
    }
    installed = true;
    return 0;
}

int fault_sqlite_integrity(const char *path, char *msg, size_t size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(msg, size, "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return -1;
    }
    msg[0] = '\0';
    int ok = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(st, 0);
        ok = line && strcmp(line, "ok") == 0;
        if (!ok) {
            size_t len = strlen(msg);
            snprintf(msg + len, size - len, "%s%s", len ? "; " : "", line ? line : "?");
        }
    }
    if (rc != SQLITE_DONE) {
        snprintf(msg, size, "%s: integrity_check: %s", path, sqlite3_errmsg(db));
        ok = 0;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok ? 0 : -1;
}
