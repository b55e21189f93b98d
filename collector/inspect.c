/* inspect.c — `ckmon inspect`: records for finished files, from the agent's parsers.
 *
 * The record is assembled by record.c exactly as the collector assembles one, so a
 * file inspected later reads like the record written when it was saved. A directory
 * stands for the files under it that the default checkpoint globs match (every regular
 * file with --all), in name order so that the output is the same every time; symbolic
 * links to directories are not followed (no loops), links to files are. --pretty
 * prints the table of `ckmon tail` (table.h) instead of JSONL.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/parsers/parser.h"
#include "alerting.h"
#include "cli.h"
#include "hdf5.h"
#include "log.h"
#include "record.h"
#include "table.h"

struct inspection {
    struct identity who;
    struct key_filter keys;
    struct parse_options parse;
    struct log_writer out;
    struct alerting *alerting;
    bool all_files;
    /* --pretty: the lines go to a memory file, and from there to the table */
    int pretty_fd; /* -1: JSONL to stdout */
    off_t pretty_at;
    struct table_style style;
};

/* Judges and writes r with its alert records; with --pretty, prints those lines as the
 * table. */
static bool print_record(struct inspection *in, const struct record *r)
{
    bool ok = alerting_record(in->alerting, &in->out, r);
    if (in->pretty_fd < 0) return ok;
    struct stat st;
    if (fstat(in->pretty_fd, &st) < 0) return false;
    size_t n = (size_t)(st.st_size - in->pretty_at);
    char *text = malloc(n + 1);
    if (!text || pread(in->pretty_fd, text, n, in->pretty_at) != (ssize_t)n) {
        free(text);
        return false;
    }
    in->pretty_at = st.st_size;
    text[n] = '\0';
    for (char *line = text, *end; *line; line = end + 1) {
        if (!(end = strchr(line, '\n'))) break;
        cJSON *json = cJSON_ParseWithLength(line, (size_t)(end - line));
        if (json) table_print(stdout, json, &in->style);
        cJSON_Delete(json);
    }
    free(text);
    return ok;
}

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
        ok = r && print_record(in, r);
        record_free(r);
    }
    close(fd);
    return ok;
}

static bool inspect_path(struct inspection *in, const char *path, bool named);

/* The entries of a directory, in name order. */
static bool inspect_directory(struct inspection *in, const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "ckmon: %s: %s\n", dir, strerror(errno));
        return false;
    }
    bool ok = true;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        char child[PATH_MAX];
        if (strcmp(name, ".") && strcmp(name, "..") &&
            snprintf(child, sizeof child, "%s/%s", dir, name) < (int)sizeof child)
            ok &= inspect_path(in, child, false);
        free(names[i]);
    }
    free(names);
    return ok;
}

/* A path the user named is inspected whatever its name; one found in a directory only
 * when it is a regular file the globs match (or --all). */
static bool inspect_path(struct inspection *in, const char *path, bool named)
{
    struct stat st;
    if (named ? stat(path, &st) < 0 : lstat(path, &st) < 0) {
        fprintf(stderr, "ckmon: %s: %s\n", path, strerror(errno));
        return false;
    }
    if (S_ISDIR(st.st_mode)) return inspect_directory(in, path);
    if (named) return inspect_file(in, path);
    if (S_ISLNK(st.st_mode) && (stat(path, &st) < 0 || S_ISDIR(st.st_mode))) return true;
    if (!S_ISREG(st.st_mode)) return true;
    char abs[PATH_MAX];
    if (!in->all_files &&
        (!absolute_path(AT_FDCWD, path, abs, sizeof abs) ||
         !paths_match((char *const *)default_checkpoint_globs, default_checkpoint_glob_count, abs)))
        return true;
    return inspect_file(in, path);
}

int cmd_inspect(int argc, char **argv)
{
    struct options o;
    int rc = cli_parse(&o, COMMAND_INSPECT, argc, argv);
    if (rc >= 0) return rc;
    hdf5_set_timeout(o.hdf5_timeout);
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
        .all_files = o.all_files,
        .pretty_fd = o.pretty ? memfd_create("ckmon-inspect", MFD_CLOEXEC) : -1,
    };
    char cwd[PATH_MAX], out[64] = "-", err[512];
    in.style.color = table_wants_color(stdout);
    in.style.base = getcwd(cwd, sizeof cwd);
    /* a memory file is created with mode 0777, which the log's checks refuse */
    bool pretty_ok = !o.pretty || (in.pretty_fd >= 0 && fchmod(in.pretty_fd, 0600) == 0);
    if (o.pretty && pretty_ok) snprintf(out, sizeof out, "/proc/self/fd/%d", in.pretty_fd);
    if (!pretty_ok || log_open(&in.out, out, err, sizeof err) < 0) {
        fprintf(stderr, "ckmon: %s\n", pretty_ok ? err : strerror(errno));
        if (in.pretty_fd >= 0) close(in.pretty_fd);
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
        if (!inspect_path(&in, o.args[i], true)) rc = 1;
    if (alerting_finish(in.alerting) && rc == 0) rc = EXIT_FAIL_ON;
    log_close(&in.out);
    if (in.pretty_fd >= 0) close(in.pretty_fd);
    options_free(&o);
    return rc;
}
