/* init.h — Keras weight initializers (VarianceScaling, Orthogonal) with Keras or PyTorch fans.
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
 * The PyTorch convention differs for depthwise kernels only (see init_fans).
 *
 * Beyond the six named presets (InitSpec, init_net_spec):
 *   variance_scaling  Keras VarianceScaling(scale, mode, distribution): n = fan_in, fan_out
 *                     or (fan_in + fan_out) / 2 by mode, s² = scale / max(1, n);
 *                     truncated_normal N(0, s/0.8796...) cut at 2 std, untruncated_normal
 *                     N(0, s), uniform U(-√3·s, √3·s). The presets are its special cases
 *                     (glorot_uniform = (1, fan_avg, uniform), he_normal = (2, fan_in,
 *                     truncated_normal), ...).
 *   orthogonal        Keras Orthogonal(gain): the kernel flattened to (rows, cols), rows the
 *                     product of every dimension but the last, cols the last; a normal
 *                     matrix of shape (max, min) is QR-factored, Q's columns are multiplied
 *                     by the signs of R's diagonal (so Q is Haar-distributed), transposed
 *                     when rows < cols, reshaped to the kernel's shape and multiplied by
 *                     gain. Each element has variance gain² / max(rows, cols); a depthwise
 *                     kernel (kh, kw, C, 1) is one unit vector of kh·kw·C elements.
 *   lsuv              the orthogonal start of LSUV (Mishkin & Matas 2016); the data-dependent
 *                     scaling that follows is train/lsuv.h's.
 * InitSpec.gain multiplies every kernel after it is drawn (for orthogonal it is Keras'
 * gain), and zero_gamma sets γ = 0 in the batch norm that ends each residual branch: the
 * second input of every add layer (models.c builds add(shortcut, branch)), when it is a
 * batch norm (Goyal et al. 2017, "zero-γ"). */
#ifndef INITLAB_NN_INIT_H
#define INITLAB_NN_INIT_H

#include <stdbool.h>
#include <stdint.h>

#include "nn/net.h"
#include "util/rng.h"

typedef enum {
    INIT_GLOROT_UNIFORM,
    INIT_GLOROT_NORMAL,
    INIT_HE_UNIFORM,
    INIT_HE_NORMAL,
    INIT_LECUN_UNIFORM,
    INIT_LECUN_NORMAL,
    INIT_VARIANCE_SCALING,
    INIT_ORTHOGONAL,
    INIT_LSUV,
    INIT_COUNT
} Initializer;

/* The named VarianceScaling presets are the initializers below this one. */
#define INIT_N_PRESETS INIT_VARIANCE_SCALING

typedef enum { INIT_MODE_FAN_IN, INIT_MODE_FAN_OUT, INIT_MODE_FAN_AVG } InitMode;
typedef enum {
    INIT_DIST_TRUNCATED_NORMAL,
    INIT_DIST_UNTRUNCATED_NORMAL,
    INIT_DIST_UNIFORM,
} InitDistribution;

/* An initializer with its parameters (see the file comment). */
typedef struct {
    Initializer kind;
    double gain;                   /* multiplies every kernel (> 0); 1 */
    double scale;                  /* variance_scaling (> 0); 1 */
    InitMode mode;                 /* variance_scaling; fan_in */
    InitDistribution distribution; /* variance_scaling; truncated_normal */
    bool zero_gamma;               /* γ = 0 at the end of each residual branch; false */
} InitSpec;

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
 * before truncation (the formulas above). *uniform tells which. variance_scaling with its
 * default parameters (1, fan_in, truncated_normal); NAN for orthogonal and lsuv. */
double init_scale(Initializer init, int fan_in, int fan_out, bool *uniform);
/* The variance of the weights the initializer intends: l²/3 for uniforms, (s·0.8796...)²
 * for the truncated normals (= 2/(fi+fo), 2/fi, 1/fi). */
double init_variance(Initializer init, int fan_in, int fan_out);

/* Fills every parameter of a finalized net: kernels from init under conv, seeded by seed;
 * the rest with Keras defaults. Deterministic for (graph, init, conv, seed). Can't fail
 * for the presets (init < INIT_N_PRESETS); for the others see init_net_spec. */
void init_net(Net *net, Initializer init, FanConvention conv, uint64_t seed);

/* The default parameters of kind: gain 1, scale 1, fan_in, truncated_normal, no zero-γ. */
InitSpec init_spec_default(Initializer kind);
/* "fan_in" | "fan_out" | "fan_avg" and "truncated_normal" | "untruncated_normal" |
 * "uniform" (Keras' names); parse returns 0, or -1 for an unknown name. */
const char *init_mode_name(InitMode mode);
int init_mode_parse(const char *name, InitMode *mode);
const char *init_distribution_name(InitDistribution d);
int init_distribution_parse(const char *name, InitDistribution *d);
/* The variance of the elements spec draws for the kernel p (gain included): the preset's
 * or VarianceScaling's s² (as init_variance), gain² / max(rows, cols) for orthogonal and
 * for LSUV's orthogonal start. NAN for a parameter that is not a kernel. */
double init_spec_variance(const InitSpec *spec, const Param *p, FanConvention conv);
/* The scale spec draws with for these fans, gain included: the uniform limit (*uniform
 * true) or the normal's std before any truncation; NAN for orthogonal and lsuv. */
double init_spec_scale(const InitSpec *spec, int fan_in, int fan_out, bool *uniform);
/* As init_net for any InitSpec: kernels drawn by spec.kind, multiplied by spec.gain, and
 * zero-γ when asked. With gain 1 and no zero-γ a preset draws exactly what init_net does.
 * Orthogonal (and LSUV's start) factor one double matrix of rows × cols per kernel in
 * the net's thread count. Returns 0, or -1 when that matrix cannot be allocated (the
 * parameters are then partly filled). */
int init_net_spec(Net *net, const InitSpec *spec, FanConvention conv, uint64_t seed);
/* Keras' orthogonal draw for one (rows, cols) matrix from rng, before gain: out (rows·cols,
 * row-major) gets Q as described in the file comment. threads >= 1. Returns 0, or -1 when
 * the work matrices cannot be allocated. */
int init_orthogonal_matrix(float *out, int rows, int cols, Rng *rng, int threads);

#endif
