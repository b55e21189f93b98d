/* wrap_open.c — the calls that create descriptors and streams for a path.
 *
 * Each wrapper makes the real call first, then offers the result to tracked_opened,
 * which follows checkpoints opened for writing and tells of those opened for reading
 * (loads.h), most reads being rejected by their path's text alone. A call that fails
 * for want of a descriptor (EMFILE) while the agent holds its socket gets that number
 * back and is made once more (channel_release_fd), so the program can open as many
 * files as without the agent.
 */
#include <errno.h>
#include <fcntl.h>

#include "channel.h"
#include "real.h"
#include "tracked.h"

/* open's third argument exists only when the call creates a file. */
#define NEEDS_MODE(flags) (((flags)&O_CREAT) || ((flags)&O_TMPFILE) == O_TMPFILE)
#define MODE_ARG(flags, last)                                                                      \
    mode_t mode = 0;                                                                               \
    if (NEEDS_MODE(flags)) {                                                                       \
        va_list ap;                                                                                \
        va_start(ap, last);                                                                        \
        mode = va_arg(ap, mode_t);                                                                 \
        va_end(ap);                                                                                \
    }

#define OUT_OF_DESCRIPTORS(failed) ((failed) && errno == EMFILE && channel_release_fd())

#define OPEN_WRAPPER(name)                                                                         \
    EXPORT int name(const char *path, int flags, ...)                                              \
    {                                                                                              \
        MODE_ARG(flags, flags)                                                                     \
        int fd = REAL(name)(path, flags, mode);                                                    \
        if (OUT_OF_DESCRIPTORS(fd < 0)) fd = REAL(name)(path, flags, mode);                        \
        tracked_opened(fd, AT_FDCWD, path, flags);                                                 \
        return fd;                                                                                 \
    }

#define OPENAT_WRAPPER(name)                                                                       \
    EXPORT int name(int dirfd, const char *path, int flags, ...)                                   \
    {                                                                                              \
        MODE_ARG(flags, flags)                                                                     \
        int fd = REAL(name)(dirfd, path, flags, mode);                                             \
        if (OUT_OF_DESCRIPTORS(fd < 0)) fd = REAL(name)(dirfd, path, flags, mode);                 \
        tracked_opened(fd, dirfd, path, flags);                                                    \
        return fd;                                                                                 \
    }

#define FORTIFIED_OPEN_WRAPPER(name)                                                               \
    EXPORT int name(const char *path, int flags)                                                   \
    {                                                                                              \
        int fd = REAL(name)(path, flags);                                                          \
        if (OUT_OF_DESCRIPTORS(fd < 0)) fd = REAL(name)(path, flags);                              \
        tracked_opened(fd, AT_FDCWD, path, flags);                                                 \
        return fd;                                                                                 \
    }

#define FORTIFIED_OPENAT_WRAPPER(name)                                                             \
    EXPORT int name(int dirfd, const char *path, int flags)                                        \
    {                                                                                              \
        int fd = REAL(name)(dirfd, path, flags);                                                   \
        if (OUT_OF_DESCRIPTORS(fd < 0)) fd = REAL(name)(dirfd, path, flags);                       \
        tracked_opened(fd, dirfd, path, flags);                                                    \
        return fd;                                                                                 \
    }

#define CREAT_WRAPPER(name)                                                                        \
    EXPORT int name(const char *path, mode_t mode)                                                 \
    {                                                                                              \
        int fd = REAL(name)(path, mode);                                                           \
        if (OUT_OF_DESCRIPTORS(fd < 0)) fd = REAL(name)(path, mode);                               \
        tracked_opened(fd, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC);                          \
        return fd;                                                                                 \
    }

#define FOPEN_WRAPPER(name)                                                                        \
    EXPORT FILE *name(const char *path, const char *mode)                                          \
    {                                                                                              \
        FILE *stream = REAL(name)(path, mode);                                                     \
        if (OUT_OF_DESCRIPTORS(!stream)) stream = REAL(name)(path, mode);                          \
        tracked_opened_stream(stream, path, mode);                                                 \
        return stream;                                                                             \
    }

/* freopen closes the stream's old descriptor (which may be a checkpoint) and opens path
 * on the same stream. With a NULL path it only changes the mode of the same file. */
#define FREOPEN_WRAPPER(name)                                                                      \
    EXPORT FILE *name(const char *path, const char *mode, FILE *stream)                            \
    {                                                                                              \
        struct closing old;                                                                        \
        bool closing = path && stream && tracked_close_begin_stream(stream, &old);                 \
        FILE *result = REAL(name)(path, mode, stream);                                             \
        if (closing) tracked_close_end(&old, true);                                                \
        if (path) tracked_opened_stream(result, path, mode);                                       \
        return result;                                                                             \
    }

OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)
OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)
FORTIFIED_OPEN_WRAPPER(__open_2)
FORTIFIED_OPEN_WRAPPER(__open64_2)
FORTIFIED_OPENAT_WRAPPER(__openat_2)
FORTIFIED_OPENAT_WRAPPER(__openat64_2)
CREAT_WRAPPER(creat)
CREAT_WRAPPER(creat64)
FOPEN_WRAPPER(fopen)
FOPEN_WRAPPER(fopen64)
FREOPEN_WRAPPER(freopen)
FREOPEN_WRAPPER(freopen64)

/* NumPy writes array data with fwrite on fdopen(dup(fd)): the descriptor is already
 * tracked; the stream is remembered so that an exit report can flush it first. */
EXPORT FILE *fdopen(int fd, const char *mode)
{
    FILE *stream = REAL(fdopen)(fd, mode);
    if (stream) tracked_stream_attached(stream);
    return stream;
}
