/* test_wire.c — the agent → collector messages (core/wire.c).
 *
 * Every kind goes encode → decode and must come back equal, member by member. The
 * round trip alone would not notice a member renamed in both directions, so each kind's
 * text is also compared with the packet core/wire.h documents (what the fuzz corpus,
 * the trust test and older agents send), and those packets are decoded by hand. Packets
 * without what their kind needs are malformed; a kind this side does not know is
 * unknown, not malformed.
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

#include "core/jsontext.h"
#include "core/wire.h"

static char *encode(const struct wire_message *m)
{
    struct strbuf text = {.limit = WIRE_MAX_MESSAGE};
    assert_true(wire_encode(m, &text));
    return text.s;
}

/* m encoded, then decoded into *out (which the caller frees); returns the text. */
static char *round_trip(const struct wire_message *m, struct wire_message *out)
{
    char *text = encode(m);
    assert_int_equal(wire_decode(text, strlen(text), out), WIRE_OK);
    assert_int_equal(out->kind, m->kind);
    return text;
}

static void assert_same_string(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_same_number(double a, double b)
{
    assert_true(isnan(a) ? isnan(b) : a == b);
}

static void assert_same_findings(const cJSON *a, const cJSON *b)
{
    if (!a || !a->child)
        assert_true(!b || !b->child); /* an empty container is not sent */
    else
        assert_true(cJSON_Compare(a, b, true));
}

static void assert_same_hello(const struct wire_hello *a, const struct wire_hello *b)
{
    assert_int_equal(a->pid, b->pid);
    assert_same_string(a->program, b->program);
    assert_same_string(a->host, b->host);
    assert_same_string(a->job, b->job);
    assert_int_equal(a->rank, b->rank);
    assert_int_equal(a->local_rank, b->local_rank);
    assert_int_equal(a->world_size, b->world_size);
    assert_same_number(a->sample, b->sample);
    assert_int_equal(a->dropped > 0 ? a->dropped : WIRE_ABSENT, b->dropped);
    assert_int_equal(a->key_count, b->key_count);
    for (size_t i = 0; i < a->key_count; i++)
        assert_string_equal(a->keys[i], b->keys[i]);
}

static void test_hello(void **state)
{
    char *keys[] = {"epoch", "model.*.weight", "quote\"and\\back"};
    struct wire_message m = {.kind = WIRE_HELLO,
                             .hello = {.pid = 123,
                                       .program = "python3",
                                       .host = "h",
                                       .job = "j",
                                       .rank = 3,
                                       .local_rank = 1,
                                       .world_size = 8,
                                       .sample = 0.1,
                                       .dropped = 0,
                                       .keys = keys,
                                       .key_count = 1}},
                        out;
    char *text = round_trip(&m, &out);
    assert_string_equal(text, "{\"t\":\"hello\",\"pid\":123,\"program\":\"python3\",\"host\":\"h\","
                              "\"job\":\"j\",\"rank\":3,\"local_rank\":1,\"world_size\":8,"
                              "\"sample\":0.10000000000000001,\"keys\":[\"epoch\"]}");
    assert_same_hello(&m.hello, &out.hello);
    wire_message_free(&out);
    free(text);

    /* No launcher ranks, lost messages, every key, names that need escaping. */
    m.hello = (struct wire_hello){.pid = 9,
                                  .program = "a \"b\"\n",
                                  .host = "",
                                  .job = "\xc3\xa9t\xc3\xa9",
                                  .run = "slurm 77",
                                  .rank = WIRE_ABSENT,
                                  .local_rank = WIRE_ABSENT,
                                  .world_size = WIRE_ABSENT,
                                  .sample = 1,
                                  .dropped = 41,
                                  .keys = keys,
                                  .key_count = 3};
    text = round_trip(&m, &out);
    assert_null(strstr(text, "rank"));
    assert_non_null(strstr(text, "\"dropped\":41"));
    assert_non_null(strstr(text, "\"run\":\"slurm 77\""));
    assert_string_equal(out.hello.run, "slurm 77");
    assert_same_hello(&m.hello, &out.hello);
    wire_message_free(&out);
    free(text);

    m.hello.key_count = 0; /* "keys" is sent empty */
    text = round_trip(&m, &out);
    assert_non_null(strstr(text, "\"keys\":[]"));
    assert_same_hello(&m.hello, &out.hello);
    wire_message_free(&out);
    free(text);
}

static void test_open(void **state)
{
    struct wire_message m = {.kind = WIRE_OPEN,
                             .open = {.id = 7, .path = "/abs/x.pt", .time_us = 1700000000123456}},
                        out;
    char *text = round_trip(&m, &out);
    assert_string_equal(
        text, "{\"t\":\"open\",\"id\":7,\"path\":\"/abs/x.pt\",\"time_us\":1700000000123456}");
    assert_int_equal(out.open.id, 7);
    assert_string_equal(out.open.path, "/abs/x.pt");
    assert_int_equal(out.open.time_us, 1700000000123456);
    wire_message_free(&out);
    free(text);
}

/* Tensors sent (a) and as the collector reads them (b, printed as records print them). */
static void assert_same_tensors(const cJSON *a, const struct wire_data *b)
{
    if (!a || !a->child) {
        assert_true(!b->texts || !b->texts->count); /* an empty container is not sent */
        return;
    }
    assert_non_null(b->texts);
    char *want = json_print(a), got[4096];
    snprintf(got, sizeof got, "[%s]", b->texts->text.s);
    assert_string_equal(got, want);
    free(want);
}

static void assert_same_data(const struct wire_data *a, const struct wire_data *b)
{
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->bytes, b->bytes);
    assert_int_equal(a->writes, b->writes);
    assert_same_string(a->format, b->format);
    assert_int_equal(a->reset, b->reset);
    assert_same_findings(a->values, b->values);
    assert_same_tensors(a->tensors, b);
    assert_same_findings(a->errors, b->errors);
}

static void test_data(void **state)
{
    cJSON *values =
        cJSON_Parse("{\"epoch\":3,\"lr\":0.6799999999999999,\"big\":1.7976931348623157e308,"
                    "\"name\":\"r\\u00e9sum\\u00e9\",\"list\":[1,null,true]}");
    cJSON *tensors =
        cJSON_Parse("[{\"name\":\"w\",\"dtype\":\"float32\",\"shape\":[2,3],\"mean\":-0.125}]");
    cJSON *errors = cJSON_Parse("[\"pickle: truncated at byte 12\"]");
    struct wire_message m = {.kind = WIRE_DATA,
                             .data = {.id = 7,
                                      .bytes = 4096,
                                      .writes = 3,
                                      .format = "pickle",
                                      .values = values,
                                      .tensors = tensors,
                                      .errors = errors}},
                        out;
    char *text = round_trip(&m, &out);
    assert_same_data(&m.data, &out.data);
    /* Exact doubles: the collector prints what the agent found. */
    assert_true(cJSON_GetObjectItem(out.data.values, "lr")->valuedouble == 0.6799999999999999);
    wire_message_free(&out);
    free(text);

    /* Progress only, then a reset, then values alone. */
    m.data = (struct wire_data){.id = 8, .bytes = 0, .writes = 1, .format = "unknown"};
    text = round_trip(&m, &out);
    assert_string_equal(
        text, "{\"t\":\"data\",\"id\":8,\"bytes\":0,\"writes\":1,\"format\":\"unknown\"}");
    assert_same_data(&m.data, &out.data);
    wire_message_free(&out);
    free(text);
    m.data.reset = true;
    text = round_trip(&m, &out);
    assert_non_null(strstr(text, "\"reset\":true"));
    assert_same_data(&m.data, &out.data);
    wire_message_free(&out);
    free(text);
    m.data =
        (struct wire_data){.id = 9, .bytes = WIRE_ABSENT, .writes = WIRE_ABSENT, .values = values};
    text = round_trip(&m, &out);
    assert_same_data(&m.data, &out.data);
    wire_message_free(&out);
    free(text);

    cJSON_Delete(values);
    cJSON_Delete(tensors);
    cJSON_Delete(errors);
}

static void assert_same_close(const struct wire_close *a, const struct wire_close *b)
{
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->time_us, b->time_us);
    assert_int_equal(a->bytes, b->bytes);
    assert_int_equal(a->writes, b->writes);
    assert_same_string(a->path, b->path);
    assert_same_string(a->written_as, b->written_as);
    assert_same_string(a->format, b->format);
    assert_same_string(a->parsed, b->parsed);
    assert_same_number(a->seconds, b->seconds);
    assert_int_equal(a->complete, b->complete);
    assert_int_equal(a->crc_left, b->crc_left);
}

static void test_close(void **state)
{
    struct wire_message m = {.kind = WIRE_CLOSE,
                             .close = {.id = 7,
                                       .time_us = 1700000000223456,
                                       .path = "/abs/final",
                                       .written_as = "/abs/tmp",
                                       .format = "pickle",
                                       .bytes = 823058,
                                       .writes = 11,
                                       .seconds = 0.0123,
                                       .complete = true,
                                       .parsed = "stream"}},
                        out;
    char *text = round_trip(&m, &out);
    assert_string_equal(text, "{\"t\":\"close\",\"id\":7,\"time_us\":1700000000223456,"
                              "\"path\":\"/abs/final\",\"written_as\":\"/abs/tmp\","
                              "\"format\":\"pickle\",\"bytes\":823058,\"writes\":11,"
                              "\"seconds\":0.0123,\"complete\":true,\"parsed\":\"stream\"}");
    assert_same_close(&m.close, &out.close);
    wire_message_free(&out);
    free(text);

    /* Not renamed, read back, incomplete, a 4 TiB file counted to the byte, its zip
     * CRCs left to the collector. */
    m.close.written_as = NULL;
    m.close.parsed = "reread";
    m.close.complete = false;
    m.close.bytes = (1LL << 42) + 1;
    m.close.seconds = 1e-9;
    m.close.crc_left = true;
    text = round_trip(&m, &out);
    assert_null(strstr(text, "written_as"));
    assert_non_null(strstr(text, "\"crc_left\":true"));
    assert_same_close(&m.close, &out.close);
    wire_message_free(&out);
    free(text);
}

/* Tensors' statistics travel as the hex of their bits: exact for any double, and only
 * in statistics (a tensor named like such hex keeps its name). */
static void test_tensor_statistics_exact(void **state)
{
    cJSON *tensors = cJSON_Parse(
        "[{\"name\":\"#3ff0000000000000\",\"dtype\":\"float32\",\"shape\":[2,3],"
        "\"min\":-0.034725137054920197,\"max\":1.7976931348623157e308,\"mean\":4.9e-324,"
        "\"std\":null,\"nan\":2,\"inf\":0,\"sampled\":0.0625,"
        "\"ci95\":{\"mean\":0.1,\"std\":null},\"head\":[0.5,\"nan\",-2.2250738585072014e-308,3]}]");
    assert_non_null(tensors);
    struct wire_message m = {.kind = WIRE_DATA, .data = {.id = 7, .tensors = tensors}}, out;
    char *text = round_trip(&m, &out);
    assert_non_null(strstr(text, "\"min\":\"#bfa1c77e40000000\""));
    assert_null(strstr(text, "0.0625"));
    assert_same_tensors(tensors, &out.data);
    const struct tensor_brief *t = &out.data.texts->briefs[0];
    assert_string_equal(t->name, "#3ff0000000000000");
    assert_true(t->stat[BRIEF_MIN] == -0.034725137054920197);
    assert_true(t->stat[BRIEF_MEAN] == 4.9e-324);
    assert_non_null(strstr(out.data.texts->text.s, "\"head\":[0.5,\"nan\","));
    wire_message_free(&out);
    free(text);
    cJSON_Delete(tensors);
}

/* Findings the agent dropped are counted in the close message. */
static void test_close_says_what_was_lost(void **state)
{
    struct wire_message m = {.kind = WIRE_CLOSE,
                             .close = {.id = 7,
                                       .complete = true,
                                       .lost_tensors = 61272,
                                       .lost_values = 3}},
                        out;
    char *text = round_trip(&m, &out);
    assert_non_null(strstr(text, "\"lost_tensors\":61272,\"lost_values\":3"));
    assert_int_equal(out.close.lost_tensors, 61272);
    assert_int_equal(out.close.lost_values, 3);
    wire_message_free(&out);
    free(text);
    m.close.lost_tensors = m.close.lost_values = 0;
    text = round_trip(&m, &out);
    assert_null(strstr(text, "lost"));
    assert_int_equal(out.close.lost_tensors, WIRE_ABSENT);
    wire_message_free(&out);
    free(text);
}

static void test_rename_and_adopt(void **state)
{
    struct wire_message m = {.kind = WIRE_RENAME,
                             .rename = {.from = "/abs/x.tmp",
                                        .to = "/abs/x.pt",
                                        .time_us = WIRE_ABSENT}},
                        out;
    char *text = round_trip(&m, &out);
    assert_string_equal(text, "{\"t\":\"rename\",\"from\":\"/abs/x.tmp\",\"to\":\"/abs/x.pt\"}");
    assert_string_equal(out.rename.from, "/abs/x.tmp");
    assert_string_equal(out.rename.to, "/abs/x.pt");
    assert_int_equal(out.rename.time_us, WIRE_ABSENT);
    wire_message_free(&out);
    free(text);

    m.kind = WIRE_ADOPT;
    m.rename.time_us = 1700000000123456;
    text = round_trip(&m, &out);
    assert_string_equal(text, "{\"t\":\"adopt\",\"from\":\"/abs/x.tmp\",\"to\":\"/abs/x.pt\","
                              "\"time_us\":1700000000123456}");
    assert_string_equal(out.rename.from, "/abs/x.tmp");
    assert_string_equal(out.rename.to, "/abs/x.pt");
    assert_int_equal(out.rename.time_us, 1700000000123456);
    wire_message_free(&out);
    free(text);
}

static void test_exec_and_exec_failed(void **state)
{
    int64_t kept[] = {7, 1, 300};
    struct wire_message m = {.kind = WIRE_EXEC, .exec = {.kept = kept, .kept_count = 3}}, out;
    char *text = round_trip(&m, &out);
    assert_string_equal(text, "{\"t\":\"exec\",\"kept\":[7,1,300]}");
    assert_int_equal(out.exec.kept_count, 3);
    assert_memory_equal(out.exec.kept, kept, sizeof kept);
    wire_message_free(&out);
    free(text);

    m.exec.kept_count = 0;
    text = round_trip(&m, &out);
    assert_string_equal(text, "{\"t\":\"exec\",\"kept\":[]}");
    assert_int_equal(out.exec.kept_count, 0);
    wire_message_free(&out);
    free(text);

    m = (struct wire_message){.kind = WIRE_EXEC_FAILED};
    text = round_trip(&m, &out);
    assert_string_equal(text, "{\"t\":\"exec_failed\"}");
    wire_message_free(&out);
    free(text);
}

static enum wire_status decode(const char *text, struct wire_message *m)
{
    return wire_decode(text, strlen(text), m);
}

static void test_unmatched(void **state)
{
    char *paths[] = {"/w/model.bin", "/w/a \"b\".txt"};
    struct wire_message m = {.kind = WIRE_UNMATCHED,
                             .unmatched = {.paths = paths, .path_count = 2}},
                        out;
    char *text = round_trip(&m, &out);
    assert_string_equal(
        text, "{\"t\":\"unmatched\",\"paths\":[\"/w/model.bin\",\"/w/a \\\"b\\\".txt\"]}");
    assert_int_equal(out.unmatched.path_count, 2);
    assert_string_equal(out.unmatched.paths[0], paths[0]);
    assert_string_equal(out.unmatched.paths[1], paths[1]);
    wire_message_free(&out);
    free(text);
    /* paths are required, and strings only */
    assert_int_equal(decode("{\"t\":\"unmatched\"}", &out), WIRE_MALFORMED);
    assert_int_equal(decode("{\"t\":\"unmatched\",\"paths\":[\"/a\",3]}", &out), WIRE_MALFORMED);
}

/* The close's view of the file goes only with an inode: a message built without one
 * (zeros) sends none, and the decoder has them absent. */
static void test_close_file_identity(void **state)
{
    struct wire_message m = {.kind = WIRE_CLOSE,
                             .close = {.id = 1,
                                       .ino = 42,
                                       .dev = 2049,
                                       .mtime_us = 1700000000123456}},
                        out;
    char *text = round_trip(&m, &out);
    assert_non_null(strstr(text, "\"dev\":2049,\"ino\":42,\"mtime_us\":1700000000123456"));
    assert_int_equal(out.close.ino, 42);
    assert_int_equal(out.close.dev, 2049);
    assert_int_equal(out.close.mtime_us, 1700000000123456);
    wire_message_free(&out);
    free(text);
    assert_int_equal(decode("{\"t\":\"close\",\"id\":1}", &out), WIRE_OK);
    assert_int_equal(out.close.ino, WIRE_ABSENT);
    assert_int_equal(out.close.mtime_us, WIRE_ABSENT);
    wire_message_free(&out);
}

/* verify's failures: the record whole, and only a verify record. */
static void test_verified(void **state)
{
    cJSON *record = cJSON_Parse("{\"event\":\"verify\",\"path\":\"/w/a.pt\",\"total\":3}");
    struct wire_message m = {.kind = WIRE_VERIFIED, .verified = {.record = record}}, out;
    char *text = round_trip(&m, &out);
    assert_string_equal(text, "{\"t\":\"verified\",\"record\":{\"event\":\"verify\",\"path\":"
                              "\"/w/a.pt\",\"total\":3}}");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(out.verified.record, "path")),
                        "/w/a.pt");
    wire_message_free(&out);
    free(text);
    cJSON_Delete(record);
    assert_int_equal(decode("{\"t\":\"verified\"}", &out), WIRE_MALFORMED);
    assert_int_equal(decode("{\"t\":\"verified\",\"record\":{\"event\":\"checkpoint\"}}", &out),
                     WIRE_MALFORMED);
    assert_int_equal(decode("{\"t\":\"verified\",\"record\":[1]}", &out), WIRE_MALFORMED);
}

static void test_load(void **state)
{
    struct wire_message m = {.kind = WIRE_LOAD,
                             .load = {.path = "/abs/epoch_5.pt",
                                      .time_us = 1700000000123456,
                                      .bytes = (1LL << 40) + 3,
                                      .mtime_us = 1699999999000001}},
                        out;
    char *text = round_trip(&m, &out);
    assert_string_equal(text, "{\"t\":\"load\",\"path\":\"/abs/epoch_5.pt\","
                              "\"time_us\":1700000000123456,\"bytes\":1099511627779,"
                              "\"mtime_us\":1699999999000001}");
    assert_string_equal(out.load.path, "/abs/epoch_5.pt");
    assert_int_equal(out.load.time_us, 1700000000123456);
    assert_int_equal(out.load.bytes, (1LL << 40) + 3);
    assert_int_equal(out.load.mtime_us, 1699999999000001);
    wire_message_free(&out);
    free(text);

    /* fstat failed: neither size nor time is sent, and neither is made up. */
    m.load.bytes = m.load.mtime_us = WIRE_ABSENT;
    text = round_trip(&m, &out);
    assert_null(strstr(text, "bytes"));
    assert_null(strstr(text, "mtime_us"));
    assert_int_equal(out.load.bytes, WIRE_ABSENT);
    assert_int_equal(out.load.mtime_us, WIRE_ABSENT);
    wire_message_free(&out);
    free(text);
    /* the path is required */
    assert_int_equal(decode("{\"t\":\"load\",\"bytes\":3}", &out), WIRE_MALFORMED);
    assert_int_equal(decode("{\"t\":\"load\",\"path\":7}", &out), WIRE_MALFORMED);
}

/* Packets as other senders write them: members in any order, with spaces, optional
 * ones left out or of the wrong type (then absent), ids in kept that are no ids. */
static void test_decode_documented_packets(void **state)
{
    struct wire_message m;
    assert_int_equal(decode("{ \"path\": \"/a.pt\", \"t\": \"open\", \"id\": 2 }", &m), WIRE_OK);
    assert_int_equal(m.kind, WIRE_OPEN);
    assert_int_equal(m.open.id, 2);
    assert_int_equal(m.open.time_us, WIRE_ABSENT);
    wire_message_free(&m);

    assert_int_equal(decode("{\"t\":\"hello\",\"pid\":1,\"rank\":\"3\",\"sample\":\"x\"}", &m),
                     WIRE_OK);
    assert_int_equal(m.hello.rank, WIRE_ABSENT);
    assert_true(isnan(m.hello.sample));
    assert_null(m.hello.program);
    assert_int_equal(m.hello.key_count, 0);
    wire_message_free(&m);

    assert_int_equal(decode("{\"t\":\"data\",\"id\":5,\"bytes\":1e400,\"values\":[1]}", &m),
                     WIRE_OK);
    assert_int_equal(m.data.bytes, WIRE_ABSENT);
    assert_null(m.data.values); /* values are an object */
    wire_message_free(&m);

    assert_int_equal(decode("{\"t\":\"close\",\"id\":1,\"complete\":1}", &m), WIRE_OK);
    assert_false(m.close.complete); /* only true is true */
    assert_true(isnan(m.close.seconds));
    wire_message_free(&m);

    assert_int_equal(decode("{\"t\":\"exec\",\"kept\":[4,\"5\",6.5,null,-2]}", &m), WIRE_OK);
    assert_int_equal(m.exec.kept_count, 2);
    assert_int_equal(m.exec.kept[0], 4);
    assert_int_equal(m.exec.kept[1], -2);
    wire_message_free(&m);
}

/* A data message of plain members — what a torch.save sends per tensor — is read without
 * a tree; any other member, a member twice or a value of another kind leaves it to cJSON,
 * whose reading (the first of two members counts, trailing text is ignored) it keeps. */
static void test_plain_data_without_a_tree(void **state)
{
    cJSON *tensors = cJSON_Parse("[{\"name\":\"w\",\"dtype\":\"float32\",\"shape\":[4],"
                                 "\"mean\":0.1,\"head\":[1.5,-2]},{\"name\":\"b\",\"std\":3}]");
    struct wire_message m = {.kind = WIRE_DATA,
                             .seq = 12,
                             .data = {.id = 3,
                                      .bytes = 1 << 20,
                                      .writes = 17,
                                      .format = "torch",
                                      .tensors = tensors}},
                        out;
    char *text = round_trip(&m, &out);
    assert_null(out.tree);
    assert_int_equal(out.seq, 12);
    assert_same_data(&m.data, &out.data);
    assert_int_equal(out.data.texts->count, 2);
    assert_int_equal(out.data.texts->brief_count, 2);
    assert_true(out.data.texts->briefs[0].stat[BRIEF_MEAN] == 0.1);
    assert_true(out.data.texts->briefs[0].elements == 4);
    wire_message_free(&out);
    free(text);
    cJSON_Delete(tensors);

    /* Progress alone: no tensors read, none claimed. */
    assert_int_equal(decode("{\"t\":\"data\",\"id\":2,\"bytes\":10,\"seq\":1.5}", &out), WIRE_OK);
    assert_null(out.tree);
    assert_null(out.data.texts);
    assert_int_equal(out.seq, 1);
    assert_int_equal(out.data.bytes, 10);
    assert_int_equal(out.data.writes, WIRE_ABSENT);
    assert_null(out.data.format);
    wire_message_free(&out);

    assert_int_equal(decode("{\"t\":\"data\",\"id\":4,\"id\":5,\"seq\":-3}", &out), WIRE_OK);
    assert_int_equal(out.data.id, 4);
    assert_int_equal(out.seq, 0);
    wire_message_free(&out);
    assert_int_equal(decode("{\"t\":\"data\",\"id\":6,\"format\":7,\"reset\":true}", &out),
                     WIRE_OK);
    assert_null(out.data.format);
    assert_true(out.data.reset);
    wire_message_free(&out);
    assert_int_equal(decode("{\"t\":\"data\",\"id\":8,\"format\":\"n\\u0070y\"} and more", &out),
                     WIRE_OK);
    assert_int_equal(out.data.id, 8);
    assert_string_equal(out.data.format, "npy");
    wire_message_free(&out);
    /* Member names written with escapes are cJSON's to read, to the same message. */
    assert_int_equal(decode("{\"t\":\"data\",\"i\\u0064\":2,\"s\\u0065q\":4}", &out), WIRE_OK);
    assert_non_null(out.tree);
    assert_int_equal(out.data.id, 2);
    assert_int_equal(out.seq, 4);
    wire_message_free(&out);
    assert_int_equal(decode("{\"t\":\"data\",\"id\":\"9\",\"tensors\":[]}", &out), WIRE_MALFORMED);
    assert_int_equal(decode("{\"t\":\"data\",\"bytes\":1,\"tensors\":[]}", &out), WIRE_MALFORMED);
}

static void test_malformed_and_unknown(void **state)
{
    static const char *const malformed[] = {
        "",
        "{",
        "[1,2]",
        "{\"t\":7}",
        "{\"id\":1}",
        "{\"t\":\"open\",\"id\":\"x\",\"path\":\"/a\"}",
        "{\"t\":\"open\",\"id\":1}",
        "{\"t\":\"data\",\"id\":1e308}",
        "{\"t\":\"data\"}",
        "{\"t\":\"close\"}",
        "{\"t\":\"hello\",\"keys\":[1]}",
        "{\"t\":\"hello\",\"keys\":\"epoch\"}",
        "{\"t\":\"rename\",\"from\":\"/a\"}",
        "{\"t\":\"adopt\",\"to\":\"/a\"}",
        "{\"t\":\"exec\"}",
        "{\"t\":\"exec\",\"kept\":{}}",
    };
    struct wire_message m;
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        if (decode(malformed[i], &m) != WIRE_MALFORMED) fail_msg("accepted: %s", malformed[i]);
        assert_null(m.tree);
    }
    assert_int_equal(decode("{\"t\":\"nope\",\"id\":1}", &m), WIRE_UNKNOWN);
    assert_int_equal(decode("{\"t\":\"Open\",\"id\":1,\"path\":\"/a\"}", &m), WIRE_UNKNOWN);
}

/* Delivery: numbered messages, the session in the hello, and the collector's ack. */
static void test_numbers_and_acks(void **state)
{
    struct wire_message m = {.kind = WIRE_OPEN,
                             .seq = 41,
                             .open = {.id = 7, .path = "/abs/x.pt", .time_us = WIRE_ABSENT}},
                        out;
    char *text = round_trip(&m, &out);
    assert_string_equal(text, "{\"t\":\"open\",\"id\":7,\"path\":\"/abs/x.pt\",\"seq\":41}");
    assert_int_equal(out.seq, 41);
    wire_message_free(&out);
    free(text);

    m = (struct wire_message){.kind = WIRE_HELLO,
                              .hello = {.pid = 1,
                                        .session = "0123456789abcdef",
                                        .rank = WIRE_ABSENT,
                                        .local_rank = WIRE_ABSENT,
                                        .world_size = WIRE_ABSENT,
                                        .sample = NAN}};
    text = round_trip(&m, &out);
    assert_string_equal(text, "{\"t\":\"hello\",\"pid\":1,\"session\":\"0123456789abcdef\","
                              "\"keys\":[]}");
    assert_string_equal(out.hello.session, "0123456789abcdef");
    assert_int_equal(out.seq, 0);
    wire_message_free(&out);
    free(text);

    m = (struct wire_message){.kind = WIRE_ACK, .seq = 9000000000LL};
    text = round_trip(&m, &out);
    assert_string_equal(text, "{\"t\":\"ack\",\"seq\":9000000000}");
    assert_int_equal(out.seq, 9000000000LL);
    wire_message_free(&out);
    free(text);

    /* An ack must say how far; a number that is not one is no number. */
    assert_int_equal(decode("{\"t\":\"ack\"}", &out), WIRE_MALFORMED);
    assert_int_equal(decode("{\"t\":\"ack\",\"seq\":-3}", &out), WIRE_MALFORMED);
    assert_int_equal(decode("{\"t\":\"rename\",\"from\":\"/a\",\"to\":\"/b\",\"seq\":\"5\"}", &out),
                     WIRE_OK);
    assert_int_equal(out.seq, 0);
    wire_message_free(&out);
}

/* A message over the buffer's limit is refused whole, not cut. */
static void test_encode_refuses_oversized(void **state)
{
    char path[4096];
    memset(path, '"', sizeof path - 1); /* each byte escapes to two */
    path[sizeof path - 1] = '\0';
    struct wire_message m = {.kind = WIRE_OPEN, .open = {.id = 1, .path = path, .time_us = 0}};
    struct strbuf text = {.limit = 8000};
    assert_false(wire_encode(&m, &text));
    free(text.s);
    text = (struct strbuf){.limit = 9000};
    assert_true(wire_encode(&m, &text));
    assert_true(text.len > 8000);
    free(text.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_data),
        cmocka_unit_test(test_plain_data_without_a_tree),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_tensor_statistics_exact),
        cmocka_unit_test(test_close_says_what_was_lost),
        cmocka_unit_test(test_close_file_identity),
        cmocka_unit_test(test_verified),
        cmocka_unit_test(test_rename_and_adopt),
        cmocka_unit_test(test_exec_and_exec_failed),
        cmocka_unit_test(test_unmatched),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_decode_documented_packets),
        cmocka_unit_test(test_malformed_and_unknown),
        cmocka_unit_test(test_encode_refuses_oversized),
        cmocka_unit_test(test_numbers_and_acks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
