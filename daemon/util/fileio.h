/* fileio.h — durable file writes: temp file, fsync, rename, directory fsync. */
#ifndef INITLAB_UTIL_FILEIO_H
#define INITLAB_UTIL_FILEIO_H

#include <stddef.h>

/* One piece of the file's content. */
typedef struct {
    const void *data;
    size_t len;
} FilePart;

/* Replaces path atomically with the concatenation of parts: writes "path.tmp.PID" in the
 * same directory, fsyncs it, renames it over path and fsyncs the directory, so a crash
 * leaves either the old file or the whole new one. Returns 0, or -1 with a message naming
 * the step, the path and the system error in err[errlen]. A failure before the rename
 * removes the temp file and leaves path as it was; a failed fsync of the directory (the
 * last step) leaves the whole new file in place, and the message says so. Thread-safe for
 * distinct paths. */
int file_write_atomic(const char *path, const FilePart *parts, int n_parts, char *err,
                      size_t errlen);

/* Creates directory path and its missing parents (mode 0755). Returns 0 when it exists
 * afterwards, -1 with a message otherwise. */
int file_mkdirs(const char *path, char *err, size_t errlen);

/* Moves the complete file tmp over path durably: fsyncs tmp, renames it (both must be on
 * one file system), fsyncs the directory. Returns 0, or -1 with a message; before the
 * rename, path is unchanged and tmp is left for the caller to remove. */
int file_install(const char *tmp, const char *path, char *err, size_t errlen);

#endif
