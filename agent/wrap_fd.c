/* wrap_fd.c — calls that copy, move, resize or close descriptors.
 *
 * dup-style calls give a second descriptor the same tracked file; closing calls report
 * a file when its last descriptor goes. The agent's own socket may be among the
 * descriptors a program closes or replaces: the channel lets go of it first.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>

#include "channel.h"
#include "real.h"
#include "tracked.h"

EXPORT int dup(int oldfd)
{
    int fd = REAL(dup)(oldfd);
    if (fd >= 0) tracked_duplicated(oldfd, fd);
    return fd;
}

/* dup2/dup3 close newfd first when it is open, silently. */
#define DUP2_BODY(call)                                                                            \
    if (oldfd == newfd) return call;                                                               \
    channel_yield_fds((unsigned)newfd, (unsigned)newfd);                                           \
    struct closing replaced;                                                                       \
    bool closing = tracked_close_begin(newfd, &replaced);                                          \
    int fd = call;                                                                                 \
    if (closing) tracked_close_end(&replaced, fd >= 0);                                            \
    if (fd >= 0) tracked_duplicated(oldfd, fd);                                                    \
    return fd;

EXPORT int dup2(int oldfd, int newfd){DUP2_BODY(REAL(dup2)(oldfd, newfd))}

EXPORT int dup3(int oldfd, int newfd, int flags){DUP2_BODY(REAL(dup3)(oldfd, newfd, flags))}

/* fcntl's third argument is an int or a pointer depending on cmd; passing it on as a
 * pointer-sized value is what glibc itself does. */
#define FCNTL_WRAPPER(name)                                                                        \
    EXPORT int name(int fd, int cmd, ...)                                                          \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, cmd);                                                                         \
        void *arg = va_arg(ap, void *);                                                            \
        va_end(ap);                                                                                \
        int r = REAL(name)(fd, cmd, arg);                                                          \
        if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) tracked_duplicated(fd, r);       \
        return r;                                                                                  \
    }

FCNTL_WRAPPER(fcntl) FCNTL_WRAPPER(fcntl64)

    EXPORT int close(int fd)
{
    channel_yield_fds((unsigned)fd, (unsigned)fd);
    struct closing c;
    if (!tracked_close_begin(fd, &c)) return REAL(close)(fd);
    int r = REAL(close)(fd);
    /* Linux releases the descriptor even when close reports an error, except EBADF. */
    tracked_close_end(&c, r == 0 || errno != EBADF);
    return r;
}

EXPORT int close_range(unsigned first, unsigned last, int flags)
{
    if (flags & CLOSE_RANGE_CLOEXEC) return REAL(close_range)(first, last, flags);
    channel_yield_fds(first, last);
    struct closing *cs;
    size_t n = tracked_close_range_begin(first, last, &cs);
    int r = REAL(close_range)(first, last, flags);
    tracked_close_range_end(cs, n, r == 0);
    return r;
}

EXPORT void closefrom(int lowfd)
{
    channel_yield_fds((unsigned)lowfd, ~0u);
    struct closing *cs;
    size_t n = tracked_close_range_begin((unsigned)lowfd, ~0u, &cs);
    REAL(closefrom)(lowfd);
    tracked_close_range_end(cs, n, true);
}

#define LSEEK_WRAPPER(name, offset_type)                                                           \
    EXPORT offset_type name(int fd, offset_type offset, int whence)                                \
    {                                                                                              \
        struct tracked *t = tracked_enter(fd);                                                     \
        if (!t) return REAL(name)(fd, offset, whence);                                             \
        offset_type r = REAL(name)(fd, offset, whence);                                            \
        tracked_moved(t, (long long)r);                                                            \
        return r;                                                                                  \
    }

#define FTRUNCATE_WRAPPER(name, offset_type)                                                       \
    EXPORT int name(int fd, offset_type length)                                                    \
    {                                                                                              \
        struct tracked *t = tracked_enter(fd);                                                     \
        if (!t) return REAL(name)(fd, length);                                                     \
        int r = REAL(name)(fd, length);                                                            \
        tracked_truncated(t, r == 0 ? (long long)length : -1);                                     \
        return r;                                                                                  \
    }

LSEEK_WRAPPER(lseek, off_t)
LSEEK_WRAPPER(lseek64, off64_t)
FTRUNCATE_WRAPPER(ftruncate, off_t)
FTRUNCATE_WRAPPER(ftruncate64, off64_t)
