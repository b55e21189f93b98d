/* flatten.c — a tree of Python objects into the record's values and tensors (flatten.h).
 *
 * The walk keeps the current name in one growing buffer: entering a child appends
 * ".key" (or "key" under the root), leaving truncates back. Recursion is bounded by
 * FLATTEN_MAX_DEPTH, so a list that contains itself through the pickle memo costs 64
 * levels and one error, and FLATTEN_MAX_NODES bounds the total work on trees that share
 * subtrees. Numbers are formatted in the C locale whatever the program's locale is.
 */
#include "flatten.h"
#include "pandas.h"
#include "../jsontext.h"
#include "../strbuf.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RENDER_MAX_DEPTH 8 /* nesting shown in a rendered key or description */

struct flattener {
    struct report *report;
    flatten_hook hook;
    void *ctx;
    struct strbuf name; /* the current node's full name */
    struct strbuf text; /* scratch for descriptions */
    unsigned long visits;
    bool said_too_deep, said_too_many, said_too_long;
};

/* ---- Python's str() and repr(), as far as keys and descriptions need them ---- */

/* repr(float), as Python writes it: the shortest digits that read back as the same
 * double, positional when the decimal exponent is in [-4, 16) ("10.0",
 * "1000000000000000.0", "0.0001"), else scientific with a two-digit exponent at least
 * ("1e+16", "1.5e-05"). */
static void render_float(struct strbuf *b, double v)
{
    if (isnan(v)) return sb_addz(b, "nan");
    if (isinf(v)) return sb_addz(b, v < 0 ? "-inf" : "inf");
    char sci[40];
    for (int precision = 0; precision <= 17; precision++) {
        snprintf(sci, sizeof sci, "%.*e", precision, v);
        if (strtod(sci, NULL) == v) break;
    }
    /* sci is [-]D[.DDD]e[+-]XX: its digits and exponent */
    const char *p = sci;
    if (*p == '-') sb_addz(b, "-"), p++;
    char digits[20];
    size_t n = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.' && n < sizeof digits) digits[n++] = *p;
    int exponent = atoi(p + 1);
    if (exponent >= -4 && exponent < 16) {
        if (exponent < 0) {
            sb_addz(b, "0.");
            for (int i = -1; i > exponent; i--)
                sb_addz(b, "0");
            return sb_add(b, digits, n);
        }
        for (int i = 0; i <= exponent; i++)
            sb_add(b, i < (int)n ? digits + i : "0", 1);
        sb_addz(b, ".");
        return (size_t)exponent + 1 < n ? sb_add(b, digits + exponent + 1, n - exponent - 1)
                                        : sb_addz(b, "0");
    }
    sb_add(b, digits, 1);
    if (n > 1) sb_addz(b, "."), sb_add(b, digits + 1, n - 1);
    sb_addf(b, "e%c%02d", exponent < 0 ? '-' : '+', abs(exponent));
}

/* The quote repr() puts around text: ' unless the text holds ' and no ". */
static char repr_quote(const char *s, uint64_t len)
{
    return memchr(s, '\'', len) && !memchr(s, '"', len) ? '"' : '\'';
}

/* One character of repr(): the escapes Python uses, \xNN for other control bytes. */
static void render_escaped(struct strbuf *b, unsigned char c, char quote, bool is_bytes)
{
    static const char named[] = "\tt\nn\rr\\\\"; /* pairs: a byte, its escape letter */
    const char *e = memchr(named, c, sizeof named - 1);
    if (e && (e - named) % 2 == 0) return sb_addf(b, "\\%c", e[1]);
    if (c == (unsigned char)quote) return sb_addf(b, "\\%c", c);
    if (c < 0x20 || c == 0x7f || (is_bytes && c >= 0x80)) return sb_addf(b, "\\x%02x", c);
    sb_add(b, (const char *)&c, 1);
}

static void render_bytes(struct strbuf *b, const struct pyobj *o)
{
    if (!o->u.str.data) return sb_addf(b, "<bytes of %" PRIu64 " bytes>", o->u.str.len);
    char quote = repr_quote(o->u.str.data, o->u.str.len);
    sb_addf(b, "b%c", quote);
    for (uint64_t i = 0; i < o->u.str.len && !b->overflow; i++)
        render_escaped(b, (unsigned char)o->u.str.data[i], quote, true);
    sb_add(b, &quote, 1);
}

static void render(struct strbuf *b, const struct pyobj *o, bool as_repr, int depth);

static void render_items(struct strbuf *b, const struct pyvec *v, size_t step, int depth)
{
    for (size_t i = 0; i < v->len && !b->overflow; i += step) {
        if (i) sb_addz(b, ", ");
        render(b, v->at[i], true, depth + 1);
        if (step == 2) {
            sb_addz(b, ": ");
            render(b, v->at[i + 1], true, depth + 1);
        }
    }
}

static void render_container(struct strbuf *b, const struct pyobj *o, int depth)
{
    static const char *const brackets[][2] = {
        [PY_LIST] = {"[", "]"}, [PY_TUPLE] = {"(", ")"},
        [PY_SET] = {"{", "}"},  [PY_FROZENSET] = {"frozenset({", "})"},
        [PY_DICT] = {"{", "}"},
    };
    if ((o->kind == PY_SET || o->kind == PY_FROZENSET) && o->u.seq.len == 0)
        return sb_addz(b, o->kind == PY_SET ? "set()" : "frozenset()");
    sb_addz(b, brackets[o->kind][0]);
    if (o->kind == PY_DICT) {
        render_items(b, &o->u.map, 2, depth);
    } else {
        render_items(b, &o->u.seq, 1, depth);
        if (o->kind == PY_TUPLE && o->u.seq.len == 1) sb_addz(b, ",");
    }
    sb_addz(b, brackets[o->kind][1]);
}

static void render_str(struct strbuf *b, const struct pyobj *o, bool as_repr)
{
    if (!o->u.str.data) return sb_addf(b, "<str of %" PRIu64 " bytes>", o->u.str.len);
    if (!as_repr) { /* str(): the text itself, a NUL as findings carry it (report.c) */
        for (const char *at = o->u.str.data, *end = at + o->u.str.len; at < end && !b->overflow;) {
            const char *nul = memchr(at, '\0', (size_t)(end - at));
            sb_add(b, at, (size_t)((nul ? nul : end) - at));
            if (nul) sb_add(b, "\xc0\x80", 2);
            at = nul ? nul + 1 : end;
        }
        return;
    }
    char quote = repr_quote(o->u.str.data, o->u.str.len);
    sb_add(b, &quote, 1);
    for (uint64_t i = 0; i < o->u.str.len && !b->overflow; i++)
        render_escaped(b, (unsigned char)o->u.str.data[i], quote, false);
    sb_add(b, &quote, 1);
}

/* str(o), or repr(o) inside containers; objects by what builds them: "posix.system(...)". */
static void render(struct strbuf *b, const struct pyobj *o, bool as_repr, int depth)
{
    if (depth > RENDER_MAX_DEPTH) return sb_addz(b, "...");
    switch (o->kind) {
    case PY_NONE:
        return sb_addz(b, "None");
    case PY_BOOL:
        return sb_addz(b, o->u.boolean ? "True" : "False");
    case PY_INT:
        return sb_addf(b, "%" PRId64, o->u.integer);
    case PY_BIGINT: {
        char digits[400]; /* every digit of the largest double */
        if (!isfinite(o->u.number)) return render_float(b, o->u.number);
        snprintf(digits, sizeof(digits), "%.0f", o->u.number);
        return sb_addz(b, digits);
    }
    case PY_FLOAT:
        return render_float(b, o->u.number);
    case PY_STR:
        return render_str(b, o, as_repr);
    case PY_BYTES:
        return render_bytes(b, o);
    case PY_LIST:
    case PY_TUPLE:
    case PY_SET:
    case PY_FROZENSET:
    case PY_DICT:
        return render_container(b, o, depth);
    case PY_GLOBAL:
        sb_addz(b, o->u.global.module);
        sb_addz(b, ".");
        return sb_addz(b, o->u.global.name);
    case PY_OBJECT:
        if (o->u.object.callable) render(b, o->u.object.callable, false, depth + 1);
        return sb_addz(b, "(...)");
    case PY_PID:
        return sb_addz(b, "persistent_id(...)");
    case PY_DTYPE:
        return sb_addf(b, "dtype('%s')", o->u.dtype.code);
    case PY_ARRAY:
        return sb_addz(b, "array(...)");
    case PY_FOUND:
        return sb_addz(b, "tensor(...)");
    }
}

/* ---- names ---- */

static bool name_ok(struct flattener *f)
{
    if (!f->name.overflow) return true;
    if (!f->said_too_long)
        report_error(f->report, "flatten: a name longer than %d bytes was not reported",
                     FLATTEN_MAX_NAME);
    f->said_too_long = true;
    return false;
}

/* ---- reporting ---- */

static void put_le64(uint8_t *out, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (8 * i));
}

static bool is_number(const struct pyobj *o)
{
    return o->kind == PY_INT || o->kind == PY_BIGINT || o->kind == PY_FLOAT;
}

/* Whether every item is an int or float (not bool); *any_float when one is not an int. */
static bool all_numbers(const struct pyvec *v, bool *any_float)
{
    *any_float = false;
    for (size_t i = 0; i < v->len; i++) {
        if (!is_number(v->at[i])) return false;
        if (v->at[i]->kind != PY_INT) *any_float = true;
    }
    return true;
}

static bool is_tensor_list(const struct pyvec *v)
{
    bool any_float;
    return v->len > FLATTEN_MAX_LISTED && all_numbers(v, &any_float);
}

/* A numeric list as a float64/int64 tensor of shape [n], read exactly. */
static void report_numbers(struct flattener *f, const struct pyvec *v)
{
    if (!report_wants(f->report, f->name.s)) return;
    bool any_float;
    all_numbers(v, &any_float);
    enum dtype t = any_float ? DTYPE_F64 : DTYPE_I64;
    struct tensor_stats st;
    stats_init(&st, t);
    uint8_t block[256 * 8];
    size_t filled = 0;
    for (size_t i = 0; i < v->len; i++) {
        const struct pyobj *o = v->at[i];
        uint64_t bits;
        if (any_float) {
            double d = o->kind == PY_INT ? (double)o->u.integer : o->u.number;
            memcpy(&bits, &d, sizeof(bits));
        } else {
            bits = (uint64_t)o->u.integer;
        }
        put_le64(block + filled, bits);
        filled += 8;
        if (filled == sizeof(block) || i + 1 == v->len) {
            stats_feed(&st, block, filled);
            filled = 0;
        }
    }
    int64_t shape = (int64_t)v->len;
    report_tensor(f->report, f->name.s, dtype_name(t), &shape, 1, &st, 1.0);
}

/* Array data as little-endian elements, swapping big-endian ones through a block. */
static void feed_array(struct tensor_stats *st, const struct pyarray *a)
{
    /* In the blocks a tensor_reader feeds (tensor.h, "Determinism"), so that the same
     * array gives the same numbers pickled inline and streamed by joblib. */
    if (!a->big_endian) {
        for (uint64_t at = 0; at < a->nbytes; at += TENSOR_SAMPLE_BLOCK)
            stats_feed(st, a->data + at,
                       a->nbytes - at < TENSOR_SAMPLE_BLOCK ? a->nbytes - at : TENSOR_SAMPLE_BLOCK);
        return;
    }
    size_t size = dtype_size(a->dtype);
    uint8_t block[4096];
    for (uint64_t at = 0; at < a->nbytes;) {
        size_t n = a->nbytes - at < sizeof(block) ? (size_t)(a->nbytes - at) : sizeof(block);
        for (size_t i = 0; i < n; i += size)
            for (size_t k = 0; k < size; k++)
                block[i + k] = a->data[at + i + size - 1 - k];
        stats_feed(st, block, n);
        at += n;
    }
}

static void visit(struct flattener *f, const struct pyobj *o, int depth);

static void report_array(struct flattener *f, const struct pyarray *a)
{
    const char *name = f->name.s;
    if (!a->dtype_name) {
        report_error(f->report, "%s: numpy array not reported: %s", name, a->problem);
        return;
    }
    if (!report_wants(f->report, name)) return;
    struct tensor_stats st;
    stats_init(&st, a->supported ? a->dtype : DTYPE_U8);
    if (a->problem)
        report_error(f->report, "%s: statistics not computed: %s", name, a->problem);
    else if (a->streamed)
        st = *a->streamed; /* its head is in C order already */
    else
        feed_array(&st, a);
    if (!a->problem && !a->streamed && a->head) { /* Fortran order: the head in C order */
        tensor_head_catch(a->head, dtype_size(a->dtype), 0, a->data, a->nbytes);
        tensor_head_set(a->head, &st);
    }
    uint64_t elements = a->supported ? a->nbytes / dtype_size(a->dtype) : 0;
    double sampled = a->problem                ? 0.0
                     : a->streamed && elements ? (double)st.elements / (double)elements
                                               : 1.0;
    report_tensor(f->report, name, a->dtype_name, a->shape, a->ndim, &st, sampled);
    if (!a->problem && a->ndim == 0) {
        /* the contract: a 0-dimensional tensor is also a scalar value */
        struct pyobj element;
        pyobj_element(a->dtype, a->data, a->big_endian, &element);
        visit(f, &element, 0);
    }
}

/* ---- pandas frames (pandas.h) ---- */

/* One element of a block's column: little-endian into out. */
static void copy_element(const struct pyarray *a, uint64_t at, size_t size, uint8_t *out)
{
    const uint8_t *from = a->data + at * size;
    for (size_t k = 0; k < size; k++)
        out[k] = a->big_endian ? from[size - 1 - k] : from[k];
}

/* Row `row` of a 2-D block (or all of a 1-D one, row -1) as a 1-D tensor, fed to the
 * statistics in the blocks a tensor reader uses. A column joblib streamed is known when
 * it is all of its block or a row of a C-order one (pyobj.h, `rows`). Object (text)
 * columns are not tensors. */
static void report_column(struct flattener *f, const struct pyarray *a, int64_t row)
{
    int64_t n = a->ndim == 2 ? a->shape[1] : a->shape[0];
    int64_t k = a->ndim == 2 ? a->shape[0] : 1;
    if (!a->supported || a->problem || !report_wants(f->report, f->name.s)) return;
    struct tensor_stats st;
    stats_init(&st, a->dtype);
    if (a->streamed && k == 1) {
        st = *a->streamed;
    } else if (a->rows && row >= 0) {
        st = a->rows[row];
    } else if (!a->data) {
        return;
    } else {
        size_t size = dtype_size(a->dtype), filled = 0;
        uint8_t *block = malloc(TENSOR_SAMPLE_BLOCK);
        if (!block) return report_error(f->report, "%s: out of memory", f->name.s);
        for (int64_t r = 0; r < n; r++) {
            uint64_t at = row < 0      ? (uint64_t)r
                          : a->fortran ? (uint64_t)r * (uint64_t)k + (uint64_t)row
                                       : (uint64_t)row * (uint64_t)n + (uint64_t)r;
            copy_element(a, at, size, block + filled);
            filled += size;
            if (filled + size > TENSOR_SAMPLE_BLOCK || r + 1 == n) {
                stats_feed(&st, block, filled);
                filled = 0;
            }
        }
        free(block);
    }
    report_tensor(f->report, f->name.s, a->dtype_name, &n, 1, &st, 1.0);
}

/* A RangeIndex as the int64 tensor it stands for. */
static void report_range(struct flattener *f, int64_t start, int64_t step, int64_t n)
{
    if (!report_wants(f->report, f->name.s)) return;
    struct tensor_stats st;
    stats_init(&st, DTYPE_I64);
    const size_t per_block = TENSOR_SAMPLE_BLOCK / sizeof(int64_t);
    int64_t *block = malloc(TENSOR_SAMPLE_BLOCK);
    if (!block) return report_error(f->report, "%s: out of memory", f->name.s);
    for (int64_t i = 0; i < n;) {
        size_t filled = 0;
        for (; filled < per_block && i < n; i++)
            block[filled++] = start + i * step;
        stats_feed(&st, block, filled * sizeof block[0]);
    }
    free(block);
    report_tensor(f->report, f->name.s, "int64", &n, 1, &st, 1.0);
}

/* NAME.SUFFIX for the duration of one report. */
static size_t enter(struct flattener *f, const char *suffix, const struct pyobj *key)
{
    size_t saved = f->name.len;
    if (saved) sb_addz(&f->name, ".");
    if (suffix)
        sb_addz(&f->name, suffix);
    else
        render(&f->name, key, false, 0);
    return saved;
}

/* A DataFrame or Series: each numeric column as a tensor NAME.COLUMN (a Series's values
 * as NAME.<its name>, or NAME.values), a numeric row index as NAME.index, the shape as
 * NAME.shape.0 (rows) and NAME.shape.1 (columns). */
static bool report_frame(struct flattener *f, const struct pyobj *o)
{
    struct pandas_frame frame;
    if (!pandas_frame(o, &frame)) return false;
    for (size_t i = 0; i < frame.ncolumns; i++) {
        const struct pandas_column *c = &frame.columns[i];
        if (!c->block) continue;
        size_t saved = enter(f, NULL, c->label);
        if (name_ok(f)) report_column(f, c->block, c->row);
        sb_truncate(&f->name, saved);
    }
    size_t saved = enter(f, "index", NULL);
    if (frame.index_is_range)
        report_range(f, frame.index_start, frame.index_step, frame.nrows);
    else if (frame.index)
        report_array(f, frame.index);
    sb_truncate(&f->name, saved);
    saved = enter(f, "shape.0", NULL);
    report_int(f->report, f->name.s, frame.nrows);
    sb_truncate(&f->name, saved);
    if (!frame.series) {
        saved = enter(f, "shape.1", NULL);
        report_int(f->report, f->name.s, (int64_t)frame.ncolumns);
        sb_truncate(&f->name, saved);
    }
    pandas_frame_free(&frame);
    return true;
}

static void report_described(struct flattener *f, const struct pyobj *o)
{
    sb_truncate(&f->text, 0);
    render(&f->text, o, false, 0);
    if (f->text.len) report_string(f->report, f->name.s, f->text.s, f->text.len);
}

/* ---- the walk ---- */

/* Visits o under the current name extended by key (an index, or a dict key rendered). */
static void visit_child(struct flattener *f, const char *index, const struct pyobj *key,
                        const struct pyobj *o, int depth)
{
    if (depth + 1 > FLATTEN_MAX_DEPTH) {
        if (!f->said_too_deep)
            report_error(f->report, "flatten: nesting deeper than %d levels at '%s'; not descended",
                         FLATTEN_MAX_DEPTH, f->name.s);
        f->said_too_deep = true;
        return;
    }
    size_t saved = f->name.len;
    if (depth > 0 || (saved && f->report->root_name)) sb_addz(&f->name, ".");
    if (index)
        sb_addz(&f->name, index);
    else
        render(&f->name, key, false, 0);
    if (name_ok(f)) visit(f, o, depth + 1);
    sb_truncate(&f->name, saved);
}

static void visit_pairs(struct flattener *f, const struct pyvec *map, int depth)
{
    for (size_t i = 0; i + 1 < map->len; i += 2)
        visit_child(f, NULL, map->at[i], map->at[i + 1], depth);
}

static void visit_items(struct flattener *f, const struct pyvec *items, int depth)
{
    if (is_tensor_list(items)) return report_numbers(f, items);
    for (size_t i = 0; i < items->len; i++) {
        char index[24];
        snprintf(index, sizeof(index), "%zu", i);
        visit_child(f, index, NULL, items->at[i], depth);
    }
}

static bool has_content(const struct pyobj *o)
{
    return o->attrs || o->u.object.items.len || o->u.object.map.len;
}

static void visit(struct flattener *f, const struct pyobj *o, int depth)
{
    if (++f->visits > FLATTEN_MAX_NODES) {
        if (!f->said_too_many)
            report_error(f->report, "flatten: more than %u objects; the rest were not reported",
                         FLATTEN_MAX_NODES);
        f->said_too_many = true;
        return;
    }
    if (f->report->findings > REPORT_MAX_FINDINGS) return; /* full, and it said so */
    if (f->hook && f->hook(f->ctx, f->report, f->name.s, o)) return;
    if (o->kind == PY_OBJECT && report_frame(f, o)) return;
    switch (o->kind) {
    case PY_NONE:
        return report_null(f->report, f->name.s);
    case PY_BOOL:
        return report_bool(f->report, f->name.s, o->u.boolean);
    case PY_INT:
        return report_int(f->report, f->name.s, o->u.integer);
    case PY_BIGINT:
    case PY_FLOAT:
        return report_float(f->report, f->name.s, o->u.number);
    case PY_STR:
        if (o->u.str.data) report_string(f->report, f->name.s, o->u.str.data, o->u.str.len);
        return;
    case PY_BYTES:
        return;
    case PY_LIST:
    case PY_TUPLE:
    case PY_SET:
    case PY_FROZENSET:
        visit_items(f, &o->u.seq, depth);
        break;
    case PY_DICT:
        visit_pairs(f, &o->u.map, depth);
        break;
    case PY_OBJECT:
        if (!has_content(o)) return report_described(f, o);
        visit_pairs(f, &o->u.object.map, depth);
        visit_items(f, &o->u.object.items, depth);
        break;
    case PY_ARRAY:
        return report_array(f, &o->u.array);
    case PY_GLOBAL:
    case PY_PID:
    case PY_DTYPE:
    case PY_FOUND: /* its parser's hook reports it */
        return report_described(f, o);
    }
    if (o->attrs) visit_pairs(f, &o->attrs->u.map, depth);
}

/* Whether the root is one value or tensor (named "value") rather than a container of
 * named things. */
static bool is_single(const struct pyobj *o)
{
    switch (o->kind) {
    case PY_DICT:
        return false;
    case PY_LIST:
    case PY_TUPLE:
    case PY_SET:
    case PY_FROZENSET:
        return !o->attrs && is_tensor_list(&o->u.seq);
    case PY_OBJECT:
        return !has_content(o);
    default:
        return true;
    }
}

void flatten(struct report *r, const struct pyobj *root, flatten_hook hook, void *ctx)
{
    struct flattener f = {.report = r, .hook = hook, .ctx = ctx};
    f.name.limit = FLATTEN_MAX_NAME;
    f.text.limit = REPORT_MAX_STRING;
    sb_addz(&f.name, r->root_name ? r->root_name : is_single(root) ? "value" : "");
    if (!f.name.s) {
        report_error(r, "flatten: out of memory");
        return;
    }
    locale_t c = json_c_locale();
    locale_t previous = c ? uselocale(c) : (locale_t)0;
    visit(&f, root, 0);
    if (c) uselocale(previous);
    free(f.name.s);
    free(f.text.s);
}
