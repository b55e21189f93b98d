/* many_files.c — the benchmark for files created under names no glob matches.
 *
 * Creates, writes (four 256-byte writes of text: no checkpoint's first bytes) and closes
 * COUNT files in DIR, in ROUNDS rounds over the same names, and prints the fastest round's
 * time per file as JSON. Each such open marks its descriptor undecided and its first write
 * decides (docs/agent.md, "Saves under a temporary name"); run plainly and with
 * libckmon.so preloaded, the difference is what that costs a program that writes many
 * ordinary files.
 *
 * Usage: many_files DIR COUNT
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

#define ROUNDS 5
#define WRITES 4

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s DIR COUNT\n", argv[0]);
        return 2;
    }
    long count = atol(argv[2]);
    char line[256], path[4096];
    memset(line, 'a', sizeof line);
    line[sizeof line - 1] = '\n';
    double best = 0;
    for (int round = 0; round < ROUNDS; round++) {
        double start = seconds();
        for (long i = 0; i < count; i++) {
            snprintf(path, sizeof path, "%s/f%ld.txt", argv[1], i);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) {
                perror(path);
                return 1;
            }
            for (int w = 0; w < WRITES; w++)
                if (write(fd, line, sizeof line) != (ssize_t)sizeof line) {
                    perror("write");
                    return 1;
                }
            close(fd);
        }
        double elapsed = seconds() - start;
        if (round == 0 || elapsed < best) best = elapsed;
    }
    printf("{\"ns_per_file\": %.1f, \"rounds\": %d}\n", best * 1e9 / count, ROUNDS);
    return 0;
}
