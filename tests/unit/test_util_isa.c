/* test_util_isa.c — the run-time choice of vector instruction set agrees with CPUID and can
 * be lowered, never raised. */
#include <string.h>

#include "test.h"
#include "util/cpu.h"
#include "util/isa.h"

TEST(isa_best_matches_the_cpu_features)
{
    CpuFeatures f;
    cpu_detect(&f);
    Isa want = f.os_zmm && f.avx512f && f.avx512vl && f.avx512bw && f.avx512dq && f.fma
                   ? ISA_AVX512
               : f.os_ymm && f.avx2 && f.fma ? ISA_AVX2
                                             : ISA_GENERIC;
    CHECK_INT(isa_best(), want);
    CHECK_INT(isa_floats(ISA_AVX512), 16);
    CHECK_INT(isa_floats(ISA_AVX2), 8);
}

TEST(isa_limit_lowers_but_never_raises)
{
    Isa saved = isa_active();
    isa_limit(ISA_GENERIC);
    CHECK_INT(isa_active(), ISA_GENERIC);
    isa_limit(ISA_AVX512);
    CHECK_INT(isa_active(), isa_best());
    isa_limit(saved);
    CHECK_INT(isa_active(), saved);
    CHECK(strcmp(isa_name(ISA_AVX2), "avx2") == 0);
}
