/* zip.c — the streaming local-entry walker (zip.h).
 *
 * The walker is a state machine over the archive's bytes: a 4-byte signature, the
 * 26 fixed bytes of a local header, its name and extra field, the member's data, an
 * optional data descriptor, then the next signature. The central directory is read
 * for its CRCs; the archive ends with its end-of-central-directory record (after the
 * zip64 ones, if any) and its comment. What follows is not read, unless the caller asks
 * where the archive ended (zip_walker_feed_archive: a stream of archives, DCP's .distcp).
 *
 * Where a stored member ends (zip.h): its size when the header gives one; else where
 * its handler says; else, with flag bit 3, at the first "PK\7\8" whose CRC-32 and
 * sizes match the bytes before it (16-byte or zip64 24-byte form); else it is empty.
 * A data descriptor after a delimited member is 16 bytes, or 24 when the 4 bytes after
 * those 16 are not a zip signature (zip64 sizes).
 *
 * Each member's CRC-32 (of its content, inflated) is computed as the bytes pass and
 * checked against the data descriptor, else the local header when the header was filled
 * in, else (Python's zipfile seeks back to fill in the header, which a live walk never
 * sees) the member's entry in the central directory: silent corruption and copies that
 * changed bytes make the record incomplete with an error naming the member. Inside a
 * monitored program (crc_after_close) the CRCs are left to the collector, which checks
 * the finished file (zip_check.h): a CRC pass in the program's thread cost a third of a
 * torch.save's time.
 */
#include "zip.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "zip_format.h"

#define LOCAL_FIXED     (ZIP_LOCAL_FIXED - 4)   /* local header after its signature */
#define CENTRAL_FIXED   (ZIP_CENTRAL_FIXED - 4) /* central directory entry after its signature */
#define MAX_CHECKED     (1u << 20) /* members whose CRC waits for the central directory */
#define FLAG_DESCRIPTOR 0x0008
#define DESC_SHORT      16 /* signature, crc, u32 sizes */
#define DESC_LONG       24 /* signature, crc, u64 sizes */
#define INFLATE_OUT     (32u << 10)

enum zip_state {
    ZIP_SIGNATURE,
    ZIP_HEADER,
    ZIP_NAME_EXTRA,
    ZIP_STORED, /* delimited by a known size or by the handler */
    ZIP_SKIP,   /* the rest of a known size nobody reads */
    ZIP_INFLATE,
    ZIP_SCAN, /* stored, of unknown size: look for its data descriptor */
    ZIP_DESCRIPTOR,
    ZIP_DESC_TAIL, /* the last 8 bytes of a zip64 descriptor */
    ZIP_CD_HEADER, /* a central directory entry's fixed part */
    ZIP_CD_VAR,    /* its name, extra field and comment */
    ZIP_CENTRAL,   /* unknown bytes after the central directory: not needed */
    ZIP_END64,     /* the zip64 end record's size field */
    ZIP_LOC64,     /* the zip64 end locator after its signature */
    ZIP_END,       /* the end record after its signature, to its comment's length */
    ZIP_TRAILER,   /* the rest of the zip64 end record, or the comment: skipped */
    ZIP_ENDED,     /* after the end record: not this archive's bytes */
    ZIP_FAILED,
};

struct zip_walker {
    struct report *report;
    const char *format;
    const struct zip_handler *handler;
    void *ctx;

    enum zip_state state;
    uint64_t offset; /* archive bytes taken */
    uint8_t fixed[CENTRAL_FIXED];
    size_t need, have;   /* of fixed (or of the name and extra field) */
    uint8_t *name_extra; /* a header's name and extra field (kept from header to header) */
    size_t name_extra_cap;
    bool desc_tail_possible; /* a 16-byte descriptor was just read */

    struct zip_member member;
    bool in_member;  /* begin was called and end not yet */
    bool delimiting; /* the handler says where the content ends */
    bool handler_done;
    uint64_t size;  /* the stored size the header gives (0: none) */
    uint64_t left;  /* ZIP_STORED/ZIP_SKIP: bytes to go; UINT64_MAX: handler's call */
    uint64_t taken; /* the member's raw bytes so far */

    z_stream z;
    bool z_live;
    uint8_t *out; /* inflate output, INFLATE_OUT bytes */

    uint32_t crc; /* ZIP_SCAN: CRC-32 of the bytes before the window */
    uint8_t window[DESC_LONG];
    size_t window_len;
    uint8_t replay[DESC_LONG]; /* bytes after a found descriptor, taken but not yet walked */
    size_t replay_len;

    /* CRC-32 checks */
    uint32_t content_crc;     /* of the member's content so far */
    bool crc_on;              /* computed for this member (a method we read) */
    bool crc_after_close;     /* none computed: left for the finished file (zip.h) */
    uint32_t header_crc;      /* the local header's, when header_filled */
    bool header_filled;       /* the header says CRC or sizes (not zipfile's zeros) */
    uint64_t *crcs;           /* per member: CRC | CRC_KNOWN | CRC_CHECKED */
    size_t members, crcs_cap; /* members seen; crcs allocated */
    size_t central_index;     /* central directory entries read */
    bool in_central;          /* a central directory entry was seen */
    bool crc_bad;             /* some member's CRC did not match */
    bool last_trailer;        /* ZIP_TRAILER: the comment, ZIP_ENDED after it */
};

#define CRC_KNOWN   (1ull << 32)
#define CRC_CHECKED (1ull << 33)

static void fail(struct zip_walker *w, const char *why)
{
    report_error(w->report, "%s: %s at byte %" PRIu64, w->format, why, w->offset);
    if (w->in_member) w->handler->end(w->ctx, false);
    w->in_member = false;
    w->state = ZIP_FAILED;
}

static void expect(struct zip_walker *w, enum zip_state state, size_t need)
{
    w->state = state;
    w->need = need;
    w->have = 0;
}

/* A member's computed CRC against what the archive says (where: which part said it). */
static void check_crc(struct zip_walker *w, const char *name, uint32_t computed, uint32_t stated,
                      const char *where)
{
    if (computed == stated) return;
    report_error(w->report, "%s: %s: CRC-32 mismatch: content %08x, %s says %08x", w->format, name,
                 computed, where, stated);
    w->crc_bad = true;
}

/* The member's computed CRC, for the central directory to confirm; checked: already
 * compared with the header or descriptor. */
static void remember_crc(struct zip_walker *w, bool checked)
{
    size_t i = w->members++;
    if (i >= MAX_CHECKED) return;
    if (i >= w->crcs_cap) {
        size_t cap = w->crcs_cap ? w->crcs_cap * 2 : 64;
        uint64_t *more = realloc(w->crcs, cap * sizeof *more);
        if (!more) return;
        w->crcs = more;
        w->crcs_cap = cap;
    }
    w->crcs[i] = w->crc_on ? (w->content_crc | CRC_KNOWN | (checked ? CRC_CHECKED : 0)) : 0;
}

/* The member's raw data ended: its descriptor (if any, and not already found by the
 * scan) comes next. */
static void end_data(struct zip_walker *w)
{
    if (w->z_live) inflateEnd(&w->z);
    w->z_live = false;
    if (w->in_member) w->handler->end(w->ctx, true);
    w->in_member = false;
    if (w->state == ZIP_SCAN) { /* its descriptor was found by this very CRC */
        w->content_crc = w->crc;
        remember_crc(w, true);
        return expect(w, ZIP_SIGNATURE, 4);
    }
    if (w->member.flags & FLAG_DESCRIPTOR) {
        remember_crc(w, w->crc_on);
        return expect(w, ZIP_DESCRIPTOR, DESC_SHORT);
    }
    if (w->crc_on && w->header_filled)
        check_crc(w, w->member.name, w->content_crc, w->header_crc, "the local header");
    remember_crc(w, w->header_filled);
    expect(w, ZIP_SIGNATURE, 4);
}

static void start_scan(struct zip_walker *w)
{
    w->crc = (uint32_t)crc32(0, Z_NULL, 0);
    w->window_len = 0;
    expect(w, ZIP_SCAN, 0);
}

static void start_member(struct zip_walker *w)
{
    const uint8_t *h = w->fixed;
    size_t name_len = le16(h + 22), extra_len = le16(h + 24);
    uint64_t csize = le32(h + 14), usize = le32(h + 18);

    memcpy(w->member.name, w->name_extra, name_len);
    w->member.name[name_len] = '\0';
    w->member.flags = (uint16_t)le16(h + 2);
    w->member.method = (uint16_t)le16(h + 4);
    zip64_apply(w->name_extra + name_len, extra_len, &usize, &csize, NULL);
    w->size = csize == UINT32_MAX ? 0 : csize;
    w->taken = 0;
    w->handler_done = false;
    w->content_crc = (uint32_t)crc32(0, Z_NULL, 0);
    w->header_crc = le32(h + 10);
    w->header_filled = w->header_crc || csize || usize;
    bool readable =
        w->member.method == ZIP_METHOD_STORED || w->member.method == ZIP_METHOD_DEFLATED;
    w->crc_on = readable && !w->crc_after_close;
    if (readable && w->crc_after_close) w->report->crc_left = true;

    bool descriptor = w->member.flags & FLAG_DESCRIPTOR;
    if (w->member.method != ZIP_METHOD_STORED && w->member.method != ZIP_METHOD_DEFLATED) {
        report_error(w->report, "%s: %s: compression method %u not read", w->format, w->member.name,
                     w->member.method);
        if (w->size) {
            w->left = w->size;
            return expect(w, ZIP_SKIP, 0);
        }
        if (descriptor) return start_scan(w);
        return fail(w, "member of unknown size");
    }
    w->in_member = true;
    w->delimiting = w->handler->begin(w->ctx, &w->member);
    if (w->member.method == ZIP_METHOD_DEFLATED) {
        memset(&w->z, 0, sizeof w->z);
        if (inflateInit2(&w->z, -MAX_WBITS) != Z_OK) return fail(w, "out of memory");
        w->z_live = true;
        return expect(w, ZIP_INFLATE, 0);
    }
    if (w->size || w->delimiting) {
        w->left = w->size ? w->size : UINT64_MAX;
        return expect(w, ZIP_STORED, 0);
    }
    if (descriptor) return start_scan(w);
    end_data(w); /* sizes of zero and nothing to say otherwise: an empty member */
}

static void end_signature(struct zip_walker *w)
{
    uint32_t sig = le32(w->fixed);
    bool tail_possible = w->desc_tail_possible;
    w->desc_tail_possible = false;
    if (sig == ZIP_SIG_LOCAL) return expect(w, ZIP_HEADER, LOCAL_FIXED);
    if (sig == ZIP_SIG_CENTRAL) return expect(w, ZIP_CD_HEADER, CENTRAL_FIXED);
    if (sig == ZIP_SIG_ZIP64_END) return expect(w, ZIP_END64, 8);
    if (sig == ZIP_SIG_ZIP64_LOC) return expect(w, ZIP_LOC64, 16);
    if (sig == ZIP_SIG_END) return expect(w, ZIP_END, 18);
    if (w->in_central) return expect(w, ZIP_CENTRAL, 0);
    if (tail_possible) return expect(w, ZIP_DESC_TAIL, DESC_LONG - DESC_SHORT - 4);
    fail(w, "not a zip local header");
}

/* Room for a header's variable part in name_extra: one buffer for all headers, not a
 * malloc and free per member (a tensor's, in torch.save). */
static bool name_extra_room(struct zip_walker *w, size_t n)
{
    if (n <= w->name_extra_cap) return true;
    uint8_t *grown = realloc(w->name_extra, n);
    if (!grown) return false;
    w->name_extra = grown;
    w->name_extra_cap = n;
    return true;
}

static void end_header(struct zip_walker *w)
{
    size_t name_len = le16(w->fixed + 22), extra_len = le16(w->fixed + 24);
    if (name_len > ZIP_MAX_NAME) return fail(w, "member name too long");
    if (!name_extra_room(w, name_len + extra_len + 1)) return fail(w, "out of memory");
    expect(w, ZIP_NAME_EXTRA, name_len + extra_len);
    if (w->need == 0) start_member(w);
}

/* Fixed-size pieces: the signature, header, name and extra, descriptor. */
static void take_fixed_done(struct zip_walker *w);

static size_t take_fixed(struct zip_walker *w, const uint8_t *data, size_t len)
{
    size_t n = w->need - w->have < len ? w->need - w->have : len;
    uint8_t *into = w->state == ZIP_NAME_EXTRA || w->state == ZIP_CD_VAR ? w->name_extra : w->fixed;
    if (w->state != ZIP_DESC_TAIL) memcpy(into + w->have, data, n);
    w->have += n;
    if (w->have < w->need) return n;
    /* Offsets in errors: just past the field, whatever pieces it arrived in. */
    uint64_t before = w->offset;
    w->offset += n;
    take_fixed_done(w);
    w->offset = before;
    return n;
}

/* A central directory entry's fixed part: read its name (for errors), extra field and
 * comment next. */
static void end_central_header(struct zip_walker *w)
{
    w->in_central = true;
    size_t var = le16(w->fixed + 24) + le16(w->fixed + 26) + le16(w->fixed + 28);
    if (!name_extra_room(w, var + 1)) return fail(w, "out of memory");
    expect(w, ZIP_CD_VAR, var);
}

/* A central directory entry is complete: confirm the CRC of its member, when the local
 * header and descriptor could not. Entries are in the order of the members. */
static void end_central_entry(struct zip_walker *w)
{
    size_t i = w->central_index++;
    size_t name_len = le16(w->fixed + 24);
    uint64_t known = i < w->members && i < MAX_CHECKED && i < w->crcs_cap ? w->crcs[i] : 0;
    if ((known & CRC_KNOWN) && !(known & CRC_CHECKED)) {
        char name[ZIP_MAX_NAME + 1];
        size_t n = name_len < ZIP_MAX_NAME ? name_len : ZIP_MAX_NAME;
        memcpy(name, w->name_extra, n);
        name[n] = '\0';
        check_crc(w, name, (uint32_t)known, le32(w->fixed + 12), "the central directory");
    }
    expect(w, ZIP_SIGNATURE, 4);
}

/* The zip64 end record's remaining size, or the end record's comment, to skip. */
static void skip_trailer(struct zip_walker *w, uint64_t size, bool last)
{
    w->last_trailer = last;
    w->left = size;
    if (size) return expect(w, ZIP_TRAILER, 0);
    if (last) return expect(w, ZIP_ENDED, 0);
    expect(w, ZIP_SIGNATURE, 4);
}

/* A fixed-size field is complete: what it says. */
static void take_fixed_done(struct zip_walker *w)
{
    switch (w->state) {
    case ZIP_END64:
        skip_trailer(w, le64(w->fixed), false);
        break;
    case ZIP_END:
        skip_trailer(w, le16(w->fixed + 16), true);
        break;
    case ZIP_SIGNATURE:
        end_signature(w);
        break;
    case ZIP_HEADER:
        end_header(w);
        break;
    case ZIP_NAME_EXTRA:
        start_member(w);
        break;
    case ZIP_CD_HEADER:
        end_central_header(w);
        if (w->state == ZIP_CD_VAR && w->need == 0) end_central_entry(w);
        break;
    case ZIP_CD_VAR:
        end_central_entry(w);
        break;
    case ZIP_DESCRIPTOR:
        if (le32(w->fixed) != ZIP_SIG_DESCRIPTOR) {
            fail(w, "no data descriptor after the member");
            break;
        }
        if (w->crc_on)
            check_crc(w, w->member.name, w->content_crc, le32(w->fixed + 4), "the data descriptor");
        expect(w, ZIP_SIGNATURE, 4);
        w->desc_tail_possible = true;
        break;
    default:
        expect(w, ZIP_SIGNATURE, 4);
        break;
    }
}

/* Handlers see the content of every member they delimit or whose size is known; they
 * stop seeing it once they took less than they were offered. */
static size_t hand_over(struct zip_walker *w, const uint8_t *data, size_t len)
{
    if (w->handler_done) return len;
    size_t took = w->handler->data(w->ctx, data, len);
    if (took < len) w->handler_done = true;
    return took;
}

static size_t take_stored(struct zip_walker *w, const uint8_t *data, size_t len)
{
    bool by_handler = w->left == UINT64_MAX;
    size_t n = w->left < len ? (size_t)w->left : len;
    if (w->state == ZIP_STORED) {
        size_t took = hand_over(w, data, n);
        if (by_handler) n = took; /* the handler's end is the member's */
        if (w->crc_on) w->content_crc = (uint32_t)crc32(w->content_crc, data, (uInt)n);
    }
    if (!by_handler) w->left -= n;
    w->taken += n;
    if (w->left == 0 || (by_handler && w->handler_done)) end_data(w);
    return n;
}

static size_t take_inflated(struct zip_walker *w, const uint8_t *data, size_t len)
{
    w->z.next_in = (Bytef *)data;
    w->z.avail_in = len > UINT32_MAX ? UINT32_MAX : (uInt)len;
    int rc;
    do {
        w->z.next_out = w->out;
        w->z.avail_out = INFLATE_OUT;
        rc = inflate(&w->z, Z_NO_FLUSH);
        size_t out = INFLATE_OUT - w->z.avail_out;
        if (out) {
            if (w->crc_on) w->content_crc = (uint32_t)crc32(w->content_crc, w->out, (uInt)out);
            hand_over(w, w->out, out);
        }
    } while (rc == Z_OK && (w->z.avail_in > 0 || w->z.avail_out == 0));
    size_t used = len - w->z.avail_in;
    w->taken += used;
    if (rc == Z_STREAM_END) {
        inflateEnd(&w->z);
        w->z_live = false;
        w->left = w->size > w->taken ? w->size - w->taken : 0;
        if (w->left) return expect(w, ZIP_SKIP, 0), used; /* the header's size goes further */
        end_data(w);
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) { /* Z_BUF_ERROR: more input needed */
        /* Where inflate notices depends on how the bytes were cut: name the member's
         * first data byte instead, so every split gives the same record. */
        uint64_t noticed = w->offset;
        w->offset -= w->taken - used;
        fail(w, "bad deflate data in the member whose data starts");
        w->offset = noticed;
        return len;
    }
    return used;
}

/* Whether the window holds, from its start, a data descriptor of `form` bytes for the
 * w->taken bytes before it. */
static bool descriptor_at_window(const struct zip_walker *w, size_t form)
{
    const uint8_t *d = w->window;
    if (w->window_len < form || le32(d) != ZIP_SIG_DESCRIPTOR || le32(d + 4) != w->crc)
        return false;
    if (form == DESC_SHORT) return le32(d + 8) == w->taken && le32(d + 12) == w->taken;
    return le64(d + 8) == w->taken && le64(d + 16) == w->taken;
}

/* Bytes that are surely data (no descriptor starts at them): into the CRC. */
static void pass_data(struct zip_walker *w, const uint8_t *bytes, size_t n)
{
    w->crc = (uint32_t)crc32(w->crc, bytes, (uInt)n);
    w->taken += n;
    if (w->handler->scanned_too && w->in_member) w->handler->data(w->ctx, bytes, n);
}

/* Only a 'P' can start a descriptor: the window holds the bytes from the latest
 * candidate on (at most DESC_LONG), everything before it is data. */
static size_t take_scanned(struct zip_walker *w, const uint8_t *data, size_t len)
{
    size_t i = 0;
    for (;;) {
        if (w->window_len > 0 && w->window[0] != 'P') {
            const uint8_t *p = memchr(w->window + 1, 'P', w->window_len - 1);
            size_t drop = p ? (size_t)(p - w->window) : w->window_len;
            pass_data(w, w->window, drop);
            memmove(w->window, w->window + drop, w->window_len - drop);
            w->window_len -= drop;
            continue;
        }
        if (w->window_len == 0) {
            const uint8_t *p = memchr(data + i, 'P', len - i);
            size_t skip = p ? (size_t)(p - (data + i)) : len - i;
            for (size_t done = 0; done < skip;) { /* crc32 takes at most 4 GiB at once */
                size_t n = skip - done < (1u << 30) ? skip - done : (1u << 30);
                pass_data(w, data + i + done, n);
                done += n;
            }
            i += skip;
            if (!p) return i;
        }
        size_t fill = DESC_LONG - w->window_len < len - i ? DESC_LONG - w->window_len : len - i;
        memcpy(w->window + w->window_len, data + i, fill);
        w->window_len += fill;
        i += fill;
        size_t form = descriptor_at_window(w, DESC_LONG)    ? DESC_LONG
                      : descriptor_at_window(w, DESC_SHORT) ? DESC_SHORT
                                                            : 0;
        if (form) {
            w->replay_len = w->window_len - form;
            memcpy(w->replay, w->window + form, w->replay_len);
            end_data(w);
            return i;
        }
        if (w->window_len < DESC_LONG) return i; /* more bytes may complete it */
        pass_data(w, w->window, 1);              /* no descriptor at this 'P' */
        memmove(w->window, w->window + 1, DESC_LONG - 1);
        w->window_len--;
    }
}

/* One state's worth of bytes; returns how many it took (at least one when len > 0,
 * unless the state changed without needing input). */
static size_t step(struct zip_walker *w, const uint8_t *data, size_t len)
{
    size_t n;
    switch (w->state) {
    case ZIP_SIGNATURE:
    case ZIP_HEADER:
    case ZIP_NAME_EXTRA:
    case ZIP_DESCRIPTOR:
    case ZIP_DESC_TAIL:
    case ZIP_CD_HEADER:
    case ZIP_CD_VAR:
    case ZIP_END64:
    case ZIP_LOC64:
    case ZIP_END:
        n = take_fixed(w, data, len);
        break;
    case ZIP_TRAILER:
        n = w->left < len ? (size_t)w->left : len;
        if ((w->left -= n) == 0) skip_trailer(w, 0, w->last_trailer);
        break;
    case ZIP_STORED:
    case ZIP_SKIP:
        n = take_stored(w, data, len);
        break;
    case ZIP_INFLATE:
        n = take_inflated(w, data, len);
        break;
    case ZIP_SCAN:
        n = take_scanned(w, data, len);
        break;
    default:
        n = len;
        break;
    }
    w->offset += n;
    return n;
}

/* Returns how many bytes the archive took: all of them, unless it ended. */
static size_t walk(struct zip_walker *w, const uint8_t *data, size_t len)
{
    size_t taken = 0;
    while (len > 0 && w->state != ZIP_ENDED) {
        size_t n = step(w, data, len);
        data += n;
        len -= n;
        taken += n;
        if (w->replay_len) {
            /* Bytes the descriptor scan read past the descriptor: walked before the
             * rest (they cannot lead to another scan: a header is longer). */
            uint8_t again[DESC_LONG];
            size_t k = w->replay_len;
            memcpy(again, w->replay, k);
            w->replay_len = 0;
            w->offset -= k;
            walk(w, again, k);
        }
    }
    return taken;
}

void zip_walker_feed(struct zip_walker *w, const uint8_t *data, size_t len)
{
    walk(w, data, len); /* what follows the archive is not its business */
}

size_t zip_walker_feed_archive(struct zip_walker *w, const uint8_t *data, size_t len)
{
    return walk(w, data, len);
}

bool zip_walker_ended(const struct zip_walker *w)
{
    return w->state == ZIP_ENDED;
}

bool zip_walker_finish(struct zip_walker *w)
{
    if (w->in_central && w->state != ZIP_FAILED) return !w->crc_bad;
    switch (w->state) {
    case ZIP_CENTRAL:
    case ZIP_ENDED:
        return !w->crc_bad;
    case ZIP_FAILED:
        return false;
    default:
        report_error(w->report, "%s: data ended at byte %" PRIu64 "%s%s", w->format, w->offset,
                     w->in_member ? " inside member " : "", w->in_member ? w->member.name : "");
        if (w->in_member) w->handler->end(w->ctx, false);
        w->in_member = false;
        w->state = ZIP_FAILED;
        return false;
    }
}

struct zip_walker *zip_walker_new(struct report *r, const char *format, const struct zip_handler *h,
                                  void *ctx, bool crc_after_close)
{
    struct zip_walker *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->out = malloc(INFLATE_OUT);
    if (!w->out) {
        free(w);
        return NULL;
    }
    w->report = r;
    w->format = format;
    w->handler = h;
    w->crc_after_close = crc_after_close;
    w->ctx = ctx;
    expect(w, ZIP_SIGNATURE, 4);
    return w;
}

void zip_walker_free(struct zip_walker *w)
{
    if (!w) return;
    if (w->z_live) inflateEnd(&w->z);
    free(w->name_extra);
    free(w->crcs);
    free(w->out);
    free(w);
}

/* ---- The first member's name, for format detection (zip.h) ---------------------- */

enum zip_peek zip_peek_first_name(const uint8_t *head, size_t len, bool ended, const char **name,
                                  size_t *name_len)
{
    size_t fixed = 4 + LOCAL_FIXED;
    size_t n = len >= fixed ? le16(head + 4 + 22) : 0;
    if (!ended && (len < fixed || len < fixed + n)) return ZIP_PEEK_MORE;
    if (len < fixed + n || le32(head) != ZIP_SIG_LOCAL) return ZIP_PEEK_NONE;
    *name = (const char *)head + fixed;
    *name_len = n;
    return ZIP_PEEK_NAME;
}
