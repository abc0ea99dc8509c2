/* startup.c — choosing the OpenBLAS core before the library initializes (see cmd.h).
 *
 * OpenBLAS reads OPENBLAS_CORETYPE once, when the shared library loads, which is before
 * main. So the choice is made by re-executing /proc/self/exe once with the variable set;
 * INITLAB_BLAS_SOURCE marks the re-executed process and says how the core was chosen. */
#include "cmd/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/gemm.h"
#include "util/cpu.h"
#include "util/log.h"

#define SOURCE_VAR "INITLAB_BLAS_SOURCE"
/* Largest relative error of the chosen core against the naive sgemm; a correct core is
 * near 1e-6. INITLAB_BLAS_TOLERANCE overrides it (0 forces the fallback path). */
#define VERIFY_TOLERANCE 1e-4

static const char *source = "default";

static void reexec(char **argv)
{
    fflush(NULL);
    execv("/proc/self/exe", argv);
    /* Only reached when exec failed: carry on with the core already loaded. */
    log_warn("blas", "could not re-execute to choose the OpenBLAS core; keeping %s",
             gemm_core_name());
}

void startup_blas(int argc, char **argv)
{
    (void)argc;
    const char *marked = getenv(SOURCE_VAR);
    if (!marked) {
        if (getenv("OPENBLAS_CORETYPE")) {
            source = "environment";
            setenv(SOURCE_VAR, source, 1);
            return;
        }
        CpuFeatures f;
        cpu_detect(&f);
        const char *core = cpu_blas_core(&f);
        if (!core) {
            setenv(SOURCE_VAR, source, 1);
            return;
        }
        setenv("OPENBLAS_CORETYPE", core, 1);
        setenv(SOURCE_VAR, "cpuid", 1);
        reexec(argv);
        unsetenv("OPENBLAS_CORETYPE");
        setenv(SOURCE_VAR, "default", 1);
        return;
    }
    source = strcmp(marked, "cpuid") == 0 ? "cpuid"
           : strcmp(marked, "environment") == 0 ? "environment"
           : strcmp(marked, "fallback") == 0 ? "fallback" : "default";
    if (strcmp(source, "cpuid") != 0)
        return;
    const char *tol_text = getenv("INITLAB_BLAS_TOLERANCE");
    double tolerance = tol_text ? strtod(tol_text, NULL) : VERIFY_TOLERANCE;
    double err = gemm_verify();
    if (err >= 0 && err < tolerance)
        return;
    log_warn("blas", "sgemm on the %s core disagrees with the reference (relative error %g); "
             "falling back to the shipped core", gemm_core_name(), err);
    unsetenv("OPENBLAS_CORETYPE");
    setenv(SOURCE_VAR, "fallback", 1);
    reexec(argv);
    source = "cpuid";
}

const char *startup_blas_source(void)
{
    return source;
}
