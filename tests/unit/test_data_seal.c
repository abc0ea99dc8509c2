/* test_data_seal.c — a dataset is sealed in its folder: symbolic links out of it are skipped
 * and reported, nothing outside is opened (watched with inotify), the portable resolver
 * answers as the kernel's openat2 does, files swapped for links after the scan are refused
 * by the cache, a registered folder swapped for a link is refused, and a scan can be
 * cancelled. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "data/cache.h"
#include "data/fsutil.h"
#include "data/scan.h"
#include "data/split.h"
#include "jobs/scan.h"
#include "test.h"
#include "test_data_fixture.h"
#include "test_store_util.h"

/* The reason the scan gave for rel, or NULL when rel was not skipped. */
static const char *reason_of(const DatasetIndex *x, const char *rel)
{
    for (int i = 0; i < x->n_skipped; i++)
        if (strcmp(x->skipped[i].path, rel) == 0)
            return x->skipped[i].reason;
    return NULL;
}

static int index_of(const DatasetIndex *x, const char *rel)
{
    for (int i = 0; i < x->n_files; i++)
        if (strcmp(x->paths[i], rel) == 0)
            return i;
    return -1;
}

static int starts(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A temporary folder holding outside/ (a class folder of JPEGs and secret.jpg, none of
 * which a scan of ds/ may open) and ds/, the dataset. */
typedef struct {
    char *tmp;
    char outside[600], ds[600];
    int watch;  /* inotify descriptor watching outside/ and outside/cls for opens */
} Sandbox;

static int sandbox_init(Sandbox *b)
{
    memset(b, 0, sizeof *b);
    b->watch = -1;
    if (!(b->tmp = fixture_data_tmpdir()))
        return -1;
    snprintf(b->outside, sizeof b->outside, "%s/outside", b->tmp);
    snprintf(b->ds, sizeof b->ds, "%s/ds", b->tmp);
    uint8_t rgb[16 * 16 * 3];
    const uint8_t red[3] = {250, 10, 10}, green[3] = {10, 250, 10};
    fixture_data_fill(rgb, 16, 16, red);
    if (fixture_data_write_jpeg(b->outside, "cls/0.jpg", rgb, 16, 16, 3, 95) != 0 ||
        fixture_data_write_jpeg(b->outside, "cls/1.jpg", rgb, 16, 16, 3, 95) != 0 ||
        fixture_data_write_jpeg(b->outside, "secret.jpg", rgb, 16, 16, 3, 95) != 0)
        return -1;
    fixture_data_fill(rgb, 16, 16, green);
    if (fixture_data_write_jpeg(b->ds, "in/0.jpg", rgb, 16, 16, 3, 95) != 0 ||
        fixture_data_write_jpeg(b->ds, "in/1.jpg", rgb, 16, 16, 3, 95) != 0 ||
        fixture_data_write_jpeg(b->ds, "in/2.jpg", rgb, 16, 16, 3, 95) != 0)
        return -1;
    return 0;
}

/* Starts watching outside/ for opens (of itself, its files and cls/). */
static int sandbox_watch(Sandbox *b)
{
    char cls[700];
    snprintf(cls, sizeof cls, "%s/cls", b->outside);
    b->watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (b->watch < 0 || inotify_add_watch(b->watch, b->outside, IN_OPEN | IN_ACCESS) < 0 ||
        inotify_add_watch(b->watch, cls, IN_OPEN | IN_ACCESS) < 0)
        return -1;
    return 0;
}

/* The number of open/read events seen outside since sandbox_watch. */
static int sandbox_events(Sandbox *b)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int n = 0;
    ssize_t r;
    while ((r = read(b->watch, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + r;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            fprintf(stderr, "    opened outside the dataset: %s\n", e->len ? e->name : "(dir)");
            n++;
            p += sizeof *e + e->len;
        }
    }
    return n;
}

static void sandbox_deinit(Sandbox *b)
{
    if (b->watch >= 0)
        close(b->watch);
    fixture_data_rmrf(b->tmp);
    free(b->tmp);
}

/* Class folders, subfolders and files linked out of the folder — absolutely, relatively,
 * to / — are skipped with a reason; links inside are followed; nothing outside is opened. */
TEST(data_scan_stays_in_its_folder)
{
    Sandbox b;
    REQUIRE(sandbox_init(&b) == 0);
    char target[700];
    uint8_t rgb[16 * 16 * 3];
    const uint8_t blue[3] = {10, 10, 250};
    fixture_data_fill(rgb, 16, 16, blue);
    snprintf(target, sizeof target, "%s/cls", b.outside);
    REQUIRE(fixture_data_link(b.ds, "out", target) == 0);             /* class, absolute */
    REQUIRE(fixture_data_link(b.ds, "up", "../outside/cls") == 0);    /* class, relative */
    REQUIRE(fixture_data_link(b.ds, "everything", "/") == 0);         /* class, to / */
    REQUIRE(fixture_data_link(b.ds, "alias", "in") == 0);             /* class, inside */
    REQUIRE(fixture_data_write_jpeg(b.ds, "mix/ok.jpg", rgb, 16, 16, 3, 95) == 0);
    REQUIRE(fixture_data_link(b.ds, "mix/passwd.jpg", "/etc/passwd") == 0);
    REQUIRE(fixture_data_link(b.ds, "mix/secret.jpg", "../../outside/secret.jpg") == 0);
    REQUIRE(fixture_data_link(b.ds, "mix/inside.jpg", "../in/0.jpg") == 0);
    REQUIRE(fixture_data_link(b.ds, "mix/sub", "../in") == 0);
    REQUIRE(fixture_data_link(b.ds, "mix/root", "/") == 0);
    REQUIRE(fixture_data_link(b.ds, "mix/deep/up.jpg", "../../../outside/secret.jpg") == 0);
    REQUIRE(sandbox_watch(&b) == 0);

    DatasetIndex *x = NULL;
    char err[512];
    REQUIRE(data_scan(b.ds, NULL, &x, err, sizeof err) == 0);
    CHECK_INT(sandbox_events(&b), 0);
    CHECK_INT(x->n_classes, 3);
    CHECK_STR(x->class_names[0], "alias");
    CHECK_STR(x->class_names[1], "in");
    CHECK_STR(x->class_names[2], "mix");
    CHECK_INT(x->n_files, 8);
    CHECK(index_of(x, "alias/0.jpg") >= 0 && index_of(x, "in/2.jpg") >= 0);
    CHECK(index_of(x, "mix/ok.jpg") >= 0 && index_of(x, "mix/inside.jpg") >= 0);
    static const char *const out[] = {"out", "up", "everything", "mix/passwd.jpg",
                                      "mix/secret.jpg", "mix/root", "mix/deep/up.jpg"};
    for (size_t i = 0; i < sizeof out / sizeof *out; i++) {
        const char *r = reason_of(x, out[i]);
        if (!starts(r, "symbolic link out of the dataset folder"))
            test_fail(__FILE__, __LINE__, "%s: reason \"%s\"", out[i], r ? r : "(not skipped)");
    }
    CHECK(starts(reason_of(x, "mix/sub"), "symbolic link to a folder: not followed"));
    CHECK_INT(x->n_skipped, 8);
    for (int i = 0; i < x->n_files; i++)
        CHECK(!starts(x->paths[i], "out/") && !starts(x->paths[i], "up/") &&
              !starts(x->paths[i], "everything/"));
    data_index_free(x);
    sandbox_deinit(&b);
}

/* openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) straight from the kernel, or -ENOSYS. */
static int kernel_beneath(int root, const char *rel, int flags)
{
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC),
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof how);
    return fd >= 0 ? fd : -errno;
}

/* The user-space resolver gives the kernel's answers: the same file, or the same error. */
TEST(data_open_beneath_portable_answers_as_the_kernel)
{
    Sandbox b;
    REQUIRE(sandbox_init(&b) == 0);
    REQUIRE(fixture_data_link(b.ds, "alias", "in") == 0);
    REQUIRE(fixture_data_link(b.ds, "mix/inside.jpg", "../in/0.jpg") == 0);
    REQUIRE(fixture_data_link(b.ds, "mix/sub", "../in") == 0);
    REQUIRE(fixture_data_link(b.ds, "mix/chain.jpg", "inside.jpg") == 0);
    REQUIRE(fixture_data_link(b.ds, "mix/passwd.jpg", "/etc/passwd") == 0);
    REQUIRE(fixture_data_link(b.ds, "mix/secret.jpg", "../../outside/secret.jpg") == 0);
    REQUIRE(fixture_data_link(b.ds, "up", "../outside/cls") == 0);
    REQUIRE(fixture_data_link(b.ds, "everything", "/") == 0);
    REQUIRE(fixture_data_link(b.ds, "loop", "loop2") == 0);
    REQUIRE(fixture_data_link(b.ds, "loop2", "loop") == 0);
    REQUIRE(fixture_data_link(b.ds, "dangling", "nowhere") == 0);
    REQUIRE(fixture_data_link(b.ds, "fd", "/proc/self/fd/0") == 0);
    static const struct {
        const char *rel;
        int want; /* 0: opens, as ds/<same> with links resolved; else -errno */
        const char *same;
    } cases[] = {
        {"in/0.jpg", 0, "in/0.jpg"},          {"alias/0.jpg", 0, "in/0.jpg"},
        {"mix/inside.jpg", 0, "in/0.jpg"},    {"mix/chain.jpg", 0, "in/0.jpg"},
        {"mix/sub/1.jpg", 0, "in/1.jpg"},     {"in/../in/2.jpg", 0, "in/2.jpg"},
        {"./in//0.jpg", 0, "in/0.jpg"},       {"in/", 0, "in"},
        {"mix/..", 0, "."},                   {"mix/passwd.jpg", -EXDEV, NULL},
        {"mix/secret.jpg", -EXDEV, NULL},     {"up/0.jpg", -EXDEV, NULL},
        {"everything/etc/passwd", -EXDEV, NULL}, {"../outside/secret.jpg", -EXDEV, NULL},
        {"in/../../outside", -EXDEV, NULL},   {"/etc/passwd", -EXDEV, NULL},
        {"fd", -EXDEV, NULL},                 {"loop", -ELOOP, NULL},
        {"dangling", -ENOENT, NULL},          {"in/missing.jpg", -ENOENT, NULL},
        {"in/0.jpg/x", -ENOTDIR, NULL},       {"in/0.jpg/", -ENOTDIR, NULL},
    };
    int root = data_root_open(b.ds);
    REQUIRE(root >= 0);
    int kernel_has_openat2 = kernel_beneath(root, "in", O_PATH) != -ENOSYS;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int got[2] = {data_open_beneath_portable(root, cases[i].rel, O_PATH),
                      kernel_has_openat2 ? kernel_beneath(root, cases[i].rel, O_PATH) : 0};
        struct stat want_st;
        char want_path[800];
        if (cases[i].same) {
            snprintf(want_path, sizeof want_path, "%s/%s", b.ds, cases[i].same);
            REQUIRE(stat(want_path, &want_st) == 0);
        }
        for (int k = 0; k < 1 + kernel_has_openat2; k++) {
            const char *who = k ? "kernel" : "portable";
            struct stat st;
            if (cases[i].want == 0) {
                if (got[k] < 0 || fstat(got[k], &st) != 0 || st.st_ino != want_st.st_ino)
                    test_fail(__FILE__, __LINE__, "%s %s: %d, expected %s", who, cases[i].rel,
                              got[k], cases[i].same);
            } else if (got[k] != cases[i].want) {
                test_fail(__FILE__, __LINE__, "%s %s: %d, expected %d", who, cases[i].rel,
                          got[k], cases[i].want);
            }
            if (got[k] >= 0)
                close(got[k]);
        }
    }
    /* the dispatcher opens real files for reading below the root, and nothing else */
    int fd = data_open_beneath(root, "alias/1.jpg", O_RDONLY);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    CHECK_INT(data_open_beneath(root, "mix/secret.jpg", O_RDONLY), -EXDEV);
    CHECK_STR(data_open_error(-EXDEV), "symbolic link out of the dataset folder");
    close(root);
    /* a root path that passes through a link is refused: it was canonical once */
    char via_link[700];
    snprintf(via_link, sizeof via_link, "%s/ds/alias", b.tmp);
    CHECK_INT(data_root_open(via_link), -ELOOP);
    sandbox_deinit(&b);
}

/* A file replaced by a link out of the folder after the scan is not read by the cache: it
 * is excluded, and the file outside is never opened. */
TEST(data_cache_refuses_a_file_swapped_for_a_link_after_the_scan)
{
    Sandbox b;
    REQUIRE(sandbox_init(&b) == 0);
    char *cdir = fixture_data_tmpdir();
    REQUIRE(cdir);
    DatasetIndex *x = NULL;
    char err[512], path[800], target[800];
    REQUIRE(data_scan(b.ds, NULL, &x, err, sizeof err) == 0);
    REQUIRE(data_split_assign(x, DATA_SPLIT_DEFAULT, 1) == 0);
    REQUIRE(x->n_files == 3);
    snprintf(path, sizeof path, "%s/in/1.jpg", b.ds);
    snprintf(target, sizeof target, "%s/secret.jpg", b.outside);
    REQUIRE(unlink(path) == 0 && symlink(target, path) == 0);
    snprintf(path, sizeof path, "%s/in/2.jpg", b.ds);
    REQUIRE(unlink(path) == 0 && symlink("../../outside/secret.jpg", path) == 0);
    REQUIRE(sandbox_watch(&b) == 0);

    DataCacheConfig cfg = {.dir = cdir, .size = 8, .resize = DATA_RESIZE_SQUASH, .threads = 1};
    DataCache *c = NULL;
    REQUIRE(data_cache_open(x, &cfg, &c, err, sizeof err) == 0);
    CHECK_INT(sandbox_events(&b), 0);
    for (int k = 1; k <= 2; k++) {
        char rel[32];
        snprintf(rel, sizeof rel, "in/%d.jpg", k);
        int i = index_of(x, rel);
        REQUIRE(i >= 0);
        CHECK_INT(x->split[i], DATA_SPLIT_NONE);
        CHECK(starts(reason_of(x, rel), "unreadable"));
    }
    CHECK_INT(x->split[index_of(x, "in/0.jpg")] != DATA_SPLIT_NONE, 1);
    data_cache_free(c);
    data_index_free(x);
    fixture_data_rmrf(cdir);
    free(cdir);
    sandbox_deinit(&b);
}

typedef struct {
    int calls, cancel_after;
} Cancel;

static bool cancel_after(void *user)
{
    Cancel *c = user;
    return __atomic_add_fetch(&c->calls, 1, __ATOMIC_SEQ_CST) > c->cancel_after;
}

/* The cancel callback is asked while walking and checking, and stops the scan. */
TEST(data_scan_can_be_cancelled)
{
    char *dir = fixture_data_tmpdir();
    REQUIRE(dir);
    REQUIRE(fixture_data_solid_dataset(dir, 3, 20, 8, 8) == 0);
    DatasetIndex *x = (DatasetIndex *)1;
    char err[512] = "";
    for (int after = 0; after <= 70; after += 35) { /* in the walk; in the checks */
        Cancel c = {.cancel_after = after};
        DataScanOptions opt = {.threads = 2, .cancel = cancel_after, .cancel_user = &c};
        CHECK_INT(data_scan(dir, &opt, &x, err, sizeof err), -2);
        CHECK(x == NULL);
        CHECK_STR(err, "scan cancelled");
    }
    Cancel never = {.cancel_after = 1 << 30};
    DataScanOptions opt = {.cancel = cancel_after, .cancel_user = &never};
    REQUIRE(data_scan(dir, &opt, &x, err, sizeof err) == 0);
    CHECK_INT(x->n_files, 60);
    CHECK(never.calls >= 60); /* asked at least once per file */
    data_index_free(x);
    fixture_data_rmrf(dir);
    free(dir);
}

/* A registered dataset folder swapped for a link since registration (here to a folder
 * outside) fails its next scan instead of being followed; a folder a user names on the
 * command line may be reached through links. */
TEST(jobs_scan_refuses_a_registered_folder_swapped_for_a_link)
{
    Sandbox b;
    REQUIRE(sandbox_init(&b) == 0);
    char real[PATH_MAX], moved[700];
    REQUIRE(realpath(b.ds, real));
    TmpDb t;
    REQUIRE(tmpdb_init(&t) == 0);
    Store *s = tmpdb_open(&t);
    REQUIRE(s);
    StoreDatasetNew nd = {"swapped", real, 0.6, 0.2, 0.2, 0};
    int64_t id = 0;
    REQUIRE(store_dataset_insert(s, &nd, &id) == STORE_OK);
    snprintf(moved, sizeof moved, "%s/moved", b.tmp);
    REQUIRE(rename(b.ds, moved) == 0 && symlink(b.outside, b.ds) == 0);
    REQUIRE(sandbox_watch(&b) == 0);

    char err[512];
    CHECK_INT(jobs_scan_dataset(s, id, err, sizeof err), -1);
    CHECK(strstr(err, "a symbolic link appeared in its path") != NULL);
    CHECK_INT(sandbox_events(&b), 0);
    StoreDataset d;
    REQUIRE(store_dataset_get_by_id(s, id, &d) == STORE_OK);
    CHECK_INT(d.status, STORE_DATASET_FAILED);
    CHECK_INT(d.n_files, 0);
    store_dataset_deinit(&d);
    DataSplitFractions f = DATA_SPLIT_DEFAULT;
    DatasetIndex *x = jobs_scan_registered(real, f, 0, err, sizeof err);
    CHECK(x == NULL);
    data_index_free(x);
    x = jobs_scan_and_split(b.ds, f, 0, err, sizeof err); /* named by a user: followed */
    CHECK(x != NULL && x->n_files == 2);
    data_index_free(x);
    store_close(s);
    tmpdb_deinit(&t);
    sandbox_deinit(&b);
}
