/* config.c — the agent's settings from the environment, read once at load. */
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

#include "core/budget.h"
#include "core/paths.h"

struct agent_config agent_config;

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
        c->path_globs = (char **)default_checkpoint_globs;
        c->path_glob_count = default_checkpoint_glob_count;
    }
    glob_hints_compile(&c->path_hints, c->path_globs, c->path_glob_count);
    const char *keys = getenv("CKMON_KEYS");
    if (keys && *keys) c->keys.patterns = split_list(keys, &c->keys.count);

    c->parse.sample = DEFAULT_SAMPLE;
    c->parse.crc_after_close = true; /* the collector checks them (zip_check.h) */
    const char *sample = getenv("CKMON_SAMPLE");
    if (sample && *sample) {
        char *end;
        double s = strtod(sample, &end);
        if (*end == '\0' && s > 0 && s <= 1) c->parse.sample = s;
    }
    /* An explicit sample is what the user asked for; otherwise the budget is the safety
     * net (budget.h). */
    c->budget_percent = 0;
    if (!sample || !*sample) {
        c->budget_percent = DEFAULT_BUDGET_PERCENT;
        budget_parse_percent(getenv("CKMON_BUDGET"), &c->budget_percent);
    }

    /* The channel's bound for queued findings, in MiB (docs/agent.md). */
    const char *queue = getenv("CKMON_QUEUE_MB");
    char *end = NULL;
    unsigned long mib = queue && *queue ? strtoul(queue, &end, 10) : 0;
    c->queue_bytes = end && *end == '\0' && mib > 0 && mib <= 4096 ? (size_t)mib << 20 : 0;

    const char *unmatched = getenv("CKMON_UNMATCHED");
    c->note_unmatched = unmatched && !strcmp(unmatched, "1");

    extern char *program_invocation_short_name;
    copy_truncated(c->program, sizeof c->program, program_invocation_short_name);
    copy_env(c->job, sizeof c->job, "CKMON_JOB", c->program);
    /* The run: what ckmon run or the user chose, else the launcher's id of this job. */
    static const char *const run_names[] = {"CKMON_RUN_ID", "SLURM_JOB_ID", "TORCHELASTIC_RUN_ID"};
    for (size_t i = 0; i < sizeof run_names / sizeof run_names[0] && !c->run[0]; i++)
        copy_env(c->run, sizeof c->run, run_names[i], "");
    struct utsname u;
    snprintf(c->host, sizeof c->host, "%s", uname(&u) == 0 ? u.nodename : "unknown");
    load_rank();
}

bool config_is_checkpoint(const char *abs_path)
{
    /* the quick test first: most files created are no checkpoint, and fail it */
    return paths_may_match(&agent_config.path_hints, abs_path) &&
           paths_match(agent_config.path_globs, agent_config.path_glob_count, abs_path);
}
