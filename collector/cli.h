/* cli.h — the subcommands of the ckmon binary and what they share at the surface:
 * option parsing with --help and usage errors (cli.c), and exit statuses.
 */
#ifndef CKMON_CLI_H
#define CKMON_CLI_H

#include <stdio.h>

#include "options.h"

#define EXIT_USAGE   2 /* bad flags, unknown subcommand */
#define EXIT_FAIL_ON 3 /* an alert of a --fail-on rule fired */

int cmd_run(int argc, char **argv);
int cmd_collect(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_last_good(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_verify(int argc, char **argv);

/* Whether the agent can monitor command (run with args): writes what the program is to
 * info (unless NULL) and each problem as one line, after prefix, to out. Returns the
 * number of problems (collector/doctor.c). */
int doctor_check(const char *command, char **args, size_t n, FILE *info, FILE *out,
                 const char *prefix);

struct server_config;
struct delivery;
/* A collector's life after its set-up (collect.c): starts d's sink threads (d may be
 * NULL: no sinks), writes what a killed collector held (recovery.h), serves agents until
 * told to stop, then lets the sinks finish for up to o's --flush-timeout. Returns 0, or
 * 1 when records could not be written or delivered. */
int collector_serve(const struct server_config *cfg, struct delivery *d, const struct options *o);

/* Parses a subcommand's words. Returns -1 to carry on; otherwise the parse printed the
 * help (0) or a usage error (EXIT_USAGE), and that is the exit status. */
int cli_parse(struct options *o, enum command cmd, int argc, char **argv);
/* The command's name on the command line ("run"). */
const char *command_name(enum command cmd);
/* Prints ckmon's own usage (the list of commands) to to. */
void show_main_help(FILE *to);
/* Prints a command's --help text to stdout. */
void show_help(enum command cmd);
/* "ckmon CMD: MESSAGE (try 'ckmon CMD --help')", one line on stderr; returns EXIT_USAGE. */
int usage_error(enum command cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
