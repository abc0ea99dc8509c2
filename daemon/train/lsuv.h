/* lsuv.h — layer-sequential unit-variance initialization (Mishkin & Matas 2016, "All you
 * need is a good init"), driven on a net and one batch of data.
 *
 * The net starts orthonormal (init_net_spec with INIT_LSUV draws Keras' Orthogonal). Then,
 * for each kernel layer (conv, depthwise conv, dense) in build order: run the batch
 * forward, take the variance v of the layer's own output (before any batch norm or
 * activation); while |v − 1| >= tol and fewer than max_iter rescalings were made, divide
 * the kernel by √v (and the bias, which is 0 at the start) and measure again. Layers whose
 * output has no variance (all constant) are left as they are. The forward passes run as a
 * training step runs them (BatchNorm on batch statistics; moving statistics, dropout and
 * the net's parameters other than the kernels untouched).
 *
 * Cost: one forward pass per rescaling and one more per layer to confirm it; a pass that
 * confirms layer L also measures layer L+1 (its input no longer changes), so a net whose
 * layers each need one rescaling takes about one pass per layer. */
#ifndef INITLAB_TRAIN_LSUV_H
#define INITLAB_TRAIN_LSUV_H

#include "nn/net.h"

typedef struct {
    double tol;    /* |Var − 1| < tol ends a layer (Mishkin's tol_var: 0.1) */
    int max_iter;  /* rescalings per layer at most (Mishkin's T_max: 10) */
} LsuvConfig;

typedef struct {
    int *iterations;   /* (net_n_params) rescalings of each kernel; -1 for other parameters */
    double *variance;  /* (net_n_params) output variance after the last rescaling, as
                          measured; NAN for other parameters */
    int layers;        /* kernels processed */
    int total;         /* rescalings over all layers */
    int passes;        /* forward passes run */
    int unconverged;   /* layers that ended at max_iter or with no variance */
} LsuvReport;

/* Runs LSUV on net with the batch x (n, H, W, C), n <= the net's capacity; rep (may be
 * NULL) receives what happened — release it with lsuv_report_deinit. Returns 0, or -1 on
 * allocation failure or an n the net cannot take. Not thread-safe for one net. */
int lsuv_run(Net *net, const float *x, int n, const LsuvConfig *cfg, LsuvReport *rep);
void lsuv_report_deinit(LsuvReport *rep); /* accepts NULL and a zeroed report */

#endif
