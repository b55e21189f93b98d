/* collect.c — `ckmon collect`: a foreground collector for any number of programs. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "server.h"

int cmd_collect(int argc, char **argv)
{
    struct options o;
    int rc = cli_parse(&o, COMMAND_COLLECT, argc, argv);
    if (rc >= 0) return rc;
    if ((rc = reject_sinks(&o)) >= 0) {
        options_free(&o);
        return rc;
    }
    char socket_path[sizeof(((struct listener *)0)->path)], err[512];
    if (o.socket)
        snprintf(socket_path, sizeof socket_path, "%s", o.socket);
    else
        default_socket_path(socket_path, sizeof socket_path);

    struct listener listener;
    struct log_writer log;
    rc = 1;
    if (listener_open(&listener, socket_path, err, sizeof err) < 0) {
        fprintf(stderr, "ckmon: %s\n", err);
    } else if (log_open(&log, o.log, err, sizeof err) < 0) {
        fprintf(stderr, "ckmon: %s\n", err);
        listener_close(&listener, true);
    } else {
        fprintf(stderr, "ckmon: collecting on %s into %s\n", socket_path,
                strcmp(o.log, "-") ? o.log : "stdout");
        struct server_config cfg = {.listener = &listener, .log = &log, .stop_fd = -1};
        rc = server_run(&cfg);
        log_close(&log);
    }
    options_free(&o);
    return rc;
}
