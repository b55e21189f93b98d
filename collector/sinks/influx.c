/* influx.c — InfluxDB 1.x line protocol, one point per sample.
 *
 * Measurement = metric name, labels = tags, the number = field `value`, timestamp =
 * the checkpoint's close time in nanoseconds. InfluxDB refuses a whole write (400)
 * for one NaN or Inf field, so such samples are left out and counted instead; an empty
 * tag value is not allowed either, so such a tag is left out.
 * The URL is the write endpoint, `http://HOST:8086/write?db=NAME`; a URL without a
 * path gets `/write?db=ckmon`.
 *
 * A 400 "partial write" means InfluxDB stored every point but those it names, line by
 * line ("unable to parse '<line>': ..."); only the records those lines came from are
 * dead letters.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "collector/metrics.h"
#include "sink.h"

/* Backslash before each character of specials (measurement: ", "; tags: ",= "). A
 * newline ends a point and has no escape, so it is written as the text \n. A backslash
 * that ends the text would escape the space or comma after it (InfluxDB refuses the
 * line, and "\\" too), so it is written as the text \x5c of docs/records.md (names
 * that are not UTF-8), which reads back as a backslash. */
static void add_escaped(struct strbuf *b, const char *s, const char *specials)
{
    char stops[8] = "\n\\";
    strcat(stops, specials);
    for (const char *p = s;; p++) {
        size_t plain = strcspn(p, stops);
        sb_add(b, p, plain);
        p += plain;
        if (!*p) return;
        if (*p == '\n')
            sb_addz(b, "\\n");
        else if (*p == '\\')
            sb_addz(b, p[1] ? "\\" : "\\x5c");
        else {
            sb_add(b, "\\", 1);
            sb_add(b, p, 1);
        }
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

/* The record whose text holds line (of len bytes), a whole line of r's body; false if
 * none does. */
static bool record_of_line(const struct sink_request *r, const char *line, size_t len,
                           size_t *index)
{
    const char *body = r->body.s, *end = body + r->body.len;
    for (const char *p = body; p && (size_t)(end - p) > len;) {
        const char *at = memmem(p, (size_t)(end - p), line, len);
        if (!at) return false;
        if ((at == body || at[-1] == '\n') && at + len < end && at[len] == '\n') {
            size_t offset = (size_t)(at - body);
            for (size_t i = 0; i < r->count; i++)
                if (offset < r->ends[i]) {
                    *index = i;
                    return true;
                }
            return false;
        }
        p = at + 1;
    }
    return false;
}

static bool refused(const struct sink_request *r, const char *response, bool *out)
{
    static const char opening[] = "unable to parse '", closing[] = "': ";
    cJSON *answer = cJSON_Parse(response);
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(answer, "error");
    const char *text = cJSON_IsString(error) ? error->valuestring : "";
    bool named = false, all_found = true;
    if (r->ends && !strncmp(text, "partial write:", 14))
        for (const char *p = strstr(text, opening); p && all_found; p = strstr(p, opening)) {
            p += sizeof opening - 1;
            const char *stop = strstr(p, closing);
            size_t index;
            /* A line not found (the answer cut short) might be any record's: then all
             * count as refused, rather than one counted as stored that was not. */
            all_found = stop && record_of_line(r, p, (size_t)(stop - p), &index);
            if (all_found) named = out[index] = true;
            p = stop;
        }
    cJSON_Delete(answer);
    return named && all_found;
}

const struct sink_type sink_influx = {
    .name = "influx", .gzip = true, .encode = encode, .refused = refused};
