/* test_crc32.c — the CRC-32 of zip members (core/parsers/crc32.c) is zlib's.
 *
 * Through libdeflate when the machine has it (tools/install-deps.sh installs it), else
 * zlib itself: either way the same numbers as zlib's crc32 on the same bytes, at every
 * length and alignment the carry-less multiplication's blocks and tails can meet, and
 * continued over pieces as zip_check continues it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <zlib.h>

#include "core/parsers/crc32.h"
#include "xorshift.h"

#define BYTES 5000

static void test_same_as_zlib(void **unused)
{
    static uint8_t data[BYTES + 64];
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)xorshift64(&state);
    for (size_t len = 0; len <= BYTES; len += len < 300 ? 1 : 97)
        for (size_t at = 0; at < 64; at += 7) {
            uint32_t want = (uint32_t)crc32(0, data + at, (uInt)len);
            assert_int_equal(crc32_update(0, data + at, len), want);
            size_t half = len / 3;
            assert_int_equal(
                crc32_update(crc32_update(0, data + at, half), data + at + half, len - half), want);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_same_as_zlib)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
