/* alerts.h — the alert rules: which fire for a checkpoint record, and the alert records.
 *
 * Built-in rules (docs/alerts.md): nonfinite and incomplete (critical) look at the
 * record alone; shrunk, frozen and exploding (warnings) compare it with the snapshot of
 * the previous checkpoint of its series (series.h). User rules (--alert
 * '[NAME=]SUBJECT OP NUMBER') compare a value, or a statistic of tensors, with a number.
 * Each rule gives at most one alert per checkpoint, naming its worst subject and how
 * many there were: a NaN spreading through a thousand tensors is one line, not a
 * thousand. Evaluation is a pure function of the record and the snapshot.
 */
#ifndef CKMON_ALERTS_H
#define CKMON_ALERTS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "series.h"

enum severity { SEVERITY_WARNING, SEVERITY_CRITICAL };
const char *severity_name(enum severity s);

enum rule_op { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE };

/* STAT_RMS extends enum tensor_stat: sqrt(mean² + std²). */
#define STAT_RMS   STAT_COUNT
#define STAT_VALUE (-1) /* the subject is a values key */

struct user_rule {
    char *name;
    char *pattern; /* fnmatch over values keys or tensor names */
    int stat;      /* STAT_VALUE, an enum tensor_stat or STAT_RMS */
    enum rule_op op;
    double number;
};

struct rule_set {
    struct user_rule *user;
    size_t user_count;
};

/* Parses one user rule and adds it. Returns 0, or -1 with a one-line message in err
 * naming the problem. */
int rules_add(struct rule_set *rs, const char *text, char *err, size_t err_size);
void rules_free(struct rule_set *rs);
/* Whether name is a built-in rule or one of rs's user rules. */
bool rules_known(const struct rule_set *rs, const char *name);
/* "nonfinite, incomplete, shrunk, frozen, exploding": for messages. */
extern const char builtin_rule_list[];

struct alert {
    const char *rule; /* a built-in name, or a user rule's (owned by the rule set) */
    enum severity severity;
    char *subject; /* NULL when the rule is about the whole file */
    long count;
    char *message;
};

struct alert_list {
    struct alert *items;
    size_t count;
};

/* Appends to out the alerts that fire for record (a checkpoint record as in the log; its
 * tensors are read from tensors, in the record's order), now being its snapshot and prev
 * the previous checkpoint's of its series (NULL: none). The comparing rules look only at
 * complete records. */
void alerts_evaluate(const struct rule_set *rs, const cJSON *record,
                     const struct tensor_list *tensors, const struct snapshot *now,
                     const struct snapshot *prev, struct alert_list *out);
void alert_list_free(struct alert_list *l);

/* The alert record for a, with the checkpoint record's identity and path; total is the
 * number of alerts of this rule for its job, host and rank so far (the counter
 * ckmon_alerts_total). NULL when out of memory. */
cJSON *alert_record(const cJSON *checkpoint, const struct alert *a, double total);

#endif
