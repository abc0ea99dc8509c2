/* demo_data.c — `initlab demo-data`: writes a procedural weed-photograph dataset. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "data/demo.h"

static const char usage_text[] =
    "usage: initlab demo-data DIR [--classes 6] [--per-class 300] [--size 96] [--seed 0]\n"
    "                             [--quality 90] [--threads 2]\n\n"
    "Writes an ImageFolder of synthetic weed photographs into DIR: one folder per species,\n"
    "<species>_NNNN.jpg inside. Each image is one plant on soil: leaves with the species'\n"
    "outline, lobes, leaflets, serration, hue and venation, in a random pose, scale and\n"
    "lighting, with soil texture, pebbles, shadows and sensor noise. Several species share\n"
    "colours or outlines, so the classes are learnable but not trivial. The same arguments\n"
    "write the same files. Existing files are never overwritten. Progress goes to stderr.\n\n"
    "  --classes N     species, 1..%d (default 6)\n"
    "  --per-class N   images per species (default 300)\n"
    "  --size S        image side in pixels, 8..4096 (default 96)\n"
    "  --seed N        seed (default 0)\n"
    "  --quality Q     JPEG quality 1..100 (default 90)\n"
    "  --threads T     rendering threads (default 2)\n\n"
    "species, in --classes order:";

static void usage(FILE *out)
{
    fprintf(out, usage_text, data_demo_species_count());
    for (int i = 0; i < data_demo_species_count(); i++)
        fprintf(out, " %s", data_demo_species_name(i));
    fputc('\n', out);
}

static int progress(void *user, long done, long total)
{
    int *tty = user;
    if (*tty)   /* a live counter on a terminal; logs get only the closing line */
        fprintf(stderr, "\rdemo-data: %ld / %ld images", done, total);
    return 0;
}

static int parse_int(const char *text, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int cmd_demo_data(int argc, char **argv)
{
    static const struct option opts[] = {
        {"classes", required_argument, NULL, 'c'}, {"per-class", required_argument, NULL, 'p'},
        {"size", required_argument, NULL, 's'},    {"seed", required_argument, NULL, 'S'},
        {"quality", required_argument, NULL, 'q'}, {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    DataDemoConfig cfg = {.classes = 6, .per_class = 300, .size = 96, .seed = 0,
                          .quality = 90, .threads = 2};
    int c, bad = 0;
    char *end;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': bad |= parse_int(optarg, 1, data_demo_species_count(), &cfg.classes); break;
        case 'p': bad |= parse_int(optarg, 1, 10000000, &cfg.per_class); break;
        case 's': bad |= parse_int(optarg, 8, 4096, &cfg.size); break;
        case 'q': bad |= parse_int(optarg, 1, 100, &cfg.quality); break;
        case 't': bad |= parse_int(optarg, 1, 64, &cfg.threads); break;
        case 'S':
            cfg.seed = strtoull(optarg, &end, 10);
            bad |= !*optarg || *end || *optarg == '-';
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (bad || optind != argc - 1 || (long)cfg.classes * cfg.per_class > 100000000L) {
        if (bad)
            fprintf(stderr, "initlab demo-data: an option's value is out of range\n");
        usage(stderr);
        return 2;
    }
    int tty = isatty(2);
    char err[512];
    int rc = data_demo_write(argv[optind], &cfg, progress, &tty, err, sizeof err);
    if (tty)
        fputc('\n', stderr);
    if (rc != 0) {
        fprintf(stderr, "initlab demo-data: %s\n", err);
        return 1;
    }
    fprintf(stderr, "demo-data: wrote %d classes x %d images of %dx%d to %s\n", cfg.classes,
            cfg.per_class, cfg.size, cfg.size, argv[optind]);
    return 0;
}

COMMAND(demo_data, "demo-data", cmd_demo_data, 70,
        "demo-data DIR [--classes 6] [--per-class 300] [--size 96] [--seed 0]",
        "write a synthetic weed-photograph dataset (JPEG folders)")
