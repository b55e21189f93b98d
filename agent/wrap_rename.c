/* wrap_rename.c — renames, so that an atomic save (write x.tmp, rename to x) is
 * reported under its final path with written_as. */
#include <fcntl.h>
#include <stdio.h>

#include "real.h"
#include "tracked.h"

EXPORT int rename(const char *oldpath, const char *newpath)
{
    int r = REAL(rename)(oldpath, newpath);
    if (r == 0) tracked_renamed(AT_FDCWD, oldpath, AT_FDCWD, newpath);
    return r;
}

EXPORT int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    int r = REAL(renameat)(olddirfd, oldpath, newdirfd, newpath);
    if (r == 0) tracked_renamed(olddirfd, oldpath, newdirfd, newpath);
    return r;
}

EXPORT int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                     unsigned flags)
{
    int r = REAL(renameat2)(olddirfd, oldpath, newdirfd, newpath, flags);
    if (r == 0) tracked_renamed(olddirfd, oldpath, newdirfd, newpath);
    return r;
}
