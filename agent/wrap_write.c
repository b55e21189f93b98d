/* wrap_write.c — the descriptor write calls: write, pwrite*, writev, pwritev*, and the
 * calls that make them durable, fsync and fdatasync.
 *
 * An untracked descriptor costs a bounds check and a load before the real call.
 */
#include "real.h"
#include "tracked.h"

/* Each call is split in two so that the untracked path compiles to a bounds check, a
 * load, a branch and a jump to the real function, with no stack frame: the tracked
 * work lives in a separate function the wrapper tail-calls. The table's readiness is
 * tested here rather than through REAL(), whose resolving call would give the common
 * path a frame; before the table is ready, the separate function resolves it. */
/* A vector's first bytes are its first element's. */
static struct tracked *enter_writev(int fd, long long offset, const struct iovec *iov, int iovcnt)
{
    if (!fd_is_undecided(fd)) return tracked_enter(fd);
    return tracked_decide(fd, offset, iovcnt > 0 ? iov[0].iov_base : NULL,
                          iovcnt > 0 ? iov[0].iov_len : 0);
}

#define WRITE_WRAPPER(name, offset_type, OFFSET)                                                   \
    static __attribute__((noinline)) ssize_t tracked_##name(                                       \
        int fd, const void *buf, size_t count OFFSET_PARAM_##OFFSET(offset_type))                  \
    {                                                                                              \
        struct tracked *t = fd_is_undecided(fd)                                                    \
                                ? tracked_decide(fd, OFFSET_VALUE_##OFFSET, buf, count)            \
                                : tracked_enter(fd);                                               \
        if (!t) return REAL(name)(fd, buf, count OFFSET_ARG_##OFFSET);                             \
        ssize_t n = REAL(name)(fd, buf, count OFFSET_ARG_##OFFSET);                                \
        tracked_wrote(t, OFFSET_VALUE_##OFFSET, buf, n);                                           \
        return n;                                                                                  \
    }                                                                                              \
    EXPORT ssize_t name(int fd, const void *buf, size_t count OFFSET_PARAM_##OFFSET(offset_type))  \
    {                                                                                              \
        if (__builtin_expect(!fd_is_tracked(fd) && real_fn.ready, 1))                              \
            return real_fn.name(fd, buf, count OFFSET_ARG_##OFFSET);                               \
        return tracked_##name(fd, buf, count OFFSET_ARG_##OFFSET);                                 \
    }

#define WRITEV_WRAPPER(name, offset_type, OFFSET)                                                  \
    static __attribute__((noinline)) ssize_t tracked_##name(                                       \
        int fd, const struct iovec *iov, int iovcnt OFFSET_PARAM_##OFFSET(offset_type))            \
    {                                                                                              \
        struct tracked *t = enter_writev(fd, OFFSET_VALUE_##OFFSET, iov, iovcnt);                  \
        if (!t) return REAL(name)(fd, iov, iovcnt OFFSET_ARG_##OFFSET);                            \
        ssize_t n = REAL(name)(fd, iov, iovcnt OFFSET_ARG_##OFFSET);                               \
        tracked_wrotev(t, OFFSET_VALUE_##OFFSET, iov, iovcnt, n);                                  \
        return n;                                                                                  \
    }                                                                                              \
    EXPORT ssize_t name(int fd, const struct iovec *iov,                                           \
                        int iovcnt OFFSET_PARAM_##OFFSET(offset_type))                             \
    {                                                                                              \
        if (__builtin_expect(!fd_is_tracked(fd) && real_fn.ready, 1))                              \
            return real_fn.name(fd, iov, iovcnt OFFSET_ARG_##OFFSET);                              \
        return tracked_##name(fd, iov, iovcnt OFFSET_ARG_##OFFSET);                                \
    }

#define OFFSET_PARAM_AT_POSITION(type)
#define OFFSET_ARG_AT_POSITION
#define OFFSET_VALUE_AT_POSITION    AT_POSITION
#define OFFSET_PARAM_EXPLICIT(type) , type offset
#define OFFSET_ARG_EXPLICIT         , offset
#define OFFSET_VALUE_EXPLICIT       ((long long)offset)

WRITE_WRAPPER(write, off_t, AT_POSITION)
WRITE_WRAPPER(pwrite, off_t, EXPLICIT)
WRITE_WRAPPER(pwrite64, off64_t, EXPLICIT)
WRITEV_WRAPPER(writev, off_t, AT_POSITION)
WRITEV_WRAPPER(pwritev, off_t, EXPLICIT)
WRITEV_WRAPPER(pwritev64, off64_t, EXPLICIT)

/* fsync and fdatasync: durability points, where the collector hears the progress. The
 * file is entered after the (possibly slow) real call, so other writers never wait on it. */
#define SYNC_WRAPPER(name)                                                                         \
    EXPORT int name(int fd)                                                                        \
    {                                                                                              \
        int r = REAL(name)(fd);                                                                    \
        struct tracked *t = tracked_enter(fd);                                                     \
        if (t) tracked_synced(t);                                                                  \
        return r;                                                                                  \
    }

SYNC_WRAPPER(fsync)
SYNC_WRAPPER(fdatasync)

/* pwritev2 with offset -1 writes at (and advances) the descriptor's position. */
EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags)
{
    struct tracked *t =
        enter_writev(fd, offset == -1 ? AT_POSITION : (long long)offset, iov, iovcnt);
    if (!t) return REAL(pwritev2)(fd, iov, iovcnt, offset, flags);
    ssize_t n = REAL(pwritev2)(fd, iov, iovcnt, offset, flags);
    tracked_wrotev(t, offset == -1 ? AT_POSITION : (long long)offset, iov, iovcnt, n);
    return n;
}
