/* alerting.h — what the collector does with each finished record: judge, log, tell, act.
 *
 * For every checkpoint record: the rules (alerts.h) against the previous checkpoint of
 * its series (series.h); the record with its "alerts", then one alert record per rule
 * that fired, written to the log together; one line per alert on stderr (unless
 * quiet); the --on-alert command queued (on_alert.h); and the counts of `ckmon run`'s
 * end-of-run summary. `inspect` uses the same path with its records going to stdout.
 */
#ifndef CKMON_ALERTING_H
#define CKMON_ALERTING_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "options.h"
#include "record.h"

struct alerting;

struct alerting_setup {
    const struct options *options; /* rules, --on-alert, --fail-on, -q */
    const char *state_dir;         /* where series live; NULL: in memory only */
    bool tell;                     /* a line per alert on stderr (unless -q) */
    bool summary;                  /* an end-of-run summary on stderr (unless -q) */
    bool one_series;               /* inspect: each record is compared with the one before */
};

/* NULL when out of memory (said on stderr). Starts no thread. */
struct alerting *alerting_new(const struct alerting_setup *setup);
/* For run and collect: series in the state dir (state.h) when log is a file or --state is
 * given, alert lines on stderr, and with summary the end-of-run summary. */
struct alerting *alerting_for_serving(const struct options *o, const struct log_writer *log,
                                      bool summary);
/* Judges r and writes it, and its alerts, to log. Returns false when a line could not
 * be written. */
bool alerting_record(struct alerting *a, struct log_writer *log, const struct record *r);
/* Judges a set record (sets.h; no series: a set is compared with nothing) and writes it
 * and its alerts to log. False when a line could not be written. */
bool alerting_set(struct alerting *a, struct log_writer *log, const cJSON *set, long pid);
/* A program wrote path, which matched no checkpoint glob (for the summary); as a
 * tracker's unmatched_fn, ctx is the alerting. */
void alerting_unmatched_fn(void *ctx, const char *path);
/* A load record was written (lineage.h): counted, and the first one named, in the summary. */
void alerting_load(struct alerting *a, const cJSON *load);
/* Prints the summary (when asked), lets the --on-alert commands finish, frees a.
 * Returns whether an alert of a --fail-on rule fired. */
bool alerting_finish(struct alerting *a);
/* Frees a without a summary (the copy a parent keeps after the collector forked). */
void alerting_free(struct alerting *a);

#endif
