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
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/parsers/parser.h"
#include "cli.h"
#include "log.h"
#include "record.h"
#include "table.h"

struct inspection {
    struct identity who;
    struct key_filter keys;
    struct parse_options parse;
    struct log_writer out;
    bool all_files;
    bool pretty;
    struct table_style style;
};

static bool print_record(struct inspection *in, const struct record *r)
{
    if (!in->pretty) return log_record(&in->out, r);
    cJSON *json = record_to_json(r);
    if (json) table_print(stdout, json, &in->style);
    cJSON_Delete(json);
    return json != NULL;
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
    int fd = open(file, O_RDONLY | O_CLOEXEC);
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
        .pretty = o.pretty,
    };
    char cwd[PATH_MAX];
    in.style.color = table_wants_color(stdout);
    in.style.base = getcwd(cwd, sizeof cwd);
    char err[512];
    if (log_open(&in.out, "-", err, sizeof err) < 0) {
        fprintf(stderr, "ckmon: %s\n", err);
        options_free(&o);
        return 1;
    }
    rc = 0;
    for (int i = 0; i < o.arg_count; i++)
        if (!inspect_path(&in, o.args[i], true)) rc = 1;
    log_close(&in.out);
    options_free(&o);
    return rc;
}
