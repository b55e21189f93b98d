/* verify.c — `ckmon verify`: is each file still what its job wrote? (docs/integrity.md)
 *
 * For each file (a directory stands for the files under it the default checkpoint
 * globs match, recursively) the newest checkpoint record of its path in the log (and
 * its rotated segments) says what was written: its size, its close time, and with
 * --digest its xxh3-128. The file is parsed again with the same parsers as `inspect`,
 * which also checks the format's own checksums (the zip members' CRC-32 of torch.save
 * and np.savez), and hashed in the same pass. One line per file:
 *   PATH: ok
 *   PATH: ok, a copy of ORIGINAL written at TIME by JOB   (no record of PATH, a digest's)
 *   PATH: changed since written at TIME by JOB   (size, modification time or checksums)
 *   PATH: truncated (N of M bytes)
 *   PATH: corrupt: WHAT                          (the same size and time, other bytes;
 *                                                 an incomplete record; unreadable)
 *   PATH: no record, ok by its checksums | no record, corrupt: WHAT
 * Exit 0 when every file is ok (a file with no record counts as ok when it parses whole),
 * 1 otherwise, 2 for a usage error.
 *
 * Each failure becomes a `verify` record (docs/records.md), with the running count of
 * its job's failures that ckmon_verify_failures_total reports: handed to the collector
 * on --socket when one answers (it writes it to its log, so /metrics and the sinks see
 * it), else appended to the log itself.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "core/grow.h"
#include "core/paths.h"
#include "core/parsers/parser.h"
#include "core/wire.h"
#include "cli.h"
#include "digest.h"
#include "log.h"
#include "record.h"
#include "segments.h"
#include "server.h"

/* What a verdict is called in a verify record's "result". */
enum verdict { VERDICT_OK, VERDICT_CHANGED, VERDICT_TRUNCATED, VERDICT_CORRUPT, VERDICT_NO_RECORD };
static const char *const verdict_names[] = {"ok", "changed", "truncated", "corrupt", "no record"};

struct target {
    char *path;                    /* absolute */
    cJSON *written;                /* its newest checkpoint record, or NULL */
    char digest[DIGEST_TEXT_SIZE]; /* of the file now, "" when not taken */
    enum verdict verdict;
    char *line; /* what follows "PATH: " */
};

/* A checkpoint record with a digest, for the files with no record of their own
 * (copies): its digest and where it came from. */
struct digested {
    char digest[DIGEST_TEXT_SIZE];
    char *path, *time, *job;
};

/* The verify failures the log holds so far, per job and host (the metric's series). */
struct failures {
    char *job, *host;
    double total;
};

struct targets {
    struct target *items;
    size_t count, capacity;
    struct digested *digested; /* every digested checkpoint record's, oldest first */
    size_t digested_count, digested_capacity;
    struct failures *failures;
    size_t failure_series;
};

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct target *)a)->path, ((const struct target *)b)->path);
}

static bool add_target(struct targets *t, const char *path)
{
    char abs[PATH_MAX];
    if (!absolute_path(AT_FDCWD, path, abs, sizeof abs)) return false;
    if (!GROW_FOR_ONE(t->items, t->count, t->capacity, 16)) return false;
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

static const char *string_of(const cJSON *r, const char *name, const char *otherwise)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, name);
    return cJSON_IsString(v) ? v->valuestring : otherwise;
}

static void note_digested(struct targets *t, const cJSON *r)
{
    const char *digest = string_of(r, "digest", "");
    if (strlen(digest) != DIGEST_TEXT_SIZE - 1) return;
    if (t->digested_count == t->digested_capacity) {
        size_t capacity = t->digested_capacity ? 2 * t->digested_capacity : 64;
        struct digested *grown = realloc(t->digested, capacity * sizeof *grown);
        if (!grown) return;
        t->digested = grown;
        t->digested_capacity = capacity;
    }
    struct digested *d = &t->digested[t->digested_count];
    memcpy(d->digest, digest, DIGEST_TEXT_SIZE);
    d->path = strdup(string_of(r, "path", "?"));
    d->time = strdup(string_of(r, "time", "?"));
    d->job = strdup(string_of(r, "job", "?"));
    if (d->path && d->time && d->job) return (void)t->digested_count++;
    free(d->path), free(d->time), free(d->job);
}

/* The series of failures of a job on a host (created when new); NULL: no memory. */
static struct failures *series_of(struct targets *t, const char *job, const char *host)
{
    for (size_t i = 0; i < t->failure_series; i++)
        if (!strcmp(t->failures[i].job, job) && !strcmp(t->failures[i].host, host))
            return &t->failures[i];
    struct failures *grown = realloc(t->failures, (t->failure_series + 1) * sizeof *grown);
    if (!grown) return NULL;
    t->failures = grown;
    struct failures *f = &grown[t->failure_series];
    *f = (struct failures){.job = strdup(job), .host = strdup(host)};
    if (f->job && f->host) return &grown[t->failure_series++];
    free(f->job), free(f->host);
    return NULL;
}

/* A verify record: its series' total so far. */
static void note_failure(struct targets *t, const cJSON *r)
{
    struct failures *f = series_of(t, string_of(r, "job", "?"), string_of(r, "host", "?"));
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(r, "total");
    if (f) f->total = cJSON_IsNumber(total) ? total->valuedouble : f->total + 1;
}

/* Keeps what the line says when it is a checkpoint record of a target (the log is read
 * oldest first, so the last one kept is the newest), a record with a digest, or a verify
 * record. */
static void consider_line(void *ctx, const char *line)
{
    struct targets *t = ctx;
    if (!strstr(line, "\"checkpoint\"") && !strstr(line, "\"verify\"")) return;
    cJSON *r = cJSON_Parse(line);
    const char *event = string_of(r, "event", "");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(r, "path");
    struct target *found = NULL;
    if (!strcmp(event, "verify")) note_failure(t, r);
    if (!strcmp(event, "checkpoint") && cJSON_IsString(path)) {
        note_digested(t, r);
        struct target key = {.path = path->valuestring};
        found = bsearch(&key, t->items, t->count, sizeof key, by_path);
    }
    if (!found) return cJSON_Delete(r);
    cJSON_Delete(found->written);
    found->written = r;
}

/* The record's close time as seconds since the epoch (0 when it has none). */
static time_t written_at(const cJSON *r)
{
    struct tm tm = {0};
    const char *text = string_of(r, "time", "");
    if (!strptime(text, "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
    return timegm(&tm);
}

/* Parses the file as inspect does: whole, with every checksum the format has, and
 * hashed in the same pass. */
static struct record *parse(const char *path, int fd, const struct stat *st)
{
    struct identity who = {.host = "", .program = "ckmon", .job = "verify", .pid = (long)getpid()};
    struct key_filter keys = {0};
    struct parse_options opts = {.sample = 1.0};
    return record_from_file_hashed(&who, fd, path, st, &keys, &opts, true);
}

static const char *first_error(const struct record *r)
{
    const cJSON *e = cJSON_GetArrayItem(r->errors, 0);
    return cJSON_IsString(e) ? e->valuestring : "the data ended early";
}

static void judge(struct target *t, enum verdict v, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static void judge(struct target *t, enum verdict v, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    if (vasprintf(&t->line, format, ap) < 0) t->line = NULL;
    va_end(ap);
    t->verdict = v;
}

/* The newest record of a file with these bytes, or NULL. */
static const struct digested *copy_of(const struct targets *all, const char *digest)
{
    for (size_t i = all->digested_count; digest[0] && i-- > 0;)
        if (!strcmp(all->digested[i].digest, digest)) return &all->digested[i];
    return NULL;
}

/* The verdict on a file with a record, parsed (and hashed) now. */
static void judge_written(struct target *t, const struct record *now, const struct stat *st)
{
    const cJSON *w = t->written;
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(w, "bytes");
    const cJSON *complete = cJSON_GetObjectItemCaseSensitive(w, "complete");
    const char *recorded = string_of(w, "digest", NULL);
    double size = cJSON_IsNumber(bytes) ? bytes->valuedouble : -1;
    time_t at = written_at(w);
    bool whole = now->complete;
    if (recorded && !t->digest[0]) { /* no libxxhash (else the file changed while read) */
        static bool said;
        char err[256];
        if (!said && !digest_load(err, sizeof err))
            fprintf(stderr, "ckmon verify: cannot check digests: %s\n", err);
        said = true;
    }
    if (size >= 0 && (double)st->st_size < size)
        judge(t, VERDICT_TRUNCATED, "truncated (%lld of %.0f bytes)", (long long)st->st_size, size);
    else if (!cJSON_IsTrue(complete) && !whole)
        judge(t, VERDICT_CORRUPT, "corrupt: %s", first_error(now));
    else if ((size >= 0 && (double)st->st_size != size) || !whole || (at && st->st_mtime > at + 1))
        judge(t, VERDICT_CHANGED, "changed since written at %s by %s%s%s",
              string_of(w, "time", "?"), string_of(w, "job", "?"), whole ? "" : ": ",
              whole ? "" : first_error(now));
    else if (recorded && t->digest[0] && strcmp(recorded, t->digest))
        judge(t, VERDICT_CORRUPT, "corrupt: digest mismatch (written %s, now %s)", recorded,
              t->digest);
    else
        judge(t, VERDICT_OK, "ok");
}

/* Decides the file's verdict and its line. */
static void verify_one(struct target *t, const struct targets *all)
{
    int fd = open(t->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        judge(t, VERDICT_CORRUPT, "corrupt: %s", fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0) close(fd);
        return;
    }
    struct record *now = parse(t->path, fd, &st);
    close(fd);
    if (!now) return judge(t, VERDICT_CORRUPT, "corrupt: out of memory");
    if (now->digest) snprintf(t->digest, sizeof t->digest, "%s", now->digest);
    const struct digested *copy = t->written ? NULL : copy_of(all, t->digest);
    if (t->written)
        judge_written(t, now, &st);
    else if (copy)
        judge(t, VERDICT_OK, "ok, a copy of %s written at %s by %s", copy->path, copy->time,
              copy->job);
    else if (now->complete)
        judge(t, VERDICT_OK, "no record, ok by its checksums");
    else
        judge(t, VERDICT_CORRUPT, "no record, corrupt: %s", first_error(now));
    record_free(now);
}

/* ---- failures as verify records ---- */

/* The verify record of a failed target, counted in its series. NULL: no memory. */
static cJSON *failure_record(struct targets *all, const struct target *t, const char *host)
{
    const char *job = t->written ? string_of(t->written, "job", "unknown") : "unknown";
    const char *run = t->written ? string_of(t->written, "run", NULL) : NULL;
    struct failures *series = series_of(all, job, host);
    struct timespec now;
    char time_text[RFC3339_SIZE];
    clock_gettime(CLOCK_REALTIME, &now);
    format_rfc3339((int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000, time_text, sizeof time_text);
    cJSON *r = series ? cJSON_CreateObject() : NULL;
    if (!r) return NULL;
    cJSON_AddNumberToObject(r, "schema", 1);
    cJSON_AddStringToObject(r, "event", "verify");
    cJSON_AddStringToObject(r, "time", time_text);
    cJSON_AddStringToObject(r, "host", host);
    cJSON_AddNumberToObject(r, "pid", (double)getpid());
    cJSON_AddStringToObject(r, "program", "ckmon");
    cJSON_AddStringToObject(r, "job", job);
    if (run) cJSON_AddStringToObject(r, "run", run);
    cJSON_AddStringToObject(r, "path", t->path);
    cJSON_AddStringToObject(r, "result", verdict_names[t->verdict]);
    cJSON_AddStringToObject(r, "message", t->line ? t->line : "out of memory");
    cJSON_AddNumberToObject(r, "total", ++series->total);
    return r;
}

/* Hands the record to the collector on socket (one that answers; -1: none), else
 * appends it to the log, if there is one. */
static void record_failure(const struct options *o, int *socket, const cJSON *r)
{
    struct wire_message m = {.kind = WIRE_VERIFIED, .verified = {.record = r}};
    struct strbuf packet = {.limit = WIRE_MAX_MESSAGE};
    size_t len;
    char *line, err[512];
    struct log_writer log;
    struct stat st;
    if (*socket >= 0 && wire_encode(&m, &packet) &&
        send(*socket, packet.s, packet.len, MSG_NOSIGNAL) == (ssize_t)packet.len) {
        free(packet.s);
        return;
    }
    free(packet.s);
    if (*socket >= 0) close(*socket);
    *socket = -1; /* the rest go to the log too */
    if (!strcmp(o->log, "-") || stat(o->log, &st) < 0 || !(line = json_line(r, &len))) return;
    if (log_open(&log, o->log, err, sizeof err) < 0)
        fprintf(stderr, "ckmon verify: cannot record the failure: %s\n", err);
    else
        log_write(&log, line, len), log_close(&log);
    free(line);
}

static void record_failures(const struct options *o, struct targets *t)
{
    struct utsname host;
    char socket_path[sizeof(((struct listener *)0)->path)];
    if (o->socket)
        snprintf(socket_path, sizeof socket_path, "%s", o->socket);
    else
        default_socket_path(socket_path, sizeof socket_path);
    const char *host_name = uname(&host) == 0 ? host.nodename : "unknown";
    int socket = -2; /* not tried yet */
    for (size_t i = 0; i < t->count; i++) {
        if (t->items[i].verdict == VERDICT_OK) continue;
        if (socket == -2) socket = collector_connect(socket_path);
        cJSON *r = failure_record(t, &t->items[i], host_name);
        if (r) record_failure(o, &socket, r);
        cJSON_Delete(r);
    }
    if (socket >= 0) close(socket);
}

static void targets_free(struct targets *t)
{
    for (size_t i = 0; i < t->count; i++) {
        free(t->items[i].path);
        free(t->items[i].line);
        cJSON_Delete(t->items[i].written);
    }
    for (size_t i = 0; i < t->digested_count; i++)
        free(t->digested[i].path), free(t->digested[i].time), free(t->digested[i].job);
    for (size_t i = 0; i < t->failure_series; i++)
        free(t->failures[i].job), free(t->failures[i].host);
    free(t->items);
    free(t->digested);
    free(t->failures);
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
    size_t kept = 0; /* a file named twice (itself and in its directory) once */
    for (size_t i = 0; i < t.count; i++)
        if (kept && !strcmp(t.items[kept - 1].path, t.items[i].path))
            free(t.items[i].path);
        else
            t.items[kept++] = t.items[i];
    t.count = kept;
    if (!segment_each_line(o.log, consider_line, &t) && errno != ENOENT) {
        fprintf(stderr, "ckmon verify: %s: %s\n", o.log, strerror(errno));
        rc = 1;
    }
    for (size_t i = 0; i < t.count; i++) {
        verify_one(&t.items[i], &t);
        printf("%s: %s\n", t.items[i].path, t.items[i].line ? t.items[i].line : "out of memory");
        if (t.items[i].verdict != VERDICT_OK) rc = 1;
    }
    fflush(stdout);
    record_failures(&o, &t);
    targets_free(&t);
    options_free(&o);
    return rc;
}
