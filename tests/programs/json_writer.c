/* json_writer.c — writes one known JSON checkpoint through a chosen family of calls.
 *
 * The end-to-end tests run this program with and without the agent and check that the
 * record describes the checkpoint exactly and that the program behaves the same either
 * way. Every method writes the same bytes, so that a record that differs between methods
 * points at the wrapper behind that method. tests/e2e/test_c_writers.py builds the same
 * text independently; keep the two in step.
 *
 * usage: json_writer METHOD PATH     (prints what it wrote on stdout, its pid on stderr)
 *        json_writer errors DIR      (failing calls under DIR; prints return values and errno)
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define WEIGHTS 20
#define THREADS 8
#define BLOCK   16 /* bytes per pwrite when writing back to front */

static char content[1024];
static size_t content_len;

static void build_content(void)
{
    int n = snprintf(content, sizeof content,
                     "{\"epoch\": 7, \"lr\": 0.125, \"name\": \"c-writer\", "
                     "\"optim\": {\"betas\": [0.9, 0.999], \"step\": 140}, \"weights\": [");
    for (int i = 0; i < WEIGHTS; i++)
        n += snprintf(content + n, sizeof content - n, "%s%.4f", i ? ", " : "", (i - 10) * 0.0625);
    n += snprintf(content + n, sizeof content - n, "]}\n");
    content_len = (size_t)n;
}

static int fail(const char *what)
{
    perror(what);
    return -1;
}

static int open_for_writing(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
}

/* Writes all of buf with write(), however the kernel splits it. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail("write");
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int close_checked(int fd)
{
    return close(fd) == 0 ? 0 : fail("close");
}

/* ---- methods: each writes content to path and returns 0, or -1 after perror ---- */

/* fprintf, fputs, fwrite and fputc, one quarter of the text each. */
static int by_stdio(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return fail("fopen");
    size_t quarter = content_len / 4;
    char middle[sizeof content];
    memcpy(middle, content + quarter, quarter);
    middle[quarter] = '\0';
    fprintf(f, "%.*s", (int)quarter, content);
    fputs(middle, f);
    fwrite(content + 2 * quarter, 1, quarter, f);
    for (size_t i = 3 * quarter; i < content_len; i++)
        fputc(content[i], f);
    return fclose(f) == 0 ? 0 : fail("fclose");
}

/* Half through the original descriptor, which is then closed, half through its dup. */
static int by_dup(const char *path)
{
    int fd = open_for_writing(path);
    if (fd < 0) return fail("open");
    size_t half = content_len / 2;
    if (write_all(fd, content, half) < 0) return -1;
    int copy = dup(fd);
    if (copy < 0) return fail("dup");
    if (close_checked(fd) < 0 || write_all(copy, content + half, content_len - half) < 0) return -1;
    return close_checked(copy);
}

/* dup2 onto a chosen number, then the same as by_dup. */
static int by_dup2(const char *path)
{
    int fd = open_for_writing(path);
    if (fd < 0) return fail("open");
    size_t half = content_len / 2;
    if (write_all(fd, content, half) < 0) return -1;
    int copy = dup2(fd, 50);
    if (copy < 0) return fail("dup2");
    if (close_checked(fd) < 0 || write_all(copy, content + half, content_len - half) < 0) return -1;
    return close_checked(copy);
}

/* Alternating 10-byte pieces through the original and an F_DUPFD copy. */
static int by_fcntl_dupfd(const char *path)
{
    int fds[2];
    fds[0] = open_for_writing(path);
    if (fds[0] < 0) return fail("open");
    fds[1] = fcntl(fds[0], F_DUPFD, 100);
    if (fds[1] < 0) return fail("fcntl");
    for (size_t at = 0, turn = 0; at < content_len; at += 10, turn ^= 1) {
        size_t len = content_len - at < 10 ? content_len - at : 10;
        if (write_all(fds[turn], content + at, len) < 0) return -1;
    }
    if (close_checked(fds[0]) < 0) return -1;
    return close_checked(fds[1]);
}

/* One writev of five unequal pieces. */
static int by_writev(const char *path)
{
    int fd = open_for_writing(path);
    if (fd < 0) return fail("open");
    static const size_t cuts[] = {0, 1, 17, 60, 61};
    struct iovec iov[5];
    for (int i = 0; i < 5; i++) {
        size_t end = i < 4 ? cuts[i + 1] : content_len;
        iov[i].iov_base = content + cuts[i];
        iov[i].iov_len = end - cuts[i];
    }
    ssize_t n = writev(fd, iov, 5);
    if (n != (ssize_t)content_len) return fail("writev");
    return close_checked(fd);
}

/* BLOCK-byte pwrites from the end of the file to its start. */
static int by_pwrite_backwards(const char *path)
{
    int fd = open_for_writing(path);
    if (fd < 0) return fail("open");
    size_t blocks = (content_len + BLOCK - 1) / BLOCK;
    for (size_t b = blocks; b-- > 0;) {
        size_t at = b * BLOCK;
        size_t len = content_len - at < BLOCK ? content_len - at : BLOCK;
        if (pwrite(fd, content + at, len, (off_t)at) != (ssize_t)len) return fail("pwrite");
    }
    return close_checked(fd);
}

/* write() for the first bytes, then a stream opened over the same descriptor. */
static int by_fdopen(const char *path)
{
    int fd = open_for_writing(path);
    if (fd < 0) return fail("open");
    size_t head = 30;
    if (write_all(fd, content, head) < 0) return -1;
    FILE *f = fdopen(fd, "w");
    if (!f) return fail("fdopen");
    fputs(content + head, f);
    return fclose(f) == 0 ? 0 : fail("fclose");
}

/* numpy's way: the data through fdopen(dup(fd)), that stream closed, and fd left open
 * for exit to close (the agent must not flush the freed FILE at exit). */
static int by_fdopen_dup_left_open(const char *path)
{
    int fd = open_for_writing(path);
    if (fd < 0) return fail("open");
    FILE *f = fdopen(dup(fd), "w");
    if (!f) return fail("fdopen");
    fputs(content, f);
    return fclose(f) == 0 ? 0 : fail("fclose");
}

/* Written under PATH.tmp, renamed to PATH after close. */
static int by_rename_after_close(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open_for_writing(tmp);
    if (fd < 0) return fail("open");
    if (write_all(fd, content, content_len) < 0 || close_checked(fd) < 0) return -1;
    return rename(tmp, path) == 0 ? 0 : fail("rename");
}

static int by_creat(const char *path)
{
    int fd = creat(path, 0644);
    if (fd < 0) return fail("creat");
    if (write_all(fd, content, content_len) < 0) return -1;
    return close_checked(fd);
}

/* openat with the base name, relative to a descriptor of the file's directory. */
static int by_openat(const char *path)
{
    char dir_copy[4096], base_copy[4096];
    snprintf(dir_copy, sizeof dir_copy, "%s", path);
    snprintf(base_copy, sizeof base_copy, "%s", path);
    int dirfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY);
    if (dirfd < 0) return fail("open dir");
    int fd = openat(dirfd, basename(base_copy), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fail("openat");
    if (close_checked(dirfd) < 0 || write_all(fd, content, content_len) < 0) return -1;
    return close_checked(fd);
}

/* Sized with ftruncate, filled through a shared mapping: no write call at all. */
static int by_mmap(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fail("open");
    if (ftruncate(fd, (off_t)content_len) < 0) return fail("ftruncate");
    char *map = mmap(NULL, content_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) return fail("mmap");
    memcpy(map, content, content_len);
    if (munmap(map, content_len) < 0) return fail("munmap");
    return close_checked(fd);
}

/* Copied in by sendfile from a scratch file that is not a checkpoint. */
static int by_sendfile(const char *path)
{
    char scratch[4096];
    snprintf(scratch, sizeof scratch, "%s.scratch", path);
    int in = open(scratch, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (in < 0) return fail("open scratch");
    if (write_all(in, content, content_len) < 0 || unlink(scratch) < 0) return -1;
    int out = open_for_writing(path);
    if (out < 0) return fail("open");
    off_t from = 0;
    if (sendfile(out, in, &from, content_len) != (ssize_t)content_len) return fail("sendfile");
    if (close_checked(in) < 0) return -1;
    return close_checked(out);
}

/* ---- eight threads, one byte per write call, on one shared descriptor ---- */

struct shared_fd {
    int fd;
    size_t next; /* pwrite: the next byte to claim; write: the byte whose turn it is */
    int failed;
};

/* Threads claim byte indexes from an atomic counter and pwrite each byte at its own
 * offset: the kernel sees the bytes out of order, the file ends up as content. */
static void *pwrite_claimed_bytes(void *arg)
{
    struct shared_fd *s = arg;
    for (;;) {
        size_t i = __atomic_fetch_add(&s->next, 1, __ATOMIC_RELAXED);
        if (i >= content_len) return NULL;
        if (pwrite(s->fd, content + i, 1, (off_t)i) != 1)
            __atomic_store_n(&s->failed, 1, __ATOMIC_RELAXED);
    }
}

/* Thread k writes byte i when i % THREADS == k and byte i - 1 is written: write() on the
 * shared offset then lays the bytes down in order without a lock. */
struct turn {
    struct shared_fd *shared;
    size_t first;
};

static void *write_bytes_in_turn(void *arg)
{
    struct turn *turn = arg;
    struct shared_fd *s = turn->shared;
    for (size_t i = turn->first; i < content_len; i += THREADS) {
        while (__atomic_load_n(&s->next, __ATOMIC_ACQUIRE) != i)
            sched_yield();
        if (write(s->fd, content + i, 1) != 1) __atomic_store_n(&s->failed, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&s->next, i + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

static int run_threads(const char *path, void *(*body)(void *), int by_turn)
{
    struct shared_fd shared = {.fd = open_for_writing(path)};
    if (shared.fd < 0) return fail("open");
    pthread_t threads[THREADS];
    struct turn turns[THREADS];
    for (int k = 0; k < THREADS; k++) {
        turns[k] = (struct turn){&shared, (size_t)k};
        void *arg = by_turn ? (void *)&turns[k] : (void *)&shared;
        if (pthread_create(&threads[k], NULL, body, arg) != 0) return fail("pthread_create");
    }
    for (int k = 0; k < THREADS; k++)
        pthread_join(threads[k], NULL);
    if (shared.failed) return fail("threaded write");
    return close_checked(shared.fd);
}

static int by_threads_pwrite(const char *path)
{
    return run_threads(path, pwrite_claimed_bytes, 0);
}

static int by_threads_write(const char *path)
{
    return run_threads(path, write_bytes_in_turn, 1);
}

/* One thread writes the content a byte at a time holding the FILE lock (flockfile,
 * fwrite_unlocked) while another keeps calling fseeko(SEEK_CUR), which locks the FILE
 * itself: the two take the stream's locks in opposite orders unless the agent always
 * takes the FILE lock first. */
static atomic_bool stdio_writer_done;
static atomic_ulong stdio_seeks;

static void *seek_in_place(void *stream)
{
    while (!atomic_load(&stdio_writer_done)) {
        fseeko(stream, 0, SEEK_CUR);
        atomic_fetch_add(&stdio_seeks, 1);
    }
    return NULL;
}

static int by_threads_stdio_locks(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return fail("fopen");
    pthread_t seeker;
    if (pthread_create(&seeker, NULL, seek_in_place, f) != 0) return fail("pthread_create");
    for (size_t i = 0; i < content_len; i++) {
        unsigned long seeks = atomic_load(&stdio_seeks);
        while (atomic_load(&stdio_seeks) == seeks) /* a seek between any two bytes */
            sched_yield();
        flockfile(f);
        (fwrite_unlocked)(content + i, 1, 1, f); /* the function, not glibc's inline macro */
        funlockfile(f);
    }
    atomic_store(&stdio_writer_done, true);
    pthread_join(seeker, NULL);
    return fclose(f) == 0 ? 0 : fail("fclose");
}

/* ---- failing calls: what they return and the errno they leave ---- */

static void show(const char *call, long result)
{
    printf("%s = %ld errno=%s\n", call, result, result < 0 ? strerrorname_np(errno) : "-");
}

static int failing_calls(const char *dir)
{
    char missing[4096], existing[4096];
    snprintf(missing, sizeof missing, "%s/no/such/dir/state.json", dir);
    snprintf(existing, sizeof existing, "%s/existing.json", dir);
    errno = 0;
    show("open missing dir", open(missing, O_WRONLY | O_CREAT, 0644));
    show("creat missing dir", creat(missing, 0644));
    show("fopen missing dir", fopen(missing, "w") ? 0 : -1);
    show("write bad fd", write(-1, "x", 1));
    show("close bad fd", close(9999));
    show("dup bad fd", dup(9999));
    show("rename missing", rename(missing, existing));
    int fd = open(existing, O_WRONLY | O_CREAT | O_EXCL, 0644);
    show("open existing", fd >= 0 ? 0 : -1);
    show("open excl again", open(existing, O_WRONLY | O_CREAT | O_EXCL, 0644));
    show("read-only write", write(open(existing, O_RDONLY), "x", 1));
    show("pwrite negative", pwrite(fd, "x", 1, -5));
    show("close", close(fd));
    show("close again", close(fd));
    return 0;
}

static const struct {
    const char *name;
    int (*write_file)(const char *path);
} methods[] = {
    {"stdio", by_stdio},
    {"dup", by_dup},
    {"dup2", by_dup2},
    {"fcntl_dupfd", by_fcntl_dupfd},
    {"writev", by_writev},
    {"pwrite_backwards", by_pwrite_backwards},
    {"fdopen", by_fdopen},
    {"fdopen_dup_left_open", by_fdopen_dup_left_open},
    {"rename_after_close", by_rename_after_close},
    {"creat", by_creat},
    {"openat", by_openat},
    {"mmap", by_mmap},
    {"sendfile", by_sendfile},
    {"threads_pwrite", by_threads_pwrite},
    {"threads_write", by_threads_write},
    {"threads_stdio_locks", by_threads_stdio_locks},
    {"errors", failing_calls},
};

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s METHOD PATH\n", argv[0]);
        return 2;
    }
    build_content();
    fprintf(stderr, "pid %ld\n", (long)getpid());
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (strcmp(argv[1], methods[i].name) != 0) continue;
        if (methods[i].write_file(argv[2]) < 0) return 1;
        if (methods[i].write_file != failing_calls)
            printf("%s wrote %zu bytes to %s\n", argv[1], content_len, argv[2]);
        return 0;
    }
    fprintf(stderr, "%s: unknown method %s\n", argv[0], argv[1]);
    return 2;
}
