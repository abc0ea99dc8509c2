/* test_train_metrics.c — accuracy and macro precision/recall/F1 against hand-computed
 * confusion matrices, and the matrix built from probabilities. */
#include <math.h>
#include <string.h>

#include "test.h"
#include "train/metrics.h"

TEST(train_metrics_hand_computed_with_missing_classes)
{
    /* Rows: true class, columns: predicted. Class 2 is never predicted, class 3 has no
     * samples. Column sums 7, 5, 0, 2; row sums 6, 5, 3, 0; trace 7 of 14.
     *   precision: 4/7, 3/5, 0 (0/0), 0/2   recall: 4/6, 3/5, 0/3, 0 (0/0)
     *   F1: 2·(4/7)(2/3)/(4/7 + 2/3) = 8/13, 3/5, 0, 0 */
    const int64_t cm[16] = {4, 1, 0, 1,
                            2, 3, 0, 0,
                            1, 1, 0, 1,
                            0, 0, 0, 0};
    ClassMetrics m;
    double pc[16];
    metrics_from_confusion(cm, 4, &m, pc);
    CHECK_NEAR(m.accuracy, 0.5, 1e-15);
    CHECK_NEAR(m.precision_macro, (4.0 / 7 + 3.0 / 5) / 4, 1e-15);   /* 41/140 */
    CHECK_NEAR(m.recall_macro, (4.0 / 6 + 3.0 / 5) / 4, 1e-15);      /* 19/60 */
    CHECK_NEAR(m.f1_macro, (8.0 / 13 + 3.0 / 5) / 4, 1e-15);         /* 79/260 */
    CHECK_NEAR(m.precision_macro, 41.0 / 140, 1e-15);
    CHECK_NEAR(m.recall_macro, 19.0 / 60, 1e-15);
    CHECK_NEAR(m.f1_macro, 79.0 / 260, 1e-15);
    const double want[16] = {4.0 / 7, 4.0 / 6, 8.0 / 13, 6,
                             3.0 / 5, 3.0 / 5, 3.0 / 5, 5,
                             0, 0, 0, 3,
                             0, 0, 0, 0};
    for (int i = 0; i < 16; i++)
        CHECK_NEAR(pc[i], want[i], 1e-15);
}

TEST(train_metrics_binary_and_perfect)
{
    /* TP 3, FN 1, FP 2, TN 4 for class 1; class 0: TP 4, FN 2, FP 1.
     * P1 3/5, R1 3/4, F1_1 2/3; P0 4/5, R0 4/6, F1_0 8/11. */
    const int64_t cm[4] = {4, 2, 1, 3};
    ClassMetrics m;
    metrics_from_confusion(cm, 2, &m, NULL);
    CHECK_NEAR(m.accuracy, 0.7, 1e-15);
    CHECK_NEAR(m.precision_macro, (4.0 / 5 + 3.0 / 5) / 2, 1e-15);
    CHECK_NEAR(m.recall_macro, (4.0 / 6 + 3.0 / 4) / 2, 1e-15);
    CHECK_NEAR(m.f1_macro, (8.0 / 11 + 2.0 / 3) / 2, 1e-15);

    const int64_t eye[9] = {5, 0, 0, 0, 2, 0, 0, 0, 9};
    metrics_from_confusion(eye, 3, &m, NULL);
    CHECK_NEAR(m.accuracy, 1, 0);
    CHECK_NEAR(m.precision_macro, 1, 0);
    CHECK_NEAR(m.recall_macro, 1, 0);
    CHECK_NEAR(m.f1_macro, 1, 0);
}

TEST(train_metrics_empty_matrix_is_zero)
{
    const int64_t cm[9] = {0};
    ClassMetrics m;
    double pc[12];
    memset(pc, 0x5a, sizeof pc);
    metrics_from_confusion(cm, 3, &m, pc);
    CHECK_NEAR(m.accuracy, 0, 0);
    CHECK_NEAR(m.precision_macro, 0, 0);
    CHECK_NEAR(m.recall_macro, 0, 0);
    CHECK_NEAR(m.f1_macro, 0, 0);
    for (int i = 0; i < 12; i++)
        CHECK_NEAR(pc[i], 0, 0);
    metrics_from_confusion(NULL, 0, &m, NULL);
    CHECK_NEAR(m.accuracy, 0, 0);
}

TEST(train_metrics_accumulate_argmax)
{
    /* K 3. Rows: clear class 2; a tie between 0 and 1 goes to 0 (first maximum); a NaN
     * wins wherever it is (numpy.argmax); clear class 1 twice. */
    const float probs[5 * 3] = {0.1f, 0.2f, 0.7f,
                                0.4f, 0.4f, 0.2f,
                                0.9f, NAN, 0.05f,
                                0.1f, 0.8f, 0.1f,
                                0.3f, 0.6f, 0.1f};
    const int labels[5] = {2, 1, 0, 1, 0};
    int64_t cm[9] = {0};
    metrics_accumulate(cm, 3, probs, labels, 5);
    const int64_t want[9] = {0, 2, 0,   /* true 0: predicted 1 (NaN row), 1 */
                             1, 1, 0,   /* true 1: predicted 0 (tie), 1 */
                             0, 0, 1};  /* true 2: predicted 2 */
    for (int i = 0; i < 9; i++)
        CHECK_INT(cm[i], want[i]);
    metrics_accumulate(cm, 3, probs, labels, 1); /* adds, does not overwrite */
    CHECK_INT(cm[8], 2);
}
