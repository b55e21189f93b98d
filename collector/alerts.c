/* alerts.c — evaluating the alert rules on a checkpoint record, and user rules' syntax.
 *
 * Every rule walks the record (or its snapshot) once and keeps only a count and its
 * worst subject so far, so a record of many thousands of tensors costs one pass per
 * rule and one alert per rule, whatever fired. Thresholds (docs/alerts.md):
 *   shrunk     fewer than half the previous checkpoint's bytes, or tensors missing
 *   frozen     a floating tensor of at least FROZEN_MIN_ELEMENTS with the same
 *              statistics as before, while some other tensor's changed (not one
 *              without a finite element: that is nonfinite's, and all NaN looks alike)
 *   exploding  a floating tensor (not a scalar) whose rms grew EXPLODING_FACTOR times
 */
#include "alerts.h"

#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define FROZEN_MIN_ELEMENTS 1024
#define EXPLODING_FACTOR    10.0
#define NAME_SHOWN          200 /* characters of a subject quoted in a message */

const char builtin_rule_list[] = "nonfinite, incomplete, shrunk, frozen, exploding";
static const char *const builtin_rules[] = {"nonfinite", "incomplete", "shrunk", "frozen",
                                            "exploding"};

const char *severity_name(enum severity s)
{
    return s == SEVERITY_CRITICAL ? "critical" : "warning";
}

static bool is_builtin(const char *name)
{
    for (size_t i = 0; i < sizeof builtin_rules / sizeof builtin_rules[0]; i++)
        if (!strcmp(name, builtin_rules[i])) return true;
    return false;
}

bool rules_known(const struct rule_set *rs, const char *name)
{
    if (is_builtin(name)) return true;
    for (size_t i = 0; i < rs->user_count; i++)
        if (!strcmp(rs->user[i].name, name)) return true;
    return false;
}

/* ---- user rules: [NAME=]SUBJECT OP NUMBER ---- */

static const struct {
    const char *text;
    enum rule_op op;
} op_texts[] = {{"<=", OP_LE}, {">=", OP_GE}, {"==", OP_EQ},
                {"!=", OP_NE}, {"<", OP_LT},  {">", OP_GT}};

static const char *const op_names[] = {
    [OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">", [OP_GE] = ">=", [OP_EQ] = "==", [OP_NE] = "!="};

/* The first operator in text: its position and length, or NULL. */
static const char *find_op(const char *text, enum rule_op *op, size_t *len)
{
    for (const char *p = text; *p; p++)
        for (size_t i = 0; i < sizeof op_texts / sizeof op_texts[0]; i++) {
            size_t n = strlen(op_texts[i].text);
            if (!strncmp(p, op_texts[i].text, n)) {
                *op = op_texts[i].op;
                *len = n;
                return p;
            }
        }
    return NULL;
}

/* A copy of [start, end) without the spaces around it. */
static char *trimmed(const char *start, const char *end)
{
    while (start < end && isspace((unsigned char)*start))
        start++;
    while (end > start && isspace((unsigned char)end[-1]))
        end--;
    return strndup(start, (size_t)(end - start));
}

static bool valid_name(const char *name)
{
    if (!*name) return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_.-", *p)) return false;
    return true;
}

static int stat_from_name(const char *name)
{
    if (!strcmp(name, "rms")) return STAT_RMS;
    for (int i = 0; i < STAT_COUNT; i++)
        if (!strcmp(name, tensor_stat_names[i])) return i;
    return -2;
}

/* Fills rule from text; returns NULL, or what is wrong with it. */
static const char *parse_rule(const char *text, struct user_rule *rule, char **name_out)
{
    size_t op_len;
    const char *op_at = find_op(text, &rule->op, &op_len);
    if (!op_at) return "no operator (< <= > >= == !=)";
    char *end;
    const char *number = op_at + op_len;
    rule->number = strtod(number, &end);
    while (isspace((unsigned char)*end))
        end++;
    if (end == number || *end || !isfinite(rule->number))
        return "what follows the operator is not a number";
    const char *eq = memchr(text, '=', (size_t)(op_at - text));
    const char *subject = eq ? eq + 1 : text;
    *name_out = eq ? trimmed(text, eq) : trimmed(text, text + strlen(text));
    rule->pattern = trimmed(subject, op_at);
    if (!*name_out || !rule->pattern) return "out of memory";
    if (eq && !valid_name(*name_out)) return "a NAME is letters, digits, '_', '.' and '-'";
    if (is_builtin(*name_out)) return "NAME is a built-in rule's";
    char *colon = strrchr(rule->pattern, ':');
    rule->stat = STAT_VALUE;
    if (colon) {
        *colon = '\0';
        if ((rule->stat = stat_from_name(colon + 1)) < STAT_VALUE)
            return "unknown statistic after ':' (min max mean std nan inf rms)";
    }
    if (!*rule->pattern) return "no SUBJECT before the operator";
    return NULL;
}

int rules_add(struct rule_set *rs, const char *text, char *err, size_t err_size)
{
    struct user_rule rule = {0};
    char *name = NULL;
    const char *problem = parse_rule(text, &rule, &name);
    if (!problem && rules_known(rs, name)) problem = "a rule of that NAME was given before";
    struct user_rule *grown =
        problem ? NULL : realloc(rs->user, (rs->user_count + 1) * sizeof *grown);
    if (!problem && !grown) problem = "out of memory";
    if (problem) {
        snprintf(err, err_size, "bad rule '%s': %s", text, problem);
        free(name);
        free(rule.pattern);
        return -1;
    }
    rule.name = name;
    rs->user = grown;
    rs->user[rs->user_count++] = rule;
    return 0;
}

void rules_free(struct rule_set *rs)
{
    for (size_t i = 0; i < rs->user_count; i++) {
        free(rs->user[i].name);
        free(rs->user[i].pattern);
    }
    free(rs->user);
    *rs = (struct rule_set){0};
}

/* ---- evaluation ---- */

/* What one rule found: how many subjects fired, and the worst so far. */
struct finding {
    long count;
    const char *subject;
    double score; /* larger is worse */
    double a, b;  /* what the message says about the worst */
};

static void consider(struct finding *f, const char *subject, double score, double a, double b)
{
    if (f->count++ == 0 || score > f->score) {
        f->subject = subject;
        f->score = score;
        f->a = a;
        f->b = b;
    }
}

static void add_alert(struct alert_list *out, const char *rule, enum severity sev,
                      const char *subject, long count, char *message)
{
    struct alert *grown = message ? realloc(out->items, (out->count + 1) * sizeof *grown) : NULL;
    char *subject_copy = subject ? strdup(subject) : NULL;
    if (!grown || (subject && !subject_copy)) {
        free(message);
        free(subject_copy);
        return;
    }
    out->items = grown;
    out->items[out->count++] = (struct alert){rule, sev, subject_copy, count, message};
}

/* "; 2 more tensors" after the worst one's description. */
static char *with_more(char *text, long more, const char *noun)
{
    char *out = NULL;
    if (!text || more <= 0) return text;
    if (asprintf(&out, "%s; %ld more %s%s", text, more, noun, more == 1 ? "" : "s") < 0) out = NULL;
    free(text);
    return out;
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    if (vasprintf(&out, fmt, ap) < 0) out = NULL;
    va_end(ap);
    return out;
}

static double member_number(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void rule_nonfinite(const cJSON *record, const struct tensor_list *list,
                           struct alert_list *out)
{
    struct finding tensors = {0}, values = {0};
    const struct tensor_summary *worst = NULL;
    const cJSON *item;
    for (size_t i = 0; i < list->count; i++) {
        const struct tensor_summary *t = &list->items[i];
        double nan = t->stat[STAT_NAN], inf = t->stat[STAT_INF];
        if (!(nan > 0 || inf > 0)) continue;
        consider(&tensors, t->name, nan + inf, nan, inf);
        if (tensors.subject == t->name) worst = t;
    }
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(record, "values"))
    {
        double v;
        if (item->string && scalar_number(item, &v) && !isfinite(v))
            consider(&values, item->string, 0, v, 0);
    }
    char *message;
    if (tensors.count) {
        /* Elements read: all of them unless the statistics were sampled. */
        double read =
            isnan(worst->sampled) ? worst->elements : round(worst->elements * worst->sampled);
        message = tensors.a > 0 && tensors.b > 0
                      ? format("%.*s: %.0f NaN and %.0f Inf in %.0f elements read", NAME_SHOWN,
                               tensors.subject, tensors.a, tensors.b, read)
                      : format("%.*s: %.0f %s in %.0f elements read", NAME_SHOWN, tensors.subject,
                               tensors.a > 0 ? tensors.a : tensors.b, tensors.a > 0 ? "NaN" : "Inf",
                               read);
        message = with_more(message, tensors.count - 1, "tensor");
        message = with_more(message, values.count, "value");
        add_alert(out, "nonfinite", SEVERITY_CRITICAL, tensors.subject,
                  tensors.count + values.count, message);
    } else if (values.count) {
        message = format("%.*s = %s", NAME_SHOWN, values.subject,
                         isnan(values.a) ? "nan"
                         : values.a > 0  ? "inf"
                                         : "-inf");
        message = with_more(message, values.count - 1, "value");
        add_alert(out, "nonfinite", SEVERITY_CRITICAL, values.subject, values.count, message);
    }
}

static void rule_incomplete(const cJSON *record, struct alert_list *out)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(record, "complete"))) return;
    const cJSON *error = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(record, "errors"), 0);
    const cJSON *missing = cJSON_GetObjectItemCaseSensitive(record, "missing"); /* a set's */
    const cJSON *first = cJSON_GetArrayItem(missing, 0);
    double bytes = member_number(record, "bytes");
    char *message =
        cJSON_IsString(first)
            ? with_more(format("set incomplete: %.*s", 2 * NAME_SHOWN, first->valuestring),
                        cJSON_GetArraySize(missing) - 1, "file")
        : cJSON_IsString(error)
            ? format("incomplete at %.0f bytes: %.*s", bytes, 2 * NAME_SHOWN, error->valuestring)
            : format("incomplete at %.0f bytes: the writer stopped before the data ended", bytes);
    add_alert(out, "incomplete", SEVERITY_CRITICAL, NULL, 1, message);
}

static void rule_shrunk(const struct snapshot *now, const struct snapshot *prev,
                        struct alert_list *out)
{
    struct finding missing = {0};
    for (size_t i = 0; i < prev->count; i++)
        if (!snapshot_find(now, prev->tensors[i].name))
            consider(&missing, prev->tensors[i].name, prev->tensors[i].elements, 0, 0);
    bool smaller = now->bytes >= 0 && now->bytes * 2 < prev->bytes;
    if (!missing.count && !smaller) return;
    char *message;
    if (missing.count)
        message = with_more(format("%.*s is missing (it was in the previous checkpoint)",
                                   NAME_SHOWN, missing.subject),
                            missing.count - 1, "tensor");
    else
        message = format(
            "%lld bytes, %.0f%% less than the previous checkpoint's %lld", (long long)now->bytes,
            100.0 - 100.0 * (double)now->bytes / (double)prev->bytes, (long long)prev->bytes);
    if (missing.count && smaller) {
        char *both = format("%s; %lld bytes, previously %lld", message, (long long)now->bytes,
                            (long long)prev->bytes);
        free(message);
        message = both;
    }
    add_alert(out, "shrunk", SEVERITY_WARNING, missing.subject, missing.count ? missing.count : 1,
              message);
}

static void rule_frozen(const struct snapshot *now, const struct snapshot *prev,
                        struct alert_list *out)
{
    struct finding frozen = {0};
    bool others_changed = false;
    for (size_t i = 0; i < now->count; i++) {
        const struct tensor_summary *t = &now->tensors[i], *before = snapshot_find(prev, t->name);
        if (!before) continue;
        if (!summary_same_stats(t, before))
            others_changed = true;
        else if (t->floating && t->elements >= FROZEN_MIN_ELEMENTS &&
                 before->elements == t->elements && !isnan(t->stat[STAT_MEAN]))
            consider(&frozen, t->name, t->elements, t->elements, 0);
    }
    if (!frozen.count || !others_changed) return;
    char *message =
        format("%.*s: statistics identical to the previous checkpoint's (%.0f elements)",
               NAME_SHOWN, frozen.subject, frozen.a);
    add_alert(out, "frozen", SEVERITY_WARNING, frozen.subject, frozen.count,
              with_more(message, frozen.count - 1, "tensor"));
}

static double rms(const struct tensor_summary *t)
{
    return sqrt(t->stat[STAT_MEAN] * t->stat[STAT_MEAN] + t->stat[STAT_STD] * t->stat[STAT_STD]);
}

static void rule_exploding(const struct snapshot *now, const struct snapshot *prev,
                           struct alert_list *out)
{
    struct finding grew = {0};
    for (size_t i = 0; i < now->count; i++) {
        const struct tensor_summary *t = &now->tensors[i], *before = snapshot_find(prev, t->name);
        if (!before || !t->floating || t->elements < 2) continue;
        double was = rms(before), is = rms(t);
        if (isfinite(was) && was > 0 && isfinite(is) && is > EXPLODING_FACTOR * was)
            consider(&grew, t->name, is / was, is, was);
    }
    if (!grew.count) return;
    char *message = format("%.*s: rms %.6g, %.3g times the previous checkpoint's %.6g", NAME_SHOWN,
                           grew.subject, grew.a, grew.a / grew.b, grew.b);
    add_alert(out, "exploding", SEVERITY_WARNING, grew.subject, grew.count,
              with_more(message, grew.count - 1, "tensor"));
}

static bool compare(double v, enum rule_op op, double number)
{
    switch (op) {
    case OP_LT:
        return v < number;
    case OP_LE:
        return v <= number;
    case OP_GT:
        return v > number;
    case OP_GE:
        return v >= number;
    case OP_EQ:
        return v == number;
    case OP_NE:
        return v != number;
    }
    return false;
}

/* How bad a firing value is: the furthest past the number, in the operator's direction. */
static double badness(double v, enum rule_op op)
{
    return op == OP_LT || op == OP_LE ? -v : op == OP_GT || op == OP_GE ? v : 0;
}

static double tensor_stat(const struct tensor_summary *t, int stat)
{
    return stat == STAT_RMS ? rms(t) : t->stat[stat];
}

static void rule_user(const struct user_rule *rule, const cJSON *record, const struct snapshot *now,
                      struct alert_list *out)
{
    struct finding f = {0};
    if (rule->stat == STAT_VALUE) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(record, "values"))
        {
            double v;
            if (item->string && scalar_number(item, &v) &&
                !fnmatch(rule->pattern, item->string, 0) && compare(v, rule->op, rule->number))
                consider(&f, item->string, badness(v, rule->op), v, 0);
        }
    } else {
        for (size_t i = 0; i < now->count; i++) {
            const struct tensor_summary *t = &now->tensors[i];
            double v = tensor_stat(t, rule->stat);
            if (!fnmatch(rule->pattern, t->name, 0) && compare(v, rule->op, rule->number))
                consider(&f, t->name, badness(v, rule->op), v, 0);
        }
    }
    if (!f.count) return;
    const char *stat = rule->stat == STAT_VALUE ? NULL
                       : rule->stat == STAT_RMS ? "rms"
                                                : tensor_stat_names[rule->stat];
    char *message = format("%.*s%s%s = %.6g (%s %.6g)", NAME_SHOWN, f.subject, stat ? ":" : "",
                           stat ? stat : "", f.a, op_names[rule->op], rule->number);
    add_alert(out, rule->name, SEVERITY_WARNING, f.subject, f.count,
              with_more(message, f.count - 1, rule->stat == STAT_VALUE ? "value" : "tensor"));
}

void alerts_evaluate(const struct rule_set *rs, const cJSON *record,
                     const struct tensor_list *tensors, const struct snapshot *now,
                     const struct snapshot *prev, struct alert_list *out)
{
    bool complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(record, "complete"));
    rule_nonfinite(record, tensors, out);
    rule_incomplete(record, out);
    if (complete && prev) {
        rule_shrunk(now, prev, out);
        rule_frozen(now, prev, out);
        rule_exploding(now, prev, out);
    }
    for (size_t i = 0; i < rs->user_count; i++)
        rule_user(&rs->user[i], record, now, out);
}

void alert_list_free(struct alert_list *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].subject);
        free(l->items[i].message);
    }
    free(l->items);
    *l = (struct alert_list){0};
}

cJSON *alert_record(const cJSON *checkpoint, const struct alert *a, double total)
{
    static const char *const copied[] = {"time", "host", "pid",  "program",
                                         "job",  "run",  "rank", "path"};
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "schema", 1);
    cJSON_AddStringToObject(o, "event", "alert");
    for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(checkpoint, copied[i]);
        if (v) cJSON_AddItemToObject(o, copied[i], cJSON_Duplicate(v, true));
    }
    cJSON_AddStringToObject(o, "rule", a->rule);
    cJSON_AddStringToObject(o, "severity", severity_name(a->severity));
    if (a->subject) cJSON_AddStringToObject(o, "subject", a->subject);
    cJSON_AddNumberToObject(o, "count", (double)a->count);
    cJSON_AddStringToObject(o, "message", a->message);
    cJSON_AddNumberToObject(o, "total", total);
    return o;
}
