/* theory.c — the paper's variance propagation, forward and backward, layer by layer (theory.h). */
#include "train/theory.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"

double theory_phi(double x)
{
    return exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
}

double theory_Phi(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

/* ---- geometry ------------------------------------------------------------------------- */

/* Average over the `out` output rows of the taps of a k-window (moved by stride, pad
 * rows before) that land inside the `in` input rows. */
static double avg_taps_1d(int in, int out, int k, int stride, int pad)
{
    double total = 0;
    for (int o = 0; o < out; o++)
        for (int t = 0; t < k; t++) {
            int at = o * stride + t - pad;
            total += at >= 0 && at < in;
        }
    return out ? total / out : 0;
}

/* In-bounds taps per output position of a windowed layer l reading layer x. */
static double avg_taps(const Layer *x, const Layer *l)
{
    int pt = 0, pl = 0;
    shape_window_out(x->h, l->kh, l->stride, l->padding, &pt);
    shape_window_out(x->w, l->kw, l->stride, l->padding, &pl);
    return avg_taps_1d(x->h, l->h, l->kh, l->stride, pt) *
           avg_taps_1d(x->w, l->w, l->kw, l->stride, pl);
}

/* ---- activations ---------------------------------------------------------------------- */

static double act_value(Activation act, double a)
{
    switch (act) {
    case ACT_RELU: return a > 0 ? a : 0;
    case ACT_RELU6: return a < 0 ? 0 : a > 6 ? 6 : a;
    case ACT_TANH: return tanh(a);
    case ACT_SIGMOID: return 1.0 / (1.0 + exp(-a));
    case ACT_SOFTSIGN: return a / (1.0 + fabs(a));
    }
    return a;
}

static double act_slope(Activation act, double a)
{
    switch (act) {
    case ACT_RELU: return a > 0;
    case ACT_RELU6: return a > 0 && a < 6;
    case ACT_TANH: { double t = tanh(a); return 1 - t * t; }
    case ACT_SIGMOID: { double s = 1.0 / (1.0 + exp(-a)); return s * (1 - s); }
    case ACT_SOFTSIGN: return 1.0 / ((1.0 + fabs(a)) * (1.0 + fabs(a)));
    }
    return 1;
}

static void act_moments(Activation act, double m, double v, double *mean, double *sq,
                        double *slope_sq);

/* E[f(a)]² for a ~ N(mu, w): the square of a channel's mean after f. */
static double act_mean_sq_given(Activation act, double mu, double w)
{
    double mean, sq, d;
    act_moments(act, mu, w, &mean, &sq, &d);
    return mean * mean;
}

/* E[f(a)], E[f(a)²] and E[f'(a)²] for a ~ N(m, v): closed forms for the ReLU family,
 * Simpson's rule over ±10 standard deviations otherwise. */
static void act_moments(Activation act, double m, double v, double *mean, double *sq,
                        double *slope_sq)
{
    double s = v > 0 ? sqrt(v) : 0;
    if (s == 0 || !isfinite(s)) {
        double f = act_value(act, m), d = act_slope(act, m);
        *mean = f, *sq = f * f, *slope_sq = d * d;
        if (!isfinite(s) && (act == ACT_RELU || act == ACT_RELU6))
            *mean = *sq = INFINITY, *slope_sq = 0.5;
        return;
    }
    if (act == ACT_RELU || act == ACT_RELU6) {
        double hi = act == ACT_RELU6 ? 6.0 : INFINITY;
        double al = -m / s, be = (hi - m) / s;
        double Pa = theory_Phi(al), Pb = isfinite(be) ? theory_Phi(be) : 1.0;
        double fa = theory_phi(al), fb = isfinite(be) ? theory_phi(be) : 0.0;
        double dP = Pb - Pa;
        double e1 = m * dP + s * (fa - fb);
        double e2 = (m * m + v) * dP + s * (m * fa - (isfinite(hi) ? (m + hi) * fb : 0));
        if (isfinite(hi)) {
            e1 += hi * (1 - Pb);
            e2 += hi * hi * (1 - Pb);
        }
        *mean = e1, *sq = e2, *slope_sq = dP;
        return;
    }
    enum { STEPS = 400 };
    double h = 20.0 / STEPS, e1 = 0, e2 = 0, e3 = 0;
    for (int i = 0; i <= STEPS; i++) {
        double z = -10.0 + i * h, w = (i == 0 || i == STEPS) ? 1 : (i % 2 ? 4 : 2);
        double p = theory_phi(z) * w, a = m + s * z, f = act_value(act, a),
               d = act_slope(act, a);
        e1 += p * f, e2 += p * f * f, e3 += p * d * d;
    }
    *mean = e1 * h / 3, *sq = e2 * h / 3, *slope_sq = e3 * h / 3;
}

/* The within-channel variance after f: channels have means μ ~ N(m, b) and within-channel
 * variance w; E_c[Var(f(a) | μ)] = E[f²] − E_μ[E[f | μ]²], the outer expectation by
 * Simpson's rule. sq is E[f²] over the whole tensor (act_moments with v = b + w). */
static double act_within(Activation act, double m, double b, double w, double sq)
{
    if (!(b > 1e-12 * (w > 0 ? w : 1)) || !isfinite(b))
        return sq - act_mean_sq_given(act, m, w);
    enum { STEPS = 200 };
    double sb = sqrt(b), h = 16.0 / STEPS, e = 0;
    for (int i = 0; i <= STEPS; i++) {
        double z = -8.0 + i * h, wt = (i == 0 || i == STEPS) ? 1 : (i % 2 ? 4 : 2);
        double g = act_mean_sq_given(act, m + sb * z, w);
        e += wt * theory_phi(z) * g;
    }
    return sq - e * h / 3;
}

/* Moments of the maximum of K independent draws of f(a), a ~ N(m, v) (f the identity
 * when rectify is false, ReLU when true): ∫ g(x) d[F(x)^K] by Simpson's rule. */
static void max_moments(double m, double v, bool rectify, double K, double *mean, double *sq)
{
    double s = v > 0 ? sqrt(v) : 0;
    if (s == 0 || !isfinite(s) || K <= 1) {
        double f = rectify && m < 0 ? 0 : m;
        if (K <= 1 && s > 0) { /* one draw: the distribution itself */
            double d;
            if (rectify)
                act_moments(ACT_RELU, m, v, mean, sq, &d);
            else
                *mean = m, *sq = m * m + v;
            return;
        }
        *mean = f, *sq = f * f + (isfinite(s) ? 0 : INFINITY);
        return;
    }
    enum { STEPS = 2000 };
    double lo = rectify ? fmax(0.0, m - 12 * s) : m - 12 * s, hi = m + 12 * s;
    double h = (hi - lo) / STEPS, e1 = 0, e2 = 0;
    for (int i = 0; i <= STEPS; i++) {
        double x = lo + i * h, z = (x - m) / s, w = (i == 0 || i == STEPS) ? 1 : (i % 2 ? 4 : 2);
        double dens = K * pow(theory_Phi(z), K - 1) * theory_phi(z) / s * w;
        e1 += dens * x, e2 += dens * x * x;
    }
    *mean = e1 * h / 3, *sq = e2 * h / 3;
}

/* ---- parameters --------------------------------------------------------------------- */

static const float *param(const Net *net, const Layer *l, int k)
{
    return net_param_const(net, l->param_first + k)->data;
}

/* E[b] and E[b²] of a layer's bias (0, 0 without one). */
static void bias_moments(const Net *net, const Layer *l, double *mean, double *sq)
{
    *mean = *sq = 0;
    if (!l->use_bias || l->n_params < 2)
        return;
    const float *b = param(net, l, 1);
    for (int c = 0; c < l->c; c++)
        *mean += b[c], *sq += (double)b[c] * b[c];
    *mean /= l->c, *sq /= l->c;
}

/* ---- the passes ------------------------------------------------------------------------ */

/* Whether a batch norm reads layer i's output. */
static bool next_is_bn(const Net *net, int i)
{
    for (int j = i + 1; j < net_n_layers(net); j++) {
        const Layer *l = net_layer(net, j);
        if (l->type == LAYER_BATCHNORM && l->in[0] == i)
            return true;
    }
    return false;
}

int theory_predict(const Net *net, const TheoryInput *in, TheoryLayer *out)
{
    if (in->mode == NET_TRAIN || !in->kernel_var)
        return -1;
    int L = net_n_layers(net);
    for (int i = 0; i < L; i++)
        out[i] = (TheoryLayer){.mean = NAN, .sq = NAN, .var = NAN, .within = NAN, .grad_sq = 0,
                               .n_sum = NAN, .n_back = NAN, .kernel_grad_sq = NAN};
    bool train = in->mode == NET_TRAIN_PROBE;
    for (int i = 0; i < L; i++) {
        const Layer *l = net_layer(net, i);
        TheoryLayer *o = &out[i];
        const Layer *x = l->in[0] >= 0 ? net_layer(net, l->in[0]) : NULL;
        const TheoryLayer *t = l->in[0] >= 0 ? &out[l->in[0]] : NULL;
        double m = t ? t->mean : 0, q = t ? t->sq : 0, v = t ? t->var : 0,
               w = t ? t->within : 0;
        switch (l->type) {
        case LAYER_INPUT:
            o->mean = in->in_mean, o->sq = in->in_sq;
            o->within = in->in_sq - in->in_mean * in->in_mean;
            break;
        case LAYER_CONV2D:
        case LAYER_DEPTHWISE:
        case LAYER_DENSE: {
            double n = l->type == LAYER_DENSE ? x->c
                       : l->type == LAYER_CONV2D ? x->c * avg_taps(x, l)
                                                 : avg_taps(x, l);
            double vw = in->kernel_var[l->param_first], bm, bq;
            bias_moments(net, l, &bm, &bq);
            o->n_sum = n;
            o->mean = bm, o->sq = n * vw * q + bq, o->within = n * vw * w;
            break;
        }
        case LAYER_BATCHNORM: {
            const float *g = param(net, l, 0), *b = param(net, l, 1), *mm = param(net, l, 2),
                        *mv = param(net, l, 3);
            double sm = 0, sq = 0, sw = 0, wc = w > 0 ? w : 0;
            for (int c = 0; c < l->c; c++) {
                double gc = g[c], bc = b[c];
                if (train) {
                    double f = gc * gc * wc / (wc + l->epsilon);
                    sm += bc;
                    sq += f + bc * bc;
                    sw += f;
                } else {
                    double inv = 1.0 / sqrt((double)mv[c] + l->epsilon), d = m - mm[c];
                    double cent = q - 2 * mm[c] * m + (double)mm[c] * mm[c];
                    sm += gc * d * inv + bc;
                    sq += gc * gc * cent * inv * inv + 2 * bc * gc * d * inv + bc * bc;
                    sw += gc * gc * wc * inv * inv;
                }
            }
            o->mean = sm / l->c, o->sq = sq / l->c, o->within = sw / l->c;
            break;
        }
        case LAYER_ACTIVATION: {
            double d;
            act_moments(l->act, m, v, &o->mean, &o->sq, &d);
            o->within = act_within(l->act, m, v - w, w, o->sq);
            break;
        }
        case LAYER_ADD: {
            const TheoryLayer *u = &out[l->in[1]];
            o->mean = m + u->mean;
            o->sq = q + u->sq + 2 * m * u->mean;
            o->within = w + u->within;
            break;
        }
        case LAYER_ZEROPAD: {
            double f = (double)x->h * x->w / ((double)l->h * l->w);
            o->mean = m * f, o->sq = q * f;
            o->within = f * w + f * (1 - f) * (q - w);
            break;
        }
        case LAYER_MAXPOOL: {
            /* Looking through a zero padding (its zeros never win against a ReLU's
             * output) to the activation that made the values. */
            const Layer *src = x;
            int src_i = l->in[0], pad_t = 0, pad_l = 0;
            shape_window_out(x->h, l->kh, l->stride, l->padding, &pad_t);
            shape_window_out(x->w, l->kw, l->stride, l->padding, &pad_l);
            int H = x->h, W = x->w;
            if (src->type == LAYER_ZEROPAD) {
                pad_t += src->pad[0], pad_l += src->pad[2];
                src_i = src->in[0];
                src = net_layer(net, src_i);
                H = src->h, W = src->w;
            }
            double K = avg_taps_1d(H, l->h, l->kh, l->stride, pad_t) *
                       avg_taps_1d(W, l->w, l->kw, l->stride, pad_l);
            bool rect = src->type == LAYER_ACTIVATION && src->act == ACT_RELU;
            const TheoryLayer *pre = rect ? &out[src->in[0]] : &out[src_i];
            const TheoryLayer *s0 = &out[src_i];
            max_moments(pre->mean, pre->var, rect, K, &o->mean, &o->sq);
            /* the within-channel share of the variance is kept */
            double vo = o->sq - o->mean * o->mean;
            o->within = s0->var > 0 ? vo * s0->within / s0->var : vo;
            break;
        }
        case LAYER_AVGPOOL:
        case LAYER_GAP: {
            double K = l->type == LAYER_GAP ? (double)x->h * x->w : avg_taps(x, l);
            if (!(K > 0))
                K = 1;
            o->mean = m, o->within = w / K, o->sq = q - w + w / K;
            break;
        }
        case LAYER_DROPOUT:
        case LAYER_FLATTEN:
            o->mean = m, o->sq = q, o->within = w;
            break;
        }
        o->var = o->sq - o->mean * o->mean;
        if (o->var < 0)
            o->var = 0;
        if (o->within > o->var)
            o->within = o->var;
        if (o->within < 0)
            o->within = 0;
    }

    /* Backward: each layer hands its gradient's second moment to its inputs. */
    int K = net_classes(net);
    out[L - 1].grad_sq = (K * in->softmax_sq - 2.0 / K + 1.0) /
                         ((double)K * in->batch * in->batch);
    for (int i = L - 1; i >= 1; i--) {
        const Layer *l = net_layer(net, i);
        const Layer *x = net_layer(net, l->in[0]);
        TheoryLayer *o = &out[i], *t = &out[l->in[0]];
        double r = o->grad_sq;
        switch (l->type) {
        case LAYER_CONV2D:
        case LAYER_DEPTHWISE:
        case LAYER_DENSE: {
            double vw = in->kernel_var[l->param_first], taps_out;
            if (l->type == LAYER_DENSE) {
                o->n_back = l->c;
                taps_out = 1;
            } else {
                double T = avg_taps(x, l) * l->h * l->w; /* in-bounds (output, tap) pairs */
                o->n_back = (l->type == LAYER_CONV2D ? l->c : l->filters) * T /
                            ((double)x->h * x->w);
                taps_out = T / ((double)l->kh * l->kw);
            }
            t->grad_sq += o->n_back * vw * r;
            /* After a train-mode batch norm the gradient has mean zero in every channel:
             * the input's channel means then add nothing to the kernel's gradient. */
            bool centred = train && next_is_bn(net, i);
            o->kernel_grad_sq = in->batch * taps_out * (centred ? t->within : t->sq) * r;
            break;
        }
        case LAYER_BATCHNORM: {
            const float *g = param(net, l, 0), *mv = param(net, l, 3);
            double f = 0;
            for (int c = 0; c < l->c; c++)
                f += (double)g[c] * g[c] /
                     (train ? t->within + l->epsilon : (double)mv[c] + l->epsilon);
            t->grad_sq += f / l->c * r;
            break;
        }
        case LAYER_ACTIVATION: {
            double a, b, d;
            act_moments(l->act, t->mean, t->var, &a, &b, &d);
            t->grad_sq += d * r;
            break;
        }
        case LAYER_ADD:
            t->grad_sq += r;
            out[l->in[1]].grad_sq += r;
            break;
        case LAYER_MAXPOOL:
            t->grad_sq += r * ((double)l->h * l->w) / ((double)x->h * x->w);
            break;
        case LAYER_AVGPOOL: {
            double Kw = (double)l->kh * l->kw;
            double T = avg_taps(x, l) * l->h * l->w;
            t->grad_sq += r * T / ((double)x->h * x->w) / (Kw * Kw);
            break;
        }
        case LAYER_GAP: {
            double P = (double)x->h * x->w;
            t->grad_sq += r / (P * P);
            break;
        }
        case LAYER_ZEROPAD:
        case LAYER_DROPOUT:
        case LAYER_FLATTEN:
            t->grad_sq += r;
            break;
        case LAYER_INPUT:
            break;
        }
    }
    return 0;
}
