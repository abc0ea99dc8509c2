/* isa.h — the vector instruction set initlab's own kernels run with, chosen at run time. */
#ifndef INITLAB_UTIL_ISA_H
#define INITLAB_UTIL_ISA_H

/* Ordered from narrowest to widest: a kernel written for ISA_AVX2 runs wherever the
 * active set is ISA_AVX2 or wider. */
typedef enum {
    ISA_GENERIC, /* portable C (x86-64-v2, or any other architecture) */
    ISA_AVX2,    /* AVX2 + FMA, 8 floats per vector, with the OS saving YMM state */
    ISA_AVX512,  /* AVX-512 F/VL/BW/DQ, 16 floats per vector, with ZMM state */
} Isa;

/* The widest set this CPU and OS support (CPUID and XGETBV, read once). Thread-safe. */
Isa isa_best(void);

/* The set kernels use: isa_best(), lowered by isa_limit() or by INITLAB_ISA in the
 * environment ("generic", "avx2", "avx512"; read once, a higher value than the CPU
 * supports is ignored). Thread-safe. */
Isa isa_active(void);

/* Caps the set kernels use at max (never above isa_best()); tests run every path the CPU
 * has this way. Not to be called while kernels run. */
void isa_limit(Isa max);

/* "generic", "avx2", "avx512". */
const char *isa_name(Isa isa);

/* Floats per vector register of isa: 4 (SSE), 8, 16. */
int isa_floats(Isa isa);

#endif
