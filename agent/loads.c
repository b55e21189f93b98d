/* loads.c — the load message for a checkpoint opened for reading (see loads.h).
 *
 * The file's size and modification time are taken from the descriptor the program got,
 * at its open: what the program reads, even when the name is replaced a moment later.
 */
#include "loads.h"

#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "channel.h"
#include "core/paths.h"
#include "core/wire.h"
#include "sys.h"

/* Python's path configuration files, which every interpreter reads at start-up from its
 * site directories, share the *.pth glob with PyTorch checkpoints: a .pth directly in a
 * site-packages or dist-packages directory is not a load. */
static bool python_path_file(const char *abs_path)
{
    size_t len = strlen(abs_path);
    if (len < 4 || strcmp(abs_path + len - 4, ".pth")) return false;
    const char *name = strrchr(abs_path, '/');
    const char *dir = name;
    while (dir > abs_path && dir[-1] != '/')
        dir--;
    size_t dir_len = (size_t)(name - dir);
    return (dir_len == 13 && !memcmp(dir, "site-packages", 13)) ||
           (dir_len == 13 && !memcmp(dir, "dist-packages", 13));
}

void loads_opened(int fd, int dirfd, const char *path)
{
    char abs_path[PATH_MAX];
    if (fd < 0 || !absolute_path(dirfd, path, abs_path, sizeof abs_path) ||
        !config_is_checkpoint(abs_path) || python_path_file(abs_path))
        return;
    struct stat st;
    bool measured = syscall(SYS_fstat, fd, &st) == 0;
    if (measured && !S_ISREG(st.st_mode)) return;
    struct wire_message m = {.kind = WIRE_LOAD,
                             .load = {.path = abs_path,
                                      .time_us = realtime_us(),
                                      .bytes = measured ? (int64_t)st.st_size : WIRE_ABSENT,
                                      .mtime_us = measured ? (int64_t)st.st_mtim.tv_sec * 1000000 +
                                                                 st.st_mtim.tv_nsec / 1000
                                                           : WIRE_ABSENT}};
    channel_send(&m);
}
