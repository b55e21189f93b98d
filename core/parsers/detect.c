/* detect.c — choosing a format from a file's first bytes, and parsing finished files.
 *
 * The agent learns a file's format from what the program writes first: magic numbers
 * where the format has one, the extension where it does not (pickle protocols 0 and 1
 * have no header). Adding a format is one row in `formats` plus its own file. A zip
 * archive is one more step: its first member's name says which zip-based format it is.
 */
#include "parser.h"
#include "npy.h"
#include "zip.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DETECT_BYTES 32 /* enough for every format's signature */

struct format {
    const char *name;
    /* Whether the first n bytes (n == DETECT_BYTES unless the file is shorter) and the
     * path's extension say this format. */
    bool (*claims)(const uint8_t *head, size_t n, const char *extension);
    struct parser *(*create)(struct report *r, const struct parse_options *o);
    /* Used instead of create when set, for formats that name what they find after the
     * file (npy: its one array), with the path's base name without extension. */
    struct parser *(*create_named)(struct report *r, const struct parse_options *o,
                                   const char *stem);
};

/* '{' or '[' and then what JSON can hold there: UBJSON (xgboost's .ubj) also starts with
 * '{' but continues with a type marker. */
static bool claims_json(const uint8_t *head, size_t n, const char *extension)
{
    (void)extension;
    size_t i = 0;
    while (i < n && head[i] && strchr(" \t\r\n", head[i]))
        i++;
    if (i == n || (head[i] != '{' && head[i] != '[')) return false;
    const char *next = head[i] == '{' ? "\"}" : "\"{[]-0123456789tfn";
    for (i++; i < n && head[i] && strchr(" \t\r\n", head[i]); i++)
        ;
    return i == n || (head[i] && strchr(next, head[i]));
}

/* Whether a pickle of protocol 0 or 1 (no header) could begin so: with an opcode those
 * protocols write first, and its argument's first byte right. Text and other bytes that
 * merely sit in a .pkl file are then "unknown", with no error. */
static bool opens_old_pickle(const uint8_t *head, size_t n)
{
    if (n == 0) return true; /* nothing written yet: a save cut short at its start */
    if (n == 1) return head[0] && strchr("(N)]}", head[0]);
    switch (head[0]) {
    case '(':
    case ')':
    case ']':
    case '}':
    case 'N':
    case 'K':
    case 'J':
    case 'M':
    case 'G':
    case 'U':
    case 'T':
    case 'X':
    case 'V':
        return true;
    case 'S':
        return head[1] == '\'' || head[1] == '"';
    case 'I':
    case 'L':
        return isdigit(head[1]) || head[1] == '-';
    case 'F':
        return isdigit(head[1]) || strchr("-ni", head[1]);
    case 'c': /* GLOBAL: a module name */
        return isalpha(head[1]) || head[1] == '_';
    default:
        return false;
    }
}

static bool claims_pickle(const uint8_t *head, size_t n, const char *extension)
{
    const uint8_t PROTO = 0x80, HIGHEST_PROTOCOL = 5;
    if (n >= 2 && head[0] == PROTO && head[1] <= HIGHEST_PROTOCOL) return true;
    return (strcmp(extension, "pkl") == 0 || strcmp(extension, "pickle") == 0) &&
           opens_old_pickle(head, n);
}

/* safetensors: a little-endian u64 header length within the specification's limit,
 * then the JSON header's '{'. A file named .safetensors with any length before the '{'
 * claims to be one, and the parser says what is wrong with it. */
static bool claims_safetensors(const uint8_t *head, size_t n, const char *extension)
{
    const uint64_t SPEC_MAX_HEADER = 100000000;
    if (n < 9 || head[8] != '{') return false;
    uint64_t length = 0;
    for (int i = 7; i >= 0; i--)
        length = length << 8 | head[i];
    return (length >= 2 && length <= SPEC_MAX_HEADER) || strcmp(extension, "safetensors") == 0;
}

static bool claims_npy(const uint8_t *head, size_t n, const char *extension)
{
    (void)extension;
    return n >= 6 && memcmp(head, "\x93NUMPY", 6) == 0;
}

/* torch.save's legacy format: a pickle (protocol 2 to 5, the latter two in a FRAME) of
 * torch's magic number, a LONG1. */
static bool claims_torch_legacy(const uint8_t *head, size_t n, const char *extension)
{
    static const uint8_t MAGIC[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                    0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    const uint8_t PROTO = 0x80, FRAME = 0x95, FRAME_BYTES = 9;
    (void)extension;
    if (n < 2 || head[0] != PROTO || head[1] < 2 || head[1] > 5) return false;
    size_t at = head[1] >= 4 && n > 2 && head[2] == FRAME ? 2 + FRAME_BYTES : 2;
    return n >= at + sizeof MAGIC && memcmp(head + at, MAGIC, sizeof MAGIC) == 0;
}

/* joblib.dump(..., compress=...): a zlib header (its check bits right) or gzip's magic;
 * the parser then looks for a pickle inside (joblib.c). */
static bool claims_joblib(const uint8_t *head, size_t n, const char *extension)
{
    (void)extension;
    if (n >= 3 && head[0] == 0x1f && head[1] == 0x8b && head[2] == 8) return true;
    return n >= 2 && head[0] == 0x78 && (head[0] << 8 | head[1]) % 31 == 0 && !(head[1] & 0x20);
}

/* A zip archive: which format (torch, npz) its first member's name says. */
static bool claims_zip(const uint8_t *head, size_t n, const char *extension)
{
    (void)extension;
    return n >= 4 && memcmp(head, "PK\3\4", 4) == 0;
}

static bool claims_gguf(const uint8_t *head, size_t n, const char *extension)
{
    (void)extension;
    return n >= 4 && memcmp(head, "GGUF", 4) == 0;
}

/* HDF5's signature at byte 0. A file with a user block has it at 512, 1024, ...: only
 * the collector, reading the finished file, looks there (collector/hdf5.c). */
static bool claims_hdf5(const uint8_t *head, size_t n, const char *extension)
{
    (void)extension;
    return n >= 8 && memcmp(head, "\x89HDF\r\n\x1a\n", 8) == 0;
}

/* PyTorch DCP's data files: torch.save archives and raw items back to back (distcp.c),
 * known by their name only (the first item alone looks like a torch file). */
static bool claims_distcp(const uint8_t *head, size_t n, const char *extension)
{
    (void)head, (void)n;
    return strcmp(extension, "distcp") == 0;
}

/* ---- Zip archives: which format the first member's name says -------------------- */

struct zip_dispatch {
    struct parser base;
    struct report *report;
    const struct parse_options *options;
    uint8_t head[ZIP_PEEK_BYTES];
    size_t head_len;
    bool decided;
    struct parser *inner; /* NULL once decided: not a format ckmon reads */
};

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* Decides once the first name is in (or the data ended); returns whether it has. */
static bool zip_decide(struct zip_dispatch *z, bool ended)
{
    const char *name;
    size_t name_len;
    enum zip_peek peek = zip_peek_first_name(z->head, z->head_len, ended, &name, &name_len);
    if (peek == ZIP_PEEK_MORE) return false;
    z->decided = true;
    if (peek == ZIP_PEEK_NONE) return true;
    const char *slash = memchr(name, '/', name_len);
    const char *record = slash ? slash + 1 : name;
    size_t record_len = name_len - (size_t)(record - name);
    if ((name_len == 8 && memcmp(name, "data.pkl", 8) == 0) ||
        ends_with(name, name_len, "/data.pkl"))
        z->inner = parser_torch_new(z->report, z->options);
    else if (slash && ((record_len > 5 && memcmp(record, "data/", 5) == 0) ||
                       ends_with(record, record_len, "constants.pkl") ||
                       (record_len > 5 && memcmp(record, "code/", 5) == 0)))
        z->inner = parser_torchscript_new(z->report, z->options); /* storages first */
    else if (ends_with(name, name_len, ".npy"))
        z->inner = parser_npz_new(z->report, z->options);
    else
        return true;
    if (!z->inner) {
        report_error(z->report, "zip: out of memory");
        return true;
    }
    z->base.format = z->inner->format;
    z->inner->feed(z->inner, z->head, z->head_len);
    return true;
}

static void zip_feed(struct parser *p, const uint8_t *data, size_t len)
{
    struct zip_dispatch *z = (struct zip_dispatch *)p;
    if (!z->decided) {
        size_t room = sizeof z->head - z->head_len;
        size_t take = len < room ? len : room;
        memcpy(z->head + z->head_len, data, take);
        z->head_len += take;
        data += take;
        len -= take;
        if (!zip_decide(z, z->head_len == sizeof z->head)) return;
    }
    if (z->inner && len > 0) z->inner->feed(z->inner, data, len);
    if (z->inner) z->base.format = z->inner->format; /* torch may turn out TorchScript */
}

static bool zip_finish(struct parser *p)
{
    struct zip_dispatch *z = (struct zip_dispatch *)p;
    if (!z->decided) zip_decide(z, true);
    if (!z->inner) return true;
    bool whole = z->inner->finish(z->inner);
    z->base.format = z->inner->format;
    return whole;
}

static void zip_destroy(struct parser *p)
{
    struct zip_dispatch *z = (struct zip_dispatch *)p;
    if (z->inner) z->inner->destroy(z->inner);
    free(z);
}

static struct parser *parser_zip_new(struct report *r, const struct parse_options *o)
{
    struct zip_dispatch *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    /* Both formats leave the local headers zipfile rewrites alone. */
    z->base = (struct parser){.format = "unknown",
                              .feed = zip_feed,
                              .finish = zip_finish,
                              .destroy = zip_destroy,
                              .tolerates_rewrites = true};
    z->report = r;
    z->options = o;
    return &z->base;
}

static bool zip_first_is_torch(const uint8_t *head, size_t n)
{
    const char *name;
    size_t len;
    if (!claims_zip(head, n, "") ||
        zip_peek_first_name(head, n, true, &name, &len) != ZIP_PEEK_NAME)
        return false;
    return (len == 8 && memcmp(name, "data.pkl", 8) == 0) || ends_with(name, len, "/data.pkl");
}

bool parser_certain(const uint8_t *head, size_t n)
{
    const uint8_t PROTO = 0x80;
    bool pickle = n >= 2 && head[0] == PROTO && head[1] >= 2 && head[1] <= 5;
    return pickle || claims_npy(head, n, "") || claims_gguf(head, n, "") ||
           claims_safetensors(head, n, "") || zip_first_is_torch(head, n);
}

/* ---- The formats, in the order they are tried ----------------------------------- */

/* Magic numbers first: they are more specific than JSON's '{' or the .pkl extension. */
static const struct format formats[] = {
    {"distcp", claims_distcp, parser_distcp_new, NULL},
    {"safetensors", claims_safetensors, parser_safetensors_new, NULL},
    {"npy", claims_npy, parser_npy_new, parser_npy_named_new},
    {"gguf", claims_gguf, parser_gguf_new, NULL},
    {"hdf5", claims_hdf5, parser_hdf5_new, NULL},
    {"zip", claims_zip, parser_zip_new, NULL},
    {"torch", claims_torch_legacy, parser_torch_legacy_new, NULL},
    {"joblib", claims_joblib, parser_joblib_new, NULL},
    {"json", claims_json, parser_json_new},
    {"pickle", claims_pickle, parser_pickle_new},
};

struct detect {
    struct parser base;
    struct report *report;
    const struct parse_options *options;
    char extension[16];
    char stem[256]; /* base name without extension */
    uint8_t head[DETECT_BYTES];
    size_t head_len;
    bool decided;
    struct parser *inner; /* NULL once decided: no format claimed the data */
};

static void decide(struct detect *d)
{
    d->decided = true;
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        if (!formats[i].claims(d->head, d->head_len, d->extension)) continue;
        d->inner = formats[i].create_named ? formats[i].create_named(d->report, d->options, d->stem)
                                           : formats[i].create(d->report, d->options);
        if (!d->inner) {
            report_error(d->report, "%s: out of memory", formats[i].name);
            return;
        }
        d->base.format = d->inner->format;
        d->base.tolerates_rewrites = d->inner->tolerates_rewrites;
        d->base.on_disk = d->inner->on_disk;
        d->inner->feed(d->inner, d->head, d->head_len);
        return;
    }
}

static void detect_feed(struct parser *p, const uint8_t *data, size_t len)
{
    struct detect *d = (struct detect *)p;
    if (!d->decided) {
        size_t take = DETECT_BYTES - d->head_len < len ? DETECT_BYTES - d->head_len : len;
        memcpy(d->head + d->head_len, data, take);
        d->head_len += take;
        data += take;
        len -= take;
        if (d->head_len < DETECT_BYTES) return;
        decide(d);
    }
    if (d->inner && len > 0) d->inner->feed(d->inner, data, len);
    if (d->inner) d->base.format = d->inner->format; /* a zip says which later */
}

static bool detect_finish(struct parser *p)
{
    struct detect *d = (struct detect *)p;
    if (!d->decided) decide(d);
    /* Bytes no parser claims are reported as format "unknown": nothing says they are
     * incomplete. */
    if (!d->inner) return true;
    bool whole = d->inner->finish(d->inner);
    d->base.format = d->inner->format;
    return whole;
}

static void detect_destroy(struct parser *p)
{
    struct detect *d = (struct detect *)p;
    if (d->inner) d->inner->destroy(d->inner);
    free(d);
}

struct parser *parser_detect_new(const char *path, struct report *r, const struct parse_options *o)
{
    struct detect *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->base = (struct parser){.format = "unknown",
                              .feed = detect_feed,
                              .finish = detect_finish,
                              .destroy = detect_destroy};
    d->report = r;
    d->options = o;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot) snprintf(d->extension, sizeof d->extension, "%s", dot + 1);
    int stem_len = dot ? (int)(dot - base) : (int)strlen(base);
    snprintf(d->stem, sizeof d->stem, "%.*s", stem_len, base);
    return &d->base;
}

uint8_t *parse_read_buffer(void)
{
    /* Page-aligned: the kernel's copy into a buffer 16 bytes into a page (what malloc
     * returns for this size) ran at a third of the speed. */
    return aligned_alloc(4096, PARSE_READ_CHUNK);
}

enum parse_slice parse_feed_slice(int fd, off_t *offset, off_t stop, uint8_t *buf, struct parser *p,
                                  struct report *r)
{
    while (*offset < stop) {
        if (p->on_disk) return PARSE_AT_END; /* the format is read from disk, not fed */
        size_t want =
            stop - *offset < PARSE_READ_CHUNK ? (size_t)(stop - *offset) : PARSE_READ_CHUNK;
        ssize_t n = pread(fd, buf, want, *offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            report_error(r, "read failed at byte %lld: %s", (long long)*offset, strerror(errno));
            return PARSE_READ_FAILED;
        }
        if (n == 0) return PARSE_AT_END;
        p->feed(p, buf, (size_t)n);
        *offset += n;
    }
    return PARSE_MORE;
}

bool parse_feed_pread(int fd, off_t from, struct parser *p, struct report *r)
{
    uint8_t *buf = parse_read_buffer();
    if (!buf) {
        report_error(r, "out of memory");
        return false;
    }
    off_t offset = from;
    enum parse_slice result;
    do
        result = parse_feed_slice(fd, &offset, INT64_MAX, buf, p, r);
    while (result == PARSE_MORE);
    free(buf);
    return result == PARSE_AT_END;
}

bool parse_fd_with(int fd, const char *path, struct report *r, const struct parse_options *o,
                   const char **format, parse_source *source)
{
    struct parser *p = parser_detect_new(path, r, o);
    if (!p) {
        report_error(r, "out of memory");
        *format = "unknown";
        return false;
    }
    bool read_ok = source(fd, 0, p, r);
    bool complete = p->finish(p) && read_ok;
    *format = p->format;
    p->destroy(p);
    return complete;
}

bool parse_fd(int fd, const char *path, struct report *r, const struct parse_options *o,
              const char **format)
{
    return parse_fd_with(fd, path, r, o, format, parse_feed_pread);
}
