/* test_util_cpu.c — the CPU's model name from /proc/cpuinfo's format and the OpenBLAS
 * core a CPU supports when another one runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "util/cpu.h"

/* Writes text to a new temporary file; its path goes to path (64 bytes). */
static int write_temp(char *path, const char *text)
{
    snprintf(path, 64, "/tmp/initlab-cpuinfo-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    close(fd);
    return ok ? 0 : -1;
}

TEST(cpu_model_is_the_kernels_model_name)
{
    /* As an AMD EPYC virtual machine shows it: the kernel's name, not CPUID's brand. */
    static const char amd[] =
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
        "model name\t: AMD EPYC  \nstepping\t: 1\n\nprocessor\t: 1\n"
        "model name\t: something else\n";
    char path[64], name[128];
    REQUIRE(write_temp(path, amd) == 0);
    CHECK_INT(cpu_model_from_cpuinfo(path, name, sizeof name), 0);
    CHECK_STR(name, "AMD EPYC");
    unlink(path);
}

TEST(cpu_model_missing_or_empty_is_refused)
{
    char path[64], name[128] = "x";
    REQUIRE(write_temp(path, "processor\t: 0\nmodel\t\t: 85\nmodel name\t:   \n") == 0);
    CHECK_INT(cpu_model_from_cpuinfo(path, name, sizeof name), -1);
    CHECK_STR(name, "");
    unlink(path);
    CHECK_INT(cpu_model_from_cpuinfo("/nonexistent/cpuinfo", name, sizeof name), -1);
    CHECK_STR(name, "");
}

TEST(cpu_detect_reports_a_model)
{
    CpuFeatures f;
    cpu_detect(&f);
    char kernel[128];
    if (cpu_model_from_cpuinfo("/proc/cpuinfo", kernel, sizeof kernel) == 0)
        CHECK_STR(f.model, kernel);
    else
        CHECK_STR(f.model, f.brand);
}

/* CPUID's family and model decode to the kernel's "cpu family" and "model". */
TEST(cpu_detect_family_and_model_match_the_kernel)
{
    CpuFeatures f;
    cpu_detect(&f);
    FILE *in = fopen("/proc/cpuinfo", "r");
    if (!in || !f.vendor[0]) {
        if (in)
            fclose(in);
        return; /* no x86 CPUID or no /proc here: nothing to compare */
    }
    int family = -1, model = -1;
    char line[512];
    while ((family < 0 || model < 0) && fgets(line, sizeof line, in)) {
        if (family < 0 && sscanf(line, "cpu family : %d", &family) == 1)
            continue;
        if (model < 0 && strncmp(line, "model name", 10) != 0)
            sscanf(line, "model : %d", &model);
    }
    fclose(in);
    CHECK_INT(f.family, family);
    CHECK_INT(f.model_number, model);
}

TEST(cpu_better_core_names_what_the_running_one_is_not)
{
    CpuFeatures zen4 = {.avx = true, .fma = true, .avx2 = true, .avx512f = true,
                        .avx512cd = true, .avx512bw = true, .avx512dq = true,
                        .avx512vl = true, .os_ymm = true, .os_zmm = true};
    CHECK_STR(cpu_blas_better_core(&zen4, "Haswell"), "SkylakeX");
    CHECK_STR(cpu_blas_better_core(&zen4, "Zen"), "SkylakeX");
    CHECK(cpu_blas_better_core(&zen4, "SkylakeX") == NULL);
    CHECK(cpu_blas_better_core(&zen4, "skylakex") == NULL);
    CpuFeatures old = {.sse3 = true};
    CHECK(cpu_blas_better_core(&old, "Prescott") == NULL);
}
