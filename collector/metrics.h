/* metrics.h — a checkpoint record as metric samples, and the two text formats for them.
 *
 * The pushgateway, victoriametrics and influx sinks all publish the same samples
 * (CONTRACT.md "Metrics"): ckmon_value per numeric scalar, ckmon_tensor per tensor
 * statistic, and four ckmon_checkpoint_* per file. They are derived here from a record
 * as read back from the log (cJSON), once, so the sinks differ only in how they print.
 */
#ifndef CKMON_METRICS_H
#define CKMON_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/strbuf.h"

/* job, host, run, rank, file, and key or tensor+stat. */
#define METRIC_MAX_LABELS 7
#define FILE_LABEL_SIZE   256

struct label {
    const char *name;
    const char *value;
};

struct sample {
    const char *metric;
    struct label labels[METRIC_MAX_LABELS];
    size_t label_count;
    double value; /* may be NaN or infinite: each sink decides */
};

/* What every sample of one record shares. Strings point into the record or into
 * file/rank, so the record must outlive it. */
struct record_labels {
    const char *job, *host, *rank; /* rank is NULL when the record has none */
    const char *run;               /* NULL when the record has none */
    char file[FILE_LABEL_SIZE];
    char rank_text[24];
    int64_t time_us; /* when the file was closed */
};

/* Fills labels from a record; false when the record lacks job, host, path or time. */
bool record_labels_get(const cJSON *record, struct record_labels *labels);

/* The file label: the base name with each run of digits replaced by N. */
void file_label(const char *path, char *out, size_t size);
/* A key or tensor label: name with each run of digits replaced by N. */
void name_label(const char *name, char *out, size_t size);

/* Which values and tensors become metrics (--metric-keys): a name is in when it, or its
 * label, matches one of the patterns without a leading '!' (or there are none) and no
 * pattern with one. NULL or no patterns: METRIC_KEYS_DEFAULT. Call before any sink thread
 * starts; the patterns must outlive the process's use of metrics. */
#define METRIC_KEYS_DEFAULT "!*param_groups.*.params*", "!*state.[0-9]*"
void metric_keys_set(char *const *patterns, size_t count);
bool metric_key_wanted(const char *name, const char *label);

/* Sets s's labels to those every sample of a record carries (job, host, run, rank,
 * file, in that order). */
void metrics_common_labels(struct sample *s, const struct record_labels *l);

/* A scalar of values as a number: numbers, bools, and the strings of non-finite ones. */
bool scalar_number(const cJSON *v, double *out);
/* Whether a record is a set's (docs/sets.md); its samples are ckmon_set_*. */
bool record_is_set(const cJSON *record);
/* An alert record (CONTRACT.md "Alerts"): its one sample is ckmon_alerts_total. */
bool record_is_alert(const cJSON *record);
/* A verify record (a file `ckmon verify` failed): its one sample is
 * ckmon_verify_failures_total, the running count of its job's failures. */
bool record_is_verify(const cJSON *record);
/* A load record (CONTRACT.md "Loads"): its one sample is ckmon_loads_total, its "total". */
bool record_is_load(const cJSON *record);

/* Calls emit for every sample of the record, families in a fixed order (values,
 * tensors, checkpoint), so the samples of one family are contiguous. Values and tensors
 * whose labels collide once digits became N give one sample each: the last one's.
 * ckmon_value_nonfinite{key} (1) is emitted beside each NaN or infinite value, as the
 * one sign of it that every sink stores (VictoriaMetrics drops NaN, InfluxDB refuses it). */
typedef void (*sample_fn)(void *ctx, const struct sample *s);
void metrics_for_record(const cJSON *record, const struct record_labels *labels, sample_fn emit,
                        void *ctx);

/* A number as the Prometheus text format writes it: NaN, +Inf, -Inf, integers without
 * an exponent, else the shortest text that reads back the same. */
void prom_add_number(struct strbuf *b, double v);
/* The series of an exposition line, `name{a="x",...}`. */
void prom_add_series(struct strbuf *b, const struct sample *s);
/* One exposition line, `name{a="x",...} value[ timestamp_ms]\n`; ts_ms < 0: none. */
void prom_add_sample(struct strbuf *b, const struct sample *s, int64_t ts_ms);
/* What /metrics says of a family in # HELP and # TYPE: help text, and "gauge" or
 * "counter"; a name it does not know gets a generic text and "gauge". */
const char *metric_help(const char *family, const char **type);
/* `# TYPE name gauge\n` whenever s starts a new family (*last remembers the previous). */
void prom_add_type(struct strbuf *b, const struct sample *s, const char **last);

#endif
