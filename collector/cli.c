/* cli.c — what the subcommands share at the command line (cli.h): help texts, parsing
 * a subcommand's words, usage errors.
 *
 * All help texts live here, next to each other, so that the options read the same in
 * every subcommand.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/budget.h"
#include "core/paths.h"
#include "cli.h"

static const char *const command_names[] = {
    [COMMAND_RUN] = "run",       [COMMAND_COLLECT] = "collect",     [COMMAND_INSPECT] = "inspect",
    [COMMAND_DOCTOR] = "doctor", [COMMAND_LAST_GOOD] = "last-good", [COMMAND_TAIL] = "tail",
    [COMMAND_DIFF] = "diff",     [COMMAND_REPORT] = "report",       [COMMAND_VERIFY] = "verify"};

/* Where `make install` puts the docs (tools/install.mk passes the real one). */
#ifndef CKMON_DOCDIR
#define CKMON_DOCDIR "/usr/local/share/doc/ckmon"
#endif

static const char main_help[] =
    "Usage: ckmon COMMAND [OPTIONS]\n"
    "\n"
    "Watch the checkpoints a program writes. ckmon's agent, preloaded into the\n"
    "program, parses each checkpoint file as it is written; a collector writes one\n"
    "JSON record per file (values, tensor statistics, completeness) to a JSONL log.\n"
    "\n"
    "Commands:\n"
    "  run [OPTIONS] [--] COMMAND [ARGS...]\n"
    "                    run COMMAND with the agent and a collector, wait until\n"
    "                    every record is written, exit with COMMAND's status\n"
    "  collect [OPTIONS] run a collector in the foreground, for many programs\n"
    "  inspect [OPTIONS] FILE|DIR...\n"
    "                    parse existing files, print one record per file\n"
    "  doctor COMMAND [ARGS...]\n"
    "                    say whether the agent can monitor COMMAND, and if\n"
    "                    not, why (static, Go, setuid, ...)\n"
    "  last-good [--log FILE] [--job NAME] [GLOB]\n"
    "                    print the newest checkpoint that is complete, without\n"
    "                    critical alerts and intact on disk; exit 1 if none\n"
    "  tail [--log FILE] [-f]\n"
    "                    the log as a readable table; -f follows it\n"
    "  diff [OPTIONS] A B\n"
    "                    compare two checkpoint files tensor by tensor\n"
    "  report [--log FILE] [--job NAME] [-o FILE.html]\n"
    "                    a self-contained HTML page of a run\n"
    "  verify [--log FILE] [--socket PATH] PATH...\n"
    "                    is each file what its job wrote? ok, changed,\n"
    "                    truncated, corrupt or no record; exit 0 when all ok\n"
    "\n"
    "  ckmon COMMAND --help   the options of one command\n"
    "  ckmon --version        print the version\n";

#define PATHS_HELP                                                                                 \
    "  -p, --paths GLOB       a file is a checkpoint when its absolute path\n"                     \
    "                         matches GLOB (fnmatch, '*' crosses '/'), at open or\n"               \
    "                         after a rename; repeatable. Default: *.pt *.pth\n"                   \
    "                         *.ckpt *.safetensors *.npy *.npz *.pkl *.pickle\n"                   \
    "                         *.joblib *.gguf *.h5 *.hdf5, and *.json *.bin inside\n"              \
    "                         a directory whose name contains 'checkpoint' or 'ckpt'\n"

#define KEYS_HELP                                                                                  \
    "      --keys PATTERN     only report values and tensors whose name matches\n"                 \
    "                         PATTERN (fnmatch, '*' crosses '.'); repeatable.\n"                   \
    "                         Default: all\n"

#define STRINGIFY(x)  #x
#define XSTRINGIFY(x) STRINGIFY(x)
#define SAMPLE_HELP                                                                                \
    "      --sample FRACTION  fraction of each tensor's bytes that statistics\n"                   \
    "                         read, in (0, 1]; 1 is exact (tensors of at most\n"                   \
    "                         64 KiB are always exact). Default: " XSTRINGIFY(DEFAULT_SAMPLE) "\n"

#define BUDGET_HELP                                                                                \
    "      --budget PERCENT   safety net, unless --sample is given: statistics\n"                  \
    "                         over a checkpoint stop (and its record says so) once\n"              \
    "                         they took PERCENT of the time since it was opened\n"                 \
    "                         (its first 4 MiB read are free). Default: " XSTRINGIFY(              \
        DEFAULT_BUDGET_PERCENT) "\n"

#define HDF5_HELP                                                                                  \
    "      --hdf5-timeout SECONDS\n"                                                               \
    "                         stop reading an HDF5 file after SECONDS; its record\n"               \
    "                         says so (default, or 0: 60 plus 1 per 32 MiB)\n"

#define SERVING_HELP                                                                               \
    "  -o, --log FILE         append records to FILE, '-' for stdout\n"                            \
    "                         (default ./ckmon.jsonl)\n"                                           \
    "  -s, --sink FORMAT=URL  push records to a remote sink (ndjson, pushgateway,\n"               \
    "                         victoriametrics, influx, prometheus: remote\n"                       \
    "                         write); repeatable. See\n"                                           \
    "                         " CKMON_DOCDIR "/docs/sinks.md\n"                                    \
    "      --state DIR        where the collector keeps what it must not lose:\n"                  \
    "                         sink cursors, dead letters, stats.json, the spool\n"                 \
    "                         (default: LOG.state/ beside the log)\n"                              \
    "      --flush-timeout SECONDS\n"                                                              \
    "                         how long to wait for the sinks at the end (run:\n"                   \
    "                         after COMMAND ends; collect: after SIGTERM)\n"                       \
    "                         (default 10)\n"                                                      \
    "      --log-max-bytes SIZE\n"                                                                 \
    "                         rotate the log to LOG.1, LOG.2, ... when it\n"                       \
    "                         reaches SIZE (bytes, or with K, M, G; default:\n"                    \
    "                         never)\n"                                                            \
    "      --log-keep N       rotated segments kept, besides those a sink has\n"                   \
    "                         not delivered (default 5)\n"                                         \
    "      --listen ADDR:PORT serve /metrics (Prometheus) and /healthz there;\n"                   \
    "                         PORT alone: 127.0.0.1\n"                                             \
    "      --run-id ID        the run label of records and metrics (run: default\n"                \
    "                         SLURM_JOB_ID, TORCHELASTIC_RUN_ID, else a new id;\n"                 \
    "                         collect: for programs that name none)\n"                             \
    "      --metric-keys PATTERN\n"                                                                \
    "                         which values and tensors become metrics (the log\n"                  \
    "                         keeps all); a leading '!' leaves out; repeatable.\n"                 \
    "                         Default: all but optimizer parameter ids and\n"                      \
    "                         per-parameter state (!*param_groups.*.params*\n"                     \
    "                         !*state.[0-9]*)\n"                                                   \
    "      --digest           add each file's xxh3-128 \"digest\", taken by the\n"                 \
    "                         collector after the last close (needs libxxhash0)\n" HDF5_HELP

#define ALERT_HELP                                                                                 \
    "      --alert '[NAME=]SUBJECT OP NUMBER'\n"                                                   \
    "                         a user alert rule: SUBJECT a values key pattern\n"                   \
    "                         or TENSORPATTERN:STAT (min max mean std nan inf\n"                   \
    "                         rms), OP < <= > >= == !=; repeatable. See\n"                         \
    "                         " CKMON_DOCDIR "/docs/alerts.md\n"

#define ACT_HELP                                                                                   \
    "      --on-alert CMD     run /bin/sh -c CMD per alert, the alert record on\n"                 \
    "                         stdin, CKMON_ALERT_RULE, _SEVERITY, _PATH, _PID set\n"               \
    "      --on-alert-timeout SECONDS\n"                                                           \
    "                         time limit of one --on-alert command (default 30)\n"                 \
    "  -q, --quiet            no alert lines (and no summary) on stderr\n"

#define ENV_HELP                                                                                   \
    "\n"                                                                                           \
    "Environment (a flag wins over its variable):\n"                                               \
    "  CKMON_PATHS, CKMON_KEYS  ':'-separated lists, as repeated --paths, --keys\n"                \
    "  CKMON_SINKS              space-separated list, as repeated --sink\n"                        \
    "  CKMON_LOG, CKMON_SAMPLE, CKMON_SOCKET, CKMON_JOB, CKMON_STATE,\n"                           \
    "  CKMON_LOG_MAX_BYTES, CKMON_LOG_KEEP, CKMON_METRIC_KEYS (':'-separated),\n"                  \
    "  CKMON_RUN_ID, CKMON_LISTEN, CKMON_ON_ALERT, CKMON_ON_ALERT_TIMEOUT,\n"                      \
    "  CKMON_HDF5_TIMEOUT\n"                                                                       \
    "                           as the flags\n"                                                    \
    "  CKMON_DIGEST=1           as --digest\n"                                                     \
    "  CKMON_ALERTS             ';'-separated list, as repeated --alert\n"

static const char run_help[] =
    "Usage: ckmon run [OPTIONS] [--] COMMAND [ARGS...]\n"
    "\n"
    "Run COMMAND with the ckmon agent preloaded (LD_PRELOAD, inherited by every\n"
    "program it starts) and record each checkpoint file it writes. Unless --socket\n"
    "names a collector that answers, a private collector is started for COMMAND and\n"
    "stopped after it, once every record is in the log.\n"
    "\n"
    "Exits with COMMAND's status: 128+N if signal N killed it, 127 if COMMAND is not\n"
    "found, 126 if it cannot be executed, 3 if it succeeded but a --fail-on alert\n"
    "fired. While COMMAND runs, SIGINT and SIGQUIT are left to it and SIGTERM and\n"
    "SIGHUP are passed on to it. Each alert is one line on stderr, and a summary\n"
    "line ends the run.\n"
    "\n"
    "Options:\n" PATHS_HELP KEYS_HELP SAMPLE_HELP BUDGET_HELP
    "      --job NAME         the label in every record (default: COMMAND's base\n"
    "                         name)\n"
    "      --socket PATH      use the collector answering on PATH, or start one\n"
    "                         there (default: a private socket in a new directory\n"
    "                         under $TMPDIR or /tmp, removed afterwards)\n" SERVING_HELP ALERT_HELP
        ACT_HELP "      --fail-on RULE,... exit 3 when COMMAND succeeded but an alert of a\n"
    "                         listed rule fired\n"
    "  -h, --help             show this help\n" ENV_HELP "  CKMON_BUDGET             as --budget\n"
    "  CKMON_AGENT              the agent library (default: libckmon.so beside the\n"
    "                           ckmon binary, else ../lib/ckmon/libckmon.so from it)\n"
    "  LD_PRELOAD               kept; the agent is put in front of it\n";

static const char collect_help[] =
    "Usage: ckmon collect [OPTIONS]\n"
    "\n"
    "Run a collector in the foreground until SIGTERM or SIGINT (SIGHUP reopens\n"
    "the log). Programs started with the agent preloaded and CKMON_SOCKET naming\n"
    "its socket send it what they find; it writes one record per checkpoint file\n"
    "to the log, and sinks deliver them from there. When it stops, it reads what\n"
    "agents sent, records files still open as incomplete, writes everything and\n"
    "gives the sinks --flush-timeout seconds. Exits 1 if records could not be\n"
    "written or delivered. For example:\n"
    "\n"
    "  ckmon collect --socket /tmp/s --log ckpt.jsonl &\n"
    "  LD_PRELOAD=/usr/local/lib/ckmon/libckmon.so CKMON_SOCKET=/tmp/s \\\n"
    "      python3 train.py\n"
    "\n"
    "Options:\n"
    "      --socket PATH      listen on PATH (default /tmp/ckmon-<uid>.sock); a\n"
    "                         stale socket file is replaced, one a collector\n"
    "                         answers on is not\n" SERVING_HELP
    "      --stats            print the counters of the last collector with this\n"
    "                         --log/--state (its stats.json) and exit\n" ALERT_HELP ACT_HELP
    "  -p, --paths, --keys, --sample, --job\n"
    "                         accepted as in 'ckmon run'; programs started by hand\n"
    "                         take them from their own CKMON_PATHS, CKMON_KEYS,\n"
    "                         CKMON_SAMPLE and CKMON_JOB\n"
    "  -h, --help             show this help\n" ENV_HELP;

static const char inspect_help[] =
    "Usage: ckmon inspect [OPTIONS] FILE|DIR...\n"
    "\n"
    "Parse existing checkpoint files with the agent's parsers and print one record\n"
    "per file to stdout (JSONL); a record's time is the file's modification time.\n"
    "A directory stands for the files under it (recursively, in name order) that\n"
    "the default --paths globs match. Files given one after the other are a series\n"
    "for the alert rules; alert records follow the record they are about. Exits 1\n"
    "if a file could not be read, 3 if a --fail-on rule fired. The environment is\n"
    "not consulted.\n"
    "\n"
    "Options:\n" KEYS_HELP SAMPLE_HELP HDF5_HELP ALERT_HELP
    "      --fail-on RULE,... exit 3 when an alert of a listed rule fired\n"
    "      --all              in a directory, every regular file, not only those\n"
    "                         the default globs match\n"
    "      --pretty           print the table of 'ckmon tail' instead of JSONL\n"
    "      --job NAME         the label in the records (default: inspect)\n"
    "  -h, --help             show this help\n";

static const char doctor_help[] =
    "Usage: ckmon doctor COMMAND [ARGS...]\n"
    "\n"
    "Say whether ckmon's agent can monitor COMMAND, without running it. COMMAND is\n"
    "found as 'ckmon run' finds it; #! scripts are followed to their interpreter\n"
    "(through env and its -S, -i, -u options). Reported as problems, one line each:\n"
    "a statically linked program, a Go program, setuid/setgid or file capabilities,\n"
    "an ELF class or machine the agent is not built for, musl instead of glibc, and\n"
    "io_uring. Also printed: the write calls the program imports.\n"
    "\n"
    "Exits 0 when the agent can monitor COMMAND, 1 when it cannot (one line per\n"
    "problem), 2 for a usage error. 'ckmon run' makes the same check and warns.\n"
    "\n"
    "Options:\n"
    "  -h, --help             show this help\n";

static const char last_good_help[] =
    "Usage: ckmon last-good [--log FILE] [--job NAME] [GLOB]\n"
    "\n"
    "Print the path of the newest checkpoint in the log (and its rotated segments)\n"
    "whose record is complete, carries no critical alert (nonfinite, incomplete),\n"
    "and whose file still exists with the recorded size. A path saved more than\n"
    "once counts by its newest record. Exits 1 when there is none. For example:\n"
    "\n"
    "  ckpt=$(ckmon last-good --log run.jsonl 'ckpt/*.pt') && resume \"$ckpt\"\n"
    "\n"
    "Options:\n"
    "  -o, --log FILE         the log to read (default ./ckmon.jsonl)\n"
    "      --job NAME         only checkpoints of this job\n"
    "  GLOB                   only paths it matches (fnmatch, '*' crosses '/'; a\n"
    "                         relative GLOB is taken from the current directory)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Environment: CKMON_LOG, CKMON_JOB as the flags.\n";

static const char tail_help[] =
    "Usage: ckmon tail [--log FILE] [-f]\n"
    "\n"
    "Print the log as a readable table: per checkpoint its path, format, whether it\n"
    "is complete, its key values (step, epoch, loss, lr) and its tensors'\n"
    "statistics; alert, set and load records one line each; the files of a set\n"
    "(a sharded checkpoint) are folded into its line. On a terminal, alerts\n"
    "and non-finite numbers are in colour unless NO_COLOR is set. With -f, keep\n"
    "reading as the log grows; a log truncated or replaced (rotated) is read again\n"
    "from its start. See docs/views.md.\n"
    "\n"
    "Options:\n"
    "  -o, --log FILE         the log (default ./ckmon.jsonl, or CKMON_LOG)\n"
    "  -f, --follow           wait for new records (the log may not exist yet)\n"
    "      --members          show the records of a set's files one by one, not folded\n"
    "                         into the set's line\n"
    "  -h, --help             show this help\n";

static const char diff_help[] =
    "Usage: ckmon diff [OPTIONS] A B\n"
    "\n"
    "Compare two checkpoint files, of any formats ckmon reads, tensor by tensor:\n"
    "tensors added or removed, shape and dtype changes, and for each common tensor\n"
    "the largest absolute difference, the relative L2 difference |a-b|/|a| and how\n"
    "many elements differ; values added, removed or changed. Memory stays bounded\n"
    "whatever the files' sizes. Exits 0 when they hold the same, 1 when they\n"
    "differ, 2 on trouble (a file unreadable or incomplete). See docs/views.md.\n"
    "\n"
    "Options:\n" KEYS_HELP
    "      --sample FRACTION  compare only this fraction of each tensor, the blocks\n"
    "                         the statistics read with the same --sample\n"
    "                         (default 1: every element)\n"
    "      --json             one JSON object instead of the table\n"
    "  -h, --help             show this help\n";

static const char report_help[] =
    "Usage: ckmon report [--log FILE] [--job NAME] [-o FILE.html]\n"
    "\n"
    "Write one self-contained HTML page about the run in the log: jobs, hosts and\n"
    "ranks, values over steps, tensor statistics over the checkpoints with NaN/Inf\n"
    "marked, sizes and write times, alerts. Charts are inline SVG drawn by ckmon;\n"
    "the page loads nothing from elsewhere. See docs/views.md.\n"
    "\n"
    "Options:\n"
    "      --log FILE         the log (default ./ckmon.jsonl, or CKMON_LOG)\n"
    "      --job NAME         only the records of this job\n"
    "  -o, --output FILE      the page (default ckmon-report.html; '-' is stdout)\n"
    "  -h, --help             show this help\n";

static const char verify_help[] =
    "Usage: ckmon verify [--log FILE] [--socket PATH] PATH...\n"
    "\n"
    "Say for each file whether it is still what the job wrote: its size,\n"
    "modification time and (with --digest) xxh3-128 digest against the newest\n"
    "record of its path in the log, and the format's own checksums (the CRC-32\n"
    "of every torch.save / np.savez member). One line per file: ok, ok, a copy\n"
    "of ORIGINAL (a record with the same digest), changed since written at TIME\n"
    "by JOB, truncated, corrupt: WHAT (digest mismatch: same size and time, other\n"
    "bytes), or no record (then the checksums alone decide). A directory stands\n"
    "for the files under it the default globs match. Each failure is also a\n"
    "verify record, counted in ckmon_verify_failures_total: handed to the\n"
    "collector on --socket when one answers, else appended to the log. Exits 0\n"
    "when every file is ok, 1 otherwise. See docs/integrity.md.\n"
    "\n"
    "Options:\n"
    "  -o, --log FILE         the log to read (default ./ckmon.jsonl, or CKMON_LOG)\n"
    "      --socket PATH      the collector to hand failures to (default\n"
    "                         CKMON_SOCKET, else /tmp/ckmon-UID.sock)\n"
    "  -h, --help             show this help\n";

static const char *const command_help[] = {[COMMAND_RUN] = run_help,
                                           [COMMAND_COLLECT] = collect_help,
                                           [COMMAND_INSPECT] = inspect_help,
                                           [COMMAND_DOCTOR] = doctor_help,
                                           [COMMAND_LAST_GOOD] = last_good_help,
                                           [COMMAND_TAIL] = tail_help,
                                           [COMMAND_DIFF] = diff_help,
                                           [COMMAND_REPORT] = report_help,
                                           [COMMAND_VERIFY] = verify_help};

const char *command_name(enum command cmd)
{
    return command_names[cmd];
}

void show_main_help(FILE *to)
{
    fputs(main_help, to);
}

void show_help(enum command cmd)
{
    fputs(command_help[cmd], stdout);
}

int usage_error(enum command cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ckmon %s: ", command_names[cmd]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try 'ckmon %s --help')\n", command_names[cmd]);
    return EXIT_USAGE;
}

int cli_parse(struct options *o, enum command cmd, int argc, char **argv)
{
    char err[512];
    if (options_parse(o, cmd, argc, argv, err, sizeof err) < 0) {
        options_free(o);
        return usage_error(cmd, "%s", err);
    }
    if (!o->help) return -1;
    show_help(cmd);
    options_free(o);
    return 0;
}
