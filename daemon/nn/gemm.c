/* gemm.c — sgemm through OpenBLAS (the only cblas.h includer), naive reference, core checks. */
#include "nn/gemm.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "util/rng.h"

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
}

void gemm_naive(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}

const char *gemm_core_name(void)
{
    return openblas_get_corename();
}

int gemm_threads(void)
{
    return openblas_get_num_threads();
}

void gemm_set_threads(int n)
{
    openblas_set_num_threads(n < 1 ? 1 : n);
}

void gemm_single_threaded(void)
{
    if (openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
}

static void fill(Rng *rng, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2.0 * rng_uniform(rng) - 1.0);
}

double gemm_verify(void)
{
    /* Odd sizes hit every edge path of a blocked kernel; 96..200 crosses block boundaries. */
    static const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 65, 17}, {97, 131, 200},
                                    {256, 64, 300}, {5, 250, 129}};
    double worst = 0;
    Rng rng;
    rng_seed(&rng, 42);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
            float *C = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N);
            if (!A || !B || !C || !R) {
                free(A), free(B), free(C), free(R);
                return -1;
            }
            fill(&rng, A, (size_t)M * K);
            fill(&rng, B, (size_t)K * N);
            fill(&rng, C, (size_t)M * N);
            for (int i = 0; i < M * N; i++)
                R[i] = C[i];
            gemm(ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 0.25f, C, N);
            gemm_naive(ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 0.25f, R, N);
            for (int i = 0; i < M * N; i++) {
                double err = fabs((double)C[i] - R[i]) / fmax(1.0, fabs((double)R[i]));
                if (!(err <= worst)) /* NaN-safe: a NaN makes worst NaN */
                    worst = isnan(err) ? INFINITY : err;
            }
            free(A), free(B), free(C), free(R);
        }
    }
    return worst;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double gemm_measure_gflops(int n, double seconds)
{
    size_t sz = (size_t)n * n;
    float *A = malloc(sizeof(float) * sz), *B = malloc(sizeof(float) * sz);
    float *C = calloc(sz, sizeof(float));
    if (!A || !B || !C) {
        free(A), free(B), free(C);
        return -1;
    }
    Rng rng;
    rng_seed(&rng, 1);
    fill(&rng, A, sz);
    fill(&rng, B, sz);
    gemm(false, false, n, n, n, 1, A, n, B, n, 0, C, n); /* warm-up: threads, pages */
    int reps = 0;
    double t0 = now_seconds(), t;
    do {
        gemm(false, false, n, n, n, 1, A, n, B, n, 0, C, n);
        reps++;
        t = now_seconds() - t0;
    } while (t < seconds);
    free(A), free(B), free(C);
    return 2.0 * n * (double)n * n * reps / t / 1e9;
}
