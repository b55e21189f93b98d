/* pushgateway.c — the latest checkpoint of each file, PUT as its own group.
 *
 * The grouping key is job, instance (the host), rank when the record has one, and file,
 * so a new epoch_N.pt replaces only its own series (PUT replaces the whole group).
 * A value that cannot be a plain path segment (empty, or anything beyond letters,
 * digits and "._-~") goes as `LABEL@base64/URL-SAFE-BASE64`, as Pushgateway reads it.
 * Pushgateway refuses samples with timestamps, so there are none: it keeps last values,
 * not history (use the victoriametrics sink for history).
 */
#include <stdlib.h>
#include <string.h>

#include "collector/metrics.h"
#include "sink.h"

static bool plain_segment(const char *v)
{
    if (!*v) return false;
    for (const char *p = v; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-~", *p))
            return false;
    return true;
}

static void add_base64url(struct strbuf *b, const char *v)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = (const unsigned char *)v;
    size_t n = strlen(v);
    if (n == 0) sb_add(b, "=", 1); /* Pushgateway's spelling of the empty value */
    for (size_t i = 0; i < n; i += 3) {
        unsigned long group = (unsigned long)p[i] << 16;
        if (i + 1 < n) group |= (unsigned long)p[i + 1] << 8;
        if (i + 2 < n) group |= p[i + 2];
        char out[4] = {digits[group >> 18 & 63], digits[group >> 12 & 63],
                       i + 1 < n ? digits[group >> 6 & 63] : '=',
                       i + 2 < n ? digits[group & 63] : '='};
        sb_add(b, out, 4);
    }
}

static void add_segment(struct strbuf *b, const char *label, const char *value)
{
    if (plain_segment(value)) {
        sb_addf(b, "/%s/%s", label, value);
        return;
    }
    sb_addf(b, "/%s@base64/", label);
    add_base64url(b, value);
}

struct encoding {
    struct strbuf *body;
    const char *last_family;
};

static void add_sample(void *ctx, const struct sample *s)
{
    struct encoding *e = ctx;
    prom_add_type(e->body, s, &e->last_family);
    prom_add_sample(e->body, s, -1);
}

/* One PUT per record, in order: a later checkpoint of the same file wins. */
static bool encode(const char *url, const struct sink_batch *batch, struct sink_output *out)
{
    for (size_t i = 0; i < batch->count; i++) {
        struct record_labels labels;
        if (!record_labels_get(batch->records[i], &labels)) continue;
        struct strbuf path = {.limit = 4096};
        sb_addz(&path, "/metrics");
        add_segment(&path, "job", labels.job);
        add_segment(&path, "instance", labels.host);
        if (labels.rank) add_segment(&path, "rank", labels.rank);
        /* An alert's counter has a group per rule: in its file's group, it would
         * replace that checkpoint's samples. */
        const cJSON *rule = cJSON_GetObjectItemCaseSensitive(batch->records[i], "rule");
        if (record_is_alert(batch->records[i]) && cJSON_IsString(rule))
            add_segment(&path, "rule", rule->valuestring);
        else if (record_is_verify(batch->records[i])) /* likewise its failures' counter */
            add_segment(&path, "verify", "failures");
        else
            add_segment(&path, "file", labels.file);
        /* A load's counter likewise, beside its file's group. */
        if (record_is_load(batch->records[i])) add_segment(&path, "event", "load");
        char *target = path.overflow ? NULL : sink_join_url(url, path.s);
        free(path.s);
        struct sink_request *r =
            target ? sink_add_request(out, "PUT", target, "text/plain; version=0.0.4", i, 1) : NULL;
        free(target);
        if (!r) return false;
        struct encoding e = {&r->body, NULL};
        metrics_for_record(batch->records[i], &labels, add_sample, &e);
        if (r->body.overflow) return false;
    }
    return true;
}

const struct sink_type sink_pushgateway = {.name = "pushgateway", .gzip = true, .encode = encode};
