/* cpu.c — CPUID feature detection, the CPU's model name and the OpenBLAS core choice
 * (see cpu.h).
 *
 * The model name comes from the kernel, not from CPUID's brand string: the two differ on
 * virtual machines whose hypervisor rewrites the brand (an AMD EPYC guest reads "Oxide
 * Virtual Turin-like Processor" from CPUID while the kernel says "AMD EPYC"), and the
 * kernel's name is the one users see in /proc/cpuinfo and lscpu. */
#include "util/cpu.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define CPUINFO_PATH "/proc/cpuinfo"

/* Copies s without its leading and trailing white space into buf. */
static void copy_trimmed(char *buf, size_t size, const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    snprintf(buf, size, "%.*s", (int)n, s);
}

int cpu_model_from_cpuinfo(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[512];
    while (!buf[0] && fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (!colon || strncmp(line, "model name", 10) != 0)
            continue;
        const char *rest = line + 10;
        while (rest < colon && isspace((unsigned char)*rest))
            rest++;
        if (rest == colon)
            copy_trimmed(buf, size, colon + 1);
    }
    fclose(f);
    return buf[0] ? 0 : -1;
}

static void set_model(CpuFeatures *f)
{
    if (cpu_model_from_cpuinfo(CPUINFO_PATH, f->model, sizeof f->model) < 0)
        snprintf(f->model, sizeof f->model, "%s", f->brand);
}

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

void cpu_detect(CpuFeatures *f)
{
    unsigned a, b, c, d;
    memset(f, 0, sizeof *f);
    if (!__get_cpuid(0, &a, &b, &c, &d)) {
        set_model(f);
        return;
    }
    unsigned max_leaf = a;
    memcpy(f->vendor, &b, 4);
    memcpy(f->vendor + 4, &d, 4);
    memcpy(f->vendor + 8, &c, 4);

    __get_cpuid(1, &a, &b, &c, &d);
    /* the extended family adds to 15; the extended model prefixes family 6 and above (the
     * kernel's rule, so the numbers match /proc/cpuinfo) */
    unsigned fam = (a >> 8) & 0xf, mod = (a >> 4) & 0xf;
    f->family = (int)(fam == 0xf ? fam + ((a >> 20) & 0xff) : fam);
    f->model_number = (int)(fam >= 0x6 ? mod | ((a >> 12) & 0xf0) : mod);
    f->sse3 = c & bit_SSE3;
    f->ssse3 = c & bit_SSSE3;
    f->sse41 = c & bit_SSE4_1;
    f->sse42 = c & bit_SSE4_2;
    f->fma = c & bit_FMA;
    bool osxsave = c & bit_OSXSAVE;
    bool avx_bit = c & bit_AVX;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    f->os_ymm = (xcr0 & 0x6) == 0x6;
    f->os_zmm = (xcr0 & 0xe6) == 0xe6;
    f->avx = avx_bit && f->os_ymm;

    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f->avx2 = (b & bit_AVX2) && f->os_ymm;
        f->avx512f = (b & bit_AVX512F) && f->os_zmm;
        f->avx512cd = (b & bit_AVX512CD) && f->os_zmm;
        f->avx512bw = (b & bit_AVX512BW) && f->os_zmm;
        f->avx512dq = (b & bit_AVX512DQ) && f->os_zmm;
        f->avx512vl = (b & bit_AVX512VL) && f->os_zmm;
        __cpuid_count(7, 1, a, b, c, d);
        f->avx512_bf16 = (a & (1u << 5)) && f->os_zmm;
    }
    f->fma = f->fma && f->os_ymm;

    unsigned ext = __get_cpuid_max(0x80000000, NULL);
    if (ext >= 0x80000004) {
        unsigned regs[12];
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002 + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2],
                        &regs[4 * i + 3]);
        char raw[49];
        memcpy(raw, regs, 48);
        raw[48] = '\0';
        /* Trim the padding some vendors put around the name. */
        copy_trimmed(f->brand, sizeof f->brand, raw);
    }
    set_model(f);
}
#else
void cpu_detect(CpuFeatures *f)
{
    memset(f, 0, sizeof *f);
    set_model(f);
}
#endif

const char *cpu_blas_core(const CpuFeatures *f)
{
    if (f->os_zmm && f->avx512f && f->avx512cd && f->avx512bw && f->avx512dq && f->avx512vl)
        return "SkylakeX";
    if (f->os_ymm && f->avx2 && f->fma)
        return "Haswell";
    if (f->os_ymm && f->avx)
        return "Sandybridge";
    return NULL;
}

const char *cpu_blas_better_core(const CpuFeatures *f, const char *running)
{
    const char *best = cpu_blas_core(f);
    return best && (!running || strcasecmp(best, running) != 0) ? best : NULL;
}

char *cpu_features_string(const CpuFeatures *f, char *buf, size_t size)
{
    const struct { bool on; const char *name; } flags[] = {
        {f->sse3, "sse3"},         {f->ssse3, "ssse3"},       {f->sse41, "sse4_1"},
        {f->sse42, "sse4_2"},      {f->avx, "avx"},           {f->fma, "fma"},
        {f->avx2, "avx2"},         {f->avx512f, "avx512f"},   {f->avx512cd, "avx512cd"},
        {f->avx512bw, "avx512bw"}, {f->avx512dq, "avx512dq"}, {f->avx512vl, "avx512vl"},
        {f->avx512_bf16, "avx512_bf16"},
    };
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (!flags[i].on)
            continue;
        int n = snprintf(buf + len, size - len, "%s%s", len ? " " : "", flags[i].name);
        if (n < 0 || (size_t)n >= size - len)
            break;
        len += (size_t)n;
    }
    return buf;
}
