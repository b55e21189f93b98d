/* lineage.c — load records, and the index of who wrote each path (see lineage.h).
 *
 * Two open-addressing tables keyed by strings: the path → its newest checkpoint record
 * (only what a load record names of it), and the series of ckmon_loads_total → how
 * many load records the log holds for it. Log lines are looked at by a plain substring
 * test first; only checkpoint and load records are parsed.
 */
#include "lineage.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "metrics.h"
#include "segments.h"

#define UNCHANGED_SLACK_US 1000000LL /* mtime vs close time, as `ckmon verify` allows */
/* A file whose size and time agree with a record that has a digest is hashed again up to
 * this size (from the page cache: the program is reading it), on the collector's loop. */
#define LOAD_DIGEST_MAX_BYTES (256LL << 20)

struct written {
    cJSON *summary;                /* the load record's "written": time, job, run, host, pid */
    int64_t time_us;               /* when the file was closed */
    double bytes;                  /* -1: the record had none */
    char digest[DIGEST_TEXT_SIZE]; /* "" when the record had none */
};

struct slot {
    char *key; /* NULL: empty */
    struct written w;
    double loads;
};

struct table {
    struct slot *slots;
    size_t capacity, used; /* capacity is a power of two */
};

struct lineage {
    char *log; /* NULL: nothing to read */
    bool started;
    dev_t dev; /* the file read so far, up to offset */
    ino_t ino;
    off_t offset;
    struct table written, loads;
};

/* ---- tables ---- */

static size_t hash(const char *s)
{
    size_t h = 14695981039346656037ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct slot *find(const struct table *t, const char *key)
{
    for (size_t i = hash(key) & (t->capacity - 1);; i = (i + 1) & (t->capacity - 1))
        if (!t->slots[i].key || !strcmp(t->slots[i].key, key)) return &t->slots[i];
}

/* The key's slot, added when new; NULL when out of memory. */
static struct slot *slot_for(struct table *t, const char *key)
{
    if ((t->used + 1) * 4 > t->capacity * 3) {
        size_t capacity = t->capacity ? 2 * t->capacity : 256;
        struct table grown = {
            .slots = calloc(capacity, sizeof *grown.slots), .capacity = capacity, .used = t->used};
        if (!grown.slots) return NULL;
        for (size_t i = 0; i < t->capacity; i++)
            if (t->slots[i].key) *find(&grown, t->slots[i].key) = t->slots[i];
        free(t->slots);
        *t = grown;
    }
    struct slot *s = find(t, key);
    if (!s->key) {
        if (!(s->key = strdup(key))) return NULL;
        t->used++;
    }
    return s;
}

static const struct slot *lookup(const struct table *t, const char *key)
{
    if (!t->capacity) return NULL;
    const struct slot *s = find(t, key);
    return s->key ? s : NULL;
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->capacity; i++) {
        free(t->slots[i].key);
        cJSON_Delete(t->slots[i].w.summary);
    }
    free(t->slots);
}

/* ---- reading the log ---- */

/* The series of ckmon_loads_total a load record counts in (its metric labels). */
static char *series_of(const cJSON *record)
{
    struct record_labels labels;
    if (!record_labels_get(record, &labels)) return NULL;
    struct sample s = {.metric = "ckmon_loads_total"};
    metrics_common_labels(&s, &labels);
    struct strbuf series = {.limit = 1 << 16};
    prom_add_series(&series, &s);
    if (series.overflow) {
        free(series.s);
        return NULL;
    }
    return series.s;
}

static void count_load(struct lineage *l, const cJSON *record)
{
    char *series = series_of(record);
    struct slot *s = series ? slot_for(&l->loads, series) : NULL;
    if (s) s->loads++;
    free(series);
}

static void copy_member(cJSON *to, const cJSON *from, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, name);
    if (cJSON_IsString(v) || cJSON_IsNumber(v))
        cJSON_AddItemToObject(to, name, cJSON_Duplicate(v, false));
}

/* The record's top-level digest: after its tensors, so past the head that is parsed. A
 * quote inside a string is escaped, so the last `,"digest":"xxh3-128:` is a member's. */
static void take_digest(char *out, const char *rest)
{
    static const char key[] = ",\"digest\":\"" DIGEST_PREFIX;
    const char *found = NULL;
    for (const char *p = rest; (p = strstr(p, key)); p++)
        found = p;
    out[0] = '\0';
    if (!found) return;
    const char *text = found + sizeof key - 1 - strlen(DIGEST_PREFIX);
    size_t len = strcspn(text, "\"");
    if (len == DIGEST_TEXT_SIZE - 1 && text[len] == '"')
        snprintf(out, DIGEST_TEXT_SIZE, "%s", text);
}

static void note_checkpoint(struct lineage *l, const cJSON *record, const char *rest)
{
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(record, "path");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(record, "bytes");
    struct record_labels labels;
    if (!cJSON_IsString(path) || !record_labels_get(record, &labels)) return;
    cJSON *summary = cJSON_CreateObject();
    struct slot *s = summary ? slot_for(&l->written, path->valuestring) : NULL;
    if (!s) return cJSON_Delete(summary);
    static const char *const members[] = {"time", "job", "run", "host", "pid"};
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
        copy_member(summary, record, members[i]);
    cJSON_Delete(s->w.summary);
    s->w = (struct written){.summary = summary,
                            .time_us = labels.time_us,
                            .bytes = cJSON_IsNumber(bytes) ? bytes->valuedouble : -1};
    take_digest(s->w.digest, rest);
}

/* A line is taken apart in place: of a checkpoint record only the members before its
 * "values" are parsed (who wrote it, where, when, how big), which is most of the speed
 * of reading a log of large records. A quote inside a JSON string is escaped, so the
 * first `,"values":` is a member's name, and what comes before it, closed, is an object. */
static void take_line(struct lineage *l, char *line)
{
    bool checkpoint = strstr(line, "\"event\":\"checkpoint\"") != NULL;
    if (!checkpoint && !strstr(line, "\"event\":\"load\"")) return;
    char *values = checkpoint ? strstr(line, ",\"values\":") : NULL;
    const char *rest = values ? values + 2 : "";
    if (values) values[0] = '}', values[1] = '\0';
    cJSON *record = cJSON_Parse(line);
    const cJSON *event = cJSON_GetObjectItemCaseSensitive(record, "event");
    if (cJSON_IsString(event) && !strcmp(event->valuestring, "checkpoint"))
        note_checkpoint(l, record, rest);
    else if (cJSON_IsString(event) && !strcmp(event->valuestring, "load"))
        count_load(l, record);
    cJSON_Delete(record);
}

/* Takes the whole lines of fd from offset on; returns the offset after the last one (a
 * line still being written is left for next time). */
static off_t read_lines(struct lineage *l, int fd, off_t offset)
{
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return offset;
    }
    char *line = NULL;
    size_t size = 0;
    ssize_t n;
    if (fseeko(f, offset, SEEK_SET) == 0)
        while ((n = getline(&line, &size, f)) > 0 && line[n - 1] == '\n') {
            take_line(l, line);
            offset += n;
        }
    free(line);
    fclose(f);
    return offset;
}

static void read_segment(struct lineage *l, unsigned long seq, off_t offset)
{
    char *path = segment_path(l->log, seq);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd >= 0) read_lines(l, fd, offset);
    free(path);
}

/* Reads what was appended to the log since the last call: the first time its rotated
 * segments and the whole file; after a rotation, the rest of the file read so far (now a
 * segment) and the segments after it before the new file. */
static void catch_up(struct lineage *l)
{
    if (!l->log) return;
    int fd = open(l->log, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0) close(fd);
        return;
    }
    unsigned long seq;
    if (!l->started) {
        struct segment_list segments = {0};
        segment_list(l->log, &segments);
        for (size_t i = 0; i < segments.count; i++)
            read_segment(l, segments.seqs[i], 0);
        segment_list_free(&segments);
        l->offset = 0;
    } else if (st.st_dev != l->dev || st.st_ino != l->ino) {
        if (segment_find(l->log, l->dev, l->ino, &seq)) {
            read_segment(l, seq, l->offset);
            while ((seq = segment_next(l->log, seq)) != SEGMENT_ACTIVE)
                read_segment(l, seq, 0);
        }
        l->offset = 0;
    }
    l->started = true;
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    l->offset = read_lines(l, fd, l->offset);
}

/* ---- the record ---- */

struct lineage *lineage_new(const char *log_path)
{
    struct lineage *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    if (log_path && strcmp(log_path, "-") && !(l->log = strdup(log_path))) {
        free(l);
        return NULL;
    }
    return l;
}

void lineage_free(struct lineage *l)
{
    if (!l) return;
    table_free(&l->written);
    table_free(&l->loads);
    free(l->log);
    free(l);
}

/* Whether the file at path hashes to digest; true when it cannot be told (too large to
 * hash here, no libxxhash, gone, or not the size the reader saw). */
static bool same_digest(const char *path, const char *digest, int64_t bytes)
{
    char err[256], now[DIGEST_TEXT_SIZE];
    if (bytes > LOAD_DIGEST_MAX_BYTES || !digest_load(err, sizeof err)) return true;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    struct digest *d = fd >= 0 ? digest_new() : NULL;
    bool read = d && fstat(fd, &st) == 0 && st.st_size == bytes && digest_fd(d, fd, NULL);
    if (read) digest_text(d, now);
    digest_free(d);
    if (fd >= 0) close(fd);
    return !read || !strcmp(now, digest);
}

/* What the file the reader opened says against the record that wrote it: its size and
 * modification time, then its digest when the record has one. */
static cJSON *unchanged(const struct written *w, const struct wire_load *load)
{
    if (!w || load->bytes == WIRE_ABSENT || load->mtime_us == WIRE_ABSENT || w->bytes < 0)
        return cJSON_CreateNull();
    return cJSON_CreateBool((double)load->bytes == w->bytes &&
                            load->mtime_us <= w->time_us + UNCHANGED_SLACK_US &&
                            (!w->digest[0] || same_digest(load->path, w->digest, load->bytes)));
}

cJSON *lineage_load_record(struct lineage *l, const struct identity *who,
                           const struct wire_load *load, int64_t now_us)
{
    catch_up(l);
    const struct slot *s = lookup(&l->written, load->path);
    const struct written *w = s ? &s->w : NULL;
    char time_text[RFC3339_SIZE];
    format_rfc3339(load->time_us != WIRE_ABSENT ? load->time_us : now_us, time_text,
                   sizeof time_text);
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "schema", 1);
    cJSON_AddStringToObject(o, "event", "load");
    cJSON_AddStringToObject(o, "time", time_text);
    cJSON_AddStringToObject(o, "host", who->host ? who->host : "unknown");
    cJSON_AddNumberToObject(o, "pid", (double)who->pid);
    cJSON_AddStringToObject(o, "program", who->program ? who->program : "unknown");
    cJSON_AddStringToObject(o, "job", who->job ? who->job : "unknown");
    if (who->run) cJSON_AddStringToObject(o, "run", who->run);
    if (who->has_rank) cJSON_AddNumberToObject(o, "rank", (double)who->rank);
    cJSON_AddStringToObject(o, "path", load->path);
    if (load->bytes != WIRE_ABSENT) cJSON_AddNumberToObject(o, "bytes", (double)load->bytes);
    cJSON_AddItemToObject(o, "written", w ? cJSON_Duplicate(w->summary, true) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "unchanged", unchanged(w, load));
    /* The running count of its series: what the log holds, and this one. Without a log to
     * read back, counted here. */
    char *series = series_of(o);
    struct slot *count = series ? slot_for(&l->loads, series) : NULL;
    double total = (count ? count->loads : 0) + 1;
    if (count && !l->log) count->loads = total;
    free(series);
    cJSON_AddNumberToObject(o, "total", total);
    return o;
}
