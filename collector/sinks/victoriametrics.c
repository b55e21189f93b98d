/* victoriametrics.c — every checkpoint's samples, kept as history.
 *
 * /api/v1/import/prometheus takes the text exposition format with a millisecond
 * timestamp per sample: the time the checkpoint was closed. So unlike Pushgateway's
 * last value, every checkpoint stays queryable over time (learning rate per epoch).
 * VictoriaMetrics answers 204 even for lines it skipped, so the text must be right:
 * it is the same printer the Pushgateway sink uses. It stores +Inf and -Inf but drops
 * NaN without a word, so NaN samples are left out here and counted.
 */
#include <math.h>
#include <stdlib.h>

#include "collector/metrics.h"
#include "sink.h"

struct encoding {
    struct strbuf *body;
    int64_t ts_ms;
    unsigned long *skipped;
};

static void add_sample(void *ctx, const struct sample *s)
{
    struct encoding *e = ctx;
    if (isnan(s->value))
        (*e->skipped)++;
    else
        prom_add_sample(e->body, s, e->ts_ms);
}

static bool encode(const char *url, const struct sink_batch *batch, struct sink_output *out)
{
    char *target = sink_join_url(url, "/api/v1/import/prometheus");
    struct sink_request *r =
        target ? sink_add_request(out, "POST", target, "text/plain", 0, batch->count) : NULL;
    free(target);
    if (!r) return false;
    for (size_t i = 0; i < batch->count; i++) {
        struct record_labels labels;
        if (!record_labels_get(batch->records[i], &labels)) continue;
        struct encoding e = {&r->body, labels.time_us / 1000, &out->skipped};
        metrics_for_record(batch->records[i], &labels, add_sample, &e);
    }
    return !r->body.overflow;
}

const struct sink_type sink_victoriametrics = {
    .name = "victoriametrics", .gzip = true, .encode = encode};
