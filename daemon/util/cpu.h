/* cpu.h — what the processor is and can do (CPUID + XGETBV, the kernel's model name) and
 * which OpenBLAS core fits it. */
#ifndef INITLAB_UTIL_CPU_H
#define INITLAB_UTIL_CPU_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char vendor[13];  /* "GenuineIntel", "AuthenticAMD" */
    char brand[49];   /* CPUID's brand string: "Intel(R) Xeon(R) ...", or what a
                         hypervisor puts there ("Oxide Virtual Turin-like Processor") */
    char model[128];  /* the name initlab reports: the kernel's "model name" (what
                         /proc/cpuinfo and lscpu show users; "AMD EPYC"), or the brand
                         string where the kernel gives none */
    int family;       /* CPUID's display family and model, as /proc/cpuinfo's "cpu family" */
    int model_number; /* and "model" (AMD Zen 4: 25 and 17); 0 on a non-x86 build */
    bool sse3, ssse3, sse41, sse42, avx, fma, avx2;
    bool avx512f, avx512cd, avx512bw, avx512dq, avx512vl, avx512_bf16;
    bool os_ymm;      /* the OS saves YMM state (XCR0 bits 1, 2) */
    bool os_zmm;      /* the OS saves ZMM state (XCR0 bits 5, 6, 7) */
} CpuFeatures;

/* Fills f from CPUID and XGETBV, and f->model from /proc/cpuinfo (cpu_model_from_cpuinfo)
 * or else from the brand string; on a non-x86 build every flag is false. Can't fail. */
void cpu_detect(CpuFeatures *f);

/* The first "model name" of a file in /proc/cpuinfo's format, trimmed, into buf (always
 * NUL-terminated). Returns 0, or -1 (buf "") when the file cannot be read or has no
 * non-empty model name. Thread-safe. */
int cpu_model_from_cpuinfo(const char *path, char *buf, size_t size);

/* The best OpenBLAS core (OPENBLAS_CORETYPE value) for these features, or NULL when the
 * shipped choice is as good as any: "SkylakeX" for AVX-512 F/CD/BW/DQ/VL with OS ZMM support,
 * "Haswell" for AVX2 + FMA with OS YMM support, "Sandybridge" for AVX, NULL otherwise.
 * Pure function of f; thread-safe. */
const char *cpu_blas_core(const CpuFeatures *f);

/* The core cpu_blas_core(f) selects when OpenBLAS runs another one (running, as OpenBLAS
 * names it; compared ignoring case), or NULL when it runs that one or there is none to
 * select. Pure function; thread-safe. */
const char *cpu_blas_better_core(const CpuFeatures *f, const char *running);

/* Writes the SIMD feature names, space separated ("sse4_2 avx avx2 fma avx512f ..."), into
 * buf (always NUL-terminated). Returns buf. */
char *cpu_features_string(const CpuFeatures *f, char *buf, size_t size);

#endif
