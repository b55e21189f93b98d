/* sink.h — the interface every remote sink implements: records in, HTTP requests out.
 *
 * A sink only encodes. Sending, retrying, dead-lettering and cursors are delivery.c's,
 * the same for every sink (as Fluent Bit separates its output plugins from its
 * scheduler), so a new sink is one file with one encode function. Whether a response
 * means done, try again or give up is decided once, by sink_classify().
 */
#ifndef CKMON_SINK_H
#define CKMON_SINK_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/strbuf.h"

struct sample;

/* Records read back from the log: the line as written and its parse. */
struct sink_batch {
    const char *const *lines; /* each ends in '\n' */
    const size_t *line_lens;
    cJSON *const *records;
    size_t count;
};

struct sink_request {
    const char *method; /* "POST" or "PUT" */
    char *url;          /* malloc'd */
    const char *content_type;
    struct strbuf body;
    size_t first, count; /* the records of the batch it carries, for dead letters */
    size_t *ends;        /* sink_post_points: where each record's text ends in body */
};

struct sink_output {
    struct sink_request *requests;
    size_t count, capacity;
    unsigned long skipped; /* samples the sink cannot take (InfluxDB: NaN, Inf; VM: NaN) */
};

struct sink_type {
    const char *name;
    bool gzip;                  /* whether the server takes Content-Encoding: gzip request bodies */
    const char *const *headers; /* more request headers ("Name: value", NULL-ended), or NULL */
    /* Loads what encode needs (a library), or NULL: called when the sink is set up, so
     * that a sink that cannot work stops the collector at start. False with a message. */
    bool (*load)(char *err, size_t err_size);
    /* Appends to out the requests that deliver the batch to the sink at url (as the
     * user gave it). Returns false when out of memory. */
    bool (*encode)(const char *url, const struct sink_batch *batch, struct sink_output *out);
    /* For a request refused for good: when the server stored some of it and names what
     * it refused (an InfluxDB partial write), sets refused[i] for each of the request's
     * records that it refused and returns true. NULL, or false: all of it was refused. */
    bool (*refused)(const struct sink_request *r, const char *response, bool *refused);
};

extern const struct sink_type sink_ndjson, sink_pushgateway, sink_victoriametrics, sink_influx,
    sink_prometheus;

/* The sink type called name, or NULL. */
const struct sink_type *sink_type_find(const char *name);

/* A new request at the end of out, with a malloc'd copy of url; NULL when out of memory. */
struct sink_request *sink_add_request(struct sink_output *out, const char *method, const char *url,
                                      const char *content_type, size_t first, size_t count);
void sink_output_free(struct sink_output *out);
/* url without its trailing slashes, followed by suffix; malloc'd, NULL when out of memory. */
char *sink_join_url(const char *url, const char *suffix);

/* What a time-series sink's sample printer gets for each sample (as its ctx). */
struct sink_points {
    struct strbuf *body;
    long long timestamp; /* the record's close time, in the sink's unit */
    unsigned long *skipped;
};

/* One POST to target carrying every record's samples, each handed to add with a
 * struct sink_points whose timestamp is the close time in microseconds * mul / div.
 * Returns false when out of memory. */
bool sink_post_points(const char *target, const char *content_type, long long mul, long long div,
                      void (*add)(void *points, const struct sample *s),
                      const struct sink_batch *batch, struct sink_output *out);

enum sink_result { SINK_OK, SINK_RETRY, SINK_ERROR };

/* 2xx is done; no answer at all, 408, 429 and 5xx are worth retrying; any other status
 * will not change by sending the same bytes again. */
enum sink_result sink_classify(long status);

#endif
