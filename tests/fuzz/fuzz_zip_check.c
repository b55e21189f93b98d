/* fuzz_zip_check.c — the collector's CRC check of a finished archive (zip_check.h)
 * against arbitrary files (libFuzzer target).
 *
 * The check reads a file the monitored program left behind, so its end records, central
 * directory and local headers are whatever a hostile writer made them: it must stay in
 * bounds and end. Each input is the whole file (a memfd); the property beyond not
 * crashing: an input that passes has no error, one that fails has one.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/parsers/zip_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_zip_check", MFD_CLOEXEC);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) abort();
    struct report r;
    report_init(&r, NULL);
    bool ok = zip_check_crcs(fd, "fuzz", &r, NULL);
    if (ok != (cJSON_GetArraySize(r.errors) == 0)) abort();
    report_free(&r);
    close(fd);
    return 0;
}
