/* jsonout.h — the one writer of numbers in initlab's JSON and CSV text: every real in the
 * shortest decimal that reads back to the same value of its type.
 *
 * jansson prints a real with 17 significant digits ("0.59999999999999998"); json_text()
 * prints the same document with each real in its shortest round-trip form ("0.6"), laid
 * out as Python's repr() lays it out: fixed notation for decimal exponents -5 < e < 16
 * with at least one digit after the point ("2.0", "0.0001"), scientific otherwise
 * ("1e-05", "1e+16"). A value that is a float32 at heart (a learning rate from the
 * optimizer's schedule) enters a double through num_float_decimal(), so that it too reads
 * as it was written ("0.02", not "0.019999999552965164"). */
#ifndef INITLAB_UTIL_JSONOUT_H
#define INITLAB_UTIL_JSONOUT_H

#include <jansson.h>
#include <stddef.h>

/* Longest text num_format_double writes, with its terminating NUL. */
#define NUM_TEXT_MAX 32

/* Writes the shortest decimal of v that strtod reads back as v into buf (at least
 * NUM_TEXT_MAX bytes), in the layout above; "nan", "inf" or "-inf" for non-finite v.
 * Returns the length. Can't fail; thread-safe. */
int num_format_double(double v, char *buf);

/* The double nearest to the shortest decimal that strtof reads back as f: 0.02f gives
 * the double 0.02. Non-finite f is returned as it is. Can't fail; thread-safe. */
double num_float_decimal(float f);

/* Like json_dumps(v, flags) (JSON_REAL_PRECISION is ignored), with every real written by
 * num_format_double. Returns a new string for free(), or NULL when out of memory or when
 * jansson refuses v. Thread-safe. */
char *json_text(const json_t *v, size_t flags);

#endif
