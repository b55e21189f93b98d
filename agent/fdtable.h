/* fdtable.h — which descriptors lead to a checkpoint being written.
 *
 * One slot per possible descriptor (up to the process's hard RLIMIT_NOFILE, capped),
 * in an anonymous mapping so untouched pages cost nothing. A write to a descriptor
 * that is not tracked costs a bounds check and one load — the whole fast path. Slots
 * hold a counted reference to the tracked file; descriptors made by dup share one.
 */
#ifndef CKMON_FDTABLE_H
#define CKMON_FDTABLE_H

#include <stdbool.h>
#include <stddef.h>

struct tracked;

extern struct tracked **fd_slots;
extern unsigned fd_capacity;
extern unsigned fd_tracked_count; /* slots in use; stdio wrappers check it before fileno() */
extern unsigned fd_high_water;    /* one past the highest slot ever used */

static inline bool fd_is_tracked(int fd)
{
    return (unsigned)fd < fd_capacity && __atomic_load_n(&fd_slots[fd], __ATOMIC_RELAXED) != NULL;
}

void fdtable_init(void);
/* A new reference to the file behind fd, or NULL. Callers release it with tracked_release. */
struct tracked *fdtable_acquire(int fd);
/* Points fd at t (taking a new reference) and returns the reference that was in the
 * slot (the caller releases it), or NULL. */
struct tracked *fdtable_put(int fd, struct tracked *t);
/* Empties the slot and hands its reference to the caller (NULL if it was empty). */
struct tracked *fdtable_take(int fd);
/* The lock that guards slot changes and reference counts. */
void fdtable_lock(void);
void fdtable_unlock(void);
/* After fork in the child: a fresh lock; the slots stay as the parent left them. */
void fdtable_after_fork_child(void);

#endif
