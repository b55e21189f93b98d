/* zip_format.h — what the zip format fixes, for the two readers of zip archives: the
 * streaming walker (zip.c), which sees an archive's bytes in order as they are written,
 * and the CRC-32 check of a finished file (zip_check.c), which reads them back at random.
 *
 * Both read the same records: signatures, little-endian fields and the zip64 extra field
 * whose 64-bit values stand in for the 32-bit fields that are all ones. One definition
 * keeps the two readers from drifting apart on what an archive says.
 */
#ifndef CKMON_ZIP_FORMAT_H
#define CKMON_ZIP_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define ZIP_SIG_LOCAL       0x04034b50u
#define ZIP_SIG_CENTRAL     0x02014b50u
#define ZIP_SIG_DESCRIPTOR  0x08074b50u
#define ZIP_SIG_ZIP64_END   0x06064b50u
#define ZIP_SIG_ZIP64_LOC   0x07064b50u
#define ZIP_SIG_END         0x06054b50u
#define ZIP_LOCAL_FIXED     30 /* a local header's fixed part, its signature included */
#define ZIP_CENTRAL_FIXED   46 /* a central directory entry's fixed part, likewise */
#define ZIP_METHOD_STORED   0
#define ZIP_METHOD_DEFLATED 8
#define ZIP_EXTRA_ZIP64     0x0001

static inline uint32_t le16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static inline uint32_t le32(const uint8_t *p)
{
    return le16(p) | le16(p + 2) << 16;
}

static inline uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* The zip64 extra field's values stand in for a header's or entry's fields that are all
 * ones, in the format's order: the sizes, then (a central directory entry's) the local
 * header's offset; local is NULL for a local header, which has no such field. */
static inline void zip64_apply(const uint8_t *extra, size_t len, uint64_t *usize, uint64_t *csize,
                               uint64_t *local)
{
    for (size_t at = 0; at + 4 <= len;) {
        size_t field = le16(extra + at + 2);
        if (at + 4 + field > len) return;
        if (le16(extra + at) == ZIP_EXTRA_ZIP64) {
            const uint8_t *p = extra + at + 4;
            size_t n = field;
            if (*usize == UINT32_MAX && n >= 8) *usize = le64(p), p += 8, n -= 8;
            if (*csize == UINT32_MAX && n >= 8) *csize = le64(p), p += 8, n -= 8;
            if (local && *local == UINT32_MAX && n >= 8) *local = le64(p);
            return;
        }
        at += 4 + field;
    }
}

#endif
