/* test_latest.c — /metrics' newest samples (collector/latest.c): a file's series are
 * replaced by its next checkpoint, and go once no record has set them for long; the
 * collector's own counters stay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector/latest.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A checkpoint record of job's file ckpt.pt with one value, as the log holds it. */
static void add_checkpoint(struct latest *l, const char *job, double loss)
{
    char line[512];
    int n =
        snprintf(line, sizeof line,
                 "{\"schema\":1,\"event\":\"checkpoint\",\"time\":\"2026-12-07T04:00:00.000000Z\","
                 "\"host\":\"h\",\"pid\":1,\"program\":\"train\",\"job\":\"%s\","
                 "\"path\":\"/data/ckpt.pt\",\"format\":\"torch\",\"bytes\":10,\"writes\":1,"
                 "\"seconds\":0.5,\"complete\":true,\"values\":{\"loss\":%g},\"tensors\":[],"
                 "\"errors\":[]}",
                 job, loss);
    latest_add_line(l, line, (size_t)n);
}

static char *render(struct latest *l)
{
    struct strbuf out = {.limit = 1 << 20};
    assert_true(latest_render(l, &out));
    return out.s;
}

static void test_fresh_series_are_served(void **state)
{
    struct latest *l = latest_new();
    add_checkpoint(l, "a", 1.5);
    add_checkpoint(l, "b", 2.5);
    char *text = render(l); /* expires what is older than LATEST_KEEP_SECONDS: nothing */
    assert_non_null(
        strstr(text, "ckmon_value{job=\"a\",host=\"h\",file=\"ckpt.pt\",key=\"loss\"} 1.5\n"));
    assert_non_null(
        strstr(text, "ckmon_value{job=\"b\",host=\"h\",file=\"ckpt.pt\",key=\"loss\"} 2.5\n"));
    assert_non_null(strstr(text, "ckmon_records_total{event=\"checkpoint\"} 2\n"));
    free(text);
    latest_free(l);
}

static void test_series_not_set_since_go(void **state)
{
    struct latest *l = latest_new();
    latest_set(l, "ckmon_log_write_failures_total", 0);
    add_checkpoint(l, "old", 1);
    add_checkpoint(l, "renewed", 2);
    int64_t cut = now_ns();
    add_checkpoint(l, "renewed", 3); /* its file's next checkpoint: set again after cut */
    add_checkpoint(l, "new", 4);
    latest_expire(l, cut);
    char *text = render(l);
    assert_null(strstr(text, "job=\"old\""));
    assert_non_null(
        strstr(text, "ckmon_value{job=\"renewed\",host=\"h\",file=\"ckpt.pt\",key=\"loss\"} 3\n"));
    assert_non_null(
        strstr(text, "ckmon_value{job=\"new\",host=\"h\",file=\"ckpt.pt\",key=\"loss\"} 4\n"));
    /* the collector's own counters never expire */
    assert_non_null(strstr(text, "ckmon_records_total{event=\"checkpoint\"} 4\n"));
    assert_non_null(strstr(text, "ckmon_log_write_failures_total 0\n"));
    free(text);
    /* an expired file comes back with its next checkpoint */
    add_checkpoint(l, "old", 5);
    text = render(l);
    assert_non_null(
        strstr(text, "ckmon_value{job=\"old\",host=\"h\",file=\"ckpt.pt\",key=\"loss\"} 5\n"));
    free(text);
    latest_free(l);
}

static void test_everything_of_records_can_expire(void **state)
{
    struct latest *l = latest_new();
    for (int i = 0; i < 300; i++) { /* past the first table size: a rebuild in between */
        char job[16];
        snprintf(job, sizeof job, "j%d", i);
        add_checkpoint(l, job, i);
    }
    latest_expire(l, now_ns());
    char *text = render(l);
    assert_null(strstr(text, "ckmon_value"));
    assert_null(strstr(text, "ckmon_checkpoint_bytes"));
    assert_non_null(strstr(text, "ckmon_records_total{event=\"checkpoint\"} 300\n"));
    free(text);
    latest_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_series_are_served),
        cmocka_unit_test(test_series_not_set_since_go),
        cmocka_unit_test(test_everything_of_records_can_expire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
