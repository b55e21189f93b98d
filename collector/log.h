/* log.h — the JSONL log: one record per line, each line one write().
 *
 * Several collectors (or a collector and `ckmon inspect >> log`) may append to the same
 * file; O_APPEND plus a single write per line keeps their lines whole.
 *
 * The log is also what remote sinks deliver from (delivery.h), so a writer can rotate
 * by size (segments.h) without deleting a segment a sink has not delivered yet, copy
 * every line to a spool when the log itself is stdout, and wake the sinks after a line.
 *
 * A full file system (ENOSPC, EDQUOT) is waited out, not a loss: lines that cannot be
 * written are held in memory, in order, up to LOG_HOLD_BYTES, said once on stderr, and
 * written by log_retry (the collector calls it every LOG_RETRY_US) once space returns.
 */
#ifndef CKMON_LOG_H
#define CKMON_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "record.h"

struct log_writer {
    int fd;
    bool owns_fd;          /* false for stdout */
    bool private;          /* in the state dir: symlinks never followed, mode 0600 */
    char *name;            /* as given, for messages; "-" is stdout */
    unsigned long written; /* lines written */
    unsigned long failed;  /* lines lost to write errors */

    /* Rotation, for a file log: after a line takes it to max_bytes or more (0: never),
     * LOG becomes LOG.<n> and a new LOG starts; only the newest `keep` rotated
     * segments are kept, and none that still_needed() says a sink needs. */
    unsigned long long max_bytes;
    unsigned long keep;
    off_t size;
    bool (*still_needed)(void *ctx, unsigned long seq);
    void *needed_ctx;
    struct log_writer *copy;        /* every line also goes there (the sinks' spool), or NULL */
    void (*after_write)(void *ctx); /* called after each line: the sinks' wake-up */
    void *after_ctx;
    void (*observe)(void *ctx, const char *line, size_t len); /* each line: /metrics */
    void *observe_ctx;
    struct held_line *held, **held_tail; /* waiting for space, oldest first */
    size_t held_bytes;
    /* Where a record bound for this log is printed (and the collector's journal of held
     * records, collector/recovery.c): kept, it keeps its room from record to record. A
     * record of 100,000 tensors is 35 MB, and printing it into fresh memory each time
     * cost a page fault per 4 KiB; one buffer for both keeps the peak memory as it was. */
    struct strbuf record_line;
};

#define LOG_HOLD_BYTES (64u << 20)
#define LOG_RETRY_US   1000000

/* Opens (creating, mode 0644) the log for appending; "-" is stdout. Refuses a log that is
 * not ours (owned.h). Returns 0, or -1 with a one-line message in err. */
int log_open(struct log_writer *w, const char *path, char *err, size_t err_size);
/* The same for a file in a directory of ours (the spool in the state dir): a symlink
 * there is never followed, and the file is created mode 0600. */
int log_open_private(struct log_writer *w, const char *path, char *err, size_t err_size);
/* Writes one line (which ends in '\n'); the first failure is reported on stderr. */
bool log_write(struct log_writer *w, const char *line, size_t len);
bool log_record(struct log_writer *w, const struct record *r);
/* Writes the held lines that fit now, the copy's too; true when none is left held. */
bool log_retry(struct log_writer *w);
static inline bool log_holding(const struct log_writer *w)
{
    return w->held != NULL || (w->copy && w->copy->held != NULL);
}
/* Opens the file again by its name (SIGHUP, after another tool moved it away). */
void log_reopen(struct log_writer *w);
/* Closes the log and says on stderr how many records were lost, if any; returns that
 * number, so that the exit status can say it too. */
unsigned long log_close(struct log_writer *w);

#endif
