/* recovery.h — what a killed collector and agents that found none left behind.
 *
 * Records a collector holds for a rename (up to a second after their file closed) are
 * in memory only; a collector killed then would lose them. So each held record is also
 * appended to a journal in the state dir, held-PID.jsonl ("+ID RECORD"), and marked
 * written ("-ID") once it is in the log; the journal is emptied whenever nothing is
 * held and every agent has been acknowledged what it sent. A collector starting with the
 * same state dir takes over every record of a dead collector's journal (one whose lock
 * no process holds) not marked written: held for a rename its agent sends again, then
 * written. It also remembers where the dead collector's records came from (an agent's
 * session and message number, "+ID SESSION:SEQ RECORD"), so that a message sent again
 * by an agent that was not acknowledged does not make a record twice; those are kept in
 * its own journal ("=SESSION:SEQ") for ten minutes, for the next collector.
 *
 * Sets in progress (sets.h) are in memory too: each change replaces sets-PID.json in the
 * state dir with them, and a collector starting takes over (restores, then removes) the
 * sets files of collectors that are gone (their journals no longer locked).
 *
 * An agent that could reach no collector at exit leaves its queue in the agent spool
 * beside the socket (core/agent_spool.h); the collector imports the files meant for its
 * socket as if each were the connection of that process, then removes them: at its
 * start, and every second while it runs.
 *
 * What is recovered or known lost is counted (state.h, stats.json "recovery") and said
 * in one line when the collector stops (docs/security.md, "Collector killed").
 */
#ifndef CKMON_RECOVERY_H
#define CKMON_RECOVERY_H

#include <stdint.h>

#include "log.h"
#include "options.h"

struct recovery;
struct tracker;
struct tracker_conn;

/* Opens the state dir (without its lock: several collectors may share a log), writes to
 * log what dead collectors held, and starts this collector's journal. NULL (said on
 * stderr) when the state dir cannot be used: the collector then runs without. */
struct recovery *recovery_open(const struct options *o, struct log_writer *log);
/* Journals t's held records, and imports the agent spool for socket_path into t
 * (rc may be NULL: nothing to do, in this and the calls below). */
void recovery_attach(struct recovery *rc, struct tracker *t, const char *socket_path,
                     int64_t now_us);
/* The spool is looked at again every RECOVERY_SPOOL_POLL_US while the collector runs:
 * agents that gave up on it while it was stopped or swamped spool too. When next (-1:
 * never), and the look when it is due. */
#define RECOVERY_SPOOL_POLL_US 1000000
int64_t recovery_next_due(const struct recovery *rc);
void recovery_poll(struct recovery *rc, int64_t now_us);
/* A connection that ends with files open: its process may have spooled what followed
 * (it gave up on a collector that was stopped); that is read into c first, so that its
 * files are finished rather than torn. */
void recovery_continue(struct recovery *rc, struct tracker_conn *c, int64_t now_us);
/* After every connection has been acknowledged what was taken from it (tracker.h): the
 * journal may be emptied when nothing is held, since no agent will send those records'
 * messages again. */
void recovery_settle(struct recovery *rc, int64_t now_us);
/* Before t is freed: counts the messages its agents said they lost, and writes what is
 * still held from a killed collector. */
void recovery_detach(struct recovery *rc, const struct tracker *t);
/* Removes the journal (nothing is held once the server has stopped), writes stats.json
 * when with_stats (no sink writes it), and says what was recovered or lost. */
void recovery_close(struct recovery *rc, bool with_stats);

#endif
