/* jsontext.c — cJSON trees as text, with every number exact (see jsontext.h). */
#include "jsontext.h"

#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parsers/pyobj.h"
#include "strbuf.h"

#define EXACT_INTEGER_LIMIT 9007199254740992.0 /* 2^53: every integer below is a double */
#define JSON_TEXT_LIMIT     ((size_t)1 << 30)  /* far above any message or record */

/* Whether v printed with this many significant digits reads back as v. */
static bool round_trips(double v, int precision, char *out, size_t size)
{
    snprintf(out, size, "%.*g", precision, v);
    return strtod(out, NULL) == v;
}

/* The fewest digits that read back as v (more digits are never further from v, so the
 * property is monotonic but for binade edges, where the answer may be a digit longer
 * than the shortest, and still exact). Statistics of float data are mostly 16- and
 * 17-digit numbers, so 16 and 15 are tried first: two or three conversions for those;
 * a number that 15 digits already give is then bisected (values like 0.001). */
int json_shortest_double(double v, char *out, size_t size)
{
    int lo = 1, hi = 17; /* 17 digits always read back */
    if (!round_trips(v, 16, out, size))
        lo = 17;
    else if (!round_trips(v, 15, out, size))
        lo = hi = 16;
    else
        hi = 15;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (round_trips(v, mid, out, size))
            hi = mid;
        else
            lo = mid + 1;
    }
    return snprintf(out, size, "%.*g", hi, v);
}

/* How numbers are printed: the shortest exact digits for what people read, or 17
 * digits (exact, one conversion) for messages the collector reads back. */
enum digits { SHORTEST, SEVENTEEN };

static void add_number(struct strbuf *t, double v, enum digits digits)
{
    char buf[40];
    if (!isfinite(v)) return sb_addz(t, "null");
    if (v == 0) return sb_addz(t, signbit(v) ? "-0.0" : "0");
    if (v == floor(v) && fabs(v) < EXACT_INTEGER_LIMIT)
        snprintf(buf, sizeof buf, "%lld", (long long)v); /* %.0f: the slow float path */
    else if (digits == SEVENTEEN)
        snprintf(buf, sizeof buf, "%.17g", v);
    else
        json_shortest_double(v, buf, sizeof buf);
    sb_addz(t, buf);
}

void json_add_string(struct strbuf *t, const char *s)
{
    sb_add(t, "\"", 1);
    const char *run = s;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *escape = NULL;
        char hex[8];
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
    sb_addz(t, run);
    sb_add(t, "\"", 1);
}

static void add_item(struct strbuf *t, const cJSON *item, enum digits digits)
{
    switch (item->type & 0xff) {
    case cJSON_False:
        return sb_addz(t, "false");
    case cJSON_True:
        return sb_addz(t, "true");
    case cJSON_NULL:
        return sb_addz(t, "null");
    case cJSON_Number:
        return add_number(t, item->valuedouble, digits);
    case cJSON_String:
        return json_add_string(t, item->valuestring ? item->valuestring : "");
    case cJSON_Raw:
        return sb_addz(t, item->valuestring ? item->valuestring : "null");
    case cJSON_Array:
    case cJSON_Object: {
        bool object = (item->type & 0xff) == cJSON_Object;
        sb_add(t, object ? "{" : "[", 1);
        for (const cJSON *c = item->child; c; c = c->next) {
            if (c != item->child) sb_add(t, ",", 1);
            if (object) {
                json_add_string(t, c->string ? c->string : "");
                sb_add(t, ":", 1);
            }
            add_item(t, c, digits);
        }
        sb_add(t, object ? "}" : "]", 1);
        return;
    }
    default:
        return sb_addz(t, "null");
    }
}

locale_t json_c_locale_enter(void)
{
    locale_t c = pyobj_c_locale();
    return c ? uselocale(c) : (locale_t)0;
}

void json_c_locale_leave(locale_t previous)
{
    if (previous) uselocale(previous);
}

void json_add_wire_number(struct strbuf *t, double v)
{
    add_number(t, v, SEVENTEEN);
}

void json_add_wire_item(struct strbuf *t, const cJSON *item)
{
    add_item(t, item, SEVENTEEN);
}

static char *print(const cJSON *item, enum digits digits)
{
    struct strbuf t = {.limit = JSON_TEXT_LIMIT};
    locale_t previous = json_c_locale_enter();
    add_item(&t, item, digits);
    json_c_locale_leave(previous);
    if (t.overflow || !t.s) {
        free(t.s);
        return NULL;
    }
    return t.s;
}

char *json_print(const cJSON *item)
{
    return print(item, SHORTEST);
}

char *json_print_wire(const cJSON *item)
{
    return print(item, SEVENTEEN);
}

/* Longest texts: a number ("-1.2345678901234567e-308"), and a string byte (\u00XX). */
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
