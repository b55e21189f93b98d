/* paths.h — checkpoint globs and absolute path names, shared by the agent and the collector.
 * May include only the C library. */
#ifndef CKMON_PATHS_H
#define CKMON_PATHS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The contract's default checkpoint globs (NULL-terminated), and how many there are. */
extern const char *const default_checkpoint_globs[];
extern const size_t default_checkpoint_glob_count;

/* Whether an absolute path matches any of the fnmatch globs ('*' crosses '/'). */
bool paths_match(char *const *globs, size_t count, const char *abs_path);

/* A quick test before the full match, for the opens for reading a program makes by the
 * thousand (Python's imports): per glob, the literal text after its last '*' must end the
 * path's last component, and its longest literal run without '/' must occur in an absolute
 * path. paths_may_match is false only when no glob can match the absolute, normalised form
 * of path, which it does not compute (that costs a getcwd for a relative path). */
struct glob_hint {
    const char *last;   /* into the glob; lengths below (0: no test) */
    const char *needle; /* a copy, NUL-terminated (for strstr) */
    size_t last_len, needle_len;
    bool anchored;               /* last is the whole last component, not only its ending */
    uint32_t end_word, end_mask; /* last's final (up to) 4 bytes, as the path's are read */
};
struct glob_hints {
    struct glob_hint *hints;
    size_t count;
};
/* false when out of memory (then nothing is rejected). */
bool glob_hints_compile(struct glob_hints *hints, char *const *globs, size_t count);
bool paths_may_match(const struct glob_hints *hints, const char *path);

/* Splits a ':'-separated list into a NULL-terminated array of strings (one allocation). */
char **split_list(const char *list, size_t *count);

/* Writes the absolute, lexically normalised form of path (relative to dirfd, or to the
 * working directory for AT_FDCWD) into out. Returns false if it does not fit or the
 * directory cannot be named. Uses raw system calls only. */
bool absolute_path(int dirfd, const char *path, char *out, size_t out_size);

#endif
