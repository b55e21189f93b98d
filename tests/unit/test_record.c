/* test_record.c — agent messages in, record lines out (collector/tracker.c, record.c).
 *
 * The expected lines are written out by hand from the contract's member order, so a
 * change in order, formatting or merge rules shows up as a differing string.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "core/wire.h"
#include "collector/record.h"
#include "collector/tracker.h"

#define T0 1795470120123456LL /* 2026-11-23T21:42:00.123456Z */

struct capture {
    char *lines[8];
    int count;
};

static void capture_record(void *ctx, const struct record *r)
{
    struct capture *c = ctx;
    size_t len;
    assert_true(c->count < 8);
    c->lines[c->count] = record_to_line(r, &len);
    assert_non_null(c->lines[c->count]);
    assert_int_equal(len, strlen(c->lines[c->count]));
    c->count++;
}

struct fixture {
    struct capture out;
    struct tracker *tracker;
    char dir[64]; /* a test's temporary directory, removed at teardown */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->tracker = tracker_new(capture_record, &f->out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tracker_free(f->tracker);
    for (int i = 0; i < f->out.count; i++)
        free(f->out.lines[i]);
    free(f);
    return 0;
}

static void send(struct fixture *f, struct tracker_conn *c, int64_t now, const char *json)
{
    tracker_message(f->tracker, c, json, strlen(json), now);
}

static struct tracker_conn *hello(struct fixture *f, const char *json)
{
    struct tracker_conn *c = tracker_connect(f->tracker, 999);
    send(f, c, T0, json);
    return c;
}

#define HELLO_RANK3                                                                                \
    "{\"t\":\"hello\",\"pid\":123,\"program\":\"python3\",\"host\":\"node1\",\"job\":\"train\","   \
    "\"rank\":3}"
#define HELLO_NO_RANK                                                                              \
    "{\"t\":\"hello\",\"pid\":77,\"program\":\"python3\",\"host\":\"node1\",\"job\":\"train\"}"

static void expect_rfc3339(int64_t us, const char *expected)
{
    char text[RFC3339_SIZE];
    format_rfc3339(us, text, sizeof text);
    assert_string_equal(text, expected);
}

static void test_rfc3339(void **state)
{
    (void)state;
    expect_rfc3339(0, "1970-01-01T00:00:00.000000Z");
    expect_rfc3339(T0, "2026-11-23T21:42:00.123456Z");
    expect_rfc3339(951782400000000LL + 5, "2000-02-29T00:00:00.000005Z");
    expect_rfc3339(951782400000000LL + 40000, "2000-02-29T00:00:00.040000Z");
    expect_rfc3339(-1, "1969-12-31T23:59:59.999999Z");
}

static void test_full_record_in_contract_order(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = hello(f, HELLO_RANK3);
    send(f, c, T0,
         "{\"t\":\"open\",\"id\":7,\"path\":\"/ck/model.pt\",\"time_us\":1795470120111156}");
    send(f, c, T0,
         "{\"t\":\"data\",\"id\":7,\"bytes\":4096,\"writes\":3,\"values\":{\"epoch\":3,\"lr\":0."
         "001},"
         "\"tensors\":[{\"name\":\"a\"}],\"errors\":[\"bad 1\"]}");
    send(f, c, T0,
         "{\"t\":\"data\",\"id\":7,\"bytes\":8192,\"writes\":5,\"values\":{\"epoch\":4,\"step\":"
         "100},"
         "\"tensors\":[{\"name\":\"b\"}],\"errors\":[\"bad 2\"]}");
    send(f, c, T0,
         "{\"t\":\"close\",\"id\":7,\"time_us\":1795470120123456,\"path\":\"/ck/model.pt\","
         "\"format\":\"torch\",\"bytes\":823058,\"writes\":11,\"seconds\":0.0123,\"complete\":"
         "true,\"parsed\":\"reread\"}");
    tracker_expire(f->tracker, T0 + RENAME_WINDOW_US - 1);
    assert_int_equal(f->out.count, 0); /* held for a rename */
    assert_true(tracker_next_due(f->tracker) == T0 + RENAME_WINDOW_US);
    tracker_expire(f->tracker, T0 + RENAME_WINDOW_US);
    assert_int_equal(f->out.count, 1);
    assert_string_equal(
        f->out.lines[0],
        "{\"schema\":1,\"event\":\"checkpoint\",\"time\":\"2026-11-23T21:42:00.123456Z\","
        "\"host\":\"node1\",\"pid\":123,\"program\":\"python3\",\"job\":\"train\",\"rank\":3,"
        "\"path\":\"/ck/model.pt\",\"format\":\"torch\",\"bytes\":823058,\"writes\":11,"
        "\"seconds\":0.0123,\"complete\":true,\"parsed\":\"reread\",\"values\":{\"epoch\":4,\"lr\":"
        "0.001,\"step\":100},"
        "\"tensors\":[{\"name\":\"a\"},{\"name\":\"b\"}],\"errors\":[\"bad 1\",\"bad 2\"]}\n");
    assert_true(tracker_next_due(f->tracker) == -1);
}

static void test_absent_rank_and_empty_findings(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = hello(f, HELLO_NO_RANK);
    send(f, c, T0, "{\"t\":\"open\",\"id\":1,\"path\":\"/x.json\",\"time_us\":0}");
    send(f, c, T0,
         "{\"t\":\"close\",\"id\":1,\"time_us\":1000000,\"format\":\"json\",\"bytes\":2,"
         "\"writes\":1,\"seconds\":1,\"complete\":false}");
    tracker_expire(f->tracker, T0 + RENAME_WINDOW_US);
    assert_int_equal(f->out.count, 1);
    assert_string_equal(
        f->out.lines[0],
        "{\"schema\":1,\"event\":\"checkpoint\",\"time\":\"1970-01-01T00:00:01.000000Z\","
        "\"host\":\"node1\",\"pid\":77,\"program\":\"python3\",\"job\":\"train\","
        "\"path\":\"/x.json\",\"format\":\"json\",\"bytes\":2,\"writes\":1,\"seconds\":1,"
        "\"complete\":false,\"parsed\":\"stream\",\"values\":{},\"tensors\":[]}\n");
}

static void close_file(struct fixture *f, struct tracker_conn *c, int64_t now, const char *path,
                       const char *written_as)
{
    char msg[512];
    send(f, c, now, "{\"t\":\"open\",\"id\":1,\"path\":\"/tmp/ck.part\",\"time_us\":0}");
    snprintf(msg, sizeof msg,
             "{\"t\":\"close\",\"id\":1,\"time_us\":0,\"path\":\"%s\"%s%s%s,\"format\":\"npy\","
             "\"bytes\":1,\"writes\":1,\"seconds\":0,\"complete\":true}",
             path, written_as ? ",\"written_as\":\"" : "", written_as ? written_as : "",
             written_as ? "\"" : "");
    send(f, c, now, msg);
}

/* The part of a line from "path" to "format", where renames show. */
static void assert_paths(const char *line, const char *expected)
{
    const char *from = strstr(line, "\"path\""), *to = strstr(line, ",\"format\"");
    assert_non_null(from);
    assert_non_null(to);
    char got[256];
    snprintf(got, sizeof got, "%.*s", (int)(to - from), from);
    assert_string_equal(got, expected);
}

static void test_rename_within_window_from_another_process(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *writer = hello(f, HELLO_RANK3), *mover = hello(f, HELLO_NO_RANK);
    close_file(f, writer, T0, "/tmp/ck.part", NULL);
    send(f, mover, T0 + RENAME_WINDOW_US - 1,
         "{\"t\":\"rename\",\"from\":\"/tmp/ck.part\",\"to\":\"/ck/final.npy\"}");
    assert_int_equal(f->out.count, 1); /* written at once, without waiting out the window */
    assert_paths(f->out.lines[0], "\"path\":\"/ck/final.npy\",\"written_as\":\"/tmp/ck.part\"");
    assert_non_null(strstr(f->out.lines[0], "\"pid\":123,")); /* the writer's record */
}

static void test_rename_keeps_first_written_as(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = hello(f, HELLO_RANK3);
    close_file(f, c, T0, "/tmp/ck.part", "/tmp/ck.tmp");
    send(f, c, T0, "{\"t\":\"rename\",\"from\":\"/tmp/ck.part\",\"to\":\"/ck/final.npy\"}");
    assert_int_equal(f->out.count, 1);
    assert_paths(f->out.lines[0], "\"path\":\"/ck/final.npy\",\"written_as\":\"/tmp/ck.tmp\"");
}

static void test_rename_after_window_changes_nothing(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = hello(f, HELLO_RANK3);
    close_file(f, c, T0, "/tmp/ck.part", NULL);
    tracker_expire(f->tracker, T0 + RENAME_WINDOW_US);
    send(f, c, T0 + RENAME_WINDOW_US,
         "{\"t\":\"rename\",\"from\":\"/tmp/ck.part\",\"to\":\"/ck/final.npy\"}");
    assert_int_equal(f->out.count, 1);
    assert_paths(f->out.lines[0], "\"path\":\"/tmp/ck.part\"");
    assert_int_equal(tracker_counts(f->tracker)->malformed, 0);
}

static void close_as(struct fixture *f, struct tracker_conn *c, int64_t now, const char *path)
{
    char msg[256];
    snprintf(msg, sizeof msg, "{\"t\":\"open\",\"id\":5,\"path\":\"%s\",\"time_us\":0}", path);
    send(f, c, now, msg);
    send(f, c, now, "{\"t\":\"close\",\"id\":5,\"time_us\":0,\"complete\":true}");
}

static void test_window_is_per_record_in_close_order(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = hello(f, HELLO_RANK3);
    close_as(f, c, T0, "/a");
    close_as(f, c, T0 + 400000, "/b");
    send(f, c, T0 + 400000, "{\"t\":\"rename\",\"from\":\"/b\",\"to\":\"/b2\"}");
    close_as(f, c, T0 + 500000, "/c");
    assert_int_equal(f->out.count, 1);
    assert_paths(f->out.lines[0], "\"path\":\"/b2\",\"written_as\":\"/b\"");
    tracker_expire(f->tracker, T0 + RENAME_WINDOW_US);
    assert_int_equal(f->out.count, 2);
    assert_paths(f->out.lines[1], "\"path\":\"/a\"");
    assert_true(tracker_next_due(f->tracker) == T0 + 500000 + RENAME_WINDOW_US);
    tracker_expire(f->tracker, T0 + 500000 + RENAME_WINDOW_US);
    assert_int_equal(f->out.count, 3);
    assert_paths(f->out.lines[2], "\"path\":\"/c\"");
}

static void test_reset_discards_earlier_findings(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = hello(f, HELLO_RANK3);
    send(f, c, T0, "{\"t\":\"open\",\"id\":1,\"path\":\"/r.npz\",\"time_us\":0}");
    send(f, c, T0,
         "{\"t\":\"data\",\"id\":1,\"values\":{\"stale\":1},\"tensors\":[{\"name\":\"s\"}],"
         "\"errors\":[\"stale\"]}");
    send(f, c, T0, "{\"t\":\"data\",\"id\":1,\"bytes\":0,\"writes\":9,\"reset\":true}");
    send(f, c, T0, "{\"t\":\"data\",\"id\":1,\"values\":{\"fresh\":2}}");
    send(f, c, T0, "{\"t\":\"close\",\"id\":1,\"time_us\":0,\"complete\":true}");
    tracker_shutdown(f->tracker, T0);
    assert_int_equal(f->out.count, 1);
    assert_non_null(strstr(f->out.lines[0], "\"writes\":9,"));
    assert_non_null(strstr(f->out.lines[0], "\"values\":{\"fresh\":2},\"tensors\":[]}\n"));
}

/* After a reconnect the agent goes on with files it opened on the old connection. */
static void test_file_never_seen_opened(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = hello(f, HELLO_RANK3);
    send(f, c, T0, "{\"t\":\"data\",\"id\":4,\"bytes\":10,\"writes\":2,\"values\":{\"a\":1}}");
    send(f, c, T0 + 2000000,
         "{\"t\":\"close\",\"id\":4,\"time_us\":1795470122123456,\"path\":\"/late.pt\","
         "\"format\":\"torch\",\"bytes\":20,\"writes\":3,\"seconds\":3,\"complete\":true}");
    send(f, c, T0, "{\"t\":\"close\",\"id\":5,\"path\":\"/only-close.pt\",\"complete\":true}");
    tracker_shutdown(f->tracker, T0);
    assert_int_equal(f->out.count, 2);
    assert_string_equal(
        f->out.lines[0],
        "{\"schema\":1,\"event\":\"checkpoint\",\"time\":\"2026-11-23T21:42:02.123456Z\","
        "\"host\":\"node1\",\"pid\":123,\"program\":\"python3\",\"job\":\"train\",\"rank\":3,"
        "\"path\":\"/late.pt\",\"format\":\"torch\",\"bytes\":20,\"writes\":3,\"seconds\":3,"
        "\"complete\":true,\"parsed\":\"stream\",\"values\":{\"a\":1},\"tensors\":[]}\n");
    assert_paths(f->out.lines[1], "\"path\":\"/only-close.pt\"");
    assert_int_equal(tracker_counts(f->tracker)->malformed, 0);
}

static void test_torn_record_keeps_progress(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = hello(f, HELLO_NO_RANK);
    send(f, c, T0,
         "{\"t\":\"open\",\"id\":3,\"path\":\"/nonexistent/ck.pt\",\"time_us\":1795470120000000}");
    send(f, c, T0,
         "{\"t\":\"data\",\"id\":3,\"bytes\":4096,\"writes\":3,\"values\":{\"epoch\":1},"
         "\"format\":\"torch\"}");
    tracker_disconnect(f->tracker, c, 1795470122500000);
    assert_int_equal(f->out.count, 1); /* no rename window for a dead process */
    assert_string_equal(
        f->out.lines[0],
        "{\"schema\":1,\"event\":\"checkpoint\",\"time\":\"2026-11-23T21:42:02.500000Z\","
        "\"host\":\"node1\",\"pid\":77,\"program\":\"python3\",\"job\":\"train\","
        "\"path\":\"/nonexistent/ck.pt\",\"format\":\"torch\",\"bytes\":4096,\"writes\":3,"
        "\"seconds\":2.5,\"complete\":false,\"parsed\":\"stream\",\"values\":{\"epoch\":1},"
        "\"tensors\":[],"
        "\"errors\":[\"process 77 ended while the file was open\"]}\n");
}

static void test_torn_record_takes_size_on_disk(void **state)
{
    struct fixture *f = *state;
    char path[] = "/tmp/ckmon-test-XXXXXX", msg[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    close(fd);
    struct tracker_conn *c = tracker_connect(f->tracker, 4242); /* no hello */
    snprintf(msg, sizeof msg, "{\"t\":\"open\",\"id\":1,\"path\":\"%s\",\"time_us\":0}", path);
    send(f, c, T0, msg);
    send(f, c, T0, "{\"t\":\"data\",\"id\":1,\"bytes\":4,\"writes\":1}");
    tracker_disconnect(f->tracker, c, T0);
    unlink(path);
    assert_int_equal(f->out.count, 1);
    assert_non_null(strstr(f->out.lines[0], "\"bytes\":10,\"writes\":1,"));
    assert_non_null(strstr(f->out.lines[0], "\"host\":\"unknown\",\"pid\":4242,"));
    assert_non_null(strstr(f->out.lines[0], "\"process 4242 ended while the file was open\""));
}

static void test_shutdown_writes_everything_at_once(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = hello(f, HELLO_RANK3);
    close_file(f, c, T0, "/tmp/closed.npy", NULL);
    send(f, c, T0, "{\"t\":\"open\",\"id\":2,\"path\":\"/tmp/open.npy\",\"time_us\":0}");
    tracker_shutdown(f->tracker, T0);
    assert_int_equal(f->out.count, 2);
    assert_paths(f->out.lines[0], "\"path\":\"/tmp/open.npy\"");
    assert_non_null(strstr(f->out.lines[0],
                           "\"complete\":false,\"parsed\":\"stream\",\"values\":{},\"tensors\":[],"
                           "\"errors\":[\"still open when the collector stopped\"]}"));
    assert_paths(f->out.lines[1], "\"path\":\"/tmp/closed.npy\"");
    assert_true(tracker_next_due(f->tracker) == -1);
}

static void test_bad_messages_are_counted_and_ignored(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = hello(f, HELLO_RANK3);
    static const char *const malformed[] = {
        "not json",
        "{\"no\":\"kind\"}",
        "{\"t\":\"data\",\"bytes\":1}",
        "{\"t\":\"close\",\"id\":\"7\"}",
        "{\"t\":\"open\",\"path\":\"/x.pt\"}", /* no id */
        "{\"t\":\"rename\",\"from\":\"/a\"}",
        "{\"t\":\"open\",\"id\":1e300,\"path\":\"/x.pt\"}",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
        send(f, c, T0, malformed[i]);
    send(f, c, T0, "{\"t\":\"stats\",\"id\":1}");
    tracker_message(f->tracker, c, "{\"t\":\"hello\"}", 5, T0); /* cut short */
    assert_int_equal(tracker_counts(f->tracker)->malformed,
                     sizeof malformed / sizeof malformed[0] + 1);
    assert_int_equal(tracker_counts(f->tracker)->unknown_kind, 1);
    tracker_shutdown(f->tracker, T0);
    assert_int_equal(f->out.count, 0);
}

/* A .npy of count float32 values i * 0.25 - 1000 at path. */
static void write_npy(const char *path, long count)
{
    char header[128];
    int len = snprintf(header, sizeof header,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld,), }", count);
    int padded = (10 + len + 1 + 63) / 64 * 64 - 10; /* data 64-aligned, header ends in \n */
    memset(header + len, ' ', (size_t)(padded - len - 1));
    header[padded - 1] = '\n';
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    uint8_t preamble[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)padded, (uint8_t)(padded >> 8)};
    assert_int_equal(fwrite(preamble, 1, 10, out), 10);
    assert_int_equal(fwrite(header, 1, (size_t)padded, out), (size_t)padded);
    for (long i = 0; i < count; i++) {
        float v = (float)i * 0.25f - 1000;
        assert_int_equal(fwrite(&v, sizeof v, 1, out), 1);
    }
    assert_int_equal(fclose(out), 0);
}

/* A member of a record line's JSON, printed, to compare two records by. */
static char *member_text(const char *line, const char *name)
{
    cJSON *o = cJSON_Parse(line);
    assert_non_null(o);
    char *text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(o, name));
    cJSON_Delete(o);
    return text;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.') unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown_dir(void **state)
{
    struct fixture *f = *state;
    remove_dir(f->dir);
    return teardown(state);
}

static void adopt(struct fixture *f, const char *keys, const char *from, const char *to)
{
    char msg[512];
    snprintf(msg, sizeof msg,
             "{\"t\":\"hello\",\"pid\":5,\"program\":\"python3\",\"host\":\"node1\","
             "\"job\":\"train\",\"keys\":[\"%s\"]}",
             keys);
    struct tracker_conn *c = hello(f, msg);
    snprintf(msg, sizeof msg, "{\"t\":\"adopt\",\"from\":\"%s\",\"to\":\"%s\",\"time_us\":%lld}",
             from, to, T0);
    send(f, c, T0, msg);
    tracker_disconnect(f->tracker, c, T0); /* before its file is parsed */
}

/* Files renamed in are parsed from disk a slice per call, so that the collector's loop
 * keeps serving other agents: the agent's --keys outlive its connection, a rename in
 * the middle gives the record its new name, a file gone by its turn leaves no record,
 * and the findings are those of a parse in one go. */
static void test_adopted_files_are_parsed_a_slice_at_a_time(void **state)
{
    struct fixture *f = *state;
    snprintf(f->dir, sizeof f->dir, "/tmp/ckmon-adopt-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char model[96], final[96], small[96], gone[96];
    snprintf(model, sizeof model, "%s/model.npy", f->dir);
    snprintf(final, sizeof final, "%s/final.npy", f->dir);
    snprintf(small, sizeof small, "%s/small.npy", f->dir);
    snprintf(gone, sizeof gone, "%s/gone.npy", f->dir);
    write_npy(model, 6L << 20); /* 24 MiB: three slices and a bit */
    write_npy(small, 100);

    adopt(f, "mod*", "/tmp/model.npy.tmp", model);
    adopt(f, "x*", "/tmp/small.npy.tmp", small); /* its one array is not in --keys */
    adopt(f, "*", "/tmp/gone.npy.tmp", gone);
    assert_int_equal(f->out.count, 0);
    assert_true(tracker_next_due(f->tracker) == 0);

    int slices = 1;
    assert_true(tracker_parse_adopted(f->tracker, T0));
    char msg[512];
    snprintf(msg, sizeof msg, "{\"t\":\"rename\",\"from\":\"%s\",\"to\":\"%s\"}", model, final);
    send(f, hello(f, HELLO_NO_RANK), T0, msg);
    assert_int_equal(rename(model, final), 0);
    while (tracker_parse_adopted(f->tracker, T0 + 1))
        slices++;
    assert_true(slices >= 4);          /* model's three and more, small's, gone's */
    assert_int_equal(f->out.count, 0); /* held for a rename, like any closed file */
    tracker_expire(f->tracker, T0 + 1 + RENAME_WINDOW_US);
    assert_int_equal(f->out.count, 2);

    struct stat st;
    assert_int_equal(stat(final, &st), 0);
    const char *line = f->out.lines[0];
    char expect[512];
    snprintf(expect, sizeof expect,
             "\"time\":\"2026-11-23T21:42:00.123456Z\",\"host\":\"node1\",\"pid\":5,\"program\":"
             "\"python3\",\"job\":\"train\",\"path\":\"%s\",\"written_as\":\"/tmp/"
             "model.npy.tmp\",\"format\":\"npy\",\"bytes\":%lld,\"writes\":0,",
             final, (long long)st.st_size);
    assert_non_null(strstr(line, expect));
    assert_non_null(strstr(line, "\"complete\":true"));
    assert_non_null(strstr(line, "\"parsed\":\"file\""));

    /* The same file parsed in one go, with the same --keys, under the name it was adopted
     * by (a .npy's array is named after its file). */
    int fd = open(final, O_RDONLY);
    char *patterns[] = {"mod*"};
    struct key_filter keys = {.patterns = patterns, .count = 1};
    struct parse_options parse = {.sample = DEFAULT_SAMPLE}; /* the collector's own */
    struct identity who = {.pid = 5};
    struct record *whole = record_from_file(&who, fd, model, &st, &keys, &parse);
    close(fd);
    size_t len;
    char *whole_line = record_to_line(whole, &len);
    char *a = member_text(line, "tensors"), *b = member_text(whole_line, "tensors");
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "\"name\":\"model\""));
    free(a);
    free(b);
    free(whole_line);
    record_free(whole);

    char *kept = member_text(f->out.lines[1], "tensors"),
         *path = member_text(f->out.lines[1], "path");
    assert_string_equal(kept, "[]");
    snprintf(expect, sizeof expect, "\"%s\"", small);
    assert_string_equal(path, expect);
    free(kept);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test_setup_teardown(test_full_record_in_contract_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_rank_and_empty_findings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename_within_window_from_another_process, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rename_keeps_first_written_as, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename_after_window_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_is_per_record_in_close_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_discards_earlier_findings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_never_seen_opened, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_record_keeps_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_record_takes_size_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_writes_everything_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_messages_are_counted_and_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopted_files_are_parsed_a_slice_at_a_time, setup,
                                        teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
