/* sets.h — checkpoints written as many files, judged as one (docs/sets.md).
 *
 * Every finished checkpoint record is noted here. A record whose path belongs to a
 * known layout (set_layouts.h: DCP, HF sharded, DeepSpeed, HF Trainer) joins the set of
 * its directory; the layout's commit file (DCP's .metadata, the HF index, DeepSpeed's
 * `latest`, the trainer's trainer_state.json) commits it. A committed set is judged a
 * rename window later (so that its shards' records, still held for a rename, join it
 * first) against its own metadata and the files on disk, and written as one
 * {"event":"set"} record. A set never committed is written complete:false once every
 * process that wrote into it has ended and it has been quiet for a while, unless the
 * commit exists on disk: another host's collector saw it and writes the set.
 */
#ifndef CKMON_SETS_H
#define CKMON_SETS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "record.h"

struct sets;

/* Called with each finished set record (a JSON object the caller must not keep). */
typedef void (*set_emit_fn)(void *ctx, const cJSON *set, long pid);

struct sets *sets_new(set_emit_fn emit, void *ctx);
void sets_free(struct sets *s);
/* A checkpoint record was written. */
void sets_note(struct sets *s, const struct record *r, int64_t now_us);
/* A directory was renamed: the set filled in it under a temporary name (kind
 * "directory") is committed under its new name. */
void sets_renamed(struct sets *s, const char *from, const char *to, int64_t now_us);
/* A process (an agent's connection) ended. */
void sets_process_ended(struct sets *s, long pid, int64_t now_us);
/* When a set is next due (-1: none). */
int64_t sets_next_due(const struct sets *s);
/* Writes the sets that are due. */
void sets_expire(struct sets *s, int64_t now_us);
/* The collector stops: committed sets are judged now, uncommitted ones written as
 * torn unless their commit is on disk. */
void sets_shutdown(struct sets *s, int64_t now_us);

/* Sets in progress across a restart (recovery.h keeps them in the state dir): fn is
 * called after every change of the sets in progress. */
typedef void (*sets_changed_fn)(void *ctx, const struct sets *s);
void sets_on_change(struct sets *s, sets_changed_fn fn, void *ctx);
/* The sets in progress, as a JSON array (empty: none); the caller deletes it. */
cJSON *sets_state(const struct sets *s);
/* Takes over sets a killed collector had in progress (sets_state's array): their
 * writers count as ended once their processes are gone. */
void sets_restore(struct sets *s, const cJSON *saved);

#endif
