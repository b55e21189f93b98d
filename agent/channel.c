/* channel.c — the agent's connection to its collector (see channel.h). */
#include "channel.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/random.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "core/wire.h"
#include "signals.h"
#include "spool.h"
#include "sys.h"

#define RECONNECT_INTERVAL_NS 1000000000LL
#define ACK_READ_INTERVAL     64 /* findings sent between two looks for acknowledgements */
#define ACK_BATCH             16 /* acknowledgements read by one system call (on the stack) */
#define ACK_PACKET_BYTES      128

/* A message queued until the collector acknowledges it (core/wire.h, "Delivery"): the
 * ones before `unsent` went out on the current connection, the rest wait for the socket.
 * The messages of a file (open, data) stay until its close is acknowledged too: until
 * then the collector has them in memory only, and one started after a kill needs them
 * to make the file's record. */
struct queued {
    struct queued *next;
    int64_t seq;
    int64_t file; /* the file's id for open, data and close; 0 for the others */
    bool closes;  /* a close message */
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
static struct queued *unsent; /* the first message not sent on this connection; NULL: none */
/* The link to the first message no acknowledgement has covered yet: every message before
 * it is an open or data message kept for a file whose close is not acknowledged, so an
 * acknowledgement looks at each message once, not at the whole queue again (a file of
 * 100,000 tensors keeps 100,000 messages until its close). */
static struct queued **unchecked = &queue_head;
static size_t queue_bytes;
static unsigned long dropped;
static int64_t last_seq;  /* of the newest message queued */
static int64_t acked_seq; /* the collector's newest acknowledgement */
static unsigned findings_since_acks;
static char session[17]; /* this process's random name, for the collector */
/* The program needs every descriptor it may have (a small RLIMIT_NOFILE, or it ran out):
 * the agent then connects only at exit and holds no descriptor while the program runs. */
static bool fds_scarce;

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

static void remove_at(struct queued **link)
{
    struct queued *q = *link;
    if (unsent == q) unsent = q->next;
    if (queue_tail == &q->next) queue_tail = link;
    if (unchecked == &q->next) unchecked = link;
    *link = q->next;
    queue_bytes -= q->len;
    free(q);
}

static void free_head(void)
{
    remove_at(&queue_head);
}

/* Whether q went out on the current connection: only that can be acknowledged on it. */
static bool sent_here(const struct queued *q)
{
    return !unsent || q->seq < unsent->seq;
}

/* The collector has taken everything up to seq: those messages need not be kept, but
 * for a file's open and data while its close is not among them. */
static void take_ack(int64_t seq)
{
    if (seq > acked_seq) acked_seq = seq;
    struct queued *q;
    while ((q = *unchecked) && q->seq <= seq && sent_here(q)) {
        if (q->closes) { /* its file is done with: the messages kept for it go */
            for (struct queued **p = &queue_head; *p != q;) {
                if ((*p)->file == q->file)
                    remove_at(p);
                else
                    p = &(*p)->next;
            }
        }
        if (q->file && !q->closes)
            unchecked = &q->next;
        else
            remove_at(unchecked);
    }
}

/* What the collector has not acknowledged, whatever is still kept for open files. */
static bool unacknowledged(void)
{
    return queue_head && acked_seq < last_seq;
}

static void drop_connection(void)
{
    raw_close(conn_fd);
    conn_fd = -1;
}

/* One packet from the collector. */
static void take_packet(const char *packet, size_t len)
{
    struct wire_message m;
    if (wire_decode(packet, len, &m) != WIRE_OK) return;
    if (m.kind == WIRE_ACK) take_ack(m.seq);
    wire_message_free(&m);
}

/* Reads the collector's acknowledgements that have arrived, up to ACK_BATCH packets per
 * system call: a collector that keeps up says one per message. One that has gone away
 * left its last ones readable before the end of the connection, which is then closed:
 * the next message reconnects, and sends again what is not acknowledged. */
static void read_acks(void)
{
    char packets[ACK_BATCH][ACK_PACKET_BYTES];
    struct iovec iov[ACK_BATCH];
    struct mmsghdr msgs[ACK_BATCH];
    while (conn_fd >= 0) {
        for (int i = 0; i < ACK_BATCH; i++) {
            iov[i] = (struct iovec){packets[i], sizeof packets[i]};
            msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
        }
        long n = syscall(SYS_recvmmsg, conn_fd, msgs, ACK_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) return drop_connection();
        for (long i = 0; i < n; i++) {
            /* The end of the connection: recvmmsg counts it as an empty packet (and every
             * read after it as another); a collector sends none. */
            if (msgs[i].msg_len == 0) return drop_connection();
            take_packet(packets[i], msgs[i].msg_len);
        }
    }
}

static bool send_packet(const char *data, size_t len)
{
    long n = syscall(SYS_sendto, conn_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, NULL, 0);
    if (n >= 0) return true;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        read_acks(); /* the collector went away: what it took before, it said */
        if (conn_fd >= 0) drop_connection();
    }
    return false;
}

/* A name for this process that no other shares (a pid is reused, and a fork keeps it
 * for a moment), so that a collector knows a message it has seen when it comes again. */
static const char *session_name(void)
{
    if (session[0]) return session;
    unsigned long long r = 0;
    if (syscall(SYS_getrandom, &r, sizeof r, GRND_NONBLOCK) != (long)sizeof r)
        r = (unsigned long long)monotonic_ns() * 0x9e3779b97f4a7c15ull ^
            (unsigned long long)syscall(SYS_getpid);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++)
        session[i] = hex[(r >> (60 - 4 * i)) & 15];
    return session;
}

/* The hello, with the count of messages lost so far. */
static bool encode_hello(struct strbuf *text)
{
    const struct agent_config *c = &agent_config;
    struct wire_message m = {
        .kind = WIRE_HELLO,
        .hello = {.pid = getpid(),
                  .program = c->program,
                  .host = c->host,
                  .job = c->job,
                  .run = c->run[0] ? c->run : NULL,
                  .session = session_name(),
                  .rank = c->has_rank ? c->rank : WIRE_ABSENT,
                  .local_rank = c->has_local_rank ? c->local_rank : WIRE_ABSENT,
                  .world_size = c->has_world_size ? c->world_size : WIRE_ABSENT,
                  .sample = c->parse.sample,
                  /* Messages lost while no collector listened or the queue was full:
                   * said once. */
                  .dropped = (int64_t)dropped,
                  .keys = c->keys.patterns,
                  .key_count = c->keys.count}};
    return wire_encode(&m, text);
}

static void send_hello(void)
{
    struct strbuf text = {.limit = WIRE_MAX_MESSAGE};
    if (encode_hello(&text)) send_packet(text.s, text.len);
    dropped = 0; /* said once */
    free(text.s);
}

/* Says once per process, on stderr, that a collector is there but this user's records
 * will not get in: without it a job of another user than the collector's ran unwatched
 * without a word (a per-machine collector is per user, docs/security.md). Built by
 * hand and written with one raw write: it may run where the program holds locks. */
static void say_not_admitted(const char *why)
{
    static bool said;
    if (said) return;
    said = true;
    char line[sizeof agent_config.socket_path + 256], digits[24];
    size_t n = 0, d = 0;
    for (unsigned long uid = (unsigned long)geteuid(); d == 0 || uid; uid /= 10)
        digits[d++] = (char)('0' + uid % 10);
    const char *parts[] = {"ckmon: the collector on ",
                           agent_config.socket_path,
                           " ",
                           why,
                           ": this program's checkpoints are not recorded (a collector takes "
                           "records from its own user only; start one as uid ",
                           NULL,
                           ", or use ckmon run)\n"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (!parts[i]) { /* the uid, its digits reversed */
            while (d && n < sizeof line)
                line[n++] = digits[--d];
            continue;
        }
        for (const char *p = parts[i]; *p && n < sizeof line; p++)
            line[n++] = *p;
    }
    syscall(SYS_write, STDERR_FILENO, line, n);
}

/* Only a collector run by our own user (or root) gets the program's findings: another
 * user may have bound the socket path first (docs/security.md). And a collector takes
 * records from its own user only, root's included. */
static bool collector_trusted(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
    if (cred.uid == geteuid()) return true;
    say_not_admitted(cred.uid == 0 ? "runs as root" : "runs as another user");
    return false;
}

/* Moves the socket to the highest free number below the soft RLIMIT_NOFILE (at most
 * CHANNEL_FD_CEILING), where the program's open() — which takes the lowest free number —
 * does not reach until it has nearly every descriptor it may have. Notes a small limit. */
static int place_high(int fd)
{
    struct rlimit lim;
    if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &lim) != 0) return fd;
    if (lim.rlim_cur < CHANNEL_SMALL_FD_LIMIT) fds_scarce = true;
    rlim_t top = lim.rlim_cur < CHANNEL_FD_CEILING ? lim.rlim_cur : CHANNEL_FD_CEILING;
    /* F_DUPFD takes the lowest free number at or above its argument: step down from the
     * top until one is free (a few tries; the program rarely sits up there). */
    for (rlim_t tries = 1; tries <= 8 && top > (rlim_t)fd + tries; tries++) {
        int high = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, (int)(top - tries));
        if (high < 0) continue;
        raw_close(fd);
        return high;
    }
    return fd;
}

/* Connects without ever blocking: a Unix socket's connect either completes at once or,
 * with the collector's backlog full (a stopped or overwhelmed collector), fails with
 * EAGAIN. Returns whether that was the failure, which is worth retrying at exit. */
static bool connect_if_needed(bool exiting)
{
    if (conn_fd >= 0 || monotonic_ns() < next_connect_ns || (fds_scarce && !exiting)) return false;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, agent_config.socket_path, sizeof addr.sun_path);
    int saved = errno;
    bool busy = false;
    int fd = (int)syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0) fd = place_high(fd);
    if (fds_scarce && !exiting && fd >= 0) { /* a small limit: every number is the program's */
        raw_close(fd);
        fd = -1;
    }
    struct stat st;
    if (fd >= 0 && syscall(SYS_connect, fd, &addr, sizeof addr) == 0 && collector_trusted(fd) &&
        syscall(SYS_fstat, fd, &st) == 0) {
        conn_fd = fd;
        conn_pid = syscall(SYS_getpid);
        conn_dev = st.st_dev;
        conn_ino = st.st_ino;
        unsent = queue_head; /* a new collector, perhaps: all that it did not acknowledge */
        send_hello();
    } else {
        busy = fd >= 0 && errno == EAGAIN;
        if (fd >= 0 && errno == EACCES) say_not_admitted("is not open to this user");
        if (fd >= 0) raw_close(fd);
        next_connect_ns = monotonic_ns() + RECONNECT_INTERVAL_NS;
    }
    errno = saved;
    return busy;
}

static void send_unsent(void)
{
    while (unsent && conn_fd >= 0 && send_packet(unsent->data, unsent->len))
        unsent = unsent->next;
}

static void free_queue(void)
{
    while (queue_head)
        free_head();
}

/* No collector took the queue within the exit bound: it goes to the agent spool for the
 * next one (core/agent_spool.h), behind a hello of its own, since a collector reads each
 * spool file as a connection. */
static void spool_queue(void)
{
    struct strbuf hello = {.limit = WIRE_MAX_MESSAGE};
    struct spool_file f;
    if (encode_hello(&hello) && spool_begin(&f, agent_config.socket_path)) {
        spool_packet(&f, hello.s, hello.len);
        for (struct queued *q = queue_head; q; q = q->next)
            spool_packet(&f, q->data, q->len);
        if (spool_end(&f)) {
            free_queue();
            dropped = 0;
        }
    }
    free(hello.s);
}

/* Queues a message until it is acknowledged. The bound counts what was sent too: when it
 * is reached, the oldest message already sent makes room (it has most likely arrived;
 * only a collector killed before reading it would miss it), and only when everything
 * queued is unsent is the new message dropped and counted. */
static int64_t file_of(const struct wire_message *m)
{
    switch (m->kind) {
    case WIRE_OPEN:
        return m->open.id;
    case WIRE_DATA:
        return m->data.id;
    case WIRE_CLOSE:
        return m->close.id;
    default:
        return 0;
    }
}

static bool enqueue(const struct wire_message *m, size_t limit)
{
    /* Messages are encoded here first, under channel_lock: one buffer that keeps its
     * size, not three reallocations and a free per tensor. */
    static struct strbuf text = {.limit = WIRE_MAX_MESSAGE};
    struct wire_message numbered = *m;
    numbered.seq = last_seq + 1;
    struct queued *q = NULL;
    sb_truncate(&text, 0);
    if (wire_encode(&numbered, &text)) { /* else over WIRE_MAX_MESSAGE, or no memory */
        while (queue_head && queue_head != unsent && queue_bytes + text.len > limit)
            free_head();
        if (queue_bytes + text.len <= limit) q = malloc(sizeof *q + text.len);
    }
    if (q) {
        *q = (struct queued){.seq = ++last_seq,
                             .file = file_of(m),
                             .closes = m->kind == WIRE_CLOSE,
                             .len = text.len};
        memcpy(q->data, text.s, text.len);
        *queue_tail = q;
        queue_tail = &q->next;
        queue_bytes += text.len;
        if (!unsent) unsent = q;
    } else {
        dropped++;
    }
    return q != NULL;
}

bool channel_send(const struct wire_message *m)
{
    int saved = errno;
    pthread_mutex_lock(&channel_lock);
    connection_intact();
    connect_if_needed(false);
    bool findings = m->kind == WIRE_DATA && !m->data.reset && (m->data.values || m->data.tensors);
    size_t bound = agent_config.queue_bytes ? agent_config.queue_bytes : CHANNEL_QUEUE_BYTES;
    /* Acknowledgements only let the queue forget: a system call per tensor to look for
     * them was a tenth of the agent's cost for small tensors. They wait in the socket
     * (the collector sends again what did not fit) until a batch of findings went out
     * or the queue fills. */
    if (!findings || ++findings_since_acks >= ACK_READ_INTERVAL || queue_bytes > bound / 2) {
        read_acks();
        findings_since_acks = 0;
    }
    bool kept = enqueue(m, bound + (findings ? 0 : CHANNEL_RESERVE_BYTES));
    send_unsent();
    pthread_mutex_unlock(&channel_lock);
    errno = saved;
    return kept;
}

bool channel_congested(void)
{
    return __atomic_load_n(&unsent, __ATOMIC_RELAXED) != NULL;
}

static bool owned_in(unsigned first, unsigned last)
{
    int fd = __atomic_load_n(&conn_fd, __ATOMIC_RELAXED);
    return fd >= 0 && (unsigned)fd >= first && (unsigned)fd <= last;
}

void channel_yield_fds(unsigned first, unsigned last)
{
    if (!owned_in(first, last) || syscall(SYS_getpid) != conn_pid) return;
    if (in_signal_handler()) { /* no lock here; connection_intact checks it again */
        __atomic_store_n(&conn_fd, -1, __ATOMIC_RELAXED);
        return;
    }
    pthread_mutex_lock(&channel_lock);
    if (owned_in(first, last)) conn_fd = -1;
    pthread_mutex_unlock(&channel_lock);
}

bool channel_release_fd(void)
{
    if (in_signal_handler()) return false;
    int saved = errno;
    pthread_mutex_lock(&channel_lock);
    fds_scarce = true;
    bool released = conn_fd >= 0 && syscall(SYS_getpid) == conn_pid && connection_intact();
    if (released) {
        raw_close(conn_fd);
        conn_fd = -1;
    }
    pthread_mutex_unlock(&channel_lock);
    errno = saved;
    return released;
}

void channel_flush(void)
{
    long long start = monotonic_ns(), deadline = start + CHANNEL_EXIT_WAIT_MS * 1000000LL;
    long long last_ns = start + CHANNEL_EXIT_MAX_MS * 1000000LL;
    size_t left = queue_bytes;
    int saved = errno;
    pthread_mutex_lock(&channel_lock);
    /* Nothing queued: nothing to say, so no connection (a process that wrote no
     * checkpoint never touches the socket). Otherwise wait for the collector to
     * acknowledge it all. */
    for (bool first = true; unacknowledged(); first = false) {
        if (first || conn_fd < 0) next_connect_ns = 0; /* whatever the backoff says */
        connection_intact();
        bool busy = connect_if_needed(true);
        read_acks();
        send_unsent();
        if (queue_bytes < left) { /* the collector is taking: it gets more time */
            left = queue_bytes;
            deadline = monotonic_ns() + CHANNEL_EXIT_WAIT_MS * 1000000LL;
            if (deadline > last_ns) deadline = last_ns;
        }
        long long left_ms = (deadline - monotonic_ns()) / 1000000LL;
        /* No collector: nothing to wait for, and the program must not linger. A full
         * backlog is a collector that may still take us: retried until the bound. */
        if (!unacknowledged() || (conn_fd < 0 && !busy) || left_ms <= 0) break;
        struct pollfd p = {.fd = conn_fd, .events = POLLIN | (unsent ? POLLOUT : 0)};
        syscall(SYS_poll, &p, conn_fd >= 0 ? 1 : 0, (int)(left_ms < 10 ? left_ms : 10));
    }
    if (unacknowledged())
        spool_queue();
    else /* files the program keeps across an exec: its next agent reports them */
        free_queue();
    pthread_mutex_unlock(&channel_lock);
    errno = saved;
}

void channel_after_fork_child(void)
{
    pthread_mutex_init(&channel_lock, NULL);
    if (conn_fd >= 0) raw_close(conn_fd);
    conn_fd = -1;
    next_connect_ns = 0;
    free_queue();
    last_seq = acked_seq = 0;
    session[0] = '\0'; /* the child's messages are its own */
}
