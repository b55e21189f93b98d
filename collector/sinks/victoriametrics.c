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

static void add_sample(void *ctx, const struct sample *s)
{
    struct sink_points *e = ctx;
    if (isnan(s->value))
        (*e->skipped)++;
    else
        prom_add_sample(e->body, s, e->timestamp);
}

static bool encode(const char *url, const struct sink_batch *batch, struct sink_output *out)
{
    char *target = sink_join_url(url, "/api/v1/import/prometheus");
    bool ok = sink_post_points(target, "text/plain", 1, 1000, add_sample, batch, out);
    free(target);
    return ok;
}

const struct sink_type sink_victoriametrics = {
    .name = "victoriametrics", .gzip = true, .encode = encode};
