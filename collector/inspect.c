/* inspect.c — `ckmon inspect`: records for finished files, from the agent's parsers.
 *
 * The record is assembled by record.c exactly as the collector assembles one, so a
 * file inspected later reads like the record written when it was saved.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/parsers/parser.h"
#include "alerting.h"
#include "cli.h"
#include "log.h"
#include "record.h"

struct inspection {
    struct identity who;
    struct key_filter keys;
    struct parse_options parse;
    struct log_writer out;
    struct alerting *alerting;
};

/* Returns false when the file could not be read or its record not written. */
static bool inspect_file(struct inspection *in, const char *file)
{
    char path[PATH_MAX];
    struct stat st;
    if (!absolute_path(AT_FDCWD, file, path, sizeof path)) {
        fprintf(stderr, "ckmon: %s: cannot make an absolute path\n", file);
        return false;
    }
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO: no wait */
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "ckmon: %s: %s\n", file, strerror(errno));
        if (fd >= 0) close(fd);
        return false;
    }
    bool ok = false;
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "ckmon: %s: not a regular file\n", file);
    } else {
        struct record *r = record_from_file(&in->who, fd, path, &st, &in->keys, &in->parse);
        if (!r) fprintf(stderr, "ckmon: %s: out of memory\n", file);
        ok = r && alerting_record(in->alerting, &in->out, r);
        record_free(r);
    }
    close(fd);
    return ok;
}

int cmd_inspect(int argc, char **argv)
{
    struct options o;
    int rc = cli_parse(&o, COMMAND_INSPECT, argc, argv);
    if (rc >= 0) return rc;
    if (!o.arg_count) {
        options_free(&o);
        return usage_error(COMMAND_INSPECT, "no FILE to inspect");
    }
    struct utsname host;
    struct inspection in = {
        .who = {.host = uname(&host) == 0 ? host.nodename : "unknown",
                .program = "ckmon",
                .job = o.job ? o.job : "inspect",
                .pid = (long)getpid()},
        .keys = {.patterns = o.keys.items, .count = o.keys.count},
        .parse = {.sample = o.sample_text ? o.sample : DEFAULT_SAMPLE},
    };
    char err[512];
    if (log_open(&in.out, "-", err, sizeof err) < 0) {
        fprintf(stderr, "ckmon: %s\n", err);
        options_free(&o);
        return 1;
    }
    /* Files given one after the other are a series: each is compared with the one
     * before it, so `inspect a.pt b.pt` shows what changed. */
    struct alerting_setup setup = {.options = &o, .one_series = true};
    if (!(in.alerting = alerting_new(&setup))) {
        log_close(&in.out);
        options_free(&o);
        return 1;
    }
    rc = 0;
    for (int i = 0; i < o.arg_count; i++)
        if (!inspect_file(&in, o.args[i])) rc = 1;
    if (alerting_finish(in.alerting) && rc == 0) rc = EXIT_FAIL_ON;
    log_close(&in.out);
    options_free(&o);
    return rc;
}
