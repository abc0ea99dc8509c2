/* test.h — the unit-test harness: TEST() registers a case, CHECK*() records failures. */
#ifndef INITLAB_TEST_H
#define INITLAB_TEST_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

/* Registers fn under name; called from the constructors TEST() emits. Can't fail. */
void test_register(const char *name, void (*fn)(void));
/* Records one failed check of the running test and prints it. Can't fail. */
void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Runs fn once under each instruction set the CPU has (util/isa.h: isa_limit), naming the
 * set of a run with failed checks, then restores the limit. Can't fail. */
void test_each_isa(void (*fn)(void));
/* Relative error of tensor a against reference b (n floats): max |a − b| over
 * max(max |b|, 1e-6); infinite when a difference is NaN. */
double test_rel_err(const float *a, const float *b, size_t n);

/* Defines a test case; cases run in name order, each in the same process. */
#define TEST(name)                                                            \
    static void name(void);                                                   \
    __attribute__((constructor)) static void test_reg_##name(void)            \
    { test_register(#name, name); }                                           \
    static void name(void)

/* Every check reports and lets the test go on; a test with any failed check fails. */
#define CHECK(cond)                                                           \
    do { if (!(cond)) test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); } while (0)

#define CHECK_INT(a, b)                                                       \
    do { long long a_ = (a), b_ = (b);                                        \
         if (a_ != b_) test_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", \
                                 #a, a_, #b, b_); } while (0)

#define CHECK_STR(a, b)                                                       \
    do { const char *a_ = (a), *b_ = (b);                                     \
         if (!a_ || !b_ || strcmp(a_, b_) != 0)                              \
             test_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"",   \
                       #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)

/* |a - b| <= tol, and neither is NaN. */
#define CHECK_NEAR(a, b, tol)                                                 \
    do { double a_ = (a), b_ = (b), t_ = (tol);                               \
         if (!(fabs(a_ - b_) <= t_))                                          \
             test_fail(__FILE__, __LINE__, "%s = %.9g, expected %s = %.9g (tol %g)", \
                       #a, a_, #b, b_, t_); } while (0)

/* Stops the running test (after a failed precondition that makes the rest meaningless). */
#define REQUIRE(cond)                                                         \
    do { if (!(cond)) { test_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond); return; } } while (0)

#endif
