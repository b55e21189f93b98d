/* scrape.h — `--listen ADDR:PORT`: /metrics and /healthz for Prometheus to scrape.
 *
 * /metrics is the Prometheus text format of the newest sample of every series the
 * records made (latest.h) and the collector's own counters: records written, each
 * sink's delivered, retried, dead-lettered and pending records, messages agents lost.
 * /healthz answers 200 while the collector serves.
 *
 * The HTTP server is Debian's libmicrohttpd, loaded with dlopen only when --listen is
 * given (as libcurl is for sinks, http.c): a collector without it never maps it. The
 * socket is bound by scrape_open, so a busy port stops `ckmon run` before COMMAND
 * starts; the server thread starts in the process that serves agents (after run's
 * fork) with scrape_start.
 */
#ifndef CKMON_SCRAPE_H
#define CKMON_SCRAPE_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "tracker.h"

struct scrape;
struct delivery;

/* Loads libmicrohttpd and binds listen: ADDR:PORT, [ADDR6]:PORT, or PORT (then
 * 127.0.0.1); an empty ADDR is loopback too. NULL with a one-line message in err. */
struct scrape *scrape_open(const char *listen, char *err, size_t err_size);
/* Starts serving: every line the log writes is kept from now on, and d's counters (d
 * may be NULL) are read at each scrape. False, with a message on stderr, when the
 * server could not start. */
bool scrape_start(struct scrape *s, struct log_writer *log, struct delivery *d);
/* The agents' counters, from the server thread. */
void scrape_note_agents(struct scrape *s, const struct tracker_counts *counts);
/* Stops the server (if started) and frees s; NULL is fine. Call before d is freed. */
void scrape_close(struct scrape *s);

#endif
