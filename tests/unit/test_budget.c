/* test_budget.c — the overhead budget controller (core/budget.c) and how the tensor
 * reader follows it (core/parsers/tensor.c).
 *
 * The clock is injected: every reading advances it by a fixed step, so each block of
 * statistics costs exactly one step and the controller's decisions are deterministic.
 * Tensors are built from one block of values repeated, so whichever blocks the budget
 * lets through, the statistics must equal that block's (computed here with a plain
 * double loop) and the element count tells how many blocks were read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/budget.h"
#include "core/parsers/tensor.h"
#include "collector/options.h"

#define MS           1000000LL
#define BLOCK_FLOATS (TENSOR_SAMPLE_BLOCK / sizeof(float))

static long long fake_now, fake_step;

static long long fake_clock(void)
{
    fake_now += fake_step;
    return fake_now;
}

static void test_floor_then_write_time(void **state)
{
    struct budget b;
    fake_now = 0;
    fake_step = MS;
    budget_init(&b, 10, fake_clock);
    assert_true(budget_allows(&b)); /* nothing written yet: the floor */
    budget_charge(&b, fake_clock(), BUDGET_FLOOR_BYTES - 1);
    assert_true(budget_allows(&b));
    budget_charge(&b, fake_clock(), 1);
    assert_int_equal(b.stats_ns, 0); /* the floor's time is not counted */
    assert_true(budget_allows(&b));  /* 0 spent, 0 allowed: a block may start */
    budget_charge(&b, fake_clock(), 65536);
    assert_int_equal(b.stats_ns, MS);
    assert_false(budget_allows(&b));

    budget_wrote(&b, 100 * MS, 1000); /* 10% of it: 10 ms, credited as its bytes pass */
    assert_false(budget_allows(&b));
    budget_fed(&b, 500);
    assert_true(budget_allows(&b)); /* 5 ms */
    b.stats_ns = 5 * MS + 1;
    assert_false(budget_allows(&b));
    budget_fed(&b, 5000); /* more than the write: capped at its size */
    assert_true(budget_allows(&b));
    b.stats_ns = 10 * MS + 1;
    assert_false(budget_allows(&b));

    budget_wrote(&b, 30 * MS, 10); /* the earlier write is now wholly credited */
    assert_false(budget_allows(&b));
    budget_fed(&b, 10);
    assert_true(budget_allows(&b));
    assert_int_equal(b.written_ns, 100 * MS);
}

static void test_parse_percent(void **state)
{
    double p = -1;
    assert_true(budget_parse_percent("2.5", &p));
    assert_true(p == 2.5);
    assert_true(budget_parse_percent("100", &p));
    assert_false(budget_parse_percent("0", &p));
    assert_false(budget_parse_percent("101", &p));
    assert_false(budget_parse_percent("-1", &p));
    assert_false(budget_parse_percent("nan", &p));
    assert_false(budget_parse_percent("3%", &p));
    assert_false(budget_parse_percent("", &p));
    assert_false(budget_parse_percent(NULL, &p));
    assert_true(p == 100);
}

/* One block of float32 values with NaN, ±Inf and subnormals, and its statistics. */
static float block_values[BLOCK_FLOATS];
static double ref_min, ref_max, ref_mean, ref_std;
static uint64_t ref_finite, ref_nan, ref_inf;

static void make_block(void)
{
    double sum = 0, sq = 0;
    srand(7);
    ref_min = INFINITY;
    ref_max = -INFINITY;
    ref_finite = ref_nan = ref_inf = 0;
    for (size_t i = 0; i < BLOCK_FLOATS; i++) {
        float v = (float)(rand() / (double)RAND_MAX * 4 - 2);
        if (i % 1000 == 3) v = NAN;
        if (i % 1500 == 5) v = i % 2 ? INFINITY : -INFINITY;
        if (i % 700 == 9) v = 1e-40f;
        block_values[i] = v;
    }
    for (size_t i = 0; i < BLOCK_FLOATS; i++) {
        double v = block_values[i];
        if (isnan(v)) {
            ref_nan++;
        } else if (isinf(v)) {
            ref_inf++;
        } else {
            ref_finite++;
            sum += v;
            ref_min = fmin(ref_min, v);
            ref_max = fmax(ref_max, v);
        }
    }
    ref_mean = sum / (double)ref_finite;
    for (size_t i = 0; i < BLOCK_FLOATS; i++)
        if (isfinite(block_values[i]))
            sq += (block_values[i] - ref_mean) * (block_values[i] - ref_mean);
    ref_std = sqrt(sq / (double)ref_finite);
}

/* A reader over a float32 tensor of `blocks` copies of the block. */
static void start_reader(struct tensor_reader *tr, struct report *r, size_t blocks)
{
    int64_t shape[1] = {(int64_t)(blocks * BLOCK_FLOATS)};
    report_init(r, NULL);
    assert_true(tensor_reader_init(tr, r, "w", DTYPE_F32, shape, 1, 1.0));
}

static void feed_blocks(struct tensor_reader *tr, size_t blocks)
{
    for (size_t i = 0; i < blocks; i++)
        assert_int_equal(tensor_reader_feed(tr, (const uint8_t *)block_values, sizeof block_values),
                         sizeof block_values);
}

/* Every block read must leave the statistics of one block, and whole blocks. */
static uint64_t blocks_read(const struct tensor_stats *s)
{
    assert_int_equal(s->elements % BLOCK_FLOATS, 0);
    uint64_t k = s->elements / BLOCK_FLOATS;
    assert_int_equal(s->finite, k * ref_finite);
    assert_int_equal(s->nan, k * ref_nan);
    assert_int_equal(s->inf, k * ref_inf);
    assert_true(s->min == ref_min && s->max == ref_max);
    assert_true(fabs(s->mean - ref_mean) <= 1e-12 * fabs(ref_max));
    assert_true(fabs(stats_std(s) - ref_std) <= 1e-12 * ref_std);
    return k;
}

static void assert_head(const struct tensor_stats *s)
{
    assert_int_equal(s->nhead, STATS_HEAD);
    for (unsigned i = 0; i < STATS_HEAD; i++)
        assert_true(s->head[i] == block_values[i] || (isnan(s->head[i]) && isnan(block_values[i])));
}

static void test_reader_samples_evenly_within_budget(void **state)
{
    enum { BLOCKS = 256 };
    struct budget b;
    struct report r;
    struct tensor_reader tr;
    make_block();
    fake_now = 0;
    fake_step = MS; /* each block read costs 1 ms */
    budget_init(&b, 1, fake_clock);
    budget_wrote(&b, 1000 * MS, (unsigned long long)BLOCKS * sizeof block_values);
    budget_active = &b;
    start_reader(&tr, &r, BLOCKS);

    feed_blocks(&tr, BLOCKS / 2);
    uint64_t first_half = blocks_read(&tr.stats);
    feed_blocks(&tr, BLOCKS / 2);
    budget_active = NULL;
    uint64_t all = blocks_read(&tr.stats);

    /* The first 4 MiB (64 blocks) are the floor. Then 1% of 1 s is 10 ms, credited as
     * the blocks pass: at the start of block i, 10 ms * i / 256, and each read costs
     * 1 ms, so reads come at blocks 64, 65, 66, 77, 103 | 128, 154, 180, 205, 231. */
    assert_int_equal(all, 74);
    assert_int_equal(first_half, 69);
    assert_true(b.stats_ns <= 11 * MS);
    assert_head(&tr.stats);
    report_free(&r);
}

static void test_refused_first_block_keeps_the_head(void **state)
{
    struct budget b;
    struct report r;
    struct tensor_reader tr;
    make_block();
    fake_now = 0;
    fake_step = MS;
    budget_init(&b, 1, fake_clock);
    b.floor_left = 0;     /* spent on earlier tensors, */
    b.stats_ns = 50 * MS; /* with time over the budget */
    budget_wrote(&b, 10 * MS, 4 * sizeof block_values);
    budget_active = &b;
    start_reader(&tr, &r, 4);
    feed_blocks(&tr, 4);
    budget_active = NULL;
    assert_int_equal(tr.stats.elements, STATS_HEAD);
    assert_head(&tr.stats);
    report_free(&r);
}

static void test_without_budget_every_block(void **state)
{
    struct report r;
    struct tensor_reader tr;
    make_block();
    budget_active = NULL;
    start_reader(&tr, &r, 8);
    feed_blocks(&tr, 8);
    assert_int_equal(blocks_read(&tr.stats), 8);
    report_free(&r);
}

/* --budget and CKMON_BUDGET reach `ckmon run` (which passes them to the agent as
 * CKMON_BUDGET); bad values are refused naming the flag or variable. */
static void test_budget_option(void **state)
{
    struct options o;
    char err[256];
    char *flag[] = {"--budget", "0.5", "cmd"};
    unsetenv("CKMON_BUDGET");
    assert_int_equal(options_parse(&o, COMMAND_RUN, 3, flag, err, sizeof err), 0);
    assert_string_equal(o.budget_text, "0.5");
    options_free(&o);

    char *plain[] = {"cmd"};
    setenv("CKMON_BUDGET", "7", 1);
    assert_int_equal(options_parse(&o, COMMAND_RUN, 1, plain, err, sizeof err), 0);
    assert_string_equal(o.budget_text, "7");
    options_free(&o);

    setenv("CKMON_BUDGET", "0", 1);
    assert_int_equal(options_parse(&o, COMMAND_RUN, 1, plain, err, sizeof err), -1);
    assert_non_null(strstr(err, "CKMON_BUDGET"));
    options_free(&o);
    unsetenv("CKMON_BUDGET");

    char *too_much[] = {"--budget", "150", "cmd"};
    assert_int_equal(options_parse(&o, COMMAND_RUN, 3, too_much, err, sizeof err), -1);
    assert_non_null(strstr(err, "--budget: '150' is not a percentage"));
    options_free(&o);

    char *inspect[] = {"--budget", "5", "f.pt"}; /* inspect reads everything it is asked to */
    assert_int_equal(options_parse(&o, COMMAND_INSPECT, 3, inspect, err, sizeof err), -1);
    assert_non_null(strstr(err, "--budget"));
    options_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_floor_then_write_time),
        cmocka_unit_test(test_parse_percent),
        cmocka_unit_test(test_reader_samples_evenly_within_budget),
        cmocka_unit_test(test_refused_first_block_keeps_the_head),
        cmocka_unit_test(test_without_budget_every_block),
        cmocka_unit_test(test_budget_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
