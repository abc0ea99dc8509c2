/* model_forward.c — runs a model saved by `initlab summary --save-weights` on a given batch, for the PyTorch cross-check.
 *
 * usage: model_forward WEIGHTS INPUT OUTPUT
 *   WEIGHTS  safetensors with Keras names; its metadata (model, size, channels, classes,
 *            head, alpha, depth_multiplier, dropout, depth, width, activation, batchnorm)
 *            says which net to build
 *   INPUT    safetensors with "x" (N, H, W, C) and "labels" (N) as float class indices
 *   OUTPUT   safetensors with, for mode in train (batch statistics, dropout off, moving
 *            statistics untouched) and inference (moving statistics):
 *              logits_<mode> (N, K), loss_<mode> (1), probs_<mode> (N, K),
 *              grad_<mode>/<kernel> for the first and the last kernel (Keras layout),
 *              act_<mode>/<layer> the output (N, H, W, C) of every ReLU/ReLU6 and max-pool
 *              layer and act_<mode>/<pool>/input the input of every max-pool (so the
 *              reference can take the same side of each kink and tie);
 *            then after one NET_TRAIN forward (moving statistics updated):
 *              moving/<layer>/moving_mean, moving/<layer>/moving_variance of every BN;
 *            metadata first_kernel and last_kernel.
 * Exit status 0 on success, 1 with a message on stderr otherwise. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/models.h"
#include "nn/net.h"
#include "train/weights.h"
#include "util/safetensors.h"

#define MAX_OUT 8192

static int meta_int(const SafeTensors *st, const char *key, int *out)
{
    const char *v = st_metadata(st, key);
    if (v)
        *out = atoi(v);
    return 0;
}

static int config_from_metadata(const SafeTensors *st, ModelConfig *cfg, char *err, size_t errlen)
{
    const char *model = st_metadata(st, "model");
    if (!model) {
        snprintf(err, errlen, "weights file has no 'model' metadata");
        return -1;
    }
    *cfg = model_config_default(model);
    meta_int(st, "size", &cfg->size);
    meta_int(st, "channels", &cfg->channels);
    meta_int(st, "classes", &cfg->classes);
    meta_int(st, "depth_multiplier", &cfg->depth_multiplier);
    meta_int(st, "depth", &cfg->depth);
    meta_int(st, "width", &cfg->width);
    const char *v;
    if ((v = st_metadata(st, "alpha")))
        cfg->alpha = atof(v);
    if ((v = st_metadata(st, "dropout")))
        cfg->dropout = atof(v);
    if ((v = st_metadata(st, "head")) && model_head_parse(v, &cfg->head) < 0) {
        snprintf(err, errlen, "unknown head '%s'", v);
        return -1;
    }
    if ((v = st_metadata(st, "activation")) && model_activation_parse(v, &cfg->activation) < 0) {
        snprintf(err, errlen, "unknown activation '%s'", v);
        return -1;
    }
    if ((v = st_metadata(st, "batchnorm")))
        cfg->batchnorm = strcmp(v, "off") != 0;
    return 0;
}

typedef struct {
    StTensor t[MAX_OUT];
    float *owned[MAX_OUT];
    int n;
} Out;

/* Appends a copy of data under name. */
static int out_add(Out *o, const char *name, const float *data, size_t count, int ndim,
                   const int64_t *shape)
{
    if (o->n == MAX_OUT)
        return -1;
    float *copy = malloc((count ? count : 1) * sizeof *copy);
    if (!copy)
        return -1;
    memcpy(copy, data, count * sizeof *copy);
    StTensor *t = &o->t[o->n];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->count = count;
    t->data = copy;
    o->owned[o->n++] = copy;
    return 0;
}

static int out_param_grad(Out *o, const char *prefix, const Param *p)
{
    char name[128];
    int64_t shape[4];
    for (int d = 0; d < p->ndim; d++)
        shape[d] = p->shape[d];
    snprintf(name, sizeof name, "%s/%s", prefix, p->name);
    return out_add(o, name, p->grad, p->size, p->ndim, shape);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: model_forward WEIGHTS INPUT OUTPUT\n");
        return 2;
    }
    char err[512];
    int status = 1;
    SafeTensors *wst = NULL, *ist = NULL;
    Net *net = NULL;
    int *labels = NULL;
    static Out out;

    wst = st_read(argv[1], err, sizeof err);
    ist = wst ? st_read(argv[2], err, sizeof err) : NULL;
    if (!ist)
        goto fail;
    ModelConfig cfg;
    if (config_from_metadata(wst, &cfg, err, sizeof err) < 0)
        goto fail;
    const StTensor *x = st_find(ist, "x"), *lab = st_find(ist, "labels");
    if (!x || !lab || x->ndim != 4 || lab->ndim != 1 || x->shape[0] != lab->shape[0] ||
        x->shape[1] != cfg.size || x->shape[2] != cfg.size || x->shape[3] != cfg.channels) {
        snprintf(err, sizeof err, "input needs x (N, %d, %d, %d) and labels (N)", cfg.size,
                 cfg.size, cfg.channels);
        goto fail;
    }
    int n = (int)x->shape[0];
    cfg.batch = n;
    net = model_build(&cfg, 2, err, sizeof err);
    if (!net || weights_load_safetensors(net, argv[1], err, sizeof err) < 0)
        goto fail;
    labels = malloc((size_t)n * sizeof *labels);
    if (!labels)
        goto fail;
    for (int i = 0; i < n; i++)
        labels[i] = (int)lab->data[i];

    const Param *first = NULL, *last = NULL;
    for (int i = 0; i < net_n_params(net); i++) {
        const Param *p = net_param_const(net, i);
        if (p->kind == PARAM_KERNEL || p->kind == PARAM_DEPTHWISE_KERNEL) {
            if (!first)
                first = p;
            last = p;
        }
    }
    int K = net_classes(net);
    const NetMode modes[2] = {NET_TRAIN_PROBE, NET_INFERENCE};
    const char *mode_names[2] = {"train", "inference"};
    for (int m = 0; m < 2; m++) {
        char name[128];
        int64_t lshape[2] = {n, K}, one = 1;
        if (net_forward(net, x->data, n, modes[m]) < 0) {
            snprintf(err, sizeof err, "forward failed");
            goto fail;
        }
        /* The side of every ReLU kink and max-pool choice this forward took. */
        for (int i = 1; i < net_n_layers(net); i++) {
            const Layer *l = net_layer(net, i);
            bool kink = l->type == LAYER_ACTIVATION && (l->act == ACT_RELU || l->act == ACT_RELU6);
            if (!kink && l->type != LAYER_MAXPOOL)
                continue;
            int64_t shape[4] = {n, l->h, l->w, l->c};
            snprintf(name, sizeof name, "act_%s/%s", mode_names[m], l->name);
            if (out_add(&out, name, l->out, (size_t)n * l->h * l->w * l->c, 4, shape) < 0)
                goto oom;
            if (l->type == LAYER_MAXPOOL) {
                const Layer *in = net_layer(net, l->in[0]);
                int64_t ishape[4] = {n, in->h, in->w, in->c};
                snprintf(name, sizeof name, "act_%s/%s/input", mode_names[m], l->name);
                if (out_add(&out, name, in->out, (size_t)n * in->h * in->w * in->c, 4, ishape) < 0)
                    goto oom;
            }
        }
        float loss = net_loss(net, labels, NULL);
        net_zero_grad(net);
        net_backward(net);
        snprintf(name, sizeof name, "logits_%s", mode_names[m]);
        if (out_add(&out, name, net_logits(net), (size_t)n * K, 2, lshape) < 0)
            goto oom;
        snprintf(name, sizeof name, "probs_%s", mode_names[m]);
        if (out_add(&out, name, net_probs(net), (size_t)n * K, 2, lshape) < 0)
            goto oom;
        snprintf(name, sizeof name, "loss_%s", mode_names[m]);
        if (out_add(&out, name, &loss, 1, 1, &one) < 0)
            goto oom;
        snprintf(name, sizeof name, "grad_%s", mode_names[m]);
        if (out_param_grad(&out, name, first) < 0 || out_param_grad(&out, name, last) < 0)
            goto oom;
    }
    if (net_forward(net, x->data, n, NET_TRAIN) < 0) {
        snprintf(err, sizeof err, "forward failed");
        goto fail;
    }
    for (int i = 0; i < net_n_params(net); i++) {
        const Param *p = net_param_const(net, i);
        if (p->kind != PARAM_MOVING_MEAN && p->kind != PARAM_MOVING_VARIANCE)
            continue;
        char name[128];
        int64_t shape = (int64_t)p->size;
        snprintf(name, sizeof name, "moving/%s", p->name);
        if (out_add(&out, name, p->data, p->size, 1, &shape) < 0)
            goto oom;
    }
    const char *meta[] = {"first_kernel", first->name, "last_kernel", last->name, NULL};
    if (st_write(argv[3], out.t, out.n, meta, err, sizeof err) < 0)
        goto fail;
    status = 0;
    goto done;
oom:
    snprintf(err, sizeof err, "out of memory or too many outputs");
fail:
    fprintf(stderr, "model_forward: %s\n", err);
done:
    for (int i = 0; i < out.n; i++)
        free(out.owned[i]);
    free(labels);
    net_free(net);
    st_free(ist);
    st_free(wst);
    return status;
}
