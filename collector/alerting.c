/* alerting.c — judging each record as it is written, and the end-of-run summary.
 *
 * The checkpoint record and its alert records are written one after the other by the
 * same call, so a reader of the log finds a checkpoint's alerts right after it. The
 * series snapshot is updated only from complete records: a torn save says nothing about
 * what the next checkpoint should be compared with.
 */
#include "alerting.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/jsontext.h"
#include "alerts.h"
#include "state.h"
#include "table.h"
#include "on_alert.h"
#include "series.h"

#define UNMATCHED_KEPT  16 /* files remembered for the summary when nothing matched */
#define UNMATCHED_SHOWN 5  /* and named in it, of those still on disk */

struct rule_count {
    char *rule;
    unsigned long count;
};

struct alerting {
    const struct rule_set *rules;
    const struct string_list *fail_on;
    struct series_store *series;
    struct on_alert *on_alert;
    bool tell, summary, one_series, failed_on;
    /* For the summary. */
    unsigned long checkpoints, incomplete;
    double bytes, seconds;
    struct rule_count *by_rule; /* in the order rules first fired */
    size_t rule_count;
    char *unmatched[UNMATCHED_KEPT];
    size_t unmatched_count;
    unsigned long unmatched_more;
    unsigned long loads;
    char *first_load; /* what the summary says of the run's first load */
};

struct alerting *alerting_new(const struct alerting_setup *setup)
{
    const struct options *o = setup->options;
    struct alerting *a = calloc(1, sizeof *a);
    if (!a || !(a->series = series_open(setup->state_dir)) ||
        (o->on_alert && !(a->on_alert = on_alert_new(o->on_alert, o->on_alert_timeout)))) {
        fprintf(stderr, "ckmon: out of memory\n");
        if (a) series_close(a->series);
        free(a);
        return NULL;
    }
    a->rules = &o->rules;
    a->fail_on = &o->fail_on;
    a->tell = setup->tell && !o->quiet;
    a->summary = setup->summary && !o->quiet;
    a->one_series = setup->one_series;
    return a;
}

struct alerting *alerting_for_serving(const struct options *o, const struct log_writer *log,
                                      bool summary)
{
    /* A log that is no file (stdout, /dev/null, a pipe) keeps its series in memory unless
     * --state names a dir, as the rest of the state dir does (recovery.h). */
    struct stat st;
    bool on_disk = o->state || (fstat(log->fd, &st) == 0 && S_ISREG(st.st_mode));
    char *dir = on_disk ? state_dir_path(o) : NULL;
    struct alerting_setup setup = {
        .options = o, .state_dir = dir, .tell = true, .summary = summary};
    struct alerting *a = !on_disk || dir ? alerting_new(&setup) : NULL;
    if (on_disk && !dir) fprintf(stderr, "ckmon: out of memory\n");
    free(dir);
    return a;
}

static void count_rule(struct alerting *a, const char *rule)
{
    for (size_t i = 0; i < a->rule_count; i++)
        if (!strcmp(a->by_rule[i].rule, rule)) {
            a->by_rule[i].count++;
            return;
        }
    struct rule_count *grown = realloc(a->by_rule, (a->rule_count + 1) * sizeof *grown);
    if (!grown) return;
    a->by_rule = grown;
    if ((grown[a->rule_count].rule = strdup(rule))) grown[a->rule_count++].count = 1;
}

static bool fails_on(const struct alerting *a, const char *rule)
{
    for (size_t i = 0; i < a->fail_on->count; i++)
        if (!strcmp(a->fail_on->items[i], rule)) return true;
    return false;
}

static const char *string_member(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Writes one alert's record, and tells and acts on it. */
static bool raise_alert(struct alerting *a, struct log_writer *log, const cJSON *checkpoint,
                        const struct alert *alert, long pid)
{
    double total = series_count_alert(a->series, checkpoint, alert->rule);
    cJSON *o = alert_record(checkpoint, alert, total);
    size_t len;
    char *line = json_line(o, &len);
    cJSON_Delete(o);
    const char *path = string_member(checkpoint, "path");
    bool ok = line && log_write(log, line, len);
    if (a->tell)
        fprintf(stderr, "ckmon: alert %s (%s) %s: %s\n", alert->rule,
                severity_name(alert->severity), path, alert->message);
    if (a->on_alert && line) {
        struct on_alert_env env = {alert->rule,    severity_name(alert->severity),   path,
                                   alert->subject, string_member(checkpoint, "job"), pid};
        on_alert_queue(a->on_alert, line, &env);
    }
    free(line);
    count_rule(a, alert->rule);
    if (fails_on(a, alert->rule)) a->failed_on = true;
    return ok;
}

/* Writes record o (of r, or a set's when r is NULL) with the names of the alerts that
 * fired, then their alert records. */
static bool write_judged(struct alerting *a, struct log_writer *log, cJSON *o,
                         const struct record *r, const struct alert_list *alerts, long pid)
{
    if (alerts->count) {
        cJSON *names = cJSON_CreateArray();
        for (size_t i = 0; names && i < alerts->count; i++)
            cJSON_AddItemToArray(names, cJSON_CreateString(alerts->items[i].rule));
        if (names) record_json_add_alerts(o, names);
    }
    struct strbuf *line = &log->record_line;
    bool ok = (r ? record_print_line(r, o, line) : json_print_line(line, o, NULL)) &&
              log_write(log, line->s, line->len);
    for (size_t i = 0; i < alerts->count; i++)
        ok = raise_alert(a, log, o, &alerts->items[i], pid) && ok;
    return ok;
}

bool alerting_set(struct alerting *a, struct log_writer *log, const cJSON *set, long pid)
{
    cJSON *o = cJSON_Duplicate(set, true);
    struct tensor_list tensors = {0};
    struct snapshot now = {0};
    struct alert_list alerts = {0};
    if (!o || !tensor_list_of_record(o, &tensors) || !snapshot_from_record(o, &now)) {
        tensor_list_free(&tensors);
        cJSON_Delete(o);
        return false;
    }
    alerts_evaluate(a->rules, o, &tensors, &now, NULL, &alerts);
    bool ok = write_judged(a, log, o, NULL, &alerts, pid);
    tensor_list_free(&tensors);
    snapshot_free(&now);
    alert_list_free(&alerts);
    cJSON_Delete(o);
    return ok;
}

bool alerting_record(struct alerting *a, struct log_writer *log, const struct record *r)
{
    cJSON *o = record_to_json(r);
    char key[SERIES_KEY_SIZE];
    struct snapshot now = {0};
    struct alert_list alerts = {0};
    if (!o || !snapshot_from_list(&r->tensors.list, r->bytes, &now)) {
        cJSON_Delete(o);
        return log_record(log, r); /* out of memory: the record, unjudged */
    }
    bool keyed =
        a->one_series ? snprintf(key, sizeof key, "inspect") > 0 : series_key(o, key, sizeof key);
    alerts_evaluate(a->rules, o, &r->tensors.list, &now,
                    keyed ? series_previous(a->series, key) : NULL, &alerts);
    bool ok = write_judged(a, log, o, r, &alerts, r->who.pid);
    a->checkpoints++;
    a->incomplete += !r->complete;
    a->bytes += (double)r->bytes;
    a->seconds += r->seconds;
    if (keyed && r->complete)
        series_update(a->series, key, &now,
                      r->tensors.text.overflow ? NULL
                      : r->tensors.text.s      ? r->tensors.text.s
                                               : "",
                      r->tensors.text.len);
    else
        snapshot_free(&now);
    alert_list_free(&alerts);
    cJSON_Delete(o);
    return ok;
}

void alerting_unmatched_fn(void *ctx, const char *path)
{
    struct alerting *a = ctx;
    for (size_t i = 0; i < a->unmatched_count; i++)
        if (!strcmp(a->unmatched[i], path)) return;
    if (a->unmatched_count < UNMATCHED_KEPT && (a->unmatched[a->unmatched_count] = strdup(path)))
        a->unmatched_count++;
    else
        a->unmatched_more++;
}

void alerting_load(struct alerting *a, const cJSON *load)
{
    if (a->loads++) return;
    const cJSON *written = cJSON_GetObjectItemCaseSensitive(load, "written");
    const cJSON *unchanged = cJSON_GetObjectItemCaseSensitive(load, "unchanged");
    const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(load, "path"));
    const char *job = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(written, "job"));
    const char *time = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(written, "time"));
    int n = !path         ? -1
            : job && time ? asprintf(&a->first_load, "%s, written by %s at %s%s", path, job, time,
                                     cJSON_IsFalse(unchanged) ? ", CHANGED since" : "")
                          : asprintf(&a->first_load, "%s, which no record in the log wrote", path);
    if (n < 0) a->first_load = NULL;
}

static void print_summary(const struct alerting *a)
{
    fprintf(stderr, "ckmon: %lu checkpoint%s", a->checkpoints, a->checkpoints == 1 ? "" : "s");
    if (a->checkpoints) {
        char size[32];
        fprintf(stderr, ", %s", table_size(a->bytes, "bytes", size, sizeof size));
        fprintf(stderr, ", %.3g s writing, %lu incomplete", a->seconds, a->incomplete);
    }
    for (size_t i = 0; i < a->rule_count; i++)
        fprintf(stderr, "%s%s %lu", i ? ", " : "; alerts: ", a->by_rule[i].rule,
                a->by_rule[i].count);
    /* Temporary files the program removed again are not what a glob missed. */
    size_t shown = 0;
    unsigned long more = a->unmatched_more;
    for (size_t i = 0; !a->checkpoints && i < a->unmatched_count; i++) {
        if (access(a->unmatched[i], F_OK) < 0) continue;
        if (shown == UNMATCHED_SHOWN) {
            more++;
            continue;
        }
        fprintf(stderr, "%s %s",
                shown++ ? ","
                        : "; no file matched the checkpoint globs "
                          "(--paths), but it wrote",
                a->unmatched[i]);
    }
    if (shown && more) fprintf(stderr, " and %lu more", more);
    if (a->loads)
        fprintf(stderr, "; %lu load%s%s%s", a->loads, a->loads == 1 ? "" : "s",
                a->first_load ? ", the first " : "", a->first_load ? a->first_load : "");
    fprintf(stderr, "\n");
}

bool alerting_finish(struct alerting *a)
{
    if (!a) return false;
    if (a->summary) print_summary(a);
    bool failed_on = a->failed_on;
    alerting_free(a);
    return failed_on;
}

void alerting_free(struct alerting *a)
{
    if (!a) return;
    on_alert_finish(a->on_alert);
    series_close(a->series);
    for (size_t i = 0; i < a->rule_count; i++)
        free(a->by_rule[i].rule);
    free(a->by_rule);
    for (size_t i = 0; i < a->unmatched_count; i++)
        free(a->unmatched[i]);
    free(a->first_load);
    free(a);
}
