/* cli.h — the subcommands of the ckmon binary and what they share at the surface:
 * option parsing with --help and usage errors, and exit statuses.
 */
#ifndef CKMON_CLI_H
#define CKMON_CLI_H

#include <stdio.h>

#include "options.h"

#define EXIT_USAGE 2 /* bad flags, unknown subcommand */

int cmd_run(int argc, char **argv);
int cmd_collect(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_report(int argc, char **argv);

/* As execvp searches: a name with a '/' is used as it is, else each PATH entry in turn.
 * Returns 0 (the path in out), ENOENT when found nowhere, or why a match cannot run. */
int find_command(const char *name, char *out, size_t size);
/* Whether the agent can monitor command (run with args): writes what the program is to
 * info (unless NULL) and each problem as one line, after prefix, to out. Returns the
 * number of problems (collector/doctor.c). */
int doctor_check(const char *command, char **args, size_t n, FILE *info, FILE *out,
                 const char *prefix);

/* Parses a subcommand's words. Returns -1 to carry on; otherwise the parse printed the
 * help (0) or a usage error (EXIT_USAGE), and that is the exit status. */
int cli_parse(struct options *o, enum command cmd, int argc, char **argv);
/* Prints a command's --help text to stdout. */
void show_help(enum command cmd);
/* "ckmon CMD: MESSAGE (try 'ckmon CMD --help')", one line on stderr; returns EXIT_USAGE. */
int usage_error(enum command cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
