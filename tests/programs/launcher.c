/* launcher.c — starts a program the ways launchers do, with an emptied environment.
 *
 * Each exec-family entry point and posix_spawn is its own path into the C library, so
 * each must give the agent back to the program it starts even when the environment it
 * is handed no longer has LD_PRELOAD or CKMON_*. tests/e2e/test_processes.py runs
 * every method under `ckmon run` and checks the started program's record.
 *
 * usage: launcher METHOD PROGRAM [ARGS...]   start PROGRAM with an empty environment
 *        launcher errors DIR                 exec a missing file every way; print the
 *                                            return value and errno of each
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int spawned(int rc, pid_t pid)
{
    int status;
    if (rc != 0) return rc;
    if (waitpid(pid, &status, 0) < 0) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void show(const char *what, int rc)
{
    printf("%s %d %s\n", what, rc, rc < 0 ? strerror(errno) : "-");
}

static int errors(const char *dir)
{
    char missing[4096];
    snprintf(missing, sizeof missing, "%s/no-such-program", dir);
    char *argv[] = {missing, NULL}, *envp[] = {"A=1", NULL};
    clearenv(); /* the agent's wrappers would have to add what is missing */
    show("execve", execve(missing, argv, envp));
    show("execv", execv(missing, argv));
    show("execvp", execvp("no-such-program-anywhere", argv));
    show("execvpe", execvpe("no-such-program-anywhere", argv, envp));
    show("execl", execl(missing, missing, (char *)NULL));
    show("execlp", execlp("no-such-program-anywhere", "x", (char *)NULL));
    show("execle", execle(missing, missing, (char *)NULL, envp));
    show("fexecve", fexecve(-1, argv, envp));
    pid_t pid;
    int rc = posix_spawn(&pid, missing, NULL, NULL, argv, envp);
    printf("posix_spawn %d\n", rc);
    rc = posix_spawnp(&pid, "no-such-program-anywhere", NULL, NULL, argv, envp);
    printf("posix_spawnp %d\n", rc);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "errors")) return errors(argv[2]);
    if (argc < 3) {
        fprintf(stderr, "usage: launcher METHOD PROGRAM [ARGS...]\n");
        return 2;
    }
    const char *method = argv[1], *prog = argv[2];
    char **args = argv + 2;
    char *empty[] = {NULL};
    pid_t pid;
    if (!strcmp(method, "execve")) execve(prog, args, empty);
    if (!strcmp(method, "execvpe")) execvpe(prog, args, empty);
    if (!strcmp(method, "execle")) execle(prog, prog, args[1], args[2], (char *)NULL, empty);
    if (!strcmp(method, "fexecve")) fexecve(open(prog, O_RDONLY | O_CLOEXEC), args, empty);
    if (!strcmp(method, "posix_spawn")) {
        int rc = posix_spawn(&pid, prog, NULL, NULL, args, empty);
        return spawned(rc, pid);
    }
    if (!strcmp(method, "posix_spawnp")) {
        int rc = posix_spawnp(&pid, prog, NULL, NULL, args, empty);
        return spawned(rc, pid);
    }
    clearenv(); /* the rest take the process's own environment */
    if (!strcmp(method, "execv")) execv(prog, args);
    if (!strcmp(method, "execvp")) execvp(prog, args);
    if (!strcmp(method, "execl")) execl(prog, prog, args[1], args[2], (char *)NULL);
    if (!strcmp(method, "execlp")) execlp(prog, prog, args[1], args[2], (char *)NULL);
    perror(method);
    return 1;
}
