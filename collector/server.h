/* server.h — the collector's socket and its poll loop.
 *
 * Agents connect to a Unix SOCK_SEQPACKET socket (core/wire.h); one thread serves
 * them all with poll() and non-blocking I/O, so a slow or dead agent never holds up
 * the others. The default socket is /tmp/ckmon-<uid>.sock (options.h).
 */
#ifndef CKMON_SERVER_H
#define CKMON_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/un.h>

#include "alerting.h"
#include "log.h"

struct listener {
    int fd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t dev; /* the socket file we bound, so that we remove only our own */
    ino_t ino;
};

/* Whether a collector answers on path (a connection succeeds). */
bool collector_answers(const char *path);
/* A connection to the collector on path, blocking, for a command that hands it records
 * (`verify`); -1 when none answers. */
int collector_connect(const char *path);

/* Binds and listens on path (mode 0600), replacing a stale socket file that nobody
 * answers on. Returns 0, or -1 with a one-line message in err: a collector already
 * listens there, the path is something else, or bind failed. */
int listener_open(struct listener *l, const char *path, char *err, size_t err_size);
/* Closes the socket; with remove, also removes the socket file if it is still ours. */
void listener_close(struct listener *l, bool remove);

struct server_config {
    struct listener *listener; /* closed and removed when server_run returns */
    struct log_writer *log;
    struct alerting *alerting; /* judges each record before it is written; NULL: none */
    /* -1: stop on SIGTERM or SIGINT (SIGHUP reopens the log). Otherwise stop when this descriptor
     * becomes readable or reaches EOF (`ckmon run` closes its end of a pipe). */
    int stop_fd;
    const char *run_id;        /* the run of agents that name none (--run-id), or NULL */
    struct scrape *scrape;     /* told the agents' counters (--listen), or NULL */
    struct recovery *recovery; /* the rename hold's journal, the agent spool; or NULL */
    bool digest;               /* --digest: libxxhash loaded (digest_load) */
};

/* Serves agents until asked to stop, then drains every connection, finishes what is
 * still open as incomplete and writes every record. Returns 0, or 1 when records
 * could not be written. */
int server_run(const struct server_config *cfg);

#endif
