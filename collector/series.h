/* series.h — what the collector remembers of the previous checkpoint of each series.
 *
 * A series is the checkpoints of one job, host and rank with the same `file` label
 * (the base name with digit runs as N, as for metrics): epoch_1.pt, epoch_2.pt, ...
 * The rules that compare (shrunk, frozen, exploding: alerts.h) need only the previous
 * checkpoint's size and each tensor's statistics, so that is what a snapshot holds,
 * its tensors sorted by name so that a record of thousands is matched in n log n.
 *
 * The store writes each series' snapshot to a file of its own in the state dir
 * (series/<hash>.json, replaced by rename), so a collector started again compares a
 * checkpoint with the one written before the restart, and the alert counters in
 * series/alerts.json; `inspect` keeps them in memory.
 */
#ifndef CKMON_SERIES_H
#define CKMON_SERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/wire_tensors.h"

/* The statistics of tensor summaries, in this order; NaN where the record has null. */
enum tensor_stat { STAT_MIN, STAT_MAX, STAT_MEAN, STAT_STD, STAT_NAN, STAT_INF, STAT_COUNT };
extern const char *const tensor_stat_names[STAT_COUNT];

struct tensor_summary {
    char *name;
    bool floating;   /* a floating-point dtype */
    double elements; /* the product of its shape */
    double stat[STAT_COUNT];
    double sampled; /* NaN where the record has none */
};

/* A record's tensors summed up, in the record's order (collector/record.h keeps them so,
 * the alert rules read them). Tensors without a name (a string) are left out. */
struct tensor_list {
    struct tensor_summary *items;
    size_t count, alloc;
};
/* Appends the summary of one of a record's tensors (its object); false when out of
 * memory. */
bool tensor_list_add(struct tensor_list *l, const cJSON *tensor);
/* The same from a tensor's brief as the wire reader took it, its name taken over. */
bool tensor_list_add_brief(struct tensor_list *l, struct tensor_brief *b);
/* The same for each of a record's "tensors". */
bool tensor_list_of_record(const cJSON *record, struct tensor_list *l);
void tensor_list_free(struct tensor_list *l);

struct snapshot {
    int64_t bytes;
    struct tensor_summary *tensors; /* sorted by name */
    size_t count;
    char *names; /* the tensors' names, one block (a block each was a tenth of its cost) */
};

/* The snapshot of a checkpoint of bytes whose tensors are l; false when out of memory. */
bool snapshot_from_list(const struct tensor_list *l, int64_t bytes, struct snapshot *out);
/* The same of a checkpoint record's tensors and size. */
bool snapshot_from_record(const cJSON *record, struct snapshot *out);
void snapshot_free(struct snapshot *s);
/* The tensor called name, or NULL. */
const struct tensor_summary *snapshot_find(const struct snapshot *s, const char *name);
/* Whether two summaries have the same statistics (null equal to null). */
bool summary_same_stats(const struct tensor_summary *a, const struct tensor_summary *b);
/* Whether a dtype name is a floating-point one (float32, bfloat16, float8_e4m3fn, ...). */
bool dtype_is_floating(const char *dtype);

/* The series a checkpoint record belongs to: job, host, rank and file label joined
 * with '\x1f' into key; false when the record lacks them. */
bool series_key(const cJSON *record, char *key, size_t size);
#define SERIES_KEY_SIZE 1024

struct series_store;

/* A store keeping its snapshots in dir/series/ (created when first needed), or only in
 * memory when dir is NULL. NULL when out of memory. */
struct series_store *series_open(const char *dir);
void series_close(struct series_store *st);
/* The previous snapshot of the series, or NULL when there is none. */
const struct snapshot *series_previous(struct series_store *st, const char *key);
/* Makes snap (taken over) the series' previous snapshot, and saves it with the tensors
 * of its checkpoint's record as the record prints them (len bytes: "{...},{...}"), which
 * snapshot_from_record reads back. When tensors is NULL (the record's text overflowed:
 * it is not printed either) or too long for the state dir, the saved snapshot is removed
 * instead: after a restart there is then no previous checkpoint, rather than an older one. */
void series_update(struct series_store *st, const char *key, struct snapshot *snap,
                   const char *tensors, size_t len);
/* Counts one more alert of rule for the record's job, host and rank (the counter
 * ckmon_alerts_total, which must not start again at 0 when the collector does: it is
 * saved in the state dir too); returns the new total. */
double series_count_alert(struct series_store *st, const cJSON *record, const char *rule);

#endif
