/* test_store_util.h — temporary database directories and sample rows for the store tests. */
#ifndef INITLAB_TEST_STORE_UTIL_H
#define INITLAB_TEST_STORE_UTIL_H

#include "store/store.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh directory under /tmp holding one database path; removed with everything in it. */
typedef struct {
    char dir[64];
    char db[128];
} TmpDb;

static inline int tmpdb_init(TmpDb *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/initlab-store-XXXXXX");
    if (!mkdtemp(t->dir))
        return -1;
    snprintf(t->db, sizeof t->db, "%s/initlab.db", t->dir);
    return 0;
}

static inline int tmpdb_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static inline void tmpdb_deinit(TmpDb *t)
{
    if (t->dir[0])
        nftw(t->dir, tmpdb_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* Opens t's database and fails the test (returning NULL) with the store's message. */
static inline Store *tmpdb_open(TmpDb *t)
{
    char err[512];
    Store *s = store_open(t->db, err, sizeof err);
    if (!s)
        fprintf(stdout, "    store_open(%s): %s\n", t->db, err);
    return s;
}

/* A queued job with the given identifying fields and a small JSON configuration. */
static inline StoreJobNew sample_job(const char *model, const char *init, int64_t seed)
{
    StoreJobNew j = {0};
    j.config_json = "{\"epochs\": 3}";
    j.dataset = "weeds";
    j.model = model;
    j.initializer = init;
    j.seed = seed;
    j.epochs = 3;
    return j;
}

static inline int file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

#endif
