/* unmatched.c — noting created files that matched no glob, and saying them at exit.
 *
 * Slots are claimed with an atomic counter and marked ready once their path is copied,
 * so threads opening files at once never share one, and nothing here allocates or
 * locks (an open may come from a signal handler, or from a vfork child, which the
 * caller keeps out).
 */
#include "unmatched.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "channel.h"
#include "config.h"
#include "core/wire.h"

#define UNMATCHED_KEPT 4

static char paths[UNMATCHED_KEPT][PATH_MAX];
static bool ready[UNMATCHED_KEPT];
static unsigned noted; /* slots claimed (and tried for beyond the last) */

/* Files a program writes that are never checkpoints: kernel interfaces and CPython's
 * byte code cache. */
static bool worth_naming(const char *p)
{
    return strncmp(p, "/dev/", 5) && strncmp(p, "/proc/", 6) && strncmp(p, "/sys/", 5) &&
           !strstr(p, "/__pycache__/");
}

static bool already_noted(const char *p)
{
    for (unsigned i = 0; i < UNMATCHED_KEPT; i++)
        if (__atomic_load_n(&ready[i], __ATOMIC_ACQUIRE) && !strcmp(paths[i], p)) return true;
    return false;
}

void unmatched_note(const char *abs_path)
{
    if (!agent_config.note_unmatched || !worth_naming(abs_path) || already_noted(abs_path)) return;
    unsigned slot = __atomic_fetch_add(&noted, 1, __ATOMIC_RELAXED);
    if (slot >= UNMATCHED_KEPT || strlen(abs_path) >= PATH_MAX) return;
    memcpy(paths[slot], abs_path, strlen(abs_path) + 1);
    __atomic_store_n(&ready[slot], true, __ATOMIC_RELEASE);
}

void unmatched_report(void)
{
    unsigned n = __atomic_load_n(&noted, __ATOMIC_RELAXED);
    char *list[UNMATCHED_KEPT];
    size_t count = 0;
    for (unsigned i = 0; i < UNMATCHED_KEPT && i < n; i++)
        if (__atomic_load_n(&ready[i], __ATOMIC_ACQUIRE)) list[count++] = paths[i];
    if (!count) return;
    struct wire_message m = {.kind = WIRE_UNMATCHED,
                             .unmatched = {.paths = list, .path_count = count}};
    channel_send(&m);
}

void unmatched_after_fork_child(void)
{
    for (unsigned i = 0; i < UNMATCHED_KEPT; i++)
        ready[i] = false;
    noted = 0;
}
