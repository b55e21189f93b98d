/* paths.h — checkpoint globs and absolute path names, shared by the agent and the collector.
 * May include only the C library. */
#ifndef CKMON_PATHS_H
#define CKMON_PATHS_H

#include <stdbool.h>
#include <stddef.h>

/* The contract's default checkpoint globs (NULL-terminated), and how many there are. */
extern const char *const default_checkpoint_globs[];
extern const size_t default_checkpoint_glob_count;

/* Whether an absolute path matches any of the fnmatch globs ('*' crosses '/'). */
bool paths_match(char *const *globs, size_t count, const char *abs_path);

/* The same globs prepared once, for matching many paths (the agent asks about every
 * open for writing); the globs must outlive the set. NULL when out of memory. */
struct glob_set;
struct glob_set *glob_set_new(char *const *globs, size_t count);
bool glob_set_match(const struct glob_set *s, const char *abs_path);

/* Splits a ':'-separated list into a NULL-terminated array of strings (one allocation). */
char **split_list(const char *list, size_t *count);

/* Writes the absolute, lexically normalised form of path (relative to dirfd, or to the
 * working directory for AT_FDCWD) into out. Returns false if it does not fit or the
 * directory cannot be named. Uses raw system calls only. */
bool absolute_path(int dirfd, const char *path, char *out, size_t out_size);

#endif
