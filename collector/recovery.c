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
#include <unistd.h>

#include "core/agent_spool.h"
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
    bool failed; /* the journal could not be written: said once */
};

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
    bool written;
};

/* Writes the records of a dead collector's journal text that it never marked written. */
static void replay(struct recovery *rc, char *text, size_t len)
{
    struct entry *entries = NULL;
    size_t count = 0, capacity = 0, tail_len = 0;
    char *tail = log_tail(rc->log, &tail_len);
    for (char *p = text, *end = text + len, *nl;
         p < end && (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1) {
        *nl = '\0';
        char *space = strchr(p, ' ');
        if (*p == '+' && space) {
            if (count == capacity) {
                size_t grown_capacity = capacity ? capacity * 2 : 64;
                struct entry *grown = realloc(entries, grown_capacity * sizeof *grown);
                if (!grown) break;
                entries = grown;
                capacity = grown_capacity;
            }
            *space = '\0';
            *nl = '\n'; /* the record's line, written as it is */
            entries[count++] = (struct entry){p + 1, space + 1, (size_t)(nl + 1 - space - 1)};
        } else if (*p == '-') {
            for (size_t i = count; i-- > 0;)
                if (!entries[i].written && !strcmp(entries[i].key, p + 1)) {
                    entries[i].written = true;
                    break;
                }
        } /* else a line cut short by the kill: nothing to write */
    }
    for (size_t i = 0; i < count; i++) {
        struct entry *e = &entries[i];
        if (e->written || already_written(tail, tail_len, e->line, e->line_len)) continue;
        if (log_write(rc->log, e->line, e->line_len)) state_count(RECOVERED_HELD, 1);
    }
    free(entries);
    free(tail);
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
static void replay_dead_journals(struct recovery *rc)
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
            if (text) replay(rc, text, len);
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
    while ((n = writev(rc->journal_fd, iov, line ? 2 : 1)) < 0 && errno == EINTR) {
    }
    if (n != want && !rc->failed) {
        rc->failed = true;
        fprintf(stderr, "ckmon: cannot journal held records in %s/%s: %s (a kill may lose them)\n",
                rc->st.dir, rc->journal_name, n < 0 ? strerror(errno) : "short write");
    }
}

static void on_held(void *ctx, const struct record *r)
{
    struct recovery *rc = ctx;
    if (rc->held_count == rc->held_capacity) {
        size_t capacity = rc->held_capacity ? rc->held_capacity * 2 : 64;
        const void **grown = realloc(rc->held, capacity * sizeof *grown);
        if (!grown) return;
        rc->held = grown;
        rc->held_capacity = capacity;
    }
    size_t len;
    char *line = record_to_line(r, &len), head[32];
    if (!line) return;
    snprintf(head, sizeof head, "+%lx ", (unsigned long)(uintptr_t)r);
    journal_write(rc, head, line, len);
    free(line);
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
    if (rc->held_count == 0 && ftruncate(rc->journal_fd, 0) < 0) { /* O_APPEND: from 0 again */
    }
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

/* Imports one spool file (fd, named name) if it is meant for socket_path. */
static void import_file(struct tracker *t, int dir_fd, const char *name, const char *socket_path,
                        int64_t now_us)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    size_t len = 0;
    char *data = NULL;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
        st.st_size <= (off_t)AGENT_SPOOL_MAX_FILE)
        data = read_span(fd, 0, (size_t)st.st_size, &len);
    if (fd >= 0) close(fd);
    struct agent_spool_reader r;
    if (!data || len < 8 || memcmp(data, AGENT_SPOOL_MAGIC, 8) != 0) {
        state_count(LOST_SPOOL_FILES, 1); /* left where it is, for a look */
    } else if (agent_spool_open(&r, data, len, socket_path)) {
        struct tracker_conn *c = tracker_connect(t, strtol(name, NULL, 10));
        const char *packet;
        size_t packet_len;
        while (c && agent_spool_next(&r, &packet, &packet_len))
            tracker_message(t, c, packet, packet_len, now_us);
        if (c) tracker_disconnect(t, c, now_us);
        if (c && unlinkat(dir_fd, name, 0) == 0) state_count(IMPORTED_SPOOL_FILES, 1);
    } /* else another socket's: its own collector takes it */
    free(data);
}

/* Imports the agent spool files meant for socket_path, each as one connection. The
 * directory must be ours and closed to others, as the agent requires. */
static void import_spool(struct tracker *t, const char *socket_path, int64_t now_us)
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
        if (len > suffix && !strcmp(e->d_name + len - suffix, AGENT_SPOOL_SUFFIX))
            import_file(t, dir_fd, e->d_name, socket_path, now_us);
    }
    if (dir) closedir(dir);
    close(dir_fd);
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
    replay_dead_journals(rc);
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
    return rc;
}

void recovery_attach(struct recovery *rc, struct tracker *t, const char *socket_path,
                     int64_t now_us)
{
    if (!rc) return;
    if (rc->journal_fd >= 0) tracker_set_hold(t, on_held, on_emitted, rc);
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
    return rc && rc->tracker ? rc->spool_due_us : -1;
}

void recovery_poll(struct recovery *rc, int64_t now_us)
{
    /* Not due yet (a clock set back makes it due at once). */
    if (!rc || !rc->tracker ||
        (now_us < rc->spool_due_us && now_us >= rc->spool_due_us - RECOVERY_SPOOL_POLL_US))
        return;
    import_spool(rc->tracker, rc->socket_path, now_us);
    rc->spool_due_us = now_us + RECOVERY_SPOOL_POLL_US;
}

void recovery_detach(struct recovery *rc, const struct tracker *t)
{
    if (!rc) return;
    state_count(LOST_AGENT_MESSAGES, tracker_counts(t)->dropped);
    rc->tracker = NULL;
}

void recovery_close(struct recovery *rc, bool with_stats)
{
    if (!rc) return;
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
    free(rc);
}
