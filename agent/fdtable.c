/* fdtable.c — the descriptor → tracked file table (see fdtable.h). */
#include "fdtable.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_SLOTS (1u << 20)

struct tracked **fd_slots;
static unsigned char *fd_marks; /* after the slots, in the same mapping */
unsigned fd_capacity;
unsigned fd_tracked_count;
unsigned fd_high_water;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

void fdtable_init(void)
{
    struct rlimit lim;
    unsigned slots = MAX_SLOTS;
    if (syscall(SYS_getrlimit, RLIMIT_NOFILE, &lim) == 0 && lim.rlim_max < MAX_SLOTS)
        slots = (unsigned)lim.rlim_max;
    void *mem = (void *)syscall(SYS_mmap, NULL, slots * (sizeof(struct tracked *) + 1),
                                PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return; /* no tracking at all: the program runs untouched */
    fd_slots = mem;
    fd_marks = (unsigned char *)(fd_slots + slots);
    __atomic_store_n(&fd_capacity, slots, __ATOMIC_RELEASE);
}

void fdtable_lock(void)
{
    pthread_mutex_lock(&table_lock);
}

void fdtable_unlock(void)
{
    pthread_mutex_unlock(&table_lock);
}

void fdtable_mark(int fd, unsigned mark)
{
    if ((unsigned)fd < fd_capacity)
        __atomic_or_fetch(&fd_marks[fd], (unsigned char)mark, __ATOMIC_RELAXED);
}

unsigned fdtable_marks(int fd)
{
    if ((unsigned)fd >= fd_capacity) return 0;
    return __atomic_fetch_and(&fd_marks[fd], (unsigned char)~FD_TOUCHED, __ATOMIC_RELAXED);
}

struct tracked *fdtable_get(int fd)
{
    struct tracked *t = (unsigned)fd < fd_capacity ? fd_slots[fd] : NULL;
    return t == FD_UNDECIDED ? NULL : t;
}

struct tracked *fdtable_set(int fd, struct tracked *t)
{
    if ((unsigned)fd >= fd_capacity) return NULL;
    struct tracked *old = fd_slots[fd];
    bool had = old && old != FD_UNDECIDED, has = t && t != FD_UNDECIDED;
    if (!had && has) __atomic_add_fetch(&fd_tracked_count, 1, __ATOMIC_RELAXED);
    if (had && !has) __atomic_sub_fetch(&fd_tracked_count, 1, __ATOMIC_RELAXED);
    if (t && (unsigned)fd >= fd_high_water) fd_high_water = (unsigned)fd + 1;
    __atomic_store_n(&fd_marks[fd], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fd_slots[fd], t, __ATOMIC_RELEASE);
    return old;
}

void fdtable_after_fork_child(void)
{
    pthread_mutex_init(&table_lock, NULL);
}

unsigned fdtable_repoint(const struct tracked *from, struct tracked *to)
{
    unsigned n = 0;
    for (unsigned fd = 0; fd < fd_high_water; fd++)
        if (fd_slots[fd] == from) {
            fdtable_set((int)fd, to);
            n++;
        }
    return n;
}
