/* table.c — log records as a readable table (see table.h).
 *
 * The key values of a checkpoint are the ones people look for first: step, epoch,
 * loss, learning rate, found by exact key or as the last component of a longer one
 * (`optim.param_groups.0.lr`, a Trainer's `log_history.N.loss`, where the last entry is
 * the newest). The rest is counted, not printed: `ckmon inspect` or jq show everything.
 */
#include "table.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RED    "\033[31m"
#define YELLOW "\033[33m"
#define BOLD   "\033[1m"
#define DIM    "\033[2m"
#define PLAIN  "\033[0m"

/* The values shown, in this order, when a record has them. */
static const char *const key_names[] = {"step", "global_step", "epoch",
                                        "loss", "lr",          "learning_rate"};
#define KEY_COUNT (sizeof key_names / sizeof key_names[0])

bool table_wants_color(FILE *out)
{
    const char *no_color = getenv("NO_COLOR");
    return isatty(fileno(out)) && !(no_color && *no_color);
}

static const char *paint(const struct table_style *s, const char *code)
{
    return s->color ? code : "";
}

static const char *plain(const struct table_style *s)
{
    return s->color ? PLAIN : "";
}

/* A number, string or null as a short text. */
static const char *show(const cJSON *v, char *buf, size_t size)
{
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 1e15)
            snprintf(buf, size, "%.0f", d);
        else
            snprintf(buf, size, "%.6g", d);
    } else if (cJSON_IsString(v)) {
        snprintf(buf, size, "%s", v->valuestring);
    } else if (cJSON_IsBool(v)) {
        snprintf(buf, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else {
        snprintf(buf, size, "-");
    }
    return buf;
}

const char *table_size(double bytes, const char *small_unit, char *buf, size_t size)
{
    static const char *const units[] = {NULL, "KiB", "MiB", "GiB", "TiB", "PiB"};
    unsigned u = 0;
    while (bytes >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", bytes, u ? units[u] : small_unit);
    return buf;
}

/* A record's path member, relative to the style's base when under it. */
static const char *shown_path(const cJSON *rec, const char *member, const struct table_style *s)
{
    const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, member));
    if (!path) return "?";
    size_t n = s->base ? strlen(s->base) : 0;
    if (n > 1 && !strncmp(path, s->base, n) && path[n] == '/' && path[n + 1]) return path + n + 1;
    return path;
}

static double number(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *text(const cJSON *obj, const char *name)
{
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, name));
    return t ? t : "?";
}

const cJSON *table_key_value(const cJSON *values, const char *name)
{
    const cJSON *found = NULL;
    size_t n = strlen(name);
    if (!cJSON_IsObject(values)) return NULL; /* a log line is not to be trusted */
    for (const cJSON *v = values->child; v; v = v->next) {
        size_t len = strlen(v->string);
        if (!strcmp(v->string, name)) return v;
        if (len > n && v->string[len - n - 1] == '.' && !strcmp(v->string + len - n, name))
            found = v;
    }
    return found;
}

static void print_values(FILE *out, const cJSON *values)
{
    char buf[64];
    int shown = 0;
    bool lr_shown = false;
    for (size_t i = 0; i < KEY_COUNT; i++) {
        bool is_lr = !strcmp(key_names[i], "lr") || !strcmp(key_names[i], "learning_rate");
        if (is_lr && lr_shown) continue;
        const cJSON *v = table_key_value(values, key_names[i]);
        if (!v || cJSON_IsObject(v) || cJSON_IsArray(v)) continue;
        fprintf(out, "  %s=%s", key_names[i], show(v, buf, sizeof buf));
        shown++;
        lr_shown |= is_lr;
    }
    int total = cJSON_GetArraySize(values);
    if (total > shown) fprintf(out, "  (%d values)", total);
}

static bool nonfinite(const cJSON *t)
{
    return number(t, "nan") > 0 || number(t, "inf") > 0;
}

static void print_tensor(FILE *out, const cJSON *t, const struct table_style *s)
{
    char shape[128] = "", a[64], b[64], c[64], d[64];
    size_t used = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, cJSON_GetObjectItemCaseSensitive(t, "shape"))
    {
        int n = snprintf(shape + used, sizeof shape - used, "%s%.0f", used ? "x" : "",
                         dim->valuedouble);
        if (n < 0 || (size_t)n >= sizeof shape - used) break;
        used += (size_t)n;
    }
    fprintf(out, "    %-36s %-8s [%s]  min %s max %s mean %s std %s", text(t, "name"),
            text(t, "dtype"), shape, show(cJSON_GetObjectItemCaseSensitive(t, "min"), a, sizeof a),
            show(cJSON_GetObjectItemCaseSensitive(t, "max"), b, sizeof b),
            show(cJSON_GetObjectItemCaseSensitive(t, "mean"), c, sizeof c),
            show(cJSON_GetObjectItemCaseSensitive(t, "std"), d, sizeof d));
    if (nonfinite(t))
        fprintf(out, "  %snan %.0f inf %.0f%s", paint(s, RED BOLD), number(t, "nan"),
                number(t, "inf"), plain(s));
    double sampled = number(t, "sampled");
    if (sampled < 1) fprintf(out, "  %s(sampled %.3g)%s", paint(s, DIM), sampled, plain(s));
    fputc('\n', out);
}

/* Non-finite ones first (they are why one looks), then the others in order. */
static void print_tensors(FILE *out, const cJSON *tensors, const struct table_style *s)
{
    int shown = 0, total = cJSON_GetArraySize(tensors);
    const cJSON *t;
    for (int pass = 0; pass < 2; pass++)
        cJSON_ArrayForEach(t, tensors)
        {
            if (nonfinite(t) != (pass == 0) || shown >= TABLE_MAX_TENSORS) continue;
            print_tensor(out, t, s);
            shown++;
        }
    if (total > shown) fprintf(out, "    ... %d more tensors\n", total - shown);
}

static void print_list(FILE *out, const char *label, const cJSON *list, const char *color,
                       const struct table_style *s)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        if (cJSON_IsString(item))
            fprintf(out, "    %s%s: %s%s\n", paint(s, color), label, item->valuestring, plain(s));
    }
}

/* The rules a record's "alerts" lists, after its line. */
static void print_alert_names(FILE *out, const cJSON *rec, const struct table_style *s)
{
    const cJSON *alerts = cJSON_GetObjectItemCaseSensitive(rec, "alerts"), *a;
    if (cJSON_GetArraySize(alerts) == 0) return;
    fprintf(out, "  %sALERT", paint(s, RED BOLD));
    cJSON_ArrayForEach(a, alerts) if (cJSON_IsString(a)) fprintf(out, " %s", a->valuestring);
    fputs(plain(s), out);
}

static void print_checkpoint(FILE *out, const cJSON *rec, const struct table_style *s)
{
    char size[32];
    bool complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "complete"));
    fprintf(out, "%-44s %-11s %s%-3s%s %10s", shown_path(rec, "path", s), text(rec, "format"),
            complete ? "" : paint(s, RED BOLD), complete ? "ok" : "NO", complete ? "" : plain(s),
            table_size(number(rec, "bytes"), "B", size, sizeof size));
    print_values(out, cJSON_GetObjectItemCaseSensitive(rec, "values"));
    print_alert_names(out, rec, s);
    fputc('\n', out);
    if (cJSON_GetObjectItemCaseSensitive(rec, "written_as"))
        fprintf(out, "    written as %s, then renamed\n", shown_path(rec, "written_as", s));
    print_tensors(out, cJSON_GetObjectItemCaseSensitive(rec, "tensors"), s);
    print_list(out, "error", cJSON_GetObjectItemCaseSensitive(rec, "errors"), YELLOW, s);
}

static void print_alert(FILE *out, const cJSON *rec, const struct table_style *s)
{
    bool critical = !strcmp(text(rec, "severity"), "critical");
    const char *message = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "message"));
    fprintf(out, "%s! alert %s %s: %s%s%s\n", paint(s, critical ? RED BOLD : YELLOW BOLD),
            text(rec, "severity"), text(rec, "rule"), shown_path(rec, "path", s),
            message ? " — " : "", message ? message : "");
    if (s->color) fputs(PLAIN, out);
}

static void print_set(FILE *out, const cJSON *rec, const struct table_style *s)
{
    char size[32];
    bool complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "complete"));
    fprintf(out, "%-44s set:%-7s %s%-3s%s %10s  %.0f files", shown_path(rec, "path", s),
            text(rec, "kind"), complete ? "" : paint(s, RED BOLD), complete ? "ok" : "NO",
            complete ? "" : plain(s), table_size(number(rec, "bytes"), "B", size, sizeof size),
            number(rec, "files"));
    const cJSON *ranks = cJSON_GetObjectItemCaseSensitive(rec, "ranks");
    if (cJSON_GetArraySize(ranks) > 0) fprintf(out, ", %d ranks", cJSON_GetArraySize(ranks));
    print_values(out, cJSON_GetObjectItemCaseSensitive(rec, "values"));
    print_alert_names(out, rec, s);
    fputc('\n', out);
    print_list(out, "missing", cJSON_GetObjectItemCaseSensitive(rec, "missing"), RED, s);
    print_list(out, "error", cJSON_GetObjectItemCaseSensitive(rec, "errors"), YELLOW, s);
}

void table_print_members(FILE *out, const cJSON *members, const struct table_style *s)
{
    int count = cJSON_GetArraySize(members), shown = 0;
    const cJSON *m;
    if (count == 0) return;
    fprintf(out, "    %d file record%s folded:", count, count == 1 ? "" : "s");
    cJSON_ArrayForEach(m, members)
    {
        if (shown++ == TABLE_MAX_MEMBERS) {
            fprintf(out, " ... %d more", count - TABLE_MAX_MEMBERS);
            break;
        }
        const char *path = text(m, "path"), *slash = strrchr(path, '/');
        bool complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "complete"));
        fprintf(out, "%s %s%s", shown > 1 ? "," : "", slash ? slash + 1 : path,
                complete ? "" : paint(s, RED BOLD));
        if (!complete) fprintf(out, " NO%s", plain(s));
    }
    fputs(" (tail --members shows them)\n", out);
}

static void print_load(FILE *out, const cJSON *rec, const struct table_style *s)
{
    char size[32];
    const cJSON *unchanged = cJSON_GetObjectItemCaseSensitive(rec, "unchanged");
    const cJSON *written = cJSON_GetObjectItemCaseSensitive(rec, "written");
    fprintf(out, "%-44s load        %10s  by %s", shown_path(rec, "path", s),
            table_size(number(rec, "bytes"), "B", size, sizeof size), text(rec, "program"));
    if (cJSON_IsObject(written))
        fprintf(out, ", written by %s at %s", text(written, "job"), text(written, "time"));
    else
        fputs(", writer unknown", out);
    if (cJSON_IsFalse(unchanged))
        fprintf(out, "  %sCHANGED since written%s", paint(s, RED BOLD), plain(s));
    fputc('\n', out);
}

/* A file `ckmon verify` failed: the line verify printed. */
static void print_verify(FILE *out, const cJSON *rec, const struct table_style *s)
{
    fprintf(out, "%-44s verify      %s%s%s\n", shown_path(rec, "path", s), paint(s, RED BOLD),
            text(rec, "message"), plain(s));
}

void table_print(FILE *out, const cJSON *record, const struct table_style *style)
{
    const char *event = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(record, "event"));
    if (!event || !strcmp(event, "checkpoint"))
        print_checkpoint(out, record, style);
    else if (!strcmp(event, "alert"))
        print_alert(out, record, style);
    else if (!strcmp(event, "set"))
        print_set(out, record, style);
    else if (!strcmp(event, "load"))
        print_load(out, record, style);
    else if (!strcmp(event, "verify"))
        print_verify(out, record, style);
    else
        fprintf(out, "%-44s %s\n", shown_path(record, "path", style), event);
}
