/* init.c — Keras VarianceScaling and Orthogonal initializers, Keras/PyTorch fans, seeded
 * parameter fill, zero-γ.
 *
 * Generator: util/rng.h (xoshiro256** seeded by splitmix64). Parameter i of the net draws
 * from its own stream rng_seed(rng_derive(seed, i)), element by element in memory order
 * (the Keras layout). Uniform: w = l·(2u - 1) with u = rng_uniform, computed in double
 * and rounded to float. Truncated normal: z = rng_normal, redrawn while |z| > 2, w = s·z
 * (Keras' TruncatedNormal cuts at two standard deviations). Untruncated normal: w = s·z.
 * Orthogonal: the (max, min) normal matrix is drawn row-major from the same stream, then
 * factored by Householder reflections in double (init_orthogonal_matrix). */
#include "nn/init.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/rng.h"

static const char *const names[INIT_COUNT] = {
    [INIT_GLOROT_UNIFORM] = "glorot_uniform", [INIT_GLOROT_NORMAL] = "glorot_normal",
    [INIT_HE_UNIFORM] = "he_uniform",         [INIT_HE_NORMAL] = "he_normal",
    [INIT_LECUN_UNIFORM] = "lecun_uniform",   [INIT_LECUN_NORMAL] = "lecun_normal",
    [INIT_VARIANCE_SCALING] = "variance_scaling", [INIT_ORTHOGONAL] = "orthogonal",
    [INIT_LSUV] = "lsuv",
};
static const char *const mode_names[] = {"fan_in", "fan_out", "fan_avg"};
static const char *const dist_names[] = {"truncated_normal", "untruncated_normal", "uniform"};

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
    case INIT_VARIANCE_SCALING: *uniform = false; return sqrt(1.0 / fi) / INIT_TRUNC_STD;
    default: break;
    }
    *uniform = false;
    return NAN; /* orthogonal, lsuv: no VarianceScaling scale */
}

double init_variance(Initializer init, int fan_in, int fan_out)
{
    bool uniform;
    double s = init_scale(init, fan_in, fan_out, &uniform);
    return uniform ? s * s / 3.0 : (s * INIT_TRUNC_STD) * (s * INIT_TRUNC_STD);
}

InitSpec init_spec_default(Initializer kind)
{
    return (InitSpec){.kind = kind, .gain = 1.0, .scale = 1.0, .mode = INIT_MODE_FAN_IN,
                      .distribution = INIT_DIST_TRUNCATED_NORMAL, .zero_gamma = false};
}

const char *init_mode_name(InitMode mode)
{
    return mode >= 0 && mode <= INIT_MODE_FAN_AVG ? mode_names[mode] : "?";
}

int init_mode_parse(const char *name, InitMode *mode)
{
    for (int i = 0; i <= INIT_MODE_FAN_AVG; i++)
        if (name && strcmp(name, mode_names[i]) == 0) {
            *mode = (InitMode)i;
            return 0;
        }
    return -1;
}

const char *init_distribution_name(InitDistribution d)
{
    return d >= 0 && d <= INIT_DIST_UNIFORM ? dist_names[d] : "?";
}

int init_distribution_parse(const char *name, InitDistribution *d)
{
    for (int i = 0; i <= INIT_DIST_UNIFORM; i++)
        if (name && strcmp(name, dist_names[i]) == 0) {
            *d = (InitDistribution)i;
            return 0;
        }
    return -1;
}

/* VarianceScaling's s² = scale / max(1, n) for the spec's mode. */
static double vs_variance(const InitSpec *spec, int fan_in, int fan_out)
{
    double n = spec->mode == INIT_MODE_FAN_IN    ? fan_in
               : spec->mode == INIT_MODE_FAN_OUT ? fan_out
                                                 : (fan_in + fan_out) / 2.0;
    return spec->scale / (n > 1.0 ? n : 1.0);
}

/* Rows and columns of Keras' flattened kernel: every dimension but the last, the last. */
static void flat_shape(const Param *p, int *rows, int *cols)
{
    *rows = 1;
    for (int d = 0; d + 1 < p->ndim; d++)
        *rows *= p->shape[d];
    *cols = p->shape[p->ndim - 1];
}

double init_spec_variance(const InitSpec *spec, const Param *p, FanConvention conv)
{
    int fi, fo;
    if (init_fans(p, conv, &fi, &fo) < 0)
        return NAN;
    double g2 = spec->gain * spec->gain;
    if (spec->kind < INIT_N_PRESETS)
        return g2 * init_variance(spec->kind, fi, fo);
    if (spec->kind == INIT_VARIANCE_SCALING)
        return g2 * vs_variance(spec, fi, fo);
    int rows, cols;
    flat_shape(p, &rows, &cols);
    return g2 / (rows > cols ? rows : cols);
}

double init_spec_scale(const InitSpec *spec, int fan_in, int fan_out, bool *uniform)
{
    if (spec->kind < INIT_N_PRESETS)
        return spec->gain * init_scale(spec->kind, fan_in, fan_out, uniform);
    *uniform = spec->distribution == INIT_DIST_UNIFORM;
    if (spec->kind != INIT_VARIANCE_SCALING)
        return NAN;
    double s = sqrt(vs_variance(spec, fan_in, fan_out));
    if (spec->distribution == INIT_DIST_UNIFORM)
        s *= sqrt(3.0);
    else if (spec->distribution == INIT_DIST_TRUNCATED_NORMAL)
        s /= INIT_TRUNC_STD;
    return spec->gain * s;
}

/* Fills p (a kernel) with draws of s·u or s·z from rng. */
static void fill_scaled(Param *p, Rng *rng, double s, InitDistribution dist)
{
    for (size_t k = 0; k < p->size; k++) {
        if (dist == INIT_DIST_UNIFORM) {
            p->data[k] = (float)(s * (2.0 * rng_uniform(rng) - 1.0));
        } else {
            double z;
            do
                z = rng_normal(rng);
            while (dist == INIT_DIST_TRUNCATED_NORMAL && fabs(z) > 2.0);
            p->data[k] = (float)(s * z);
        }
    }
}

/* Householder QR of the column-major m × n matrix a (m >= n), overwritten by the
 * reflectors; alpha (n) receives R's diagonal. Then q (m × n, column-major) = the thin Q
 * with columns multiplied by sign(alpha). Columns are independent once a reflector is
 * known: they are shared out over the team. */
static void householder_q(double *a, double *q, double *alpha, int m, int n, int threads)
{
    for (int k = 0; k < n; k++) {
        double *v = a + (size_t)k * m + k;
        int len = m - k;
        double norm = 0;
        for (int i = 0; i < len; i++)
            norm += v[i] * v[i];
        norm = sqrt(norm);
        double al = v[0] > 0 ? -norm : norm;
        alpha[k] = al;
        v[0] -= al;
        double vv = 0;
        for (int i = 0; i < len; i++)
            vv += v[i] * v[i];
        double inv = vv > 0 ? 1.0 / sqrt(vv) : 0;
        for (int i = 0; i < len; i++)
            v[i] *= inv;
        #pragma omp parallel for num_threads(threads) schedule(static) if (n - k > 32)
        for (int j = k + 1; j < n; j++) {
            double *c = a + (size_t)j * m + k, d = 0;
            for (int i = 0; i < len; i++)
                d += v[i] * c[i];
            d *= 2;
            for (int i = 0; i < len; i++)
                c[i] -= d * v[i];
        }
    }
    /* Q = H_0 ... H_{n-1} I[:, :n]: each column of the identity, reflected last first. */
    #pragma omp parallel for num_threads(threads) schedule(static) if (n > 32)
    for (int j = 0; j < n; j++) {
        double *c = q + (size_t)j * m;
        memset(c, 0, sizeof(double) * (size_t)m);
        c[j] = 1;
        for (int k = j; k >= 0; k--) { /* H_k e_j = e_j for k > j */
            const double *v = a + (size_t)k * m + k;
            double d = 0;
            for (int i = 0; i < m - k; i++)
                d += v[i] * c[k + i];
            d *= 2;
            for (int i = 0; i < m - k; i++)
                c[k + i] -= d * v[i];
        }
        /* Keras: q *= sign(diag(r)); the reflections give R's diagonal as alpha. */
        if (alpha[j] < 0)
            for (int i = 0; i < m; i++)
                c[i] = -c[i];
    }
}

int init_orthogonal_matrix(float *out, int rows, int cols, Rng *rng, int threads)
{
    int m = rows > cols ? rows : cols, n = rows > cols ? cols : rows;
    double *a = malloc(sizeof(double) * (size_t)m * n);
    double *q = malloc(sizeof(double) * (size_t)m * n);
    double *alpha = malloc(sizeof(double) * (size_t)n);
    if (!a || !q || !alpha) {
        free(a);
        free(q);
        free(alpha);
        return -1;
    }
    /* normal(flat_shape = (m, n)) row-major, stored column-major */
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            a[(size_t)j * m + i] = rng_normal(rng);
    householder_q(a, q, alpha, m, n, threads > 0 ? threads : 1);
    /* q is (m, n); Keras transposes it to (n, m) when rows < cols. */
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            out[(size_t)r * cols + c] =
                (float)(rows >= cols ? q[(size_t)c * m + r] : q[(size_t)r * m + c]);
    free(a);
    free(q);
    free(alpha);
    return 0;
}

/* γ = 0 in the batch norm that is the second input (the residual branch) of each add. */
static void apply_zero_gamma(Net *net)
{
    for (int i = 0; i < net_n_layers(net); i++) {
        const Layer *l = net_layer(net, i);
        if (l->type != LAYER_ADD || l->in[1] < 0)
            continue;
        const Layer *b = net_layer(net, l->in[1]);
        if (b->type != LAYER_BATCHNORM)
            continue;
        Param *gamma = net_param(net, b->param_first);
        for (size_t k = 0; k < gamma->size; k++)
            gamma->data[k] = 0.0f;
    }
}

int init_net_spec(Net *net, const InitSpec *spec, FanConvention conv, uint64_t seed)
{
    int rc = 0;
    for (int i = 0; i < net_n_params(net); i++) {
        Param *p = net_param(net, i);
        int fi, fo;
        if (init_fans(p, conv, &fi, &fo) == 0) {
            Rng rng;
            rng_seed(&rng, rng_derive(seed, (uint64_t)i));
            if (spec->kind < INIT_N_PRESETS) {
                bool uniform;
                double s = spec->gain * init_scale(spec->kind, fi, fo, &uniform);
                fill_scaled(p, &rng, s, uniform ? INIT_DIST_UNIFORM
                                                : INIT_DIST_TRUNCATED_NORMAL);
            } else if (spec->kind == INIT_VARIANCE_SCALING) {
                bool uniform;
                fill_scaled(p, &rng, init_spec_scale(spec, fi, fo, &uniform),
                            spec->distribution);
            } else {
                int rows, cols;
                flat_shape(p, &rows, &cols);
                if (init_orthogonal_matrix(p->data, rows, cols, &rng, net_threads(net)) < 0) {
                    rc = -1;
                    memset(p->data, 0, sizeof(float) * p->size);
                }
                if (spec->gain != 1.0)
                    for (size_t k = 0; k < p->size; k++)
                        p->data[k] = (float)(spec->gain * p->data[k]);
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
    if (spec->zero_gamma)
        apply_zero_gamma(net);
    return rc;
}

void init_net(Net *net, Initializer init, FanConvention conv, uint64_t seed)
{
    InitSpec spec = init_spec_default(init);
    (void)init_net_spec(net, &spec, conv, seed);
}
