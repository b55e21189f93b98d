/* spool.c — writing the agent spool (spool.h, core/agent_spool.h).
 *
 * The directory sits beside the socket, which may be in a shared directory like /tmp:
 * another user may have created the name first, or put a symlink there. So it is opened
 * with O_NOFOLLOW and used only when it is ours with no access for anyone else, and the
 * file is created relative to it with O_EXCL|O_NOFOLLOW.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/agent_spool.h"
#include "core/wire.h"
#include "sys.h"

static int open_spool_dir(const char *socket_path)
{
    char path[4096];
    unsigned uid = (unsigned)geteuid();
    if (!agent_spool_dir(socket_path, uid, path, sizeof path)) return -1;
    syscall(SYS_mkdirat, AT_FDCWD, path, 0700); /* EEXIST is checked below */
    int dirfd =
        (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (dirfd >= 0 && syscall(SYS_fstat, dirfd, &st) == 0 && S_ISDIR(st.st_mode) &&
        st.st_uid == uid && (st.st_mode & 077) == 0)
        return dirfd;
    if (dirfd >= 0) raw_close(dirfd);
    return -1;
}

/* Whether the directory has room for one more file of at most AGENT_SPOOL_MAX_FILE. */
static bool has_room(int dirfd)
{
    char buf[4096];
    unsigned long long files = 0, bytes = 0;
    long n;
    while ((n = syscall(SYS_getdents64, dirfd, buf, sizeof buf)) > 0) {
        for (long at = 0; at < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + at);
            at += d->d_reclen;
            struct stat st;
            if (d->d_name[0] == '.' ||
                syscall(SYS_newfstatat, dirfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                continue;
            files++;
            bytes += (unsigned long long)st.st_size;
        }
    }
    return n == 0 && files < AGENT_SPOOL_MAX_FILES &&
           bytes + AGENT_SPOOL_MAX_FILE <= AGENT_SPOOL_MAX_BYTES;
}

static void write_all(struct spool_file *f, const struct iovec *iov, int count)
{
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += iov[i].iov_len;
    if (f->failed || f->bytes + total > AGENT_SPOOL_MAX_FILE) {
        f->failed = true;
        return;
    }
    /* Short writes to a regular file mean a full disk: the file fails as a whole. */
    long n;
    do
        n = syscall(SYS_writev, f->fd, iov, count);
    while (n < 0 && errno == EINTR);
    if (n < 0 || (size_t)n != total) f->failed = true;
    f->bytes += total;
}

static void part_name(const struct spool_file *f, char *out, size_t size)
{
    snprintf(out, size, "%s" AGENT_SPOOL_PART, f->name);
}

bool spool_begin(struct spool_file *f, const char *socket_path)
{
    *f = (struct spool_file){.dirfd = -1, .fd = -1};
    unsigned char header[AGENT_SPOOL_HEADER_MAX];
    size_t header_len = agent_spool_header(socket_path, header, sizeof header);
    if (header_len == 0) return false;
    f->dirfd = open_spool_dir(socket_path);
    if (f->dirfd < 0) return false;
    if (!has_room(f->dirfd)) {
        raw_close(f->dirfd);
        return false;
    }
    snprintf(f->name, sizeof f->name, "%ld-%016llx" AGENT_SPOOL_SUFFIX, (long)syscall(SYS_getpid),
             (unsigned long long)monotonic_ns());
    char part[sizeof f->name + sizeof AGENT_SPOOL_PART];
    part_name(f, part, sizeof part);
    f->fd = (int)syscall(SYS_openat, f->dirfd, part,
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (f->fd < 0) {
        raw_close(f->dirfd);
        return false;
    }
    struct iovec iov = {header, header_len};
    write_all(f, &iov, 1);
    return true;
}

void spool_packet(struct spool_file *f, const void *data, size_t len)
{
    unsigned char prefix[4];
    agent_spool_length(len, prefix);
    struct iovec iov[2] = {{prefix, 4}, {(void *)data, len}};
    if (len == 0 || len > WIRE_MAX_MESSAGE)
        f->failed = true;
    else
        write_all(f, iov, 2);
}

bool spool_end(struct spool_file *f)
{
    char part[sizeof f->name + sizeof AGENT_SPOOL_PART];
    part_name(f, part, sizeof part);
    bool ok = !f->failed && raw_close(f->fd) == 0 &&
              syscall(SYS_renameat, f->dirfd, part, f->dirfd, f->name) == 0;
    if (f->failed) raw_close(f->fd);
    if (!ok) syscall(SYS_unlinkat, f->dirfd, part, 0);
    raw_close(f->dirfd);
    return ok;
}
