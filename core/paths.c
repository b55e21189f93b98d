/* paths.c — which paths are checkpoints, and absolute path names, for both sides.
 * Raw system calls only: the agent calls these from inside its wrappers. */
#include "paths.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The contract's default list; the *.json and *.bin globs only inside a directory whose
 * name contains "checkpoint" or "ckpt" ('*' crosses '/', so any ancestor counts). */
const char *const default_checkpoint_globs[] = {
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.safetensors",
    "*.npy",
    "*.npz",
    "*.pkl",
    "*.pickle",
    "*.joblib",
    "*.gguf",
    "*.h5",
    "*.hdf5",
    "*checkpoint*/*.json",
    "*checkpoint*/*.bin",
    "*ckpt*/*.json",
    "*ckpt*/*.bin",
    /* multi-file checkpoints (docs/sets.md): DCP's shards and commit, HF indexes and
     * the trainer's checkpoint-N/, DeepSpeed's global_stepN/ and its `latest` */
    "*.distcp",
    "*/.metadata",
    "*.safetensors.index.json",
    "*.bin.index.json",
    "*/checkpoint-[0-9]*/*",
    "*/global_step[0-9]*/*",
    "*/latest",
    NULL,
};

const size_t default_checkpoint_glob_count =
    sizeof default_checkpoint_globs / sizeof default_checkpoint_globs[0] - 1;

/* What a glob's match needs of a path, found once, so that most paths are refused before
 * fnmatch runs: every open for writing asks about its path, and fnmatch over a long path
 * and every glob costs microseconds. Matching takes no flags, so each literal character of
 * the glob matches one equal character of the path: a run of them must be in the path. */
struct glob_info {
    const char *glob;
    const char *tail; /* only '*' wildcards: the text after the last one ends the path */
    size_t tail_len;
    bool tail_decides;
    const char *literal; /* otherwise: the longest run of literal characters (or none) */
    size_t literal_len;
};

static void glob_prepare(const char *glob, struct glob_info *g)
{
    *g = (struct glob_info){.glob = glob};
    const char *star = strrchr(glob, '*');
    if (!strpbrk(glob, "?[\\") && star) {
        g->tail = star + 1;
        g->tail_len = strlen(star + 1);
        g->tail_decides = true;
        return;
    }
    if (strchr(glob, '\\')) return; /* escapes: no shortcut */
    for (const char *c = glob; *c;) {
        if (*c == '[') { /* a set: skip it (a ']' first in it is a member) */
            const char *set = c + 1;
            if (*set == '!' || *set == '^') set++;
            if (*set == ']') set++;
            const char *end = strchr(set, ']');
            if (!end) { /* no set after all: fnmatch takes '[' literally; no shortcut */
                g->literal_len = 0;
                return;
            }
            c = end + 1;
            continue;
        }
        if (*c == '*' || *c == '?') {
            c++;
            continue;
        }
        size_t n = strcspn(c, "*?[");
        if (n > g->literal_len) {
            g->literal = c;
            g->literal_len = n;
        }
        c += n;
    }
}

/* literal_z: the literal run NUL-terminated (strstr is much faster than memmem on short
 * paths), or NULL. */
static bool glob_may_match(const struct glob_info *g, const char *literal_z, const char *path,
                           size_t len)
{
    if (g->tail_decides) /* the last byte first: most paths fail there, without a call */
        return g->tail_len == 0 ||
               (g->tail_len <= len && path[len - 1] == g->tail[g->tail_len - 1] &&
                memcmp(path + len - g->tail_len, g->tail, g->tail_len) == 0);
    if (!g->literal_len) return true;
    return literal_z ? strstr(path, literal_z) != NULL
                     : memmem(path, len, g->literal, g->literal_len) != NULL;
}

bool paths_match(char *const *globs, size_t count, const char *abs_path)
{
    size_t len = strlen(abs_path);
    for (size_t i = 0; i < count; i++) {
        struct glob_info g;
        glob_prepare(globs[i], &g);
        if (glob_may_match(&g, NULL, abs_path, len) && fnmatch(globs[i], abs_path, 0) == 0)
            return true;
    }
    return false;
}

struct glob_set {
    size_t count;
    char **literals; /* each glob's literal run, NUL-terminated, or NULL */
    struct glob_info globs[];
};

struct glob_set *glob_set_new(char *const *globs, size_t count)
{
    size_t text = 0;
    for (size_t i = 0; i < count; i++)
        text += strlen(globs[i]) + 1;
    /* one allocation: the set, then the literal pointers, then their text */
    struct glob_set *s = malloc(sizeof *s + count * (sizeof s->globs[0] + sizeof(char *)) + text);
    if (!s) return NULL;
    s->count = count;
    s->literals = (char **)(s->globs + count);
    char *at = (char *)(s->literals + count);
    for (size_t i = 0; i < count; i++) {
        glob_prepare(globs[i], &s->globs[i]);
        s->literals[i] = NULL;
        if (s->globs[i].literal_len) {
            s->literals[i] = at;
            memcpy(at, s->globs[i].literal, s->globs[i].literal_len);
            at[s->globs[i].literal_len] = '\0';
            at += s->globs[i].literal_len + 1;
        }
    }
    return s;
}

bool glob_set_match(const struct glob_set *s, const char *abs_path)
{
    size_t len = strlen(abs_path);
    for (size_t i = 0; i < s->count; i++)
        if (glob_may_match(&s->globs[i], s->literals[i], abs_path, len) &&
            fnmatch(s->globs[i].glob, abs_path, 0) == 0)
            return true;
    return false;
}

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
