/* probe.c — layer statistics of weights, activations and gradients on the probe batch. */
#include "train/probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/models.h"

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
    if (row->health.dead_units > 0)
        row->flags |= PROBE_FLAG_DEAD;
    if (row->health.saturated_frac > 0.1)
        row->flags |= PROBE_FLAG_SATURATED;
    if (row->health.nonfinite > 0)
        row->flags |= PROBE_FLAG_NONFINITE;
}

static bool is_kernel(const Param *p)
{
    return p->kind == PARAM_KERNEL || p->kind == PARAM_DEPTHWISE_KERNEL;
}

/* Rows of one mode: weights, activations (+ logits, softmax), gradients. */
static int probe_mode(Net *net, int n, ProbeMode mode, Initializer init, FanConvention conv,
                      ProbeResult *out)
{
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
        int fi, fo;
        if (init_fans(p, conv, &fi, &fo) == 0)
            row->predicted_var = init_variance(init, fi, fo);
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
    return 0;
}

int probe_run(Net *net, const float *x, const int *labels, int n, unsigned modes_mask,
              Initializer init, FanConvention conv, const float *class_weights,
              ProbeResult *out)
{
    static const struct { ProbeMode mode; NetMode net_mode; } modes[] = {
        {PROBE_MODE_TRAIN, NET_TRAIN_PROBE},
        {PROBE_MODE_INFERENCE, NET_INFERENCE},
    };
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        if (!(modes_mask & (1u << modes[m].mode)))
            continue;
        int rc = net_forward(net, x, n, modes[m].net_mode);
        if (rc < 0)
            return rc;
        net_loss(net, labels, class_weights);
        net_zero_grad(net);
        rc = net_backward(net);
        if (rc == 0)
            rc = probe_mode(net, n, modes[m].mode, init, conv, out);
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
