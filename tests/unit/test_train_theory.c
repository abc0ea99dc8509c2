/* test_train_theory.c — the theory's rules, each against a value computed here by hand or by
 * brute-force integration: eqs. 19 and 43 forward, 24 and 52 backward, the border-aware n,
 * batch norm in both modes, residual sums, ReLU6, the logits' gradient anchor. */
#include "test.h"

#include <math.h>
#include <stdlib.h>

#include "nn/init.h"
#include "nn/net.h"
#include "train/theory.h"

/* E[g(a)] for a ~ N(m, v) by the midpoint rule over ±12 std (independent of theory.c). */
static double expect(double m, double v, double (*g)(double))
{
    double s = sqrt(v), total = 0, h = 24.0 / 200000;
    for (int i = 0; i < 200000; i++) {
        double z = -12 + (i + 0.5) * h;
        total += g(m + s * z) * exp(-0.5 * z * z) / sqrt(2 * M_PI) * h;
    }
    return total;
}
static double relu6_sq(double a) { double r = a < 0 ? 0 : a > 6 ? 6 : a; return r * r; }
static double relu6_slope2(double a) { return a > 0 && a < 6; }

static double *variances(Net *net, double v)
{
    double *kv = malloc(sizeof(double) * (size_t)net_n_params(net));
    for (int i = 0; i < net_n_params(net); i++)
        kv[i] = v;
    return kv;
}

TEST(train_theory_dense_relu_chain_by_hand)
{
    /* input (N, 1, 1, 8) → dense 16 → relu → dense 4 (logits) */
    Net *net = net_create("t", 5, 1, 1, 8);
    int x = net_dense(net, 0, "d1", 16, false);
    x = net_activation(net, x, "a1", ACT_RELU);
    net_dense(net, x, "d2", 4, false);
    REQUIRE(net_finalize(net, 1) == 0);
    init_net(net, INIT_HE_UNIFORM, FAN_KERAS, 1);
    double *kv = variances(net, 0.125);
    TheoryInput in = {.mode = NET_INFERENCE, .in_mean = 0.5, .in_sq = 1.0, .softmax_sq = 0.1,
                      .batch = 5, .kernel_var = kv};
    TheoryLayer t[4];
    REQUIRE(theory_predict(net, &in, t) == 0);
    CHECK_NEAR(t[1].n_sum, 8, 0);
    CHECK_NEAR(t[1].sq, 8 * 0.125 * 1.0, 1e-12);            /* eq. 19: n·Var(W)·E[x²] */
    CHECK_NEAR(t[2].sq, t[1].sq / 2, 1e-12);                /* eq. 41: half */
    CHECK_NEAR(t[2].mean, sqrt(t[1].sq / (2 * M_PI)), 1e-12);
    CHECK_NEAR(t[2].var, t[1].sq * (0.5 - 1 / (2 * M_PI)), 1e-12);
    CHECK_NEAR(t[3].sq, 16 * 0.125 * t[2].sq, 1e-12);
    /* backward: logits anchor, then eq. 24 and the ReLU's 1/2 (eq. 50) */
    double r3 = (4 * 0.1 - 2.0 / 4 + 1) / (4.0 * 25);
    CHECK_NEAR(t[3].grad_sq, r3, 1e-15);
    CHECK_NEAR(t[2].grad_sq, 4 * 0.125 * r3, 1e-15);
    CHECK_NEAR(t[1].grad_sq, 0.5 * t[2].grad_sq, 1e-15);
    CHECK_NEAR(t[3].kernel_grad_sq, 5 * t[2].sq * r3, 1e-15);  /* N·E[x²]·E[δ²] */
    CHECK_NEAR(t[1].kernel_grad_sq, 5 * 1.0 * t[1].grad_sq, 1e-15);
    CHECK_INT(theory_predict(net, &(TheoryInput){.mode = NET_TRAIN, .kernel_var = kv}, t), -1);
    free(kv);
    net_free(net);
}

TEST(train_theory_conv_counts_inputs_inside_the_borders)
{
    /* 3×3 "same" on 4×4: per row 2, 3, 3, 2 taps in bounds, 2.5 on average → n = 6.25·C;
     * depthwise: 6.25; stride 2 "same" on 5×5: outputs 0, 1, 2 see 2, 3, 2 rows → 7/3 */
    Net *net = net_create("t", 2, 4, 4, 3);
    int a = net_conv2d(net, 0, "c", 6, 3, 3, 1, PAD_SAME, false);
    int b = net_depthwise(net, a, "dw", 3, 3, 1, 1, PAD_SAME, false);
    int g = net_gap(net, b, "gap", false);
    net_dense(net, g, "out", 3, false);
    REQUIRE(net_finalize(net, 1) == 0);
    init_net(net, INIT_GLOROT_UNIFORM, FAN_KERAS, 1);
    double *kv = variances(net, 0.01);
    TheoryInput in = {.mode = NET_INFERENCE, .in_mean = 0, .in_sq = 2.0, .softmax_sq = 0.4,
                      .batch = 2, .kernel_var = kv};
    TheoryLayer t[5];
    REQUIRE(theory_predict(net, &in, t) == 0);
    CHECK_NEAR(t[a].n_sum, 3 * 6.25, 1e-12);
    CHECK_NEAR(t[b].n_sum, 6.25, 1e-12);
    CHECK_NEAR(t[b].sq, 6.25 * 0.01 * t[a].sq, 1e-15);
    /* backward n̂: each input pixel feeds (in-bounds output, tap) pairs / pixels · filters */
    CHECK_NEAR(t[a].n_back, 6 * 6.25 * 16 / 16, 1e-12);
    /* GAP of independent positions within a channel */
    CHECK_NEAR(t[g].sq, t[b].sq - t[b].within + t[b].within / 16, 1e-15);
    free(kv);
    net_free(net);

    net = net_create("t", 1, 5, 5, 1);
    a = net_conv2d(net, 0, "c", 1, 3, 3, 2, PAD_SAME, false);
    net_dense(net, net_flatten(net, a, "f"), "out", 2, false);
    REQUIRE(net_finalize(net, 1) == 0);
    kv = variances(net, 1);
    in.batch = 1;
    in.kernel_var = kv;
    REQUIRE(theory_predict(net, &in, t) == 0);
    CHECK_NEAR(t[a].n_sum, (7.0 / 3) * (7.0 / 3), 1e-12);
    free(kv);
    net_free(net);
}

TEST(train_theory_batch_norm_modes_and_residual_sum)
{
    /* x → dense 8 → bn → (+ x) → relu6 → dense 2 */
    Net *net = net_create("t", 4, 1, 1, 8);
    int d = net_dense(net, 0, "d", 8, false);
    int bn = net_batchnorm(net, d, "bn", 0.99f, 1e-3f);
    int add = net_add(net, 0, bn, "add");
    int act = net_activation(net, add, "act", ACT_RELU6);
    net_dense(net, act, "out", 2, false);
    REQUIRE(net_finalize(net, 1) == 0);
    init_net(net, INIT_HE_NORMAL, FAN_KERAS, 2); /* γ 1, β 0, moving mean 0, variance 1 */
    double *kv = variances(net, 0.5);
    TheoryInput in = {.mode = NET_INFERENCE, .in_mean = 1.0, .in_sq = 5.0, .softmax_sq = 0.3,
                      .batch = 4, .kernel_var = kv};
    TheoryLayer t[6];
    REQUIRE(theory_predict(net, &in, t) == 0);
    double qd = 8 * 0.5 * 5.0;
    CHECK_NEAR(t[bn].sq, qd / (1 + 1e-3), 1e-9);          /* inference: passes through */
    CHECK_NEAR(t[add].sq, 5.0 + t[bn].sq, 1e-9);           /* independent summands */
    CHECK_NEAR(t[add].mean, 1.0, 1e-12);
    double v = t[add].sq - 1.0;
    CHECK_NEAR(t[act].sq, expect(1.0, v, relu6_sq), 1e-6);  /* ReLU6, closed form */
    /* backward through ReLU6: P(0 < a < 6) */
    CHECK_NEAR(t[add].grad_sq / t[act].grad_sq, expect(1.0, v, relu6_slope2), 1e-4);
    in.mode = NET_TRAIN_PROBE;
    REQUIRE(theory_predict(net, &in, t) == 0);
    double w = 8 * 0.5 * (5.0 - 1.0), eps = 1e-3f;          /* within-channel variance */
    CHECK_NEAR(t[bn].sq, w / (w + eps), 1e-12);             /* train: re-normalized */
    CHECK_NEAR(t[d].grad_sq / (t[bn].grad_sq / (w + eps)), 1, 1e-12);
    free(kv);
    net_free(net);
}
