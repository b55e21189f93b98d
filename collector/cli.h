/* cli.h — the subcommands of the ckmon binary and what they share at the surface:
 * option parsing with --help and usage errors, and exit statuses.
 */
#ifndef CKMON_CLI_H
#define CKMON_CLI_H

#include "options.h"

#define EXIT_USAGE 2 /* bad flags, unknown subcommand */

int cmd_run(int argc, char **argv);
int cmd_collect(int argc, char **argv);
int cmd_inspect(int argc, char **argv);

/* Parses a subcommand's words. Returns -1 to carry on; otherwise the parse printed the
 * help (0) or a usage error (EXIT_USAGE), and that is the exit status. */
int cli_parse(struct options *o, enum command cmd, int argc, char **argv);
/* "ckmon CMD: MESSAGE (try 'ckmon CMD --help')", one line on stderr; returns EXIT_USAGE. */
int usage_error(enum command cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
