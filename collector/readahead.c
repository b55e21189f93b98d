/* readahead.c — feeding a parser while a second thread reads ahead (`ckmon inspect` and
 * the collector's re-reads of finished files).
 *
 * Why: with parse_feed_pread the kernel's copy of each chunk and the statistics over it
 * run one after the other on one thread, and for exact statistics over a large
 * checkpoint they take about as long each. Here a reader thread preads into a small ring
 * of chunks while the caller parses the ones before, so the two overlap.
 *
 * Why not a mapping, which avoids the copy altogether: measured on tmpfs, the page-table
 * work of mapping and unmapping 4 KiB pages and the statistics reading memory instead of
 * a cache-warm chunk made inspect slower than pread. The agent keeps parse_feed_pread:
 * a thread in a monitored program is not ours to start.
 */
#include "readahead.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 4
/* Small enough that the ring stays in the caches the two threads share. */
#define SLOT_BYTES (1u << 18)
/* A chunk takes tens of microseconds either way: waiting that long by spinning is
 * cheaper than sleeping and being woken (measured: a third of the time went to it).
 * After a few rounds the spinning yields, because when both threads share one CPU the
 * other one cannot make progress while this one spins (measured: 4 times slower). */
#define SPINS  64
#define YIELDS 256

struct slot {
    uint8_t *data;
    ssize_t n; /* bytes read; 0 at EOF; -1 on error, with error set */
    int error;
    atomic_bool full;
};

struct ring {
    int fd;
    off_t from;
    atomic_int sleepers; /* threads in, or about to be in, pthread_cond_wait */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct slot slots[SLOTS];
};

/* Waits until s->full equals `full`: spinning first, then sleeping. */
static void await(struct ring *g, struct slot *s, bool full)
{
    for (int i = 0; i < SPINS + YIELDS; i++) {
        if (atomic_load(&s->full) == full) return;
        if (i < SPINS)
            __builtin_ia32_pause();
        else
            sched_yield();
    }
    pthread_mutex_lock(&g->lock);
    atomic_fetch_add(&g->sleepers, 1);
    while (atomic_load(&s->full) != full)
        pthread_cond_wait(&g->changed, &g->lock);
    atomic_fetch_sub(&g->sleepers, 1);
    pthread_mutex_unlock(&g->lock);
}

/* Sets s->full and wakes the other thread if it sleeps. Both sides use sequentially
 * consistent operations, so either await sees the store or this sees the sleeper. */
static void publish(struct ring *g, struct slot *s, bool full)
{
    atomic_store(&s->full, full);
    if (atomic_load(&g->sleepers) == 0) return;
    pthread_mutex_lock(&g->lock);
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
}

static void *reader(void *arg)
{
    struct ring *g = arg;
    off_t offset = g->from;
    for (unsigned i = 0;; i = (i + 1) % SLOTS) {
        struct slot *s = &g->slots[i];
        await(g, s, false);
        ssize_t n;
        do
            n = pread(g->fd, s->data, SLOT_BYTES, offset);
        while (n < 0 && errno == EINTR);
        s->n = n;
        s->error = n < 0 ? errno : 0;
        publish(g, s, true);
        if (n <= 0) return NULL;
        offset += n;
    }
}

/* Whether this process may run on more than one CPU. Confined to one (taskset, a
 * cpuset), the two threads only take turns: measured 25% slower than plain pread. */
static bool several_cpus(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) > 1;
}

bool parse_feed_readahead(int fd, off_t from, struct parser *p, struct report *r)
{
    if (!several_cpus()) return parse_feed_pread(fd, from, p, r);
    struct ring g = {.fd = fd, .from = from};
    uint8_t *memory = aligned_alloc(4096, (size_t)SLOTS * SLOT_BYTES);
    pthread_t thread;
    if (!memory) return parse_feed_pread(fd, from, p, r);
    for (int i = 0; i < SLOTS; i++)
        g.slots[i].data = memory + (size_t)i * SLOT_BYTES;
    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.changed, NULL);
    if (pthread_create(&thread, NULL, reader, &g) != 0) {
        free(memory);
        return parse_feed_pread(fd, from, p, r);
    }
    off_t offset = from;
    bool read_ok = true;
    for (unsigned i = 0;; i = (i + 1) % SLOTS) {
        struct slot *s = &g.slots[i];
        await(&g, s, true);
        if (s->n < 0) {
            report_error(r, "read failed at byte %lld: %s", (long long)offset, strerror(s->error));
            read_ok = false;
        }
        if (s->n <= 0) break;
        p->feed(p, s->data, (size_t)s->n);
        offset += s->n;
        publish(&g, s, false);
    }
    pthread_join(thread, NULL);
    pthread_cond_destroy(&g.changed);
    pthread_mutex_destroy(&g.lock);
    free(memory);
    return read_ok;
}
