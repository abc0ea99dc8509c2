/* startup.c — the process environment libraries read when they load: the OpenBLAS core and
 * the OpenMP wait policy (see cmd.h).
 *
 * OpenBLAS reads OPENBLAS_CORETYPE and libgomp reads OMP_WAIT_POLICY once, when the shared
 * libraries load, which is before main. So the choice is made by re-executing
 * /proc/self/exe once with the variables set; INITLAB_BLAS_SOURCE marks the re-executed
 * process and says how the core was chosen.
 *
 * The wait policy: between two kernels the engine's OpenMP threads wait at a barrier.
 * Sleeping there at once (OMP_WAIT_POLICY=passive) costs a wake-up per kernel, 10-20% of
 * a step for nets of many small layers (measured, 2 threads: MobileNet α 0.25 at 128 px
 * 424 against 470 img/s, ResNet-50 at 64 px 63 against 78). libgomp's default spins a few
 * hundred thousand iterations instead, which collapses training when more threads than
 * cores compete: a spinning thread burns the time slice its partner needs (two 2-thread
 * MobileNet benches at once ran at 27 img/s each against 340 alone; passive: 271 + 257).
 * So initlab spins briefly (GOMP_SPINCOUNT=10000, some tens of microseconds: all of the
 * speed on an idle machine) and sleeps at once when the command says it will run more
 * compute threads than there are cores (startup_wait_policy). Setting OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT overrules both.
 *
 * An OPENBLAS_CORETYPE set in the environment is honoured; when OpenBLAS then runs another
 * core than the one this CPU supports, the log at start says so once (INITLAB_BLAS_NOTED
 * keeps re-executed processes from repeating it), without measuring: `initlab info`
 * measures both cores and prints what the setting costs.
 *
 * The process name: the kernel names a process after the file it executes, so an exec of
 * /proc/self/exe would call it `exe` (what `systemctl status`, the journal's _COMM, `ps`
 * and `pgrep initlab` show). Exec'ing /proc/self/exe is kept — it is the running file even
 * when the path was replaced meanwhile — and the name is carried across: INITLAB_COMM
 * holds it through the exec and the new image gives it back to every thread it has
 * (OpenBLAS starts its threads as it loads, before main). */
#include "cmd/cmd.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "nn/gemm.h"
#include "util/cpu.h"
#include "util/log.h"

#define SOURCE_VAR "INITLAB_BLAS_SOURCE"
/* Set once the override of a better core has been logged. */
#define NOTED_VAR "INITLAB_BLAS_NOTED"
/* "spin" or "passive" when initlab chose the wait policy, "user" when the user did. */
#define POLICY_VAR "INITLAB_WAIT_POLICY"
/* The process name (comm) before the re-execution, restored after it. */
#define COMM_VAR "INITLAB_COMM"
#define SPIN_COUNT "10000"
/* Largest relative error of the chosen core against the naive sgemm; a correct core is
 * near 1e-6. INITLAB_BLAS_TOLERANCE overrides it (0 forces the fallback path). */
#define VERIFY_TOLERANCE 1e-4

static const char *source = "default";
static char **saved_argv;

/* Gives every thread of the process the name in INITLAB_COMM, if set, and unsets it so
 * that programs this one starts do not inherit it. A thread that cannot be renamed keeps
 * its name; can't fail otherwise. */
static void restore_comm(void)
{
    const char *saved = getenv(COMM_VAR);
    if (!saved)
        return;
    char name[16];
    snprintf(name, sizeof name, "%s", saved);
    unsetenv(COMM_VAR);
    if (!name[0])
        return;
    prctl(PR_SET_NAME, name, 0, 0, 0);
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return;
    pid_t self = getpid();
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long tid = strtol(e->d_name, &end, 10);
        if (*end || tid <= 0 || tid == self)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%ld/comm", tid);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t ignored = write(fd, name, strlen(name));
        (void)ignored;
        close(fd);
    }
    closedir(d);
}

static void reexec(char **argv)
{
    char name[17] = "";
    if (prctl(PR_GET_NAME, name, 0, 0, 0) == 0 && name[0])
        setenv(COMM_VAR, name, 1);
    fflush(NULL);
    execv("/proc/self/exe", argv);
    unsetenv(COMM_VAR);
    /* Only reached when exec failed: carry on with what is loaded. */
    log_warn("startup", "could not re-execute to choose the OpenBLAS core and the OpenMP "
             "wait policy; keeping %s", gemm_core_name());
}

/* Sets the OpenMP wait policy (brief spinning) unless the user chose one; true when it
 * changed anything. */
static bool choose_wait_policy(void)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) {
        setenv(POLICY_VAR, "user", 1);
        return false;
    }
    setenv("GOMP_SPINCOUNT", SPIN_COUNT, 1);
    setenv(POLICY_VAR, "spin", 1);
    return true;
}

/* Sets OPENBLAS_CORETYPE from the CPU unless the user chose one; returns the source. */
static const char *choose_core(void)
{
    if (getenv("OPENBLAS_CORETYPE"))
        return "environment";
    CpuFeatures f;
    cpu_detect(&f);
    const char *core = cpu_blas_core(&f);
    if (!core)
        return "default";
    setenv("OPENBLAS_CORETYPE", core, 1);
    return "cpuid";
}

/* Logs, once per process tree, that OPENBLAS_CORETYPE from the environment runs another
 * core than the one this CPU supports. `info` says it itself, with measured rates. */
static void note_override(int argc, char **argv)
{
    const char *value = getenv("OPENBLAS_CORETYPE");
    if (strcmp(source, "environment") != 0 || !value || getenv(NOTED_VAR) ||
        (argc > 1 && strcmp(argv[1], "info") == 0))
        return;
    CpuFeatures f;
    cpu_detect(&f);
    const char *better = cpu_blas_better_core(&f, gemm_core_name());
    if (!better)
        return;
    setenv(NOTED_VAR, "1", 1);
    log_warn("blas", "OPENBLAS_CORETYPE=%s is set in the environment: OpenBLAS runs its %s "
             "core, though this CPU supports %s (`initlab info` measures what that costs)",
             value, gemm_core_name(), better);
}

void startup_runtime(int argc, char **argv)
{
    saved_argv = argv;
    restore_comm();
    const char *marked = getenv(SOURCE_VAR);
    if (!marked) {
        bool policy_changed = choose_wait_policy();
        source = choose_core();
        setenv(SOURCE_VAR, source, 1);
        if (strcmp(source, "cpuid") != 0 && !policy_changed) {
            note_override(argc, argv);
            return; /* nothing the loaded libraries have not seen already */
        }
        reexec(argv);
        /* exec failed: the libraries run as loaded */
        unsetenv("OPENBLAS_CORETYPE");
        source = "default";
        setenv(SOURCE_VAR, source, 1);
        return;
    }
    source = strcmp(marked, "cpuid") == 0 ? "cpuid"
           : strcmp(marked, "environment") == 0 ? "environment"
           : strcmp(marked, "fallback") == 0 ? "fallback" : "default";
    if (strcmp(source, "cpuid") != 0) {
        note_override(argc, argv);
        return;
    }
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

void startup_wait_policy(int threads)
{
    const char *policy = getenv(POLICY_VAR);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (!saved_argv || !policy || strcmp(policy, "spin") != 0 || cpus < 1 || threads <= cpus)
        return;
    unsetenv("GOMP_SPINCOUNT");
    setenv("OMP_WAIT_POLICY", "passive", 1);
    setenv(POLICY_VAR, "passive", 1);
    reexec(saved_argv);
}

const char *startup_blas_source(void)
{
    return source;
}
