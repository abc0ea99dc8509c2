/* scan.c — walks an ImageFolder directory sealed in its root, checks every JPEG and builds a
 * DatasetIndex (scan.h).
 *
 * DESIGN: the walk is single-threaded and collects candidates; it reads each folder
 * through a descriptor opened below the root (data_open_beneath, or openat with
 * O_NOFOLLOW for a real subfolder) and classifies entries with fstatat without following
 * links. The checks (open below the root, header, decode) run on DataScanOptions.threads
 * workers (data_run_workers) that claim candidates through one atomic counter. Each
 * thread owns its DataCodec and writes only the result fields of the candidates it
 * claimed; the walker reads them after joining, so no lock is needed. Cancellation is one
 * atomic flag set by whichever thread first sees the cancel callback say so. */
#include "data/scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/decode.h"
#include "data/fsutil.h"
#include "data/names.h"
#include "data/workers.h"

#define MAX_DEPTH 32
#define REASON_LEN 256
#define EMPTY_CLASS_REASON "no usable image in this class folder: not a class"

typedef struct {
    char *rel;          /* relative to root, bytes */
    int label;          /* class index before empty classes are dropped; -1 in the root */
    int jpeg_name;      /* .jpg/.jpeg */
    int64_t size, mtime;
    DataJpegStatus status;
    int w, h;
    char *reason;       /* set before the checks for walk problems, or by the check */
} Candidate;

typedef struct {
    Candidate *v;
    int n, cap;
    int oom;
} CandList;

/* What the walk and the checks share. */
typedef struct {
    int root_fd;                  /* O_PATH descriptor of the root */
    const DataScanOptions *opt;   /* may be NULL */
    atomic_int stop;              /* the cancel callback said so */
} ScanCtx;

/* True when the scan must stop; asks the callback and remembers its answer. */
static bool scan_cancelled(ScanCtx *ctx)
{
    if (atomic_load(&ctx->stop))
        return true;
    if (ctx->opt && ctx->opt->cancel && ctx->opt->cancel(ctx->opt->cancel_user)) {
        atomic_store(&ctx->stop, 1);
        return true;
    }
    return false;
}

static int cand_add(CandList *l, const char *rel, int label)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 256;
        Candidate *nv = realloc(l->v, (size_t)cap * sizeof *nv);
        if (!nv)
            return l->oom = -1;
        l->v = nv;
        l->cap = cap;
    }
    Candidate *c = &l->v[l->n];
    memset(c, 0, sizeof *c);
    c->rel = strdup(rel);
    if (!c->rel)
        return l->oom = -1;
    c->label = label;
    l->n++;
    return 0;
}

static int has_jpeg_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_cand(const void *a, const void *b)
{
    const Candidate *x = a, *y = b;
    if (x->label != y->label)
        return x->label < y->label ? -1 : 1;
    return strcmp(x->rel, y->rel);
}

/* Records rel as skipped for reason (a walk problem: the checks leave it alone). */
static void skip_walk(CandList *l, const char *rel, int label, const char *reason)
{
    if (cand_add(l, rel, label) == 0) {
        Candidate *c = &l->v[l->n - 1];
        c->status = DATA_JPEG_UNREADABLE;
        c->reason = strdup(reason);
        if (!c->reason)
            l->oom = -1;
    }
}

/* What a symbolic link at rel (relative to the root) leads to, without opening anything
 * outside the root: 1 a folder inside, 0 something else inside (or nothing: dangling), or
 * the negative errno of a link that leads out (-EXDEV) or is a loop / magic link (-ELOOP). */
static int link_kind(int root_fd, const char *rel)
{
    int fd = data_open_beneath(root_fd, rel, O_PATH);
    if (fd == -EXDEV || fd == -ELOOP)
        return fd;
    if (fd < 0)
        return 0;
    struct stat st;
    int dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    close(fd);
    return dir;
}

/* Collects the files of the folder fd (consumed), which is root/rel, into l with label. */
static void walk(ScanCtx *ctx, int fd, const char *rel, int label, int depth, CandList *l)
{
    char reason[REASON_LEN];
    DIR *d = fdopendir(fd);
    if (!d) {
        snprintf(reason, sizeof reason, "unreadable directory: %s", strerror(errno));
        close(fd);
        skip_walk(l, rel, label, reason);
        return;
    }
    struct dirent *e;
    while (!l->oom && !scan_cancelled(ctx) && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *crel = data_path_join(rel, e->d_name);
        struct stat st;
        int link = 0; /* for a symbolic link: link_kind */
        if (!crel) {
            l->oom = -1;
        } else if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            snprintf(reason, sizeof reason, "unreadable: %s", strerror(errno));
            skip_walk(l, crel, label, reason);
        } else if (S_ISDIR(st.st_mode)) {
            int sub = depth < MAX_DEPTH ? openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY |
                                                 O_NOFOLLOW | O_CLOEXEC)
                                        : -1;
            if (sub >= 0) {
                walk(ctx, sub, crel, label, depth + 1, l);
            } else {
                snprintf(reason, sizeof reason, "unreadable directory: %s",
                         depth < MAX_DEPTH ? strerror(errno) : "nested too deep");
                skip_walk(l, crel, label, reason);
            }
        } else if (S_ISLNK(st.st_mode) && (link = link_kind(ctx->root_fd, crel)) != 0) {
            skip_walk(l, crel, label, link > 0 ? "symbolic link to a folder: not followed"
                                               : data_open_error(link));
        } else if (!S_ISLNK(st.st_mode) && !S_ISREG(st.st_mode)) {
            skip_walk(l, crel, label, "unreadable: not a regular file");
        } else if (cand_add(l, crel, label) == 0) {
            /* a regular file, or a link to one inside the root (or a dangling link,
             * which the check reports unreadable) */
            Candidate *c = &l->v[l->n - 1];
            c->jpeg_name = has_jpeg_ext(e->d_name);
            if (!c->jpeg_name) {
                c->status = DATA_JPEG_NOT_JPEG;
                c->reason = strdup("not a .jpg/.jpeg file");
                if (!c->reason)
                    l->oom = -1;
            }
        }
        free(crel);
    }
    closedir(d);
}

typedef struct {
    ScanCtx *ctx;
    CandList *l;
    bool full;
    atomic_int next;
    atomic_int failed;  /* a thread could not get a codec or memory */
} CheckJob;

static void check_one(CheckJob *job, DataCodec *codec, Candidate *c, char *reason)
{
    int fd = data_open_beneath(job->ctx->root_fd, c->rel, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        c->status = DATA_JPEG_UNREADABLE;
        if (fd == -EXDEV || fd == -ELOOP)
            snprintf(reason, REASON_LEN, "%s", data_open_error(fd));
        else
            snprintf(reason, REASON_LEN, "unreadable: %s", data_open_error(fd));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) == 0) {
        c->size = (int64_t)st.st_size;
        c->mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    }
    c->status = data_jpeg_check(codec, fd, job->full, &c->w, &c->h, reason, REASON_LEN);
    close(fd);
}

static void check_thread(void *arg)
{
    CheckJob *job = arg;
    DataCodec *codec = data_codec_create();
    if (!codec) {
        atomic_store(&job->failed, 1);
        return;
    }
    char reason[REASON_LEN];
    while (!scan_cancelled(job->ctx)) {
        int i = atomic_fetch_add(&job->next, 1);
        if (i >= job->l->n)
            break;
        Candidate *c = &job->l->v[i];
        if (!c->jpeg_name || c->reason)
            continue;
        check_one(job, codec, c, reason);
        if (c->status != DATA_JPEG_OK && !(c->reason = strdup(reason))) {
            atomic_store(&job->failed, 1);
            break;
        }
    }
    data_codec_free(codec);
}

/* Runs the checks on threads (or inline when a thread cannot start). */
static int check_all(ScanCtx *ctx, CandList *l)
{
    const DataScanOptions *opt = ctx->opt;
    int threads = opt && opt->threads > 0 ? opt->threads : 2;
    CheckJob job = {.ctx = ctx, .l = l, .full = !(opt && opt->quick)};
    atomic_init(&job.next, 0);
    atomic_init(&job.failed, 0);
    data_run_workers(threads, check_thread, NULL, &job);
    return atomic_load(&job.failed) ? -1 : 0;
}

static DatasetIndex *index_alloc(int n_classes, int n_files, int n_skipped)
{
    DatasetIndex *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    size_t n = (size_t)(n_files > 0 ? n_files : 1);
    x->class_names = calloc((size_t)(n_classes > 0 ? n_classes : 1), sizeof *x->class_names);
    x->paths = calloc(n, sizeof *x->paths);
    x->labels = calloc(n, sizeof *x->labels);
    x->sizes = calloc(n, sizeof *x->sizes);
    x->mtimes = calloc(n, sizeof *x->mtimes);
    x->widths = calloc(n, sizeof *x->widths);
    x->heights = calloc(n, sizeof *x->heights);
    x->split = malloc(n);
    x->skipped = calloc((size_t)(n_skipped > 0 ? n_skipped : 1), sizeof *x->skipped);
    if (!x->class_names || !x->paths || !x->labels || !x->sizes || !x->mtimes || !x->widths ||
        !x->heights || !x->split || !x->skipped) {
        data_index_free(x);
        return NULL;
    }
    memset(x->split, DATA_SPLIT_NONE, n);
    return x;
}

/* The class folders of the root: its subfolders and its links to folders inside it,
 * sorted; links that lead out are recorded in l (label -1). Returns the number of classes
 * with *classes set (heap), or -1 with a message (unreadable root, out of memory). */
static int list_classes(ScanCtx *ctx, const char *shown_root, char ***classes, CandList *l,
                        char *err, size_t errlen)
{
    int n = 0, cap = 0;
    char **v = NULL;
    int fd = openat(ctx->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        snprintf(err, errlen, "cannot read dataset directory %s: %s", shown_root,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct dirent *e;
    while (!l->oom && !scan_cancelled(ctx) && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        struct stat st;
        int is_class = 0;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            is_class = 1;
        } else if (S_ISLNK(st.st_mode)) {
            int k = link_kind(ctx->root_fd, e->d_name);
            if (k < 0)
                skip_walk(l, e->d_name, -1, data_open_error(k));
            is_class = k > 0;
        }
        if (!is_class)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                l->oom = -1;
                break;
            }
            v = nv;
        }
        if (!(v[n] = strdup(e->d_name))) {
            l->oom = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (l->oom) {
        for (int c = 0; c < n; c++)
            free(v[c]);
        free(v);
        snprintf(err, errlen, "out of memory while scanning %s", shown_root);
        return -1;
    }
    if (n > 0)
        qsort(v, (size_t)n, sizeof *v, cmp_str);
    *classes = v;
    return n;
}

/* Marks every class without a usable image as skipped (its folder's own entry gets the
 * reason appended, or a new entry is made) and sets new_label[c] (-1 for those). Returns
 * the number of classes kept, or -1 when out of memory. */
static int drop_empty_classes(CandList *l, char **classes, int n_classes, int *new_label)
{
    int *ok = calloc((size_t)n_classes, sizeof *ok);
    if (!ok)
        return -1;
    for (int i = 0; i < l->n; i++)
        if (l->v[i].status == DATA_JPEG_OK)
            ok[l->v[i].label]++;
    int kept = 0, n_before = l->n;
    for (int c = 0; c < n_classes; c++) {
        new_label[c] = ok[c] ? kept++ : -1;
        if (ok[c])
            continue;
        Candidate *own = NULL;
        for (int i = 0; i < n_before && !own; i++)
            if (l->v[i].label == c && strcmp(l->v[i].rel, classes[c]) == 0)
                own = &l->v[i];
        if (own) {
            size_t len = strlen(own->reason) + sizeof EMPTY_CLASS_REASON + 3;
            char *r = malloc(len);
            if (!r)
                goto oom;
            snprintf(r, len, "%s; %s", own->reason, EMPTY_CLASS_REASON);
            free(own->reason);
            own->reason = r;
        } else {
            skip_walk(l, classes[c], c, EMPTY_CLASS_REASON);
            if (l->oom)
                goto oom;
        }
    }
    free(ok);
    return kept;
oom:
    free(ok);
    return -1;
}

int data_scan(const char *root, const DataScanOptions *options, DatasetIndex **out, char *err,
              size_t errlen)
{
    int rc = -1, root_fd = -1;
    char *abs = NULL;
    char **classes = NULL;
    int n_classes = 0, *new_label = NULL;
    CandList l = {0};
    DatasetIndex *x = NULL;
    char shown[512];
    ScanCtx ctx = {.root_fd = -1, .opt = options};
    atomic_init(&ctx.stop, 0);
    *out = NULL;

    data_name_text_buf(root, shown, sizeof shown);
    bool canonical = options && options->canonical;
    abs = canonical ? strdup(root) : realpath(root, NULL);
    if (!abs) {
        snprintf(err, errlen, "cannot open dataset directory %s: %s", shown, strerror(errno));
        goto cleanup;
    }
    data_name_text_buf(abs, shown, sizeof shown);
    if ((root_fd = data_root_open(abs)) < 0) {
        snprintf(err, errlen, "cannot open dataset directory %s: %s", shown,
                 root_fd == -ELOOP ? "a symbolic link appeared in its path since it was "
                                     "registered; register the dataset again"
                                   : strerror(-root_fd));
        goto cleanup;
    }
    ctx.root_fd = root_fd;
    if ((n_classes = list_classes(&ctx, shown, &classes, &l, err, errlen)) < 0) {
        n_classes = 0;
        goto cleanup;
    }
    if (scan_cancelled(&ctx))
        goto cancelled;
    if (n_classes == 0) {
        snprintf(err, errlen, "no class folders in %s (expected one subfolder per class)",
                 shown);
        goto cleanup;
    }
    for (int c = 0; c < n_classes && !l.oom && !scan_cancelled(&ctx); c++) {
        int fd = data_open_beneath(root_fd, classes[c], O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            walk(&ctx, fd, classes[c], c, 1, &l);
        } else {
            char reason[REASON_LEN];
            snprintf(reason, sizeof reason, "unreadable directory: %s", data_open_error(fd));
            skip_walk(&l, classes[c], c, reason);
        }
    }
    if (l.oom)
        goto oom;
    if (check_all(&ctx, &l) != 0)
        goto oom;
    if (scan_cancelled(&ctx))
        goto cancelled;
    if (!(new_label = malloc((size_t)n_classes * sizeof *new_label)))
        goto oom;
    int kept = drop_empty_classes(&l, classes, n_classes, new_label);
    if (kept < 0)
        goto oom;
    qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_cand);
    if (kept == 0) {
        const Candidate *first = NULL;
        for (int i = 0; i < l.n && !first; i++)
            if (l.v[i].label >= 0 && strchr(l.v[i].rel, '/'))
                first = &l.v[i];
        char name[200] = "";
        if (first)
            data_name_text_buf(first->rel, name, sizeof name);
        snprintf(err, errlen, "no class folder of %s holds a usable JPEG image (%d skipped%s%s%s%.200s)",
                 shown, l.n, first ? ", e.g. " : "", name, first ? ": " : "",
                 first ? first->reason : "");
        goto cleanup;
    }

    int n_ok = 0;
    for (int i = 0; i < l.n; i++)
        n_ok += l.v[i].status == DATA_JPEG_OK;
    if (!(x = index_alloc(kept, n_ok, l.n - n_ok)))
        goto oom;
    x->root = abs;
    abs = NULL;
    for (int c = 0; c < n_classes; c++) {
        if (new_label[c] >= 0) {
            x->class_names[x->n_classes++] = classes[c];
            classes[c] = NULL;
        }
    }
    for (int i = 0; i < l.n; i++) {
        Candidate *c = &l.v[i];
        if (c->status == DATA_JPEG_OK) {
            int k = x->n_files++;
            x->paths[k] = c->rel;
            x->labels[k] = new_label[c->label];
            x->sizes[k] = c->size;
            x->mtimes[k] = c->mtime;
            x->widths[k] = c->w;
            x->heights[k] = c->h;
        } else {
            DataSkipped *s = &x->skipped[x->n_skipped++];
            s->path = c->rel;
            s->reason = c->reason;
            c->reason = NULL;
        }
        c->rel = NULL;
    }
    *out = x;
    x = NULL;
    rc = 0;
    goto cleanup;
cancelled:
    snprintf(err, errlen, "scan cancelled");
    rc = -2;
    goto cleanup;
oom:
    snprintf(err, errlen, "out of memory while scanning %s", shown);
cleanup:
    if (root_fd >= 0)
        close(root_fd);
    for (int i = 0; i < l.n; i++) {
        free(l.v[i].rel);
        free(l.v[i].reason);
    }
    free(l.v);
    for (int c = 0; c < n_classes; c++)
        free(classes ? classes[c] : NULL);
    free(classes);
    free(new_label);
    free(abs);
    data_index_free(x);
    return rc;
}

void data_index_free(DatasetIndex *x)
{
    if (!x)
        return;
    for (int c = 0; c < x->n_classes; c++)
        free(x->class_names[c]);
    for (int i = 0; i < x->n_files; i++)
        free(x->paths[i]);
    for (int i = 0; i < x->n_skipped; i++) {
        free(x->skipped[i].path);
        free(x->skipped[i].reason);
    }
    free(x->root);
    free(x->class_names);
    free(x->paths);
    free(x->labels);
    free(x->sizes);
    free(x->mtimes);
    free(x->widths);
    free(x->heights);
    free(x->split);
    free(x->skipped);
    free(x);
}

int data_index_count(const DatasetIndex *x, int c, int s)
{
    int n = 0;
    for (int i = 0; i < x->n_files; i++)
        n += x->labels[i] == c && (s < 0 || x->split[i] == s);
    return n;
}

int data_index_exclude(DatasetIndex *x, int i, const char *reason)
{
    x->split[i] = DATA_SPLIT_NONE;
    DataSkipped *ns = realloc(x->skipped, (size_t)(x->n_skipped + 1) * sizeof *ns);
    if (!ns)
        return -1;
    x->skipped = ns;
    char *p = strdup(x->paths[i]), *r = strdup(reason);
    if (!p || !r) {
        free(p);
        free(r);
        return -1;
    }
    x->skipped[x->n_skipped].path = p;
    x->skipped[x->n_skipped].reason = r;
    x->n_skipped++;
    return 0;
}

uint64_t data_index_fingerprint(const DatasetIndex *x)
{
    uint64_t h = DATA_HASH_INIT;
    h = data_hash(h, &x->n_classes, sizeof x->n_classes);
    for (int c = 0; c < x->n_classes; c++)
        h = data_hash(h, x->class_names[c], strlen(x->class_names[c]) + 1);
    h = data_hash(h, &x->n_files, sizeof x->n_files);
    for (int i = 0; i < x->n_files; i++) {
        h = data_hash(h, x->paths[i], strlen(x->paths[i]) + 1);
        int64_t v[3] = {x->labels[i], x->sizes[i], x->mtimes[i]};
        h = data_hash(h, v, sizeof v);
    }
    return h;
}
