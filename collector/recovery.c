/* recovery.c — the rename hold's journal, the agent spool's import, and what was lost
 * (see recovery.h). */
#include "recovery.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/agent_spool.h"
#include "core/jsontext.h"
#include "core/strbuf.h"
#include "core/wire.h"
#include "record.h"
#include "state.h"
#include "tracker.h"

#define JOURNAL_PREFIX "held-"
#define JOURNAL_SUFFIX ".jsonl"
#define SETS_PREFIX    "sets-"
#define SETS_SUFFIX    ".json"
#define SETS_MAX       (64u << 20) /* a dead collector's sets are read up to this */
#define JOURNAL_MAX    (1u << 30)  /* a dead journal is read up to this */
#define LOG_TAIL       (16u << 20) /* the log's end, for records already written */
/* A killed collector's held record waits this long here for its rename: the agent that
 * renamed the file sends the rename again once it has reconnected, which takes up to
 * its reconnect interval (a second) after this collector started. */
#define RECOVERED_HOLD_US (RENAME_WINDOW_US + 2000000LL)
/* How long the origins of a killed collector's records are remembered (and kept in the
 * journal for the next one): an agent sends again what it has not seen acknowledged at
 * its next message, which may be its next checkpoint. */
#define ORIGINS_KEEP_US (600 * 1000000LL)
#define ORIGINS_MAX     65536

struct remembered {
    struct origin origin;
    int64_t until_us;
};

/* A record a killed collector held for a rename, held here again until its rename comes
 * (sent again by its agent) or its time is up. */
struct recovered_line {
    char *line; /* as journaled, newline included */
    size_t len;
    char *path; /* its "path" */
    struct origin origin;
    int64_t due_us;
    unsigned long key;
};

struct recovery {
    struct state st;
    struct log_writer *log;
    struct tracker *tracker; /* once attached: where spool files go */
    const char *socket_path;
    int64_t spool_due_us;
    int journal_fd;
    char journal_name[64];
    char sets_name[64]; /* the sets in progress here, replaced on every change */
    const void **held;  /* the records journaled and not yet written */
    size_t held_count, held_capacity;
    struct remembered *origins; /* records killed collectors had journaled */
    size_t origin_count, origin_capacity;
    struct recovered_line *lines;
    size_t line_count, line_capacity;
    unsigned long next_key;
    bool journaled; /* written to since the journal was last emptied */
    bool failed;    /* the journal could not be written: said once */
};

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- reading what is left ---- */

/* The first size bytes of fd from offset (fewer at its end); malloc'd, *len set. */
static char *read_span(int fd, off_t offset, size_t size, size_t *len)
{
    char *buf = malloc(size + 1);
    *len = 0;
    while (buf && *len < size) {
        ssize_t n = pread(fd, buf + *len, size - *len, offset + (off_t)*len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        *len += (size_t)n;
    }
    if (buf) buf[*len] = '\0';
    return buf;
}

/* The end of the log, where a record a dead collector wrote just before it died would
 * be; NULL when the log is stdout or unreadable. */
static char *log_tail(const struct log_writer *log, size_t *len)
{
    struct stat st;
    int fd = log->owns_fd ? open(log->name, O_RDONLY | O_CLOEXEC | O_NONBLOCK) : -1;
    char *tail = NULL;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        off_t from = st.st_size > (off_t)LOG_TAIL ? st.st_size - (off_t)LOG_TAIL : 0;
        tail = read_span(fd, from, (size_t)(st.st_size - from), len);
    }
    if (fd >= 0) close(fd);
    return tail;
}

/* Whether the log's tail holds the record of journal line (its text up to "program"
 * is the same in both: time, host and pid, before a rename changed anything). */
static bool already_written(const char *tail, size_t tail_len, const char *line, size_t len)
{
    const char *end = tail ? memmem(line, len, ",\"program\":", 11) : NULL;
    return end && memmem(tail, tail_len, line, (size_t)(end - line)) != NULL;
}

struct entry {
    char *key, *line; /* into the journal's text */
    size_t line_len;
    struct origin origin;
    bool written;
};

/* "SESSION:SEQ" into *o; false when it is not one. */
static bool parse_origin(const char *text, size_t len, struct origin *o)
{
    const char *colon = memchr(text, ':', len);
    char *end;
    if (!colon || colon == text || (size_t)(colon - text) > ORIGIN_SESSION_MAX) return false;
    long long seq = strtoll(colon + 1, &end, 10);
    if (end != text + len || seq <= 0) return false;
    *o = (struct origin){.seq = seq};
    memcpy(o->session, text, (size_t)(colon - text));
    return true;
}

static void grow(void **array, size_t *capacity, size_t count, size_t size)
{
    if (count < *capacity) return;
    size_t grown_capacity = *capacity ? *capacity * 2 : 64;
    void *grown = realloc(*array, grown_capacity * size);
    if (!grown) return;
    *array = grown;
    *capacity = grown_capacity;
}

/* A record a killed collector had journaled came from this message: if its agent sends
 * it again, the record is not made twice. */
static void remember(struct recovery *rc, const struct origin *o, int64_t now_us)
{
    if (!o->seq || rc->origin_count >= ORIGINS_MAX) return;
    grow((void **)&rc->origins, &rc->origin_capacity, rc->origin_count, sizeof *rc->origins);
    if (rc->origin_count < rc->origin_capacity)
        rc->origins[rc->origin_count++] =
            (struct remembered){.origin = *o, .until_us = now_us + ORIGINS_KEEP_US};
}

static void journal_write(struct recovery *rc, const char *head, const char *line, size_t len);

static void origin_word(const struct origin *o, char *out, size_t size)
{
    if (o->seq)
        snprintf(out, size, "%s:%lld ", o->session, (long long)o->seq);
    else
        out[0] = '\0';
}

/* The record line of a killed collector, held here for its rename (and journaled, for
 * the next collector should this one be killed too). */
static void hold_line(struct recovery *rc, const char *line, size_t len, const struct origin *o,
                      int64_t now_us)
{
    cJSON *record = cJSON_ParseWithLength(line, len);
    const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(record, "path"));
    grow((void **)&rc->lines, &rc->line_capacity, rc->line_count, sizeof *rc->lines);
    struct recovered_line l = {.line = malloc(len),
                               .len = len,
                               .path = path ? strdup(path) : NULL,
                               .origin = *o,
                               .due_us = now_us + RECOVERED_HOLD_US,
                               .key = ++rc->next_key};
    cJSON_Delete(record);
    if (rc->line_count == rc->line_capacity || !l.line || !l.path) { /* no memory: now */
        if (log_write(rc->log, line, len)) state_count(RECOVERED_HELD, 1);
        free(l.line);
        free(l.path);
        return;
    }
    memcpy(l.line, line, len);
    rc->lines[rc->line_count++] = l;
    char head[96], word[64];
    origin_word(o, word, sizeof word);
    snprintf(head, sizeof head, "+r%lu %s", l.key, word);
    journal_write(rc, head, line, len);
}

/* Writes recovered line i and forgets it. */
static void write_line(struct recovery *rc, size_t i, const char *line, size_t len)
{
    struct recovered_line *l = &rc->lines[i];
    if (log_write(rc->log, line, len)) state_count(RECOVERED_HELD, 1);
    char head[32];
    snprintf(head, sizeof head, "-r%lu\n", l->key);
    journal_write(rc, head, NULL, 0);
    free(l->line);
    free(l->path);
    rc->lines[i] = rc->lines[--rc->line_count];
}

/* Takes over what a dead collector's journal text holds: the records it never marked
 * written (held here for their renames), and where its records came from. */
static void replay(struct recovery *rc, char *text, size_t len, int64_t now_us)
{
    struct entry *entries = NULL;
    size_t count = 0, capacity = 0, tail_len = 0;
    char *tail = log_tail(rc->log, &tail_len);
    for (char *p = text, *end = text + len, *nl;
         p < end && (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1) {
        *nl = '\0';
        char *space = strchr(p, ' ');
        if (*p == '+' && space) {
            grow((void **)&entries, &capacity, count, sizeof *entries);
            if (count == capacity) break;
            struct entry e = {.key = p + 1};
            *space = '\0';
            char *record = space + 1, *word_end = strchr(record, ' ');
            if (*record != '{' && word_end) { /* "+ID SESSION:SEQ RECORD" */
                if (!parse_origin(record, (size_t)(word_end - record), &e.origin)) continue;
                record = word_end + 1;
            }
            *nl = '\n'; /* the record's line, written as it is */
            e.line = record;
            e.line_len = (size_t)(nl + 1 - record);
            entries[count++] = e;
        } else if (*p == '-') {
            for (size_t i = count; i-- > 0;)
                if (!entries[i].written && !strcmp(entries[i].key, p + 1)) {
                    entries[i].written = true;
                    break;
                }
        } else if (*p == '=') { /* an origin it had remembered from another */
            struct origin o;
            if (parse_origin(p + 1, strlen(p + 1), &o)) remember(rc, &o, now_us);
        } /* else a line cut short by the kill: nothing to write */
    }
    for (size_t i = 0; i < count; i++) {
        struct entry *e = &entries[i];
        remember(rc, &e->origin, now_us);
        if (e->written || already_written(tail, tail_len, e->line, e->line_len)) continue;
        hold_line(rc, e->line, e->line_len, &e->origin, now_us);
    }
    free(entries);
    free(tail);
}

/* The remembered origins into the journal, as "=SESSION:SEQ" lines, in one write. */
static void journal_origins(struct recovery *rc)
{
    struct strbuf text = {.limit = (size_t)ORIGINS_MAX * (ORIGIN_SESSION_MAX + 24)};
    for (size_t i = 0; i < rc->origin_count; i++) {
        const struct origin *o = &rc->origins[i].origin;
        sb_addf(&text, "=%s:%lld\n", o->session, (long long)o->seq);
    }
    if (text.s && !text.overflow) journal_write(rc, text.s, NULL, 0);
    free(text.s);
}

static bool named(const char *name, const char *prefix, const char *suffix)
{
    size_t len = strlen(name), n = strlen(prefix), m = strlen(suffix);
    return len > n + m && !strncmp(name, prefix, n) && !strcmp(name + len - m, suffix);
}

static bool journal_name(const char *name)
{
    return named(name, JOURNAL_PREFIX, JOURNAL_SUFFIX);
}

/* Replays and removes every journal in the state dir whose collector is gone (no one
 * holds its lock). Another collector starting at the same time may try the same one:
 * whoever locks it first replays it, and the other finds it removed (no links). */
static void replay_dead_journals(struct recovery *rc, int64_t now_us)
{
    int dir_fd = dup(rc->st.dir_fd);
    DIR *dir = dir_fd >= 0 ? fdopendir(dir_fd) : NULL;
    if (!dir) {
        if (dir_fd >= 0) close(dir_fd);
        return;
    }
    for (struct dirent *e; (e = readdir(dir));) {
        if (!journal_name(e->d_name)) continue;
        int fd = state_openat(&rc->st, e->d_name, O_RDWR | O_NONBLOCK);
        struct stat st;
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 &&
            S_ISREG(st.st_mode) && st.st_nlink > 0) {
            size_t len;
            size_t size = st.st_size > (off_t)JOURNAL_MAX ? JOURNAL_MAX : (size_t)st.st_size;
            char *text = read_span(fd, 0, size, &len);
            if (text) replay(rc, text, len, now_us);
            free(text);
            unlinkat(rc->st.dir_fd, e->d_name, 0);
        }
        if (fd >= 0) close(fd);
    }
    closedir(dir);
}

/* ---- journaling what is held ---- */

static void journal_write(struct recovery *rc, const char *head, const char *line, size_t len)
{
    struct iovec iov[2] = {{(void *)head, strlen(head)}, {(void *)line, len}};
    ssize_t want = (ssize_t)(iov[0].iov_len + len), n;
    if (rc->journal_fd < 0) return;
    rc->journaled = true;
    while ((n = writev(rc->journal_fd, iov, line ? 2 : 1)) < 0 && errno == EINTR) {
    }
    if (n != want && !rc->failed) {
        rc->failed = true;
        fprintf(stderr, "ckmon: cannot journal held records in %s/%s: %s (a kill may lose them)\n",
                rc->st.dir, rc->journal_name, n < 0 ? strerror(errno) : "short write");
    }
}

static void on_held(void *ctx, const struct record *r, const struct origin *o)
{
    struct recovery *rc = ctx;
    if (rc->held_count == rc->held_capacity) {
        size_t capacity = rc->held_capacity ? rc->held_capacity * 2 : 64;
        const void **grown = realloc(rc->held, capacity * sizeof *grown);
        if (!grown) return;
        rc->held = grown;
        rc->held_capacity = capacity;
    }
    char head[96], word[64];
    struct strbuf *line = &rc->log->record_line; /* the log's: it is printed there next */
    if (!record_line(r, line)) return;
    origin_word(o, word, sizeof word);
    snprintf(head, sizeof head, "+%lx %s", (unsigned long)(uintptr_t)r, word);
    journal_write(rc, head, line->s, line->len);
    rc->held[rc->held_count++] = r;
}

static void on_emitted(void *ctx, const struct record *r)
{
    struct recovery *rc = ctx;
    size_t i = 0;
    while (i < rc->held_count && rc->held[i] != r)
        i++;
    if (i == rc->held_count) return; /* never held */
    rc->held[i] = rc->held[--rc->held_count];
    char head[32];
    snprintf(head, sizeof head, "-%lx\n", (unsigned long)(uintptr_t)r);
    journal_write(rc, head, NULL, 0);
}

static bool on_recovered(void *ctx, const struct origin *o)
{
    struct recovery *rc = ctx;
    for (size_t i = rc->origin_count; i-- > 0;)
        if (rc->origins[i].origin.seq == o->seq &&
            !strcmp(rc->origins[i].origin.session, o->session))
            return true;
    return false;
}

/* A rename sent again by its agent names a record a killed collector held: it takes the
 * new name, as it would have there, and is written. */
static bool on_renamed(void *ctx, const char *from, const char *to)
{
    struct recovery *rc = ctx;
    size_t i = rc->line_count;
    while (i-- > 0 && strcmp(rc->lines[i].path, from)) {
    }
    if (i == (size_t)-1) return false;
    cJSON *old = cJSON_ParseWithLength(rc->lines[i].line, rc->lines[i].len),
          *record = cJSON_CreateObject();
    while (old && record && old->child) {
        cJSON *member = cJSON_DetachItemViaPointer(old, old->child);
        bool is_path = !strcmp(member->string, "path");
        cJSON_AddItemToObject(record, member->string, is_path ? cJSON_CreateString(to) : member);
        if (is_path && !cJSON_GetObjectItemCaseSensitive(old, "written_as"))
            cJSON_AddItemToObject(record, "written_as", cJSON_CreateString(from));
        if (is_path) cJSON_Delete(member);
    }
    char *text = old && record ? json_print_text(record) : NULL, *line = NULL;
    cJSON_Delete(old);
    cJSON_Delete(record);
    int n = text ? asprintf(&line, "%s\n", text) : -1;
    if (n > 0)
        write_line(rc, i, line, (size_t)n);
    else /* no memory: under the name it had */
        write_line(rc, i, rc->lines[i].line, rc->lines[i].len);
    free(text);
    free(line);
    return true;
}

/* ---- sets in progress ---- */

/* Replaces this collector's sets file with the sets in progress (none: removes it).
 * Not synced: it guards against a killed collector, not a crashed machine. */
static void save_sets(void *ctx, const struct sets *s)
{
    struct recovery *rc = ctx;
    cJSON *state = sets_state(s);
    char *text = cJSON_GetArraySize(state) ? cJSON_PrintUnformatted(state) : NULL, tmp[80];
    cJSON_Delete(state);
    if (!text) {
        unlinkat(rc->st.dir_fd, rc->sets_name, 0);
        return;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", rc->sets_name);
    int fd = state_openat(&rc->st, tmp, O_WRONLY | O_CREAT | O_TRUNC);
    size_t len = strlen(text), done = 0;
    while (fd >= 0 && done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    if (fd >= 0) close(fd);
    if (done != len || renameat(rc->st.dir_fd, tmp, rc->st.dir_fd, rc->sets_name) != 0) {
        unlinkat(rc->st.dir_fd, tmp, 0);
        if (!rc->failed)
            fprintf(stderr, "ckmon: cannot keep the sets in progress in %s/%s: %s\n", rc->st.dir,
                    rc->sets_name, strerror(errno));
        rc->failed = true;
    }
    free(text);
}

/* Whether the collector of pid is gone: its journal is not there, or nobody holds it. */
static bool collector_gone(const struct recovery *rc, long pid)
{
    char name[64];
    snprintf(name, sizeof name, JOURNAL_PREFIX "%ld" JOURNAL_SUFFIX, pid);
    if (pid == (long)getpid()) return true; /* a dead one of ours' */
    int fd = state_openat(&rc->st, name, O_RDONLY | O_NONBLOCK);
    bool gone = fd < 0 || flock(fd, LOCK_SH | LOCK_NB) == 0;
    if (fd >= 0) close(fd);
    return gone;
}

/* Takes over the sets dead collectors had in progress: each file is renamed to a name
 * of this collector's first, so that of two collectors starting at once one gets it. */
static void take_over_sets(struct recovery *rc, struct sets *sets)
{
    int dir_fd = dup(rc->st.dir_fd);
    DIR *dir = dir_fd >= 0 ? fdopendir(dir_fd) : NULL;
    char taken[80];
    snprintf(taken, sizeof taken, "%s.taken", rc->sets_name);
    if (dir) rewinddir(dir); /* the dup shares its offset with dir_fd, read before */
    for (struct dirent *e; dir && (e = readdir(dir));) {
        if (!named(e->d_name, SETS_PREFIX, SETS_SUFFIX) ||
            !collector_gone(rc, strtol(e->d_name + strlen(SETS_PREFIX), NULL, 10)) ||
            renameat(rc->st.dir_fd, e->d_name, rc->st.dir_fd, taken) != 0)
            continue;
        int fd = state_openat(&rc->st, taken, O_RDONLY | O_NONBLOCK);
        struct stat st;
        size_t len = 0;
        char *text =
            fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= (off_t)SETS_MAX
                ? read_span(fd, 0, (size_t)st.st_size, &len)
                : NULL;
        cJSON *saved = text ? cJSON_ParseWithLength(text, len) : NULL;
        if (cJSON_IsArray(saved)) sets_restore(sets, saved);
        cJSON_Delete(saved);
        free(text);
        if (fd >= 0) close(fd);
        unlinkat(rc->st.dir_fd, taken, 0);
    }
    if (dir)
        closedir(dir);
    else if (dir_fd >= 0)
        close(dir_fd);
}

/* ---- the agent spool ---- */

/* The session a spool file's first packet (its hello) names, into out ("" when none). */
static void spool_session(struct agent_spool_reader r, char *out, size_t size)
{
    const char *packet;
    size_t len;
    struct wire_message m;
    out[0] = '\0';
    if (!agent_spool_next(&r, &packet, &len) || wire_decode(packet, len, &m) != WIRE_OK) return;
    if (m.kind == WIRE_HELLO && m.hello.session) snprintf(out, size, "%s", m.hello.session);
    wire_message_free(&m);
}

/* Imports one spool file (named name) if it is meant for socket_path: as a connection of
 * its own, unless its session still has one (a collector that was stopped has not read
 * that connection to its end yet: the file continues it, when it ends, see
 * recovery_continue). With into, only a file of into's session, continuing into. */
static void import_file(struct tracker *t, int dir_fd, const char *name, const char *socket_path,
                        int64_t now_us, struct tracker_conn *into, const char *into_session)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    size_t len = 0;
    char *data = NULL, session[ORIGIN_SESSION_MAX + 1];
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
        st.st_size <= (off_t)AGENT_SPOOL_MAX_FILE)
        data = read_span(fd, 0, (size_t)st.st_size, &len);
    if (fd >= 0) close(fd);
    struct agent_spool_reader r;
    if (!data || len < 8 || memcmp(data, AGENT_SPOOL_MAGIC, 8) != 0) {
        state_count(LOST_SPOOL_FILES, 1); /* left where it is, for a look */
    } else if (agent_spool_open(&r, data, len, socket_path)) {
        spool_session(r, session, sizeof session);
        bool mine = into ? !strcmp(session, into_session)
                         : !session[0] || !tracker_session_open(t, session);
        struct tracker_conn *c = !mine  ? NULL
                                 : into ? into
                                        : tracker_connect(t, strtol(name, NULL, 10));
        const char *packet;
        size_t packet_len;
        if (into) agent_spool_next(&r, &packet, &packet_len); /* its hello: into has one */
        while (c && agent_spool_next(&r, &packet, &packet_len))
            tracker_message(t, c, packet, packet_len, now_us);
        if (c && !into) tracker_disconnect(t, c, now_us);
        if (c && unlinkat(dir_fd, name, 0) == 0) state_count(IMPORTED_SPOOL_FILES, 1);
    } /* else another socket's: its own collector takes it */
    free(data);
}

/* Imports the agent spool files meant for socket_path whose names start with prefix,
 * each as one connection (or continuing into). The directory must be ours and closed
 * to others, as the agent requires. */
static void import_spool(struct tracker *t, const char *socket_path, int64_t now_us,
                         const char *prefix, struct tracker_conn *into, const char *into_session)
{
    char path[PATH_MAX];
    if (!agent_spool_dir(socket_path, (unsigned)geteuid(), path, sizeof path)) return;
    int dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (dir_fd < 0) return;
    DIR *dir = NULL;
    if (fstat(dir_fd, &st) == 0 && st.st_uid == geteuid() && !(st.st_mode & 077))
        dir = fdopendir(dup(dir_fd));
    for (struct dirent *e; dir && (e = readdir(dir));) {
        size_t len = strlen(e->d_name), suffix = strlen(AGENT_SPOOL_SUFFIX);
        if (len > suffix && !strcmp(e->d_name + len - suffix, AGENT_SPOOL_SUFFIX) &&
            !strncmp(e->d_name, prefix, strlen(prefix)))
            import_file(t, dir_fd, e->d_name, socket_path, now_us, into, into_session);
    }
    if (dir) closedir(dir);
    close(dir_fd);
}

void recovery_continue(struct recovery *rc, struct tracker_conn *c, int64_t now_us)
{
    long pid;
    const char *session = rc && rc->tracker ? tracker_unfinished(c, &pid) : NULL;
    char prefix[32], name[ORIGIN_SESSION_MAX + 1];
    if (!session) return;
    snprintf(prefix, sizeof prefix, "%ld-", pid);
    snprintf(name, sizeof name, "%s", session);
    import_spool(rc->tracker, rc->socket_path, now_us, prefix, c, name);
}

void recovery_settle(struct recovery *rc, int64_t now_us)
{
    if (!rc || !rc->journaled || rc->held_count || rc->line_count || rc->journal_fd < 0) return;
    if (ftruncate(rc->journal_fd, 0) < 0) return; /* O_APPEND: from 0 again */
    size_t kept = 0;
    for (size_t i = 0; i < rc->origin_count; i++)
        if (rc->origins[i].until_us > now_us) rc->origins[kept++] = rc->origins[i];
    rc->origin_count = kept;
    journal_origins(rc);
    rc->journaled = false;
}

/* ---- the collector's life ---- */

struct recovery *recovery_open(const struct options *o, struct log_writer *log)
{
    char err[512];
    struct stat st;
    /* A log that is no file (stdout, /dev/null, a pipe) gets no state dir of its own
     * unless sinks or --state ask for one: nothing could resume it. */
    if (!o->state && !o->sink_count && (fstat(log->fd, &st) != 0 || !S_ISREG(st.st_mode)))
        return NULL;
    struct recovery *rc = calloc(1, sizeof *rc);
    if (!rc || !state_open(&rc->st, o, false, err, sizeof err)) {
        if (rc) fprintf(stderr, "ckmon: %s; records held for a rename are not journaled\n", err);
        free(rc);
        return NULL;
    }
    rc->log = log;
    snprintf(rc->journal_name, sizeof rc->journal_name, JOURNAL_PREFIX "%ld" JOURNAL_SUFFIX,
             (long)getpid());
    snprintf(rc->sets_name, sizeof rc->sets_name, SETS_PREFIX "%ld" SETS_SUFFIX, (long)getpid());
    /* A file by our pid is a dead collector's that could not be replayed: replaced. */
    unlinkat(rc->st.dir_fd, rc->journal_name, 0);
    rc->journal_fd = state_openat(&rc->st, rc->journal_name, O_RDWR | O_APPEND | O_CREAT | O_EXCL);
    if (rc->journal_fd < 0 || flock(rc->journal_fd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "ckmon: cannot start a journal in %s: %s\n", rc->st.dir, strerror(errno));
        if (rc->journal_fd >= 0) close(rc->journal_fd);
        rc->journal_fd = -1;
    }
    /* After this collector's journal is open: what it takes over is journaled there, in
     * case it is killed too (its own journal is locked, so not taken for a dead one's). */
    replay_dead_journals(rc, wall_us());
    journal_origins(rc);
    return rc;
}

void recovery_attach(struct recovery *rc, struct tracker *t, const char *socket_path,
                     int64_t now_us)
{
    if (!rc) return;
    struct hold_hooks hooks = {on_held, on_emitted, on_recovered, on_renamed, rc};
    tracker_set_hold(t, &hooks); /* without a journal too: the recovered records' renames */
    if (rc->journal_fd >= 0 && tracker_sets(t)) {
        sets_on_change(tracker_sets(t), save_sets, rc);
        take_over_sets(rc, tracker_sets(t));
    }
    rc->tracker = t;
    rc->socket_path = socket_path;
    recovery_poll(rc, now_us);
}

int64_t recovery_next_due(const struct recovery *rc)
{
    if (!rc || !rc->tracker) return -1;
    int64_t due = rc->spool_due_us;
    for (size_t i = 0; i < rc->line_count; i++)
        if (rc->lines[i].due_us < due) due = rc->lines[i].due_us;
    return due;
}

/* Writes the recovered records whose wait is over (all of them when now_us is -1). */
static void write_due_lines(struct recovery *rc, int64_t now_us)
{
    for (size_t i = rc->line_count; i-- > 0;)
        if (now_us < 0 || rc->lines[i].due_us <= now_us)
            write_line(rc, i, rc->lines[i].line, rc->lines[i].len);
}

void recovery_poll(struct recovery *rc, int64_t now_us)
{
    if (rc) write_due_lines(rc, now_us);
    /* Not due yet (a clock set back makes it due at once). */
    if (!rc || !rc->tracker ||
        (now_us < rc->spool_due_us && now_us >= rc->spool_due_us - RECOVERY_SPOOL_POLL_US))
        return;
    import_spool(rc->tracker, rc->socket_path, now_us, "", NULL, NULL);
    rc->spool_due_us = now_us + RECOVERY_SPOOL_POLL_US;
}

void recovery_detach(struct recovery *rc, const struct tracker *t)
{
    if (!rc) return;
    state_count(LOST_AGENT_MESSAGES, tracker_counts(t)->dropped);
    state_count(RESENT_MESSAGES, tracker_counts(t)->resent);
    write_due_lines(rc, -1);
    rc->tracker = NULL;
}

void recovery_close(struct recovery *rc, bool with_stats)
{
    if (!rc) return;
    write_due_lines(rc, -1);
    if (rc->journal_fd >= 0) {
        unlinkat(rc->st.dir_fd, rc->journal_name, 0);
        unlinkat(rc->st.dir_fd, rc->sets_name, 0); /* the server judged them as it stopped */
        close(rc->journal_fd);
    }
    unsigned long recovered = state_counted(RECOVERED_HELD),
                  imported = state_counted(IMPORTED_SPOOL_FILES),
                  lost = state_counted(LOST_AGENT_MESSAGES),
                  unreadable = state_counted(LOST_SPOOL_FILES);
    if (recovered || imported || lost || unreadable)
        fprintf(
            stderr,
            "ckmon: recovered %lu record(s) a stopped collector held and %lu agent spool "
            "file(s); lost %lu agent message(s) and %lu unreadable spool file(s) (%s/stats.json)\n",
            recovered, imported, lost, unreadable, rc->st.dir);
    if (with_stats) {
        struct collector_stats stats = {
            .log = rc->log->name, .written = rc->log->written, .write_failures = rc->log->failed};
        state_write_stats(&rc->st, &stats);
    }
    state_close(&rc->st);
    free(rc->held);
    free(rc->origins);
    free(rc->lines);
    free(rc);
}
