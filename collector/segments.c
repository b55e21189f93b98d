/* segments.c — naming, listing, finding and reading rotated log segments (see segments.h). */
#include "segments.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *segment_path(const char *base, unsigned long seq)
{
    char *out = NULL;
    int rc =
        seq == SEGMENT_ACTIVE ? asprintf(&out, "%s", base) : asprintf(&out, "%s.%lu", base, seq);
    return rc < 0 ? NULL : out;
}

static int compare_seq(const void *a, const void *b)
{
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}

bool segment_list(const char *base, struct segment_list *out)
{
    *out = (struct segment_list){0};
    const char *slash = strrchr(base, '/');
    char *dir = slash ? strndup(base, (size_t)(slash - base + 1)) : strdup(".");
    const char *name = slash ? slash + 1 : base;
    size_t name_len = strlen(name), capacity = 0;
    DIR *d = dir ? opendir(dir) : NULL;
    free(dir);
    if (!d) return false;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, name, name_len) || e->d_name[name_len] != '.') continue;
        const char *digits = e->d_name + name_len + 1;
        if (*digits < '1' || *digits > '9') continue;
        errno = 0;
        unsigned long seq = strtoul(digits, &end, 10);
        if (*end || errno) continue;
        if (out->count == capacity) {
            capacity = capacity ? capacity * 2 : 8;
            unsigned long *grown = realloc(out->seqs, capacity * sizeof *grown);
            if (!grown) break;
            out->seqs = grown;
        }
        out->seqs[out->count++] = seq;
    }
    closedir(d);
    if (out->count) qsort(out->seqs, out->count, sizeof *out->seqs, compare_seq);
    return true;
}

void segment_list_free(struct segment_list *l)
{
    free(l->seqs);
    *l = (struct segment_list){0};
}

static bool each_line(const char *path, void (*each)(void *ctx, const char *line), void *ctx)
{
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f) return false;
    char *line = NULL;
    size_t size = 0;
    while (getline(&line, &size, f) > 0)
        each(ctx, line);
    free(line);
    fclose(f);
    return true;
}

bool segment_each_line(const char *base, void (*each)(void *ctx, const char *line), void *ctx)
{
    struct segment_list l = {0};
    segment_list(base, &l);
    for (size_t i = 0; i < l.count; i++) {
        char *path = segment_path(base, l.seqs[i]);
        each_line(path, each, ctx);
        free(path);
    }
    segment_list_free(&l);
    return each_line(base, each, ctx);
}

static bool same_file(const char *base, unsigned long seq, dev_t dev, ino_t ino, struct stat *st)
{
    char *path = segment_path(base, seq);
    bool same = path && stat(path, st) == 0 && st->st_dev == dev && st->st_ino == ino;
    free(path);
    return same;
}

bool segment_find(const char *base, dev_t dev, ino_t ino, unsigned long *seq)
{
    struct stat st;
    struct segment_list l;
    if (same_file(base, SEGMENT_ACTIVE, dev, ino, &st)) {
        *seq = SEGMENT_ACTIVE;
        return true;
    }
    bool found = false;
    segment_list(base, &l);
    for (size_t i = l.count; i-- > 0 && !found;)
        if (same_file(base, l.seqs[i], dev, ino, &st)) {
            *seq = l.seqs[i];
            found = true;
        }
    segment_list_free(&l);
    return found;
}

static bool modified(const char *base, unsigned long seq, struct timespec *out)
{
    struct stat st;
    char *path = segment_path(base, seq);
    bool ok = path && stat(path, &st) == 0;
    free(path);
    if (ok) *out = st.st_mtim;
    return ok;
}

unsigned long segment_next(const char *base, unsigned long seq)
{
    struct timespec now, next;
    if (seq == SEGMENT_ACTIVE || !modified(base, seq, &now) || !modified(base, seq + 1, &next))
        return SEGMENT_ACTIVE;
    bool older =
        next.tv_sec < now.tv_sec || (next.tv_sec == now.tv_sec && next.tv_nsec < now.tv_nsec);
    return older ? SEGMENT_ACTIVE : seq + 1;
}
