/* scan.h — an ImageFolder dataset on disk: its classes, its usable JPEGs and the files skipped.
 *
 * A dataset is a directory with one subfolder per class (as Keras'
 * image_dataset_from_directory reads it). Class folders are the root's subdirectories
 * (symlinks to directories inside the root count), sorted by the byte order of their
 * names. Files are gathered recursively below each class folder (symlinked subdirectories
 * are not followed, as Keras' follow_links=False, and are listed in skipped[]); names
 * starting with '.' (files and folders) are ignored, as are files directly in the root. A
 * file whose name ends in .jpg or .jpeg (any case) is checked with data_jpeg_check
 * (decode.h); one that fails, or that has another extension, is listed in skipped[] with a
 * reason and never used. Within a class, files are ordered by the byte order of their
 * relative path. A class folder left without a usable image is not a class: it is listed
 * in skipped[] ("no usable image ...") and the classes after it move up one label, so
 * that every label names a class that has images.
 *
 * Sealed: the root is opened once (data_root_open) and every folder and file below it
 * with data_open_beneath (fsutil.h), so nothing outside the root is opened, read or
 * indexed. A symbolic link (class folder, subfolder or file) that leads out of the root is
 * listed in skipped[] as "symbolic link out of the dataset folder"; links that stay inside
 * are followed as described above. A file swapped for such a link after the scan is
 * refused again when the cache opens it (data_jpeg_decode_at).
 *
 * Names are bytes: class_names, paths and skipped paths hold the names exactly as the file
 * system has them, valid UTF-8 or not; data_name_text (names.h) gives their one-to-one
 * text form wherever they leave as text (JSON, CSV, the store, messages).
 *
 * The index also carries each file's split (split.h), filled by data_split_assign. */
#ifndef INITLAB_DATA_SCAN_H
#define INITLAB_DATA_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Which part of the data a file belongs to. Values are stable (the store persists them). */
typedef enum {
    DATA_SPLIT_TRAIN = 0,
    DATA_SPLIT_VAL = 1,
    DATA_SPLIT_TEST = 2,
    DATA_SPLIT_NONE = 3,  /* not assigned yet, or excluded (a file that failed to decode) */
} DataSplit;

typedef struct {
    char *path;     /* relative to the root, e.g. "dandelion/img_0001.jpg" */
    char *reason;   /* one line, e.g. "truncated: no end-of-image marker (...)" */
} DataSkipped;

typedef struct DatasetIndex {
    char *root;              /* absolute, symlinks resolved (bytes) */
    int n_classes;
    char **class_names;      /* [n_classes], byte order; folder names as bytes */
    int n_files;
    char **paths;            /* [n_files], relative to root (bytes), grouped by class */
    int *labels;             /* [n_files], class index; non-decreasing */
    int64_t *sizes;          /* [n_files], bytes */
    int64_t *mtimes;         /* [n_files], modification time, ns since the epoch */
    int *widths, *heights;   /* [n_files], from the JPEG header */
    uint8_t *split;          /* [n_files], DataSplit; DATA_SPLIT_NONE until assigned */
    int n_skipped;
    DataSkipped *skipped;    /* [n_skipped], in class and path order, then exclusions */
} DatasetIndex;

typedef struct {
    int threads;   /* file checks in parallel (I/O bound); <= 0 means 2 */
    bool quick;    /* check headers and end markers only; otherwise (the default) decode
                      every image at 1/8 scale, which finds damaged image data */
    bool canonical; /* root is a canonical absolute path (a registered dataset's, resolved
                       at registration): opened as it is, a symbolic link anywhere in it
                       refused, instead of being resolved with realpath — so a folder
                       swapped for a link since registration cannot lead the scan away */
    /* Asked often (every directory entry and file) from the scan's threads; true stops
     * the scan. May be NULL. Must be thread-safe and cheap. */
    bool (*cancel)(void *user);
    void *cancel_user;
} DataScanOptions;

/* Scans the dataset at root (options may be NULL for defaults). On success returns 0 and
 * sets *out to a new index (free with data_index_free); bad files are not errors. Returns
 * -1 with a message in err[errlen] when root is not a readable directory, has no class
 * folder or no usable image, or memory runs out; -2 ("scan cancelled") when
 * options->cancel asked to stop. Thread-safe (no shared state). */
int data_scan(const char *root, const DataScanOptions *options, DatasetIndex **out, char *err,
              size_t errlen);

/* Frees an index; NULL is fine. */
void data_index_free(DatasetIndex *index);

/* Number of files of class c (0 <= c < n_classes) with split s; s = -1 counts all. */
int data_index_count(const DatasetIndex *index, int c, int s);

/* Moves file i out of use: split becomes DATA_SPLIT_NONE and (path, reason) is appended to
 * skipped. Used when the cache finds that a file passing the scan does not decode.
 * Returns 0, or -1 when out of memory (the split is changed regardless). Like every
 * function that changes an index, not thread-safe on the same index; reading functions
 * (count, fingerprint, split_indices) may run concurrently with each other. */
int data_index_exclude(DatasetIndex *index, int i, const char *reason);

/* Fingerprint of the file set: class names and, per file, relative path, label, size and
 * modification time. Equal fingerprints mean an unchanged dataset. Can't fail. */
uint64_t data_index_fingerprint(const DatasetIndex *index);

#endif
