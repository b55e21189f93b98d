/* config.h — what the agent was told through the environment, read once at load.
 *
 * CKMON_PATHS    ':'-separated fnmatch globs for checkpoint paths (default: config.c)
 * CKMON_KEYS     ':'-separated fnmatch globs for value/tensor names (default: all)
 * CKMON_SOCKET   the collector's socket (default /tmp/ckmon-<uid>.sock)
 * CKMON_JOB      the job label (default: this program's name)
 * CKMON_RUN_ID, SLURM_JOB_ID, TORCHELASTIC_RUN_ID   the run label: the first one set
 * CKMON_SAMPLE   fraction of each tensor's bytes statistics read (default below)
 * CKMON_BUDGET   the safety net, in percent (budget.h); ignored when CKMON_SAMPLE is set
 * RANK, SLURM_PROCID, OMPI_COMM_WORLD_RANK, PMI_RANK   the process's rank, first found
 * LOCAL_RANK, SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID   its rank on this host
 * WORLD_SIZE, SLURM_NTASKS, OMPI_COMM_WORLD_SIZE, PMI_SIZE   how many ranks the job has
 * CKMON_UNMATCHED=1   note the files created that no glob matched (set by ckmon run)
 */
#ifndef CKMON_CONFIG_H
#define CKMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/un.h>

#include "core/parsers/parser.h"
#include "core/paths.h"

struct agent_config {
    char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char **path_globs;
    size_t path_glob_count;
    struct glob_hints path_hints; /* the quick test of paths (loads.h, config_is_checkpoint) */
    struct key_filter keys;
    struct parse_options parse;
    double budget_percent; /* 0: no budget (an explicit sample was given) */
    char program[256];
    char job[256];
    char run[256]; /* "" when no launcher named the run */
    char host[256];
    bool has_rank, has_local_rank, has_world_size;
    bool note_unmatched; /* CKMON_UNMATCHED=1 */
    size_t queue_bytes;  /* findings the channel may queue (CKMON_QUEUE_MB); 0: channel.h's */
    long rank, local_rank, world_size;
};

extern struct agent_config agent_config;

void config_load(void);
/* Whether an absolute path names a checkpoint. */
bool config_is_checkpoint(const char *abs_path);

#endif
