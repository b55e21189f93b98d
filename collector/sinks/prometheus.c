/* prometheus.c — Prometheus remote write (protocol 1.0): protobuf, snappy-compressed.
 *
 * The body is a prometheus.WriteRequest, written here by hand: it is four small
 * messages (WriteRequest{repeated TimeSeries = 1}, TimeSeries{repeated Label = 1,
 * repeated Sample = 2}, Label{name = 1, value = 2}, Sample{double value = 1,
 * int64 timestamp = 2}), and a generated encoder would cost a build step and a
 * library for four length-prefixed loops. Receivers (Prometheus, Mimir, Thanos,
 * Cortex, VictoriaMetrics) want each series' labels sorted by name and its samples in
 * time order, so the batch's samples are sorted by series and time, and a series at one
 * timestamp twice keeps the last (later in the log wins). Compression is snappy's block
 * format (libsnappy's C API, loaded with dlopen when a prometheus sink is set up).
 *
 * The URL is the receiver's write endpoint, used as it is; a URL without a path gets
 * /api/v1/write (Prometheus with --web.enable-remote-write-receiver, VictoriaMetrics).
 */
#include <dlfcn.h>
#include <snappy-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/metrics.h"
#include "sink.h"

#define LIBSNAPPY "libsnappy.so.1"

static struct {
    __typeof__(snappy_compress) *compress;
    __typeof__(snappy_max_compressed_length) *max_compressed_length;
} snappy;

static bool load(char *err, size_t err_size)
{
    if (snappy.compress) return true;
    void *lib = dlopen(LIBSNAPPY, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, err_size, "cannot load %s (%s): install libsnappy1v5", LIBSNAPPY, dlerror());
        return false;
    }
    *(void **)&snappy.max_compressed_length = dlsym(lib, "snappy_max_compressed_length");
    *(void **)&snappy.compress =
        snappy.max_compressed_length ? dlsym(lib, "snappy_compress") : NULL;
    if (!snappy.compress) {
        snprintf(err, err_size, "%s lacks snappy_compress", LIBSNAPPY);
        dlclose(lib);
        return false;
    }
    return true;
}

/* ---- protobuf ---- */

static void add_varint(struct strbuf *b, uint64_t v)
{
    char out[10];
    size_t n = 0;
    do {
        out[n++] = (char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    sb_add(b, out, n);
}

/* A length-delimited field (wire type 2). */
static void add_bytes(struct strbuf *b, unsigned field, const char *data, size_t len)
{
    add_varint(b, field << 3 | 2);
    add_varint(b, len);
    sb_add(b, data, len);
}

static void add_label(struct strbuf *b, const char *name, const char *value)
{
    struct strbuf label = {.limit = 1u << 20};
    add_bytes(&label, 1, name, strlen(name));
    add_bytes(&label, 2, value, strlen(value));
    if (label.overflow)
        b->overflow = true;
    else
        add_bytes(b, 1, label.s, label.len);
    free(label.s);
}

/* ---- the batch's samples ---- */

struct point {
    char *labels; /* the series' Label fields, encoded: equal bytes, same series */
    size_t labels_len;
    int64_t ms;
    double value;
    size_t order; /* in the batch, for "the later one wins" */
};

struct points {
    struct point *items;
    size_t count, capacity;
    int64_t ms; /* of the record being added */
    bool failed;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

static void add_point(void *ctx, const struct sample *s)
{
    struct points *p = ctx;
    if (p->failed) return;
    struct label labels[METRIC_MAX_LABELS + 1];
    labels[0] = (struct label){"__name__", s->metric};
    memcpy(labels + 1, s->labels, s->label_count * sizeof *labels);
    qsort(labels, s->label_count + 1, sizeof *labels, by_name);
    struct strbuf encoded = {.limit = 1u << 20};
    for (size_t i = 0; i <= s->label_count; i++)
        if (*labels[i].value) add_label(&encoded, labels[i].name, labels[i].value);
    if (p->count == p->capacity) {
        size_t capacity = p->capacity ? p->capacity * 2 : 256;
        struct point *grown = realloc(p->items, capacity * sizeof *grown);
        if (!grown) encoded.overflow = true;
        if (grown) p->items = grown, p->capacity = capacity;
    }
    if (encoded.overflow || !encoded.s) {
        free(encoded.s);
        p->failed = true;
        return;
    }
    p->items[p->count] = (struct point){encoded.s, encoded.len, p->ms, s->value, p->count};
    p->count++;
}

static int by_series_then_time(const void *a, const void *b)
{
    const struct point *x = a, *y = b;
    size_t n = x->labels_len < y->labels_len ? x->labels_len : y->labels_len;
    int c = memcmp(x->labels, y->labels, n);
    if (c) return c;
    if (x->labels_len != y->labels_len) return x->labels_len < y->labels_len ? -1 : 1;
    if (x->ms != y->ms) return x->ms < y->ms ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

static bool same_series(const struct point *x, const struct point *y)
{
    return x->labels_len == y->labels_len && !memcmp(x->labels, y->labels, x->labels_len);
}

/* The WriteRequest of the sorted points. */
static void write_request(const struct points *p, struct strbuf *out)
{
    struct strbuf series = {.limit = out->limit};
    for (size_t i = 0; i < p->count;) {
        sb_truncate(&series, 0);
        sb_add(&series, p->items[i].labels, p->items[i].labels_len);
        size_t j = i;
        for (; j < p->count && same_series(&p->items[i], &p->items[j]); j++) {
            if (j + 1 < p->count && same_series(&p->items[j], &p->items[j + 1]) &&
                p->items[j].ms == p->items[j + 1].ms)
                continue; /* the later sample at this time wins */
            char sample[20];
            uint64_t bits;
            memcpy(&bits, &p->items[j].value, sizeof bits);
            sample[0] = 1 << 3 | 1; /* value: a 64-bit double, little-endian */
            for (int k = 0; k < 8; k++)
                sample[1 + k] = (char)(bits >> (8 * k));
            struct strbuf field = {.s = NULL, .limit = 32};
            sb_add(&field, sample, 9);
            add_varint(&field, 2 << 3 | 0); /* timestamp: a varint of milliseconds */
            add_varint(&field, (uint64_t)p->items[j].ms);
            add_bytes(&series, 2, field.s, field.len);
            free(field.s);
        }
        if (series.overflow) out->overflow = true;
        add_bytes(out, 1, series.s, series.len);
        i = j;
    }
    free(series.s);
}

static bool snappy_body(const struct strbuf *raw, struct strbuf *body)
{
    size_t len = snappy.max_compressed_length(raw->len);
    char *packed = malloc(len ? len : 1);
    bool ok = packed && snappy.compress(raw->s ? raw->s : "", raw->len, packed, &len) == SNAPPY_OK;
    if (ok) sb_add(body, packed, len);
    free(packed);
    return ok && !body->overflow;
}

/* The write endpoint: the URL when it has a path, else URL/api/v1/write. */
static char *write_url(const char *url)
{
    const char *host = strstr(url, "://") + 3;
    const char *path = host + strcspn(host, "/?");
    if (*path == '/' && path[1] != '\0' && path[1] != '?') return strdup(url);
    return sink_join_url(url, "/api/v1/write");
}

static bool encode(const char *url, const struct sink_batch *batch, struct sink_output *out)
{
    struct points p = {0};
    for (size_t i = 0; i < batch->count && !p.failed; i++) {
        struct record_labels labels;
        if (!record_labels_get(batch->records[i], &labels)) continue;
        p.ms = labels.time_us / 1000;
        metrics_for_record(batch->records[i], &labels, add_point, &p);
    }
    qsort(p.items, p.count, sizeof *p.items, by_series_then_time);
    struct strbuf raw = {.limit = 256u << 20};
    if (!p.failed) write_request(&p, &raw);
    char *target = write_url(url);
    struct sink_request *r =
        target && !p.failed && !raw.overflow
            ? sink_add_request(out, "POST", target, "application/x-protobuf", 0, batch->count)
            : NULL;
    bool ok = r && (p.count == 0 || snappy_body(&raw, &r->body));
    for (size_t i = 0; i < p.count; i++)
        free(p.items[i].labels);
    free(p.items);
    free(raw.s);
    free(target);
    return ok;
}

static const char *const headers[] = {"Content-Encoding: snappy",
                                      "X-Prometheus-Remote-Write-Version: 0.1.0", NULL};

const struct sink_type sink_prometheus = {
    .name = "prometheus", .gzip = false, .headers = headers, .load = load, .encode = encode};
