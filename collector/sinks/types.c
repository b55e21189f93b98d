/* types.c — the sink types by name (sink_type_find in sink.h): one entry per sink file.
 *
 * Apart from sink.c, which every sink calls, so that the sinks and their helpers do not
 * call each other in a circle.
 */
#include <string.h>

#include "sink.h"

static const struct sink_type *const sink_types[] = {
    &sink_ndjson, &sink_pushgateway, &sink_victoriametrics, &sink_influx, &sink_prometheus};

const struct sink_type *sink_type_find(const char *name)
{
    for (size_t i = 0; i < sizeof sink_types / sizeof sink_types[0]; i++)
        if (!strcmp(sink_types[i]->name, name)) return sink_types[i];
    return NULL;
}
