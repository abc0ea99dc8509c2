/* net.h — a network: a graph of layers built once, run forward and backward on one arena.
 *
 * Shapes: tensors are NHWC float32. N is the batch (at most the capacity given to
 * net_create), H, W, C the spatial size and channels of a layer's output. Dense and
 * flattened outputs are (N, 1, 1, C). Parameters use Keras layouts: conv kernel
 * (kh, kw, cin, cout), depthwise kernel (kh, kw, C, m), dense kernel (in, out),
 * bias/gamma/beta/moving_mean/moving_variance (C).
 *
 * Life of a net:
 *   net = net_create("mobilenet", batch, h, w, c);        layer 0 is the input
 *   x = net_conv2d(net, 0, "conv1", 32, 3, 3, 2, PAD_SAME, false); ...  build the graph
 *   net_finalize(net, threads);                            parameters and arena allocated
 *   init_net(net, ...);                                     (init.h) fill the parameters
 *   loop: net_forward, net_loss, net_zero_grad, net_backward, sgd_step (optim.h)
 *   net_free(net);
 *
 * Builder functions take the index of their input layer and return the index of the new
 * layer, or -1 when the arguments do not fit the input's shape; the first such error is
 * kept for net_error() and every later builder call returns -1 too, so a model can be
 * built without checking each call. Layer names must be unique (Keras names: "conv1",
 * "conv_dw_1_bn", "conv2_block1_1_conv"); parameters are named "<layer>/<kind>" with
 * kind one of kernel, depthwise_kernel, bias, gamma, beta, moving_mean, moving_variance.
 *
 * Gradient rule (one rule for the whole engine): net_backward clears every activation
 * gradient and then each layer's backward ACCUMULATES (+=) into the gradient of its
 * input(s) and of its parameters. net_zero_grad clears parameter gradients; call it
 * before each step's backward. Activation gradients nothing needs (of layers with no
 * parameter at or before them: the input, a zero padding of it) are not computed.
 *
 * Threads: a net's thread count is the size of the OpenMP team its kernels run in; each
 * kernel splits its GEMMs over that team and calls sgemm single-threaded. The engine
 * therefore keeps OpenBLAS at one thread, which is a process-wide setting (net_finalize,
 * net_set_threads and every conv kernel set it): code elsewhere in the process that
 * wants a multi-threaded sgemm must set it again, and not while a net runs. Results are
 * bit-identical for the same graph, seed, inputs and thread count.
 *
 * Thread-safety: a Net is used by one thread at a time; different nets are independent
 * (the engine's loops use the net's own thread count). nn/ does no I/O and no logging.
 */
#ifndef INITLAB_NN_NET_H
#define INITLAB_NN_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { PAD_VALID, PAD_SAME } Padding; /* SAME: TF rule, extra pixel bottom/right */

typedef enum {
    ACT_RELU,
    ACT_RELU6,
    ACT_TANH,
    ACT_SIGMOID,
    ACT_SOFTSIGN,
} Activation;

typedef enum {
    NET_TRAIN,       /* BN: batch statistics, moving averages updated; dropout on */
    NET_TRAIN_PROBE, /* BN: batch statistics, moving averages untouched; dropout off */
    NET_INFERENCE,   /* BN: moving statistics; dropout off */
} NetMode;

typedef enum {
    LAYER_INPUT,
    LAYER_CONV2D,
    LAYER_DEPTHWISE,
    LAYER_ZEROPAD,
    LAYER_BATCHNORM,
    LAYER_ACTIVATION,
    LAYER_ADD,
    LAYER_MAXPOOL,
    LAYER_AVGPOOL,
    LAYER_GAP,
    LAYER_DENSE,
    LAYER_DROPOUT,
    LAYER_FLATTEN,
} LayerType;

typedef enum {
    PARAM_KERNEL,
    PARAM_DEPTHWISE_KERNEL,
    PARAM_BIAS,
    PARAM_GAMMA,
    PARAM_BETA,
    PARAM_MOVING_MEAN,
    PARAM_MOVING_VARIANCE,
} ParamKind;

/* One parameter tensor. data, grad and velocity point into the net's parameter block;
 * grad and velocity are NULL for non-trainable tensors (BN moving statistics). */
typedef struct {
    char name[96];      /* "<layer>/<kind>", e.g. "conv_pw_1/kernel" */
    ParamKind kind;
    int layer;          /* index of the owning layer */
    int ndim;
    int shape[4];       /* Keras layout, see above */
    size_t size;        /* product of shape */
    bool trainable;
    float *data;        /* (size) */
    float *grad;        /* (size) or NULL */
    float *velocity;    /* (size) or NULL: SGD momentum buffer */
} Param;

/* One layer, read-only for users of the net. out/dout are (N, h, w, c) in the arena, which
 * layers share when their lifetimes do not overlap: after net_forward, out still holds the
 * layer's output when net_output_kept says so (the input, every activation, the output
 * layer and every layer whose output the backward reads), and dout is complete only at the
 * moment the observer is called for the layer's backward (see net_set_observer). */
typedef struct {
    LayerType type;
    char name[64];
    int in[2];          /* input layer indices; in[1] only for LAYER_ADD, else -1 */
    int h, w, c;        /* output shape without the batch */
    /* configuration (meaning depends on type) */
    int kh, kw, stride; /* conv, depthwise, pools */
    Padding padding;
    int pad[4];         /* zeropad: top, bottom, left, right */
    int filters;        /* conv filters, dense units, depthwise multiplier */
    bool use_bias, keepdims;
    Activation act;
    float momentum, epsilon; /* batchnorm */
    float rate;         /* dropout */
    int param_first, n_params; /* this layer's parameters: net_param(param_first + i) */
    float *out;         /* (N, h, w, c) activations of the last forward */
    float *dout;        /* (N, h, w, c) gradient during the backward; NULL when none */
    double fwd_seconds, bwd_seconds; /* accumulated when profiling is on */
} Layer;

typedef struct Net Net;

/* Creates an empty net whose layer 0 is an input of shape (batch, h, w, c); batch is the
 * capacity every later call may use up to. Returns NULL on allocation failure. */
Net *net_create(const char *name, int batch, int h, int w, int c);
/* Frees the net and everything it owns; accepts NULL. */
void net_free(Net *net);
/* The first build or finalize error as text, or NULL when there was none. */
const char *net_error(const Net *net);

/* Graph builders: see the file comment for the return convention. */
int net_conv2d(Net *net, int in, const char *name, int filters, int kh, int kw, int stride,
               Padding padding, bool use_bias);
int net_depthwise(Net *net, int in, const char *name, int kh, int kw, int stride,
                  int depth_multiplier, Padding padding, bool use_bias);
int net_zeropad(Net *net, int in, const char *name, int top, int bottom, int left, int right);
int net_batchnorm(Net *net, int in, const char *name, float momentum, float epsilon);
int net_activation(Net *net, int in, const char *name, Activation act);
int net_add(Net *net, int a, int b, const char *name);
int net_maxpool(Net *net, int in, const char *name, int k, int stride, Padding padding);
int net_avgpool(Net *net, int in, const char *name, int k, int stride, Padding padding);
int net_gap(Net *net, int in, const char *name, bool keepdims); /* (N,1,1,C) either way */
int net_dense(Net *net, int in, const char *name, int units, bool use_bias);
int net_dropout(Net *net, int in, const char *name, float rate);
int net_flatten(Net *net, int in, const char *name);

/* Allocates parameters (zeroed; BN gamma and moving_variance 1) and the activation arena
 * for the built graph; the last layer built is the output (logits, (N, 1, 1, K)).
 * threads >= 1 is the compute thread count for this net. Returns 0, or -1 with
 * net_error() set (empty graph, allocation failure). */
int net_finalize(Net *net, int threads);

int net_batch_capacity(const Net *net);
/* Bytes net_finalize reserved (parameters, gradients, velocities, activation arena,
 * workspace). The arena is zero-filled lazily by the system, so this is what the net will
 * use once it has run, not what it uses yet. 0 before net_finalize. */
size_t net_memory_bytes(const Net *net);
int net_n_layers(const Net *net);
const Layer *net_layer(const Net *net, int i);
int net_find_layer(const Net *net, const char *name); /* index or -1 */
int net_n_params(const Net *net);
Param *net_param(Net *net, int i);
const Param *net_param_const(const Net *net, int i);
Param *net_find_param(Net *net, const char *name); /* NULL when absent */
size_t net_count_params(const Net *net, bool trainable); /* sum of sizes */
int net_threads(const Net *net);
/* Changes the thread count (>= 1; see Threads above). Grows the workspace when the new
 * count needs more; if that allocation fails the old count stays. Not during a pass. */
void net_set_threads(Net *net, int threads);
void net_set_profiling(Net *net, bool on); /* fills Layer.fwd_seconds/bwd_seconds */
/* Called in net_forward right after layer i computed its out (backward false), and in
 * net_backward right before layer i's backward, when its dout is complete (backward true);
 * at those moments the buffer is the layer's own. A batch norm followed by a ReLU/ReLU6
 * that runs in place on it is computed together with the activation in one kernel: it has
 * no output or gradient of its own and is not observed (the activation is). fn NULL
 * removes the observer. */
typedef void (*NetObserver)(void *ctx, const Net *net, int layer, bool backward);
void net_set_observer(Net *net, NetObserver fn, void *ctx);
/* Whether Layer.out of layer i still holds its output once net_forward has returned. */
bool net_output_kept(const Net *net, int i);
/* The layer whose kernel computes layer i: the batch norm that runs the ReLU/ReLU6 (and
 * residual add) working in place after it, or the first convolution that applies a zero
 * padding itself (such a padding has no out or dout); -1 when layer i runs on its own. */
int net_fused_into(const Net *net, int i);
/* The batch mean and biased batch variance (C each) batch norm layer i computed in the last
 * forward in NET_TRAIN or NET_TRAIN_PROBE mode (what a train step normalizes with). Returns
 * 0, or -1 when layer i is not a batch norm. The pointers stay valid until net_free. */
int net_bn_batch_stats(const Net *net, int i, const float **mean, const float **var);
void net_seed_dropout(Net *net, uint64_t seed); /* dropout masks draw from this stream */
/* A stop check: net_forward asks it before each layer and net_backward before each
 * layer's backward, and both return NET_STOPPED at the first true answer, leaving the
 * pass unfinished (later layers' outputs and gradients are stale; a NET_TRAIN forward
 * may have moved some batch norms' moving statistics, which the caller restores if it
 * wants the step undone). It lets a caller honour a stop request within one layer's time
 * rather than a whole pass's. fn NULL removes it. fn runs on the calling thread. */
typedef bool (*NetStopFn)(void *ctx);
void net_set_stop(Net *net, NetStopFn fn, void *ctx);
/* Asks the stop check (false when none is set). */
bool net_stop_requested(const Net *net);
#define NET_STOPPED (-2)
/* The RNG state of dropout, to save and restore in checkpoints: each NET_TRAIN forward
 * draws its masks from a stream seeded with this value and then moves it on, so
 * net_seed_dropout(net, saved_state) replays the masks from where it was saved. */
uint64_t net_dropout_state(const Net *net);

/* Runs the graph on x (n, H, W, C) with n <= capacity. Returns 0, -1 if n is out of
 * range, NET_STOPPED when the stop check (net_set_stop) said so. Kept activations
 * (net_output_kept) stay in Layer.out until the next forward. */
int net_forward(Net *net, const float *x, int n, NetMode mode);
/* Logits of the last forward: (n, K), K = classes. */
const float *net_logits(const Net *net);
int net_classes(const Net *net);
/* Softmax cross-entropy of the last forward's logits against labels (n), mean over the
 * batch; class_weights (K) or NULL scale each sample's loss (Keras class_weight, still
 * divided by n). Stores softmax probabilities (net_probs) and the loss gradient that
 * net_backward starts from. Returns the loss. */
float net_loss(Net *net, const int *labels, const float *class_weights);
const float *net_probs(const Net *net); /* (n, K) softmax of the last net_loss */
/* Backpropagates the gradient of the last net_loss through the graph in the mode of the
 * last forward. Parameter gradients accumulate (see the gradient rule). Once per forward:
 * the buffers of activations it has read are reused for gradients, so another backward
 * needs another net_forward and net_loss first. Returns 0, or NET_STOPPED when the stop
 * check said so (the parameter gradients are then partial). */
int net_backward(Net *net);
void net_zero_grad(Net *net);

#endif
