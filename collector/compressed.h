/* compressed.h — joblib files compressed with xz, lzma or lz4, decompressed by the
 * collector and the CLI after close (liblzma and liblz4 loaded on demand). */
#ifndef CKMON_COMPRESSED_H
#define CKMON_COMPRESSED_H

#include <stdbool.h>

#include "core/parsers/parser.h"

/* For a file the detect parser found no format in (*format "unknown"): when it is an xz,
 * lzma or lz4 stream of a pickle (joblib.dump(..., compress=('xz', 3))), reads the pickle
 * into r, sets *format to "joblib" and *complete, and returns true. False, changing
 * nothing, for any other file. */
bool compressed_read_claimed(int fd, const char **format, bool *complete, struct report *r,
                             const struct parse_options *o);

#endif
