/* lineage.h — which checkpoint a program loaded, and which record wrote it.
 *
 * A load message (core/wire.h) becomes a load record (docs/records.md, "Loads"): who
 * read the file, the checkpoint record that wrote it, and whether the file is unchanged
 * since (its size, and a modification time no later than 1 s after the record's close,
 * as `ckmon verify` judges; and its digest when the record has one and the file is small
 * enough to hash here). The writing record is found in an index of the newest
 * checkpoint record per path, built from the log (its rotated segments, then the file)
 * at the first load and kept up afterwards by reading only what was appended since; so
 * records of other collectors sharing the log count as much as this one's, and a
 * collector started after the writer's (a resumed run) finds them. The same reading
 * counts the load records of each series, which the record's "total" carries (the
 * counter ckmon_loads_total, restarts included).
 */
#ifndef CKMON_LINEAGE_H
#define CKMON_LINEAGE_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/wire.h"
#include "record.h"

struct lineage;

/* For the log at log_path ("-" or NULL: none to read, so no load has a writer); NULL
 * when out of memory. Reads nothing yet. */
struct lineage *lineage_new(const char *log_path);
void lineage_free(struct lineage *l);

/* The load record of a load by who, in the contract's member order; NULL when out of
 * memory. Counts it: the next load of its series has the next total. */
cJSON *lineage_load_record(struct lineage *l, const struct identity *who,
                           const struct wire_load *load, int64_t now_us);

#endif
