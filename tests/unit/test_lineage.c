/* test_lineage.c — load records from the log as it grows (collector/lineage.c).
 *
 * The log is written here line by line, as collectors write it: rotated segments, lines
 * appended between loads, a rotation between loads, a line still being written, another
 * collector's load records. Each load record is compared with what the lines say.
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

#include "collector/lineage.h"

#define T0 1795470120123456LL /* 2026-11-23T21:42:00.123456Z */

static char dir[] = "/tmp/ckmon-lineage-XXXXXX";
static char log_path[64];

static void append(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A checkpoint record line as the collector writes it, with findings after "values". */
static void checkpoint(const char *path, const char *file, const char *time, const char *job,
                       long pid, long bytes)
{
    char line[1024];
    snprintf(line, sizeof line,
             "{\"schema\":1,\"event\":\"checkpoint\",\"time\":\"%s\",\"host\":\"h\",\"pid\":%ld,"
             "\"program\":\"python3\",\"job\":\"%s\",\"run\":\"r-%s\",\"path\":\"%s\","
             "\"format\":\"torch\",\"bytes\":%ld,\"writes\":1,\"seconds\":0.1,"
             "\"complete\":true,\"parsed\":\"stream\",\"values\":{\"path\":\"/decoy.pt\"},"
             "\"tensors\":[]}\n",
             time, pid, job, job, file, bytes);
    append(path, line);
}

static struct identity reader = {
    .host = "h", .program = "python3", .job = "resume", .run = "r2", .pid = 42};

static cJSON *load(struct lineage *l, const char *path, int64_t bytes, int64_t mtime_us)
{
    struct wire_load m = {
        .path = path, .time_us = T0 + 5000000, .bytes = bytes, .mtime_us = mtime_us};
    cJSON *r = lineage_load_record(l, &reader, &m, 0);
    assert_non_null(r);
    return r;
}

static const char *written_job(const cJSON *r)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(r, "written");
    return cJSON_IsObject(w) ? cJSON_GetStringValue(cJSON_GetObjectItem(w, "job")) : NULL;
}

static double number(const cJSON *r, const char *name)
{
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, name));
}

static void test_log_as_it_grows(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(log_path, sizeof log_path, "%s/ckmon.jsonl", dir);
    char segment[80];
    snprintf(segment, sizeof segment, "%s.1", log_path);
    checkpoint(segment, "/r/a.pt", "2026-11-23T21:41:00.000000Z", "old", 1, 100);
    checkpoint(log_path, "/r/a.pt", "2026-11-23T21:42:00.123456Z", "train", 7, 100);
    struct lineage *l = lineage_new(log_path);

    /* The newest record of the path, and its members as they were. */
    cJSON *r = load(l, "/r/a.pt", 100, T0 - 1000);
    assert_string_equal(written_job(r), "train");
    const cJSON *w = cJSON_GetObjectItem(r, "written");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(w, "time")),
                        "2026-11-23T21:42:00.123456Z");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(w, "run")), "r-train");
    assert_true(number(w, "pid") == 7);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "unchanged")));
    assert_true(number(r, "total") == 1);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(r, "job")), "resume");
    char *line = cJSON_PrintUnformatted(r);
    append(log_path, line);
    append(log_path, "\n");
    free(line);
    cJSON_Delete(r);

    /* Modified more than 1 s after the close, or another size: changed. Within 1 s: not. */
    r = load(l, "/r/a.pt", 100, T0 + 1000000);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "unchanged")));
    assert_true(number(r, "total") == 2); /* the first one, read back from the log */
    cJSON_Delete(r);
    r = load(l, "/r/a.pt", 100, T0 + 1000001);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r, "unchanged")));
    cJSON_Delete(r);
    r = load(l, "/r/a.pt", 101, T0);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r, "unchanged")));
    cJSON_Delete(r);

    /* No record; a path only named inside a record's values; no size known. */
    r = load(l, "/decoy.pt", 1, T0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "written")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "unchanged")));
    cJSON_Delete(r);
    r = load(l, "/r/a.pt", WIRE_ABSENT, WIRE_ABSENT);
    assert_null(cJSON_GetObjectItem(r, "bytes"));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "unchanged")));
    assert_string_equal(written_job(r), "train");
    cJSON_Delete(r);

    /* Appended since: a newer record of the path, and a half-written line not yet. */
    checkpoint(log_path, "/r/a.pt", "2026-11-23T21:50:00.000000Z", "again", 8, 300);
    append(log_path, "{\"schema\":1,\"event\":\"checkpoint\",\"path\":\"/r/b.pt\"");
    r = load(l, "/r/a.pt", 300, T0);
    assert_string_equal(written_job(r), "again");
    cJSON_Delete(r);

    /* Rotated between two loads: the old file's rest (its line finished now) and the new
     * file are both read. */
    append(log_path, ",\"time\":\"2026-11-23T21:51:00.000000Z\",\"host\":\"h\",\"pid\":9,"
                     "\"job\":\"late\",\"bytes\":5,\"values\":{}}\n");
    snprintf(segment, sizeof segment, "%s.2", log_path);
    assert_int_equal(rename(log_path, segment), 0);
    checkpoint(log_path, "/r/c.pt", "2026-11-23T21:52:00.000000Z", "fresh", 10, 6);
    r = load(l, "/r/b.pt", 5, T0);
    assert_string_equal(written_job(r), "late");
    cJSON_Delete(r);
    r = load(l, "/r/c.pt", 6, T0);
    assert_string_equal(written_job(r), "fresh");
    cJSON_Delete(r);
    lineage_free(l);

    /* No log to read back ("-"): nothing written, loads counted here. */
    l = lineage_new("-");
    r = load(l, "/r/a.pt", 100, T0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "written")));
    cJSON_Delete(r);
    r = load(l, "/r/a.pt", 100, T0);
    assert_true(number(r, "total") == 2);
    cJSON_Delete(r);
    lineage_free(l);

    unlink(log_path);
    snprintf(segment, sizeof segment, "%s.1", log_path);
    unlink(segment);
    snprintf(segment, sizeof segment, "%s.2", log_path);
    unlink(segment);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_as_it_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
