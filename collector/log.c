/* log.c — appending records to the JSONL log, and rotating it by size. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segments.h"

static int open_file(struct log_writer *w, const char *path)
{
    struct stat st;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) w->size = fstat(fd, &st) == 0 ? st.st_size : 0;
    return fd;
}

int log_open(struct log_writer *w, const char *path, char *err, size_t err_size)
{
    *w = (struct log_writer){.fd = -1};
    if (!strcmp(path, "-"))
        w->fd = STDOUT_FILENO;
    else {
        w->fd = open_file(w, path);
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

static bool write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) errno = EIO;
        if (n <= 0) return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

void log_reopen(struct log_writer *w)
{
    if (!w->owns_fd) return;
    int fd = open_file(w, w->name);
    if (fd < 0) {
        fprintf(stderr, "ckmon: cannot reopen log %s: %s (still writing the old one)\n", w->name,
                strerror(errno));
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

bool log_write(struct log_writer *w, const char *line, size_t len)
{
    bool ok = write_all(w->fd, line, len);
    if (ok) {
        w->written++;
        w->size += (off_t)len;
        if (w->max_bytes && w->owns_fd && (unsigned long long)w->size >= w->max_bytes) rotate(w);
    } else if (w->failed++ == 0) {
        fprintf(stderr, "ckmon: cannot write to log %s: %s\n", w->name, strerror(errno));
    }
    if (w->copy) log_write(w->copy, line, len);
    if (w->after_write) w->after_write(w->after_ctx);
    return ok;
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
    if (w->failed)
        fprintf(stderr, "ckmon: %lu record(s) could not be written to %s\n", w->failed,
                w->name ? w->name : "the log");
    if (w->owns_fd && w->fd >= 0) close(w->fd);
    free(w->name);
    *w = (struct log_writer){.fd = -1};
}
