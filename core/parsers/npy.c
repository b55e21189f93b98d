/* npy.c — NumPy .npy streams (npy.h) and the "npy" parser.
 *
 * Layout: "\x93NUMPY", major, minor, a little-endian header length (u16 in version 1,
 * u32 in 2 and 3), a header that is a Python dict literal such as
 * {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }, then the raw data.
 * The header is read by a small literal parser that understands strings, True/False
 * and tuples of integers, and steps over anything else; nothing is evaluated.
 *
 * descr: little-endian ('<'), native ('=', taken as little-endian: ckmon runs on
 * little-endian machines) and byte-order-free ('|') numbers whose NumPy name is one
 * stats.h reads get statistics. Big-endian numbers, complex, strings and dates are
 * reported with dtype and shape only; their data size is still known, so an .npz
 * embedder learns where they end. Object arrays and structured dtypes do not say how
 * long their data is: they are reported at once and the rest of the stream is theirs.
 *
 * Fortran order changes nothing in the statistics; `head` is still the array's first
 * elements in C order (a.flat[:8]), picked out of the column-major data as it passes.
 */
#include "npy.h"
#include "pickle.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t NPY_MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
#define PREAMBLE_V1      10      /* magic, major, minor, u16 length */
#define PREAMBLE_V2      12      /* ... u32 length */
#define NPY_DEFAULT_NAME "array" /* when the file's name gives none */

/* ---- The header's dict literal -------------------------------------------------- */

struct header {
    char descr[24];  /* as long as a dtype name: longer descrs are not numbers anyway */
    bool structured; /* descr is a list of fields */
    bool fortran_order;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
};

struct cursor {
    const char *at, *end;
};

static void skip_space(struct cursor *c)
{
    while (c->at < c->end && isspace((unsigned char)*c->at))
        c->at++;
}

static bool peek(struct cursor *c, char ch)
{
    skip_space(c);
    return c->at < c->end && *c->at == ch;
}

static bool accept(struct cursor *c, char ch)
{
    if (!peek(c, ch)) return false;
    c->at++;
    return true;
}

static bool accept_word(struct cursor *c, const char *word)
{
    size_t n = strlen(word);
    skip_space(c);
    if ((size_t)(c->end - c->at) < n || memcmp(c->at, word, n) != 0) return false;
    c->at += n;
    return true;
}

/* A quoted string, backslash escapes taken literally; out (if any) gets at most
 * cap - 1 bytes of it. */
static bool parse_string(struct cursor *c, char *out, size_t cap)
{
    size_t n = 0;
    skip_space(c);
    if (c->at >= c->end || (*c->at != '\'' && *c->at != '"')) return false;
    char quote = *c->at++;
    while (c->at < c->end && *c->at != quote) {
        if (*c->at == '\\' && c->at + 1 < c->end) c->at++;
        if (out && n + 1 < cap) out[n++] = *c->at;
        c->at++;
    }
    if (out && cap) out[n] = '\0';
    if (c->at >= c->end) return false;
    c->at++;
    return true;
}

/* Steps over one value of any shape: up to a ',' or closing bracket at its own level. */
static bool skip_value(struct cursor *c)
{
    int depth = 0;
    for (;;) {
        skip_space(c);
        if (c->at >= c->end) return false;
        char ch = *c->at;
        if (ch == '\'' || ch == '"') {
            if (!parse_string(c, NULL, 0)) return false;
            continue;
        }
        if (strchr("([{", ch)) {
            depth++;
        } else if (strchr(")]}", ch)) {
            if (depth == 0) return true;
            depth--;
        } else if (ch == ',' && depth == 0) {
            return true;
        }
        c->at++;
    }
}

/* A dimension: decimal digits, with the 'L' suffix Python 2 wrote for longs. */
static const char *parse_dimension(struct cursor *c, int64_t *out)
{
    int64_t v = 0;
    skip_space(c);
    if (c->at < c->end && *c->at == '-') return "negative dimension";
    if (c->at >= c->end || !isdigit((unsigned char)*c->at)) return "expected a dimension";
    while (c->at < c->end && isdigit((unsigned char)*c->at)) {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *c->at - '0', &v))
            return "dimension over 2^63";
        c->at++;
    }
    if (c->at < c->end && *c->at == 'L') c->at++;
    *out = v;
    return NULL;
}

static const char *parse_shape(struct cursor *c, struct header *h)
{
    if (!accept(c, '(')) return "shape is not a tuple";
    h->ndim = 0;
    while (!accept(c, ')')) {
        if (h->ndim == TENSOR_MAX_DIMS) return "too many dimensions";
        const char *why = parse_dimension(c, &h->shape[h->ndim++]);
        if (why) return why;
        if (!accept(c, ',') && !peek(c, ')')) return "expected ',' or ')' in shape";
    }
    return NULL;
}

static const char *parse_entry(struct cursor *c, struct header *h, unsigned *seen)
{
    char key[32];
    if (!parse_string(c, key, sizeof key)) return "expected a quoted key";
    if (!accept(c, ':')) return "expected ':'";
    if (strcmp(key, "descr") == 0) {
        *seen |= 1;
        if (peek(c, '\'') || peek(c, '"'))
            return parse_string(c, h->descr, sizeof h->descr) ? NULL : "unterminated descr";
        h->structured = true;
        return skip_value(c) ? NULL : "unterminated descr";
    }
    if (strcmp(key, "fortran_order") == 0) {
        *seen |= 2;
        h->fortran_order = accept_word(c, "True");
        return h->fortran_order || accept_word(c, "False") ? NULL : "fortran_order is not a bool";
    }
    if (strcmp(key, "shape") == 0) {
        *seen |= 4;
        return parse_shape(c, h);
    }
    return skip_value(c) ? NULL : "unterminated value";
}

/* NULL, or why the header is not a usable dict. */
static const char *parse_header(const char *text, size_t len, struct header *h)
{
    struct cursor c = {text, text + len};
    unsigned seen = 0;
    memset(h, 0, sizeof *h);
    if (!accept(&c, '{')) return "header is not a dict";
    while (!accept(&c, '}')) {
        const char *why = parse_entry(&c, h, &seen);
        if (why) return why;
        if (!accept(&c, ',') && !peek(&c, '}')) return "expected ',' or '}'";
    }
    return seen == 7 ? NULL : "header lacks descr, fortran_order or shape";
}

/* ---- What descr says about the elements ------------------------------------------- */

struct element {
    char name[24];
    bool readable; /* dtype is one stats.h decodes */
    enum dtype dtype;
    uint64_t size;       /* bytes per element; 0 when the header does not say */
    const char *problem; /* why a readable-looking type is not read, or NULL */
};

/* Numbers take NumPy's names (kind + bits: float32, int8, complex64); anything else
 * keeps its descr without the byte-order mark. */
static void name_numbers(const char *rest, unsigned long bytes, struct element *e)
{
    static const char *const kinds[][2] = {
        {"f", "float"}, {"i", "int"}, {"u", "uint"}, {"c", "complex"}};
    if (strcmp(rest, "b1") == 0) {
        snprintf(e->name, sizeof e->name, "bool");
        return;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (rest[0] == kinds[i][0][0])
            snprintf(e->name, sizeof e->name, "%s%lu", kinds[i][1], bytes * 8);
}

static void describe(const struct header *h, struct element *e)
{
    char order = '=';
    const char *rest = h->descr;
    char *tail = "";
    if (rest[0] && strchr("<>|=", rest[0])) order = *rest++;
    unsigned long digits = rest[0] ? strtoul(rest + 1, &tail, 10) : 0;

    memset(e, 0, sizeof *e);
    if (h->structured) {
        snprintf(e->name, sizeof e->name, "structured");
        e->problem = "structured dtypes are not read";
        return;
    }
    snprintf(e->name, sizeof e->name, "%s", rest);
    if (rest[0] == 'O' || digits == 0 || digits > 1024) {
        e->problem = rest[0] == 'O' ? "object arrays are not read" : "dtype not understood";
        return;
    }
    e->size = rest[0] == 'U' ? 4 * digits : digits; /* UCS-4 characters */
    if (*tail == '\0') name_numbers(rest, digits, e);
    for (int t = 0; t < DTYPE_COUNT; t++) {
        if (strcmp(dtype_name((enum dtype)t), e->name) != 0 || dtype_size((enum dtype)t) != e->size)
            continue;
        e->dtype = (enum dtype)t;
        e->readable = order != '>' || e->size == 1;
        if (!e->readable) e->problem = "big-endian data not read";
    }
}

/* ---- The stream ------------------------------------------------------------------- */

static void fail(struct npy_array *a, const char *why)
{
    report_error(a->report, "%s: %s at byte %" PRIu64, a->name, why, a->offset);
    a->state = NPY_FAILED;
}

void npy_array_init(struct npy_array *a, struct report *r, const struct parse_options *o,
                    const char *name)
{
    /* All but the tensor's block buffer (64 KiB, filled before it is read): an npz
     * starts an array per member. */
    memset(a, 0, offsetof(struct npy_array, tensor) + offsetof(struct tensor_reader, block));
    a->report = r;
    a->options = o;
    snprintf(a->name, sizeof a->name, "%s", name);
    a->state = NPY_PREAMBLE;
    a->preamble_need = 8; /* until the major version says how long the length is */
}

static void finish_data_if_done(struct npy_array *a)
{
    if (!tensor_reader_done(&a->tensor)) return;
    if (a->head.count) tensor_head_set(&a->head, &a->tensor.stats);
    tensor_reader_report(&a->tensor, a->report);
    a->state = NPY_DONE;
}

/* The header is complete: set up the tensor its fields describe. */
static void start_data(struct npy_array *a)
{
    struct header h;
    struct element e;
    uint64_t elements, nbytes;
    const char *why = parse_header(a->header, a->header_len, &h);

    free(a->header);
    a->header = NULL;
    if (why) return fail(a, why);
    describe(&h, &e);
    if (e.problem) report_error(a->report, "%s: %s: %s", a->name, e.name, e.problem);
    if (e.readable) {
        if (!tensor_reader_init(&a->tensor, a->report, a->name, e.dtype, h.shape, h.ndim,
                                a->options))
            return fail(a, "unusable shape");
        if (h.fortran_order) tensor_head_plan_fortran(&a->head, h.shape, h.ndim);
    } else if (e.size == 0) {
        tensor_reader_init_opaque(&a->tensor, a->name, e.name, h.shape, h.ndim, 0);
        tensor_reader_report(&a->tensor, a->report);
        a->state = NPY_UNSIZED;
        /* np.save pickles an object array's items: the pickle's STOP is its end */
        if (strcmp(e.name, "O") == 0) {
            report_init(&a->quiet, NULL);
            if ((a->pickle = pickle_walker_new(&a->quiet, NULL, NULL))) a->state = NPY_PICKLED;
        }
        return;
    } else {
        if (!tensor_shape_elements(h.shape, h.ndim, &elements) ||
            __builtin_mul_overflow(elements, e.size, &nbytes))
            return fail(a, "shape's size overflows");
        tensor_reader_init_opaque(&a->tensor, a->name, e.name, h.shape, h.ndim, nbytes);
    }
    a->state = NPY_DATA;
    finish_data_if_done(a);
}

static void end_preamble(struct npy_array *a)
{
    const uint8_t *p = a->preamble;
    if (a->preamble_need == 8) {
        if (memcmp(p, NPY_MAGIC, sizeof NPY_MAGIC) != 0) return fail(a, "not a .npy stream");
        if (p[6] < 1 || p[6] > 3) return fail(a, "unsupported .npy version");
        a->preamble_need = p[6] == 1 ? PREAMBLE_V1 : PREAMBLE_V2;
        return;
    }
    a->header_len = a->preamble_need == PREAMBLE_V1
                        ? (size_t)(p[8] | p[9] << 8)
                        : (size_t)((uint32_t)p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 |
                                   (uint32_t)p[11] << 24);
    if (a->header_len > NPY_MAX_HEADER) return fail(a, "header over 1 MiB");
    a->header = malloc(a->header_len + 1);
    if (!a->header) return fail(a, "out of memory");
    a->state = NPY_HEADER;
    if (a->header_len == 0) start_data(a);
}

/* Copies into a field that holds *have of its need bytes what of data belongs to it. */
static size_t fill(void *field, size_t *have, size_t need, const uint8_t *data, size_t len)
{
    size_t n = need - *have < len ? need - *have : len;
    memcpy((uint8_t *)field + *have, data, n);
    *have += n;
    return n;
}

static void end_pickle(struct npy_array *a)
{
    pickle_walker_free(a->pickle);
    a->pickle = NULL;
    report_free(&a->quiet);
}

size_t npy_array_feed(struct npy_array *a, const uint8_t *data, size_t len)
{
    size_t used = 0;
    while (used < len && a->state != NPY_DONE) {
        size_t n;
        switch (a->state) {
        case NPY_PREAMBLE:
            n = fill(a->preamble, &a->preamble_len, a->preamble_need, data + used, len - used);
            break;
        case NPY_HEADER:
            n = fill(a->header, &a->header_have, a->header_len, data + used, len - used);
            break;
        case NPY_PICKLED:
            n = pickle_walker_feed(a->pickle, data + used, len - used);
            if (pickle_walker_state(a->pickle) != PICKLE_RUNNING) {
                /* not a pickle after all: the rest is the array's, as for other dtypes */
                a->state =
                    pickle_walker_state(a->pickle) == PICKLE_STOPPED ? NPY_DONE : NPY_UNSIZED;
                end_pickle(a);
            }
            break;
        case NPY_DATA:
            if (a->head.count)
                tensor_head_catch(&a->head, dtype_size(a->tensor.stats.dtype), a->tensor.consumed,
                                  data + used, len - used);
            n = tensor_reader_feed(&a->tensor, data + used, len - used);
            break;
        default:
            n = len - used;
            break;
        }
        used += n;
        a->offset += n;
        if (a->state == NPY_PREAMBLE && a->preamble_len == a->preamble_need)
            end_preamble(a);
        else if (a->state == NPY_HEADER && a->header_have == a->header_len)
            start_data(a);
        else if (a->state == NPY_DATA)
            finish_data_if_done(a);
    }
    return used;
}

bool npy_array_finish(struct npy_array *a)
{
    switch (a->state) {
    case NPY_DONE:
    case NPY_UNSIZED:
    case NPY_PICKLED: /* ended before the pickle's STOP: taken as UNSIZED data would be */
        return true;
    case NPY_FAILED:
        return false;
    case NPY_DATA:
        report_error(a->report,
                     "%s: data ended at byte %" PRIu64 ", %" PRIu64 " of %" PRIu64 " data bytes",
                     a->name, a->offset, a->tensor.consumed, a->tensor.nbytes);
        return false;
    default:
        report_error(a->report, "%s: data ended at byte %" PRIu64 " inside the .npy header",
                     a->name, a->offset);
        return false;
    }
}

void npy_array_free(struct npy_array *a)
{
    free(a->header);
    a->header = NULL;
    if (a->pickle) end_pickle(a);
}

/* ---- The "npy" parser: one stream, nothing after it --------------------------------- */

struct npy_parser {
    struct parser base;
    struct npy_array array;
    uint64_t extra; /* bytes after the array's end */
};

static void npy_feed(struct parser *p, const uint8_t *data, size_t len)
{
    struct npy_parser *n = (struct npy_parser *)p;
    n->extra += len - npy_array_feed(&n->array, data, len);
}

static bool npy_finish(struct parser *p)
{
    struct npy_parser *n = (struct npy_parser *)p;
    bool whole = npy_array_finish(&n->array);
    if (n->extra > 0) {
        report_error(n->array.report,
                     "npy: %" PRIu64 " bytes after the array's data at byte %" PRIu64, n->extra,
                     n->array.offset);
        return false;
    }
    return whole;
}

static void npy_destroy(struct parser *p)
{
    struct npy_parser *n = (struct npy_parser *)p;
    npy_array_free(&n->array);
    free(n);
}

struct parser *parser_npy_named_new(struct report *r, const struct parse_options *o,
                                    const char *name)
{
    struct npy_parser *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->base = (struct parser){
        .format = "npy", .feed = npy_feed, .finish = npy_finish, .destroy = npy_destroy};
    npy_array_init(&n->array, r, o, name[0] ? name : NPY_DEFAULT_NAME);
    return &n->base;
}

struct parser *parser_npy_new(struct report *r, const struct parse_options *o)
{
    return parser_npy_named_new(r, o, NPY_DEFAULT_NAME);
}
