/* zip_check.c — a finished archive's member CRCs against its central directory
 * (zip_check.h).
 *
 * The end record (found backwards through a comment of up to 64 KiB), then the zip64 end
 * record when the locator before it is there, give the central directory's place; it is
 * read whole (bounded), each entry leads to its local header, whose name and extra field
 * lengths say where the data starts. Offsets are the file's own: an archive that is not
 * at the start of its file (a stream of archives, DCP's .distcp) is not for this check.
 *
 * The members' local headers and data are read through a window of CHECK_READ bytes
 * (bytes_at): a torch.save of 100,000 tensors of 1 KiB has 100,000 members, which a read
 * per header and one per member made 200,000 system calls, most of the collector's CPU
 * time per tensor beyond its instructions.
 *
 * A hostile archive must not make the check endless (the collector's worker does it, and
 * other records wait behind it): members may not take more bytes in all than the file
 * has (a directory whose entries all name the same member), nor inflate beyond what
 * their entries say or to more than CHECK_INFLATE_RATIO times the file.
 */
#include "zip_check.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "crc32.h"
#include "zip.h"
#include "zip_format.h"

#define END_FIXED           22
#define LOC64_SIZE          20
#define END64_FIXED         56
#define MAX_COMMENT         65535
#define MAX_DIRECTORY       (256u << 20) /* 10^6 members' entries fit many times over */
#define CHECK_READ          (1u << 20)
#define CHECK_INFLATE_RATIO 64

struct check {
    int fd;
    const char *format;
    struct report *report;
    const atomic_bool *stop;
    const struct zip_check_tap *tap;
    uint8_t *buf, *out; /* CHECK_READ bytes each: file data, inflated data */
    uint64_t window_at; /* buf holds window_len bytes of the file from here */
    size_t window_len;
    uint64_t read_left, inflate_left; /* the bounds on what members may still take */
    uint64_t prefix;                  /* bytes before the archive in its file */
    bool failed;
};

static bool stopped(const struct check *c)
{
    return c->stop && atomic_load(c->stop);
}

/* Up to len bytes at at, fewer only at the end of the file or on an error. */
static size_t read_some(struct check *c, uint8_t *to, size_t len, uint64_t at)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(c->fd, to + done, len - done, (off_t)(at + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (c->tap) c->tap->seen(c->tap->ctx, at + done, to + done, (size_t)n);
        done += (size_t)n;
    }
    return done;
}

static bool read_at(struct check *c, void *to, size_t len, uint64_t at)
{
    return read_some(c, to, len, at) == len;
}

/* How many of the bytes from at on the window holds (0 when at is outside it). */
static size_t in_window(const struct check *c, uint64_t at)
{
    return at >= c->window_at && at - c->window_at < c->window_len
               ? c->window_len - (size_t)(at - c->window_at)
               : 0;
}

/* len (at most CHECK_READ) bytes at at, from the window, which is read again from at on
 * when it does not hold them all; NULL when the file is shorter. */
static const uint8_t *bytes_at(struct check *c, uint64_t at, size_t len)
{
    if (in_window(c, at) < len) {
        c->window_at = at;
        c->window_len = read_some(c, c->buf, CHECK_READ, at);
        if (c->window_len < len) return NULL;
    }
    return c->buf + (at - c->window_at);
}

static bool broken(struct check *c, const char *what)
{
    report_error(c->report, "%s: cannot check CRC-32s: %s", c->format, what);
    c->failed = true;
    return false;
}

/* Where the central directory is (*at) and how long (*size), from the end records. Its
 * stated offset is corrected, as Python's zipfile does, for bytes before the archive
 * (c->prefix): the directory ends where the end record (or zip64 end record) begins. */
static bool find_directory(struct check *c, uint64_t file_size, uint64_t *at, uint64_t *size)
{
    size_t tail = file_size < END_FIXED + MAX_COMMENT ? (size_t)file_size : END_FIXED + MAX_COMMENT;
    if (tail < END_FIXED || !read_at(c, c->buf, tail, file_size - tail))
        return broken(c, "no end of central directory record");
    size_t end = tail - END_FIXED + 1;
    while (end-- > 0 && le32(c->buf + end) != ZIP_SIG_END) {
    }
    if (end == SIZE_MAX) return broken(c, "no end of central directory record");
    const uint8_t *e = c->buf + end;
    *size = le32(e + 12);
    *at = le32(e + 16);
    uint64_t end_at = file_size - tail + end;
    /* A zip64 locator before the end record means a zip64 end record before it, which
     * holds the real values (torch's writer always adds them). */
    uint8_t loc[LOC64_SIZE], end64[END64_FIXED];
    bool zip64 = end_at >= LOC64_SIZE + END64_FIXED &&
                 read_at(c, loc, sizeof loc, end_at - LOC64_SIZE) && le32(loc) == ZIP_SIG_ZIP64_LOC;
    if (zip64) {
        end_at -= LOC64_SIZE + END64_FIXED;
        if (!read_at(c, end64, sizeof end64, end_at) || le32(end64) != ZIP_SIG_ZIP64_END)
            return broken(c, "no zip64 end of central directory record");
        *size = le64(end64 + 40);
        *at = le64(end64 + 48);
    } else if (*at == UINT32_MAX || *size == UINT32_MAX || le16(e + 10) == 0xffff) {
        return broken(c, "no zip64 end of central directory record");
    }
    if (*size > end_at || *at > end_at - *size)
        return broken(c, "the central directory is not where the end record says");
    c->prefix = end_at - *size - *at;
    *at += c->prefix;
    return true;
}

/* The CRC-32 of the member's content: its csize stored bytes, or what they inflate to. */
static bool content_crc(struct check *c, uint64_t at, uint64_t csize, uint64_t usize, bool deflated,
                        uint32_t *crc)
{
    if (csize > c->read_left) return broken(c, "members overlap");
    c->read_left -= csize;
    if (deflated && usize > c->inflate_left) return broken(c, "members inflate too far");
    c->inflate_left -= deflated ? usize : 0;
    uint64_t out_left = usize;
    z_stream z = {0};
    if (deflated && inflateInit2(&z, -MAX_WBITS) != Z_OK) return broken(c, "out of memory");
    *crc = 0;
    int rc = Z_OK;
    for (uint64_t done = 0; done < csize && rc == Z_OK && !stopped(c);) {
        size_t n = csize - done < CHECK_READ ? (size_t)(csize - done) : CHECK_READ;
        size_t held = in_window(c, at + done);
        if (held && held < n) n = held; /* what the window has; the rest from the next */
        const uint8_t *data = bytes_at(c, at + done, n);
        if (!data) {
            if (deflated) inflateEnd(&z);
            return broken(c, "the file is shorter than its central directory says");
        }
        done += n;
        if (!deflated) {
            *crc = crc32_update(*crc, data, n);
            continue;
        }
        z.next_in = (Bytef *)data;
        z.avail_in = (uInt)n;
        do {
            z.next_out = c->out;
            z.avail_out = CHECK_READ;
            rc = inflate(&z, Z_NO_FLUSH);
            size_t out = CHECK_READ - z.avail_out;
            if (out > out_left) {
                rc = Z_DATA_ERROR; /* longer than its entry says: its CRC cannot match */
                break;
            }
            out_left -= out;
            *crc = crc32_update(*crc, c->out, out);
        } while (rc == Z_OK && (z.avail_in > 0 || z.avail_out == 0));
        if (rc == Z_BUF_ERROR) rc = Z_OK; /* more input needed */
    }
    if (deflated) inflateEnd(&z);
    if (rc != Z_OK && rc != Z_STREAM_END) return broken(c, "bad deflate data");
    return true;
}

/* One central directory entry (len bytes at e, all of it there): its member's check. */
static void check_entry(struct check *c, const uint8_t *e, size_t name_len)
{
    uint32_t method = le16(e + 10), stated = le32(e + 16);
    uint64_t csize = le32(e + 20), usize = le32(e + 24), local = le32(e + 42);
    zip64_apply(e + ZIP_CENTRAL_FIXED + name_len, le16(e + 30), &usize, &csize, &local);
    if (method != ZIP_METHOD_STORED && method != ZIP_METHOD_DEFLATED) return;
    char name[ZIP_MAX_NAME + 1];
    size_t n = name_len < ZIP_MAX_NAME ? name_len : ZIP_MAX_NAME;
    memcpy(name, e + ZIP_CENTRAL_FIXED, n);
    name[n] = '\0';
    const uint8_t *h = NULL;
    uint32_t computed;
    local += c->prefix;
    if (local < c->prefix || !(h = bytes_at(c, local, ZIP_LOCAL_FIXED)) ||
        le32(h) != ZIP_SIG_LOCAL) {
        report_error(c->report, "%s: %s: no local header where the central directory says",
                     c->format, name);
        c->failed = true;
        return;
    }
    uint64_t data = local + ZIP_LOCAL_FIXED + le16(h + 26) + le16(h + 28);
    if (!content_crc(c, data, csize, usize, method == ZIP_METHOD_DEFLATED, &computed) || stopped(c))
        return;
    if (computed == stated) return;
    report_error(c->report,
                 "%s: %s: CRC-32 mismatch: content %08x, the central directory says %08x",
                 c->format, name, computed, stated);
    c->failed = true;
}

static void check_directory(struct check *c, const uint8_t *dir, size_t size)
{
    for (size_t at = 0; at + ZIP_CENTRAL_FIXED <= size && !stopped(c);) {
        const uint8_t *e = dir + at;
        if (le32(e) != ZIP_SIG_CENTRAL) {
            broken(c, "a central directory entry is malformed");
            return;
        }
        size_t name_len = le16(e + 28);
        size_t len = ZIP_CENTRAL_FIXED + name_len + le16(e + 30) + le16(e + 32);
        if (at + len > size) {
            broken(c, "a central directory entry is malformed");
            return;
        }
        check_entry(c, e, name_len);
        at += len;
    }
}

bool zip_check_crcs(int fd, const char *format, struct report *r, const atomic_bool *stop,
                    const struct zip_check_tap *tap)
{
    struct check c = {.fd = fd, .format = format, .report = r, .stop = stop, .tap = tap};
    struct stat st;
    uint64_t at, size;
    uint8_t *dir = NULL;
    if (fstat(fd, &st) < 0) return broken(&c, strerror(errno));
    c.read_left = (uint64_t)st.st_size;
    c.inflate_left = (uint64_t)st.st_size * CHECK_INFLATE_RATIO + CHECK_READ;
    if (!(c.buf = malloc(END_FIXED + MAX_COMMENT > CHECK_READ ? END_FIXED + MAX_COMMENT
                                                              : CHECK_READ)) ||
        !(c.out = malloc(CHECK_READ)))
        broken(&c, "out of memory");
    else if (find_directory(&c, (uint64_t)st.st_size, &at, &size)) {
        if (size > MAX_DIRECTORY)
            broken(&c, "the central directory is larger than 256 MiB");
        else if (!(dir = malloc(size ? size : 1)))
            broken(&c, "out of memory");
        else if (!read_at(&c, dir, size, at))
            broken(&c, "the file is shorter than its central directory says");
        else
            check_directory(&c, dir, size);
    }
    free(dir);
    free(c.out);
    free(c.buf);
    return !c.failed && !stopped(&c);
}
