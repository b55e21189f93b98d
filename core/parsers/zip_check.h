/* zip_check.h — the CRC-32 of every member of a finished zip archive, against its central
 * directory.
 *
 * The streaming walker (zip.h) checks CRCs as the bytes pass. Inside a monitored program
 * that is a pass over every byte of the checkpoint in the program's own thread, a third
 * of a torch.save's time on tmpfs; so the agent leaves the CRCs of the archives it
 * streams to the collector, which checks the finished file from the page cache with this
 * (docs/formats.md, "Checksums"). Random access: the end records, the central directory,
 * each member's local header for where its data starts, then its data. Stored and
 * deflated members are checked; other methods are left alone, as the walker does.
 */
#ifndef CKMON_ZIP_CHECK_H
#define CKMON_ZIP_CHECK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "report.h"

/* Someone else who wants the bytes the check reads (the collector's digest of the same
 * file, taken in the same pass): seen is called with each piece read, in the order read,
 * with its offset in the file. */
struct zip_check_tap {
    void (*seen)(void *ctx, uint64_t at, const uint8_t *data, size_t len);
    void *ctx;
};

/* Checks the archive in fd, reporting each mismatch (and an archive it cannot follow) as
 * an error prefixed with format ("torch", "npz"), in the walker's words. Stops early,
 * reporting nothing more, once *stop is set (may be NULL). Shows tap (may be NULL) what
 * it reads. Returns false when it reported an error or was stopped. */
bool zip_check_crcs(int fd, const char *format, struct report *r, const atomic_bool *stop,
                    const struct zip_check_tap *tap);

#endif
