/* test_wire_tensors.c — a data message's tensors read without cJSON's parser
 * (core/wire_tensors.c).
 *
 * The reader must give the text that cJSON's parse and json_tensor_from_hex give once
 * printed as records print them (exact numbers, so -0.0 and 0 differ, which
 * cJSON_Compare does not see), for what agents send and for what they do not (escapes,
 * numbers written otherwise, nesting, hostile text), or both no JSON; and the briefs the
 * collector's alert rules read must be the summaries it makes of that tree.
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

#include "collector/series.h"
#include "core/jsontext.h"
#include "core/parsers/report.h"
#include "core/wire_tensors.h"

/* What cJSON's parser and the hex conversion make of packet, printed; NULL for no JSON. */
static char *expected(const char *packet)
{
    cJSON *tree = cJSON_Parse(packet), *t;
    cJSON *tensors = cJSON_GetObjectItemCaseSensitive(tree, "tensors");
    if (cJSON_IsArray(tensors)) cJSON_ArrayForEach(t, tensors) json_tensor_from_hex(t);
    char *text = tree ? json_print(tree) : NULL;
    cJSON_Delete(tree);
    return text;
}

static bool same_number(double a, double b)
{
    return isnan(a) ? isnan(b) : !memcmp(&a, &b, sizeof a);
}

/* The briefs read against what the collector sums up of cJSON's tree. */
static void assert_briefs_summed_up(struct printed_tensors *texts, const char *packet)
{
    cJSON *tree = cJSON_Parse(packet), *t;
    struct tensor_list want = {0}, got = {0};
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(tree, "tensors"))
    {
        json_tensor_from_hex(t);
        assert_true(tensor_list_add(&want, t));
    }
    for (size_t i = 0; i < texts->brief_count; i++)
        assert_true(tensor_list_add_brief(&got, &texts->briefs[i]));
    assert_int_equal(got.count, want.count);
    for (size_t i = 0; i < got.count; i++) {
        const struct tensor_summary *a = &got.items[i], *b = &want.items[i];
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->floating, b->floating);
        assert_true(same_number(a->elements, b->elements));
        assert_true(same_number(a->sampled, b->sampled));
        for (int k = 0; k < STAT_COUNT; k++)
            assert_true(same_number(a->stat[k], b->stat[k]));
    }
    tensor_list_free(&want);
    tensor_list_free(&got);
    cJSON_Delete(tree);
}

static void assert_read_as_cjson(const char *packet)
{
    char *want = expected(packet);
    struct printed_tensors texts;
    cJSON *tree = wire_parse_packet(packet, strlen(packet), &texts);
    struct json_piece piece = {cJSON_GetObjectItemCaseSensitive(tree, "tensors"),
                               texts.text.s ? texts.text.s : "", texts.text.len};
    char *got = tree ? json_print_piece(tree, texts.read ? &piece : NULL) : NULL;
    if (!want || !got) {
        assert_ptr_equal(want, got);
    } else {
        assert_string_equal(got, want);
    }
    if (texts.read) assert_briefs_summed_up(&texts, packet);
    free(want);
    free(got);
    printed_tensors_free(&texts);
    cJSON_Delete(tree);
}

static void test_what_agents_send(void **state)
{
    (void)state;
    struct report r;
    struct tensor_stats st = {0};
    int64_t shape[] = {2, 3};
    report_init(&r, NULL);
    stats_init(&st, DTYPE_F32);
    float data[] = {0.5f, -0.0f, 3.25f, 1e-40f, -2.5f, 7};
    stats_feed(&st, data, sizeof data);
    report_tensor(&r, "w", "float32", shape, 2, &st, 1);
    report_tensor(&r, "caf\xc3\xa9 \"q\"\n\xc0\x80", "float32", shape, 2, &st, 0.25);
    report_tensor(&r, "#3ff0000000000000", "#3ff0000000000000", NULL, 0, NULL, 0.5);
    char *packet = malloc(r.tensors.text.len + 64);
    sprintf(packet, "{\"t\":\"data\",\"id\":7,\"tensors\":%s],\"seq\":3}", r.tensors.text.s);
    assert_read_as_cjson(packet);
    struct printed_tensors texts;
    cJSON *tree = wire_parse_packet(packet, strlen(packet), &texts);
    assert_true(texts.read);
    assert_int_equal(texts.count, 3);
    assert_true(texts.briefs[0].stat[BRIEF_MAX] == 7);
    assert_int_equal(cJSON_GetObjectItem(tree, "seq")->valueint, 3);
    printed_tensors_free(&texts);
    cJSON_Delete(tree);
    free(packet);
    report_free(&r);
}

static void test_what_agents_do_not_send(void **state)
{
    (void)state;
    static const char *const packets[] = {
        "{\"t\":\"data\",\"id\":1,\"tensors\":[]}",
        "{\"t\":\"data\",\"tensors\":[{\"name\":\"a\\u00e9\\ud83d\\ude00\",\"min\":-0.0,"
        "\"max\":1e300,\"mean\":-12345678901234567890,\"std\":0.1,\"nan\":01,\"x\":[[[[1]]]]}]}",
        "{\"t\":\"data\",\"tensors\":[{\"name\":\"\\u00233ff0000000000000\","
        "\"min\":\"\\u00233ff0000000000000\",\"head\":[\"#3FF0000000000000\",\"#3ff000000000000\"]}"
        "]}",
        "{\"t\":\"data\",\"tensors\":[{\"name\":\"a\\u0000b\"}]}",
        "{\"t\":\"data\",\"tensors\":[{\"name\":\"a\\ud800\"}]}",
        "{\"t\":\"data\",\"tensors\":[{\"name\":\"a\\q\"}]}",
        "{\"t\":\"data\",\"tensors\":[{\"name\":+1}]}",
        "{\"t\":\"data\",\"tensors\":[{\"name\":\"a\x01\"}]}",
        "{\"t\":\"data\",\"tensors\":[1,{\"min\":\"#3ff0000000000000\"}]}",
        "{\"t\":\"data\",\"tensors\":{\"min\":\"#3ff0000000000000\"}}",
        "{\"t\":\"data\",\"tensors\":[{\"min\":\"#3ff0000000000000\"}],\"tensors\":[]}",
        "{\"values\":{\"a\":[{\"b\":\"\\\"}\"}]},\"t\":\"data\",\"tensors\":[{\"std\":true}],"
        "\"x\":",
        "{\"t\":\"data\",\"tensors\":[{\"std\":nul}]}",
        "{\"t\":\"data\",\"tensors\":[{\"std\":1}",
        "{\"t\":\"data\",\"tensors\":[{\"std\":1}]} trailing",
        "[{\"tensors\":[]}]",
        "",
        /* What the briefs take: the first of a name, numbers only, a shape's items. */
        "{\"t\":\"data\",\"tensors\":[{\"name\":5,\"min\":\"#3ff0000000000000\"},{\"name\":\"a\","
        "\"name\":\"b\",\"dtype\":\"float16\",\"shape\":[2,\"x\"],\"nan\":\"#4000000000000000\","
        "\"nan\":1}]}",
        "{\"t\":\"data\",\"tensors\":[{\"name\":\"s\",\"dtype\":7,\"shape\":{\"a\":2,\"b\":3},"
        "\"sampled\":\"#3fd0000000000000\",\"std\":true},{\"name\":\"t\",\"shape\":\"x\","
        "\"inf\":1e999,\"max\":-0.0}]}",
        "{\"t\":\"data\",\"tensors\":[{\"dtype\":\"bfloat16\",\"name\":\"u\",\"shape\":[[1],2],"
        "\"head\":[\"#7ff0000000000000\",\"#0000000000000001\",2.5e-310]}]}",
        /* As agents write tensors but for one thing. */
        "{\"t\":\"data\",\"tensors\":[{\"name\":\"a\",\"head\":[\"#3ff0000000000000\",]}]}",
        "{\"t\":\"data\",\"tensors\":[{\"name\":\"a\",\"head\":[\"#3ff0000000000000\"\"#"
        "3ff0000000000000\"]}]}",
        "{\"t\":\"data\",\"tensors\":[{\"name\":\"a\",\"shape\":[null,\"#4000000000000000\"],"
        "\"min\":null,\"max\":nul}]}",
        "{\"t\":\"data\",\"tensors\":[{\"name\":\"a\",\"shape\":[null,\"#4000000000000000\"],"
        "\"min\":null,\"max\":\"#4000000000000000\"}]}",
    };
    for (size_t i = 0; i < sizeof packets / sizeof packets[0]; i++)
        assert_read_as_cjson(packets[i]);
}

/* The packet of a data message holding the tensors of r. */
static char *data_packet(const struct report *r)
{
    char *packet = malloc(r->tensors.text.len + 64);
    sprintf(packet, "{\"t\":\"data\",\"id\":7,\"tensors\":%s],\"seq\":3}", r->tensors.text.s);
    return packet;
}

/* The same packet with a space after each comma: JSON still, but not as agents write it. */
static char *spaced(const char *packet)
{
    char *text = malloc(2 * strlen(packet) + 1), *out = text;
    for (const char *p = packet; *p; p++)
        if ((*out++ = *p) == ',') *out++ = ' ';
    *out = '\0';
    return text;
}

static void assert_same_briefs(const struct printed_tensors *a, const struct printed_tensors *b)
{
    assert_int_equal(a->brief_count, b->brief_count);
    for (size_t i = 0; i < a->brief_count; i++) {
        const struct tensor_brief *x = &a->briefs[i], *y = &b->briefs[i];
        assert_string_equal(x->name, y->name);
        assert_true(x->dtype && y->dtype ? !strcmp(x->dtype, y->dtype) : x->dtype == y->dtype);
        assert_true(same_number(x->elements, y->elements));
        assert_true(same_number(x->sampled, y->sampled));
        for (int k = 0; k < BRIEF_STATS; k++)
            assert_true(same_number(x->stat[k], y->stat[k]));
    }
}

/* Tensors as agents write them take a path of their own through the reader (no white
 * space, known names, hex numbers): its text and briefs must be the general path's,
 * which the same tensors with white space take, and cJSON's; and a tensor it gives up
 * on at any byte (each byte changed in turn) must come out as cJSON reads it. */
static void test_agent_tensors_read_as_any_others(void **state)
{
    (void)state;
    struct report r;
    struct tensor_stats exact = {0}, odd = {0}, none = {0}, sampled = {0};
    int64_t shape[] = {2, 3}, big[] = {4096, 4096};
    float data[] = {0.5f, -0.0f, 3.25f, 1e-40f, -2.5f, 7};
    float specials[] = {NAN, -INFINITY, 1.5f, INFINITY, -0.0f, 0};
    float nans[] = {NAN, NAN};
    report_init(&r, NULL);
    stats_init(&exact, DTYPE_F32);
    stats_feed(&exact, data, sizeof data);
    stats_init(&odd, DTYPE_F32);
    stats_feed(&odd, specials, sizeof specials);
    stats_init(&none, DTYPE_F32);
    stats_feed(&none, nans, sizeof nans);
    stats_init(&sampled, DTYPE_F32);
    stats_feed(&sampled, data, sizeof data);
    report_tensor(&r, "layer0.weight", "float32", shape, 2, &exact, 1);
    report_tensor(&r, "specials", "float32", shape, 2, &odd, 1);
    report_tensor(&r, "no finite", "float16", shape, 1, &none, 1);
    report_tensor(&r, "scalar", "bfloat16", NULL, 0, &exact, 1);
    report_tensor(&r, "", "int8", shape, 2, NULL, 1);
    report_tensor(&r, "big", "float32", big, 2, &sampled, 0.0625);
    report_tensor(&r, "caf\xc3\xa9 \"q\"", "float32", shape, 2, &exact, 1);
    report_tensor(&r, "#3ff0000000000000", "#3ff0000000000000", NULL, 0, NULL, 0.5);
    char *packet = data_packet(&r), *other = spaced(packet);
    struct printed_tensors fast, slow;
    cJSON *a = wire_parse_packet(packet, strlen(packet), &fast);
    cJSON *b = wire_parse_packet(other, strlen(other), &slow);
    assert_true(fast.read && slow.read);
    assert_int_equal(fast.count, 8);
    assert_string_equal(fast.text.s, slow.text.s);
    assert_same_briefs(&fast, &slow);
    assert_read_as_cjson(packet);
    assert_read_as_cjson(other);
    static const char changes[] = {'"', '\\', ' ', ',', ':', '[',    ']',    '{',
                                   '}', '#',  'n', 'x', '0', '9',    '/',    '`',
                                   'a', 'f',  'g', 'F', '@', '\x01', '\x80', '\xff'};
    const char *from = strchr(packet, '['), *to = strrchr(packet, ']');
    for (const char *at = from; at <= to; at++)
        for (size_t c = 0; c < sizeof changes; c++) {
            char *changed = strdup(packet);
            changed[at - packet] = changes[c];
            assert_read_as_cjson(changed);
            free(changed);
        }
    printed_tensors_free(&fast);
    printed_tensors_free(&slow);
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(packet);
    free(other);
    report_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_what_agents_send),
        cmocka_unit_test(test_what_agents_do_not_send),
        cmocka_unit_test(test_agent_tensors_read_as_any_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
