/* read_opens.c — the benchmark for opens for reading that are no checkpoint's.
 *
 * Opens PATH for reading COUNT times, closing it each time: what Python does for every
 * module it imports. Run under callgrind with and without libckmon.so preloaded, the
 * difference is what the agent's quick path test (docs/agent.md, "Loads") costs such
 * an open and its close.
 *
 * Usage: read_opens PATH COUNT
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PATH COUNT\n", argv[0]);
        return 2;
    }
    long count = atol(argv[2]);
    for (long i = 0; i < count; i++) {
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            perror(argv[1]);
            return 1;
        }
        close(fd);
    }
    return 0;
}
