/* verify.c — `ckmon verify`: is each file still what its job wrote? (docs/integrity.md)
 *
 * For each file (a directory stands for the files under it the default checkpoint
 * globs match, recursively) the newest checkpoint record of its path in the log (and
 * its rotated segments) says what was written: its size, and its close time. The file
 * is parsed again with the same parsers as `inspect`, which also checks the format's own
 * checksums (the zip members' CRC-32 of torch.save and np.savez). One line per file:
 *   PATH: ok
 *   PATH: changed since written at TIME by JOB   (size, modification time or checksums)
 *   PATH: truncated (N of M bytes)
 *   PATH: corrupt: WHAT                          (no record, or the record was incomplete)
 *   PATH: no record, ok by its checksums | no record, corrupt: WHAT
 * Exit 0 when every file is ok (a file with no record counts as ok when it parses whole),
 * 1 otherwise, 2 for a usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/parsers/parser.h"
#include "cli.h"
#include "record.h"
#include "segments.h"

struct target {
    char *path;     /* absolute */
    cJSON *written; /* its newest checkpoint record, or NULL */
};

struct targets {
    struct target *items;
    size_t count, capacity;
};

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct target *)a)->path, ((const struct target *)b)->path);
}

static bool add_target(struct targets *t, const char *path)
{
    char abs[PATH_MAX];
    if (!absolute_path(AT_FDCWD, path, abs, sizeof abs)) return false;
    if (t->count == t->capacity) {
        size_t capacity = t->capacity ? 2 * t->capacity : 16;
        struct target *grown = realloc(t->items, capacity * sizeof *grown);
        if (!grown) return false;
        t->items = grown;
        t->capacity = capacity;
    }
    t->items[t->count] = (struct target){.path = strdup(abs)};
    return t->items[t->count].path && ++t->count;
}

/* A named path whatever its name; in a directory, the regular files the globs match. */
static bool collect(struct targets *t, const char *path, bool named)
{
    struct stat st;
    if (named ? stat(path, &st) < 0 : lstat(path, &st) < 0) {
        fprintf(stderr, "ckmon verify: %s: %s\n", path, strerror(errno));
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        struct dirent **names;
        int n = scandir(path, &names, NULL, alphasort);
        if (n < 0) return fprintf(stderr, "ckmon verify: %s: %s\n", path, strerror(errno)), false;
        bool ok = true;
        for (int i = 0; i < n; i++) {
            char child[PATH_MAX];
            const char *name = names[i]->d_name;
            if (strcmp(name, ".") && strcmp(name, "..") &&
                snprintf(child, sizeof child, "%s/%s", path, name) < (int)sizeof child)
                ok &= collect(t, child, false);
            free(names[i]);
        }
        free(names);
        return ok;
    }
    if (named) return add_target(t, path);
    char abs[PATH_MAX];
    if (!S_ISREG(st.st_mode) || !absolute_path(AT_FDCWD, path, abs, sizeof abs) ||
        !paths_match((char *const *)default_checkpoint_globs, default_checkpoint_glob_count, abs))
        return true;
    return add_target(t, path);
}

/* Keeps the line's record when it is a checkpoint record of a target: the log is read
 * oldest first, so the last one kept is the newest. */
static void consider_line(void *ctx, const char *line)
{
    struct targets *t = ctx;
    if (!strstr(line, "\"checkpoint\"")) return;
    cJSON *r = cJSON_Parse(line);
    const cJSON *event = cJSON_GetObjectItemCaseSensitive(r, "event");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(r, "path");
    struct target *found = NULL;
    if (cJSON_IsString(event) && !strcmp(event->valuestring, "checkpoint") &&
        cJSON_IsString(path)) {
        struct target key = {.path = path->valuestring};
        found = bsearch(&key, t->items, t->count, sizeof key, by_path);
    }
    if (!found) return cJSON_Delete(r);
    cJSON_Delete(found->written);
    found->written = r;
}

static const char *string_of(const cJSON *r, const char *name, const char *otherwise)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, name);
    return cJSON_IsString(v) ? v->valuestring : otherwise;
}

/* The record's close time as seconds since the epoch (0 when it has none). */
static time_t written_at(const cJSON *r)
{
    struct tm tm = {0};
    const char *text = string_of(r, "time", "");
    if (!strptime(text, "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
    return timegm(&tm);
}

/* Parses the file as inspect does: whole, with every checksum the format has. */
static struct record *parse(const char *path, int fd, const struct stat *st)
{
    struct identity who = {.host = "", .program = "ckmon", .job = "verify", .pid = (long)getpid()};
    struct key_filter keys = {0};
    struct parse_options opts = {.sample = 1.0};
    return record_from_file(&who, fd, path, st, &keys, &opts);
}

static const char *first_error(const struct record *r)
{
    const cJSON *e = cJSON_GetArrayItem(r->errors, 0);
    return cJSON_IsString(e) ? e->valuestring : "the data ended early";
}

/* Prints the file's line; returns whether it is ok. */
static bool verify_one(const struct target *t)
{
    int fd = open(t->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        printf("%s: corrupt: %s\n", t->path, fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0) close(fd);
        return false;
    }
    struct record *now = parse(t->path, fd, &st);
    close(fd);
    if (!now) return printf("%s: corrupt: out of memory\n", t->path), false;
    bool whole = now->complete;
    bool ok = false;
    const cJSON *w = t->written;
    if (!w) {
        if (whole)
            printf("%s: no record, ok by its checksums\n", t->path);
        else
            printf("%s: no record, corrupt: %s\n", t->path, first_error(now));
        ok = whole;
    } else {
        const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(w, "bytes");
        const cJSON *complete = cJSON_GetObjectItemCaseSensitive(w, "complete");
        double size = cJSON_IsNumber(bytes) ? bytes->valuedouble : -1;
        time_t at = written_at(w);
        if (size >= 0 && (double)st.st_size < size)
            printf("%s: truncated (%lld of %.0f bytes)\n", t->path, (long long)st.st_size, size);
        else if (!cJSON_IsTrue(complete) && !whole)
            printf("%s: corrupt: %s\n", t->path, first_error(now));
        else if ((size >= 0 && (double)st.st_size != size) || !whole ||
                 (at && st.st_mtime > at + 1))
            printf("%s: changed since written at %s by %s%s%s\n", t->path,
                   string_of(w, "time", "?"), string_of(w, "job", "?"), whole ? "" : ": ",
                   whole ? "" : first_error(now));
        else
            ok = printf("%s: ok\n", t->path) > 0;
    }
    record_free(now);
    return ok;
}

int cmd_verify(int argc, char **argv)
{
    struct options o;
    int rc = cli_parse(&o, COMMAND_VERIFY, argc, argv);
    if (rc >= 0) return rc;
    if (!o.arg_count) {
        options_free(&o);
        return usage_error(COMMAND_VERIFY, "no PATH to verify");
    }
    struct targets t = {0};
    rc = 0;
    for (int i = 0; i < o.arg_count; i++)
        if (!collect(&t, o.args[i], true)) rc = 1;
    qsort(t.items, t.count, sizeof *t.items, by_path);
    if (!segment_each_line(o.log, consider_line, &t) && errno != ENOENT) {
        fprintf(stderr, "ckmon verify: %s: %s\n", o.log, strerror(errno));
        rc = 1;
    }
    for (size_t i = 0; i < t.count; i++) {
        if (!verify_one(&t.items[i])) rc = 1;
        free(t.items[i].path);
        cJSON_Delete(t.items[i].written);
    }
    free(t.items);
    options_free(&o);
    return rc;
}
