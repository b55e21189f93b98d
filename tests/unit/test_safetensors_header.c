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
    "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,24]},\"__metadata__\":"
    "{\"k\":\"v\",\"n\":1,\"o\":[]},\"y\":[1],\"a\":{" ENTRY "},\"__metadata__\":3}",
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

/* The findings of a file with this header and `count` float32 of data (1, 2, 3, -0.5,
 * 7, 8, then 9, 10, ...), printed; complete too. */
static char *findings_of(const char *header, size_t count, bool *complete)
{
    static const float first[6] = {1, 2, 3, -0.5f, 7, 8};
    size_t len = strlen(header);
    uint8_t *file = malloc(8 + len + 4 * count);
    for (int i = 0; i < 8; i++)
        file[i] = (uint8_t)((uint64_t)len >> (8 * i));
    memcpy(file + 8, header, len);
    for (size_t i = 0; i < count; i++) {
        float v = i < 6 ? first[i] : (float)(i + 3);
        memcpy(file + 8 + len + 4 * i, &v, 4);
    }

    struct report r;
    struct parse_options o = {.sample = 1};
    report_init(&r, NULL);
    struct parser *p = parser_safetensors_new(&r, &o);
    assert_non_null(p);
    p->feed(p, file, 8 + len + 4 * count);
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

/* The findings of a file with this header and 24 bytes of data. */
static char *findings(const char *header, bool *complete)
{
    return findings_of(header, 6, complete);
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

/* ---- A header the reader refuses late -----------------------------------------------
 * The parser reads a header in one pass and reports what it found only once the reader
 * took all of it: a header it refuses after many entries (and after __metadata__ and an
 * entry with an error) must give what cJSON alone gives, nothing twice. */

#define LATE_ENTRIES 300

/* LATE_ENTRIES float32 entries of one element each, in file order, with __metadata__
 * and an entry whose size disagrees with its shape among them; the last entry carries
 * `extra` as the value of a member the parser ignores, and `end` closes the header. */
static char *late_header(const char *extra, const char *end)
{
    size_t size = LATE_ENTRIES * 96 + strlen(extra) + strlen(end) + 256, used = 0;
    char *text = malloc(size);
    used += (size_t)snprintf(text + used, size - used, "{");
    for (int i = 0; i < LATE_ENTRIES; i++) {
        used += (size_t)snprintf(text + used, size - used,
                                 "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[1],"
                                 "\"data_offsets\":[%d,%d]",
                                 i ? "," : "", i, 4 * i, 4 * i + 4);
        if (i == LATE_ENTRIES - 1)
            used += (size_t)snprintf(text + used, size - used, ",\"extra\":%s", extra);
        used += (size_t)snprintf(text + used, size - used, "}");
        if (i == 10)
            used += (size_t)snprintf(text + used, size - used,
                                     ",\"bad\":{\"dtype\":\"F32\",\"shape\":[2],"
                                     "\"data_offsets\":[0,4]}");
        if (i == 20)
            used += (size_t)snprintf(text + used, size - used,
                                     ",\"__metadata__\":{\"format\":\"pt\",\"n\":\"3\"}");
    }
    snprintf(text + used, size - used, "%s", end);
    return text;
}

/* The header's findings, also checked against those of the header behind a control
 * character (white space to cJSON, not to the reader: cJSON parses it from the start). */
static char *late_findings(const char *header, bool *complete)
{
    char *prefixed = malloc(strlen(header) + 2);
    sprintf(prefixed, "\x01%s", header);
    bool complete_cjson;
    char *found = findings_of(header, LATE_ENTRIES, complete);
    char *parsed = findings_of(prefixed, LATE_ENTRIES, &complete_cjson);
    assert_string_equal(found, parsed);
    assert_int_equal(*complete, complete_cjson);
    free(parsed);
    free(prefixed);
    return found;
}

static int count_of(const cJSON *record, const char *member)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(record, member));
}

/* Text the reader refuses and cJSON takes, past every entry but the last, against text
 * the reader takes and that means the same to cJSON. */
static void test_refused_late_parsed_by_cjson(void **state)
{
    (void)state;
    char nested[2 * 70 + 2] = {0};
    memset(nested, '[', 70);
    memset(nested + 70, ']', 70);
    static const char *const refused[][3] = {
        /* extra, end; the same meant in text the reader takes */
        {"\"\\u0000\"", "}", "\"\\u0041\""}, /* an escape of U+0000 */
        {"1", "\x01}", "1"},                 /* a control character as white space */
        {NULL, "}", "[]"},                   /* nesting past the reader's depth */
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char *late = late_header(refused[i][0] ? refused[i][0] : nested, refused[i][1]);
        char *taken = late_header(refused[i][2], "}");
        cJSON *parsed = cJSON_Parse(late);
        assert_true(cJSON_IsObject(parsed)); /* cJSON takes it */
        cJSON_Delete(parsed);

        bool complete, complete_taken;
        char *found = late_findings(late, &complete);
        char *expected = findings_of(taken, LATE_ENTRIES, &complete_taken);
        assert_string_equal(found, expected);
        assert_true(complete);

        /* Every good entry once, the metadata once, the bad entry's error once. */
        cJSON *record = cJSON_Parse(found);
        assert_int_equal(count_of(record, "tensors"), LATE_ENTRIES);
        assert_int_equal(count_of(record, "values"), 2);
        assert_int_equal(count_of(record, "errors"), 1);
        assert_non_null(strstr(found, "header entry bad:"));
        cJSON_Delete(record);
        free(found);
        free(expected);
        free(taken);
        free(late);
    }
}

/* Text that neither the reader nor cJSON takes, past every entry: no tensors, no
 * metadata, the one error, as when cJSON refuses a header from the start. */
static void test_refused_late_by_both(void **state)
{
    (void)state;
    static const char *const refused[][2] = {
        /* extra, end */
        {"1", ",}"},          /* a comma before the end */
        {"1", ""},            /* no end */
        {"1", ",\"z\":}"},    /* a member without a value */
        {"\"\\ud800\"", "}"}, /* an unpaired surrogate */
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char *late = late_header(refused[i][0], refused[i][1]);
        bool complete;
        cJSON *parsed = cJSON_Parse(late);
        assert_null(parsed); /* cJSON does not take it */
        char *found = late_findings(late, &complete);
        cJSON *record = cJSON_Parse(found);
        assert_false(complete);
        assert_int_equal(count_of(record, "tensors"), 0);
        assert_int_equal(count_of(record, "values"), 0);
        assert_int_equal(count_of(record, "errors"), 1);
        cJSON_Delete(record);
        free(found);
        free(late);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_as_cjson_reads),
        cmocka_unit_test(test_tensor_found),
        cmocka_unit_test(test_refused_late_parsed_by_cjson),
        cmocka_unit_test(test_refused_late_by_both),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
