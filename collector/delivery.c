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
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/jsontext.h"
#include "http.h"
#include "record.h"
#include "segments.h"
#include "server.h"
#include "sinks/sink.h"

#define BATCH_RECORDS   500
#define BATCH_BYTES     (1u << 20)
#define LINGER_SECONDS  0.2  /* a batch that is not full waits this long for more */
#define POLL_SECONDS    1.0  /* also look at the log this often (other writers) */
#define HTTP_TIMEOUT    10.0 /* per request */
#define BACKOFF_BASE    0.5
#define BACKOFF_CAP     30.0
#define RETRY_AFTER_CAP 600.0
#define SPOOL_MAX_BYTES (64ull << 20)
#define LINE_LIMIT      (256u << 20) /* a longer line cannot be a record */

struct counts {
    unsigned long received, sent, retried, dead_lettered, dropped, skipped, undelivered;
};

struct sink_state {
    struct delivery *d;
    const struct sink_type *type;
    char *spec; /* FORMAT=URL, for messages */
    char *url;
    char *id; /* FORMAT-HASH: the stem of its files in the state dir */
    char *cursor_path, *dead_path;
    pthread_t thread;
    bool started, failing;
    unsigned long long random;
    /* where the cursor is: a file of the source, by identity, and an offset in it */
    int fd;
    dev_t dev;
    ino_t ino;
    unsigned long seq;
    off_t offset;
    char *buf; /* bytes read from offset on, not yet delivered */
    size_t buf_len, buf_cap;
    struct http_client *http;
    struct counts counts; /* under d->lock */
};

struct delivery {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    unsigned long generation; /* lines written so far, to tell a wake-up from a timeout */
    unsigned long log_written, log_failed; /* the log's counters, copied under the lock */
    bool stopping;
    double deadline; /* monotonic seconds, once stopping */
    char *state_dir;
    char *source; /* the file the sinks read: the log, or the spool */
    int lock_fd;
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

static char *join(const char *dir, const char *name, const char *suffix)
{
    char *out = NULL;
    return asprintf(&out, "%s/%s%s", dir, name, suffix) < 0 ? NULL : out;
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

char *delivery_state_dir(const struct options *o)
{
    if (o->state) return strdup(o->state);
    if (!strcmp(o->log, "-")) return strdup("ckmon-stdout.state");
    char *out = NULL;
    return asprintf(&out, "%s.state", o->log) < 0 ? NULL : out;
}

/* ---- the cursor ---- */

/* Replaces path with len bytes of text all at once: written beside it (and synced, if
 * asked), then renamed over it. False with errno set when it could not. */
static bool replace_file(const char *path, const char *text, size_t len, bool sync)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", path) < 0) return false;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && (!sync || fdatasync(fd) == 0);
    if (fd >= 0 && close(fd) != 0) ok = false;
    ok = ok && rename(tmp, path) == 0;
    int saved = errno;
    if (!ok) unlink(tmp);
    free(tmp);
    errno = saved;
    return ok;
}

static bool save_cursor(struct sink_state *s)
{
    char text[96];
    int len = snprintf(text, sizeof text, "%llu %llu %lld\n", (unsigned long long)s->dev,
                       (unsigned long long)s->ino, (long long)s->offset);
    if (replace_file(s->cursor_path, text, (size_t)len, true)) return true;
    fprintf(stderr, "ckmon: sink %s: cannot save its cursor %s: %s\n", s->spec, s->cursor_path,
            strerror(errno));
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
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->seq = seq;
    s->offset = offset;
    s->buf_len = 0;
    pthread_mutex_unlock(&s->d->lock);
    return true;
}

/* Where the saved cursor points; a new sink starts at the end of the active file. */
static bool load_cursor(struct sink_state *s, char *err, size_t err_size)
{
    FILE *f = fopen(s->cursor_path, "re");
    unsigned long long dev, ino;
    long long offset;
    unsigned long seq;
    if (!f) {
        struct stat st;
        bool ok = errno == ENOENT && stat(s->d->source, &st) == 0 &&
                  open_segment(s, SEGMENT_ACTIVE, st.st_size) && save_cursor(s);
        if (!ok)
            snprintf(err, err_size, "sink %s: cannot start its cursor %s", s->spec, s->cursor_path);
        return ok;
    }
    int n = fscanf(f, "%llu %llu %lld", &dev, &ino, &offset);
    fclose(f);
    if (n == 3 && segment_find(s->d->source, (dev_t)dev, (ino_t)ino, &seq))
        return open_segment(s, seq, (off_t)offset);
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
                          s->offset + (off_t)s->buf_len);
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
    s->offset += (off_t)bytes;
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
        if (st.st_dev == s->dev && st.st_ino == s->ino) {
            if (st.st_size >= s->offset + (off_t)s->buf_len) return false;
            /* Shorter than what was read: someone truncated it. Start it again. */
            fprintf(stderr, "ckmon: sink %s: %s was truncated; delivering it from its start\n",
                    s->spec, s->d->source);
            return open_segment(s, SEGMENT_ACTIVE, 0) && save_cursor(s);
        }
        /* Rotated: lines written before the rename may have arrived since the last read. */
        if (fill(s) > 0) return true;
        if (!segment_find(s->d->source, s->dev, s->ino, &seq)) seq = SEGMENT_ACTIVE;
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
 * retried like an outage, so the cursor never passes records kept nowhere. */
static bool dead_letter(struct sink_state *s, const struct sink_request *r,
                        const struct sink_batch *batch, const struct http_result *res)
{
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
    cJSON_AddStringToObject(o, "response", res->response.s ? res->response.s : "");
    for (size_t i = r->first; i < r->first + r->count; i++)
        cJSON_AddItemToArray(records, cJSON_Duplicate(batch->records[i], true));
    cJSON_AddItemToObject(o, "records", records);
    char *text = json_print(o);
    cJSON_Delete(o);
    FILE *f = fopen(s->dead_path, "ae");
    bool ok = f && text && fprintf(f, "%s\n", text) > 0;
    if (f && fclose(f) != 0) ok = false;
    free(text);
    fprintf(stderr, "ckmon: sink %s: %s %s answered %ld; %zu record(s) %s\n", s->spec, r->method,
            url ? url : "", res->status, r->count,
            ok ? "written to the dead-letter file" : "kept: cannot write the dead-letter file");
    free(url);
    if (ok) count(s, &s->counts.dead_lettered, r->count);
    return ok;
}

enum outcome { DELIVERED, DEAD_LETTERED, STOPPED };

/* Sends one request until acknowledged or refused for good, or until the collector
 * stopped and its deadline passed. */
static enum outcome send_request(struct sink_state *s, const struct sink_request *r,
                                 const struct sink_batch *batch, struct http_result *res)
{
    for (unsigned attempt = 0;; attempt++) {
        double timeout = HTTP_TIMEOUT;
        pthread_mutex_lock(&s->d->lock);
        if (s->d->stopping && s->d->deadline - monotonic() < timeout)
            timeout = s->d->deadline - monotonic();
        pthread_mutex_unlock(&s->d->lock);
        if (timeout <= 0) return STOPPED;
        http_send(s->http, r->method, r->url, r->content_type, r->body.s, r->body.len,
                  s->type->gzip, timeout, res);
        enum sink_result result = sink_classify(res->status);
        if (result == SINK_OK) {
            if (s->failing) fprintf(stderr, "ckmon: sink %s: delivering again\n", s->spec);
            s->failing = false;
            return DELIVERED;
        }
        if (result == SINK_ERROR) {
            if (dead_letter(s, r, batch, res)) return DEAD_LETTERED;
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
        cJSON *record = cJSON_ParseWithLength(p, (size_t)(nl - p));
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
        enum outcome outcome = send_request(s, &out.requests[i], &batch, &res);
        if (outcome == DEAD_LETTERED) dead += out.requests[i].count;
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
    if (at == SEGMENT_ACTIVE && !segment_find(s->d->source, s->dev, s->ino, &at))
        at = SEGMENT_ACTIVE;
    return at;
}

/* Lines from the cursor to the end of the source: what this sink has not delivered. */
static unsigned long pending(struct sink_state *s)
{
    unsigned long lines = count_lines(s->fd, s->offset);
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
    cJSON *o = cJSON_CreateObject(), *sinks = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "log", d->log->name);
    pthread_mutex_lock(&d->lock);
    cJSON_AddNumberToObject(o, "written", (double)d->log_written);
    cJSON_AddNumberToObject(o, "write_failures", (double)d->log_failed);
    for (size_t i = 0; i < d->count; i++) {
        const struct sink_state *s = &d->sinks[i];
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "sink", s->spec);
        cJSON_AddStringToObject(c, "id", s->id);
        cJSON_AddNumberToObject(c, "received", (double)s->counts.received);
        cJSON_AddNumberToObject(c, "sent", (double)s->counts.sent);
        cJSON_AddNumberToObject(c, "retried", (double)s->counts.retried);
        cJSON_AddNumberToObject(c, "dead_lettered", (double)s->counts.dead_lettered);
        cJSON_AddNumberToObject(c, "dropped", (double)s->counts.dropped);
        cJSON_AddNumberToObject(c, "skipped_samples", (double)s->counts.skipped);
        cJSON_AddNumberToObject(c, "undelivered", (double)s->counts.undelivered);
        cJSON_AddItemToArray(sinks, c);
    }
    pthread_mutex_unlock(&d->lock);
    cJSON_AddItemToObject(o, "sinks", sinks);
    char *text = json_print(o), *path = join(d->state_dir, "stats.json", ""), *line = NULL;
    cJSON_Delete(o);
    if (text && path && asprintf(&line, "%s\n", text) >= 0)
        replace_file(path, line, strlen(line), false);
    free(line);
    free(path);
    free(text);
    pthread_mutex_unlock(&d->stats_lock);
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
    s->cursor_path = join(d->state_dir, stem, ".cursor");
    s->dead_path = join(d->state_dir, stem, ".dead.jsonl");
    d->count++;
    if (!s->type || !s->spec || !s->url || !s->id || !s->cursor_path || !s->dead_path) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    return load_cursor(s, err, err_size);
}

/* Creates and locks the state dir: two collectors moving the same cursors would each
 * believe the other's deliveries. */
static bool claim_state_dir(struct delivery *d, char *err, size_t err_size)
{
    char *lock_path = join(d->state_dir, "lock", "");
    if (mkdir(d->state_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create state dir %s: %s", d->state_dir, strerror(errno));
    } else if (!lock_path ||
               (d->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        snprintf(err, err_size, "cannot use state dir %s: %s", d->state_dir, strerror(errno));
    } else if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, err_size, "state dir %s is in use by another collector (--state)",
                 d->state_dir);
    } else {
        free(lock_path);
        return true;
    }
    free(lock_path);
    return false;
}

/* With the log on stdout, a spool in the state dir is what the sinks read. */
static bool open_spool(struct delivery *d, const struct options *o, char *err, size_t err_size)
{
    char *path = join(d->state_dir, "spool.jsonl", "");
    if (!path || log_open(&d->spool, path, err, err_size) < 0) {
        free(path);
        return false;
    }
    d->has_spool = true;
    d->spool.max_bytes = o->log_max_bytes ? o->log_max_bytes : SPOOL_MAX_BYTES;
    d->spool.keep = 0; /* only what a sink still needs */
    d->spool.still_needed = still_needed;
    d->spool.needed_ctx = d;
    d->log->copy = &d->spool;
    d->source = path;
    return true;
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
    if (!d || !(d->sinks = calloc(o->sink_count, sizeof *d->sinks)) ||
        !(d->state_dir = delivery_state_dir(o))) {
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
    d->lock_fd = -1;
    d->log = log;
    log->still_needed = still_needed;
    log->needed_ctx = d;
    log->after_write = wake_sinks;
    log->after_ctx = d;
    bool ok = claim_state_dir(d, err, err_size);
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

static unsigned long delivery_finish(struct delivery *d, double timeout);

/* Starts one thread per sink. */
static bool delivery_start(struct delivery *d)
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

/* Lets the sinks deliver what the log holds, for up to timeout seconds; then stops
 * them, prints each sink's counters on stderr, says what was not delivered, and writes
 * stats.json. Returns the number of records some sink has not delivered. */
static unsigned long delivery_finish(struct delivery *d, double timeout)
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
        struct counts c = s->counts;
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
        free(s->cursor_path);
        free(s->dead_path);
        free(s->buf);
    }
    if (d->log) {
        d->log->copy = NULL;
        d->log->still_needed = NULL;
        d->log->after_write = NULL;
    }
    if (d->has_spool) log_close(&d->spool);
    if (d->lock_fd >= 0) close(d->lock_fd);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->stats_lock);
    pthread_mutex_destroy(&d->lock);
    free(d->sinks);
    free(d->state_dir);
    free(d->source);
    free(d);
}

int serve_and_deliver(const struct server_config *cfg, struct delivery *d, double timeout)
{
    if (d && !delivery_start(d)) {
        listener_close(cfg->listener, true);
        return 1;
    }
    int rc = server_run(cfg);
    if (d && delivery_finish(d, timeout) > 0) rc = 1;
    return rc;
}
