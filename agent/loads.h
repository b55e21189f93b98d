/* loads.h — lineage: a checkpoint opened for reading is told to the collector.
 *
 * One "load" message per open (core/wire.h); the reads themselves are not followed, so
 * reading a checkpoint costs nothing beyond its open. Programs open files for reading by
 * the thousand (Python's imports open a .pyc per module), so loads_wanted rejects almost
 * all of them with no system call: directories and O_PATH by their flags, then by the
 * path's text (paths_may_match). Only what passes is made absolute and matched against
 * the globs by loads_opened.
 */
#ifndef CKMON_LOADS_H
#define CKMON_LOADS_H

#include <fcntl.h>
#include <stdbool.h>

#include "config.h"

static inline bool loads_wanted(const char *path, int flags)
{
    return path && !(flags & (O_DIRECTORY | O_PATH)) &&
           paths_may_match(&agent_config.path_hints, path);
}

/* fd was opened for reading from path (relative to dirfd): sends a load message when the
 * path is a checkpoint's and fd a regular file. Call with agent_busy set. */
void loads_opened(int fd, int dirfd, const char *path);

#endif
