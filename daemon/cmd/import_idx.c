/* import_idx.c — `initlab import-idx`: IDX image/label files (MNIST, Fashion-MNIST) to an
 * ImageFolder of JPEGs. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "data/decode.h"
#include "data/fsutil.h"
#include "data/idx.h"

#define MAX_PAIRS 16
#define MAX_CLASSES 1000

static const char usage_text[] =
    "usage: initlab import-idx IMAGES LABELS [IMAGES LABELS ...] DIR [--names LIST]\n"
    "                          [--prefix P] [--quality 95]\n\n"
    "Converts IDX files (gzipped or not) into an ImageFolder of JPEGs under DIR. IMAGES\n"
    "holds unsigned bytes shaped (N, H, W) (greyscale) or (N, H, W, 3) (RGB); LABELS holds\n"
    "N class numbers. Several IMAGES LABELS pairs go into one tree: Fashion-MNIST's train\n"
    "and t10k files give one 70,000-image dataset.\n\n"
    "Class folders sort in label order: <k>_<name> with --names, class_<k> without, k\n"
    "zero-padded to the width of the largest label. Image files are <prefix>_<n>.jpg, n\n"
    "the image's position in its IDX file (zero-padded); the prefix defaults to the IMAGES\n"
    "file name up to its first '-' or '.' (train-images-idx3-ubyte.gz -> train). DIR may\n"
    "already hold a dataset: new files are added beside the old ones, and an import that\n"
    "would replace an existing file stops with an error instead.\n\n"
    "  --names LIST   comma-separated class names in label order, or 'fashion-mnist' for\n"
    "                 tshirt_top,trouser,pullover,dress,coat,sandal,shirt,sneaker,bag,\n"
    "                 ankle_boot\n"
    "  --prefix P     file-name prefix (only with a single IMAGES LABELS pair)\n"
    "  --quality Q    JPEG quality 1..100 (default 95; greyscale images stay greyscale)\n\n"
    "example:\n"
    "  initlab import-idx train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz \\\n"
    "                     t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz \\\n"
    "                     fashion --names fashion-mnist\n";

static const char fashion_names[] =
    "tshirt_top,trouser,pullover,dress,coat,sandal,shirt,sneaker,bag,ankle_boot";

typedef struct {
    const char *images_path, *labels_path;
    char prefix[64];
    IdxArray images, labels;
} Pair;

static int split_names(const char *list, char ***out, int *n)
{
    int cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    char **v = calloc((size_t)cap, sizeof *v);
    char *copy = strdup(list);
    if (!v || !copy) {
        free(v);
        free(copy);
        return -1;
    }
    int k = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!*t || *t == '.' || strchr(t, '/') || !(v[k] = strdup(t))) {
            for (int i = 0; i < k; i++)
                free(v[i]);
            free(v);
            free(copy);
            return -1;
        }
        k++;
    }
    free(copy);
    *out = v;
    *n = k;
    return 0;
}

static void default_prefix(const char *path, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strcspn(base, "-.");
    if (n == 0 || n >= len)
        n = len - 1 < strlen(base) ? len - 1 : strlen(base);
    snprintf(out, len, "%.*s", (int)n, base);
    if (!out[0])
        snprintf(out, len, "img");
}

static int digits(long v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

static int load_pair(Pair *p, char *err, size_t errlen)
{
    if (data_idx_read(p->images_path, &p->images, err, errlen) != 0 ||
        data_idx_read(p->labels_path, &p->labels, err, errlen) != 0)
        return -1;
    const IdxArray *im = &p->images, *lb = &p->labels;
    if (!(im->ndims == 3 || (im->ndims == 4 && im->dims[3] == 3))) {
        snprintf(err, errlen, "%s: images must be shaped (N, H, W) or (N, H, W, 3)",
                 p->images_path);
        return -1;
    }
    if (lb->ndims != 1 || lb->dims[0] != im->dims[0]) {
        snprintf(err, errlen, "%s: expected %d labels in one dimension", p->labels_path,
                 im->dims[0]);
        return -1;
    }
    if (im->dims[1] > 4096 || im->dims[2] > 4096) {
        snprintf(err, errlen, "%s: images larger than 4096 pixels", p->images_path);
        return -1;
    }
    return 0;
}

static int write_pair(const Pair *p, const char *dir, char **folders, DataCodec *codec,
                      int quality, long *written, long total, char *err, size_t errlen)
{
    const IdxArray *im = &p->images;
    int n = im->dims[0], h = im->dims[1], w = im->dims[2];
    int ch = im->ndims == 4 ? 3 : 1;
    size_t bytes = (size_t)h * w * ch;
    int width = digits(n - 1);
    for (int i = 0; i < n; i++) {
        const uint8_t *jpeg;
        size_t len;
        char reason[256], name[512];
        if (data_jpeg_encode(codec, im->data + (size_t)i * bytes, w, h, ch, quality, &jpeg,
                             &len, reason, sizeof reason) != 0) {
            snprintf(err, errlen, "%s image %d: %s", p->images_path, i, reason);
            return -1;
        }
        if (snprintf(name, sizeof name, "%s/%s_%0*d.jpg", folders[p->labels.data[i]],
                     p->prefix, width, i) >= (int)sizeof name) {
            snprintf(err, errlen, "file name too long for class %d", p->labels.data[i]);
            return -1;
        }
        char *path = data_path_join(dir, name);
        int rc = path ? data_write_new_file(path, jpeg, len) : -ENOMEM;
        if (rc != 0) {
            snprintf(err, errlen, "cannot write %s: %s%s", path ? path : name, strerror(-rc),
                     rc == -EEXIST ? " (already imported? use another --prefix)" : "");
            free(path);
            return -1;
        }
        free(path);
        if (++*written % 5000 == 0 || *written == total)
            fprintf(stderr, "import-idx: %ld / %ld images\n", *written, total);
    }
    return 0;
}

static int cmd_import_idx(int argc, char **argv)
{
    static const struct option opts[] = {
        {"names", required_argument, NULL, 'n'}, {"prefix", required_argument, NULL, 'p'},
        {"quality", required_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *names_arg = NULL, *prefix = NULL;
    int quality = 95, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': names_arg = optarg; break;
        case 'p': prefix = optarg; break;
        case 'q': quality = atoi(optarg); break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    int npos = argc - optind;
    if (npos < 3 || npos % 2 != 1 || (npos - 1) / 2 > MAX_PAIRS || quality < 1 ||
        quality > 100 || (prefix && (npos != 3 || !*prefix || strchr(prefix, '/')))) {
        fputs(usage_text, stderr);
        return 2;
    }
    int n_pairs = (npos - 1) / 2;
    const char *dir = argv[argc - 1];
    Pair pairs[MAX_PAIRS];
    memset(pairs, 0, sizeof pairs);
    char **names = NULL, **folders = NULL;
    int n_names = 0, n_classes = 0, rc = 1;
    DataCodec *codec = NULL;
    char err[1024];

    if (names_arg) {
        const char *list = strcmp(names_arg, "fashion-mnist") == 0 ? fashion_names : names_arg;
        if (split_names(list, &names, &n_names) != 0 || n_names == 0) {
            fprintf(stderr, "initlab import-idx: --names must be non-empty names without '/',"
                            " not starting with '.'\n");
            return 2;
        }
    }
    long total = 0;
    for (int k = 0; k < n_pairs; k++) {
        Pair *p = &pairs[k];
        p->images_path = argv[optind + 2 * k];
        p->labels_path = argv[optind + 2 * k + 1];
        if (prefix)
            snprintf(p->prefix, sizeof p->prefix, "%s", prefix);
        else
            default_prefix(p->images_path, p->prefix, sizeof p->prefix);
        for (int j = 0; j < k; j++) {
            if (strcmp(pairs[j].prefix, p->prefix) == 0) {
                fprintf(stderr, "initlab import-idx: %s and %s give the same file prefix '%s'; "
                                "import them separately with --prefix\n",
                        pairs[j].images_path, p->images_path, p->prefix);
                goto cleanup;
            }
        }
        if (load_pair(p, err, sizeof err) != 0) {
            fprintf(stderr, "initlab import-idx: %s\n", err);
            goto cleanup;
        }
        for (size_t i = 0; i < p->labels.count; i++)
            if (p->labels.data[i] + 1 > n_classes)
                n_classes = p->labels.data[i] + 1;
        total += p->images.dims[0];
    }
    if (names && n_classes > n_names) {
        fprintf(stderr, "initlab import-idx: labels go up to %d but --names gives %d names\n",
                n_classes - 1, n_names);
        goto cleanup;
    }
    if (names)
        n_classes = n_names;
    if (n_classes > MAX_CLASSES) {
        fprintf(stderr, "initlab import-idx: more than %d classes\n", MAX_CLASSES);
        goto cleanup;
    }
    folders = calloc((size_t)n_classes, sizeof *folders);
    if (!folders)
        goto oom;
    int width = digits(n_classes - 1);
    for (int k = 0; k < n_classes; k++) {
        char name[300];
        int len = names ? snprintf(name, sizeof name, "%0*d_%s", width, k, names[k])
                        : snprintf(name, sizeof name, "class_%0*d", width, k);
        if (len >= (int)sizeof name) {
            fprintf(stderr, "initlab import-idx: class name %d too long\n", k);
            goto cleanup;
        }
        if (!(folders[k] = strdup(name)))
            goto oom;
        char *path = data_path_join(dir, name);
        int mk = path ? data_mkdirs(path) : -ENOMEM;
        if (mk != 0) {
            fprintf(stderr, "initlab import-idx: cannot create %s: %s\n", path ? path : dir,
                    strerror(-mk));
            free(path);
            goto cleanup;
        }
        free(path);
    }
    if (!(codec = data_codec_create()))
        goto oom;
    long written = 0;
    for (int k = 0; k < n_pairs; k++) {
        if (write_pair(&pairs[k], dir, folders, codec, quality, &written, total, err,
                       sizeof err) != 0) {
            fprintf(stderr, "initlab import-idx: %s\n", err);
            goto cleanup;
        }
    }
    fprintf(stderr, "import-idx: %ld images in %d classes under %s\n", written, n_classes, dir);
    rc = 0;
    goto cleanup;
oom:
    fprintf(stderr, "initlab import-idx: out of memory\n");
cleanup:
    data_codec_free(codec);
    for (int k = 0; k < n_pairs; k++) {
        data_idx_deinit(&pairs[k].images);
        data_idx_deinit(&pairs[k].labels);
    }
    for (int k = 0; names && k < n_names; k++)
        free(names[k]);
    for (int k = 0; folders && k < n_classes; k++)
        free(folders[k]);
    free(names);
    free(folders);
    return rc;
}

COMMAND(import_idx, "import-idx", cmd_import_idx, 75,
        "import-idx IMAGES LABELS [IMAGES LABELS ...] DIR [--names a,b,...]",
        "convert IDX files (MNIST, Fashion-MNIST) to a JPEG image folder")
