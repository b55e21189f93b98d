/* report.c — where parsers put what they find (see report.h).
 *
 * Findings are kept in the record's own shapes until the owner takes them: values and
 * errors as cJSON, tensors as the wire's text (report.h). Everything here runs inside
 * monitored programs, so it never aborts: when there is no memory for a finding, it is
 * dropped.
 *
 * Rules applied here so that every parser gets them the same way:
 * - --keys: a value or tensor whose name no pattern matches is not kept.
 * - Non-finite floats are the strings "nan", "inf", "-inf" (JSON has no such numbers).
 * - Integers are JSON numbers, which cJSON holds as doubles: beyond 2^53 they lose
 *   precision, and from 1e15 on cJSON prints them in exponent form.
 * - Text that is not valid UTF-8 (Python 2 byte strings in a pickle, say) would make
 *   the log line invalid JSON: each invalid byte becomes U+FFFD.
 * - A NUL in a string (pickled "a\x00b", JSON "a\u0000b") is kept, as the two bytes
 *   C0 80 (an overlong form of U+0000 that is never UTF-8, as Java's modified UTF-8
 *   writes it): findings are C strings from here to the log, where core/jsontext.c
 *   writes those two bytes as \u0000. Names carry it the same way (flatten.c writes it
 *   for a NUL in a str key, the JSON parser for \u0000), so "a\0b" and "a\0c" stay two
 *   keys.
 * - A key reported twice keeps the later value (in the earlier one's place). Duplicates
 *   are resolved when findings are taken, by sorting, rather than by searching the
 *   object on every insert, which would be quadratic in the number of values.
 * - At most REPORT_MAX_FINDINGS values and tensors per report (report.h).
 * - Errors: each message is cut at REPORT_ERROR_BYTES; the first REPORT_MAX_ERRORS of
 *   a report are kept, later ones are only counted, in one pending "... N more errors"
 *   line (N counts those since the last such line was taken, so the lines of one
 *   checkpoint add up). error_count counts them all.
 */
#include "report.h"

#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../jsontext.h"

#define REPORT_MAX_ERRORS  32
#define REPORT_ERROR_BYTES 512

static const char replacement_char[] = "\xef\xbf\xbd"; /* U+FFFD */

void report_init(struct report *r, const struct key_filter *keys)
{
    memset(r, 0, sizeof *r);
    r->keys = keys;
}

void report_free(struct report *r)
{
    cJSON_Delete(r->values);
    cJSON_Delete(r->errors);
    free(r->tensors.text.s);
    free(r->tensors.ends);
    r->values = r->errors = NULL;
    r->tensors = (struct tensor_texts){0};
}

bool report_wants(const struct report *r, const char *name)
{
    if (!name) return false;
    if (!r->keys || r->keys->count == 0) return true;
    for (size_t i = 0; i < r->keys->count; i++)
        if (fnmatch(r->keys->patterns[i], name, 0) == 0) return true;
    return false;
}

/* ---- Text --------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence (RFC 3629, no NUL) at s, or 0; C0 80, the
 * NUL of findings, counts as one. */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */

    if (c >= 0x01 && c <= 0x7f) return 1;
    if (c == 0xc0 && len >= 2 && s[1] == 0x80) return 2;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef)
        need = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 4;
    else
        return 0;
    if (c == 0xe0)
        lo = 0xa0; /* overlong */
    else if (c == 0xed)
        hi = 0x9f; /* surrogates */
    else if (c == 0xf0)
        lo = 0x90; /* overlong */
    else if (c == 0xf4)
        hi = 0x8f; /* beyond U+10FFFF */
    if (len < need || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return need;
}

static bool utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0, n; i < len; i += n) {
        n = 1; /* ASCII without a call: names are, and every tensor's name passes here */
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x01 || c > 0x7f) &&
            (n = utf8_sequence((const unsigned char *)s + i, len - i)) == 0)
            return false;
    }
    return true;
}

/* Writes len bytes of s to out, NUL-terminated, with each NUL as C0 80 and each byte
 * that does not start a valid sequence replaced by U+FFFD; out has room for 3 * len + 1
 * bytes. */
static char *clean_text(const char *s, size_t len, char *out)
{
    char *o = out;
    for (size_t i = 0, n; i < len; i += n) {
        n = utf8_sequence((const unsigned char *)s + i, len - i);
        if (s[i] == '\0') {
            memcpy(o, "\xc0\x80", 2);
            o += 2;
            n = 1;
        } else if (n == 0) {
            memcpy(o, replacement_char, 3);
            o += 3;
            n = 1;
        } else {
            memcpy(o, s + i, n);
            o += n;
        }
    }
    *o = '\0';
    return out;
}

/* The name to store for key: key itself when it is valid UTF-8, else a cleaned copy
 * (to be released with release_name). NULL when out of memory. */
static char *storable_name(const char *key)
{
    size_t len = strlen(key);
    if (utf8_valid(key, len)) return (char *)key;
    char *copy = len < SIZE_MAX / 4 ? malloc(3 * len + 1) : NULL;
    return copy ? clean_text(key, len, copy) : NULL;
}

static void release_name(const char *name, const char *key)
{
    if (name != key) free((char *)name);
}

/* ---- Values -------------------------------------------------------------------- */

static cJSON *container(cJSON **slot, bool array)
{
    if (!*slot) *slot = array ? cJSON_CreateArray() : cJSON_CreateObject();
    return *slot;
}

/* A double as the record writes it: a number, or a string for NaN and ±Inf. */
static cJSON *json_number(double v)
{
    if (isnan(v)) return cJSON_CreateString("nan");
    if (isinf(v)) return cJSON_CreateString(v > 0 ? "inf" : "-inf");
    return cJSON_CreateNumber(v);
}

/* Whether one more value or tensor may be kept (REPORT_MAX_FINDINGS); says once when
 * not. */
static bool room_for_finding(struct report *r)
{
    if (r->findings < REPORT_MAX_FINDINGS) return ++r->findings, true;
    if (r->findings++ == REPORT_MAX_FINDINGS)
        report_error(r, "more than %u values and tensors; the rest were not reported",
                     REPORT_MAX_FINDINGS);
    return false;
}

/* Takes ownership of item. */
static void put_value(struct report *r, const char *key, cJSON *item)
{
    if (!room_for_finding(r)) return cJSON_Delete(item);
    cJSON *values = container(&r->values, false);
    char *name = storable_name(key);
    if (!item || !values || !name || !cJSON_AddItemToObject(values, name, item)) cJSON_Delete(item);
    if (name) release_name(name, key);
}

void report_int(struct report *r, const char *key, int64_t v)
{
    if (report_wants(r, key)) put_value(r, key, cJSON_CreateNumber((double)v));
}

void report_float(struct report *r, const char *key, double v)
{
    if (report_wants(r, key)) put_value(r, key, json_number(v));
}

void report_bool(struct report *r, const char *key, bool v)
{
    if (report_wants(r, key)) put_value(r, key, cJSON_CreateBool(v));
}

void report_null(struct report *r, const char *key)
{
    if (report_wants(r, key)) put_value(r, key, cJSON_CreateNull());
}

void report_string(struct report *r, const char *key, const char *s, size_t len)
{
    char text[3 * REPORT_MAX_STRING + 1];
    if (len > REPORT_MAX_STRING || (!s && len) || !report_wants(r, key)) return;
    put_value(r, key, cJSON_CreateString(clean_text(s ? s : "", len, text)));
}

/* ---- Tensors ------------------------------------------------------------------- */

/* Far above any checkpoint's tensors' text (REPORT_MAX_FINDINGS of them). */
#define TENSOR_TEXT_LIMIT ((size_t)1 << 31)

/* A double as the record writes it (json_number), in the wire's form. */
static void add_number(struct strbuf *b, double v)
{
    if (isnan(v)) return sb_add(b, "\"nan\"", 5);
    if (isinf(v)) return sb_addz(b, v > 0 ? "\"inf\"" : "\"-inf\"");
    json_add_hex_number(b, v);
}

/* A name from a file (a tensor's, an .npy descr's dtype), cleaned like a value's key;
 * false when there was no memory to clean it. */
static bool add_name(struct strbuf *b, const char *name)
{
    char *clean = storable_name(name);
    if (!clean) return false;
    json_add_string(b, clean);
    release_name(clean, name);
    return true;
}

static void add_shape(struct strbuf *b, const int64_t *shape, int ndim)
{
    sb_add(b, "[", 1);
    for (int i = 0; shape && i < ndim; i++) {
        if (i) sb_add(b, ",", 1);
        json_add_hex_number(b, (double)shape[i]); /* as a double, like every JSON number */
    }
    sb_add(b, "]", 1);
}

/* min/max/mean/std (key_text: the member's name, with its comma and colon) are null when
 * no element is finite. */
static void add_finite_stat(struct strbuf *b, const char *key_text, const struct tensor_stats *st,
                            double v)
{
    sb_addz(b, key_text);
    if (st->finite)
        add_number(b, v);
    else
        sb_add(b, "null", 4);
}

/* A sampled tensor's confidence half-widths (stats_ci95); null where the sample cannot
 * say (nothing read, or reading cut short before the second line). */
static void add_ci95(struct strbuf *b, const struct tensor_stats *st, double sampled)
{
    double mean_half, std_half;
    if (!stats_ci95(st, sampled, &mean_half, &std_half))
        return sb_addz(b, ",\"ci95\":{\"mean\":null,\"std\":null}");
    sb_addz(b, ",\"ci95\":{\"mean\":");
    add_number(b, mean_half);
    sb_addz(b, ",\"std\":");
    add_number(b, std_half);
    sb_add(b, "}", 1);
}

static void add_head(struct strbuf *b, const struct tensor_stats *st)
{
    sb_addz(b, ",\"head\":[");
    for (unsigned i = 0; i < st->nhead && i < STATS_HEAD; i++) {
        if (i) sb_add(b, ",", 1);
        add_number(b, st->head[i]);
    }
    sb_add(b, "]}", 2);
}

/* Room for one more end offset; false when there is no memory. */
static bool room_for_end(struct tensor_texts *tt)
{
    if (tt->count < tt->cap) return true;
    size_t cap = tt->cap ? 2 * tt->cap : 64;
    size_t *ends = realloc(tt->ends, cap * sizeof *ends);
    if (!ends) return false;
    tt->ends = ends;
    tt->cap = cap;
    return true;
}

/* Starts a tensor's text: its separator; where it starts, to go back to, or SIZE_MAX
 * when there is no memory for another. */
static size_t tensor_begin(struct tensor_texts *tt)
{
    if (!room_for_end(tt)) return SIZE_MAX;
    if (!tt->text.limit) tt->text.limit = TENSOR_TEXT_LIMIT;
    size_t before = tt->text.len;
    sb_add(&tt->text, tt->count ? "," : "[", 1);
    return before;
}

/* Ends it; without memory for all of it, it is dropped and the others stay. */
static void tensor_end(struct tensor_texts *tt, size_t before)
{
    if (tt->text.overflow) return sb_truncate(&tt->text, before);
    tt->ends[tt->count++] = tt->text.len;
}

void report_tensor_json(struct report *r, const cJSON *tensor)
{
    struct tensor_texts *tt = &r->tensors;
    size_t before = tensor_begin(tt);
    if (before == SIZE_MAX) return;
    json_add_hex_item(&tt->text, tensor);
    tensor_end(tt, before);
}

void report_tensor(struct report *r, const char *name, const char *dtype, const int64_t *shape,
                   int ndim, const struct tensor_stats *st, double sampled)
{
    static const struct tensor_stats nothing;
    if (!report_wants(r, name) || !room_for_finding(r)) return;
    if (!st) st = &nothing;
    struct tensor_texts *tt = &r->tensors;
    struct strbuf *b = &tt->text;
    size_t before = tensor_begin(tt);
    if (before == SIZE_MAX) return;
    sb_addz(b, "{\"name\":");
    if (!add_name(b, name)) return sb_truncate(b, before);
    sb_addz(b, ",\"dtype\":");
    if (!add_name(b, dtype ? dtype : "unknown")) json_add_string(b, "unknown");
    sb_addz(b, ",\"shape\":");
    add_shape(b, shape, ndim);
    add_finite_stat(b, ",\"min\":", st, st->min);
    add_finite_stat(b, ",\"max\":", st, st->max);
    add_finite_stat(b, ",\"mean\":", st, st->mean);
    add_finite_stat(b, ",\"std\":", st, stats_std(st));
    sb_addz(b, ",\"nan\":");
    json_add_hex_number(b, (double)st->nan);
    sb_addz(b, ",\"inf\":");
    json_add_hex_number(b, (double)st->inf);
    sb_addz(b, ",\"sampled\":");
    json_add_hex_number(b, sampled);
    if (sampled < 1) add_ci95(b, st, sampled);
    add_head(b, st);
    tensor_end(tt, before);
}

/* ---- Errors -------------------------------------------------------------------- */

/* The pending "... N more errors" line keeps its N in the string item's otherwise
 * unused valuedouble, which no printer looks at. */
static void count_dropped_error(cJSON *errors)
{
    char text[64];
    cJSON *last = errors->child;
    while (last && last->next)
        last = last->next;
    bool is_summary = last && last->valuedouble > 0;
    double dropped = is_summary ? last->valuedouble + 1 : 1;

    snprintf(text, sizeof text, "... %.0f more errors", dropped);
    cJSON *line = cJSON_CreateString(text);
    if (!line) return;
    line->valuedouble = dropped;
    if (is_summary)
        cJSON_ReplaceItemViaPointer(errors, last, line);
    else if (!cJSON_AddItemToArray(errors, line))
        cJSON_Delete(line);
}

void report_error(struct report *r, const char *fmt, ...)
{
    char message[REPORT_ERROR_BYTES], text[3 * REPORT_ERROR_BYTES];
    cJSON *errors = container(&r->errors, true);

    r->error_count++;
    if (!errors) return;
    if (r->error_count > REPORT_MAX_ERRORS) return count_dropped_error(errors);

    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (len < 0) return;
    if ((size_t)len >= sizeof message) len = sizeof message - 1;
    cJSON *line = cJSON_CreateString(clean_text(message, (size_t)len, text));
    if (!line || !cJSON_AddItemToArray(errors, line)) cJSON_Delete(line);
}

/* ---- Taking findings ----------------------------------------------------------- */

struct keyed_value {
    cJSON *item;
    size_t order;
};

static int by_key_then_order(const void *a, const void *b)
{
    const struct keyed_value *x = a, *y = b;
    int c = strcmp(x->item->string, y->item->string);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

void report_drop_replaced(cJSON *values)
{
    size_t n = (size_t)cJSON_GetArraySize(values);
    if (n < 2) return;
    struct keyed_value *v = malloc(n * sizeof *v);
    if (!v) return;
    size_t i = 0;
    for (cJSON *item = values->child; item; item = item->next, i++)
        v[i] = (struct keyed_value){item, i};
    qsort(v, n, sizeof *v, by_key_then_order);

    for (size_t first = 0, end; first < n; first = end) {
        for (end = first + 1; end < n && !strcmp(v[end].item->string, v[first].item->string);)
            end++;
        if (end - first == 1) continue;
        for (size_t k = first + 1; k + 1 < end; k++)
            cJSON_Delete(cJSON_DetachItemViaPointer(values, v[k].item));
        cJSON *latest = cJSON_DetachItemViaPointer(values, v[end - 1].item);
        cJSON_ReplaceItemViaPointer(values, v[first].item, latest);
    }
    free(v);
}

static bool has_items(const cJSON *c)
{
    return c && c->child;
}

bool report_pending(const struct report *r)
{
    return has_items(r->values) || r->tensors.count || has_items(r->errors);
}

/* Moves *slot into obj under name when it holds anything; the report starts afresh. */
static void move_member(cJSON *obj, const char *name, cJSON **slot)
{
    if (!has_items(*slot)) return;
    if (!obj || !cJSON_AddItemToObject(obj, name, *slot)) cJSON_Delete(*slot);
    *slot = NULL;
}

void report_clear_tensors(struct report *r)
{
    sb_truncate(&r->tensors.text, 0);
    r->tensors.count = 0;
}

cJSON *report_take_tensors(struct report *r)
{
    struct tensor_texts *tt = &r->tensors;
    cJSON *tensors = NULL;
    if (tt->count) {
        sb_add(&tt->text, "]", 1);
        if (!tt->text.overflow) tensors = cJSON_ParseWithLength(tt->text.s, tt->text.len);
        for (cJSON *t = tensors ? tensors->child : NULL; t; t = t->next)
            json_tensor_from_hex(t);
    }
    report_clear_tensors(r);
    return tensors;
}

void report_take_but_tensors(struct report *r, cJSON *obj)
{
    if (r->values) report_drop_replaced(r->values);
    move_member(obj, "values", &r->values);
    move_member(obj, "errors", &r->errors);
}

void report_take(struct report *r, cJSON *obj)
{
    cJSON *tensors = report_take_tensors(r);
    if (r->values) report_drop_replaced(r->values);
    move_member(obj, "values", &r->values);
    move_member(obj, "tensors", &tensors);
    move_member(obj, "errors", &r->errors);
}
