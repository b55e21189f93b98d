/* crc32.h — the CRC-32 of zip members (zlib's, gzip's polynomial), as fast as the machine
 * allows.
 *
 * zlib 1.2.13 (Debian 12) computes it a byte or a word at a time, some 4.4 instructions a
 * byte: 14% of the collector's instructions for a torch.save of small tensors, and 1.6-1.7
 * GB/s here, for every archive it checks (zip_check.h). libdeflate carries a
 * carry-less multiplication version (PCLMULQDQ) that it picks on the CPU it runs on, some
 * 4.5-5.1 GB/s on the same machine. It is loaded with dlopen on first use, as the collector's
 * other optional libraries are (libdeflate0, which libtiff6 brings too); without it,
 * zlib's crc32 gives the same numbers.
 */
#ifndef CKMON_CRC32_H
#define CKMON_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* crc (0 to start) continued over len bytes at data, as zlib's crc32(crc, data, len). */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len);

#endif
