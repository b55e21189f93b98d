/* scrape.c — /metrics and /healthz over libmicrohttpd (see scrape.h).
 *
 * libmicrohttpd is loaded with dlopen, and its functions called through a table typed
 * from microhttpd.h, as http.c does for libcurl. It runs one thread of its own
 * (MHD_USE_AUTO_INTERNAL_THREAD) on the socket bound here; that thread takes no
 * signals, which belong to the server loop. A scrape renders everything under
 * latest.c's lock, so it sees each record whole.
 */
#include "scrape.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "delivery.h"
#include "latest.h"
#include "metrics.h"
#include "state.h"

/* The soname of libmicrohttpd's ABI 12 (Debian's libmicrohttpd12). */
#define LIBMICROHTTPD "libmicrohttpd.so.12"

static struct {
    __typeof__(MHD_start_daemon) *start_daemon;
    __typeof__(MHD_stop_daemon) *stop_daemon;
    __typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
    __typeof__(MHD_add_response_header) *add_response_header;
    __typeof__(MHD_queue_response) *queue_response;
    __typeof__(MHD_destroy_response) *destroy_response;
} mhd;

struct scrape {
    int fd; /* the listening socket, -1 once the server owns it */
    char address[128];
    struct MHD_Daemon *daemon;
    struct latest *latest;
    struct delivery *delivery;
    struct log_writer *log;
};

#define RESOLVE(handle, field, symbol) (*(void **)&mhd.field = dlsym(handle, #symbol)) != NULL

static bool load(char *err, size_t err_size)
{
    if (mhd.start_daemon) return true;
    void *lib = dlopen(LIBMICROHTTPD, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, err_size, "--listen: cannot load %s (%s): install libmicrohttpd12",
                 LIBMICROHTTPD, dlerror());
        return false;
    }
    /* start_daemon last: it says the whole table is there. */
    bool found = RESOLVE(lib, stop_daemon, MHD_stop_daemon) &&
                 RESOLVE(lib, create_response_from_buffer, MHD_create_response_from_buffer) &&
                 RESOLVE(lib, add_response_header, MHD_add_response_header) &&
                 RESOLVE(lib, queue_response, MHD_queue_response) &&
                 RESOLVE(lib, destroy_response, MHD_destroy_response) &&
                 RESOLVE(lib, start_daemon, MHD_start_daemon);
    if (!found) {
        snprintf(err, err_size, "--listen: %s lacks a function ckmon uses (%s)", LIBMICROHTTPD,
                 dlerror());
        mhd.start_daemon = NULL;
        dlclose(lib);
    }
    return found;
}

/* A listening socket on listen (see scrape.h), or -1 with the reason in err. */
static int bind_listen(const char *listen_on, char *shown, size_t shown_size, char *err,
                       size_t err_size)
{
    const char *colon = strrchr(listen_on, ':');
    char host[128] = "127.0.0.1";
    const char *port = colon ? colon + 1 : listen_on;
    size_t host_len = colon ? (size_t)(colon - listen_on) : 0;
    if (host_len >= 2 && listen_on[0] == '[' && listen_on[host_len - 1] == ']')
        snprintf(host, sizeof host, "%.*s", (int)host_len - 2, listen_on + 1);
    else if (host_len > 0)
        snprintf(host, sizeof host, "%.*s", (int)host_len, listen_on);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *found = NULL;
    int rc = getaddrinfo(host, port, &hints, &found);
    if (rc != 0) {
        snprintf(err, err_size, "--listen %s: %s", listen_on, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *a = found; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        int on = 1;
        if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
                        bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 64) < 0)) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(found);
    if (fd < 0)
        snprintf(err, err_size, "--listen %s: cannot listen there: %s", listen_on,
                 strerror(saved ? saved : EADDRNOTAVAIL));
    else
        snprintf(shown, shown_size, "%s%s%s:%s", strchr(host, ':') ? "[" : "", host,
                 strchr(host, ':') ? "]" : "", port);
    return fd;
}

struct scrape *scrape_open(const char *listen_on, char *err, size_t err_size)
{
    if (!load(err, err_size)) return NULL;
    struct scrape *s = calloc(1, sizeof *s);
    if (!s || !(s->latest = latest_new())) {
        snprintf(err, err_size, "out of memory");
        free(s);
        return NULL;
    }
    s->fd = bind_listen(listen_on, s->address, sizeof s->address, err, err_size);
    if (s->fd < 0) {
        latest_free(s->latest);
        free(s);
        return NULL;
    }
    return s;
}

static void set_counter(struct latest *l, const char *name, const char *sink, double value)
{
    struct sample sample = {.metric = name, .labels = {{"sink", sink}}, .label_count = 1};
    struct strbuf series = {.limit = 8192};
    prom_add_series(&series, &sample);
    if (series.s && !series.overflow) latest_set(l, series.s, value);
    free(series.s);
}

/* The sinks' counters, read now. */
static void note_sinks(struct scrape *s)
{
    struct collector_stats stats;
    if (!s->delivery || !delivery_stats(s->delivery, &stats)) return;
    latest_set(s->latest, "ckmon_log_write_failures_total", (double)stats.write_failures);
    for (size_t i = 0; i < stats.sink_count; i++) {
        const struct sink_stats *k = &stats.sinks[i];
        unsigned long done = k->counts.sent + k->counts.dead_lettered + k->counts.dropped;
        set_counter(s->latest, "ckmon_sink_delivered_total", k->sink, (double)k->counts.sent);
        set_counter(s->latest, "ckmon_sink_retried_total", k->sink, (double)k->counts.retried);
        set_counter(s->latest, "ckmon_sink_dead_lettered_total", k->sink,
                    (double)k->counts.dead_lettered);
        /* Lines this collector wrote less those dealt with; a backlog of an earlier
         * collector's lines can make done larger, hence the floor. */
        set_counter(s->latest, "ckmon_sink_pending_records", k->sink,
                    stats.written > done ? (double)(stats.written - done) : 0);
    }
    free((void *)stats.sinks);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
                             const char *type)
{
    struct MHD_Response *r = mhd.create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    mhd.add_response_header(r, "Content-Type", type);
    enum MHD_Result rc = mhd.queue_response(conn, status, r);
    mhd.destroy_response(r);
    return rc;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version, (void)upload, (void)upload_size, (void)con_cls;
    struct scrape *s = cls;
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(conn, 405, strdup("GET only\n"), 9, "text/plain");
    if (!strcmp(url, "/healthz")) return reply(conn, 200, strdup("ok\n"), 3, "text/plain");
    if (strcmp(url, "/metrics"))
        return reply(conn, 404, strdup("/metrics or /healthz\n"), 21, "text/plain");
    note_sinks(s);
    struct strbuf body = {.limit = 1u << 30};
    if (!latest_render(s->latest, &body)) {
        free(body.s);
        return reply(conn, 500, strdup("out of memory\n"), 14, "text/plain");
    }
    return reply(conn, 200, body.s ? body.s : strdup(""), body.len,
                 "text/plain; version=0.0.4; charset=utf-8");
}

static void keep_line(void *ctx, const char *line, size_t len)
{
    latest_add_line(ctx, line, len);
}

bool scrape_start(struct scrape *s, struct log_writer *log, struct delivery *d)
{
    s->delivery = d;
    s->log = log;
    log->observe = keep_line;
    log->observe_ctx = s->latest;
    sigset_t all, before;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &before); /* the server's thread inherits this */
    s->daemon = mhd.start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, answer, s,
                                 MHD_OPTION_LISTEN_SOCKET, s->fd, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    if (!s->daemon) {
        fprintf(stderr, "ckmon: --listen: cannot start the HTTP server on %s\n", s->address);
        return false;
    }
    s->fd = -1; /* the daemon closes it */
    fprintf(stderr, "ckmon: serving http://%s/metrics\n", s->address);
    return true;
}

void scrape_note_agents(struct scrape *s, const struct tracker_counts *counts)
{
    latest_set(s->latest, "ckmon_agent_messages_dropped_total", (double)counts->dropped);
    latest_set(s->latest, "ckmon_agent_messages_malformed_total",
               (double)(counts->malformed + counts->unknown_kind));
}

void scrape_close(struct scrape *s)
{
    if (!s) return;
    if (s->daemon) mhd.stop_daemon(s->daemon);
    if (s->log) s->log->observe = NULL;
    if (s->fd >= 0) close(s->fd);
    latest_free(s->latest);
    free(s);
}
