/* stats_speed.c — the statistics kernels' speed per dtype, against memcpy.
 *
 * Fills a buffer of SIZE MiB with values of each float dtype (normal values and a few
 * NaN/Inf, as in real weights), times stats_feed over it, and times memcpy of the same
 * bytes: the bandwidth the kernels should approach. Each kernel's runs alternate with
 * memcpy runs, so that both see the same machine (it is shared); best of REPEAT runs
 * each, and the kernel's share of that memcpy bandwidth. Prints one JSON object per line.
 *
 * Usage: stats_speed [SIZE_MIB [REPEAT]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "core/stats.h"

/* xorshift64: rand() would take longer than the kernels being measured. */
static uint64_t next_random(void)
{
    static uint64_t x = 88172645463325252ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

static void fill(enum dtype t, unsigned char *buf, size_t bytes)
{
    size_t n = bytes / dtype_size(t);
    for (size_t i = 0; i < n; i++) {
        float v = (float)(((double)(next_random() >> 11) / 0x1p53 - 0.5) * 0.1);
        if (i % 100003 == 7) v = __builtin_nanf("");
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        if (t == DTYPE_F64) {
            double d = v;
            memcpy(buf + 8 * i, &d, 8);
        } else if (t == DTYPE_F32) {
            memcpy(buf + 4 * i, &v, 4);
        } else if (t == DTYPE_F16) {
            _Float16 h = (_Float16)v;
            memcpy(buf + 2 * i, &h, 2);
        } else {
            uint16_t b = (uint16_t)(bits >> 16);
            memcpy(buf + 2 * i, &b, 2);
        }
    }
}

int main(int argc, char **argv)
{
    size_t bytes = (size_t)(argc > 1 ? atol(argv[1]) : 64) << 20;
    int repeat = argc > 2 ? atoi(argv[2]) : 3;
    unsigned char *src = malloc(bytes), *dst = malloc(bytes);
    if (!src || !dst) return 1;
    memset(dst, 1, bytes);

    static const enum dtype kinds[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_F64};
    static const enum stats_kernel kernels[] = {STATS_KERNEL_PORTABLE, STATS_KERNEL_AVX2};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        fill(kinds[k], src, bytes);
        for (size_t v = 0; v < sizeof kernels / sizeof kernels[0]; v++) {
            if (stats_select_kernel(kernels[v]) != kernels[v]) continue; /* no AVX2 here */
            struct tensor_stats s;
            double best = 1e9, copy = 1e9;
            for (int r = 0; r < repeat; r++) {
                double start = seconds();
                memcpy(dst, src, bytes);
                double t = seconds() - start;
                if (t < copy) copy = t;
                start = seconds();
                stats_init(&s, kinds[k]);
                stats_feed(&s, src, bytes);
                t = seconds() - start;
                if (t < best) best = t;
            }
            printf("{\"dtype\": \"%s\", \"kernel\": \"%s\", \"gb_per_s\": %.3f, "
                   "\"elements_per_ns\": %.3f, \"memcpy_gb_per_s\": %.3f, \"of_memcpy\": %.3f, "
                   "\"mean\": %.6g, \"std\": %.6g}\n",
                   dtype_name(kinds[k]), kernels[v] == STATS_KERNEL_AVX2 ? "avx2" : "portable",
                   bytes / best / 1e9, (double)(bytes / dtype_size(kinds[k])) / best / 1e9,
                   bytes / copy / 1e9, copy / best, s.mean, stats_std(&s));
        }
    }
    stats_select_kernel(STATS_KERNEL_AUTO);
    free(src);
    free(dst);
    return 0;
}
