/* on_alert.c — a queue and one thread that runs --on-alert commands in turn.
 *
 * posix_spawn, not fork: the collector has other threads (sinks), and a spawned child
 * starts with default signal dispositions and an empty mask, whatever the collector
 * ignores (`ckmon run`'s collector ignores SIGTERM and SIGINT, which a command's own
 * children must not inherit). Each command gets a process group of its own, so that
 * its time limit ends what it started too. Waiting polls waitpid every WAIT_STEP: the
 * thread has nothing else to do, and a command runs for milliseconds to seconds.
 */
#include "on_alert.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define QUEUE_MAX   256       /* alerts waiting for their command; more are dropped */
#define WAIT_STEP   20000000L /* nanoseconds between two looks at a running command */
#define GRACE_AFTER 2.0       /* seconds between SIGTERM and SIGKILL */

struct job {
    char *line;
    char *env[7]; /* CKMON_ALERT_*=... and NULL */
    char *rule, *path;
    struct job *next;
};

struct on_alert {
    char *command;
    double timeout;
    pthread_mutex_t lock;
    pthread_cond_t wake, idle;
    struct job *head, **tail;
    size_t queued;
    bool started, stopping, abandon, running;
    unsigned long dropped;
    pthread_t thread;
};

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct on_alert *on_alert_new(const char *command, double timeout_seconds)
{
    struct on_alert *q = calloc(1, sizeof *q);
    if (!q || !(q->command = strdup(command))) {
        free(q);
        return NULL;
    }
    q->timeout = timeout_seconds;
    q->tail = &q->head;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->wake, NULL);
    pthread_cond_init(&q->idle, NULL);
    return q;
}

static void job_free(struct job *j)
{
    free(j->line);
    for (size_t i = 0; j->env[i]; i++)
        free(j->env[i]);
    free(j);
}

/* The collector's environment without CKMON_ALERT_*, then the job's. */
static char **job_environment(const struct job *j)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    char **env = malloc((n + sizeof j->env / sizeof j->env[0]) * sizeof *env);
    if (!env) return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CKMON_ALERT_", 12)) env[k++] = environ[i];
    for (size_t i = 0; j->env[i]; i++)
        env[k++] = j->env[i];
    env[k] = NULL;
    return env;
}

static pid_t spawn(struct on_alert *q, const struct job *j, int stdin_fd)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t all, none;
    pid_t pid = -1;
    char *argv[] = {"sh", "-c", q->command, NULL};
    char **env = job_environment(j);
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, stdin_fd, STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    int rc = env ? posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, env) : ENOMEM;
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    free(env);
    if (rc) {
        fprintf(stderr, "ckmon: --on-alert for %s on %s: cannot start /bin/sh: %s\n", j->rule,
                j->path, strerror(rc));
        return -1;
    }
    return pid;
}

static bool abandoned(struct on_alert *q)
{
    pthread_mutex_lock(&q->lock);
    bool a = q->abandon;
    pthread_mutex_unlock(&q->lock);
    return a;
}

/* Waits for the command, ending it when its time is up; says what went wrong. */
static void wait_for(struct on_alert *q, const struct job *j, pid_t pid)
{
    double deadline = monotonic() + q->timeout, killed_at = 0;
    int status;
    const struct timespec step = {0, WAIT_STEP};
    for (;;) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid || (done < 0 && errno != EINTR)) break;
        double now = monotonic();
        if (!killed_at && (now > deadline || abandoned(q))) {
            fprintf(stderr, "ckmon: --on-alert for %s on %s still running after %g s: terminated\n",
                    j->rule, j->path, now > deadline ? q->timeout : now - deadline + q->timeout);
            kill(-pid, SIGTERM);
            killed_at = now;
        } else if (killed_at && now > killed_at + GRACE_AFTER) {
            kill(-pid, SIGKILL);
        }
        nanosleep(&step, NULL);
    }
    if (killed_at) return;
    if (WIFEXITED(status) && WEXITSTATUS(status))
        fprintf(stderr, "ckmon: --on-alert for %s on %s exited %d\n", j->rule, j->path,
                WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        fprintf(stderr, "ckmon: --on-alert for %s on %s killed by signal %d\n", j->rule, j->path,
                WTERMSIG(status));
}

static void run_job(struct on_alert *q, const struct job *j)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        fprintf(stderr, "ckmon: --on-alert for %s on %s: %s\n", j->rule, j->path, strerror(errno));
        return;
    }
    pid_t pid = spawn(q, j, fds[0]);
    close(fds[0]);
    /* An alert record is far smaller than a pipe's buffer; a command that does not read
     * its stdin must not hold the thread up, so the write never waits. */
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    if (pid > 0 && write(fds[1], j->line, strlen(j->line)) < 0 && errno != EPIPE)
        fprintf(stderr, "ckmon: --on-alert for %s: writing its stdin: %s\n", j->rule,
                strerror(errno));
    close(fds[1]);
    if (pid > 0) wait_for(q, j, pid);
}

static void *runner(void *arg)
{
    struct on_alert *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->wake, &q->lock);
        if (!q->head || q->abandon) break;
        struct job *j = q->head;
        if (!(q->head = j->next)) q->tail = &q->head;
        q->queued--;
        q->running = true;
        pthread_mutex_unlock(&q->lock);
        run_job(q, j);
        job_free(j);
        pthread_mutex_lock(&q->lock);
        q->running = false;
        pthread_cond_broadcast(&q->idle);
    }
    q->running = false;
    pthread_cond_broadcast(&q->idle);
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* The rule, severity and path are always set (the first three entries, so that
 * messages can name the rule and path); the subject and job only when known. */
static struct job *job_new(const char *line, const struct on_alert_env *e)
{
    struct job *j = calloc(1, sizeof *j);
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", e->pid);
    const char *names[][2] = {{"CKMON_ALERT_RULE", e->rule ? e->rule : ""},
                              {"CKMON_ALERT_SEVERITY", e->severity ? e->severity : ""},
                              {"CKMON_ALERT_PATH", e->path ? e->path : ""},
                              {"CKMON_ALERT_PID", pid},
                              {"CKMON_ALERT_SUBJECT", e->subject},
                              {"CKMON_ALERT_JOB", e->job}};
    if (!j || !(j->line = strdup(line))) {
        free(j);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!names[i][1]) continue;
        if (asprintf(&j->env[k], "%s=%s", names[i][0], names[i][1]) < 0) {
            j->env[k] = NULL;
            job_free(j);
            return NULL;
        }
        k++;
    }
    j->rule = j->env[0] + strlen(names[0][0]) + 1;
    j->path = j->env[2] + strlen(names[2][0]) + 1;
    return j;
}

void on_alert_queue(struct on_alert *q, const char *line, const struct on_alert_env *env)
{
    struct job *j = job_new(line, env);
    pthread_mutex_lock(&q->lock);
    if (!j || q->queued >= QUEUE_MAX) {
        if (q->dropped++ == 0)
            fprintf(stderr, "ckmon: --on-alert: %s; alerts are dropped until it catches up\n",
                    j ? "more than 256 alerts wait for their command" : "out of memory");
        pthread_mutex_unlock(&q->lock);
        if (j) job_free(j);
        return;
    }
    *q->tail = j;
    q->tail = &j->next;
    q->queued++;
    if (!q->started) q->started = pthread_create(&q->thread, NULL, runner, q) == 0;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
}

void on_alert_finish(struct on_alert *q)
{
    if (!q) return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)q->timeout + 1;
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    pthread_cond_signal(&q->wake);
    while (q->started && (q->head || q->running) &&
           pthread_cond_timedwait(&q->idle, &q->lock, &until) == 0) {
    }
    if (q->head || q->running) q->abandon = true;
    size_t left = q->queued;
    pthread_mutex_unlock(&q->lock);
    if (q->started) pthread_join(q->thread, NULL);
    if (left || q->dropped)
        fprintf(stderr, "ckmon: --on-alert was not run for %lu alert(s)\n",
                (unsigned long)left + q->dropped);
    for (struct job *j = q->head, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->wake);
    pthread_cond_destroy(&q->idle);
    free(q->command);
    free(q);
}
