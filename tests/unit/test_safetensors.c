/* test_safetensors.c — round trips, hand-built files and refused corrupt files for util/safetensors. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "util/safetensors.h"

/* A fresh temporary directory; path receives its name. */
static int make_tmpdir(char *path, size_t size)
{
    snprintf(path, size, "/tmp/initlab_st_XXXXXX");
    return mkdtemp(path) ? 0 : -1;
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

/* Writes a file from a literal header (the 8-byte length is computed) and raw data. */
static void write_raw(const char *path, const char *header, const void *data, size_t data_len,
                      long header_len_override)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    uint64_t len = header_len_override >= 0 ? (uint64_t)header_len_override : strlen(header);
    unsigned char lb[8];
    for (int i = 0; i < 8; i++)
        lb[i] = (unsigned char)(len >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (data_len)
        fwrite(data, 1, data_len, f);
    fclose(f);
}

TEST(safetensors_round_trip_keeps_names_shapes_data_and_metadata)
{
    char dir[64], path[128];
    REQUIRE(make_tmpdir(dir, sizeof dir) == 0);
    snprintf(path, sizeof path, "%s/w.safetensors", dir);

    float a[2 * 3 * 4], b[5], c[1] = {-0.0f};
    for (int i = 0; i < 24; i++)
        a[i] = (float)i * 0.37f - 3.0f;
    for (int i = 0; i < 5; i++)
        b[i] = 1.0f / (float)(i + 1);
    StTensor t[4] = {
        {.name = "conv1/kernel", .ndim = 3, .shape = {2, 3, 4}, .count = 24, .data = a},
        {.name = "conv1_bn/gamma", .ndim = 1, .shape = {5}, .count = 5, .data = b},
        {.name = "scalar", .ndim = 0, .count = 1, .data = c},
        {.name = "empty", .ndim = 2, .shape = {0, 7}, .count = 0, .data = NULL},
    };
    const char *meta[] = {"model", "mobilenet", "seed", "42", NULL};
    char err[256] = "";
    CHECK_INT(st_write(path, t, 4, meta, err, sizeof err), 0);
    CHECK_INT(count_entries(dir), 1); /* no temporary file left behind */

    /* The data section starts 8-byte aligned and the header is JSON. */
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    unsigned char lb[9];
    CHECK_INT(fread(lb, 1, 9, f), 9);
    fclose(f);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)lb[i] << (8 * i);
    CHECK_INT(hlen % 8, 0);
    CHECK_INT(lb[8], '{');

    SafeTensors *st = st_read(path, err, sizeof err);
    REQUIRE(st);
    CHECK_INT(st_count(st), 4);
    for (int i = 0; i < 4; i++) {
        const StTensor *r = st_at(st, i);
        CHECK_STR(r->name, t[i].name); /* written order is kept */
        CHECK_INT(r->ndim, t[i].ndim);
        CHECK_INT(r->count, t[i].count);
        for (int d = 0; d < r->ndim; d++)
            CHECK_INT(r->shape[d], t[i].shape[d]);
        if (r->count)
            CHECK(memcmp(r->data, t[i].data, r->count * sizeof(float)) == 0);
    }
    CHECK(st_find(st, "conv1_bn/gamma") == st_at(st, 1));
    CHECK(st_find(st, "nope") == NULL);
    CHECK(st_at(st, 4) == NULL);
    CHECK_STR(st_metadata(st, "model"), "mobilenet");
    CHECK_STR(st_metadata(st, "seed"), "42");
    CHECK(st_metadata(st, "head") == NULL);
    st_free(st);

    /* Writing again replaces the file atomically. */
    CHECK_INT(st_write(path, t + 1, 1, NULL, err, sizeof err), 0);
    st = st_read(path, err, sizeof err);
    REQUIRE(st);
    CHECK_INT(st_count(st), 1);
    CHECK(st_metadata(st, "model") == NULL);
    st_free(st);
    CHECK_INT(count_entries(dir), 1);
    st_free(NULL);
    remove_tree(dir);
}

TEST(safetensors_reads_hand_built_file_with_unaligned_data)
{
    char dir[64], path[128], err[256] = "";
    REQUIRE(make_tmpdir(dir, sizeof dir) == 0);
    snprintf(path, sizeof path, "%s/h.safetensors", dir);
    /* Header of odd length: the data starts unaligned; tensors stored out of order. */
    const char *header = "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                         "\"__metadata__\":{\"k\":\"v\"}} ";
    float data[3] = {1.5f, -2.25f, 1e-30f};
    write_raw(path, header, data, sizeof data, -1);
    SafeTensors *st = st_read(path, err, sizeof err);
    REQUIRE(st);
    CHECK_INT(st_count(st), 2);
    const StTensor *a = st_find(st, "a"), *b = st_find(st, "b");
    REQUIRE(a && b);
    CHECK_INT(a->ndim, 0);
    CHECK_INT(a->count, 1);
    CHECK(a->data[0] == 1.5f);
    CHECK_INT(b->shape[0], 2);
    CHECK(b->data[0] == -2.25f && b->data[1] == 1e-30f);
    CHECK_STR(st_metadata(st, "k"), "v");
    st_free(st);
    remove_tree(dir);
}

/* st_read must fail on path and leave a message containing want. */
static void expect_refused(const char *path, const char *want)
{
    char err[256] = "";
    SafeTensors *st = st_read(path, err, sizeof err);
    CHECK(st == NULL);
    st_free(st);
    if (!strstr(err, want))
        test_fail(__FILE__, __LINE__, "error \"%s\" does not mention \"%s\"", err, want);
}

TEST(safetensors_refuses_corrupt_and_truncated_files)
{
    char dir[64], path[128], err[256] = "";
    REQUIRE(make_tmpdir(dir, sizeof dir) == 0);
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    float data[4] = {1, 2, 3, 4};
    const char *good = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";

    expect_refused(path, "No such file");

    write_raw(path, good, data, 12, -1); /* data cut short */
    expect_refused(path, "truncated");

    write_raw(path, "", NULL, 0, -1); /* shorter than the length field */
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite("abc", 1, 3, f);
        fclose(f);
    }
    expect_refused(path, "truncated");

    write_raw(path, good, data, sizeof data, 5000); /* header length past the end */
    expect_refused(path, "truncated");

    write_raw(path, good, data, sizeof data, (long)1 << 40); /* absurd header length */
    expect_refused(path, "corrupt header");

    write_raw(path, "{\"x\": {\"dtype\": \"F32\", ", data, sizeof data, -1); /* bad JSON */
    expect_refused(path, "corrupt header");

    write_raw(path, "[1, 2, 3]", NULL, 0, -1);
    expect_refused(path, "corrupt header");

    write_raw(path, "{\"x\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", data,
              8, -1);
    expect_refused(path, "only F32");

    write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,16]}}", data,
              sizeof data, -1); /* shape needs 24 bytes */
    expect_refused(path, "corrupt header");

    write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
              data, sizeof data, -1);
    expect_refused(path, "overlap");

    write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", data,
              4, -1);
    expect_refused(path, "corrupt header");

    write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", data, 4, -1);
    expect_refused(path, "corrupt header");

    write_raw(path, "{\"__metadata__\":{\"k\":3}}", NULL, 0, -1);
    expect_refused(path, "metadata");

    /* Writer refuses inconsistent input and leaves the previous file alone. */
    write_raw(path, good, data, sizeof data, -1);
    StTensor bad = {.name = "x", .ndim = 2, .shape = {2, 3}, .count = 4, .data = data};
    CHECK_INT(st_write(path, &bad, 1, NULL, err, sizeof err), -1);
    CHECK(strstr(err, "does not match") != NULL);
    StTensor dup[2] = {{.name = "x", .ndim = 1, .shape = {4}, .count = 4, .data = data},
                       {.name = "x", .ndim = 1, .shape = {4}, .count = 4, .data = data}};
    CHECK_INT(st_write(path, dup, 2, NULL, err, sizeof err), -1);
    SafeTensors *st = st_read(path, err, sizeof err);
    CHECK(st != NULL && st_count(st) == 1);
    st_free(st);
    CHECK_INT(count_entries(dir), 1);

    /* A directory that does not exist: clear error, nothing created. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/dir/w.safetensors", dir);
    CHECK_INT(st_write(missing, dup, 1, NULL, err, sizeof err), -1);
    CHECK(strstr(err, "No such file") != NULL);
    remove_tree(dir);
}
