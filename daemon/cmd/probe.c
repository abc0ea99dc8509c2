/* probe.c — `initlab probe`: layer distributions at initialization, without training. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/jobargs.h"
#include "data/cache.h"
#include "data/decode.h"
#include "data/fsutil.h"
#include "data/loader.h"
#include "data/names.h"
#include "data/preprocess.h"
#include "data/split.h"
#include "jobs/report.h"
#include "jobs/scan.h"
#include "nn/init.h"
#include "nn/models.h"
#include "train/lsuv.h"
#include "train/probe.h"
#include "train/trainer.h"
#include "util/jsonout.h"
#include "util/rng.h"

static const char usage_text[] =
    "usage: initlab probe --model M --init I [--data DIR] [--batch B] [--classes K]\n"
    "                     [--mode train|inference|both] [--sweep-gain G,G,...]\n"
    "                     [job options] [--preset P] [--json]\n\n"
    "Builds and initializes the model exactly as a training job would, runs one forward and\n"
    "backward pass on a probe batch and prints the distribution of every kernel's weights,\n"
    "every activation layer's output (plus the logits and the softmax) and every kernel's\n"
    "gradient, in BatchNorm train mode, inference mode or both. Moving statistics are not\n"
    "touched. With --data the probe batch is the one training jobs use on that folder (the\n"
    "same validation images); without it, random images of --classes classes. Every row\n"
    "also shows what the paper's variance propagation predicts for it (theory σ: the\n"
    "activations' std, the root of the gradients' second moment; docs/theory.md). With\n"
    "--init lsuv, LSUV scales the kernels on the probe batch first.\n\n"
    "  --data DIR        ImageFolder dataset (split 0.6,0.2,0.2, seed 0)\n"
    "  --batch B         probe images (default: the job's probe_size, 32)\n"
    "  --classes K       classes without --data (default 21, the paper's weeds)\n"
    "  --mode M          train, inference or both (default both)\n"
    "  --sweep-gain G,.. the depth profile for each gain (init_gain: every kernel times G):\n"
    "                    per layer the activations' std at each gain beside the theory's\n"
    "  --cache-dir DIR   decoded-image cache for pixel_mean (default state/cache)\n"
    "  --json            the rows as JSON, in the shape of GET /api/v1/jobs/{id}/stats\n\n"
    "  job options as for `initlab train`; --size is --image-size.\n\n";

/* The probe images: from the dataset's validation split, or random pixels. */
static int probe_inputs(const JobConfig *cfg, const char *data, const char *cache_dir,
                        int n, int *classes, float *x, int *y, char *err, size_t errlen)
{
    int S = cfg->image_size;
    size_t img = (size_t)S * S * 3;
    DataPreMode mode;
    if (data_pre_parse(cfg->preprocess, &mode) < 0) {
        snprintf(err, errlen, "unknown preprocessing %s", cfg->preprocess);
        return -1;
    }
    DataResize resize = strcmp(cfg->crop, "center") == 0 ? DATA_RESIZE_CROP : DATA_RESIZE_SQUASH;
    int rc = -1;
    DatasetIndex *index = NULL;
    DataCache *cache = NULL;
    int root_fd = -1;
    DataCodec *codec = NULL;
    DataPreprocess pre = {0};
    uint8_t *pixels = malloc(img);
    float *mean = NULL;
    if (!pixels)
        goto out;
    if (!data) {
        Rng rng;
        rng_seed(&rng, (uint64_t)cfg->seed);
        if (mode == DATA_PRE_PIXEL_MEAN) {
            snprintf(err, errlen, "pixel_mean preprocessing needs --data");
            goto out;
        }
        if (data_pre_init(&pre, mode, S, NULL) < 0)
            goto out;
        for (int i = 0; i < n; i++) {
            for (size_t k = 0; k < img; k++)
                pixels[k] = (uint8_t)rng_below(&rng, 256);
            data_pre_apply(&pre, pixels, false, x + i * img);
            y[i] = (int)rng_below(&rng, (uint64_t)*classes);
        }
        rc = 0;
        goto out;
    }
    index = jobs_scan_and_split(data, DATA_SPLIT_DEFAULT, 0, err, errlen);
    if (!index)
        goto out;
    *classes = index->n_classes;
    int idx[512];
    int got = data_split_probe(index, n, TRAIN_PROBE_SEED, idx);
    if (got < n) {
        snprintf(err, errlen, "the validation split has %d images, fewer than the %d asked",
                 got < 0 ? 0 : got, n);
        goto out;
    }
    if (mode == DATA_PRE_PIXEL_MEAN) {
        /* The mean image needs every training image: go through the cache, as jobs do. */
        DataCacheConfig cc = {.dir = cache_dir, .size = S, .resize = resize, .threads = 2};
        int *train = NULL, n_train = 0;
        mean = malloc(img * sizeof(float));
        if (!mean || data_cache_open(index, &cc, &cache, err, errlen) < 0 ||
            data_split_indices(index, DATA_SPLIT_TRAIN, &train, &n_train) < 0 ||
            data_cache_mean_image(cache, train, n_train, mean, err, errlen) < 0) {
            free(train);
            goto out;
        }
        free(train);
        if (data_pre_init(&pre, mode, S, mean) < 0)
            goto out;
        data_read_batch(cache, &pre, idx, n, x, y);
        rc = 0;
        goto out;
    }
    codec = data_codec_create();
    if (!codec || data_pre_init(&pre, mode, S, NULL) < 0)
        goto out;
    /* Sealed in the dataset folder, as the cache reads it (data/fsutil.h). */
    root_fd = data_root_open(index->root);
    if (root_fd < 0) {
        snprintf(err, errlen, "%.300s: %s", index->root, strerror(-root_fd));
        goto out;
    }
    for (int i = 0; i < n; i++) {
        char reason[256], name[1024];
        if (data_jpeg_decode_at(codec, root_fd, index->paths[idx[i]], S, resize, pixels, reason,
                                sizeof reason) != DATA_JPEG_OK) {
            snprintf(err, errlen, "%.300s/%.400s: %.200s", index->root,
                     data_name_text_buf(index->paths[idx[i]], name, sizeof name), reason);
            goto out;
        }
        data_pre_apply(&pre, pixels, false, x + i * img);
        y[i] = index->labels[idx[i]];
    }
    rc = 0;
out:
    if (rc < 0 && !err[0])
        snprintf(err, errlen, "out of memory");
    data_pre_deinit(&pre);
    data_codec_free(codec);
    data_cache_free(cache);
    data_index_free(index);
    if (root_fd >= 0)
        close(root_fd);
    free(pixels);
    free(mean);
    return rc;
}

static void print_table(const ProbeResult *r)
{
    printf("%-5s %-10s %-9s %-28s %-24s %11s %11s %11s %11s %11s  %s\n", "index", "mode",
           "quantity", "layer", "type", "mean", "std", "theory σ", "min", "max", "flags");
    for (int i = 0; i < r->n; i++) {
        const ProbeRow *p = &r->rows[i];
        char flags[64] = "";
        if (p->flags & PROBE_FLAG_DEAD)
            snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "dead(%d of %d) ",
                     p->health.dead_units, p->health.units);
        if (p->flags & PROBE_FLAG_SATURATED)
            snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "saturated(%.0f%%) ",
                     100 * p->health.saturated_frac);
        if (p->flags & PROBE_FLAG_NONFINITE)
            snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "nonfinite ");
        printf("%-5d %-10s %-9s %-28s %-24s %11.4g %11.4g %11.4g %11.4g %11.4g  %s\n",
               p->layer_index, probe_mode_name(p->mode), probe_quantity_name(p->quantity),
               p->layer_name, p->layer_type, p->s.mean, p->s.std,
               p->theory_var >= 0 ? sqrt(p->theory_var) : NAN, p->s.min, p->s.max, flags);
    }
}

static json_t *rows_json(const ProbeResult *r)
{
    json_t *rows = json_array();
    for (int i = 0; rows && i < r->n; i++) {
        StoreLayerStat s;
        report_probe_to_store(&r->rows[i], &s);
        json_array_append_new(rows, report_layer_stat(&s, true));
    }
    return rows;
}

/* The depth profile of each gain: per mode, layer by layer, the activations' std at each
 * gain and the theory's std beside it. */
static void print_sweep(const double *gains, int n_gains, const ProbeResult *res)
{
    for (int mode = 0; mode < 2; mode++) {
        const ProbeResult *r0 = &res[0];
        bool any = false;
        for (int i = 0; i < r0->n; i++)
            any |= (int)r0->rows[i].mode == mode;
        if (!any)
            continue;
        printf("activation std by layer, BN %s mode (theory in brackets)\n",
               probe_mode_name((ProbeMode)mode));
        printf("%-28s", "layer");
        for (int g = 0; g < n_gains; g++)
            printf("  gain %-17g", gains[g]);
        putchar('\n');
        for (int i = 0; i < r0->n; i++) {
            const ProbeRow *p = &r0->rows[i];
            if ((int)p->mode != mode || p->quantity != PROBE_ACTIVATION)
                continue;
            printf("%-28s", p->layer_name);
            for (int g = 0; g < n_gains; g++) {
                const ProbeRow *q = &res[g].rows[i];
                printf("  %10.4g [%9.3g]", q->s.std,
                       q->theory_var >= 0 ? sqrt(q->theory_var) : NAN);
            }
            putchar('\n');
        }
        putchar('\n');
    }
}

static int print_json(const JobConfig *cfg, const ProbeResult *r, const double *gains,
                      int n_gains)
{
    json_t *out = json_pack("{s:s, s:s, s:s, s:i, s:i}", "model", cfg->model,
                            "init", cfg->init, "fan_convention", cfg->fan_convention,
                            "epoch", 0, "image_size", cfg->image_size);
    if (out && gains) {
        json_t *profiles = json_array();
        for (int g = 0; profiles && g < n_gains; g++)
            json_array_append_new(profiles, json_pack("{s:f, s:o}", "gain", gains[g], "stats",
                                                      rows_json(&r[g])));
        json_object_set_new(out, "profiles", profiles);
    } else if (out) {
        json_object_set_new(out, "init_gain", json_real(cfg->init_gain));
        json_object_set_new(out, "stats", rows_json(r));
    }
    char *text = out ? json_text(out, JSON_INDENT(1)) : NULL;
    json_decref(out);
    if (!text)
        return 1;
    puts(text);
    free(text);
    return 0;
}

static int cmd_probe(int argc, char **argv)
{
    const char *data = NULL, *batch = NULL, *classes_text = "21", *mode_text = "both",
               *cache_dir = "state/cache", *json_flag = NULL, *size = NULL, *sweep = NULL;
    const CmdFlag own[] = {{"data", true, &data}, {"batch", true, &batch},
                           {"classes", true, &classes_text}, {"mode", true, &mode_text},
                           {"cache-dir", true, &cache_dir}, {"json", false, &json_flag},
                           {"size", true, &size}, {"sweep-gain", true, &sweep}};
    char err[1024] = "";
    json_t *obj = json_object();
    int rc = jobargs_parse(argc, argv, own, 8, obj, err, sizeof err);
    if (rc == 1) {
        fputs(usage_text, stdout);
        jobargs_print_options(stdout);
        json_decref(obj);
        return 0;
    }
    if (size)
        json_object_set_new(obj, "image_size", json_integer(atoi(size)));
    JobConfig cfg;
    ConfigError cerr;
    unsigned modes = strcmp(mode_text, "train") == 0       ? 1u << PROBE_MODE_TRAIN
                     : strcmp(mode_text, "inference") == 0 ? 1u << PROBE_MODE_INFERENCE
                     : strcmp(mode_text, "both") == 0      ? PROBE_MODES_BOTH : 0;
    int classes = atoi(classes_text);
    if (rc < 0 || config_from_json(obj, false, &cfg, &cerr) < 0 || !modes || classes < 2 ||
        classes > 100000) {
        if (rc < 0)
            fprintf(stderr, "initlab probe: %s\n", err);
        else if (!modes)
            fprintf(stderr, "initlab probe: --mode must be train, inference or both\n");
        else if (classes < 2 || classes > 100000)
            fprintf(stderr, "initlab probe: --classes must be 2..100000\n");
        else
            fprintf(stderr, "initlab probe: --%s: %s\n", cerr.field, cerr.message);
        json_decref(obj);
        return 2;
    }
    json_decref(obj);
    int n = batch ? atoi(batch) : cfg.probe_size;
    if (n < 1 || n > 512) {
        fprintf(stderr, "initlab probe: --batch must be 1..512\n");
        return 2;
    }
    cfg.probe_size = n;
    cfg.batch_size = n;
    double gains[32];
    int n_gains = 0;
    if (sweep) {
        char copy[512], *save = NULL;
        snprintf(copy, sizeof copy, "%s", sweep);
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            char *end;
            double g = strtod(tok, &end);
            if (*end || !(g > 0) || !isfinite(g) || n_gains == 32) {
                fprintf(stderr, "initlab probe: --sweep-gain takes up to 32 gains > 0, "
                        "comma-separated (\"%s\")\n", sweep);
                return 2;
            }
            gains[n_gains++] = g;
        }
        if (n_gains == 0) {
            fprintf(stderr, "initlab probe: --sweep-gain needs at least one gain\n");
            return 2;
        }
    } else {
        gains[n_gains++] = cfg.init_gain;
    }
    size_t img = (size_t)cfg.image_size * cfg.image_size * 3;
    float *x = malloc(img * (size_t)n * sizeof(float));
    int *y = malloc((size_t)n * sizeof(int));
    Net *net = NULL;
    ProbeResult result[32] = {{0}};
    double *kernel_var = NULL;
    int status = 1;
    if (!x || !y)
        goto out;
    if (probe_inputs(&cfg, data, cache_dir, n, &classes, x, y, err, sizeof err) < 0) {
        fprintf(stderr, "initlab probe: %s\n", err);
        goto out;
    }
    ModelConfig mc;
    InitSpec spec;
    FanConvention fans;
    if (train_model_config(&cfg, classes, &mc, err, sizeof err) < 0 ||
        !(net = model_build(&mc, cfg.threads, err, sizeof err))) {
        fprintf(stderr, "initlab probe: %s\n", err);
        goto out;
    }
    config_init_spec(&cfg, &spec);
    fan_convention_parse(cfg.fan_convention, &fans);
    kernel_var = malloc(sizeof(double) * (size_t)net_n_params(net));
    if (!kernel_var)
        goto out;
    for (int g = 0; g < n_gains; g++) {
        LsuvReport rep = {0};
        spec.gain = spec.kind == INIT_LSUV ? 1.0 : gains[g];
        if (init_net_spec(net, &spec, fans, (uint64_t)cfg.seed) < 0) {
            fprintf(stderr, "initlab probe: out of memory\n");
            goto out;
        }
        for (int i = 0; i < net_n_params(net); i++)
            kernel_var[i] = init_spec_variance(&spec, net_param(net, i), fans);
        if (spec.kind == INIT_LSUV) {
            LsuvConfig lc = {.tol = cfg.lsuv_tol, .max_iter = cfg.lsuv_max_iter};
            if (lsuv_run(net, x, n, &lc, &rep) < 0) {
                fprintf(stderr, "initlab probe: out of memory\n");
                goto out;
            }
            for (int i = 0; i < net_n_params(net); i++) {
                Param *p = net_param(net, i);
                if (rep.iterations[i] < 0)
                    continue;
                double sq = 0;
                for (size_t k = 0; k < p->size; k++) {
                    p->data[k] = (float)(gains[g] * p->data[k]);
                    sq += (double)p->data[k] * p->data[k];
                }
                kernel_var[i] = sq / (double)p->size;
            }
            if (!json_flag)
                fprintf(stderr, "LSUV: %d layers, %d rescalings in %d forward passes, %d not "
                        "within %g of unit variance\n", rep.layers, rep.total, rep.passes,
                        rep.unconverged, cfg.lsuv_tol);
        }
        ProbeOptions po = {.modes = modes, .spec = &spec, .conv = fans,
                           .kernel_var = kernel_var, .kernel_iters = rep.iterations,
                           .theory = true};
        int prc = probe_run_opts(net, x, y, n, &po, &result[g]);
        lsuv_report_deinit(&rep);
        if (prc < 0) {
            fprintf(stderr, "initlab probe: out of memory\n");
            goto out;
        }
    }
    if (json_flag) {
        status = print_json(&cfg, result, sweep ? gains : NULL, n_gains);
    } else {
        if (sweep)
            print_sweep(gains, n_gains, result);
        else
            print_table(&result[0]);
        status = 0;
    }
out:
    for (int g = 0; g < 32; g++)
        probe_result_deinit(&result[g]);
    net_free(net);
    free(kernel_var);
    free(x);
    free(y);
    return status;
}

COMMAND(probe, "probe", cmd_probe, 45, "probe --model M --init I [...]",
        "layer distributions at initialization, without training")
