/* loss.c — softmax cross-entropy with optional class weights (Keras sum_over_batch_size). */
#include "nn/layers.h"

#include <assert.h>
#include <math.h>

double softmax_xent_forward(float *probs, const float *logits, const int *labels,
                            const float *class_weights, int N, int K)
{
    double total = 0;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * K;
        float *p = probs + (size_t)n * K;
        int y = labels[n];
        assert(y >= 0 && y < K);
        double zmax = z[0];
        for (int k = 1; k < K; k++)
            if (z[k] > zmax)
                zmax = z[k];
        double sum = 0;
        for (int k = 0; k < K; k++)
            sum += exp((double)z[k] - zmax);
        double logsum = log(sum);
        for (int k = 0; k < K; k++)
            p[k] = (float)exp((double)z[k] - zmax - logsum);
        double w = class_weights ? class_weights[y] : 1.0;
        total += w * (logsum - ((double)z[y] - zmax));
    }
    return total / N;
}

void softmax_xent_backward(float *dlogits, const float *probs, const int *labels,
                           const float *class_weights, int N, int K)
{
    for (int n = 0; n < N; n++) {
        int y = labels[n];
        double w = (class_weights ? class_weights[y] : 1.0) / N;
        for (int k = 0; k < K; k++)
            dlogits[(size_t)n * K + k] +=
                (float)(w * ((double)probs[(size_t)n * K + k] - (k == y)));
    }
}
