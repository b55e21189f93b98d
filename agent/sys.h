/* sys.h — the agent's own clocks and descriptor calls.
 *
 * The agent closes and duplicates descriptors with raw system calls, never through the
 * C library functions it wraps (which would re-enter it), and reads the clocks through
 * one pair of helpers shared by the channel, the tracker and the budget.
 */
#ifndef CKMON_SYS_H
#define CKMON_SYS_H

#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline long long monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline long long realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static inline int raw_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}

/* A close-on-exec copy of fd. */
static inline int raw_dup(int fd)
{
    return (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 0);
}

#endif
