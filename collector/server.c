/* server.c — accepting agents, reading their packets, and stopping without losing any.
 *
 * A message is one packet, received whole into a buffer one byte larger than the
 * largest message: MSG_TRUNC reports the real size, so an oversized packet is
 * recognised and dropped instead of being parsed in pieces.
 *
 * Trust: only processes of the collector's own user may send records (docs/security.md).
 * The socket is 0600 from its creation, in a directory others cannot replace it in,
 * and every connection's peer uid (SO_PEERCRED) is checked before it is read from.
 */
#include "server.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/wire.h"
#include "lineage.h"
#include "scrape.h"
#include "recovery.h"
#include "tracker.h"

/* Packets read from one connection before the others get a turn. */
#define PACKETS_PER_TURN 64
/* Packets one recvmmsg takes: a system call per packet was a sixth of the collector's time
 * for a torch.save's one message per tensor. */
#define PACKETS_PER_CALL 16
/* A connection that just sent packets is in a burst (a save's tensors, one message each):
 * it is read again after this rest instead of waking the loop for every packet. The
 * socket holds what arrives meanwhile, so a writer killed mid-burst loses nothing; the
 * agent's send finds no one to wake, and a turn reads dozens of packets instead of one. */
#define BURST_REST_US 1000
/* After accept fails for want of descriptors or memory, the listener rests this long:
 * pending connections wait in the backlog instead of spinning the loop. */
#define ACCEPT_PAUSE_US 100000
/* Refused connections named on stderr; later ones are only counted. */
#define REFUSALS_LOGGED 10
/* Descriptors polled besides the agents': the listener, the stop descriptor and the
 * digests' wake-up (--digest). */
#define EXTRA_POLLS 3

struct connection {
    int fd; /* -1 once closed, until the array is compacted */
    struct tracker_conn *state;
    int64_t acked; /* the last seq acknowledged to the agent */
    bool in_burst; /* it sent packets last turn: read after a rest, not polled */
};

struct server {
    const struct server_config *cfg;
    struct tracker *tracker;
    struct lineage *lineage; /* load records (lineage.h) */
    struct connection *conns;
    size_t conn_count, conn_capacity;
    struct pollfd *polls;
    int64_t accept_resume_us; /* accepting again from then on */
    bool accept_failed;       /* said so on stderr once */
    unsigned long oversized;
    unsigned long refused; /* connections from other users */
    char packets[PACKETS_PER_CALL][WIRE_MAX_MESSAGE + 1];
};

static volatile sig_atomic_t stop_requested, reopen_requested;

static void request_stop(int sig)
{
    if (sig == SIGHUP)
        reopen_requested = 1;
    else
        stop_requested = 1;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A socket connecting to path: its descriptor, and in *rc connect's result (0, or
 * -errno); -1 when no socket could be made (*rc says why). */
static int socket_to(const char *path, int flags, int *rc)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | flags, 0);
    if (fd < 0)
        *rc = -errno;
    else
        *rc = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0 ? 0 : -errno;
    return fd;
}

static int connect_to(const char *path)
{
    int rc, fd = socket_to(path, SOCK_NONBLOCK, &rc);
    if (fd >= 0) close(fd);
    /* EAGAIN: a full backlog, so someone is listening. */
    return rc == 0 || rc == -EAGAIN ? 0 : rc;
}

int collector_connect(const char *path)
{
    int rc, fd = socket_to(path, 0, &rc);
    if (fd >= 0 && rc < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool collector_answers(const char *path)
{
    return connect_to(path) == 0;
}

/* Clears the way for bind: removes a socket file nobody answers on. */
static int clear_stale(const char *path, char *err, size_t err_size)
{
    int rc = connect_to(path);
    struct stat st;
    if (rc == 0) {
        snprintf(err, err_size, "a collector is already listening on %s", path);
        return -1;
    }
    if (lstat(path, &st) < 0) return 0; /* nothing there */
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, err_size, "%s exists and is not a socket", path);
        return -1;
    }
    if (rc != -ECONNREFUSED) {
        snprintf(err, err_size, "cannot use socket %s: %s", path, strerror(-rc));
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, err_size, "cannot remove stale socket %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Another user who can write to the socket's directory could replace the socket with
 * their own and receive the agents' records, unless the directory is sticky (/tmp). */
static int check_directory(const char *path, char *err, size_t err_size)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    const char *slash = strrchr(path, '/');
    struct stat st;
    snprintf(dir, sizeof dir, "%.*s", slash ? (slash == path ? 1 : (int)(slash - path)) : 1,
             slash ? path : ".");
    if (stat(dir, &st) < 0) return 0; /* bind will say what is wrong with the path */
    bool others_write = st.st_mode & (S_IWGRP | S_IWOTH);
    if ((st.st_uid != geteuid() && st.st_uid != 0) || (others_write && !(st.st_mode & S_ISVTX))) {
        snprintf(err, err_size,
                 "socket directory %s is writable by other users: they could replace the socket",
                 dir);
        return -1;
    }
    return 0;
}

int listener_open(struct listener *l, const char *path, char *err, size_t err_size)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    *l = (struct listener){.fd = -1};
    if (strlen(path) >= sizeof addr.sun_path) {
        snprintf(err, err_size, "socket path %s is too long", path);
        return -1;
    }
    if (check_directory(path, err, err_size) < 0 || clear_stale(path, err, err_size) < 0) return -1;
    memcpy(addr.sun_path, path, strlen(path) + 1);
    memcpy(l->path, path, strlen(path) + 1);
    l->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (l->fd < 0) {
        snprintf(err, err_size, "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    /* The umask makes the file 0600 from the start: no window where others may connect. */
    mode_t old_mask = umask(0177);
    int rc = bind(l->fd, (struct sockaddr *)&addr, sizeof addr);
    int saved = errno;
    umask(old_mask);
    struct stat st;
    if (rc < 0 || lstat(path, &st) < 0 || listen(l->fd, SOMAXCONN) < 0) {
        snprintf(err, err_size, "cannot listen on %s: %s", path, strerror(rc < 0 ? saved : errno));
        listener_close(l, rc == 0);
        return -1;
    }
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    return 0;
}

void listener_close(struct listener *l, bool remove)
{
    struct stat st;
    if (l->fd < 0) return;
    close(l->fd);
    l->fd = -1;
    if (remove && lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
        unlink(l->path);
}

/* ---- connections ---- */

static void emit_to_log(void *ctx, const struct record *r)
{
    const struct server_config *cfg = ctx;
    if (cfg->alerting)
        alerting_record(cfg->alerting, cfg->log, r);
    else
        log_record(cfg->log, r);
}

static void emit_set_to_log(void *ctx, const cJSON *set, long pid)
{
    const struct server_config *cfg = ctx;
    size_t len;
    char *line = cfg->alerting ? NULL : json_line(set, &len);
    if (cfg->alerting)
        alerting_set(cfg->alerting, cfg->log, set, pid);
    else if (line)
        log_write(cfg->log, line, len);
    free(line);
}

static void emit_verified_to_log(void *ctx, const cJSON *record)
{
    const struct server_config *cfg = ctx;
    size_t len;
    char *line = json_line(record, &len);
    if (line) log_write(cfg->log, line, len);
    free(line);
}

/* A checkpoint opened for reading: its load record, which says who wrote it. */
static void emit_load_to_log(void *ctx, const struct identity *who, const struct wire_load *load,
                             int64_t now_us)
{
    struct server *s = ctx;
    cJSON *record = lineage_load_record(s->lineage, who, load, now_us);
    size_t len;
    char *line = json_line(record, &len);
    if (line && log_write(s->cfg->log, line, len) && s->cfg->alerting)
        alerting_load(s->cfg->alerting, record);
    free(line);
    cJSON_Delete(record);
}

/* The peer's credentials, or false (with a line on stderr) when it is not our own user:
 * its records would land in our log under our name. */
static bool peer_trusted(struct server *s, int fd, struct ucred *cred)
{
    socklen_t len = sizeof *cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) == 0 && cred->uid == geteuid())
        return true;
    if (s->refused++ < REFUSALS_LOGGED)
        fprintf(
            stderr,
            "ckmon: refused a connection from uid %ld (pid %ld): only uid %u may send records\n",
            len == sizeof *cred ? (long)cred->uid : -1L, len == sizeof *cred ? (long)cred->pid : 0L,
            (unsigned)geteuid());
    return false;
}

static bool add_connection(struct server *s, int fd)
{
    if (s->conn_count == s->conn_capacity) {
        size_t capacity = s->conn_capacity ? s->conn_capacity * 2 : 16;
        struct connection *conns = realloc(s->conns, capacity * sizeof *conns);
        if (!conns) return false;
        s->conns = conns;
        struct pollfd *polls = realloc(s->polls, (capacity + EXTRA_POLLS) * sizeof *polls);
        if (!polls) return false;
        s->polls = polls;
        s->conn_capacity = capacity;
    }
    struct ucred cred = {0};
    if (!peer_trusted(s, fd, &cred)) {
        close(fd);
        return true;
    }
    struct tracker_conn *state = tracker_connect(s->tracker, (long)cred.pid);
    if (!state) return false;
    s->conns[s->conn_count++] = (struct connection){.fd = fd, .state = state};
    return true;
}

static void accept_all(struct server *s)
{
    for (;;) {
        int fd = accept4(s->cfg->listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (!s->accept_failed)
                fprintf(stderr, "ckmon: accept on %s: %s\n", s->cfg->listener->path,
                        strerror(errno));
            s->accept_failed = true;
            s->accept_resume_us = now_us() + ACCEPT_PAUSE_US;
            return;
        }
        if (!add_connection(s, fd)) {
            fprintf(stderr, "ckmon: out of memory: refusing an agent connection\n");
            close(fd);
        }
    }
}

static void drop_connection(struct server *s, struct connection *c)
{
    recovery_continue(s->cfg->recovery, c->state, now_us());
    tracker_disconnect(s->tracker, c->state, now_us());
    close(c->fd);
    c->fd = -1;
}

/* Reads up to limit packets (0: until none is left). Returns false at EOF or error.
 * ECONNRESET is not the end: an agent that died with packets of ours unread (it reads
 * acknowledgements only now and then) makes the kernel report that once, before the
 * packets the agent sent, which are still to be read: its last findings. */
static bool read_packets(struct server *s, struct connection *c, unsigned limit)
{
    struct iovec iov[PACKETS_PER_CALL];
    struct mmsghdr msgs[PACKETS_PER_CALL];
    c->in_burst = false; /* one that had more than the limit stays polled: it is ready */
    for (unsigned n = 0; limit == 0 || n < limit;) {
        unsigned want = limit && limit - n < PACKETS_PER_CALL ? limit - n : PACKETS_PER_CALL;
        for (unsigned i = 0; i < want; i++) {
            iov[i] = (struct iovec){s->packets[i], sizeof s->packets[i]};
            msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
        }
        int got = recvmmsg(c->fd, msgs, want, MSG_TRUNC | MSG_DONTWAIT, NULL);
        if (got < 0 && (errno == EINTR || errno == ECONNRESET)) {
            n++;
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->in_burst = n > 0;
            return true;
        }
        if (got <= 0) return false;
        for (int i = 0; i < got; i++) {
            size_t len = msgs[i].msg_len; /* the packet's own (MSG_TRUNC) */
            if (len == 0) return false;   /* the end: recvmmsg counts it as an empty packet */
            if (len > WIRE_MAX_MESSAGE)
                s->oversized++;
            else
                tracker_message(s->tracker, c->state, s->packets[i], len, now_us());
        }
        n += (unsigned)got;
        /* Fewer than asked: the socket was empty (the rest of a burst comes later), or an
         * error stopped the call, which the next one reports. A drain reads on to EAGAIN. */
        if ((unsigned)got < want && limit) {
            c->in_burst = true;
            return true;
        }
    }
    return true;
}

/* Tells each agent what has been taken from it (core/wire.h, "Delivery"): its records
 * are in the log or the journal by now, unless the log is holding lines for want of
 * space, which a kill would lose. Once every agent knows, the journal may forget where
 * its records came from. */
static void acknowledge(struct server *s)
{
    if (log_holding(s->cfg->log)) return;
    bool all = true;
    for (size_t i = 0; i < s->conn_count; i++) {
        struct connection *c = &s->conns[i];
        int64_t taken = c->fd >= 0 ? tracker_taken(c->state) : 0;
        if (taken <= c->acked) continue;
        struct strbuf text = {.limit = 64};
        struct wire_message ack = {.kind = WIRE_ACK, .seq = taken};
        if (wire_encode(&ack, &text) &&
            send(c->fd, text.s, text.len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)text.len)
            c->acked = taken;
        else
            all = false; /* its buffer is full: again next turn */
        free(text.s);
    }
    if (all) recovery_settle(s->cfg->recovery, now_us());
}

static void compact_connections(struct server *s)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->conn_count; i++)
        if (s->conns[i].fd >= 0) s->conns[kept++] = s->conns[i];
    s->conn_count = kept;
}

/* ---- the loop ---- */

/* The poll's timeout: until a pending record is due, the listener rests no more, the
 * log's held lines are tried again, or a connection in a burst is read again. */
static struct timespec *until_next_due(const struct server *s, bool accepting, bool bursts,
                                       struct timespec *ts)
{
    int64_t due = tracker_next_due(s->tracker);
    if (bursts && (due < 0 || now_us() + BURST_REST_US < due)) due = now_us() + BURST_REST_US;
    if (!accepting && (due < 0 || s->accept_resume_us < due)) due = s->accept_resume_us;
    int64_t retry = now_us() + LOG_RETRY_US; /* a full disk: try the held lines again */
    if (log_holding(s->cfg->log) && (due < 0 || retry < due)) due = retry;
    int64_t spool = recovery_next_due(s->cfg->recovery); /* agents' spooled queues */
    if (spool >= 0 && (due < 0 || spool < due)) due = spool;
    if (due < 0) return NULL;
    int64_t wait = due - now_us();
    if (wait < 0) wait = 0;
    *ts = (struct timespec){.tv_sec = wait / 1000000, .tv_nsec = (wait % 1000000) * 1000};
    return ts;
}

/* One poll and whatever it found; returns false when asked to stop. */
static bool serve_once(struct server *s, const sigset_t *wait_mask)
{
    struct pollfd *p = s->polls, none = {.fd = -1};
    struct pollfd *listener = &none, *stop = &none;
    bool accepting = now_us() >= s->accept_resume_us;
    size_t n = 0;
    if (accepting) {
        listener = &p[n];
        p[n++] = (struct pollfd){.fd = s->cfg->listener->fd, .events = POLLIN};
    }
    if (s->cfg->stop_fd >= 0) {
        stop = &p[n];
        p[n++] = (struct pollfd){.fd = s->cfg->stop_fd, .events = POLLIN};
    }
    if (tracker_wake_fd(s->tracker) >= 0) /* a digest done: its record is written */
        p[n++] = (struct pollfd){.fd = tracker_wake_fd(s->tracker), .events = POLLIN};
    size_t first_conn = n;
    bool bursts = false;
    for (size_t i = 0; i < s->conn_count; i++) { /* one in a burst rests: not polled */
        bursts |= s->conns[i].in_burst;
        p[n++] =
            (struct pollfd){.fd = s->conns[i].in_burst ? -1 : s->conns[i].fd, .events = POLLIN};
    }
    struct timespec ts;
    int ready = ppoll(p, n, until_next_due(s, accepting, bursts, &ts), wait_mask);
    if (ready < 0 && errno != EINTR) {
        fprintf(stderr, "ckmon: poll: %s\n", strerror(errno));
        return false;
    }
    if (stop_requested || stop->revents) return false;
    if (reopen_requested) { /* SIGHUP: logrotate moved the log away */
        reopen_requested = 0;
        log_reopen(s->cfg->log);
    }
    if (ready > 0 || bursts) {
        for (size_t i = 0; i < s->conn_count; i++) {
            struct connection *c = &s->conns[i];
            if ((c->in_burst || p[first_conn + i].revents) && !read_packets(s, c, PACKETS_PER_TURN))
                drop_connection(s, c);
        }
        compact_connections(s);
        if (listener->revents) accept_all(s);
    }
    if (log_holding(s->cfg->log)) log_retry(s->cfg->log);
    tracker_parse_adopted(s->tracker, now_us());
    recovery_poll(s->cfg->recovery, now_us());
    tracker_expire(s->tracker, now_us());
    acknowledge(s);
    return true;
}

/* Everything agents sent before the stop, including connections not yet accepted. */
static void drain(struct server *s)
{
    /* Agents must not send into a connection that is about to close: their packets
     * would be lost. With the path gone no one new connects, and once reading is shut
     * down an agent's send fails (EPIPE), so it keeps the message for the next
     * collector; what was sent before is still read. */
    struct listener *l = s->cfg->listener;
    struct stat st;
    if (lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino) unlink(l->path);
    accept_all(s);
    for (size_t i = 0; i < s->conn_count; i++)
        shutdown(s->conns[i].fd, SHUT_RD);
    for (size_t i = 0; i < s->conn_count; i++)
        if (!read_packets(s, &s->conns[i], 0)) drop_connection(s, &s->conns[i]);
    /* At once: an agent whose send fails from now on reconnects to the next collector
     * and sends again what it has not seen acknowledged. */
    acknowledge(s);
    compact_connections(s);
    tracker_shutdown(s->tracker, now_us());
}

static void report_dropped(const struct server *s)
{
    const struct tracker_counts *counts = tracker_counts(s->tracker);
    if (counts->malformed || counts->unknown_kind || s->oversized)
        fprintf(stderr,
                "ckmon: ignored %lu malformed, %lu oversized and %lu unknown agent messages\n",
                counts->malformed, s->oversized, counts->unknown_kind);
    if (s->refused)
        fprintf(stderr, "ckmon: refused %lu connection(s) from other users\n", s->refused);
}

/* With no stop descriptor the stop signals (and SIGHUP, which reopens the log) are
 * blocked except inside ppoll, so a signal cannot slip in between the flag check and
 * the wait. */
static void catch_stop_signals(sigset_t *saved, sigset_t *wait_mask)
{
    static const int signals[] = {SIGTERM, SIGINT, SIGHUP};
    struct sigaction sa = {.sa_handler = request_stop};
    sigset_t block;
    sigemptyset(&block);
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        sigaction(signals[i], &sa, NULL);
        sigaddset(&block, signals[i]);
    }
    sigprocmask(SIG_BLOCK, &block, saved);
    *wait_mask = *saved;
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        sigdelset(wait_mask, signals[i]);
}

/* Many agents at once may exceed the default soft limit of 1024 descriptors. */
static void raise_descriptor_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int server_run(const struct server_config *cfg)
{
    struct server *s = calloc(1, sizeof *s);
    if (!s || !(s->tracker = tracker_new(emit_to_log, (void *)cfg)) ||
        !tracker_set_sets(s->tracker, emit_set_to_log, (void *)cfg) ||
        !(s->lineage = lineage_new(cfg->log->name)) ||
        !(s->polls = malloc(EXTRA_POLLS * sizeof *s->polls)) ||
        !tracker_read_closed_files(s->tracker, cfg->digest)) {
        fprintf(stderr, "ckmon: out of memory\n");
        if (s) tracker_free(s->tracker);
        if (s) lineage_free(s->lineage);
        if (s) free(s->polls);
        free(s);
        listener_close(cfg->listener, true);
        return 1;
    }
    s->cfg = cfg;
    tracker_set_run(s->tracker, cfg->run_id);
    tracker_set_verified(s->tracker, emit_verified_to_log, (void *)cfg);
    if (cfg->alerting) tracker_set_unmatched(s->tracker, alerting_unmatched_fn, cfg->alerting);
    tracker_set_loads(s->tracker, emit_load_to_log, s);
    recovery_attach(cfg->recovery, s->tracker, cfg->listener->path, now_us());
    sigset_t saved, wait_mask;
    bool by_signal = cfg->stop_fd < 0;
    if (by_signal) catch_stop_signals(&saved, &wait_mask);
    signal(SIGPIPE, SIG_IGN); /* a log on a closed pipe is a write error, not death */
    raise_descriptor_limit();
    stop_requested = 0;

    do {
        if (cfg->scrape) scrape_note_agents(cfg->scrape, tracker_counts(s->tracker));
    } while (serve_once(s, by_signal ? &wait_mask : NULL));
    drain(s);
    report_dropped(s);
    acknowledge(s); /* everything is written: agents that stay need not send it again */

    for (size_t i = 0; i < s->conn_count; i++)
        close(s->conns[i].fd);
    listener_close(cfg->listener, true);
    recovery_detach(cfg->recovery, s->tracker);
    tracker_free(s->tracker);
    lineage_free(s->lineage);
    free(s->conns);
    free(s->polls);
    free(s);
    if (by_signal) sigprocmask(SIG_SETMASK, &saved, NULL);
    return cfg->log->failed ? 1 : 0;
}
