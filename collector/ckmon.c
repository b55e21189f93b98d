/* ckmon.c — the ckmon binary: dispatch to a subcommand, --help and --version.
 *
 * Only the entry point: the subcommands and what they share (cli.c) never call back
 * into it.
 */
#include <stdio.h>
#include <string.h>

#include "core/paths.h"
#include "cli.h"

int main(int argc, char **argv)
{
    static int (*const commands[])(int, char **) = {[COMMAND_RUN] = cmd_run,
                                                    [COMMAND_COLLECT] = cmd_collect,
                                                    [COMMAND_INSPECT] = cmd_inspect,
                                                    [COMMAND_DOCTOR] = cmd_doctor,
                                                    [COMMAND_LAST_GOOD] = cmd_last_good,
                                                    [COMMAND_TAIL] = cmd_tail,
                                                    [COMMAND_DIFF] = cmd_diff,
                                                    [COMMAND_REPORT] = cmd_report,
                                                    [COMMAND_VERIFY] = cmd_verify};
    const char *name = argc > 1 ? argv[1] : NULL;
    if (!name) {
        show_main_help(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
        show_main_help(stdout);
        return 0;
    }
    if (!strcmp(name, "--version")) {
        puts("ckmon " CKMON_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, command_name((enum command)i))) return commands[i](argc - 2, argv + 2);
    fprintf(stderr, "ckmon: %s '%s' (try 'ckmon --help')\n",
            name[0] == '-' ? "unknown option" : "unknown command", name);
    return EXIT_USAGE;
}
