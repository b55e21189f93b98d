/* command_path.c — where a command name leads, as execvp would find it (see
 * command_path.h). `ckmon run` needs it to start COMMAND, `ckmon doctor` to examine it.
 */
#include "command_path.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 0 when path is an executable file (copied to out), else an errno. */
static int check_executable(const char *path, char *out, size_t size)
{
    struct stat st;
    if (stat(path, &st) < 0) return errno;
    if (S_ISDIR(st.st_mode)) return EISDIR;
    if (access(path, X_OK) < 0) return errno;
    if (snprintf(out, size, "%s", path) >= (int)size) return ENAMETOOLONG;
    return 0;
}

int find_command(const char *name, char *out, size_t size)
{
    if (!*name) return ENOENT;
    if (strchr(name, '/')) return check_executable(name, out, size);
    const char *search = getenv("PATH");
    int result = ENOENT;
    if (!search) search = "/usr/local/bin:/usr/bin:/bin";
    for (const char *dir = search;; dir++) {
        const char *end = strchrnul(dir, ':');
        char candidate[PATH_MAX];
        int len = (int)(end - dir);
        snprintf(candidate, sizeof candidate, "%.*s%s%s", len, dir, len ? "/" : "", name);
        int rc = check_executable(candidate, out, size);
        if (rc == 0) return 0;
        if (rc != ENOENT && rc != ENOTDIR) result = rc;
        if (!*end) return result;
        dir = end;
    }
}
