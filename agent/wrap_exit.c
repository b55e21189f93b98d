/* wrap_exit.c — _exit and _Exit skip atexit handlers and destructors, so the agent
 * reports open checkpoints here (PyTorch DataLoader workers leave this way). */
#include <stdlib.h>

#include "real.h"
#include "tracked.h"

EXPORT void _exit(int status)
{
    tracked_report_all_open(false);
    REAL(_exit)(status);
    __builtin_unreachable();
}

EXPORT void _Exit(int status)
{
    tracked_report_all_open(false);
    REAL(_Exit)(status);
    __builtin_unreachable();
}
