/* small_writes.c — the benchmark for the untracked-descriptor fast path.
 *
 * Writes COUNT one-byte writes to PATH (truncated first), in ROUNDS rounds, and prints
 * the fastest round's time per call as JSON: on a shared machine the fastest round is the
 * stable estimate. Run plainly and with libckmon.so preloaded, the difference is what
 * the write wrapper costs a program that writes to files ckmon does not watch.
 *
 * Usage: small_writes PATH COUNT
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"

#define ROUNDS 10 /* short rounds: more of them miss the other tenants */

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PATH COUNT\n", argv[0]);
        return 2;
    }
    long count = atol(argv[2]);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    char byte = 'x';
    long per_round = count / ROUNDS > 0 ? count / ROUNDS : 1;
    double best = 0, total = 0;
    for (int round = 0; round < ROUNDS; round++) {
        double start = seconds();
        for (long i = 0; i < per_round; i++)
            if (write(fd, &byte, 1) != 1) {
                perror("write");
                return 1;
            }
        double elapsed = seconds() - start;
        total += elapsed;
        if (round == 0 || elapsed < best) best = elapsed;
    }
    close(fd);
    printf("{\"seconds\": %.9f, \"ns_per_call\": %.2f, \"rounds\": %d}\n", total,
           best * 1e9 / per_round, ROUNDS);
    return 0;
}
