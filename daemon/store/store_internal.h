/* store_internal.h — what the files of store/ share: the Store struct, error and binding
 * helpers, transactions, and the SQL of the statements store_explain() can show.
 * Not for use outside daemon/store/. */
#ifndef INITLAB_STORE_INTERNAL_H
#define INITLAB_STORE_INTERNAL_H

#include "store/store.h"

#include <sqlite3.h>

typedef struct StorePin StorePin;

struct Store {
    sqlite3 *db;          /* owned; used by one thread at a time */
    char errmsg[1024];    /* message of the last failed call */
    int errcode;          /* StoreCode of the last failed call */
    int schema;           /* schema version after opening (store_open_version may stop early) */
    StorePin *pin;        /* the file this connection opened (store.c); NULL in memory */
    char fence[1024];     /* why the last commit was refused ("" when none was) */
    int tx_depth;         /* store_begin nesting: 0 outside, 1 in BEGIN IMMEDIATE, more in
                             savepoints (store_attempt_begin wraps other writes) */
};

/* Sets s's error message (printf-style) and returns code. */
int store_fail(Store *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Records the connection's current SQLite error as "what: message" and returns its
 * StoreCode: foreign key -> NOT_FOUND, unique/primary key -> CONFLICT, check/not null ->
 * INVALID, anything else -> ERROR. */
int store_db_fail(Store *s, const char *what);
/* Prepares sql into *st. STORE_OK or STORE_ERROR (message set). */
int store_prepare(Store *s, const char *sql, sqlite3_stmt **st);
/* Steps a statement that returns no rows; STORE_OK on SQLITE_DONE, else store_db_fail. */
int store_step_done(Store *s, sqlite3_stmt *st, const char *what);
/* Runs SQL without parameters or results. STORE_OK or store_db_fail's code. */
int store_exec(Store *s, const char *sql, const char *what);
/* BEGIN IMMEDIATE (takes the write lock now, waiting up to the busy timeout), COMMIT,
 * ROLLBACK. Rollback ignores errors: it runs on paths that already failed. They nest:
 * inside an open store_begin, another is a SAVEPOINT, its commit a RELEASE and its
 * rollback undoes only its own part, so that a write function may run inside
 * store_attempt_begin's transaction unchanged. */
int store_begin(Store *s);
int store_commit(Store *s);
void store_rollback(Store *s);
/* Runs the statements sql[0..n) in one transaction (nested where one is open), each with
 * ?1 = a and, where it has a ?2, ?2 = b; what names the work in an error. Returns STORE_OK
 * or the first error (all rolled back). */
int store_run_in_transaction(Store *s, const char *const *sql, int n, int64_t a, int64_t b,
                             const char *what);

/* The schema version that gave jobs their uids (schema/004_job_identity.sql). */
#define STORE_SCHEMA_IDENTITY 4
/* Whether the open database has the migration whose file name ends with suffix
 * ("_lab_records.sql"): by name, so that renumbered migrations keep their meaning. */
bool store_schema_has(const Store *s, const char *suffix);
#define STORE_MIGRATION_LAB "_lab_records.sql" 

/* Fills out (STORE_UID_LEN + 1 bytes) with 128 random bits from getrandom(2) as lower-case
 * hex. STORE_OK, or STORE_ERROR with the message set when no randomness is available. */
int store_random_uid(Store *s, char *out);

/* The current time, unix seconds. */
double store_now(void);
/* STORE_INVALID (message names `what`) unless v is non-NULL, non-empty (if required) and
 * shorter than max bytes with its NUL. */
int store_check_text(Store *s, const char *what, const char *v, size_t max, int required);

/* Binding: NULL text and NaN doubles become SQL NULL; 0 ids become NULL (no reference). */
int store_bind_text(sqlite3_stmt *st, int i, const char *v);
int store_bind_real(sqlite3_stmt *st, int i, double v);
int store_bind_id(sqlite3_stmt *st, int i, int64_t id);
/* Reading: NULL REAL -> NAN; NULL time -> 0; NULL id -> 0. */
double store_col_real(sqlite3_stmt *st, int i);
double store_col_time(sqlite3_stmt *st, int i);
/* Copies a text column into dst (n bytes, truncating, always terminated). */
void store_col_copy(sqlite3_stmt *st, int i, char *dst, size_t n);
/* A heap copy of a text column into *out (NULL for SQL NULL). STORE_OK or STORE_ERROR on
 * allocation failure (message set). */
int store_col_dup(Store *s, sqlite3_stmt *st, int i, char **out);

/* Makes room for element count of a heap array of *cap elements of elem_size bytes (NULL
 * with *cap == 0 to start): when it is full, grows it to first_cap elements, or to twice its
 * size. Returns the array, perhaps moved, or NULL with the message set when out of memory;
 * arr is then unchanged and still the caller's. */
void *store_grow(Store *s, void *arr, int count, int *cap, int first_cap, size_t elem_size);

/* Reads the current row of a statement into *row, one element of the array being
 * collected. STORE_OK, or a StoreCode with the message set and nothing in *row to free. */
typedef int (*StoreReadRow)(Store *s, sqlite3_stmt *st, void *row);
/* Releases n rows and the array that holds them (a row type's _free function). */
typedef void (*StoreFreeRows)(void *rows, int n);
/* Steps st to the end, reading each row with read into a heap array of elements of
 * elem_size bytes that starts with room for first_cap (> 0) rows and doubles when full.
 * Finalizes st in every case. STORE_OK with *rows (NULL when there is no row; the caller
 * owns it) and *n; otherwise *rows = NULL, *n = 0, the rows read so far released with
 * free_rows (with free() when free_rows is NULL: rows that own no heap memory), and a
 * failed step reported as "what: message". */
int store_collect_rows(Store *s, sqlite3_stmt *st, size_t elem_size, int first_cap,
                       StoreReadRow read, StoreFreeRows free_rows, const char *what,
                       void **rows, int *n);

/* SQL conditions of the list filters: a row whose tags column (a JSON array) holds the
 * tag bound to param, or any row when it is NULL; a row whose text expression contains
 * the pattern store_bind_like bound to param, or any row when it is NULL. */
#define STORE_TAG_FILTER(column, param)                                                    \
    "(" param " IS NULL OR EXISTS (SELECT 1 FROM json_each(" column ") WHERE value = " param "))"
#define STORE_TEXT_FILTER(expr, param)                                                     \
    "(" param " IS NULL OR (" expr ") LIKE " param " ESCAPE '\\')"
/* Binds "%text%" with text's %, _ and \ escaped (LIKE ... ESCAPE '\'), or NULL for NULL
 * or "". Returns the sqlite3 status. */
int store_bind_like(sqlite3_stmt *st, int i, const char *text);

/* Formats ids as a JSON array into a heap string; parses one back (heap array, count).
 * Both return STORE_OK or STORE_ERROR with the message set. */
int store_ids_format(Store *s, const int64_t *ids, int n, char **out);
int store_ids_parse(Store *s, const char *text, int64_t **ids, int *n);

/* SQL of the statements store_explain() shows; defined next to the code that runs them. */
extern const char store_sql_stats_epoch[];
extern const char store_sql_stats_layer[];
extern const char store_sql_stats_next_epoch[];
extern const char store_sql_epoch_list[];
extern const char store_sql_job_claim[];
extern const char store_sql_grid_summary[];
extern const char store_sql_dataset_files[];

#endif
