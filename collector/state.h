/* state.h — the state dir: what the collector must not lose across a restart.
 *
 * One collector at a time owns a state dir (a lock file); in it are each sink's
 * cursor (where in the log its delivery stands) and dead letters, the spool the sinks
 * read when the log is stdout, and stats.json, the counters of the last collector.
 * Every file is replaced whole (written beside it, then renamed) or only appended to,
 * so a collector killed at any moment leaves a state the next one can read.
 *
 * Layout (docs/sinks.md): lock, stats.json, spool.jsonl[.N] for a stdout log, held-PID.jsonl
 * and sets-PID.json (recovery.h), and per
 * sink FORMAT-HASH.cursor and FORMAT-HASH.dead.jsonl.
 */
#ifndef CKMON_STATE_H
#define CKMON_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "log.h"
#include "options.h"

struct state {
    char *dir;   /* as given or derived, for messages and paths */
    int dir_fd;  /* every file in it is opened relative to this */
    int lock_fd; /* holds the flock */
};

/* Where a sink's delivery stands: a file of the log (by identity) and an offset in it. */
struct cursor {
    dev_t dev;
    ino_t ino;
    off_t offset;
};

/* A sink's counters, as stats.json shows them. */
struct sink_counts {
    unsigned long received, sent, retried, dead_lettered, dropped, skipped, undelivered;
};

struct sink_stats {
    const char *sink, *id; /* FORMAT=URL (password hidden), FORMAT-HASH */
    struct sink_counts counts;
};

struct collector_stats {
    const char *log;
    unsigned long written, write_failures;
    const struct sink_stats *sinks;
    size_t sink_count;
};

/* What this collector took over from a killed one and from agents that found none, and
 * what it knows was lost (recovery.h); in stats.json as "recovery". One per process:
 * any thread may count, and stats.json shows them whoever writes it. */
enum recovery_counter {
    RECOVERED_HELD,       /* records a killed collector held for a rename, written now */
    IMPORTED_SPOOL_FILES, /* agent spool files imported */
    LOST_AGENT_MESSAGES,  /* messages agents said they lost (their hellos' "dropped") */
    LOST_SPOOL_FILES,     /* agent spool files that could not be read */
    RESENT_MESSAGES,      /* agent messages taken before, skipped when sent again */
    RECOVERY_COUNTERS
};
void state_count(enum recovery_counter which, unsigned long n);
unsigned long state_counted(enum recovery_counter which);

/* The state dir: --state, else LOG.state beside the log, else (stdout)
 * ./ckmon-stdout.state; malloc'd. */
char *state_dir_path(const struct options *o);

/* Creates (mode 0700) the state dir, and with lock locks it: two collectors moving the
 * same cursors would each believe the other's deliveries. Refuses a directory that is
 * not ours, or that others can write (owned.h). False with a one-line message in err. */
bool state_open(struct state *st, const struct options *o, bool lock, char *err, size_t err_size);
void state_close(struct state *st);

/* DIR/NAME; malloc'd. */
char *state_path(const struct state *st, const char *name);

/* Opens NAME in the state dir with flags (O_NOFOLLOW and O_CLOEXEC added), mode 0600. */
int state_openat(const struct state *st, const char *name, int flags);

/* Loads cursor NAME: true with *c set when it exists and reads as a cursor; false with
 * *exists false when there is none, or *exists true when it is unreadable or garbled. */
bool state_load_cursor(const struct state *st, const char *name, struct cursor *c, bool *exists);
/* Replaces cursor NAME, synced; false with errno set when it could not. */
bool state_save_cursor(const struct state *st, const char *name, const struct cursor *c);
/* Appends one line (ending in '\n') to NAME; false when not all of it is there. */
bool state_append(const struct state *st, const char *name, const char *line, size_t len);
/* Replaces stats.json with s (not synced: it is a view, not a promise). */
bool state_write_stats(const struct state *st, const struct collector_stats *s);

/* Opens the spool (spool.jsonl, rotated at max_bytes, keeping only what a sink still
 * needs) that the sinks read when the log is stdout. */
bool state_open_spool(const struct state *st, struct log_writer *spool,
                      unsigned long long max_bytes, char *err, size_t err_size);

#endif
