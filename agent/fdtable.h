/* fdtable.h — which descriptors lead to a checkpoint being written.
 *
 * One slot per possible descriptor (up to the process's hard RLIMIT_NOFILE, capped),
 * in an anonymous mapping so untouched pages cost nothing. A write to a descriptor
 * that is not tracked costs a bounds check and one load — the whole fast path. The table
 * only maps descriptors to files; descriptors made by dup share one file, and what a
 * slot's reference means (counting, releasing) is tracked.c's. A byte per slot beside
 * them holds the marks a signal handler leaves (fdtable_mark).
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

/* A slot's mark for a file created under a name no glob matches, whose first write decides
 * whether it is followed (tracked.c, tracked_decide): it sends writes down the slow path
 * once. fdtable_get never returns it. */
#define FD_UNDECIDED ((struct tracked *)1)

static inline bool fd_is_undecided(int fd)
{
    return (unsigned)fd < fd_capacity &&
           __atomic_load_n(&fd_slots[fd], __ATOMIC_RELAXED) == FD_UNDECIDED;
}

/* Lock-free, so that an ordinary file pays no lock for being looked at (and a signal
 * handler may clear the mark): an empty slot marked undecided, and an undecided slot
 * emptied; each returns whether it changed the slot. Undecided slots are not counted in
 * fd_tracked_count. */
static inline bool fdtable_undecide(int fd)
{
    struct tracked *empty = NULL;
    return (unsigned)fd < fd_capacity &&
           __atomic_compare_exchange_n(&fd_slots[fd], &empty, FD_UNDECIDED, false, __ATOMIC_RELAXED,
                                       __ATOMIC_RELAXED);
}

static inline bool fdtable_decided(int fd)
{
    struct tracked *undecided = FD_UNDECIDED;
    return (unsigned)fd < fd_capacity &&
           __atomic_compare_exchange_n(&fd_slots[fd], &undecided, NULL, false, __ATOMIC_RELAXED,
                                       __ATOMIC_RELAXED);
}

static inline bool fd_is_tracked(int fd)
{
    return (unsigned)fd < fd_capacity && __atomic_load_n(&fd_slots[fd], __ATOMIC_RELAXED) != NULL;
}

void fdtable_init(void);
/* What a signal handler did to a tracked descriptor: noted without the lock (the handler
 * may have interrupted a thread that holds it), settled by the next call that takes it. */
#define FD_TOUCHED 1u /* written, moved or truncated: the file is read back at its close */
#define FD_CLOSED  2u /* closed: the slot no longer describes the descriptor */
void fdtable_mark(int fd, unsigned mark);
/* With the lock held: the marks on fd's slot; FD_TOUCHED is cleared (it is settled once),
 * FD_CLOSED stays until the slot is set. */
unsigned fdtable_marks(int fd);
/* The lock that guards slot changes (and, for tracked.c, reference counts). */
void fdtable_lock(void);
void fdtable_unlock(void);
/* With the lock held: the file behind fd, or NULL (also for an undecided slot). */
struct tracked *fdtable_get(int fd);
/* With the lock held: points fd at t (NULL empties the slot), clears its marks, and
 * returns what the slot held. A descriptor beyond the table is never tracked: NULL, and nothing
 * changes. */
struct tracked *fdtable_set(int fd, struct tracked *t);
/* After fork in the child, before anything else runs: a fresh lock; the slots stay as
 * the parent left them. */
void fdtable_after_fork_child(void);
/* Then: every slot that leads to from leads to to instead (NULL empties it); returns
 * how many did, the references to's owner must count. */
unsigned fdtable_repoint(const struct tracked *from, struct tracked *to);

#endif
