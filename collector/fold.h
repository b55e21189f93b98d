/* fold.h — the records of a set's files, folded into the set's record (for `ckmon tail`).
 *
 * A set's files (shards, .metadata, index: set_layouts.h) each have a checkpoint record,
 * written before the set's own record. The views show the set as one line: a checkpoint
 * record whose path belongs to a set layout is held, by the set's directory, until that
 * directory's set record comes, and then handed over with it as its members. Records of
 * a set that never gets a set record (a log cut short, a collector of before sets) are
 * handed over on their own when the log ends (fold_flush), or, while following a log,
 * once more than FOLD_MAX_HELD are held (the oldest set's first).
 */
#ifndef CKMON_FOLD_H
#define CKMON_FOLD_H

#include <cjson/cJSON.h>

#define FOLD_MAX_HELD 10000 /* checkpoint records held at most */

struct fold;

/* Receives each record to show, taken over (delete it); members: for a set record, its
 * files' records in the log's order (an array, possibly empty, deleted after the call),
 * else NULL. */
typedef void fold_out(void *ctx, cJSON *record, const cJSON *members);

struct fold *fold_new(fold_out *out, void *ctx);
/* A record of the log, taken over. */
void fold_take(struct fold *f, cJSON *record);
/* The log ended: hands over what is held, as records of their own. */
void fold_flush(struct fold *f);
void fold_free(struct fold *f);

#endif
