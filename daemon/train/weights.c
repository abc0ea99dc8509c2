/* weights.c — saving and loading a net's parameters as safetensors (see weights.h). */
#include "train/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/safetensors.h"

#define MAX_META 64

int weights_save_safetensors(const Net *net, const char *path, const char *const *metadata,
                             char *err, size_t errlen)
{
    int n = net_n_params(net);
    const char *meta[2 * MAX_META + 3];
    int m = 0;
    for (int i = 0; metadata && metadata[i] && metadata[i + 1]; i += 2) {
        if (strcmp(metadata[i], "layout") == 0)
            continue;
        if (m >= 2 * MAX_META) {
            snprintf(err, errlen, "more than %d metadata entries", MAX_META);
            return -1;
        }
        meta[m++] = metadata[i];
        meta[m++] = metadata[i + 1];
    }
    meta[m++] = "layout";
    meta[m++] = "keras";
    meta[m] = NULL;

    StTensor *t = calloc(n ? (size_t)n : 1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const Param *p = net_param_const(net, i);
        snprintf(t[i].name, sizeof t[i].name, "%s", p->name);
        t[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++)
            t[i].shape[d] = p->shape[d];
        t[i].count = p->size;
        t[i].data = p->data;
    }
    int rc = st_write(path, t, n, meta, err, errlen);
    free(t);
    return rc;
}

/* 0 when tensor t fits parameter p, else -1 with err naming the mismatch. */
static int check_tensor(const Param *p, const StTensor *t, const char *path, char *err,
                        size_t errlen)
{
    if (!t) {
        snprintf(err, errlen, "%s: tensor '%s' missing", path, p->name);
        return -1;
    }
    bool same = t->ndim == p->ndim && t->count == p->size;
    for (int d = 0; same && d < p->ndim; d++)
        same = t->shape[d] == p->shape[d];
    if (!same) {
        char want[64] = "", got[64] = "";
        for (int d = 0; d < p->ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", d ? "," : "",
                     p->shape[d]);
        for (int d = 0; d < t->ndim && d < ST_MAX_DIMS; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "",
                     (long long)t->shape[d]);
        snprintf(err, errlen, "%s: tensor '%s' has shape (%s), the net needs (%s)", path,
                 p->name, got, want);
        return -1;
    }
    return 0;
}

int weights_load_safetensors(Net *net, const char *path, char *err, size_t errlen)
{
    SafeTensors *st = st_read(path, err, errlen);
    if (!st)
        return -1;
    int rc = -1;
    int n = net_n_params(net);
    const char *layout = st_metadata(st, "layout");
    if (layout && strcmp(layout, "keras") != 0) {
        snprintf(err, errlen, "%s: layout '%s', expected 'keras'", path, layout);
        goto done;
    }
    for (int i = 0; i < n; i++)
        if (check_tensor(net_param(net, i), st_find(st, net_param(net, i)->name), path, err,
                         errlen) < 0)
            goto done;
    if (st_count(st) != n) {
        for (int i = 0; i < st_count(st); i++)
            if (!net_find_param(net, st_at(st, i)->name)) {
                snprintf(err, errlen, "%s: tensor '%s' is not a parameter of this net", path,
                         st_at(st, i)->name);
                goto done;
            }
    }
    for (int i = 0; i < n; i++) {
        Param *p = net_param(net, i);
        memcpy(p->data, st_find(st, p->name)->data, p->size * sizeof(float));
    }
    rc = 0;
done:
    st_free(st);
    return rc;
}
