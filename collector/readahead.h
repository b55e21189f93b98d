/* readahead.h — reading a finished file on a second thread (collector and CLI only). */
#ifndef CKMON_READAHEAD_H
#define CKMON_READAHEAD_H

#include "core/parsers/parser.h"

/* A parse_source (parser.h) with the same result as parse_feed_pread, but a reader
 * thread preads the next chunks while this thread parses the previous ones. */
bool parse_feed_readahead(int fd, off_t from, struct parser *p, struct report *r);

#endif
