/* info.c — `initlab info`: version, CPU features, the OpenBLAS core and a measured sgemm
 * rate beside the machine's limits (the fp32 FMA peak and the streaming memory bandwidth,
 * util/peak.h); when the environment overrides the core this CPU supports, that core's
 * rate too.
 *
 * OpenBLAS picks its core once, when it loads, so the other core can only be measured in
 * another process: info runs this program again (/proc/self/exe info --json --no-peak)
 * with OPENBLAS_CORETYPE set to that core and reads the rate from its output.
 *
 * The limits are measured before the sgemm: OpenBLAS's threads spin for a while after a
 * call and would take cycles from the FMA loop's team. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "nn/gemm.h"
#include "util/cpu.h"
#include "util/isa.h"
#include "util/jsonout.h"
#include "util/peak.h"

static const char usage_text[] =
    "usage: initlab info [--json] [--size N] [--threads T] [--no-peak]\n\n"
    "Prints the version, the CPU model and SIMD features, the OpenBLAS core in use and how it\n"
    "was chosen (cpuid, environment, fallback or default), the BLAS thread count, the OpenMP\n"
    "wait policy for T threads (a brief spin, or passive when T exceeds the cores, unless\n"
    "OMP_WAIT_POLICY or GOMP_SPINCOUNT is set), the largest relative error of sgemm against\n"
    "a naive reference, and a measured sgemm rate. When OPENBLAS_CORETYPE selects another\n"
    "core than the one this CPU supports, it also measures that core (in a second process)\n"
    "and says what the setting costs.\n\n"
    "Beside the sgemm rate it measures the machine's limits, about a second in all:\n"
    "  fp32 FMA peak  a loop of independent FMA chains (12 vectors per thread) with the\n"
    "                 widest vector instruction set the CPU has (avx512, avx2, or generic:\n"
    "                 a multiply and an add), on 1 thread (per core) and on T threads at once\n"
    "  memory         a streaming pass dst = 2·src over two buffers larger than the cache\n"
    "                 (up to 256 MiB each) on T threads, in GB/s of bytes read + written\n"
    "and prints the sgemm rate as a share of the FMA peak on T threads. A workload's GFLOP/s\n"
    "and GB/s compare with these (initlab bench --profile does so per layer type).\n\n"
    "  --json        one JSON object on stdout\n"
    "  --size N      matrix size of the sgemm measurement (default 2048)\n"
    "  --threads T   threads of the measurements: BLAS threads for the sgemm, the team of\n"
    "                the FMA loop and the streaming pass (default: every core, as a worker)\n"
    "  --no-peak     measure the sgemm only (JSON: \"peak\" is null)\n";

extern char **environ;

/* What the environment's core costs: the rates of both cores, or other_gflops < 0 with
 * the reason in why when the other core could not be measured. */
typedef struct {
    const char *value;        /* OPENBLAS_CORETYPE as set */
    const char *other;        /* the core this CPU supports */
    double gflops, other_gflops;
    char why[160];
} CoreOverride;

/* Runs `initlab info --json --no-peak --size N --threads T` with OPENBLAS_CORETYPE=core
 * (verified against the naive sgemm as a core initlab chooses itself is) and returns its
 * measured GFLOP/s, or -1 with a reason in why. */
static double measure_other_core(const char *core, int size, int threads, char *why,
                                 size_t whylen)
{
    size_t n_env = 0;
    while (environ[n_env])
        n_env++;
    char **envp = calloc(n_env + 3, sizeof *envp);
    char core_var[64], size_arg[16], threads_arg[16];
    snprintf(core_var, sizeof core_var, "OPENBLAS_CORETYPE=%s", core);
    snprintf(size_arg, sizeof size_arg, "%d", size);
    snprintf(threads_arg, sizeof threads_arg, "%d", threads);
    int pipefd[2] = {-1, -1};
    if (!envp || pipe2(pipefd, O_CLOEXEC) < 0) {
        snprintf(why, whylen, "%s", envp ? strerror(errno) : "out of memory");
        free(envp);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], "OPENBLAS_CORETYPE=", 18) != 0 &&
            strncmp(environ[i], "INITLAB_BLAS_SOURCE=", 20) != 0)
            envp[k++] = environ[i];
    envp[k++] = core_var;
    envp[k++] = "INITLAB_BLAS_SOURCE=cpuid";
    char *argv[] = {"initlab", "info", "--json", "--no-peak", "--size", size_arg,
                    "--threads", threads_arg, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
    pid_t pid;
    fflush(NULL);
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    close(pipefd[1]);
    if (rc != 0) {
        snprintf(why, whylen, "cannot run a second process: %s", strerror(rc));
        close(pipefd[0]);
        return -1;
    }
    char out[16384];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof out - 1 &&
           ((got = read(pipefd[0], out + len, sizeof out - 1 - len)) > 0 ||
            (got < 0 && errno == EINTR)))
        if (got > 0)
            len += (size_t)got;
    out[len] = '\0';
    close(pipefd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    json_t *o = json_loads(out, 0, NULL);
    const char *ran = json_string_value(json_object_get(json_object_get(o, "blas"), "core"));
    json_t *rate = json_object_get(json_object_get(json_object_get(o, "blas"), "sgemm"),
                                   "gflops");
    double gflops = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        snprintf(why, whylen, "the measuring process %s %d", WIFEXITED(status) ?
                 "exited with status" : "was killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    else if (!ran || !json_is_number(rate))
        snprintf(why, whylen, "the measuring process printed no rate");
    else if (strcasecmp(ran, core) != 0)
        snprintf(why, whylen, "OpenBLAS ran %s instead (its sgemm disagreed with the "
                 "reference, or OpenBLAS does not know the core)", ran);
    else
        gflops = json_number_value(rate);
    json_decref(o);
    return gflops;
}

/* The sentence `info` prints about an overriding OPENBLAS_CORETYPE, into buf. */
static void override_message(const CoreOverride *c, char *buf, size_t size)
{
    if (c->other_gflops < 0) {
        snprintf(buf, size, "OPENBLAS_CORETYPE=%s is set: sgemm %.0f GFLOP/s; %s, which this "
                 "CPU supports, could not be measured: %s", c->value, c->gflops, c->other,
                 c->why);
        return;
    }
    double ratio = c->gflops > 0 ? c->other_gflops / c->gflops : 0;
    snprintf(buf, size, "OPENBLAS_CORETYPE=%s is set: sgemm %.0f GFLOP/s; %s, which this CPU "
             "supports, measured %.0f GFLOP/s (%.2g×)%s", c->value, c->gflops, c->other,
             c->other_gflops, ratio,
             ratio > 1 ? "; unset OPENBLAS_CORETYPE to let initlab choose it" : "");
}

/* The JSON form of an override: {variable, value, gflops, supported_core,
 * supported_gflops | null, ratio | null, message}; new reference, NULL when out of memory. */
static json_t *override_json(const CoreOverride *c, const char *message)
{
    bool measured = c->other_gflops >= 0 && c->gflops > 0;
    return json_pack("{s:s, s:s, s:f, s:s, s:o, s:o, s:s}", "variable", "OPENBLAS_CORETYPE",
                     "value", c->value, "gflops", c->gflops, "supported_core", c->other,
                     "supported_gflops",
                     measured ? json_real(c->other_gflops) : json_null(),
                     "ratio", measured ? json_real(c->other_gflops / c->gflops) : json_null(),
                     "message", message);
}

/* The machine's limits on the measurement's threads (util/peak.h). */
typedef struct {
    PeakFma core;       /* one thread */
    PeakFma team;       /* the measurement's threads */
    PeakBandwidth bw;   /* bw.gbs < 0 when the buffers could not be allocated */
} Limits;

/* Measures the FMA peak of the widest ISA on 1 and on threads threads, and the streaming
 * bandwidth on threads threads: about a second. */
static void measure_limits(int threads, Limits *lim)
{
    Isa isa = isa_best();
    peak_fma(isa, 1, 0.15, &lim->core);
    if (threads > 1)
        peak_fma(isa, threads, 0.15, &lim->team);
    else
        lim->team = lim->core;
    if (peak_bandwidth(threads, 0, 0.25, &lim->bw) < 0)
        lim->bw = (PeakBandwidth){.threads = threads, .gbs = -1};
}

/* The JSON form of the limits: {isa, chains, fma_gflops_per_core, threads, fma_gflops,
 * bandwidth_gbs | null, bandwidth_buffer_bytes}; new reference, NULL when out of memory. */
static json_t *limits_json(const Limits *lim)
{
    return json_pack("{s:s, s:i, s:f, s:i, s:f, s:o, s:I}", "isa", isa_name(lim->core.isa),
                     "chains", PEAK_CHAINS, "fma_gflops_per_core", lim->core.gflops,
                     "threads", lim->team.threads, "fma_gflops", lim->team.gflops,
                     "bandwidth_gbs", lim->bw.gbs >= 0 ? json_real(lim->bw.gbs) : json_null(),
                     "bandwidth_buffer_bytes", (json_int_t)lim->bw.bytes);
}

static int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},  {"size", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {"no-peak", no_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
    bool json = false, peak = true;
    int size = 2048, threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 's': size = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'n': peak = false; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (optind < argc || size < 16 || size > 8192 || threads < 1 || threads > 1024) {
        fprintf(stderr, "initlab info: --size must be 16..8192 and --threads 1..1024\n");
        return 2;
    }
    startup_wait_policy(threads);

    CpuFeatures f;
    cpu_detect(&f);
    char features[256];
    cpu_features_string(&f, features, sizeof features);
    const char *suggested = cpu_blas_core(&f);
    Limits lim = {.bw.gbs = -1};
    if (peak)
        measure_limits(threads, &lim);
    gemm_set_threads(threads);
    double verify = gemm_verify();
    double gflops = gemm_measure_gflops(size, 0.5);
    /* sgemm runs on as many threads as the FMA team */
    double share = peak && lim.team.gflops > 0 && gflops > 0 ? gflops / lim.team.gflops : -1;

    /* The environment chose a core other than the one this CPU supports: measure that one. */
    CoreOverride over = {.value = getenv("OPENBLAS_CORETYPE"), .gflops = gflops};
    bool overridden = strcmp(startup_blas_source(), "environment") == 0 && over.value &&
                      (over.other = cpu_blas_better_core(&f, gemm_core_name())) != NULL;
    char message[512] = "";
    if (overridden) {
        over.other_gflops = measure_other_core(over.other, size, threads, over.why,
                                               sizeof over.why);
        override_message(&over, message, sizeof message);
    }

    const char *wait_policy = getenv("OMP_WAIT_POLICY");
    const char *spin = getenv("GOMP_SPINCOUNT");
    if (json) {
        json_t *o = json_pack("{s:s, s:{s:s, s:i, s:i, s:s, s:s, s:s, s:s, s:s?}, "
                              "s:{s:s, s:s, s:i, s:f, s:{s:i, s:f, s:o}}}",
            "version", INITLAB_VERSION,
            "cpu", "vendor", f.vendor, "family", f.family, "model_number", f.model_number,
                   "model", f.model, "brand", f.brand, "isa", isa_name(isa_best()),
                   "features", features,
                   "suggested_core", suggested,
            "blas", "core", gemm_core_name(), "source", startup_blas_source(),
                    "threads", gemm_threads(), "verify_max_rel_error", verify,
                    "sgemm", "size", size, "gflops", gflops,
                             "peak_share", share >= 0 ? json_real(share) : json_null());
        if (!o)
            return 1;
        json_object_set_new(o, "peak", peak ? limits_json(&lim) : json_null());
        json_object_set_new(json_object_get(o, "blas"), "override",
                            overridden ? override_json(&over, message) : json_null());
        json_object_set_new(o, "openmp", json_pack("{s:s?, s:s?}", "wait_policy", wait_policy,
                                                   "spin_count", spin));
        char *text = json_text(o, JSON_INDENT(2));
        json_decref(o);
        if (!text)
            return 1;
        puts(text);
        free(text);
        return 0;
    }
    printf("initlab %s\n", INITLAB_VERSION);
    printf("cpu:          %s (%s family %d model %d", f.model[0] ? f.model : "unknown",
           f.vendor, f.family, f.model_number);
    if (f.brand[0] && strcmp(f.brand, f.model) != 0)
        printf("; CPUID brand string: %s", f.brand);
    printf(")\n");
    printf("features:     %s\n", features);
    printf("blas core:    %s (chosen by %s; best for this cpu: %s)\n", gemm_core_name(),
           startup_blas_source(), suggested ? suggested : "shipped default");
    printf("blas threads: %d\n", gemm_threads());
    printf("openmp wait:  %s%s%s\n", wait_policy ? wait_policy : "libgomp default",
           spin ? ", GOMP_SPINCOUNT=" : "", spin ? spin : "");
    printf("sgemm check:  max relative error %.2g against the naive reference\n", verify);
    printf("sgemm %d³:  %.1f GFLOP/s", size, gflops);
    if (share >= 0)
        printf(", %.0f%% of the FMA peak on %d thread%s", 100 * share, lim.team.threads,
               lim.team.threads == 1 ? "" : "s");
    printf("\n");
    if (peak) {
        printf("fma peak:     %.1f GFLOP/s per core, %.0f GFLOP/s on %d thread%s (fp32, %s, "
               "%d chains)\n", lim.core.gflops, lim.team.gflops, lim.team.threads,
               lim.team.threads == 1 ? "" : "s", isa_name(lim.core.isa), PEAK_CHAINS);
        if (lim.bw.gbs >= 0)
            printf("memory:       %.1f GB/s streaming on %d thread%s (read + written, two "
                   "%zu MiB buffers)\n", lim.bw.gbs, lim.bw.threads,
                   lim.bw.threads == 1 ? "" : "s", lim.bw.bytes >> 20);
        else
            printf("memory:       not measured (no memory for the buffers)\n");
    }
    if (overridden)
        printf("blas note:    %s\n", message);
    return 0;
}

COMMAND(info, "info", cmd_info, 90, "info [--json]",
        "CPU, OpenBLAS core and a measured sgemm rate")
