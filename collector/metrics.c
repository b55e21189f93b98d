/* metrics.c — the samples of a record (CONTRACT.md "Metrics") and their exposition text.
 *
 * Non-finite scalars are strings in a record ("nan", "inf", "-inf"), so they are turned
 * back into numbers here; whether a sink can take them is the sink's business.
 */
#include "metrics.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alerts.h"
#include "core/jsontext.h"

static const char *const tensor_stats[] = {"min", "max", "mean", "std", "nan", "inf"};

void file_label(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    const char *p = slash ? slash + 1 : path;
    size_t n = 0;
    while (*p && n + 1 < size) {
        if (isdigit((unsigned char)*p)) {
            out[n++] = 'N';
            while (isdigit((unsigned char)*p))
                p++;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
}

/* "2026-11-23T21:42:00.123456Z" → microseconds since the epoch. */
static bool parse_time(const char *text, int64_t *out)
{
    struct tm tm = {0};
    int micros = 0, used = 0;
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%6dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &micros, &used) != 7 ||
        text[used] != '\0')
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = (int64_t)timegm(&tm) * 1000000 + micros;
    return true;
}

bool record_labels_get(const cJSON *record, struct record_labels *l)
{
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(record, "job");
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(record, "host");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(record, "path");
    const cJSON *time = cJSON_GetObjectItemCaseSensitive(record, "time");
    const cJSON *rank = cJSON_GetObjectItemCaseSensitive(record, "rank");
    if (!cJSON_IsString(job) || !cJSON_IsString(host) || !cJSON_IsString(path) ||
        !cJSON_IsString(time) || !parse_time(time->valuestring, &l->time_us))
        return false;
    l->job = job->valuestring;
    l->host = host->valuestring;
    file_label(path->valuestring, l->file, sizeof l->file);
    l->rank = NULL;
    if (cJSON_IsNumber(rank)) {
        snprintf(l->rank_text, sizeof l->rank_text, "%.0f", rank->valuedouble);
        l->rank = l->rank_text;
    }
    return true;
}

/* The labels every sample carries, in the order the contract lists them. */
static void common_labels(struct sample *s, const struct record_labels *l)
{
    s->label_count = 0;
    s->labels[s->label_count++] = (struct label){"job", l->job};
    s->labels[s->label_count++] = (struct label){"host", l->host};
    if (l->rank) s->labels[s->label_count++] = (struct label){"rank", l->rank};
    s->labels[s->label_count++] = (struct label){"file", l->file};
}

bool scalar_number(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v))
        *out = v->valuedouble;
    else if (cJSON_IsBool(v))
        *out = cJSON_IsTrue(v) ? 1 : 0;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "nan"))
        *out = NAN;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "inf"))
        *out = INFINITY;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "-inf"))
        *out = -INFINITY;
    else
        return false;
    return true;
}

static void emit_values(const cJSON *record, const struct record_labels *l, sample_fn emit,
                        void *ctx)
{
    const cJSON *item;
    struct sample s = {.metric = "ckmon_value"};
    common_labels(&s, l);
    s.labels[s.label_count++] = (struct label){"key", NULL};
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(record, "values"))
    {
        if (!item->string || !scalar_number(item, &s.value)) continue;
        s.labels[s.label_count - 1].value = item->string;
        emit(ctx, &s);
    }
}

static void emit_tensors(const cJSON *record, const struct record_labels *l, sample_fn emit,
                         void *ctx)
{
    const cJSON *tensor;
    struct sample s = {.metric = "ckmon_tensor"};
    common_labels(&s, l);
    size_t name_at = s.label_count;
    s.label_count += 2;
    cJSON_ArrayForEach(tensor, cJSON_GetObjectItemCaseSensitive(record, "tensors"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(tensor, "name");
        if (!cJSON_IsString(name)) continue;
        s.labels[name_at] = (struct label){"tensor", name->valuestring};
        for (size_t i = 0; i < sizeof tensor_stats / sizeof tensor_stats[0]; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(tensor, tensor_stats[i]);
            if (!cJSON_IsNumber(v)) continue; /* null: no finite element */
            s.labels[name_at + 1] = (struct label){"stat", tensor_stats[i]};
            s.value = v->valuedouble;
            emit(ctx, &s);
        }
    }
}

static void emit_checkpoint(const cJSON *record, const struct record_labels *l, sample_fn emit,
                            void *ctx)
{
    static const struct {
        const char *metric, *member;
    } numbers[] = {{"ckmon_checkpoint_bytes", "bytes"}, {"ckmon_checkpoint_seconds", "seconds"}};
    struct sample s;
    common_labels(&s, l);
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, numbers[i].member);
        if (!cJSON_IsNumber(v)) continue;
        s.metric = numbers[i].metric;
        s.value = v->valuedouble;
        emit(ctx, &s);
    }
    s.metric = "ckmon_checkpoint_complete";
    s.value = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(record, "complete")) ? 1 : 0;
    emit(ctx, &s);
    s.metric = "ckmon_checkpoint_time_seconds";
    s.value = (double)l->time_us / 1e6;
    emit(ctx, &s);
    s.metric = "ckmon_checkpoint_healthy";
    s.value = record_healthy(record) ? 1 : 0;
    emit(ctx, &s);
}

/* An alert record: the running count of its rule (the record's "total"). */
static void emit_alert(const cJSON *record, const struct record_labels *l, sample_fn emit,
                       void *ctx)
{
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(record, "rule");
    const cJSON *severity = cJSON_GetObjectItemCaseSensitive(record, "severity");
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(record, "total");
    if (!cJSON_IsString(rule) || !cJSON_IsString(severity) || !cJSON_IsNumber(total)) return;
    struct sample s = {.metric = "ckmon_alerts_total", .value = total->valuedouble};
    s.labels[s.label_count++] = (struct label){"job", l->job};
    s.labels[s.label_count++] = (struct label){"host", l->host};
    if (l->rank) s.labels[s.label_count++] = (struct label){"rank", l->rank};
    s.labels[s.label_count++] = (struct label){"rule", rule->valuestring};
    s.labels[s.label_count++] = (struct label){"severity", severity->valuestring};
    emit(ctx, &s);
}

bool record_is_alert(const cJSON *record)
{
    const cJSON *event = cJSON_GetObjectItemCaseSensitive(record, "event");
    return cJSON_IsString(event) && !strcmp(event->valuestring, "alert");
}

bool record_healthy(const cJSON *record)
{
    const cJSON *rule;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(record, "complete"))) return false;
    cJSON_ArrayForEach(rule,
                       cJSON_GetObjectItemCaseSensitive(
                           record, "alerts")) if (cJSON_IsString(rule) &&
                                                  rule_is_critical(rule->valuestring)) return false;
    return true;
}

void metrics_for_record(const cJSON *record, const struct record_labels *labels, sample_fn emit,
                        void *ctx)
{
    if (record_is_alert(record)) {
        emit_alert(record, labels, emit, ctx);
        return;
    }
    emit_values(record, labels, emit, ctx);
    emit_tensors(record, labels, emit, ctx);
    emit_checkpoint(record, labels, emit, ctx);
}

void prom_add_number(struct strbuf *b, double v)
{
    char text[32];
    if (isnan(v))
        sb_addz(b, "NaN");
    else if (isinf(v))
        sb_addz(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0) /* integers as integers */
        sb_addf(b, "%.0f", v);
    else
        sb_add(b, text, (size_t)json_shortest_double(v, text, sizeof text));
}

/* A label value between double quotes: backslash, quote and newline escaped. */
static void add_label_value(struct strbuf *b, const char *v)
{
    for (const char *p = v;; p++) {
        size_t plain = strcspn(p, "\\\"\n");
        sb_add(b, p, plain);
        p += plain;
        if (!*p) return;
        sb_addz(b, *p == '\n' ? "\\n" : *p == '"' ? "\\\"" : "\\\\");
    }
}

void prom_add_sample(struct strbuf *b, const struct sample *s, int64_t ts_ms)
{
    sb_addz(b, s->metric);
    sb_addz(b, "{");
    for (size_t i = 0; i < s->label_count; i++) {
        sb_addf(b, "%s%s=\"", i ? "," : "", s->labels[i].name);
        add_label_value(b, s->labels[i].value);
        sb_addz(b, "\"");
    }
    sb_addz(b, "} ");
    prom_add_number(b, s->value);
    if (ts_ms >= 0) sb_addf(b, " %lld", (long long)ts_ms);
    sb_addz(b, "\n");
}

void prom_add_type(struct strbuf *b, const struct sample *s, const char **last)
{
    if (*last && !strcmp(*last, s->metric)) return;
    size_t len = strlen(s->metric);
    bool counter = len > 6 && !strcmp(s->metric + len - 6, "_total");
    sb_addf(b, "# TYPE %s %s\n", s->metric, counter ? "counter" : "gauge");
    *last = s->metric;
}
