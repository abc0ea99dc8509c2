/* test_util_jsonout.c — shortest round-trip numbers in JSON and CSV text (util/jsonout.h),
 * against literals printed by Python's repr() and against strtod on random doubles. */
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonout.h"
#include "util/rng.h"

TEST(util_jsonout_doubles_read_as_python_repr)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.6, "0.6"},
        {0.02, "0.02"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e-4, "0.0001"},
        {1e-5, "1e-05"},
        {1e16, "1e+16"},
        {1e15, "1000000000000000.0"},
        {123456789.0, "123456789.0"},
        {-0.0, "-0.0"},
        {0.0, "0.0"},
        {2.0, "2.0"},
        {100000.0, "100000.0"},
        {5e-324, "5e-324"},
        {1.5e-323, "1.5e-323"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {0.94306817699998646, "0.9430681769999865"},
        {-1.5e-7, "-1.5e-07"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[NUM_TEXT_MAX];
        int n = num_format_double(cases[i].v, buf);
        CHECK_STR(buf, cases[i].text);
        CHECK_INT(n, (long long)strlen(cases[i].text));
    }
}

/* Significant digits of a formatted number: leading and trailing zeros are layout. */
static int significant_digits(const char *text)
{
    char d[NUM_TEXT_MAX];
    int n = 0;
    for (const char *p = text; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && (n > 0 || *p != '0'))
            d[n++] = *p;
    while (n > 1 && d[n - 1] == '0')
        n--;
    return n;
}

TEST(util_jsonout_random_doubles_round_trip_with_no_digit_to_spare)
{
    Rng rng;
    rng_seed(&rng, 24);
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = rng_u64(&rng);
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v) || v == 0)
            continue;
        char buf[NUM_TEXT_MAX], fewer[NUM_TEXT_MAX];
        num_format_double(v, buf);
        REQUIRE(strtod(buf, NULL) == v);
        int digits = significant_digits(buf);
        if (digits > 1) {
            snprintf(fewer, sizeof fewer, "%.*e", digits - 2, v);
            if (strtod(fewer, NULL) == v)
                test_fail(__FILE__, __LINE__, "%s has a digit to spare: %s reads back too",
                          buf, fewer);
        }
    }
}

TEST(util_jsonout_float32_values_become_their_shortest_decimal)
{
    CHECK(num_float_decimal(0.02f) == 0.02);
    CHECK(num_float_decimal(0.9f) == 0.9);
    CHECK(num_float_decimal(1e-4f) == 1e-4);
    CHECK(num_float_decimal(1.0f / 3) == 0.33333334); /* nine digits tell this float */
    CHECK(num_float_decimal(-0.0f) == 0 && signbit(num_float_decimal(-0.0f)));
    Rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < 20000; i++) {
        uint32_t bits = (uint32_t)rng_u64(&rng);
        float f;
        memcpy(&f, &bits, sizeof f);
        if (isfinite(f))
            REQUIRE((float)num_float_decimal(f) == f);
    }
}

TEST(util_jsonout_json_text_rewrites_reals_only)
{
    json_t *o = json_pack("{s:f, s:f, s:i, s:s, s:[f, f, b, n], s:f}", "split", 0.6,
                          "lr", 0.02, "epochs", 100, "note", "0.59999999999999998 -1.5e3",
                          "list", 1e-5, -2.0, 1, "big", 1e16);
    REQUIRE(o);
    char *text = json_text(o, JSON_COMPACT);
    CHECK_STR(text, "{\"split\":0.6,\"lr\":0.02,\"epochs\":100,"
                    "\"note\":\"0.59999999999999998 -1.5e3\","
                    "\"list\":[1e-05,-2.0,true,null],\"big\":1e+16}");
    free(text);
    json_t *s = json_string("a \"quoted\" 1.25 \\ string");
    text = json_text(s, JSON_ENCODE_ANY);
    CHECK_STR(text, "\"a \\\"quoted\\\" 1.25 \\\\ string\"");
    free(text);
    json_decref(s);
    text = json_text(o, JSON_INDENT(1) | JSON_REAL_PRECISION(3));
    CHECK(text && strstr(text, "\"lr\": 0.02,") != NULL);
    free(text);
    json_decref(o);
}
