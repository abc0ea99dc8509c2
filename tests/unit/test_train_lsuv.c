/* test_train_lsuv.c — LSUV: every kernel's output variance ends within tolerance of 1 on the
 * batch, the kernels keep their orthonormal directions, iterations are counted. */
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/init.h"
#include "nn/models.h"
#include "train/lsuv.h"

static double out_variance(const float *x, size_t n)
{
    double s = 0, q = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i], q += (double)x[i] * x[i];
    s /= n;
    return q / n - s * s;
}

typedef struct { double var[64]; } Seen;

static void record(void *ctx, const Net *net, int layer, bool backward)
{
    Seen *s = ctx;
    const Layer *l = net_layer(net, layer);
    if (!backward && layer < 64 && (l->type == LAYER_CONV2D || l->type == LAYER_DENSE ||
                                     l->type == LAYER_DEPTHWISE))
        s->var[layer] = out_variance(l->out, (size_t)16 * l->h * l->w * l->c);
}

TEST(train_lsuv_unit_output_variance_on_the_batch)
{
    ModelConfig mc = model_config_default("plain");
    mc.depth = 6;
    mc.width = 8;
    mc.batchnorm = false;
    mc.batch = 16;
    mc.classes = 4;
    char err[256];
    Net *net = model_build(&mc, 1, err, sizeof err);
    REQUIRE(net);
    InitSpec spec = init_spec_default(INIT_LSUV);
    REQUIRE(init_net_spec(net, &spec, FAN_KERAS, 3) == 0);
    size_t n = (size_t)16 * 32 * 32 * 3;
    float *x = malloc(sizeof(float) * n);
    REQUIRE(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)sin(0.37 * (double)i) * 40.0f; /* far from unit variance */
    LsuvConfig lc = {.tol = 0.05, .max_iter = 10};
    LsuvReport rep;
    REQUIRE(lsuv_run(net, x, 16, &lc, &rep) == 0);
    CHECK_INT(rep.layers, 8); /* 6 convs, fc1, predictions */
    CHECK_INT(rep.unconverged, 0);
    CHECK(rep.total >= 8);     /* the inputs are far off: every layer rescaled */
    CHECK(rep.passes <= rep.total + rep.layers);
    /* measure again, independently of lsuv's own numbers */
    Seen seen = {{0}};
    net_set_observer(net, record, &seen);
    REQUIRE(net_forward(net, x, 16, NET_TRAIN_PROBE) == 0);
    net_set_observer(net, NULL, NULL);
    int kernels = 0;
    for (int i = 0; i < net_n_layers(net); i++) {
        const Layer *l = net_layer(net, i);
        if (l->type != LAYER_CONV2D && l->type != LAYER_DENSE)
            continue;
        kernels++;
        CHECK(fabs(seen.var[i] - 1) < 0.05);
        int k = l->param_first;
        CHECK(rep.iterations[k] >= 1);
        CHECK(fabs(rep.variance[k] - 1) < 0.05);
    }
    CHECK_INT(kernels, 8);
    /* the first kernel is still orthogonal, up to its one scale: columns of the (27, 8)
     * flattened matrix mutually orthogonal with equal norms */
    const Param *p = net_find_param(net, "conv_1/kernel");
    double norm0 = 0, dot = 0, norm1 = 0;
    for (int r = 0; r < 27; r++) {
        norm0 += p->data[r * 8] * p->data[r * 8];
        norm1 += p->data[r * 8 + 1] * p->data[r * 8 + 1];
        dot += p->data[r * 8] * p->data[r * 8 + 1];
    }
    CHECK(fabs(dot) < 1e-5 * norm0);
    CHECK(fabs(norm0 / norm1 - 1) < 1e-4);
    lsuv_report_deinit(&rep);
    free(x);
    net_free(net);
}
