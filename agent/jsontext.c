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

/* The fewest digits that read back as v, found by bisection (more digits are never
 * further from v, so the property is monotonic but for binade edges, where the answer
 * may be a digit longer than the shortest, and still exact). Four or five conversions
 * instead of up to 17: a tensor's statistics are mostly 9- and 17-digit numbers, and
 * printing them was a visible part of a small checkpoint's cost. */
int json_shortest_double(double v, char *out, size_t size)
{
    int lo = 1, hi = 17; /* 17 digits always read back */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (round_trips(v, mid, out, size))
            hi = mid;
        else
            lo = mid + 1;
    }
    return snprintf(out, size, "%.*g", hi, v);
}

static void add_number(struct strbuf *t, double v)
{
    char buf[40];
    if (!isfinite(v)) return sb_addz(t, "null");
    if (v == 0) return sb_addz(t, signbit(v) ? "-0.0" : "0");
    if (v == floor(v) && fabs(v) < EXACT_INTEGER_LIMIT)
        snprintf(buf, sizeof buf, "%.0f", v);
    else
        json_shortest_double(v, buf, sizeof buf);
    sb_addz(t, buf);
}

static void add_string(struct strbuf *t, const char *s)
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

static void add_item(struct strbuf *t, const cJSON *item)
{
    switch (item->type & 0xff) {
    case cJSON_False:
        return sb_addz(t, "false");
    case cJSON_True:
        return sb_addz(t, "true");
    case cJSON_NULL:
        return sb_addz(t, "null");
    case cJSON_Number:
        return add_number(t, item->valuedouble);
    case cJSON_String:
        return add_string(t, item->valuestring ? item->valuestring : "");
    case cJSON_Raw:
        return sb_addz(t, item->valuestring ? item->valuestring : "null");
    case cJSON_Array:
    case cJSON_Object: {
        bool object = (item->type & 0xff) == cJSON_Object;
        sb_add(t, object ? "{" : "[", 1);
        for (const cJSON *c = item->child; c; c = c->next) {
            if (c != item->child) sb_add(t, ",", 1);
            if (object) {
                add_string(t, c->string ? c->string : "");
                sb_add(t, ":", 1);
            }
            add_item(t, c);
        }
        sb_add(t, object ? "}" : "]", 1);
        return;
    }
    default:
        return sb_addz(t, "null");
    }
}

char *json_print(const cJSON *item)
{
    struct strbuf t = {.limit = JSON_TEXT_LIMIT};
    locale_t c = pyobj_c_locale();
    locale_t previous = c ? uselocale(c) : (locale_t)0;
    add_item(&t, item);
    if (c) uselocale(previous);
    if (t.overflow || !t.s) {
        free(t.s);
        return NULL;
    }
    return t.s;
}
