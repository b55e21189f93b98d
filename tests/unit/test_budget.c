/* test_budget.c — the safety net's controller (core/budget.c) and how the tensor reader
 * follows it (core/parsers/tensor.c).
 *
 * The clock is injected: every reading advances it by a fixed step, so each chunk of
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

static void test_floor_then_open_time(void **state)
{
    struct budget b;
    fake_now = 0;
    fake_step = MS;
    budget_init(&b, 10, fake_clock); /* opened at 1 ms */
    assert_int_equal(b.start_ns, MS);
    assert_true(budget_allows(&b)); /* the floor */
    budget_charge(&b, fake_clock(), BUDGET_FLOOR_BYTES - 1);
    assert_true(budget_allows(&b));
    budget_charge(&b, fake_clock(), 1);
    assert_int_equal(b.stats_ns, 0); /* the floor's time is not counted */
    budget_charge(&b, fake_clock(), 65536);
    assert_int_equal(b.stats_ns, MS);
    /* 10% of the time since the open: each look at the clock is 1 ms later */
    fake_now = 5 * MS;
    assert_false(budget_allows(&b)); /* 1 ms spent, 10% of 5 ms allowed */
    fake_now = 10 * MS;
    assert_true(budget_allows(&b)); /* 10% of 10 ms */
    b.stats_ns = 2 * MS;
    fake_now = 15 * MS;
    assert_false(budget_allows(&b));
    fake_now = 100 * MS;
    assert_true(budget_allows(&b));
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

/* A reader over a float32 tensor of `blocks` copies of the block, with budget b (or
 * none) and the plan of `sample`. */
static void start_reader(struct tensor_reader *tr, struct report *r, size_t blocks,
                         struct budget *b, double sample)
{
    int64_t shape[1] = {(int64_t)(blocks * BLOCK_FLOATS)};
    struct parse_options o = {.sample = sample, .budget = b};
    report_init(r, NULL);
    assert_true(tensor_reader_init(tr, r, "w", DTYPE_F32, shape, 1, &o));
}

static void feed_blocks(struct tensor_reader *tr, size_t blocks)
{
    for (size_t i = 0; i < blocks; i++)
        assert_int_equal(tensor_reader_feed(tr, (const uint8_t *)block_values, sizeof block_values),
                         sizeof block_values);
}

/* Whether the record's errors say the reading was cut short. */
static bool says_cut(struct report *r)
{
    char *text = r->errors ? cJSON_PrintUnformatted(r->errors) : NULL;
    bool cut = text && strstr(text, "w: statistics cut short by the overhead budget");
    free(text);
    return cut;
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

/* Exact reading: blocks while the budget allows, then nothing, and the record says so. */
static void test_reader_stops_when_the_budget_refuses(void **state)
{
    enum { BLOCKS = 256 };
    struct budget b;
    struct report r;
    struct tensor_reader tr;
    make_block();
    fake_now = 0;
    fake_step = MS;
    budget_init(&b, 1, fake_clock);
    start_reader(&tr, &r, BLOCKS, &b, 1);
    /* The floor (4 MiB: 64 blocks) is read whatever the clock says. Every look at the
     * clock is 1 ms later, and a block read looks twice (its start and its charge), so
     * its counted time is 1 ms and the clock is near 130 ms after the floor: 1% of it
     * lets block 64 (0 ms spent) and block 65 (1 ms spent, 1.3 ms allowed) through, and
     * refuses block 66 (2 ms spent). */
    feed_blocks(&tr, BLOCKS);
    assert_int_equal(blocks_read(&tr.stats), 66);
    assert_true(tr.cut);
    tensor_reader_report(&tr, &r);
    assert_true(says_cut(&r));
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
    start_reader(&tr, &r, 4, &b, 1);
    feed_blocks(&tr, 4);
    assert_int_equal(tr.stats.elements, STATS_HEAD);
    assert_head(&tr.stats);
    report_free(&r);
}

/* Sampled reading: a tensor's first chunk of lines is read whatever the budget says,
 * the rest only while it allows. */
static void test_sampled_reader_keeps_its_first_chunk(void **state)
{
    enum { BLOCKS = 64 };
    struct budget b;
    struct report r;
    struct tensor_reader tr;
    make_block();
    fake_now = 0;
    fake_step = MS;
    budget_init(&b, 1, fake_clock);
    b.floor_left = 0;
    b.stats_ns = 50 * MS;
    start_reader(&tr, &r, BLOCKS, &b, 0.0625);
    feed_blocks(&tr, BLOCKS);
    assert_int_equal(tr.stats.elements, TENSOR_GATHER / sizeof(float));
    assert_true(tr.cut);
    tensor_reader_report(&tr, &r);
    assert_true(says_cut(&r));
    assert_head(&tr.stats);
    report_free(&r);

    /* The same without a budget: the whole plan, and no error. */
    start_reader(&tr, &r, BLOCKS, NULL, 0.0625);
    feed_blocks(&tr, BLOCKS);
    assert_int_equal(tr.stats.elements, tr.plan.picks * tr.plan.piece / sizeof(float));
    assert_false(tr.cut);
    tensor_reader_report(&tr, &r);
    assert_false(says_cut(&r));
    report_free(&r);
}

static void test_without_budget_every_block(void **state)
{
    struct report r;
    struct tensor_reader tr;
    make_block();
    start_reader(&tr, &r, 8, NULL, 1);
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
        cmocka_unit_test(test_floor_then_open_time),
        cmocka_unit_test(test_parse_percent),
        cmocka_unit_test(test_reader_stops_when_the_budget_refuses),
        cmocka_unit_test(test_refused_first_block_keeps_the_head),
        cmocka_unit_test(test_sampled_reader_keeps_its_first_chunk),
        cmocka_unit_test(test_without_budget_every_block),
        cmocka_unit_test(test_budget_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
