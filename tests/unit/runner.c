/* runner.c — runs every registered unit test and prints "N passed, N failed".
 *
 * Usage: unit_tests [SUBSTRING...]  runs the tests whose name contains any SUBSTRING.
 * Like initlab, the runner first chooses the OpenBLAS core (cmd/cmd.h: startup_runtime).
 * Exit status 0 when every selected test passed, 1 otherwise. */
#include "test.h"

#include "cmd/cmd.h"
#include "util/isa.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TESTS 1024

static struct { const char *name; void (*fn)(void); } tests[MAX_TESTS];
static int n_tests;
static int current_failures;

double test_rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= num))
            num = isnan(d) ? INFINITY : d;
        den = fmax(den, fabs((double)b[i]));
    }
    return num / den;
}

void test_register(const char *name, void (*fn)(void))
{
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "runner: more than %d tests\n", MAX_TESTS);
        abort();
    }
    tests[n_tests].name = name;
    tests[n_tests].fn = fn;
    n_tests++;
}

void test_each_isa(void (*fn)(void))
{
    const Isa saved = isa_active();
    for (Isa isa = ISA_GENERIC; isa <= isa_best(); isa++) {
        isa_limit(isa);
        int before = current_failures;
        fn();
        if (current_failures != before)
            printf("    (under instruction set %s)\n", isa_name(isa));
    }
    isa_limit(saved);
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    if (current_failures++ < 20) {
        fprintf(stdout, "    %s:%d: ", file, line);
        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    startup_runtime(argc, argv); /* the tests run under the core initlab would choose */
    qsort(tests, n_tests, sizeof tests[0], by_name);
    for (int i = 0; i < n_tests; i++) {
        if (!selected(tests[i].name, argc, argv))
            continue;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        current_failures = 0;
        tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (current_failures) {
            printf("FAIL %s (%d failed checks, %.0f ms)\n", tests[i].name, current_failures, ms);
            failed++;
        } else {
            printf("ok   %s (%.0f ms)\n", tests[i].name, ms);
            passed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
