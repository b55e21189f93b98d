/* test_distcp.c — PyTorch DCP data files (core/parsers/distcp.c).
 *
 * The items are real torch.save archives back to back (fixtures/distcp_files.h, made by
 * make_distcp.py, whose OBJECTS are the ground truth here): 100, arange(12.) as 3x4, and
 * {"m": ones(5), "k": 2}; and a file with a raw byte item between two archives. Each is
 * fed whole and one byte per call: every archive's findings are there, named by byte
 * offset, or by the names a .metadata gives the items.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parsers/distcp.h"
#include "core/parsers/parser.h"
#include "fixtures/distcp_files.h"

/* The tensors of the last parse, taken from its report as cJSON. */
static cJSON *found_tensors;

/* Parses len bytes of data (one byte per call when bytewise) into r (its tensors into
 * found_tensors); finish()'s result. */
static bool parse(const uint8_t *data, size_t len, bool bytewise, const struct distcp_items *items,
                  struct report *r)
{
    struct parse_options o = {.sample = 1.0, .distcp = items};
    report_init(r, NULL);
    struct parser *p = parser_distcp_new(r, &o);
    assert_non_null(p);
    assert_string_equal(p->format, "torch");
    for (size_t i = 0; i < len; i += bytewise ? 1 : len)
        p->feed(p, data + i, bytewise ? 1 : len);
    bool whole = p->finish(p);
    p->destroy(p);
    assert_null(r->root_name);
    cJSON_Delete(found_tensors);
    found_tensors = report_take_tensors(r);
    return whole;
}

static const cJSON *tensor(const struct report *r, const char *name)
{
    const cJSON *t;
    (void)r;
    cJSON_ArrayForEach(
        t, found_tensors) if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(t, "name")),
                                      name)) return t;
    fail_msg("no tensor %s", name);
    return NULL;
}

static double member(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(o, name);
    assert_non_null(v);
    return v->valuedouble;
}

/* arange(12.) as 3x4 and ones(5), under the names given. */
static void assert_tensors(const struct report *r, const char *arange, const char *ones)
{
    const cJSON *a = tensor(r, arange), *b = tensor(r, ones);
    assert_int_equal(cJSON_GetArraySize(found_tensors), 2);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "shape"), 0)->valueint, 3);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "shape"), 1)->valueint, 4);
    assert_true(member(a, "min") == 0 && member(a, "max") == 11 && member(a, "mean") == 5.5);
    assert_true(member(b, "min") == 1 && member(b, "max") == 1 && member(b, "mean") == 1);
}

static void test_items_named_by_offset(void **state)
{
    (void)state;
    char arange[32], ones[32], k[32];
    snprintf(arange, sizeof arange, "@%d", ITEM0_LEN);
    snprintf(ones, sizeof ones, "@%d.m", ITEM0_LEN + ITEM1_LEN);
    snprintf(k, sizeof k, "@%d.k", ITEM0_LEN + ITEM1_LEN);
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct report r;
        assert_true(parse(distcp_items, sizeof distcp_items, bytewise, NULL, &r));
        assert_int_equal(cJSON_GetArraySize(r.errors), 0);
        assert_int_equal(member(r.values, "@0"), 100);
        assert_int_equal(member(r.values, k), 2);
        assert_tensors(&r, arange, ones);
        report_free(&r);
    }
}

static void test_items_named_by_the_metadata(void **state)
{
    (void)state;
    struct distcp_item at[] = {{0, ITEM0_LEN, "step"},
                               {ITEM0_LEN, ITEM1_LEN, "layers.0.weight"},
                               {ITEM0_LEN + ITEM1_LEN, ITEM2_LEN, "extra"}};
    struct distcp_items items = {at, 3};
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct report r;
        assert_true(parse(distcp_items, sizeof distcp_items, bytewise, &items, &r));
        assert_int_equal(member(r.values, "step"), 100);
        assert_int_equal(member(r.values, "extra.k"), 2);
        assert_tensors(&r, "layers.0.weight", "extra.m");
        report_free(&r);
    }
}

static void test_raw_item(void **state)
{
    (void)state;
    struct distcp_item at[] = {{0, ITEM0_LEN, "step"},
                               {ITEM0_LEN, RAW_LEN, "extra_state"},
                               {ITEM0_LEN + RAW_LEN, ITEM1_LEN, "layers.0.weight"}};
    struct distcp_items items = {at, 3};
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        /* Known: skipped by its length, and the archive after it is read. */
        struct report r;
        assert_true(parse(distcp_raw, sizeof distcp_raw, bytewise, &items, &r));
        assert_int_equal(member(r.values, "step"), 100);
        assert_int_equal(cJSON_GetArraySize(found_tensors), 1);
        assert_non_null(tensor(&r, "layers.0.weight"));
        report_free(&r);
        /* Unknown: nothing says where the next item starts; no error either. */
        assert_true(parse(distcp_raw, sizeof distcp_raw, bytewise, NULL, &r));
        assert_int_equal(member(r.values, "@0"), 100);
        assert_int_equal(cJSON_GetArraySize(found_tensors), 0);
        assert_int_equal(cJSON_GetArraySize(r.errors), 0);
        report_free(&r);
    }
}

static void test_cut_short(void **state)
{
    (void)state;
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct report r;
        assert_false(parse(distcp_items, ITEM0_LEN + ITEM1_LEN / 2, bytewise, NULL, &r));
        assert_int_equal(member(r.values, "@0"), 100); /* what came before stays */
        char expected[80];
        snprintf(expected, sizeof expected, "distcp: the item at byte %d is cut short", ITEM0_LEN);
        const cJSON *e = cJSON_GetArrayItem(r.errors, cJSON_GetArraySize(r.errors) - 1);
        assert_string_equal(e->valuestring, expected);
        report_free(&r);
        /* Two stray bytes after the last archive. */
        uint8_t more[sizeof distcp_items + 2];
        memcpy(more, distcp_items, sizeof distcp_items);
        more[sizeof distcp_items] = 'P', more[sizeof distcp_items + 1] = 'K';
        assert_false(parse(more, sizeof more, bytewise, NULL, &r));
        report_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_items_named_by_offset),
        cmocka_unit_test(test_items_named_by_the_metadata),
        cmocka_unit_test(test_raw_item),
        cmocka_unit_test(test_cut_short),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    cJSON_Delete(found_tensors);
    return failed;
}
