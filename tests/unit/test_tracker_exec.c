/* test_tracker_exec.c — the collector's side of exec and of launcher ranks
 * (collector/tracker.c, record.c).
 *
 * A program that execs with checkpoints open tells the collector which files the new
 * program keeps; when its connection then ends, the kept files are left to the new
 * program's agent and the others (closed by the exec) get ordinary records parsed from
 * disk. A failed exec takes that back. Records are checked member by member, with the
 * on-disk file written here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/wire.h"
#include "collector/record.h"
#include "collector/tracker.h"

#define T0          1795470120123456LL
#define CLOSED_TEXT "{\"epoch\": 3, \"lr\": 0.5}"

struct fixture {
    struct tracker *tracker;
    cJSON *records[8];
    int count;
    char dir[64];
    char closed_path[128]; /* a finished JSON document the exec closed */
    char kept_path[128];   /* the file the new program goes on writing */
};

static void capture_record(void *ctx, const struct record *r)
{
    struct fixture *f = ctx;
    size_t len;
    char *line = record_to_line(r, &len);
    assert_true(f->count < 8);
    f->records[f->count] = cJSON_Parse(line);
    assert_non_null(f->records[f->count++]);
    free(line);
}

static void write_file(const char *path, const char *text)
{
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fputs(text, out);
    fclose(out);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ckmon-unit-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->closed_path, sizeof f->closed_path, "%s/closed.json", f->dir);
    snprintf(f->kept_path, sizeof f->kept_path, "%s/kept.json", f->dir);
    write_file(f->closed_path, CLOSED_TEXT);
    write_file(f->kept_path, "{\"epoch\": ");
    f->tracker = tracker_new(capture_record, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tracker_free(f->tracker);
    for (int i = 0; i < f->count; i++)
        cJSON_Delete(f->records[i]);
    unlink(f->closed_path);
    unlink(f->kept_path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void send(struct fixture *f, struct tracker_conn *c, const char *fmt, ...)
{
    char json[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(json, sizeof json, fmt, ap);
    va_end(ap);
    tracker_message(f->tracker, c, json, strlen(json), T0);
}

/* A process with both files open (ids 1 and 2), about to exec and keep file 2. */
static struct tracker_conn *exec_with_two_files(struct fixture *f)
{
    struct tracker_conn *c = tracker_connect(f->tracker, 999);
    send(f, c,
         "{\"t\":\"hello\",\"pid\":123,\"program\":\"sh\",\"host\":\"h\",\"job\":\"j\","
         "\"local_rank\":1,\"world_size\":4}");
    send(f, c, "{\"t\":\"open\",\"id\":1,\"path\":\"%s\",\"time_us\":%lld}", f->closed_path, T0);
    send(f, c, "{\"t\":\"open\",\"id\":2,\"path\":\"%s\",\"time_us\":%lld}", f->kept_path, T0);
    send(f, c, "{\"t\":\"data\",\"id\":1,\"bytes\":10,\"writes\":2,\"format\":\"json\"}");
    send(f, c, "{\"t\":\"exec\",\"kept\":[2]}");
    return c;
}

static const cJSON *member(const cJSON *o, const char *name)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
    assert_non_null(m);
    return m;
}

static void test_exec_closed_file_gets_a_record_from_disk(void **state)
{
    struct fixture *f = *state;
    tracker_disconnect(f->tracker, exec_with_two_files(f), T0 + 5);
    tracker_shutdown(f->tracker, T0 + 10);
    assert_int_equal(f->count, 1); /* the kept file is the new program's to report */
    const cJSON *r = f->records[0];
    assert_string_equal(member(r, "path")->valuestring, f->closed_path);
    assert_true(cJSON_IsTrue(member(r, "complete")));
    assert_string_equal(member(r, "format")->valuestring, "json");
    assert_int_equal(member(r, "bytes")->valueint, strlen(CLOSED_TEXT));
    assert_int_equal(member(r, "writes")->valueint, 2);
    assert_int_equal(member(r, "pid")->valueint, 123);
    assert_int_equal(member(member(r, "values"), "epoch")->valueint, 3);
    assert_true(member(member(r, "values"), "lr")->valuedouble == 0.5);
    assert_null(cJSON_GetObjectItemCaseSensitive(r, "errors"));
    assert_null(cJSON_GetObjectItemCaseSensitive(r, "rank"));
    assert_int_equal(member(r, "local_rank")->valueint, 1);
    assert_int_equal(member(r, "world_size")->valueint, 4);
}

static void test_failed_exec_leaves_files_open(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = exec_with_two_files(f);
    send(f, c, "{\"t\":\"exec_failed\"}");
    tracker_disconnect(f->tracker, c, T0 + 5); /* then the process died */
    assert_int_equal(f->count, 2);
    for (int i = 0; i < 2; i++) {
        assert_false(cJSON_IsTrue(member(f->records[i], "complete")));
        assert_non_null(cJSON_GetObjectItemCaseSensitive(f->records[i], "errors"));
    }
}

static void test_exec_message_needs_a_kept_list(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = tracker_connect(f->tracker, 5);
    send(f, c, "{\"t\":\"open\",\"id\":1,\"path\":\"%s\",\"time_us\":%lld}", f->closed_path, T0);
    send(f, c, "{\"t\":\"exec\"}");
    assert_int_equal(tracker_counts(f->tracker)->malformed, 1);
    tracker_disconnect(f->tracker, c, T0 + 5); /* not an exec after all: torn */
    assert_int_equal(f->count, 1);
    assert_false(cJSON_IsTrue(member(f->records[0], "complete")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exec_closed_file_gets_a_record_from_disk, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_exec_leaves_files_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_message_needs_a_kept_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
