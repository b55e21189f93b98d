/* test_bounds.c — crafted bytes that claim sizes no parser may believe (docs/security.md).
 *
 * Each case is a few bytes that lie: a 2^62 count, a 2^63 header length, a shape whose
 * product overflows, a list that holds itself twice. The parser must say what is wrong,
 * return "not whole" from finish(), and cost bounded memory and time; fed in one piece
 * and a byte at a time. The collector's merge of findings keeps the latest of a repeated
 * key in the first one's place.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parsers/parser.h"
#include "collector/record.h"

typedef struct parser *(*constructor)(struct report *, const struct parse_options *);

struct outcome {
    bool complete;
    cJSON *found; /* values, tensors, errors */
};

static struct outcome parse(constructor make, const void *data, size_t len, bool bytewise)
{
    struct parse_options o = {.sample = 1.0};
    struct report r;
    report_init(&r, NULL);
    struct parser *p = make(&r, &o);
    assert_non_null(p);
    const uint8_t *b = data;
    for (size_t at = 0; at < len; at += bytewise ? 1 : len)
        p->feed(p, b + at, bytewise ? 1 : len);
    struct outcome out = {.complete = p->finish(p), .found = cJSON_CreateObject()};
    report_take(&r, out.found);
    p->destroy(p);
    report_free(&r);
    return out;
}

/* One of the errors contains what, and (when incomplete) finish() says not whole. A
 * header entry that is skipped leaves the rest of the file whole. */
static void expect_error(constructor make, const void *data, size_t len, const char *what,
                         bool incomplete)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct outcome out = parse(make, data, len, bytewise);
        cJSON *errors = cJSON_GetObjectItem(out.found, "errors"), *e;
        bool said = false;
        cJSON_ArrayForEach(e, errors) said |= strstr(e->valuestring, what) != NULL;
        if (!said)
            fail_msg("no error containing '%s' in %s", what, cJSON_PrintUnformatted(out.found));
        if (incomplete) assert_false(out.complete);
        cJSON_Delete(out.found);
    }
}

static void expect_refused(constructor make, const void *data, size_t len, const char *what)
{
    expect_error(make, data, len, what, true);
}

static void put_u64(uint8_t *at, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        at[i] = (uint8_t)(v >> (8 * i));
}

static void test_gguf_counts_near_2_62(void **state)
{
    (void)state;
    uint8_t file[24 + 64] = "GGUF\x03\0\0\0";
    put_u64(file + 8, 0);
    put_u64(file + 16, 1ULL << 62);
    expect_refused(parser_gguf_new, file, sizeof file, "key-value count 4611686018427387904");
    put_u64(file + 8, 1ULL << 62);
    put_u64(file + 16, 0);
    expect_refused(parser_gguf_new, file, sizeof file, "tensor count 4611686018427387904");
}

static void test_gguf_string_of_2_63_bytes(void **state)
{
    (void)state;
    uint8_t file[24 + 8 + 16] = "GGUF\x03\0\0\0";
    put_u64(file + 8, 0);
    put_u64(file + 16, 1);
    put_u64(file + 24, 1ULL << 63);
    memcpy(file + 32, "general.name....", 16);
    expect_refused(parser_gguf_new, file, sizeof file, "gguf:");
}

static void test_safetensors_header_near_2_63(void **state)
{
    (void)state;
    uint8_t file[8 + 16];
    put_u64(file, (1ULL << 63) - 1);
    memcpy(file + 8, "{\"a\":          ", 16);
    expect_refused(parser_safetensors_new, file, sizeof file, "safetensors");
}

static void test_safetensors_shape_product_overflows(void **state)
{
    (void)state;
    static const char header[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                                 "\"data_offsets\":[0,4]}}      ";
    uint8_t file[8 + sizeof header - 1 + 4] = {0};
    put_u64(file, sizeof header - 1);
    memcpy(file + 8, header, sizeof header - 1);
    expect_error(parser_safetensors_new, file, sizeof file, "entry w: shape's size overflows",
                 false);
}

static void test_npy_shape_product_overflows(void **state)
{
    (void)state;
    char file[128 + 8];
    int n = snprintf(file + 10, 118,
                     "{'descr': '<f8', 'fortran_order': False, "
                     "'shape': (4294967296, 4294967296, 4294967296), }");
    memset(file + 10 + n, ' ', 117 - n);
    file[127] = '\n';
    memcpy(file, "\x93NUMPY\x01\x00", 8);
    file[8] = 118, file[9] = 0;
    memset(file + 128, 0, 8);
    expect_refused(parser_npy_new, file, sizeof file, "invalid shape");
}

static void test_pickle_string_of_2_60_bytes(void **state)
{
    (void)state;
    uint8_t file[2 + 1 + 8 + 4] = {0x80, 0x04, 0x8d};
    put_u64(file + 3, 1ULL << 60);
    memcpy(file + 11, "abc.", 4);
    expect_refused(parser_pickle_new, file, sizeof file, "pickle");
}

/* [l, l, l] where l = [0.5, l, l]: a tree of 3^64 names through the memo. */
static void test_pickle_list_holding_itself_twice(void **state)
{
    (void)state;
    static const uint8_t file[] = {0x80, 0x02, ']', 'q', 1,   '(', 'G', 0x3f, 0xe0, 0,  0,
                                   0,    0,    0,   0,   'h', 1,   'h', 1,    'e',  '.'};
    struct outcome out = parse(parser_pickle_new, file, sizeof file, false);
    cJSON *values = cJSON_GetObjectItem(out.found, "values");
    assert_int_equal(cJSON_GetArraySize(values), REPORT_MAX_FINDINGS);
    char *errors = cJSON_PrintUnformatted(cJSON_GetObjectItem(out.found, "errors"));
    assert_non_null(strstr(errors, "more than 100000 values and tensors"));
    free(errors);
    cJSON_Delete(out.found);
}

static void test_json_nul_byte_ends(void **state)
{
    (void)state;
    static const char file[] = "{\"a\": [1, 2,\0 3]";
    expect_refused(parser_json_new, file, sizeof file - 1, "NUL");
}

static void test_json_deeper_than_cjson_allows(void **state)
{
    (void)state;
    size_t depth = 1000000;
    char *file = malloc(2 * depth);
    memset(file, '[', depth);
    memset(file + depth, ']', depth);
    struct outcome out = parse(parser_json_new, file, 2 * depth, false);
    assert_false(out.complete);
    assert_non_null(cJSON_GetObjectItem(out.found, "errors"));
    cJSON_Delete(out.found);
    free(file);
}

static void test_record_merges_repeated_keys_once(void **state)
{
    (void)state;
    struct identity who = {0};
    struct record *r = record_new(&who, "/x.pt");
    const char *batches[] = {"{\"values\":{\"a\":1,\"b\":2}}", "{\"values\":{\"c\":3,\"a\":4}}",
                             "{\"values\":{\"b\":5}}"};
    for (int i = 0; i < 3; i++) {
        cJSON *found = cJSON_Parse(batches[i]);
        record_take_findings(r, found);
        cJSON_Delete(found);
    }
    record_settle(r);
    char *values = cJSON_PrintUnformatted(r->values);
    assert_string_equal(values, "{\"a\":4,\"b\":5,\"c\":3}");
    free(values);
    record_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_counts_near_2_62),
        cmocka_unit_test(test_gguf_string_of_2_63_bytes),
        cmocka_unit_test(test_safetensors_header_near_2_63),
        cmocka_unit_test(test_safetensors_shape_product_overflows),
        cmocka_unit_test(test_npy_shape_product_overflows),
        cmocka_unit_test(test_pickle_string_of_2_60_bytes),
        cmocka_unit_test(test_pickle_list_holding_itself_twice),
        cmocka_unit_test(test_json_nul_byte_ends),
        cmocka_unit_test(test_json_deeper_than_cjson_allows),
        cmocka_unit_test(test_record_merges_repeated_keys_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
