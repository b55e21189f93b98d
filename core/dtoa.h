/* dtoa.h — doubles as the shortest decimal text that reads back exactly, without printf.
 *
 * Records print every statistic this way (core/jsontext.c). printf's %.17g and the
 * search for the fewest digits that strtod reads back as the same double cost about a
 * microsecond per number, which for a checkpoint of 10^5 tensors (two million numbers)
 * was most of the collector's time; this takes some 40 nanoseconds, the same way for every
 * double (Schubfach, dtoa.c).
 */
#ifndef CKMON_DTOA_H
#define CKMON_DTOA_H

#include <stdint.h>

/* v (finite) with the fewest significant digits of any decimal that reads back as v, the
 * closest such to v (ties to the even digit), laid out as printf's "%.*g" with that many
 * digits lays it out: printf's own text for the fewest digits that read back, but at some
 * powers of two, where the decimal above v has a digit fewer than printf's rounding below.
 * NUL-terminated in out, which must have room for DTOA_TEXT_MAX bytes (all may be
 * written); returns the length. */
#define DTOA_TEXT_MAX 32
int dtoa_shortest(double v, char *out);

#endif
