/* jsontext.c — cJSON trees as text, with every number exact (see jsontext.h). */
#include "jsontext.h"

#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtoa.h"
#include "strbuf.h"

#define EXACT_INTEGER_LIMIT 9007199254740992.0 /* 2^53: every integer below is a double */
#define JSON_TEXT_LIMIT     ((size_t)1 << 30)  /* far above any message or record */

/* The shortest digits (dtoa.c): no printf, no strtod. */
int json_shortest_double(double v, char *out, size_t size)
{
    char text[DTOA_TEXT_MAX];
    int len = dtoa_shortest(v, text);
    snprintf(out, size, "%s", text);
    return len;
}

static int hex_digit(unsigned char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* What is printed for whom: the agent's messages (17 digits: exact in one conversion;
 * strings as they are, the collector reads them back), the same with the bits of each
 * non-integer in hex (HEX: tensors' statistics), a record of raw names (the shortest
 * exact digits, dtoa.h; bytes that are not UTF-8 escaped, losslessly), or text read back
 * from a record (its escapes stay as they are; stray bytes are escaped). */
enum mode { WIRE, HEX, NAMES, TEXT };

/* An integer's digits, without printf (%lld parses its format each time). */
static int integer_text(long long v, char *out)
{
    char digits[24];
    int n = 0, len = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do
        digits[n++] = (char)('0' + u % 10);
    while ((u /= 10) > 0);
    if (v < 0) out[len++] = '-';
    while (n > 0)
        out[len++] = digits[--n];
    out[len] = '\0';
    return len;
}

/* "#" and the 16 hex digits of v's bits: exact, and read back without strtod. */
static int hex_text(double v, char *out)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    out[0] = '"';
    out[1] = '#';
    /* Eight digits at a time, without a loop per digit (a tensor's findings are a dozen
     * of these): the nibbles of 32 bits spread one per byte, most significant first,
     * then each byte made '0'+n, or 'a'+n-10 where n+6 carries into bit 4. */
    for (int half = 0; half < 2; half++) {
        uint64_t x = (uint32_t)(bits >> (32 - 32 * half));
        x = (x | x << 16) & 0x0000ffff0000ffffu;
        x = (x | x << 8) & 0x00ff00ff00ff00ffu;
        x = (x | x << 4) & 0x0f0f0f0f0f0f0f0fu;
        x = __builtin_bswap64(x);
        uint64_t letters = ((x + 0x0606060606060606u) >> 4) & 0x0101010101010101u;
        x += 0x3030303030303030u + letters * ('a' - '0' - 10);
        memcpy(out + 2 + 8 * half, &x, sizeof x);
    }
    out[18] = '"';
    out[19] = '\0';
    return 19;
}

static void add_number(struct strbuf *t, double v, enum mode mode)
{
    char buf[40];
    int len;
    if (!isfinite(v)) return sb_addz(t, "null");
    if (v == 0) return sb_addz(t, signbit(v) ? "-0.0" : "0");
    if (v == floor(v) && fabs(v) < EXACT_INTEGER_LIMIT)
        len = integer_text((long long)v, buf); /* %.0f: the slow float path */
    else if (mode == HEX)
        len = hex_text(v, buf);
    else if (mode == WIRE)
        len = snprintf(buf, sizeof buf, "%.17g", v);
    else
        len = dtoa_shortest(v, buf);
    sb_add(t, buf, (size_t)len);
}

bool json_hex_number(const char *s, double *v)
{
    uint64_t bits = 0;
    if (!s || s[0] != '#') return false;
    for (int i = 1; i <= 16; i++) {
        int d = hex_digit((unsigned char)s[i]);
        if (d < 0) return false;
        bits = bits << 4 | (uint64_t)d;
    }
    if (s[17] != '\0') return false;
    memcpy(v, &bits, sizeof *v);
    return true;
}

/* The length of the valid UTF-8 sequence (RFC 3629: no overlong form, no surrogate,
 * nothing above U+10FFFF) that starts at p, a byte of 0x80 or more; 0 when there is
 * none. Reads no further than the first byte that breaks it, so never past the NUL. */
static size_t utf8_sequence(const unsigned char *p)
{
    size_t n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
    if (*p < 0xc2 || *p > 0xf4) return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if ((*p == 0xe0 && p[1] < 0xa0) || (*p == 0xf0 && p[1] < 0x90)) return 0; /* overlong */
    if ((*p == 0xed && p[1] >= 0xa0) || (*p == 0xf4 && p[1] >= 0x90)) return 0;
    return n;
}

/* Whether p starts the text \xHH of a byte that names escape (jsontext.h), set in *byte. */
static bool escaped_byte(const char *p, unsigned char *byte)
{
    int hi = p[0] == '\\' && p[1] == 'x' ? hex_digit((unsigned char)p[2]) : -1;
    int lo = hi >= 0 ? hex_digit((unsigned char)p[3]) : -1;
    if (lo < 0) return false;
    *byte = (unsigned char)(hi << 4 | lo);
    return *byte < 0x20 || *byte == '\\' || *byte >= 0x80;
}

/* Whether a string's byte may need more than copying: controls, '"', '\\' and the
 * bytes of multibyte sequences. Names are mostly plain ASCII, and a tensor's name is
 * printed in every message and record that holds it. */
static bool needs_look(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}

static void add_string(struct strbuf *t, const char *s, enum mode mode)
{
    sb_add(t, "\"", 1);
    const char *run = s; /* what is still to be copied as it is */
    const unsigned char *p = (const unsigned char *)s;
    for (; *p; p++) {
        if (!needs_look(*p)) continue;
        const char *escape = NULL;
        char hex[8];
        unsigned char byte;
        size_t sequence;
        if (mode != WIRE && p[0] == 0xc0 && p[1] == 0x80) { /* U+0000 (jsontext.h) */
            if (mode == HEX) {                              /* raw on the wire, as in WIRE */
                p++;
                continue;
            }
            sb_add(t, run, (size_t)((const char *)p - run));
            sb_addz(t, "\\u0000");
            run = (const char *)++p + 1;
            continue;
        }
        if (mode != WIRE && *p >= 0x80 && (sequence = utf8_sequence(p)) > 0) {
            p += sequence - 1; /* whole, as it is */
            continue;
        }
        if (mode != WIRE && *p >= 0x80) { /* not UTF-8: the text \xHH */
            snprintf(hex, sizeof hex, "\\\\x%02x", *p);
            escape = hex;
        } else if (mode == NAMES && escaped_byte((const char *)p, &byte)) {
            escape = "\\\\x5c"; /* a backslash that would read as such an escape */
        } else
            switch (*p) {
            case '"':
                escape = "\\\"";
                break;
            case '\\':
                escape = "\\\\";
                break;
            case '\b':
                escape = "\\b";
                break;
            case '\f':
                escape = "\\f";
                break;
            case '\n':
                escape = "\\n";
                break;
            case '\r':
                escape = "\\r";
                break;
            case '\t':
                escape = "\\t";
                break;
            default:
                if (*p < 0x20) {
                    snprintf(hex, sizeof hex, "\\u%04x", *p);
                    escape = hex;
                }
            }
        if (!escape) continue;
        sb_add(t, run, (size_t)((const char *)p - run));
        sb_addz(t, escape);
        run = (const char *)p + 1;
    }
    sb_add(t, run, (size_t)((const char *)p - run));
    sb_add(t, "\"", 1);
}

static void add_item(struct strbuf *t, const cJSON *item, enum mode mode,
                     const struct json_piece *piece)
{
    if (piece && item == piece->array) {
        sb_add(t, "[", 1);
        sb_add(t, piece->items, piece->len);
        return sb_add(t, "]", 1);
    }
    switch (item->type & 0xff) {
    case cJSON_False:
        return sb_addz(t, "false");
    case cJSON_True:
        return sb_addz(t, "true");
    case cJSON_NULL:
        return sb_addz(t, "null");
    case cJSON_Number:
        return add_number(t, item->valuedouble, mode);
    case cJSON_String:
        return add_string(t, item->valuestring ? item->valuestring : "", mode);
    case cJSON_Raw:
        return sb_addz(t, item->valuestring ? item->valuestring : "null");
    case cJSON_Array:
    case cJSON_Object: {
        bool object = (item->type & 0xff) == cJSON_Object;
        sb_add(t, object ? "{" : "[", 1);
        for (const cJSON *c = item->child; c; c = c->next) {
            if (c != item->child) sb_add(t, ",", 1);
            if (object) {
                add_string(t, c->string ? c->string : "", mode);
                sb_add(t, ":", 1);
            }
            add_item(t, c, mode, piece);
        }
        sb_add(t, object ? "}" : "]", 1);
        return;
    }
    default:
        return sb_addz(t, "null");
    }
}

locale_t json_c_locale(void)
{
    static locale_t cached;
    locale_t loc = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
    if (!loc) {
        loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        __atomic_store_n(&cached, loc, __ATOMIC_RELEASE);
    }
    return loc;
}

locale_t json_c_locale_enter(void)
{
    locale_t c = json_c_locale();
    return c ? uselocale(c) : (locale_t)0;
}

void json_c_locale_leave(locale_t previous)
{
    if (previous) uselocale(previous);
}

void json_add_string(struct strbuf *t, const char *s)
{
    add_string(t, s, WIRE);
}

void json_add_name(struct strbuf *t, const char *s)
{
    add_string(t, s, NAMES);
}

void json_add_int(struct strbuf *t, long long v)
{
    char buf[24];
    sb_add(t, buf, (size_t)integer_text(v, buf));
}

void json_add_wire_number(struct strbuf *t, double v)
{
    add_number(t, v, WIRE);
}

void json_add_number(struct strbuf *t, double v)
{
    add_number(t, v, NAMES);
}

void json_add_item(struct strbuf *t, const cJSON *item)
{
    add_item(t, item, NAMES, NULL);
}

void json_add_wire_item(struct strbuf *t, const cJSON *item)
{
    add_item(t, item, WIRE, NULL);
}

void json_add_hex_item(struct strbuf *t, const cJSON *item)
{
    add_item(t, item, HEX, NULL);
}

void json_add_hex_number(struct strbuf *t, double v)
{
    char buf[24];
    if (!isfinite(v)) return sb_add(t, "null", 4);
    sb_add(t, buf, (size_t)hex_text(v, buf));
}

/* The members of container but, in a tensor, its name and dtype. */
static void numbers_from_hex(cJSON *container, bool tensor)
{
    for (cJSON *c = container->child; c; c = c->next) {
        double v;
        if (cJSON_IsObject(c) || cJSON_IsArray(c))
            numbers_from_hex(c, false);
        else if (cJSON_IsString(c) && json_hex_number(c->valuestring, &v) &&
                 !(tensor && c->string &&
                   (!strcmp(c->string, "name") || !strcmp(c->string, "dtype")))) {
            cJSON_free(c->valuestring);
            c->valuestring = NULL;
            c->type = (c->type & ~0xff) | cJSON_Number;
            cJSON_SetNumberHelper(c, v);
        }
    }
}

void json_tensor_from_hex(cJSON *tensor)
{
    if (cJSON_IsObject(tensor)) numbers_from_hex(tensor, true);
}

static bool print_into(struct strbuf *t, const cJSON *item, enum mode mode,
                       const struct json_piece *piece)
{
    locale_t previous = json_c_locale_enter();
    add_item(t, item, mode, piece);
    json_c_locale_leave(previous);
    return !t->overflow && t->s;
}

static char *print(const cJSON *item, enum mode mode, const struct json_piece *piece)
{
    struct strbuf t = {.limit = JSON_TEXT_LIMIT};
    if (print_into(&t, item, mode, piece)) return t.s;
    free(t.s);
    return NULL;
}

char *json_print(const cJSON *item)
{
    return print(item, NAMES, NULL);
}

char *json_print_piece(const cJSON *item, const struct json_piece *piece)
{
    return print(item, NAMES, piece);
}

bool json_print_line(struct strbuf *line, const cJSON *item, const struct json_piece *piece)
{
    line->limit = JSON_TEXT_LIMIT;
    sb_truncate(line, 0);
    if (!print_into(line, item, NAMES, piece)) return false;
    sb_add(line, "\n", 1);
    return !line->overflow;
}

char *json_print_text(const cJSON *item)
{
    return print(item, TEXT, NULL);
}

char *json_print_wire(const cJSON *item)
{
    return print(item, WIRE, NULL);
}

cJSON *json_parse_record_line(const char *line, size_t len)
{
    if (!memmem(line, len, "\\u0000", 6)) return cJSON_ParseWithLength(line, len);
    char *text = malloc(len), *o = text;
    if (!text) return NULL;
    for (size_t i = 0; i < len;) {
        if (line[i] != '\\' || i + 1 == len) { /* a backslash starts a pair in a string */
            *o++ = line[i++];
        } else if (len - i >= 6 && !memcmp(line + i, "\\u0000", 6)) {
            memcpy(o, "\\\\x00", 5);
            o += 5;
            i += 6;
        } else {
            *o++ = line[i++];
            *o++ = line[i++];
        }
    }
    cJSON *parsed = cJSON_ParseWithLength(text, (size_t)(o - text));
    free(text);
    return parsed;
}

/* Longest texts: a number ("-1.2345678901234567e-308"), and a string byte (\u00XX, or
 * \\xHH). */
#define NUMBER_TEXT_MAX 24
#define STRING_BYTE_MAX 6

static size_t string_bound(const char *s)
{
    return 2 + (s ? strlen(s) : 0) * STRING_BYTE_MAX;
}

static size_t value_bound(const cJSON *item)
{
    switch (item->type & 0xff) {
    case cJSON_Number:
        return NUMBER_TEXT_MAX;
    case cJSON_String:
        return string_bound(item->valuestring);
    case cJSON_Raw:
        return item->valuestring ? strlen(item->valuestring) : sizeof "null" - 1;
    case cJSON_Array:
    case cJSON_Object: {
        bool object = (item->type & 0xff) == cJSON_Object;
        size_t n = 2;
        for (const cJSON *c = item->child; c; c = c->next)
            n += 1 + json_text_bound(c) + (object && !c->string ? sizeof "\"\":" - 1 : 0);
        return n;
    }
    default:
        return sizeof "false" - 1;
    }
}

size_t json_text_bound(const cJSON *item)
{
    return value_bound(item) + (item->string ? string_bound(item->string) + 1 : 0);
}
