/* fd_limit.c — opens checkpoints until the descriptor limit says no.
 *
 * Lowers its soft RLIMIT_NOFILE to LIMIT, then opens DIR/f<i>.pkl for writing one after
 * another, writing a small pickle into each (so each is a checkpoint the agent reports),
 * until open fails; prints how many it opened and why the next failed, closes them all.
 * Under the agent the count must be the same as without it.
 *
 * usage: fd_limit LIMIT DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fd_limit LIMIT DIR\n");
        return 2;
    }
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = strtoul(argv[1], NULL, 10);
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
        perror("setrlimit");
        return 1;
    }
    static int fds[1 << 16];
    int n = 0;
    for (; n < (int)(sizeof fds / sizeof fds[0]); n++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/f%d.pkl", argv[2], n);
        fds[n] = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fds[n] < 0) break;
        /* pickle.dumps(n % 256, protocol=2): PROTO 2, BININT1 n, STOP */
        unsigned char pickle[] = {0x80, 2, 'K', (unsigned char)(n % 256), '.'};
        if (write(fds[n], pickle, sizeof pickle) != (ssize_t)sizeof pickle) return 1;
    }
    printf("opened %d, then %s\n", n, strerror(errno));
    for (int i = 0; i < n; i++)
        if (close(fds[i]) != 0) return 1;
    return 0;
}
