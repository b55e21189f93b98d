/* fuzz_zip_check.c — the collector's CRC check of a finished archive (zip_check.h)
 * against arbitrary files (libFuzzer target).
 *
 * The check reads a file the monitored program left behind, so its end records, central
 * directory and local headers are whatever a hostile writer made them: it must stay in
 * bounds and end. Each input is the whole file (a memfd); the properties beyond not
 * crashing: an input that passes has no error, one that fails has one; every piece the
 * check shows its tap is the file's bytes at that offset; and the digest taken from the
 * check's own reads (--digest with a CRC check, digest_follow in digest.h) is the digest
 * of the whole file, however the archive leads the check around it.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "collector/digest.h"
#include "core/parsers/zip_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
    const uint8_t *file;
    size_t size;
    struct digest_follow follow;
};

static void seen(void *ctx, uint64_t at, const uint8_t *piece, size_t len)
{
    struct seen *s = ctx;
    if (at > s->size || len > s->size - at || memcmp(s->file + at, piece, len)) abort();
    if (s->follow.digest) digest_follow_seen(&s->follow, at, piece, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int hashing = -1; /* libxxhash loaded */
    char err[200];
    if (hashing < 0) hashing = digest_load(err, sizeof err);
    int fd = memfd_create("fuzz_zip_check", MFD_CLOEXEC);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) abort();
    struct seen s = {
        .file = data, .size = size, .follow = {.digest = hashing ? digest_new() : NULL, .fd = fd}};
    struct zip_check_tap tap = {.seen = seen, .ctx = &s};
    struct report r;
    report_init(&r, NULL);
    bool ok = zip_check_crcs(fd, "fuzz", &r, NULL, &tap);
    if (ok != (cJSON_GetArraySize(r.errors) == 0)) abort();
    report_free(&r);
    if (s.follow.digest) {
        struct digest *whole = digest_new();
        char followed[DIGEST_TEXT_SIZE], read_whole[DIGEST_TEXT_SIZE];
        if (!whole || !digest_follow_rest(&s.follow, NULL) || !digest_fd(whole, fd, NULL)) abort();
        digest_text(s.follow.digest, followed);
        digest_text(whole, read_whole);
        if (strcmp(followed, read_whole)) abort();
        digest_free(whole);
        digest_free(s.follow.digest);
    }
    close(fd);
    return 0;
}
