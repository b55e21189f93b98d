/* influx.c — InfluxDB 1.x line protocol, one point per sample.
 *
 * Measurement = metric name, labels = tags, the number = field `value`, timestamp =
 * the checkpoint's close time in nanoseconds. InfluxDB refuses a whole write (400)
 * for one NaN or Inf field, so such samples are left out and counted instead; an empty
 * tag value is not allowed either, so such a tag is left out.
 * The URL is the write endpoint, `http://HOST:8086/write?db=NAME`; a URL without a
 * path gets `/write?db=ckmon`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/metrics.h"
#include "sink.h"

/* Backslash before each character of specials (measurement: ", "; tags: ",= ").
 * A newline ends a point and has no escape, so it is written as the text \n. */
static void add_escaped(struct strbuf *b, const char *s, const char *specials)
{
    char stops[8] = "\n";
    strcat(stops, specials);
    for (const char *p = s;; p++) {
        size_t plain = strcspn(p, stops);
        sb_add(b, p, plain);
        p += plain;
        if (!*p) return;
        sb_add(b, "\\", 1);
        sb_add(b, *p == '\n' ? "n" : p, 1);
    }
}

static void add_point(void *ctx, const struct sample *s)
{
    struct sink_points *e = ctx;
    if (!isfinite(s->value)) {
        (*e->skipped)++;
        return;
    }
    add_escaped(e->body, s->metric, ", ");
    for (size_t i = 0; i < s->label_count; i++) {
        if (!*s->labels[i].value) continue;
        sb_add(e->body, ",", 1);
        add_escaped(e->body, s->labels[i].name, ",= ");
        sb_add(e->body, "=", 1);
        add_escaped(e->body, s->labels[i].value, ",= ");
    }
    sb_addz(e->body, " value=");
    prom_add_number(e->body, s->value);
    sb_addf(e->body, " %lld\n", e->timestamp);
}

/* The write endpoint: the URL itself when it has a path, else URL/write?db=ckmon. */
static char *write_url(const char *url)
{
    const char *host = strstr(url, "://") + 3;
    const char *path = host + strcspn(host, "/?");
    if (*path == '/' && path[1] != '\0' && path[1] != '?') return strdup(url);
    if (*path == '?') {
        char *out = malloc(strlen(url) + 8);
        if (out) sprintf(out, "%.*s/write%s", (int)(path - url), url, path);
        return out;
    }
    return sink_join_url(url, "/write?db=ckmon");
}

static bool encode(const char *url, const struct sink_batch *batch, struct sink_output *out)
{
    char *target = write_url(url);
    bool ok = sink_post_points(target, "text/plain; charset=utf-8", 1000, 1, add_point, batch, out);
    free(target);
    return ok;
}

const struct sink_type sink_influx = {.name = "influx", .gzip = true, .encode = encode};
