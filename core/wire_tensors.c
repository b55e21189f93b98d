/* wire_tensors.c — a data message read with its tensors built straight into cJSON (see
 * wire_tensors.h).
 *
 * The reader takes RFC 8259 JSON as the agent writes it and gives up on anything else
 * (then cJSON parses the packet whole, as before), so that both give the same tree: a
 * number is read as strtod reads it (cJSON's way), a string keeps its bytes as they
 * are, with the escapes the agent writes undone.
 */
#include "wire_tensors.h"

#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"

#define MAX_DEPTH        4  /* the array, a tensor, its ci95, shape or head, and one more */
#define MAX_SKIP_DEPTH   64 /* the members before "tensors" (values may nest) */
#define MAX_NUMBER_CHARS 64
#define EXACT_DIGITS     15 /* fewer than 2^53: summed digit by digit, exactly */

/* The tensors' own member names: kept as constant strings (cJSON_AddItemToObjectCS), not
 * a copy per tensor. The name and dtype come first: in a tensor they stay strings. */
static const char *const tensor_keys[] = {
    "name", "dtype", "shape", "min", "max", "mean", "std", "nan", "inf", "sampled", "ci95", "head",
};

/* Bytes a string's text cannot simply be copied past: its end, an escape, a control. */
static bool special(unsigned char c)
{
    return c == '"' || c == '\\' || c < 0x20;
}

struct reader {
    const char *p, *end;
    char *text; /* room for the longest string: the bytes of the one read last */
};

static void skip_space(struct reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static bool next_is(struct reader *r, char c)
{
    skip_space(r);
    return r->p < r->end && *r->p == c;
}

static bool take(struct reader *r, char c)
{
    if (!next_is(r, c)) return false;
    r->p++;
    return true;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Four hex digits at p (within the text), or -1. */
static long hex4(const struct reader *r, const char *p)
{
    long v = 0;
    if (r->end - p < 4) return -1;
    for (int i = 0; i < 4; i++) {
        int d = hex_value(p[i]);
        if (d < 0) return -1;
        v = v << 4 | d;
    }
    return v;
}

/* \uXXXX (and its low surrogate) at r->p, past the backslash and u, as UTF-8 at out;
 * its length, 0 for what this reader leaves to cJSON (U+0000, a broken pair). */
static size_t unicode_escape(struct reader *r, char *out)
{
    long c = hex4(r, r->p);
    if (c <= 0 || (c >= 0xdc00 && c <= 0xdfff)) return 0;
    r->p += 4;
    if (c >= 0xd800 && c <= 0xdbff) {
        long low = r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u' ? hex4(r, r->p + 2) : -1;
        if (low < 0xdc00 || low > 0xdfff) return 0;
        r->p += 6;
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
    }
    if (c < 0x80) return out[0] = (char)c, 1;
    if (c < 0x800) {
        out[0] = (char)(0xc0 | c >> 6), out[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xe0 | c >> 12), out[1] = (char)(0x80 | (c >> 6 & 0x3f));
        out[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | c >> 18), out[1] = (char)(0x80 | (c >> 12 & 0x3f));
    out[2] = (char)(0x80 | (c >> 6 & 0x3f)), out[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* One escape at r->p (past its backslash) appended at out; its length, or 0. */
static size_t escape(struct reader *r, char *out)
{
    static const char plain[] = "\"\\/bfnrt", meant[] = "\"\\/\b\f\n\r\t";
    if (r->p >= r->end) return 0;
    char c = *r->p++;
    if (c == 'u') return unicode_escape(r, out);
    const char *at = c ? strchr(plain, c) : NULL;
    if (!at) return 0;
    *out = meant[at - plain];
    return 1;
}

/* A string at r->p (its opening quote) into r->text, NUL-terminated; false when it is
 * not one this reader takes. */
static bool read_string(struct reader *r, size_t *len)
{
    if (!take(r, '"')) return false;
    char *out = r->text;
    while (r->p < r->end && *r->p != '"') {
        const char *run = r->p;
        while (r->p < r->end && !special((unsigned char)*r->p))
            r->p++;
        memcpy(out, run, (size_t)(r->p - run));
        out += r->p - run;
        if (r->p < r->end && *r->p == '\\') {
            r->p++;
            size_t n = escape(r, out);
            if (!n) return false;
            out += n;
        } else if (r->p < r->end && *r->p != '"') {
            return false; /* a control character */
        }
    }
    if (r->p >= r->end) return false;
    r->p++;
    *out = '\0';
    *len = (size_t)(out - r->text);
    return true;
}

/* A number as strtod reads it, in the C locale (cJSON's way); short integers exactly by
 * hand. */
static cJSON *read_number(struct reader *r)
{
    const char *start = r->p;
    while (r->p < r->end && *r->p && strchr("0123456789+-.eE", *r->p))
        r->p++;
    size_t n = (size_t)(r->p - start);
    bool negative = n && *start == '-';
    size_t digits = n - negative;
    if (digits > 0 && digits <= EXACT_DIGITS && (digits == 1 || start[negative] != '0')) {
        double v = 0;
        size_t i = negative;
        for (; i < n && start[i] >= '0' && start[i] <= '9'; i++)
            v = v * 10 + (start[i] - '0');
        if (i == n) return cJSON_CreateNumber(negative ? -v : v);
    }
    char text[MAX_NUMBER_CHARS + 1], *end;
    locale_t c = json_c_locale();
    if (n == 0 || n > MAX_NUMBER_CHARS || !c) return NULL;
    memcpy(text, start, n);
    text[n] = '\0';
    double v = strtod_l(text, &end, c);
    return end == text + n ? cJSON_CreateNumber(v) : NULL;
}

static bool literal(struct reader *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n)) return false;
    r->p += n;
    return true;
}

static cJSON *read_value(struct reader *r, int depth, bool numbers);

/* The text "#" + 16 hex digits at r->p (a string's, past its quote, as written by
 * json_add_hex_item) as the double whose bits they are, read in place; false, and
 * nothing read, for any other text. */
static bool hex_number(struct reader *r, double *v)
{
    uint64_t bits = 0;
    const char *p = r->p;
    if (r->end - p < 19 || p[0] != '"' || p[1] != '#' || p[18] != '"') return false;
    for (int i = 2; i < 18; i++) {
        int d = p[i] >= 'a' ? p[i] - 'a' + 10 : p[i] - '0';
        if (d < 0 || d > 15 || (p[i] > '9' && p[i] < 'a')) return false;
        bits = bits << 4 | (uint64_t)d;
    }
    memcpy(v, &bits, sizeof *v);
    r->p += 19;
    return true;
}

/* A string, or the number its text "#" + 16 hex digits stands for when numbers. */
static cJSON *string_value(struct reader *r, bool numbers)
{
    size_t len;
    double v;
    if (numbers && hex_number(r, &v)) return cJSON_CreateNumber(v);
    if (!read_string(r, &len)) return NULL;
    if (numbers && len == 17 && json_hex_number(r->text, &v)) /* written with escapes */
        return cJSON_CreateNumber(v);
    return cJSON_CreateString(r->text); /* no NUL in it: U+0000 is left to cJSON */
}

static const char *tensor_key(const char *key)
{
    for (size_t i = 0; i < sizeof tensor_keys / sizeof tensor_keys[0]; i++)
        if (tensor_keys[i][0] == key[0] && !strcmp(key, tensor_keys[i])) return tensor_keys[i];
    return NULL;
}

/* An object; in a tensor (depth 1) the name and dtype stay strings whatever they say. */
static cJSON *read_object(struct reader *r, int depth)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !take(r, '{')) return cJSON_Delete(o), NULL;
    if (take(r, '}')) return o;
    do {
        size_t len;
        if (!read_string(r, &len) || !take(r, ':')) break;
        const char *constant = tensor_key(r->text);
        char *key = constant ? NULL : strdup(r->text);
        bool numbers = depth != 1 || (constant != tensor_keys[0] && constant != tensor_keys[1]);
        cJSON *item = (constant || key) ? read_value(r, depth + 1, numbers) : NULL;
        bool added = item && (constant ? cJSON_AddItemToObjectCS(o, constant, item)
                                       : cJSON_AddItemToObject(o, key, item));
        free(key);
        if (!added) {
            cJSON_Delete(item);
            break;
        }
        if (take(r, '}')) return o;
    } while (take(r, ','));
    cJSON_Delete(o);
    return NULL;
}

static cJSON *read_array(struct reader *r, int depth, bool numbers)
{
    cJSON *a = cJSON_CreateArray();
    if (!a || !take(r, '[')) return cJSON_Delete(a), NULL;
    if (take(r, ']')) return a;
    do {
        cJSON *item = read_value(r, depth + 1, numbers);
        if (!item || !cJSON_AddItemToArray(a, item)) {
            cJSON_Delete(item);
            break;
        }
        if (take(r, ']')) return a;
    } while (take(r, ','));
    cJSON_Delete(a);
    return NULL;
}

static cJSON *read_value(struct reader *r, int depth, bool numbers)
{
    if (depth > MAX_DEPTH) return NULL;
    skip_space(r);
    if (r->p >= r->end) return NULL;
    switch (*r->p) {
    case '{':
        return read_object(r, depth);
    case '[':
        return read_array(r, depth, numbers);
    case '"':
        return string_value(r, numbers);
    case 't':
        return literal(r, "true") ? cJSON_CreateTrue() : NULL;
    case 'f':
        return literal(r, "false") ? cJSON_CreateFalse() : NULL;
    case 'n':
        return literal(r, "null") ? cJSON_CreateNull() : NULL;
    default: /* a number starts so, as cJSON wants it */
        return *r->p == '-' || (*r->p >= '0' && *r->p <= '9') ? read_number(r) : NULL;
    }
}

/* The tensors: an array of objects, or NULL. */
static cJSON *read_tensors(struct reader *r)
{
    cJSON *a = cJSON_CreateArray();
    if (!a || !take(r, '[')) return cJSON_Delete(a), NULL;
    if (take(r, ']')) return a;
    do {
        cJSON *t = next_is(r, '{') ? read_object(r, 1) : NULL;
        if (!t || !cJSON_AddItemToArray(a, t)) {
            cJSON_Delete(t);
            break;
        }
        if (take(r, ']')) return a;
    } while (take(r, ','));
    cJSON_Delete(a);
    return NULL;
}

/* Steps over a value without building it; false when this reader would not take it. */
static bool skip_value(struct reader *r, int depth)
{
    size_t len;
    skip_space(r);
    if (depth > MAX_SKIP_DEPTH || r->p >= r->end) return false;
    char open = *r->p, close = open == '{' ? '}' : ']';
    if (open == '"') return read_string(r, &len);
    if (open != '{' && open != '[') {
        const char *start = r->p;
        while (r->p < r->end && *r->p && strchr("0123456789+-.eEtruefalsn", *r->p))
            r->p++;
        return r->p > start;
    }
    r->p++;
    if (take(r, close)) return true;
    do {
        if (open == '{' && !(read_string(r, &len) && take(r, ':'))) return false;
        if (!skip_value(r, depth + 1)) return false;
        if (take(r, close)) return true;
    } while (take(r, ','));
    return false;
}

/* The packet's top-level "tensors" array, read; [*start, *end) its text. NULL when
 * there is none, or this reader would not take it. */
static cJSON *find_tensors(struct reader *r, size_t *start, size_t *end, const char *packet)
{
    size_t len;
    if (!take(r, '{') || next_is(r, '}')) return NULL;
    do {
        if (!read_string(r, &len) || !take(r, ':')) return NULL;
        if (!strcmp(r->text, "tensors")) {
            skip_space(r);
            *start = (size_t)(r->p - packet);
            cJSON *tensors = next_is(r, '[') ? read_tensors(r) : NULL;
            *end = (size_t)(r->p - packet);
            return tensors;
        }
        if (!skip_value(r, 1)) return NULL;
    } while (take(r, ','));
    return NULL;
}

/* The packet with its tensors' text [start, end) as null, parsed by cJSON, and then the
 * tensors read put in their place. */
static cJSON *parse_around(const char *packet, size_t len, size_t start, size_t end, cJSON *tensors)
{
    size_t rest = start + 4 + (len - end);
    char *text = malloc(rest);
    cJSON *tree = NULL;
    if (text) {
        memcpy(text, packet, start);
        memcpy(text + start, "null", 4);
        memcpy(text + start + 4, packet + end, len - end);
        tree = cJSON_ParseWithLength(text, rest);
        free(text);
    }
    if (tree && cJSON_ReplaceItemInObjectCaseSensitive(tree, "tensors", tensors)) return tree;
    cJSON_Delete(tree);
    cJSON_Delete(tensors);
    return NULL;
}

/* cJSON's parse of the whole packet, its tensors' hex strings then made numbers. */
static cJSON *parse_whole(const char *packet, size_t len)
{
    cJSON *tree = cJSON_ParseWithLength(packet, len);
    cJSON *tensors = cJSON_GetObjectItemCaseSensitive(tree, "tensors"), *t;
    if (cJSON_IsArray(tensors)) cJSON_ArrayForEach(t, tensors) json_tensor_from_hex(t);
    return tree;
}

cJSON *wire_parse_packet(const char *packet, size_t len)
{
    struct reader r = {packet, packet + len, malloc(len + 1)};
    size_t start = 0, end = 0;
    cJSON *tensors = r.text ? find_tensors(&r, &start, &end, packet) : NULL;
    free(r.text);
    cJSON *tree = tensors ? parse_around(packet, len, start, end, tensors) : NULL;
    return tree ? tree : parse_whole(packet, len);
}
