/* tracker.h — what the collector knows between messages, independent of sockets.
 *
 * Each agent connection has an identity (its hello) and the checkpoint files it has
 * open; each open file is a record in progress. A closed file's record waits
 * RENAME_WINDOW_US in a pending list, so that a rename (from any connection) can still
 * give it its final path, and is then handed to the emit callback. Files still open
 * when their process goes away become incomplete records at once. Times are passed
 * in (microseconds since the epoch), so the tests decide what "now" is.
 */
#ifndef CKMON_TRACKER_H
#define CKMON_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/wire.h"
#include "record.h"
#include "sets.h"

struct tracker;
struct tracker_conn;

/* Called once per finished record; the tracker frees the record afterwards. */
typedef void (*record_emit_fn)(void *ctx, const struct record *r);

struct tracker_counts {
    unsigned long malformed;    /* not JSON, or without the members its kind needs */
    unsigned long unknown_kind; /* a "t" this collector does not know: ignored */
    unsigned long dropped;      /* messages agents lost, as their hellos said */
    unsigned long resent;       /* messages taken before, skipped when they came again */
};

struct tracker *tracker_new(record_emit_fn emit, void *ctx);
/* The run of agents whose hello names none (collect --run-id); run must outlive t. */
void tracker_set_run(struct tracker *t, const char *run);
/* Called with each path an agent created that matched no checkpoint glob (the first
 * few per process, said at its exit). */
typedef void (*unmatched_fn)(void *ctx, const char *path);
void tracker_set_unmatched(struct tracker *t, unmatched_fn fn, void *ctx);
/* Called with each verify record `ckmon verify` hands over (a file that failed). */
typedef void (*verified_fn)(void *ctx, const cJSON *record);
void tracker_set_verified(struct tracker *t, verified_fn fn, void *ctx);
/* Called with each checkpoint an agent opened for reading (a "load" message, core/wire.h)
 * and the identity of its process. A record of that path still held for its rename
 * window is written first, so that the log has the writer before the reader. */
typedef void (*load_fn)(void *ctx, const struct identity *who, const struct wire_load *load,
                        int64_t now_us);
void tracker_set_loads(struct tracker *t, load_fn fn, void *ctx);
/* Groups the records into sets (sets.h), each finished set handed to emit; false when
 * out of memory. */
bool tracker_set_sets(struct tracker *t, set_emit_fn emit, void *ctx);
/* The sets tracker_set_sets started (NULL: none). */
struct sets *tracker_sets(struct tracker *t);
/* Where a record came from: the agent's session and the seq of the message (a close, an
 * adopt) that finished it (core/wire.h, "Delivery"); seq 0 when not known. */
#define ORIGIN_SESSION_MAX 32
struct origin {
    char session[ORIGIN_SESSION_MAX + 1];
    int64_t seq;
};
/* The rename hold's journal (recovery.h): told when a closed record starts waiting out
 * its rename window (held), and after each record is written or dropped (emitted): a
 * collector killed in between must not lose it. Asked whether a killed collector had
 * already journaled the record a message finishes (recovered: the message came again,
 * the record is not made twice), and offered a rename that names no record held here
 * (renamed: true when it was one recovered from a killed collector's journal). */
struct hold_hooks {
    void (*held)(void *ctx, const struct record *r, const struct origin *o);
    void (*emitted)(void *ctx, const struct record *r);
    bool (*recovered)(void *ctx, const struct origin *o);
    bool (*renamed)(void *ctx, const char *from, const char *to);
    void *ctx;
};
void tracker_set_hold(struct tracker *t, const struct hold_hooks *hooks);
/* Starts the worker that reads files after their rename hold (digester.h): the zip
 * CRC-32s agents left unchecked, and with digest (--digest) every record's digest,
 * unless the collector hashed the file while parsing it (libxxhash must then be loaded:
 * digest_load). A record is written once its job is done. False when out of memory;
 * without it, records are written as the agents sent them. */
bool tracker_read_closed_files(struct tracker *t, bool digest);
/* A descriptor to poll, readable when a record's digest is done (then call
 * tracker_expire); -1 without --digest. */
int tracker_wake_fd(const struct tracker *t);
/* Finishes nothing: call tracker_shutdown first to keep what is in progress. */
void tracker_free(struct tracker *t);

/* A new connection; peer_pid (from the socket, 0 if unknown) stands until its hello. */
struct tracker_conn *tracker_connect(struct tracker *t, long peer_pid);
/* One packet from a connection. */
void tracker_message(struct tracker *t, struct tracker_conn *c, const char *data, size_t len,
                     int64_t now_us);
/* The highest seq taken from c, which the collector acknowledges (0: none). Taking a
 * message writes whatever record it finishes (to the log, or the journal while it is
 * held); a file still open is the agent's to send again (core/wire.h, "Delivery"). */
int64_t tracker_taken(const struct tracker_conn *c);
/* c's session when it has files open (a spool file of its process may continue them),
 * else NULL; *pid set. */
const char *tracker_unfinished(const struct tracker_conn *c, long *pid);
/* Whether a connection of this session is still open. */
bool tracker_session_open(const struct tracker *t, const char *session);
/* The connection ended: its open files become incomplete records. Frees c. */
void tracker_disconnect(struct tracker *t, struct tracker_conn *c, int64_t now_us);

/* When the tracker next has work: 0 (at once) while an adopted file is being parsed,
 * else when the oldest pending record is due (-1: none pending). */
int64_t tracker_next_due(const struct tracker *t);
/* Parses the next slice of a file adopted by a rename (parsed a slice per turn, so that
 * a large one does not hold up other agents); its record then waits like any closed
 * file's. Returns whether adopted files remain. */
bool tracker_parse_adopted(struct tracker *t, int64_t now_us);
/* Emits the pending records whose rename window has passed. */
void tracker_expire(struct tracker *t, int64_t now_us);
/* The collector stops: open files become incomplete records, then every pending
 * record is emitted without waiting out its window. */
void tracker_shutdown(struct tracker *t, int64_t now_us);

const struct tracker_counts *tracker_counts(const struct tracker *t);

#endif
