/* test_npy.c — NumPy .npy streams (core/parsers/npy.c).
 *
 * Ground truth comes from two independent places: files written by numpy.save with
 * numpy's own statistics of them (fixtures/npy_files.h, made by make_npy.py), and
 * files built here byte by byte to the published layout from arrays this file fills,
 * with statistics from a plain double loop.
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

#include "core/parsers/npy.h"
#include "core/parsers/parser.h"
#include "fixtures/npy_files.h"

/* ---- Running a parser ------------------------------------------------------------ */

enum split { WHOLE, ONE_BYTE, RANDOM };

struct outcome {
    cJSON *found; /* {"values", "tensors", "errors"} as report_take gives them */
    bool complete;
    const char *format;
};

static void feed_split(struct parser *p, const uint8_t *bytes, size_t len, enum split split)
{
    size_t at = 0;
    while (at < len) {
        size_t n = split == WHOLE ? len - at : split == ONE_BYTE ? 1 : (size_t)(rand() % 97) + 1;
        if (n > len - at) n = len - at;
        p->feed(p, bytes + at, n);
        at += n;
    }
}

static struct outcome run_path(const char *path, const uint8_t *bytes, size_t len, enum split split)
{
    struct report r;
    struct parse_options o = {.sample = 1};
    struct outcome out;
    report_init(&r, NULL);
    struct parser *p = parser_detect_new(path, &r, &o);
    assert_non_null(p);
    feed_split(p, bytes, len, split);
    out.complete = p->finish(p);
    out.format = p->format;
    p->destroy(p);
    out.found = cJSON_CreateObject();
    report_take(&r, out.found);
    report_free(&r);
    return out;
}

static struct outcome run(const uint8_t *bytes, size_t len)
{
    return run_path("/data/run/x.npy", bytes, len, WHOLE);
}

static const cJSON *tensor_named(const struct outcome *o, const char *name)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(o->found, "tensors"))
    {
        if (strcmp(cJSON_GetObjectItem(t, "name")->valuestring, name) == 0) return t;
    }
    fail_msg("no tensor %s", name);
    return NULL;
}

static int error_count(const struct outcome *o)
{
    return cJSON_GetArraySize(cJSON_GetObjectItem(o->found, "errors"));
}

static bool has_error(const struct outcome *o, const char *part)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(o->found, "errors"))
    {
        if (strstr(e->valuestring, part)) return true;
    }
    return false;
}

static double number(const cJSON *t, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(t, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void assert_close(double got, double want)
{
    if (fabs(got - want) > 1e-9 * fmax(1, fabs(want))) fail_msg("%.17g != %.17g", got, want);
}

/* A head element as the record writes it: a number, or "nan"/"inf"/"-inf". */
static void assert_head_item(const cJSON *item, double want)
{
    if (isnan(want)) {
        assert_string_equal(item->valuestring, "nan");
    } else if (isinf(want)) {
        assert_string_equal(item->valuestring, want > 0 ? "inf" : "-inf");
    } else {
        assert_true(cJSON_IsNumber(item));
        assert_close(item->valuedouble, want);
    }
}

static void assert_shape(const cJSON *t, int ndim, const int64_t *shape)
{
    const cJSON *s = cJSON_GetObjectItem(t, "shape");
    assert_int_equal(cJSON_GetArraySize(s), ndim);
    for (int i = 0; i < ndim; i++)
        assert_int_equal((int64_t)cJSON_GetArrayItem(s, i)->valuedouble, shape[i]);
}

static void outcome_free(struct outcome *o)
{
    cJSON_Delete(o->found);
}

/* ---- Building .npy bytes ----------------------------------------------------------- */

/* magic, version, header length, dict padded with spaces and '\n' to a multiple of 64,
 * then data; returns the size. */
static size_t build_npy(uint8_t *out, int major, const char *dict, const void *data, size_t n)
{
    size_t preamble = major == 1 ? 10 : 12;
    size_t header = strlen(dict) + 1;
    header += (64 - (preamble + header) % 64) % 64;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (uint8_t)major;
    out[7] = 0;
    for (size_t i = 0; i < preamble - 8; i++)
        out[8 + i] = (uint8_t)(header >> (8 * i));
    memset(out + preamble, ' ', header);
    memcpy(out + preamble, dict, strlen(dict));
    out[preamble + header - 1] = '\n';
    if (n) memcpy(out + preamble + header, data, n);
    return preamble + header + n;
}

/* ---- Files written by numpy --------------------------------------------------------- */

static void check_numpy_file(const struct npy_file *f, enum split split)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/out/%s.npy", f->name);
    struct outcome o = run_path(path, f->bytes, f->size, split);
    assert_true(o.complete);
    assert_string_equal(o.format, "npy");
    assert_int_equal(error_count(&o), 0);
    const cJSON *t = tensor_named(&o, f->name);
    assert_string_equal(cJSON_GetObjectItem(t, "dtype")->valuestring, f->dtype);
    assert_shape(t, f->ndim, f->shape);
    assert_close(number(t, "min"), f->min);
    assert_close(number(t, "max"), f->max);
    assert_close(number(t, "mean"), f->mean);
    assert_close(number(t, "std"), f->std);
    assert_int_equal((uint64_t)number(t, "nan"), f->nan);
    assert_int_equal((uint64_t)number(t, "inf"), f->inf);
    assert_close(number(t, "sampled"), 1);
    const cJSON *head = cJSON_GetObjectItem(t, "head");
    assert_int_equal(cJSON_GetArraySize(head), f->nhead);
    for (unsigned i = 0; i < f->nhead; i++)
        assert_head_item(cJSON_GetArrayItem(head, (int)i), f->head[i]);
    outcome_free(&o);
}

static void test_numpy_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof npy_files / sizeof npy_files[0]; i++) {
        check_numpy_file(&npy_files[i], WHOLE);
        check_numpy_file(&npy_files[i], ONE_BYTE);
        check_numpy_file(&npy_files[i], RANDOM);
    }
}

/* ---- Files built here ---------------------------------------------------------------- */

static void test_v2_header_python2_dims_extra_key(void **state)
{
    (void)state;
    double data[6] = {3, -1, 4, 1, -5, 9};
    uint8_t file[256];
    size_t n = build_npy(file, 2,
                         "{\"descr\": \"=f8\", 'extra': {'a': (1, [2, ')'])}, "
                         "'fortran_order': False, 'shape': (2L, 3L)}",
                         data, sizeof data);
    struct outcome o = run_path("/a/b/c.v2.npy", file, n, WHOLE);
    assert_true(o.complete);
    const cJSON *t = tensor_named(&o, "c.v2");
    int64_t shape[] = {2, 3};
    assert_shape(t, 2, shape);
    double sum = 0, sq = 0;
    for (int i = 0; i < 6; i++)
        sum += data[i];
    for (int i = 0; i < 6; i++)
        sq += (data[i] - sum / 6) * (data[i] - sum / 6);
    assert_close(number(t, "mean"), sum / 6);
    assert_close(number(t, "std"), sqrt(sq / 6));
    assert_close(number(t, "min"), -5);
    assert_close(number(t, "max"), 9);
    outcome_free(&o);
}

static void test_zero_d_array_is_also_a_value(void **state)
{
    (void)state;
    int16_t v = -1234;
    uint8_t file[256];
    size_t n =
        build_npy(file, 1, "{'descr': '<i2', 'fortran_order': False, 'shape': (), }", &v, sizeof v);
    struct outcome o = run_path("/x/step.npy", file, n, ONE_BYTE);
    assert_true(o.complete);
    assert_shape(tensor_named(&o, "step"), 0, NULL);
    const cJSON *value = cJSON_GetObjectItem(cJSON_GetObjectItem(o.found, "values"), "step");
    assert_true(cJSON_IsNumber(value));
    assert_int_equal((int64_t)value->valuedouble, -1234);
    outcome_free(&o);
}

static void test_empty_array(void **state)
{
    (void)state;
    uint8_t file[256];
    size_t n =
        build_npy(file, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 7), }", NULL, 0);
    struct outcome o = run(file, n);
    assert_true(o.complete);
    const cJSON *t = tensor_named(&o, "x");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(t, "mean")));
    assert_close(number(t, "sampled"), 1);
    outcome_free(&o);
}

static void test_big_endian_is_reported_without_statistics(void **state)
{
    (void)state;
    uint8_t data[8] = {0x3f, 0x80, 0, 0, 0x40, 0, 0, 0}; /* 1.0f, 2.0f big-endian */
    uint8_t file[256];
    size_t n = build_npy(file, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", data,
                         sizeof data);
    struct outcome o = run(file, n);
    assert_true(o.complete);
    const cJSON *t = tensor_named(&o, "x");
    assert_string_equal(cJSON_GetObjectItem(t, "dtype")->valuestring, "float32");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(t, "min")));
    assert_true(has_error(&o, "big-endian"));
    outcome_free(&o);
}

static void test_unread_dtypes(void **state)
{
    (void)state;
    static const struct {
        const char *dict, *dtype, *error;
        size_t data;
        bool complete;
    } cases[] = {
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", "complex64",
         "statistics not computed", 24, true},
        {"{'descr': '<U4', 'fortran_order': False, 'shape': (2,), }", "U4",
         "statistics not computed", 32, true},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", "O", "object arrays", 50,
         true},
        {"{'descr': [('a', '<f4'), ('b', '<i8')], 'fortran_order': False, 'shape': (2,), }",
         "structured", "structured", 24, true},
    };
    uint8_t data[64] = {0}, file[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = build_npy(file, 1, cases[i].dict, data, cases[i].data);
        struct outcome o = run(file, n);
        assert_int_equal(o.complete, cases[i].complete);
        const cJSON *t = tensor_named(&o, "x");
        assert_string_equal(cJSON_GetObjectItem(t, "dtype")->valuestring, cases[i].dtype);
        assert_true(has_error(&o, cases[i].error));
        outcome_free(&o);
    }
}

/* A descr is text from the file: bytes that are not UTF-8 must not reach the record. */
static void test_dtype_from_the_file_is_valid_utf8(void **state)
{
    (void)state;
    uint8_t file[256], data[8] = {0};
    size_t n = build_npy(file, 1,
                         "{'descr': '\x94"
                         "f8', 'fortran_order': False, 'shape': (1,), }",
                         data, sizeof data);
    struct outcome o = run(file, n);
    const cJSON *t = tensor_named(&o, "x");
    assert_string_equal(cJSON_GetObjectItem(t, "dtype")->valuestring, "\xef\xbf\xbd"
                                                                      "f8");
    outcome_free(&o);
}

static void test_hostile_headers(void **state)
{
    (void)state;
    static const char *const dicts[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1), }",
        "{'descr': '<f4', 'fortran_order': False}",
        "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}",
        "['descr', '<f4']",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,",
        "{'descr': '<f4 , 'fortran_order': False, 'shape': (1,)}",
        "",
    };
    uint8_t file[256], data[4] = {0};
    for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++) {
        size_t n = build_npy(file, 1, dicts[i], data, sizeof data);
        struct outcome o = run(file, n);
        if (o.complete) fail_msg("accepted %s", dicts[i]);
        assert_true(error_count(&o) > 0);
        outcome_free(&o);
    }
}

static void test_hostile_preambles(void **state)
{
    (void)state;
    /* version 2 header length 0xffffffff; version 9; damaged magic */
    static const uint8_t long_header[] = {0x93, 'N',  'U',  'M',  'P',  'Y', 2,
                                          0,    0xff, 0xff, 0xff, 0xff, '{'};
    static const uint8_t bad_version[] = {0x93, 'N', 'U', 'M', 'P', 'Y', 9, 0, 10, 0, '{'};
    struct outcome o = run(long_header, sizeof long_header);
    assert_false(o.complete);
    assert_true(has_error(&o, "header over"));
    outcome_free(&o);
    o = run(bad_version, sizeof bad_version);
    assert_false(o.complete);
    assert_true(has_error(&o, "version"));
    outcome_free(&o);

    struct report r;
    struct parse_options opts = {.sample = 1};
    report_init(&r, NULL);
    struct parser *p = parser_npy_new(&r, &opts);
    p->feed(p, (const uint8_t *)"\x93NUMPZ\x01\x00", 8);
    assert_false(p->finish(p));
    p->destroy(p);
    assert_true(r.error_count > 0);
    report_free(&r);
}

/* Every prefix of a valid file is a truncated file: incomplete, with an error. */
static void test_every_truncation(void **state)
{
    (void)state;
    const struct npy_file *f = &npy_files[0];
    for (size_t len = 0; len < f->size; len++) {
        struct outcome o = run_path("/t/x.npy", f->bytes, len, ONE_BYTE);
        if (len >= 16) assert_string_equal(o.format, "npy");
        if (strcmp(o.format, "npy") == 0) {
            assert_false(o.complete);
            assert_true(error_count(&o) > 0);
        }
        outcome_free(&o);
    }
}

static void test_bytes_after_the_array(void **state)
{
    (void)state;
    uint8_t file[256];
    const struct npy_file *f = &npy_files[0];
    memcpy(file, f->bytes, f->size);
    memcpy(file + f->size, "junk", 4);
    struct outcome o = run(file, f->size + 4);
    assert_false(o.complete);
    assert_true(has_error(&o, "after the array"));
    tensor_named(&o, "x"); /* the array itself is still whole */
    outcome_free(&o);
}

/* Random damage anywhere in a file: the parser reports, never crashes. */
static void test_mutations_do_not_crash(void **state)
{
    (void)state;
    uint8_t file[512];
    srand(7);
    for (int round = 0; round < 3000; round++) {
        const struct npy_file *f = &npy_files[round % (sizeof npy_files / sizeof npy_files[0])];
        size_t len = f->size < sizeof file ? f->size : sizeof file;
        memcpy(file, f->bytes, len);
        for (int k = 0; k < 1 + round % 4; k++)
            file[rand() % len] = (uint8_t)rand();
        struct outcome o = run_path("/m/x.npy", file, len, RANDOM);
        outcome_free(&o);
    }
}

/* The embeddable stream stops at the array's end, so an .npz member can be followed. */
static void test_stream_takes_only_its_bytes(void **state)
{
    (void)state;
    const struct npy_file *f = &npy_files[1];
    uint8_t file[512];
    memcpy(file, f->bytes, f->size);
    memcpy(file + f->size, "PK\x03\x04", 4);
    struct report r;
    struct npy_array a;
    report_init(&r, NULL);
    npy_array_init(&a, &r, &(struct parse_options){.sample = 1}, "member");
    size_t taken = 0;
    for (size_t at = 0; at < f->size + 4; at += 3) {
        size_t n = f->size + 4 - at < 3 ? f->size + 4 - at : 3;
        taken += npy_array_feed(&a, file + at, n);
    }
    assert_int_equal(taken, f->size);
    assert_true(npy_array_done(&a));
    assert_true(npy_array_finish(&a));
    npy_array_free(&a);
    cJSON *tensors = report_take_tensors(&r);
    assert_int_equal(cJSON_GetArraySize(tensors), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(tensors, 0), "name")->valuestring,
                        "member");
    cJSON_Delete(tensors);
    report_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numpy_files),
        cmocka_unit_test(test_v2_header_python2_dims_extra_key),
        cmocka_unit_test(test_zero_d_array_is_also_a_value),
        cmocka_unit_test(test_empty_array),
        cmocka_unit_test(test_big_endian_is_reported_without_statistics),
        cmocka_unit_test(test_unread_dtypes),
        cmocka_unit_test(test_dtype_from_the_file_is_valid_utf8),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_hostile_preambles),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_bytes_after_the_array),
        cmocka_unit_test(test_mutations_do_not_crash),
        cmocka_unit_test(test_stream_takes_only_its_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
