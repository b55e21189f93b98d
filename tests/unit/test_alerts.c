/* test_alerts.c — the alert rules on hand-made records (collector/alerts.c, series.c).
 *
 * Each record is written out as the log would hold it, so what a rule sees is plain;
 * each rule is tested on a case where it must fire and on the nearest case where it
 * must not (one element fewer, the same ratio, nothing else changed).
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
#include <unistd.h>

#include <cjson/cJSON.h>

#include "collector/alerts.h"
#include "collector/series.h"
#include "core/jsontext.h"

#define HEAD                                                                                       \
    "{\"schema\":1,\"event\":\"checkpoint\",\"time\":\"2026-11-23T21:42:00.123456Z\","             \
    "\"host\":\"h\",\"pid\":7,\"program\":\"python3\",\"job\":\"j\",\"path\":\"/c/epoch_3.pt\","

/* A tensor member: name, dtype, shape, min, max, mean, std, nan, inf. */
#define TENSOR(name, dtype, shape, min, max, mean, std, nan, inf)                                  \
    "{\"name\":\"" name "\",\"dtype\":\"" dtype "\",\"shape\":" shape ",\"min\":" #min             \
    ",\"max\":" #max ",\"mean\":" #mean ",\"std\":" #std ",\"nan\":" #nan ",\"inf\":" #inf         \
    ",\"sampled\":1}"

struct judged {
    cJSON *record;
    struct snapshot now, prev;
    struct alert_list alerts;
};

/* Evaluates rules on record_text against prev_text (NULL: no previous checkpoint). */
static void judge(struct judged *j, const struct rule_set *rules, const char *record_text,
                  const char *prev_text)
{
    memset(j, 0, sizeof *j);
    j->record = cJSON_Parse(record_text);
    assert_non_null(j->record);
    assert_true(snapshot_from_record(j->record, &j->now));
    cJSON *prev = prev_text ? cJSON_Parse(prev_text) : NULL;
    if (prev_text) {
        assert_non_null(prev);
        assert_true(snapshot_from_record(prev, &j->prev));
    }
    struct tensor_list tensors = {0};
    assert_true(tensor_list_of_record(j->record, &tensors));
    alerts_evaluate(rules, j->record, &tensors, &j->now, prev ? &j->prev : NULL, &j->alerts);
    tensor_list_free(&tensors);
    cJSON_Delete(prev);
}

static void done(struct judged *j)
{
    alert_list_free(&j->alerts);
    snapshot_free(&j->now);
    snapshot_free(&j->prev);
    cJSON_Delete(j->record);
}

static const struct alert *only(const struct judged *j, const char *rule)
{
    assert_int_equal(j->alerts.count, 1);
    assert_string_equal(j->alerts.items[0].rule, rule);
    return &j->alerts.items[0];
}

static const struct rule_set no_rules;

static void nonfinite_names_the_worst_tensor_once(void **state)
{
    struct judged j;
    judge(&j, &no_rules,
          HEAD "\"bytes\":100,\"complete\":true,\"values\":{\"loss\":\"nan\",\"lr\":0.1},"
               "\"tensors\":[" TENSOR("a", "float32", "[100]", 0, 1, 0.5, 0.1, 2, 0) "," TENSOR(
                   "b", "float32", "[100]", 0, 1, 0.5, 0.1, 5,
                   1) "," TENSOR("c", "float32", "[10]", 0, 1, 0.5, 0.1, 0, 0) "]}",
          NULL);
    const struct alert *a = only(&j, "nonfinite");
    assert_int_equal(a->severity, SEVERITY_CRITICAL);
    assert_string_equal(a->subject, "b");
    assert_int_equal(a->count, 3); /* two tensors and the loss */
    assert_string_equal(a->message,
                        "b: 5 NaN and 1 Inf in 100 elements read; 1 more tensor; 1 more value");
    done(&j);

    judge(&j, &no_rules,
          HEAD "\"bytes\":100,\"complete\":true,\"values\":{\"loss\":\"-inf\"},\"tensors\":[]}",
          NULL);
    a = only(&j, "nonfinite");
    assert_string_equal(a->subject, "loss");
    assert_string_equal(a->message, "loss = -inf");
    done(&j);

    judge(&j, &no_rules,
          HEAD "\"bytes\":100,\"complete\":true,\"values\":{\"loss\":1e308},\"tensors\":[" TENSOR(
              "a", "float32", "[100]", 0, 1, 0.5, 0.1, 0, 0) "]}",
          NULL);
    assert_int_equal(j.alerts.count, 0);
    done(&j);
}

static void incomplete_quotes_the_first_error(void **state)
{
    struct judged j;
    judge(&j, &no_rules,
          HEAD "\"bytes\":4096,\"complete\":false,\"values\":{},\"tensors\":[],"
               "\"errors\":[\"torch: truncated\",\"later\"]}",
          HEAD "\"bytes\":8192,\"complete\":true,\"values\":{},\"tensors\":[" TENSOR(
              "a", "float32", "[2048]", 0, 1, 0.5, 0.1, 0, 0) "]}");
    /* Torn: no comparison, so no shrunk although half the bytes and a tensor are gone. */
    const struct alert *a = only(&j, "incomplete");
    assert_null(a->subject);
    assert_string_equal(a->message, "incomplete at 4096 bytes: torch: truncated");
    done(&j);
}

#define ONE(bytes, t)                                                                              \
    HEAD "\"bytes\":" #bytes ",\"complete\":true,\"values\":{},\"tensors\":[" t "]}"

static void shrunk_by_size_or_missing_tensors(void **state)
{
    struct judged j;
    const char *two = ONE(1000, TENSOR("a", "float32", "[4]", 0, 1, 0.5, 0.1, 0, 0) "," TENSOR(
                                    "big", "float32", "[64]", 0, 1, 0.5, 0.1, 0, 0));
    judge(&j, &no_rules, ONE(1000, TENSOR("a", "float32", "[4]", 0, 1, 0.5, 0.1, 0, 0)), two);
    const struct alert *a = only(&j, "shrunk");
    assert_string_equal(a->subject, "big");
    assert_int_equal(a->count, 1);
    done(&j);

    judge(&j, &no_rules, ONE(499, TENSOR("a", "float32", "[4]", 0, 1, 0.5, 0.1, 0, 0)),
          ONE(1000, TENSOR("a", "float32", "[4]", 0, 1, 0.5, 0.1, 0, 0)));
    a = only(&j, "shrunk");
    assert_null(a->subject);
    assert_string_equal(a->message, "499 bytes, 50% less than the previous checkpoint's 1000");
    done(&j);

    /* Exactly half is not fewer than half. */
    judge(&j, &no_rules, ONE(500, TENSOR("a", "float32", "[4]", 0, 1, 0.5, 0.1, 0, 0)),
          ONE(1000, TENSOR("a", "float32", "[4]", 0, 1, 0.5, 0.1, 0, 0)));
    assert_int_equal(j.alerts.count, 0);
    done(&j);
}

static void frozen_needs_a_large_float_tensor_and_others_changing(void **state)
{
    struct judged j;
    const char *before =
        ONE(9, TENSOR("w", "float32", "[32,32]", -1, 1, 0.1, 0.5, 0, 0) "," TENSOR(
                   "small", "float32", "[1023]", -1, 1, 0.1, 0.5, 0,
                   0) "," TENSOR("ints", "int64", "[2048]", 0, 9, 4, 2, 0,
                                 0) "," TENSOR("v", "bfloat16", "[8]", 0, 1, 0.2, 0.1, 0, 0));
    const char *after =
        ONE(9, TENSOR("w", "float32", "[32,32]", -1, 1, 0.1, 0.5, 0, 0) "," TENSOR(
                   "small", "float32", "[1023]", -1, 1, 0.1, 0.5, 0,
                   0) "," TENSOR("ints", "int64", "[2048]", 0, 9, 4, 2, 0,
                                 0) "," TENSOR("v", "bfloat16", "[8]", 0, 1, 0.3, 0.1, 0, 0));
    judge(&j, &no_rules, after, before);
    const struct alert *a = only(&j, "frozen");
    assert_string_equal(a->subject, "w"); /* not the 1,023 elements, not the integers */
    assert_int_equal(a->count, 1);
    assert_int_equal(a->severity, SEVERITY_WARNING);
    done(&j);

    /* Nothing changed at all: a copy saved twice, not a frozen layer. */
    judge(&j, &no_rules, before, before);
    assert_int_equal(j.alerts.count, 0);
    done(&j);
}

static void exploding_compares_rms(void **state)
{
    struct judged j;
    /* rms = sqrt(mean² + std²): 0.5 before; 5 is exactly 10 times, 5.01 more. */
    const char *before = ONE(9, TENSOR("w", "float32", "[10]", -1, 1, 0.3, 0.4, 0,
                                       0) "," TENSOR("zero", "float32", "[10]", 0, 0, 0, 0, 0, 0));
    judge(&j, &no_rules,
          ONE(9, TENSOR("w", "float32", "[10]", -9, 9, 3, 4, 0,
                        0) "," TENSOR("zero", "float32", "[10]", -1, 1, 1, 1, 0, 0)),
          before);
    assert_int_equal(j.alerts.count, 0); /* 10 times is not more than 10; from 0 is no ratio */
    done(&j);
    judge(&j, &no_rules,
          ONE(9, TENSOR("w", "float32", "[10]", -9, 9, 3, 4.01, 0,
                        0) "," TENSOR("zero", "float32", "[10]", 0, 0, 0, 0, 0, 0)),
          before);
    const struct alert *a = only(&j, "exploding");
    assert_string_equal(a->subject, "w");
    done(&j);
}

static void user_rules_parse_and_fire(void **state)
{
    struct rule_set rules = {0};
    char err[256];
    assert_int_equal(rules_add(&rules, "diverged = loss > 10", err, sizeof err), 0);
    assert_int_equal(rules_add(&rules, "*.weight:rms>=2", err, sizeof err), 0);
    assert_int_equal(rules_add(&rules, "a=b==3", err, sizeof err), 0);
    assert_string_equal(rules.user[0].name, "diverged");
    assert_string_equal(rules.user[0].pattern, "loss");
    assert_int_equal(rules.user[0].op, OP_GT);
    assert_string_equal(rules.user[1].name, "*.weight:rms>=2");
    assert_string_equal(rules.user[1].pattern, "*.weight");
    assert_int_equal(rules.user[1].stat, STAT_RMS);
    assert_string_equal(rules.user[2].name, "a");
    assert_int_equal(rules.user[2].op, OP_EQ);
    assert_true(rules_known(&rules, "diverged") && rules_known(&rules, "frozen"));
    assert_false(rules_known(&rules, "loss"));

    assert_int_equal(rules_add(&rules, "diverged=x<1", err, sizeof err), -1);
    assert_string_equal(err, "bad rule 'diverged=x<1': a rule of that NAME was given before");
    assert_int_equal(rules_add(&rules, "x:mode<1", err, sizeof err), -1);
    assert_int_equal(rules_add(&rules, "x<", err, sizeof err), -1);
    assert_int_equal(rules_add(&rules, "x=", err, sizeof err), -1);

    struct judged j;
    judge(&j, &rules,
          HEAD
          "\"bytes\":9,\"complete\":true,\"values\":{\"loss\":12,\"b\":3},\"tensors\":[" TENSOR(
              "l1.weight", "float32", "[4]", 0, 1, 0, 3, 0,
              0) "," TENSOR("l2.weight", "float32", "[4]", 0, 1, 1.2, 1.6, 0,
                            0) "," TENSOR("l2.bias", "float32", "[4]", 0, 1, 9, 9, 0, 0) "]}",
          NULL);
    assert_int_equal(j.alerts.count, 3);
    assert_string_equal(j.alerts.items[0].rule, "diverged");
    assert_string_equal(j.alerts.items[0].message, "loss = 12 (> 10)");
    assert_string_equal(j.alerts.items[1].subject, "l1.weight"); /* rms 3 beats 2 */
    assert_int_equal(j.alerts.items[1].count, 2);
    assert_string_equal(j.alerts.items[1].message, "l1.weight:rms = 3 (>= 2); 1 more tensor");
    assert_string_equal(j.alerts.items[2].rule, "a");
    done(&j);
    rules_free(&rules);
}

static void alert_record_carries_the_checkpoints_identity(void **state)
{
    cJSON *checkpoint = cJSON_Parse(HEAD "\"rank\":3,\"bytes\":1}");
    struct alert a = {"frozen", SEVERITY_WARNING, "w", 2, "w: same"};
    cJSON *o = alert_record(checkpoint, &a, 5);
    char *text = cJSON_PrintUnformatted(o);
    assert_string_equal(
        text, "{\"schema\":1,\"event\":\"alert\",\"time\":\"2026-11-23T21:42:00.123456Z\","
              "\"host\":\"h\",\"pid\":7,\"program\":\"python3\",\"job\":\"j\",\"rank\":3,"
              "\"path\":\"/c/epoch_3.pt\",\"rule\":\"frozen\",\"severity\":\"warning\","
              "\"subject\":\"w\",\"count\":2,\"message\":\"w: same\",\"total\":5}");
    free(text);
    cJSON_Delete(o);
    cJSON_Delete(checkpoint);
}

static void series_survive_a_new_store(void **state)
{
    char dir[] = "/tmp/ckmon-test-series-XXXXXX";
    assert_non_null(mkdtemp(dir));
    cJSON *r = cJSON_Parse(ONE(77, TENSOR("w", "float32", "[2,3]", -1, 1, 0.5, null, 0, 0)));
    char key[SERIES_KEY_SIZE];
    assert_true(series_key(r, key, sizeof key));
    assert_string_equal(key, "j\x1fh\x1f\x1f"
                             "epoch_N.pt");
    struct series_store *st = series_open(dir);
    struct snapshot snap;
    assert_true(snapshot_from_record(r, &snap));
    assert_null(series_previous(st, key));
    char *tensors = json_print(cJSON_GetObjectItem(r, "tensors")); /* "[...]" */
    series_update(st, key, &snap, tensors + 1, strlen(tensors) - 2);
    free(tensors);
    assert_int_equal(series_count_alert(st, r, "frozen"), 1);
    series_close(st);

    st = series_open(dir); /* a collector started again */
    const struct snapshot *prev = series_previous(st, key);
    assert_non_null(prev);
    assert_int_equal(prev->bytes, 77);
    assert_int_equal(prev->count, 1);
    const struct tensor_summary *w = snapshot_find(prev, "w");
    assert_non_null(w);
    assert_true(w->floating);
    assert_true(w->elements == 6 && w->stat[STAT_MEAN] == 0.5 && isnan(w->stat[STAT_STD]));
    assert_int_equal(series_count_alert(st, r, "frozen"), 2);

    /* A checkpoint whose text could not be kept: the older snapshot goes, so that a
     * restarted collector does not compare the next checkpoint with it. */
    assert_true(snapshot_from_record(r, &snap));
    series_update(st, key, &snap, NULL, 0);
    assert_non_null(series_previous(st, key)); /* this collector still has it in memory */
    series_close(st);
    st = series_open(dir);
    assert_null(series_previous(st, key));
    series_close(st);
    cJSON_Delete(r);
    char command[128];
    snprintf(command, sizeof command, "rm -r %s", dir);
    assert_int_equal(system(command), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nonfinite_names_the_worst_tensor_once),
        cmocka_unit_test(incomplete_quotes_the_first_error),
        cmocka_unit_test(shrunk_by_size_or_missing_tensors),
        cmocka_unit_test(frozen_needs_a_large_float_tensor_and_others_changing),
        cmocka_unit_test(exploding_compares_rms),
        cmocka_unit_test(user_rules_parse_and_fire),
        cmocka_unit_test(alert_record_carries_the_checkpoints_identity),
        cmocka_unit_test(series_survive_a_new_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
