/* metrics.c — accuracy and per-class / macro precision, recall and F1 from a confusion
 * matrix, and the matrix's accumulation from predicted probabilities. */
#include "train/metrics.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* num / den, or 0 when den is 0 (scikit-learn's zero_division=0). */
static double ratio(int64_t num, int64_t den)
{
    return den ? (double)num / (double)den : 0.0;
}

void metrics_from_confusion(const int64_t *confusion, int K, ClassMetrics *out,
                            double *per_class)
{
    assert(out && K >= 0 && (confusion || K == 0));
    memset(out, 0, sizeof *out);
    int64_t total = 0, correct = 0;
    double sp = 0.0, sr = 0.0, sf = 0.0;
    for (int c = 0; c < K; c++) {
        int64_t tp = confusion[(size_t)c * K + c], support = 0, predicted = 0;
        for (int j = 0; j < K; j++) {
            support += confusion[(size_t)c * K + j];
            predicted += confusion[(size_t)j * K + c];
        }
        total += support;
        correct += tp;
        int64_t fp = predicted - tp, fn = support - tp;
        double p = ratio(tp, predicted), r = ratio(tp, support);
        /* 2TP / (2TP + FP + FN) equals 2PR / (P + R), and is 0 where that is 0/0. */
        double f = ratio(2 * tp, 2 * tp + fp + fn);
        sp += p;
        sr += r;
        sf += f;
        if (per_class) {
            per_class[(size_t)c * 4 + 0] = p;
            per_class[(size_t)c * 4 + 1] = r;
            per_class[(size_t)c * 4 + 2] = f;
            per_class[(size_t)c * 4 + 3] = (double)support;
        }
    }
    if (K == 0)
        return;
    out->accuracy = ratio(correct, total);
    out->precision_macro = sp / K;
    out->recall_macro = sr / K;
    out->f1_macro = sf / K;
}

void metrics_accumulate(int64_t *confusion, int K, const float *probs, const int *labels,
                        int n)
{
    assert(K > 0 && n >= 0 && (n == 0 || (confusion && probs && labels)));
    for (int i = 0; i < n; i++) {
        const float *row = probs + (size_t)i * K; /* (K) */
        int best = 0;
        /* numpy.argmax: first maximum, and the first NaN counts as the maximum. */
        if (!isnan(row[0])) {
            for (int j = 1; j < K; j++) {
                if (isnan(row[j])) {
                    best = j;
                    break;
                }
                if (row[j] > row[best])
                    best = j;
            }
        }
        int t = labels[i];
        assert(t >= 0 && t < K);
        confusion[(size_t)t * K + best]++;
    }
}
