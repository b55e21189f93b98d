/* test_dtoa.c — dtoa_shortest against glibc's printf and strtod, which are exact.
 *
 * For millions of doubles of the kinds records print (random bit patterns, float32 values
 * widened, statistics of standard-normal float32 arrays, integers, powers of two and ten
 * and their neighbours — at a power of two the lower half-gap is half as wide —,
 * subnormals), the text T, with n significant digits, must
 *  - read back as the double (strtod);
 *  - be one that no (n-1)-digit decimal beats: neither of the two that bracket the double
 *    reads back (any shorter decimal that did would be one of them, or make one of them
 *    read back too, the interval being one piece around the double);
 *  - be printf's "%.ng" (the closest n-digit decimal, ties to even) whenever that reads
 *    back, and in any case be laid out as printf's %.ng lays out T's own value.
 * CKMON_DTOA_COUNT=N checks N doubles of each random kind (default 300,000, about
 * 2 million doubles in all, a few seconds).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtoa.h"
#include "core/stats.h"
#include "xorshift.h"

static uint64_t state = 0x9e3779b97f4a7c15ull;
static long count = 300000;
static long checked;

static uint64_t next_random(void)
{
    return xorshift64(&state);
}

static double from_bits(uint64_t bits)
{
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* The significant digits of a decimal text and the exponent of its first one. */
static int digits_of(const char *text, char *digits, int *first)
{
    int n = 0, point = -1, position = 0, leading = 1, start = 0;
    const char *p = text + (*text == '-');
    for (; *p && *p != 'e'; p++) {
        if (*p == '.') {
            point = position;
            continue;
        }
        if (leading && *p == '0') {
            position++;
            continue;
        }
        if (leading) start = position;
        leading = 0;
        digits[n++] = *p;
        position++;
    }
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';
    if (point < 0) point = position;
    *first = (*p == 'e' ? atoi(p + 1) : 0) + point - start - 1;
    return n;
}

/* Whether a decimal of `len` significant digits, on v's own scale, reads back as v: the
 * two that bracket v, printf's rounding and its neighbour on v's other side. */
static int shorter_reads_back(double v, int len)
{
    char text[64], exact[64];
    snprintf(exact, sizeof exact, "%.40e", v); /* v's own first-digit exponent */
    int scale = atoi(strchr(exact, 'e') + 1) - (len - 1);
    snprintf(text, sizeof text, "%.*e", len - 1, v);
    double rounded = strtod(text, NULL);
    if (rounded == v) return 1;
    char digits[32];
    int first;
    digits_of(text, digits, &first);
    /* printf's rounding as an integer times 10^scale (9.9 may have become 10) */
    unsigned long long m = strtoull(digits, NULL, 10);
    for (int i = (int)strlen(digits) - 1; i < first - scale; i++)
        m *= 10;
    m = fabs(rounded) > fabs(v) ? m - 1 : m + 1;
    snprintf(text, sizeof text, "%s%llue%d", v < 0 ? "-" : "", m, scale);
    return m > 0 && strtod(text, NULL) == v;
}

static void check(double v)
{
    char text[DTOA_TEXT_MAX + 8], digits[32], expected[64];
    int first;
    checked++;
    memset(text, 'x', sizeof text);
    int len = dtoa_shortest(v, text);
    if (len != (int)strlen(text) || len >= DTOA_TEXT_MAX)
        fail_msg("%a: length %d for %s", v, len, text);
    if (strtod(text, NULL) != v) fail_msg("%a (%.17g) printed as %s", v, v, text);
    if (v == 0) return;
    int n = digits_of(text, digits, &first);
    if (n > 1 && shorter_reads_back(v, n - 1))
        fail_msg("%a: %s, but %d digits read back", v, text, n - 1);
    snprintf(expected, sizeof expected, "%.*g", n, v);
    if (strtod(expected, NULL) == v) {
        if (strcmp(text, expected) != 0) fail_msg("%a: %s, printf closer: %s", v, text, expected);
        return;
    }
    snprintf(expected, sizeof expected, "%.*Lg", n, strtold(text, NULL));
    if (strcmp(text, expected) != 0) fail_msg("%a: %s, laid out by printf %s", v, text, expected);
}

static void check_both_signs(double v)
{
    check(v);
    check(-v);
}

static void test_random_bit_patterns(void **unused)
{
    for (long i = 0; i < count; i++) {
        double v = from_bits(next_random());
        if (isfinite(v)) check(v);
    }
}

static void test_float32_values_widened(void **unused)
{
    for (long i = 0; i < count; i++) {
        uint32_t bits = (uint32_t)next_random();
        float f;
        memcpy(&f, &bits, sizeof f);
        if (isfinite(f)) check(f);
    }
    /* and as weights are: small, of either sign, near 1 */
    for (long i = 0; i < count; i++) {
        double u = (double)(next_random() >> 11) / 0x1p53;
        check((float)((u - 0.5) * 0.2));
        check((float)(1 + (u - 0.5) * 1e-3));
    }
}

/* Standard-normal float32 values (Box-Muller), as model weights and activations are. */
static float normal(void)
{
    double u = ((double)(next_random() >> 11) + 0.5) / 0x1p53;
    double w = (double)(next_random() >> 11) / 0x1p53;
    return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * w));
}

/* What a record prints for a tensor: min, max, mean, std and the head, computed by the
 * collector's own statistics over standard-normal arrays of several scales and sizes. */
static void test_statistics_of_normal_arrays(void **unused)
{
    float values[512];
    for (long t = 0; t < count / 20; t++) {
        size_t n = 1 + (size_t)(next_random() % 512);
        double scale = ldexp(1.0, (int)(next_random() % 41) - 30) * (1 + (t % 7) / 10.0);
        for (size_t i = 0; i < n; i++)
            values[i] = (float)(normal() * scale);
        struct tensor_stats s;
        stats_init(&s, DTYPE_F32);
        stats_feed(&s, values, n * sizeof values[0]);
        check(s.min);
        check(s.max);
        check(s.mean);
        check(stats_std(&s));
        for (unsigned i = 0; i < s.nhead; i++)
            check(s.head[i]);
    }
}

static void test_integers(void **unused)
{
    for (long i = 0; i < 100000; i++)
        check((double)i);
    for (long i = 0; i < count / 4; i++) {
        uint64_t r = next_random();
        check_both_signs((double)(r >> (r % 64)));
        check((double)(int64_t)r);
    }
    check(9007199254740993.0); /* 2^53 + 1 rounds to 2^53 */
    check(18446744073709551615.0);
    check(1e23);
    check(9.999999999999999e22);
}

/* Every power of two, its neighbours each side, and 3 and 5 times it: the lower half-gap
 * is half as wide at a power of two (not at the smallest normal, 2^-1022, nor in the
 * subnormals, which are as dense as it). */
static void test_powers_of_two(void **unused)
{
    for (int e = -1074; e <= 1023; e++) {
        double v = ldexp(1.0, e);
        check_both_signs(v);
        check(nextafter(v, 0));
        check(nextafter(v, INFINITY));
        if (e < 1022) check(3 * v);
        if (e < 1021) check(5 * v);
    }
    check(0x1p-1022);
    check(0x1.fffffffffffffp+1023);
}

/* 10^e as strtod reads it and its neighbours: digits are all zeros there. */
static void test_powers_of_ten(void **unused)
{
    char text[16];
    for (int e = -324; e <= 308; e++) {
        snprintf(text, sizeof text, "1e%d", e);
        double v = strtod(text, NULL);
        if (v == 0) continue;
        check_both_signs(v);
        check(nextafter(v, 0));
        check(nextafter(v, INFINITY));
        for (int d = 2; d <= 9; d++) {
            snprintf(text, sizeof text, "%de%d", d, e);
            double m = strtod(text, NULL);
            if (isfinite(m)) check(m);
        }
    }
}

/* Pairs of doubles c 2^q and (c+1) 2^q whose midpoint (2c+1) 2^(q-1) is a multiple of
 * 10^k, so that the scaled interval ends are exact integers (and v's too, for 3c 2^q...):
 * 2c+1 an odd multiple of 5^k, q past k. strtod reads the midpoint as the even one. */
static void test_decimal_midpoints(void **unused)
{
    for (int k = 1; k <= 22; k++) {
        uint64_t five = 1;
        for (int i = 0; i < k; i++)
            five *= 5;
        for (long i = 0; i < count / 200; i++) {
            uint64_t t = ((next_random() >> 11) | (1ull << 53)) / five | 1; /* 2c+1 >= 2^53 */
            if (t * five >= 1ull << 54) continue;
            uint64_t c = (t * five - 1) / 2;
            int q = k + 1 + (int)(next_random() % 40);
            check(ldexp((double)c, q));
            check(ldexp((double)(c + 1), q));
            check(ldexp((double)(t * five), q - 1)); /* the midpoint, as strtod rounds it */
        }
    }
}

static void test_subnormals(void **unused)
{
    for (long i = 0; i < count / 4; i++) {
        uint64_t r = next_random();
        check(from_bits(r & 0x000fffffffffffffull));                /* any subnormal */
        check(from_bits((r & 0x000fffffffffffffull) >> (r >> 58))); /* small ones too */
    }
    for (uint64_t bits = 1; bits < 100000; bits++)
        check(from_bits(bits));
    check(from_bits(0x000fffffffffffffull));
    check(0.0);
    check(-0.0);
}

/* The shapes printf's %g gives: exponent form below 1e-4 and from the digits' count up. */
static void test_layout(void **unused)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {0.0001, "0.0001"},
        {0.00012, "0.00012"},
        {1e-05, "1e-05"},
        {123.456, "123.456"},
        {100, "1e+02"},
        {120, "1.2e+02"},
        {123, "123"},
        {-2.5, "-2.5"},
        {1e100, "1e+100"},
        {5e-324, "5e-324"},
        {-0.0, "-0"},
        {0.3, "0.3"},
        {1.0 / 3, "0.3333333333333333"},
        {(double)0.1f, "0.10000000149011612"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[DTOA_TEXT_MAX];
        assert_int_equal(dtoa_shortest(cases[i].v, text), (int)strlen(cases[i].text));
        assert_string_equal(text, cases[i].text);
    }
}

static int report_count(void **unused)
{
    print_message("dtoa: %ld doubles checked against printf and strtod\n", checked);
    return 0;
}

int main(void)
{
    const char *n = getenv("CKMON_DTOA_COUNT");
    if (n && atol(n) > 0) count = atol(n);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_bit_patterns),
        cmocka_unit_test(test_float32_values_widened),
        cmocka_unit_test(test_statistics_of_normal_arrays),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_powers_of_two),
        cmocka_unit_test(test_powers_of_ten),
        cmocka_unit_test(test_decimal_midpoints),
        cmocka_unit_test(test_subnormals),
        cmocka_unit_test(test_layout),
    };
    return cmocka_run_group_tests(tests, NULL, report_count);
}
