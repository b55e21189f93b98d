/* config.c — the agent's settings from the environment, and path naming. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "budget.h"

struct agent_config agent_config;

/* The contract's default list; the *.json and *.bin globs only inside a directory whose
 * name contains "checkpoint" or "ckpt" ('*' crosses '/', so any ancestor counts). */
static const char *const default_globs[] = {
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.safetensors",
    "*.npy",
    "*.npz",
    "*.pkl",
    "*.pickle",
    "*.gguf",
    "*checkpoint*/*.json",
    "*checkpoint*/*.bin",
    "*ckpt*/*.json",
    "*ckpt*/*.bin",
    NULL,
};

char **split_list(const char *list, size_t *count)
{
    size_t n = 1, len = strlen(list);
    for (const char *p = list; *p; p++)
        n += *p == ':';
    char **items = malloc((n + 1) * sizeof(char *) + len + 1);
    if (!items) {
        *count = 0;
        return NULL;
    }
    char *copy = (char *)(items + n + 1);
    memcpy(copy, list, len + 1);
    size_t kept = 0;
    for (char *tok = copy, *end; tok; tok = end) {
        end = strchr(tok, ':');
        if (end) *end++ = '\0';
        if (*tok) items[kept++] = tok;
    }
    items[kept] = NULL;
    *count = kept;
    return items;
}

/* Labels longer than the buffer are cut, not refused: a long job name is still a name. */
static void copy_truncated(char *dst, size_t size, const char *src)
{
    size_t len = strnlen(src, size - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static void copy_env(char *dst, size_t size, const char *name, const char *fallback)
{
    const char *v = getenv(name);
    copy_truncated(dst, size, v && *v ? v : fallback);
}

/* The first of names set to a non-negative integer, as each launcher spells it:
 * torchrun, SLURM, Open MPI, MPICH/Intel MPI (PMI). */
static bool launcher_number(const char *const names[4], long *out)
{
    for (size_t i = 0; i < 4; i++) {
        const char *v = getenv(names[i]);
        char *end;
        if (!v || !*v) continue;
        long n = strtol(v, &end, 10);
        if (*end == '\0' && n >= 0) {
            *out = n;
            return true;
        }
    }
    return false;
}

static void load_rank(void)
{
    static const char *const rank[] = {"RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK"};
    static const char *const local[] = {"LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK",
                                        "MPI_LOCALRANKID"};
    static const char *const size[] = {"WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE",
                                       "PMI_SIZE"};
    struct agent_config *c = &agent_config;
    c->has_rank = launcher_number(rank, &c->rank);
    c->has_local_rank = launcher_number(local, &c->local_rank);
    c->has_world_size = launcher_number(size, &c->world_size);
}

void config_load(void)
{
    struct agent_config *c = &agent_config;
    char fallback_socket[64];
    snprintf(fallback_socket, sizeof fallback_socket, "/tmp/ckmon-%u.sock", (unsigned)getuid());
    copy_env(c->socket_path, sizeof c->socket_path, "CKMON_SOCKET", fallback_socket);

    const char *paths = getenv("CKMON_PATHS");
    if (paths && *paths) c->path_globs = split_list(paths, &c->path_glob_count);
    if (!c->path_globs) {
        c->path_globs = (char **)default_globs;
        c->path_glob_count = sizeof default_globs / sizeof default_globs[0] - 1;
    }
    const char *keys = getenv("CKMON_KEYS");
    if (keys && *keys) c->keys.patterns = split_list(keys, &c->keys.count);

    c->parse.sample = DEFAULT_SAMPLE;
    const char *sample = getenv("CKMON_SAMPLE");
    if (sample && *sample) {
        char *end;
        double s = strtod(sample, &end);
        if (*end == '\0' && s > 0 && s <= 1) c->parse.sample = s;
    }
    /* An explicit sample is what the user asked for; otherwise the budget decides. */
    c->budget_percent = 0;
    if (!sample || !*sample) {
        c->budget_percent = DEFAULT_BUDGET_PERCENT;
        budget_parse_percent(getenv("CKMON_BUDGET"), &c->budget_percent);
    }

    extern char *program_invocation_short_name;
    copy_truncated(c->program, sizeof c->program, program_invocation_short_name);
    copy_env(c->job, sizeof c->job, "CKMON_JOB", c->program);
    struct utsname u;
    snprintf(c->host, sizeof c->host, "%s", uname(&u) == 0 ? u.nodename : "unknown");
    load_rank();
}

bool config_is_checkpoint(const char *abs_path)
{
    for (size_t i = 0; i < agent_config.path_glob_count; i++)
        if (fnmatch(agent_config.path_globs[i], abs_path, 0) == 0) return true;
    return false;
}

/* Removes "." and ".." components and repeated slashes in place; path starts with '/'. */
static void normalize(char *path)
{
    char *out = path;
    const char *in = path;
    while (*in) {
        while (*in == '/')
            in++;
        const char *end = strchrnul(in, '/');
        size_t len = (size_t)(end - in);
        if (len == 0 || (len == 1 && in[0] == '.')) {
            /* nothing to add */
        } else if (len == 2 && in[0] == '.' && in[1] == '.') {
            while (out > path && *--out != '/') {
            }
        } else {
            *out++ = '/';
            memmove(out, in, len);
            out += len;
        }
        in = end;
    }
    if (out == path) *out++ = '/';
    *out = '\0';
}

static bool directory_of(int dirfd, char *out, size_t size)
{
    long n;
    if (dirfd == AT_FDCWD) {
        n = syscall(SYS_getcwd, out, size);
        return n > 0;
    }
    char link[32];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    n = syscall(SYS_readlinkat, AT_FDCWD, link, out, size - 1);
    if (n <= 0 || out[0] != '/') return false;
    out[n] = '\0';
    return true;
}

bool absolute_path(int dirfd, const char *path, char *out, size_t out_size)
{
    size_t len = strlen(path);
    if (path[0] == '/') {
        if (len >= out_size) return false;
        memcpy(out, path, len + 1);
    } else {
        if (!directory_of(dirfd, out, out_size)) return false;
        size_t dir_len = strlen(out);
        if (dir_len + 1 + len >= out_size) return false;
        out[dir_len] = '/';
        memcpy(out + dir_len + 1, path, len + 1);
    }
    normalize(out);
    return true;
}
