/* test_zip.c — the streaming zip walker (core/parsers/zip.c).
 *
 * The archives are real writers' bytes (fixtures/zip_files.h, made by make_zip.py):
 * CPython's zipfile on a stream that cannot seek (data descriptors, 16 and 24 bytes),
 * on a seekable file (sizes filled in afterwards), and torch.save (miniz). Member
 * contents follow a formula both sides compute (content_byte), so each delivered byte
 * is checked. Every archive is fed whole, one byte per call and in random pieces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parsers/parser.h"
#include "core/parsers/zip.h"
#include "fixtures/zip_files.h"

#define NMEMBERS (sizeof fixture_members / sizeof fixture_members[0])
#define MAX_SEEN 16

enum split { WHOLE, ONE_BYTE, RANDOM };

/* What a test handler saw of one member. */
struct seen {
    char name[ZIP_MAX_NAME + 1];
    size_t delivered; /* content bytes handed over */
    bool mismatch;    /* a delivered byte differed from the expected content */
    bool ended, whole;
};

struct recorder {
    struct seen seen[MAX_SEEN];
    size_t count;
    const struct fixture_member *expect; /* the member being read, when known */
    int seed;
};

static uint8_t content_byte(const struct fixture_member *m, int seed, size_t i)
{
    uint8_t b = (uint8_t)(((i * 7 + (size_t)seed) ^ (i >> 8)) & 0xff);
    if (m->fake_at >= 0 && i >= (size_t)m->fake_at && i < (size_t)m->fake_at + 16) {
        static const uint8_t sig[8] = {'P', 'K', 7, 8, 0xde, 0xad, 0xbe, 0xef};
        size_t k = i - (size_t)m->fake_at;
        b = k < 8 ? sig[k] : (uint8_t)((uint32_t)m->fake_at >> (8 * ((k - 8) % 4)));
    }
    return b;
}

static bool rec_begin(void *ctx, const struct zip_member *m)
{
    struct recorder *r = ctx;
    assert_true(r->count < MAX_SEEN);
    struct seen *s = &r->seen[r->count++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", m->name);
    r->expect = NULL;
    for (size_t i = 0; i < NMEMBERS; i++)
        if (strcmp(fixture_members[i].name, m->name) == 0) {
            r->expect = &fixture_members[i];
            r->seed = (int)i;
        }
    /* "*.delim" members: the handler knows their length, as torch knows a storage's */
    size_t len = strlen(m->name);
    return len > 6 && strcmp(m->name + len - 6, ".delim") == 0;
}

static size_t rec_data(void *ctx, const uint8_t *bytes, size_t len)
{
    struct recorder *r = ctx;
    struct seen *s = &r->seen[r->count - 1];
    size_t take = len;
    if (r->expect) {
        size_t left = r->expect->length - s->delivered;
        if (take > left) take = left;
        for (size_t i = 0; i < take; i++)
            if (bytes[i] != content_byte(r->expect, r->seed, s->delivered + i)) s->mismatch = true;
    }
    s->delivered += take;
    return take;
}

static void rec_end(void *ctx, bool whole)
{
    struct recorder *r = ctx;
    struct seen *s = &r->seen[r->count - 1];
    s->ended = true;
    s->whole = whole;
}

static const struct zip_handler recorder_handler = {rec_begin, rec_data, rec_end};

struct walk {
    struct recorder rec;
    bool complete;
    cJSON *found;
};

static void feed_split(struct zip_walker *w, const uint8_t *bytes, size_t len, enum split split)
{
    for (size_t at = 0; at < len;) {
        size_t n = split == WHOLE ? len - at : split == ONE_BYTE ? 1 : (size_t)(rand() % 97) + 1;
        if (n > len - at) n = len - at;
        zip_walker_feed(w, bytes + at, n);
        at += n;
    }
}

static struct walk *walk(const uint8_t *bytes, size_t len, enum split split)
{
    struct walk *out = calloc(1, sizeof *out);
    struct report r;
    report_init(&r, NULL);
    struct zip_walker *w = zip_walker_new(&r, "test", &recorder_handler, &out->rec, false);
    assert_non_null(w);
    feed_split(w, bytes, len, split);
    out->complete = zip_walker_finish(w);
    zip_walker_free(w);
    out->found = cJSON_CreateObject();
    report_take(&r, out->found);
    report_free(&r);
    return out;
}

static void walk_free(struct walk *o)
{
    cJSON_Delete(o->found);
    free(o);
}

/* Every fixture member, in order, whole; delivered content correct. deliver_all: the
 * archive says each size (or the handler delimits), so all content is handed over. */
static void check_members(const uint8_t *bytes, size_t len, bool deliver_all)
{
    for (enum split split = WHOLE; split <= RANDOM; split++) {
        struct walk *o = walk(bytes, len, split);
        assert_true(o->complete);
        assert_null(cJSON_GetObjectItem(o->found, "errors"));
        assert_int_equal(o->rec.count, NMEMBERS);
        for (size_t i = 0; i < NMEMBERS; i++) {
            const struct seen *s = &o->rec.seen[i];
            const struct fixture_member *m = &fixture_members[i];
            assert_string_equal(s->name, m->name);
            assert_true(s->ended && s->whole);
            assert_false(s->mismatch);
            bool delimited = strstr(m->name, ".delim") != NULL;
            if (deliver_all || m->deflated || delimited)
                assert_int_equal(s->delivered, m->length);
            else
                assert_int_equal(s->delivered, 0); /* found by its descriptor, not read */
        }
        walk_free(o);
    }
}

static void test_unseekable_zipfile_descriptors(void **state)
{
    (void)state;
    check_members(zip_unseekable, sizeof zip_unseekable, false);
}

static void test_seekable_zipfile_sizes(void **state)
{
    (void)state;
    check_members(zip_seekable, sizeof zip_seekable, true);
}

static void test_torch_archive_records(void **state)
{
    (void)state;
    static const char *const names[] = {"archive/data.pkl", "archive/data/0", "archive/version"};
    for (enum split split = WHOLE; split <= RANDOM; split++) {
        struct walk *o = walk(zip_torch, sizeof zip_torch, split);
        assert_true(o->complete);
        assert_int_equal(o->rec.count, 3);
        for (size_t i = 0; i < 3; i++) {
            assert_string_equal(o->rec.seen[i].name, names[i]);
            assert_true(o->rec.seen[i].whole);
        }
        walk_free(o);
    }
}

/* Every prefix of an archive: no crash, and never complete before the central directory. */
static void test_truncated_prefixes(void **state)
{
    (void)state;
    size_t len = sizeof zip_unseekable;
    size_t central = len;
    for (size_t i = 0; i + 4 <= len && central == len; i++)
        if (memcmp(zip_unseekable + i, "PK\1\2", 4) == 0) central = i + 4;
    for (size_t cut = 0; cut < central; cut += 7) {
        struct walk *o = walk(zip_unseekable, cut, WHOLE);
        assert_false(o->complete);
        assert_non_null(cJSON_GetObjectItem(o->found, "errors"));
        for (size_t i = 0; i < o->rec.count; i++)
            if (i + 1 < o->rec.count) assert_true(o->rec.seen[i].whole);
        walk_free(o);
    }
}

static void test_corrupt_deflate_fails(void **state)
{
    (void)state;
    uint8_t *copy = malloc(sizeof zip_unseekable);
    memcpy(copy, zip_unseekable, sizeof zip_unseekable);
    /* the deflated member's data starts after its header: garble some of it */
    const uint8_t *second = memmem(zip_unseekable + 4, sizeof zip_unseekable - 4, "PK\3\4", 4);
    size_t data = (size_t)(second - zip_unseekable) + 30 + strlen("deflated.bin");
    memset(copy + data, 0xff, 64);
    struct walk *o = walk(copy, sizeof zip_unseekable, WHOLE);
    assert_false(o->complete);
    assert_true(strstr(cJSON_GetArrayItem(cJSON_GetObjectItem(o->found, "errors"), 0)->valuestring,
                       "deflate") != NULL);
    walk_free(o);
    free(copy);
}

/* A zip whose first member is neither data.pkl nor .npy is no format ckmon reads. */
static void test_other_zip_is_unknown(void **state)
{
    (void)state;
    struct report r;
    struct parse_options opt = {.sample = 1};
    report_init(&r, NULL);
    struct parser *p = parser_detect_new("/x/archive.pt", &r, &opt);
    p->feed(p, zip_seekable, sizeof zip_seekable);
    assert_true(p->finish(p));
    assert_string_equal(p->format, "unknown");
    p->destroy(p);
    report_free(&r);

    report_init(&r, NULL);
    p = parser_detect_new("/x/model.pt", &r, &opt);
    for (size_t i = 0; i < sizeof zip_torch; i++)
        p->feed(p, zip_torch + i, 1);
    assert_true(p->finish(p));
    assert_string_equal(p->format, "torch");
    p->destroy(p);
    report_free(&r);
}

/* ---- The torch and npz parsers over the same archives ------------------------------- */

static cJSON *parse(const char *path, const uint8_t *bytes, size_t len, enum split split,
                    const char *format)
{
    struct report r;
    struct parse_options opt = {.sample = 1};
    report_init(&r, NULL);
    struct parser *p = parser_detect_new(path, &r, &opt);
    for (size_t at = 0; at < len;) {
        size_t n = split == WHOLE ? len - at : split == ONE_BYTE ? 1 : (size_t)(rand() % 97) + 1;
        if (n > len - at) n = len - at;
        p->feed(p, bytes + at, n);
        at += n;
    }
    assert_true(p->finish(p));
    assert_string_equal(p->format, format);
    p->destroy(p);
    cJSON *found = cJSON_CreateObject();
    report_take(&r, found);
    report_free(&r);
    assert_null(cJSON_GetObjectItem(found, "errors"));
    return found;
}

static const cJSON *tensor_named(const cJSON *found, const char *name)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(found, "tensors"))
    {
        if (strcmp(cJSON_GetObjectItem(t, "name")->valuestring, name) == 0) return t;
    }
    fail_msg("no tensor %s", name);
    return NULL;
}

static double stat(const cJSON *t, const char *key)
{
    return cJSON_GetObjectItem(t, key)->valuedouble;
}

/* arange(6) as float32: min 0, max 5, mean 2.5, population std sqrt(35/12). */
static void assert_arange6(const cJSON *t)
{
    assert_string_equal(cJSON_GetObjectItem(t, "dtype")->valuestring, "float32");
    assert_true(stat(t, "min") == 0 && stat(t, "max") == 5 && stat(t, "mean") == 2.5);
    assert_true(fabs(stat(t, "std") - sqrt(35.0 / 12)) < 1e-12);
}

static void test_torch_and_npz_parsers_in_any_pieces(void **state)
{
    (void)state;
    for (enum split split = WHOLE; split <= RANDOM; split++) {
        cJSON *torch = parse("/x/model.pt", zip_torch, sizeof zip_torch, split, "torch");
        assert_arange6(tensor_named(torch, "w"));
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(torch, "values"), "n")->valueint,
                         3);
        cJSON_Delete(torch);

        cJSON *npz = parse("/x/arrays.npz", zip_npz, sizeof zip_npz, split, "npz");
        assert_arange6(tensor_named(npz, "w"));
        /* arange(20000) % 7 - 3: values -3..3; 20000 = 7 * 2857 + 1, the extra one is -3 */
        const cJSON *big = tensor_named(npz, "big");
        assert_true(stat(big, "min") == -3 && stat(big, "max") == 3);
        double n = 20000, mean = -3.0 / n;
        double sum_sq = 2857.0 * 28 + 9;
        assert_true(fabs(stat(big, "mean") - mean) < 1e-15);
        assert_true(fabs(stat(big, "std") - sqrt(sum_sq / n - mean * mean)) < 1e-12);
        cJSON_Delete(npz);
    }
}

int main(void)
{
    srand(20261129);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unseekable_zipfile_descriptors),
        cmocka_unit_test(test_seekable_zipfile_sizes),
        cmocka_unit_test(test_torch_archive_records),
        cmocka_unit_test(test_truncated_prefixes),
        cmocka_unit_test(test_corrupt_deflate_fails),
        cmocka_unit_test(test_other_zip_is_unknown),
        cmocka_unit_test(test_torch_and_npz_parsers_in_any_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
