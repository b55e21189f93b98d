/* report.c — `ckmon report`: one self-contained HTML page about the run in a log.
 *
 * The page loads nothing: charts are inline SVG written here, the style and the one small
 * script (the tensor filter) are inline, and a Content-Security-Policy forbids any other
 * source, so opening it makes no request at all.
 *
 * The log is read once, line by line; what the page needs is kept in arrays: per
 * checkpoint its x candidates (step, global_step, epoch, time) and size, per value key
 * and per tensor the points of its series. A series is one file label (the base name
 * with digit runs as N, as the metrics' `file` label) and one key or tensor name.
 *
 * The page's size is bounded whatever the run's: at most REPORT_VALUE_CHARTS value
 * charts and REPORT_TENSOR_CHARTS tensor charts, each drawn from at most
 * REPORT_CHART_POINTS points (series with more are averaged in equal buckets, min/max
 * kept and NaN/Inf marks never lost); the other tensors are rows with a sparkline behind
 * a filter, at most REPORT_TENSOR_ROWS of them; at most REPORT_TABLE_ROWS checkpoints
 * and REPORT_ALERT_ROWS alerts are listed (the newest).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "metrics.h"
#include "set_layouts.h"
#include "table.h"

#define REPORT_VALUE_CHARTS  48
#define REPORT_TENSOR_CHARTS 40
#define REPORT_CHART_POINTS  200
#define REPORT_TENSOR_ROWS   500
#define REPORT_TABLE_ROWS    2000
#define REPORT_ALERT_ROWS    500
#define REPORT_RESUME_ROWS   20 /* loads listed as "resumed from" */
#define REPORT_DEFAULT_PAGE  "ckmon-report.html"

#define W  360 /* chart size in SVG units */
#define H  150
#define ML 56 /* margins: left (y labels), right, top, bottom (x labels) */
#define MR 8
#define MT 8
#define MB 20

enum axis { AXIS_STEP, AXIS_GLOBAL_STEP, AXIS_EPOCH, AXIS_TIME, AXIS_COUNT };
static const char *const axis_names[] = {"step", "global_step", "epoch", "time"};

struct checkpoint {
    double x[AXIS_COUNT]; /* NaN when the record has no such value */
    double bytes, seconds;
    bool complete;
    char *path, *format, *label;
    unsigned alerts;
    long set;      /* the set row it is folded into, -1: none */
    char *set_dir; /* the directory of the set its path belongs to (set_layouts.h), or NULL */
};

/* A set record: one row of the checkpoints table, its files' rows folded under it. */
struct set_row {
    double time, bytes, seconds, files;
    bool complete;
    char *path, *kind;
    size_t before; /* checkpoints read before it: where its row goes */
};

struct value_point {
    size_t ckpt;
    double y;
};

struct tensor_point {
    size_t ckpt;
    double mean, std, min, max; /* NaN when null (no finite element) */
    double nan, inf;
};

struct series {
    char *label, *name;
    void *points; /* value_point or tensor_point */
    size_t n, cap;
    bool alerted;
    double score;
};

struct alert_row {
    double time;
    char *rule, *severity, *path, *message;
    long ckpt; /* the checkpoint it is about, or -1 */
};

struct run {
    const char *job_filter;
    struct checkpoint *ckpts;
    size_t nckpts, ckpt_cap;
    struct series *values, *tensors;
    size_t nvalues, value_cap, ntensors, tensor_cap;
    struct alert_row *alerts;
    size_t nalerts, alert_cap;
    struct set_row *set_rows;
    size_t nset_rows, set_row_cap;
    /* a hash of "label\x1fname" to series index, one per kind */
    long *value_slots, *tensor_slots;
    size_t value_slot_count, tensor_slot_count;
    /* header */
    cJSON *jobs, *hosts, *ranks, *rules; /* objects as sets (rules: counts) */
    cJSON *
        listed_rules; /* rules counted from checkpoints' "alerts", for logs without alert records */
    double first_time, last_time, total_bytes;
    size_t incomplete, sets, loads, lines_skipped;
    cJSON *resumes; /* the first load records of each run and path, in log order */
};

static void *grow(void *items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return items;
    size_t want = *cap ? 2 * *cap : 16;
    void *grown = realloc(items, want * size);
    if (!grown) {
        fprintf(stderr, "ckmon report: out of memory\n");
        exit(1);
    }
    *cap = want;
    return grown;
}

static char *copy(const char *s)
{
    char *c = strdup(s ? s : "");
    if (!c) {
        fprintf(stderr, "ckmon report: out of memory\n");
        exit(1);
    }
    return c;
}

static double parse_time(const char *text)
{
    struct tm tm = {0};
    double seconds;
    if (!text || sscanf(text, "%d-%d-%dT%d:%d:%lf", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                        &tm.tm_hour, &tm.tm_min, &seconds) != 6)
        return NAN;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm) + seconds;
}

static double number_of(const cJSON *v)
{
    if (cJSON_IsNumber(v)) return v->valuedouble;
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    /* a string that is no number: finite 0, so that it is not taken for one */
    if (!cJSON_IsString(v)) return NAN;
    const char *s = cJSON_GetStringValue(v);
    if (s && !strcmp(s, "nan")) return NAN;
    if (s && !strcmp(s, "inf")) return INFINITY;
    if (s && !strcmp(s, "-inf")) return -INFINITY;
    return 0;
}

static double member_number(const cJSON *o, const char *name)
{
    return number_of(cJSON_GetObjectItemCaseSensitive(o, name));
}

static const char *member_text(const cJSON *o, const char *name)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static void count_in(cJSON *set, const char *key)
{
    if (!key) return;
    cJSON *c = cJSON_GetObjectItemCaseSensitive(set, key);
    if (c)
        cJSON_SetNumberValue(c, c->valuedouble + 1);
    else
        cJSON_AddNumberToObject(set, key, 1);
}

/* ---- Series by (label, name) -------------------------------------------------------- */

static uint64_t hash2(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0x1f) * 1099511628211ULL;
    for (const char *p = b; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

/* The series of (label, name) in list, created when new; open addressing, rehashed at
 * half full. */
static struct series *series_for(struct series **list, size_t *n, size_t *cap, long **slots,
                                 size_t *slot_count, const char *label, const char *name)
{
    if (2 * (*n + 1) > *slot_count) {
        size_t count = *slot_count ? 2 * *slot_count : 1024;
        long *fresh = malloc(count * sizeof *fresh);
        if (!fresh) {
            fprintf(stderr, "ckmon report: out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < count; i++)
            fresh[i] = -1;
        for (size_t i = 0; i < *n; i++) {
            size_t at = hash2((*list)[i].label, (*list)[i].name) & (count - 1);
            while (fresh[at] >= 0)
                at = (at + 1) & (count - 1);
            fresh[at] = (long)i;
        }
        free(*slots);
        *slots = fresh;
        *slot_count = count;
    }
    size_t at = hash2(label, name) & (*slot_count - 1);
    for (; (*slots)[at] >= 0; at = (at + 1) & (*slot_count - 1)) {
        struct series *s = &(*list)[(*slots)[at]];
        if (!strcmp(s->label, label) && !strcmp(s->name, name)) return s;
    }
    *list = grow(*list, cap, *n, sizeof **list);
    struct series *s = &(*list)[*n];
    *s = (struct series){.label = copy(label), .name = copy(name)};
    (*slots)[at] = (long)(*n)++;
    return s;
}

static void add_value(struct run *run, const char *label, const char *key, size_t ckpt, double y)
{
    struct series *s = series_for(&run->values, &run->nvalues, &run->value_cap, &run->value_slots,
                                  &run->value_slot_count, label, key);
    s->points = grow(s->points, &s->cap, s->n, sizeof(struct value_point));
    ((struct value_point *)s->points)[s->n++] = (struct value_point){ckpt, y};
}

static void add_tensor(struct run *run, const char *label, const cJSON *t, size_t ckpt)
{
    const char *name = member_text(t, "name");
    if (!name) return;
    struct series *s = series_for(&run->tensors, &run->ntensors, &run->tensor_cap,
                                  &run->tensor_slots, &run->tensor_slot_count, label, name);
    s->points = grow(s->points, &s->cap, s->n, sizeof(struct tensor_point));
    struct tensor_point p = {ckpt,
                             member_number(t, "mean"),
                             member_number(t, "std"),
                             member_number(t, "min"),
                             member_number(t, "max"),
                             member_number(t, "nan"),
                             member_number(t, "inf")};
    if (p.nan > 0 || p.inf > 0) s->alerted = true;
    ((struct tensor_point *)s->points)[s->n++] = p;
}

/* ---- Reading the log ----------------------------------------------------------------- */

static void take_common(struct run *run, const cJSON *rec, double time)
{
    count_in(run->jobs, member_text(rec, "job"));
    count_in(run->hosts, member_text(rec, "host"));
    const cJSON *rank = cJSON_GetObjectItemCaseSensitive(rec, "rank");
    if (cJSON_IsNumber(rank)) {
        char text[32];
        snprintf(text, sizeof text, "%.0f", rank->valuedouble);
        count_in(run->ranks, text);
    }
    if (isfinite(time)) {
        if (!(time >= run->first_time)) run->first_time = time;
        if (!(time <= run->last_time)) run->last_time = time;
    }
}

static void take_checkpoint(struct run *run, const cJSON *rec, double time)
{
    const char *path = member_text(rec, "path");
    char label[FILE_LABEL_SIZE];
    file_label(path ? path : "?", label, sizeof label);
    run->ckpts = grow(run->ckpts, &run->ckpt_cap, run->nckpts, sizeof *run->ckpts);
    size_t at = run->nckpts++;
    struct checkpoint *c = &run->ckpts[at];
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(rec, "values"), *v;
    *c = (struct checkpoint){
        .bytes = member_number(rec, "bytes"),
        .seconds = member_number(rec, "seconds"),
        .complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "complete")),
        .path = copy(path),
        .format = copy(member_text(rec, "format")),
        .label = copy(label),
        .alerts = (unsigned)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rec, "alerts")),
        .set = -1};
    struct set_place place;
    if (path && set_place_of(path, &place)) c->set_dir = place.dir;
    for (int a = 0; a < AXIS_TIME; a++) {
        const cJSON *x = table_key_value(values, axis_names[a]);
        c->x[a] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
    }
    c->x[AXIS_TIME] = time;
    if (isfinite(c->bytes)) run->total_bytes += c->bytes;
    run->incomplete += !c->complete;
    /* numbers, booleans, and the strings non-finite numbers are written as (a log line
     * is not to be trusted: values that are no object are none) */
    for (v = cJSON_IsObject(values) ? values->child : NULL; v; v = v->next) {
        double y = number_of(v);
        if (cJSON_IsNumber(v) || cJSON_IsBool(v) || (cJSON_IsString(v) && !isfinite(y)))
            add_value(run, label, v->string, at, y);
    }
    const cJSON *rule;
    cJSON_ArrayForEach(rule, cJSON_GetObjectItemCaseSensitive(rec, "alerts"))
        count_in(run->listed_rules, cJSON_GetStringValue(rule));
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(rec, "tensors"))
        add_tensor(run, label, t, at);
}

static void take_alert(struct run *run, const cJSON *rec, double time)
{
    run->alerts = grow(run->alerts, &run->alert_cap, run->nalerts, sizeof *run->alerts);
    struct alert_row *a = &run->alerts[run->nalerts++];
    *a = (struct alert_row){.time = time,
                            .rule = copy(member_text(rec, "rule")),
                            .severity = copy(member_text(rec, "severity")),
                            .path = copy(member_text(rec, "path")),
                            .message = copy(member_text(rec, "message")),
                            .ckpt = -1};
    count_in(run->rules, a->rule);
    /* the newest checkpoint of that path so far: alerts follow their checkpoint */
    for (size_t i = run->nckpts; i-- > 0;)
        if (!strcmp(run->ckpts[i].path, a->path)) {
            a->ckpt = (long)i;
            break;
        }
    const char *subject = member_text(rec, "subject");
    if (a->ckpt >= 0 && subject) {
        struct series *s =
            series_for(&run->tensors, &run->ntensors, &run->tensor_cap, &run->tensor_slots,
                       &run->tensor_slot_count, run->ckpts[a->ckpt].label, subject);
        s->alerted = true;
    }
}

/* A set record: its row, and the checkpoints of its files not yet in a set folded into
 * it (they come before it in the log). */
static void take_set(struct run *run, const cJSON *rec, double time)
{
    run->sets++;
    run->set_rows = grow(run->set_rows, &run->set_row_cap, run->nset_rows, sizeof *run->set_rows);
    size_t at = run->nset_rows++;
    run->set_rows[at] = (struct set_row){
        .time = time,
        .bytes = member_number(rec, "bytes"),
        .seconds = member_number(rec, "seconds"),
        .files = member_number(rec, "files"),
        .complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "complete")),
        .path = copy(member_text(rec, "path")),
        .kind = copy(member_text(rec, "kind")),
        .before = run->nckpts};
    /* the table shows the newest REPORT_TABLE_ROWS checkpoints: no older one is folded */
    size_t oldest = run->nckpts > REPORT_TABLE_ROWS ? run->nckpts - REPORT_TABLE_ROWS : 0;
    for (size_t i = run->nckpts; run->set_rows[at].path && i-- > oldest;) {
        struct checkpoint *c = &run->ckpts[i];
        if (c->set < 0 && c->set_dir && set_dir_is(c->set_dir, run->set_rows[at].path))
            c->set = (long)at;
    }
}

static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

/* Where a run resumed from: its loads, a run's repeated reads of one file listed once. */
static void take_load(struct run *run, const cJSON *rec)
{
    const cJSON *seen;
    run->loads++;
    cJSON_ArrayForEach(seen, run->resumes)
    {
        if (same_text(member_text(seen, "path"), member_text(rec, "path")) &&
            same_text(member_text(seen, "run"), member_text(rec, "run")))
            return;
    }
    if (cJSON_GetArraySize(run->resumes) < REPORT_RESUME_ROWS)
        cJSON_AddItemToArray(run->resumes, cJSON_Duplicate(rec, true));
}

static void take_record(struct run *run, const cJSON *rec)
{
    const char *job = member_text(rec, "job");
    if (run->job_filter && (!job || strcmp(job, run->job_filter))) return;
    const char *event = member_text(rec, "event");
    double time = parse_time(member_text(rec, "time"));
    take_common(run, rec, time);
    if (!event || !strcmp(event, "checkpoint"))
        take_checkpoint(run, rec, time);
    else if (!strcmp(event, "alert"))
        take_alert(run, rec, time);
    else if (!strcmp(event, "set"))
        take_set(run, rec, time);
    else if (!strcmp(event, "load"))
        take_load(run, rec);
}

static bool read_log(struct run *run, const char *path)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        fprintf(stderr, "ckmon report: %s: %s\n", path, strerror(errno));
        return false;
    }
    char *line = NULL;
    size_t size = 0;
    ssize_t n;
    while ((n = getline(&line, &size, f)) > 0) {
        cJSON *rec = cJSON_ParseWithLength(line, (size_t)n);
        if (cJSON_IsObject(rec))
            take_record(run, rec);
        else if (n > 1)
            run->lines_skipped++;
        cJSON_Delete(rec);
    }
    free(line);
    if (f != stdin) fclose(f);
    /* A log without alert records (an older collector) still says which rules fired, in
     * the checkpoint records' "alerts". */
    if (!run->nalerts) {
        cJSON *swap = run->rules;
        run->rules = run->listed_rules;
        run->listed_rules = swap;
    }
    return true;
}

/* ---- HTML ------------------------------------------------------------------------------ */

static void html(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '&':
            fputs("&amp;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        default:
            fputc(*s, out);
        }
    }
}

static const char *time_text(double t, char *buf, size_t size)
{
    if (!isfinite(t)) return snprintf(buf, size, "-"), buf;
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

static const char *axis_text(double v, enum axis a, char *buf, size_t size)
{
    if (a == AXIS_TIME) {
        time_t s = (time_t)v;
        struct tm tm;
        gmtime_r(&s, &tm);
        strftime(buf, size, "%H:%M:%S", &tm);
    } else {
        snprintf(buf, size, "%.4g", v);
    }
    return buf;
}

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd",
                                      "#8c564b", "#e377c2", "#17becf", "#7f7f7f"};

/* A chart's frame: x and y ranges mapped onto the plot area. */
struct frame {
    double x0, x1, y0, y1;
    enum axis axis;
};

static double px(const struct frame *f, double x)
{
    return ML + (f->x1 > f->x0 ? (x - f->x0) / (f->x1 - f->x0) : 0.5) * (W - ML - MR);
}

static double py(const struct frame *f, double y)
{
    return H - MB - (f->y1 > f->y0 ? (y - f->y0) / (f->y1 - f->y0) : 0.5) * (H - MT - MB);
}

static void widen(struct frame *f, double x, double y)
{
    if (isfinite(x)) {
        if (!(x >= f->x0)) f->x0 = x;
        if (!(x <= f->x1)) f->x1 = x;
    }
    if (isfinite(y)) {
        if (!(y >= f->y0)) f->y0 = y;
        if (!(y <= f->y1)) f->y1 = y;
    }
}

static void frame_init(struct frame *f, enum axis a)
{
    *f = (struct frame){NAN, NAN, NAN, NAN, a};
}

static void svg_begin(FILE *out, const struct frame *f)
{
    char a[32], b[32];
    fprintf(out, "<svg viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\">", W, H, W, H);
    fprintf(out, "<rect class=\"plot\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>", ML, MT,
            W - ML - MR, H - MT - MB);
    if (isfinite(f->y0)) {
        fprintf(out, "<text class=\"ax\" x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4g</text>", ML - 3,
                MT + 8, f->y1);
        fprintf(out, "<text class=\"ax\" x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4g</text>", ML - 3,
                H - MB, f->y0);
    }
    if (isfinite(f->x0)) {
        fprintf(out, "<text class=\"ax\" x=\"%d\" y=\"%d\">%s</text>", ML, H - 5,
                axis_text(f->x0, f->axis, a, sizeof a));
        fprintf(out, "<text class=\"ax\" x=\"%d\" y=\"%d\" text-anchor=\"end\">%s %s</text>",
                W - MR, H - 5, axis_names[f->axis], axis_text(f->x1, f->axis, b, sizeof b));
    }
}

/* The x of a checkpoint on an axis. */
static double x_of(const struct run *run, size_t ckpt, enum axis a)
{
    return run->ckpts[ckpt].x[a];
}

/* The first axis every point of these series has (time when none). */
static enum axis choose_axis(const struct run *run, struct series *const *list, size_t n,
                             bool tensors)
{
    for (int a = 0; a < AXIS_TIME; a++) {
        bool all = true;
        for (size_t i = 0; i < n && all; i++)
            for (size_t k = 0; k < list[i]->n && all; k++) {
                size_t ckpt = tensors ? ((struct tensor_point *)list[i]->points)[k].ckpt
                                      : ((struct value_point *)list[i]->points)[k].ckpt;
                all = isfinite(x_of(run, ckpt, (enum axis)a));
            }
        if (all) return (enum axis)a;
    }
    return AXIS_TIME;
}

/* Points as drawn: series longer than REPORT_CHART_POINTS are averaged in buckets of
 * consecutive points (min of mins, max of maxes, NaN/Inf counts added). */
struct drawn {
    double x, mean, std, min, max, bad;
};

static size_t draw_points(const struct run *run, const struct series *s, bool tensor, enum axis a,
                          struct drawn *out)
{
    size_t n = s->n, buckets = n < REPORT_CHART_POINTS ? n : REPORT_CHART_POINTS, used = 0;
    for (size_t b = 0; b < buckets; b++) {
        size_t from = b * n / buckets, to = (b + 1) * n / buckets;
        struct drawn d = {0, 0, 0, INFINITY, -INFINITY, 0};
        size_t xs = 0, ys = 0;
        for (size_t k = from; k < to; k++) {
            double x, mean, std = 0, lo, hi, bad = 0;
            if (tensor) {
                const struct tensor_point *p = &((struct tensor_point *)s->points)[k];
                x = x_of(run, p->ckpt, a);
                mean = p->mean, std = p->std, lo = p->min, hi = p->max;
                bad = (isfinite(p->nan) ? p->nan : 0) + (isfinite(p->inf) ? p->inf : 0);
            } else {
                const struct value_point *p = &((struct value_point *)s->points)[k];
                x = x_of(run, p->ckpt, a);
                mean = lo = hi = p->y;
                bad = isfinite(p->y) ? 0 : 1;
            }
            if (isfinite(x)) d.x += x, xs++;
            if (isfinite(mean)) d.mean += mean, d.std += isfinite(std) ? std : 0, ys++;
            if (isfinite(lo) && lo < d.min) d.min = lo;
            if (isfinite(hi) && hi > d.max) d.max = hi;
            d.bad += bad;
        }
        if (!xs) continue;
        d.x /= (double)xs;
        d.mean = ys ? d.mean / (double)ys : NAN;
        d.std = ys ? d.std / (double)ys : NAN;
        if (d.min > d.max) d.min = d.max = NAN;
        out[used++] = d;
    }
    return used;
}

static int by_x(const void *a, const void *b)
{
    const struct drawn *x = a, *y = b;
    return (x->x > y->x) - (x->x < y->x);
}

/* A polyline through the finite points; pick: 0 mean, 1 min, 2 max, 3 mean+std, 4 mean-std. */
static void polyline(FILE *out, const struct frame *f, const struct drawn *d, size_t n, int pick,
                     const char *attrs)
{
    fprintf(out, "<polyline %s points=\"", attrs);
    for (size_t i = 0; i < n; i++) {
        double y = pick == 0   ? d[i].mean
                   : pick == 1 ? d[i].min
                   : pick == 2 ? d[i].max
                   : pick == 3 ? d[i].mean + d[i].std
                               : d[i].mean - d[i].std;
        if (isfinite(y)) fprintf(out, "%.1f,%.1f ", px(f, d[i].x), py(f, y));
    }
    fputs("\"/>", out);
}

/* Red marks at the top of the plot where a point had NaN/Inf. */
static void bad_marks(FILE *out, const struct frame *f, const struct drawn *d, size_t n,
                      const char *what)
{
    char x[32];
    for (size_t i = 0; i < n; i++)
        if (d[i].bad > 0)
            fprintf(out,
                    "<circle class=\"nonfinite\" cx=\"%.1f\" cy=\"%d\" r=\"4\"><title>%.0f %s at "
                    "%s %s</title></circle>",
                    px(f, d[i].x), MT + 5, d[i].bad, what, axis_names[f->axis],
                    axis_text(d[i].x, f->axis, x, sizeof x));
}

/* ---- Sections --------------------------------------------------------------------------- */

/* Each load: the run that read it, the file, and the record that wrote it. */
static void write_resumes(FILE *out, const struct run *run)
{
    const cJSON *load;
    if (!run->loads) return;
    fputs("<tr><th>resumed from</th><td id=\"resumed-from\">", out);
    cJSON_ArrayForEach(load, run->resumes)
    {
        const cJSON *written = cJSON_GetObjectItemCaseSensitive(load, "written");
        const cJSON *unchanged = cJSON_GetObjectItemCaseSensitive(load, "unchanged");
        fputs("<div class=\"resume\">", out);
        html(out, member_text(load, "job"));
        if (member_text(load, "run")) fputs(" run ", out), html(out, member_text(load, "run"));
        fputs(" read <code>", out);
        html(out, member_text(load, "path"));
        fputs("</code>, ", out);
        if (!cJSON_IsObject(written)) {
            fputs("which no record in this log wrote</div>", out);
            continue;
        }
        fputs("written at ", out);
        html(out, member_text(written, "time"));
        fputs(" by ", out);
        html(out, member_text(written, "job"));
        if (member_text(written, "run"))
            fputs(" run ", out), html(out, member_text(written, "run"));
        fputs(cJSON_IsTrue(unchanged)    ? ", unchanged"
              : cJSON_IsFalse(unchanged) ? ", <span class=\"bad\">changed since</span>"
                                         : "",
              out);
        fputs("</div>", out);
    }
    if (run->loads > (size_t)cJSON_GetArraySize(run->resumes))
        fprintf(out, "<div>%zu loads in all</div>", run->loads);
    fputs("</td></tr>", out);
}

static void header(FILE *out, struct run *run, const char *log)
{
    char a[64], b[64];
    const cJSON *item;
    fputs("<header><h1>ckmon report</h1><table class=\"summary\">", out);
    fputs("<tr><th>log</th><td>", out);
    html(out, log);
    fputs("</td></tr>", out);
    const char *names[] = {"jobs", "hosts", "ranks"};
    cJSON *sets[] = {run->jobs, run->hosts, run->ranks};
    for (int i = 0; i < 3; i++) {
        fprintf(out, "<tr><th>%s</th><td>", names[i]);
        int k = 0;
        cJSON_ArrayForEach(item, sets[i])
        {
            if (k++ == 20) {
                fprintf(out, " … (%d in all)", cJSON_GetArraySize(sets[i]));
                break;
            }
            if (k > 1) fputs(", ", out);
            html(out, item->string);
        }
        if (!k) fputs("-", out);
        fputs("</td></tr>", out);
    }
    fprintf(out, "<tr><th>time</th><td>%s — %s UTC (%.0f s)</td></tr>",
            time_text(run->first_time, a, sizeof a), time_text(run->last_time, b, sizeof b),
            isfinite(run->last_time - run->first_time) ? run->last_time - run->first_time : 0);
    fprintf(out,
            "<tr><th>checkpoints</th><td id=\"count-checkpoints\">%zu, %s; <span%s>%zu "
            "incomplete</span>; %zu sets, %zu loads</td></tr>",
            run->nckpts, table_size(run->total_bytes, "B", a, sizeof a),
            run->incomplete ? " class=\"bad\"" : "", run->incomplete, run->sets, run->loads);
    write_resumes(out, run);
    fputs("<tr><th>alerts</th><td id=\"alert-rules\">", out);
    int k = 0;
    cJSON_ArrayForEach(item, run->rules)
    {
        fprintf(out, "%s<span class=\"rule\">", k++ ? ", " : "");
        html(out, item->string);
        fprintf(out, "</span> %.0f", item->valuedouble);
    }
    if (!k) fputs("none", out);
    fputs("</td></tr></table></header>\n", out);
    fputs("<nav><a href=\"#values\">values</a> · <a href=\"#tensors\">tensors</a> · <a "
          "href=\"#saves\">checkpoints</a> · <a href=\"#alerts\">alerts</a></nav>\n",
          out);
}

/* Value keys users look at first. */
static int key_rank(const char *key)
{
    static const char *const first[] = {"loss",  "lr",   "learning_rate",
                                        "epoch", "step", "global_step"};
    const char *dot = strrchr(key, '.');
    const char *last = dot ? dot + 1 : key;
    for (int i = 0; i < 6; i++)
        if (!strcmp(key, first[i])) return i;
    for (int i = 0; i < 6; i++)
        if (!strcmp(last, first[i])) return 10 + i;
    return 100;
}

struct key_group {
    const char *key;
    struct series **members;
    size_t n;
    int rank;
    size_t points;
    bool varies;
};

static int by_key(const void *a, const void *b)
{
    const struct series *x = *(struct series *const *)a, *y = *(struct series *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->label, y->label);
}

/* The keys users look for first (loss, lr, epoch, step by name), then the ones that
 * change (constant ones, such as a Trainer's old log_history entries, last), then the
 * named ones among those, then the longest series. */
static int by_interest(const void *a, const void *b)
{
    const struct key_group *x = a, *y = b;
    bool xn = x->rank < 10, yn = y->rank < 10;
    if (xn != yn) return yn - xn;
    if (x->varies != y->varies) return y->varies - x->varies;
    if (x->rank != y->rank) return x->rank - y->rank;
    if (x->points != y->points) return x->points < y->points ? 1 : -1;
    return strcmp(x->key, y->key);
}

static void value_chart(FILE *out, struct run *run, const struct key_group *g, struct drawn *buf)
{
    struct frame f;
    frame_init(&f, choose_axis(run, g->members, g->n, false));
    for (size_t i = 0; i < g->n; i++) {
        size_t n = draw_points(run, g->members[i], false, f.axis, buf);
        for (size_t k = 0; k < n; k++)
            widen(&f, buf[k].x, buf[k].mean);
    }
    fputs("<figure class=\"chart value\" data-key=\"", out);
    html(out, g->key);
    fputs("\"><figcaption>", out);
    html(out, g->key);
    fputs("</figcaption>", out);
    svg_begin(out, &f);
    for (size_t i = 0; i < g->n && i < 8; i++) {
        size_t n = draw_points(run, g->members[i], false, f.axis, buf);
        qsort(buf, n, sizeof *buf, by_x);
        char attrs[96];
        snprintf(attrs, sizeof attrs, "class=\"line\" stroke=\"%s\"", palette[i]);
        polyline(out, &f, buf, n, 0, attrs);
        for (size_t k = 0; k < n && n <= 40; k++)
            if (isfinite(buf[k].mean))
                fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"%s\"/>",
                        px(&f, buf[k].x), py(&f, buf[k].mean), palette[i]);
        bad_marks(out, &f, buf, n, "non-finite");
    }
    fputs("</svg><div class=\"legend\">", out);
    for (size_t i = 0; i < g->n && i < 8; i++) {
        fprintf(out, "<span style=\"color:%s\">■</span> ", palette[i]);
        html(out, g->members[i]->label);
        fputs(" ", out);
    }
    if (g->n > 8) fprintf(out, "(+%zu files)", g->n - 8);
    fputs("</div></figure>\n", out);
}

static void values_section(FILE *out, struct run *run, struct drawn *buf)
{
    fputs("<section id=\"values\"><h2>Values over the run</h2>", out);
    struct series **sorted = malloc((run->nvalues ? run->nvalues : 1) * sizeof *sorted);
    struct key_group *groups = malloc((run->nvalues ? run->nvalues : 1) * sizeof *groups);
    if (!sorted || !groups) exit(1);
    for (size_t i = 0; i < run->nvalues; i++)
        sorted[i] = &run->values[i];
    qsort(sorted, run->nvalues, sizeof *sorted, by_key);
    size_t ngroups = 0;
    for (size_t i = 0; i < run->nvalues;) {
        struct key_group g = {.key = sorted[i]->name, .members = &sorted[i]};
        while (i < run->nvalues && !strcmp(sorted[i]->name, g.key)) {
            const struct series *s = sorted[i];
            const struct value_point *p = s->points;
            for (size_t k = 1; k < s->n && !g.varies; k++)
                g.varies = p[k].y != p[0].y;
            g.points += s->n;
            g.n++;
            i++;
        }
        g.rank = key_rank(g.key);
        groups[ngroups++] = g;
    }
    qsort(groups, ngroups, sizeof *groups, by_interest);
    fputs("<div class=\"grid\">", out);
    size_t charted = 0;
    for (size_t i = 0; i < ngroups && charted < REPORT_VALUE_CHARTS; i++) {
        if (groups[i].points < 2 && groups[i].rank >= 100) continue;
        value_chart(out, run, &groups[i], buf);
        charted++;
    }
    fputs("</div>", out);
    if (!ngroups) fputs("<p>No numeric values in the records.</p>", out);
    if (ngroups > charted)
        fprintf(out,
                "<p class=\"note\">%zu more keys not charted (single points, or past the first "
                "%d).</p>",
                ngroups - charted, REPORT_VALUE_CHARTS);
    fputs("</section>\n", out);
    free(sorted);
    free(groups);
}

/* How much a tensor's statistics moved over the run, relative to their scale. */
static double change_score(const struct series *s)
{
    const struct tensor_point *p = s->points;
    double first_mean = NAN, first_std = NAN, last_mean = NAN, last_std = NAN;
    for (size_t k = 0; k < s->n; k++) {
        if (!isfinite(p[k].mean)) continue;
        if (isnan(first_mean)) first_mean = p[k].mean, first_std = p[k].std;
        last_mean = p[k].mean, last_std = p[k].std;
    }
    if (isnan(first_mean)) return 0;
    double scale = fabs(first_mean) + (isfinite(first_std) ? first_std : 0) + 1e-30;
    return (fabs(last_mean - first_mean) + fabs(last_std - first_std)) / scale;
}

static int by_attention(const void *a, const void *b)
{
    const struct series *x = *(struct series *const *)a, *y = *(struct series *const *)b;
    if (x->alerted != y->alerted) return y->alerted - x->alerted;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return by_key(a, b);
}

static void tensor_chart(FILE *out, struct run *run, struct series *s, struct drawn *buf)
{
    struct series *one[] = {s};
    struct frame f;
    frame_init(&f, choose_axis(run, one, 1, true));
    size_t n = draw_points(run, s, true, f.axis, buf);
    qsort(buf, n, sizeof *buf, by_x);
    for (size_t k = 0; k < n; k++) {
        widen(&f, buf[k].x, buf[k].min);
        widen(&f, buf[k].x, buf[k].max);
        widen(&f, buf[k].x, buf[k].mean - buf[k].std);
        widen(&f, buf[k].x, buf[k].mean + buf[k].std);
    }
    fprintf(out, "<figure class=\"chart tensor%s\" data-tensor=\"", s->alerted ? " alerted" : "");
    html(out, s->name);
    fputs("\" data-file=\"", out);
    html(out, s->label);
    fputs("\"><figcaption>", out);
    html(out, s->name);
    fputs(" <small>", out);
    html(out, s->label);
    fputs("</small></figcaption>", out);
    svg_begin(out, &f);
    /* the mean ± std band: the upper edge forwards, the lower one back */
    fputs("<polygon class=\"band\" points=\"", out);
    for (size_t k = 0; k < n; k++)
        if (isfinite(buf[k].mean))
            fprintf(out, "%.1f,%.1f ", px(&f, buf[k].x), py(&f, buf[k].mean + buf[k].std));
    for (size_t k = n; k-- > 0;)
        if (isfinite(buf[k].mean))
            fprintf(out, "%.1f,%.1f ", px(&f, buf[k].x), py(&f, buf[k].mean - buf[k].std));
    fputs("\"/>", out);
    polyline(out, &f, buf, n, 1, "class=\"extreme\"");
    polyline(out, &f, buf, n, 2, "class=\"extreme\"");
    polyline(out, &f, buf, n, 0, "class=\"line\" stroke=\"#1f77b4\"");
    bad_marks(out, &f, buf, n, "NaN/Inf");
    fputs("</svg></figure>\n", out);
}

static void tensor_row(FILE *out, struct run *run, struct series *s, struct drawn *buf)
{
    struct series *one[] = {s};
    struct frame f;
    frame_init(&f, choose_axis(run, one, 1, true));
    size_t n = draw_points(run, s, true, f.axis, buf);
    qsort(buf, n, sizeof *buf, by_x);
    for (size_t k = 0; k < n; k++)
        widen(&f, buf[k].x, buf[k].mean);
    fputs("<div class=\"row\" data-name=\"", out);
    html(out, s->name);
    fputs("\"><svg viewBox=\"0 0 360 150\" width=\"96\" height=\"24\" "
          "preserveAspectRatio=\"none\">",
          out);
    polyline(out, &f, buf, n, 0, "class=\"line\" stroke=\"#1f77b4\"");
    fputs("</svg> ", out);
    html(out, s->name);
    fputs(" <small>", out);
    html(out, s->label);
    const struct tensor_point *last = &((struct tensor_point *)s->points)[s->n - 1];
    fprintf(out, "</small> mean %.4g std %.4g</div>\n", last->mean, last->std);
}

static void tensors_section(FILE *out, struct run *run, struct drawn *buf)
{
    fputs("<section id=\"tensors\"><h2>Tensors over the run</h2>", out);
    fputs("<p class=\"note\">Per tensor: mean ± std (band), min and max (thin lines), NaN/Inf "
          "(red marks). Tensors with NaN/Inf or an alert first, then those whose statistics "
          "moved most.</p>",
          out);
    struct series **order = malloc((run->ntensors ? run->ntensors : 1) * sizeof *order);
    if (!order) exit(1);
    size_t n = 0;
    for (size_t i = 0; i < run->ntensors; i++) {
        if (!run->tensors[i].n) continue; /* an alert subject that is not a tensor */
        run->tensors[i].score = change_score(&run->tensors[i]);
        order[n++] = &run->tensors[i];
    }
    qsort(order, n, sizeof *order, by_attention);
    fputs("<div class=\"grid\">", out);
    size_t charts = n < REPORT_TENSOR_CHARTS ? n : REPORT_TENSOR_CHARTS;
    for (size_t i = 0; i < charts; i++)
        tensor_chart(out, run, order[i], buf);
    fputs("</div>", out);
    if (!n) fputs("<p>No tensors in the records.</p>", out);
    if (n > charts) {
        size_t rows = n - charts < REPORT_TENSOR_ROWS ? n - charts : REPORT_TENSOR_ROWS;
        fprintf(out,
                "<details id=\"more-tensors\"><summary>%zu more tensors</summary><input "
                "id=\"filter\" type=\"search\" placeholder=\"filter by name\"><div id=\"rest\">",
                n - charts);
        for (size_t i = charts; i < charts + rows; i++)
            tensor_row(out, run, order[i], buf);
        fputs("</div>", out);
        if (n - charts > rows)
            fprintf(out, "<p class=\"note\">%zu more not listed (`ckmon inspect`, jq).</p>",
                    n - charts - rows);
        fputs("</details>", out);
    }
    fputs("</section>\n", out);
    free(order);
}

/* Size, write time and throughput per checkpoint over time, torn ones marked. */
static void saves_chart(FILE *out, struct run *run, int what, struct drawn *buf)
{
    static const char *const titles[] = {"size (bytes)", "write time (s)", "throughput (bytes/s)"};
    struct frame f;
    frame_init(&f, AXIS_TIME);
    size_t n = run->nckpts, buckets = n < REPORT_CHART_POINTS ? n : REPORT_CHART_POINTS;
    size_t used = 0;
    for (size_t b = 0; b < buckets; b++) {
        struct drawn d = {0, 0, 0, 0, 0, 0};
        size_t xs = 0, ys = 0;
        for (size_t k = b * n / buckets; k < (b + 1) * n / buckets; k++) {
            const struct checkpoint *c = &run->ckpts[k];
            double y = what == 0 ? c->bytes : what == 1 ? c->seconds : c->bytes / c->seconds;
            if (isfinite(c->x[AXIS_TIME])) d.x += c->x[AXIS_TIME], xs++;
            if (isfinite(y)) d.mean += y, ys++;
            d.bad += !c->complete;
        }
        if (!xs) continue;
        d.x /= (double)xs;
        d.mean = ys ? d.mean / (double)ys : NAN;
        buf[used++] = d;
        widen(&f, d.x, d.mean);
    }
    if (isfinite(f.y0) && f.y0 > 0) f.y0 = 0;
    fprintf(out, "<figure class=\"chart saves\" data-key=\"%s\"><figcaption>%s</figcaption>",
            what == 0   ? "bytes"
            : what == 1 ? "seconds"
                        : "throughput",
            titles[what]);
    svg_begin(out, &f);
    polyline(out, &f, buf, used, 0, "class=\"line\" stroke=\"#2ca02c\"");
    for (size_t k = 0; k < used && used <= 60; k++)
        if (isfinite(buf[k].mean))
            fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"#2ca02c\"/>",
                    px(&f, buf[k].x), py(&f, buf[k].mean));
    bad_marks(out, &f, buf, used, "incomplete (torn)");
    fputs("</svg></figure>\n", out);
}

static void checkpoint_row(FILE *out, const struct run *run, size_t i)
{
    char a[64], b[64];
    const struct checkpoint *c = &run->ckpts[i];
    fprintf(out, "<tr id=\"c%zu\"%s><td>%s</td><td>", i,
            !c->complete ? " class=\"bad\""
            : c->alerts  ? " class=\"warn\""
                         : "",
            time_text(c->x[AXIS_TIME], a, sizeof a));
    html(out, c->path);
    fputs("</td><td>", out);
    html(out, c->format);
    fprintf(out, "</td><td>%s</td><td>%.3g</td><td>%s</td></tr>\n",
            table_size(c->bytes, "B", b, sizeof b), c->seconds, c->complete ? "yes" : "NO (torn)");
}

/* A set's row, then its files' rows (from the table's first row on) folded in a
 * <details> under it, which opens by itself when an alert's link leads into it. */
static void set_rows(FILE *out, const struct run *run, size_t k, size_t first)
{
    char a[64], b[64];
    const struct set_row *s = &run->set_rows[k];
    size_t members = 0;
    for (size_t i = first; i < s->before; i++)
        members += run->ckpts[i].set == (long)k;
    fprintf(out, "<tr class=\"set%s\" id=\"s%zu\"><td>%s</td><td>", s->complete ? "" : " bad", k,
            time_text(s->time, a, sizeof a));
    html(out, s->path);
    fputs("</td><td>set: ", out);
    html(out, s->kind);
    fprintf(out, "</td><td>%s</td><td>%.3g</td><td>%s</td></tr>\n",
            table_size(s->bytes, "B", b, sizeof b), s->seconds, s->complete ? "yes" : "NO (torn)");
    if (!members) return;
    fprintf(out,
            "<tr class=\"members\"><td></td><td colspan=\"5\"><details><summary>%.0f files, "
            "%zu with records here</summary><table class=\"list\">",
            s->files, members);
    for (size_t i = first; i < s->before; i++)
        if (run->ckpts[i].set == (long)k) checkpoint_row(out, run, i);
    fputs("</table></details></td></tr>\n", out);
}

static void saves_section(FILE *out, struct run *run, struct drawn *buf)
{
    fputs("<section id=\"saves\"><h2>Checkpoints</h2><div class=\"grid\">", out);
    for (int what = 0; what < 3 && run->nckpts; what++)
        saves_chart(out, run, what, buf);
    fputs("</div>", out);
    size_t first = run->nckpts > REPORT_TABLE_ROWS ? run->nckpts - REPORT_TABLE_ROWS : 0;
    if (first)
        fprintf(out, "<p class=\"note\">The newest %d of %zu.</p>", REPORT_TABLE_ROWS, run->nckpts);
    fputs("<table class=\"list\"><tr><th>time (UTC)</th><th>path</th><th>format</th><th>size</th>"
          "<th>seconds</th><th>complete</th></tr>",
          out);
    size_t next_set = 0;
    for (size_t i = first; i <= run->nckpts; i++) {
        while (next_set < run->nset_rows && run->set_rows[next_set].before <= i)
            set_rows(out, run, next_set++, first);
        if (i == run->nckpts) break;
        if (run->ckpts[i].set < 0) checkpoint_row(out, run, i);
    }
    fputs("</table></section>\n", out);
}

static void alerts_section(FILE *out, struct run *run)
{
    char a[64];
    fputs("<section id=\"alerts\"><h2>Alerts</h2>", out);
    if (!run->nalerts) {
        fputs("<p id=\"no-alerts\">No alert records in the log.</p></section>\n", out);
        return;
    }
    struct frame f;
    frame_init(&f, AXIS_TIME);
    widen(&f, run->first_time, 0);
    widen(&f, run->last_time, 1);
    fputs("<svg class=\"timeline\" viewBox=\"0 0 720 60\" width=\"720\" height=\"60\">", out);
    fprintf(out, "<line x1=\"%d\" y1=\"30\" x2=\"%d\" y2=\"30\" class=\"axis\"/>", ML, 720 - MR);
    for (size_t i = 0; i < run->nalerts; i++) {
        const struct alert_row *al = &run->alerts[i];
        double x = ML + (f.x1 > f.x0 ? (al->time - f.x0) / (f.x1 - f.x0) : 0.5) * (720 - ML - MR);
        if (al->ckpt >= 0) fprintf(out, "<a href=\"#c%ld\">", al->ckpt);
        fprintf(out, "<circle class=\"%s\" cx=\"%.1f\" cy=\"30\" r=\"6\"><title>",
                strcmp(al->severity, "critical") ? "warning" : "critical", x);
        html(out, al->rule);
        fputs(": ", out);
        html(out, al->message);
        fputs("</title></circle>", out);
        if (al->ckpt >= 0) fputs("</a>", out);
    }
    fputs("</svg>", out);
    size_t first = run->nalerts > REPORT_ALERT_ROWS ? run->nalerts - REPORT_ALERT_ROWS : 0;
    if (first)
        fprintf(out, "<p class=\"note\">The newest %d of %zu.</p>", REPORT_ALERT_ROWS,
                run->nalerts);
    fputs("<table class=\"list\" id=\"alert-list\"><tr><th>time (UTC)</th><th>rule</th>"
          "<th>severity</th><th>checkpoint</th><th>message</th></tr>",
          out);
    for (size_t i = first; i < run->nalerts; i++) {
        const struct alert_row *al = &run->alerts[i];
        fprintf(out, "<tr class=\"alert %s\"><td>%s</td><td class=\"rule\">",
                strcmp(al->severity, "critical") ? "warn" : "bad",
                time_text(al->time, a, sizeof a));
        html(out, al->rule);
        fputs("</td><td>", out);
        html(out, al->severity);
        fputs("</td><td>", out);
        if (al->ckpt >= 0) fprintf(out, "<a href=\"#c%ld\">", al->ckpt);
        html(out, al->path);
        if (al->ckpt >= 0) fputs("</a>", out);
        fputs("</td><td>", out);
        html(out, al->message);
        fputs("</td></tr>\n", out);
    }
    fputs("</table></section>\n", out);
}

static const char style[] =
    "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}"
    "h1{font-size:1.4em;margin:0 0 .4em}h2{font-size:1.15em;margin:1.4em 0 .5em;border-bottom:"
    "1px solid #ddd}table.summary th{text-align:left;padding-right:1em;font-weight:600}"
    ".grid{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;border:1px solid #e4e4e4;"
    "padding:4px}figure.alerted{border-color:#d62728}figcaption{font-size:12px;font-weight:600;"
    "overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:360px}"
    "figcaption small{font-weight:400;color:#777}.plot{fill:#fafafa;stroke:#ccc}"
    ".ax{font-size:10px;fill:#666}.line{fill:none;stroke-width:1.5}.extreme{fill:none;"
    "stroke:#999;stroke-width:.8;stroke-dasharray:3 2}.band{fill:#1f77b4;opacity:.18}"
    ".nonfinite{fill:#d62728}.critical{fill:#d62728}.warning{fill:#ff9f1c}.axis{stroke:#999}"
    ".legend{font-size:11px;color:#555;max-width:360px}.note{color:#666;font-size:12px}"
    "table.list{border-collapse:collapse;font-size:12px}table.list td,table.list th{padding:"
    "2px 8px;border-bottom:1px solid #eee;text-align:left}tr.bad td,.bad{color:#c00}"
    "tr.warn td{color:#a60}.row{font-size:12px;padding:1px 0}.row svg{vertical-align:middle}"
    "#filter{margin:6px 0;width:20em}nav{margin:.5em 0}";

static const char script[] =
    "var f=document.getElementById('filter');if(f)f.addEventListener('input',function(){"
    "var q=f.value.toLowerCase();var rows=document.querySelectorAll('#rest .row');"
    "for(var i=0;i<rows.length;i++)rows[i].style.display="
    "rows[i].getAttribute('data-name').toLowerCase().indexOf(q)<0?'none':'';});";

static bool write_page(struct run *run, const char *log, const char *page)
{
    FILE *out = strcmp(page, "-") ? fopen(page, "w") : stdout;
    if (!out) {
        fprintf(stderr, "ckmon report: %s: %s\n", page, strerror(errno));
        return false;
    }
    struct drawn *buf = malloc(REPORT_CHART_POINTS * sizeof *buf);
    if (!buf) exit(1);
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
          "<meta name=\"viewport\" content=\"width=device-width\"><title>ckmon report: ",
          out);
    html(out, run->job_filter ? run->job_filter : log);
    fprintf(out, "</title><style>%s</style></head><body>\n", style);
    header(out, run, log);
    values_section(out, run, buf);
    tensors_section(out, run, buf);
    saves_section(out, run, buf);
    alerts_section(out, run);
    fprintf(out,
            "<p class=\"note\">Written by ckmon " CKMON_VERSION
            "; every chart is drawn from the log, nothing is loaded from elsewhere.</p>"
            "<script>%s</script></body></html>\n",
            script);
    free(buf);
    bool ok = !ferror(out);
    if (out != stdout)
        ok &= fclose(out) == 0;
    else
        ok &= fflush(out) == 0;
    if (!ok) fprintf(stderr, "ckmon report: %s: cannot write\n", page);
    return ok;
}

static void free_series(struct series *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i].label);
        free(list[i].name);
        free(list[i].points);
    }
    free(list);
}

int cmd_report(int argc, char **argv)
{
    struct options o;
    int rc = cli_parse(&o, COMMAND_REPORT, argc, argv);
    if (rc >= 0) return rc;
    struct run run = {.job_filter = o.job,
                      .jobs = cJSON_CreateObject(),
                      .hosts = cJSON_CreateObject(),
                      .ranks = cJSON_CreateObject(),
                      .rules = cJSON_CreateObject(),
                      .listed_rules = cJSON_CreateObject(),
                      .resumes = cJSON_CreateArray(),
                      .first_time = NAN,
                      .last_time = NAN};
    const char *page = o.output ? o.output : REPORT_DEFAULT_PAGE;
    rc = 1;
    if (read_log(&run, o.log)) {
        if (run.lines_skipped)
            fprintf(stderr, "ckmon report: %s: %zu lines that are not JSON records skipped\n",
                    o.log, run.lines_skipped);
        if (write_page(&run, o.log, page)) rc = 0;
    }
    for (size_t i = 0; i < run.nckpts; i++) {
        free(run.ckpts[i].path);
        free(run.ckpts[i].format);
        free(run.ckpts[i].label);
        free(run.ckpts[i].set_dir);
    }
    for (size_t i = 0; i < run.nalerts; i++) {
        free(run.alerts[i].rule);
        free(run.alerts[i].severity);
        free(run.alerts[i].path);
        free(run.alerts[i].message);
    }
    for (size_t i = 0; i < run.nset_rows; i++) {
        free(run.set_rows[i].path);
        free(run.set_rows[i].kind);
    }
    free(run.set_rows);
    free(run.ckpts);
    free(run.alerts);
    free_series(run.values, run.nvalues);
    free_series(run.tensors, run.ntensors);
    free(run.value_slots);
    free(run.tensor_slots);
    cJSON_Delete(run.jobs);
    cJSON_Delete(run.hosts);
    cJSON_Delete(run.ranks);
    cJSON_Delete(run.rules);
    cJSON_Delete(run.listed_rules);
    cJSON_Delete(run.resumes);
    options_free(&o);
    return rc;
}
