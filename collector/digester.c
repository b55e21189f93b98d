/* digester.c — the worker thread that reads closed checkpoints (see digester.h).
 *
 * A job has two owners, the queue (then the worker) and the tracker's record waiting
 * for it; it is freed when both let go. The worker runs as SCHED_BATCH at nice 19 (on
 * Linux, a thread's own): hashing gigabytes is the collector's background work and gives
 * way to the programs it watches on a busy machine, without starving as SCHED_IDLE could
 * (a record waits for its digest, and `ckmon run` for its records at the end).
 */
#include "digester.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/parsers/zip_check.h"

#define WORKER_NICE 19

struct digest_job {
    char *path;
    struct file_id closed;
    bool hash;
    char *crc_format;  /* NULL: no CRC check */
    int crc_fd;        /* the file for the CRC check, opened at its close; -1: by path */
    struct report crc; /* the check's errors */
    char text[DIGEST_TEXT_SIZE];
    char why[200];     /* set when there is no digest */
    char crc_why[200]; /* set when the CRCs could not be checked */
    atomic_bool cancelled;
    bool done;           /* under the lock */
    int owners;          /* under the lock */
    struct digester *by; /* for its lock */
    struct digest_job *next;
};

struct digester {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t queued, finished;
    struct digest_job *head, **tail;
    bool stopping;
    int wake_fd;
};

static void release(struct digest_job *j) /* under the lock */
{
    if (--j->owners > 0) return;
    if (j->crc_fd >= 0) close(j->crc_fd);
    report_free(&j->crc);
    free(j->crc_format);
    free(j->path);
    free(j);
}

#define WHY_SIZE sizeof(((struct digest_job *)0)->why)

static void say(char *why, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void say(char *why, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    vsnprintf(why, WHY_SIZE, format, ap);
    va_end(ap);
}

/* One pass over the open file for what is asked of it: its CRCs (into j->crc) when
 * crc_why is not NULL, its digest (into j->text) when hash_why is not; with both, the
 * digest follows the check's reads (digest_follow), so that the file is read once. Sets
 * both whys when the file is not the one closed, or changed meanwhile: then nothing it
 * found counts; hash_why alone when the digest's own reads failed (the check says what
 * its reads could not find). */
static void read_file(struct digest_job *j, int fd, char *hash_why, char *crc_why)
{
    struct stat before, after;
    const char *differs = NULL;
    char why[WHY_SIZE] = "";
    if (fstat(fd, &before) < 0 || !S_ISREG(before.st_mode))
        say(why, "not a regular file any more");
    else if ((differs = file_id_differs(&j->closed, &before)))
        say(why, "the file was replaced or changed after its close (its %s differs)", differs);
    if (why[0]) {
        if (hash_why) memcpy(hash_why, why, sizeof why);
        if (crc_why) memcpy(crc_why, why, sizeof why);
        return;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    struct digest_follow follow = {.digest = hash_why ? digest_new() : NULL, .fd = fd};
    struct zip_check_tap tap = {.seen = digest_follow_seen, .ctx = &follow};
    if (hash_why && !follow.digest) {
        say(hash_why, "out of memory");
        hash_why = NULL;
    }
    if (crc_why)
        zip_check_crcs(fd, j->crc_format, &j->crc, &j->cancelled, follow.digest ? &tap : NULL);
    bool read_ok = !follow.digest || digest_follow_rest(&follow, &j->cancelled);
    int error = errno;
    bool stopped = atomic_load(&j->cancelled);
    struct file_id start;
    file_id_of(&start, &before);
    if (stopped)
        say(why, "the collector stopped first");
    else if (fstat(fd, &after) < 0 || (differs = file_id_differs(&start, &after)))
        say(why, "the file changed while it was read (its %s differs)",
            differs ? differs : "state");
    if (crc_why && why[0]) memcpy(crc_why, why, sizeof why);
    if (hash_why && !stopped && !read_ok)
        say(hash_why, "read failed: %s", strerror(error));
    else if (hash_why && why[0])
        memcpy(hash_why, why, sizeof why);
    else if (hash_why)
        digest_text(follow.digest, j->text);
    digest_free(follow.digest);
}

/* Whether two open descriptors are of one file as it is now (device, inode, size,
 * modification time). */
static bool same_file(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino && sa.st_size == sb.st_size &&
           sa.st_mtim.tv_sec == sb.st_mtim.tv_sec && sa.st_mtim.tv_nsec == sb.st_mtim.tv_nsec;
}

/* The CRCs from the file opened at its close when there is one (a file deleted or
 * replaced since is still that file), the digest (and the CRCs otherwise) from the file
 * under the record's name now, which must still be the one closed; one read for both
 * when the name still leads to the file opened at the close. A file deleted before the
 * collector could open it leaves no CRC to check and nothing to warn of: no one can load
 * it any more (docs/integrity.md). */
static void run(struct digest_job *j)
{
    bool crc_by_path = j->crc_format && j->crc_fd < 0;
    bool crc_pinned = j->crc_format && j->crc_fd >= 0;
    int fd = -1;
    if (j->hash || crc_by_path) {
        fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) {
            bool gone = errno == ENOENT;
            say(j->why, "cannot open the file: %s", strerror(errno));
            if (crc_by_path && !gone) memcpy(j->crc_why, j->why, sizeof j->why);
        }
    }
    if (crc_pinned && fd >= 0 && j->hash && same_file(fd, j->crc_fd)) {
        read_file(j, j->crc_fd, j->why, j->crc_why);
    } else {
        if (crc_pinned) read_file(j, j->crc_fd, NULL, j->crc_why);
        if (fd >= 0) read_file(j, fd, j->hash ? j->why : NULL, crc_by_path ? j->crc_why : NULL);
    }
    if (fd >= 0) close(fd);
}

static void *worker(void *arg)
{
    struct digester *g = arg;
    struct sched_param batch = {0};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WORKER_NICE);
    pthread_mutex_lock(&g->lock);
    for (;;) {
        while (!g->head && !g->stopping)
            pthread_cond_wait(&g->queued, &g->lock);
        struct digest_job *j = g->head;
        if (!j) break; /* stopping, nothing left */
        if (!(g->head = j->next)) g->tail = &g->head;
        pthread_mutex_unlock(&g->lock);
        if (atomic_load(&j->cancelled)) {
            say(j->why, "the collector stopped first");
            memcpy(j->crc_why, j->why, sizeof j->why);
        } else {
            run(j);
        }
        pthread_mutex_lock(&g->lock);
        j->done = true;
        release(j);
        pthread_cond_broadcast(&g->finished);
        uint64_t one = 1;
        if (write(g->wake_fd, &one, sizeof one) < 0) {
            /* the counter is full: the tracker is awake anyway */
        }
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

struct digester *digester_new(void)
{
    struct digester *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->tail = &g->head;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->queued, NULL);
    pthread_cond_init(&g->finished, NULL);
    if ((g->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        pthread_create(&g->thread, NULL, worker, g) != 0) {
        if (g->wake_fd >= 0) close(g->wake_fd);
        pthread_cond_destroy(&g->finished);
        pthread_cond_destroy(&g->queued);
        pthread_mutex_destroy(&g->lock);
        free(g);
        return NULL;
    }
    return g;
}

void digester_free(struct digester *g)
{
    if (!g) return;
    pthread_mutex_lock(&g->lock);
    g->stopping = true;
    for (struct digest_job *j = g->head; j; j = j->next)
        atomic_store(&j->cancelled, true);
    pthread_cond_broadcast(&g->queued);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    close(g->wake_fd);
    pthread_cond_destroy(&g->finished);
    pthread_cond_destroy(&g->queued);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

int digester_wake_fd(const struct digester *g)
{
    return g->wake_fd;
}

void digester_done_clear(struct digester *g)
{
    uint64_t count;
    while (read(g->wake_fd, &count, sizeof count) > 0) {
    }
}

struct digest_job *digester_start(struct digester *g, const char *path,
                                  const struct file_id *closed, struct digest_work work)
{
    struct digest_job *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path)) ||
        (work.crc_format && !(j->crc_format = strdup(work.crc_format)))) {
        if (j) free(j->path);
        free(j);
        return NULL;
    }
    j->crc_fd = work.crc_fd;
    report_init(&j->crc, NULL);
    j->hash = work.hash;
    j->closed = *closed;
    j->owners = 2;
    j->by = g;
    pthread_mutex_lock(&g->lock);
    *g->tail = j;
    g->tail = &j->next;
    pthread_cond_signal(&g->queued);
    pthread_mutex_unlock(&g->lock);
    return j;
}

bool digest_job_done(struct digest_job *j)
{
    pthread_mutex_lock(&j->by->lock);
    bool done = j->done;
    pthread_mutex_unlock(&j->by->lock);
    return done;
}

void digest_job_wait(struct digest_job *j)
{
    pthread_mutex_lock(&j->by->lock);
    while (!j->done)
        pthread_cond_wait(&j->by->finished, &j->by->lock);
    pthread_mutex_unlock(&j->by->lock);
}

const char *digest_job_result(struct digest_job *j, const char **why)
{
    *why = j->why;
    return j->why[0] ? NULL : j->text;
}

const cJSON *digest_job_crc_errors(const struct digest_job *j, const char **why)
{
    *why = j->crc_why;
    return j->crc_why[0] ? NULL : j->crc.errors;
}

void digest_job_drop(struct digest_job *j)
{
    if (!j) return;
    struct digester *g = j->by;
    atomic_store(&j->cancelled, true);
    pthread_mutex_lock(&g->lock);
    release(j);
    pthread_mutex_unlock(&g->lock);
}
