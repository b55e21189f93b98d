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

#include "agent/wire.h"
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
