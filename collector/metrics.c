/* metrics.c — the samples of a record (CONTRACT.md "Metrics") and their exposition text.
 *
 * Non-finite scalars are strings in a record ("nan", "inf", "-inf"), so they are turned
 * back into numbers here; whether a sink can take them is the sink's business.
 */
#include "metrics.h"

#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/jsontext.h"
#include "health.h"

static const char *const tensor_stats[] = {"min", "max", "mean", "std", "nan", "inf"};

void name_label(const char *name, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = name; *p && n + 1 < size;) {
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

void file_label(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    name_label(slash ? slash + 1 : path, out, size);
}

/* ---- --metric-keys ---- */

static char *const default_keys[] = {METRIC_KEYS_DEFAULT};
static char *const *metric_keys = default_keys;
static size_t metric_key_count = sizeof default_keys / sizeof default_keys[0];

void metric_keys_set(char *const *patterns, size_t count)
{
    metric_keys = count ? patterns : default_keys;
    metric_key_count = count ? count : sizeof default_keys / sizeof default_keys[0];
}

bool metric_key_wanted(const char *name, const char *label)
{
    bool any_include = false, included = false;
    for (size_t i = 0; i < metric_key_count; i++) {
        const char *p = metric_keys[i];
        bool exclude = *p == '!';
        bool hit = !fnmatch(p + exclude, name, 0) || !fnmatch(p + exclude, label, 0);
        if (exclude && hit) return false;
        if (!exclude) any_include = true;
        if (!exclude && hit) included = true;
    }
    return included || !any_include;
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
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(record, "run");
    if (!cJSON_IsString(job) || !cJSON_IsString(host) || !cJSON_IsString(path) ||
        !cJSON_IsString(time) || !parse_time(time->valuestring, &l->time_us))
        return false;
    l->job = job->valuestring;
    l->host = host->valuestring;
    file_label(path->valuestring, l->file, sizeof l->file);
    l->run = cJSON_IsString(run) ? run->valuestring : NULL;
    l->rank = NULL;
    if (cJSON_IsNumber(rank)) {
        snprintf(l->rank_text, sizeof l->rank_text, "%.0f", rank->valuedouble);
        l->rank = l->rank_text;
    }
    return true;
}

void metrics_common_labels(struct sample *s, const struct record_labels *l)
{
    s->label_count = 0;
    s->labels[s->label_count++] = (struct label){"job", l->job};
    s->labels[s->label_count++] = (struct label){"host", l->host};
    if (l->run) s->labels[s->label_count++] = (struct label){"run", l->run};
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

/* The members of a family that become samples: wanted, and the last of each label. */
struct named {
    char *label;
    const cJSON *item;
    size_t order;
};

static int by_label_then_order(const void *a, const void *b)
{
    const struct named *x = a, *y = b;
    int c = strcmp(x->label, y->label);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static int by_order(const void *a, const void *b)
{
    const struct named *x = a, *y = b;
    return (x->order > y->order) - (x->order < y->order);
}

static void named_free(struct named *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i].label);
    free(list);
}

/* The wanted items of container (name_of gives each one's name, NULL: not a metric), one
 * per label, in the order of the last of each; *n is their number. NULL when there are
 * none or no memory (then there are no samples of the family either). */
static struct named *select_named(const cJSON *container, const char *(*name_of)(const cJSON *),
                                  size_t *n)
{
    const cJSON *item;
    size_t cap = (size_t)cJSON_GetArraySize(container);
    struct named *list = cap ? malloc(cap * sizeof *list) : NULL;
    *n = 0;
    if (!list) return NULL;
    size_t order = 0;
    cJSON_ArrayForEach(item, container)
    {
        const char *name = name_of(item);
        order++;
        if (!name) continue;
        size_t size = strlen(name) + 1;
        char *label = malloc(size);
        if (!label) {
            named_free(list, *n);
            *n = 0;
            return NULL;
        }
        name_label(name, label, size);
        if (!metric_key_wanted(name, label)) {
            free(label);
            continue;
        }
        list[(*n)++] = (struct named){label, item, order};
    }
    qsort(list, *n, sizeof *list, by_label_then_order);
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++) {
        if (i + 1 < *n && !strcmp(list[i].label, list[i + 1].label)) {
            free(list[i].label); /* a later one has the same label: it wins */
            continue;
        }
        list[kept++] = list[i];
    }
    *n = kept;
    qsort(list, *n, sizeof *list, by_order);
    return list;
}

static const char *value_name(const cJSON *item)
{
    double v;
    return item->string && scalar_number(item, &v) ? item->string : NULL;
}

static const char *tensor_name(const cJSON *tensor)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(tensor, "name");
    return cJSON_IsString(name) ? name->valuestring : NULL;
}

static void emit_values(const cJSON *record, const struct record_labels *l, sample_fn emit,
                        void *ctx)
{
    size_t n;
    struct named *list =
        select_named(cJSON_GetObjectItemCaseSensitive(record, "values"), value_name, &n);
    struct sample s = {.metric = "ckmon_value"};
    metrics_common_labels(&s, l);
    s.labels[s.label_count++] = (struct label){"key", NULL};
    size_t nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        scalar_number(list[i].item, &s.value);
        s.labels[s.label_count - 1].value = list[i].label;
        emit(ctx, &s);
        if (!isfinite(s.value)) nonfinite++;
    }
    s.metric = "ckmon_value_nonfinite"; /* a family of its own, after ckmon_value's */
    s.value = 1;
    for (size_t i = 0; i < n && nonfinite; i++) {
        double v;
        scalar_number(list[i].item, &v);
        if (isfinite(v)) continue;
        s.labels[s.label_count - 1].value = list[i].label;
        emit(ctx, &s);
    }
    named_free(list, n);
}

static void emit_tensors(const cJSON *record, const struct record_labels *l, sample_fn emit,
                         void *ctx)
{
    size_t n;
    struct named *list =
        select_named(cJSON_GetObjectItemCaseSensitive(record, "tensors"), tensor_name, &n);
    struct sample s = {.metric = "ckmon_tensor"};
    metrics_common_labels(&s, l);
    size_t name_at = s.label_count;
    s.label_count += 2;
    for (size_t t = 0; t < n; t++) {
        s.labels[name_at] = (struct label){"tensor", list[t].label};
        for (size_t i = 0; i < sizeof tensor_stats / sizeof tensor_stats[0]; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(list[t].item, tensor_stats[i]);
            if (!cJSON_IsNumber(v)) continue; /* null: no finite element */
            s.labels[name_at + 1] = (struct label){"stat", tensor_stats[i]};
            s.value = v->valuedouble;
            emit(ctx, &s);
        }
    }
    named_free(list, n);
}

/* NaN and infinite elements of every tensor plus non-finite values, wanted or not. */
static double nonfinite_count(const cJSON *record)
{
    const cJSON *item;
    double count = 0, v;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(record, "values"))
    {
        if (scalar_number(item, &v) && !isfinite(v)) count++;
    }
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(record, "tensors"))
    {
        const cJSON *nan = cJSON_GetObjectItemCaseSensitive(item, "nan");
        const cJSON *inf = cJSON_GetObjectItemCaseSensitive(item, "inf");
        if (cJSON_IsNumber(nan)) count += nan->valuedouble;
        if (cJSON_IsNumber(inf)) count += inf->valuedouble;
    }
    return count;
}

/* One sample per numeric member a table names, then the complete flag (1/0): the
 * samples a checkpoint and a set record have in common, under the labels in *s. */
struct member_metric {
    const char *metric, *member;
};

static void emit_members(const cJSON *record, const struct member_metric *numbers, size_t n,
                         const char *complete_metric, struct sample *s, sample_fn emit, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, numbers[i].member);
        if (!cJSON_IsNumber(v)) continue;
        s->metric = numbers[i].metric;
        s->value = v->valuedouble;
        emit(ctx, s);
    }
    s->metric = complete_metric;
    s->value = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(record, "complete")) ? 1 : 0;
    emit(ctx, s);
}

static void emit_checkpoint(const cJSON *record, const struct record_labels *l, sample_fn emit,
                            void *ctx)
{
    static const struct member_metric numbers[] = {{"ckmon_checkpoint_bytes", "bytes"},
                                                   {"ckmon_checkpoint_seconds", "seconds"}};
    struct sample s;
    metrics_common_labels(&s, l);
    emit_members(record, numbers, sizeof numbers / sizeof numbers[0], "ckmon_checkpoint_complete",
                 &s, emit, ctx);
    s.metric = "ckmon_checkpoint_time_seconds";
    s.value = (double)l->time_us / 1e6;
    emit(ctx, &s);
    s.metric = "ckmon_checkpoint_nonfinite";
    s.value = nonfinite_count(record);
    emit(ctx, &s);
    s.metric = "ckmon_checkpoint_healthy";
    s.value = record_healthy(record) ? 1 : 0;
    emit(ctx, &s);
}

/* A record that carries a running count (its "total"): one sample of metric, labelled
 * as its job's and by the record's string members named in `by`. */
static void emit_total(const cJSON *record, const struct record_labels *l, const char *metric,
                       const char *const *by, size_t by_count, sample_fn emit, void *ctx)
{
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(record, "total");
    if (!cJSON_IsNumber(total)) return;
    struct sample s = {.metric = metric, .value = total->valuedouble};
    s.labels[s.label_count++] = (struct label){"job", l->job};
    s.labels[s.label_count++] = (struct label){"host", l->host};
    if (l->run) s.labels[s.label_count++] = (struct label){"run", l->run};
    if (l->rank) s.labels[s.label_count++] = (struct label){"rank", l->rank};
    for (size_t i = 0; i < by_count; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, by[i]);
        if (!cJSON_IsString(v)) return;
        s.labels[s.label_count++] = (struct label){by[i], v->valuestring};
    }
    emit(ctx, &s);
}

/* An alert record: the running count of its rule. */
static void emit_alert(const cJSON *record, const struct record_labels *l, sample_fn emit,
                       void *ctx)
{
    static const char *const by[] = {"rule", "severity"};
    emit_total(record, l, "ckmon_alerts_total", by, 2, emit, ctx);
}

/* A set record (docs/sets.md): four samples labelled by its kind and its directory's
 * name, digits replaced as in the file label. */
static void emit_set(const cJSON *record, const struct record_labels *l, sample_fn emit, void *ctx)
{
    static const struct member_metric numbers[] = {{"ckmon_set_bytes", "bytes"},
                                                   {"ckmon_set_seconds", "seconds"},
                                                   {"ckmon_set_files", "files"}};
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(record, "kind");
    if (!cJSON_IsString(kind)) return;
    struct sample s = {0};
    s.labels[s.label_count++] = (struct label){"job", l->job};
    s.labels[s.label_count++] = (struct label){"host", l->host};
    if (l->run) s.labels[s.label_count++] = (struct label){"run", l->run};
    s.labels[s.label_count++] = (struct label){"kind", kind->valuestring};
    s.labels[s.label_count++] = (struct label){"set", l->file};
    emit_members(record, numbers, sizeof numbers / sizeof numbers[0], "ckmon_set_complete", &s,
                 emit, ctx);
}

/* A load record (docs/records.md, "Loads"): the running count of its series. */
static void emit_load(const cJSON *record, const struct record_labels *l, sample_fn emit, void *ctx)
{
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(record, "total");
    if (!cJSON_IsNumber(total)) return;
    struct sample s = {.metric = "ckmon_loads_total", .value = total->valuedouble};
    metrics_common_labels(&s, l);
    emit(ctx, &s);
}

static bool is_event(const cJSON *record, const char *name)
{
    const cJSON *event = cJSON_GetObjectItemCaseSensitive(record, "event");
    return cJSON_IsString(event) && !strcmp(event->valuestring, name);
}

bool record_is_load(const cJSON *record)
{
    return is_event(record, "load");
}

bool record_is_set(const cJSON *record)
{
    return is_event(record, "set");
}

bool record_is_alert(const cJSON *record)
{
    return is_event(record, "alert");
}

bool record_is_verify(const cJSON *record)
{
    return is_event(record, "verify");
}

void metrics_for_record(const cJSON *record, const struct record_labels *labels, sample_fn emit,
                        void *ctx)
{
    if (record_is_alert(record)) {
        emit_alert(record, labels, emit, ctx);
        return;
    }
    if (record_is_set(record)) {
        emit_set(record, labels, emit, ctx);
        return;
    }
    if (record_is_verify(record)) { /* the running count of its job's failures */
        emit_total(record, labels, "ckmon_verify_failures_total", NULL, 0, emit, ctx);
        return;
    }
    if (record_is_load(record)) {
        emit_load(record, labels, emit, ctx);
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

void prom_add_series(struct strbuf *b, const struct sample *s)
{
    sb_addz(b, s->metric);
    sb_addz(b, "{");
    for (size_t i = 0; i < s->label_count; i++) {
        sb_addf(b, "%s%s=\"", i ? "," : "", s->labels[i].name);
        add_label_value(b, s->labels[i].value);
        sb_addz(b, "\"");
    }
    sb_addz(b, "}");
}

void prom_add_sample(struct strbuf *b, const struct sample *s, int64_t ts_ms)
{
    prom_add_series(b, s);
    sb_addz(b, " ");
    prom_add_number(b, s->value);
    if (ts_ms >= 0) sb_addf(b, " %lld", (long long)ts_ms);
    sb_addz(b, "\n");
}

static const struct {
    const char *family, *type, *help;
} families[] = {
    {"ckmon_value", "gauge", "A numeric or bool scalar of a checkpoint's values (key)."},
    {"ckmon_value_nonfinite", "gauge", "1 when the value of key is NaN or infinite."},
    {"ckmon_tensor", "gauge", "A statistic (stat) of a tensor of a checkpoint."},
    {"ckmon_checkpoint_bytes", "gauge", "Size of the checkpoint file in bytes."},
    {"ckmon_checkpoint_seconds", "gauge", "Seconds from the file's open to its close."},
    {"ckmon_checkpoint_complete", "gauge", "1 when the checkpoint was written whole, else 0."},
    {"ckmon_checkpoint_time_seconds", "gauge", "When the checkpoint file was closed (Unix time)."},
    {"ckmon_checkpoint_nonfinite", "gauge",
     "NaN and infinite tensor elements plus non-finite values in the checkpoint."},
    {"ckmon_checkpoint_healthy", "gauge", "1 when no alert rule fired for the checkpoint."},
    {"ckmon_alerts_total", "counter", "Alerts fired, by rule and severity."},
    {"ckmon_set_complete", "gauge", "1 when the checkpoint set was committed whole."},
    {"ckmon_set_bytes", "gauge", "Bytes of all files of the checkpoint set."},
    {"ckmon_set_seconds", "gauge", "Seconds the checkpoint set took to write."},
    {"ckmon_set_files", "gauge", "Files in the checkpoint set."},
    {"ckmon_loads_total", "counter", "Checkpoint loads seen."},
    {"ckmon_verify_failures_total", "counter",
     "Files `ckmon verify` found not as their job wrote them (or unreadable), by job."},
    {"ckmon_records_total", "counter", "Records this collector wrote to its log, by event."},
    {"ckmon_log_write_failures_total", "counter", "Records this collector could not write."},
    {"ckmon_sink_delivered_total", "counter", "Records a sink acknowledged."},
    {"ckmon_sink_retried_total", "counter", "Requests to a sink that were tried again."},
    {"ckmon_sink_dead_lettered_total", "counter",
     "Records a sink refused for good, kept in its dead-letter file."},
    {"ckmon_sink_pending_records", "gauge",
     "Records this collector wrote that a sink has not acknowledged or dead-lettered yet."},
    {"ckmon_agent_messages_dropped_total", "counter",
     "Messages monitored programs lost while they could not reach the collector."},
    {"ckmon_agent_messages_malformed_total", "counter", "Agent messages the collector ignored."},
};

const char *metric_help(const char *family, const char **type)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (!strcmp(families[i].family, family)) {
            *type = families[i].type;
            return families[i].help;
        }
    *type = "gauge";
    return "A ckmon metric (docs/sinks.md).";
}

void prom_add_type(struct strbuf *b, const struct sample *s, const char **last)
{
    if (*last && !strcmp(*last, s->metric)) return;
    size_t len = strlen(s->metric);
    bool counter = len > 6 && !strcmp(s->metric + len - 6, "_total");
    sb_addf(b, "# TYPE %s %s\n", s->metric, counter ? "counter" : "gauge");
    *last = s->metric;
}
