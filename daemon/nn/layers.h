/* layers.h — the engine's layer kernels: forward and backward of every layer family.
 *
 * The net (net.c) calls these on its arena; tests and benchmarks call them directly.
 * Shape letters, used in every pointer comment below:
 *   N batch, H W C input height, width, channels; OH OW K output height, width, channels
 *   (K = conv filters, depthwise C·m, dense units); kh kw kernel size; M = N·H·W rows of a
 *   per-channel layer (batch norm); D dense input features; n a flat element count.
 * Tensors are NHWC float32, kernels in Keras layouts: conv (kh, kw, C, K), depthwise
 * (kh, kw, C, m) whose output channel c·m + j reads input channel c, dense (D, K).
 *
 * Gradient rule (the engine's one rule): every backward ACCUMULATES (+=) into the input
 * gradient and the parameter gradients it is given; it never clears them. The exception:
 * conv2d_backward and depthwise_backward with accumulate false, and the fused batch-norm
 * kernels with BnFused.accumulate false, overwrite their input gradient without reading
 * it (a first write: the net then needs no clearing pass). A NULL input gradient (dinp) or bias gradient skips that
 * computation.
 *
 * Fast paths run in an OpenMP team of `threads` threads (num_threads(threads)); GEMMs go
 * through nn/gemm.h, split into one contiguous share per team member, each a
 * single-threaded sgemm (the conv and dense kernels call gemm_single_threaded first).
 * Results are deterministic for a given thread count: loops use static schedules and
 * reduce per-thread partial sums in thread order. Every
 * fast kernel has a *_naive reference (single-threaded, double accumulation) with the same
 * contract, used by the tests. No kernel allocates; scratch comes from the caller's
 * workspace. All functions are thread-safe on disjoint buffers and can't fail. */
#ifndef INITLAB_NN_LAYERS_H
#define INITLAB_NN_LAYERS_H

#include <stdbool.h>
#include <stddef.h>

#include "nn/net.h"
#include "util/rng.h"

/* ---- Shapes (shape.c) -------------------------------------------------------------- */

/* Geometry of a windowed layer (conv, depthwise, pools): input (N, H, W, C), output
 * (N, OH, OW, K), window kh × kw moved by stride, pad_top rows and pad_left columns of
 * zeros before the input; the padding after it (bottom/right) is whatever the output size
 * needs, which is how TF "same" puts the odd extra pixel bottom/right. */
typedef struct {
    int N, H, W, C;
    int OH, OW, K;
    int kh, kw, stride;
    int pad_top, pad_left;
} ConvGeom;

/* Output size of a window k moved by stride over `in` pixels, and the padding before:
 * VALID: out = floor((in - k) / stride) + 1, pad 0; SAME (TF): out = ceil(in / stride),
 * pad_total = max((out - 1)·stride + k - in, 0), before = pad_total / 2 (the extra pixel
 * goes after). Returns out, or 0 when the window does not fit (VALID with k > in). */
int shape_window_out(int in, int k, int stride, Padding padding, int *pad_before);
/* Fills g for a windowed layer; K is the output channel count. Returns 0, or -1 when the
 * output would be empty or an argument is not positive. */
int shape_conv_geom(ConvGeom *g, int N, int H, int W, int C, int K, int kh, int kw, int stride,
                    Padding padding);

/* ---- conv2d (conv.c) ---------------------------------------------------------------- */

/* Workspace floats that make conv2d_forward and conv2d_backward with `threads` threads
 * use im2col chunks of about chunk_bytes (at least one output pixel). A 1×1 stride-1
 * unpadded conv runs as plain GEMMs on the NHWC tensor and needs no im2col; over many rows
 * (at least 4096 per thread) its backward keeps a weight-gradient partial per thread but
 * the first ((threads − 1)·C·K floats). A stride-1 k×k conv also gets room for its flipped
 * kernel (kh·kw·C·K floats), which its backward's input gradient uses, and a short kernel
 * (kh·kw·C ≤ 160, a first layer) a weight-gradient partial per thread (threads·kh·kw·C·K
 * floats, taken from the workspace's end). */
size_t conv2d_workspace(const ConvGeom *g, size_t chunk_bytes, int threads);
/* out = conv(inp, weight) + bias. Fast path: im2col of as many output pixels as
 * work_floats holds (work_floats >= kh·kw·C unless the conv is 1×1/1/unpadded), one GEMM
 * per chunk against the (kh·kw·C, K) kernel, each thread gathering and multiplying its own
 * share of the chunk's rows. Where conv2d_direct_eligible(g), conv2d_forward_direct instead
 * (no workspace used). bias may be NULL. */
void conv2d_forward(float *out,          /* (N, OH, OW, K) */
                    const float *inp,    /* (N, H, W, C) */
                    const float *weight, /* (kh, kw, C, K) */
                    const float *bias,   /* (K) or NULL */
                    const ConvGeom *g, float *work, size_t work_floats, int threads);
typedef struct BnStats BnStats; /* per-channel moments, see the batch norm section */
/* conv2d_forward that also adds its output rows to stats (K channels, at least `threads`
 * threads; NULL: plain conv2d_forward) while each thread's rows are in its cache: the
 * statistics of a train-mode batch norm reading out. A 1×1 conv then runs each thread's
 * rows in blocks of at least 1024 rows instead of one GEMM. */
void conv2d_forward_stats(float *out, const float *inp, const float *weight, const float *bias,
                          const ConvGeom *g, float *work, size_t work_floats, int threads,
                          BnStats *stats);
/* Whether g is a 1×1 stride-1 unpadded conv: the GEMM out = inp · weight on the input as
 * it lies. */
bool conv2d_is_pointwise(const ConvGeom *g);
/* Whether conv2d_forward and conv2d_forward_stats run g with the direct kernel of
 * conv_direct.c instead of im2col + sgemm (where the measurements in that file found it
 * faster: a short kernel and few filters). Can't fail. */
bool conv2d_direct_eligible(const ConvGeom *g);
/* Whether conv2d_forward_direct takes g at all: kh·kw·C <= 64 and K <= 64. Can't fail. */
bool conv2d_direct_fits(const ConvGeom *g);
/* conv2d_forward_stats by the direct kernel (conv2d_direct_fits(g) must hold): every output
 * pixel's K sums in vector registers, threads sharing the output rows, no workspace.
 * stats as in conv2d_forward_stats (NULL: none). conv.c calls it where
 * conv2d_direct_eligible(g); tests call it directly. */
void conv2d_forward_direct(float *out,          /* (N, OH, OW, K) */
                           const float *inp,    /* (N, H, W, C) */
                           const float *weight, /* (kh, kw, C, K) */
                           const float *bias,   /* (K) or NULL */
                           const ConvGeom *g, int threads, BnStats *stats);
/* dweight += colsᵀ·dout, dbias += Σ dout, in chunks of cols; threads share the chunk's
 * rows for im2col, the kernel's rows for dweight. The input gradient of a stride-1 conv,
 * when work_floats >= kh·kw·C·K + threads·kh·kw·K (conv2d_workspace's size is), is the
 * conv of dout with the flipped, channel-transposed kernel: im2col of dout and one GEMM
 * per block of input pixels, threads sharing the input pixels. Otherwise (stride 2, or a
 * smaller workspace) dinp += col2im(dout·weightᵀ) chunk by chunk, the chunk holding both
 * cols and dcols; threads share the input pixels for col2im. work_floats >= 2·kh·kw·C.
 * accumulate false overwrites dinp instead of adding to it (a first writer: the buffer's
 * old contents are never read); the gradient rule above is accumulate true. */
void conv2d_backward(float *dinp,         /* (N, H, W, C) or NULL */
                     float *dweight,      /* (kh, kw, C, K) */
                     float *dbias,        /* (K) or NULL */
                     const float *dout,   /* (N, OH, OW, K) */
                     const float *inp,    /* (N, H, W, C) */
                     const float *weight, /* (kh, kw, C, K) */
                     const ConvGeom *g, float *work, size_t work_floats, int threads,
                     bool accumulate);
/* Direct seven-loop convolution, double accumulation. */
void conv2d_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                          const ConvGeom *g);
void conv2d_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, const ConvGeom *g);

/* ---- depthwise conv2d (depthwise.c) --------------------------------------------------- */

/* Workspace floats depthwise_backward needs for its per-thread partial sums (at most
 * `threads` threads). */
size_t depthwise_workspace(const ConvGeom *g, int threads);
/* Direct loops over (n, oy) rows, vectorized over channels; g->K = C·m. */
void depthwise_forward(float *out,          /* (N, OH, OW, K) */
                       const float *inp,    /* (N, H, W, C) */
                       const float *weight, /* (kh, kw, C, m) */
                       const float *bias,   /* (K) or NULL */
                       const ConvGeom *g, int threads);
/* depthwise_forward that also adds its output to stats (K channels, at least `threads`
 * threads; NULL: plain depthwise_forward), the statistics of a train-mode batch norm reading
 * out: the vector kernels sum their channels from registers as they store them (streaming
 * stores included); each thread's first row, which fixes its shift, and the channels of the
 * general loops are summed from the cache right after they are written. */
void depthwise_forward_stats(float *out, const float *inp, const float *weight,
                             const float *bias, const ConvGeom *g, int threads,
                             BnStats *stats);
/* Weight gradients reduce per-thread partials (work, depthwise_workspace floats); the input
 * gradient gathers, so no two threads write the same pixel. dweight and dbias always
 * accumulate. accumulate = true: dinp += the input gradient; false: dinp = the input
 * gradient, every element written (0 where no output reads the pixel) and none read, so
 * dinp may hold anything beforehand (NaN included). */
void depthwise_backward(float *dinp,         /* (N, H, W, C) or NULL */
                        float *dweight,      /* (kh, kw, C, m) */
                        float *dbias,        /* (K) or NULL */
                        const float *dout,   /* (N, OH, OW, K) */
                        const float *inp,    /* (N, H, W, C) */
                        const float *weight, /* (kh, kw, C, m) */
                        const ConvGeom *g, float *work, int threads, bool accumulate);
void depthwise_forward_naive(float *out, const float *inp, const float *weight,
                             const float *bias, const ConvGeom *g);
void depthwise_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const ConvGeom *g);

/* ---- batch normalization (batchnorm.c) ------------------------------------------------ */

/* Keras 3 BatchNormalization over the last axis. Train mode normalizes with the batch mean
 * and the biased batch variance (Σ(x-mean)²/M):
 *   out = gamma · (x - mean) / sqrt(var + eps) + beta
 * and the moving statistics follow batchnorm_update_moving. Inference mode uses the moving
 * statistics instead. */

/* Workspace floats every batchnorm_* kernel needs with at most `threads` threads
 * (per-thread sums, held as doubles, and per-channel coefficients). */
size_t batchnorm_workspace(int C, int threads);
/* Train-mode forward. Saves mean, invstd = 1/sqrt(var + eps) and the biased var (C) for
 * the backward and the moving-average update. */
void batchnorm_forward_train(float *out,         /* (M, C) */
                             float *mean,        /* (C) out: batch mean */
                             float *invstd,      /* (C) out: 1 / sqrt(var + eps) */
                             float *var,         /* (C) out: biased batch variance */
                             const float *inp,   /* (M, C) */
                             const float *gamma, /* (C) */
                             const float *beta,  /* (C) */
                             int M, int C, float eps, float *work, int threads);
/* Inference-mode forward with the moving statistics. */
void batchnorm_forward_infer(float *out, const float *inp, const float *gamma,
                             const float *beta, const float *moving_mean,
                             const float *moving_var, int M, int C, float eps, float *work,
                             int threads);
/* Keras 3: moving = moving · momentum + batch · (1 - momentum), for the mean and for the
 * biased variance. */
void batchnorm_update_moving(float *moving_mean, float *moving_var, const float *mean,
                             const float *var, int C, float momentum);
/* Train-mode backward (the batch statistics depend on the input):
 *   dbeta += Σ dout, dgamma += Σ dout·xhat,
 *   dinp += gamma·invstd · (dout - Σdout/M - xhat·Σ(dout·xhat)/M). */
void batchnorm_backward_train(float *dinp,         /* (M, C) or NULL */
                              float *dgamma,       /* (C) */
                              float *dbeta,        /* (C) */
                              const float *dout,   /* (M, C) */
                              const float *inp,    /* (M, C) */
                              const float *gamma,  /* (C) */
                              const float *mean,   /* (C) saved by the forward */
                              const float *invstd, /* (C) saved by the forward */
                              int M, int C, float *work, int threads);
/* Inference-mode backward: statistics are constants, dinp += dout·gamma/sqrt(mvar + eps). */
void batchnorm_backward_infer(float *dinp, float *dgamma, float *dbeta, const float *dout,
                              const float *inp, const float *gamma, const float *moving_mean,
                              const float *moving_var, int M, int C, float eps, float *work,
                              int threads);
/* What a batch norm computes together with the layers after it, as the net runs a batch
 * norm whose ReLU/ReLU6 (and, in a residual block, the add before it) work in place on
 * its output: out = min(max(BN(x) + res, 0), hi), one pass over the rows. */
typedef struct {
    float hi;            /* INFINITY for ReLU, 6 for ReLU6 */
    const float *res;    /* forward: (M, C) added before the clip (the residual), or NULL */
    /* backward: */
    const float *out;    /* (M, C) the fused output; dout is passed where 0 < out < hi */
    const float *beta;   /* (C) the forward's beta, used when out is NULL: with no residual
                            the mask is then 0 < v < hi, v = BN(x) recomputed bit for bit
                            as the forward did, so the backward reads dout and x only */
    float *dres;         /* (M, C) receives that masked gradient too, or NULL */
    bool accumulate;     /* dinp += (true) or = (false: the buffer is not read) */
    bool res_accumulate; /* the same for dres */
} BnFused;

/* Per-channel moments of an (M, C) tensor, gathered by the layer that writes it while its
 * rows are still in cache, for the train-mode batch norm that reads it (which then skips its
 * own pass over the input). Thread t of the producer's team adds its rows with
 * bnstats_rows(s, t, ...) in any number of calls; it keeps a float shift (its first row),
 * float sums of d = x − shift over blocks of 16 rows and double sums of the blocks, so a
 * large mean does not cancel. bnstats_moments merges the per-thread partials in thread
 * order in double (each thread's mean and M2, Chan's pairwise update): deterministic for a
 * given split of the rows among threads. The memory is the caller's (bnstats_bytes). */
struct BnStats {
    int C, threads;
    unsigned char *part; /* thread t's partials at part + t·step, 64-byte aligned, in cache
                          * lines no other thread writes: Σd and Σd² of the flushed blocks
                          * (2C doubles), the current block's sums (2C floats), the shift
                          * (C floats) and the count of rows added */
    size_t step;
};

/* Bytes bnstats_init needs for C channels and at most `threads` producer threads. */
size_t bnstats_bytes(int C, int threads);
/* Lays s out over mem (bnstats_bytes(C, threads) bytes, any alignment) and empties it.
 * Can't fail. */
void bnstats_init(BnStats *s, void *mem, int C, int threads);
/* Thread t adds n rows (n, C). Threads touch only their own partials: safe to call
 * concurrently for different t. Can't fail. */
void bnstats_rows(BnStats *s, int t, const float *rows, size_t n);
/* For a producer that sums rows in its own kernels, once thread t has added a first row
 * with bnstats_rows (which fixes its shift): the shift (C floats) to subtract, and the
 * float sums (2C: Σd, then Σd²) to add rows' d = x − shift to. bnstats_commit(s, t, n)
 * then counts the n rows so added and moves the float sums into the double ones: commit
 * every few dozen rows, as a float sum of many rows loses precision. Can't fail. */
const float *bnstats_shift(const BnStats *s, int t);
float *bnstats_sums(BnStats *s, int t);
void bnstats_commit(BnStats *s, int t, size_t n);
/* mean (C) and biased variance (C) of all rows added, in double. Can't fail. */
void bnstats_moments(const BnStats *s, double *mean, double *var);

/* The batch-norm kernels with f (NULL: the plain kernels above). dout is then the
 * gradient of the fused output. stats (C channels) holds the moments of inp gathered by
 * its producer, used instead of a pass over inp; NULL: computed here. */
void batchnorm_fused_forward_train(float *out, float *mean, float *invstd, float *var,
                                   const float *inp, const float *gamma, const float *beta,
                                   int M, int C, float eps, const BnFused *f,
                                   const BnStats *stats, float *work, int threads);
void batchnorm_fused_forward_infer(float *out, const float *inp, const float *gamma,
                                   const float *beta, const float *moving_mean,
                                   const float *moving_var, int M, int C, float eps,
                                   const BnFused *f, float *work, int threads);
void batchnorm_fused_backward_train(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                    const float *inp, const float *gamma, const float *mean,
                                    const float *invstd, int M, int C, const BnFused *f,
                                    float *work, int threads);
void batchnorm_fused_backward_infer(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                    const float *inp, const float *gamma,
                                    const float *moving_mean, const float *moving_var, int M,
                                    int C, float eps, const BnFused *f, float *work,
                                    int threads);
/* References: two-pass statistics in double. */
void batchnorm_forward_train_naive(float *out, float *mean, float *invstd, float *var,
                                   const float *inp, const float *gamma, const float *beta,
                                   int M, int C, float eps);
void batchnorm_backward_train_naive(float *dinp, float *dgamma, float *dbeta,
                                    const float *dout, const float *inp, const float *gamma,
                                    const float *mean, const float *invstd, int M, int C);

/* ---- activations (activation.c) ------------------------------------------------------ */

/* out = f(inp) elementwise: relu max(x,0); relu6 min(max(x,0),6); tanh; sigmoid
 * 1/(1+e^-x); softsign x/(1+|x|). out may equal inp. */
void activation_forward(float *out,       /* (n) */
                        const float *inp, /* (n) */
                        size_t n, Activation act, int threads);
/* dinp += dout · f'(x), with f'(x) written in terms of the output y = f(x) so that the
 * forward may run in place: relu and relu6 pass the gradient where 0 < y (< 6), as TF does
 * (zero at the kinks); tanh 1 - y², sigmoid y(1 - y), softsign (1 - |y|)². */
void activation_backward(float *dinp,       /* (n) */
                         const float *dout, /* (n) */
                         const float *out,  /* (n) */
                         size_t n, Activation act, int threads);
const char *activation_name(Activation act);

/* ---- pooling (pool.c) ----------------------------------------------------------------- */

/* Max pool: padded positions never win (TF). The backward routes each output's gradient
 * to the first maximum of its window in row-major order. */
void maxpool_forward(float *out,       /* (N, OH, OW, C) */
                     const float *inp, /* (N, H, W, C) */
                     const ConvGeom *g, int threads);
void maxpool_backward(float *dinp,       /* (N, H, W, C) */
                      const float *dout, /* (N, OH, OW, C) */
                      const float *inp,  /* (N, H, W, C) */
                      const float *out,  /* (N, OH, OW, C) */
                      const ConvGeom *g, int threads);
/* Average pool: divides by the number of input pixels inside the window (padding is not
 * counted, as TF's "same" average pool). */
void avgpool_forward(float *out,       /* (N, OH, OW, C) */
                     const float *inp, /* (N, H, W, C) */
                     const ConvGeom *g, int threads);
void avgpool_backward(float *dinp,       /* (N, H, W, C) */
                      const float *dout, /* (N, OH, OW, C) */
                      const ConvGeom *g, int threads);
void maxpool_forward_naive(float *out, const float *inp, const ConvGeom *g);
void maxpool_backward_naive(float *dinp, const float *dout, const float *inp, const ConvGeom *g);
void avgpool_forward_naive(float *out, const float *inp, const ConvGeom *g);
void avgpool_backward_naive(float *dinp, const float *dout, const ConvGeom *g);
/* Global average pool over the HW = H·W pixels of each image. */
void gap_forward(float *out,       /* (N, C) */
                 const float *inp, /* (N, HW, C) */
                 int N, int HW, int C, int threads);
void gap_backward(float *dinp,       /* (N, HW, C) */
                  const float *dout, /* (N, C) */
                  int N, int HW, int C, int threads);

/* ---- dense (dense.c) ------------------------------------------------------------------ */

void dense_forward(float *out,          /* (N, K) */
                   const float *inp,    /* (N, D) */
                   const float *weight, /* (D, K) */
                   const float *bias,   /* (K) or NULL */
                   int N, int D, int K, int threads);
void dense_backward(float *dinp,         /* (N, D) or NULL */
                    float *dweight,      /* (D, K) */
                    float *dbias,        /* (K) or NULL */
                    const float *dout,   /* (N, K) */
                    const float *inp,    /* (N, D) */
                    const float *weight, /* (D, K) */
                    int N, int D, int K, int threads);
void dense_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int D, int K);
void dense_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int D, int K);

/* ---- dropout (dropout.c) -------------------------------------------------------------- */

/* Inverted dropout: mask[i] = 0 with probability rate (rng_uniform(rng) < rate), else
 * 1/(1 - rate); draws n uniforms in order. */
void dropout_make_mask(float *mask, /* (n) */
                       size_t n, float rate, Rng *rng);
void dropout_forward(float *out,        /* (n) = inp · mask */
                     const float *inp,  /* (n) */
                     const float *mask, /* (n) */
                     size_t n, int threads);
void dropout_backward(float *dinp,       /* (n) += dout · mask */
                      const float *dout, /* (n) */
                      const float *mask, /* (n) */
                      size_t n, int threads);

/* ---- zero padding (zeropad.c) --------------------------------------------------------- */

/* out (N, H+top+bottom, W+left+right, C) = inp surrounded by zeros. */
void zeropad_forward(float *out,       /* (N, OH, OW, C) */
                     const float *inp, /* (N, H, W, C) */
                     int N, int H, int W, int C, int top, int bottom, int left, int right,
                     int threads);
void zeropad_backward(float *dinp,       /* (N, H, W, C) */
                      const float *dout, /* (N, OH, OW, C) */
                      int N, int H, int W, int C, int top, int bottom, int left, int right,
                      int threads);

/* ---- residual add, copy, bias (add.c) ------------------------------------------------- */

/* out may equal a or b. */
void add_forward(float *out,     /* (n) = a + b */
                 const float *a, /* (n) */
                 const float *b, /* (n) */
                 size_t n, int threads);
/* da += dout, db += dout (da and db must not alias; the net adds a twice-used input
 * with add_inplace instead). */
void add_backward(float *da,         /* (n) */
                  float *db,         /* (n) */
                  const float *dout, /* (n) */
                  size_t n, int threads);
/* dst += src: the backward of flatten, dropout off and each input of an add. */
void add_inplace(float *dst,       /* (n) */
                 const float *src, /* (n) */
                 size_t n, int threads);
/* out (rows, K) += bias (K) on every row. */
void bias_forward_add(float *out, const float *bias, size_t rows, int K, int threads);
/* dbias (K) += Σ over rows of dout (rows, K), summed in double: per thread over a
 * contiguous share of the rows, then in thread order (the same bits for a thread count). */
void bias_backward_add(float *dbias, const float *dout, size_t rows, int K, int threads);

/* ---- loss (loss.c) -------------------------------------------------------------------- */

/* Softmax cross-entropy, Keras sum_over_batch_size: loss = Σ_i w_i · (-log p_i[y_i]) / N
 * with w_i = class_weights[y_i] (1 when class_weights is NULL). The softmax subtracts
 * each row's maximum and runs in double. Returns the loss. */
double softmax_xent_forward(float *probs,         /* (N, K) out */
                            const float *logits,  /* (N, K) */
                            const int *labels,    /* (N), each in [0, K) */
                            const float *class_weights, /* (K) or NULL */
                            int N, int K);
/* dlogits += w_i · (probs - onehot(y_i)) / N. */
void softmax_xent_backward(float *dlogits,      /* (N, K) */
                           const float *probs,  /* (N, K) */
                           const int *labels,   /* (N) */
                           const float *class_weights, /* (K) or NULL */
                           int N, int K);

#endif
