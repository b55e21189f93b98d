/* latest.h — the newest sample of every series, as /metrics serves it.
 *
 * Prometheus scrapes current values, not history: each record the collector writes
 * replaces the samples of its series (the same labels as the push sinks, metrics.h),
 * and the collector's own counters are set beside them. The number of series is
 * bounded as the sinks' is (digits as N, --metric-keys): a run's series are replaced
 * by its next checkpoint, not added to; and a series no record has set for
 * LATEST_KEEP_SECONDS (a file, a job's alert count, long gone) goes, so that a
 * long-lived collector does not keep every job it ever saw. Safe to use from several
 * threads.
 */
#ifndef CKMON_LATEST_H
#define CKMON_LATEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"

struct latest;

struct latest *latest_new(void);
void latest_free(struct latest *l);

/* One line of the log (a record, as written): counted in ckmon_records_total by its
 * event, and its samples kept. */
void latest_add_line(struct latest *l, const char *line, size_t len);
/* Sets the sample of series (`name` or `name{a="x",...}`) to value. */
void latest_set(struct latest *l, const char *series, double value);

/* How long a record's series stays after the last record that set it. */
#define LATEST_KEEP_SECONDS (24 * 3600)

/* Drops the series of records that no record set since before_ns (CLOCK_MONOTONIC);
 * the collector's own counters stay. latest_render does it with LATEST_KEEP_SECONDS. */
void latest_expire(struct latest *l, int64_t before_ns);
/* The Prometheus text format of every sample: families in name order, each with its
 * # HELP and # TYPE. False when out of memory. */
bool latest_render(struct latest *l, struct strbuf *out);

#endif
