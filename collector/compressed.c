/* compressed.c — joblib.dump(..., compress=('xz'|'lzma'|'lz4', N)), read after close.
 *
 * zlib and gzip joblib files are inflated as they stream, in the agent too
 * (core/parsers/joblib.c). xz, lzma and lz4 are not: the agent would have to load liblzma
 * and liblz4 into every monitored program, or dlopen them there, taking the loader's
 * locks from inside a write wrapper while the program's own threads may hold them. So
 * the agent reports such a file as it reports bytes it does not recognise, and the
 * collector (and `ckmon inspect`) decompress the finished file here with the libraries
 * loaded by dlopen when the first such file needs them, into the same pickle reader,
 * in bounded memory. Like zlib and gzip, a file is "joblib" only once the decompressed
 * bytes begin with a pickle protocol 2-5 header; any other xz or lz4 file stays
 * "unknown" with no error.
 */
#include "compressed.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lz4frame.h>
#include <lzma.h>

#define IN_BYTES   (64u << 10)
#define OUT_BYTES  (64u << 10)
#define LZMA_LIMIT (256ull << 20) /* the decoder's memory; xz -9 needs 65 MiB */

enum kind { NONE, XZ_OR_LZMA, LZ4 };

/* joblib's own prefixes (joblib/compressor.py): xz's magic, FORMAT_ALONE's usual
 * properties byte and dictionary size, the lz4 frame magic. */
static enum kind kind_of(const uint8_t *head, size_t n)
{
    if (n >= 6 && memcmp(head,
                         "\xfd"
                         "7zXZ\0",
                         6) == 0)
        return XZ_OR_LZMA;
    if (n >= 2 && head[0] == 0x5d && head[1] == 0x00) return XZ_OR_LZMA;
    if (n >= 4 && memcmp(head, "\x04\x22\x4d\x18", 4) == 0) return LZ4;
    return NONE;
}

static struct {
    __typeof__(lzma_auto_decoder) *lzma_auto_decoder;
    __typeof__(lzma_code) *lzma_code;
    __typeof__(lzma_end) *lzma_end;
    __typeof__(LZ4F_createDecompressionContext) *LZ4F_createDecompressionContext;
    __typeof__(LZ4F_decompress) *LZ4F_decompress;
    __typeof__(LZ4F_freeDecompressionContext) *LZ4F_freeDecompressionContext;
    __typeof__(LZ4F_isError) *LZ4F_isError;
} lib;

/* NULL when the library for k is loaded, else why not. */
static const char *load(enum kind k)
{
    if (k == XZ_OR_LZMA && !lib.lzma_code) {
        void *so = dlopen("liblzma.so.5", RTLD_NOW | RTLD_LOCAL);
        if (!so) return "liblzma is not installed (Debian: liblzma5)";
        *(void **)&lib.lzma_auto_decoder = dlsym(so, "lzma_auto_decoder");
        *(void **)&lib.lzma_end = dlsym(so, "lzma_end");
        *(void **)&lib.lzma_code = dlsym(so, "lzma_code"); /* last: it says all are there */
        if (!lib.lzma_auto_decoder || !lib.lzma_end) lib.lzma_code = NULL;
        if (!lib.lzma_code) return "liblzma lacks its decoder";
    }
    if (k == LZ4 && !lib.LZ4F_decompress) {
        void *so = dlopen("liblz4.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!so) return "liblz4 is not installed (Debian: liblz4-1)";
        *(void **)&lib.LZ4F_createDecompressionContext =
            dlsym(so, "LZ4F_createDecompressionContext");
        *(void **)&lib.LZ4F_freeDecompressionContext = dlsym(so, "LZ4F_freeDecompressionContext");
        *(void **)&lib.LZ4F_isError = dlsym(so, "LZ4F_isError");
        *(void **)&lib.LZ4F_decompress = dlsym(so, "LZ4F_decompress");
        if (!lib.LZ4F_createDecompressionContext || !lib.LZ4F_freeDecompressionContext ||
            !lib.LZ4F_isError)
            lib.LZ4F_decompress = NULL;
        if (!lib.LZ4F_decompress) return "liblz4 lacks its frame decoder";
    }
    return NULL;
}

/* Where the decompressed bytes go: their first two bytes decide whether this is joblib. */
struct sink {
    struct report *report;
    const struct parse_options *options;
    struct parser *pickle; /* NULL until the pickle header came */
    uint8_t head[2];
    size_t head_len;
    bool not_joblib;
};

static void pass(struct sink *s, const uint8_t *data, size_t len)
{
    if (s->not_joblib || len == 0) return;
    if (!s->pickle) {
        size_t take = sizeof s->head - s->head_len < len ? sizeof s->head - s->head_len : len;
        memcpy(s->head + s->head_len, data, take);
        s->head_len += take;
        data += take;
        len -= take;
        if (s->head_len < sizeof s->head) return;
        if (s->head[0] != 0x80 || s->head[1] < 2 || s->head[1] > 5 ||
            !(s->pickle = parser_pickle_new(s->report, s->options))) {
            s->not_joblib = true;
            return;
        }
        s->pickle->feed(s->pickle, s->head, sizeof s->head);
    }
    if (len) s->pickle->feed(s->pickle, data, len);
}

/* Decompresses the file into s; returns NULL when the stream ended properly, else why
 * not. *offset: the compressed bytes read. */
static const char *decompress(int fd, enum kind k, struct sink *s, uint8_t *in, uint8_t *out,
                              off_t *offset)
{
    lzma_stream z = LZMA_STREAM_INIT;
    LZ4F_dctx *dctx = NULL;
    const char *why = NULL;
    bool ended = false;
    if (k == XZ_OR_LZMA
            ? lib.lzma_auto_decoder(&z, LZMA_LIMIT, 0) != LZMA_OK
            : lib.LZ4F_isError(lib.LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
        return "out of memory";
    while (!why && !ended && !s->not_joblib) {
        ssize_t n = pread(fd, in, IN_BYTES, *offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            why = strerror(errno);
            break;
        }
        if (n == 0) {
            why = "compressed data ended";
            break;
        }
        *offset += n;
        if (k == XZ_OR_LZMA) {
            z.next_in = in;
            z.avail_in = (size_t)n;
            while (!why && !ended && z.avail_in > 0 && !s->not_joblib) {
                z.next_out = out;
                z.avail_out = OUT_BYTES;
                lzma_ret rc = lib.lzma_code(&z, LZMA_RUN);
                pass(s, out, OUT_BYTES - z.avail_out);
                ended = rc == LZMA_STREAM_END;
                if (rc == LZMA_MEMLIMIT_ERROR)
                    why = "over 256 MiB needed to decompress";
                else if (rc != LZMA_OK && !ended)
                    why = "bad compressed data";
            }
        } else {
            for (size_t at = 0; !why && !ended && at < (size_t)n && !s->not_joblib;) {
                size_t out_size = OUT_BYTES, in_size = (size_t)n - at;
                size_t hint = lib.LZ4F_decompress(dctx, out, &out_size, in + at, &in_size, NULL);
                pass(s, out, out_size);
                at += in_size;
                if (lib.LZ4F_isError(hint)) why = "bad compressed data";
                ended = hint == 0;
            }
        }
    }
    if (k == XZ_OR_LZMA) lib.lzma_end(&z);
    if (dctx) lib.LZ4F_freeDecompressionContext(dctx);
    return why;
}

bool compressed_read_claimed(int fd, const char **format, bool *complete, struct report *r,
                             const struct parse_options *o)
{
    uint8_t head[6];
    ssize_t n = strcmp(*format, "unknown") == 0 ? pread(fd, head, sizeof head, 0) : -1;
    enum kind k = n > 0 ? kind_of(head, (size_t)n) : NONE;
    if (k == NONE) return false;
    if (load(k)) return false; /* Debian's liblzma5 and liblz4-1 are all but always there */
    struct sink s = {.report = r, .options = o};
    uint8_t *in = malloc(IN_BYTES), *out = malloc(OUT_BYTES);
    off_t offset = 0;
    const char *why = in && out ? decompress(fd, k, &s, in, out, &offset) : "out of memory";
    free(in);
    free(out);
    if (!s.pickle) return false; /* not a pickle inside: "unknown", nothing said */
    *format = "joblib";
    if (why) report_error(r, "joblib: %s at byte %" PRId64, why, (int64_t)offset);
    *complete = s.pickle->finish(s.pickle) && !why;
    s.pickle->destroy(s.pickle);
    return true;
}
