/* test_data_idx.c — the IDX reader on small files written here, plain and gzipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data/idx.h"
#include "test.h"
#include "test_data_fixture.h"

/* A (3, 2, 4) ubyte array: magic 00 00 08 03, sizes big-endian, values 0..23. */
static const uint8_t idx3[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 4,
                               0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                               16, 17, 18, 19, 20, 21, 22, 23};

TEST(data_idx_reads_plain_and_gzipped)
{
    char *dir = fixture_data_tmpdir();
    REQUIRE(dir);
    REQUIRE(fixture_data_write(dir, "a-idx3-ubyte", idx3, sizeof idx3) == 0);
    char gz[1024];
    snprintf(gz, sizeof gz, "%s/a-idx3-ubyte.gz", dir);
    gzFile f = gzopen(gz, "wb");
    REQUIRE(f);
    CHECK(gzwrite(f, idx3, sizeof idx3) == (int)sizeof idx3);
    gzclose(f);

    for (int k = 0; k < 2; k++) {
        char path[600];
        snprintf(path, sizeof path, "%s/a-idx3-ubyte%s", dir, k ? ".gz" : "");
        IdxArray a;
        char err[512];
        REQUIRE(data_idx_read(path, &a, err, sizeof err) == 0);
        CHECK_INT(a.ndims, 3);
        CHECK(a.dims[0] == 3 && a.dims[1] == 2 && a.dims[2] == 4);
        CHECK_INT(a.count, 24);
        for (int i = 0; i < 24; i++)
            CHECK_INT(a.data[i], i);
        data_idx_deinit(&a);
    }
    fixture_data_rmrf(dir);
    free(dir);
}

TEST(data_idx_rejects_bad_files)
{
    char *dir = fixture_data_tmpdir();
    REQUIRE(dir);
    uint8_t bad[sizeof idx3];
    char path[600], err[512];
    IdxArray a;
    struct {
        const char *name;
        int pos, value;
        size_t len;
        const char *msg;
    } cases[] = {
        {"truncated", -1, 0, sizeof idx3 - 3, "truncated"},
        {"magic", 0, 1, sizeof idx3, "not an IDX"},
        {"float", 2, 0x0D, sizeof idx3, "type 0x0d"},
        {"dims", 3, 9, sizeof idx3, "dimensions"},
        {"zero", 7, 0, sizeof idx3, "dimension 0"},
        {"short_header", -1, 0, 10, "truncated header"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(bad, idx3, sizeof idx3);
        if (cases[k].pos >= 0)
            bad[cases[k].pos] = (uint8_t)cases[k].value;
        REQUIRE(fixture_data_write(dir, cases[k].name, bad, cases[k].len) == 0);
        snprintf(path, sizeof path, "%s/%s", dir, cases[k].name);
        err[0] = '\0';
        CHECK(data_idx_read(path, &a, err, sizeof err) == -1);
        if (!strstr(err, cases[k].msg))
            test_fail(__FILE__, __LINE__, "%s: message '%s' lacks '%s'", cases[k].name, err,
                      cases[k].msg);
        CHECK(a.data == NULL);
    }
    snprintf(path, sizeof path, "%s/missing", dir);
    CHECK(data_idx_read(path, &a, err, sizeof err) == -1);
    fixture_data_rmrf(dir);
    free(dir);
}
