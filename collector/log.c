/* log.c — appending records to the JSONL log (and holding them while the disk is full). */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int log_open(struct log_writer *w, const char *path, char *err, size_t err_size)
{
    *w = (struct log_writer){.fd = -1};
    if (!strcmp(path, "-"))
        w->fd = STDOUT_FILENO;
    else {
        w->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        w->owns_fd = true;
    }
    if (w->fd < 0) {
        snprintf(err, err_size, "cannot open log %s: %s", path, strerror(errno));
        return -1;
    }
    if (!(w->name = strdup(path))) {
        snprintf(err, err_size, "out of memory");
        log_close(w);
        return -1;
    }
    return 0;
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

bool log_retry(struct log_writer *w)
{
    unsigned long n = 0;
    while (w->held) {
        struct held_line *h = w->held;
        if (!write_all(w->fd, h->data, h->len, &h->done)) return false;
        w->held = h->next;
        w->held_bytes -= h->len;
        w->written++;
        n++;
        free(h);
    }
    if (n) fprintf(stderr, "ckmon: log %s: space again; %lu held record(s) written\n", w->name, n);
    return true;
}

bool log_write(struct log_writer *w, const char *line, size_t len)
{
    size_t done = 0;
    if (!log_retry(w) && out_of_space(errno) && hold(w, line, len, 0)) return true;
    if (!w->held && write_all(w->fd, line, len, &done)) {
        w->written++;
        return true;
    }
    if (!w->held && out_of_space(errno) && hold(w, line, len, done)) return true;
    if (w->failed++ == 0)
        fprintf(stderr, "ckmon: cannot write to log %s: %s\n", w->name, strerror(errno));
    return false;
}

bool log_record(struct log_writer *w, const struct record *r)
{
    size_t len;
    char *line = record_to_line(r, &len);
    if (!line) {
        errno = ENOMEM;
        w->failed++;
        fprintf(stderr, "ckmon: out of memory writing a record for %s\n", r->path);
        return false;
    }
    bool ok = log_write(w, line, len);
    free(line);
    return ok;
}

void log_close(struct log_writer *w)
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
    *w = (struct log_writer){.fd = -1};
}
