/* run.c — `ckmon run`: COMMAND with the agent preloaded, and a collector for it.
 *
 * The private collector is a fork of this process running server_run() on a socket
 * bound here first, so the socket is ready before COMMAND starts and errors surface
 * before anything runs. It ignores the terminal's and the job's signals and stops
 * only when the pipe from this process closes: after COMMAND ended, or if this
 * process died, so a SIGTERM meant for COMMAND cannot cost the records it writes
 * while it shuts down.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "command_path.h"
#include "delivery.h"
#include "digest.h"
#include "hdf5.h"
#include "metrics.h"
#include "scrape.h"
#include "server.h"

#define EXIT_CANNOT_EXECUTE 126
#define EXIT_NOT_FOUND      127

struct private_collector {
    pid_t pid;
    int stop_fd;        /* write end of the pipe; closing it stops the collector */
    char dir[PATH_MAX]; /* the temporary directory holding the socket, or "" */
};

/* ---- finding the agent ---- */

static bool readable_file(const char *path, char *out)
{
    struct stat st;
    return realpath(path, out) && stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
           access(out, R_OK) == 0;
}

/* CKMON_AGENT, else libckmon.so beside this binary (the build tree), else the
 * installed layout, PREFIX/bin/ckmon and PREFIX/lib/ckmon/libckmon.so. */
static bool find_agent(char *out)
{
    const char *chosen = getenv("CKMON_AGENT");
    if (chosen && *chosen) {
        if (readable_file(chosen, out)) return true;
        fprintf(stderr, "ckmon: CKMON_AGENT: cannot read %s\n", chosen);
        return false;
    }
    char self[PATH_MAX], candidate[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "ckmon: cannot find the agent: /proc/self/exe: %s\n", strerror(errno));
        return false;
    }
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(candidate, sizeof candidate, "%s/libckmon.so", self);
    if (readable_file(candidate, out)) return true;
    snprintf(candidate, sizeof candidate, "%s/../lib/ckmon/libckmon.so", self);
    if (readable_file(candidate, out)) return true;
    fprintf(stderr,
            "ckmon: cannot find the agent libckmon.so in %s or %s/../lib/ckmon (set "
            "CKMON_AGENT)\n",
            self, self);
    return false;
}

/* ---- the private collector ---- */

/* The socket path: as given, or in a new private directory under $TMPDIR (or /tmp
 * when $TMPDIR leaves no room within a socket path's 107 bytes). */
static bool choose_socket(const struct options *o, struct private_collector *pc, char *path,
                          size_t size)
{
    if (o->socket) {
        snprintf(path, size, "%s", o->socket);
        return true;
    }
    const char *tmp = getenv("TMPDIR");
    for (int attempt = 0; attempt < 2; attempt++, tmp = "/tmp") {
        if (!tmp || !*tmp) continue;
        int len = snprintf(path, size, "%s/ckmon-XXXXXX/collector.sock", tmp);
        if (len < 0 || (size_t)len >= size) continue;
        size_t dir_len = (size_t)len - strlen("/collector.sock");
        memcpy(pc->dir, path, dir_len);
        pc->dir[dir_len] = '\0';
        if (!mkdtemp(pc->dir)) break;
        memcpy(path, pc->dir, dir_len); /* the X's, now the directory's name */
        return true;
    }
    fprintf(stderr, "ckmon: cannot create a directory for the collector's socket in %s: %s\n", tmp,
            strerror(errno));
    pc->dir[0] = '\0';
    return false;
}

static void remove_private_dir(struct private_collector *pc)
{
    if (pc->dir[0]) rmdir(pc->dir);
    pc->dir[0] = '\0';
}

/* The collector child; it also removes the private directory, in case ckmon run itself
 * was killed and cannot. After COMMAND ended it gives the sinks up to --flush-timeout. */
static void become_collector(struct listener *listener, struct log_writer *log,
                             struct delivery *delivery, struct alerting *alerting,
                             struct scrape *scrape, int stop_fd, const char *dir,
                             const struct options *o)
{
    static const int ignored[] = {SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGTSTP};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        signal(ignored[i], SIG_IGN);
    if (!freopen("/dev/null", "r", stdin)) close(STDIN_FILENO);
    struct server_config cfg = {.listener = listener,
                                .log = log,
                                .alerting = alerting,
                                .stop_fd = stop_fd,
                                .run_id = o->run_id,
                                .scrape = scrape,
                                .digest = o->digest};
    int rc = collector_serve(&cfg, delivery, o);
    scrape_close(scrape);
    delivery_free(delivery);
    if (log_close(log)) rc = 1;
    if (alerting_finish(alerting)) rc = EXIT_FAIL_ON;
    if (*dir) rmdir(dir);
    fflush(NULL);
    _exit(rc);
}

static bool start_collector(const struct options *o, struct private_collector *pc, char *socket,
                            size_t size)
{
    struct listener listener;
    struct log_writer log;
    struct delivery *delivery = NULL;
    struct scrape *scrape = NULL;
    struct alerting *alerting;
    char err[512];
    int pipe_fds[2];
    if (o->digest && !digest_load(err, sizeof err)) {
        fprintf(stderr, "ckmon: --digest: %s\n", err);
        return false;
    }
    if (!choose_socket(o, pc, socket, size)) return false;
    if (log_open(&log, o->log, err, sizeof err) < 0) {
        fprintf(stderr, "ckmon: %s\n", err);
        return false;
    }
    log.max_bytes = o->log_max_bytes;
    log.keep = o->log_keep;
    metric_keys_set(o->metric_keys.items, o->metric_keys.count);
    /* Cursors and the state dir's lock are set up here, so their errors stop ckmon
     * before COMMAND starts; the threads start in the collector child. */
    if (o->sink_count && !(delivery = delivery_open(o, &log, err, sizeof err))) {
        fprintf(stderr, "ckmon: %s\n", err);
        log_close(&log);
        return false;
    }
    if (!(alerting = alerting_for_serving(o, &log, true))) {
        delivery_free(delivery);
        log_close(&log);
        return false;
    }
    if ((o->listen && !(scrape = scrape_open(o->listen, err, sizeof err))) ||
        listener_open(&listener, socket, err, sizeof err) < 0) {
        fprintf(stderr, "ckmon: %s\n", err);
        scrape_close(scrape);
        alerting_free(alerting);
        delivery_free(delivery);
        log_close(&log);
        return false;
    }
    /* On failure ckmon exits at once, so the pipe is not worth closing. */
    fflush(NULL);
    if (pipe2(pipe_fds, O_CLOEXEC) < 0 || (pc->pid = fork()) < 0) {
        fprintf(stderr, "ckmon: cannot start the collector: %s\n", strerror(errno));
        listener_close(&listener, true);
        scrape_close(scrape);
        alerting_free(alerting);
        delivery_free(delivery);
        log_close(&log);
        return false;
    }
    if (pc->pid == 0) {
        close(pipe_fds[1]);
        become_collector(&listener, &log, delivery, alerting, scrape, pipe_fds[0], pc->dir, o);
    }
    close(pipe_fds[0]);
    pc->stop_fd = pipe_fds[1];
    listener_close(&listener, false);
    scrape_close(scrape);
    alerting_free(alerting);
    delivery_free(delivery);
    log_close(&log);
    return true;
}

/* Waits until the collector has written every record and the sinks delivered them
 * (or --flush-timeout passed); returns its exit status (EXIT_FAIL_ON: a --fail-on rule
 * fired). */
static int stop_collector(struct private_collector *pc)
{
    int status = 0;
    close(pc->stop_fd);
    while (waitpid(pc->pid, &status, 0) < 0 && errno == EINTR) {
    }
    remove_private_dir(pc);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* ---- COMMAND ---- */

static volatile sig_atomic_t command_pid;

static void forward_signal(int sig)
{
    if (command_pid > 0) kill(command_pid, sig);
}

/* The agent in front of LD_PRELOAD, once. ld.so accepts spaces and colons between
 * entries. */
static char *preload_with(const char *agent)
{
    const char *current = getenv("LD_PRELOAD");
    char *out = NULL;
    if (!current || !*current) return strdup(agent);
    size_t len = strlen(agent);
    for (const char *p = current; *p;) {
        size_t n = strcspn(p, " :");
        if (n == len && !strncmp(p, agent, len)) return strdup(current);
        p += n + (p[n] != '\0');
    }
    return asprintf(&out, "%s:%s", agent, current) < 0 ? NULL : out;
}

static void set_or_die(const char *name, const char *value)
{
    if (value && setenv(name, value, 1) < 0) {
        fprintf(stderr, "ckmon: cannot set %s: %s\n", name, strerror(errno));
        _exit(EXIT_CANNOT_EXECUTE);
    }
}

/* In the child: the agent's environment, default signals, then COMMAND. */
static void exec_command(const struct options *o, const char *exe, const char *agent,
                         const char *socket, const sigset_t *mask)
{
    const char *slash = strrchr(o->args[0], '/');
    const char *job = o->job ? o->job : slash ? slash + 1 : o->args[0];
    char *preload = preload_with(agent);
    char *paths = o->paths.count ? string_list_join(&o->paths, ':') : NULL;
    char *keys = o->keys.count ? string_list_join(&o->keys, ':') : NULL;
    set_or_die("LD_PRELOAD", preload ? preload : agent);
    set_or_die("CKMON_SOCKET", socket);
    set_or_die("CKMON_JOB", job);
    set_or_die("CKMON_RUN_ID", o->run_id);
    set_or_die("CKMON_PATHS", paths);
    set_or_die("CKMON_KEYS", keys);
    set_or_die("CKMON_SAMPLE", o->sample_text);
    set_or_die("CKMON_BUDGET", o->budget_text);
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    sigprocmask(SIG_SETMASK, mask, NULL);
    execv(exe, o->args);
    int saved = errno;
    fprintf(stderr, "ckmon: %s: %s\n", o->args[0], strerror(saved));
    _exit(saved == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE);
}

/* Runs COMMAND to its end; returns its exit status as a shell reports it. */
static int run_command(const struct options *o, const char *exe, const char *agent,
                       const char *socket)
{
    sigset_t forwarded, saved;
    sigemptyset(&forwarded);
    sigaddset(&forwarded, SIGTERM);
    sigaddset(&forwarded, SIGHUP);
    /* Blocked across fork, so a signal arriving before command_pid is set waits. */
    sigprocmask(SIG_BLOCK, &forwarded, &saved);
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) exec_command(o, exe, agent, socket, &saved);
    if (pid < 0) {
        fprintf(stderr, "ckmon: cannot start %s: %s\n", o->args[0], strerror(errno));
        sigprocmask(SIG_SETMASK, &saved, NULL);
        return EXIT_CANNOT_EXECUTE;
    }
    command_pid = pid;
    struct sigaction sa = {.sa_handler = forward_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigprocmask(SIG_SETMASK, &saved, NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return EXIT_CANNOT_EXECUTE;
    command_pid = 0;
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* --run-id, else the launcher's job id, else a new one: the date and time, and this
 * process's id, so that two runs started in one second still differ. */
static bool choose_run_id(struct options *o)
{
    static const char *const launcher[] = {"SLURM_JOB_ID", "TORCHELASTIC_RUN_ID"};
    for (size_t i = 0; !o->run_id && i < sizeof launcher / sizeof launcher[0]; i++) {
        const char *v = getenv(launcher[i]);
        if (v && *v && !(o->run_id = strdup(v))) return false;
    }
    if (o->run_id) return true;
    char id[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(id, sizeof id, "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
    snprintf(id + strlen(id), sizeof id - strlen(id), "-%ld", (long)getpid());
    return (o->run_id = strdup(id)) != NULL;
}

/* Checks that needs no side effect, in the order a user fixes them. */
static int check_can_run(const struct options *o, char *exe, char *agent)
{
    if (!o->arg_count) return usage_error(COMMAND_RUN, "no COMMAND to run");
    int err = find_command(o->args[0], exe, PATH_MAX);
    if (err == ENOENT && !strchr(o->args[0], '/')) {
        fprintf(stderr, "ckmon: %s: command not found\n", o->args[0]);
        return EXIT_NOT_FOUND;
    }
    if (err) {
        fprintf(stderr, "ckmon: %s: %s\n", o->args[0], strerror(err));
        return err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE;
    }
    /* What the agent cannot see is worth saying before the log stays empty; the
     * program may still write through something that can be seen, so run it anyway. */
    doctor_check(o->args[0], o->args + 1, o->arg_count - 1, NULL, stderr, "ckmon: warning: ");
    return find_agent(agent) ? -1 : 1;
}

int cmd_run(int argc, char **argv)
{
    struct options o;
    char exe[PATH_MAX], agent[PATH_MAX], socket[sizeof(((struct listener *)0)->path)];
    struct private_collector pc = {.pid = -1};
    int rc = cli_parse(&o, COMMAND_RUN, argc, argv);
    if (rc >= 0) return rc;
    hdf5_set_timeout(o.hdf5_timeout);
    if ((rc = check_can_run(&o, exe, agent)) >= 0) {
        options_free(&o);
        return rc;
    }
    if (!choose_run_id(&o)) {
        fprintf(stderr, "ckmon: out of memory\n");
        options_free(&o);
        return 1;
    }
    if (o.socket && collector_answers(o.socket)) {
        snprintf(socket, sizeof socket, "%s", o.socket);
        if (o.sink_count)
            fprintf(stderr,
                    "ckmon: --sink ignored: the collector on %s delivers to its own sinks\n",
                    socket);
        if (o.rules.user_count || o.on_alert || o.fail_on.count)
            fprintf(stderr,
                    "ckmon: --alert, --on-alert and --fail-on ignored: the collector on %s "
                    "judges with its own\n",
                    socket);
    } else if (!start_collector(&o, &pc, socket, sizeof socket)) {
        remove_private_dir(&pc);
        options_free(&o);
        return 1;
    }
    /* The summary of a private collector names the files written when no glob matched;
     * only then do agents note them (agent/unmatched.h). */
    if (pc.pid > 0 && !o.quiet) setenv("CKMON_UNMATCHED", "1", 1);
    rc = run_command(&o, exe, agent, socket);
    if (pc.pid > 0 && stop_collector(&pc) == EXIT_FAIL_ON && rc == 0) rc = EXIT_FAIL_ON;
    options_free(&o);
    return rc;
}
