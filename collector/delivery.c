/* delivery.c — one thread per sink, reading the log from its cursor (see delivery.h).
 *
 * A thread's life: read up to a batch of whole lines from where the cursor points,
 * encode them, send each request until it is acknowledged (2xx), refused for good
 * (other 4xx: dead letter) or the collector stops; then move the cursor past the
 * batch, in a file written whole (temporary file, fsync, rename). Retries wait with
 * exponential backoff and full jitter, or as long as Retry-After says.
 */
#include "delivery.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/jsontext.h"
#include "http.h"
#include "record.h"
#include "segments.h"
#include "sinks/sink.h"
#include "state.h"

#define BATCH_RECORDS        500
#define BATCH_BYTES          (1u << 20)
#define LINGER_SECONDS       0.2  /* a batch that is not full waits this long for more */
#define POLL_SECONDS         1.0  /* also look at the log this often (other writers) */
#define HTTP_TIMEOUT         10.0 /* per request */
#define BACKOFF_BASE         0.5
#define BACKOFF_CAP          30.0
#define RETRY_AFTER_CAP      600.0
#define SPOOL_MAX_BYTES      (64ull << 20)
#define LINE_LIMIT           (256u << 20) /* a longer line cannot be a record */
#define DEAD_LETTER_RESPONSE 4096         /* of the sink's answer, in a dead letter */

struct sink_state {
    struct delivery *d;
    const struct sink_type *type;
    char *spec; /* FORMAT=URL, for messages */
    char *url;
    char *id;                      /* FORMAT-HASH: the stem of its files in the state dir */
    char *cursor_name, *dead_name; /* its files in the state dir */
    pthread_t thread;
    bool started, failing;
    unsigned long long random;
    /* where the cursor is: a file of the source, by identity, and an offset in it */
    int fd;
    struct cursor at;
    unsigned long seq;
    char *buf; /* bytes read from offset on, not yet delivered */
    size_t buf_len, buf_cap;
    struct http_client *http;
    struct sink_counts counts; /* under d->lock */
};

struct delivery {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    unsigned long generation; /* lines written so far, to tell a wake-up from a timeout */
    unsigned long log_written, log_failed; /* the log's counters, copied under the lock */
    bool stopping;
    double deadline; /* monotonic seconds, once stopping */
    struct state state;
    char *source; /* the file the sinks read: the log, or the spool */
    struct log_writer *log;
    struct log_writer spool;
    bool has_spool;
    struct sink_state *sinks;
    size_t count;
    pthread_mutex_t stats_lock; /* one writer of stats.json at a time */
    double stats_at;            /* when it was last written */
};

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* url for messages, stats.json and dead letters, with a password in it (libcurl sends
 * http://user:password@host/ as basic authentication) shown as "***"; malloc'd. */
static char *redact_url(const char *url)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *at = memchr(host, '@', strcspn(host, "/?#"));
    const char *colon = at ? memchr(host, ':', (size_t)(at - host)) : NULL;
    char *out = NULL;
    int rc = colon ? asprintf(&out, "%.*s***%s", (int)(colon + 1 - url), url, at)
                   : asprintf(&out, "%s", url);
    return rc < 0 ? NULL : out;
}

/* ---- the cursor ---- */

static bool save_cursor(struct sink_state *s)
{
    if (state_save_cursor(&s->d->state, s->cursor_name, &s->at)) return true;
    fprintf(stderr, "ckmon: sink %s: cannot save its cursor %s/%s: %s\n", s->spec, s->d->state.dir,
            s->cursor_name, strerror(errno));
    return false;
}

/* Opens segment seq of the source at offset; false when it cannot be opened. */
static bool open_segment(struct sink_state *s, unsigned long seq, off_t offset)
{
    char *path = segment_path(s->d->source, seq);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    struct stat st;
    free(path);
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0) close(fd);
        return false;
    }
    pthread_mutex_lock(&s->d->lock); /* still_needed() reads where the sink is */
    if (s->fd >= 0) close(s->fd);
    s->fd = fd;
    s->at = (struct cursor){.dev = st.st_dev, .ino = st.st_ino, .offset = offset};
    s->seq = seq;
    s->buf_len = 0;
    pthread_mutex_unlock(&s->d->lock);
    return true;
}

/* Where the saved cursor points; a new sink starts at the end of the active file. */
static bool load_cursor(struct sink_state *s, char *err, size_t err_size)
{
    struct cursor saved;
    bool exists;
    unsigned long seq;
    bool loaded = state_load_cursor(&s->d->state, s->cursor_name, &saved, &exists);
    if (!exists) {
        struct stat st;
        bool ok = stat(s->d->source, &st) == 0 && open_segment(s, SEGMENT_ACTIVE, st.st_size) &&
                  save_cursor(s);
        if (!ok)
            snprintf(err, err_size, "sink %s: cannot start its cursor %s/%s", s->spec,
                     s->d->state.dir, s->cursor_name);
        return ok;
    }
    if (loaded && segment_find(s->d->source, saved.dev, saved.ino, &seq))
        return open_segment(s, seq, saved.offset);
    /* The file it pointed at is gone (removed by hand): start at the oldest there is. */
    struct segment_list l;
    segment_list(s->d->source, &l);
    seq = l.count ? l.seqs[0] : SEGMENT_ACTIVE;
    segment_list_free(&l);
    fprintf(stderr,
            "ckmon: sink %s: the file its cursor named is gone; delivering %s from "
            "its start\n",
            s->spec, seq == SEGMENT_ACTIVE ? "the log" : "the oldest segment");
    if (open_segment(s, seq, 0) && save_cursor(s)) return true;
    snprintf(err, err_size, "sink %s: cannot open %s", s->spec, s->d->source);
    return false;
}

/* ---- reading whole lines ---- */

/* Reads what follows the buffer into its free space; the buffer grows (up to a line's
 * limit) only when it holds no whole line. Returns the number of bytes read. */
static size_t fill(struct sink_state *s)
{
    size_t want = s->buf_cap ? s->buf_cap : BATCH_BYTES;
    if (s->buf_len == s->buf_cap && s->buf_cap && !memchr(s->buf, '\n', s->buf_len))
        want = s->buf_cap * 2 > LINE_LIMIT ? LINE_LIMIT : s->buf_cap * 2;
    if (want > s->buf_cap) {
        char *grown = realloc(s->buf, want);
        if (!grown) return 0;
        s->buf = grown;
        s->buf_cap = want;
    }
    size_t total = 0;
    while (s->buf_len < s->buf_cap) {
        ssize_t n = pread(s->fd, s->buf + s->buf_len, s->buf_cap - s->buf_len,
                          s->at.offset + (off_t)s->buf_len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        s->buf_len += (size_t)n;
        total += (size_t)n;
    }
    return total;
}

/* The length of the whole lines at the start of the buffer, up to a batch. */
static size_t whole_lines(const struct sink_state *s, size_t *lines)
{
    size_t end = 0;
    *lines = 0;
    for (const char *p = s->buf, *limit = s->buf + s->buf_len; *lines < BATCH_RECORDS;) {
        const char *nl = memchr(p, '\n', (size_t)(limit - p));
        if (!nl || (*lines > 0 && (size_t)(nl + 1 - s->buf) > BATCH_BYTES)) break;
        p = nl + 1;
        end = (size_t)(p - s->buf);
        (*lines)++;
    }
    return end;
}

static void consume(struct sink_state *s, size_t bytes)
{
    memmove(s->buf, s->buf + bytes, s->buf_len - bytes);
    s->buf_len -= bytes;
    s->at.offset += (off_t)bytes;
}

static void count(struct sink_state *s, unsigned long *counter, unsigned long n)
{
    pthread_mutex_lock(&s->d->lock);
    *counter += n;
    pthread_mutex_unlock(&s->d->lock);
}

/* At the end of the file the cursor is in: moves on to the next one when there is a
 * next one. Returns true when it moved. */
static bool move_on(struct sink_state *s)
{
    unsigned long seq = s->seq;
    if (seq == SEGMENT_ACTIVE) {
        struct stat st;
        if (stat(s->d->source, &st) < 0) return false;
        if (st.st_dev == s->at.dev && st.st_ino == s->at.ino) {
            if (st.st_size >= s->at.offset + (off_t)s->buf_len) return false;
            /* Shorter than what was read: someone truncated it. Start it again. */
            fprintf(stderr, "ckmon: sink %s: %s was truncated; delivering it from its start\n",
                    s->spec, s->d->source);
            return open_segment(s, SEGMENT_ACTIVE, 0) && save_cursor(s);
        }
        /* Rotated: lines written before the rename may have arrived since the last read. */
        if (fill(s) > 0) return true;
        if (!segment_find(s->d->source, s->at.dev, s->at.ino, &seq)) seq = SEGMENT_ACTIVE;
    }
    unsigned long next = segment_next(s->d->source, seq);
    if (s->buf_len > 0) /* a torn last line: no writer will finish it */
        count(s, &s->counts.dropped, 1);
    return open_segment(s, next, 0) && save_cursor(s);
}

static void write_stats(struct delivery *d, bool now);

/* ---- sending ---- */

/* Waits until woken, stopping, or seconds pass; returns false if the deadline passed. */
static bool pause_for(struct sink_state *s, double seconds, bool until_woken)
{
    struct delivery *d = s->d;
    pthread_mutex_lock(&d->lock);
    unsigned long generation = d->generation;
    double until = monotonic() + seconds;
    for (;;) {
        if (d->stopping && until > d->deadline) until = d->deadline;
        double left = until - monotonic();
        if (left <= 0 || (until_woken && (d->generation != generation || d->stopping))) break;
        struct timespec ts; /* the condition waits on CLOCK_MONOTONIC: see delivery_open */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double at = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + left;
        ts.tv_sec = (time_t)at;
        ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&d->wake, &d->lock, &ts);
    }
    bool alive = !d->stopping || monotonic() < d->deadline;
    pthread_mutex_unlock(&d->lock);
    return alive;
}

/* A uniformly random wait in [0, min(cap, base * 2^attempt)) ("full jitter"). */
static double backoff(struct sink_state *s, unsigned attempt)
{
    s->random ^= s->random << 13;
    s->random ^= s->random >> 7;
    s->random ^= s->random << 17;
    double ceiling = BACKOFF_BASE * pow(2, attempt > 16 ? 16 : attempt);
    if (ceiling > BACKOFF_CAP) ceiling = BACKOFF_CAP;
    return ceiling * (double)(s->random >> 11) / 9007199254740992.0;
}

/* Whether the refused records are now in the dead-letter file: if not, the request is
 * retried like an outage, so the cursor never passes records kept nowhere. Only the
 * records the sink says it refused, when it says (a partial write); *dead counts them. */
static bool dead_letter(struct sink_state *s, const struct sink_request *r,
                        const struct sink_batch *batch, const struct http_result *res, size_t *dead)
{
    bool *refused = calloc(r->count ? r->count : 1, sizeof *refused);
    bool some = refused && s->type->refused && res->response.s &&
                s->type->refused(r, res->response.s, refused);
    char time_text[RFC3339_SIZE];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    format_rfc3339((int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000, time_text, sizeof time_text);
    cJSON *o = cJSON_CreateObject(), *records = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "time", time_text);
    cJSON_AddStringToObject(o, "sink", s->spec);
    cJSON_AddStringToObject(o, "method", r->method);
    char *url = redact_url(r->url);
    cJSON_AddStringToObject(o, "url", url ? url : "");
    cJSON_AddNumberToObject(o, "status", (double)res->status);
    char *response = strndup(res->response.s ? res->response.s : "", DEAD_LETTER_RESPONSE);
    cJSON_AddStringToObject(o, "response", response ? response : "");
    free(response);
    *dead = 0;
    for (size_t i = 0; i < r->count; i++)
        if (!some || refused[i]) {
            cJSON_AddItemToArray(records, cJSON_Duplicate(batch->records[r->first + i], true));
            (*dead)++;
        }
    free(refused);
    cJSON_AddItemToObject(o, "records", records);
    /* The records are the log's text already: their \xHH escapes stay as they are. */
    char *text = json_print_text(o), *line = NULL;
    cJSON_Delete(o);
    bool ok = text && asprintf(&line, "%s\n", text) >= 0 &&
              state_append(&s->d->state, s->dead_name, line, strlen(line));
    free(line);
    free(text);
    fprintf(stderr, "ckmon: sink %s: %s %s answered %ld; %zu record(s)%s %s\n", s->spec, r->method,
            url ? url : "", res->status, *dead, some ? " it named" : "",
            ok ? "written to the dead-letter file" : "kept: cannot write the dead-letter file");
    free(url);
    if (ok) count(s, &s->counts.dead_lettered, *dead);
    return ok;
}

enum outcome { DELIVERED, DEAD_LETTERED, STOPPED };

/* Sends one request until acknowledged or refused for good, or until the collector
 * stopped and its deadline passed. */
static enum outcome send_request(struct sink_state *s, const struct sink_request *r,
                                 const struct sink_batch *batch, struct http_result *res,
                                 size_t *dead)
{
    for (unsigned attempt = 0;; attempt++) {
        double timeout = HTTP_TIMEOUT;
        pthread_mutex_lock(&s->d->lock);
        if (s->d->stopping && s->d->deadline - monotonic() < timeout)
            timeout = s->d->deadline - monotonic();
        pthread_mutex_unlock(&s->d->lock);
        if (timeout <= 0) return STOPPED;
        http_send(s->http, r->method, r->url, r->content_type, s->type->headers, r->body.s,
                  r->body.len, s->type->gzip, timeout, res);
        enum sink_result result = sink_classify(res->status);
        if (result == SINK_OK) {
            if (s->failing) fprintf(stderr, "ckmon: sink %s: delivering again\n", s->spec);
            s->failing = false;
            return DELIVERED;
        }
        if (result == SINK_ERROR) {
            if (dead_letter(s, r, batch, res, dead)) return DEAD_LETTERED;
        } else if (!s->failing && res->status)
            fprintf(stderr, "ckmon: sink %s: %s answered %ld; retrying\n", s->spec, r->method,
                    res->status);
        else if (!s->failing)
            fprintf(stderr, "ckmon: sink %s: %s; retrying\n", s->spec, res->error);
        s->failing = true;
        count(s, &s->counts.retried, 1);
        write_stats(s->d, false); /* an outage shows in stats.json while it lasts */
        double wait =
            res->retry_after > 0 ? fmin(res->retry_after, RETRY_AFTER_CAP) : backoff(s, attempt);
        if (!pause_for(s, wait, false)) return STOPPED;
    }
}

static void batch_free(struct sink_batch *batch, struct sink_output *out, struct http_result *res)
{
    free(res->response.s);
    sink_output_free(out);
    for (size_t i = 0; i < batch->count; i++)
        cJSON_Delete(batch->records[i]);
    free((void *)batch->lines);
    free((void *)batch->line_lens);
    free((void *)batch->records);
}

/* Delivers the first `lines` lines of the buffer (bytes long); false if stopped first. */
static bool deliver(struct sink_state *s, size_t lines, size_t bytes)
{
    const char **texts = calloc(lines, sizeof *texts);
    size_t *lens = calloc(lines, sizeof *lens);
    cJSON **records = calloc(lines, sizeof *records);
    struct sink_batch batch = {texts, lens, records, 0};
    struct sink_output out = {0};
    struct http_result res = {0};
    bool ok = texts && lens && records;
    for (const char *p = s->buf, *end = s->buf + bytes; ok && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        cJSON *record = json_parse_record_line(p, (size_t)(nl - p));
        if (cJSON_IsObject(record)) {
            texts[batch.count] = p;
            lens[batch.count] = (size_t)(nl + 1 - p);
            records[batch.count++] = record;
        } else {
            cJSON_Delete(record);
            count(s, &s->counts.dropped, 1);
        }
        p = nl + 1;
    }
    ok = ok && s->type->encode(s->url, &batch, &out);
    if (!ok) { /* out of memory: the batch stays where it is, for a later try */
        fprintf(stderr, "ckmon: sink %s: out of memory encoding a batch\n", s->spec);
        bool alive = pause_for(s, BACKOFF_CAP, false);
        batch_free(&batch, &out, &res);
        return alive;
    }
    count(s, &s->counts.skipped, out.skipped);
    size_t dead = 0;
    for (size_t i = 0; ok && i < out.count; i++) {
        if (out.requests[i].body.len == 0) continue; /* nothing a sink can take */
        size_t refused = 0;
        enum outcome outcome = send_request(s, &out.requests[i], &batch, &res, &refused);
        if (outcome == DEAD_LETTERED) dead += refused;
        ok = outcome != STOPPED;
    }
    if (ok) {
        consume(s, bytes);
        save_cursor(s);
        count(s, &s->counts.sent, batch.count - dead);
        write_stats(s->d, false);
    }
    batch_free(&batch, &out, &res);
    return ok;
}

static bool stopping(struct sink_state *s)
{
    pthread_mutex_lock(&s->d->lock);
    bool stop = s->d->stopping;
    pthread_mutex_unlock(&s->d->lock);
    return stop;
}

static void *sink_thread(void *arg)
{
    struct sink_state *s = arg;
    bool lingered = false;
    for (;;) {
        /* Asked before reading: the last record was written before the stop, so a read
         * after seeing the stop finds it. */
        bool stop = stopping(s);
        fill(s);
        size_t lines, bytes = whole_lines(s, &lines);
        if (lines == 0) {
            if (move_on(s)) continue;
            if (stop) break; /* caught up */
            if (!pause_for(s, POLL_SECONDS, true)) break;
            continue;
        }
        if (lines < BATCH_RECORDS && bytes < BATCH_BYTES / 2 && !lingered && !stop) {
            lingered = true;
            if (pause_for(s, LINGER_SECONDS, false)) continue;
        }
        lingered = false;
        count(s, &s->counts.received, lines);
        if (!deliver(s, lines, bytes)) break;
    }
    return NULL;
}

/* ---- counting what is left ---- */

static unsigned long count_lines(int fd, off_t from)
{
    char chunk[65536];
    unsigned long lines = 0;
    ssize_t n;
    while ((n = pread(fd, chunk, sizeof chunk, from)) > 0) {
        for (const char *p = chunk; (p = memchr(p, '\n', (size_t)(chunk + n - p))); p++)
            lines++;
        from += n;
    }
    return lines;
}

/* The segment the sink reads: a sink still reading the file it opened as the active
 * one may be in a rotated segment by now, and its inode says which. */
static unsigned long where(const struct sink_state *s)
{
    unsigned long at = s->seq;
    if (at == SEGMENT_ACTIVE && !segment_find(s->d->source, s->at.dev, s->at.ino, &at))
        at = SEGMENT_ACTIVE;
    return at;
}

/* Lines from the cursor to the end of the source: what this sink has not delivered. */
static unsigned long pending(struct sink_state *s)
{
    unsigned long lines = count_lines(s->fd, s->at.offset);
    for (unsigned long seq = where(s); seq != SEGMENT_ACTIVE;) {
        seq = segment_next(s->d->source, seq);
        char *path = segment_path(s->d->source, seq);
        int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        free(path);
        if (fd < 0) break;
        lines += count_lines(fd, 0);
        close(fd);
    }
    return lines;
}

/* ---- what the log writer asks ---- */

static void wake_sinks(void *ctx)
{
    struct delivery *d = ctx;
    pthread_mutex_lock(&d->lock);
    d->log_written = d->log->written; /* the log's counters are the server thread's */
    d->log_failed = d->log->failed;
    d->generation++;
    pthread_cond_broadcast(&d->wake);
    pthread_mutex_unlock(&d->lock);
}

/* A sink needs segment seq if its cursor is in it or in an older one. */
static bool still_needed(void *ctx, unsigned long seq)
{
    struct delivery *d = ctx;
    bool needed = false;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->count && !needed; i++) {
        unsigned long at = where(&d->sinks[i]);
        needed = at != SEGMENT_ACTIVE && at <= seq;
    }
    pthread_mutex_unlock(&d->lock);
    return needed;
}

/* ---- stats.json ---- */

/* Rewrites stats.json: now, or if it is a second old. */
static void write_stats(struct delivery *d, bool now)
{
    pthread_mutex_lock(&d->stats_lock);
    if (!now && monotonic() - d->stats_at < 1) {
        pthread_mutex_unlock(&d->stats_lock);
        return;
    }
    d->stats_at = monotonic();
    struct collector_stats stats;
    if (delivery_stats(d, &stats)) state_write_stats(&d->state, &stats);
    free((void *)stats.sinks);
    pthread_mutex_unlock(&d->stats_lock);
}

bool delivery_stats(struct delivery *d, struct collector_stats *stats)
{
    struct sink_stats *sinks = calloc(d->count ? d->count : 1, sizeof *sinks);
    *stats = (struct collector_stats){.log = d->log->name, .sinks = sinks};
    pthread_mutex_lock(&d->lock);
    stats->written = d->log_written;
    stats->write_failures = d->log_failed;
    for (size_t i = 0; sinks && i < d->count; i++)
        sinks[stats->sink_count++] =
            (struct sink_stats){d->sinks[i].spec, d->sinks[i].id, d->sinks[i].counts};
    pthread_mutex_unlock(&d->lock);
    return sinks != NULL;
}

/* ---- setting up and finishing ---- */

static unsigned long fnv1a(const char *s)
{
    unsigned long h = 2166136261u;
    for (; *s; s++)
        h = ((h ^ (unsigned char)*s) * 16777619u) & 0xffffffffu;
    return h;
}

static bool add_sink(struct delivery *d, const struct sink_spec *spec, char *err, size_t err_size)
{
    struct sink_state *s = &d->sinks[d->count];
    *s = (struct sink_state){.d = d, .fd = -1, .type = sink_type_find(spec->format)};
    char stem[64];
    snprintf(stem, sizeof stem, "%s-%08lx", spec->format, fnv1a(spec->url));
    for (size_t i = 0; i < d->count; i++)
        if (!strcmp(d->sinks[i].id, stem)) { /* the same cursor file: refuse, not share */
            snprintf(err, err_size, "sink %s given twice", d->sinks[i].spec);
            return false;
        }
    s->random = ((unsigned long long)getpid() << 32) ^ (unsigned long long)time(NULL) ^
                fnv1a(spec->url) ^ (d->count + 1);
    char *shown = redact_url(spec->url);
    if (!shown || asprintf(&s->spec, "%s=%s", spec->format, shown) < 0) s->spec = NULL;
    free(shown);
    s->url = strdup(spec->url);
    s->id = strdup(stem);
    if (asprintf(&s->cursor_name, "%s.cursor", stem) < 0) s->cursor_name = NULL;
    if (asprintf(&s->dead_name, "%s.dead.jsonl", stem) < 0) s->dead_name = NULL;
    d->count++;
    if (!s->type || !s->spec || !s->url || !s->id || !s->cursor_name || !s->dead_name) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    char why[256];
    if (s->type->load && !s->type->load(why, sizeof why)) {
        snprintf(err, err_size, "sink %s: %s", s->spec, why);
        return false;
    }
    return load_cursor(s, err, err_size);
}

/* With the log on stdout, a spool in the state dir is what the sinks read. */
static bool open_spool(struct delivery *d, const struct options *o, char *err, size_t err_size)
{
    if (!state_open_spool(&d->state, &d->spool,
                          o->log_max_bytes ? o->log_max_bytes : SPOOL_MAX_BYTES, err, err_size))
        return false;
    d->has_spool = true;
    d->spool.still_needed = still_needed;
    d->spool.needed_ctx = d;
    d->log->copy = &d->spool;
    if (!(d->source = strdup(d->spool.name))) snprintf(err, err_size, "out of memory");
    return d->source != NULL;
}

struct delivery *delivery_open(const struct options *o, struct log_writer *log, char *err,
                               size_t err_size)
{
    /* Before `run` starts the command: without libcurl the sinks could not deliver. */
    char why[256];
    if (!http_load(why, sizeof why)) {
        snprintf(err, err_size, "sinks: %s", why);
        return NULL;
    }
    struct delivery *d = calloc(1, sizeof *d);
    if (!d || !(d->sinks = calloc(o->sink_count, sizeof *d->sinks))) {
        snprintf(err, err_size, "out of memory");
        delivery_free(d);
        return NULL;
    }
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->stats_lock, NULL);
    /* A clock set back must not stretch a backoff or the flush deadline. */
    pthread_condattr_t monotonic_clock;
    pthread_condattr_init(&monotonic_clock);
    pthread_condattr_setclock(&monotonic_clock, CLOCK_MONOTONIC);
    pthread_cond_init(&d->wake, &monotonic_clock);
    pthread_condattr_destroy(&monotonic_clock);
    d->state = (struct state){.dir_fd = -1, .lock_fd = -1};
    d->log = log;
    log->still_needed = still_needed;
    log->needed_ctx = d;
    log->after_write = wake_sinks;
    log->after_ctx = d;
    bool ok = state_open(&d->state, o, true, err, err_size);
    if (ok && !log->owns_fd)
        ok = open_spool(d, o, err, err_size);
    else if (ok && !(d->source = strdup(log->name))) {
        snprintf(err, err_size, "out of memory");
        ok = false;
    }
    for (size_t i = 0; ok && i < o->sink_count; i++)
        ok = add_sink(d, &o->sinks[i], err, err_size);
    if (!ok) {
        delivery_free(d);
        return NULL;
    }
    return d;
}

bool delivery_start(struct delivery *d)
{
    if (!http_global_init()) {
        fprintf(stderr, "ckmon: sinks: cannot initialise libcurl\n");
        return false;
    }
    /* Sink threads take no signals: SIGTERM/SIGINT/SIGHUP must reach the server loop,
     * which waits for them in ppoll, and a write to a closed socket must not kill. */
    sigset_t all, before;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &before);
    bool started = true;
    for (size_t i = 0; started && i < d->count; i++) {
        struct sink_state *s = &d->sinks[i];
        started =
            (s->http = http_client_new()) && pthread_create(&s->thread, NULL, sink_thread, s) == 0;
        if (started)
            s->started = true;
        else
            fprintf(stderr, "ckmon: sink %s: cannot start its thread\n", s->spec);
    }
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    if (!started) delivery_finish(d, 0); /* join those already running before any free */
    return started;
}

unsigned long delivery_finish(struct delivery *d, double timeout)
{
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    d->deadline = monotonic() + timeout;
    pthread_cond_broadcast(&d->wake);
    pthread_mutex_unlock(&d->lock);
    unsigned long worst = 0;
    for (size_t i = 0; i < d->count; i++) {
        struct sink_state *s = &d->sinks[i];
        if (s->started) pthread_join(s->thread, NULL);
        s->started = false;
        unsigned long left = s->fd >= 0 ? pending(s) : 0;
        pthread_mutex_lock(&d->lock);
        s->counts.undelivered = left;
        struct sink_counts c = s->counts;
        pthread_mutex_unlock(&d->lock);
        fprintf(stderr,
                "ckmon: sink %s: %lu received, %lu sent, %lu retried, %lu dead-lettered, %lu "
                "dropped, %lu samples skipped\n",
                s->spec, c.received, c.sent, c.retried, c.dead_lettered, c.dropped, c.skipped);
        if (left)
            fprintf(stderr,
                    "ckmon: sink %s: %lu record(s) not delivered within %g s; they stay in %s "
                    "for a collector started again with the same --log and --state\n",
                    s->spec, left, timeout, d->source);
        if (left > worst) worst = left;
    }
    write_stats(d, true);
    return worst;
}

void delivery_free(struct delivery *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->count; i++) {
        struct sink_state *s = &d->sinks[i];
        if (s->fd >= 0) close(s->fd);
        http_client_free(s->http);
        free(s->spec);
        free(s->url);
        free(s->id);
        free(s->cursor_name);
        free(s->dead_name);
        free(s->buf);
    }
    if (d->log) {
        d->log->copy = NULL;
        d->log->still_needed = NULL;
        d->log->after_write = NULL;
    }
    if (d->has_spool) log_close(&d->spool);
    state_close(&d->state);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->stats_lock);
    pthread_mutex_destroy(&d->lock);
    free(d->sinks);
    free(d->source);
    free(d);
}
