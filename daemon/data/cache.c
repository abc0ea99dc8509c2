/* cache.c — build, validate and map the decoded-image cache file (cache.h).
 *
 * DESIGN: building runs `threads` decode workers (data_run_workers). The calling thread
 * only watches: it reads the atomic counters and calls the progress callback, so the
 * callback never runs concurrently; `cancelled` is its own. Workers claim images through the atomic `next`, decode into
 * their own buffer with their own DataCodec, pwrite the image to its slot and store its
 * status byte in status[i] (each slot written by exactly one worker, read by the caller
 * after joining). `stop` (atomic) ends the workers early on cancel or error; the first
 * I/O error is kept in `error` (atomic errno). Across processes and threads the build is
 * serialized by flock on <file>.lock. */
#include "data/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "data/decode.h"
#include "data/fsutil.h"
#include "data/names.h"
#include "data/workers.h"
#include "util/log.h"

#define MAGIC "INITLABC"
#define HEADER_BYTES 4096
#define PAGE 4096

struct DataCache {
    int size, count, n_classes;
    DataResize resize;
    uint8_t *map;            /* whole file, read-only */
    size_t map_len;
    const uint8_t *images;   /* map + data_offset */
    int *labels;             /* [count] */
    uint8_t *status;         /* [count], DataJpegStatus */
    uint64_t fingerprint;
    char *path;
    bool built;
    int use_fd;              /* <path>.use, held with a shared flock while open: in use */
};

/* The size limit of a cache directory's *.cache files, bytes; 0: none. */
static _Atomic uint64_t cache_limit;

void data_cache_set_limit(uint64_t bytes)
{
    atomic_store(&cache_limit, bytes);
}

uint64_t data_cache_limit(void)
{
    return atomic_load(&cache_limit);
}

typedef struct {
    uint64_t fingerprint, status_offset, data_offset;
    uint32_t version, size, resize, count, n_failed;
} Header;

static uint64_t round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

static void header_encode(const Header *h, uint8_t *buf)
{
    memset(buf, 0, HEADER_BYTES);
    memcpy(buf, MAGIC, 8);
    memcpy(buf + 8, &h->version, 4);
    memcpy(buf + 12, &h->size, 4);
    memcpy(buf + 16, &h->resize, 4);
    memcpy(buf + 20, &h->count, 4);
    memcpy(buf + 24, &h->fingerprint, 8);
    memcpy(buf + 32, &h->status_offset, 8);
    memcpy(buf + 40, &h->data_offset, 8);
    memcpy(buf + 48, &h->n_failed, 4);
}

static int header_decode(const uint8_t *buf, Header *h)
{
    if (memcmp(buf, MAGIC, 8) != 0)
        return -1;
    memcpy(&h->version, buf + 8, 4);
    memcpy(&h->size, buf + 12, 4);
    memcpy(&h->resize, buf + 16, 4);
    memcpy(&h->count, buf + 20, 4);
    memcpy(&h->fingerprint, buf + 24, 8);
    memcpy(&h->status_offset, buf + 32, 8);
    memcpy(&h->data_offset, buf + 40, 8);
    memcpy(&h->n_failed, buf + 48, 4);
    return 0;
}

static Header expected_header(const DatasetIndex *x, const DataCacheConfig *cfg)
{
    Header h = {0};
    h.version = DATA_CACHE_VERSION;
    h.size = (uint32_t)cfg->size;
    h.resize = (uint32_t)cfg->resize;
    h.count = (uint32_t)x->n_files;
    h.fingerprint = data_index_fingerprint(x);
    h.status_offset = HEADER_BYTES;
    h.data_offset = round_up(HEADER_BYTES + (uint64_t)x->n_files, PAGE);
    return h;
}

static uint64_t image_bytes(const Header *h)
{
    return (uint64_t)h->size * h->size * 3;
}

static char *cache_file_name(const DatasetIndex *x, const DataCacheConfig *cfg)
{
    const char *base = strrchr(x->root, '/');
    base = base && base[1] ? base + 1 : "dataset";
    uint64_t h = data_hash(DATA_HASH_INIT, x->root, strlen(x->root));
    char name[512];
    snprintf(name, sizeof name, "%.200s-%016llx-%d-%s.cache", base, (unsigned long long)h,
             cfg->size, data_resize_name(cfg->resize));
    return data_path_join(cfg->dir, name);
}

/* Maps path when its header matches want; returns 0 and fills c, or -1 (stale/absent). */
static int map_existing(const char *path, const Header *want, DataCache *c)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    uint8_t buf[HEADER_BYTES];
    Header h;
    struct stat st;
    int ok = fstat(fd, &st) == 0 && pread(fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf &&
             header_decode(buf, &h) == 0 && h.version == want->version &&
             h.size == want->size && h.resize == want->resize && h.count == want->count &&
             h.fingerprint == want->fingerprint && h.status_offset == want->status_offset &&
             h.data_offset == want->data_offset &&
             (uint64_t)st.st_size >= h.data_offset + image_bytes(&h) * h.count;
    if (!ok) {
        close(fd);
        return -1;
    }
    size_t len = (size_t)(h.data_offset + image_bytes(&h) * h.count);
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -1;
    c->map = m;
    c->map_len = len;
    c->images = c->map + h.data_offset;
    memcpy(c->status, c->map + h.status_offset, h.count);
    return 0;
}

typedef struct {
    const DatasetIndex *x;
    const DataCacheConfig *cfg;
    int root_fd;            /* the dataset folder: images are opened below it only */
    int fd;
    uint64_t data_offset;
    uint8_t *status;
    atomic_int next, done, stop, error;
    int cancelled;          /* written by the watching thread only */
} BuildJob;

static int write_full(int fd, const void *buf, size_t n, off_t off)
{
    const uint8_t *b = buf;
    size_t w = 0;
    while (w < n) {
        ssize_t r = pwrite(fd, b + w, n - w, off + (off_t)w);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        w += (size_t)r;
    }
    return 0;
}

static void build_worker(void *arg)
{
    BuildJob *job = arg;
    int s = job->cfg->size;
    size_t bytes = (size_t)s * s * 3;
    DataCodec *codec = data_codec_create();
    uint8_t *img = calloc(bytes, 1);
    char reason[256];
    if (!codec || !img) {
        atomic_store(&job->error, ENOMEM);
        atomic_store(&job->stop, 1);
        goto out;
    }
    while (!atomic_load(&job->stop)) {
        int i = atomic_fetch_add(&job->next, 1);
        if (i >= job->x->n_files)
            break;
        DataJpegStatus st = data_jpeg_decode_at(codec, job->root_fd, job->x->paths[i], s,
                                                job->cfg->resize, img, reason, sizeof reason);
        if (st != DATA_JPEG_OK)
            memset(img, 0, bytes);
        job->status[i] = (uint8_t)st;
        off_t off = (off_t)(job->data_offset + (uint64_t)i * bytes);
        int rc = write_full(job->fd, img, bytes, off);
        if (rc != 0) {
            atomic_store(&job->error, -rc);
            atomic_store(&job->stop, 1);
            break;
        }
        atomic_fetch_add(&job->done, 1);
    }
out:
    free(img);
    data_codec_free(codec);
}

static void build_watch(void *arg)
{
    BuildJob *job = arg;
    const DataCacheConfig *cfg = job->cfg;
    if (cfg->progress && !job->cancelled &&
        cfg->progress(cfg->user, atomic_load(&job->done), job->x->n_files)) {
        job->cancelled = 1;
        atomic_store(&job->stop, 1);
    }
}

/* Drops mean-image sidecars of an older cache file at path. */
static void remove_sidecars(const char *dir, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, base, bl) == 0 && strncmp(e->d_name + bl, ".mean-", 6) == 0) {
            char *p = data_path_join(dir, e->d_name);
            if (p)
                unlink(p);
            free(p);
        }
    }
    closedir(d);
}

/* Whether the cache file at path is open somewhere (a shared flock on <path>.use). */
static bool in_use(const char *path)
{
    char use[4200];
    snprintf(use, sizeof use, "%s.use", path);
    int fd = open(use, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool busy = flock(fd, LOCK_EX | LOCK_NB) != 0;
    close(fd);
    return busy;
}

typedef struct {
    char *path;
    uint64_t bytes;
    time_t used;
} CacheFile;

/* The *.cache files of dir (paths heap), their sizes and last use (mtime). */
static int list_caches(const char *dir, CacheFile **out, int *n, uint64_t *total)
{
    *out = NULL;
    *n = 0;
    *total = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 7 || strcmp(e->d_name + len - 6, ".cache") != 0)
            continue;
        char *p = data_path_join(dir, e->d_name);
        struct stat st;
        if (!p || stat(p, &st) != 0) {
            free(p);
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            CacheFile *a = realloc(*out, sizeof *a * (size_t)cap);
            if (!a) {
                free(p);
                break;
            }
            *out = a;
        }
        (*out)[(*n)++] = (CacheFile){p, (uint64_t)st.st_blocks * 512, st.st_mtime};
        *total += (uint64_t)st.st_blocks * 512;
    }
    closedir(d);
    return 0;
}

int data_cache_remove_dataset(const char *dir, const char *root)
{
    const char *base = strrchr(root, '/');
    base = base && base[1] ? base + 1 : "dataset";
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%.200s-%016llx-", base,
             (unsigned long long)data_hash(DATA_HASH_INIT, root, strlen(root)));
    CacheFile *list;
    int n, removed = 0;
    uint64_t total;
    if (list_caches(dir, &list, &n, &total) < 0)
        return 0;
    for (int i = 0; i < n; i++) {
        const char *name = strrchr(list[i].path, '/');
        name = name ? name + 1 : list[i].path;
        if (strncmp(name, prefix, strlen(prefix)) == 0 && unlink(list[i].path) == 0) {
            remove_sidecars(dir, list[i].path);
            removed++;
        }
        free(list[i].path);
    }
    free(list);
    return removed;
}

int data_cache_usage(const char *dir, DataCacheFile **files, int *n, uint64_t *total)
{
    CacheFile *list;
    if (list_caches(dir, &list, n, total) < 0)
        return -1;
    *files = calloc((size_t)(*n > 0 ? *n : 1), sizeof **files);
    if (!*files) {
        for (int i = 0; i < *n; i++)
            free(list[i].path);
        free(list);
        return -1;
    }
    for (int i = 0; i < *n; i++) {
        const char *base = strrchr(list[i].path, '/');
        snprintf((*files)[i].name, sizeof (*files)[i].name, "%s", base ? base + 1 : list[i].path);
        (*files)[i].bytes = list[i].bytes;
        (*files)[i].last_used = (double)list[i].used;
        (*files)[i].in_use = in_use(list[i].path);
        free(list[i].path);
    }
    free(list);
    return 0;
}

/* Before building the cache file keep (need bytes): deletes the least recently used cache
 * files of dir that no process has open until the directory's caches stay within the
 * limit (data_cache_set_limit) and the file system has room. Returns 0, or -1 with a
 * message when that is impossible (nothing is deleted then). */
static int make_room(const char *dir, const char *keep, uint64_t need, char *err,
                     size_t errlen)
{
    uint64_t limit = data_cache_limit();
    struct statvfs vfs;
    uint64_t free_bytes = statvfs(dir, &vfs) == 0 ? (uint64_t)vfs.f_bavail * vfs.f_frsize
                                                  : UINT64_MAX;
    if (limit && need > limit) {
        snprintf(err, errlen, "the image cache of this job needs %.2f GB, more than the "
                 "cache limit of %.2f GB (--cache-limit): raise it, or lower image_size",
                 need / 1e9, limit / 1e9);
        return -1;
    }
    CacheFile *list;
    int n;
    uint64_t total;
    if (list_caches(dir, &list, &n, &total) < 0) {
        snprintf(err, errlen, "cannot list cache directory %s: %s", dir, strerror(errno));
        return -1;
    }
    /* Least recently used first; the file being rebuilt does not count. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && list[j].used < list[j - 1].used; j--) {
            CacheFile t = list[j];
            list[j] = list[j - 1];
            list[j - 1] = t;
        }
    uint64_t freeable = 0, held = 0;
    bool *drop = calloc((size_t)(n > 0 ? n : 1), sizeof *drop);
    int rc = drop ? 0 : -1;
    if (!drop)
        snprintf(err, errlen, "out of memory");
    for (int i = 0; drop && i < n; i++)
        if (strcmp(list[i].path, keep) == 0) {
            total -= list[i].bytes;
            free_bytes = free_bytes == UINT64_MAX ? free_bytes : free_bytes + list[i].bytes;
        }
    uint64_t over_limit = limit && total + need > limit ? total + need - limit : 0;
    uint64_t over_disk = need > free_bytes ? need - free_bytes : 0;
    uint64_t want = over_limit > over_disk ? over_limit : over_disk;
    for (int i = 0; drop && i < n && freeable < want; i++) {
        if (strcmp(list[i].path, keep) == 0)
            continue;
        if (in_use(list[i].path)) {
            held += list[i].bytes;
            continue;
        }
        drop[i] = true;
        freeable += list[i].bytes;
    }
    if (drop && freeable < want) {
        snprintf(err, errlen, "the image cache of this job needs %.2f GB: %s, and the "
                 "caches in use hold %.2f GB", need / 1e9,
                 over_limit >= over_disk ? "the cache limit (--cache-limit) would be exceeded"
                                         : "the file system has too little free space",
                 held / 1e9);
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < n; i++) {
        if (!drop[i])
            continue;
        if (unlink(list[i].path) == 0) {
            log_info("cache", "evicted %s (%.2f GB, least recently used) to make room",
                     list[i].path, list[i].bytes / 1e9);
            remove_sidecars(dir, list[i].path);
        }
    }
    for (int i = 0; i < n; i++)
        free(list[i].path);
    free(list);
    free(drop);
    return rc;
}

/* Decodes every image into path.tmp and renames it to path. Returns 0, -1 (err), -2. */
static int build(const DatasetIndex *x, const DataCacheConfig *cfg, const char *path,
                 Header *h, uint8_t *status, char *err, size_t errlen)
{
    int rc = -1;
    int root_fd = data_root_open(x->root);
    if (root_fd < 0) {
        char shown[512];
        snprintf(err, errlen, "cannot open dataset directory %s: %s",
                 data_name_text_buf(x->root, shown, sizeof shown),
                 root_fd == -ELOOP ? "a symbolic link appeared in its path"
                                   : strerror(-root_fd));
        return -1;
    }
    char *tmp = malloc(strlen(path) + 5);
    if (!tmp) {
        snprintf(err, errlen, "out of memory");
        close(root_fd);
        return -1;
    }
    sprintf(tmp, "%s.tmp", path);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create cache file %s: %s", tmp, strerror(errno));
        close(root_fd);
        free(tmp);
        return -1;
    }
    uint64_t total = h->data_offset + image_bytes(h) * h->count;
    if (make_room(cfg->dir, path, total, err, errlen) < 0)
        goto cleanup;
    if (ftruncate(fd, (off_t)total) != 0) {
        snprintf(err, errlen, "cannot size cache file %s: %s", tmp, strerror(errno));
        goto cleanup;
    }

    BuildJob job = {.x = x, .cfg = cfg, .root_fd = root_fd, .fd = fd, .data_offset = h->data_offset,
                    .status = status};
    atomic_init(&job.next, 0);
    atomic_init(&job.done, 0);
    atomic_init(&job.stop, 0);
    atomic_init(&job.error, 0);
    if (cfg->progress && cfg->progress(cfg->user, 0, x->n_files)) {
        snprintf(err, errlen, "cache build cancelled");
        rc = -2;
        goto cleanup;
    }
    data_run_workers(cfg->threads > 0 ? cfg->threads : 2, build_worker, build_watch, &job);
    if (job.cancelled) {
        snprintf(err, errlen, "cache build cancelled");
        rc = -2;
        goto cleanup;
    }
    if (atomic_load(&job.error)) {
        snprintf(err, errlen, "cannot write cache file %s: %s", tmp,
                 strerror(atomic_load(&job.error)));
        goto cleanup;
    }

    h->n_failed = 0;
    for (int i = 0; i < x->n_files; i++)
        h->n_failed += status[i] != DATA_JPEG_OK;
    uint8_t hb[HEADER_BYTES];
    header_encode(h, hb);
    int wr = write_full(fd, status, (size_t)h->count, (off_t)h->status_offset);
    if (wr == 0)
        wr = write_full(fd, hb, sizeof hb, 0);
    if (wr == 0 && fsync(fd) != 0)
        wr = -errno;
    if (wr != 0) {
        snprintf(err, errlen, "cannot write cache file %s: %s", tmp, strerror(-wr));
        goto cleanup;
    }
    remove_sidecars(cfg->dir, path);
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    int dfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    rc = 0;
cleanup:
    close(fd);
    close(root_fd);
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

static int already_skipped(const DatasetIndex *x, const char *path)
{
    for (int k = 0; k < x->n_skipped; k++)
        if (strcmp(x->skipped[k].path, path) == 0)
            return 1;
    return 0;
}

int data_cache_open(DatasetIndex *x, const DataCacheConfig *cfg, DataCache **out, char *err,
                    size_t errlen)
{
    int rc = -1, lock_fd = -1;
    char *lock_path = NULL;
    *out = NULL;
    if (cfg->size < 1 || cfg->size > DATA_RESIZE_MAX) {
        snprintf(err, errlen, "image size %d out of range 1..%d", cfg->size, DATA_RESIZE_MAX);
        return -1;
    }
    DataCache *c = calloc(1, sizeof *c);
    if (!c)
        goto oom;
    c->use_fd = -1;
    c->size = cfg->size;
    c->resize = cfg->resize;
    c->count = x->n_files;
    c->n_classes = x->n_classes;
    size_t n = (size_t)(x->n_files > 0 ? x->n_files : 1);
    c->labels = malloc(n * sizeof *c->labels);
    c->status = calloc(n, 1);
    c->path = cache_file_name(x, cfg);
    if (!c->labels || !c->status || !c->path)
        goto oom;
    memcpy(c->labels, x->labels, (size_t)x->n_files * sizeof *c->labels);
    int mk = data_mkdirs(cfg->dir);
    if (mk != 0) {
        snprintf(err, errlen, "cannot create cache directory %s: %s", cfg->dir, strerror(-mk));
        goto cleanup;
    }
    Header want = expected_header(x, cfg);
    c->fingerprint = want.fingerprint;

    if (!(lock_path = malloc(strlen(c->path) + 6)))
        goto oom;
    sprintf(lock_path, "%s.lock", c->path);
    lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", lock_path, strerror(errno));
        goto cleanup;
    }
    while (flock(lock_fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "cannot lock %s: %s", lock_path, strerror(errno));
            goto cleanup;
        }
    }
    if (map_existing(c->path, &want, c) != 0) {
        int b = build(x, cfg, c->path, &want, c->status, err, errlen);
        if (b != 0) {
            rc = b;
            goto cleanup;
        }
        c->built = true;
        if (map_existing(c->path, &want, c) != 0) {
            snprintf(err, errlen, "cannot map cache file %s", c->path);
            goto cleanup;
        }
    }
    /* In use from now on (no eviction), and most recently used. */
    char use[4200];
    snprintf(use, sizeof use, "%s.use", c->path);
    c->use_fd = open(use, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (c->use_fd >= 0)
        flock(c->use_fd, LOCK_SH);
    utimensat(AT_FDCWD, c->path, NULL, 0);
    for (int i = 0; i < x->n_files; i++) {
        if (c->status[i] == DATA_JPEG_OK || already_skipped(x, x->paths[i]))
            continue;
        char reason[128];
        snprintf(reason, sizeof reason, "%s (found while decoding)",
                 data_jpeg_status_name((DataJpegStatus)c->status[i]));
        if (data_index_exclude(x, i, reason) != 0)
            goto oom;
    }
    *out = c;
    c = NULL;
    rc = 0;
    goto cleanup;
oom:
    snprintf(err, errlen, "out of memory");
cleanup:
    if (lock_fd >= 0)
        close(lock_fd); /* releases the flock */
    free(lock_path);
    data_cache_free(c);
    return rc;
}

void data_cache_free(DataCache *c)
{
    if (!c)
        return;
    if (c->map)
        munmap(c->map, c->map_len);
    if (c->use_fd >= 0)
        close(c->use_fd); /* releases the flock */
    free(c->labels);
    free(c->status);
    free(c->path);
    free(c);
}

const uint8_t *data_cache_image(const DataCache *c, int i)
{
    return c->images + (size_t)i * c->size * c->size * 3;
}

int data_cache_label(const DataCache *c, int i)
{
    return c->labels[i];
}

void data_cache_prefetch(const DataCache *c, int i)
{
    size_t bytes = (size_t)c->size * c->size * 3;
    uintptr_t a = (uintptr_t)data_cache_image(c, i);
    uintptr_t lo = a & ~(uintptr_t)(PAGE - 1);
    madvise((void *)lo, a + bytes - lo, MADV_WILLNEED);
}

int data_cache_count(const DataCache *c) { return c->count; }
int data_cache_size(const DataCache *c) { return c->size; }
int data_cache_classes(const DataCache *c) { return c->n_classes; }
const char *data_cache_path(const DataCache *c) { return c->path; }
bool data_cache_built(const DataCache *c) { return c->built; }

int data_cache_mean_image(const DataCache *c, const int *indices, int n, float *mean,
                          char *err, size_t errlen)
{
    return data_cache_mean_image_cancellable(c, indices, n, mean, NULL, NULL, err, errlen);
}

int data_cache_mean_image_cancellable(const DataCache *c, const int *indices, int n,
                                      float *mean, bool (*cancel)(void *user), void *user,
                                      char *err, size_t errlen)
{
    if (n <= 0) {
        snprintf(err, errlen, "mean image of an empty split");
        return -1;
    }
    size_t m = (size_t)c->size * c->size * 3;
    uint64_t key = data_hash(DATA_HASH_INIT, &c->fingerprint, sizeof c->fingerprint);
    key = data_hash(key, indices, (size_t)n * sizeof *indices);
    char *side = malloc(strlen(c->path) + 32);
    if (!side) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sprintf(side, "%s.mean-%016llx", c->path, (unsigned long long)key);
    int fd = open(side, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = pread(fd, mean, m * sizeof *mean, 0);
        close(fd);
        if (r == (ssize_t)(m * sizeof *mean)) {
            free(side);
            return 0;
        }
    }
    double *acc = calloc(m, sizeof *acc);
    if (!acc) {
        free(side);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int k = 0; k < n; k++) {
        if (cancel && k % 64 == 0 && cancel(user)) {
            free(acc);
            free(side);
            snprintf(err, errlen, "stopped while computing the mean image");
            return -2;
        }
        const uint8_t *img = data_cache_image(c, indices[k]);
        for (size_t j = 0; j < m; j++)
            acc[j] += img[j];
    }
    for (size_t j = 0; j < m; j++)
        mean[j] = (float)(acc[j] / n);
    free(acc);
    /* best effort: a read-only cache directory only costs a recomputation next time */
    char *tmp = malloc(strlen(side) + 16);
    if (tmp) {
        sprintf(tmp, "%s.tmp%d", side, (int)gettid());
        unlink(tmp);
        if (data_write_new_file(tmp, mean, m * sizeof *mean) == 0 && rename(tmp, side) != 0)
            unlink(tmp);
        free(tmp);
    }
    free(side);
    return 0;
}
