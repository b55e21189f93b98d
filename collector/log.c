/* log.c — appending records to the JSONL log, rotating it by size, and holding records
 * while the disk is full. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "owned.h"
#include "segments.h"

/* Opens path for appending, if it is ours (owned.h): another user's log, or one others
 * can write, would carry their lines to the sinks as ours. */
static int open_file(struct log_writer *w, const char *path, char *err, size_t err_size)
{
    const int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC;
    int fd = w->private ? open(path, flags | O_NOFOLLOW, 0600) : owned_open(path, flags, 0644);
    if (fd < 0 && errno == ELOOP)
        snprintf(err, err_size, "log %s is a symlink %s; not using it", path,
                 w->private ? "in the state dir" : "owned by another user");
    else if (fd < 0)
        snprintf(err, err_size, "cannot open log %s: %s", path, strerror(errno));
    else if (!owned_check(fd, "log", path, err, err_size)) {
        close(fd);
        return -1;
    }
    struct stat st;
    if (fd >= 0) w->size = fstat(fd, &st) == 0 ? st.st_size : 0;
    return fd;
}

static int open_log(struct log_writer *w, const char *path, bool private, char *err,
                    size_t err_size)
{
    *w = (struct log_writer){.fd = -1, .private = private};
    if (!strcmp(path, "-"))
        w->fd = STDOUT_FILENO;
    else if ((w->fd = open_file(w, path, err, err_size)) < 0)
        return -1;
    else
        w->owns_fd = true;
    if (!(w->name = strdup(path))) {
        snprintf(err, err_size, "out of memory");
        log_close(w);
        return -1;
    }
    return 0;
}

int log_open(struct log_writer *w, const char *path, char *err, size_t err_size)
{
    return open_log(w, path, false, err, err_size);
}

int log_open_private(struct log_writer *w, const char *path, char *err, size_t err_size)
{
    return open_log(w, path, true, err, err_size);
}

struct held_line {
    struct held_line *next;
    size_t len, done; /* done: bytes of it already in the file (a short write) */
    char data[];
};

/* Writes len bytes from data, adding to *done; false on an error (errno says which). */
static bool write_all(int fd, const char *data, size_t len, size_t *done)
{
    while (*done < len) {
        ssize_t n = write(fd, data + *done, len - *done);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) errno = EIO;
        if (n <= 0) return false;
        *done += (size_t)n;
    }
    return true;
}

void log_reopen(struct log_writer *w)
{
    if (!w->owns_fd) return;
    char err[512];
    int fd = open_file(w, w->name, err, sizeof err);
    if (fd < 0) {
        fprintf(stderr, "ckmon: %s (still writing the old one)\n", err);
        return;
    }
    close(w->fd);
    w->fd = fd;
}

/* Removes the oldest rotated segments beyond keep that no sink needs. */
static void remove_old_segments(struct log_writer *w)
{
    struct segment_list l;
    if (!segment_list(w->name, &l)) return;
    for (size_t i = 0; i + w->keep < l.count; i++) {
        if (w->still_needed && w->still_needed(w->needed_ctx, l.seqs[i])) break;
        char *path = segment_path(w->name, l.seqs[i]);
        if (path) unlink(path);
        free(path);
    }
    segment_list_free(&l);
}

static void rotate(struct log_writer *w)
{
    struct segment_list l;
    if (!segment_list(w->name, &l)) return;
    char *path = segment_path(w->name, l.count ? l.seqs[l.count - 1] + 1 : 1);
    segment_list_free(&l);
    if (path && rename(w->name, path) == 0) {
        log_reopen(w);
        remove_old_segments(w);
    } else if (path) {
        fprintf(stderr, "ckmon: cannot rotate log %s to %s: %s\n", w->name, path, strerror(errno));
        w->max_bytes = 0; /* once said is enough */
    }
    free(path);
}

/* A line is in the file: count it, and rotate when it took the log to max_bytes. */
static void wrote(struct log_writer *w, size_t len)
{
    w->written++;
    w->size += (off_t)len;
    if (w->max_bytes && w->owns_fd && (unsigned long long)w->size >= w->max_bytes) rotate(w);
}

static bool out_of_space(int err)
{
    return err == ENOSPC || err == EDQUOT;
}

static bool hold(struct log_writer *w, const char *line, size_t len, size_t done)
{
    struct held_line *h = w->held_bytes + len <= LOG_HOLD_BYTES ? malloc(sizeof *h + len) : NULL;
    if (!h) return false;
    *h = (struct held_line){.len = len, .done = done};
    memcpy(h->data, line, len);
    if (!w->held) {
        w->held_tail = &w->held;
        fprintf(stderr, "ckmon: log %s: %s; holding records until there is space\n", w->name,
                strerror(ENOSPC));
    }
    *w->held_tail = h;
    w->held_tail = &h->next;
    w->held_bytes += len;
    return true;
}

/* Writes w's own held lines that fit now; true when none is left. */
static bool write_held(struct log_writer *w)
{
    unsigned long n = 0;
    while (w->held) {
        struct held_line *h = w->held;
        if (!write_all(w->fd, h->data, h->len, &h->done)) return false;
        w->held = h->next;
        w->held_bytes -= h->len;
        wrote(w, h->len);
        n++;
        free(h);
    }
    if (n) {
        fprintf(stderr, "ckmon: log %s: space again; %lu held record(s) written\n", w->name, n);
        if (w->after_write) w->after_write(w->after_ctx);
    }
    return true;
}

bool log_retry(struct log_writer *w)
{
    bool copy_done = !w->copy || write_held(w->copy); /* the spool holds lines too */
    return write_held(w) && copy_done;
}

bool log_write(struct log_writer *w, const char *line, size_t len)
{
    size_t done = 0;
    bool ok;
    if (!write_held(w)) /* older lines still wait: this one waits behind them */
        ok = out_of_space(errno) && hold(w, line, len, 0);
    else if ((ok = write_all(w->fd, line, len, &done)))
        wrote(w, len);
    else
        ok = out_of_space(errno) && hold(w, line, len, done);
    if (!ok && w->failed++ == 0)
        fprintf(stderr, "ckmon: cannot write to log %s: %s\n", w->name, strerror(errno));
    if (w->copy) log_write(w->copy, line, len);
    if (w->observe) w->observe(w->observe_ctx, line, len);
    if (w->after_write) w->after_write(w->after_ctx);
    return ok;
}

bool log_record(struct log_writer *w, const struct record *r)
{
    if (!record_line(r, &w->record_line)) {
        errno = ENOMEM;
        w->failed++;
        fprintf(stderr, "ckmon: out of memory writing a record for %s\n", r->path);
        return false;
    }
    return log_write(w, w->record_line.s, w->record_line.len);
}

unsigned long log_close(struct log_writer *w)
{
    log_retry(w);
    for (struct held_line *h = w->held, *next; h; h = next) {
        next = h->next;
        w->failed++;
        free(h);
    }
    if (w->failed)
        fprintf(stderr, "ckmon: %lu record(s) could not be written to %s\n", w->failed,
                w->name ? w->name : "the log");
    if (w->owns_fd && w->fd >= 0) close(w->fd);
    free(w->name);
    free(w->record_line.s);
    unsigned long failed = w->failed;
    *w = (struct log_writer){.fd = -1};
    return failed;
}
