/* clock.h — the one clock of the bench programs: monotonic seconds as a double.
 *
 * Each program in tools/bench/ times rounds of its own work with it and reports the
 * fastest; a header, not a library, since the programs link nothing of their own.
 */
#ifndef CKMON_BENCH_CLOCK_H
#define CKMON_BENCH_CLOCK_H

#include <time.h>

static inline double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#endif
