/* crc32.c — the CRC-32 through libdeflate when it loads, else zlib's (see crc32.h). */
#include "crc32.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <zlib.h>

/* The soname of libdeflate's ABI 0 (Debian's libdeflate0). */
#define LIBDEFLATE "libdeflate.so.0"

static uint32_t (*deflate_crc32)(uint32_t crc, const void *data, size_t len);
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *lib = dlopen(LIBDEFLATE, RTLD_NOW | RTLD_LOCAL);
    if (lib) *(void **)&deflate_crc32 = dlsym(lib, "libdeflate_crc32");
}

uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len)
{
    pthread_once(&load_once, load);
    if (deflate_crc32) return deflate_crc32(crc, data, len);
    for (size_t n; len; data += n, len -= n) { /* zlib's takes an unsigned length */
        n = len < UINT_MAX ? len : UINT_MAX;
        crc = (uint32_t)crc32(crc, data, (uInt)n);
    }
    return crc;
}
