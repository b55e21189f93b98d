/* sink.c — what the sinks share: requests, response classes. */
#include "sink.h"

#include <stdlib.h>
#include <string.h>

#include "collector/metrics.h"

/* Bodies are built in memory; a batch is bounded long before this. */
#define BODY_LIMIT (256u << 20)

struct sink_request *sink_add_request(struct sink_output *out, const char *method, const char *url,
                                      const char *content_type, size_t first, size_t count)
{
    if (out->count == out->capacity) {
        size_t capacity = out->capacity ? out->capacity * 2 : 4;
        struct sink_request *grown = realloc(out->requests, capacity * sizeof *grown);
        if (!grown) return NULL;
        out->requests = grown;
        out->capacity = capacity;
    }
    char *copy = strdup(url);
    if (!copy) return NULL;
    struct sink_request *r = &out->requests[out->count++];
    *r = (struct sink_request){.method = method,
                               .url = copy,
                               .content_type = content_type,
                               .body = {.limit = BODY_LIMIT},
                               .first = first,
                               .count = count};
    return r;
}

void sink_output_free(struct sink_output *out)
{
    for (size_t i = 0; i < out->count; i++) {
        free(out->requests[i].url);
        free(out->requests[i].body.s);
        free(out->requests[i].ends);
    }
    free(out->requests);
    *out = (struct sink_output){0};
}

char *sink_join_url(const char *url, const char *suffix)
{
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        len--;
    char *out = malloc(len + strlen(suffix) + 1);
    if (!out) return NULL;
    memcpy(out, url, len);
    strcpy(out + len, suffix);
    return out;
}

enum sink_result sink_classify(long status)
{
    if (status >= 200 && status < 300) return SINK_OK;
    if (status == 0 || status == 408 || status == 429 || status >= 500) return SINK_RETRY;
    return SINK_ERROR;
}

bool sink_post_points(const char *target, const char *content_type, long long mul, long long div,
                      void (*add)(void *points, const struct sample *s),
                      const struct sink_batch *batch, struct sink_output *out)
{
    struct sink_request *r =
        target ? sink_add_request(out, "POST", target, content_type, 0, batch->count) : NULL;
    if (!r || !(r->ends = calloc(batch->count ? batch->count : 1, sizeof *r->ends))) return false;
    for (size_t i = 0; i < batch->count; i++) {
        struct record_labels labels;
        if (record_labels_get(batch->records[i], &labels)) {
            struct sink_points points = {&r->body, (long long)labels.time_us * mul / div,
                                         &out->skipped};
            metrics_for_record(batch->records[i], &labels, add, &points);
        }
        r->ends[i] = r->body.len;
    }
    return !r->body.overflow;
}
