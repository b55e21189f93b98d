/* test_jsontext.c — numbers as JSON text (core/jsontext.c, json_shortest_double).
 *
 * Every double must read back exactly; decimal-looking values must come out as
 * written; and the digits must be as few as a plain search from 1 to 17 finds (or, at
 * a binade edge, one more).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsontext.h"
#include "xorshift.h"

static uint64_t state = 0x2545f4914f6cdd1dull;

static uint64_t next_random(void)
{
    return xorshift64(&state);
}

/* The reference: the fewest digits, searched one by one. */
static int shortest_digits(double v)
{
    char text[40];
    for (int p = 1; p < 17; p++) {
        snprintf(text, sizeof text, "%.*g", p, v);
        if (strtod(text, NULL) == v) return p;
    }
    return 17;
}

static int digits_of(const char *text)
{
    int n = 0;
    for (const char *p = text; *p && *p != 'e'; p++)
        n += *p >= '0' && *p <= '9';
    return n;
}

static void check(double v)
{
    char text[40];
    int len = json_shortest_double(v, text, sizeof text);
    assert_int_equal(len, (int)strlen(text));
    if (strtod(text, NULL) != v) fail_msg("%.17g printed as %s", v, text);
    /* Leading zeros of 0.00x count as digits here, in both. */
    char ref[40];
    snprintf(ref, sizeof ref, "%.*g", shortest_digits(v), v);
    if (digits_of(text) > digits_of(ref) + 1) fail_msg("%.17g: %s, shortest %s", v, text, ref);
}

static void test_random_bit_patterns(void **unused)
{
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = next_random();
        double v;
        memcpy(&v, &bits, sizeof v);
        if (isfinite(v)) check(v);
    }
}

static void test_float32_values_and_statistics(void **unused)
{
    for (int i = 0; i < 20000; i++) {
        float f = (float)((double)(next_random() >> 11) / 0x1p53 - 0.5) * 0.1f;
        check(f);
        check(f / 3.0);
    }
    check(0x1p-1074); /* smallest subnormal */
    check(1.7976931348623157e308);
    check(0x1p-1022);
    check(nextafter(0x1p-1022, 0));
}

static void test_decimal_values_come_out_as_written(void **unused)
{
    static const char *const written[] = {"0.1",   "0.001",   "1e-05",  "123.456", "2.5",
                                          "-7.25", "3.14159", "1e+300", "0.3"};
    for (size_t i = 0; i < sizeof written / sizeof written[0]; i++) {
        char text[40];
        json_shortest_double(strtod(written[i], NULL), text, sizeof text);
        assert_string_equal(text, written[i]);
    }
}

/* A tree of random doubles (any bit pattern), strings with characters that need
 * escapes, and nesting, like a data message's findings. */
static cJSON *random_tree(void)
{
    cJSON *root = cJSON_CreateObject(), *values = cJSON_AddObjectToObject(root, "values");
    cJSON *list = cJSON_AddArrayToObject(root, "tensors");
    for (int i = 0; i < 200; i++) {
        uint64_t bits = next_random();
        double v;
        memcpy(&v, &bits, sizeof v);
        char key[32];
        snprintf(key, sizeof key, "k\"%d\n\x01", i);
        cJSON_AddItemToObject(values, key, cJSON_CreateNumber(isfinite(v) ? v : i));
        cJSON_AddItemToArray(list, cJSON_CreateNumber(isfinite((float)v) ? (float)v : 0.5f));
        cJSON_AddItemToArray(list, cJSON_CreateString("\t\x02\"\\"));
    }
    cJSON_AddItemToObject(root, "flag", cJSON_CreateFalse());
    return root;
}

/* The agent's messages: every number reads back exactly, and the whole tree parses
 * back equal to what was printed. */
static void test_wire_text_reads_back_exactly(void **unused)
{
    cJSON *tree = random_tree();
    char *text = json_print_wire(tree);
    assert_non_null(text);
    cJSON *back = cJSON_Parse(text);
    assert_non_null(back);
    assert_true(cJSON_Compare(tree, back, true));
    const cJSON *a = cJSON_GetObjectItem(tree, "values")->child;
    const cJSON *b = cJSON_GetObjectItem(back, "values")->child;
    for (; a && b; a = a->next, b = b->next)
        if (a->valuedouble != b->valuedouble)
            fail_msg("%.17g read back as %.17g", a->valuedouble, b->valuedouble);
    assert_null(a);
    assert_null(b);
    cJSON_Delete(back);
    free(text);
    cJSON_Delete(tree);
}

/* The bound that splits the agent's findings into messages is never below the text. */
static void test_text_bound_covers_both_printers(void **unused)
{
    cJSON *tree = random_tree();
    /* A member without a key prints as "": */
    cJSON_AddItemToArray(cJSON_AddObjectToObject(tree, "keyless"), cJSON_CreateNumber(-0.0));
    for (const cJSON *part = tree->child; part; part = part->next) {
        for (const cJSON *item = part->child; item; item = item->next) {
            char *shortest = json_print(item), *wire = json_print_wire(item);
            size_t key = item->string ? strlen(item->string) + 3 : 0; /* "key": unescaped */
            assert_true(strlen(shortest) + key <= json_text_bound(item));
            assert_true(strlen(wire) + key <= json_text_bound(item));
            free(shortest);
            free(wire);
        }
        char *text = json_print_wire(part);
        assert_true(strlen(text) <= json_text_bound(part));
        free(text);
    }
    char *whole = json_print(tree);
    assert_true(strlen(whole) <= json_text_bound(tree));
    free(whole);
    cJSON_Delete(tree);
}

/* U+0000, held as C0 80 in findings, is \u0000 in a record, raw on the wire; read back
 * for metrics it is the text \x00, which a name's own backslash never reads as. */
static void test_nul_in_strings(void **unused)
{
    (void)unused;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o,
                            "a\xc0\x80"
                            "b",
                            "v\xc0\x80");
    cJSON_AddStringToObject(o, "a\\x00", "\xc0"); /* a backslash that reads as \x00; a stray byte */
    char *names = json_print(o), *wire = json_print_wire(o);
    assert_string_equal(names, "{\"a\\u0000b\":\"v\\u0000\",\"a\\\\x5cx00\":\"\\\\xc0\"}");
    assert_string_equal(wire, "{\"a\xc0\x80"
                              "b\":\"v\xc0\x80\",\"a\\\\x00\":\"\xc0\"}");
    assert_true(json_text_bound(o) >= strlen(names));
    struct strbuf hex = {.limit = 1024};
    json_add_hex_item(&hex, o); /* tensors on the wire: raw too */
    assert_non_null(strstr(hex.s, "\"a\xc0\x80"
                                  "b\":\"v\xc0\x80\""));
    free(hex.s);
    cJSON *back = json_parse_record_line(names, strlen(names));
    assert_non_null(back);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(back, "a\\x00b"));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(back, "a\\x5cx00"));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(back, "a\\x00b")->valuestring, "v\\x00");
    const char *escaped = "{\"k\":\"\\\\u0000\"}"; /* the text \u0000, not a NUL */
    cJSON *text = json_parse_record_line(escaped, strlen(escaped));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(text, "k")->valuestring, "\\u0000");
    cJSON_Delete(text);
    cJSON_Delete(back);
    cJSON_Delete(o);
    free(names);
    free(wire);
}

/* A line printed into a buffer that held a longer one is that line alone, exactly as the
 * malloc'd printers give it, in the same memory (the collector prints every record so). */
static void test_print_line_reuses_its_buffer(void **unused)
{
    (void)unused;
    cJSON *record = cJSON_CreateObject();
    cJSON_AddStringToObject(record, "path", "/ckpt/a.pt");
    cJSON_AddArrayToObject(record, "tensors");
    cJSON_AddNumberToObject(record, "bytes", 12345);
    struct strbuf tensors = {.limit = 1u << 30};
    for (int i = 0; i < 20000; i++)
        sb_addf(&tensors, "%s{\"name\":\"t%d\",\"mean\":%d.5}", i ? "," : "", i, i);
    struct json_piece piece = {cJSON_GetObjectItemCaseSensitive(record, "tensors"), tensors.s,
                               tensors.len};

    struct strbuf line = {0};
    assert_true(json_print_line(&line, record, &piece));
    char *whole = json_print_piece(record, &piece);
    assert_int_equal(line.len, strlen(whole) + 1);
    assert_memory_equal(line.s, whole, line.len - 1);
    assert_int_equal(line.s[line.len - 1], '\n');
    assert_int_equal(line.s[line.len], '\0');

    const char *room = line.s;
    size_t alloc = line.alloc;
    cJSON *alert = cJSON_CreateObject();
    cJSON_AddStringToObject(alert, "rule", "nan");
    assert_true(json_print_line(&line, alert, NULL));
    char *alone = json_print(alert);
    assert_int_equal(line.len, strlen(alone) + 1);
    assert_string_equal(line.s, "{\"rule\":\"nan\"}\n");
    assert_ptr_equal(line.s, room);
    assert_int_equal(line.alloc, alloc);

    free(alone);
    free(whole);
    free(line.s);
    free(tensors.s);
    cJSON_Delete(alert);
    cJSON_Delete(record);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_bit_patterns),
        cmocka_unit_test(test_float32_values_and_statistics),
        cmocka_unit_test(test_decimal_values_come_out_as_written),
        cmocka_unit_test(test_wire_text_reads_back_exactly),
        cmocka_unit_test(test_text_bound_covers_both_printers),
        cmocka_unit_test(test_nul_in_strings),
        cmocka_unit_test(test_print_line_reuses_its_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
