/* digest.h — the xxh3-128 digest of a checkpoint's bytes (--digest, docs/integrity.md).
 *
 * A running hash fed the file's bytes in order, printed as "xxh3-128:<32 hex digits>"
 * (the canonical, big-endian form `xxhsum -H2` prints). Files the collector parses itself
 * are hashed in the pass that parses them, through a tap parser that hashes what it is
 * fed and passes it on; the others are hashed from disk (digester.h).
 */
#ifndef CKMON_DIGEST_H
#define CKMON_DIGEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "core/parsers/parser.h"

#define DIGEST_PREFIX "xxh3-128:"
/* The prefix, 32 hex digits and the NUL. */
#define DIGEST_TEXT_SIZE (sizeof DIGEST_PREFIX + 32)

/* A file as one look at it saw it (its close, or the start of a read), to tell it from a
 * file put in its place, or changed, afterwards. */
struct file_id {
    bool known;
    int64_t dev, ino, size, mtime_us;
};
void file_id_of(struct file_id *id, const struct stat *st);
/* NULL when st is the file id describes, unchanged (or id is not known); else what
 * differs: "inode", "size" or "modification time". */
const char *file_id_differs(const struct file_id *id, const struct stat *st);

/* Loads libxxhash (once; later calls answer at once). False with a one-line message in
 * err when it cannot be loaded. */
bool digest_load(char *err, size_t err_size);

struct digest;
/* A new running hash; NULL when libxxhash is not loaded or out of memory. */
struct digest *digest_new(void);
void digest_update(struct digest *d, const void *data, size_t len);
/* The digest of everything fed so far. */
void digest_text(struct digest *d, char out[DIGEST_TEXT_SIZE]);
void digest_free(struct digest *d);

/* Feeds d the whole file from offset 0 (pread, so fd's offset is left alone). False
 * with errno set when a read failed, or with errno ECANCELED once *stop became true. */
bool digest_fd(struct digest *d, int fd, const atomic_bool *stop);

/* A digest of the file in fd fed from the reads another pass makes of it (the zip CRC
 * check's, zip_check.h), so that one read of the page cache serves both. A piece that
 * pass read is hashed where it carries on from the last byte hashed; a short gap before
 * it (a local header's name, a data descriptor) is read and hashed first; a piece
 * elsewhere (the end records and the central directory, read first) is left for
 * digest_follow_rest, which hashes the file from the last byte hashed to its end. */
struct digest_follow {
    struct digest *digest;
    int fd;
    uint64_t hashed; /* the file's first bytes hashed */
};
/* The pass read len bytes at offset at (follow: a struct digest_follow). */
void digest_follow_seen(void *follow, uint64_t at, const uint8_t *data, size_t len);
/* As digest_fd, for what the pass did not read in order. */
bool digest_follow_rest(struct digest_follow *f, const atomic_bool *stop);

/* A parser that hashes every byte fed to it and passes it on to inner, which it owns
 * from then on; inner itself when no hash could be made. */
struct parser *digest_tap_new(struct parser *inner);
/* The digest of what a tap was fed; false when p is not a tap. */
bool digest_tap_text(struct parser *p, char out[DIGEST_TEXT_SIZE]);

#endif
