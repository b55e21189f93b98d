/* dtoa_speed.c — nanoseconds per double of dtoa_shortest, the text records print.
 *
 * Three inputs of COUNT doubles each: float32 values widened (standard-normal, as weights
 * and the head of a record are; they need 16-17 digits), the statistics of such tensors
 * (mean and std: doubles of any bits), and random bit patterns (finite). Best of REPEAT
 * rounds each; one JSON object per line. Under valgrind --tool=callgrind, with a small
 * COUNT and REPEAT 1, it gives instructions per call instead.
 *
 * Usage: dtoa_speed [COUNT [REPEAT]]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "core/dtoa.h"
#include "tests/unit/xorshift.h"

static uint64_t next_random(void)
{
    static uint64_t x = 88172645463325252ull;
    return xorshift64(&x);
}

static double uniform(void)
{
    return ((double)(next_random() >> 11) + 0.5) / 0x1p53;
}

static float normal(void)
{
    return (float)(sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform()));
}

static void fill(const char *kind, double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(kind, "float32")) {
            v[i] = normal() * 0.02f;
        } else if (!strcmp(kind, "statistics")) {
            double sum = 0, squares = 0;
            for (int j = 0; j < 16; j++) {
                double x = normal() * 0.02f;
                sum += x;
                squares += x * x;
            }
            v[i] = i % 2 ? sum / 16 : sqrt(squares / 16 - (sum / 16) * (sum / 16));
        } else {
            do {
                uint64_t bits = next_random();
                memcpy(&v[i], &bits, sizeof bits);
            } while (!isfinite(v[i]));
        }
    }
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1000000;
    int repeat = argc > 2 ? atoi(argv[2]) : 5;
    double *v = malloc(n * sizeof *v);
    if (!v) return 1;
    static const char *const kinds[] = {"float32", "statistics", "random"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        fill(kinds[k], v, n);
        double best = 1e9;
        size_t bytes = 0;
        for (int r = 0; r < repeat; r++) {
            char text[DTOA_TEXT_MAX];
            double start = seconds();
            for (size_t i = 0; i < n; i++)
                bytes += (size_t)dtoa_shortest(v[i], text);
            double t = seconds() - start;
            if (t < best) best = t;
        }
        printf(
            "{\"input\":\"%s\",\"doubles\":%zu,\"ns_per_double\":%.1f,\"bytes_per_double\":%.2f}\n",
            kinds[k], n, best / n * 1e9, (double)bytes / n / repeat);
    }
    free(v);
    return 0;
}
