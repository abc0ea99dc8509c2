/* table1.c — Table 1 over seeds: intervals, epochs to a target accuracy, tests (table1.h). */
#include "jobs/table1.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/report.h"
#include "util/signif.h"

enum { N_METRICS = 6, M_EPOCHS = 5 };
static const char *const metric_names[N_METRICS] = {"accuracy", "precision_macro",
                                                    "recall_macro", "f1_macro", "loss",
                                                    "epochs_to_target"};

typedef struct {
    const StoreGridRun *run;
    double v[N_METRICS];  /* NAN: no value */
    double best_val_acc;
} Run;

static json_t *interval(double lo, double hi)
{
    return json_pack("[o, o]", report_number(lo), report_number(hi));
}

/* The values of metric k over runs[0..n), finite ones only, into out; returns the count. */
static int values(const Run *runs, int n, int k, double *out)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(runs[i].v[k]))
            out[m++] = runs[i].v[k];
    return m;
}

static json_t *metric_summary(const Run *runs, int n, int k, double *buf)
{
    int m = values(runs, n, k, buf);
    SignifMean s = signif_mean_ci(buf, m);
    json_t *o = json_pack("{s:o, s:o, s:o}", "mean", report_number(m ? s.mean : NAN), "std",
                          report_number(s.std), "ci95", interval(s.lo, s.hi));
    if (o && k == M_EPOCHS) {
        json_object_set_new(o, "reached", json_integer(m));
        json_object_set_new(o, "n", json_integer(n));
    }
    return o;
}

static json_t *run_json(const Run *r)
{
    json_t *o = json_pack("{s:I, s:I, s:s}", "job_id", (json_int_t)r->run->job_id, "seed",
                          (json_int_t)r->run->seed, "status",
                          store_job_status_name(r->run->status));
    for (int k = 0; o && k < N_METRICS; k++)
        json_object_set_new(o, metric_names[k],
                            k == M_EPOCHS && isfinite(r->v[k]) ? json_integer((json_int_t)r->v[k])
                                                               : report_number(r->v[k]));
    if (o)
        json_object_set_new(o, "best_val_acc", report_number(r->best_val_acc));
    return o;
}

static json_t *compare(const char *model, const Run *a, int na, const Run *b, int nb, int k,
                       double *bufa, double *bufb, int *fail)
{
    int ma = values(a, na, k, bufa), mb = values(b, nb, k, bufb);
    SignifWelch w = signif_welch(bufa, ma, bufb, mb);
    SignifPermutation p;
    if (signif_permutation(bufa, ma, bufb, mb, TABLE1_MAX_EXACT, TABLE1_RESAMPLES, 20211019,
                           &p) < 0) {
        *fail = 1;
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:o, s:o, s:{s:o, s:o, s:o},"
                     " s:{s:o, s:b, s:I}}",
                     "model", model, "a", a[0].run->initializer, "b", b[0].run->initializer,
                     "metric", metric_names[k], "n_a", ma, "n_b", mb, "diff",
                     report_number(w.diff), "ci95", interval(w.lo, w.hi), "welch", "t",
                     report_number(w.t), "df", report_number(w.df), "p", report_number(w.p),
                     "permutation", "p", report_number(p.p), "exact", p.exact, "splits",
                     (json_int_t)p.splits);
}

json_t *table1_build(Store *s, int64_t grid_id, double target, int *rc)
{
    StoreGridRun *rows = NULL;
    int n = 0;
    *rc = store_grid_runs(s, grid_id, &rows, &n);
    if (*rc != STORE_OK)
        return NULL;
    Run *runs = calloc((size_t)(n ? n : 1), sizeof *runs);
    double *bufa = malloc(sizeof(double) * (size_t)(n ? n : 1));
    double *bufb = malloc(sizeof(double) * (size_t)(n ? n : 1));
    json_t *groups = json_array(), *comparisons = json_array(), *out = NULL;
    int fail = !runs || !bufa || !bufb || !groups || !comparisons;
    for (int i = 0; !fail && i < n; i++) {
        Run *r = &runs[i];
        r->run = &rows[i];
        const double m[5] = {rows[i].accuracy, rows[i].precision_macro, rows[i].recall_macro,
                             rows[i].f1_macro, rows[i].loss};
        for (int k = 0; k < 5; k++)
            r->v[k] = rows[i].has_result ? m[k] : NAN;
        r->v[M_EPOCHS] = NAN;
        r->best_val_acc = NAN;
        StoreEpoch *ep = NULL;
        int ne = 0;
        if (store_epoch_list(s, rows[i].job_id, &ep, &ne) != STORE_OK) {
            fail = 1;
            break;
        }
        for (int e = 0; e < ne; e++) {
            double v = ep[e].val_acc;
            if (isfinite(v) && (!isfinite(r->best_val_acc) || v > r->best_val_acc))
                r->best_val_acc = v;
            if (isfinite(v) && v >= target && !isfinite(r->v[M_EPOCHS]))
                r->v[M_EPOCHS] = ep[e].epoch;
        }
        free(ep);
    }
    /* Groups: runs of one model and initializer (rows are sorted that way). */
    for (int g0 = 0; !fail && g0 < n;) {
        int g1 = g0;
        while (g1 < n && strcmp(rows[g1].model, rows[g0].model) == 0 &&
               strcmp(rows[g1].initializer, rows[g0].initializer) == 0)
            g1++;
        int with = 0;
        for (int i = g0; i < g1; i++)
            with += rows[i].has_result;
        json_t *g = json_pack("{s:s, s:s, s:i, s:i}", "model", rows[g0].model, "initializer",
                              rows[g0].initializer, "n_jobs", g1 - g0, "n", with);
        json_t *list = json_array();
        for (int k = 0; g && k < N_METRICS; k++)
            json_object_set_new(g, metric_names[k], metric_summary(runs + g0, g1 - g0, k, bufa));
        for (int i = g0; list && i < g1; i++)
            json_array_append_new(list, run_json(&runs[i]));
        if (!g || !list || json_object_set_new(g, "runs", list) < 0 ||
            json_array_append_new(groups, g) < 0)
            fail = 1;
        /* This model's later initializers, each compared with this one. */
        for (int h0 = g1; !fail && h0 < n && strcmp(rows[h0].model, rows[g0].model) == 0;) {
            int h1 = h0;
            while (h1 < n && strcmp(rows[h1].model, rows[h0].model) == 0 &&
                   strcmp(rows[h1].initializer, rows[h0].initializer) == 0)
                h1++;
            for (int k = 0; !fail && k < N_METRICS; k++) {
                json_t *c = compare(rows[g0].model, runs + g0, g1 - g0, runs + h0, h1 - h0, k,
                                    bufa, bufb, &fail);
                if (!fail && (!c || json_array_append_new(comparisons, c) < 0))
                    fail = 1;
            }
            h0 = h1;
        }
        g0 = g1;
    }
    if (!fail)
        out = json_pack("{s:f, s:O, s:O}", "target", target, "groups", groups, "comparisons",
                        comparisons);
    if (!out)
        *rc = STORE_ERROR;
    json_decref(groups);
    json_decref(comparisons);
    free(runs);
    free(bufa);
    free(bufb);
    free(rows);
    return out;
}
