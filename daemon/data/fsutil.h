/* fsutil.h — small file-system helpers of the data module: opening files sealed inside a
 * dataset folder, whole-file reads, path joins, directory creation, exclusive writes and a
 * 64-bit hash for fingerprints.
 *
 * The seal: a dataset is read through a directory descriptor of its folder (its root, from
 * data_root_open) and every file or folder below it is opened with data_open_beneath,
 * which resolves the relative path one component at a time and never lets it leave the
 * root: a ".." above the root, an absolute symbolic link, or a relative one that climbs
 * out fails with -EXDEV; magic links (/proc/PID/fd/N and the like) with -ELOOP. Symbolic
 * links that stay inside the root are followed. The kernel does this with openat2(2) and
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS (Linux 5.6 and later); where openat2 is missing
 * or filtered (old kernels, container seccomp profiles) the same rules are applied by
 * data_open_beneath_portable with openat(O_NOFOLLOW) and readlinkat, component by
 * component, so a dataset reads the same on every kernel.
 *
 * Every function here is thread-safe (no shared state) and reports errors as -errno. */
#ifndef INITLAB_DATA_FSUTIL_H
#define INITLAB_DATA_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Opens the directory at the absolute path abs as an O_PATH descriptor, refusing a path
 * that passes through any symbolic link (-ELOOP): abs is meant to be canonical
 * (realpath), so a link found in it was put there afterwards. Returns the descriptor
 * (close it) or -errno. */
int data_root_open(const char *abs);

/* Opens rel (a relative path) below the directory root_fd with open(2) flags (O_CLOEXEC is
 * added; O_CREAT and O_TMPFILE are not allowed), following symbolic links only while they
 * stay below root_fd. Returns a descriptor or -errno: -EXDEV when rel or a link in it leads
 * out of root_fd, -ELOOP for a magic link or too many links, as open(2) otherwise. */
int data_open_beneath(int root_fd, const char *rel, int flags);

/* data_open_beneath without openat2: the same rules walked in user space. Used when the
 * kernel refuses openat2; public so that tests can hold it to the kernel's answers. */
int data_open_beneath_portable(int root_fd, const char *rel, int flags);

/* One line for an error of data_open_beneath: "symbolic link out of the dataset folder"
 * for -EXDEV, "symbolic link loop or magic link" for -ELOOP, strerror otherwise. Can't
 * fail; the text is static. */
const char *data_open_error(int neg_errno);

/* Reads the rest of the open file fd into *buf as data_read_file does. Does not close fd. */
int data_read_fd(int fd, uint8_t **buf, size_t *cap, size_t *len);

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
