/* scan.c — walks an ImageFolder directory, checks every JPEG and builds a DatasetIndex (scan.h).
 *
 * DESIGN: the walk is single-threaded and collects candidates; the checks (open, header,
 * end marker) run on DataScanOptions.threads workers (data_run_workers) that claim
 * candidates through one atomic counter. Each thread owns its DataCodec and writes only the result fields of the
 * candidates it claimed; the walker reads them after joining, so no lock is needed. */
#include "data/scan.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/decode.h"
#include "data/fsutil.h"
#include "data/workers.h"

#define MAX_DEPTH 32
#define REASON_LEN 256

typedef struct {
    char *rel;          /* relative to root */
    int label;
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

/* Collects the files below root/rel into l with label. */
static void walk(const char *root, const char *rel, int label, int depth, CandList *l)
{
    char *dir = data_path_join(root, rel);
    if (!dir) {
        l->oom = -1;
        return;
    }
    DIR *d = opendir(dir);
    if (!d) {
        char reason[REASON_LEN];
        snprintf(reason, sizeof reason, "unreadable directory: %s", strerror(errno));
        skip_walk(l, rel, label, reason);
        free(dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) && !l->oom) {
        if (e->d_name[0] == '.')
            continue;
        char *crel = data_path_join(rel, e->d_name);
        char *full = crel ? data_path_join(root, crel) : NULL;
        struct stat st;
        if (!crel || !full) {
            l->oom = -1;
        } else if (lstat(full, &st) != 0) {
            char reason[REASON_LEN];
            snprintf(reason, sizeof reason, "unreadable: %s", strerror(errno));
            skip_walk(l, crel, label, reason);
        } else if (S_ISDIR(st.st_mode)) {
            if (depth < MAX_DEPTH)
                walk(root, crel, label, depth + 1, l);
            else
                skip_walk(l, crel, label, "unreadable directory: nested too deep");
        } else if (S_ISLNK(st.st_mode) && stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
            /* symlinked subdirectories are not followed */
        } else if (cand_add(l, crel, label) == 0) {
            Candidate *c = &l->v[l->n - 1];
            c->jpeg_name = has_jpeg_ext(e->d_name);
            /* for a dangling symlink st is the link's; the check reports it unreadable */
            c->size = (int64_t)st.st_size;
            c->mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
            if (!c->jpeg_name) {
                c->status = DATA_JPEG_NOT_JPEG;
                c->reason = strdup("not a .jpg/.jpeg file");
                if (!c->reason)
                    l->oom = -1;
            }
        }
        free(crel);
        free(full);
    }
    closedir(d);
    free(dir);
}

typedef struct {
    const char *root;
    CandList *l;
    bool verify;
    atomic_int next;
    atomic_int failed;  /* a thread could not get a codec or memory */
} CheckJob;

static void check_thread(void *arg)
{
    CheckJob *job = arg;
    DataCodec *codec = data_codec_create();
    if (!codec) {
        atomic_store(&job->failed, 1);
        return;
    }
    char reason[REASON_LEN];
    for (;;) {
        int i = atomic_fetch_add(&job->next, 1);
        if (i >= job->l->n)
            break;
        Candidate *c = &job->l->v[i];
        if (!c->jpeg_name || c->reason)
            continue;
        char *full = data_path_join(job->root, c->rel);
        if (!full) {
            atomic_store(&job->failed, 1);
            break;
        }
        c->status = data_jpeg_check(codec, full, job->verify, &c->w, &c->h, reason,
                                    sizeof reason);
        free(full);
        if (c->status != DATA_JPEG_OK && !(c->reason = strdup(reason))) {
            atomic_store(&job->failed, 1);
            break;
        }
    }
    data_codec_free(codec);
}

/* Runs the checks on threads (or inline when a thread cannot start). */
static int check_all(const char *root, CandList *l, const DataScanOptions *opt)
{
    int threads = opt && opt->threads > 0 ? opt->threads : 2;
    CheckJob job = {.root = root, .l = l, .verify = opt && opt->verify};
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

int data_scan(const char *root, const DataScanOptions *options, DatasetIndex **out, char *err,
              size_t errlen)
{
    int rc = -1;
    char *abs = NULL;
    char **classes = NULL;
    int n_classes = 0, cap_classes = 0;
    CandList l = {0};
    DatasetIndex *x = NULL;
    DIR *d = NULL;
    *out = NULL;

    abs = realpath(root, NULL);
    if (!abs || !(d = opendir(abs))) {
        snprintf(err, errlen, "cannot open dataset directory %s: %s", root, strerror(errno));
        goto cleanup;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *full = data_path_join(abs, e->d_name);
        if (!full)
            goto oom;
        struct stat st;
        int is_dir = stat(full, &st) == 0 && S_ISDIR(st.st_mode);
        free(full);
        if (!is_dir)
            continue;
        if (n_classes == cap_classes) {
            cap_classes = cap_classes ? cap_classes * 2 : 32;
            char **nc = realloc(classes, (size_t)cap_classes * sizeof *nc);
            if (!nc)
                goto oom;
            classes = nc;
        }
        if (!(classes[n_classes] = strdup(e->d_name)))
            goto oom;
        n_classes++;
    }
    closedir(d);
    d = NULL;
    if (n_classes == 0) {
        snprintf(err, errlen, "no class folders in %s (expected one subfolder per class)", abs);
        goto cleanup;
    }
    qsort(classes, (size_t)n_classes, sizeof *classes, cmp_str);

    for (int c = 0; c < n_classes && !l.oom; c++)
        walk(abs, classes[c], c, 1, &l);
    if (l.oom)
        goto oom;
    qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_cand);
    if (check_all(abs, &l, options) != 0)
        goto oom;

    int n_ok = 0;
    for (int i = 0; i < l.n; i++)
        n_ok += l.v[i].status == DATA_JPEG_OK;
    if (!(x = index_alloc(n_classes, n_ok, l.n - n_ok)))
        goto oom;
    x->root = abs;
    abs = NULL;
    x->n_classes = n_classes;
    for (int c = 0; c < n_classes; c++) {
        x->class_names[c] = classes[c];
        classes[c] = NULL;
    }
    for (int i = 0; i < l.n; i++) {
        Candidate *c = &l.v[i];
        if (c->status == DATA_JPEG_OK) {
            int k = x->n_files++;
            x->paths[k] = c->rel;
            x->labels[k] = c->label;
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
oom:
    snprintf(err, errlen, "out of memory while scanning %s", root);
cleanup:
    if (d)
        closedir(d);
    for (int i = 0; i < l.n; i++) {
        free(l.v[i].rel);
        free(l.v[i].reason);
    }
    free(l.v);
    for (int c = 0; c < n_classes; c++)
        free(classes ? classes[c] : NULL);
    free(classes);
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
