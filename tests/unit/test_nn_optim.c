/* test_nn_optim.c — SGD (Keras momentum/Nesterov formula), weight decay scope, LR schedules. */
#include "test.h"

#include <string.h>

#include "nn/init.h"
#include "nn/net.h"
#include "nn/optim.h"

/* input (1,1,3) → BN → dense (3, 2) with bias */
static Net *tiny(void)
{
    Net *net = net_create("opt", 1, 1, 1, 3);
    int x = net_batchnorm(net, 0, "bn", 0.99f, 1e-3f);
    net_dense(net, x, "d", 2, true);
    if (net_finalize(net, 1)) {
        net_free(net);
        return NULL;
    }
    return net;
}

static void set(Param *p, float w, float g, float v)
{
    for (size_t k = 0; k < p->size; k++) {
        p->data[k] = w + 0.1f * k;
        if (p->grad) {
            p->grad[k] = g - 0.05f * k;
            p->velocity[k] = v + 0.01f * k;
        }
    }
}

TEST(nn_optim_sgd_step_matches_the_formula)
{
    for (int nesterov = 0; nesterov < 2; nesterov++)
        for (int decay_all = 0; decay_all < 2; decay_all++) {
            Net *net = tiny();
            REQUIRE(net);
            Param *k = net_find_param(net, "d/kernel"), *b = net_find_param(net, "d/bias");
            Param *gm = net_find_param(net, "bn/gamma"), *mm = net_find_param(net, "bn/moving_mean");
            set(k, 0.5f, 0.2f, -0.1f);
            set(b, -0.3f, 0.4f, 0.05f);
            set(gm, 1.0f, -0.2f, 0.0f);
            set(mm, 0.25f, 0, 0);
            SgdConfig cfg = {.momentum = 0.9f, .nesterov = nesterov, .weight_decay = 0.01f,
                             .decay_all = decay_all};
            const float lr = 0.1f;
            Param *ps[3] = {k, b, gm};
            double want[3][6];
            for (int i = 0; i < 3; i++)
                for (size_t e = 0; e < ps[i]->size; e++) {
                    double w = ps[i]->data[e], g = ps[i]->grad[e], v = ps[i]->velocity[e];
                    double wd = (i == 0 || decay_all) ? 0.01 : 0.0;
                    g += wd * w;
                    v = 0.9 * v - lr * g;
                    want[i][e] = nesterov ? w + 0.9 * v - lr * g : w + v;
                }
            sgd_step(net, &cfg, lr);
            for (int i = 0; i < 3; i++)
                for (size_t e = 0; e < ps[i]->size; e++)
                    CHECK_NEAR(ps[i]->data[e], want[i][e], 1e-6);
            CHECK(mm->data[0] == 0.25f); /* non-trainable: untouched */
            CHECK_NEAR(k->grad[1], 0.2f - 0.05f, 1e-7); /* gradients are left as they were */
            net_free(net);
        }
}

TEST(nn_optim_nesterov_equals_pytorch_form_at_constant_lr)
{
    /* PyTorch: b = m·b + g (b = g on the first step); w -= lr·(g + m·b). Five steps with
     * changing gradients, starting from zero velocity. */
    Net *net = tiny();
    REQUIRE(net);
    Param *k = net_find_param(net, "d/kernel");
    set(k, 0.5f, 0, 0);
    for (size_t e = 0; e < k->size; e++)
        k->velocity[e] = 0;
    double w[6], buf[6] = {0};
    for (size_t e = 0; e < 6; e++)
        w[e] = k->data[e];
    SgdConfig cfg = {.momentum = 0.9f, .nesterov = true};
    for (int s = 0; s < 5; s++) {
        for (size_t e = 0; e < 6; e++) {
            double g = 0.3 * (s + 1) - 0.1 * e;
            k->grad[e] = (float)g;
            buf[e] = s == 0 ? g : 0.9 * buf[e] + g;
            w[e] -= 0.05 * (g + 0.9 * buf[e]);
        }
        sgd_step(net, &cfg, 0.05f);
    }
    for (size_t e = 0; e < 6; e++)
        CHECK_NEAR(k->data[e], w[e], 1e-5);
    net_free(net);
}

TEST(nn_optim_lr_schedules)
{
    LrSchedule st = {.kind = LR_STEP, .milestones = {30, 60}, .n_milestones = 2, .gamma = 0.1f};
    CHECK_NEAR(lr_schedule_at(&st, 0, 0.01f), 0.01, 1e-9);
    CHECK_NEAR(lr_schedule_at(&st, 29, 0.01f), 0.01, 1e-9);
    CHECK_NEAR(lr_schedule_at(&st, 30, 0.01f), 0.001, 1e-9);
    CHECK_NEAR(lr_schedule_at(&st, 59, 0.01f), 0.001, 1e-9);
    CHECK_NEAR(lr_schedule_at(&st, 60, 0.01f), 0.0001, 1e-10);
    CHECK_NEAR(lr_schedule_at(&st, 99, 0.01f), 0.0001, 1e-10);
    LrSchedule cs = {.kind = LR_COSINE, .total_epochs = 100};
    CHECK_NEAR(lr_schedule_at(&cs, 0, 0.1f), 0.1, 1e-8);
    CHECK_NEAR(lr_schedule_at(&cs, 50, 0.1f), 0.05, 1e-8);
    CHECK_NEAR(lr_schedule_at(&cs, 25, 0.1f), 0.1 * (1 + cos(M_PI / 4)) / 2, 1e-8);
    CHECK_NEAR(lr_schedule_at(&cs, 100, 0.1f), 0.0, 1e-9);
    CHECK_NEAR(lr_schedule_at(&cs, 120, 0.1f), 0.0, 1e-9);
    LrSchedule cst = {.kind = LR_CONSTANT};
    CHECK(lr_schedule_at(&cst, 77, 0.3f) == 0.3f);
    LrScheduleKind kind;
    CHECK_INT(lr_schedule_parse("cosine", &kind), 0);
    CHECK_INT(kind, LR_COSINE);
    CHECK_STR(lr_schedule_name(LR_STEP), "step");
    CHECK_INT(lr_schedule_parse("linear", &kind), -1);
}
