/* signal_writer.c — a correct program whose signal handler writes its checkpoint.
 *
 * write() is async-signal-safe, so a SIGALRM handler may write a file while the main
 * thread is anywhere, inside malloc included. This program builds a pickle in memory
 * (a dict of KEYS ints: "k<i>" -> 3*i), then lets a fast interval timer's handler
 * write it CHUNK bytes per signal while the main thread allocates and frees without
 * pause. It exits 0 once the handler has written everything and the file is closed,
 * after checking that sigaction and signal report back the handlers it installed.
 *
 * usage: signal_writer PATH [siginfo]   siginfo: an SA_SIGINFO handler, which checks
 *                                       the siginfo it is given
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define KEYS  400
#define CHUNK 7

static unsigned char pickle[KEYS * 16 + 16];
static size_t pickle_len;
static volatile sig_atomic_t written_to; /* bytes the handler has written */
static int fd = -1;

static void put(const void *bytes, size_t n)
{
    memcpy(pickle + pickle_len, bytes, n);
    pickle_len += n;
}

static void put_u32(unsigned v)
{
    unsigned char b[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24};
    put(b, 4);
}

/* Protocol 2: PROTO 2, EMPTY_DICT, MARK, (BINUNICODE key, BININT value)*, SETITEMS, STOP. */
static void build_pickle(void)
{
    put("\x80\x02}(", 4);
    for (unsigned i = 0; i < KEYS; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "k%u", i);
        put("X", 1);
        put_u32((unsigned)n);
        put(key, (size_t)n);
        put("J", 1);
        put_u32(3 * i);
    }
    put("u.", 2);
}

static volatile sig_atomic_t bad_info;

static void on_alarm(int sig)
{
    (void)sig;
    size_t at = (size_t)written_to;
    if (at >= pickle_len) return;
    size_t n = pickle_len - at < CHUNK ? pickle_len - at : CHUNK;
    ssize_t w = write(fd, pickle + at, n);
    if (w > 0) written_to = (sig_atomic_t)(at + (size_t)w);
}

static void on_alarm_info(int sig, siginfo_t *info, void *context)
{
    if (!info || info->si_signo != SIGALRM || !context) bad_info = 1;
    on_alarm(sig);
}

/* What sigaction and signal say is installed must be what was installed. */
static int check_reported(bool siginfo)
{
    struct sigaction now;
    if (sigaction(SIGALRM, NULL, &now) != 0) return 1;
    if (siginfo ? now.sa_sigaction != on_alarm_info || !(now.sa_flags & SA_SIGINFO)
                : now.sa_handler != on_alarm || (now.sa_flags & SA_SIGINFO))
        return 1;
    if (signal(SIGUSR1, SIG_IGN) != SIG_DFL || signal(SIGUSR1, on_alarm) != SIG_IGN ||
        signal(SIGUSR1, SIG_DFL) != on_alarm)
        return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: signal_writer PATH [siginfo]\n");
        return 2;
    }
    bool siginfo = argc > 2 && !strcmp(argv[2], "siginfo");
    build_pickle();
    fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    struct sigaction act = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    if (siginfo) {
        act.sa_sigaction = on_alarm_info;
        act.sa_flags |= SA_SIGINFO;
    }
    sigemptyset(&act.sa_mask);
    if (sigaction(SIGALRM, &act, NULL) != 0 || check_reported(siginfo) != 0) {
        fprintf(stderr, "sigaction or signal reported another handler\n");
        return 3;
    }
    struct itimerval every = {.it_interval = {0, 50}, .it_value = {0, 50}};
    if (setitimer(ITIMER_REAL, &every, NULL) != 0) return 1;
    void *held[64] = {0};
    for (unsigned long i = 0; (size_t)written_to < pickle_len; i++) {
        unsigned slot = (unsigned)(i * 2654435761u) % 64;
        free(held[slot]);
        held[slot] = malloc(16 + (i * 40503u) % 4000);
        if (held[slot]) memset(held[slot], (int)i, 16);
    }
    struct itimerval stop = {0};
    setitimer(ITIMER_REAL, &stop, NULL);
    for (unsigned i = 0; i < 64; i++)
        free(held[i]);
    if (close(fd) != 0) return 1;
    if (bad_info) {
        fprintf(stderr, "the SA_SIGINFO handler got a wrong siginfo\n");
        return 4;
    }
    printf("wrote %zu bytes\n", pickle_len);
    return 0;
}
