/* isa.c — the vector instruction set of initlab's own kernels: CPUID once, capped by tests
 * or INITLAB_ISA. */
#include "util/isa.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/cpu.h"

static Isa best = ISA_GENERIC;
static Isa active = ISA_GENERIC;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void detect(void)
{
    CpuFeatures f;
    cpu_detect(&f);
    if (f.os_zmm && f.avx512f && f.avx512vl && f.avx512bw && f.avx512dq && f.fma)
        best = ISA_AVX512;
    else if (f.os_ymm && f.avx2 && f.fma)
        best = ISA_AVX2;
    active = best;
    const char *env = getenv("INITLAB_ISA");
    for (Isa i = ISA_GENERIC; env && i <= ISA_AVX512; i++)
        if (strcmp(env, isa_name(i)) == 0 && i < best)
            active = i;
}

Isa isa_best(void)
{
    pthread_once(&once, detect);
    return best;
}

Isa isa_active(void)
{
    pthread_once(&once, detect);
    return active;
}

void isa_limit(Isa max)
{
    pthread_once(&once, detect);
    active = max < best ? max : best;
}

const char *isa_name(Isa isa)
{
    switch (isa) {
    case ISA_AVX512:
        return "avx512";
    case ISA_AVX2:
        return "avx2";
    default:
        return "generic";
    }
}

int isa_floats(Isa isa)
{
    return isa == ISA_AVX512 ? 16 : isa == ISA_AVX2 ? 8 : 4;
}
