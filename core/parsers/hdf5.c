/* hdf5.c — HDF5 files (h5py, Keras .h5 weights, PyTables): recognised here, read elsewhere.
 *
 * An HDF5 file cannot be parsed as it is written: its library writes metadata and data
 * at scattered offsets and rewrites the superblock at close, and reading it needs the
 * library itself, which may already be loaded, in another version, in the monitored
 * program. So the agent only recognises the format (the signature at byte 0), feeds
 * nothing, re-reads nothing, and the collector reads the finished file after its last
 * close with libhdf5 (collector/hdf5.c; docs/formats.md, "HDF5"). This parser is that
 * recognition: it claims the format and asks for no more bytes (on_disk).
 */
#include "parser.h"

#include <stdlib.h>

static void hdf5_feed(struct parser *p, const uint8_t *data, size_t len)
{
    (void)p, (void)data, (void)len;
}

static bool hdf5_finish(struct parser *p)
{
    (void)p;
    return true; /* what the file holds is for the collector to say */
}

static void hdf5_destroy(struct parser *p)
{
    free(p);
}

struct parser *parser_hdf5_new(struct report *r, const struct parse_options *o)
{
    (void)r, (void)o;
    struct parser *p = malloc(sizeof *p);
    if (!p) return NULL;
    *p = (struct parser){.format = "hdf5",
                         .feed = hdf5_feed,
                         .finish = hdf5_finish,
                         .destroy = hdf5_destroy,
                         .tolerates_rewrites = true,
                         .on_disk = true};
    return p;
}
