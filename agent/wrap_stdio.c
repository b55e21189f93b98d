/* wrap_stdio.c — writes through stdio streams.
 *
 * glibc flushes a stream's buffer with internal calls that no write() wrapper sees, so
 * stream bytes are observed where the program hands them to stdio, in call order, which
 * is file order. Formatted output to a tracked stream is formatted here once and handed
 * to the real fwrite, so the bytes the parser sees are exactly those written.
 */
#include <stdlib.h>
#include <string.h>

#include "real.h"
#include "tracked.h"

/* With optimisation glibc's headers turn these into inline macros; the wrappers define
 * the real symbols, which uninlined calls (and other libraries) reach. */
#undef fwrite_unlocked
#undef fputc_unlocked
#undef putc_unlocked
#undef putc

#define FWRITE_WRAPPER(name)                                                                       \
    EXPORT size_t name(const void *ptr, size_t size, size_t nmemb, FILE *stream)                   \
    {                                                                                              \
        struct tracked *t = tracked_enter_stream_write(stream, ptr, size * nmemb);                 \
        if (!t) return REAL(name)(ptr, size, nmemb, stream);                                       \
        size_t items = REAL(name)(ptr, size, nmemb, stream);                                       \
        tracked_wrote(t, AT_POSITION, ptr, (ssize_t)(items * size));                               \
        return items;                                                                              \
    }

#define FPUTS_WRAPPER(name)                                                                        \
    EXPORT int name(const char *s, FILE *stream)                                                   \
    {                                                                                              \
        struct tracked *t = tracked_enter_stream(stream);                                          \
        if (!t) return REAL(name)(s, stream);                                                      \
        int r = REAL(name)(s, stream);                                                             \
        tracked_wrote(t, AT_POSITION, s, r == EOF ? 0 : (ssize_t)strlen(s));                       \
        return r;                                                                                  \
    }

#define FPUTC_WRAPPER(name)                                                                        \
    EXPORT int name(int c, FILE *stream)                                                           \
    {                                                                                              \
        struct tracked *t = tracked_enter_stream(stream);                                          \
        if (!t) return REAL(name)(c, stream);                                                      \
        int r = REAL(name)(c, stream);                                                             \
        unsigned char byte = (unsigned char)c;                                                     \
        tracked_wrote(t, AT_POSITION, &byte, r == EOF ? 0 : 1);                                    \
        return r;                                                                                  \
    }

FWRITE_WRAPPER(fwrite)
FWRITE_WRAPPER(fwrite_unlocked)
FPUTS_WRAPPER(fputs)
FPUTS_WRAPPER(fputs_unlocked)
FPUTC_WRAPPER(fputc)
FPUTC_WRAPPER(fputc_unlocked)
FPUTC_WRAPPER(putc)
FPUTC_WRAPPER(putc_unlocked)

/* Formats into memory: a stack buffer for the usual short line, the heap beyond it.
 * Returns the length (or -1), with *out pointing at small or at a buffer to free. */
static int format(char *small, size_t small_size, char **out, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int len = vsnprintf(small, small_size, fmt, ap);
    *out = small;
    if (len >= 0 && (size_t)len >= small_size) {
        *out = malloc((size_t)len + 1);
        if (*out)
            vsnprintf(*out, (size_t)len + 1, fmt, again);
        else
            len = -1;
    }
    va_end(again);
    return len;
}

/* The tracked-stream path of every fprintf flavour. */
static int print_tracked(struct tracked *t, FILE *stream, const char *fmt, va_list ap)
{
    char small[1024], *text;
    int len = format(small, sizeof small, &text, fmt, ap);
    if (len < 0) {
        tracked_leave(t);
        return -1;
    }
    size_t written = REAL(fwrite)(text, 1, (size_t)len, stream);
    tracked_wrote(t, AT_POSITION, text, (ssize_t)written);
    if (text != small) free(text);
    return written == (size_t)len ? len : -1;
}

EXPORT int vfprintf(FILE *stream, const char *fmt, va_list ap)
{
    struct tracked *t = tracked_enter_stream(stream);
    if (!t) return REAL(vfprintf)(stream, fmt, ap);
    return print_tracked(t, stream, fmt, ap);
}

EXPORT int fprintf(FILE *stream, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(stream, fmt, ap);
    va_end(ap);
    return r;
}

EXPORT int __vfprintf_chk(FILE *stream, int flag, const char *fmt, va_list ap)
{
    struct tracked *t = tracked_enter_stream(stream);
    if (!t) return REAL(__vfprintf_chk)(stream, flag, fmt, ap);
    return print_tracked(t, stream, fmt, ap);
}

EXPORT int __fprintf_chk(FILE *stream, int flag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = __vfprintf_chk(stream, flag, fmt, ap);
    va_end(ap);
    return r;
}

/* dprintf writes to a descriptor through glibc internals, unseen by write(). */
EXPORT int vdprintf(int fd, const char *fmt, va_list ap)
{
    struct tracked *t = tracked_enter(fd);
    if (!t) return REAL(vdprintf)(fd, fmt, ap);
    char small[1024], *text;
    int len = format(small, sizeof small, &text, fmt, ap);
    ssize_t written = len < 0 ? -1 : REAL(write)(fd, text, (size_t)len);
    tracked_wrote(t, AT_POSITION, text, written);
    if (text != small) free(text);
    return written == len ? len : -1;
}

EXPORT int dprintf(int fd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vdprintf(fd, fmt, ap);
    va_end(ap);
    return r;
}

/* Seeking a stream moves where its next bytes land; ftello says where that is. */
#define FSEEK_WRAPPER(name, offset_type)                                                           \
    EXPORT int name(FILE *stream, offset_type offset, int whence)                                  \
    {                                                                                              \
        struct tracked *t = tracked_enter_stream(stream);                                          \
        if (!t) return REAL(name)(stream, offset, whence);                                         \
        int r = REAL(name)(stream, offset, whence);                                                \
        tracked_moved(t, r == 0 ? (long long)ftello(stream) : -1);                                 \
        return r;                                                                                  \
    }

#define FSETPOS_WRAPPER(name, pos_type)                                                            \
    EXPORT int name(FILE *stream, const pos_type *pos)                                             \
    {                                                                                              \
        struct tracked *t = tracked_enter_stream(stream);                                          \
        if (!t) return REAL(name)(stream, pos);                                                    \
        int r = REAL(name)(stream, pos);                                                           \
        tracked_moved(t, r == 0 ? (long long)ftello(stream) : -1);                                 \
        return r;                                                                                  \
    }

FSEEK_WRAPPER(fseek, long)
FSEEK_WRAPPER(fseeko, off_t)
FSEEK_WRAPPER(fseeko64, off64_t)
FSETPOS_WRAPPER(fsetpos, fpos_t)
FSETPOS_WRAPPER(fsetpos64, fpos64_t)

EXPORT void rewind(FILE *stream)
{
    struct tracked *t = tracked_enter_stream(stream);
    REAL(rewind)(stream);
    if (t) tracked_moved(t, 0);
}

/* fflush(NULL) flushes every stream: nothing to say about one file. */
EXPORT int fflush(FILE *stream)
{
    int r = REAL(fflush)(stream);
    struct tracked *t = tracked_enter_stream(stream);
    if (t) tracked_synced(t);
    return r;
}

/* fclose closes the descriptor inside glibc, where no close() wrapper sees it. */
EXPORT int fclose(FILE *stream)
{
    struct closing c;
    bool tracked = tracked_close_begin_stream(stream, &c);
    int r = REAL(fclose)(stream);
    if (tracked) tracked_close_end(&c, true);
    return r;
}
