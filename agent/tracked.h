/* tracked.h — a checkpoint file being written, from open to last close.
 *
 * A tracked file owns a parser fed with the file's bytes in order, and reports what it
 * finds to the collector as it goes (open, findings, close). Writes that arrive out of
 * order (a gap, or a rewrite the parser cannot take) switch it to re-reading the
 * finished file at close; so does a file whose size at close differs from the bytes
 * seen (mmap, sendfile, copy_file_range writes are invisible to the wrappers).
 *
 * Wrapper shape for a write:   t = tracked_enter(fd);  if (!t) return REAL(f)(...);
 *                              r = REAL(f)(...);  tracked_wrote(t, ...);  return r;
 * tracked_enter locks the file across the real call so that concurrent writers on one
 * descriptor are fed to the parser in the order the kernel applied them.
 */
#ifndef CKMON_TRACKED_H
#define CKMON_TRACKED_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/budget.h"
#include "fdtable.h"
#include "core/parsers/parser.h"

#define AT_POSITION (-1LL) /* a write at the descriptor's own offset */

struct tracked {
    pthread_mutex_t lock;
    unsigned refs; /* descriptors + in-flight calls; guarded by the fd table lock */
    struct tracked *next_live;
    unsigned long long id;
    char path[PATH_MAX];
    char written_as[PATH_MAX];   /* "" unless renamed while open */
    long long open_us;           /* wall clock, for the record */
    long long open_ns;           /* monotonic, for "seconds" */
    unsigned long long pos;      /* where the next write() lands */
    unsigned long long streamed; /* bytes fed to the parser, in file order */
    unsigned long long writes;
    int64_t lost_tensors, lost_values; /* findings in data messages the channel dropped */
    unsigned long findings_sent;       /* report.findings when findings were last taken */
    bool append;
    bool reread;                /* parse the finished file at close instead */
    bool unannounced;           /* inherited through fork: reported only once this process writes */
    bool candidate;             /* followed for its first bytes under no glob's name */
    const char *format_sent;    /* the format the collector was last told */
    long long progress_ns;      /* monotonic time of the last data message */
    FILE *stream;               /* the stdio stream over it, flushed before an exit report */
    struct budget budget;       /* the statistics' safety net (budget.h) */
    struct parse_options parse; /* the agent's, with this file's budget when it has one */
    struct report report;
    struct parser *parser;
};

void agent_init(void);

/* After a successful open of path (relative to dirfd) with these flags: tracks fd if the
 * path names a checkpoint opened for writing. */
void tracked_opened(int fd, int dirfd, const char *path, int flags);
/* Same for a stdio stream; mode is fopen's. */
void tracked_opened_stream(FILE *stream, const char *path, const char *mode);
/* fdopen: remember the stream over a tracked descriptor. */
void tracked_stream_attached(FILE *stream);

/* Drops one reference; the last one reports the file, using fd (a descriptor to it, or
 * -1 to go by its path) to measure it. */
void tracked_release(struct tracked *t, int fd);

/* The wrappers' fast path, inlined into each: a descriptor that leads to no checkpoint
 * costs a bounds check, a load and a branch. */
struct tracked *tracked_enter_slow(int fd);
static inline struct tracked *tracked_enter(int fd)
{
    if (__builtin_expect(!fd_is_tracked(fd), 1)) return NULL;
    return tracked_enter_slow(fd);
}
struct tracked *tracked_enter_stream(FILE *stream);
/* The same for a write of the bytes head, n through stdio: a stream whose file no glob
 * matched (fopen of a temporary name) is decided by its first such write, as
 * tracked_decide decides a descriptor's. */
struct tracked *tracked_enter_stream_write(FILE *stream, const void *head, size_t n);
/* The first write to an undecided descriptor (FD_UNDECIDED): the file entered, as by
 * tracked_enter, when its first bytes (head, n, landing at offset) say it is a checkpoint;
 * otherwise NULL, and the descriptor takes the fast path from now on. */
struct tracked *tracked_decide(int fd, long long offset, const void *head, size_t n);
void tracked_leave(struct tracked *t);

/* The real call wrote n bytes (n <= 0: nothing) at offset, or at the position. Leaves. */
void tracked_wrote(struct tracked *t, long long offset, const void *buf, ssize_t n);
void tracked_wrotev(struct tracked *t, long long offset, const struct iovec *iov, int iovcnt,
                    ssize_t n);
/* fflush, fsync, fdatasync: the program says its bytes are written, so the collector is
 * told what is known now rather than at the next progress interval. Leaves. */
void tracked_synced(struct tracked *t);
/* Seeks and truncation move or invalidate the position. Each leaves. */
void tracked_moved(struct tracked *t, long long new_pos);
void tracked_truncated(struct tracked *t, long long length);

/* newfd now refers to oldfd's file (dup, dup2, dup3, fcntl F_DUPFD). */
void tracked_duplicated(int oldfd, int newfd);

/* Closing: begin before the real close (keeps a private descriptor to the file if this
 * is its last), end after it with whether the descriptor really closed. */
struct closing {
    struct tracked *t;
    int fd;
    int keep_fd;
};
bool tracked_close_begin(int fd, struct closing *c);
void tracked_close_end(struct closing *c, bool closed);
bool tracked_close_begin_stream(FILE *stream, struct closing *c);
/* close_range / closefrom: begin for every tracked descriptor in [first, last]; returns
 * how many closings were stored in *out (malloc'd; tracked_close_range_end frees it). */
size_t tracked_close_range_begin(unsigned first, unsigned last, struct closing **out);
void tracked_close_range_end(struct closing *cs, size_t n, bool closed);

/* A successful rename: a tracked file's path follows it; a recently closed one gets a
 * rename message so the collector can give its record the final path. */
void tracked_renamed(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

/* The process is ending: report every file still open. At exit (flush_streams) the
 * stdio stream over each is flushed first, as exit is about to; _exit loses what is
 * still buffered, and so must the file. */
void tracked_report_all_open(bool flush_streams);

/* exec (not in a vfork child): tells the collector which tracked files the new program
 * keeps open (a descriptor without FD_CLOEXEC; their numbers go to inherited, "3,7", for
 * INHERITED_VARIABLE) and that exec closes the rest. Nothing here changes agent state, so
 * a failed exec only needs tracked_exec_failed. Returns false when nothing is tracked. */
#define INHERITED_VARIABLE "CKMON_INHERITED"
bool tracked_exec_begin(char *inherited, size_t size);
void tracked_exec_failed(void);

#endif
