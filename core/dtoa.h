/* dtoa.h — doubles as the shortest decimal text that reads back exactly, without printf.
 *
 * Records print every statistic this way (core/jsontext.c). printf's %.17g and the
 * search for the fewest digits that strtod reads back as the same double cost about a
 * microsecond per number, which for a checkpoint of 10^5 tensors (two million numbers)
 * was most of the collector's time; this takes about a hundred nanoseconds (one or two in a
 * hundred doubles take a slower exact way, dtoa.c).
 */
#ifndef CKMON_DTOA_H
#define CKMON_DTOA_H

#include <stdint.h>

/* v (finite) as printf's "%.*g" prints it with the fewest digits that read back as v
 * (the closest such), NUL-terminated in out, which has room for
 * DTOA_TEXT_MAX bytes; returns the length. */
#define DTOA_TEXT_MAX 32
int dtoa_shortest(double v, char *out);

#endif
