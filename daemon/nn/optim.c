/* optim.c — SGD with Keras' (Nesterov) momentum update and L2 decay; learning-rate schedules. */
#include "nn/optim.h"

#include <math.h>
#include <string.h>

void sgd_step(Net *net, const SgdConfig *cfg, float lr)
{
    const float mom = cfg->momentum;
    const bool nesterov = cfg->nesterov;
    const int threads = net_threads(net);
    for (int i = 0; i < net_n_params(net); i++) {
        Param *p = net_param(net, i);
        if (!p->trainable)
            continue;
        bool is_kernel = p->kind == PARAM_KERNEL || p->kind == PARAM_DEPTHWISE_KERNEL;
        const float wd = (is_kernel || cfg->decay_all) ? cfg->weight_decay : 0.0f;
        float *restrict w = p->data, *restrict v = p->velocity;
        const float *restrict g = p->grad;
        const long n = (long)p->size;
#pragma omp parallel for simd num_threads(threads) schedule(static) if (n > 65536)
        for (long k = 0; k < n; k++) {
            float gk = g[k] + wd * w[k];
            float vk = mom * v[k] - lr * gk;
            v[k] = vk;
            w[k] += nesterov ? mom * vk - lr * gk : vk;
        }
    }
}

float lr_schedule_at(const LrSchedule *s, int epoch, float base_lr)
{
    switch (s->kind) {
    case LR_STEP: {
        double lr = base_lr;
        for (int i = 0; i < s->n_milestones; i++)
            if (epoch >= s->milestones[i])
                lr *= s->gamma;
        return (float)lr;
    }
    case LR_COSINE: {
        if (s->total_epochs <= 0)
            return base_lr;
        int e = epoch < s->total_epochs ? epoch : s->total_epochs;
        return (float)(base_lr * 0.5 * (1.0 + cos(M_PI * e / s->total_epochs)));
    }
    case LR_CONSTANT:
        break;
    }
    return base_lr;
}

const char *lr_schedule_name(LrScheduleKind kind)
{
    switch (kind) {
    case LR_STEP: return "step";
    case LR_COSINE: return "cosine";
    case LR_CONSTANT: break;
    }
    return "constant";
}

int lr_schedule_parse(const char *name, LrScheduleKind *kind)
{
    if (!name)
        return -1;
    if (strcmp(name, "constant") == 0)
        *kind = LR_CONSTANT;
    else if (strcmp(name, "step") == 0)
        *kind = LR_STEP;
    else if (strcmp(name, "cosine") == 0)
        *kind = LR_COSINE;
    else
        return -1;
    return 0;
}
