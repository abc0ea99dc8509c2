/* test_blas.c — the OpenBLAS core choice from CPU features, and sgemm under the chosen core. */
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "nn/gemm.h"
#include "test.h"
#include "util/cpu.h"
#include "util/rng.h"

static CpuFeatures avx512_cpu(void)
{
    CpuFeatures f = {0};
    f.sse3 = f.ssse3 = f.sse41 = f.sse42 = f.avx = f.fma = f.avx2 = true;
    f.avx512f = f.avx512cd = f.avx512bw = f.avx512dq = f.avx512vl = true;
    f.os_ymm = f.os_zmm = true;
    return f;
}

TEST(blas_core_for_avx512_is_skylakex)
{
    CpuFeatures f = avx512_cpu();
    CHECK_STR(cpu_blas_core(&f), "SkylakeX");
}

TEST(blas_core_needs_every_avx512_subset)
{
    CpuFeatures f = avx512_cpu();
    f.avx512bw = false; /* Xeon Phi style: F and CD but no BW/DQ/VL */
    CHECK_STR(cpu_blas_core(&f), "Haswell");
    f = avx512_cpu();
    f.avx512vl = false;
    CHECK_STR(cpu_blas_core(&f), "Haswell");
}

TEST(blas_core_needs_os_support)
{
    CpuFeatures f = avx512_cpu();
    f.os_zmm = false; /* kernel does not save ZMM state */
    CHECK_STR(cpu_blas_core(&f), "Haswell");
    f.os_ymm = false;
    CHECK(cpu_blas_core(&f) == NULL);
}

TEST(blas_core_for_avx2_fma_is_haswell)
{
    CpuFeatures f = {0};
    f.sse3 = f.ssse3 = f.sse41 = f.sse42 = f.avx = f.fma = f.avx2 = f.os_ymm = true;
    CHECK_STR(cpu_blas_core(&f), "Haswell");
    f.fma = false;
    CHECK_STR(cpu_blas_core(&f), "Sandybridge");
}

TEST(blas_core_for_old_cpu_is_shipped_default)
{
    CpuFeatures f = {0};
    f.sse3 = f.ssse3 = f.sse41 = f.sse42 = true;
    CHECK(cpu_blas_core(&f) == NULL);
}

TEST(blas_features_string_lists_flags)
{
    CpuFeatures f = avx512_cpu();
    char buf[256];
    cpu_features_string(&f, buf, sizeof buf);
    CHECK(strstr(buf, "avx2") != NULL);
    CHECK(strstr(buf, "avx512vl") != NULL);
    char tiny[8];
    cpu_features_string(&f, tiny, sizeof tiny); /* truncates, stays terminated */
    CHECK(strlen(tiny) < sizeof tiny);
}

/* The runner starts through startup_runtime like initlab does, so this process runs the core
 * the CPU's features select (unless the environment chose one). */
TEST(blas_running_core_is_the_chosen_one)
{
    CpuFeatures f;
    cpu_detect(&f);
    const char *want = cpu_blas_core(&f);
    if (strcmp(startup_blas_source(), "cpuid") == 0) {
        REQUIRE(want != NULL);
        CHECK_STR(gemm_core_name(), want);
    } else {
        CHECK(strcmp(startup_blas_source(), "environment") == 0 ||
              strcmp(startup_blas_source(), "default") == 0 ||
              strcmp(startup_blas_source(), "fallback") == 0);
    }
}

TEST(blas_sgemm_matches_naive_under_running_core)
{
    CHECK(gemm_verify() >= 0);
    CHECK(gemm_verify() < 1e-4);
    /* An independent shape with every transpose, compared element by element. */
    enum { M = 61, N = 47, K = 129 };
    static float A[M * K], B[K * N], C[M * N], R[M * N];
    Rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < M * K; i++)
        A[i] = (float)rng_normal(&rng);
    for (int i = 0; i < K * N; i++)
        B[i] = (float)rng_normal(&rng);
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        gemm(ta, tb, M, N, K, 1, A, ta ? M : K, B, tb ? K : N, 0, C, N);
        gemm_naive(ta, tb, M, N, K, 1, A, ta ? M : K, B, tb ? K : N, 0, R, N);
        double worst = 0;
        for (int i = 0; i < M * N; i++)
            worst = fmax(worst, fabs(C[i] - R[i]) / fmax(1.0, fabs(R[i])));
        CHECK(worst < 1e-5);
    }
}

TEST(blas_naive_gemm_small_case_by_hand)
{
    /* [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]; alpha 2, beta 1 onto C = 1. */
    const float A[] = {1, 2, 3, 4}, B[] = {5, 6, 7, 8};
    float C[] = {1, 1, 1, 1};
    gemm_naive(false, false, 2, 2, 2, 2, A, 2, B, 2, 1, C, 2);
    CHECK_NEAR(C[0], 39, 0);
    CHECK_NEAR(C[1], 45, 0);
    CHECK_NEAR(C[2], 87, 0);
    CHECK_NEAR(C[3], 101, 0);
    /* Aᵀ · B = [1 3; 2 4] · [5 6; 7 8] = [26 30; 38 44] */
    gemm_naive(true, false, 2, 2, 2, 1, A, 2, B, 2, 0, C, 2);
    CHECK_NEAR(C[0], 26, 0);
    CHECK_NEAR(C[3], 44, 0);
}
