/* paths.c — which paths are checkpoints, and absolute path names, for both sides.
 * Raw system calls only: the agent calls these from inside its wrappers. */
#include "paths.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <stdint.h>
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
     * the trainer's checkpoint-N/, DeepSpeed's global_stepN/ and its `latest`, Orbax's
     * temporary directory */
    "*.distcp",
    "*/.metadata",
    "*.safetensors.index.json",
    "*.bin.index.json",
    "*/checkpoint-[0-9]*/*",
    "*/global_step[0-9]*/*",
    "*/latest",
    "*.orbax-checkpoint-tmp-*/*", /* a directory filled, then renamed into place */
    NULL,
};

const size_t default_checkpoint_glob_count =
    sizeof default_checkpoint_globs / sizeof default_checkpoint_globs[0] - 1;

/* Whether glob cannot match a path that ends so: the text after a glob's last '*', when
 * the glob has no other wildcard than '*', must end the path. Every open for writing asks
 * about its path, and fnmatch over a long path and every glob costs microseconds; most
 * paths fail this test on the extension. */
static bool suffix_excludes(const char *glob, const char *path, size_t path_len)
{
    if (strpbrk(glob, "?[\\")) return false;
    const char *star = strrchr(glob, '*');
    if (!star) return false;
    size_t n = strlen(star + 1);
    return n > path_len || memcmp(path + path_len - n, star + 1, n) != 0;
}

bool paths_match(char *const *globs, size_t count, const char *abs_path)
{
    size_t len = strlen(abs_path);
    for (size_t i = 0; i < count; i++)
        if (!suffix_excludes(globs[i], abs_path, len) && fnmatch(globs[i], abs_path, 0) == 0)
            return true;
    return false;
}

/* What the glob says of a match's last component: the literal text after its last '*'
 * (the whole glob when it has none), from its last '/' on. After a '/' it is the whole
 * component (anchored), else its ending. Nothing (length 0) when that text is not literal. */
static void hint_last(const char *glob, struct glob_hint *h)
{
    const char *star = strrchr(glob, '*');
    const char *tail = star ? star + 1 : glob;
    if (strpbrk(tail, "?[]\\") || (!star && strpbrk(glob, "?[]\\"))) return;
    const char *slash = strrchr(tail, '/');
    h->anchored = slash != NULL;
    h->last = slash ? slash + 1 : tail;
    h->last_len = strlen(h->last);
}

/* The longest run of literal characters other than '/' outside brackets: a component's
 * text any match must contain, whatever the normalisation removed around it. */
static void hint_needle(const char *glob, struct glob_hint *h)
{
    const char *run = glob;
    for (const char *p = glob;; p++) {
        bool literal = *p && !strchr("*?[]\\/", *p);
        if (literal) continue;
        if ((size_t)(p - run) > h->needle_len) {
            h->needle = run;
            h->needle_len = (size_t)(p - run);
        }
        if (!*p) return;
        if (*p == '[') { /* to the closing bracket; "[]...]" and "[!]...]" hold a ']' */
            const char *q = p + 1;
            if (*q == '!' || *q == '^') q++;
            if (*q == ']') q++;
            while (*q && *q != ']')
                q++;
            if (!*q) return; /* unclosed: the rest is not known literal */
            p = q;
        } else if (*p == '\\' && p[1]) {
            p++;
        }
        run = p + 1;
    }
}

/* The needles are copied, each ending in a NUL, after the hints in the one allocation:
 * strstr, vectorised in glibc, is several times faster than memmem on short needles. */
/* The final (up to) 4 bytes of text, as one word; shorter text is padded with zeros. */
static uint32_t end_word(const char *text, size_t len)
{
    uint32_t word = 0;
    for (size_t i = len < 4 ? len : 4; i > 0; i--)
        word = word << 8 | (unsigned char)text[len - i];
    return word;
}

bool glob_hints_compile(struct glob_hints *hints, char *const *globs, size_t count)
{
    size_t slots = count ? count : 1, text = 0;
    struct glob_hint *h = calloc(slots, sizeof *h);
    for (size_t i = 0; h && i < count; i++) {
        hint_last(globs[i], &h[i]);
        hint_needle(globs[i], &h[i]);
        h[i].end_word = end_word(h[i].last, h[i].last_len);
        h[i].end_mask = h[i].last_len >= 4 ? ~0u : (1u << (8 * h[i].last_len)) - 1;
        text += h[i].needle_len + 1;
    }
    struct glob_hint *grown = h ? realloc(h, slots * sizeof *h + text) : NULL;
    *hints = (struct glob_hints){.hints = grown};
    if (!grown) {
        free(h);
        return false;
    }
    char *copy = (char *)(grown + slots);
    for (size_t i = 0; i < count; i++) {
        memcpy(copy, grown[i].needle, grown[i].needle_len);
        copy[grown[i].needle_len] = '\0';
        grown[i].needle = copy;
        copy += grown[i].needle_len + 1;
    }
    hints->count = count;
    return true;
}

/* Whether text of length len ends with the n bytes of end, compared from the end: most
 * paths differ from most globs in their last byte. */
static bool ends_with(const char *text, size_t len, const char *end, size_t n)
{
    if (n > len) return false;
    for (size_t i = 1; i <= n; i++)
        if (text[len - i] != end[n - i]) return false;
    return true;
}

/* Whether path can match glob h, as the hints tell. */
static bool hint_allows(const struct glob_hint *h, const char *path, const char *last,
                        size_t last_len)
{
    if ((h->anchored && h->last_len != last_len) ||
        !ends_with(last, last_len, h->last, h->last_len))
        return false;
    return path[0] != '/' || !h->needle_len || strstr(path, h->needle);
}

bool paths_may_match(const struct glob_hints *hints, const char *path)
{
    size_t len = strlen(path);
    /* Normalising can change only an ending in '/' or '.' ("dir/.."); the last component
     * stays as it is otherwise, whatever the directories before it become. */
    if (!hints->hints || !len || path[len - 1] == '/' || path[len - 1] == '.') return true;
    const char *last = strrchr(path, '/');
    last = last ? last + 1 : path;
    size_t last_len = len - (size_t)(last - path);
    /* A glob whose ending's last 4 bytes are not the path's is out at one comparison:
     * most of them for most paths (.py against .npy, .pyc, .so). */
    uint32_t word = end_word(path, len);
    for (size_t i = 0; i < hints->count; i++) {
        const struct glob_hint *h = &hints->hints[i];
        if ((word & h->end_mask) == h->end_word && hint_allows(h, path, last, last_len))
            return true;
    }
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
