/* store.c — opening the database, schema migrations, fencing of the database file, errors,
 * integrity checks, backup, query plans, and the helpers the other store files share (see
 * store.h for the threading and fencing DESIGN). */
#include "store/store_internal.h"

#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* build/gen/schema_sql.c: schema/NNN_*.sql in file-name order; migration i brings the
 * database to user_version i + 1. Both arrays are NULL-terminated. */
extern const char *const schema_migration_names[];
extern const char *const schema_migration_sql[];
extern const int schema_migration_count;

#define BUSY_TIMEOUT_MS 5000
/* New databases get 16 KiB pages: a layer_stats row (with its 256-byte histogram) is about
 * 500 bytes, and a WITHOUT ROWID table keeps whole rows in its interior pages, so larger
 * pages keep the b-tree shallow. Has no effect on an existing database. */
#define PAGE_SIZE 16384

/* ---- Errors and helpers -------------------------------------------------------------- */

int store_fail(Store *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    s->errcode = code;
    return code;
}

int store_db_fail(Store *s, const char *what)
{
    int rc = sqlite3_extended_errcode(s->db);
    int code = STORE_ERROR;
    if (rc == SQLITE_CONSTRAINT_COMMITHOOK && s->fence[0])
        return store_fail(s, STORE_UNAVAILABLE, "%s", s->fence);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        switch (rc) {
        case SQLITE_CONSTRAINT_FOREIGNKEY: code = STORE_NOT_FOUND; break;
        case SQLITE_CONSTRAINT_UNIQUE:
        case SQLITE_CONSTRAINT_PRIMARYKEY: code = STORE_CONFLICT; break;
        case SQLITE_CONSTRAINT_CHECK:
        case SQLITE_CONSTRAINT_NOTNULL: code = STORE_INVALID; break;
        default: break;
        }
    }
    return store_fail(s, code, "%s: %s", what, sqlite3_errmsg(s->db));
}

int store_prepare(Store *s, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return store_fail(s, STORE_ERROR, "preparing a statement: %s", sqlite3_errmsg(s->db));
    }
    return STORE_OK;
}

int store_step_done(Store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return STORE_OK;
    return store_db_fail(s, what);
}

int store_exec(Store *s, const char *sql, const char *what)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return store_db_fail(s, what);
    return STORE_OK;
}

int store_begin(Store *s)
{
    int rc = store_exec(s, s->tx_depth ? "SAVEPOINT nested" : "BEGIN IMMEDIATE",
                        "starting a transaction");
    if (rc == STORE_OK)
        s->tx_depth++;
    return rc;
}

int store_commit(Store *s)
{
    if (s->tx_depth > 1) {
        int rc = store_exec(s, "RELEASE nested", "committing");
        if (rc != STORE_OK)
            store_rollback(s);
        else
            s->tx_depth--;
        return rc;
    }
    int rc = store_exec(s, "COMMIT", "committing");
    if (rc != STORE_OK)
        store_rollback(s);
    s->tx_depth = 0;
    return rc;
}

void store_rollback(Store *s)
{
    if (s->tx_depth > 1) {
        sqlite3_exec(s->db, "ROLLBACK TO nested; RELEASE nested", NULL, NULL, NULL);
        s->tx_depth--;
        return;
    }
    s->tx_depth = 0;
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int store_random_uid(Store *s, char *out)
{
    unsigned char bytes[STORE_UID_LEN / 2];
    size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return store_fail(s, STORE_ERROR, "no random bytes for a uid: %s",
                              n < 0 ? strerror(errno) : "getrandom returned nothing");
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return STORE_OK;
}

double store_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int store_check_text(Store *s, const char *what, const char *v, size_t max, int required)
{
    if (!v)
        return required ? store_fail(s, STORE_INVALID, "%s is missing", what) : STORE_OK;
    if (required && !v[0])
        return store_fail(s, STORE_INVALID, "%s is empty", what);
    if (strlen(v) >= max)
        return store_fail(s, STORE_INVALID, "%s is longer than %zu bytes", what, max - 1);
    return STORE_OK;
}

int store_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

int store_bind_real(sqlite3_stmt *st, int i, double v)
{
    return isnan(v) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v);
}

int store_bind_id(sqlite3_stmt *st, int i, int64_t id)
{
    return id ? sqlite3_bind_int64(st, i, id) : sqlite3_bind_null(st, i);
}

double store_col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

double store_col_time(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? 0.0 : sqlite3_column_double(st, i);
}

void store_col_copy(sqlite3_stmt *st, int i, char *dst, size_t n)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    snprintf(dst, n, "%s", v ? v : "");
}

int store_col_dup(Store *s, sqlite3_stmt *st, int i, char **out)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    *out = NULL;
    if (!v)
        return STORE_OK;
    *out = strdup(v);
    return *out ? STORE_OK : store_fail(s, STORE_ERROR, "out of memory");
}

void *store_grow(Store *s, void *arr, int count, int *cap, int first_cap, size_t elem_size)
{
    if (count < *cap)
        return arr;
    int ncap = *cap ? 2 * *cap : first_cap;
    void *grown = realloc(arr, (size_t)ncap * elem_size);
    if (!grown) {
        store_fail(s, STORE_ERROR, "out of memory");
        return NULL;
    }
    *cap = ncap;
    return grown;
}

int store_collect_rows(Store *s, sqlite3_stmt *st, size_t elem_size, int first_cap,
                       StoreReadRow read, StoreFreeRows free_rows, const char *what,
                       void **rows, int *n)
{
    char *arr = NULL;  /* bytes, so that row k is at arr + k * elem_size */
    int count = 0, cap = 0, step, rc;
    *rows = NULL;
    *n = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        char *grown = store_grow(s, arr, count, &cap, first_cap, elem_size);
        if (!grown) {
            rc = STORE_ERROR;
            goto fail;
        }
        arr = grown;
        if ((rc = read(s, st, arr + (size_t)count * elem_size)))
            goto fail;
        count++;
    }
    if (step != SQLITE_DONE) {
        rc = store_db_fail(s, what);
        goto fail;
    }
    sqlite3_finalize(st);
    *rows = arr;
    *n = count;
    return STORE_OK;
fail:
    sqlite3_finalize(st);
    if (free_rows)
        free_rows(arr, count);
    else
        free(arr);
    return rc;
}

int store_ids_format(Store *s, const int64_t *ids, int n, char **out)
{
    size_t cap = 3 + (size_t)n * 21, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return store_fail(s, STORE_ERROR, "out of memory");
    buf[len++] = '[';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i ? "," : "", ids[i]);
    buf[len++] = ']';
    buf[len] = '\0';
    *out = buf;
    return STORE_OK;
}

int store_ids_parse(Store *s, const char *text, int64_t **ids, int *n)
{
    int cap = 0, count = 0;
    int64_t *arr = NULL;
    const char *p = text;
    *ids = NULL;
    *n = 0;
    while (*p == ' ' || *p == '[')
        p++;
    while (*p && *p != ']') {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno) {
            free(arr);
            return store_fail(s, STORE_ERROR, "malformed id list \"%s\"", text);
        }
        int64_t *grown = store_grow(s, arr, count, &cap, 8, sizeof *arr);
        if (!grown) {
            free(arr);
            return STORE_ERROR;
        }
        arr = grown;
        arr[count++] = v;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    *ids = arr;
    *n = count;
    return STORE_OK;
}

/* ---- Enumerations -------------------------------------------------------------------- */

static const char *const dataset_status_names[] = {"scanning", "ready", "failed"};
static const char *const split_names[] = {"train", "val", "test"};
static const char *const job_status_names[] = {"queued", "running", "done", "failed", "cancelled"};
static const char *const mode_names[] = {"train", "inference"};
static const char *const quantity_names[] = {"weight", "activation", "gradient"};
static const char *const checkpoint_kind_names[] = {"latest", "best"};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *name_of(const char *const *names, int count, int v)
{
    return v >= 0 && v < count ? names[v] : "?";
}

static int parse_name(const char *const *names, int count, const char *text, int *v)
{
    if (!text)
        return -1;
    for (int i = 0; i < count; i++)
        if (strcmp(text, names[i]) == 0) {
            *v = i;
            return 0;
        }
    return -1;
}

#define ENUM_FUNCS(type, prefix, names)                                                 \
    const char *prefix##_name(type v) { return name_of(names, COUNT(names), (int)v); }  \
    int prefix##_parse(const char *text, type *v)                                      \
    {                                                                                   \
        int i;                                                                          \
        if (parse_name(names, COUNT(names), text, &i) != 0)                             \
            return -1;                                                                  \
        *v = (type)i;                                                                   \
        return 0;                                                                       \
    }

ENUM_FUNCS(StoreDatasetStatus, store_dataset_status, dataset_status_names)
ENUM_FUNCS(StoreSplit, store_split, split_names)
ENUM_FUNCS(StoreJobStatus, store_job_status, job_status_names)
ENUM_FUNCS(StoreMode, store_mode, mode_names)
ENUM_FUNCS(StoreQuantity, store_quantity, quantity_names)
ENUM_FUNCS(StoreCheckpointKind, store_checkpoint_kind, checkpoint_kind_names)

/* ---- Opening and migrations ---------------------------------------------------------- */

int store_schema_latest(void)
{
    return schema_migration_count;
}

bool store_schema_has(const Store *s, const char *suffix)
{
    size_t n = strlen(suffix);
    for (int i = 0; i < s->schema && i < schema_migration_count; i++) {
        size_t m = strlen(schema_migration_names[i]);
        if (m >= n && strcmp(schema_migration_names[i] + m - n, suffix) == 0)
            return true;
    }
    return false;
}

static int read_user_version(Store *s, int *version)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, "PRAGMA user_version", &st);
    if (rc != STORE_OK)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *version = sqlite3_column_int(st, 0);
        rc = STORE_OK;
    } else {
        rc = store_db_fail(s, "reading the schema version");
    }
    sqlite3_finalize(st);
    return rc;
}

int store_schema_version(Store *s)
{
    int v = 0;
    int rc = read_user_version(s, &v);
    return rc == STORE_OK ? v : rc;
}

static int refuse_newer(Store *s, int version, int known)
{
    return store_fail(s, STORE_ERROR,
                      "database schema version %d is newer than this initlab knows (%d): "
                      "run a newer initlab, or restore a backup made by this version",
                      version, known);
}

/* Applies migrations until the schema is at version target. Each runs in its own
 * transaction that re-reads the version after taking the write lock, so that two
 * processes opening the same old database never apply a migration twice. */
static int migrate(Store *s, int target)
{
    int version = 0, rc;
    if ((rc = read_user_version(s, &version)) != STORE_OK)
        return rc;
    if (version > schema_migration_count)
        return refuse_newer(s, version, schema_migration_count);
    if (version > target)
        return refuse_newer(s, version, target);
    int fresh = version == 0;
    while (version < target) {
        if ((rc = store_begin(s)) != STORE_OK)
            return rc;
        if ((rc = read_user_version(s, &version)) != STORE_OK)
            goto fail;
        if (version >= target) {
            store_rollback(s);
            break;
        }
        char *msg = NULL;
        if (sqlite3_exec(s->db, schema_migration_sql[version], NULL, NULL, &msg) != SQLITE_OK) {
            rc = store_fail(s, STORE_ERROR, "migration %s failed: %s",
                            schema_migration_names[version], msg ? msg : "unknown error");
            sqlite3_free(msg);
            goto fail;
        }
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", version + 1);
        if ((rc = store_exec(s, pragma, "recording the schema version")) != STORE_OK)
            goto fail;
        if ((rc = store_commit(s)) != STORE_OK)
            return rc;
        /* Creating a database is routine; upgrading one that holds data is news. */
        if (fresh)
            log_debug("store", "applied migration %s (schema version %d)",
                      schema_migration_names[version], version + 1);
        else
            log_info("store", "upgraded the database with migration %s (schema version %d)",
                     schema_migration_names[version], version + 1);
        version++;
    }
    if ((rc = read_user_version(s, &version)) != STORE_OK)
        return rc;
    if (version > target)
        return refuse_newer(s, version, target);
    return STORE_OK;
fail:
    store_rollback(s);
    return rc;
}

static int configure(Store *s)
{
    int rc;
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA page_size = %d", PAGE_SIZE);
    if ((rc = store_exec(s, pragma, "setting the page size")) != STORE_OK)
        return rc;

    sqlite3_stmt *st;
    if ((rc = store_prepare(s, "PRAGMA journal_mode = WAL", &st)) != STORE_OK)
        return rc;
    /* Two connections switching a new file to WAL at once can get SQLITE_BUSY without the
     * busy handler being called (SQLite refuses to wait where waiting could deadlock), so
     * that one case is retried here, within the same busy timeout. */
    int step = sqlite3_step(st);
    for (int waited = 0; (step & 0xff) == SQLITE_BUSY && waited < BUSY_TIMEOUT_MS;
         waited += 10) {
        sqlite3_reset(st);
        sqlite3_sleep(10);
        step = sqlite3_step(st);
    }
    if (step != SQLITE_ROW) {
        rc = store_db_fail(s, "switching to WAL mode");
    } else {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        /* An in-memory database (":memory:") cannot use WAL and needs no durability. */
        if (!mode || (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0))
            rc = store_fail(s, STORE_ERROR,
                            "cannot use WAL mode (journal mode is %s): the database must be "
                            "on a local file system", mode ? mode : "unknown");
    }
    sqlite3_finalize(st);
    if (rc != STORE_OK)
        return rc;
    if ((rc = store_exec(s, "PRAGMA synchronous = FULL", "setting synchronous")) != STORE_OK)
        return rc;
    return store_exec(s, "PRAGMA foreign_keys = ON", "enabling foreign keys");
}

/* ---- Fencing: one file per path and process ----------------------------------------- */

struct StorePin {
    char path[PATH_MAX];  /* the database path, its directory resolved */
    dev_t dev;
    ino_t ino;
    int refs;             /* Stores of this process on the path */
    bool reported;        /* the file's loss was logged (until it comes back) */
    StorePin *next;
};

static pthread_mutex_t pins_lock = PTHREAD_MUTEX_INITIALIZER;
static StorePin *pins;   /* guarded by pins_lock, as are every pin's refs and reported */

/* The path with its directory resolved (the last component stays as given, as SQLite
 * opens it) into out; false for in-memory and URI names or an unresolvable directory. */
static bool pin_key(const char *path, char *out, size_t size)
{
    if (!path[0] || strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0)
        return false;
    char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];
    if (snprintf(a, sizeof a, "%s", path) >= (int)sizeof a)
        return false;
    snprintf(b, sizeof b, "%s", path);
    if (!realpath(dirname(a), dir))
        return false;
    return snprintf(out, size, "%s/%s", dir, basename(b)) < (int)size;
}

/* The pin of key with one more reference, or NULL when there is none. */
static StorePin *pin_acquire(const char *key)
{
    pthread_mutex_lock(&pins_lock);
    StorePin *p = pins;
    while (p && strcmp(p->path, key) != 0)
        p = p->next;
    if (p)
        p->refs++;
    pthread_mutex_unlock(&pins_lock);
    return p;
}

/* Pins key to (dev, ino), or takes the pin another thread made meanwhile. NULL when out of
 * memory. */
static StorePin *pin_create(const char *key, dev_t dev, ino_t ino)
{
    pthread_mutex_lock(&pins_lock);
    StorePin *p = pins;
    while (p && strcmp(p->path, key) != 0)
        p = p->next;
    if (p) {
        p->refs++;
    } else if ((p = calloc(1, sizeof *p))) {
        snprintf(p->path, sizeof p->path, "%s", key);
        p->dev = dev;
        p->ino = ino;
        p->refs = 1;
        p->next = pins;
        pins = p;
    }
    pthread_mutex_unlock(&pins_lock);
    return p;
}

static void pin_release(StorePin *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&pins_lock);
    if (--p->refs == 0) {
        StorePin **at = &pins;
        while (*at != p)
            at = &(*at)->next;
        *at = p->next;
        free(p);
    }
    pthread_mutex_unlock(&pins_lock);
}

/* Whether p's path still names p's file; when not, writes why into msg (n bytes) and logs
 * it once per loss. Thread-safe. */
static bool pin_holds(StorePin *p, char *msg, size_t n)
{
    struct stat st;
    bool holds;
    if (stat(p->path, &st) != 0) {
        holds = false;
        if (errno == ENOENT)
            snprintf(msg, n, "the database file %.400s was deleted or moved away while in use: "
                     "writes are refused because they would be lost; restart initlab to "
                     "open the database now at that path", p->path);
        else
            snprintf(msg, n, "the database file %.400s cannot be checked (%s): writes are "
                     "refused because they could be lost", p->path, strerror(errno));
    } else if (st.st_dev != p->dev || st.st_ino != p->ino) {
        holds = false;
        snprintf(msg, n, "the database file %.400s was replaced by another file while in use "
                 "(inode %llu, now %llu): writes are refused because they would be lost; "
                 "restart initlab to open the database now at that path", p->path,
                 (unsigned long long)p->ino, (unsigned long long)st.st_ino);
    } else {
        holds = true;
    }
    pthread_mutex_lock(&pins_lock);
    bool news = p->reported == holds;
    p->reported = !holds;
    pthread_mutex_unlock(&pins_lock);
    if (news && !holds)
        log_error("store", "%s", msg);
    else if (news)
        log_info("store", "the database file %s is back in place: writes resume", p->path);
    return holds;
}

/* SQLite's commit hook: a non-zero return turns the commit into a rollback. */
static int commit_hook(void *arg)
{
    Store *s = arg;
    s->fence[0] = '\0';
    return pin_holds(s->pin, s->fence, sizeof s->fence) ? 0 : 1;
}

int store_verify_file(Store *s)
{
    if (!s->pin)
        return STORE_OK;
    char msg[sizeof s->fence];
    if (pin_holds(s->pin, msg, sizeof msg))
        return STORE_OK;
    return store_fail(s, STORE_UNAVAILABLE, "%s", msg);
}

/* Opens path. A path this process already has open must still name the same file: it is
 * neither created nor migrated otherwise. With create false, a missing file is an error. */
static Store *open_store(const char *path, int max_version, bool create, char *err,
                         size_t errlen)
{
    Store *s = calloc(1, sizeof *s);
    char key[PATH_MAX];
    bool keyed = pin_key(path, key, sizeof key);
    if (!s) {
        if (errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (max_version < 1 || max_version > schema_migration_count) {
        store_fail(s, STORE_INVALID, "schema version %d does not exist (1..%d)", max_version,
                   schema_migration_count);
        goto fail;
    }
    if (keyed)
        s->pin = pin_acquire(key);
    struct stat st;
    if (s->pin && !pin_holds(s->pin, s->fence, sizeof s->fence)) {
        store_fail(s, STORE_UNAVAILABLE, "%s", s->fence);
        goto fail;
    }
    if (!s->pin && !create && stat(path, &st) != 0) {
        store_fail(s, STORE_NOT_FOUND, "no database at %s (%s)", path, strerror(errno));
        goto fail;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                (create && !s->pin ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        store_fail(s, STORE_ERROR, "%s", s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    if (configure(s) != STORE_OK || migrate(s, max_version) != STORE_OK ||
        read_user_version(s, &s->schema) != STORE_OK)
        goto fail;
    if (keyed && !s->pin) {
        /* The file exists now (configure wrote its header): pin what was opened. */
        if (stat(path, &st) != 0) {
            store_fail(s, STORE_ERROR, "%s", strerror(errno));
            goto fail;
        }
        if (!(s->pin = pin_create(key, st.st_dev, st.st_ino))) {
            store_fail(s, STORE_ERROR, "out of memory");
            goto fail;
        }
        if (!pin_holds(s->pin, s->fence, sizeof s->fence)) {
            store_fail(s, STORE_UNAVAILABLE, "%s", s->fence);
            goto fail;
        }
    }
    if (s->pin)
        sqlite3_commit_hook(s->db, commit_hook, s);
    s->errmsg[0] = '\0';
    s->errcode = STORE_OK;
    s->fence[0] = '\0';
    return s;
fail:
    /* The fence's message names the file itself. */
    if (errlen && s->errcode == STORE_UNAVAILABLE)
        snprintf(err, errlen, "%s", s->errmsg);
    else if (errlen)
        snprintf(err, errlen, "%s: %s", path, s->errmsg);
    sqlite3_close(s->db);
    pin_release(s->pin);
    free(s);
    return NULL;
}

Store *store_open_version(const char *path, int max_version, char *err, size_t errlen)
{
    return open_store(path, max_version, true, err, errlen);
}

Store *store_open(const char *path, char *err, size_t errlen)
{
    return open_store(path, schema_migration_count, true, err, errlen);
}

Store *store_open_existing(const char *path, char *err, size_t errlen)
{
    return open_store(path, schema_migration_count, false, err, errlen);
}

void store_close(Store *s)
{
    if (!s)
        return;
    if (sqlite3_close(s->db) != SQLITE_OK)
        log_error("store", "closing the database: %s", sqlite3_errmsg(s->db));
    pin_release(s->pin);
    free(s);
}

const char *store_errmsg(const Store *s)
{
    return s->errmsg;
}

int store_errcode(const Store *s)
{
    return s->errcode;
}

/* ---- Integrity ----------------------------------------------------------------------- */

/* Writes each row of st to f as one line, prefix then "column=value" pairs, skipping a
 * single "ok" row (integrity_check's all-well answer). */
static int collect_lines(Store *s, sqlite3_stmt *st, const char *prefix, FILE *f)
{
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int cols = sqlite3_column_count(st);
        const char *first = (const char *)sqlite3_column_text(st, 0);
        if (cols == 1 && first && strcmp(first, "ok") == 0)
            continue;
        fputs(prefix, f);
        for (int c = 0; c < cols; c++) {
            const char *v = (const char *)sqlite3_column_text(st, c);
            fprintf(f, "%s%s=%s", c ? " " : "", sqlite3_column_name(st, c), v ? v : "NULL");
        }
        fputc('\n', f);
    }
    return step == SQLITE_DONE ? STORE_OK : store_db_fail(s, "checking the database");
}

int store_check_integrity(Store *s, char **report)
{
    static const struct { const char *sql, *prefix; } checks[] = {
        {"PRAGMA integrity_check", "integrity_check: "},
        {"PRAGMA foreign_key_check", "foreign_key_check: "},
    };
    *report = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return store_fail(s, STORE_ERROR, "out of memory");
    int rc = STORE_OK;
    for (size_t i = 0; i < sizeof checks / sizeof checks[0] && rc == STORE_OK; i++) {
        sqlite3_stmt *st;
        if ((rc = store_prepare(s, checks[i].sql, &st)) == STORE_OK) {
            rc = collect_lines(s, st, checks[i].prefix, f);
            sqlite3_finalize(st);
        }
    }
    fclose(f);
    if (rc != STORE_OK || len == 0) {
        free(buf);
        return rc;
    }
    *report = buf;
    return STORE_OK;
}

/* ---- Backup -------------------------------------------------------------------------- */

int store_backup(Store *s, const char *dest_path)
{
    const char *src_path = sqlite3_db_filename(s->db, "main");
    struct stat a, b;
    if (src_path && src_path[0] && stat(src_path, &a) == 0 && stat(dest_path, &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return store_fail(s, STORE_INVALID, "backup: %s is the database itself", dest_path);

    sqlite3 *dest = NULL;
    int rc = STORE_OK;
    if (sqlite3_open_v2(dest_path, &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL)
        != SQLITE_OK) {
        rc = store_fail(s, STORE_ERROR, "backup: opening %s: %s", dest_path,
                        dest ? sqlite3_errmsg(dest) : "out of memory");
        goto cleanup;
    }
    sqlite3_busy_timeout(dest, BUSY_TIMEOUT_MS);
    sqlite3_backup *bk = sqlite3_backup_init(dest, "main", s->db, "main");
    if (!bk) {
        rc = store_fail(s, STORE_ERROR, "backup to %s: %s", dest_path, sqlite3_errmsg(dest));
        goto cleanup;
    }
    /* All pages in one step: one consistent snapshot of the source. In WAL mode that
     * snapshot blocks no writer; a busy destination is retried for the busy timeout. */
    int step, waited = 0;
    while ((step = sqlite3_backup_step(bk, -1)) == SQLITE_BUSY || step == SQLITE_LOCKED) {
        if (waited >= BUSY_TIMEOUT_MS)
            break;
        sqlite3_sleep(20);
        waited += 20;
    }
    sqlite3_backup_finish(bk);
    if (step != SQLITE_DONE)
        rc = store_fail(s, STORE_ERROR, "backup to %s: %s", dest_path, sqlite3_errstr(step));
cleanup:
    if (sqlite3_close(dest) != SQLITE_OK && rc == STORE_OK)
        rc = store_fail(s, STORE_ERROR, "backup: closing %s: %s", dest_path,
                        sqlite3_errmsg(dest));
    return rc;
}

/* ---- Query plans --------------------------------------------------------------------- */

int store_explain(Store *s, StoreQuery q, char *out, size_t n)
{
    static const struct { StoreQuery q; const char *sql; } queries[] = {
        {STORE_QUERY_STATS_EPOCH, store_sql_stats_epoch},
        {STORE_QUERY_STATS_LAYER, store_sql_stats_layer},
        {STORE_QUERY_STATS_EPOCHS, store_sql_stats_next_epoch},
        {STORE_QUERY_EPOCHS, store_sql_epoch_list},
        {STORE_QUERY_JOB_CLAIM, store_sql_job_claim},
        {STORE_QUERY_GRID_SUMMARY, store_sql_grid_summary},
        {STORE_QUERY_DATASET_FILES, store_sql_dataset_files},
    };
    const char *sql = NULL;
    for (int i = 0; i < COUNT(queries); i++)
        if (queries[i].q == q)
            sql = queries[i].sql;
    if (!sql)
        return store_fail(s, STORE_INVALID, "no query %d to explain", (int)q);

    char *text = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
    if (!text)
        return store_fail(s, STORE_ERROR, "out of memory");
    sqlite3_stmt *st;
    int rc = store_prepare(s, text, &st);
    sqlite3_free(text);
    if (rc != STORE_OK)
        return rc;
    size_t len = 0;
    if (n)
        out[0] = '\0';
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);
        if (len < n) {
            int w = snprintf(out + len, n - len, "%s%s", len ? "\n" : "", detail ? detail : "");
            len += w > 0 ? (size_t)w : 0;
        }
    }
    if (step != SQLITE_DONE)
        rc = store_db_fail(s, "explaining a query");
    sqlite3_finalize(st);
    return rc;
}
