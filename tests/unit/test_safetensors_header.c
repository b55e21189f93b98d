/* test_safetensors_header.c — a safetensors header read in place finds what cJSON finds
 * (core/parsers/safetensors.c, core/jsonread.c).
 *
 * The parser reads a header with its own reader and gives it to cJSON only when the
 * reader refuses it. A control character before the header's opening brace is white
 * space to cJSON and not to the reader, so each header below is parsed twice, once as it
 * is and once so prefixed (the cJSON path): the findings, printed, must be the same (but
 * for the file offsets errors name, one byte further in the second), for well-formed
 * headers and for headers wrong in each way the parser reports.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsontext.h"
#include "core/parsers/parser.h"

#define ENTRY "\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]"

static const char *const headers[] = {
    "{\"a\":{" ENTRY "}}",
    "{\"__metadata__\":{\"format\":\"pt\",\"n\":\"3\",\"f\":\"1.5\",\"neg\":\"-0\",\"x\":\"nan\","
    "\"num\":2.5,\"i\":-0,\"nul\":null,\"o\":{}},\"a\":{" ENTRY "}}",
    "{\"__metadata__\":[1],\"a\":{" ENTRY "}}",
    "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"},\"__metadata__\":{\"k\":\"3\"},\"a\":{" ENTRY "}}",
    "{\"a\":{" ENTRY "},\"a\":{" ENTRY "}}",
    "{\"a\":{\"dtype\":\"F64\",\"dtype\":\"F32\",\"shape\":[2,3],\"shape\":[6],"
    "\"data_offsets\":[0,24],\"data_offsets\":[0,1]}}",
    "{\"a\":[1,2],\"b\":\"s\",\"c\":3,\"d\":{" ENTRY "}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[6]}}",
    "{\"a\":{\"dtype\":3,\"shape\":[6],\"data_offsets\":[0,24]}}",
    "{\"a\":{\"dtype\":\"C64_with_a_tag_longer_than_any_buffer_for_it\",\"shape\":[3],"
    "\"data_offsets\":[0,24]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
    "1,1,1,1,1,1,1,1,1,1,6],\"data_offsets\":[0,24]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[-6],\"data_offsets\":[0,24]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[6.5],\"data_offsets\":[0,24]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[6e0],\"data_offsets\":[0,2.4e1]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"6\",null],\"data_offsets\":[0,24]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24,3]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[24,0]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,24]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740993],\"data_offsets\":[0,24]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,24]}}",
    "{\"a\\u00e9\\n\\\"q\\\\\\/\\ud83d\\ude00\":{" ENTRY "},\"\\u0062\":{\"dtype\":\"BOOL\","
    "\"shape\":[0],\"data_offsets\":[24,24]}}",
    " \n\t{ \"a\" : { \"dtype\" : \"F32\" , \"shape\" : [ 2 , 3 ] , \"data_offsets\" : [ 0 , 24 ] "
    "} } ",
    "{\"a\":{" ENTRY "}} and then something else",
    "{\"a\":{" ENTRY ",\"extra\":[[[{\"x\":[1,{\"y\":null}]}]]],\"t\":true,\"f\":false}}",
    "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[12,24]},\"a\":{\"dtype\":\"F32\","
    "\"shape\":[3],\"data_offsets\":[0,12]}}",
    "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},\"a\":{\"dtype\":\"F32\","
    "\"shape\":[6],\"data_offsets\":[0,24]}}",
    "{}",
};

/* "byte N" in text (an error's file offset) as "byte #". */
static void forget_offsets(char *text)
{
    for (char *at = text; (at = strstr(at, "byte "));) {
        at += 5;
        char *digits = at;
        while (*digits >= '0' && *digits <= '9')
            digits++;
        if (digits > at) {
            *at = '#';
            memmove(at + 1, digits, strlen(digits) + 1);
        }
    }
}

/* The findings of a file with this header and 24 bytes of data, printed; complete too. */
static char *findings(const char *header, bool *complete)
{
    static const float data[6] = {1, 2, 3, -0.5f, 7, 8};
    size_t len = strlen(header);
    uint8_t *file = malloc(8 + len + sizeof data);
    for (int i = 0; i < 8; i++)
        file[i] = (uint8_t)((uint64_t)len >> (8 * i));
    memcpy(file + 8, header, len);
    memcpy(file + 8 + len, data, sizeof data);

    struct report r;
    struct parse_options o = {.sample = 1};
    report_init(&r, NULL);
    struct parser *p = parser_safetensors_new(&r, &o);
    assert_non_null(p);
    p->feed(p, file, 8 + len + sizeof data);
    *complete = p->finish(p);
    p->destroy(p);
    cJSON *found = cJSON_CreateObject();
    report_take(&r, found);
    char *text = json_print(found);
    forget_offsets(text);
    cJSON_Delete(found);
    report_free(&r);
    free(file);
    return text;
}

static void test_read_as_cjson_reads(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char prefixed[1024];
        snprintf(prefixed, sizeof prefixed, "\x01%s", headers[i]);
        bool complete, complete_cjson;
        char *read = findings(headers[i], &complete);
        char *parsed = findings(prefixed, &complete_cjson);
        assert_string_equal(read, parsed);
        assert_int_equal(complete, complete_cjson);
        free(read);
        free(parsed);
    }
}

/* The well-formed header's tensor is found: the comparison above is not between two
 * empty reports. */
static void test_tensor_found(void **state)
{
    (void)state;
    bool complete;
    char *text = findings(headers[0], &complete);
    assert_true(complete);
    assert_non_null(
        strstr(text, "\"name\":\"a\",\"dtype\":\"float32\",\"shape\":[2,3],\"min\":-0.5"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_as_cjson_reads),
        cmocka_unit_test(test_tensor_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
