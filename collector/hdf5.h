/* hdf5.h — reading finished HDF5 files with libhdf5, loaded on demand (collector and CLI). */
#ifndef CKMON_HDF5_H
#define CKMON_HDF5_H

#include <stdbool.h>
#include <sys/types.h>

#include "core/parsers/parser.h"

/* For a file the detect parser read (*format, *complete: its results): when it is HDF5
 * (the parser said "hdf5": the signature at byte 0; or "unknown" and the signature is
 * where a user block puts it, 512, 1024, 2048, ... bytes in), reads its datasets and
 * attributes into r (docs/formats.md, "HDF5") in a child process bounded in memory and
 * time, sets *format to "hdf5" and *complete to whether everything was read, and returns
 * true. Returns false, changing nothing, for any other file. */
bool hdf5_read_claimed(int fd, const char **format, bool *complete, struct report *r,
                       const struct parse_options *o);

/* How long the reader of one file may take (--hdf5-timeout), in seconds; 0 (the start):
 * 60 plus one per 32 MiB of the file. */
void hdf5_set_timeout(double seconds);

#endif
