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
/* 16 MiB and a short last piece: sampled at 1/2 in pieces of TENSOR_PIECE_MAX bytes. */
#define LONG_ELEMENTS ((4 << 20) + 777)

static float *make_data(size_t n)
{
    float *x = malloc(n * sizeof *x);
    srand(7);
    for (size_t i = 0; i < n; i++)
        x[i] = 1000.0f + (float)rand() / (float)RAND_MAX * 3.0f - (float)(i % 97) * 0.01f;
    x[5] = NAN;
    x[n - 3] = INFINITY;
    return x;
}

enum split { WHOLE, ONE_BYTE, RANDOM };

static struct tensor_stats read_split(const float *x, size_t count, double sample, enum split split,
                                      double *sampled)
{
    static struct tensor_reader tr; /* 64 KiB: not on the stack */
    struct report r;
    int64_t shape[1] = {(int64_t)count};
    const uint8_t *bytes = (const uint8_t *)x;
    size_t len = count * sizeof *x, at = 0;

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
    *sampled = (double)tr.stats.elements / (double)count;
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

static void check_pieces_agree(size_t count, double sample)
{
    float *x = make_data(count);
    double s_whole, s_byte, s_random;
    struct tensor_stats whole = read_split(x, count, sample, WHOLE, &s_whole);
    struct tensor_stats byte = read_split(x, count, sample, ONE_BYTE, &s_byte);
    assert_same_bits(&whole, &byte);
    for (int i = 0; i < 5; i++) {
        struct tensor_stats random = read_split(x, count, sample, RANDOM, &s_random);
        assert_same_bits(&whole, &random);
    }
    assert_true(s_whole == s_byte && s_whole == s_random);
    free(x);
}

static void test_exact_statistics_do_not_depend_on_pieces(void **state)
{
    (void)state;
    check_pieces_agree(ELEMENTS, 1);
}

static void test_sampled_statistics_do_not_depend_on_pieces(void **state)
{
    (void)state;
    check_pieces_agree(ELEMENTS, 0.3);
    check_pieces_agree(ELEMENTS, 0.01);
    check_pieces_agree(LONG_ELEMENTS, 0.5); /* pieces of 4 KiB, the last one short */
}

static void test_exact_statistics_match_a_plain_loop(void **state)
{
    (void)state;
    float *x = make_data(ELEMENTS);
    double sampled, sum = 0, min = INFINITY, max = -INFINITY;
    uint64_t finite = 0;
    struct tensor_stats st = read_split(x, ELEMENTS, 1, RANDOM, &sampled);
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

/* One piece per stratum [floor(jT/K), floor((j+1)T/K)), piece 0 first, the reader's
 * cursor giving the same pieces. */
static void assert_strata(const struct sample_plan *p)
{
    uint64_t previous = 0;
    struct sample_cursor cursor = {0};
    for (uint64_t j = 0; j < p->picks; j++) {
        uint64_t piece = sample_plan_piece(p, j);
        assert_true(piece >= j * p->pieces / p->picks && piece < (j + 1) * p->pieces / p->picks);
        assert_true(j == 0 ? piece == 0 : piece > previous);
        assert_int_equal(sample_cursor_next(&cursor, p), piece); /* the reader's way */
        previous = piece;
    }
    assert_int_equal(sample_cursor_next(&cursor, p), UINT64_MAX);
}

/* The documented plan (tensor.h): K = max(ceil(sT), 1024) of T pieces, one per stratum,
 * piece 0 first; exact up to 64 KiB or at s = 1; pieces of 64 bytes, longer (a power of
 * two up to 4 KiB and 1024 elements) while TENSOR_PIECES_READ of them are still read. */
static void test_the_plan_is_the_documented_one(void **state)
{
    (void)state;
    struct sample_plan p;
    sample_plan_init(&p, TENSOR_EXACT_BYTES, 4, 0.01);
    assert_true(sample_plan_exact(&p));
    sample_plan_init(&p, 100 << 20, 4, 1);
    assert_true(sample_plan_exact(&p));
    sample_plan_init(&p, TENSOR_EXACT_BYTES + 1, 4, 0.01); /* 1025 lines, the last one short */
    assert_int_equal(p.pieces, 1025);
    assert_int_equal(p.picks, 1024);
    /* 2 MiB at 1/16: 2048 lines read, as many as lines of 128 bytes would leave */
    sample_plan_init(&p, 2 << 20, 4, 0.0625);
    assert_int_equal(p.piece, TENSOR_LINE);
    assert_int_equal(p.pieces, (2 << 20) / 64);
    assert_int_equal(p.picks, (2 << 20) / 64 / 16);
    assert_strata(&p);
    /* The same lines on every machine: the hash is fixed (these pin it). */
    assert_int_equal(sample_plan_piece(&p, 1), 16 + 9);
    assert_int_equal(sample_plan_piece(&p, 2), 32 + 9);
    assert_int_equal(sample_plan_piece(&p, 1000), 16000 + 3);

    /* 100 MiB at 1/16: 6.25 MiB read, in 3200 pieces of 2 KiB (4 KiB would leave 1600) */
    sample_plan_init(&p, 100 << 20, 4, 0.0625);
    assert_int_equal(p.piece, 2048);
    assert_int_equal(p.pieces, (100 << 20) / 2048);
    assert_int_equal(p.picks, (100 << 20) / 2048 / 16);
    assert_strata(&p);
    assert_int_equal(sample_plan_piece(&p, 1), 16 + 9); /* the same hash on pieces */
    /* 1 GiB: the longest piece, 4 KiB, for float32; 1024 elements for 16- and 8-bit ones */
    sample_plan_init(&p, 1 << 30, 4, 0.0625);
    assert_int_equal(p.piece, TENSOR_PIECE_MAX);
    sample_plan_init(&p, 1 << 30, 2, 0.0625);
    assert_int_equal(p.piece, 2048);
    sample_plan_init(&p, 1 << 30, 1, 0.0625);
    assert_int_equal(p.piece, 1024);
    /* a short last piece */
    sample_plan_init(&p, (100 << 20) + 100, 4, 0.0625);
    assert_int_equal(p.piece, 2048);
    assert_int_equal(p.pieces, (100 << 20) / 2048 + 1);
    assert_strata(&p);
}

/* A sampled tensor's statistics are those of exactly the planned pieces (a plain loop
 * over them here), `sampled` is their share, and the head is the tensor's. */
static void check_planned_pieces(size_t count, double s, unsigned piece, double at_most)
{
    float *x = make_data(count);
    struct sample_plan p;
    sample_plan_init(&p, count * sizeof(float), sizeof(float), s);
    assert_false(sample_plan_exact(&p));
    assert_int_equal(p.piece, piece);
    uint64_t n = 0, finite = 0, nonfinite = 0;
    double sum = 0, sq = 0, min = INFINITY, max = -INFINITY;
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t j = 0; j < p.picks; j++) {
            uint64_t first = sample_plan_piece(&p, j) * (p.piece / sizeof(float));
            for (uint64_t i = first; i < first + p.piece / sizeof(float) && i < count; i++) {
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
    struct tensor_stats st = read_split(x, count, s, RANDOM, &sampled);
    assert_int_equal(st.elements, n);
    assert_int_equal(st.nan + st.inf, nonfinite);
    assert_true(st.min == min && st.max == max);
    assert_true(fabs(st.mean - sum / (double)finite) <= 1e-12 * fabs(st.mean));
    assert_true(fabs(stats_std(&st) - sqrt(sq / (double)finite)) <=
                1e-9 * sqrt(sq / (double)finite));
    assert_true(sampled == (double)n / (double)count && sampled < at_most);
    assert_int_equal(st.nhead, STATS_HEAD);
    for (unsigned i = 0; i < STATS_HEAD; i++)
        assert_true(st.head[i] == x[i] || (isnan(st.head[i]) && isnan(x[i])));
    free(x);
}

static void test_sampled_statistics_are_the_planned_pieces(void **state)
{
    (void)state;
    check_planned_pieces(ELEMENTS, 0.1, TENSOR_LINE, 0.2);
    check_planned_pieces(LONG_ELEMENTS, 0.5, TENSOR_PIECE_MAX, 0.6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_statistics_do_not_depend_on_pieces),
        cmocka_unit_test(test_sampled_statistics_do_not_depend_on_pieces),
        cmocka_unit_test(test_exact_statistics_match_a_plain_loop),
        cmocka_unit_test(test_the_plan_is_the_documented_one),
        cmocka_unit_test(test_sampled_statistics_are_the_planned_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
