/* init.h — Keras weight initializers (VarianceScaling) with Keras or PyTorch fans.
 *
 * Kernels draw from the chosen initializer with a stream seeded from (seed, parameter
 * index) so adding a layer does not shift every other layer's draw; biases and BN beta
 * and moving mean are 0, BN gamma and moving variance are 1 (Keras defaults).
 *
 *   glorot_uniform  U(-l, l), l = sqrt(6 / (fan_in + fan_out))
 *   glorot_normal   N(0, s) truncated at 2s (redraw), s = sqrt(2 / (fan_in + fan_out)) / 0.8796...
 *   he_uniform      l = sqrt(6 / fan_in)          he_normal     s = sqrt(2 / fan_in) / 0.8796...
 *   lecun_uniform   l = sqrt(3 / fan_in)          lecun_normal  s = sqrt(1 / fan_in) / 0.8796...
 *
 * 0.87962566103423978 is the std of a standard normal truncated to [-2, 2], so the
 * truncated draw has the variance the formula intends. Fans (Keras compute_fans): dense
 * (in, out); conv kh·kw·cin, kh·kw·cout; depthwise (kh, kw, C, m) kh·kw·C, kh·kw·m.
 * The PyTorch convention differs for depthwise kernels only (see init_fans). */
#ifndef INITLAB_NN_INIT_H
#define INITLAB_NN_INIT_H

#include <stdbool.h>
#include <stdint.h>

#include "nn/net.h"

typedef enum {
    INIT_GLOROT_UNIFORM,
    INIT_GLOROT_NORMAL,
    INIT_HE_UNIFORM,
    INIT_HE_NORMAL,
    INIT_LECUN_UNIFORM,
    INIT_LECUN_NORMAL,
    INIT_COUNT
} Initializer;

typedef enum { FAN_KERAS, FAN_PYTORCH } FanConvention;

#define INIT_TRUNC_STD 0.87962566103423978

/* "he_uniform" <-> INIT_HE_UNIFORM. parse returns 0, or -1 for an unknown name. */
const char *init_name(Initializer init);
int init_parse(const char *name, Initializer *init);
const char *fan_convention_name(FanConvention conv);
int fan_convention_parse(const char *name, FanConvention *conv);

/* Fans of a kernel parameter (PARAM_KERNEL or PARAM_DEPTHWISE_KERNEL) under conv.
 * Keras: dense fan_in = in, fan_out = out; conv kh·kw·cin, kh·kw·cout; depthwise
 * (kh, kw, C, m): fan_in = kh·kw·C, fan_out = kh·kw·m. PyTorch: the same except
 * depthwise, whose weight is (C·m, 1, kh, kw): fan_in = kh·kw, fan_out = C·m·kh·kw.
 * Returns 0, or -1 for a parameter that is not a kernel. */
int init_fans(const Param *p, FanConvention conv, int *fan_in, int *fan_out);

/* The initializer's scale for these fans: the uniform limit l, or the std s of the normal
 * before truncation (the formulas above). *uniform tells which. */
double init_scale(Initializer init, int fan_in, int fan_out, bool *uniform);
/* The variance of the weights the initializer intends: l²/3 for uniforms, (s·0.8796...)²
 * for the truncated normals (= 2/(fi+fo), 2/fi, 1/fi). */
double init_variance(Initializer init, int fan_in, int fan_out);

/* Fills every parameter of a finalized net: kernels from init under conv, seeded by seed;
 * the rest with Keras defaults. Deterministic for (graph, init, conv, seed). Can't fail. */
void init_net(Net *net, Initializer init, FanConvention conv, uint64_t seed);

#endif
