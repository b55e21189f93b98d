/* wrap_exec.c — exec and posix_spawn, so that the agent follows a program into what it
 * runs even when the caller hands over an environment without the agent in it.
 *
 * Launchers build their children's environments: `env -i`, Python's subprocess with
 * env={...}, job scripts that start from a clean slate. Each of those would silently
 * drop LD_PRELOAD and CKMON_*, and the real training process would go unmonitored. So
 * every exec-family call here gets back what the agent was loaded with: LD_PRELOAD with
 * this library in it, and every CKMON_* variable the caller's environment does not set
 * itself (a value the caller does set wins: it may name another job or socket).
 *
 * A vfork child (CPython's subprocess, posix_spawn) shares its parent's memory and may
 * call these wrappers: the new environment therefore lives on the stack of the call, and
 * nothing else happens in such a child. In the process that owns the agent's state, an
 * exec first hands its open checkpoints over (tracked_exec_begin). An exec that fails
 * returns exactly what the real call returned, with its errno, and changes no agent
 * state. glibc's own execvp, execl* and posix_spawn call its internal execve directly,
 * so each entry point is wrapped here.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "real.h"
#include "tracked.h"

#define MAX_CARRIED 32
#define PRELOAD     "LD_PRELOAD="

/* The frames on the way to the real exec. In a vfork child they sit on the parent's stack
 * and, when the exec succeeds, never return: built with AddressSanitizer (make
 * SANITIZE=1) their redzones would stay marked in the shadow memory the parent shares,
 * and the parent's next deep call would be reported as a stack overflow. */
#define EXEC_FRAME __attribute__((no_sanitize_address))

/* "NAME=value" of each CKMON_* variable at load, and this library's path. */
static char *carried[MAX_CARRIED];
static size_t carried_count;
static char agent_path[PATH_MAX];

extern char **environ;

__attribute__((constructor)) static void exec_capture(void)
{
    for (char **e = environ; e && *e && carried_count < MAX_CARRIED; e++)
        if (!strncmp(*e, "CKMON_", 6) && strchr(*e, '=') &&
            strncmp(*e, INHERITED_VARIABLE "=", sizeof INHERITED_VARIABLE))
            carried[carried_count++] = strdup(*e);
    /* The loader names the library as LD_PRELOAD did, possibly relative to the working
     * directory, which is still the one it was resolved against. */
    Dl_info info;
    if (!dladdr((void *)exec_capture, &info) || !info.dli_fname ||
        !realpath(info.dli_fname, agent_path))
        agent_path[0] = '\0';
}

static size_t name_length(const char *entry)
{
    const char *eq = strchr(entry, '=');
    return eq ? (size_t)(eq - entry) : strlen(entry);
}

static const char *find_entry(char *const envp[], size_t n, const char *entry)
{
    size_t len = name_length(entry);
    for (size_t i = 0; i < n; i++)
        if (!strncmp(envp[i], entry, len) && envp[i][len] == '=') return envp[i];
    return NULL;
}

/* Whether an LD_PRELOAD value (':' or ' ' separated) already loads this library. */
static bool preloads_agent(const char *value)
{
    size_t want = strlen(agent_path);
    for (const char *p = value; *p;) {
        size_t len = strcspn(p, ": ");
        if (len == want && !strncmp(p, agent_path, len)) return true;
        p += len + (p[len] != '\0');
    }
    return false;
}

/* Bytes the rebuilt "LD_PRELOAD=..." needs (1 when envp's own entry will do). */
static size_t preload_room(char *const envp[], size_t n)
{
    if (!agent_path[0]) return 1;
    const char *own = find_entry(envp, n, PRELOAD);
    if (own && preloads_agent(own + strlen(PRELOAD))) return 1;
    return strlen(PRELOAD) + strlen(agent_path) + 1 + (own ? strlen(own) : 0) + 1;
}

/* Fills out (n + carried_count + 3 slots) with envp plus what is missing, the agent in
 * front of the caller's own LD_PRELOAD (as `ckmon run` puts it), and extra unless it is
 * NULL; returns envp itself when nothing is. */
static char *const *agent_env(char *const envp[], size_t n, char **out, char *preload, size_t room,
                              char *extra)
{
    size_t k = 0, pre = strlen(PRELOAD);
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        if (room > 1 && !strncmp(envp[i], PRELOAD, pre)) {
            const char *theirs = envp[i] + pre;
            snprintf(preload, room, "%s%s%s%s", PRELOAD, agent_path, *theirs ? " " : "", theirs);
            out[k++] = preload;
            changed = true;
        } else {
            out[k++] = envp[i];
        }
    }
    if (room > 1 && !changed) {
        snprintf(preload, room, "%s%s", PRELOAD, agent_path);
        out[k++] = preload;
        changed = true;
    }
    for (size_t i = 0; i < carried_count; i++)
        if (carried[i] && !find_entry(envp, n, carried[i])) {
            out[k++] = carried[i];
            changed = true;
        }
    if (extra) {
        out[k++] = extra;
        changed = true;
    }
    out[k] = NULL;
    return changed ? out : envp;
}

/* The exec kinds replace this program (they come first); the spawn kinds start another. */
enum exec_kind { EXEC_PATH, EXEC_SEARCH, EXEC_FD, SPAWN_PATH, SPAWN_SEARCH };

struct exec_call {
    enum exec_kind kind;
    const char *file;
    int fd;
    char *const *argv;
    pid_t *pid;
    const posix_spawn_file_actions_t *actions;
    const posix_spawnattr_t *attr;
};

/* The real call with the agent's environment, built on this frame's stack. */
EXEC_FRAME static int call_with_agent_env(const struct exec_call *c, char *const envp[])
{
    static char *const empty[] = {NULL};
    if (!envp) envp = empty; /* Linux takes a null environment as an empty one */
    size_t n = 0;
    while (envp[n])
        n++;
    size_t room = preload_room(envp, n);
    char *slots[n + carried_count + 3];
    char preload[room];
    /* Files open across exec: the new program's agent takes over those it keeps. */
    char inherited[sizeof INHERITED_VARIABLE + 256] = INHERITED_VARIABLE "=";
    char *list = inherited + sizeof INHERITED_VARIABLE;
    bool told = c->kind <= EXEC_FD && tracked_exec_begin(list, 256);
    char *const *env = agent_env(envp, n, slots, preload, room, *list ? inherited : NULL);
    int rc;
    switch (c->kind) {
    case EXEC_PATH:
        rc = REAL(execve)(c->file, c->argv, env);
        break;
    case EXEC_SEARCH:
        rc = REAL(execvpe)(c->file, c->argv, env);
        break;
    case EXEC_FD:
        rc = REAL(fexecve)(c->fd, c->argv, env);
        break;
    case SPAWN_PATH:
        return REAL(posix_spawn)(c->pid, c->file, c->actions, c->attr, c->argv, env);
    case SPAWN_SEARCH:
        return REAL(posix_spawnp)(c->pid, c->file, c->actions, c->attr, c->argv, env);
    default:
        __builtin_unreachable();
    }
    if (told) tracked_exec_failed(); /* still here: the exec failed (errno is kept) */
    return rc;
}

EXEC_FRAME static int exec_path(const char *path, char *const argv[], char *const envp[])
{
    return call_with_agent_env(&(struct exec_call){.kind = EXEC_PATH, .file = path, .argv = argv},
                               envp);
}

EXEC_FRAME static int exec_search(const char *file, char *const argv[], char *const envp[])
{
    return call_with_agent_env(&(struct exec_call){.kind = EXEC_SEARCH, .file = file, .argv = argv},
                               envp);
}

EXEC_FRAME EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    return exec_path(path, argv, envp);
}

EXEC_FRAME EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    return exec_search(file, argv, envp);
}

EXEC_FRAME EXPORT int execv(const char *path, char *const argv[])
{
    return exec_path(path, argv, environ);
}

EXEC_FRAME EXPORT int execvp(const char *file, char *const argv[])
{
    return exec_search(file, argv, environ);
}

EXEC_FRAME EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    return call_with_agent_env(&(struct exec_call){.kind = EXEC_FD, .fd = fd, .argv = argv}, envp);
}

EXEC_FRAME static int spawn(enum exec_kind kind, pid_t *pid, const char *file,
                            const posix_spawn_file_actions_t *actions,
                            const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    struct exec_call c = {
        .kind = kind, .file = file, .argv = argv, .pid = pid, .actions = actions, .attr = attr};
    return call_with_agent_env(&c, envp);
}

EXEC_FRAME EXPORT int posix_spawn(pid_t *pid, const char *path,
                                  const posix_spawn_file_actions_t *actions,
                                  const posix_spawnattr_t *attr, char *const argv[],
                                  char *const envp[])
{
    return spawn(SPAWN_PATH, pid, path, actions, attr, argv, envp);
}

EXEC_FRAME EXPORT int posix_spawnp(pid_t *pid, const char *file,
                                   const posix_spawn_file_actions_t *actions,
                                   const posix_spawnattr_t *attr, char *const argv[],
                                   char *const envp[])
{
    return spawn(SPAWN_SEARCH, pid, file, actions, attr, argv, envp);
}

/* execl, execlp, execle: the arguments up to the terminating NULL gathered into an argv
 * on the stack (then, for execle, the environment that follows it). */
#define GATHER_ARGS(arg, argv, after)                                                              \
    va_list ap;                                                                                    \
    va_start(ap, arg);                                                                             \
    size_t argc_ = 0;                                                                              \
    for (const char *a = arg; a; a = va_arg(ap, const char *))                                     \
        argc_++;                                                                                   \
    va_end(ap);                                                                                    \
    char *argv[argc_ + 1];                                                                         \
    va_start(ap, arg);                                                                             \
    argv[0] = (char *)arg;                                                                         \
    for (size_t i = 1; i <= argc_; i++)                                                            \
        argv[i] = va_arg(ap, char *);                                                              \
    after;                                                                                         \
    va_end(ap)

EXEC_FRAME EXPORT int execl(const char *path, const char *arg, ...)
{
    GATHER_ARGS(arg, argv, (void)0);
    return exec_path(path, argv, environ);
}

EXEC_FRAME EXPORT int execlp(const char *file, const char *arg, ...)
{
    GATHER_ARGS(arg, argv, (void)0);
    return exec_search(file, argv, environ);
}

EXEC_FRAME EXPORT int execle(const char *path, const char *arg, ...)
{
    char *const *envp;
    GATHER_ARGS(arg, argv, envp = va_arg(ap, char *const *));
    return exec_path(path, argv, envp);
}
