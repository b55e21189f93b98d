/* state.c — the state dir's files: lock, cursors, dead letters, spool, stats.json
 * (see state.h). */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/jsontext.h"

char *state_dir_path(const struct options *o)
{
    if (o->state) return strdup(o->state);
    if (!strcmp(o->log, "-")) return strdup("ckmon-stdout.state");
    char *out = NULL;
    return asprintf(&out, "%s.state", o->log) < 0 ? NULL : out;
}

char *state_path(const struct state *st, const char *name)
{
    char *out = NULL;
    return asprintf(&out, "%s/%s", st->dir, name) < 0 ? NULL : out;
}

bool state_open(struct state *st, const struct options *o, char *err, size_t err_size)
{
    *st = (struct state){.lock_fd = -1};
    char *lock_path = NULL;
    if (!(st->dir = state_dir_path(o)) || !(lock_path = state_path(st, "lock"))) {
        snprintf(err, err_size, "out of memory");
    } else if (mkdir(st->dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create state dir %s: %s", st->dir, strerror(errno));
    } else if ((st->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        snprintf(err, err_size, "cannot use state dir %s: %s", st->dir, strerror(errno));
    } else if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, err_size, "state dir %s is in use by another collector (--state)", st->dir);
    } else {
        free(lock_path);
        return true;
    }
    free(lock_path);
    state_close(st);
    return false;
}

void state_close(struct state *st)
{
    if (st->lock_fd >= 0) close(st->lock_fd);
    free(st->dir);
    *st = (struct state){.lock_fd = -1};
}

/* Replaces NAME with len bytes of text all at once: written beside it (and synced, if
 * asked), then renamed over it. False with errno set when it could not. */
static bool replace_file(const struct state *st, const char *name, const char *text, size_t len,
                         bool sync)
{
    char *path = state_path(st, name), *tmp = NULL;
    if (!path || asprintf(&tmp, "%s.tmp", path) < 0) {
        free(path);
        errno = ENOMEM;
        return false;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && (!sync || fdatasync(fd) == 0);
    if (fd >= 0 && close(fd) != 0) ok = false;
    ok = ok && rename(tmp, path) == 0;
    int saved = errno;
    if (!ok) unlink(tmp);
    free(tmp);
    free(path);
    errno = saved;
    return ok;
}

bool state_load_cursor(const struct state *st, const char *name, struct cursor *c, bool *exists)
{
    char *path = state_path(st, name);
    FILE *f = path ? fopen(path, "re") : NULL;
    free(path);
    *exists = f || errno != ENOENT;
    if (!f) return false;
    unsigned long long dev, ino;
    long long offset;
    int n = fscanf(f, "%llu %llu %lld", &dev, &ino, &offset);
    fclose(f);
    if (n != 3) return false;
    *c = (struct cursor){.dev = (dev_t)dev, .ino = (ino_t)ino, .offset = (off_t)offset};
    return true;
}

bool state_save_cursor(const struct state *st, const char *name, const struct cursor *c)
{
    char text[96];
    int len = snprintf(text, sizeof text, "%llu %llu %lld\n", (unsigned long long)c->dev,
                       (unsigned long long)c->ino, (long long)c->offset);
    return replace_file(st, name, text, (size_t)len, true);
}

bool state_append(const struct state *st, const char *name, const char *line, size_t len)
{
    char *path = state_path(st, name);
    FILE *f = path ? fopen(path, "ae") : NULL;
    free(path);
    bool ok = f && fwrite(line, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = false;
    return ok;
}

bool state_write_stats(const struct state *st, const struct collector_stats *s)
{
    cJSON *o = cJSON_CreateObject(), *sinks = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "log", s->log);
    cJSON_AddNumberToObject(o, "written", (double)s->written);
    cJSON_AddNumberToObject(o, "write_failures", (double)s->write_failures);
    for (size_t i = 0; i < s->sink_count; i++) {
        const struct sink_stats *k = &s->sinks[i];
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "sink", k->sink);
        cJSON_AddStringToObject(c, "id", k->id);
        cJSON_AddNumberToObject(c, "received", (double)k->counts.received);
        cJSON_AddNumberToObject(c, "sent", (double)k->counts.sent);
        cJSON_AddNumberToObject(c, "retried", (double)k->counts.retried);
        cJSON_AddNumberToObject(c, "dead_lettered", (double)k->counts.dead_lettered);
        cJSON_AddNumberToObject(c, "dropped", (double)k->counts.dropped);
        cJSON_AddNumberToObject(c, "skipped_samples", (double)k->counts.skipped);
        cJSON_AddNumberToObject(c, "undelivered", (double)k->counts.undelivered);
        cJSON_AddItemToArray(sinks, c);
    }
    cJSON_AddItemToObject(o, "sinks", sinks);
    char *text = json_print(o), *line = NULL;
    cJSON_Delete(o);
    bool ok = text && asprintf(&line, "%s\n", text) >= 0 &&
              replace_file(st, "stats.json", line, strlen(line), false);
    free(line);
    free(text);
    return ok;
}

bool state_open_spool(const struct state *st, struct log_writer *spool,
                      unsigned long long max_bytes, char *err, size_t err_size)
{
    char *path = state_path(st, "spool.jsonl");
    if (!path) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    int rc = log_open(spool, path, err, err_size);
    free(path);
    if (rc < 0) return false;
    spool->max_bytes = max_bytes;
    spool->keep = 0; /* only what a sink still needs */
    return true;
}
