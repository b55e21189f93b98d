/* strbuf.h — a growing string with a ceiling.
 *
 * Names, descriptions and printed JSON are built piece by piece; a hostile checkpoint
 * could make any of them huge, so a buffer refuses to grow past its limit and says so
 * (overflow) instead of failing later. Out of memory counts as overflow too: the caller
 * checks once at the end rather than after every append.
 */
#ifndef CKMON_STRBUF_H
#define CKMON_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
    char *s; /* NUL-terminated once anything was added; owned, free() it */
    size_t len, alloc, limit;
    bool overflow;
};

/* Appends n bytes at the end; growing is sb_grow_add's. Inline: printing a record or a
 * message appends a few bytes at a time, dozens of times per tensor. */
void sb_grow_add(struct strbuf *b, const char *s, size_t n);
static inline void sb_add(struct strbuf *b, const char *s, size_t n)
{
    if (b->overflow || b->len + n >= b->alloc || n > b->limit - b->len) return sb_grow_add(b, s, n);
    __builtin_memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}
/* Inline too: most strings added are literals, whose length is then known when compiled. */
static inline void sb_addz(struct strbuf *b, const char *s)
{
    sb_add(b, s, __builtin_strlen(s));
}
/* Room for n more bytes at once, for text whose size is known roughly beforehand (a
 * message's tensors): one allocation instead of a doubling every few hundred bytes.
 * Nothing when it cannot be had; the adds then grow, or say so, as ever. */
void sb_reserve(struct strbuf *b, size_t n);
void sb_addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Back to an earlier length (and out of overflow, which only concerned what followed). */
void sb_truncate(struct strbuf *b, size_t len);

#endif
