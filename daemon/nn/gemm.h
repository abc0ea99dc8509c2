/* gemm.h — the engine's only door to BLAS: row-major sgemm, its naive reference, the core.
 *
 * C (M, N) = alpha · op(A) · op(B) + beta · C, with op(A) (M, K) and op(B) (K, N), all
 * row-major: A is (M, K) or, transposed, (K, M) with leading dimension lda, likewise B.
 * Thread-safety: gemm may be called from several threads at once; gemm_set_threads changes
 * a process-wide OpenBLAS setting. */
#ifndef INITLAB_NN_GEMM_H
#define INITLAB_NN_GEMM_H

#include <stdbool.h>

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);
/* Same contract as gemm; triple loop with double accumulation. The reference of the tests. */
void gemm_naive(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The OpenBLAS kernel family running in this process ("SkylakeX", "Prescott", ...). */
const char *gemm_core_name(void);
/* OpenBLAS's worker thread count, process-wide. */
int gemm_threads(void);
void gemm_set_threads(int n);
/* Sets OpenBLAS to one thread (process-wide) unless it already is, so each gemm call runs
 * in the calling thread. The engine's kernels call it first: they split their GEMMs over
 * their own OpenMP threads, and a multi-threaded OpenBLAS under them would fight those
 * threads for the cores. Can't fail. */
void gemm_single_threaded(void);
/* Runs sgemm on several odd shapes and transposes against gemm_naive and returns the largest
 * relative error (|fast - naive| / max(1, |naive|)); a correct core gives about 1e-6.
 * Returns -1 on allocation failure. Can be called from any thread. */
double gemm_verify(void);
/* Measures sgemm throughput on n³ with the current thread count for about `seconds`;
 * returns GFLOP/s, or -1 on allocation failure. */
double gemm_measure_gflops(int n, double seconds);

#endif
