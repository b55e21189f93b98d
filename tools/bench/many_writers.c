/* many_writers.c — the collector's load benchmark: WRITERS processes each write FILES
 * small JSON checkpoints (DIR/wW_F.json) as fast as they can, so that the collector
 * receives WRITERS * FILES records at once through as many agent connections.
 *
 * Usage: many_writers DIR WRITERS FILES
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int write_files(const char *dir, int writer, int files)
{
    char path[4096], text[128];
    for (int f = 0; f < files; f++) {
        snprintf(path, sizeof path, "%s/w%d_%d.json", dir, writer, f);
        int len = snprintf(text, sizeof text, "{\"writer\": %d, \"step\": %d, \"loss\": %g}\n",
                           writer, f, 1.0 / (f + 1));
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, text, (size_t)len) != len || close(fd) != 0) {
            perror(path);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIR WRITERS FILES\n", argv[0]);
        return 2;
    }
    int writers = atoi(argv[2]), files = atoi(argv[3]), failed = 0;
    for (int w = 0; w < writers; w++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) _exit(write_files(argv[1], w, files));
    }
    int status;
    while (wait(&status) > 0)
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    return failed;
}
