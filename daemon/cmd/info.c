/* info.c — `initlab info`: version, CPU features, the OpenBLAS core and a measured sgemm rate. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "nn/gemm.h"
#include "util/cpu.h"
#include "util/jsonout.h"

static const char usage_text[] =
    "usage: initlab info [--json] [--size N] [--threads T]\n\n"
    "Prints the version, the CPU model and SIMD features, the OpenBLAS core in use and how it\n"
    "was chosen (cpuid, environment, fallback or default), the BLAS thread count, the OpenMP\n"
    "wait policy for T threads (a brief spin, or passive when T exceeds the cores, unless\n"
    "OMP_WAIT_POLICY or GOMP_SPINCOUNT is set), the largest relative error of sgemm against\n"
    "a naive reference, and a measured sgemm rate.\n\n"
    "  --json        one JSON object on stdout\n"
    "  --size N      matrix size of the sgemm measurement (default 2048)\n"
    "  --threads T   BLAS threads for the measurement (default: every core)\n";

static int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},  {"size", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    bool json = false;
    int size = 2048, threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 's': size = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
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
    gemm_set_threads(threads);
    double verify = gemm_verify();
    double gflops = gemm_measure_gflops(size, 0.5);

    const char *wait_policy = getenv("OMP_WAIT_POLICY");
    const char *spin = getenv("GOMP_SPINCOUNT");
    if (json) {
        json_t *o = json_pack("{s:s, s:{s:s, s:s, s:s, s:s?}, s:{s:s, s:s, s:i, s:f, s:{s:i, s:f}}}",
            "version", INITLAB_VERSION,
            "cpu", "vendor", f.vendor, "model", f.brand, "features", features,
                   "suggested_core", suggested,
            "blas", "core", gemm_core_name(), "source", startup_blas_source(),
                    "threads", gemm_threads(), "verify_max_rel_error", verify,
                    "sgemm", "size", size, "gflops", gflops);
        if (!o)
            return 1;
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
    printf("cpu:          %s (%s)\n", f.brand[0] ? f.brand : "unknown", f.vendor);
    printf("features:     %s\n", features);
    printf("blas core:    %s (chosen by %s; best for this cpu: %s)\n", gemm_core_name(),
           startup_blas_source(), suggested ? suggested : "shipped default");
    printf("blas threads: %d\n", gemm_threads());
    printf("openmp wait:  %s%s%s\n", wait_policy ? wait_policy : "libgomp default",
           spin ? ", GOMP_SPINCOUNT=" : "", spin ? spin : "");
    printf("sgemm check:  max relative error %.2g against the naive reference\n", verify);
    printf("sgemm %d³:  %.1f GFLOP/s\n", size, gflops);
    return 0;
}

COMMAND(info, "info", cmd_info, 90, "info [--json]",
        "CPU, OpenBLAS core and a measured sgemm rate")
