/* owned.c — refusing another user's files (see owned.h). */
#include "owned.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

bool owned_check(int fd, const char *what, const char *path, char *err, size_t err_size)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, err_size, "cannot use %s %s: %m", what, path);
        return false;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return true;
    if (st.st_uid != geteuid()) {
        snprintf(err, err_size, "%s %s belongs to another user (uid %u); not using it", what, path,
                 (unsigned)st.st_uid);
        return false;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, err_size, "%s %s is writable by other users (mode %04o); not using it", what,
                 path, (unsigned)(st.st_mode & 07777));
        return false;
    }
    return true;
}

int owned_open(const char *path, int flags, mode_t mode)
{
    int fd = open(path, flags | O_NOFOLLOW, mode);
    if (fd >= 0 || errno != ELOOP) return fd;
    struct stat st;
    if (lstat(path, &st) < 0) return -1;
    if (!S_ISLNK(st.st_mode) || (st.st_uid != geteuid() && st.st_uid != 0)) {
        errno = ELOOP;
        return -1;
    }
    return open(path, flags, mode);
}
