/* collect.c — `ckmon collect`: a foreground collector for any number of programs; and
 * a collector's life once set up, which `run`'s private collector lives too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "delivery.h"
#include "digest.h"
#include "hdf5.h"
#include "metrics.h"
#include "notify.h"
#include "scrape.h"
#include "recovery.h"
#include "server.h"
#include "state.h"

/* --stats: what the last collector with this state dir counted (its stats.json). */
static int print_stats(const struct options *o)
{
    char *dir = state_dir_path(o), *path = NULL;
    FILE *f = dir && asprintf(&path, "%s/stats.json", dir) >= 0 ? fopen(path, "re") : NULL;
    int rc = 0;
    if (!f) {
        fprintf(stderr, "ckmon: no stats in %s: %s (a collector with --sink writes them)\n",
                dir ? dir : "the state dir", strerror(errno));
        rc = 1;
    } else {
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            fwrite(chunk, 1, n, stdout);
        fclose(f);
    }
    free(path);
    free(dir);
    return rc;
}

int collector_serve(const struct server_config *cfg, struct delivery *d, const struct options *o)
{
    if ((cfg->scrape && !scrape_start(cfg->scrape, cfg->log, d)) || (d && !delivery_start(d))) {
        listener_close(cfg->listener, true);
        return 1;
    }
    /* What a killed collector held is written before any agent is served. */
    struct server_config with = *cfg;
    with.recovery = recovery_open(o, cfg->log);
    int rc = server_run(&with);
    if (d && delivery_finish(d, o->flush_timeout) > 0) rc = 1;
    recovery_close(with.recovery, !d); /* with sinks, delivery_finish wrote stats.json */
    return rc;
}

int cmd_collect(int argc, char **argv)
{
    struct options o;
    int rc = cli_parse(&o, COMMAND_COLLECT, argc, argv);
    if (rc >= 0) return rc;
    hdf5_set_timeout(o.hdf5_timeout);
    if (o.stats) {
        rc = print_stats(&o);
        options_free(&o);
        return rc;
    }
    char socket_path[sizeof(((struct listener *)0)->path)], err[512];
    if (o.socket)
        snprintf(socket_path, sizeof socket_path, "%s", o.socket);
    else
        default_socket_path(socket_path, sizeof socket_path);

    /* The socket comes last, as in `run`: when it appears, the log, the sinks (libcurl,
     * cursors, spool) and the state dir are ready, so a program that waits for it
     * finds a collector that can take its records. */
    struct listener listener;
    struct log_writer log;
    struct delivery *delivery = NULL;
    struct scrape *scrape = NULL;
    struct alerting *alerting = NULL;
    if (collector_answers(socket_path)) { /* before touching its log or state dir */
        fprintf(stderr, "ckmon: a collector is already listening on %s\n", socket_path);
        options_free(&o);
        return 1;
    }
    if (o.digest && !digest_load(err, sizeof err)) {
        fprintf(stderr, "ckmon: --digest: %s\n", err);
        options_free(&o);
        return 1;
    }
    if (log_open(&log, o.log, err, sizeof err) < 0) {
        fprintf(stderr, "ckmon: %s\n", err);
        options_free(&o);
        return 1;
    }
    log.max_bytes = o.log_max_bytes;
    log.keep = o.log_keep;
    metric_keys_set(o.metric_keys.items, o.metric_keys.count);
    rc = 1;
    if (o.sink_count && !(delivery = delivery_open(&o, &log, err, sizeof err))) {
        fprintf(stderr, "ckmon: %s\n", err);
    } else if (o.listen && !(scrape = scrape_open(o.listen, err, sizeof err))) {
        fprintf(stderr, "ckmon: %s\n", err);
        delivery_free(delivery);
    } else if (!(alerting = alerting_for_serving(&o, &log, false))) {
        scrape_close(scrape);
        delivery_free(delivery);
    } else if (listener_open(&listener, socket_path, err, sizeof err) < 0) {
        fprintf(stderr, "ckmon: %s\n", err);
        scrape_close(scrape);
        delivery_free(delivery);
    } else {
        fprintf(stderr, "ckmon: collecting on %s into %s\n", socket_path,
                strcmp(o.log, "-") ? o.log : "stdout");
        struct server_config cfg = {.listener = &listener,
                                    .log = &log,
                                    .alerting = alerting,
                                    .stop_fd = -1,
                                    .run_id = o.run_id,
                                    .digest = o.digest,
                                    .scrape = scrape};
        /* systemd (Type=notify): agents can connect from now on. */
        notify_systemd("READY=1\nSTATUS=collecting");
        rc = collector_serve(&cfg, delivery, &o);
        scrape_close(scrape);
        delivery_free(delivery);
    }
    alerting_finish(alerting);
    if (log_close(&log)) rc = 1;
    options_free(&o);
    return rc;
}
