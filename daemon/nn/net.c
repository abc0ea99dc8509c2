/* net.c — the network graph: builders with shape inference, parameter block, arena, passes.
 *
 * Memory, all allocated by net_finalize and never inside a pass:
 *   param block  every parameter's data, then the trainable ones' gradients, then their
 *                velocities, in parameter order, each tensor 64-byte aligned;
 *   arena        the layers' out and dout buffers, (batch, h, w, c) each, shared between
 *                layers whose lifetimes do not overlap (plan_buffers), plus the softmax
 *                probabilities and the loss gradient (batch, K);
 *   state        what a layer keeps from its forward for its backward: batch-norm mean,
 *                1/std and variance (C each), dropout masks (batch, h, w, c);
 *   workspace    scratch shared by all layers, sized for the largest need: im2col chunks,
 *                per-thread partial sums.
 * A training step holds every activation the backward reads until that backward has run,
 * and an activation gradient only from its first consumer's backward to its own, so most
 * buffers can serve several layers: plan_buffers lays out the step as a timeline and packs
 * the buffers' lifetimes into few slots. Activations and the residual add run in place over
 * an input nothing else reads. After a forward, Layer.out is still valid for the input,
 * every activation, the output and every layer whose output the backward reads; the rest
 * may already hold a later layer's output (net_set_observer sees every one as it is made).
 *
 * Some layers run inside another's kernel: a batch norm computes the ReLU/ReLU6 (and in a
 * residual block the add before it) working in place after it (plan_fusion), and a
 * convolution applies a zero padding read only by convolutions itself (plan_padding).
 *
 * Passes run layers in build order, which is a topological order because a builder can
 * only name layers that already exist. In the backward, the first write into an activation
 * gradient overwrites it where the kernel can (batch norm, conv2d, depthwise, add, flatten)
 * and the buffer is cleared just before it otherwise, so every later consumer adds. */
#include "nn/net.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/gemm.h"
#include "nn/layers.h"

/* im2col bytes per thread and chunk (cols; the backward holds as much again of dcols):
 * each thread's share of a chunk stays in its core's L2 (1 MB on the machines measured,
 * see bench/layers_bench --chunk-kb). */
#define CONV_CHUNK_BYTES_PER_THREAD (512u << 10)
#define ALIGN_FLOATS 16

typedef struct {
    ConvGeom geom;               /* conv, depthwise, pools; geom.N is the capacity */
    float *mean, *invstd, *var;  /* batch norm: statistics of the last train forward (C) */
    float *mask;                 /* dropout: (batch, h, w, c) */
    bool reaches_output;         /* the output depends on this layer */
    bool needs_grad;             /* some parameter is at or before this layer: its
                                    activation gradient must be computed */
    bool kept;                   /* out still holds this layer's output after the forward */
    /* fusion (plan_buffers): a batch norm that runs the layers after it in its kernel */
    int fused_act;               /* batch norm: the ReLU/ReLU6 it runs, else 0 */
    int fused_add;               /* batch norm: the residual add it runs before it, else 0 */
    int fused_res;               /* batch norm: the add's other input */
    int fused_by;                /* the batch norm running this activation or add, or the
                                    first convolution applying this folded padding; else 0 */
    bool folded;                 /* a zero padding its consumers apply themselves */
    int stats_bn;                /* conv or depthwise: the batch norm reading its output,
                                    which in train mode takes its moments from this layer
                                    (plan_stats); or 0 */
    int src[2];                  /* the layers whose out the kernels read: in[], or the
                                    input of a folded padding */
} LayerAux;

struct Net {
    char name[64];
    int batch;                   /* capacity */
    Layer *layers;
    LayerAux *aux;
    int n_layers, cap_layers;
    Param *params;
    int n_params, cap_params;
    char error[256];
    bool failed, finalized;
    int threads;
    bool profiling;
    NetObserver observer;
    void *observer_ctx;
    NetStopFn stop;              /* asked between layers; NULL: never stops */
    void *stop_ctx;
    uint64_t dropout_state;
    float *param_block;
    float *arena;
    float *state;
    float *work;
    void *raw[4];                /* what free() takes for the four blocks above */
    size_t work_floats;
    void *stats_mem;             /* (stats_bytes) the moments a conv gathers for its BN */
    size_t stats_bytes;
    BnStats stats;               /* laid over stats_mem by the conv that fills it */
    int stats_for;               /* the batch norm stats was filled for in this forward, 0 */
    size_t bytes;          /* everything net_finalize allocated, for net_memory_bytes */
    float *probs, *dlogits;      /* (batch, K) in the arena */
    bool *cleared;               /* (n_layers) scratch of net_backward */
    int n;                       /* batch of the last forward, 0 before any */
    NetMode mode;
    bool have_loss;
};

static int fail(Net *net, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(Net *net, const char *fmt, ...)
{
    if (!net->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(net->error, sizeof net->error, fmt, ap);
        va_end(ap);
        net->failed = true;
    }
    return -1;
}

static size_t align_up(size_t n)
{
    return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

/* A zeroed, 64-byte aligned block of n floats; *raw receives what free() takes. calloc
 * maps large blocks lazily, so untouched parts of the arena cost no memory. */
static float *alloc_floats(size_t n, void **raw)
{
    *raw = calloc(align_up(n ? n : 1) + ALIGN_FLOATS, sizeof(float));
    if (!*raw)
        return NULL;
    return (float *)(((uintptr_t)*raw + 63) & ~(uintptr_t)63);
}

static size_t layer_size(const Layer *l)
{
    return (size_t)l->h * l->w * l->c;
}

/* ---- creation and builders ---------------------------------------------------------- */

Net *net_create(const char *name, int batch, int h, int w, int c)
{
    Net *net = calloc(1, sizeof *net);
    if (!net)
        return NULL;
    snprintf(net->name, sizeof net->name, "%s", name ? name : "net");
    net->batch = batch;
    net->threads = 1;
    net->cap_layers = 64;
    net->cap_params = 128;
    net->layers = calloc(net->cap_layers, sizeof *net->layers);
    net->aux = calloc(net->cap_layers, sizeof *net->aux);
    net->params = calloc(net->cap_params, sizeof *net->params);
    if (!net->layers || !net->aux || !net->params) {
        net_free(net);
        return NULL;
    }
    if (batch < 1 || h < 1 || w < 1 || c < 1)
        fail(net, "input shape (%d, %d, %d, %d) must be positive", batch, h, w, c);
    Layer *in = &net->layers[0];
    in->type = LAYER_INPUT;
    snprintf(in->name, sizeof in->name, "input");
    in->in[0] = in->in[1] = -1;
    in->h = h, in->w = w, in->c = c;
    net->n_layers = 1;
    return net;
}

void net_free(Net *net)
{
    if (!net)
        return;
    free(net->layers);
    free(net->aux);
    free(net->params);
    for (int i = 0; i < 4; i++)
        free(net->raw[i]);
    free(net->stats_mem);
    free(net->cleared);
    free(net);
}

const char *net_error(const Net *net)
{
    return net->failed ? net->error : NULL;
}

static bool valid_input(Net *net, int in, const char *name)
{
    if (in < 0 || in >= net->n_layers) {
        fail(net, "%s: input layer %d does not exist", name ? name : "?", in);
        return false;
    }
    return true;
}

/* Appends a layer after checking the builder state and the name; returns its index. */
static int add_layer(Net *net, LayerType type, const char *name, int in0, int in1, int h, int w,
                     int c)
{
    if (net->failed)
        return -1;
    if (net->finalized)
        return fail(net, "%s: the net is already finalized", name ? name : "?");
    if (!name || !name[0] || strlen(name) >= sizeof net->layers[0].name)
        return fail(net, "layer %d: a name of 1 to %zu characters is required", net->n_layers,
                    sizeof net->layers[0].name - 1);
    if (net_find_layer(net, name) >= 0)
        return fail(net, "%s: duplicate layer name", name);
    if (h < 1 || w < 1 || c < 1)
        return fail(net, "%s: output shape (%d, %d, %d) is empty", name, h, w, c);
    if (net->n_layers == net->cap_layers) {
        int cap = net->cap_layers * 2;
        Layer *l = realloc(net->layers, cap * sizeof *l);
        if (l)
            net->layers = l;
        LayerAux *a = realloc(net->aux, cap * sizeof *a);
        if (a)
            net->aux = a;
        if (!l || !a)
            return fail(net, "%s: out of memory", name);
        net->cap_layers = cap;
    }
    int i = net->n_layers++;
    Layer *l = &net->layers[i];
    memset(l, 0, sizeof *l);
    memset(&net->aux[i], 0, sizeof net->aux[i]);
    l->type = type;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->in[0] = in0, l->in[1] = in1;
    l->h = h, l->w = w, l->c = c;
    l->param_first = net->n_params;
    return i;
}

static const char *param_kind_name(ParamKind kind)
{
    switch (kind) {
    case PARAM_KERNEL: return "kernel";
    case PARAM_DEPTHWISE_KERNEL: return "depthwise_kernel";
    case PARAM_BIAS: return "bias";
    case PARAM_GAMMA: return "gamma";
    case PARAM_BETA: return "beta";
    case PARAM_MOVING_MEAN: return "moving_mean";
    case PARAM_MOVING_VARIANCE: return "moving_variance";
    }
    return "?";
}

/* Adds a parameter of the layer just added; dims are its Keras shape. */
static int add_param(Net *net, int layer, ParamKind kind, bool trainable, int ndim, int d0,
                     int d1, int d2, int d3)
{
    if (net->n_params == net->cap_params) {
        int cap = net->cap_params * 2;
        Param *p = realloc(net->params, cap * sizeof *p);
        if (!p)
            return fail(net, "%s: out of memory", net->layers[layer].name);
        net->params = p;
        net->cap_params = cap;
    }
    Param *p = &net->params[net->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s/%s", net->layers[layer].name, param_kind_name(kind));
    p->kind = kind;
    p->layer = layer;
    p->ndim = ndim;
    int dims[4] = {d0, d1, d2, d3};
    p->size = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = dims[i];
        p->size *= (size_t)dims[i];
    }
    p->trainable = trainable;
    net->layers[layer].n_params++;
    return 0;
}

int net_conv2d(Net *net, int in, const char *name, int filters, int kh, int kw, int stride,
               Padding padding, bool use_bias)
{
    if (net->failed || !valid_input(net, in, name))
        return -1;
    const Layer *x = &net->layers[in];
    ConvGeom g;
    if (filters < 1 || kh < 1 || kw < 1 || stride < 1)
        return fail(net, "%s: filters, kernel size and stride must be positive", name);
    if (shape_conv_geom(&g, net->batch, x->h, x->w, x->c, filters, kh, kw, stride, padding))
        return fail(net, "%s: a %dx%d kernel does not fit the %dx%d input", name, kh, kw, x->h,
                    x->w);
    int cin = x->c;
    int i = add_layer(net, LAYER_CONV2D, name, in, -1, g.OH, g.OW, filters);
    if (i < 0)
        return -1;
    Layer *l = &net->layers[i];
    l->kh = kh, l->kw = kw, l->stride = stride, l->padding = padding;
    l->filters = filters, l->use_bias = use_bias;
    net->aux[i].geom = g;
    add_param(net, i, PARAM_KERNEL, true, 4, kh, kw, cin, filters);
    if (use_bias)
        add_param(net, i, PARAM_BIAS, true, 1, filters, 0, 0, 0);
    return net->failed ? -1 : i;
}

int net_depthwise(Net *net, int in, const char *name, int kh, int kw, int stride,
                  int depth_multiplier, Padding padding, bool use_bias)
{
    if (net->failed || !valid_input(net, in, name))
        return -1;
    const Layer *x = &net->layers[in];
    ConvGeom g;
    if (depth_multiplier < 1 || kh < 1 || kw < 1 || stride < 1)
        return fail(net, "%s: multiplier, kernel size and stride must be positive", name);
    int C = x->c, K = x->c * depth_multiplier;
    if (shape_conv_geom(&g, net->batch, x->h, x->w, C, K, kh, kw, stride, padding))
        return fail(net, "%s: a %dx%d kernel does not fit the %dx%d input", name, kh, kw, x->h,
                    x->w);
    int i = add_layer(net, LAYER_DEPTHWISE, name, in, -1, g.OH, g.OW, K);
    if (i < 0)
        return -1;
    Layer *l = &net->layers[i];
    l->kh = kh, l->kw = kw, l->stride = stride, l->padding = padding;
    l->filters = depth_multiplier, l->use_bias = use_bias;
    net->aux[i].geom = g;
    add_param(net, i, PARAM_DEPTHWISE_KERNEL, true, 4, kh, kw, C, depth_multiplier);
    if (use_bias)
        add_param(net, i, PARAM_BIAS, true, 1, K, 0, 0, 0);
    return net->failed ? -1 : i;
}

int net_zeropad(Net *net, int in, const char *name, int top, int bottom, int left, int right)
{
    if (net->failed || !valid_input(net, in, name))
        return -1;
    if (top < 0 || bottom < 0 || left < 0 || right < 0)
        return fail(net, "%s: padding must not be negative", name);
    const Layer *x = &net->layers[in];
    int i = add_layer(net, LAYER_ZEROPAD, name, in, -1, x->h + top + bottom,
                      x->w + left + right, x->c);
    if (i < 0)
        return -1;
    Layer *l = &net->layers[i];
    l->pad[0] = top, l->pad[1] = bottom, l->pad[2] = left, l->pad[3] = right;
    return i;
}

int net_batchnorm(Net *net, int in, const char *name, float momentum, float epsilon)
{
    if (net->failed || !valid_input(net, in, name))
        return -1;
    if (!(momentum >= 0 && momentum <= 1) || !(epsilon > 0))
        return fail(net, "%s: momentum must be in [0, 1] and epsilon positive", name);
    const Layer *x = &net->layers[in];
    int C = x->c;
    int i = add_layer(net, LAYER_BATCHNORM, name, in, -1, x->h, x->w, C);
    if (i < 0)
        return -1;
    net->layers[i].momentum = momentum;
    net->layers[i].epsilon = epsilon;
    add_param(net, i, PARAM_GAMMA, true, 1, C, 0, 0, 0);
    add_param(net, i, PARAM_BETA, true, 1, C, 0, 0, 0);
    add_param(net, i, PARAM_MOVING_MEAN, false, 1, C, 0, 0, 0);
    add_param(net, i, PARAM_MOVING_VARIANCE, false, 1, C, 0, 0, 0);
    return net->failed ? -1 : i;
}

int net_activation(Net *net, int in, const char *name, Activation act)
{
    if (net->failed || !valid_input(net, in, name))
        return -1;
    if (act < ACT_RELU || act > ACT_SOFTSIGN)
        return fail(net, "%s: unknown activation %d", name, (int)act);
    const Layer *x = &net->layers[in];
    int i = add_layer(net, LAYER_ACTIVATION, name, in, -1, x->h, x->w, x->c);
    if (i >= 0)
        net->layers[i].act = act;
    return i;
}

int net_add(Net *net, int a, int b, const char *name)
{
    if (net->failed || !valid_input(net, a, name) || !valid_input(net, b, name))
        return -1;
    const Layer *x = &net->layers[a], *y = &net->layers[b];
    if (x->h != y->h || x->w != y->w || x->c != y->c)
        return fail(net, "%s: shapes (%d, %d, %d) of %s and (%d, %d, %d) of %s differ", name,
                    x->h, x->w, x->c, x->name, y->h, y->w, y->c, y->name);
    return add_layer(net, LAYER_ADD, name, a, b, x->h, x->w, x->c);
}

static int add_pool(Net *net, LayerType type, int in, const char *name, int k, int stride,
                    Padding padding)
{
    if (net->failed || !valid_input(net, in, name))
        return -1;
    const Layer *x = &net->layers[in];
    ConvGeom g;
    if (k < 1 || stride < 1)
        return fail(net, "%s: pool size and stride must be positive", name);
    if (shape_conv_geom(&g, net->batch, x->h, x->w, x->c, x->c, k, k, stride, padding))
        return fail(net, "%s: a %dx%d pool does not fit the %dx%d input", name, k, k, x->h,
                    x->w);
    int i = add_layer(net, type, name, in, -1, g.OH, g.OW, x->c);
    if (i < 0)
        return -1;
    Layer *l = &net->layers[i];
    l->kh = l->kw = k, l->stride = stride, l->padding = padding;
    net->aux[i].geom = g;
    return i;
}

int net_maxpool(Net *net, int in, const char *name, int k, int stride, Padding padding)
{
    return add_pool(net, LAYER_MAXPOOL, in, name, k, stride, padding);
}

int net_avgpool(Net *net, int in, const char *name, int k, int stride, Padding padding)
{
    return add_pool(net, LAYER_AVGPOOL, in, name, k, stride, padding);
}

int net_gap(Net *net, int in, const char *name, bool keepdims)
{
    if (net->failed || !valid_input(net, in, name))
        return -1;
    int i = add_layer(net, LAYER_GAP, name, in, -1, 1, 1, net->layers[in].c);
    if (i >= 0)
        net->layers[i].keepdims = keepdims;
    return i;
}

int net_dense(Net *net, int in, const char *name, int units, bool use_bias)
{
    if (net->failed || !valid_input(net, in, name))
        return -1;
    const Layer *x = &net->layers[in];
    if (x->h != 1 || x->w != 1)
        return fail(net, "%s: dense needs a flat input, got (%d, %d, %d) from %s (add a "
                    "flatten or global average pool)", name, x->h, x->w, x->c, x->name);
    if (units < 1)
        return fail(net, "%s: units must be positive", name);
    int D = x->c;
    int i = add_layer(net, LAYER_DENSE, name, in, -1, 1, 1, units);
    if (i < 0)
        return -1;
    net->layers[i].filters = units;
    net->layers[i].use_bias = use_bias;
    add_param(net, i, PARAM_KERNEL, true, 2, D, units, 0, 0);
    if (use_bias)
        add_param(net, i, PARAM_BIAS, true, 1, units, 0, 0, 0);
    return net->failed ? -1 : i;
}

int net_dropout(Net *net, int in, const char *name, float rate)
{
    if (net->failed || !valid_input(net, in, name))
        return -1;
    if (!(rate >= 0 && rate < 1))
        return fail(net, "%s: rate must be in [0, 1)", name);
    const Layer *x = &net->layers[in];
    int i = add_layer(net, LAYER_DROPOUT, name, in, -1, x->h, x->w, x->c);
    if (i >= 0)
        net->layers[i].rate = rate;
    return i;
}

int net_flatten(Net *net, int in, const char *name)
{
    if (net->failed || !valid_input(net, in, name))
        return -1;
    const Layer *x = &net->layers[in];
    return add_layer(net, LAYER_FLATTEN, name, in, -1, 1, 1, x->h * x->w * x->c);
}

/* ---- memory plan -------------------------------------------------------------------- */

#define NO_BUFFER ((size_t)-1)

/* Whether a layer's backward reads its input's forward output, or its own. */
static bool backward_reads_input(LayerType t)
{
    return t == LAYER_CONV2D || t == LAYER_DEPTHWISE || t == LAYER_BATCHNORM ||
           t == LAYER_DENSE || t == LAYER_MAXPOOL;
}

static bool backward_reads_output(LayerType t)
{
    return t == LAYER_ACTIVATION || t == LAYER_MAXPOOL;
}

/* reaches_output and needs_grad of every layer; a layer's backward runs when both hold. */
static void mark_dependencies(Net *net)
{
    net->aux[net->n_layers - 1].reaches_output = true;
    for (int i = net->n_layers - 1; i > 0; i--)
        if (net->aux[i].reaches_output)
            for (int k = 0; k < 2; k++)
                if (net->layers[i].in[k] >= 0)
                    net->aux[net->layers[i].in[k]].reaches_output = true;
    /* whose activation gradient anything needs: layers with parameters and their consumers */
    for (int i = 1; i < net->n_layers; i++) {
        LayerAux *x = &net->aux[i];
        x->needs_grad = net->layers[i].n_params > 0;
        for (int k = 0; k < 2; k++)
            if (net->layers[i].in[k] >= 0 && net->aux[net->layers[i].in[k]].needs_grad)
                x->needs_grad = true;
    }
}

static bool runs_backward(const Net *net, int i)
{
    return i > 0 && net->aux[i].reaches_output && net->aux[i].needs_grad &&
           !net->aux[i].folded;
}

/* Whether layer c's kernels read layer j's output. */
static bool consumes(const Net *net, int c, int j)
{
    const LayerAux *x = &net->aux[c];
    return !x->folded && (x->src[0] == j || x->src[1] == j);
}

/* Folds every zero padding read only by convolutions (conv2d, depthwise) into them: they
 * read the padding's input with the padding added to their own geometry, whose kernels
 * treat taps outside the input as zeros. The padding then has no buffers and does not run.
 * (A max pool after a padding keeps it: there the padded zeros take part in the max.) */
static void plan_padding(Net *net)
{
    for (int i = 0; i < net->n_layers; i++) {
        net->aux[i].src[0] = net->layers[i].in[0];
        net->aux[i].src[1] = net->layers[i].in[1];
        net->aux[i].folded = false;
    }
    for (int p = 1; p < net->n_layers; p++) {
        const Layer *pad = &net->layers[p];
        if (pad->type != LAYER_ZEROPAD)
            continue;
        int n = 0, first = 0;
        bool convs_only = true;
        for (int c = p + 1; c < net->n_layers; c++) {
            const Layer *l = &net->layers[c];
            if (l->in[0] != p && l->in[1] != p)
                continue;
            n++;
            first = first ? first : c;
            convs_only = convs_only && l->in[1] < 0 &&
                         (l->type == LAYER_CONV2D || l->type == LAYER_DEPTHWISE);
        }
        if (!n || !convs_only)
            continue;
        const Layer *x = &net->layers[pad->in[0]];
        for (int c = p + 1; c < net->n_layers; c++) {
            if (net->layers[c].in[0] != p)
                continue;
            ConvGeom *g = &net->aux[c].geom;
            g->H = x->h, g->W = x->w;
            g->pad_top += pad->pad[0], g->pad_left += pad->pad[2];
            net->aux[c].src[0] = pad->in[0];
        }
        net->aux[p].folded = true;
        net->aux[p].fused_by = first;
    }
}

typedef struct {
    size_t size;      /* floats */
    int birth, death; /* first and last step that touches it, inclusive */
    int owner;        /* 2·layer for an out buffer (of a group's first layer), 2·layer + 1
                         for a dout */
} PlanValue;

static int by_birth(const void *a, const void *b)
{
    const PlanValue *x = a, *y = b;
    if (x->birth != y->birth)
        return (x->birth > y->birth) - (x->birth < y->birth);
    return (x->owner > y->owner) - (x->owner < y->owner);
}

/* Last step that reads the out buffer of the in-place group ending at layer m. */
static int out_death(const Net *net, int m)
{
    const int L = net->n_layers;
    const LayerType t = net->layers[m].type;
    if (m == 0 || m == L - 1 || t == LAYER_ACTIVATION)
        return 2 * L + 1; /* read after the pass: the probe, the loss */
    int death = m;
    for (int c = m + 1; c < L; c++) {
        const Layer *lc = &net->layers[c];
        if (!consumes(net, c, m))
            continue;
        if (c > death)
            death = c;
        if (runs_backward(net, c) && backward_reads_input(lc->type) && 2 * L - c > death)
            death = 2 * L - c;
    }
    if (runs_backward(net, m) && backward_reads_output(t) && 2 * L - m > death)
        death = 2 * L - m;
    return death;
}

/* Assigns every value a slot: greedy in order of birth, the smallest free slot that fits,
 * else the largest free one (grown), else a new one. Returns the slots' total floats and
 * each value's offset in it (offset[owner]). */
static size_t pack_slots(PlanValue *v, int n, size_t *offset, int *slot_free, int *slot_of,
                         size_t *slot_size)
{
    int n_slots = 0;
    qsort(v, (size_t)n, sizeof *v, by_birth);
    for (int a = 0; a < n; a++) {
        int best = -1, largest = -1;
        for (int sl = 0; sl < n_slots; sl++) {
            if (slot_free[sl] >= v[a].birth)
                continue;
            if (slot_size[sl] >= v[a].size && (best < 0 || slot_size[sl] < slot_size[best]))
                best = sl;
            if (largest < 0 || slot_size[sl] > slot_size[largest])
                largest = sl;
        }
        if (best < 0)
            best = largest;
        if (best < 0) {
            best = n_slots++;
            slot_size[best] = 0;
        }
        if (slot_size[best] < v[a].size)
            slot_size[best] = v[a].size;
        slot_free[best] = v[a].death;
        slot_of[a] = best;
    }
    size_t at = 0;
    for (int sl = 0; sl < n_slots; sl++) {
        size_t sz = align_up(slot_size[sl]);
        slot_size[sl] = at; /* from here on: the slot's base */
        at += sz;
    }
    for (int a = 0; a < n; a++)
        offset[v[a].owner] = slot_size[slot_of[a]];
    return at;
}

static bool is_relu(const Layer *l)
{
    return l->type == LAYER_ACTIVATION && (l->act == ACT_RELU || l->act == ACT_RELU6);
}

/* Whether layer j has an output and a gradient of its own: not a batch norm that runs the
 * layers after it, nor the residual add it runs (plan_fusion). */
static bool own_buffers(const Net *net, int j)
{
    const LayerAux *x = &net->aux[j];
    return !x->fused_act && !x->folded && !(x->fused_by && net->layers[j].type == LAYER_ADD);
}

/* The single consumer of layer j that works in place on it, or 0. */
static int in_place_successor(const Net *net, const int *root, int j)
{
    for (int c = j + 1; c < net->n_layers; c++)
        if (consumes(net, c, j))
            return root[c] == root[j] ? c : 0;
    return 0;
}

/* Which batch norms run the layers after them (aux.fused_*): a ReLU/ReLU6 in place on the
 * batch norm, or an add in place on it followed by a ReLU/ReLU6 in place on the add, whose
 * other input is computed before the batch norm and is not its input. */
static void plan_fusion(Net *net, const int *root)
{
    for (int i = 0; i < net->n_layers; i++) {
        LayerAux *x = &net->aux[i];
        x->fused_act = x->fused_add = x->fused_res = 0;
        if (!x->folded)
            x->fused_by = 0;
    }
    for (int b = 1; b < net->n_layers; b++) {
        if (net->layers[b].type != LAYER_BATCHNORM)
            continue;
        int c = in_place_successor(net, root, b);
        if (c && is_relu(&net->layers[c])) {
            net->aux[b].fused_act = c;
            net->aux[c].fused_by = b;
            continue;
        }
        if (!c || net->layers[c].type != LAYER_ADD)
            continue;
        const int *in = net->aux[c].src;
        int res = in[0] == b ? in[1] : in[0];
        int r = in_place_successor(net, root, c);
        if (res >= b || res == net->aux[b].src[0] || !r || !is_relu(&net->layers[r]))
            continue;
        net->aux[b].fused_act = r;
        net->aux[b].fused_add = c;
        net->aux[b].fused_res = res;
        net->aux[c].fused_by = net->aux[r].fused_by = b;
    }
}

/* Lays out every layer's out and dout. The steps of a training pass form a timeline: the
 * forward of layer i is step i, its backward step 2L - i (L layers). A buffer lives from
 * the step that first writes it to the last step that reads it, and buffers whose lives do
 * not overlap share a slot. An activation or add runs in place over an input that feeds
 * nothing else and whose own backward does not read it; such a group shares one buffer.
 * A batch norm whose ReLU/ReLU6 (after a residual add) runs in place on it computes them
 * in one kernel (plan_fusion) and reads the activation's gradient directly, so neither it
 * nor the add needs a dout of its own.
 * Returns offset[2·i] (out) and offset[2·i + 1] (dout, NO_BUFFER when no backward writes
 * it) in floats from the arena's start, with *total the floats the slots need; NULL when
 * out of memory. */
static size_t *plan_buffers(Net *net, size_t *total)
{
    const int L = net->n_layers, last = L - 1;
    const size_t B = (size_t)net->batch;
    size_t *offset = malloc(sizeof *offset * 2 * (size_t)L);
    int *consumers = calloc((size_t)L, sizeof *consumers);
    int *root = malloc(sizeof *root * (size_t)L), *tail = malloc(sizeof *tail * (size_t)L);
    PlanValue *v = malloc(sizeof *v * 2 * (size_t)L);
    int *slot_ints = malloc(sizeof *slot_ints * 4 * (size_t)L);
    size_t *slot_size = malloc(sizeof *slot_size * 2 * (size_t)L);
    if (!offset || !consumers || !root || !tail || !v || !slot_ints || !slot_size) {
        free(offset);
        offset = NULL;
        goto done;
    }
    for (int i = 0; i < L; i++)
        for (int k = 0; k < 2 && !net->aux[i].folded; k++)
            if (net->aux[i].src[k] >= 0)
                consumers[net->aux[i].src[k]]++;
    for (int i = 0; i < L; i++) { /* in-place groups: root[i] first layer, tail[root] last */
        const Layer *l = &net->layers[i];
        const int *in = net->aux[i].src;
        root[i] = tail[i] = i;
        if (l->type != LAYER_ACTIVATION && l->type != LAYER_ADD)
            continue;
        /* an add takes over the input computed last: a residual branch's batch norm */
        int later = l->type == LAYER_ADD && in[1] > in[0];
        for (int k = 0; k < 2; k++) {
            int x = in[later ? 1 - k : k];
            if (x > 0 && consumers[x] == 1 && !backward_reads_output(net->layers[x].type)) {
                root[i] = root[x];
                tail[root[i]] = i;
                break;
            }
        }
    }
    plan_fusion(net, root);
    int n = 0;
    for (int r = 0; r < L; r++)
        net->aux[r].kept = false;
    for (int r = 0; r < L; r++)
        if (root[r] == r && !net->aux[r].folded) {
            int death = out_death(net, tail[r]);
            net->aux[tail[r]].kept = death > last; /* the group's final value survives */
            v[n++] = (PlanValue){B * layer_size(&net->layers[r]), r, death, 2 * r};
        }
    for (int j = 1; j < L; j++) {
        const LayerAux *x = &net->aux[j];
        if (!runs_backward(net, j) || !own_buffers(net, j))
            continue; /* a fused batch norm reads its activation's gradient */
        int first = j; /* the consumer whose backward writes the gradient first */
        for (int c = j + 1; c < L; c++)
            if (consumes(net, c, j) && runs_backward(net, c))
                first = c;
        int last_read = x->fused_by ? x->fused_by : j;
        v[n++] = (PlanValue){B * layer_size(&net->layers[j]), 2 * L - first, 2 * L - last_read,
                             2 * j + 1};
    }
    for (int i = 0; i < 2 * L; i++)
        offset[i] = NO_BUFFER;
    *total = pack_slots(v, n, offset, slot_ints, slot_ints + 2 * L, slot_size);
    for (int i = 0; i < L; i++)
        offset[2 * i] = offset[2 * root[i]];
done:
    free(consumers), free(root), free(tail), free(v), free(slot_ints), free(slot_size);
    return offset;
}

/* ---- finalize ------------------------------------------------------------------------ */

/* Workspace floats layer i needs with `threads` threads. */
static size_t layer_workspace(const Net *net, int i, int threads)
{
    const Layer *l = &net->layers[i];
    const ConvGeom *g = &net->aux[i].geom;
    switch (l->type) {
    case LAYER_CONV2D: {
        size_t kk = (size_t)g->kh * g->kw * g->C;
        size_t chunk = (size_t)threads * CONV_CHUNK_BYTES_PER_THREAD;
        /* at least 256 output pixels per chunk so packing the kernel is amortized */
        if (chunk < 256 * kk * sizeof(float))
            chunk = 256 * kk * sizeof(float);
        return conv2d_workspace(g, chunk, threads);
    }
    case LAYER_DEPTHWISE:
        return depthwise_workspace(g, threads);
    case LAYER_BATCHNORM:
        return batchnorm_workspace(l->c, threads);
    default:
        return 0;
    }
}

/* Which convolutions gather the moments of their output for the batch norm reading it
 * (aux.stats_bn): every conv or depthwise conv that is a batch norm's input. Its rows are
 * then summed while the layer has just written them, and the batch norm's train forward reads x once
 * (to write y) instead of twice. The net holds one set of moments: a batch norm uses them
 * only when its own conv was the last to fill them (stats_for). */
static void plan_stats(Net *net)
{
    for (int i = 0; i < net->n_layers; i++)
        net->aux[i].stats_bn = 0;
    for (int b = 1; b < net->n_layers; b++) {
        int j = net->aux[b].src[0];
        if (net->layers[b].type == LAYER_BATCHNORM && j > 0 &&
            (net->layers[j].type == LAYER_CONV2D || net->layers[j].type == LAYER_DEPTHWISE) &&
            !net->aux[j].stats_bn)
            net->aux[j].stats_bn = b;
    }
}

/* Bytes the gathered moments need with `threads` threads (the widest such conv). */
static size_t net_stats_bytes(const Net *net, int threads)
{
    size_t need = 0;
    for (int i = 1; i < net->n_layers; i++)
        if (net->aux[i].stats_bn) {
            size_t b = bnstats_bytes(net->layers[i].c, threads);
            if (b > need)
                need = b;
        }
    return need;
}

static size_t net_workspace(const Net *net, int threads)
{
    size_t need = 0;
    for (int i = 1; i < net->n_layers; i++) {
        size_t w = layer_workspace(net, i, threads);
        if (w > need)
            need = w;
    }
    return need;
}

int net_finalize(Net *net, int threads)
{
    if (net->failed)
        return -1;
    if (net->finalized)
        return fail(net, "the net is already finalized");
    if (net->n_layers < 2)
        return fail(net, "the net has no layers");
    const Layer *last = &net->layers[net->n_layers - 1];
    if (last->h != 1 || last->w != 1)
        return fail(net, "the output layer %s is (%d, %d, %d), not flat logits", last->name,
                    last->h, last->w, last->c);
    if (threads < 1)
        threads = 1;
    const size_t B = (size_t)net->batch;

    /* parameter block: data | gradients | velocities */
    size_t n_data = 0, n_grad = 0;
    for (int i = 0; i < net->n_params; i++) {
        n_data += align_up(net->params[i].size);
        if (net->params[i].trainable)
            n_grad += align_up(net->params[i].size);
    }
    net->param_block = alloc_floats(n_data + 2 * n_grad, &net->raw[0]);
    mark_dependencies(net);
    plan_padding(net);
    plan_stats(net);
    /* arena: the planned activation buffers, then probabilities and loss gradient */
    size_t n_plan = 0;
    size_t *offset = plan_buffers(net, &n_plan);
    size_t n_arena = n_plan + 2 * align_up(B * last->c);
    size_t n_state = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const Layer *l = &net->layers[i];
        if (l->type == LAYER_BATCHNORM)
            n_state += 3 * align_up(l->c);
        else if (l->type == LAYER_DROPOUT)
            n_state += align_up(B * layer_size(l));
    }
    net->arena = alloc_floats(n_arena, &net->raw[1]);
    net->state = alloc_floats(n_state, &net->raw[2]);
    net->work_floats = net_workspace(net, threads);
    net->work = alloc_floats(net->work_floats, &net->raw[3]);
    net->stats_bytes = net_stats_bytes(net, threads);
    net->stats_mem = net->stats_bytes ? malloc(net->stats_bytes) : NULL;
    net->cleared = calloc(net->n_layers, sizeof *net->cleared);
    net->bytes = (n_data + 2 * n_grad + n_arena + n_state + net->work_floats) * sizeof(float) +
                 net->stats_bytes;
    if (!offset || !net->param_block || !net->arena || !net->state || !net->work ||
        !net->cleared || (net->stats_bytes && !net->stats_mem)) {
        free(offset);
        for (int i = 0; i < 4; i++) {
            free(net->raw[i]);
            net->raw[i] = NULL;
        }
        free(net->stats_mem);
        free(net->cleared);
        net->param_block = net->arena = net->state = net->work = NULL;
        net->stats_mem = NULL;
        net->cleared = NULL;
        return fail(net, "out of memory for %zu MB of parameters, activations and workspace",
                    (n_data + 2 * n_grad + n_arena + n_state + net->work_floats) *
                        sizeof(float) >> 20);
    }

    float *data = net->param_block, *grad = data + n_data, *vel = grad + n_grad;
    for (int i = 0; i < net->n_params; i++) {
        Param *p = &net->params[i];
        p->data = data;
        data += align_up(p->size);
        if (p->trainable) {
            p->grad = grad;
            p->velocity = vel;
            grad += align_up(p->size);
            vel += align_up(p->size);
        }
        if (p->kind == PARAM_GAMMA || p->kind == PARAM_MOVING_VARIANCE)
            for (size_t k = 0; k < p->size; k++)
                p->data[k] = 1.0f;
    }
    float *s = net->state;
    for (int i = 0; i < net->n_layers; i++) {
        Layer *l = &net->layers[i];
        l->out = offset[2 * i] == NO_BUFFER ? NULL : net->arena + offset[2 * i];
        l->dout = offset[2 * i + 1] == NO_BUFFER ? NULL : net->arena + offset[2 * i + 1];
        LayerAux *x = &net->aux[i];
        if (l->type == LAYER_BATCHNORM) {
            size_t c = align_up(l->c);
            x->mean = s, x->invstd = s + c, x->var = s + 2 * c;
            s += 3 * c;
        } else if (l->type == LAYER_DROPOUT) {
            x->mask = s;
            s += align_up(B * layer_size(l));
        }
    }
    free(offset);
    net->probs = net->arena + n_plan;
    net->dlogits = net->probs + align_up(B * last->c);
    net->threads = threads;
    gemm_single_threaded();
    net->finalized = true;
    return 0;
}

/* ---- accessors ----------------------------------------------------------------------- */

int net_batch_capacity(const Net *net)
{
    return net->batch;
}

int net_n_layers(const Net *net)
{
    return net->n_layers;
}

const Layer *net_layer(const Net *net, int i)
{
    assert(i >= 0 && i < net->n_layers);
    return &net->layers[i];
}

int net_find_layer(const Net *net, const char *name)
{
    for (int i = 0; i < net->n_layers; i++)
        if (strcmp(net->layers[i].name, name) == 0)
            return i;
    return -1;
}

int net_n_params(const Net *net)
{
    return net->n_params;
}

Param *net_param(Net *net, int i)
{
    assert(i >= 0 && i < net->n_params);
    return &net->params[i];
}

const Param *net_param_const(const Net *net, int i)
{
    assert(i >= 0 && i < net->n_params);
    return &net->params[i];
}

Param *net_find_param(Net *net, const char *name)
{
    for (int i = 0; i < net->n_params; i++)
        if (strcmp(net->params[i].name, name) == 0)
            return &net->params[i];
    return NULL;
}

size_t net_count_params(const Net *net, bool trainable)
{
    size_t n = 0;
    for (int i = 0; i < net->n_params; i++)
        if (net->params[i].trainable == trainable)
            n += net->params[i].size;
    return n;
}

int net_threads(const Net *net)
{
    return net->threads;
}

void net_set_threads(Net *net, int threads)
{
    if (threads < 1)
        threads = 1;
    if (net->finalized) {
        size_t need = net_workspace(net, threads);
        size_t stats_need = net_stats_bytes(net, threads);
        void *raw = NULL, *stats = NULL;
        float *w = need > net->work_floats ? alloc_floats(need, &raw) : NULL;
        if (stats_need > net->stats_bytes)
            stats = malloc(stats_need);
        if ((need > net->work_floats && !w) || (stats_need > net->stats_bytes && !stats)) {
            free(raw);
            free(stats);
            return; /* keep the current thread count and workspace */
        }
        if (w) {
            free(net->raw[3]);
            net->raw[3] = raw;
            net->work = w;
            net->work_floats = need;
        }
        if (stats) {
            free(net->stats_mem);
            net->stats_mem = stats;
            net->stats_bytes = stats_need;
        }
    }
    net->threads = threads;
}

void net_set_profiling(Net *net, bool on)
{
    net->profiling = on;
}

void net_set_stop(Net *net, NetStopFn fn, void *ctx)
{
    net->stop = fn;
    net->stop_ctx = ctx;
}

bool net_stop_requested(const Net *net)
{
    return net->stop && net->stop(net->stop_ctx);
}

void net_set_observer(Net *net, NetObserver fn, void *ctx)
{
    net->observer = fn;
    net->observer_ctx = ctx;
}

bool net_output_kept(const Net *net, int i)
{
    assert(i >= 0 && i < net->n_layers);
    return net->aux[i].kept;
}

int net_fused_into(const Net *net, int i)
{
    assert(i >= 0 && i < net->n_layers);
    return net->aux[i].fused_by ? net->aux[i].fused_by : -1;
}

int net_bn_batch_stats(const Net *net, int i, const float **mean, const float **var)
{
    if (i < 0 || i >= net->n_layers || net->layers[i].type != LAYER_BATCHNORM)
        return -1;
    *mean = net->aux[i].mean;
    *var = net->aux[i].var;
    return 0;
}

void net_seed_dropout(Net *net, uint64_t seed)
{
    net->dropout_state = seed;
}

uint64_t net_dropout_state(const Net *net)
{
    return net->dropout_state;
}

const float *net_logits(const Net *net)
{
    return net->layers[net->n_layers - 1].out;
}

int net_classes(const Net *net)
{
    return net->layers[net->n_layers - 1].c;
}

const float *net_probs(const Net *net)
{
    return net->probs;
}

/* ---- passes -------------------------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *param_data(Net *net, const Layer *l, int k)
{
    return net->params[l->param_first + k].data;
}

static float *param_grad(Net *net, const Layer *l, int k)
{
    return net->params[l->param_first + k].grad;
}

/* The upper clip of the ReLU (INFINITY) or ReLU6 (6) batch norm i runs fused. */
static float fused_clip(const Net *net, int i)
{
    return net->layers[net->aux[i].fused_act].act == ACT_RELU6 ? 6.0f : INFINITY;
}

/* The moments conv or depthwise layer i gathers for its batch norm in this forward, emptied
 * and marked as filled for that batch norm; NULL where it gathers none. */
static BnStats *producer_stats(Net *net, int i)
{
    const LayerAux *aux = &net->aux[i];
    if (!aux->stats_bn || net->mode == NET_INFERENCE)
        return NULL;
    bnstats_init(&net->stats, net->stats_mem, net->layers[i].c, net->threads);
    net->stats_for = aux->stats_bn;
    return &net->stats;
}

static void forward_layer(Net *net, int i, Rng *dropout_rng)
{
    Layer *l = &net->layers[i];
    LayerAux *aux = &net->aux[i];
    if (aux->folded)
        return; /* its consumers pad */
    const Layer *x = &net->layers[aux->src[0]];
    const int n = net->n, T = net->threads;
    const size_t count = (size_t)n * layer_size(l);
    ConvGeom g = aux->geom;
    g.N = n;
    switch (l->type) {
    case LAYER_INPUT:
        break;
    case LAYER_CONV2D:
        conv2d_forward_stats(l->out, x->out, param_data(net, l, 0),
                             l->use_bias ? param_data(net, l, 1) : NULL, &g, net->work,
                             net->work_floats, T, producer_stats(net, i));
        break;
    case LAYER_DEPTHWISE:
        depthwise_forward_stats(l->out, x->out, param_data(net, l, 0),
                                l->use_bias ? param_data(net, l, 1) : NULL, &g, T,
                                producer_stats(net, i));
        break;
    case LAYER_ZEROPAD:
        zeropad_forward(l->out, x->out, n, x->h, x->w, x->c, l->pad[0], l->pad[1], l->pad[2],
                        l->pad[3], T);
        break;
    case LAYER_BATCHNORM: {
        int M = n * l->h * l->w;
        float *gamma = param_data(net, l, 0), *beta = param_data(net, l, 1);
        float *mm = param_data(net, l, 2), *mv = param_data(net, l, 3);
        BnFused f = {0}, *fp = NULL;
        if (aux->fused_act) {
            f.hi = fused_clip(net, i);
            f.res = aux->fused_add ? net->layers[aux->fused_res].out : NULL;
            fp = &f;
        }
        if (net->mode == NET_INFERENCE) {
            batchnorm_fused_forward_infer(l->out, x->out, gamma, beta, mm, mv, M, l->c,
                                          l->epsilon, fp, net->work, T);
        } else {
            /* the moments its conv gathered, when that conv ran last for it */
            const BnStats *st = net->stats_for == i ? &net->stats : NULL;
            net->stats_for = 0;
            batchnorm_fused_forward_train(l->out, aux->mean, aux->invstd, aux->var, x->out,
                                          gamma, beta, M, l->c, l->epsilon, fp, st, net->work,
                                          T);
            if (net->mode == NET_TRAIN)
                batchnorm_update_moving(mm, mv, aux->mean, aux->var, l->c, l->momentum);
        }
        break;
    }
    case LAYER_ACTIVATION:
        if (!aux->fused_by) /* else its batch norm has applied it */
            activation_forward(l->out, x->out, count, l->act, T);
        break;
    case LAYER_ADD:
        if (!aux->fused_by)
            add_forward(l->out, x->out, net->layers[aux->src[1]].out, count, T);
        break;
    case LAYER_MAXPOOL:
        maxpool_forward(l->out, x->out, &g, T);
        break;
    case LAYER_AVGPOOL:
        avgpool_forward(l->out, x->out, &g, T);
        break;
    case LAYER_GAP:
        gap_forward(l->out, x->out, n, x->h * x->w, x->c, T);
        break;
    case LAYER_DENSE:
        dense_forward(l->out, x->out, param_data(net, l, 0),
                      l->use_bias ? param_data(net, l, 1) : NULL, n, x->c, l->c, T);
        break;
    case LAYER_DROPOUT:
        if (net->mode == NET_TRAIN) {
            dropout_make_mask(aux->mask, count, l->rate, dropout_rng);
            dropout_forward(l->out, x->out, aux->mask, count, T);
        } else {
            memcpy(l->out, x->out, count * sizeof(float));
        }
        break;
    case LAYER_FLATTEN:
        memcpy(l->out, x->out, count * sizeof(float));
        break;
    }
}

int net_forward(Net *net, const float *x, int n, NetMode mode)
{
    assert(net->finalized);
    if (n < 1 || n > net->batch)
        return -1;
    net->n = n;
    net->mode = mode;
    net->have_loss = false;
    net->stats_for = 0;
    Layer *in = &net->layers[0];
    memcpy(in->out, x, (size_t)n * layer_size(in) * sizeof(float));
    if (net->observer)
        net->observer(net->observer_ctx, net, 0, false);
    Rng dropout_rng;
    rng_seed(&dropout_rng, net->dropout_state);
    for (int i = 1; i < net->n_layers; i++) {
        if (net_stop_requested(net))
            return NET_STOPPED;
        double t0 = net->profiling ? now_seconds() : 0;
        forward_layer(net, i, &dropout_rng);
        if (net->profiling)
            net->layers[i].fwd_seconds += now_seconds() - t0;
        if (net->observer && own_buffers(net, i))
            net->observer(net->observer_ctx, net, i, false);
    }
    /* Each training forward consumes one dropout stream; the next one derives from it. */
    if (mode == NET_TRAIN)
        net->dropout_state = rng_derive(net->dropout_state, 1);
    return 0;
}

float net_loss(Net *net, const int *labels, const float *class_weights)
{
    assert(net->n > 0);
    const int n = net->n, K = net_classes(net);
    double loss = softmax_xent_forward(net->probs, net_logits(net), labels, class_weights, n, K);
    memset(net->dlogits, 0, sizeof(float) * n * K);
    softmax_xent_backward(net->dlogits, net->probs, labels, class_weights, n, K);
    net->have_loss = true;
    return (float)loss;
}

/* The gradient buffer of input k of layer l; NULL when no parameter lies at or before
 * that input (the net's input, a padding of it), so nothing needs it. With fresh NULL the
 * buffer is cleared on first use, for a kernel that accumulates; otherwise *fresh tells
 * whether this is the first write, which the caller then makes by overwriting. */
static float *input_grad_fresh(Net *net, const Layer *l, int k, bool *fresh)
{
    int j = net->aux[l - net->layers].src[k];
    if (j <= 0 || !net->aux[j].needs_grad)
        return NULL;
    Layer *x = &net->layers[j];
    if (fresh)
        *fresh = !net->cleared[j];
    else if (!net->cleared[j])
        memset(x->dout, 0, sizeof(float) * net->n * layer_size(x));
    net->cleared[j] = true;
    return x->dout;
}

static float *input_grad(Net *net, const Layer *l, int k)
{
    return input_grad_fresh(net, l, k, NULL);
}

/* Input k's gradient += src (count floats), a copy when it is the first write. */
static void pass_grad(Net *net, const Layer *l, int k, const float *src, size_t count)
{
    bool fresh;
    float *d = input_grad_fresh(net, l, k, &fresh);
    if (d && fresh)
        memcpy(d, src, sizeof(float) * count);
    else if (d)
        add_inplace(d, src, count, net->threads);
}

/* Backward of batch norm i together with the layers it runs (plan_fusion): reads the
 * activation's gradient and the batch norm's input, writes the batch norm's input gradient
 * and, for a residual add, the gradient of the add's other input. The ReLU's mask comes
 * from the input (BnFused.beta) unless a residual was added before the clip: then the
 * activation's output, which the input alone cannot give, is read for it. */
static void backward_fused_batchnorm(Net *net, int i)
{
    const LayerAux *aux = &net->aux[i];
    const Layer *l = &net->layers[i], *act = &net->layers[aux->fused_act];
    const Layer *x = &net->layers[aux->src[0]];
    int M = net->n * l->h * l->w;
    bool fresh = false, res_fresh = false;
    BnFused f = {.hi = fused_clip(net, i), .beta = param_data(net, l, 1)};
    if (aux->fused_add) {
        const Layer *add = &net->layers[aux->fused_add];
        f.dres = input_grad_fresh(net, add, net->aux[aux->fused_add].src[0] == i ? 1 : 0,
                                  &res_fresh);
        f.res_accumulate = !res_fresh;
        f.out = act->out;
    }
    float *dx = input_grad_fresh(net, l, 0, &fresh);
    f.accumulate = !fresh;
    float *gamma = param_data(net, l, 0);
    float *dgamma = param_grad(net, l, 0), *dbeta = param_grad(net, l, 1);
    if (net->mode == NET_INFERENCE)
        batchnorm_fused_backward_infer(dx, dgamma, dbeta, act->dout, x->out, gamma,
                                       param_data(net, l, 2), param_data(net, l, 3), M, l->c,
                                       l->epsilon, &f, net->work, net->threads);
    else
        batchnorm_fused_backward_train(dx, dgamma, dbeta, act->dout, x->out, gamma, aux->mean,
                                       aux->invstd, M, l->c, &f, net->work, net->threads);
}

static void backward_layer(Net *net, int i)
{
    Layer *l = &net->layers[i];
    LayerAux *aux = &net->aux[i];
    const Layer *x = &net->layers[aux->src[0]];
    const int n = net->n, T = net->threads;
    const size_t count = (size_t)n * layer_size(l);
    if (aux->fused_by)
        return; /* its batch norm does this layer's work */
    if (aux->fused_act) {
        backward_fused_batchnorm(net, i);
        return;
    }
    if (l->type == LAYER_ADD) {
        pass_grad(net, l, 0, l->dout, count);
        pass_grad(net, l, 1, l->dout, count);
        return;
    }
    if (l->type == LAYER_FLATTEN || (l->type == LAYER_DROPOUT && net->mode != NET_TRAIN)) {
        pass_grad(net, l, 0, l->dout, count);
        return;
    }
    /* a kernel that can overwrite takes its input gradient as it is on a first write (fresh);
     * the others accumulate into a cleared one */
    bool fresh = false;
    bool overwrites = l->type == LAYER_CONV2D || l->type == LAYER_DEPTHWISE;
    float *dx = overwrites ? input_grad_fresh(net, l, 0, &fresh) : input_grad(net, l, 0);
    ConvGeom g = aux->geom;
    g.N = n;
    switch (l->type) {
    case LAYER_INPUT:
    case LAYER_ADD:
    case LAYER_FLATTEN:
        break;
    case LAYER_CONV2D:
        conv2d_backward(dx, param_grad(net, l, 0), l->use_bias ? param_grad(net, l, 1) : NULL,
                        l->dout, x->out, param_data(net, l, 0), &g, net->work,
                        net->work_floats, T, !fresh);
        break;
    case LAYER_DEPTHWISE:
        depthwise_backward(dx, param_grad(net, l, 0),
                           l->use_bias ? param_grad(net, l, 1) : NULL, l->dout, x->out,
                           param_data(net, l, 0), &g, net->work, T, !fresh);
        break;
    case LAYER_ZEROPAD:
        if (dx)
            zeropad_backward(dx, l->dout, n, x->h, x->w, x->c, l->pad[0], l->pad[1], l->pad[2],
                             l->pad[3], T);
        break;
    case LAYER_BATCHNORM: {
        int M = n * l->h * l->w;
        float *gamma = param_data(net, l, 0);
        float *dgamma = param_grad(net, l, 0), *dbeta = param_grad(net, l, 1);
        if (net->mode == NET_INFERENCE)
            batchnorm_backward_infer(dx, dgamma, dbeta, l->dout, x->out, gamma,
                                     param_data(net, l, 2), param_data(net, l, 3), M, l->c,
                                     l->epsilon, net->work, T);
        else
            batchnorm_backward_train(dx, dgamma, dbeta, l->dout, x->out, gamma, aux->mean,
                                     aux->invstd, M, l->c, net->work, T);
        break;
    }
    case LAYER_ACTIVATION:
        if (dx)
            activation_backward(dx, l->dout, l->out, count, l->act, T);
        break;
    case LAYER_MAXPOOL:
        if (dx)
            maxpool_backward(dx, l->dout, x->out, l->out, &g, T);
        break;
    case LAYER_AVGPOOL:
        if (dx)
            avgpool_backward(dx, l->dout, &g, T);
        break;
    case LAYER_GAP:
        if (dx)
            gap_backward(dx, l->dout, n, x->h * x->w, x->c, T);
        break;
    case LAYER_DENSE:
        dense_backward(dx, param_grad(net, l, 0), l->use_bias ? param_grad(net, l, 1) : NULL,
                       l->dout, x->out, param_data(net, l, 0), n, x->c, l->c, T);
        break;
    case LAYER_DROPOUT:
        if (dx)
            dropout_backward(dx, l->dout, aux->mask, count, T);
        break;
    }
}

int net_backward(Net *net)
{
    assert(net->have_loss);
    const int last = net->n_layers - 1;
    memset(net->cleared, 0, sizeof(bool) * net->n_layers);
    Layer *out = &net->layers[last];
    memcpy(out->dout, net->dlogits, sizeof(float) * net->n * out->c);
    net->cleared[last] = true;
    for (int i = last; i > 0; i--) {
        if (!runs_backward(net, i))
            continue;
        if (net_stop_requested(net)) {
            net->have_loss = false;
            return NET_STOPPED;
        }
        double t0 = net->profiling ? now_seconds() : 0;
        if (net->observer && own_buffers(net, i))
            net->observer(net->observer_ctx, net, i, true);
        backward_layer(net, i);
        if (net->profiling)
            net->layers[i].bwd_seconds += now_seconds() - t0;
    }
    net->have_loss = false; /* the activations it read may now hold gradients */
    return 0;
}

void net_zero_grad(Net *net)
{
    for (int i = 0; i < net->n_params; i++) {
        Param *p = &net->params[i];
        if (p->grad)
            memset(p->grad, 0, sizeof(float) * p->size);
    }
}

size_t net_memory_bytes(const Net *net)
{
    return net->bytes;
}
