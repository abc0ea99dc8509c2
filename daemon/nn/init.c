/* init.c — Keras VarianceScaling initializers, Keras/PyTorch fans, seeded parameter fill.
 *
 * Generator: util/rng.h (xoshiro256** seeded by splitmix64). Parameter i of the net draws
 * from its own stream rng_seed(rng_derive(seed, i)), element by element in memory order
 * (the Keras layout). Uniform: w = l·(2u - 1) with u = rng_uniform, computed in double
 * and rounded to float. Truncated normal: z = rng_normal, redrawn while |z| > 2, w = s·z
 * (Keras' TruncatedNormal cuts at two standard deviations). */
#include "nn/init.h"

#include <math.h>
#include <string.h>

#include "util/rng.h"

static const char *const names[INIT_COUNT] = {
    [INIT_GLOROT_UNIFORM] = "glorot_uniform", [INIT_GLOROT_NORMAL] = "glorot_normal",
    [INIT_HE_UNIFORM] = "he_uniform",         [INIT_HE_NORMAL] = "he_normal",
    [INIT_LECUN_UNIFORM] = "lecun_uniform",   [INIT_LECUN_NORMAL] = "lecun_normal",
};

const char *init_name(Initializer init)
{
    return init >= 0 && init < INIT_COUNT ? names[init] : "?";
}

int init_parse(const char *name, Initializer *init)
{
    for (int i = 0; i < INIT_COUNT; i++)
        if (name && strcmp(name, names[i]) == 0) {
            *init = (Initializer)i;
            return 0;
        }
    return -1;
}

const char *fan_convention_name(FanConvention conv)
{
    return conv == FAN_PYTORCH ? "pytorch" : "keras";
}

int fan_convention_parse(const char *name, FanConvention *conv)
{
    if (name && strcmp(name, "keras") == 0)
        *conv = FAN_KERAS;
    else if (name && strcmp(name, "pytorch") == 0)
        *conv = FAN_PYTORCH;
    else
        return -1;
    return 0;
}

int init_fans(const Param *p, FanConvention conv, int *fan_in, int *fan_out)
{
    if (p->kind == PARAM_KERNEL && p->ndim == 2) {
        *fan_in = p->shape[0];
        *fan_out = p->shape[1];
        return 0;
    }
    if (p->ndim != 4 || (p->kind != PARAM_KERNEL && p->kind != PARAM_DEPTHWISE_KERNEL))
        return -1;
    int rf = p->shape[0] * p->shape[1];
    if (p->kind == PARAM_DEPTHWISE_KERNEL && conv == FAN_PYTORCH) {
        /* PyTorch sees the (C·m, 1, kh, kw) weight of a grouped conv */
        *fan_in = rf;
        *fan_out = p->shape[2] * p->shape[3] * rf;
        return 0;
    }
    *fan_in = rf * p->shape[2];
    *fan_out = rf * p->shape[3];
    return 0;
}

double init_scale(Initializer init, int fan_in, int fan_out, bool *uniform)
{
    double fi = fan_in, fo = fan_out;
    switch (init) {
    case INIT_GLOROT_UNIFORM: *uniform = true; return sqrt(6.0 / (fi + fo));
    case INIT_GLOROT_NORMAL: *uniform = false; return sqrt(2.0 / (fi + fo)) / INIT_TRUNC_STD;
    case INIT_HE_UNIFORM: *uniform = true; return sqrt(6.0 / fi);
    case INIT_HE_NORMAL: *uniform = false; return sqrt(2.0 / fi) / INIT_TRUNC_STD;
    case INIT_LECUN_UNIFORM: *uniform = true; return sqrt(3.0 / fi);
    case INIT_LECUN_NORMAL: *uniform = false; return sqrt(1.0 / fi) / INIT_TRUNC_STD;
    default: break;
    }
    *uniform = true;
    return 0;
}

double init_variance(Initializer init, int fan_in, int fan_out)
{
    bool uniform;
    double s = init_scale(init, fan_in, fan_out, &uniform);
    return uniform ? s * s / 3.0 : (s * INIT_TRUNC_STD) * (s * INIT_TRUNC_STD);
}

void init_net(Net *net, Initializer init, FanConvention conv, uint64_t seed)
{
    for (int i = 0; i < net_n_params(net); i++) {
        Param *p = net_param(net, i);
        int fi, fo;
        if (init_fans(p, conv, &fi, &fo) == 0) {
            bool uniform;
            double s = init_scale(init, fi, fo, &uniform);
            Rng rng;
            rng_seed(&rng, rng_derive(seed, (uint64_t)i));
            for (size_t k = 0; k < p->size; k++) {
                if (uniform) {
                    p->data[k] = (float)(s * (2.0 * rng_uniform(&rng) - 1.0));
                } else {
                    double z;
                    do
                        z = rng_normal(&rng);
                    while (fabs(z) > 2.0);
                    p->data[k] = (float)(s * z);
                }
            }
        } else {
            float v = p->kind == PARAM_GAMMA || p->kind == PARAM_MOVING_VARIANCE ? 1.0f : 0.0f;
            for (size_t k = 0; k < p->size; k++)
                p->data[k] = v;
        }
        if (p->grad)
            memset(p->grad, 0, sizeof(float) * p->size);
        if (p->velocity)
            memset(p->velocity, 0, sizeof(float) * p->size);
    }
}
