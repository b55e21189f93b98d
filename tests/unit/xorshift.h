/* xorshift.h — a tiny deterministic random generator for the unit tests (Marsaglia's
 * xorshift64): the same data on every run and machine, unlike rand(). */
#ifndef CKMON_TEST_XORSHIFT_H
#define CKMON_TEST_XORSHIFT_H

#include <stdint.h>

static inline uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

#endif
