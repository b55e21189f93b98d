/* joblib.c — joblib.dump's compressed files: compress=N (zlib) and ('gzip', N).
 *
 * Such a file is one zlib or gzip stream of exactly what joblib.dump writes without
 * compression: a pickle with each numpy array's data inline after its wrapper (pickle.c
 * reads both). It is inflated as it streams, through zlib's 32 KiB window and a 32 KiB
 * output buffer, into the pickle parser; memory does not grow with the file.
 *
 * Two bytes of zlib header (or gzip's magic) do not make a checkpoint: the parser says
 * "joblib" only once the inflated stream starts with a pickle protocol 2-5 header.
 * Until then nothing is reported, so another zlib or gzip file stays "unknown" with no
 * error; after it, bad deflate data or a stream that ends early is an error.
 * xz, lzma and lz4 compression are not read here but by the collector after close
 * (collector/compressed.c): the agent would have to load their libraries.
 */
#include "parser.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define INFLATE_OUT        (32u << 10)
#define ZLIB_AND_GZIP_BITS (MAX_WBITS + 32) /* inflate detects which header it has */

enum joblib_state {
    J_HEAD,       /* inflating the first two bytes */
    J_PICKLE,     /* a pickle: into the pickle parser */
    J_NOT_JOBLIB, /* not a pickle inside, or not a stream at all: ignored */
    J_ENDED,      /* the stream ended: what follows is not part of it */
    J_BROKEN,     /* reported why */
};

struct joblib {
    struct parser base;
    struct report *report;
    const struct parse_options *options;
    enum joblib_state state;
    z_stream z;
    bool z_live;
    uint8_t *out;
    uint8_t head[2];
    size_t head_len;
    struct parser *pickle;
};

static void pass(struct joblib *j, const uint8_t *data, size_t len)
{
    if (j->state == J_HEAD) {
        size_t take = sizeof j->head - j->head_len < len ? sizeof j->head - j->head_len : len;
        memcpy(j->head + j->head_len, data, take);
        j->head_len += take;
        data += take;
        len -= take;
        if (j->head_len < sizeof j->head) return;
        if (j->head[0] != 0x80 || j->head[1] < 2 || j->head[1] > 5) {
            j->state = J_NOT_JOBLIB;
            return;
        }
        j->pickle = parser_pickle_new(j->report, j->options);
        if (!j->pickle) {
            report_error(j->report, "joblib: out of memory");
            j->state = J_BROKEN;
            return;
        }
        j->state = J_PICKLE;
        j->base.format = "joblib";
        j->pickle->feed(j->pickle, j->head, sizeof j->head);
    }
    if (j->state == J_PICKLE && len) j->pickle->feed(j->pickle, data, len);
}

static void joblib_feed(struct parser *p, const uint8_t *data, size_t len)
{
    struct joblib *j = (struct joblib *)p;
    while (len > 0 && (j->state == J_HEAD || j->state == J_PICKLE)) {
        size_t in = len > UINT32_MAX ? UINT32_MAX : len;
        j->z.next_in = (Bytef *)data;
        j->z.avail_in = (uInt)in;
        int rc;
        do {
            j->z.next_out = j->out;
            j->z.avail_out = INFLATE_OUT;
            rc = inflate(&j->z, Z_NO_FLUSH);
            if (j->z.avail_out < INFLATE_OUT) pass(j, j->out, INFLATE_OUT - j->z.avail_out);
        } while (rc == Z_OK && (j->z.avail_in > 0 || j->z.avail_out == 0) &&
                 (j->state == J_HEAD || j->state == J_PICKLE));
        size_t used = in - j->z.avail_in;
        data += used;
        len -= used;
        if (rc == Z_STREAM_END) {
            if (j->state == J_PICKLE) j->state = J_ENDED;
            if (j->state == J_HEAD) j->state = J_NOT_JOBLIB;
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            if (j->state == J_PICKLE)
                report_error(j->report, "joblib: bad compressed data before byte %" PRIu64,
                             (uint64_t)j->z.total_in + 1);
            j->state = j->state == J_PICKLE ? J_BROKEN : J_NOT_JOBLIB;
        } else if (used == 0) {
            break; /* inflate wants more input than it was given */
        }
    }
}

static bool joblib_finish(struct parser *p)
{
    struct joblib *j = (struct joblib *)p;
    switch (j->state) {
    case J_PICKLE:
        report_error(j->report, "joblib: compressed data ended at byte %" PRIu64,
                     (uint64_t)j->z.total_in);
        j->pickle->finish(j->pickle);
        return false;
    case J_ENDED:
        return j->pickle->finish(j->pickle);
    case J_BROKEN:
        if (j->pickle) j->pickle->finish(j->pickle);
        return false;
    default:
        return true; /* not joblib: "unknown", which nothing says is incomplete */
    }
}

static void joblib_destroy(struct parser *p)
{
    struct joblib *j = (struct joblib *)p;
    if (j->z_live) inflateEnd(&j->z);
    if (j->pickle) j->pickle->destroy(j->pickle);
    free(j->out);
    free(j);
}

struct parser *parser_joblib_new(struct report *r, const struct parse_options *o)
{
    struct joblib *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->base = (struct parser){.format = "unknown",
                              .feed = joblib_feed,
                              .finish = joblib_finish,
                              .destroy = joblib_destroy};
    j->report = r;
    j->options = o;
    j->out = malloc(INFLATE_OUT);
    if (!j->out || inflateInit2(&j->z, ZLIB_AND_GZIP_BITS) != Z_OK) {
        free(j->out);
        free(j);
        return NULL;
    }
    j->z_live = true;
    return &j->base;
}
