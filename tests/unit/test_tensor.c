/* test_tensor.c — a tensor's bytes in any pieces give the same statistics
 * (core/parsers/tensor.c).
 *
 * `ckmon inspect` reads a file in large chunks while a program writes it in pieces of
 * its own choosing; the records must agree to the last bit. These tests feed the same
 * bytes whole, one byte at a time and in random pieces, exact and sampled, and compare
 * the accumulators bit for bit; the exact result is also checked against a plain loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/parsers/tensor.h"

#define ELEMENTS (5 * TENSOR_SAMPLE_BLOCK / 4 * 3 + 7) /* several blocks and a short last one */

static float *make_data(void)
{
    float *x = malloc(ELEMENTS * sizeof *x);
    srand(7);
    for (size_t i = 0; i < ELEMENTS; i++)
        x[i] = 1000.0f + (float)rand() / (float)RAND_MAX * 3.0f - (float)(i % 97) * 0.01f;
    x[5] = NAN;
    x[ELEMENTS - 3] = INFINITY;
    return x;
}

enum split { WHOLE, ONE_BYTE, RANDOM };

static struct tensor_stats read_split(const float *x, double sample, enum split split,
                                      double *sampled)
{
    static struct tensor_reader tr; /* 64 KiB: not on the stack */
    struct report r;
    int64_t shape[1] = {ELEMENTS};
    const uint8_t *bytes = (const uint8_t *)x;
    size_t len = ELEMENTS * sizeof *x, at = 0;

    report_init(&r, NULL);
    assert_true(tensor_reader_init(&tr, &r, "x", DTYPE_F32, shape, 1,
                                   &(struct parse_options){.sample = sample}));
    while (at < len) {
        size_t n = split == WHOLE ? len : split == ONE_BYTE ? 1 : (size_t)(rand() % 70000) + 1;
        if (n > len - at) n = len - at;
        assert_int_equal(tensor_reader_feed(&tr, bytes + at, n), n);
        at += n;
    }
    assert_true(tensor_reader_done(&tr));
    *sampled = (double)tr.stats.elements / ELEMENTS;
    report_free(&r);
    return tr.stats;
}

static void assert_same_bits(const struct tensor_stats *a, const struct tensor_stats *b)
{
    assert_int_equal(a->elements, b->elements);
    assert_int_equal(a->finite, b->finite);
    assert_int_equal(a->nan, b->nan);
    assert_int_equal(a->inf, b->inf);
    assert_memory_equal(&a->min, &b->min, sizeof a->min);
    assert_memory_equal(&a->max, &b->max, sizeof a->max);
    assert_memory_equal(&a->mean, &b->mean, sizeof a->mean);
    assert_memory_equal(&a->m2, &b->m2, sizeof a->m2);
    assert_int_equal(a->nhead, b->nhead);
    assert_memory_equal(a->head, b->head, a->nhead * sizeof a->head[0]);
}

static void check_pieces_agree(double sample)
{
    float *x = make_data();
    double s_whole, s_byte, s_random;
    struct tensor_stats whole = read_split(x, sample, WHOLE, &s_whole);
    struct tensor_stats byte = read_split(x, sample, ONE_BYTE, &s_byte);
    assert_same_bits(&whole, &byte);
    for (int i = 0; i < 5; i++) {
        struct tensor_stats random = read_split(x, sample, RANDOM, &s_random);
        assert_same_bits(&whole, &random);
    }
    assert_true(s_whole == s_byte && s_whole == s_random);
    free(x);
}

static void test_exact_statistics_do_not_depend_on_pieces(void **state)
{
    (void)state;
    check_pieces_agree(1);
}

static void test_sampled_statistics_do_not_depend_on_pieces(void **state)
{
    (void)state;
    check_pieces_agree(0.3);
    check_pieces_agree(0.01);
}

static void test_exact_statistics_match_a_plain_loop(void **state)
{
    (void)state;
    float *x = make_data();
    double sampled, sum = 0, min = INFINITY, max = -INFINITY;
    uint64_t finite = 0;
    struct tensor_stats st = read_split(x, 1, RANDOM, &sampled);
    for (size_t i = 0; i < ELEMENTS; i++) {
        if (!isfinite(x[i])) continue;
        sum += x[i];
        finite++;
        min = fmin(min, x[i]);
        max = fmax(max, x[i]);
    }
    double mean = sum / (double)finite, m2 = 0;
    for (size_t i = 0; i < ELEMENTS; i++)
        if (isfinite(x[i])) m2 += (x[i] - mean) * (x[i] - mean);
    assert_true(sampled == 1);
    assert_int_equal(st.finite, finite);
    assert_int_equal(st.nan, 1);
    assert_int_equal(st.inf, 1);
    assert_true(st.min == min && st.max == max);
    assert_true(fabs(st.mean - mean) <= 1e-12 * fabs(mean));
    assert_true(fabs(stats_std(&st) - sqrt(m2 / (double)finite)) <=
                1e-9 * sqrt(m2 / (double)finite));
    free(x);
}

/* The documented plan (tensor.h): K = max(ceil(sT), 1024) of T lines, one per stratum
 * [floor(jT/K), floor((j+1)T/K)), line 0 first; exact up to 64 KiB or at s = 1. */
static void test_the_plan_is_the_documented_one(void **state)
{
    (void)state;
    struct sample_plan p;
    sample_plan_init(&p, TENSOR_EXACT_BYTES, 0.01);
    assert_true(sample_plan_exact(&p));
    sample_plan_init(&p, 100 << 20, 1);
    assert_true(sample_plan_exact(&p));
    sample_plan_init(&p, TENSOR_EXACT_BYTES + 1, 0.01); /* 1025 lines, the last one short */
    assert_int_equal(p.lines, 1025);
    assert_int_equal(p.picks, 1024);
    sample_plan_init(&p, 100 << 20, 0.0625);
    assert_int_equal(p.lines, (100 << 20) / 64);
    assert_int_equal(p.picks, (100 << 20) / 64 / 16);
    uint64_t previous = 0;
    struct sample_cursor cursor = {0};
    for (uint64_t j = 0; j < p.picks; j++) {
        uint64_t line = sample_plan_line(&p, j);
        assert_true(line >= j * p.lines / p.picks && line < (j + 1) * p.lines / p.picks);
        assert_true(j == 0 ? line == 0 : line > previous);
        assert_int_equal(sample_cursor_next(&cursor, &p), line); /* the reader's way */
        previous = line;
    }
    assert_int_equal(sample_cursor_next(&cursor, &p), UINT64_MAX);
    /* The same lines on every machine: the hash is fixed (these pin it). */
    assert_int_equal(sample_plan_line(&p, 1), 16 + 9);
    assert_int_equal(sample_plan_line(&p, 2), 32 + 9);
    assert_int_equal(sample_plan_line(&p, 1000), 16000 + 3);
}

/* A sampled tensor's statistics are those of exactly the planned lines (a plain loop
 * over them here), `sampled` is their share, and the head is the tensor's. */
static void test_sampled_statistics_are_the_planned_lines(void **state)
{
    (void)state;
    float *x = make_data();
    const double s = 0.1;
    struct sample_plan p;
    sample_plan_init(&p, ELEMENTS * sizeof(float), s);
    assert_false(sample_plan_exact(&p));
    uint64_t n = 0, finite = 0, nonfinite = 0;
    double sum = 0, sq = 0, min = INFINITY, max = -INFINITY;
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t j = 0; j < p.picks; j++) {
            uint64_t first = sample_plan_line(&p, j) * (TENSOR_LINE / sizeof(float));
            for (uint64_t i = first; i < first + TENSOR_LINE / sizeof(float) && i < ELEMENTS; i++) {
                double v = x[i];
                if (pass == 1) {
                    if (isfinite(v)) sq += (v - sum / (double)finite) * (v - sum / (double)finite);
                    continue;
                }
                n++;
                if (!isfinite(v)) {
                    nonfinite++;
                    continue;
                }
                finite++;
                sum += v;
                min = fmin(min, v);
                max = fmax(max, v);
            }
        }
    }
    double sampled;
    struct tensor_stats st = read_split(x, s, RANDOM, &sampled);
    assert_int_equal(st.elements, n);
    assert_int_equal(st.nan + st.inf, nonfinite);
    assert_true(st.min == min && st.max == max);
    assert_true(fabs(st.mean - sum / (double)finite) <= 1e-12 * fabs(st.mean));
    assert_true(fabs(stats_std(&st) - sqrt(sq / (double)finite)) <=
                1e-9 * sqrt(sq / (double)finite));
    assert_true(sampled == (double)n / ELEMENTS && sampled < 0.2);
    assert_int_equal(st.nhead, STATS_HEAD);
    for (unsigned i = 0; i < STATS_HEAD; i++)
        assert_true(st.head[i] == x[i] || (isnan(st.head[i]) && isnan(x[i])));
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_statistics_do_not_depend_on_pieces),
        cmocka_unit_test(test_sampled_statistics_do_not_depend_on_pieces),
        cmocka_unit_test(test_exact_statistics_match_a_plain_loop),
        cmocka_unit_test(test_the_plan_is_the_documented_one),
        cmocka_unit_test(test_sampled_statistics_are_the_planned_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
