/* latest.h — the newest sample of every series, as /metrics serves it.
 *
 * Prometheus scrapes current values, not history: each record the collector writes
 * replaces the samples of its series (the same labels as the push sinks, metrics.h),
 * and the collector's own counters are set beside them. The number of series is
 * bounded as the sinks' is (digits as N, --metric-keys): a run's series are replaced
 * by its next checkpoint, not added to. Safe to use from several threads.
 */
#ifndef CKMON_LATEST_H
#define CKMON_LATEST_H

#include <stdbool.h>
#include <stddef.h>

#include "core/strbuf.h"

struct latest;

struct latest *latest_new(void);
void latest_free(struct latest *l);

/* One line of the log (a record, as written): counted in ckmon_records_total by its
 * event, and its samples kept. */
void latest_add_line(struct latest *l, const char *line, size_t len);
/* Sets the sample of series (`name` or `name{a="x",...}`) to value. */
void latest_set(struct latest *l, const char *series, double value);

/* The Prometheus text format of every sample: families in name order, each with its
 * # HELP and # TYPE. False when out of memory. */
bool latest_render(struct latest *l, struct strbuf *out);

#endif
