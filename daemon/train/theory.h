/* theory.h — what the paper's variance derivations predict for every layer of a net at
 * initialization, forward and backward, in either BatchNorm mode (docs/theory.md).
 *
 * Each tensor is described by moments of one of its elements, over the batch, the
 * positions, the channels and the random weights: the mean m, the second moment q = E[x²]
 * (its variance is q − m²) and the part w of that variance found within a channel — the
 * rest is the spread of the channels' means, which a convolution of an input with a
 * non-zero mean creates (each channel's mean is Σ W·m_in) and batch norm in train mode
 * removes, normalizing each channel by its own variance w. Starting from the measured
 * moments of the input (w = its variance), layer by layer in build order:
 *   conv, depthwise, dense   q = n · Var(W) · q_in + E[b²], m = E[b],    (eqs. 19, 34)
 *              w = n · Var(W) · w_in
 *              n: the inputs each output actually sums over, averaged over the output
 *              positions — kh·kw·C for a convolution, kh·kw for a depthwise one, D for a
 *              dense layer, fewer near a border where taps fall on padding. Var(W) is what
 *              the initializer drew (from Keras' fans, which count C for depthwise kernels
 *              too: there n · Var(W) is C times smaller than the fans intend).
 *   batch norm, train mode   re-normalizes each channel: q = mean_c γ²·w/(w + ε) + β²,
 *              m = mean β.
 *   batch norm, inference    the moving statistics: out = γ(x − μ)/√(σ² + ε) + β, moments
 *              taken channel by channel; at initialization (μ 0, σ² 1, γ 1, β 0) this is
 *              q_in/(1 + ε): the product of the layers before passes through — which is
 *              why the paper's effects appear only in this mode.
 *   activation   f(a) with a ~ N(m, q − m²): ReLU E[relu(a)²] = (m² + v)Φ(m/s) + m·s·φ(m/s),
 *              q_in/2 for m = 0 (eqs. 35–41); ReLU6 the same truncated at 6; tanh, sigmoid
 *              and softsign by numerical integration (≈ q_in for small q: eq. 10).
 *   add          independent summands: m = m_a + m_b, q = q_a + q_b + 2·m_a·m_b, w = w_a + w_b
 *              (eq. 2).
 *   zero padding the share of real pixels: q·(H·W)/(H'·W'), m likewise.
 *   max pooling  the maximum of the window's in-bounds values taken as independent draws of
 *              the input's distribution (for a ReLU input, of the rectified Gaussian).
 *   average and global average pooling   independent positions within a channel:
 *              w' = w/K, q' = q − w + w/K (the channels' means stay).
 *   dropout, flatten   unchanged (the probe runs them as inference does).
 * Backward, r = E[(∂L/∂x)²] per element, from the logits to the input:
 *   logits       r = (K·E[p²] − 2/K + 1) / (K·N²) from the measured softmax p of the
 *              probe batch, taking the true class's probability as 1/K (the loss is the
 *              batch mean, so every gradient carries 1/N)
 *   conv, depthwise, dense   r_in = n̂ · Var(W) · r_out, n̂ the outputs each input
 *              feeds (k²·d for a convolution, eq. 47–51; the units for dense, eq. 24)
 *   activation   r_in = E[f'(a)²]·r_out: ReLU P(a > 0) = 1/2 for m = 0 (eqs. 48–52)
 *   batch norm   train: γ²/(w + ε); inference: γ²/(σ² + ε)
 *   add          both inputs get r (eq. 7); a tensor read by several layers sums their r
 *   pools        max: r·(outputs / inputs); average: r·(cover)/K²; global: r/(H·W)²
 * and each kernel's gradient, summed over the batch and the positions where the tap is
 * in bounds: E[(∂L/∂W)²] = N · P · q_in · r_out (P the positions per tap; w_in instead of
 * q_in when a train-mode batch norm follows, whose backward leaves each channel's
 * gradient with mean zero, so the input's channel means drop out).
 * Assumptions: weights independent of the data and zero-mean; activations of different
 * units independent; the Gaussian shape for non-linearities. Pure computation; reentrant. */
#ifndef INITLAB_TRAIN_THEORY_H
#define INITLAB_TRAIN_THEORY_H

#include "nn/net.h"

typedef struct {
    NetMode mode;             /* NET_TRAIN_PROBE (batch statistics) or NET_INFERENCE */
    double in_mean, in_sq;    /* measured mean and E[x²] of the input */
    double softmax_sq;        /* measured E[p²] over the softmax (N, K) of the probe batch */
    int batch;                /* N */
    const double *kernel_var; /* (net_n_params) Var(W) each kernel was drawn with */
} TheoryInput;

typedef struct {
    double mean, sq, var;     /* predicted moments of the layer's output (var = sq − mean²) */
    double within;            /* the part of var within channels (the rest is the spread of
                                 the channels' means) */
    double grad_sq;           /* predicted E[(∂L/∂out)²] per element */
    double n_sum;             /* kernel layers: inputs each output sums over (average) */
    double n_back;            /* kernel layers: outputs each input feeds (average) */
    double kernel_grad_sq;    /* kernel layers: predicted E[(∂L/∂W)²]; NAN otherwise */
} TheoryLayer;

/* Fills out (net_n_layers entries) for the finalized net with its current batch-norm
 * parameters. Returns 0, or -1 when in->mode is NET_TRAIN (moving statistics would
 * change) or a kernel's variance is missing. Can't fail otherwise. */
int theory_predict(const Net *net, const TheoryInput *in, TheoryLayer *out);

/* Standard normal density and distribution function. */
double theory_phi(double x);
double theory_Phi(double x);

#endif
