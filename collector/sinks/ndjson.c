/* ndjson.c — the records themselves, POSTed as newline-delimited JSON.
 *
 * The lines go out byte for byte as the log holds them, so whatever receives them
 * (Vector, Fluent Bit, Loki's push gateway, a script) sees exactly the log.
 */
#include "sink.h"

static bool encode(const char *url, const struct sink_batch *batch, struct sink_output *out)
{
    struct sink_request *r =
        sink_add_request(out, "POST", url, "application/x-ndjson", 0, batch->count);
    if (!r) return false;
    for (size_t i = 0; i < batch->count; i++)
        sb_add(&r->body, batch->lines[i], batch->line_lens[i]);
    return !r->body.overflow;
}

const struct sink_type sink_ndjson = {.name = "ndjson", .gzip = true, .encode = encode};
