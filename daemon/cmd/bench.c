/* bench.c — `initlab bench`: training throughput of a model on a synthetic batch, per layer and
 * per layer type, as shares of the machine's FMA peak and streaming bandwidth (util/peak.h). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/modelopt.h"
#include "nn/gemm.h"
#include "nn/init.h"
#include "nn/models.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "util/isa.h"
#include "util/jsonout.h"
#include "util/peak.h"
#include "util/rng.h"

static const char usage_head[] =
    "usage: initlab bench --model M --size S --batch B [--steps N] [--threads T] [--alpha A]\n"
    "                     [model options] [--json] [--profile]\n\n"
    "Measures training throughput on one synthetic batch (normal pixels, uniform labels):\n"
    "one warm-up step, then N timed steps of forward (training mode), softmax cross-entropy,\n"
    "zero_grad, backward and an SGD step (Nesterov momentum 0.9, lr 0.01). Prints\n"
    "images/s, seconds per step (mean and fastest), peak RSS of the process, and the\n"
    "forward and backward time of every layer per step. Before the net is built it measures\n"
    "the fp32 FMA peak on T threads (initlab info; about 0.2 s) and gives the achieved\n"
    "GFLOP/s as a share of it.\n\n"
    "  --batch B       images per step (default 32)\n"
    "  --steps N       timed steps (default 10)\n"
    "  --threads T     compute threads, also OpenBLAS's (default: every core)\n"
    "  --seed N        seed of the weights and the batch (default 1)\n"
    "  --json          one JSON object on stdout\n"
    "  --profile       also per-layer-type totals: FLOPs, GFLOP/s and GB/s, each as a share of\n"
    "                  the FMA peak and of the streaming bandwidth on T threads (measured after\n"
    "                  the timed steps, so that its buffers stay out of the peak RSS)\n\n"
    "FLOPs per layer (N batch, Ho Wo output size; backward counts twice the forward for\n"
    "conv, depthwise and dense: input and weight gradients):\n"
    "  conv 2·N·Ho·Wo·kh·kw·cin·cout, depthwise 2·N·Ho·Wo·kh·kw·C·m, dense 2·N·in·out,\n"
    "  batch norm 5 forward and 8 backward per element, activation/add/GAP 1 per output\n"
    "  element each way, pools kh·kw per output element, padding/dropout/flatten 0.\n"
    "A ReLU/ReLU6 (and a residual add before it) that a batch norm computes in its own\n"
    "kernel is listed as \"in <batch norm>\"; its time and FLOPs count with that batch norm.\n"
    "A zero padding that its convolution applies itself is listed the same way.\n"
    "Bytes per layer (4 per float; each tensor read or written once per pass): forward reads\n"
    "the inputs and parameters and writes the output; backward reads the output gradient,\n"
    "the inputs and the trainable parameters and writes the input and parameter gradients.\n"
    "Layers computed together count as one: a tensor passed between them is not counted.\n"
    "Workspaces (im2col columns), caches and repeated passes are not counted either, so GB/s\n"
    "is a lower bound of the traffic.\n\n"
    "model options:\n";

static void usage(FILE *out)
{
    fputs(usage_head, out);
    fputs(modelopt_help, out);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Forward and backward FLOPs of layer l for a batch of n (see the usage text). */
static void layer_flops(const Net *net, const Layer *l, int n, double *fwd, double *bwd)
{
    double out = (double)n * l->h * l->w * l->c;
    const Layer *in = l->in[0] >= 0 ? net_layer(net, l->in[0]) : NULL;
    double cin = in ? in->c : 0;
    *fwd = *bwd = 0;
    switch (l->type) {
    case LAYER_CONV2D:
        *fwd = 2.0 * out * l->kh * l->kw * cin;
        *bwd = 2 * *fwd;
        break;
    case LAYER_DEPTHWISE:
        *fwd = 2.0 * out * l->kh * l->kw;
        *bwd = 2 * *fwd;
        break;
    case LAYER_DENSE:
        *fwd = 2.0 * n * cin * l->c;
        *bwd = 2 * *fwd;
        break;
    case LAYER_BATCHNORM:
        *fwd = 5 * out;
        *bwd = 8 * out;
        break;
    case LAYER_ACTIVATION:
    case LAYER_ADD:
        *fwd = *bwd = out;
        break;
    case LAYER_GAP:
        *fwd = *bwd = in ? (double)n * in->h * in->w * in->c : 0;
        break;
    case LAYER_MAXPOOL:
    case LAYER_AVGPOOL:
        *fwd = *bwd = out * l->kh * l->kw;
        break;
    default:
        break;
    }
}

/* Forward and backward bytes of layer i for a batch of n (see the usage text). group[j] is
 * the layer whose kernel computes layer j (j itself when it runs on its own); inner[j] says
 * that j's output is read only inside its group. */
static void layer_bytes(const Net *net, int i, int n, const int *group, const bool *inner,
                        double *fwd, double *bwd)
{
    const Layer *l = net_layer(net, i);
    double out = inner[i] || l->type == LAYER_INPUT ? 0 : (double)n * l->h * l->w * l->c;
    double in = 0, params = 0, trainable = 0;
    for (int k = 0; k < 2; k++) {
        int j = l->in[k];
        if (j < 0 || group[j] == group[i])
            continue;
        const Layer *x = net_layer(net, j);
        in += (double)n * x->h * x->w * x->c;
    }
    for (int p = 0; p < l->n_params; p++) {
        const Param *pa = net_param_const(net, l->param_first + p);
        params += (double)pa->size;
        trainable += pa->trainable ? (double)pa->size : 0;
    }
    *fwd = 4 * (in + params + out);
    *bwd = 4 * (out + 2 * in + 2 * trainable);
}

typedef struct {
    double fwd, bwd;        /* seconds per step */
    double fwd_flop, bwd_flop;
    double bytes;           /* forward and backward */
    int count;
} TypeTotals;

/* The share of limit that rate is, or 0 when the limit is unknown. */
static double share_of(double rate, double limit)
{
    return limit > 0 ? rate / limit : 0;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

static int cmd_bench(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    char err[512];
    int status = 2;
    long batch = 32, steps = 10, threads = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned long long seed = 1;
    bool json = false, profile = false;
    bool *used = calloc((size_t)argc, sizeof *used);
    Net *net = NULL;
    float *x = NULL;
    int *labels = NULL;
    double *step_times = NULL;
    int *group = NULL;
    bool *inner = NULL;
    if (!used)
        return 1;
    ModelConfig cfg;
    if (modelopt_parse(argc, argv, &cfg, used, err, sizeof err) < 0)
        goto usage_error;
    for (int i = 1; i < argc; i++) {
        if (used[i])
            continue;
        const char *v;
        int r;
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--profile") == 0) {
            profile = true;
        } else if ((r = cmdarg_value(argc, argv, &i, "--batch", &v, err, sizeof err)) != 0) {
            if (r < 0 || cmdarg_int("--batch", v, 1, 4096, &batch, err, sizeof err) < 0)
                goto usage_error;
        } else if ((r = cmdarg_value(argc, argv, &i, "--steps", &v, err, sizeof err)) != 0) {
            if (r < 0 || cmdarg_int("--steps", v, 1, 100000, &steps, err, sizeof err) < 0)
                goto usage_error;
        } else if ((r = cmdarg_value(argc, argv, &i, "--threads", &v, err, sizeof err)) != 0) {
            if (r < 0 || cmdarg_int("--threads", v, 1, 1024, &threads, err, sizeof err) < 0)
                goto usage_error;
        } else if ((r = cmdarg_value(argc, argv, &i, "--seed", &v, err, sizeof err)) != 0) {
            long s;
            if (r < 0 || cmdarg_int("--seed", v, 0, 0x7fffffffL, &s, err, sizeof err) < 0)
                goto usage_error;
            seed = (unsigned long long)s;
        } else {
            snprintf(err, sizeof err, "unknown option '%s'", argv[i]);
            goto usage_error;
        }
    }

    startup_wait_policy((int)threads);
    status = 1;
    /* the limit, measured before the net exists: nothing else runs yet */
    PeakFma fma = {.isa = isa_best(), .threads = (int)threads};
    peak_fma(isa_best(), (int)threads, 0.2, &fma);
    cfg.batch = (int)batch;
    net = model_build(&cfg, (int)threads, err, sizeof err);
    if (!net) {
        fprintf(stderr, "initlab bench: %s\n", err);
        goto done;
    }
    init_net(net, INIT_HE_UNIFORM, FAN_KERAS, seed);
    net_seed_dropout(net, rng_derive(seed, 1));
    size_t per = (size_t)cfg.size * cfg.size * cfg.channels;
    x = malloc((size_t)batch * per * sizeof *x);
    labels = malloc((size_t)batch * sizeof *labels);
    step_times = malloc((size_t)steps * sizeof *step_times);
    if (!x || !labels || !step_times) {
        fprintf(stderr, "initlab bench: out of memory\n");
        goto done;
    }
    Rng rng;
    rng_seed(&rng, rng_derive(seed, 2));
    for (size_t i = 0; i < (size_t)batch * per; i++)
        x[i] = (float)rng_normal(&rng);
    for (long i = 0; i < batch; i++)
        labels[i] = (int)rng_below(&rng, (uint64_t)net_classes(net));

    SgdConfig sgd = {.momentum = 0.9f, .nesterov = true};
    double loss = 0;
    for (long s = -1; s < steps; s++) {
        if (s == 0)
            net_set_profiling(net, true); /* step -1 is the warm-up */
        double t0 = now();
        net_forward(net, x, (int)batch, NET_TRAIN);
        loss = net_loss(net, labels, NULL);
        net_zero_grad(net);
        net_backward(net);
        sgd_step(net, &sgd, 0.01f);
        if (s >= 0)
            step_times[s] = now() - t0;
    }
    double total = 0, fastest = INFINITY;
    for (long s = 0; s < steps; s++) {
        total += step_times[s];
        fastest = fmin(fastest, step_times[s]);
    }
    double per_step = total / (double)steps, ips = (double)batch / per_step;
    double rss = peak_rss_mb();

    TypeTotals types[LAYER_FLATTEN + 1] = {{0}};
    double flop_step = 0, layer_time = 0;
    int nl = net_n_layers(net), n_fused = 0;
    group = malloc((size_t)nl * sizeof *group);
    inner = calloc((size_t)nl, sizeof *inner);
    if (!group || !inner) {
        fprintf(stderr, "initlab bench: out of memory\n");
        goto done;
    }
    for (int i = 0; i < nl; i++) {
        int into = net_fused_into(net, i);
        group[i] = into >= 0 ? into : i;
    }
    for (int i = 0; i < nl; i++)
        for (int k = 0; k < 2; k++) {
            int j = net_layer(net, i)->in[k];
            if (j >= 0 && group[j] == group[i])
                inner[j] = true;
        }
    PeakBandwidth bw = {.threads = (int)threads, .gbs = 0};
    if (profile && peak_bandwidth((int)threads, 0, 0.25, &bw) < 0)
        bw.gbs = 0;
    for (int i = 0; i < nl; i++) {
        const Layer *l = net_layer(net, i);
        double f, b, bf, bb;
        layer_flops(net, l, (int)batch, &f, &b);
        layer_bytes(net, i, (int)batch, group, inner, &bf, &bb);
        /* a layer its batch norm computes counts, with its FLOPs, as part of that one */
        int into = net_fused_into(net, i);
        n_fused += into >= 0;
        TypeTotals *t = &types[into >= 0 ? net_layer(net, into)->type : l->type];
        t->fwd += l->fwd_seconds / (double)steps;
        t->bwd += l->bwd_seconds / (double)steps;
        t->fwd_flop += f;
        t->bwd_flop += b;
        t->bytes += bf + bb;
        t->count += into < 0;
        flop_step += f + b;
        layer_time += (l->fwd_seconds + l->bwd_seconds) / (double)steps;
    }

    if (json) {
        json_t *root = json_pack(
            "{s:s, s:i, s:i, s:i, s:i, s:f, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
            "model", cfg.name, "size", cfg.size, "batch", (int)batch, "steps", (int)steps,
            "threads", (int)threads, "alpha", cfg.alpha, "head", model_head_name(cfg.head),
            "blas_core", gemm_core_name(), "images_per_s", ips, "step_seconds", per_step,
            "step_seconds_min", fastest, "peak_rss_mb", rss, "loss", loss,
            "gflop_per_step", flop_step * 1e-9, "achieved_gflops", flop_step * 1e-9 / per_step);
        json_t *layers = json_array();
        if (!root || !layers) {
            json_decref(root);
            json_decref(layers);
            goto done;
        }
        json_object_set_new(root, "classes", json_integer(cfg.classes));
        json_object_set_new(root, "fma_peak", json_pack("{s:s, s:i, s:f}", "isa",
                            isa_name(fma.isa), "threads", fma.threads, "gflops", fma.gflops));
        json_object_set_new(root, "peak_share",
                            json_real(share_of(flop_step * 1e-9 / per_step, fma.gflops)));
        if (profile)
            json_object_set_new(root, "bandwidth", json_pack("{s:i, s:f, s:I}", "threads",
                                bw.threads, "gbs", bw.gbs, "buffer_bytes",
                                (json_int_t)bw.bytes));
        for (int i = 1; i < nl; i++) {
            const Layer *l = net_layer(net, i);
            json_array_append_new(layers, json_pack("{s:s, s:s, s:f, s:f}", "name", l->name,
                                  "type", model_layer_type_name(l->type), "fwd_ms",
                                  l->fwd_seconds * 1e3 / (double)steps, "bwd_ms",
                                  l->bwd_seconds * 1e3 / (double)steps));
        }
        json_object_set_new(root, "layers", layers);
        if (profile) {
            json_t *tj = json_array();
            for (int t = 0; t <= LAYER_FLATTEN; t++) {
                if (!types[t].count || t == LAYER_INPUT)
                    continue;
                double sec = types[t].fwd + types[t].bwd;
                double gflops = sec > 0 ? (types[t].fwd_flop + types[t].bwd_flop) * 1e-9 / sec
                                        : 0;
                double gbs = sec > 0 ? types[t].bytes * 1e-9 / sec : 0;
                json_array_append_new(tj, json_pack(
                    "{s:s, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "type",
                    model_layer_type_name((LayerType)t), "layers", types[t].count, "fwd_ms",
                    types[t].fwd * 1e3, "bwd_ms", types[t].bwd * 1e3, "gflop",
                    (types[t].fwd_flop + types[t].bwd_flop) * 1e-9, "share",
                    layer_time > 0 ? sec / layer_time : 0, "gflops", gflops,
                    "peak_share", share_of(gflops, fma.gflops), "gbyte", types[t].bytes * 1e-9,
                    "gbs", gbs, "bandwidth_share", share_of(gbs, bw.gbs)));
            }
            json_object_set_new(root, "types", tj);
        }
        char *text = json_text(root, JSON_INDENT(1));
        json_decref(root);
        if (!text)
            goto done;
        puts(text);
        free(text);
        status = 0;
        goto done;
    }

    printf("%s %dpx batch %ld, %ld threads, OpenBLAS %s, %ld steps after a warm-up\n", cfg.name,
           cfg.size, batch, threads, gemm_core_name(), steps);
    printf("fp32 FMA peak (%s): %.0f GFLOP/s on %d threads", isa_name(fma.isa), fma.gflops,
           fma.threads);
    if (profile && bw.gbs > 0)
        printf("; streaming bandwidth %.1f GB/s", bw.gbs);
    printf("\n");
    printf("%-40s %-26s %10s %10s %7s\n", "layer", "type", "fwd ms", "bwd ms", "share");
    for (int i = 1; i < nl; i++) {
        const Layer *l = net_layer(net, i);
        double f = l->fwd_seconds / (double)steps, b = l->bwd_seconds / (double)steps;
        int into = net_fused_into(net, i);
        if (into >= 0) {
            printf("%-40s %-26s %21s %s\n", l->name, model_layer_type_name(l->type), "in",
                   net_layer(net, into)->name);
            continue;
        }
        printf("%-40s %-26s %10.3f %10.3f %6.1f%%\n", l->name, model_layer_type_name(l->type),
               f * 1e3, b * 1e3, layer_time > 0 ? 100 * (f + b) / layer_time : 0);
    }
    if (profile) {
        printf("\n%-26s %6s %10s %10s %6s %12s %9s %6s %8s %6s\n", "layer type", "count",
               "fwd ms", "bwd ms", "share", "GFLOP/step", "GFLOP/s", "% peak", "GB/s", "% bw");
        for (int t = 1; t <= LAYER_FLATTEN; t++) {
            if (!types[t].count)
                continue;
            double sec = types[t].fwd + types[t].bwd, fl = types[t].fwd_flop + types[t].bwd_flop;
            double gflops = sec > 0 ? fl * 1e-9 / sec : 0;
            double gbs = sec > 0 ? types[t].bytes * 1e-9 / sec : 0;
            printf("%-26s %6d %10.2f %10.2f %5.1f%% %12.3f %9.1f %5.1f%% %8.1f %5.1f%%\n",
                   model_layer_type_name((LayerType)t), types[t].count, types[t].fwd * 1e3,
                   types[t].bwd * 1e3, layer_time > 0 ? 100 * sec / layer_time : 0, fl * 1e-9,
                   gflops, 100 * share_of(gflops, fma.gflops), gbs, 100 * share_of(gbs, bw.gbs));
        }
        if (n_fused)
            printf("(%d activations, adds and paddings run inside a batch norm or convolution "
                   "and count with it)\n", n_fused);
        printf("layers %.1f ms of %.1f ms per step (the rest: loss, zero_grad, SGD step)\n",
               layer_time * 1e3, per_step * 1e3);
    }
    printf("\nloss %.4f\n", loss);
    printf("%.2f images/s, %.1f ms/step (fastest %.1f ms), %.1f GFLOP/step, %.1f GFLOP/s, "
           "%.0f%% of FMA peak\n", ips, per_step * 1e3, fastest * 1e3, flop_step * 1e-9,
           flop_step * 1e-9 / per_step, 100 * share_of(flop_step * 1e-9 / per_step, fma.gflops));
    printf("peak RSS %.0f MB\n", rss);
    status = 0;
    goto done;

usage_error:
    fprintf(stderr, "initlab bench: %s (see 'initlab bench --help')\n", err);
done:
    free(inner);
    free(group);
    free(step_times);
    free(labels);
    free(x);
    net_free(net);
    free(used);
    return status;
}

COMMAND(bench, "bench", cmd_bench, 80, "bench --model M --size S --batch B [--json]",
        "training throughput, time per layer and layer type, peak RSS")
