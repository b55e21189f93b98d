/* tracker.c — turning agent messages (core/wire.h) into finished records.
 *
 * Lists rather than hash tables: a process has a handful of checkpoints open at a
 * time, and the pending list holds only what closed in the last second, in the order
 * it closed, so expiring looks only at its head.
 */
#include "tracker.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/parsers/parser.h"
#include "core/wire.h"
#include "digester.h"
#include "sets.h"

#define TORN_REPARSE_MAX_BYTES (256LL << 20)

struct open_file {
    int64_t id;
    int64_t open_us;
    int64_t progress_bytes;
    struct record *record;
    struct open_file *next;
};

/* A process's messages are numbered in its session (core/wire.h, "Delivery"); what the
 * collector has taken from one outlives its connection, so that a message sent again
 * on a later one, or found in a spool file, is not taken twice. */
struct session {
    char name[ORIGIN_SESSION_MAX + 1];
    int64_t taken;        /* the highest seq taken */
    int64_t seen_us;      /* its last message, for forgetting it */
    unsigned connections; /* open connections naming it */
    struct session *next;
};
/* Sessions no connection names are forgotten after SESSION_KEEP_US once there are more
 * than SESSIONS_KEPT. */
#define SESSIONS_KEPT   1024
#define SESSION_KEEP_US (600 * 1000000LL)

struct tracker_conn {
    struct identity who;
    struct session *session; /* NULL until a hello names one */
    int64_t taken;           /* the highest seq taken on this connection */
    /* The agent's --sample and --keys (from its hello), for files the collector parses
     * from disk itself: adopted by a rename, or torn before the agent found anything. */
    struct parse_options parse;
    struct key_filter keys; /* its patterns in one allocation (keys_copy) */
    struct open_file *files;
    /* After an "exec": the ids the new program keeps open (its agent reports them); the
     * connection's other files are closed by the exec. exec_kept NULL otherwise. */
    int64_t *exec_kept;
    size_t exec_kept_count;
    struct tracker_conn *prev, *next;
};

struct pending {
    struct record *record;
    struct origin origin;
    int64_t since_us;
    bool candidate; /* written under no glob's name: written only if a rename names it */
    size_t bucket;  /* of its path in held_paths */
    struct pending *next;
};

/* How many held records' paths hash to each bucket: an open, a rename or a load looks
 * through the held records only when one may have its path. Without it, each open of
 * 3,200 small files closed within a second scanned them all (strcmp was 16% of the
 * collector's time). */
#define HELD_BUCKETS 4096

/* A file renamed in under a watched name: the collector parses it from disk, which for
 * a large checkpoint takes seconds, so it does ADOPT_SLICE_BYTES per turn of the
 * server's loop and other agents' messages are not kept waiting meanwhile. Adoptions
 * are parsed one at a time, in order; a file is opened when its turn comes (a sharded
 * checkpoint renamed in at once must not hold a descriptor per shard). The agent's
 * --sample and --keys are copied: its connection may end before the parse does. */
#define ADOPT_SLICE_BYTES ((off_t)8 << 20)

struct adoption {
    struct record *record; /* who, and the names; the findings come at the end */
    int64_t time_us;       /* when the agent saw the rename */
    int fd;                /* -1 until its turn */
    off_t offset;
    struct parse_options parse;
    struct key_filter keys;
    struct report report;
    struct parser *parser; /* with --digest, a tap that also hashes the bytes (digest.h) */
    struct file_id start;  /* the file when its parse began */
    struct origin origin;
    struct adoption *next;
};

/* A record whose file is being read after its close (its digest, its CRCs): written when
 * the job is done. */
struct waiting {
    struct record *record;
    struct digest_job *job;
    struct waiting *next;
};

struct tracker {
    record_emit_fn emit;
    void *ctx;
    struct tracker_conn *conns;
    struct pending *pending;      /* oldest first */
    struct pending **pending_end; /* the last node's next, for appending */
    uint32_t held_paths[HELD_BUCKETS];
    struct adoption *adoptions; /* in the order of their renames */
    struct adoption **adoptions_end;
    uint8_t *read_buffer;    /* for the adoption being parsed */
    const char *default_run; /* for agents whose hello names no run */
    unmatched_fn unmatched;  /* told of the files agents created that matched no glob */
    verified_fn verified;    /* given the failures `ckmon verify` reports */
    void *verified_ctx;
    load_fn load; /* told of the checkpoints agents opened for reading */
    void *load_ctx;
    struct sets *sets; /* multi-file checkpoints (sets.h), or NULL */
    int64_t now_us;    /* the time of the message or turn being handled */
    void *unmatched_ctx;
    struct hold_hooks hold; /* the rename hold's journal (recovery.h); NULL members: none */
    struct origin origin;   /* of the message being handled */
    struct session *sessions;
    size_t session_count;
    struct digester *digester; /* reads closed files (digester.h), or NULL */
    bool hash;                 /* --digest */
    struct waiting *waiting;   /* records waiting for their job, oldest first */
    struct waiting **waiting_end;
    struct tracker_counts counts;
};

static void adoption_free(struct adoption *a);

void tracker_set_run(struct tracker *t, const char *run)
{
    t->default_run = run;
}

void tracker_set_unmatched(struct tracker *t, unmatched_fn fn, void *ctx)
{
    t->unmatched = fn;
    t->unmatched_ctx = ctx;
}

void tracker_set_verified(struct tracker *t, verified_fn fn, void *ctx)
{
    t->verified = fn;
    t->verified_ctx = ctx;
}

void tracker_set_loads(struct tracker *t, load_fn fn, void *ctx)
{
    t->load = fn;
    t->load_ctx = ctx;
}

bool tracker_set_sets(struct tracker *t, set_emit_fn emit, void *ctx)
{
    return (t->sets = sets_new(emit, ctx)) != NULL;
}

struct sets *tracker_sets(struct tracker *t)
{
    return t->sets;
}

void tracker_set_hold(struct tracker *t, const struct hold_hooks *hooks)
{
    t->hold = *hooks;
}

bool tracker_read_closed_files(struct tracker *t, bool digest)
{
    t->hash = digest;
    return (t->digester = digester_new()) != NULL;
}

int tracker_wake_fd(const struct tracker *t)
{
    return t->digester ? digester_wake_fd(t->digester) : -1;
}

struct tracker *tracker_new(record_emit_fn emit, void *ctx)
{
    struct tracker *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->emit = emit;
    t->ctx = ctx;
    t->pending_end = &t->pending;
    t->adoptions_end = &t->adoptions;
    t->waiting_end = &t->waiting;
    return t;
}

static void write_and_free(struct tracker *t, struct record *r)
{
    if (!strcmp(r->format, "hdf5") && r->parsed != PARSED_FILE) {
        record_add_error(r, "hdf5: the file was gone before ckmon could read it");
        r->complete = false;
    }
    record_settle(r);
    t->emit(t->ctx, r);
    sets_note(t->sets, r, t->now_us);
    if (t->hold.emitted) t->hold.emitted(t->hold.ctx, r);
    record_free(r);
}

/* Whether r's zip CRCs are for the collector to check: its agent left them, and neither
 * did the stream end short nor did the collector parse the file itself. */
static bool crc_to_check(const struct record *r)
{
    return r->crc_left && r->complete && r->parsed != PARSED_FILE;
}

/* A finished record: written now, or once the worker has read its file: its digest with
 * --digest (unless the collector took it while parsing the file itself), its zip CRCs
 * when its agent left them. */
static void emit_and_free(struct tracker *t, struct record *r)
{
    struct digest_work work = {.hash = t->hash && !r->digest,
                               .crc_format = crc_to_check(r) ? r->format : NULL,
                               .crc_fd = r->crc_fd};
    struct waiting *w = NULL;
    if (t->digester && (work.hash || work.crc_format) && (w = malloc(sizeof *w)) &&
        !(w->job = digester_start(t->digester, r->path, &r->closed, work))) {
        free(w);
        w = NULL;
    }
    if (!w) return write_and_free(t, r); /* nothing to read, or no memory */
    r->crc_fd = -1;                      /* the job's now */
    w->record = r;
    w->next = NULL;
    *t->waiting_end = w;
    t->waiting_end = &w->next;
}

/* What the worker found in r's file: its digest; a CRC mismatch, which makes the file
 * incomplete (docs/integrity.md); or why it could not read it. */
static void take_job_result(struct record *r, struct digest_job *j, bool hashed)
{
    const char *why, *crc_why, *digest = digest_job_result(j, &why);
    char text[300];
    if (digest && hashed) record_set_string(&r->digest, digest);
    if (!digest && hashed) {
        snprintf(text, sizeof text, "digest: none: %s", why);
        record_add_error(r, text);
    }
    if (!crc_to_check(r)) return;
    const cJSON *error, *errors = digest_job_crc_errors(j, &crc_why);
    if (crc_why[0] && !(hashed && !digest && !strcmp(why, crc_why))) {
        /* (the digest's error says it already when both read the file and failed alike) */
        snprintf(text, sizeof text, "%s: CRC-32s not checked: %s", r->format, crc_why);
        record_add_error(r, text);
    }
    cJSON_ArrayForEach(error, errors)
    {
        record_add_error(r, cJSON_GetStringValue(error));
        r->complete = false;
    }
}

/* Writes the records whose job is done, after waiting for those of path (NULL: none;
 * with wait_all, for every one). */
static void write_digested(struct tracker *t, bool wait_all, const char *path)
{
    if (t->digester) digester_done_clear(t->digester);
    for (struct waiting **p = &t->waiting; *p;) {
        struct waiting *w = *p;
        if (wait_all || (path && !strcmp(w->record->path, path))) digest_job_wait(w->job);
        if (!digest_job_done(w->job)) {
            p = &w->next;
            continue;
        }
        take_job_result(w->record, w->job, t->hash);
        if (!(*p = w->next)) t->waiting_end = p;
        digest_job_drop(w->job);
        write_and_free(t, w->record);
        free(w);
    }
}

static void free_files(struct open_file *f)
{
    while (f) {
        struct open_file *next = f->next;
        record_free(f->record);
        free(f);
        f = next;
    }
}

static void unlink_conn(struct tracker *t, struct tracker_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    free_files(c->files);
    if (c->session) c->session->connections--;
    identity_free(&c->who);
    free(c->exec_kept);
    free(c->keys.patterns);
    free(c);
}

static size_t path_bucket(const char *path)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *)path; *c; c++)
        h = (h ^ *c) * 16777619u;
    return h % HELD_BUCKETS;
}

/* Whether a record held may have this path (false: surely none has). */
static bool may_hold(const struct tracker *t, const char *path)
{
    return t->held_paths[path_bucket(path)] > 0;
}

static struct record *unlink_pending(struct tracker *t, struct pending **link)
{
    struct pending *p = *link;
    struct record *r = p->record;
    t->held_paths[p->bucket]--;
    *link = p->next;
    if (t->pending_end == &p->next) t->pending_end = link;
    free(p);
    return r;
}

void tracker_free(struct tracker *t)
{
    if (!t) return;
    while (t->conns)
        unlink_conn(t, t->conns);
    while (t->pending)
        record_free(unlink_pending(t, &t->pending));
    while (t->adoptions) {
        struct adoption *a = t->adoptions;
        t->adoptions = a->next;
        adoption_free(a);
    }
    while (t->waiting) {
        struct waiting *w = t->waiting;
        t->waiting = w->next;
        digest_job_drop(w->job);
        record_free(w->record);
        free(w);
    }
    digester_free(t->digester);
    free(t->read_buffer);
    sets_free(t->sets);
    while (t->sessions) {
        struct session *next = t->sessions->next;
        free(t->sessions);
        t->sessions = next;
    }
    free(t);
}

struct tracker_conn *tracker_connect(struct tracker *t, long peer_pid)
{
    struct tracker_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->who.pid = peer_pid;
    c->parse.sample = DEFAULT_SAMPLE;
    c->next = t->conns;
    if (t->conns) t->conns->prev = c;
    t->conns = c;
    return c;
}

/* ---- files ---- */

static struct open_file *find_file(struct tracker_conn *c, int64_t id, struct open_file ***link)
{
    for (struct open_file **p = &c->files; *p; p = &(*p)->next)
        if ((*p)->id == id) {
            if (link) *link = p;
            return *p;
        }
    return NULL;
}

/* The file a data or close message is about. One never seen opened (the connection was
 * replaced while it was open, wire.h) starts a record from what the message carries;
 * *link is then the list slot that points at the returned file. */
static struct open_file *file_for(struct tracker_conn *c, int64_t id, int64_t now_us,
                                  struct open_file ***link)
{
    struct open_file *f = find_file(c, id, link);
    if (f) return f;
    if (!(f = calloc(1, sizeof *f)) || !(f->record = record_new(&c->who, ""))) {
        free(f);
        return NULL;
    }
    f->id = id;
    f->open_us = f->record->time_us = now_us;
    f->next = c->files;
    c->files = f;
    if (link) *link = &c->files;
    return f;
}

/* ---- finishing records ---- */

/* A file the collector parses itself, opened for reading (*st filled): -1 unless it is
 * a regular file, reached without following a symbolic link. O_NONBLOCK: a FIFO (or a
 * device) renamed onto a checkpoint name must not hold the collector in open(). */
static int open_regular(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd >= 0 && (fstat(fd, st) != 0 || !S_ISREG(st->st_mode))) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* The record of a finished file at path, parsed by the collector with the agent's
 * options (and hashed in the same pass with --digest); NULL when it is not a regular
 * file of at most max_bytes, or out of memory. */
static struct record *parse_on_disk(const struct tracker *t, const struct tracker_conn *c,
                                    const char *path, int64_t max_bytes)
{
    struct stat st;
    int fd = open_regular(path, &st);
    if (fd < 0) return NULL;
    struct record *r =
        st.st_size <= max_bytes
            ? record_from_file_hashed(&c->who, fd, path, &st, &c->keys, &c->parse, t->hash)
            : NULL;
    close(fd);
    return r;
}

/* A torn file whose agent had found nothing yet (a JSON document is parsed only at its
 * end, a pickle's values at its STOP): what it wrote is on disk, so the collector
 * parses that, within a bound that keeps it responsive to other agents. */
static void take_findings_from_disk(const struct tracker *t, const struct tracker_conn *c,
                                    struct record *r)
{
    if (r->values->child || r->tensors.count) return;
    struct record *disk = parse_on_disk(t, c, r->path, TORN_REPARSE_MAX_BYTES);
    if (!disk) return;
    record_move_findings(r, disk);
    r->digest = disk->digest;
    disk->digest = NULL;
    r->parsed = PARSED_FILE;
    if (strcmp(disk->format, "unknown")) record_set_string(&r->format, disk->format);
    record_free(disk);
}

/* Formats read from disk after the last close (record_read_disk_formats: HDF5, joblib
 * with xz or lz4), under the name the file has now: the agent says "hdf5", or found no
 * format (an HDF5 user block, a compressed joblib). False when the file cannot be opened
 * there (renamed meanwhile: its rename reads it). */
static bool read_from_disk(const struct tracker_conn *c, struct record *r)
{
    if (r->parsed == PARSED_FILE || (strcmp(r->format, "hdf5") && strcmp(r->format, "unknown")))
        return true;
    struct stat st;
    int fd = open_regular(r->path, &st);
    if (fd < 0) return false;
    struct report report;
    report_init(&report, &c->keys);
    const char *format = r->format;
    bool complete = r->complete;
    cJSON *findings = cJSON_CreateObject();
    if (record_read_disk_formats(fd, &format, &complete, &report, &c->parse) && findings &&
        record_set_string(&r->format, format)) {
        report_take(&report, findings);
        record_take_findings(r, findings);
        r->complete = complete;
        r->parsed = PARSED_FILE;
    }
    cJSON_Delete(findings);
    report_free(&report);
    close(fd);
    return true;
}

/* A file whose writer can no longer close it: its record is written now, with the
 * file's size on disk when it is still there. */
static void finish_incomplete(struct tracker *t, const struct tracker_conn *c, struct open_file *f,
                              int64_t now_us, const char *why)
{
    struct record *r = f->record;
    take_findings_from_disk(t, c, r);
    struct stat st;
    r->time_us = now_us;
    r->bytes =
        stat(r->path, &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_size : f->progress_bytes;
    r->seconds = now_us > f->open_us ? (double)(now_us - f->open_us) / 1e6 : 0;
    r->complete = false;
    record_add_error(r, why);
    f->record = NULL;
    emit_and_free(t, r);
    free(f);
}

static void hold_candidate(struct tracker *t, struct record *r, int64_t now_us, bool candidate,
                           const struct origin *origin)
{
    struct pending *p = malloc(sizeof *p);
    if (!p) { /* no memory to wait for a rename: write it as it is */
        if (candidate)
            record_free(r);
        else
            emit_and_free(t, r);
        return;
    }
    *p = (struct pending){.record = r,
                          .origin = *origin,
                          .since_us = now_us,
                          .candidate = candidate,
                          .bucket = path_bucket(r->path)};
    t->held_paths[p->bucket]++;
    *t->pending_end = p;
    t->pending_end = &p->next;
    /* A candidate too: its rename may be the next message, and a collector killed before
     * reading it must not lose the save (recovered, it keeps its temporary path). */
    if (t->hold.held) t->hold.held(t->hold.ctx, r, origin);
}

static void hold_for_rename(struct tracker *t, struct record *r, int64_t now_us,
                            const struct origin *origin)
{
    hold_candidate(t, r, now_us, false, origin);
}

/* Whether a killed collector had journaled the record of the message being handled:
 * its agent sent it again, not knowing. */
static bool recovered_before(struct tracker *t)
{
    if (!t->origin.seq || !t->hold.recovered || !t->hold.recovered(t->hold.ctx, &t->origin))
        return false;
    t->counts.resent++;
    return true;
}

/* The end of a held record's hold: written, or dropped when it is a candidate no rename
 * gave a checkpoint name. */
static void release_pending(struct tracker *t, struct pending **link)
{
    bool candidate = (*link)->candidate;
    struct record *r = unlink_pending(t, link);
    if (!candidate) return emit_and_free(t, r);
    if (t->hold.emitted) t->hold.emitted(t->hold.ctx, r); /* done with, unwritten */
    record_free(r);
}

/* ---- the messages ---- */

/* A copy of count patterns as *keys, pointers and strings in one allocation. */
static bool keys_copy(struct key_filter *keys, char *const *patterns, size_t count)
{
    size_t size = count * sizeof *keys->patterns;
    for (size_t i = 0; i < count; i++)
        size += strlen(patterns[i]) + 1;
    if (count == 0) return true;
    char **copy = malloc(size);
    if (!copy) return false;
    char *text = (char *)(copy + count);
    for (size_t i = 0; i < count; i++) {
        copy[i] = text;
        text = stpcpy(text, patterns[i]) + 1;
    }
    *keys = (struct key_filter){.patterns = copy, .count = count};
    return true;
}

/* Forgets sessions no connection names that have been quiet for SESSION_KEEP_US. */
static void forget_sessions(struct tracker *t, int64_t now_us)
{
    for (struct session **p = &t->sessions; *p;) {
        struct session *s = *p;
        if (s->connections || now_us - s->seen_us < SESSION_KEEP_US) {
            p = &s->next;
            continue;
        }
        *p = s->next;
        free(s);
        t->session_count--;
    }
}

/* A name the journal can hold as a word: letters and digits. */
static bool session_name_ok(const char *name)
{
    size_t n = strspn(name, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
    return n > 0 && n <= ORIGIN_SESSION_MAX && !name[n];
}

static struct session *find_session(const struct tracker *t, const char *name)
{
    for (struct session *s = t->sessions; s; s = s->next)
        if (!strcmp(s->name, name)) return s;
    return NULL;
}

/* The session called name, one more connection naming it; NULL when the name is not
 * one or there is no memory. */
static struct session *session_named(struct tracker *t, const char *name, int64_t now_us)
{
    if (!session_name_ok(name)) return NULL;
    struct session *s = find_session(t, name);
    if (!s) {
        if (t->session_count >= SESSIONS_KEPT) forget_sessions(t, now_us);
        if (!(s = calloc(1, sizeof *s))) return NULL;
        snprintf(s->name, sizeof s->name, "%s", name);
        s->next = t->sessions;
        t->sessions = s;
        t->session_count++;
    }
    s->connections++;
    s->seen_us = now_us;
    return s;
}

static bool on_hello(struct tracker *t, struct tracker_conn *c, struct wire_message *m,
                     int64_t now_us)
{
    const struct wire_hello *h = &m->hello;
    const char *run = h->run ? h->run : t->default_run;
    if (h->pid != WIRE_ABSENT) c->who.pid = (long)h->pid;
    if (h->session && !c->session && !(c->session = session_named(t, h->session, now_us)))
        return false;
    if (h->sample > 0 && h->sample <= 1) c->parse.sample = h->sample;
    if (h->key_count && (c->keys.patterns || !keys_copy(&c->keys, h->keys, h->key_count)))
        return false; /* keys once per connection */
    if (h->dropped > 0) t->counts.dropped += (unsigned long)h->dropped;
    if (h->dropped > 0)
        fprintf(stderr,
                "ckmon: process %ld lost %lld message(s) while it could not reach the collector\n",
                c->who.pid, (long long)h->dropped);
    c->who.has_rank = h->rank != WIRE_ABSENT;
    c->who.rank = c->who.has_rank ? (long)h->rank : 0;
    c->who.has_local_rank = h->local_rank != WIRE_ABSENT;
    c->who.local_rank = c->who.has_local_rank ? (long)h->local_rank : 0;
    c->who.has_world_size = h->world_size != WIRE_ABSENT;
    c->who.world_size = c->who.has_world_size ? (long)h->world_size : 0;
    return (!h->host || record_set_string(&c->who.host, h->host)) &&
           (!h->program || record_set_string(&c->who.program, h->program)) &&
           (!h->job || record_set_string(&c->who.job, h->job)) &&
           (!run || record_set_string(&c->who.run, run));
}

/* A path opened for writing again while its last record is held (numpy's open_memmap
 * writes the header, closes, then maps the file; ONNX creates its external data empty
 * and reopens it): the later record replaces the held one. */
static void supersede_held(struct tracker *t, const char *path)
{
    if (!may_hold(t, path)) return;
    for (struct pending **p = &t->pending; *p;) {
        if (strcmp((*p)->record->path, path)) {
            p = &(*p)->next;
            continue;
        }
        struct record *r = unlink_pending(t, p);
        if (t->hold.emitted) t->hold.emitted(t->hold.ctx, r); /* done with, unwritten */
        record_free(r);
    }
}

static bool on_open(struct tracker *t, struct tracker_conn *c, struct wire_message *m,
                    int64_t now_us)
{
    const struct wire_open *o = &m->open;
    supersede_held(t, o->path);
    int64_t open_us = o->time_us != WIRE_ABSENT ? o->time_us : now_us;
    struct open_file **link, *old = find_file(c, o->id, &link);
    if (old) {
        *link = old->next;
        finish_incomplete(t, c, old, now_us, "the agent reused the file's id before closing it");
    }
    struct open_file *f = calloc(1, sizeof *f);
    if (!f || !(f->record = record_new(&c->who, o->path))) {
        free(f);
        return false;
    }
    f->id = o->id;
    f->open_us = open_us;
    f->record->time_us = open_us;
    f->next = c->files;
    c->files = f;
    return true;
}

static bool on_data(struct tracker *t, struct tracker_conn *c, struct wire_message *m,
                    int64_t now_us)
{
    (void)t;
    struct wire_data *d = &m->data;
    struct open_file *f = file_for(c, d->id, now_us, NULL);
    if (!f) return false;
    if (d->reset) record_clear_findings(f->record);
    if (d->bytes != WIRE_ABSENT) f->progress_bytes = d->bytes;
    if (d->writes != WIRE_ABSENT) f->record->writes = d->writes;
    if (d->format && !record_set_string(&f->record->format, d->format)) return false;
    record_append_findings(f->record, d->values, d->tensors, d->errors);
    if (d->texts) record_append_printed(f->record, d->texts);
    return true;
}

/* Findings the agent dropped on the way (its queue was full): the record is not all the
 * file holds, and says how much is missing. */
static void say_lost(struct record *r, const struct wire_close *d)
{
    char text[160];
    snprintf(text, sizeof text,
             "%lld tensors and %lld values lost: the agent's queue to the collector was full",
             (long long)(d->lost_tensors > 0 ? d->lost_tensors : 0),
             (long long)(d->lost_values > 0 ? d->lost_values : 0));
    record_add_error(r, text);
}

/* Opens r's file now, at its close, for the check of its CRCs after the rename hold
 * (digester.h): a checkpoint deleted or replaced within the hold (rotation, a quick
 * overwrite by a new file) is still checked. Only the file the close described is kept,
 * and never in the upper half of the descriptor limit, which stays the agents'. */
static void pin_for_crc(struct record *r)
{
    static rlim_t limit;
    struct rlimit rl;
    if (!limit) limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    struct stat st;
    int fd = open_regular(r->path, &st);
    if (fd < 0) return;
    if ((rlim_t)fd >= limit / 2 || file_id_differs(&r->closed, &st))
        close(fd);
    else
        r->crc_fd = fd;
}

static bool on_close(struct tracker *t, struct tracker_conn *c, struct wire_message *m,
                     int64_t now_us)
{
    struct wire_close *d = &m->close;
    struct open_file **link, *f = file_for(c, d->id, now_us, &link);
    if (!f) return false;
    *link = f->next;
    struct record *r = f->record;
    r->time_us = d->time_us != WIRE_ABSENT ? d->time_us : now_us;
    r->bytes = d->bytes != WIRE_ABSENT ? d->bytes : f->progress_bytes;
    if (d->writes != WIRE_ABSENT) r->writes = d->writes;
    r->seconds = !isnan(d->seconds) ? d->seconds : (double)(r->time_us - f->open_us) / 1e6;
    r->complete = d->complete;
    r->crc_left = d->crc_left;
    r->closed = (struct file_id){.known = d->ino > 0 && d->dev != WIRE_ABSENT &&
                                          d->mtime_us != WIRE_ABSENT && d->bytes != WIRE_ABSENT,
                                 .dev = d->dev,
                                 .ino = d->ino,
                                 .size = d->bytes,
                                 .mtime_us = d->mtime_us};
    bool ok = (!d->path || record_set_string(&r->path, d->path)) &&
              (!d->written_as || record_set_string(&r->written_as, d->written_as)) &&
              (!d->format || record_set_string(&r->format, d->format)) &&
              (!d->parsed || record_set_parsed(r, d->parsed));
    if (d->lost_tensors > 0 || d->lost_values > 0) say_lost(r, d);
    if (ok && t->digester && crc_to_check(r)) pin_for_crc(r);
    free(f);
    if (recovered_before(t)) {
        record_free(r); /* in the log already, or held by the recovery */
    } else {
        if (ok && r->complete) read_from_disk(c, r);
        hold_candidate(t, r, now_us, d->candidate, &t->origin);
    }
    return ok;
}

static bool rename_record(struct record *r, const char *to)
{
    return (r->written_as || record_set_string(&r->written_as, r->path)) &&
           record_set_string(&r->path, to);
}

/* The newest record held under the name from (closed within the rename window) takes the
 * name to and is written; false when none is held. */
static bool rename_held(struct tracker *t, const struct tracker_conn *c, const char *from,
                        const char *to, bool *ok)
{
    struct pending **match = NULL; /* the newest record closed under that name */
    if (!may_hold(t, from)) return false;
    for (struct pending **p = &t->pending; *p; p = &(*p)->next)
        if (!strcmp((*p)->record->path, from)) match = p;
    if (!match) return false;
    struct record *r = unlink_pending(t, match); /* a candidate renamed is a checkpoint */
    *ok = rename_record(r, to);
    if (*ok && r->complete) read_from_disk(c, r);
    emit_and_free(t, r);
    return true;
}

static bool on_rename(struct tracker *t, struct tracker_conn *c, struct wire_message *m,
                      int64_t now_us)
{
    const char *from = m->rename.from, *to = m->rename.to;
    /* A file adopted under that name and still being parsed is the newest: its record
     * takes the new name, and still waits for a rename once it is parsed. */
    struct adoption *adopted = NULL;
    for (struct adoption *a = t->adoptions; a; a = a->next)
        if (!strcmp(a->record->path, from)) adopted = a;
    if (adopted) return rename_record(adopted->record, to);
    /* A directory renamed into place: the records held of files in it take their final
     * names, and the set it is commits (docs/sets.md). */
    size_t from_len = strlen(from);
    for (struct pending *p = t->pending; p; p = p->next) {
        char *moved = NULL;
        if (strncmp(p->record->path, from, from_len) || p->record->path[from_len] != '/' ||
            asprintf(&moved, "%s%s", to, p->record->path + from_len) < 0)
            continue;
        rename_record(p->record, moved);
        free(moved);
        t->held_paths[p->bucket]--;
        p->bucket = path_bucket(p->record->path);
        t->held_paths[p->bucket]++;
    }
    sets_renamed(t->sets, from, to, now_us);
    bool ok = true;
    if (!rename_held(t, c, from, to, &ok) && t->hold.renamed)
        /* its window has passed (the record was written as it was), or a killed collector
         * held it and the recovery holds it now */
        t->hold.renamed(t->hold.ctx, from, to);
    return ok;
}

static void adoption_free(struct adoption *a)
{
    if (a->parser) a->parser->destroy(a->parser);
    report_free(&a->report);
    record_free(a->record);
    free(a->keys.patterns);
    if (a->fd >= 0) close(a->fd);
    free(a);
}

static bool on_adopt(struct tracker *t, struct tracker_conn *c, struct wire_message *m,
                     int64_t now_us)
{
    const struct wire_rename *r = &m->rename;
    if (recovered_before(t)) return true;
    /* Another process's file, closed and held (`mv` after a program's save under a
     * temporary name): its streamed record takes the name, as for the writer's own rename. */
    bool renamed;
    if (rename_held(t, c, r->from, r->to, &renamed)) return renamed;
    struct adoption *a = calloc(1, sizeof *a);
    if (!a) return true; /* no memory: as if the file were gone */
    *a = (struct adoption){.fd = -1, .parse = c->parse, .origin = t->origin};
    a->time_us = r->time_us != WIRE_ABSENT ? r->time_us : now_us;
    report_init(&a->report, &a->keys);
    bool queued = (a->record = record_new(&c->who, r->to)) &&
                  record_set_string(&a->record->written_as, r->from) &&
                  keys_copy(&a->keys, c->keys.patterns, c->keys.count);
    if (!queued) {
        adoption_free(a); /* no memory: as if the file were gone */
        return true;
    }
    *t->adoptions_end = a;
    t->adoptions_end = &a->next;
    return true;
}

/* The adoption's turn: opens its file (under the name it has now) and starts a parser.
 * False when it is gone, not a regular file, or there is no memory. */
static bool start_adoption(struct tracker *t, struct adoption *a)
{
    struct stat st;
    const char *path = a->record->path;
    a->fd = open_regular(path, &st);
    if (a->fd >= 0) file_id_of(&a->start, &st);
    if (!(a->fd >= 0 && (t->read_buffer || (t->read_buffer = parse_read_buffer())) &&
          (a->parser = parser_detect_new(path, &a->report, &a->parse))))
        return false;
    if (t->hash) a->parser = digest_tap_new(a->parser);
    return true;
}

/* The adoption's file is parsed: its record waits for a rename like any other. */
static void finish_adoption(struct tracker *t, struct adoption *a, bool read_ok, int64_t now_us)
{
    bool complete = a->parser->finish(a->parser) && read_ok;
    const char *format = a->parser->format;
    record_read_disk_formats(a->fd, &format, &complete, &a->report, &a->parse);
    struct stat st;
    char digest[DIGEST_TEXT_SIZE];
    if (fstat(a->fd, &st) == 0 &&
        record_take_report(a->record, &st, &a->report, format, complete)) {
        if (read_ok && !file_id_differs(&a->start, &st) && digest_tap_text(a->parser, digest))
            record_set_string(&a->record->digest, digest);
        a->record->time_us = a->time_us;
        hold_for_rename(t, a->record, now_us, &a->origin);
        a->record = NULL;
    }
    adoption_free(a);
}

static bool on_exec(struct tracker *t, struct tracker_conn *c, struct wire_message *m,
                    int64_t now_us)
{
    (void)t, (void)now_us;
    const struct wire_exec *e = &m->exec;
    int64_t *kept = malloc(e->kept_count * sizeof *kept + 1);
    if (!kept) return false;
    if (e->kept_count) memcpy(kept, e->kept, e->kept_count * sizeof *kept);
    free(c->exec_kept);
    c->exec_kept = kept;
    c->exec_kept_count = e->kept_count;
    return true;
}

static bool on_exec_failed(struct tracker *t, struct tracker_conn *c, struct wire_message *m,
                           int64_t now_us)
{
    (void)t, (void)m, (void)now_us;
    free(c->exec_kept);
    c->exec_kept = NULL;
    return true;
}

static bool kept_by_exec(const struct tracker_conn *c, int64_t id)
{
    for (size_t i = 0; i < c->exec_kept_count; i++)
        if (c->exec_kept[i] == id) return true;
    return false;
}

/* The connection of a program that exec'd ended: a file the new program kept is its
 * agent's to report; one the exec closed is finished, so its record comes from disk. */
static void finish_exec(struct tracker *t, struct tracker_conn *c, int64_t now_us)
{
    for (struct open_file **p = &c->files; *p;) {
        struct open_file *f = *p;
        bool kept = kept_by_exec(c, f->id);
        struct record *r = kept ? NULL : parse_on_disk(t, c, f->record->path, INT64_MAX);
        if (!kept && !r) {
            p = &f->next; /* gone, or no memory: reported as torn below */
            continue;
        }
        *p = f->next;
        if (r) {
            r->time_us = now_us;
            r->writes = f->record->writes;
            r->seconds = now_us > f->open_us ? (double)(now_us - f->open_us) / 1e6 : 0;
            hold_for_rename(t, r, now_us, &(struct origin){0});
        }
        record_free(f->record);
        free(f);
    }
}

static bool on_unmatched(struct tracker *t, struct tracker_conn *c, struct wire_message *m,
                         int64_t now_us)
{
    (void)c, (void)now_us;
    for (size_t i = 0; t->unmatched && i < m->unmatched.path_count; i++)
        t->unmatched(t->unmatched_ctx, m->unmatched.paths[i]);
    return true;
}

/* From `ckmon verify`: a failure, written to the log as the verify record it is. */
static bool on_verified(struct tracker *t, struct tracker_conn *c, struct wire_message *m,
                        int64_t now_us)
{
    (void)c, (void)now_us;
    if (t->verified) t->verified(t->verified_ctx, m->verified.record);
    return true;
}

static bool on_load(struct tracker *t, struct tracker_conn *c, struct wire_message *m,
                    int64_t now_us)
{
    if (!t->load) return true;
    for (struct pending **p = &t->pending; *p && may_hold(t, m->load.path);)
        if (!(*p)->candidate && !strcmp((*p)->record->path, m->load.path))
            release_pending(t, p);
        else
            p = &(*p)->next;
    write_digested(t, false, m->load.path); /* its digest is waited for: the writer comes first */
    t->load(t->load_ctx, &c->who, &m->load, now_us);
    return true;
}

typedef bool (*message_handler)(struct tracker *t, struct tracker_conn *c, struct wire_message *m,
                                int64_t now_us);

static const message_handler handlers[WIRE_KINDS] = {
    [WIRE_HELLO] = on_hello,         [WIRE_OPEN] = on_open,
    [WIRE_DATA] = on_data,           [WIRE_CLOSE] = on_close,
    [WIRE_RENAME] = on_rename,       [WIRE_ADOPT] = on_adopt,
    [WIRE_EXEC] = on_exec,           [WIRE_EXEC_FAILED] = on_exec_failed,
    [WIRE_UNMATCHED] = on_unmatched, [WIRE_VERIFIED] = on_verified,
    [WIRE_LOAD] = on_load,
};

void tracker_message(struct tracker *t, struct tracker_conn *c, const char *data, size_t len,
                     int64_t now_us)
{
    struct wire_message m;
    t->now_us = now_us;
    enum wire_status status = wire_decode(data, len, &m);
    if (status == WIRE_OK && m.seq) {
        if (m.seq > c->taken) c->taken = m.seq;
        if (c->session && m.seq <= c->session->taken) { /* taken before: sent again */
            t->counts.resent++;
            return wire_message_free(&m);
        }
        if (c->session) {
            c->session->taken = m.seq;
            c->session->seen_us = now_us;
        }
    }
    t->origin = (struct origin){.seq = status == WIRE_OK && c->session ? m.seq : 0};
    if (t->origin.seq) memcpy(t->origin.session, c->session->name, sizeof t->origin.session);
    if (status == WIRE_OK && !handlers[m.kind]) status = WIRE_UNKNOWN; /* an ack: the agent's */
    if (status == WIRE_OK && !handlers[m.kind](t, c, &m, now_us)) status = WIRE_MALFORMED;
    if (status == WIRE_MALFORMED)
        t->counts.malformed++;
    else if (status == WIRE_UNKNOWN)
        t->counts.unknown_kind++;
    wire_message_free(&m);
}

static void finish_open_files(struct tracker *t, struct tracker_conn *c, int64_t now_us,
                              const char *why)
{
    while (c->files) {
        struct open_file *f = c->files;
        c->files = f->next;
        finish_incomplete(t, c, f, now_us, why);
    }
}

void tracker_disconnect(struct tracker *t, struct tracker_conn *c, int64_t now_us)
{
    char why[96];
    snprintf(why, sizeof why, "process %ld ended while the file was open", c->who.pid);
    if (c->exec_kept) finish_exec(t, c, now_us);
    t->now_us = now_us;
    finish_open_files(t, c, now_us, why);
    sets_process_ended(t->sets, c->who.pid, now_us);
    unlink_conn(t, c);
}

int64_t tracker_next_due(const struct tracker *t)
{
    if (t->adoptions) return 0; /* at once: the next slice */
    int64_t pending = t->pending ? t->pending->since_us + RENAME_WINDOW_US : -1;
    int64_t set = sets_next_due(t->sets);
    return pending < 0 || (set >= 0 && set < pending) ? set : pending;
}

bool tracker_parse_adopted(struct tracker *t, int64_t now_us)
{
    t->now_us = now_us;
    struct adoption *a = t->adoptions;
    if (!a) return false;
    bool started = a->parser || start_adoption(t, a);
    enum parse_slice result =
        started ? parse_feed_slice(a->fd, &a->offset, a->offset + ADOPT_SLICE_BYTES, t->read_buffer,
                                   a->parser, &a->report)
                : PARSE_READ_FAILED;
    if (result != PARSE_MORE) {
        if (!(t->adoptions = a->next)) t->adoptions_end = &t->adoptions;
        if (started)
            finish_adoption(t, a, result == PARSE_AT_END, now_us);
        else
            adoption_free(a); /* gone again, not a regular file, or no memory */
    }
    return t->adoptions != NULL;
}

void tracker_expire(struct tracker *t, int64_t now_us)
{
    t->now_us = now_us;
    /* A clock set back must not hold a record for longer than its window. */
    while (t->pending &&
           (now_us >= t->pending->since_us + RENAME_WINDOW_US || now_us < t->pending->since_us))
        release_pending(t, &t->pending);
    write_digested(t, false, NULL);
    sets_expire(t->sets, now_us);
}

static void emit_pending(struct tracker *t)
{
    while (t->pending)
        release_pending(t, &t->pending);
}

void tracker_shutdown(struct tracker *t, int64_t now_us)
{
    t->now_us = now_us;
    for (struct tracker_conn *c = t->conns; c; c = c->next)
        finish_open_files(t, c, now_us, "still open when the collector stopped");
    /* Everything known is written before the adopted files are parsed, which can take
     * long enough for a service manager to lose patience and kill the collector. */
    emit_pending(t);
    while (tracker_parse_adopted(t, now_us))
        emit_pending(t);
    emit_pending(t);
    write_digested(t, true, NULL);
    sets_shutdown(t->sets, now_us);
}

int64_t tracker_taken(const struct tracker_conn *c)
{
    return c->taken;
}

const char *tracker_unfinished(const struct tracker_conn *c, long *pid)
{
    *pid = c->who.pid;
    return c->files && c->session ? c->session->name : NULL;
}

bool tracker_session_open(const struct tracker *t, const char *session)
{
    const struct session *s = find_session(t, session);
    return s && s->connections;
}

const struct tracker_counts *tracker_counts(const struct tracker *t)
{
    return &t->counts;
}
