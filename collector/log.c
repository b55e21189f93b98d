/* log.c — appending records to the JSONL log. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
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

bool log_write(struct log_writer *w, const char *line, size_t len)
{
    if (write_all(w->fd, line, len)) {
        w->written++;
        return true;
    }
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
    if (w->failed)
        fprintf(stderr, "ckmon: %lu record(s) could not be written to %s\n", w->failed,
                w->name ? w->name : "the log");
    if (w->owns_fd && w->fd >= 0) close(w->fd);
    free(w->name);
    *w = (struct log_writer){.fd = -1};
}
