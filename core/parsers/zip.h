/* zip.h — a streaming walk over a zip archive's local file entries.
 *
 * torch.save and np.savez write zip archives, and neither says in the local header how
 * long a member is when the header is written: torch (miniz) sets flag bit 3 and puts
 * the sizes in a data descriptor after the data; Python's zipfile writes zeros and, on
 * a seekable file, seeks back to fill them in afterwards (a rewrite the walker does not
 * need: see tolerates_rewrites in parser.h). So the walker asks whoever handles a
 * member whether it can tell where the member's content ends (a pickle ends at STOP,
 * an .npy stream after the size its header gives, a torch storage after numel x
 * element size); deflated members end where their deflate stream does; a stored member
 * nobody can delimit is scanned for a data descriptor whose CRC and sizes match the
 * bytes before it. The central directory at the end is read for the CRCs it confirms.
 *
 * Memory is bounded: one local header's name and extra field, a 32 KiB inflate window
 * and output buffer, a few bytes of look-ahead.
 */
#ifndef CKMON_ZIP_H
#define CKMON_ZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "report.h"

#define ZIP_MAX_NAME 1024 /* longer member names are refused */

struct zip_member {
    char name[ZIP_MAX_NAME + 1];
    uint16_t flags, method; /* method 0 stored, 8 deflated */
};

/* What a format does with the members, as they stream by. */
struct zip_handler {
    /* A member's data begins. Returns true when the handler will say where the
     * member's content ends, by taking fewer bytes than data() offers. */
    bool (*begin)(void *ctx, const struct zip_member *m);
    /* The next bytes of the member's content (inflated if it was deflated); returns
     * how many belong to it, and is not called again for the member once that is fewer
     * than len. Not called for a stored member of unknown size that the handler did
     * not delimit (the walker finds its end by its data descriptor, unread). */
    size_t (*data)(void *ctx, const uint8_t *bytes, size_t len);
    /* The member ended; whole is false when the archive ended or broke inside it. */
    void (*end)(void *ctx, bool whole);
    /* Also hand data() the content of stored members of unknown size that begin() did
     * not delimit, as the data descriptor scan confirms it (its return is then ignored):
     * TorchScript's storages come before the pickle that says how long they are. */
    bool scanned_too;
};

struct zip_walker;

/* Errors are reported prefixed with format ("torch", "npz"). */
/* crc_after_close: compute no member's CRC-32 (where the descriptor scan needs none),
 * setting r->crc_left instead (parser.h). */
struct zip_walker *zip_walker_new(struct report *r, const char *format, const struct zip_handler *h,
                                  void *ctx, bool crc_after_close);
/* The next bytes of the archive. */
void zip_walker_feed(struct zip_walker *w, const uint8_t *data, size_t len);
/* The same for a stream of archives back to back: returns how many of the bytes belong
 * to this archive, fewer than len once its end-of-central-directory record (and comment)
 * is complete; the rest are the next archive's. */
size_t zip_walker_feed_archive(struct zip_walker *w, const uint8_t *data, size_t len);
/* Whether the archive's end record was complete. */
bool zip_walker_ended(const struct zip_walker *w);
/* The archive ended: true when every member was whole and the central directory was
 * reached; otherwise reports where it stopped. */
bool zip_walker_finish(struct zip_walker *w);
void zip_walker_free(struct zip_walker *w);

/* The first member's name, from the archive's first bytes (head, len of them; ended:
 * there are no more). ZIP_PEEK_MORE: more bytes are needed (at most ZIP_PEEK_BYTES in
 * all); ZIP_PEEK_NONE: not a local header; ZIP_PEEK_NAME: *name (not NUL-terminated,
 * inside head) and *name_len are set. Format detection uses it (detect.c). */
#define ZIP_PEEK_BYTES (30 + ZIP_MAX_NAME)
enum zip_peek { ZIP_PEEK_MORE, ZIP_PEEK_NONE, ZIP_PEEK_NAME };
enum zip_peek zip_peek_first_name(const uint8_t *head, size_t len, bool ended, const char **name,
                                  size_t *name_len);

#endif
