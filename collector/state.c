/* state.c — the state dir's files: lock, cursors, dead letters, spool, stats.json
 * (see state.h).
 *
 * The directory must be ours and closed to others (owned.h), and every file in it is
 * opened relative to its descriptor with O_NOFOLLOW (and O_EXCL where created): a
 * directory someone renamed in under our path, or a symlink put in it, is never
 * written through.
 */
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
#include "owned.h"

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

/* Opens the directory (made mode 0700 if missing) and checks it is ours. */
static bool open_dir(struct state *st, char *err, size_t err_size)
{
    if (mkdir(st->dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create state dir %s: %s", st->dir, strerror(errno));
        return false;
    }
    st->dir_fd = owned_open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (st->dir_fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
        snprintf(err, err_size, "state dir %s is %s; not using it", st->dir,
                 errno == ELOOP ? "a symlink owned by another user" : "not a directory");
        return false;
    }
    if (st->dir_fd < 0) {
        snprintf(err, err_size, "cannot open state dir %s: %s", st->dir, strerror(errno));
        return false;
    }
    return owned_check(st->dir_fd, "state dir", st->dir, err, err_size);
}

bool state_open(struct state *st, const struct options *o, bool lock, char *err, size_t err_size)
{
    *st = (struct state){.dir_fd = -1, .lock_fd = -1};
    bool ok = (st->dir = state_dir_path(o)) != NULL;
    if (!ok)
        snprintf(err, err_size, "out of memory");
    else if ((ok = open_dir(st, err, err_size)) && lock) {
        st->lock_fd = openat(st->dir_fd, "lock",
                             O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
        if (st->lock_fd < 0)
            snprintf(err, err_size, "cannot use state dir %s: lock: %s", st->dir,
                     errno == ELOOP ? "a symlink" : strerror(errno));
        else if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0)
            snprintf(err, err_size, "state dir %s is in use by another collector (--state)",
                     st->dir);
        else
            return true;
        ok = false;
    }
    if (!ok) state_close(st);
    return ok;
}

int state_openat(const struct state *st, const char *name, int flags)
{
    return openat(st->dir_fd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
}

static unsigned long recovery_counts[RECOVERY_COUNTERS];

void state_count(enum recovery_counter which, unsigned long n)
{
    __atomic_fetch_add(&recovery_counts[which], n, __ATOMIC_RELAXED);
}

unsigned long state_counted(enum recovery_counter which)
{
    return __atomic_load_n(&recovery_counts[which], __ATOMIC_RELAXED);
}

void state_close(struct state *st)
{
    if (st->lock_fd >= 0) close(st->lock_fd);
    if (st->dir_fd >= 0) close(st->dir_fd);
    free(st->dir);
    *st = (struct state){.dir_fd = -1, .lock_fd = -1};
}

/* Replaces NAME with len bytes of text all at once: written beside it (and synced, if
 * asked), then renamed over it. False with errno set when it could not. */
static bool replace_file(const struct state *st, const char *name, const char *text, size_t len,
                         bool sync)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", name) < 0) {
        errno = ENOMEM;
        return false;
    }
    /* A .tmp left by a collector killed mid-write (or put there) is removed, not used. */
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(st->dir_fd, tmp, flags, 0600);
    if (fd < 0 && errno == EEXIST && unlinkat(st->dir_fd, tmp, 0) == 0)
        fd = openat(st->dir_fd, tmp, flags, 0600);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && (!sync || fdatasync(fd) == 0);
    if (fd >= 0 && close(fd) != 0) ok = false;
    ok = ok && renameat(st->dir_fd, tmp, st->dir_fd, name) == 0;
    int saved = errno;
    if (!ok && fd >= 0) unlinkat(st->dir_fd, tmp, 0);
    free(tmp);
    errno = saved;
    return ok;
}

bool state_load_cursor(const struct state *st, const char *name, struct cursor *c, bool *exists)
{
    int fd = openat(st->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    *exists = f || errno != ENOENT;
    if (!f && fd >= 0) close(fd);
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
    int fd = openat(st->dir_fd, name, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    size_t done = 0;
    while (fd >= 0 && done < len) {
        ssize_t n = write(fd, line + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    if (fd >= 0 && close(fd) != 0) done = 0;
    return done == len;
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
    static const char *const names[RECOVERY_COUNTERS] = {
        [RECOVERED_HELD] = "held_records_recovered",
        [IMPORTED_SPOOL_FILES] = "agent_spool_files_imported",
        [LOST_AGENT_MESSAGES] = "agent_messages_lost",
        [LOST_SPOOL_FILES] = "agent_spool_files_unreadable",
        [RESENT_MESSAGES] = "agent_messages_resent"};
    cJSON *recovery = cJSON_AddObjectToObject(o, "recovery");
    for (int i = 0; i < RECOVERY_COUNTERS; i++)
        cJSON_AddNumberToObject(recovery, names[i], (double)state_counted(i));
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
    int rc = log_open_private(spool, path, err, err_size);
    free(path);
    if (rc < 0) return false;
    spool->max_bytes = max_bytes;
    spool->keep = 0; /* only what a sink still needs */
    return true;
}
