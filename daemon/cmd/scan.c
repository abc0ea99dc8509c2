/* scan.c — `initlab scan`: classes, per-class split counts and skipped files of an ImageFolder. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "data/names.h"
#include "data/scan.h"
#include "data/split.h"
#include "util/jsonout.h"

static const char usage_text[] =
    "usage: initlab scan DIR [--split 0.6,0.2,0.2] [--seed N] [--threads T] [--quick]\n"
    "                        [--json]\n\n"
    "Reads the ImageFolder dataset DIR (one subfolder per class holding .jpg/.jpeg files,\n"
    "any case; classes in byte order of the folder names; hidden files ignored; files\n"
    "found recursively below each class folder) and prints its classes, the images per\n"
    "class in the train/val/test split, and every skipped file with the reason: unreadable,\n"
    "zero-byte, not a JPEG (or not named .jpg/.jpeg), truncated, corrupt, too large, a\n"
    "symbolic link out of DIR (nothing outside DIR is read), a class folder without a\n"
    "usable image (not a class). Every image is decoded at 1/8 scale, which finds damaged\n"
    "image data. Names that are not UTF-8 are shown with \\xHH escapes (a backslash as\n"
    "\\\\).\n\n"
    "  --split F,F,F   train, validation and test fractions (default 0.6,0.2,0.2), applied\n"
    "                  per class with a seeded shuffle\n"
    "  --seed N        seed of the split (default 0)\n"
    "  --threads T     files checked in parallel (default 2)\n"
    "  --quick         check headers and end-of-image markers only, without decoding (fast;\n"
    "                  misses damage inside the image data, which training would refuse)\n"
    "  --json          one JSON object on stdout\n\n"
    "Exit status: 0 when the dataset was read (skipped files do not count as errors),\n"
    "1 when DIR is not a dataset, 2 on a usage error.\n";

/* A new JSON string of the text form of a name (names.h), or NULL when out of memory. */
static json_t *jname(const char *name)
{
    char *t = data_name_text(name);
    json_t *j = t ? json_string(t) : NULL;
    free(t);
    return j;
}

/* A new JSON object describing x, or NULL when out of memory. set_new steals the value
 * even when it fails, so each member is owned by o from the moment it is set. */
static json_t *scan_json(const DatasetIndex *x, DataSplitFractions f, unsigned long long seed)
{
    json_t *o = json_object();
    json_t *classes = json_array(), *skipped = json_array();
    int bad = !o || json_object_set_new(o, "root", jname(x->root)) != 0;
    bad |= !o || json_object_set_new(o, "seed", json_integer((json_int_t)seed)) != 0;
    bad |= !o || json_object_set_new(o, "images", json_integer(x->n_files)) != 0;
    bad |= !o || json_object_set_new(o, "fractions",
                                     json_pack("{s:f, s:f, s:f}", "train", f.train, "val",
                                               f.val, "test", f.test)) != 0;
    bad |= !o || json_object_set_new(o, "classes", classes) != 0;
    bad |= !o || json_object_set_new(o, "skipped", skipped) != 0;
    if (bad) {
        if (!o) {
            json_decref(classes);
            json_decref(skipped);
        }
        json_decref(o);
        return NULL;
    }
    int totals[3] = {0, 0, 0};
    for (int c = 0; c < x->n_classes; c++) {
        int n[3];
        for (int s = 0; s < 3; s++) {
            n[s] = data_index_count(x, c, s);
            totals[s] += n[s];
        }
        bad |= json_array_append_new(
                   classes, json_pack("{s:i, s:o, s:i, s:i, s:i, s:i}", "index", c, "name",
                                      jname(x->class_names[c]), "count", data_index_count(x, c, -1),
                                      "train", n[0], "val", n[1], "test", n[2])) != 0;
    }
    for (int i = 0; i < x->n_skipped; i++)
        bad |= json_array_append_new(skipped, json_pack("{s:o, s:o}", "path",
                                                        jname(x->skipped[i].path), "reason",
                                                        jname(x->skipped[i].reason))) != 0;
    bad |= json_object_set_new(o, "split",
                               json_pack("{s:i, s:i, s:i}", "train", totals[0], "val",
                                         totals[1], "test", totals[2])) != 0;
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void print_text(const DatasetIndex *x, DataSplitFractions f, unsigned long long seed)
{
    char name[1024], root[1024];
    int width = 5;
    for (int c = 0; c < x->n_classes; c++) {
        int l = (int)strlen(data_name_text_buf(x->class_names[c], name, sizeof name));
        if (l > width)
            width = l;
    }
    printf("dataset %s: %d classes, %d images, %d skipped (split %g/%g/%g, seed %llu)\n\n",
           data_name_text_buf(x->root, root, sizeof root), x->n_classes, x->n_files,
           x->n_skipped, f.train, f.val, f.test, seed);
    printf("  %3s  %-*s %8s %8s %8s %8s\n", "#", width, "class", "images", "train", "val",
           "test");
    int t[4] = {0, 0, 0, 0};
    for (int c = 0; c < x->n_classes; c++) {
        int n[4] = {data_index_count(x, c, -1), data_index_count(x, c, 0),
                    data_index_count(x, c, 1), data_index_count(x, c, 2)};
        for (int k = 0; k < 4; k++)
            t[k] += n[k];
        printf("  %3d  %-*s %8d %8d %8d %8d\n", c, width,
               data_name_text_buf(x->class_names[c], name, sizeof name), n[0], n[1], n[2],
               n[3]);
    }
    printf("  %3s  %-*s %8d %8d %8d %8d\n", "", width, "total", t[0], t[1], t[2], t[3]);
    if (x->n_skipped) {
        printf("\nskipped:\n");
        for (int i = 0; i < x->n_skipped; i++)
            printf("  %s: %s\n", data_name_text_buf(x->skipped[i].path, name, sizeof name),
                   x->skipped[i].reason);
    }
}

static int cmd_scan(int argc, char **argv)
{
    static const struct option opts[] = {
        {"split", required_argument, NULL, 's'}, {"seed", required_argument, NULL, 'S'},
        {"threads", required_argument, NULL, 't'}, {"quick", no_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'j'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    DataSplitFractions f = DATA_SPLIT_DEFAULT;
    DataScanOptions so = {.threads = 2};
    unsigned long long seed = 0;
    int json = 0, c;
    char err[512], *end;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (data_split_parse(optarg, &f, err, sizeof err) != 0) {
                fprintf(stderr, "initlab scan: %s\n", err);
                return 2;
            }
            break;
        case 'S':
            seed = strtoull(optarg, &end, 10);
            if (*end || !*optarg || *optarg == '-') {
                fprintf(stderr, "initlab scan: --seed must be a non-negative integer\n");
                return 2;
            }
            break;
        case 't':
            so.threads = atoi(optarg);
            if (so.threads < 1 || so.threads > 64) {
                fprintf(stderr, "initlab scan: --threads must be 1..64\n");
                return 2;
            }
            break;
        case 'q': so.quick = true; break;
        case 'j': json = 1; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fputs(usage_text, stderr);
        return 2;
    }
    DatasetIndex *x = NULL;
    if (data_scan(argv[optind], &so, &x, err, sizeof err) != 0) {
        fprintf(stderr, "initlab scan: %s\n", err);
        return 1;
    }
    if (data_split_assign(x, f, seed) != 0) {
        fprintf(stderr, "initlab scan: out of memory\n");
        data_index_free(x);
        return 1;
    }
    int rc = 0;
    if (json) {
        json_t *o = scan_json(x, f, seed);
        char *text = o ? json_text(o, JSON_INDENT(2)) : NULL;
        json_decref(o);
        if (text) {
            puts(text);
            free(text);
        } else {
            fprintf(stderr, "initlab scan: out of memory\n");
            rc = 1;
        }
    } else {
        print_text(x, f, seed);
    }
    data_index_free(x);
    return rc;
}

COMMAND(scan, "scan", cmd_scan, 30, "scan DIR [--split 0.6,0.2,0.2] [--seed N] [--json]",
        "classes, split counts and skipped files of an image folder")
