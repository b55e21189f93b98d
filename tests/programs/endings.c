/* endings.c — leaves with a checkpoint still open, each way a process can end.
 *
 * The agent must report a file that was never closed: at exit() (stdio flushes after
 * the agent's destructor would run, so the agent flushes first), at _exit() (no
 * destructors at all), when a thread other than main ends the process, and when main
 * returns. It writes the JSON document in two halves with a flush between, so that the
 * record cannot come from a write the agent never saw. The file stays open throughout.
 *
 * Two ways check that the agent never writes what the program would not: _exit with the
 * second half still in the stdio buffer (it is lost, with or without the agent), and a
 * forked child that leaves through _exit while its copy of the buffer holds the second
 * half (the parent writes it once, at exit).
 *
 * usage: endings WAY PATH   (WAY: return, exit, _exit, thread_exit, thread__exit,
 *                                 _exit_unflushed, fork_child__exit)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define STATUS 3

static const char document[] = "{\"epoch\": 12, \"loss\": 0.25, \"ending\": \"%s\"}\n";
static const char *way;

static void *end_from_thread(void *arg)
{
    (void)arg;
    if (!strcmp(way, "thread_exit")) exit(STATUS);
    _exit(STATUS);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: endings WAY PATH\n");
        return 2;
    }
    way = argv[1];
    FILE *f = fopen(argv[2], "w");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    char text[256];
    int n = snprintf(text, sizeof text, document, way);
    fwrite(text, 1, (size_t)n / 2, f);
    fflush(f);
    fwrite(text + n / 2, 1, (size_t)(n - n / 2), f);
    /* exit() and returning from main flush the second half themselves; the others
     * would lose it (_exit does not flush stdio), so it is flushed here. */
    if (!strcmp(way, "return")) return STATUS;
    if (!strcmp(way, "exit")) exit(STATUS);
    if (!strcmp(way, "_exit_unflushed")) _exit(STATUS);
    if (!strcmp(way, "fork_child__exit")) {
        pid_t child = fork();
        if (child == 0) _exit(0);
        waitpid(child, NULL, 0);
        return STATUS;
    }
    fflush(f);
    if (!strcmp(way, "_exit")) _exit(STATUS);
    pthread_t t;
    pthread_create(&t, NULL, end_from_thread, NULL);
    pthread_join(t, NULL);
    return 1;
}
