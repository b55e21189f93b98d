/* jsonread.c — JSON text read in place, value by value (see jsonread.h). */
#include "jsonread.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"

#define MAX_NUMBER_CHARS 64
#define EXACT_DIGITS     15 /* fewer than 2^53: summed digit by digit, exactly */

bool json_read_init(struct json_reader *r, const char *text, size_t len)
{
    *r = (struct json_reader){text, text + len, NULL, len + 1};
    return true;
}

void json_read_free(struct json_reader *r)
{
    free(r->text);
    r->text = NULL;
}

/* Bytes a string's text cannot simply be copied past: its end, an escape, a control. */
static bool special(unsigned char c)
{
    return c == '"' || c == '\\' || c < 0x20;
}

static void skip_space(struct json_reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

char json_read_peek(struct json_reader *r)
{
    skip_space(r);
    return r->p < r->end ? *r->p : '\0';
}

bool json_read_next_is(struct json_reader *r, char c)
{
    skip_space(r);
    return r->p < r->end && *r->p == c;
}

bool json_read_take(struct json_reader *r, char c)
{
    if (!json_read_next_is(r, c)) return false;
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
static long hex4(const struct json_reader *r, const char *p)
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
static size_t unicode_escape(struct json_reader *r, char *out)
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
static size_t escape(struct json_reader *r, char *out)
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

bool json_read_string(struct json_reader *r, size_t *len)
{
    if (!json_read_take(r, '"') || (!r->text && !(r->text = malloc(r->room)))) return false;
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

/* What a number's text may hold, as cJSON takes it before strtod reads it. */
static bool number_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* Short integers are summed by hand, exactly, as their digits are stepped over (one
 * pass: a data message has four of them); the others go to strtod. */
bool json_read_number(struct json_reader *r, double *v)
{
    skip_space(r);
    if (r->p >= r->end || !(*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))) return false;
    const char *start = r->p;
    bool negative = *start == '-';
    double sum = 0;
    for (r->p += negative; r->p < r->end && *r->p >= '0' && *r->p <= '9'; r->p++)
        sum = sum * 10 + (*r->p - '0');
    size_t digits = (size_t)(r->p - start) - negative;
    bool integer = r->p == r->end || !number_char(*r->p);
    if (integer && digits > 0 && digits <= EXACT_DIGITS && (digits == 1 || start[negative] != '0'))
        return *v = negative ? -sum : sum, true;
    while (r->p < r->end && number_char(*r->p))
        r->p++;
    size_t n = (size_t)(r->p - start);
    char text[MAX_NUMBER_CHARS + 1], *end;
    locale_t c = json_c_locale();
    if (n > MAX_NUMBER_CHARS || !c) return false;
    memcpy(text, start, n);
    text[n] = '\0';
    *v = strtod_l(text, &end, c);
    return end == text + n;
}

bool json_read_literal(struct json_reader *r, const char *word)
{
    size_t n = strlen(word);
    skip_space(r);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n)) return false;
    r->p += n;
    return true;
}

bool json_read_skip(struct json_reader *r, int depth)
{
    size_t len;
    double v;
    skip_space(r);
    if (depth < 0 || r->p >= r->end) return false;
    char open = *r->p, close = open == '{' ? '}' : ']';
    if (open == '"') return json_read_string(r, &len);
    if (open != '{' && open != '[')
        return json_read_number(r, &v) || json_read_literal(r, "true") ||
               json_read_literal(r, "false") || json_read_literal(r, "null");
    r->p++;
    if (json_read_take(r, close)) return true;
    do {
        if (open == '{' && !(json_read_string(r, &len) && json_read_take(r, ':'))) return false;
        if (!json_read_skip(r, depth - 1)) return false;
        if (json_read_take(r, close)) return true;
    } while (json_read_take(r, ','));
    return false;
}
