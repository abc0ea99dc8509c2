/* nn_crosscheck.c — trains the engine's small reference net 3 steps and dumps everything for
 * tests/torch/test_engine.py.
 *
 * usage: nn_crosscheck OUTPUT [--seed S] [--threads T]
 *
 * The net (input (6, 16, 16, 3), Keras layouts and names):
 *   conv1 3×3/2 same, 8 filters, no bias → conv1_bn → conv1_relu (ReLU6)
 *   → conv_pad_1 ZeroPadding ((0,1),(0,1)) → conv_dw_1 depthwise 3×3/2 valid, no bias
 *   → conv_dw_1_bn → conv_dw_1_relu (ReLU) → conv_pw_1 1×1, 8 filters, bias
 *   → add_1 (conv_pw_1 + conv_dw_1_relu) → gap → predictions dense 5 with bias
 * BatchNorm momentum 0.99, epsilon 1e-3. Initialization: glorot_uniform (Keras fans, the
 * given seed), then gammas in [0.8, 1.2], betas and biases in [-0.1, 0.1] from the seed,
 * so every parameter kind matters.
 * Training: 3 steps on 3 batches, each: forward (NET_TRAIN), softmax cross-entropy with
 * class weights, zero grad, backward, SGD (lr 0.1, momentum 0.9, Nesterov, L2 1e-3 on the
 * kernels only).
 * OUTPUT (safetensors): x (3, 6, 16, 16, 3), labels (3, 6) as floats, class_weights (5),
 * logits (6, 5) and probs (6, 5) of step 1, loss (3) of every step, init/<param>,
 * grad/<param> (step 1) and final/<param> (after step 3) for every parameter, including
 * the moving statistics. Metadata: lr, momentum, weight_decay, bn_momentum, bn_epsilon.
 * Exit status 0 on success, 1 with a message on stderr otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/init.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "util/rng.h"
#include "util/safetensors.h"

enum { STEPS = 3, N = 6, HW = 16, CH = 3, K = 5 };

static Net *build(int threads)
{
    Net *net = net_create("crosscheck", N, HW, HW, CH);
    if (!net)
        return NULL;
    int x = net_conv2d(net, 0, "conv1", 8, 3, 3, 2, PAD_SAME, false);
    x = net_batchnorm(net, x, "conv1_bn", 0.99f, 1e-3f);
    x = net_activation(net, x, "conv1_relu", ACT_RELU6);
    x = net_zeropad(net, x, "conv_pad_1", 0, 1, 0, 1);
    x = net_depthwise(net, x, "conv_dw_1", 3, 3, 2, 1, PAD_VALID, false);
    x = net_batchnorm(net, x, "conv_dw_1_bn", 0.99f, 1e-3f);
    int r = net_activation(net, x, "conv_dw_1_relu", ACT_RELU);
    x = net_conv2d(net, r, "conv_pw_1", 8, 1, 1, 1, PAD_SAME, true);
    x = net_add(net, x, r, "add_1");
    x = net_gap(net, x, "gap", false);
    net_dense(net, x, "predictions", K, true);
    if (net_finalize(net, threads)) {
        fprintf(stderr, "nn_crosscheck: %s\n", net_error(net));
        net_free(net);
        return NULL;
    }
    return net;
}

static void uniform(Rng *rng, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * rng_uniform(rng));
}

/* Copies of every parameter under prefix/<name>, appended to t[*n]. */
static int snapshot(Net *net, const char *prefix, bool grads, StTensor *t, int *n, float **owned,
                    int *n_owned)
{
    for (int i = 0; i < net_n_params(net); i++) {
        const Param *p = net_param(net, i);
        const float *src = grads ? p->grad : p->data;
        if (!src)
            continue;
        float *copy = malloc(sizeof(float) * p->size);
        if (!copy)
            return -1;
        memcpy(copy, src, sizeof(float) * p->size);
        owned[(*n_owned)++] = copy;
        StTensor *s = &t[(*n)++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s/%s", prefix, p->name);
        s->ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++)
            s->shape[d] = p->shape[d];
        s->count = p->size;
        s->data = copy;
    }
    return 0;
}

static StTensor tensor(const char *name, const float *data, int ndim, const int64_t *shape)
{
    StTensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.ndim = ndim;
    t.count = 1;
    for (int d = 0; d < ndim; d++) {
        t.shape[d] = shape[d];
        t.count *= (size_t)shape[d];
    }
    t.data = data;
    return t;
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    uint64_t seed = 1;
    int threads = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !out)
            out = argv[i];
        else {
            fprintf(stderr, "usage: nn_crosscheck OUTPUT [--seed S] [--threads T]\n");
            return 1;
        }
    }
    if (!out) {
        fprintf(stderr, "usage: nn_crosscheck OUTPUT [--seed S] [--threads T]\n");
        return 1;
    }
    Net *net = build(threads);
    if (!net)
        return 1;
    init_net(net, INIT_GLOROT_UNIFORM, FAN_KERAS, seed);
    Rng rng;
    rng_seed(&rng, rng_derive(seed, 1000));
    for (int i = 0; i < net_n_params(net); i++) {
        Param *p = net_param(net, i);
        if (p->kind == PARAM_GAMMA)
            uniform(&rng, p->data, p->size, 0.8, 1.2);
        else if (p->kind == PARAM_BETA || p->kind == PARAM_BIAS)
            uniform(&rng, p->data, p->size, -0.1, 0.1);
    }
    static float x[STEPS][N * HW * HW * CH], labels_f[STEPS][N], loss[STEPS];
    static float logits[N * K], probs[N * K];
    int labels[STEPS][N];
    float cw[K] = {1.0f, 2.0f, 0.5f, 1.5f, 0.75f};
    uniform(&rng, &x[0][0], sizeof x / sizeof x[0][0], -1, 1);
    for (int s = 0; s < STEPS; s++)
        for (int i = 0; i < N; i++) {
            labels[s][i] = (int)rng_below(&rng, K);
            labels_f[s][i] = (float)labels[s][i];
        }

    enum { MAX_T = 256 };
    StTensor t[MAX_T];
    float *owned[MAX_T];
    int nt = 0, n_owned = 0, rc = 1;
    if (snapshot(net, "init", false, t, &nt, owned, &n_owned))
        goto oom;
    SgdConfig sgd = {.momentum = 0.9f, .nesterov = true, .weight_decay = 1e-3f};
    const float lr = 0.1f;
    for (int s = 0; s < STEPS; s++) {
        net_forward(net, x[s], N, NET_TRAIN);
        loss[s] = net_loss(net, labels[s], cw);
        net_zero_grad(net);
        net_backward(net);
        if (s == 0) {
            memcpy(logits, net_logits(net), sizeof logits);
            memcpy(probs, net_probs(net), sizeof probs);
            if (snapshot(net, "grad", true, t, &nt, owned, &n_owned))
                goto oom;
        }
        sgd_step(net, &sgd, lr);
    }
    if (snapshot(net, "final", false, t, &nt, owned, &n_owned))
        goto oom;
    t[nt++] = tensor("x", &x[0][0], 5, (int64_t[]){STEPS, N, HW, HW, CH});
    t[nt++] = tensor("labels", &labels_f[0][0], 2, (int64_t[]){STEPS, N});
    t[nt++] = tensor("class_weights", cw, 1, (int64_t[]){K});
    t[nt++] = tensor("logits", logits, 2, (int64_t[]){N, K});
    t[nt++] = tensor("probs", probs, 2, (int64_t[]){N, K});
    t[nt++] = tensor("loss", loss, 1, (int64_t[]){STEPS});
    const char *meta[] = {"lr", "0.1", "momentum", "0.9", "weight_decay", "0.001",
                          "bn_momentum", "0.99", "bn_epsilon", "0.001", NULL};
    char err[256];
    if (st_write(out, t, nt, meta, err, sizeof err)) {
        fprintf(stderr, "nn_crosscheck: %s\n", err);
        goto cleanup;
    }
    rc = 0;
    goto cleanup;
oom:
    fprintf(stderr, "nn_crosscheck: out of memory\n");
cleanup:
    for (int i = 0; i < n_owned; i++)
        free(owned[i]);
    net_free(net);
    return rc;
}
