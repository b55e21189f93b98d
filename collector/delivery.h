/* delivery.h — getting every record in the log to every remote sink, at least once.
 *
 * The log (or, when the log is stdout, a spool in the state dir) is the only queue:
 * each sink has a thread that reads it from a cursor kept in the state dir, sends
 * batches (sinks/sink.h encodes them, http.h sends them), and moves the cursor only
 * after the sink acknowledged with a 2xx. So whatever the collector dies of, a
 * collector started again with the same log and state sends what was not
 * acknowledged (perhaps twice, never not at all). Agents never wait for any of this:
 * the server only appends to the log and wakes the threads. The cursors and the rest
 * of what must survive a restart are in the state dir (state.h).
 */
#ifndef CKMON_DELIVERY_H
#define CKMON_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "options.h"

struct delivery;

/* Prepares delivery from log to o's sinks: creates and locks the state dir, opens the
 * spool when the log is stdout, and sets up each sink's cursor (a new sink starts at
 * the log's end). No thread runs yet, so this may precede a fork. Returns NULL with a
 * one-line message in err on failure. */
struct delivery *delivery_open(const struct options *o, struct log_writer *log, char *err,
                               size_t err_size);
/* Starts one thread per sink; false (with a message on stderr) when it could not. */
bool delivery_start(struct delivery *d);
/* Lets the sinks deliver what the log holds, for up to timeout seconds; then stops
 * them, prints each sink's counters on stderr, says what was not delivered, and writes
 * stats.json. Returns the number of records some sink has not delivered. */
unsigned long delivery_finish(struct delivery *d, double timeout);

struct collector_stats;
/* The counters now, as stats.json has them; stats->sinks is malloc'd (free it), its
 * strings d's. False when out of memory. */
bool delivery_stats(struct delivery *d, struct collector_stats *stats);

/* Frees everything (after delivery_finish, or instead of starting). */
void delivery_free(struct delivery *d);

#endif
