/* init_dump.c — initial weights for the PyTorch cross-check of Orthogonal and LSUV.
 *
 * usage: init_dump orthogonal ROWS COLS SEED OUT
 *          OUT: "a" the normal matrix (max(ROWS, COLS), min) drawn from the seed's stream,
 *          row-major as Keras draws it, and "q" what init_orthogonal_matrix made of it
 *          (ROWS, COLS)
 *        init_dump lsuv SEED OUT
 *          a `plain` net (depth 3, width 8, batch norm, 32 px, 4 classes) started
 *          orthonormal (init lsuv); OUT: "x" the batch (16, 32, 32, 3), "start/<name>" every
 *          parameter before LSUV, "lsuv/<name>" after (tol 0.1, at most 10 rescalings),
 *          "iters" the rescalings of each parameter (-1: not a kernel), in parameter order
 * Exit status 0 on success, 1 with a message on stderr otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/init.h"
#include "nn/models.h"
#include "train/lsuv.h"
#include "util/rng.h"
#include "util/safetensors.h"

static int orthogonal(int rows, int cols, uint64_t seed, const char *out)
{
    int m = rows > cols ? rows : cols, n = rows > cols ? cols : rows;
    float *a = malloc(sizeof(float) * (size_t)m * n), *q = malloc(sizeof(float) * (size_t)m * n);
    if (!a || !q)
        return 1;
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < m * n; i++)
        a[i] = (float)rng_normal(&rng);
    rng_seed(&rng, seed);
    if (init_orthogonal_matrix(q, rows, cols, &rng, 2) < 0)
        return 1;
    StTensor t[2] = {{.name = "a", .ndim = 2, .shape = {m, n}, .count = (size_t)m * n, .data = a},
                     {.name = "q", .ndim = 2, .shape = {rows, cols}, .count = (size_t)m * n,
                      .data = q}};
    char err[256];
    int rc = st_write(out, t, 2, NULL, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "init_dump: %s\n", err);
    free(a);
    free(q);
    return rc < 0;
}

static int lsuv(uint64_t seed, const char *out)
{
    enum { N = 16 };
    ModelConfig mc = model_config_default("plain");
    mc.depth = 3, mc.width = 8, mc.classes = 4, mc.batch = N;
    char err[256];
    Net *net = model_build(&mc, 1, err, sizeof err);
    if (!net) {
        fprintf(stderr, "init_dump: %s\n", err);
        return 1;
    }
    InitSpec spec = init_spec_default(INIT_LSUV);
    init_net_spec(net, &spec, FAN_KERAS, seed);
    int P = net_n_params(net);
    size_t xn = (size_t)N * 32 * 32 * 3;
    float *x = malloc(sizeof(float) * xn), *iters = malloc(sizeof(float) * (size_t)P);
    float **start = calloc((size_t)P, sizeof *start);
    StTensor *t = calloc((size_t)(2 * P + 2), sizeof *t);
    if (!x || !iters || !start || !t)
        return 1;
    Rng rng;
    rng_seed(&rng, seed + 1);
    for (size_t i = 0; i < xn; i++)
        x[i] = (float)(3.0 * rng_uniform(&rng) - 1.0); /* mean 0.5, variance 0.75 */
    int k = 0;
    for (int i = 0; i < P; i++) {
        const Param *p = net_param(net, i);
        start[i] = malloc(sizeof(float) * p->size);
        if (!start[i])
            return 1;
        memcpy(start[i], p->data, sizeof(float) * p->size);
        StTensor *s = &t[k++];
        snprintf(s->name, sizeof s->name, "start/%s", p->name);
        s->ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++)
            s->shape[d] = p->shape[d];
        s->count = p->size;
        s->data = start[i];
    }
    LsuvConfig lc = {.tol = 0.1, .max_iter = 10};
    LsuvReport rep;
    if (lsuv_run(net, x, N, &lc, &rep) < 0)
        return 1;
    for (int i = 0; i < P; i++) {
        const Param *p = net_param(net, i);
        StTensor *s = &t[k++];
        snprintf(s->name, sizeof s->name, "lsuv/%s", p->name);
        s->ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++)
            s->shape[d] = p->shape[d];
        s->count = p->size;
        s->data = p->data;
        iters[i] = (float)rep.iterations[i];
    }
    t[k++] = (StTensor){.name = "x", .ndim = 4, .shape = {N, 32, 32, 3}, .count = xn, .data = x};
    t[k++] = (StTensor){.name = "iters", .ndim = 1, .shape = {P}, .count = (size_t)P, .data = iters};
    int rc = st_write(out, t, k, NULL, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "init_dump: %s\n", err);
    lsuv_report_deinit(&rep);
    for (int i = 0; i < P; i++)
        free(start[i]);
    free(start);
    free(t);
    free(x);
    free(iters);
    net_free(net);
    return rc < 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "orthogonal") == 0)
        return orthogonal(atoi(argv[2]), atoi(argv[3]), strtoull(argv[4], NULL, 10), argv[5]);
    if (argc == 4 && strcmp(argv[1], "lsuv") == 0)
        return lsuv(strtoull(argv[2], NULL, 10), argv[3]);
    fprintf(stderr, "usage: init_dump orthogonal ROWS COLS SEED OUT | init_dump lsuv SEED OUT\n");
    return 1;
}
