/* stats_dump.c — prints stats_summarize of a raw float32 file as JSON, for the numpy
 * cross-check (tests/torch/test_stats.py) and for timing.
 *
 * usage: stats_dump [--repeat R] FILE
 * FILE holds little-endian float32 values, nothing else. The JSON object has every
 * StatSummary field (hist as an array of 64 counts) and "seconds", the best wall time of
 * R runs (default 1) of stats_summarize with a preallocated scratch buffer. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "train/stats.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Reads the whole file into *out (malloc'd, owned by the caller) as floats. */
static int read_floats(const char *path, float **out, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "stats_dump: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    float *buf = NULL;
    if (fseek(f, 0, SEEK_END) != 0)
        goto cleanup;
    long size = ftell(f);
    if (size < 0 || size % 4 != 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "stats_dump: %s: not a whole number of float32 values\n", path);
        goto cleanup;
    }
    *n = (size_t)size / 4;
    buf = malloc(*n ? *n * sizeof *buf : 1);
    if (!buf || fread(buf, sizeof *buf, *n, f) != *n) {
        fprintf(stderr, "stats_dump: %s: read failed\n", path);
        goto cleanup;
    }
    *out = buf;
    buf = NULL;
    rc = 0;
cleanup:
    free(buf);
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    int repeat = 1;
    const char *path = NULL;
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!path && argv[i][0] != '-')
            path = argv[i];
        else
            bad = 1;
    }
    if (bad || !path || repeat < 1) {
        fprintf(stderr, "usage: stats_dump [--repeat R] FILE\n");
        return 2;
    }
    float *x = NULL;
    size_t n = 0;
    if (read_floats(path, &x, &n) != 0)
        return 1;
    float *scratch = malloc(n ? n * sizeof *scratch : 1);
    if (!scratch) {
        fprintf(stderr, "stats_dump: out of memory\n");
        free(x);
        return 1;
    }
    StatSummary s;
    double best = 1e300;
    for (int r = 0; r < repeat; r++) {
        double t0 = now();
        if (stats_summarize(x, n, scratch, &s) != 0) {
            fprintf(stderr, "stats_dump: stats_summarize failed\n");
            free(x);
            free(scratch);
            return 1;
        }
        double t = now() - t0;
        best = t < best ? t : best;
    }

    json_t *o = json_object(); /* new */
    json_object_set_new(o, "n", json_integer(s.n));
    json_object_set_new(o, "mean", json_real(s.mean));
    json_object_set_new(o, "std", json_real(s.std));
    json_object_set_new(o, "min", json_real(s.min));
    json_object_set_new(o, "max", json_real(s.max));
    json_object_set_new(o, "q1", json_real(s.q1));
    json_object_set_new(o, "median", json_real(s.median));
    json_object_set_new(o, "q3", json_real(s.q3));
    json_object_set_new(o, "whisker_lo", json_real(s.whisker_lo));
    json_object_set_new(o, "whisker_hi", json_real(s.whisker_hi));
    json_object_set_new(o, "p1", json_real(s.p1));
    json_object_set_new(o, "p99", json_real(s.p99));
    json_object_set_new(o, "zero_frac", json_real(s.zero_frac));
    json_object_set_new(o, "nonfinite", json_integer(s.nonfinite));
    json_object_set_new(o, "hist_lo", json_real(s.hist_lo));
    json_object_set_new(o, "hist_hi", json_real(s.hist_hi));
    json_t *h = json_array(); /* new, stolen by o below */
    for (int i = 0; i < STATS_BINS; i++)
        json_array_append_new(h, json_integer(s.hist[i]));
    json_object_set_new(o, "hist", h);
    json_object_set_new(o, "seconds", json_real(best));
    char *text = json_dumps(o, JSON_REAL_PRECISION(17) | JSON_SORT_KEYS);
    int rc = text ? 0 : 1;
    if (text)
        puts(text);
    free(text);
    json_decref(o);
    free(x);
    free(scratch);
    return rc;
}
