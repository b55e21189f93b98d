/* json.c — the "json" parser: a whole JSON document, flattened into values and tensors.
 *
 * JSON checkpoints (trainer_state.json and the like) are small and cannot be understood
 * before their end, so the document is buffered, up to JSON_MAX_BYTES (16 MiB); a larger
 * one is reported as an error and not parsed. It is parsed at finish with cJSON,
 * converted into the Python-object model (pyobj.h) and flattened by flatten.c, so JSON
 * and pickle name things the same way. At most JSON_MAX_VALUES values are accepted,
 * which bounds what cJSON allocates.
 *
 * Before cJSON sees it, one pass over the text does three things cJSON cannot:
 *  - Python's json writes NaN, Infinity and -Infinity, which cJSON rejects. Those bare
 *    tokens (outside strings) are rewritten into strings starting with a \x01 byte, a
 *    byte no valid JSON string holds raw (the pass rejects raw control characters in
 *    strings, as Python does), and turned back into floats after parsing.
 *  - cJSON keeps every number as a double. The pass notes which number tokens were
 *    written with '.', 'e' or 'E'; numbers come out of cJSON in document order, so each
 *    one is an int when written as one (as Python reads it: 1 is an int, 1.0 a float).
 *    Ints beyond int64 are kept as doubles.
 *  - Raw NUL bytes are rejected, so cJSON's NUL-terminated parse sees the whole text.
 *  - cJSON ends a string at a \u0000 in it. Each is rewritten into the bytes C0 80, the
 *    NUL of findings (report.h), which cJSON copies as they are.
 */
#include "parser.h"
#include "pyobj.h"
#include "flatten.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_BYTES  (16u << 20)
#define JSON_MAX_VALUES 1000000u

#define SENTINEL '\x01'

struct json_parser {
    struct parser base;
    struct report *report;
    char *text;
    size_t len, alloc;
    bool too_big;
};

/* What the pre-pass found. */
struct scan {
    size_t values;         /* strings, numbers, literals and containers */
    size_t nonfinite;      /* NaN, Infinity, -Infinity tokens */
    size_t nuls;           /* \u0000 escapes in strings */
    uint8_t *float_syntax; /* one bit per number token: written as a float */
    size_t numbers, bits_alloc;
    const char *problem; /* why the text is not JSON, or NULL */
    size_t problem_at;
};

static const struct {
    const char *token;
    size_t len;
} nonfinite_tokens[] = {{"NaN", 3}, {"Infinity", 8}, {"-Infinity", 9}};

static size_t nonfinite_at(const char *s, size_t left)
{
    for (size_t i = 0; i < sizeof(nonfinite_tokens) / sizeof(nonfinite_tokens[0]); i++)
        if (left >= nonfinite_tokens[i].len &&
            memcmp(s, nonfinite_tokens[i].token, nonfinite_tokens[i].len) == 0)
            return nonfinite_tokens[i].len;
    return 0;
}

static bool note_number(struct scan *sc, bool is_float)
{
    if (sc->numbers / 8 == sc->bits_alloc) {
        size_t alloc = sc->bits_alloc ? sc->bits_alloc * 2 : 256;
        uint8_t *bits = realloc(sc->float_syntax, alloc);
        if (!bits) return false;
        memset(bits + sc->bits_alloc, 0, alloc - sc->bits_alloc);
        sc->float_syntax = bits;
        sc->bits_alloc = alloc;
    }
    if (is_float) sc->float_syntax[sc->numbers / 8] |= (uint8_t)(1u << (sc->numbers % 8));
    sc->numbers++;
    return true;
}

static bool scan_fail(struct scan *sc, const char *problem, size_t at)
{
    sc->problem = problem;
    sc->problem_at = at;
    return false;
}

static bool nul_escape_at(const char *s, size_t left)
{
    return left >= 6 && !memcmp(s, "\\u0000", 6);
}

/* Skips a string starting at its opening quote; returns the index after the closing one.
 * With out set, also copies it there, each \u0000 as C0 80 (*o advanced). */
static bool scan_string(const char *in, size_t n, size_t *i, struct scan *sc, char *out, size_t *o)
{
    for (size_t k = *i + 1; k < n; k++) {
        unsigned char c = (unsigned char)in[k];
        if (c == '"') {
            if (out) {
                for (size_t j = *i; j <= k; j++) {
                    bool nul = nul_escape_at(in + j, k - j);
                    if (in[j] == '\\' && !nul) out[(*o)++] = in[j++];
                    out[(*o)++] = nul ? '\xc0' : in[j];
                    if (nul) out[(*o)++] = '\x80', j += 5;
                }
            }
            *i = k + 1;
            return true;
        }
        if (c < 0x20) return scan_fail(sc, "control character in a string", k);
        if (c == '\\') {
            if (!out && nul_escape_at(in + k, n - k)) sc->nuls++;
            k++;
        }
    }
    return scan_fail(sc, "unterminated string", *i);
}

/* The pre-pass. With out set it also writes the text with non-finite tokens and NUL
 * escapes rewritten (out has room for n + 3 * nonfinite + 1 bytes); the first pass runs
 * without it. */
static bool scan(const char *in, size_t n, struct scan *sc, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t start = i, special;
        char c = in[i];
        if (c == '"') {
            if (!scan_string(in, n, &i, sc, out, &o)) return false;
            start = i; /* copied */
        } else if ((special = nonfinite_at(in + i, n - i))) {
            if (out) {
                out[o++] = '"';
                out[o++] = SENTINEL;
                memcpy(out + o, in + i, special);
                o += special;
                out[o++] = '"';
            }
            sc->nonfinite += !out;
            i += special;
            start = i; /* already copied */
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            bool is_float = false;
            while (i < n && strchr("0123456789+-.eE", in[i]) && in[i]) {
                is_float |= in[i] == '.' || in[i] == 'e' || in[i] == 'E';
                i++;
            }
            if (!out && !note_number(sc, is_float)) return scan_fail(sc, "out of memory", start);
        } else if (c == '\0') {
            return scan_fail(sc, "NUL byte", i);
        } else {
            i++;
        }
        if (!out && strchr("\"-0123456789tfn[{NI", c) && c && ++sc->values > JSON_MAX_VALUES)
            return scan_fail(sc, "more than 1000000 values", start);
        if (out && i > start) {
            memcpy(out + o, in + start, i - start);
            o += i - start;
        }
    }
    if (out) out[o] = '\0';
    return true;
}

/* ---- cJSON to pyobj ---- */

struct converter {
    struct pyarena *arena;
    const struct scan *scan;
    size_t number; /* index of the next number token */
};

static struct pyobj *convert(struct converter *c, const cJSON *item);

static struct pyobj *convert_number(struct converter *c, double v)
{
    size_t k = c->number++;
    bool is_float = k < c->scan->numbers ? (c->scan->float_syntax[k / 8] >> (k % 8)) & 1
                                         : v != floor(v); /* cannot happen; be safe */
    if (!is_float && v >= -9223372036854775808.0 && v < 9223372036854775808.0)
        return pyobj_int(c->arena, (int64_t)v);
    return pyobj_float(c->arena, is_float ? PY_FLOAT : PY_BIGINT, v);
}

static struct pyobj *convert_string(struct converter *c, const char *s)
{
    if (s[0] == SENTINEL) {
        double v = s[1] == 'N' ? NAN : s[1] == '-' ? -INFINITY : INFINITY;
        return pyobj_float(c->arena, PY_FLOAT, v);
    }
    return pyobj_str(c->arena, PY_STR, s, strlen(s));
}

static struct pyobj *convert_container(struct converter *c, const cJSON *item)
{
    bool is_object = cJSON_IsObject(item);
    struct pyobj *o = pyobj_new(c->arena, is_object ? PY_DICT : PY_LIST);
    if (!o) return NULL;
    struct pyvec *v = is_object ? &o->u.map : &o->u.seq;
    for (const cJSON *child = item->child; child; child = child->next) {
        if (is_object &&
            !pyvec_push(c->arena, v,
                        pyobj_str(c->arena, PY_STR, child->string, strlen(child->string))))
            return NULL;
        struct pyobj *value = convert(c, child);
        if (!value || !pyvec_push(c->arena, v, value)) return NULL;
    }
    return o;
}

static struct pyobj *convert(struct converter *c, const cJSON *item)
{
    if (cJSON_IsTrue(item)) return &pyobj_true;
    if (cJSON_IsFalse(item)) return &pyobj_false;
    if (cJSON_IsNumber(item)) return convert_number(c, item->valuedouble);
    if (cJSON_IsString(item)) return convert_string(c, item->valuestring);
    if (cJSON_IsArray(item) || cJSON_IsObject(item)) return convert_container(c, item);
    return &pyobj_none;
}

/* ---- documents that end early ---- */

static bool push_container(char **stack, size_t *depth, size_t *cap, char open)
{
    if (*depth == *cap) {
        size_t grown_cap = *cap ? *cap * 2 : 64;
        char *grown = realloc(*stack, grown_cap);
        if (!grown) return false;
        *stack = grown;
        *cap = grown_cap;
    }
    (*stack)[(*depth)++] = open;
    return true;
}

/* A document its writer did not finish (the process died, or the data ends early): the
 * longest prefix that ends after a whole value, with the containers still open there
 * closed, so that what was written before the end is still reported. A scalar token at
 * the very end is left out: 0.12 may be the start of 0.125. Returns the repaired text
 * (malloc'd, NUL-terminated) or NULL when the text is not a truncated document. */
static char *close_truncated(const char *in, size_t n, size_t *out_len)
{
    char *stack = NULL, *out = NULL;
    size_t depth = 0, cap = 0, cut = 0, cut_depth = 0, i = 0;
    bool expect_key = false, truncated = false;
    while (i < n) {
        char c = in[i];
        bool in_object = depth && stack[depth - 1] == '{';
        if (c == '"') {
            size_t k = i + 1;
            while (k < n && in[k] != '"')
                k += in[k] == '\\' ? 2 : 1;
            if ((truncated = k >= n)) break;
            i = k + 1;
            if (!(in_object && expect_key)) cut = i, cut_depth = depth;
        } else if (c == '{' || c == '[') {
            if (!push_container(&stack, &depth, &cap, c)) break;
            expect_key = c == '{';
            cut = ++i, cut_depth = depth;
        } else if (c == '}' || c == ']') {
            if (!depth) break; /* malformed: the parser will say where */
            depth--;
            expect_key = false;
            cut = ++i, cut_depth = depth;
        } else if (c == ',' || c == ':') {
            expect_key = c == ',' && in_object;
            i++;
        } else if (strchr(" \t\r\n", c) && c) {
            i++;
        } else {
            size_t k = i;
            while (k < n && in[k] && !strchr(" \t\r\n,:[]{}\"", in[k]))
                k++;
            if (k == i) break; /* a NUL byte: malformed, and scan() says where */
            if ((truncated = k >= n)) break;
            i = k;
            cut = i, cut_depth = depth;
        }
    }
    truncated = (truncated || i >= n) && depth > 0 && cut_depth <= depth;
    if (truncated && (out = malloc(cut + cut_depth + 1))) {
        memcpy(out, in, cut);
        for (size_t d = cut_depth; d-- > 0;)
            out[cut++] = stack[d] == '{' ? '}' : ']';
        out[cut] = '\0';
        *out_len = cut;
    }
    free(stack);
    return out;
}

/* ---- the parser ---- */

static void json_feed(struct parser *base, const uint8_t *data, size_t len)
{
    struct json_parser *p = (struct json_parser *)base;
    if (p->too_big) return;
    if (len > JSON_MAX_BYTES - p->len) {
        report_error(p->report, "json: document exceeds the %u MiB cap; not parsed",
                     JSON_MAX_BYTES >> 20);
        p->too_big = true;
        free(p->text);
        p->text = NULL;
        return;
    }
    if (p->len + len + 1 > p->alloc) {
        size_t alloc = p->alloc ? p->alloc : 4096;
        while (alloc < p->len + len + 1)
            alloc *= 2;
        char *text = realloc(p->text, alloc);
        if (!text) {
            report_error(p->report, "json: out of memory; not parsed");
            p->too_big = true;
            return;
        }
        p->text = text;
        p->alloc = alloc;
    }
    memcpy(p->text + p->len, data, len);
    p->len += len;
}

/* Where an error in the rewritten text lies in the original: each sentinel string
 * before it added three bytes, each NUL escape took four. */
static size_t original_offset(const char *rewritten, size_t at)
{
    size_t added = 0, taken = 0;
    for (size_t i = 1; i < at; i++) {
        if (rewritten[i] == SENTINEL && rewritten[i - 1] == '"') added += 3;
        if (rewritten[i] == '\x80' && rewritten[i - 1] == '\xc0') taken += 4;
    }
    return at + taken - added;
}

static bool report_tree(struct json_parser *p, const cJSON *doc, const struct scan *sc)
{
    struct converter c = {.arena = pyarena_new(PYOBJ_MEMORY_CAP), .scan = sc};
    struct pyobj *root = c.arena ? convert(&c, doc) : NULL;
    if (root)
        flatten(p->report, root, NULL, NULL);
    else
        report_error(p->report, "json: document needs more than %u MiB in memory; not reported",
                     PYOBJ_MEMORY_CAP >> 20);
    pyarena_free(c.arena);
    return root != NULL;
}

static bool parse_text(struct json_parser *p, struct scan *sc)
{
    const char *text = p->text;
    char *rewritten = NULL;
    if (sc->nonfinite || sc->nuls) {
        rewritten = malloc(p->len + 3 * sc->nonfinite + 1);
        if (!rewritten) {
            report_error(p->report, "json: out of memory; not parsed");
            return false;
        }
        scan(p->text, p->len, sc, rewritten);
        text = rewritten;
    }
    size_t text_len = strlen(text);
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, text_len + 1, &end, 1);
    bool ok = doc != NULL;
    if (!doc) {
        size_t at = end ? (size_t)(end - text) : 0;
        report_error(p->report, "json: malformed at byte %zu",
                     rewritten ? original_offset(text, at) : at);
    } else {
        ok = report_tree(p, doc, sc);
        cJSON_Delete(doc);
    }
    free(rewritten);
    return ok;
}

static bool json_finish(struct parser *base)
{
    struct json_parser *p = (struct json_parser *)base;
    if (p->too_big) return false;
    if (!p->text) json_feed(base, (const uint8_t *)"", 0);
    if (p->too_big) return false;
    p->text[p->len] = '\0';
    size_t repaired_len;
    char *repaired = close_truncated(p->text, p->len, &repaired_len);
    if (repaired) {
        report_error(p->report,
                     "json: the data ends inside the document, at byte %zu; the "
                     "values before that point are reported",
                     p->len);
        free(p->text);
        p->text = repaired;
        p->len = repaired_len;
    }
    struct scan sc = {0};
    bool ok;
    if (!scan(p->text, p->len, &sc, NULL)) {
        report_error(p->report, "json: malformed at byte %zu (%s)", sc.problem_at, sc.problem);
        ok = false;
    } else {
        ok = parse_text(p, &sc);
    }
    free(sc.float_syntax);
    free(p->text);
    p->text = NULL;
    p->too_big = true; /* done: nothing more is taken */
    return ok && !repaired;
}

static void json_destroy(struct parser *base)
{
    struct json_parser *p = (struct json_parser *)base;
    free(p->text);
    free(p);
}

struct parser *parser_json_new(struct report *r, const struct parse_options *o)
{
    (void)o;
    struct json_parser *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->report = r;
    p->base.format = "json";
    p->base.feed = json_feed;
    p->base.finish = json_finish;
    p->base.destroy = json_destroy;
    p->base.tolerates_rewrites = false;
    return &p->base;
}
