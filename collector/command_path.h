/* command_path.h — finding a command as execvp does, for run and doctor. */
#ifndef CKMON_COMMAND_PATH_H
#define CKMON_COMMAND_PATH_H

#include <stddef.h>

/* As execvp searches: a name with a '/' is used as it is, else each PATH entry in turn.
 * Returns 0 (the path in out), ENOENT when found nowhere, or why a match cannot run. */
int find_command(const char *name, char *out, size_t size);

#endif
