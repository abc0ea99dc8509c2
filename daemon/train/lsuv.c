/* lsuv.c — LSUV: each kernel rescaled on a data batch until its output variance is 1. */
#include "train/lsuv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The observer's notebook: the output variance of every layer of the last forward. */
typedef struct {
    double *var; /* (net_n_layers) NAN until measured */
    int n;       /* batch of the pass */
} Notes;

static bool is_kernel_layer(const Layer *l)
{
    return l->type == LAYER_CONV2D || l->type == LAYER_DEPTHWISE || l->type == LAYER_DENSE;
}

static void observe(void *ctx, const Net *net, int layer, bool backward)
{
    Notes *notes = ctx;
    const Layer *l = net_layer(net, layer);
    if (backward || !is_kernel_layer(l))
        return;
    size_t count = (size_t)notes->n * l->h * l->w * l->c;
    double sum = 0, sq = 0;
    for (size_t k = 0; k < count; k++) {
        double v = l->out[k];
        sum += v;
        sq += v * v;
    }
    double mean = count ? sum / (double)count : 0;
    notes->var[layer] = count ? sq / (double)count - mean * mean : NAN;
}

/* Kernel parameter index of a kernel layer (its first parameter), bias index or -1. */
static void layer_params(const Layer *l, int *kernel, int *bias)
{
    *kernel = l->param_first;
    *bias = l->use_bias && l->n_params > 1 ? l->param_first + 1 : -1;
}

int lsuv_run(Net *net, const float *x, int n, const LsuvConfig *cfg, LsuvReport *rep)
{
    int L = net_n_layers(net), P = net_n_params(net);
    Notes notes = {.var = malloc(sizeof(double) * (size_t)L), .n = n};
    int *layers = malloc(sizeof(int) * (size_t)L);
    LsuvReport r = {.iterations = malloc(sizeof(int) * (size_t)P),
                    .variance = malloc(sizeof(double) * (size_t)P)};
    int rc = -1;
    if (!notes.var || !layers || !r.iterations || !r.variance)
        goto out;
    for (int i = 0; i < P; i++) {
        r.iterations[i] = -1;
        r.variance[i] = NAN;
    }
    int n_layers = 0;
    for (int i = 0; i < L; i++)
        if (is_kernel_layer(net_layer(net, i)))
            layers[n_layers++] = i;
    net_set_observer(net, observe, &notes);
    int cur = 0;
    if (n_layers > 0) {
        int k, b;
        layer_params(net_layer(net, layers[0]), &k, &b);
        r.iterations[k] = 0;
    }
    while (cur < n_layers) {
        for (int i = 0; i < L; i++)
            notes.var[i] = NAN;
        if (net_forward(net, x, n, NET_TRAIN_PROBE) < 0) {
            net_set_observer(net, NULL, NULL);
            goto out;
        }
        r.passes++;
        /* Layers that this pass confirms, then the first one it must rescale. */
        while (cur < n_layers) {
            const Layer *l = net_layer(net, layers[cur]);
            int k, b;
            layer_params(l, &k, &b);
            if (r.iterations[k] < 0)
                r.iterations[k] = 0;
            double v = notes.var[layers[cur]];
            r.variance[k] = v;
            bool flat = !(v > 1e-30) || !isfinite(v);
            if (fabs(v - 1.0) < cfg->tol || flat || r.iterations[k] >= cfg->max_iter) {
                if (!(fabs(v - 1.0) < cfg->tol))
                    r.unconverged++;
                cur++;
                continue;
            }
            Param *kp = net_param(net, k);
            double s = 1.0 / sqrt(v);
            for (size_t e = 0; e < kp->size; e++)
                kp->data[e] = (float)(kp->data[e] * s);
            if (b >= 0) {
                Param *bp = net_param(net, b);
                for (size_t e = 0; e < bp->size; e++)
                    bp->data[e] = (float)(bp->data[e] * s);
            }
            r.iterations[k]++;
            r.total++;
            break;
        }
    }
    net_set_observer(net, NULL, NULL);
    r.layers = n_layers;
    rc = 0;
out:
    free(notes.var);
    free(layers);
    if (rc == 0 && rep) {
        *rep = r;
    } else {
        free(r.iterations);
        free(r.variance);
        if (rep)
            memset(rep, 0, sizeof *rep);
    }
    return rc;
}

void lsuv_report_deinit(LsuvReport *rep)
{
    if (!rep)
        return;
    free(rep->iterations);
    free(rep->variance);
    memset(rep, 0, sizeof *rep);
}
