/* last_good.c — `ckmon last-good`: the newest checkpoint a job can resume from.
 *
 * Reads the log (its rotated segments first, oldest to newest) and keeps, per path,
 * the last record written for it: a file saved again under the same name (latest.pt)
 * holds what its newest record describes, so an older healthy record of that path
 * says nothing about what is on disk now. Of those, the newest that is complete,
 * carries no critical alert (nonfinite, incomplete) and whose file still has the
 * recorded size is printed. The files of a set (docs/sets.md) are judged by their set's
 * record, never on their own. Exit 1 when there is none, so that a resume or rotation
 * script can test it: `ckpt=$(ckmon last-good) || start_from_scratch`.
 */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "health.h"
#include "segments.h"

struct entry {
    char *path;
    char *time;
    size_t order; /* position in the log, for ties and for "the last record of a path" */
    bool good;    /* complete and without a critical alert (record_healthy) */
    bool is_set;  /* a set record: path is a directory */
    double bytes;
};

struct scan {
    const char *job, *glob;
    struct entry *entries;
    size_t count, capacity, lines;
};

static void consider_line(void *ctx, const char *line)
{
    struct scan *s = ctx;
    cJSON *r = cJSON_Parse(line);
    const cJSON *event = cJSON_GetObjectItemCaseSensitive(r, "event");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(r, "path");
    const cJSON *time = cJSON_GetObjectItemCaseSensitive(r, "time");
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(r, "job");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(r, "bytes");
    s->lines++;
    bool wanted =
        cJSON_IsString(event) &&
        (!strcmp(event->valuestring, "checkpoint") || !strcmp(event->valuestring, "set")) &&
        cJSON_IsString(path) && cJSON_IsString(time) &&
        (!s->job || (cJSON_IsString(job) && !strcmp(job->valuestring, s->job))) &&
        (!s->glob || !fnmatch(s->glob, path->valuestring, 0));
    if (wanted && s->count == s->capacity) {
        size_t capacity = s->capacity ? 2 * s->capacity : 64;
        struct entry *grown = realloc(s->entries, capacity * sizeof *grown);
        if (grown) {
            s->entries = grown;
            s->capacity = capacity;
        }
    }
    if (wanted && s->count < s->capacity) {
        struct entry *e = &s->entries[s->count];
        *e = (struct entry){.path = strdup(path->valuestring),
                            .time = strdup(time->valuestring),
                            .order = s->lines,
                            .good = record_healthy(r),
                            .is_set = !strcmp(event->valuestring, "set"),
                            .bytes = cJSON_IsNumber(bytes) ? bytes->valuedouble : -1};
        if (e->path && e->time)
            s->count++;
        else {
            free(e->path);
            free(e->time);
        }
    }
    cJSON_Delete(r);
}

/* By path, and for one path in log order, so the last of a run is its newest record. */
static int by_path(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* Whether the file (or a set's directory) is still there as recorded. */
static bool intact(const struct entry *e)
{
    struct stat st;
    if (stat(e->path, &st) < 0) return false;
    if (e->is_set) return S_ISDIR(st.st_mode);
    return S_ISREG(st.st_mode) && (e->bytes < 0 || (double)st.st_size == e->bytes);
}

/* Whether a file's record is one of a set's files (in its directory, or DeepSpeed's
 * `latest` beside it): the set's verdict stands for it, good or torn. */
static bool part_of_set(const struct scan *s, const struct entry *e)
{
    const char *slash = strrchr(e->path, '/');
    size_t dir_len = slash ? (size_t)(slash - e->path) : 0;
    bool latest = slash && !strcmp(slash + 1, "latest");
    for (size_t i = 0; i < s->count && !e->is_set; i++) {
        const struct entry *set = &s->entries[i];
        size_t n = strlen(set->path);
        const char *set_slash = strrchr(set->path, '/');
        if (!set->is_set) continue;
        if (!strncmp(e->path, set->path, n) && e->path[n] == '/') return true;
        if (latest && set_slash && (size_t)(set_slash - set->path) == dir_len &&
            !strncmp(e->path, set->path, dir_len))
            return true;
    }
    return false;
}

static const struct entry *newest_good(struct scan *s)
{
    const struct entry *best = NULL;
    if (s->count) qsort(s->entries, s->count, sizeof *s->entries, by_path);
    for (size_t i = 0; i < s->count; i++) {
        const struct entry *e = &s->entries[i];
        bool last_of_path = i + 1 == s->count || strcmp(e->path, s->entries[i + 1].path);
        if (!last_of_path || !e->good || !intact(e) || part_of_set(s, e)) continue;
        int c = best ? strcmp(e->time, best->time) : 1;
        if (c > 0 || (c == 0 && e->order > best->order)) best = e;
    }
    return best;
}

/* A relative GLOB is taken from the current directory, as paths in records are absolute;
 * one starting with '*' already matches any directory. */
static char *absolute_glob(const char *glob)
{
    char cwd[PATH_MAX], *out = NULL;
    if (glob[0] == '/' || glob[0] == '*') return strdup(glob);
    if (!getcwd(cwd, sizeof cwd)) return strdup(glob);
    return asprintf(&out, "%s/%s", cwd, glob) < 0 ? NULL : out;
}

int cmd_last_good(int argc, char **argv)
{
    struct options o;
    int rc = cli_parse(&o, COMMAND_LAST_GOOD, argc, argv);
    if (rc >= 0) return rc;
    if (o.arg_count > 1) {
        options_free(&o);
        return usage_error(COMMAND_LAST_GOOD, "one GLOB at most");
    }
    struct scan s = {.job = o.job};
    char *glob = o.arg_count ? absolute_glob(o.args[0]) : NULL;
    s.glob = glob;
    if (!segment_each_line(o.log, consider_line, &s) && errno != ENOENT) {
        fprintf(stderr, "ckmon last-good: %s: %s\n", o.log, strerror(errno));
        rc = 1;
    } else {
        const struct entry *best = newest_good(&s);
        if (best) {
            printf("%s\n", best->path);
            rc = 0;
        } else {
            fprintf(stderr,
                    "ckmon last-good: no checkpoint in %s is complete, free of critical alerts "
                    "and intact on disk\n",
                    o.log);
            rc = 1;
        }
    }
    for (size_t i = 0; i < s.count; i++) {
        free(s.entries[i].path);
        free(s.entries[i].time);
    }
    free(s.entries);
    free(glob);
    options_free(&o);
    return rc;
}
