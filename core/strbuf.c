/* strbuf.c — a growing string with a ceiling (see strbuf.h). */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for n more bytes and a NUL, doubling from 128; false when out of memory. */
static bool grow(struct strbuf *b, size_t n)
{
    if (b->len + n + 1 <= b->alloc) return true;
    size_t alloc = b->alloc ? b->alloc : 128;
    while (alloc < b->len + n + 1)
        alloc *= 2;
    char *grown = realloc(b->s, alloc);
    if (!grown) return false;
    b->s = grown;
    b->alloc = alloc;
    return true;
}

void sb_grow_add(struct strbuf *b, const char *s, size_t n)
{
    if (b->overflow) return;
    if (n > b->limit - b->len || !grow(b, n)) {
        b->overflow = true;
        return;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void sb_reserve(struct strbuf *b, size_t n)
{
    if (!b->overflow && n <= b->limit - b->len) grow(b, n);
}

void sb_addf(struct strbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) sb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

void sb_truncate(struct strbuf *b, size_t len)
{
    b->len = len;
    b->overflow = false;
    if (b->s) b->s[len] = '\0';
}
