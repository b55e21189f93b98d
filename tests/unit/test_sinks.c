/* test_sinks.c — records in, request URLs and bodies out, for every sink
 * (collector/metrics.c and each sink in collector/sinks/), plus the response classes and gzip.
 *
 * The expected texts are written out by hand from the contract's metric names and the
 * formats' escaping rules, so any change in names, label order, escaping or number
 * formatting shows up as a differing string.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "collector/http.h"
#include "collector/metrics.h"
#include "collector/sinks/sink.h"

/* 2026-11-23T21:42:00.123456Z */
#define TIME_TEXT "2026-11-23T21:42:00.123456Z"
#define TIME_US   1795470120123456LL

/* One record line as the log holds it, with a job needing every escape. */
static const char record_line[] =
    "{\"schema\":1,\"event\":\"checkpoint\",\"time\":\"" TIME_TEXT "\",\"host\":\"node 1\","
    "\"pid\":7,\"program\":\"python3\",\"job\":\"a\\\"b\\\\c\\nd,e=f\",\"rank\":3,"
    "\"path\":\"/runs/epoch_12-step0400.pt\",\"format\":\"torch\",\"bytes\":1000,\"writes\":2,"
    "\"seconds\":0.5,\"complete\":true,"
    "\"values\":{\"lr\":0.001,\"ok\":true,\"name\":\"adam\",\"loss\":\"nan\",\"big\":\"-inf\"},"
    "\"tensors\":[{\"name\":\"w 0\",\"dtype\":\"float32\",\"shape\":[3],\"min\":null,"
    "\"max\":null,\"mean\":null,\"std\":null,\"nan\":3,\"inf\":0,\"sampled\":1.0,"
    "\"head\":[\"nan\",\"nan\",\"nan\"]}]}\n";

struct encoded {
    cJSON *record;
    struct sink_output out;
};

static void encode_line(const struct sink_type *type, const char *url, const char *line,
                        struct encoded *e)
{
    const char *lines[] = {line};
    size_t lens[] = {strlen(line)};
    e->record = cJSON_Parse(line);
    assert_non_null(e->record);
    cJSON *records[] = {e->record};
    struct sink_batch batch = {lines, lens, records, 1};
    e->out = (struct sink_output){0};
    assert_true(type->encode(url, &batch, &e->out));
}

static void encode_with(const struct sink_type *type, const char *url, struct encoded *e)
{
    encode_line(type, url, record_line, e);
}

static void encoded_free(struct encoded *e)
{
    sink_output_free(&e->out);
    cJSON_Delete(e->record);
}

static void test_file_label(void **state)
{
    char out[FILE_LABEL_SIZE];
    file_label("/runs/epoch_12.pt", out, sizeof out);
    assert_string_equal(out, "epoch_N.pt");
    file_label("ckpt-0001-of-12.safetensors", out, sizeof out);
    assert_string_equal(out, "ckpt-N-of-N.safetensors");
    file_label("/a/b/model.pt", out, sizeof out);
    assert_string_equal(out, "model.pt");
    file_label("/x/2024/12", out, sizeof out);
    assert_string_equal(out, "N");
}

static void test_labels(void **state)
{
    cJSON *r = cJSON_Parse(record_line);
    struct record_labels l;
    assert_true(record_labels_get(r, &l));
    assert_string_equal(l.job, "a\"b\\c\nd,e=f");
    assert_string_equal(l.host, "node 1");
    assert_string_equal(l.rank, "3");
    assert_string_equal(l.file, "epoch_N-stepN.pt");
    assert_int_equal(l.time_us, TIME_US);
    cJSON_DeleteItemFromObject(r, "time");
    assert_false(record_labels_get(r, &l));
    cJSON_Delete(r);
}

#define PROM_LABELS                                                                                \
    "job=\"a\\\"b\\\\c\\nd,e=f\",host=\"node 1\",rank=\"3\",file=\"epoch_N-stepN.pt\""

static void test_pushgateway(void **state)
{
    struct encoded e;
    encode_with(&sink_pushgateway, "http://pg:9091/", &e);
    assert_int_equal(e.out.count, 1);
    const struct sink_request *r = &e.out.requests[0];
    assert_string_equal(r->method, "PUT");
    /* base64url of the job and host; rank and file are plain path segments */
    assert_string_equal(r->url, "http://pg:9091/metrics/job@base64/YSJiXGMKZCxlPWY="
                                "/instance@base64/bm9kZSAx/rank/3/file/epoch_N-stepN.pt");
    assert_string_equal(r->body.s,
                        "# TYPE ckmon_value gauge\n"
                        "ckmon_value{" PROM_LABELS ",key=\"lr\"} 0.001\n"
                        "ckmon_value{" PROM_LABELS ",key=\"ok\"} 1\n"
                        "ckmon_value{" PROM_LABELS ",key=\"loss\"} NaN\n"
                        "ckmon_value{" PROM_LABELS ",key=\"big\"} -Inf\n"
                        "# TYPE ckmon_value_nonfinite gauge\n"
                        "ckmon_value_nonfinite{" PROM_LABELS ",key=\"loss\"} 1\n"
                        "ckmon_value_nonfinite{" PROM_LABELS ",key=\"big\"} 1\n"
                        "# TYPE ckmon_tensor gauge\n"
                        "ckmon_tensor{" PROM_LABELS ",tensor=\"w N\",stat=\"nan\"} 3\n"
                        "ckmon_tensor{" PROM_LABELS ",tensor=\"w N\",stat=\"inf\"} 0\n"
                        "# TYPE ckmon_checkpoint_bytes gauge\n"
                        "ckmon_checkpoint_bytes{" PROM_LABELS "} 1000\n"
                        "# TYPE ckmon_checkpoint_seconds gauge\n"
                        "ckmon_checkpoint_seconds{" PROM_LABELS "} 0.5\n"
                        "# TYPE ckmon_checkpoint_complete gauge\n"
                        "ckmon_checkpoint_complete{" PROM_LABELS "} 1\n"
                        "# TYPE ckmon_checkpoint_time_seconds gauge\n"
                        "ckmon_checkpoint_time_seconds{" PROM_LABELS "} 1795470120.123456\n"
                        "# TYPE ckmon_checkpoint_nonfinite gauge\n"
                        "ckmon_checkpoint_nonfinite{" PROM_LABELS "} 5\n"
                        "# TYPE ckmon_checkpoint_healthy gauge\n"
                        "ckmon_checkpoint_healthy{" PROM_LABELS "} 1\n");
    assert_int_equal(e.out.skipped, 0);
    encoded_free(&e);
}

/* A load record's one sample, the counter in its "total", in a group of its own beside its
 * file's (there it would replace the checkpoint's samples). */
static void test_pushgateway_load(void **state)
{
    static const char load_line[] =
        "{\"schema\":1,\"event\":\"load\",\"time\":\"" TIME_TEXT "\",\"host\":\"h\","
        "\"pid\":9,\"program\":\"python3\",\"job\":\"resume\",\"run\":\"r2\","
        "\"path\":\"/runs/epoch_12.pt\",\"bytes\":1000,\"written\":{\"time\":\"" TIME_TEXT
        "\",\"job\":\"train\",\"run\":\"r1\",\"host\":\"h\",\"pid\":7},"
        "\"unchanged\":true,\"total\":2}\n";
    struct encoded e;
    encode_line(&sink_pushgateway, "http://pg:9091/", load_line, &e);
    assert_int_equal(e.out.count, 1);
    const struct sink_request *r = &e.out.requests[0];
    assert_string_equal(r->url,
                        "http://pg:9091/metrics/job/resume/instance/h/file/epoch_N.pt/event/load");
    assert_string_equal(r->body.s, "# TYPE ckmon_loads_total counter\n"
                                   "ckmon_loads_total{job=\"resume\",host=\"h\",run=\"r2\","
                                   "file=\"epoch_N.pt\"} 2\n");
    encoded_free(&e);
}

static void test_victoriametrics(void **state)
{
    struct encoded e;
    encode_with(&sink_victoriametrics, "http://vm:8428", &e);
    assert_int_equal(e.out.count, 1);
    const struct sink_request *r = &e.out.requests[0];
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->url, "http://vm:8428/api/v1/import/prometheus");
    /* milliseconds of the close time; NaN is left out (VictoriaMetrics drops it) */
    assert_string_equal(
        r->body.s,
        "ckmon_value{" PROM_LABELS ",key=\"lr\"} 0.001 1795470120123\n"
        "ckmon_value{" PROM_LABELS ",key=\"ok\"} 1 1795470120123\n"
        "ckmon_value{" PROM_LABELS ",key=\"big\"} -Inf 1795470120123\n"
        "ckmon_value_nonfinite{" PROM_LABELS ",key=\"loss\"} 1 1795470120123\n"
        "ckmon_value_nonfinite{" PROM_LABELS ",key=\"big\"} 1 1795470120123\n"
        "ckmon_tensor{" PROM_LABELS ",tensor=\"w N\",stat=\"nan\"} 3 1795470120123\n"
        "ckmon_tensor{" PROM_LABELS ",tensor=\"w N\",stat=\"inf\"} 0 1795470120123\n"
        "ckmon_checkpoint_bytes{" PROM_LABELS "} 1000 1795470120123\n"
        "ckmon_checkpoint_seconds{" PROM_LABELS "} 0.5 1795470120123\n"
        "ckmon_checkpoint_complete{" PROM_LABELS "} 1 1795470120123\n"
        "ckmon_checkpoint_time_seconds{" PROM_LABELS "} 1795470120.123456 1795470120123\n"
        "ckmon_checkpoint_nonfinite{" PROM_LABELS "} 5 1795470120123\n"
        "ckmon_checkpoint_healthy{" PROM_LABELS "} 1 1795470120123\n");
    assert_int_equal(e.out.skipped, 1);
    encoded_free(&e);
}

#define INFLUX_TAGS "job=a\"b\\c\\nd\\,e\\=f,host=node\\ 1,rank=3,file=epoch_N-stepN.pt"
#define NS          " 1795470120123456000\n"

static void test_influx(void **state)
{
    struct encoded e;
    encode_with(&sink_influx, "http://db:8086/write?db=x", &e);
    assert_int_equal(e.out.count, 1);
    const struct sink_request *r = &e.out.requests[0];
    assert_string_equal(r->url, "http://db:8086/write?db=x");
    /* NaN and -Inf are left out and counted: InfluxDB refuses the whole write for one */
    assert_string_equal(
        r->body.s,
        "ckmon_value," INFLUX_TAGS ",key=lr value=0.001" NS "ckmon_value," INFLUX_TAGS
        ",key=ok value=1" NS "ckmon_value_nonfinite," INFLUX_TAGS ",key=loss value=1" NS
        "ckmon_value_nonfinite," INFLUX_TAGS ",key=big value=1" NS "ckmon_tensor," INFLUX_TAGS
        ",tensor=w\\ N,stat=nan value=3" NS "ckmon_tensor," INFLUX_TAGS
        ",tensor=w\\ N,stat=inf value=0" NS "ckmon_checkpoint_bytes," INFLUX_TAGS " value=1000" NS
        "ckmon_checkpoint_seconds," INFLUX_TAGS " value=0.5" NS
        "ckmon_checkpoint_complete," INFLUX_TAGS " value=1" NS
        "ckmon_checkpoint_time_seconds," INFLUX_TAGS " value=1795470120.123456" NS
        "ckmon_checkpoint_nonfinite," INFLUX_TAGS " value=5" NS
        "ckmon_checkpoint_healthy," INFLUX_TAGS " value=1" NS);
    assert_int_equal(e.out.skipped, 2);
    encoded_free(&e);

    encode_with(&sink_influx, "http://db:8086?db=y&precision=ns", &e);
    assert_string_equal(e.out.requests[0].url, "http://db:8086/write?db=y&precision=ns");
    encoded_free(&e);
    encode_with(&sink_influx, "http://db:8086/", &e);
    assert_string_equal(e.out.requests[0].url, "http://db:8086/write?db=ckmon");
    encoded_free(&e);
}

/* One protobuf field at *p (below end): its number, and for length-delimited fields
 * the bytes; other wire types (varint, fixed64) are stepped over. */
static unsigned pb_field(const unsigned char **p, const unsigned char *end, const char **data,
                         size_t *len)
{
    uint64_t key = 0, v = 0;
    for (int shift = 0; *p < end; shift += 7) {
        key |= (uint64_t)(**p & 0x7f) << shift;
        if (!(*(*p)++ & 0x80)) break;
    }
    *data = NULL;
    if ((key & 7) == 1) {
        *data = (const char *)*p;
        *len = 8;
        *p += 8;
    } else if ((key & 7) == 0 || (key & 7) == 2) {
        for (int shift = 0; *p < end; shift += 7) {
            v |= (uint64_t)(**p & 0x7f) << shift;
            if (!(*(*p)++ & 0x80)) break;
        }
        if ((key & 7) == 2) {
            *data = (const char *)*p;
            *len = (size_t)v;
            *p += v;
        } else {
            *len = (size_t)v; /* the varint itself */
        }
    }
    return (unsigned)(key >> 3);
}

/* The remote-write body: snappy, then a WriteRequest whose series have sorted labels
 * (__name__ first) and one sample at the close time in milliseconds. */
static void test_prometheus_remote_write(void **state)
{
    char err[256];
    assert_true(sink_prometheus.load(err, sizeof err));
    struct encoded e;
    encode_with(&sink_prometheus, "http://prom:9090", &e);
    assert_int_equal(e.out.count, 1);
    const struct sink_request *r = &e.out.requests[0];
    assert_string_equal(r->url, "http://prom:9090/api/v1/write");
    assert_string_equal(r->content_type, "application/x-protobuf");
    assert_string_equal(sink_prometheus.headers[0], "Content-Encoding: snappy");
    assert_false(sink_prometheus.gzip);

    void *lib = dlopen("libsnappy.so.1", RTLD_NOW);
    assert_non_null(lib);
    __typeof__(snappy_uncompressed_length) *length = dlsym(lib, "snappy_uncompressed_length");
    __typeof__(snappy_uncompress) *uncompress = dlsym(lib, "snappy_uncompress");
    size_t raw_len;
    assert_int_equal(length(r->body.s, r->body.len, &raw_len), SNAPPY_OK);
    char *raw = malloc(raw_len);
    assert_int_equal(uncompress(r->body.s, r->body.len, raw, &raw_len), SNAPPY_OK);

    const unsigned char *p = (const unsigned char *)raw, *end = p + raw_len;
    size_t series = 0;
    bool saw_nan_loss = false;
    while (p < end) {
        const char *ts;
        size_t ts_len;
        assert_int_equal(pb_field(&p, end, &ts, &ts_len), 1); /* TimeSeries */
        series++;
        const unsigned char *q = (const unsigned char *)ts, *ts_end = q + ts_len;
        char previous[64] = "", name[64] = "", key[64] = "";
        size_t samples = 0;
        double value = 0;
        while (q < ts_end) {
            const char *f;
            size_t f_len;
            unsigned number = pb_field(&q, ts_end, &f, &f_len);
            const unsigned char *g = (const unsigned char *)f, *g_end = g + f_len;
            if (number == 1) { /* Label: name, value */
                const char *n, *v;
                size_t n_len, v_len;
                assert_int_equal(pb_field(&g, g_end, &n, &n_len), 1);
                assert_int_equal(pb_field(&g, g_end, &v, &v_len), 2);
                char label[64];
                snprintf(label, sizeof label, "%.*s", (int)n_len, n);
                assert_true(strcmp(previous, label) < 0); /* sorted */
                strcpy(previous, label);
                if (!strcmp(label, "__name__")) snprintf(name, sizeof name, "%.*s", (int)v_len, v);
                if (!strcmp(label, "key")) snprintf(key, sizeof key, "%.*s", (int)v_len, v);
            } else { /* Sample: value, timestamp */
                assert_int_equal(number, 2);
                const char *v;
                size_t v_len, ms;
                assert_int_equal(pb_field(&g, g_end, &v, &v_len), 1);
                memcpy(&value, v, 8);
                assert_int_equal(pb_field(&g, g_end, &v, &ms), 2);
                assert_int_equal(ms, TIME_US / 1000);
                samples++;
            }
        }
        assert_int_equal(samples, 1);
        assert_string_not_equal(name, ""); /* every series has its name */
        if (!strcmp(name, "ckmon_value") && !strcmp(key, "loss")) saw_nan_loss = isnan(value);
    }
    /* values lr, ok, loss, big; two non-finite flags; tensor w N nan and inf; and the
     * checkpoint's bytes, seconds, complete, time, nonfinite, healthy */
    assert_int_equal(series, 14);
    assert_true(saw_nan_loss);
    free(raw);
    dlclose(lib);
    encoded_free(&e);
}

static void test_ndjson(void **state)
{
    struct encoded e;
    encode_with(&sink_ndjson, "http://logs:8080/in", &e);
    assert_int_equal(e.out.count, 1);
    assert_string_equal(e.out.requests[0].url, "http://logs:8080/in");
    assert_string_equal(e.out.requests[0].body.s, record_line);
    encoded_free(&e);
}

static void test_classify(void **state)
{
    assert_int_equal(sink_classify(200), SINK_OK);
    assert_int_equal(sink_classify(204), SINK_OK);
    assert_int_equal(sink_classify(0), SINK_RETRY);
    assert_int_equal(sink_classify(408), SINK_RETRY);
    assert_int_equal(sink_classify(429), SINK_RETRY);
    assert_int_equal(sink_classify(500), SINK_RETRY);
    assert_int_equal(sink_classify(503), SINK_RETRY);
    assert_int_equal(sink_classify(400), SINK_ERROR);
    assert_int_equal(sink_classify(404), SINK_ERROR);
    assert_int_equal(sink_classify(301), SINK_ERROR);
}

static void test_gzip(void **state)
{
    char text[5000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 7);
    struct strbuf packed = {.limit = 1};
    assert_true(http_gzip(text, sizeof text, &packed));
    assert_true(packed.len < sizeof text);
    assert_int_equal((unsigned char)packed.s[0], 0x1f); /* gzip magic */
    assert_int_equal((unsigned char)packed.s[1], 0x8b);
    char back[6000];
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)packed.s;
    z.avail_in = (uInt)packed.len;
    z.next_out = (Bytef *)back;
    z.avail_out = sizeof back;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, sizeof text);
    assert_memory_equal(back, text, sizeof text);
    inflateEnd(&z);
    free(packed.s);
}

/* Collects the exposition lines of a record's samples, without timestamps. */
static void add_line(void *ctx, const struct sample *s)
{
    prom_add_sample(ctx, s, -1);
}

static char *exposition(const char *line)
{
    cJSON *r = cJSON_Parse(line);
    struct record_labels l;
    struct strbuf b = {.limit = 1 << 20};
    assert_true(record_labels_get(r, &l));
    metrics_for_record(r, &l, add_line, &b);
    cJSON_Delete(r);
    return b.s;
}

#define BOUNDED_RECORD                                                                             \
    "{\"time\":\"" TIME_TEXT "\",\"host\":\"h\",\"job\":\"j\",\"run\":\"r7\","                     \
    "\"path\":\"/c/step_3.pt\",\"bytes\":1,\"seconds\":0,\"complete\":true,"                       \
    "\"values\":{\"log_history.0.loss\":2.5,\"log_history.1.loss\":1.5,"                           \
    "\"optimizer.param_groups.0.lr\":0.1,\"optimizer.param_groups.1.lr\":0.2,"                     \
    "\"optimizer.param_groups.0.params.3\":3,\"optimizer.state.0.step\":50},"                      \
    "\"tensors\":[{\"name\":\"layers.0.w\",\"min\":1,\"max\":1,\"mean\":1,\"std\":0,\"nan\":0,"    \
    "\"inf\":0},{\"name\":\"layers.1.w\",\"min\":2,\"max\":2,\"mean\":2,\"std\":0,\"nan\":0,"      \
    "\"inf\":1},{\"name\":\"optimizer.state.1.exp_avg\",\"min\":0,\"max\":0,\"mean\":0,"           \
    "\"std\":0,\"nan\":0,\"inf\":0}]}"
#define BL "job=\"j\",host=\"h\",run=\"r7\",file=\"step_N.pt\""

/* Digit runs become N in key and tensor labels, the last of a label wins, and the
 * default --metric-keys leaves out the optimizer's parameter ids and per-parameter state. */
static void test_bounded_labels(void **state)
{
    char out[64];
    name_label("optimizer.param_groups.12.lr", out, sizeof out);
    assert_string_equal(out, "optimizer.param_groups.N.lr");
    metric_keys_set(NULL, 0);
    char *text = exposition(BOUNDED_RECORD);
    assert_string_equal(text, "ckmon_value{" BL ",key=\"log_history.N.loss\"} 1.5\n"
                              "ckmon_value{" BL ",key=\"optimizer.param_groups.N.lr\"} 0.2\n"
                              "ckmon_tensor{" BL ",tensor=\"layers.N.w\",stat=\"min\"} 2\n"
                              "ckmon_tensor{" BL ",tensor=\"layers.N.w\",stat=\"max\"} 2\n"
                              "ckmon_tensor{" BL ",tensor=\"layers.N.w\",stat=\"mean\"} 2\n"
                              "ckmon_tensor{" BL ",tensor=\"layers.N.w\",stat=\"std\"} 0\n"
                              "ckmon_tensor{" BL ",tensor=\"layers.N.w\",stat=\"nan\"} 0\n"
                              "ckmon_tensor{" BL ",tensor=\"layers.N.w\",stat=\"inf\"} 1\n"
                              "ckmon_checkpoint_bytes{" BL "} 1\n"
                              "ckmon_checkpoint_seconds{" BL "} 0\n"
                              "ckmon_checkpoint_complete{" BL "} 1\n"
                              "ckmon_checkpoint_time_seconds{" BL "} 1795470120.123456\n"
                              "ckmon_checkpoint_nonfinite{" BL "} 1\n"
                              "ckmon_checkpoint_healthy{" BL "} 1\n");
    free(text);

    /* Chosen keys: by name or by label; '!' leaves out. */
    char *chosen[] = {"*.lr", "log_history.N.*", "!*param_groups.1.*"};
    metric_keys_set(chosen, 3);
    text = exposition(BOUNDED_RECORD);
    assert_non_null(strstr(text, "key=\"log_history.N.loss\"} 1.5\n"));
    assert_non_null(strstr(text, "key=\"optimizer.param_groups.N.lr\"} 0.1\n"));
    assert_null(strstr(text, "ckmon_tensor"));
    assert_null(strstr(text, "state"));
    free(text);
    metric_keys_set(NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_label),
        cmocka_unit_test(test_bounded_labels),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_pushgateway),
        cmocka_unit_test(test_pushgateway_load),
        cmocka_unit_test(test_victoriametrics),
        cmocka_unit_test(test_influx),
        cmocka_unit_test(test_ndjson),
        cmocka_unit_test(test_prometheus_remote_write),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_gzip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
