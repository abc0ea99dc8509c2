/* fault_sqlite.h — SQLite's hooks for the fault-test build (see fault_sqlite.c). */
#ifndef INITLAB_TEST_FAULT_SQLITE_H
#define INITLAB_TEST_FAULT_SQLITE_H

#include <stddef.h>

/* Routes SQLite's allocations and file writes/syncs through fault.h's counters: shuts
 * SQLite down, installs the allocator (lookaside off) and registers the wrapping VFS as
 * the default. Idempotent; call before any connection is open. Returns 0, or -1 with a
 * message in err. */
int fault_sqlite_install(char *err, size_t errlen);

/* PRAGMA integrity_check of the database at path, on a connection of its own. Returns 0
 * when it says "ok", else -1 with what it said (or why it could not run) in msg. */
int fault_sqlite_integrity(const char *path, char *msg, size_t size);

#endif
