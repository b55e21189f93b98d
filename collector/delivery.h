/* delivery.h — getting every record in the log to every remote sink, at least once.
 *
 * The log (or, when the log is stdout, a spool in the state dir) is the only queue:
 * each sink has a thread that reads it from a cursor kept in the state dir, sends
 * batches (sinks/sink.h encodes them, http.h sends them), and moves the cursor only
 * after the sink acknowledged with a 2xx. So whatever the collector dies of, a
 * collector started again with the same log and state sends what was not
 * acknowledged (perhaps twice, never not at all). Agents never wait for any of this:
 * the server only appends to the log and wakes the threads.
 *
 * State dir layout (docs/sinks.md): lock, stats.json, spool.jsonl[.N] for a stdout
 * log, and per sink FORMAT-HASH.cursor and FORMAT-HASH.dead.jsonl.
 */
#ifndef CKMON_DELIVERY_H
#define CKMON_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "options.h"

struct delivery;

/* The state dir: --state, else LOG.state beside the log, else (stdout)
 * ./ckmon-stdout.state; malloc'd. */
char *delivery_state_dir(const struct options *o);

/* Prepares delivery from log to o's sinks: creates and locks the state dir, opens the
 * spool when the log is stdout, and sets up each sink's cursor (a new sink starts at
 * the log's end). No thread runs yet, so this may precede a fork. Returns NULL with a
 * one-line message in err on failure. */
struct delivery *delivery_open(const struct options *o, struct log_writer *log, char *err,
                               size_t err_size);
struct server_config;
/* The collector's life after its set-up: starts d's threads (d may be NULL: no
 * sinks), serves agents until told to stop, then lets the sinks finish for up to
 * timeout seconds. Returns 0, or 1 when records could not be written or delivered. */
int serve_and_deliver(const struct server_config *cfg, struct delivery *d, double timeout);

/* Frees everything (after serve_and_deliver, or instead of it). */
void delivery_free(struct delivery *d);

#endif
