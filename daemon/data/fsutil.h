/* fsutil.h — small file-system helpers of the data module: whole-file reads, path joins,
 * directory creation, exclusive writes and a 64-bit hash for fingerprints.
 *
 * Every function here is thread-safe (no shared state) and reports errors as -errno. */
#ifndef INITLAB_DATA_FSUTIL_H
#define INITLAB_DATA_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Reads the whole file at path into *buf, growing it with realloc when *cap is too small
 * (*buf may be NULL with *cap 0). On success returns 0 and sets *len; the buffer stays
 * owned by the caller. Returns -errno on failure (*buf stays valid and owned). */
int data_read_file(const char *path, uint8_t **buf, size_t *cap, size_t *len);

/* "a" + "/" + "b" into a new string (malloc); NULL when out of memory. */
char *data_path_join(const char *a, const char *b);

/* Creates directory path and its missing parents (mode 0777 & umask). Returns 0 when the
 * directory exists afterwards, -errno otherwise. */
int data_mkdirs(const char *path);

/* Writes len bytes to a new file at path; fails with -EEXIST rather than replacing an
 * existing file. A partly written file is removed. Returns 0 or -errno. */
int data_write_new_file(const char *path, const void *buf, size_t len);

/* 64-bit FNV-1a over len bytes, continuing from h (start with DATA_HASH_INIT). */
#define DATA_HASH_INIT 0xcbf29ce484222325ULL
uint64_t data_hash(uint64_t h, const void *buf, size_t len);

#endif
