/* metrics.h — classification figures from a confusion matrix (the paper's Table 1).
 *
 * confusion[t·K + p] counts samples of true class t predicted as p. Per class c:
 * precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R); a ratio with a
 * zero denominator is 0 (scikit-learn's zero_division=0). Macro figures are unweighted
 * means over the K classes; accuracy = trace / total. */
#ifndef INITLAB_TRAIN_METRICS_H
#define INITLAB_TRAIN_METRICS_H

#include <stdint.h>

typedef struct {
    double accuracy;
    double precision_macro, recall_macro, f1_macro;
} ClassMetrics;

/* Fills out from the K×K matrix; per_class (K×4: precision, recall, F1, support) may be
 * NULL. Can't fail; an empty matrix gives zeros. */
void metrics_from_confusion(const int64_t *confusion, int K, ClassMetrics *out,
                            double *per_class);

/* Adds n predictions to the K×K matrix: argmax of probs (n, K) against labels (n).
 * The argmax is numpy's: the first maximum wins ties, a NaN counts as the maximum.
 * Labels must lie in [0, K) (asserted: the data module validates them). Can't fail. */
void metrics_accumulate(int64_t *confusion, int K, const float *probs, const int *labels,
                        int n);

#endif
