/* digest_speed.c — how fast the collector hashes a file for --digest (collector/digest.c).
 *
 * Hashes FILE with digest_fd, the collector's own read-and-hash loop, REPEAT times and
 * prints the best run as one JSON object: bytes, seconds, GB/s and the digest. Run on a
 * file in the page cache (the bench writes it to /dev/shm), it measures what the
 * collector's worker costs per checkpoint after the program closed it.
 *
 * Usage: digest_speed FILE [REPEAT]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "collector/digest.h"

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    char err[256], text[DIGEST_TEXT_SIZE];
    struct stat st;
    int repeat = argc > 2 ? atoi(argv[2]) : 5;
    int fd = argc > 1 ? open(argv[1], O_RDONLY) : -1;
    if (fd < 0 || fstat(fd, &st) < 0 || repeat < 1) {
        fprintf(stderr, "usage: digest_speed FILE [REPEAT]\n");
        return 2;
    }
    if (!digest_load(err, sizeof err)) {
        fprintf(stderr, "digest_speed: %s\n", err);
        return 1;
    }
    double best = 1e30;
    for (int i = 0; i < repeat; i++) {
        struct digest *d = digest_new();
        double start = seconds();
        if (!d || !digest_fd(d, fd, NULL)) return perror("digest_speed"), 1;
        double took = seconds() - start;
        if (took < best) best = took;
        digest_text(d, text);
        digest_free(d);
    }
    printf("{\"bytes\": %lld, \"seconds\": %.6f, \"gbps\": %.3f, \"digest\": \"%s\"}\n",
           (long long)st.st_size, best, st.st_size / best / 1e9, text);
    close(fd);
    return 0;
}
