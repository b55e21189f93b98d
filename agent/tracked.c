/* tracked.c — the life of a checkpoint file inside the monitored program.
 *
 * open  → a tracked file with a parser, an "open" message to the collector
 * write → bytes fed to the parser in file order; findings sent as they appear
 * close → (last descriptor) the parser finishes, or the finished file is parsed again
 *         when the writes were not in order; a "close" message with the totals
 * The agent's own work runs with agent_busy set, so that nothing it calls, and no
 * signal handler that interrupts it, is tracked; errno is preserved across all of it.
 * Inside one of the program's signal handlers (signals.h) the agent does no work at all:
 * it only marks the descriptor (fdtable_mark), and the file is read back at its close.
 */
#include "tracked.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "config.h"
#include "fdtable.h"
#include "core/jsontext.h"
#include "loads.h"
#include "real.h"
#include "signals.h"
#include "sys.h"
#include "unmatched.h"
#include "core/wire.h"

#define FINDINGS_PER_MESSAGE (WIRE_MAX_MESSAGE / 2) /* serialised bytes, with headroom */
#define FINDINGS_BATCH       64 /* tensors and values gathered while the collector is behind */
#define RECENT_CLOSED        32
#define PROGRESS_INTERVAL_NS 250000000LL
#define EXEC_KEPT_MAX        128 /* more than the descriptor list of wrap_exec.c holds */

static bool initialized;
static pid_t agent_pid; /* the process whose files the tables describe */
static unsigned long long next_id;
static unsigned long long candidates; /* of the ids: files followed for their bytes only */
/* Set once a stream was opened on a file no glob matched: until then stdio writes need
 * not look for an undecided descriptor (tracked_enter_stream_write). */
static bool undecided_streams;
static struct tracked *live; /* every tracked file, under the fd table lock */

/* Paths closed in the last RENAME_WINDOW_US, so that a rename right after close reaches
 * the collector. */
static struct {
    char path[PATH_MAX];
    long long closed_ns;
} recent[RECENT_CLOSED];
static unsigned recent_next;
static pthread_mutex_t recent_lock = PTHREAD_MUTEX_INITIALIZER;

/* A vfork child (posix_spawn, CPython's subprocess) runs in its parent's memory until it
 * execs: it must leave the parent's table alone, so whatever it does to a tracked
 * descriptor (close_range before exec, above all) goes straight to the real call. A
 * forked child is its own process again once the fork handler has run. */
static bool foreign_process(void)
{
    return syscall(SYS_getpid) != agent_pid;
}

/* ---- references ---------------------------------------------------------------------- */

/* A tracked file is referenced by each descriptor slot that leads to it and by each call
 * between acquiring and releasing it; the counts change under the fd table's lock. */

/* With the lock held and t in fd's slot: what a signal handler did to fd. A write means
 * the file is read back at close; returns whether it closed fd (the slot is stale). */
static bool settle_marks(int fd, struct tracked *t)
{
    unsigned marks = fdtable_marks(fd);
    if (marks & FD_TOUCHED) __atomic_store_n(&t->reread, true, __ATOMIC_RELAXED);
    return marks & FD_CLOSED;
}

/* A new reference to the file behind fd, or NULL. Released with tracked_release. */
static struct tracked *acquire(int fd)
{
    fdtable_lock();
    struct tracked *t = fdtable_get(fd);
    if (t && settle_marks(fd, t)) t = NULL; /* fd is another file now */
    if (t) t->refs++;
    fdtable_unlock();
    return t;
}

/* Points fd at t with a new reference, and returns the reference that was in the slot
 * (the caller releases it), or NULL. */
static struct tracked *put(int fd, struct tracked *t)
{
    if ((unsigned)fd >= fd_capacity) return NULL;
    fdtable_lock();
    t->refs++;
    struct tracked *old = fdtable_get(fd);
    if (old) settle_marks(fd, old);
    fdtable_set(fd, t);
    fdtable_unlock();
    return old;
}

/* Empties fd's slot and hands its reference to the caller (NULL if it was empty);
 * *closed: a signal handler closed fd, so fd is not the file's any more. */
static struct tracked *take(int fd, bool *closed)
{
    *closed = false;
    fdtable_lock();
    struct tracked *t = fdtable_get(fd);
    if (t) *closed = settle_marks(fd, t);
    fdtable_set(fd, NULL);
    fdtable_unlock();
    return t;
}

/* ---- messages ---------------------------------------------------------------------- */

static struct wire_message data_message(const struct tracked *t)
{
    return (struct wire_message){.kind = WIRE_DATA,
                                 .data = {.id = (int64_t)t->id,
                                          .bytes = (int64_t)t->streamed,
                                          .writes = (int64_t)t->writes,
                                          .format = t->parser->format}};
}

static void delete_children(cJSON *container)
{
    while (container && container->child)
        cJSON_Delete(cJSON_DetachItemViaPointer(container, container->child));
}

/* Sends a data message and empties its findings' containers for the next one; what
 * the channel dropped is counted, for the close message to say. */
static void send_and_empty(struct tracked *t, struct wire_message *m)
{
    if (!channel_send(m)) t->lost_values += m->data.values ? cJSON_GetArraySize(m->data.values) : 0;
    delete_children(m->data.values);
    delete_children(m->data.errors);
}

/* Moves the items of found (values object, errors array) into data messages small
 * enough for one packet each. */
static void send_findings(struct tracked *t, cJSON *found)
{
    struct wire_message msg = data_message(t);
    cJSON **into[2] = {&msg.data.values, &msg.data.errors};
    size_t size = 0;
    static const char *const parts[] = {"values", "errors"};
    for (size_t p = 0; p < 2; p++) {
        cJSON *from = cJSON_GetObjectItemCaseSensitive(found, parts[p]);
        while (from && from->child) {
            cJSON *item = cJSON_DetachItemViaPointer(from, from->child);
            size_t item_size = json_text_bound(item) + 1;
            if (size > 0 && size + item_size > FINDINGS_PER_MESSAGE) {
                send_and_empty(t, &msg);
                size = 0;
            }
            if (!*into[p]) *into[p] = p == 0 ? cJSON_CreateObject() : cJSON_CreateArray();
            if (p == 0)
                cJSON_AddItemToObject(*into[p], item->string, item);
            else
                cJSON_AddItemToArray(*into[p], item);
            size += item_size;
        }
    }
    send_and_empty(t, &msg);
    for (size_t p = 0; p < 2; p++)
        cJSON_Delete(*into[p]);
}

/* Sends tensors [first, last) of the report's text in one data message. The text goes
 * in as it is, one raw item the encoder copies (jsontext.h: a cJSON_Raw prints as its
 * text), on the stack: no tree per tensor. The byte after the run is the next one's
 * comma or the text's end; it is a NUL while the message is encoded. */
static void send_tensor_run(struct tracked *t, size_t first, size_t last)
{
    struct tensor_texts *tt = &t->report.tensors;
    char *text = tt->text.s + (first ? tt->ends[first - 1] : 0) + 1,
         *end = tt->text.s + tt->ends[last - 1];
    char after = *end;
    *end = '\0';
    cJSON raw = {.type = cJSON_Raw, .valuestring = text},
          run = {.type = cJSON_Array, .child = &raw};
    raw.prev = &raw;
    struct wire_message m = data_message(t);
    m.data.tensors = &run;
    if (!channel_send(&m)) t->lost_tensors += (int64_t)(last - first);
    *end = after;
}

/* The report's tensors in data messages of up to FINDINGS_PER_MESSAGE bytes (a larger
 * tensor alone in one). */
static void send_tensors(struct tracked *t)
{
    struct tensor_texts *tt = &t->report.tensors;
    for (size_t first = 0, last; first < tt->count; first = last) {
        size_t start = first ? tt->ends[first - 1] : 0;
        for (last = first + 1; last < tt->count && tt->ends[last] - start <= FINDINGS_PER_MESSAGE;)
            last++;
        send_tensor_run(t, first, last);
    }
    report_clear_tensors(&t->report);
}

static void send_pending_findings(struct tracked *t)
{
    t->findings_sent = t->report.findings;
    send_tensors(t);
    if (!report_pending(&t->report)) return;
    cJSON *found = cJSON_CreateObject();
    report_take_but_tensors(&t->report, found);
    send_findings(t, found);
    cJSON_Delete(found);
}

/* Whether findings may wait for more: while the collector is behind (messages queue
 * up anyway), until a message's worth has gathered or the progress interval passed. A
 * file written one tensor per write then costs the collector one message per batch
 * instead of one per tensor. */
static bool gathering(const struct tracked *t, long long now)
{
    return channel_congested() && t->report.findings - t->findings_sent < FINDINGS_BATCH &&
           now - t->progress_ns < PROGRESS_INTERVAL_NS;
}

/* After a write: findings as soon as they are final (gathered while the collector is
 * behind), and otherwise the format once it is known and the byte and write counts now
 * and then, so that the record of a process killed mid-write (which the collector
 * writes) says what the file was. */
static void send_progress(struct tracked *t)
{
    long long now = monotonic_ns();
    bool format_news = t->parser->format != t->format_sent;
    bool findings = report_pending(&t->report) && !gathering(t, now);
    if (!format_news && !findings && now - t->progress_ns < PROGRESS_INTERVAL_NS) return;
    t->progress_ns = now;
    t->format_sent = t->parser->format;
    if (report_pending(&t->report)) return send_pending_findings(t);
    struct wire_message m = data_message(t);
    channel_send(&m);
}

/* ---- open ---------------------------------------------------------------------------- */

static bool is_regular_file(int fd)
{
    struct stat st;
    return syscall(SYS_fstat, fd, &st) == 0 && S_ISREG(st.st_mode);
}

static struct tracked *new_tracked(const char *abs_path, bool append)
{
    struct tracked *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    pthread_mutex_init(&t->lock, NULL);
    snprintf(t->path, sizeof t->path, "%s", abs_path);
    t->open_us = realtime_us();
    t->open_ns = monotonic_ns();
    t->append = append;
    report_init(&t->report, &agent_config.keys);
    budget_init(&t->budget, agent_config.budget_percent, monotonic_ns);
    t->parse = agent_config.parse;
    if (agent_config.budget_percent > 0) t->parse.budget = &t->budget;
    t->parser = parser_detect_new(abs_path, &t->report, &t->parse);
    if (!t->parser) {
        report_free(&t->report);
        free(t);
        return NULL;
    }
    t->format_sent = t->parser->format;
    t->progress_ns = t->open_ns;
    return t;
}

static void announce(struct tracked *t)
{
    t->unannounced = false;
    struct wire_message m = {
        .kind = WIRE_OPEN, .open = {.id = (int64_t)t->id, .path = t->path, .time_us = t->open_us}};
    channel_send(&m);
}

static struct tracked *track(int fd, const char *abs_path, bool append)
{
    struct tracked *t = new_tracked(abs_path, append);
    if (!t) return NULL;
    fdtable_lock();
    t->id = ++next_id;
    t->next_live = live;
    live = t;
    fdtable_unlock();
    announce(t);
    struct tracked *stale = put(fd, t);
    if (stale) tracked_release(stale, -1);
    return t;
}

static bool write_intent(int flags)
{
    return (flags & O_ACCMODE) != O_RDONLY;
}

/* creates: the open makes a new file or empties one (noted when no glob matches it). */
static struct tracked *maybe_track(int fd, int dirfd, const char *path, bool append, bool creates)
{
    char abs_path[PATH_MAX];
    if (!initialized || fd < 0 || !path || !absolute_path(dirfd, path, abs_path, sizeof abs_path))
        return NULL;
    if (!config_is_checkpoint(abs_path)) {
        if (!creates) return NULL;
        /* Its first write decides whether it is a checkpoint saved under a temporary name
         * (tracked_decide). Only a mark in an empty slot: no allocation, lock or system
         * call (not even getpid: a vfork child's mark in its parent's table only makes a
         * write there look at its bytes once). */
        fdtable_undecide(fd);
        if (agent_config.note_unmatched && !foreign_process()) unmatched_note(abs_path);
        return NULL;
    }
    if (!is_regular_file(fd) || foreign_process()) return NULL;
    return track(fd, abs_path, append);
}

/* An open for reading that loads_wanted let through: a checkpoint read is a load. */
static void opened_for_reading(int fd, int dirfd, const char *path)
{
    if (!initialized) return;
    int saved = errno;
    agent_busy = true;
    if (!foreign_process()) loads_opened(fd, dirfd, path);
    agent_busy = false;
    errno = saved;
}

void tracked_opened(int fd, int dirfd, const char *path, int flags)
{
    /* A number whose undecided mark outlived its descriptor (closed by close_range or a
     * raw system call) is another file now. */
    fdtable_decided(fd);
    if (fd < 0 || agent_busy || in_signal_handler()) return;
    if (!write_intent(flags)) {
        if (loads_wanted(path, flags)) opened_for_reading(fd, dirfd, path);
        return;
    }
    int saved = errno;
    agent_busy = true;
    bool creates = (flags & O_TRUNC) || ((flags & O_CREAT) && !(flags & O_APPEND));
    maybe_track(fd, dirfd, path, flags & O_APPEND, creates);
    agent_busy = false;
    errno = saved;
}

void tracked_opened_stream(FILE *stream, const char *path, const char *mode)
{
    if (stream) fdtable_decided(fileno(stream));
    if (!stream || !mode || agent_busy || in_signal_handler()) return;
    if (!strpbrk(mode, "wa+")) {
        if (loads_wanted(path, O_RDONLY)) opened_for_reading(fileno(stream), AT_FDCWD, path);
        return;
    }
    int saved = errno;
    agent_busy = true;
    struct tracked *t =
        maybe_track(fileno(stream), AT_FDCWD, path, strchr(mode, 'a'), strpbrk(mode, "wx") != NULL);
    if (t) t->stream = stream;
    if (!t && fd_is_undecided(fileno(stream)))
        __atomic_store_n(&undecided_streams, true, __ATOMIC_RELAXED);
    agent_busy = false;
    errno = saved;
}

void tracked_stream_attached(FILE *stream)
{
    struct tracked *t = tracked_enter_stream(stream);
    if (!t) return;
    t->stream = stream;
    tracked_leave(t);
}

/* ---- writes -------------------------------------------------------------------------- */

static struct tracked *enter_acquired(struct tracked *t)
{
    if (!t) {
        agent_busy = false;
        return NULL;
    }
    pthread_mutex_lock(&t->lock);
    return t;
}

struct tracked *tracked_enter_slow(int fd)
{
    if (in_signal_handler()) {
        fdtable_mark(fd, FD_TOUCHED);
        return NULL;
    }
    if (agent_busy || foreign_process()) return NULL;
    agent_busy = true;
    return enter_acquired(acquire(fd));
}

/* Whether the write that lands at offset is the file's first bytes. */
static bool starts_file(int fd, long long offset)
{
    if (offset != AT_POSITION) return offset == 0;
    return syscall(SYS_lseek, fd, 0L, SEEK_CUR) == 0;
}

struct tracked *tracked_decide(int fd, long long offset, const void *head, size_t n)
{
    /* Decided once, whoever decides: only the thread that empties the slot looks further. */
    if (!fdtable_decided(fd) || !head || !parser_certain(head, n) || in_signal_handler() ||
        agent_busy || foreign_process())
        return NULL;
    int saved = errno;
    agent_busy = true;
    struct tracked *t = NULL;
    if (starts_file(fd, offset) && is_regular_file(fd)) {
        char link[40], path[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        long len = syscall(SYS_readlinkat, AT_FDCWD, link, path, sizeof path - 1);
        if (len > 0) {
            path[len] = '\0';
            t = track(fd, path, false);
        }
        if (t) {
            t->candidate = true;
            __atomic_add_fetch(&candidates, 1, __ATOMIC_RELAXED);
        }
    }
    errno = saved;
    return enter_acquired(t ? acquire(fd) : NULL);
}

/* The stream whose FILE lock this thread took in tracked_enter_stream, until it leaves. */
static __thread FILE *entered_stream __attribute__((tls_model("initial-exec")));

struct tracked *tracked_enter_stream(FILE *stream)
{
    /* Text, a seek, a flush: a stream whose file is undecided is no checkpoint's copy,
     * which fwrite alone writes from its first byte (tracked_enter_stream_write). */
    if (__builtin_expect(__atomic_load_n(&undecided_streams, __ATOMIC_RELAXED), 0) && stream)
        fdtable_decided(fileno(stream));
    if (__builtin_expect(__atomic_load_n(&fd_tracked_count, __ATOMIC_RELAXED) == 0, 1) ||
        agent_busy || !stream || !fd_is_tracked(fileno(stream)))
        return NULL;
    if (fdtable_decided(fileno(stream))) return NULL; /* stdio bytes are not looked at */
    if (in_signal_handler()) { /* not even the FILE lock: the handler may hold it */
        fdtable_mark(fileno(stream), FD_TOUCHED);
        return NULL;
    }
    /* The FILE lock before the file's: a thread holding flockfile(stream) that calls
     * fwrite_unlocked takes them in that order, so every stdio wrapper must too. */
    flockfile(stream);
    struct tracked *t = tracked_enter(fileno(stream));
    if (t)
        entered_stream = stream;
    else
        funlockfile(stream);
    return t;
}

struct tracked *tracked_enter_stream_write(FILE *stream, const void *head, size_t n)
{
    if (__builtin_expect(!__atomic_load_n(&undecided_streams, __ATOMIC_RELAXED), 1) || !stream ||
        agent_busy || !fd_is_undecided(fileno(stream)))
        return tracked_enter_stream(stream);
    /* The FILE lock first, as tracked_enter_stream takes it. The bytes stdio has not
     * flushed yet are not on disk, so the descriptor's position is the stream's only
     * before its first write: the one that decides. */
    flockfile(stream);
    struct tracked *t = tracked_decide(fileno(stream), AT_POSITION, head, n);
    if (t) {
        t->stream = stream;
        entered_stream = stream;
    } else {
        funlockfile(stream);
    }
    return t;
}

void tracked_leave(struct tracked *t)
{
    int saved = errno;
    pthread_mutex_unlock(&t->lock);
    tracked_release(t, -1);
    if (entered_stream) {
        funlockfile(entered_stream);
        entered_stream = NULL;
    }
    agent_busy = false;
    errno = saved;
}

/* Feeds bytes that landed at offset, keeping the parser's view in file order. */
static void feed_at(struct tracked *t, unsigned long long offset, const void *buf, size_t n)
{
    if (t->reread || n == 0 || t->parser->on_disk) return; /* HDF5: the collector reads it */
    unsigned long long end = offset + n;
    if (offset > t->streamed || (offset < t->streamed && !t->parser->tolerates_rewrites)) {
        t->reread = true; /* a gap, or bytes the parser already took were changed */
        return;
    }
    if (end <= t->streamed) return; /* a rewrite the parser does not need */
    size_t skip = (size_t)(t->streamed - offset);
    t->parser->feed(t->parser, (const unsigned char *)buf + skip, n - skip);
    t->streamed = end;
}

static unsigned long long write_offset(struct tracked *t, long long offset)
{
    if (offset != AT_POSITION) return (unsigned long long)offset;
    return t->append ? t->streamed : t->pos;
}

static void wrote_done(struct tracked *t, long long offset, ssize_t n)
{
    if (offset == AT_POSITION) t->pos = write_offset(t, offset) + (unsigned long long)n;
    send_progress(t);
}

void tracked_wrote(struct tracked *t, long long offset, const void *buf, ssize_t n)
{
    int saved = errno;
    if (t->unannounced) announce(t);
    t->writes++;
    if (n > 0) {
        feed_at(t, write_offset(t, offset), buf, (size_t)n);
        wrote_done(t, offset, n);
    }
    errno = saved;
    tracked_leave(t);
}

void tracked_wrotev(struct tracked *t, long long offset, const struct iovec *iov, int iovcnt,
                    ssize_t n)
{
    int saved = errno;
    if (t->unannounced) announce(t);
    t->writes++;
    if (n > 0) {
        unsigned long long at = write_offset(t, offset);
        size_t left = (size_t)n;
        for (int i = 0; i < iovcnt && left > 0; i++) {
            size_t len = iov[i].iov_len < left ? iov[i].iov_len : left;
            feed_at(t, at, iov[i].iov_base, len);
            at += len;
            left -= len;
        }
        wrote_done(t, offset, n);
    }
    errno = saved;
    tracked_leave(t);
}

void tracked_synced(struct tracked *t)
{
    int saved = errno;
    t->progress_ns = 0;
    if (!t->unannounced) send_progress(t);
    errno = saved;
    tracked_leave(t);
}

void tracked_moved(struct tracked *t, long long new_pos)
{
    if (new_pos >= 0) t->pos = (unsigned long long)new_pos;
    tracked_leave(t);
}

void tracked_truncated(struct tracked *t, long long length)
{
    if (length >= 0 && (unsigned long long)length < t->streamed) t->reread = true;
    tracked_leave(t);
}

void tracked_duplicated(int oldfd, int newfd)
{
    if (oldfd == newfd || agent_busy || !fd_is_tracked(oldfd) || in_signal_handler() ||
        foreign_process())
        return;
    int saved = errno;
    agent_busy = true;
    struct tracked *t = acquire(oldfd);
    if (t) {
        struct tracked *stale = put(newfd, t);
        if (stale) tracked_release(stale, -1);
        tracked_release(t, -1);
    }
    agent_busy = false;
    errno = saved;
}

/* ---- close --------------------------------------------------------------------------- */

static void remember_closed(const char *path)
{
    pthread_mutex_lock(&recent_lock);
    snprintf(recent[recent_next].path, PATH_MAX, "%s", path);
    recent[recent_next].closed_ns = monotonic_ns();
    recent_next = (recent_next + 1) % RECENT_CLOSED;
    pthread_mutex_unlock(&recent_lock);
}

/* Whether path is dir or below it. */
static bool under(const char *path, const char *dir, size_t dir_len)
{
    return strncmp(path, dir, dir_len) == 0 && (path[dir_len] == '/' || path[dir_len] == '\0');
}

/* Whether one of the last RECENT_CLOSED checkpoints closed was in directory dir (however
 * long ago): a directory filled, then renamed into place (docs/sets.md). */
static bool closed_under(const char *dir)
{
    size_t len = strlen(dir);
    bool found = false;
    pthread_mutex_lock(&recent_lock);
    for (unsigned i = 0; i < RECENT_CLOSED && !found; i++)
        found =
            recent[i].closed_ns && recent[i].path[len] == '/' && under(recent[i].path, dir, len);
    pthread_mutex_unlock(&recent_lock);
    return found;
}

static bool closed_recently(const char *path)
{
    long long now = monotonic_ns();
    bool found = false;
    pthread_mutex_lock(&recent_lock);
    for (unsigned i = 0; i < RECENT_CLOSED && !found; i++)
        found = recent[i].closed_ns && now - recent[i].closed_ns <= RENAME_WINDOW_US * 1000 &&
                strcmp(recent[i].path, path) == 0;
    pthread_mutex_unlock(&recent_lock);
    return found;
}

/* Parses the finished file again from disk, through a read-only descriptor to the same
 * file (it may be open write-only, or already unlinked). */
static bool reparse(struct tracked *t, int fd, const char **format)
{
    struct wire_message reset = data_message(t);
    reset.data.reset = true;
    channel_send(&reset);

    char link[40];
    int rfd = -1;
    if (fd >= 0) {
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        rfd = (int)syscall(SYS_openat, AT_FDCWD, link, O_RDONLY | O_CLOEXEC);
    }
    if (rfd < 0) rfd = (int)syscall(SYS_openat, AT_FDCWD, t->path, O_RDONLY | O_CLOEXEC);
    report_free(&t->report);
    report_init(&t->report, &agent_config.keys);
    if (rfd < 0) {
        report_error(&t->report, "written out of order and could not be read back: %s",
                     strerror(errno));
        return false;
    }
    bool complete = parse_fd(rfd, t->path, &t->report, &t->parse, format);
    raw_close(rfd);
    return complete;
}

static void finalize(struct tracked *t, int fd)
{
    struct stat st;
    long long size = -1;
    if ((fd >= 0 ? syscall(SYS_fstat, fd, &st)
                 : syscall(SYS_newfstatat, AT_FDCWD, t->path, &st, 0)) == 0)
        size = st.st_size;
    const char *format;
    bool complete;
    bool reread = !t->parser->on_disk &&
                  (t->reread || (size >= 0 && (unsigned long long)size != t->streamed));
    if (reread) {
        complete = reparse(t, fd, &format);
    } else {
        complete = t->parser->finish(t->parser);
        format = t->parser->format; /* a short file's format is decided by finish */
    }
    send_pending_findings(t);

    struct wire_message m = {
        .kind = WIRE_CLOSE,
        .close = {.id = (int64_t)t->id,
                  .time_us = realtime_us(),
                  .path = t->path,
                  .written_as = t->written_as[0] ? t->written_as : NULL,
                  .format = format,
                  .bytes = size >= 0 ? size : (int64_t)t->streamed,
                  .writes = (int64_t)t->writes,
                  .dev = size >= 0 ? (int64_t)st.st_dev : WIRE_ABSENT,
                  .ino = size >= 0 ? (int64_t)st.st_ino : WIRE_ABSENT,
                  .mtime_us = size >= 0
                                  ? (int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000
                                  : WIRE_ABSENT,
                  .seconds = (double)(monotonic_ns() - t->open_ns) / 1e9,
                  .complete = complete,
                  .parsed = reread ? "reread" : "stream",
                  .lost_tensors = t->lost_tensors,
                  .lost_values = t->lost_values,
                  .candidate = t->candidate && !config_is_checkpoint(t->path),
                  .crc_left = t->report.crc_left}};
    channel_send(&m);
    remember_closed(t->path);
}

static void unlink_live(struct tracked *t)
{
    for (struct tracked **p = &live; *p; p = &(*p)->next_live)
        if (*p == t) {
            *p = t->next_live;
            return;
        }
}

void tracked_release(struct tracked *t, int fd)
{
    fdtable_lock();
    bool last = --t->refs == 0;
    if (last) unlink_live(t);
    fdtable_unlock();
    if (!last) return;
    bool was_busy = agent_busy;
    agent_busy = true;
    if (!t->unannounced) finalize(t, fd);
    t->parser->destroy(t->parser);
    report_free(&t->report);
    pthread_mutex_destroy(&t->lock);
    free(t);
    agent_busy = was_busy;
}

bool tracked_close_begin(int fd, struct closing *c)
{
    c->t = NULL;
    if (!fd_is_tracked(fd) || fdtable_decided(fd)) return false;
    if (in_signal_handler()) {
        fdtable_mark(fd, FD_CLOSED); /* reported when the slot is next taken or reused */
        return false;
    }
    if (agent_busy || foreign_process()) return false;
    agent_busy = true;
    int saved = errno;
    c->fd = fd;
    bool closed;
    c->t = take(fd, &closed);
    if (c->t && closed) { /* a handler closed the file's descriptor; fd is another file */
        tracked_release(c->t, -1);
        c->t = NULL;
    }
    /* The last descriptor: keep a private one so that the file can be measured (and read
     * again if needed) after the program's close has flushed everything. */
    c->keep_fd = c->t && __atomic_load_n(&c->t->refs, __ATOMIC_RELAXED) == 1 ? raw_dup(fd) : -1;
    errno = saved;
    if (!c->t) agent_busy = false;
    return c->t != NULL;
}

void tracked_close_end(struct closing *c, bool closed)
{
    if (!c->t) return;
    int saved = errno;
    if (closed) {
        tracked_release(c->t, c->keep_fd);
    } else {
        struct tracked *stale = put(c->fd, c->t); /* the close failed: still open */
        if (stale) tracked_release(stale, -1);
        tracked_release(c->t, -1);
    }
    if (c->keep_fd >= 0) raw_close(c->keep_fd);
    agent_busy = false;
    errno = saved;
}

bool tracked_close_begin_stream(FILE *stream, struct closing *c)
{
    c->t = NULL;
    if (__builtin_expect(__atomic_load_n(&fd_tracked_count, __ATOMIC_RELAXED) == 0, 1) || !stream)
        return false;
    if (!tracked_close_begin(fileno(stream), c)) return false;
    /* The file may live on through another descriptor (numpy fcloses an fdopen(dup(fd))
     * stream and keeps fd): exit must not flush a FILE that fclose is about to free. */
    pthread_mutex_lock(&c->t->lock);
    if (c->t->stream == stream) c->t->stream = NULL;
    pthread_mutex_unlock(&c->t->lock);
    return true;
}

size_t tracked_close_range_begin(unsigned first, unsigned last, struct closing **out)
{
    *out = NULL;
    unsigned high = __atomic_load_n(&fd_high_water, __ATOMIC_RELAXED);
    if (__atomic_load_n(&fd_tracked_count, __ATOMIC_RELAXED) == 0 || agent_busy || first >= high ||
        foreign_process()) /* a vfork child (subprocess) must not allocate */
        return 0;
    if (last >= high) last = high - 1;
    if (in_signal_handler()) {
        for (unsigned fd = first; fd <= last; fd++)
            if (fd_is_tracked((int)fd)) fdtable_mark((int)fd, FD_CLOSED);
        return 0;
    }
    size_t n = 0;
    for (unsigned fd = first; fd <= last; fd++)
        n += fd_is_tracked((int)fd);
    struct closing *cs = n ? calloc(n, sizeof *cs) : NULL;
    size_t got = 0;
    for (unsigned fd = first; cs && fd <= last && got < n; fd++) {
        if (tracked_close_begin((int)fd, &cs[got])) got++;
        agent_busy = false; /* each begin sets it; the range is one call */
    }
    *out = cs;
    return got;
}

void tracked_close_range_end(struct closing *cs, size_t n, bool closed)
{
    for (size_t i = 0; i < n; i++) {
        agent_busy = true;
        tracked_close_end(&cs[i], closed);
    }
    free(cs);
}

/* ---- rename ------------------------------------------------------------------------- */

/* "rename": a checkpoint closed moments ago has its final name. "adopt": a file whose
 * writes were not watched (its name matched no glob) became a checkpoint by this rename;
 * the collector parses it from disk (with the --sample and --keys of this process's
 * hello), so that the program does not pay for reading it back. */
static void send_rename(enum wire_kind kind, const char *from, const char *to)
{
    struct wire_message m = {
        .kind = kind,
        .rename = {
            .from = from, .to = to, .time_us = kind == WIRE_ADOPT ? realtime_us() : WIRE_ABSENT}};
    channel_send(&m);
}

void tracked_renamed(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    if (!initialized || agent_busy || in_signal_handler() || foreign_process()) return;
    int saved = errno;
    agent_busy = true;
    char from[PATH_MAX], to[PATH_MAX];
    if (absolute_path(olddirfd, oldpath, from, sizeof from) &&
        absolute_path(newdirfd, newpath, to, sizeof to)) {
        bool open_now = false, open_under = false;
        size_t from_len = strlen(from);
        char moved[PATH_MAX];
        fdtable_lock();
        for (struct tracked *t = live; t; t = t->next_live)
            if (under(t->path, from, from_len)) { /* the file, or a directory it is in */
                if (!t->written_as[0]) memcpy(t->written_as, t->path, sizeof t->path);
                snprintf(moved, sizeof moved, "%s%s", to, t->path + from_len);
                memcpy(t->path, moved, sizeof moved);
                open_now |= t->path[strlen(to)] == '\0';
                open_under |= t->path[strlen(to)] == '/';
            }
        fdtable_unlock();
        bool named = config_is_checkpoint(from) || config_is_checkpoint(to);
        if (!open_now && named && closed_recently(from))
            send_rename(WIRE_RENAME, from, to);
        else if (!open_now && (open_under || closed_under(from)))
            send_rename(WIRE_RENAME, from, to); /* a directory of checkpoints: a set */
        else if (!open_now && !config_is_checkpoint(from) && config_is_checkpoint(to))
            send_rename(WIRE_ADOPT, from, to);
    }
    agent_busy = false;
    errno = saved;
}

/* ---- process lifecycle --------------------------------------------------------------- */

void tracked_report_all_open(bool flush_streams)
{
    /* A vfork child (posix_spawn, Python's subprocess) shares the parent's memory and
     * leaves through _exit: the files are the parent's to report, not its. */
    /* Busy or in a handler: _exit from a signal handler, which may have interrupted the
     * agent or malloc; the collector records those files as torn instead. */
    if (!initialized || agent_busy || in_signal_handler() || foreign_process()) return;
    int saved = errno;
    agent_busy = true;
    unsigned high = __atomic_load_n(&fd_high_water, __ATOMIC_RELAXED);
    for (unsigned fd = 0; fd < high; fd++) {
        bool closed = false;
        struct tracked *t = fd_is_tracked((int)fd) ? take((int)fd, &closed) : NULL;
        if (!t) continue;
        if (closed) {
            tracked_release(t, -1);
            continue;
        }
        /* exit() flushes stdio only after destructors. A file inherited through fork is the
         * parent's until this process writes it: its buffer is the parent's bytes too. */
        if (flush_streams && t->stream && !t->unannounced) REAL(fflush)(t->stream);
        tracked_release(t, (int)fd);
    }
    /* No checkpoint under a glob's name here: perhaps a wrong glob. */
    if (next_id == __atomic_load_n(&candidates, __ATOMIC_RELAXED)) unmatched_report();
    channel_flush();
    agent_busy = false;
    errno = saved;
}

/* A forked child's copy of a file its parent was writing: the child's own record, read
 * back from disk at its close (the bytes before the fork were fed to the parent's
 * parser, not this one), announced only once the child writes to it. A child that just
 * inherits the descriptor and closes it, or execs, says nothing: the parent reports. */
static struct tracked *inherit(const struct tracked *parent)
{
    struct tracked *t = new_tracked(parent->path, parent->append);
    if (!t) return NULL;
    t->id = ++next_id;
    t->unannounced = true;
    t->reread = true;
    t->open_us = parent->open_us;
    t->open_ns = parent->open_ns;
    t->stream = parent->stream;
    memcpy(t->written_as, parent->written_as, sizeof t->written_as);
    return t;
}

static void after_fork_child(void)
{
    /* The parent's objects are left as they are (another thread may have held their
     * locks at the fork); the child swaps its slots to copies of its own. */
    agent_pid = (pid_t)syscall(SYS_getpid);
    fdtable_after_fork_child();
    pthread_mutex_init(&recent_lock, NULL);
    channel_after_fork_child();
    unmatched_after_fork_child();
    struct tracked *parents = live;
    live = NULL;
    for (struct tracked *p = parents; p; p = p->next_live) {
        struct tracked *t = inherit(p);
        if (t) {
            t->next_live = live;
            live = t;
        }
        unsigned slots = fdtable_repoint(p, t);
        if (t) t->refs += slots;
    }
}

/* ---- exec ---------------------------------------------------------------------------- */

bool tracked_exec_begin(char *inherited, size_t size)
{
    inherited[0] = '\0';
    if (!initialized || agent_busy || __atomic_load_n(&fd_tracked_count, __ATOMIC_RELAXED) == 0 ||
        in_signal_handler() || foreign_process())
        return false;
    /* Files inherited through fork and never written here are the parent's to report:
     * with only those, the collector has nothing to hear (and no connection to make). */
    bool announced = false;
    fdtable_lock();
    for (struct tracked *t = live; t && !announced; t = t->next_live)
        announced = !t->unannounced;
    fdtable_unlock();
    if (!announced) return false;
    int saved = errno;
    agent_busy = true;
    int64_t kept[EXEC_KEPT_MAX];
    struct wire_message m = {.kind = WIRE_EXEC, .exec = {.kept = kept}};
    size_t len = 0;
    fdtable_lock();
    unsigned high = fd_high_water;
    for (unsigned fd = 0; fd < high; fd++) {
        struct tracked *t = fdtable_get((int)fd);
        if (!t || t->unannounced || (syscall(SYS_fcntl, fd, F_GETFD) & FD_CLOEXEC)) continue;
        int n = snprintf(inherited + len, size - len, "%s%u", len ? "," : "", fd);
        if (n < 0 || (size_t)n >= size - len || m.exec.kept_count == EXEC_KEPT_MAX) break;
        len += (size_t)n;
        kept[m.exec.kept_count++] = (int64_t)t->id;
    }
    fdtable_unlock();
    channel_send(&m);
    channel_flush(); /* the socket closes with the old program */
    agent_busy = false;
    errno = saved;
    return true;
}

void tracked_exec_failed(void)
{
    int saved = errno;
    agent_busy = true;
    struct wire_message m = {.kind = WIRE_EXEC_FAILED};
    channel_send(&m);
    agent_busy = false;
    errno = saved;
}

/* After exec: the descriptors the old program's agent listed in INHERITED_VARIABLE are
 * this program's checkpoints now. Their earlier bytes were parsed by the old program, so
 * each is read back from disk at its close. The variable was the agent's, not the
 * program's: it is removed before the program can see it. */
static void adopt_inherited(void)
{
    const char *list = getenv(INHERITED_VARIABLE);
    for (const char *p = list; p && *p; p += strcspn(p, ","), p += *p == ',') {
        int fd = atoi(p);
        char link[40], path[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        long n = syscall(SYS_readlinkat, AT_FDCWD, link, path, sizeof path - 1);
        int flags = (int)syscall(SYS_fcntl, fd, F_GETFL);
        if (n <= 0 || flags < 0 || !write_intent(flags)) continue;
        path[n] = '\0';
        struct tracked *t = maybe_track(fd, AT_FDCWD, path, flags & O_APPEND, false);
        if (t) t->reread = true;
    }
    if (list) unsetenv(INHERITED_VARIABLE);
}

static void before_fork(void)
{
    fdtable_lock();
}

static void after_fork_parent(void)
{
    fdtable_unlock();
}

void agent_init(void)
{
    if (initialized) return;
    real_resolve();
    config_load();
    fdtable_init();
    agent_pid = (pid_t)syscall(SYS_getpid);
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    initialized = true;
    adopt_inherited();
}

__attribute__((constructor)) static void agent_load(void)
{
    agent_init();
}

__attribute__((destructor)) static void agent_unload(void)
{
    tracked_report_all_open(true);
}
