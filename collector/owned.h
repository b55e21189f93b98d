/* owned.h — the files the collector writes must be its own user's.
 *
 * A log or state dir in a shared directory (/tmp, a project directory) may have been
 * made by someone else first: another user's file, a file anyone can write (whose
 * forged lines would reach the sinks), or a symlink to a file of ours they cannot
 * write themselves. The collector refuses all three with one line (docs/security.md).
 */
#ifndef CKMON_OWNED_H
#define CKMON_OWNED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Whether fd, the `what` (e.g. "log") at path, is ours to write: a regular file or
 * directory owned by this user that neither group nor others can write (a device or
 * pipe, /dev/null, a terminal, keeps nothing and passes). Otherwise false with a
 * one-line message in err. */
bool owned_check(int fd, const char *what, const char *path, char *err, size_t err_size);

/* open(2) that follows a symlink at path only when the link is ours or root's
 * (/dev/stdout is root's); otherwise -1 with errno ELOOP. */
int owned_open(const char *path, int flags, mode_t mode);

#endif
