/* tail.c — `ckmon tail [--log FILE] [-f]`: the log as a readable table (table.h).
 *
 * With -f the log is polled (every TAIL_POLL_MS) rather than watched with inotify, which
 * is not told about writes over NFS, where logs of cluster jobs often live. Each poll
 * reads what was appended; a line is printed once its newline has arrived. A log
 * smaller than what was read (truncated, `> log`) is read again from its start; a log
 * whose name now leads to another file (rotated: the collector's --log-max-bytes or
 * logrotate) is read to its end first, then the new file from its start.
 *
 * The records of a set's files are held until the set's record and shown folded into
 * its line (fold.h), unless --members asks for each of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "fold.h"
#include "table.h"

#define TAIL_POLL_MS  200
#define TAIL_MAX_LINE (64u << 20) /* longer lines are skipped, not held */

struct tail {
    const char *path;
    int fd;
    dev_t dev;
    ino_t ino;
    off_t offset; /* bytes of the current file read */
    char *line;   /* the current line so far */
    size_t len, alloc;
    bool skipping; /* the current line is over TAIL_MAX_LINE */
    struct table_style style;
    struct fold *fold; /* NULL: --members, every record as it comes */
};

static void print_record(void *ctx, cJSON *rec, const cJSON *members)
{
    struct tail *t = ctx;
    /* one file is no crowd: its record is shown as it is, before its set's */
    bool alone = cJSON_GetArraySize(members) == 1;
    if (alone) table_print(stdout, cJSON_GetArrayItem(members, 0), &t->style);
    table_print(stdout, rec, &t->style);
    if (!alone) table_print_members(stdout, members, &t->style);
    cJSON_Delete(rec);
}

static void print_line(struct tail *t)
{
    cJSON *rec = cJSON_ParseWithLength(t->line, t->len);
    if (cJSON_IsObject(rec)) {
        if (t->fold) return fold_take(t->fold, rec);
        return print_record(t, rec, NULL);
    }
    if (t->len > 0) fprintf(stderr, "ckmon tail: %s: a line that is not a JSON record\n", t->path);
    cJSON_Delete(rec);
}

/* Takes bytes just read: prints each line completed. */
static void take(struct tail *t, const char *data, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t part = nl ? (size_t)(nl - data) : n;
        if (!t->skipping && t->len + part > TAIL_MAX_LINE) {
            fprintf(stderr, "ckmon tail: %s: a line over %u bytes, skipped\n", t->path,
                    TAIL_MAX_LINE);
            t->skipping = true;
        }
        if (!t->skipping) {
            if (t->len + part + 1 > t->alloc) {
                size_t alloc = (t->len + part + 1) * 2;
                char *grown = realloc(t->line, alloc);
                if (!grown) {
                    fprintf(stderr, "ckmon tail: out of memory\n");
                    exit(1);
                }
                t->line = grown;
                t->alloc = alloc;
            }
            memcpy(t->line + t->len, data, part);
            t->len += part;
        }
        if (!nl) return;
        if (!t->skipping) print_line(t);
        t->len = 0;
        t->skipping = false;
        data += part + 1;
        n -= part + 1;
    }
}

/* Reads to the end of the file; false on a read error (said). */
static bool read_to_end(struct tail *t)
{
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(t->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fprintf(stderr, "ckmon tail: %s: %s\n", t->path, strerror(errno));
            return false;
        }
        if (n == 0) return true;
        t->offset += n;
        take(t, buf, (size_t)n);
    }
}

static bool open_log(struct tail *t)
{
    struct stat st;
    int fd = open(t->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return false;
    }
    if (t->fd >= 0) close(t->fd);
    t->fd = fd;
    t->dev = st.st_dev;
    t->ino = st.st_ino;
    t->offset = 0;
    t->len = 0;
    t->skipping = false;
    return true;
}

static void pause_briefly(void)
{
    struct timespec ts = {0, TAIL_POLL_MS * 1000000L};
    nanosleep(&ts, NULL);
}

/* After reading to the end: whether the log was truncated or replaced, and then
 * reading from the start of what is now the log. */
static void check_log(struct tail *t)
{
    struct stat st, named;
    if (fstat(t->fd, &st) == 0 && st.st_size < t->offset) {
        fprintf(stderr, "ckmon tail: %s was truncated; reading it from its start\n", t->path);
        lseek(t->fd, 0, SEEK_SET);
        t->offset = 0;
        t->len = 0;
        return;
    }
    if (stat(t->path, &named) == 0 && (named.st_dev != t->dev || named.st_ino != t->ino)) {
        read_to_end(t); /* lines written to the old file before the switch */
        if (open_log(t))
            fprintf(stderr, "ckmon tail: %s was replaced; reading the new file\n", t->path);
    }
}

static int follow(struct tail *t)
{
    while (t->fd < 0 && !open_log(t))
        pause_briefly();
    for (;;) {
        if (!read_to_end(t)) return 1;
        fflush(stdout);
        pause_briefly();
        check_log(t);
    }
}

int cmd_tail(int argc, char **argv)
{
    struct options o;
    int rc = cli_parse(&o, COMMAND_TAIL, argc, argv);
    if (rc >= 0) return rc;
    char cwd[PATH_MAX];
    struct tail t = {.path = o.log, .fd = -1};
    t.style.color = table_wants_color(stdout);
    t.style.base = getcwd(cwd, sizeof cwd);
    if (!o.members && !(t.fold = fold_new(print_record, &t))) {
        fprintf(stderr, "ckmon tail: out of memory\n");
        options_free(&o);
        return 1;
    }
    if (!strcmp(t.path, "-")) {
        t.fd = 0;
        rc = read_to_end(&t) ? 0 : 1;
    } else if (o.follow) {
        rc = follow(&t);
    } else if (!open_log(&t)) {
        fprintf(stderr, "ckmon tail: %s: %s\n", t.path, strerror(errno));
        rc = 1;
    } else {
        rc = read_to_end(&t) ? 0 : 1;
    }
    if (t.fold) fold_flush(t.fold); /* sets never committed in this log */
    fold_free(t.fold);
    if (t.fd > 0) close(t.fd);
    free(t.line);
    options_free(&o);
    return rc;
}
