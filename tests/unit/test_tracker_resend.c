/* test_tracker_resend.c — messages an agent sends again (collector/tracker.c; core/wire.h,
 * "Delivery").
 *
 * An agent keeps what the collector has not acknowledged and sends it again on its next
 * connection. The collector must then take each message once: within one collector by
 * the session's highest number taken, which outlives a connection; across a kill by the
 * origins the killed collector journaled (the hold hooks). Records are counted and read
 * back as the log would have them.
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

#include "collector/record.h"
#include "collector/tracker.h"

#define T0 1795470120123456LL

struct fixture {
    struct tracker *tracker;
    cJSON *records[16];
    int count;
    struct origin held[16]; /* what the journal was told */
    int held_count;
    struct origin recovered; /* what a killed collector had journaled */
    char renamed_from[64], renamed_to[64];
};

static void capture_record(void *ctx, const struct record *r)
{
    struct fixture *f = ctx;
    size_t len;
    char *line = record_to_line(r, &len);
    assert_true(f->count < 16);
    f->records[f->count] = cJSON_Parse(line);
    assert_non_null(f->records[f->count++]);
    free(line);
}

static void on_held(void *ctx, const struct record *r, const struct origin *o)
{
    struct fixture *f = ctx;
    (void)r;
    assert_true(f->held_count < 16);
    f->held[f->held_count++] = *o;
}

static void on_emitted(void *ctx, const struct record *r)
{
    (void)ctx, (void)r;
}

static bool on_recovered(void *ctx, const struct origin *o)
{
    struct fixture *f = ctx;
    return o->seq == f->recovered.seq && !strcmp(o->session, f->recovered.session);
}

static bool on_renamed(void *ctx, const char *from, const char *to)
{
    struct fixture *f = ctx;
    snprintf(f->renamed_from, sizeof f->renamed_from, "%s", from);
    snprintf(f->renamed_to, sizeof f->renamed_to, "%s", to);
    return true;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->tracker = tracker_new(capture_record, f);
    struct hold_hooks hooks = {on_held, on_emitted, on_recovered, on_renamed, f};
    tracker_set_hold(f->tracker, &hooks);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tracker_free(f->tracker);
    for (int i = 0; i < f->count; i++)
        cJSON_Delete(f->records[i]);
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

static struct tracker_conn *connect_session(struct fixture *f, const char *session)
{
    struct tracker_conn *c = tracker_connect(f->tracker, 77);
    send(f, c, "{\"t\":\"hello\",\"pid\":77,\"program\":\"p\",\"session\":\"%s\"}", session);
    return c;
}

/* One file's messages, numbered from seq. */
static void save(struct fixture *f, struct tracker_conn *c, int id, int64_t seq, int epoch)
{
    send(f, c, "{\"t\":\"open\",\"id\":%d,\"path\":\"/x/%d.pkl\",\"seq\":%lld}", id, id,
         (long long)seq);
    send(f, c,
         "{\"t\":\"data\",\"id\":%d,\"format\":\"pickle\",\"values\":{\"epoch\":%d},\"seq\":%lld}",
         id, epoch, (long long)seq + 1);
    send(f, c, "{\"t\":\"close\",\"id\":%d,\"bytes\":10,\"complete\":true,\"seq\":%lld}", id,
         (long long)seq + 2);
}

static void test_a_connection_says_what_it_took(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = connect_session(f, "00aa");
    assert_int_equal(tracker_taken(c), 0); /* a hello is not numbered */
    save(f, c, 1, 1, 5);
    assert_int_equal(tracker_taken(c), 3);
    assert_int_equal(f->held_count, 1); /* the close's record, held for a rename */
    assert_string_equal(f->held[0].session, "00aa");
    assert_int_equal(f->held[0].seq, 3);
    long pid;
    assert_null(tracker_unfinished(c, &pid)); /* nothing open */
    send(f, c, "{\"t\":\"open\",\"id\":2,\"path\":\"/x/2.pkl\",\"seq\":4}");
    assert_string_equal(tracker_unfinished(c, &pid), "00aa");
    assert_int_equal(pid, 77);
    assert_true(tracker_session_open(f->tracker, "00aa"));
    tracker_disconnect(f->tracker, c, T0);
    assert_false(tracker_session_open(f->tracker, "00aa"));
}

/* The connection broke after the collector took everything, before the agent read the
 * acknowledgement: all of it comes again on the next one, and makes no second record. */
static void test_messages_sent_again_are_taken_once(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = connect_session(f, "00bb");
    save(f, c, 1, 1, 5);
    tracker_disconnect(f->tracker, c, T0);
    c = connect_session(f, "00bb");
    save(f, c, 1, 1, 5); /* again */
    save(f, c, 2, 4, 6); /* and the next file */
    assert_int_equal(tracker_taken(c), 6);
    assert_int_equal(tracker_counts(f->tracker)->resent, 3);
    tracker_shutdown(f->tracker, T0 + 5000000);
    tracker_disconnect(f->tracker, c, T0 + 5000000);
    assert_int_equal(f->count, 2);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(f->records[0], "values"), "epoch")->valueint, 5);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(f->records[1], "values"), "epoch")->valueint, 6);
    /* Another session's numbers are its own. */
    c = connect_session(f, "00cc");
    save(f, c, 1, 1, 7);
    tracker_shutdown(f->tracker, T0 + 10000000);
    tracker_disconnect(f->tracker, c, T0 + 10000000);
    assert_int_equal(f->count, 3);
}

/* A killed collector had journaled the record of close 3 (its successor holds it now):
 * the agent sends it again, and the rename after it goes to the recovered record. */
static void test_a_record_a_killed_collector_journaled_is_not_made_again(void **state)
{
    struct fixture *f = *state;
    f->recovered = (struct origin){.session = "00dd", .seq = 3};
    struct tracker_conn *c = connect_session(f, "00dd");
    save(f, c, 1, 1, 5);
    send(f, c, "{\"t\":\"rename\",\"from\":\"/x/1.pkl\",\"to\":\"/x/final.pkl\",\"seq\":4}");
    assert_int_equal(f->held_count, 0);
    assert_string_equal(f->renamed_from, "/x/1.pkl");
    assert_string_equal(f->renamed_to, "/x/final.pkl");
    save(f, c, 2, 5, 6); /* not journaled before: a record as usual */
    tracker_shutdown(f->tracker, T0 + 5000000);
    tracker_disconnect(f->tracker, c, T0 + 5000000);
    assert_int_equal(f->count, 1);
    assert_string_equal(cJSON_GetObjectItem(f->records[0], "path")->valuestring, "/x/2.pkl");
    assert_int_equal(tracker_counts(f->tracker)->resent, 1);
}

/* An agent that does not number its messages (or a session name that is not one) is
 * served as before, with nothing to acknowledge. */
static void test_unnumbered_agents(void **state)
{
    struct fixture *f = *state;
    struct tracker_conn *c = tracker_connect(f->tracker, 5);
    send(f, c, "{\"t\":\"hello\",\"pid\":5,\"session\":\"no spaces allowed\"}");
    send(f, c, "{\"t\":\"open\",\"id\":1,\"path\":\"/x/1.pkl\"}");
    send(f, c, "{\"t\":\"close\",\"id\":1,\"complete\":true}");
    assert_int_equal(tracker_taken(c), 0);
    assert_int_equal(tracker_counts(f->tracker)->malformed, 1); /* the hello */
    tracker_shutdown(f->tracker, T0 + 5000000);
    tracker_disconnect(f->tracker, c, T0 + 5000000);
    assert_int_equal(f->count, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_connection_says_what_it_took, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_sent_again_are_taken_once, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_record_a_killed_collector_journaled_is_not_made_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unnumbered_agents, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
