/* probe.c — layer statistics of weights, activations and gradients on the probe batch. */
#include "train/probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/models.h"
#include "train/theory.h"

/* The row's summary of x (n values); the statistics need no scratch buffer. */
static int summarize_into(ProbeRow *row, const float *x, size_t n)
{
    return stats_summarize(x, n, NULL, &row->s);
}

/* Summaries of large activations take a while each: the probe asks the net's stop
 * check (net_set_stop) before every row, so a stop request is honoured within one. */
static bool stopped(const Net *net)
{
    return net_stop_requested(net);
}

static ProbeRow *add_row(ProbeResult *r)
{
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 256;
        ProbeRow *rows = realloc(r->rows, sizeof *rows * (size_t)cap);
        if (!rows)
            return NULL;
        r->rows = rows;
        r->cap = cap;
    }
    ProbeRow *row = &r->rows[r->n++];
    memset(row, 0, sizeof *row);
    row->predicted_var = NAN;
    row->theory_var = NAN;
    row->fan_sum = NAN;
    row->init_iters = -1;
    return row;
}

static void name_row(ProbeRow *row, const Layer *layer, int index, const char *type)
{
    row->layer_index = index;
    snprintf(row->layer_name, sizeof row->layer_name, "%s", layer->name);
    snprintf(row->layer_type, sizeof row->layer_type, "%s", type);
}

static HealthKind health_kind(Activation act)
{
    switch (act) {
    case ACT_RELU: return HEALTH_RELU;
    case ACT_RELU6: return HEALTH_RELU6;
    case ACT_SIGMOID: return HEALTH_SIGMOID;
    case ACT_TANH:
    case ACT_SOFTSIGN: return HEALTH_TANH;
    }
    return HEALTH_OTHER;
}

static void set_health(ProbeRow *row, const float *x, size_t rows, int C, HealthKind kind)
{
    stats_health(x, rows, C, kind, &row->health);
    row->has_health = true;
    if (row->health.units > 0 &&
        row->health.dead_units > PROBE_DEAD_FRACTION * row->health.units)
        row->flags |= PROBE_FLAG_DEAD;
    if (row->health.saturated_frac > PROBE_SATURATED_FRACTION)
        row->flags |= PROBE_FLAG_SATURATED;
    if (row->health.nonfinite > 0)
        row->flags |= PROBE_FLAG_NONFINITE;
}

static bool is_kernel(const Param *p)
{
    return p->kind == PARAM_KERNEL || p->kind == PARAM_DEPTHWISE_KERNEL;
}

/* E[x²] of a summarized tensor. */
static double second_moment(const StatSummary *s)
{
    return s->std * s->std + s->mean * s->mean;
}

/* The theory's predictions for the rows of one mode, out->rows[first..]. */
static int add_theory(Net *net, int n, ProbeMode mode, const ProbeOptions *o, ProbeResult *out,
                      int first)
{
    int P = net_n_params(net), L = net_n_layers(net);
    double *kv = malloc(sizeof(double) * (size_t)P);
    TheoryLayer *t = malloc(sizeof(TheoryLayer) * (size_t)L);
    if (!kv || !t) {
        free(kv);
        free(t);
        return -1;
    }
    for (int i = 0; i < P; i++)
        kv[i] = o->kernel_var ? o->kernel_var[i]
                              : init_spec_variance(o->spec, net_param(net, i), o->conv);
    TheoryInput in = {.mode = mode == PROBE_MODE_TRAIN ? NET_TRAIN_PROBE : NET_INFERENCE,
                      .batch = n, .kernel_var = kv};
    for (int k = first; k < out->n; k++) {
        const ProbeRow *row = &out->rows[k];
        if (row->quantity != PROBE_ACTIVATION)
            continue;
        if (row->layer_index == 0) {
            in.in_mean = row->s.mean;
            in.in_sq = second_moment(&row->s);
        } else if (strcmp(row->layer_type, "softmax") == 0) {
            in.softmax_sq = second_moment(&row->s);
        }
    }
    int rc = theory_predict(net, &in, t);
    for (int k = first; rc == 0 && k < out->n; k++) {
        ProbeRow *row = &out->rows[k];
        int li = row->layer_index;
        if (li <= 0 || li >= L)
            continue; /* the input (measured, not predicted) and the softmax */
        if (row->quantity == PROBE_WEIGHT) {
            row->theory_var = row->predicted_var;
            row->fan_sum = t[li].n_sum;
        } else if (row->quantity == PROBE_ACTIVATION) {
            row->theory_var = t[li].var;
        } else {
            row->theory_var = t[li].kernel_grad_sq;
        }
    }
    free(kv);
    free(t);
    return 0;
}

/* Rows of one mode: weights, activations (+ logits, softmax), gradients. */
static int probe_mode(Net *net, int n, ProbeMode mode, const ProbeOptions *o, ProbeResult *out)
{
    int first = out->n;
    for (int i = 0; i < net_n_params(net); i++) {
        Param *p = net_param(net, i);
        if (!is_kernel(p))
            continue;
        const Layer *l = net_layer(net, p->layer);
        if (stopped(net))
            return NET_STOPPED;
        ProbeRow *row = add_row(out);
        if (!row)
            return -1;
        row->mode = mode;
        row->quantity = PROBE_WEIGHT;
        name_row(row, l, p->layer, model_layer_type_name(l->type));
        row->predicted_var = o->kernel_var ? o->kernel_var[i]
                                           : init_spec_variance(o->spec, p, o->conv);
        if (o->kernel_iters)
            row->init_iters = o->kernel_iters[i];
        if (summarize_into(row, p->data, p->size) < 0)
            return -1;
        if (row->s.nonfinite)
            row->flags |= PROBE_FLAG_NONFINITE;
    }
    int last = net_n_layers(net) - 1;
    for (int li = 0; li <= last; li++) {
        const Layer *l = net_layer(net, li);
        if (l->type != LAYER_ACTIVATION && l->type != LAYER_INPUT && li != last)
            continue;
        size_t rows = (size_t)n * l->h * l->w;
        if (stopped(net))
            return NET_STOPPED;
        ProbeRow *row = add_row(out);
        if (!row)
            return -1;
        row->mode = mode;
        row->quantity = PROBE_ACTIVATION;
        bool logits = li == last && l->type != LAYER_ACTIVATION;
        bool input = l->type == LAYER_INPUT;
        name_row(row, l, li, logits ? "logits" : input ? "input" : "activation");
        if (summarize_into(row, l->out, rows * l->c) < 0)
            return -1;
        set_health(row, l->out, rows, l->c,
                   logits || input ? HEALTH_OTHER : health_kind(l->act));
    }
    ProbeRow *sm = add_row(out);
    if (!sm)
        return -1;
    sm->mode = mode;
    sm->quantity = PROBE_ACTIVATION;
    sm->layer_index = last + 1;
    snprintf(sm->layer_name, sizeof sm->layer_name, "softmax");
    snprintf(sm->layer_type, sizeof sm->layer_type, "softmax");
    if (summarize_into(sm, net_probs(net), (size_t)n * net_classes(net)) < 0)
        return -1;
    set_health(sm, net_probs(net), (size_t)n, net_classes(net), HEALTH_SOFTMAX);

    for (int i = 0; i < net_n_params(net); i++) {
        Param *p = net_param(net, i);
        if (!is_kernel(p) || !p->grad)
            continue;
        const Layer *l = net_layer(net, p->layer);
        if (stopped(net))
            return NET_STOPPED;
        ProbeRow *row = add_row(out);
        if (!row)
            return -1;
        row->mode = mode;
        row->quantity = PROBE_GRADIENT;
        name_row(row, l, p->layer, model_layer_type_name(l->type));
        if (summarize_into(row, p->grad, p->size) < 0)
            return -1;
        if (row->s.nonfinite)
            row->flags |= PROBE_FLAG_NONFINITE;
    }
    return o->theory ? add_theory(net, n, mode, o, out, first) : 0;
}

int probe_run(Net *net, const float *x, const int *labels, int n, unsigned modes_mask,
              Initializer init, FanConvention conv, const float *class_weights,
              ProbeResult *out)
{
    InitSpec spec = init_spec_default(init);
    ProbeOptions o = {.modes = modes_mask, .spec = &spec, .conv = conv,
                      .class_weights = class_weights};
    return probe_run_opts(net, x, labels, n, &o, out);
}

int probe_run_opts(Net *net, const float *x, const int *labels, int n, const ProbeOptions *o,
                   ProbeResult *out)
{
    static const struct { ProbeMode mode; NetMode net_mode; } modes[] = {
        {PROBE_MODE_TRAIN, NET_TRAIN_PROBE},
        {PROBE_MODE_INFERENCE, NET_INFERENCE},
    };
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        if (!(o->modes & (1u << modes[m].mode)))
            continue;
        int rc = net_forward(net, x, n, modes[m].net_mode);
        if (rc < 0)
            return rc;
        net_loss(net, labels, o->class_weights);
        net_zero_grad(net);
        rc = net_backward(net);
        if (rc == 0)
            rc = probe_mode(net, n, modes[m].mode, o, out);
        net_zero_grad(net);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void probe_result_clear(ProbeResult *r)
{
    r->n = 0;
}

void probe_result_deinit(ProbeResult *r)
{
    free(r->rows);
    memset(r, 0, sizeof *r);
}

const char *probe_quantity_name(ProbeQuantity q)
{
    return q == PROBE_WEIGHT ? "weight" : q == PROBE_ACTIVATION ? "activation" : "gradient";
}

const char *probe_mode_name(ProbeMode m)
{
    return m == PROBE_MODE_TRAIN ? "train" : "inference";
}
