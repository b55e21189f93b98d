/* channel.c — the agent's connection to its collector (see channel.h). */
#include "channel.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "core/wire.h"
#include "sys.h"

#define RECONNECT_INTERVAL_NS 1000000000LL

struct queued {
    struct queued *next;
    size_t len;
    char data[];
};

static pthread_mutex_t channel_lock = PTHREAD_MUTEX_INITIALIZER;
static int conn_fd = -1;
static dev_t conn_dev; /* what conn_fd was when connected: the program may have closed it */
static ino_t conn_ino; /* behind the agent's back (raw syscall) and reused the number */
static long conn_pid;  /* the process that connected: a vfork child closing its copy of */
                       /* conn_fd (before exec) must not make its parent drop the socket */
static long long next_connect_ns; /* monotonic time before which no reconnect is tried */
static struct queued *queue_head, **queue_tail = &queue_head;
static size_t queue_bytes;
static unsigned long dropped;

/* Whether conn_fd is still the socket the agent connected: a program can close it with
 * a raw system call and get the same number for a file of its own, which must never
 * receive the agent's messages (nor be closed by the agent). */
static bool connection_intact(void)
{
    struct stat st;
    if (conn_fd >= 0 && syscall(SYS_fstat, conn_fd, &st) == 0 && st.st_dev == conn_dev &&
        st.st_ino == conn_ino)
        return true;
    conn_fd = -1;
    return false;
}

static bool send_packet(const char *data, size_t len)
{
    long n = syscall(SYS_sendto, conn_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, NULL, 0);
    if (n >= 0) return true;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        raw_close(conn_fd); /* the collector went away; reconnect at the next message */
        conn_fd = -1;
    }
    return false;
}

static void send_hello(void)
{
    const struct agent_config *c = &agent_config;
    struct wire_message m = {
        .kind = WIRE_HELLO,
        .hello = {.pid = getpid(),
                  .program = c->program,
                  .host = c->host,
                  .job = c->job,
                  .run = c->run[0] ? c->run : NULL,
                  .rank = c->has_rank ? c->rank : WIRE_ABSENT,
                  .local_rank = c->has_local_rank ? c->local_rank : WIRE_ABSENT,
                  .world_size = c->has_world_size ? c->world_size : WIRE_ABSENT,
                  .sample = c->parse.sample,
                  /* Messages lost while no collector listened or the queue was full:
                   * said once. */
                  .dropped = (int64_t)dropped,
                  .keys = c->keys.patterns,
                  .key_count = c->keys.count}};
    dropped = 0;
    struct strbuf text = {.limit = WIRE_MAX_MESSAGE};
    if (wire_encode(&m, &text)) send_packet(text.s, text.len);
    free(text.s);
}

/* Only a collector run by our own user (or root) gets the program's findings: another
 * user may have bound the socket path first (docs/security.md). */
static bool collector_trusted(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    return syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
           (cred.uid == geteuid() || cred.uid == 0);
}

static void connect_if_needed(void)
{
    if (conn_fd >= 0 || monotonic_ns() < next_connect_ns) return;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, agent_config.socket_path, sizeof addr.sun_path);
    int saved = errno;
    int fd = (int)syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct stat st;
    if (fd >= 0 && syscall(SYS_connect, fd, &addr, sizeof addr) == 0 && collector_trusted(fd) &&
        syscall(SYS_fstat, fd, &st) == 0) {
        conn_fd = fd;
        conn_pid = syscall(SYS_getpid);
        conn_dev = st.st_dev;
        conn_ino = st.st_ino;
        send_hello();
    } else {
        if (fd >= 0) raw_close(fd);
        next_connect_ns = monotonic_ns() + RECONNECT_INTERVAL_NS;
    }
    errno = saved;
}

static void drain_queue(void)
{
    while (queue_head && conn_fd >= 0 && send_packet(queue_head->data, queue_head->len)) {
        struct queued *q = queue_head;
        queue_head = q->next;
        queue_bytes -= q->len;
        free(q);
    }
    if (!queue_head) queue_tail = &queue_head;
}

static void enqueue(const char *data, size_t len)
{
    struct queued *q = queue_bytes + len <= CHANNEL_QUEUE_BYTES ? malloc(sizeof *q + len) : NULL;
    if (!q) {
        dropped++;
        return;
    }
    q->next = NULL;
    q->len = len;
    memcpy(q->data, data, len);
    *queue_tail = q;
    queue_tail = &q->next;
    queue_bytes += len;
}

void channel_send(const struct wire_message *m)
{
    struct strbuf text = {.limit = WIRE_MAX_MESSAGE};
    bool encoded = wire_encode(m, &text);
    int saved = errno;
    pthread_mutex_lock(&channel_lock);
    connection_intact();
    connect_if_needed();
    drain_queue();
    if (!encoded) /* over WIRE_MAX_MESSAGE, or no memory */
        dropped++;
    else if (queue_head || conn_fd < 0 || !send_packet(text.s, text.len))
        enqueue(text.s, text.len);
    pthread_mutex_unlock(&channel_lock);
    errno = saved;
    free(text.s);
}

static bool owned_in(unsigned first, unsigned last)
{
    int fd = __atomic_load_n(&conn_fd, __ATOMIC_RELAXED);
    return fd >= 0 && (unsigned)fd >= first && (unsigned)fd <= last;
}

void channel_yield_fds(unsigned first, unsigned last)
{
    if (!owned_in(first, last) || syscall(SYS_getpid) != conn_pid) return;
    pthread_mutex_lock(&channel_lock);
    if (owned_in(first, last)) conn_fd = -1;
    pthread_mutex_unlock(&channel_lock);
}

void channel_flush(int timeout_ms)
{
    long long deadline = monotonic_ns() + timeout_ms * 1000000LL;
    int saved = errno;
    pthread_mutex_lock(&channel_lock);
    if (queue_head) next_connect_ns = 0; /* one last try, whatever the backoff says */
    connection_intact();
    for (;;) {
        connect_if_needed();
        drain_queue();
        long long left_ms = (deadline - monotonic_ns()) / 1000000LL;
        /* No collector: nothing to wait for, and the program must not linger. */
        if (!queue_head || conn_fd < 0 || left_ms <= 0) break;
        struct pollfd p = {.fd = conn_fd, .events = POLLOUT};
        syscall(SYS_poll, &p, 1, (int)(left_ms < 100 ? left_ms : 100));
    }
    pthread_mutex_unlock(&channel_lock);
    errno = saved;
}

void channel_after_fork_child(void)
{
    pthread_mutex_init(&channel_lock, NULL);
    if (conn_fd >= 0) raw_close(conn_fd);
    conn_fd = -1;
    next_connect_ns = 0;
    while (queue_head) {
        struct queued *q = queue_head;
        queue_head = q->next;
        free(q);
    }
    queue_tail = &queue_head;
    queue_bytes = 0;
}
