/* test_nn_net.c — the net: builders and shape inference, whole-net gradients, BN and dropout
 * modes, the gradient rule, determinism, and memorizing random labels. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "nn/init.h"
#include "nn/layers.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "util/rng.h"

static void fill(Rng *rng, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * rng_uniform(rng));
}

/* An observer that copies one layer's out (forward) or dout (backward) as it is made. */
typedef struct {
    int layer;
    bool backward;
    float *copy;
    int seen;
} Watch;

static void watch_layer(void *ctx, const Net *net, int layer, bool backward)
{
    Watch *w = ctx;
    if (layer != w->layer || backward != w->backward)
        return;
    const Layer *l = net_layer(net, layer);
    size_t n = (size_t)net_batch_capacity(net) * l->h * l->w * l->c;
    memcpy(w->copy, backward ? l->dout : l->out, sizeof(float) * n);
    w->seen++;
}

TEST(nn_net_builders_infer_shapes_and_name_params)
{
    Net *net = net_create("t", 4, 15, 15, 3);
    REQUIRE(net);
    int x = net_conv2d(net, 0, "conv1", 8, 3, 3, 2, PAD_SAME, false);
    CHECK_INT(net_layer(net, x)->h, 8); /* ceil(15/2) */
    CHECK_INT(net_layer(net, x)->c, 8);
    int p = net_zeropad(net, x, "pad", 0, 1, 0, 1);
    CHECK_INT(net_layer(net, p)->h, 9);
    int d = net_depthwise(net, p, "dw", 3, 3, 2, 1, PAD_VALID, false);
    CHECK_INT(net_layer(net, d)->h, 4); /* (9-3)/2+1 */
    int v = net_conv2d(net, d, "valid", 5, 3, 2, 1, PAD_VALID, true);
    CHECK_INT(net_layer(net, v)->h, 2);
    CHECK_INT(net_layer(net, v)->w, 3);
    int mp = net_maxpool(net, d, "mp", 3, 2, PAD_SAME);
    CHECK_INT(net_layer(net, mp)->h, 2);
    int ap = net_avgpool(net, d, "ap", 2, 2, PAD_VALID);
    CHECK_INT(net_layer(net, ap)->w, 2);
    int bn = net_batchnorm(net, d, "bn", 0.99f, 1e-3f);
    int g = net_gap(net, bn, "gap", false);
    int f = net_flatten(net, ap, "flat");
    CHECK_INT(net_layer(net, f)->c, 2 * 2 * 8);
    int dense = net_dense(net, g, "dense", 10, true);
    CHECK_INT(net_layer(net, dense)->c, 10);
    CHECK(net_error(net) == NULL);
    Param *k = net_find_param(net, "dw/depthwise_kernel");
    REQUIRE(k);
    CHECK_INT(k->ndim, 4);
    CHECK_INT(k->shape[2], 8);
    CHECK_INT(k->shape[3], 1);
    CHECK(net_find_param(net, "bn/moving_variance") && !net_find_param(net, "bn/moving_variance")->trainable);
    CHECK(net_find_param(net, "valid/bias") != NULL);
    CHECK(net_find_param(net, "conv1/bias") == NULL);
    /* trainable: conv1 3·3·3·8, dw 3·3·8, valid 3·2·8·5 + 5, bn 2·8, dense 8·10 + 10 */
    CHECK_INT(net_count_params(net, true), 216 + 72 + 245 + 16 + 90);
    CHECK_INT(net_count_params(net, false), 16);
    CHECK_INT(net_finalize(net, 2), 0);
    CHECK_INT(net_classes(net), 10);
    Param *gm = net_find_param(net, "bn/gamma"), *mv = net_find_param(net, "bn/moving_variance");
    CHECK(gm->data[0] == 1.0f && mv->data[7] == 1.0f && gm->grad && !mv->grad);
    net_free(net);
}

TEST(nn_net_builder_errors_are_kept_and_reported)
{
    Net *net = net_create("t", 2, 8, 8, 3);
    int a = net_conv2d(net, 0, "a", 4, 3, 3, 1, PAD_SAME, false);
    int b = net_conv2d(net, 0, "b", 5, 3, 3, 1, PAD_SAME, false);
    CHECK(a > 0 && b > 0);
    CHECK_INT(net_add(net, a, b, "add"), -1);
    REQUIRE(net_error(net));
    CHECK(strstr(net_error(net), "add") != NULL);
    char first[256];
    snprintf(first, sizeof first, "%s", net_error(net));
    CHECK_INT(net_conv2d(net, a, "c", 4, 3, 3, 1, PAD_SAME, false), -1); /* sticky */
    CHECK_STR(net_error(net), first);
    CHECK_INT(net_finalize(net, 1), -1);
    net_free(net);

    net = net_create("t", 2, 8, 8, 3);
    CHECK_INT(net_conv2d(net, 0, "x", 4, 9, 9, 1, PAD_VALID, false), -1);
    CHECK(net_error(net) && strstr(net_error(net), "does not fit"));
    net_free(net);
    net = net_create("t", 2, 8, 8, 3);
    net_conv2d(net, 0, "x", 4, 3, 3, 1, PAD_SAME, false);
    CHECK_INT(net_conv2d(net, 1, "x", 4, 3, 3, 1, PAD_SAME, false), -1);
    CHECK(net_error(net) && strstr(net_error(net), "duplicate"));
    net_free(net);
    net = net_create("t", 2, 8, 8, 3);
    CHECK_INT(net_dense(net, 0, "d", 4, true), -1); /* not flat */
    net_free(net);
    net = net_create("t", 2, 8, 8, 3);
    CHECK_INT(net_conv2d(net, 5, "x", 4, 3, 3, 1, PAD_SAME, false), -1);
    net_free(net);
    net = net_create("t", 2, 8, 8, 3);
    net_conv2d(net, 0, "x", 4, 3, 3, 1, PAD_SAME, false);
    CHECK_INT(net_finalize(net, 1), -1); /* output not flat */
    net_free(net);
    net = net_create("t", 2, 8, 8, 3);
    CHECK_INT(net_finalize(net, 1), -1); /* empty */
    net_free(net);
}

/* The small net: conv → BN → ReLU6 → zeropad (0,1),(0,1) → depthwise s2 valid → BN
 * → ReLU → 1×1 conv → add (with the ReLU output) → GAP → dense. */
static Net *small_net(int batch, int hw, int threads)
{
    Net *net = net_create("small", batch, hw, hw, 3);
    int x = net_conv2d(net, 0, "conv1", 8, 3, 3, 1, PAD_SAME, false);
    x = net_batchnorm(net, x, "conv1_bn", 0.99f, 1e-3f);
    x = net_activation(net, x, "conv1_relu", ACT_RELU6);
    x = net_zeropad(net, x, "conv_pad_1", 0, 1, 0, 1);
    x = net_depthwise(net, x, "conv_dw_1", 3, 3, 2, 1, PAD_VALID, false);
    x = net_batchnorm(net, x, "conv_dw_1_bn", 0.99f, 1e-3f);
    int r = net_activation(net, x, "conv_dw_1_relu", ACT_RELU);
    x = net_conv2d(net, r, "conv_pw_1", 8, 1, 1, 1, PAD_SAME, true);
    x = net_add(net, x, r, "add_1");
    x = net_gap(net, x, "gap", false);
    net_dense(net, x, "predictions", 5, true);
    if (net_finalize(net, threads)) {
        net_free(net);
        return NULL;
    }
    return net;
}

/* Region of every ReLU/ReLU6 unit (0: clipped low, 1: linear, 2: clipped at 6) of the last
 * forward, concatenated; n counts them. */
static size_t relu_regions(const Net *net, int batch, unsigned char *buf)
{
    size_t n = 0;
    for (int i = 0; i < net_n_layers(net); i++) {
        const Layer *l = net_layer(net, i);
        if (l->type != LAYER_ACTIVATION || (l->act != ACT_RELU && l->act != ACT_RELU6))
            continue;
        size_t cnt = (size_t)batch * l->h * l->w * l->c;
        for (size_t k = 0; k < cnt; k++, n++)
            if (buf)
                buf[n] = l->out[k] <= 0 ? 0 : (l->act == ACT_RELU6 && l->out[k] >= 6) ? 2 : 1;
    }
    return n;
}

TEST(nn_net_whole_small_net_gradients)
{
    /* Central differences of net_loss for sampled elements of every trainable parameter,
     * BN in train mode (batch statistics), class weights on. Tolerance: the loss is a
     * float computed by a float network, so the difference carries ~1e-7·|L|/h of noise;
     * |a − n| <= 5e-3·max(|a|, |n|) + 1e-3·max|a| over the tensor, h = 5e-3. A difference
     * across which any ReLU/ReLU6 unit changes region measures a kink, not the gradient:
     * such elements are skipped (counted, and required to be few). Wiring mistakes give
     * O(1) relative errors. */
    const int N = 4, HW = 7;
    Net *net = small_net(N, HW, 2);
    REQUIRE(net);
    init_net(net, INIT_HE_UNIFORM, FAN_KERAS, 5);
    Rng rng;
    rng_seed(&rng, 6);
    float *x = malloc(sizeof(float) * N * HW * HW * 3);
    fill(&rng, x, (size_t)N * HW * HW * 3, -1, 1);
    for (int i = 0; i < net_n_params(net); i++) { /* non-trivial gamma, beta, bias */
        Param *p = net_param(net, i);
        if (p->kind == PARAM_GAMMA)
            fill(&rng, p->data, p->size, 0.5, 1.5);
        else if (p->kind == PARAM_BETA || p->kind == PARAM_BIAS)
            fill(&rng, p->data, p->size, -0.3, 0.3);
    }
    int labels[4] = {0, 3, 1, 4};
    float cw[5] = {1, 2, 0.5f, 1, 3};
    REQUIRE(net_forward(net, x, N, NET_TRAIN_PROBE) == 0);
    size_t nr = relu_regions(net, N, NULL);
    unsigned char *r0 = malloc(nr), *r1 = malloc(nr);
    relu_regions(net, N, r0);
    net_loss(net, labels, cw);
    net_zero_grad(net);
    net_backward(net);
    const double h = 5e-3;
    int fails = 0, checked = 0, skipped = 0;
    for (int i = 0; i < net_n_params(net); i++) {
        Param *p = net_param(net, i);
        if (!p->trainable)
            continue;
        double scale = 0;
        for (size_t k = 0; k < p->size; k++)
            scale = fmax(scale, fabs(p->grad[k]));
        size_t step = p->size > 40 ? p->size / 40 : 1;
        for (size_t k = 0; k < p->size; k += step) {
            float w0 = p->data[k], wp = (float)(w0 + h), wm = (float)(w0 - h);
            p->data[k] = wp;
            net_forward(net, x, N, NET_TRAIN_PROBE);
            double lp = net_loss(net, labels, cw);
            relu_regions(net, N, r1);
            bool kink = memcmp(r0, r1, nr) != 0;
            p->data[k] = wm;
            net_forward(net, x, N, NET_TRAIN_PROBE);
            double lm = net_loss(net, labels, cw);
            relu_regions(net, N, r1);
            kink = kink || memcmp(r0, r1, nr) != 0;
            p->data[k] = w0;
            if (kink) {
                skipped++;
                continue;
            }
            double num = (lp - lm) / ((double)wp - wm), ana = p->grad[k];
            checked++;
            if (!(fabs(num - ana) <= 5e-3 * fmax(fabs(num), fabs(ana)) + 1e-3 * scale)) {
                if (fails++ < 8)
                    printf("    grad net %s[%zu]: numeric %.9g analytic %.9g\n", p->name, k, num,
                           ana);
            }
        }
    }
    if (skipped > checked / 4)
        printf("    %d elements checked, %d skipped at kinks\n", checked, skipped);
    CHECK(checked > 150);
    CHECK(skipped <= checked / 4);
    CHECK_INT(fails, 0);
    free(r0), free(r1), free(x);
    net_free(net);
}

TEST(nn_net_batchnorm_modes_follow_keras)
{
    /* input (N=3, 2, 2, C=2) → BN(momentum 0.9) → flatten → dense: compare against sums
     * computed here in double. */
    Net *net = net_create("bn", 3, 2, 2, 2);
    int b = net_batchnorm(net, 0, "bn", 0.9f, 1e-3f);
    int f = net_flatten(net, b, "flat");
    net_dense(net, f, "out", 2, false);
    REQUIRE(net_finalize(net, 2) == 0);
    init_net(net, INIT_GLOROT_UNIFORM, FAN_KERAS, 1);
    Rng rng;
    rng_seed(&rng, 2);
    float x[24];
    fill(&rng, x, 24, -2, 3);
    Param *mm = net_find_param(net, "bn/moving_mean"), *mv = net_find_param(net, "bn/moving_variance");
    mm->data[0] = 0.5f, mv->data[0] = 2.0f;
    double mean[2] = {0}, var[2] = {0};
    for (int r = 0; r < 12; r++)
        for (int c = 0; c < 2; c++)
            mean[c] += x[r * 2 + c] / 12.0;
    for (int r = 0; r < 12; r++)
        for (int c = 0; c < 2; c++)
            var[c] += (x[r * 2 + c] - mean[c]) * (x[r * 2 + c] - mean[c]) / 12.0;

    float y[24];
    Watch w = {.layer = b, .copy = y}; /* the BN output feeds only a flatten: not kept */
    net_set_observer(net, watch_layer, &w);
    REQUIRE(net_forward(net, x, 3, NET_TRAIN_PROBE) == 0);
    CHECK_INT(w.seen, 1);
    CHECK_NEAR(y[0], (x[0] - mean[0]) / sqrt(var[0] + 1e-3), 1e-5);
    CHECK_NEAR(mm->data[0], 0.5, 0); /* probe: untouched */

    REQUIRE(net_forward(net, x, 3, NET_TRAIN) == 0);
    CHECK_NEAR(y[5], (x[5] - mean[1]) / sqrt(var[1] + 1e-3), 1e-5);
    CHECK_NEAR(mm->data[0], 0.9 * 0.5 + 0.1 * mean[0], 1e-6);
    CHECK_NEAR(mv->data[0], 0.9 * 2.0 + 0.1 * var[0], 1e-6); /* biased variance */
    CHECK_NEAR(mv->data[1], 0.9 * 1.0 + 0.1 * var[1], 1e-6);

    REQUIRE(net_forward(net, x, 3, NET_INFERENCE) == 0);
    CHECK_NEAR(y[2], (x[2] - mm->data[0]) / sqrt(mv->data[0] + 1e-3), 1e-5);
    CHECK_NEAR(mm->data[0], 0.9 * 0.5 + 0.1 * mean[0], 1e-6); /* inference: untouched */
    net_free(net);
}

TEST(nn_net_gradients_accumulate_until_zero_grad)
{
    Net *net = small_net(2, 6, 1);
    REQUIRE(net);
    init_net(net, INIT_GLOROT_NORMAL, FAN_KERAS, 3);
    Rng rng;
    rng_seed(&rng, 4);
    float x[2 * 36 * 3];
    fill(&rng, x, sizeof x / sizeof x[0], -1, 1);
    int labels[2] = {1, 2};
    Param *k = net_find_param(net, "conv_pw_1/kernel");
    net_forward(net, x, 2, NET_TRAIN_PROBE);
    float loss = net_loss(net, labels, NULL);
    CHECK(loss > 0 && isfinite(loss));
    net_zero_grad(net);
    const Layer *dw = net_layer(net, net_find_layer(net, "conv_dw_1"));
    size_t nd = (size_t)2 * dw->h * dw->w * dw->c;
    float *d = malloc(sizeof(float) * nd), *d1 = malloc(sizeof(float) * nd);
    Watch w = {.layer = net_find_layer(net, "conv_dw_1"), .backward = true, .copy = d};
    net_set_observer(net, watch_layer, &w);
    net_backward(net);
    float g1 = k->grad[3];
    memcpy(d1, d, sizeof(float) * nd);
    net_forward(net, x, 2, NET_TRAIN_PROBE); /* a backward needs its own forward */
    net_loss(net, labels, NULL);
    net_backward(net);
    CHECK_INT(w.seen, 2);
    CHECK_NEAR(k->grad[3], 2 * g1, 1e-6 * fabs(g1) + 1e-12);
    /* activation gradients are recomputed, not accumulated */
    CHECK(memcmp(d, d1, sizeof(float) * nd) == 0);
    float mx = 0;
    for (size_t i = 0; i < nd; i++)
        mx = fmaxf(mx, fabsf(d1[i]));
    CHECK(mx > 0);
    free(d), free(d1);
    net_zero_grad(net);
    CHECK(k->grad[3] == 0.0f);
    net_free(net);
}

TEST(nn_net_dropout_is_seeded_and_train_only)
{
    Net *net = net_create("d", 4, 1, 1, 64);
    int d = net_dropout(net, 0, "drop", 0.5f);
    net_dense(net, d, "out", 3, false);
    REQUIRE(net_finalize(net, 1) == 0);
    init_net(net, INIT_GLOROT_UNIFORM, FAN_KERAS, 1);
    float x[256];
    for (int i = 0; i < 256; i++)
        x[i] = 1.0f + i * 0.01f;
    const float *y = net_layer(net, d)->out;
    float a[256], b[256];
    net_seed_dropout(net, 42);
    net_forward(net, x, 4, NET_TRAIN);
    memcpy(a, y, sizeof a);
    int zeros = 0;
    for (int i = 0; i < 256; i++) {
        zeros += a[i] == 0;
        CHECK(a[i] == 0 || fabsf(a[i] - 2 * x[i]) < 1e-6f);
    }
    CHECK(zeros > 80 && zeros < 176);
    uint64_t state = net_dropout_state(net);
    net_forward(net, x, 4, NET_TRAIN);
    memcpy(b, y, sizeof b);
    CHECK(memcmp(a, b, sizeof a) != 0); /* the stream moves on */
    net_seed_dropout(net, 42);
    net_forward(net, x, 4, NET_TRAIN);
    CHECK(memcmp(a, y, sizeof a) == 0);
    net_seed_dropout(net, state); /* restoring the saved state replays the second mask */
    net_forward(net, x, 4, NET_TRAIN);
    CHECK(memcmp(b, y, sizeof b) == 0);
    net_forward(net, x, 4, NET_TRAIN_PROBE);
    CHECK(memcmp(x, y, sizeof x) == 0);
    net_forward(net, x, 4, NET_INFERENCE);
    CHECK(memcmp(x, y, sizeof x) == 0);
    net_free(net);
}

TEST(nn_net_profiling_fills_layer_times)
{
    Net *net = small_net(2, 6, 1);
    REQUIRE(net);
    init_net(net, INIT_HE_NORMAL, FAN_KERAS, 1);
    float x[2 * 36 * 3] = {0};
    int labels[2] = {0, 1};
    net_set_profiling(net, true);
    net_forward(net, x, 2, NET_TRAIN);
    net_loss(net, labels, NULL);
    net_backward(net);
    const Layer *c = net_layer(net, net_find_layer(net, "conv1"));
    CHECK(c->fwd_seconds > 0 && c->bwd_seconds > 0);
    CHECK_INT(net_forward(net, x, 3, NET_TRAIN), -1); /* beyond the capacity */
    CHECK_INT(net_forward(net, x, 0, NET_TRAIN), -1);
    net_free(net);
}

/* Trains a fresh small net `steps` steps and returns its parameter block as one array. */
static float *train_copy(int threads, int steps, size_t *n_out)
{
    Net *net = small_net(8, 9, threads);
    if (!net)
        return NULL;
    init_net(net, INIT_HE_UNIFORM, FAN_KERAS, 11);
    Rng rng;
    rng_seed(&rng, 12);
    float x[8 * 81 * 3];
    int labels[8];
    fill(&rng, x, sizeof x / sizeof x[0], -1, 1);
    for (int i = 0; i < 8; i++)
        labels[i] = (int)rng_below(&rng, 5);
    SgdConfig sgd = {.momentum = 0.9f, .nesterov = true, .weight_decay = 1e-4f};
    for (int s = 0; s < steps; s++) {
        net_forward(net, x, 8, NET_TRAIN);
        net_loss(net, labels, NULL);
        net_zero_grad(net);
        net_backward(net);
        sgd_step(net, &sgd, 0.05f);
    }
    size_t n = 0;
    for (int i = 0; i < net_n_params(net); i++)
        n += net_param(net, i)->size * (net_param(net, i)->trainable ? 2 : 1);
    float *all = malloc(sizeof(float) * n), *o = all;
    for (int i = 0; i < net_n_params(net); i++) {
        Param *p = net_param(net, i);
        memcpy(o, p->data, sizeof(float) * p->size);
        o += p->size;
        if (p->trainable) {
            memcpy(o, p->velocity, sizeof(float) * p->size);
            o += p->size;
        }
    }
    *n_out = n;
    net_free(net);
    return all;
}

TEST(nn_net_training_is_bit_reproducible)
{
    for (int threads = 1; threads <= 2; threads++) {
        size_t na, nb;
        float *a = train_copy(threads, 3, &na), *b = train_copy(threads, 3, &nb);
        REQUIRE(a && b);
        CHECK(na == nb && memcmp(a, b, sizeof(float) * na) == 0);
        size_t n0;
        float *init = train_copy(threads, 0, &n0);
        CHECK(memcmp(a, init, sizeof(float) * na) != 0); /* the steps did change weights */
        free(a), free(b), free(init);
    }
}

TEST(nn_net_memorizes_random_labels)
{
    /* 64 random 16×16×3 images with random labels out of 10: a small CNN must fit them
     * all (training accuracy 100%, measured with batch statistics as during training).
     * Under AddressSanitizer the images are 8×8 to keep the test quick. */
#if defined(__SANITIZE_ADDRESS__)
    const int HW = 8;
#else
    const int HW = 16;
#endif
    const int N = 64, K = 10, max_steps = 300;
    Net *net = net_create("memorize", N, HW, HW, 3);
    int x = net_conv2d(net, 0, "conv1", 16, 3, 3, 1, PAD_SAME, false);
    x = net_batchnorm(net, x, "bn1", 0.99f, 1e-3f);
    x = net_activation(net, x, "relu1", ACT_RELU);
    x = net_conv2d(net, x, "conv2", 32, 3, 3, 2, PAD_SAME, false);
    x = net_batchnorm(net, x, "bn2", 0.99f, 1e-3f);
    x = net_activation(net, x, "relu2", ACT_RELU);
    x = net_maxpool(net, x, "pool", 2, 2, PAD_VALID);
    x = net_flatten(net, x, "flatten");
    net_dense(net, x, "logits", K, true);
    REQUIRE(net_finalize(net, 2) == 0);
    init_net(net, INIT_HE_UNIFORM, FAN_KERAS, 7);
    Rng rng;
    rng_seed(&rng, 8);
    float *img = malloc(sizeof(float) * N * HW * HW * 3);
    int labels[64];
    fill(&rng, img, (size_t)N * HW * HW * 3, -1, 1);
    for (int i = 0; i < N; i++)
        labels[i] = (int)rng_below(&rng, K);
    SgdConfig sgd = {.momentum = 0.9f, .nesterov = true};
    int step, correct = 0;
    for (step = 0; step < max_steps; step++) {
        net_forward(net, img, N, NET_TRAIN);
        net_loss(net, labels, NULL);
        net_zero_grad(net);
        net_backward(net);
        sgd_step(net, &sgd, 0.05f);
        if (step % 10 != 9)
            continue;
        net_forward(net, img, N, NET_TRAIN_PROBE);
        const float *z = net_logits(net);
        correct = 0;
        for (int i = 0; i < N; i++) {
            int best = 0;
            for (int k = 1; k < K; k++)
                if (z[i * K + k] > z[i * K + best])
                    best = k;
            correct += best == labels[i];
        }
        if (correct == N)
            break;
    }
    CHECK_INT(correct, N);
    CHECK(step < max_steps);
    free(img);
    net_free(net);
}

TEST(nn_net_padding_then_valid_conv_equals_same_conv)
{
    /* input → ZeroPadding(1,1,1,1) → conv 3×3 valid must equal input → conv 3×3 same, in
     * logits and kernel gradients; the padding's activation gradient is not needed (no
     * parameter before it) and has no buffer. */
    Net *a = net_create("a", 3, 7, 6, 2), *b = net_create("b", 3, 7, 6, 2);
    int p = net_zeropad(a, 0, "pad", 1, 1, 1, 1);
    int x = net_conv2d(a, p, "conv", 4, 3, 3, 1, PAD_VALID, true);
    net_dense(a, net_gap(a, x, "gap", false), "out", 3, true);
    x = net_conv2d(b, 0, "conv", 4, 3, 3, 1, PAD_SAME, true);
    net_dense(b, net_gap(b, x, "gap", false), "out", 3, true);
    REQUIRE(net_finalize(a, 2) == 0 && net_finalize(b, 2) == 0);
    init_net(a, INIT_HE_UNIFORM, FAN_KERAS, 4);
    init_net(b, INIT_HE_UNIFORM, FAN_KERAS, 4); /* same parameter order: same draws */
    Rng rng;
    rng_seed(&rng, 5);
    float in[3 * 7 * 6 * 2];
    fill(&rng, in, sizeof in / sizeof in[0], -1, 1);
    int labels[3] = {2, 0, 1};
    Net *nets[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        net_forward(nets[i], in, 3, NET_TRAIN);
        net_loss(nets[i], labels, NULL);
        net_zero_grad(nets[i]);
        net_backward(nets[i]);
    }
    for (int k = 0; k < 9; k++)
        CHECK_NEAR(net_logits(a)[k], net_logits(b)[k], 1e-6);
    const Param *ga = net_find_param(a, "conv/kernel"), *gb = net_find_param(b, "conv/kernel");
    for (size_t k = 0; k < ga->size; k++)
        CHECK_NEAR(ga->grad[k], gb->grad[k], 1e-6 * (1 + fabs(gb->grad[k])));
    CHECK(net_layer(a, p)->dout == NULL);
    net_free(a);
    net_free(b);
}

TEST(nn_net_set_threads_after_finalize)
{
    /* Per-thread partial sums (depthwise, batch norm) and im2col chunks depend on the
     * thread count: a net finalized for 1 thread and run with 3 must grow its workspace
     * and give the same gradients up to summation order. */
    Net *a = small_net(4, 9, 1), *b = small_net(4, 9, 1);
    REQUIRE(a && b);
    net_set_threads(b, 3);
    CHECK_INT(net_threads(b), 3);
    init_net(a, INIT_LECUN_UNIFORM, FAN_KERAS, 2);
    init_net(b, INIT_LECUN_UNIFORM, FAN_KERAS, 2);
    Rng rng;
    rng_seed(&rng, 3);
    float x[4 * 81 * 3];
    fill(&rng, x, sizeof x / sizeof x[0], -1, 1);
    int labels[4] = {4, 1, 0, 2};
    Net *nets[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        net_forward(nets[i], x, 4, NET_TRAIN);
        net_loss(nets[i], labels, NULL);
        net_zero_grad(nets[i]);
        net_backward(nets[i]);
    }
    for (int i = 0; i < net_n_params(a); i++) {
        const Param *p = net_param(a, i), *q = net_param(b, i);
        if (!p->grad)
            continue;
        double scale = 1e-6, err = 0;
        for (size_t k = 0; k < p->size; k++) {
            scale = fmax(scale, fabs(p->grad[k]));
            err = fmax(err, fabs(p->grad[k] - q->grad[k]));
        }
        CHECK(err / scale < 1e-5);
    }
    net_free(a);
    net_free(b);
}
