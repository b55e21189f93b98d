/* options.h — the command line and environment of `ckmon run`, `collect` and `inspect`.
 *
 * One table of options serves the three subcommands, so a flag means the same thing
 * everywhere and its environment variable is read in one place. A flag always wins
 * over its variable; repeatable flags replace the variable's whole list. Parsing only
 * fills struct options: it prints nothing and never exits, so the tests can drive it.
 */
#ifndef CKMON_OPTIONS_H
#define CKMON_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "alerts.h"

#define CKMON_VERSION            "0.1.0"
#define DEFAULT_LOG              "./ckmon.jsonl"
#define DEFAULT_FLUSH_SEC        10.0
#define DEFAULT_LOG_KEEP         5
#define DEFAULT_ON_ALERT_TIMEOUT 30.0

enum command {
    COMMAND_RUN,
    COMMAND_COLLECT,
    COMMAND_INSPECT,
    COMMAND_DOCTOR,
    COMMAND_LAST_GOOD,
    COMMAND_TAIL,
    COMMAND_DIFF,
    COMMAND_REPORT,
    COMMAND_VERIFY
};

struct string_list {
    char **items;
    size_t count;
};

struct sink_spec {
    char *format; /* ndjson, pushgateway, victoriametrics or influx */
    char *url;    /* http:// or https:// */
};

struct options {
    struct string_list paths;       /* -p/--paths, CKMON_PATHS */
    struct string_list keys;        /* --keys, CKMON_KEYS */
    struct string_list metric_keys; /* --metric-keys, CKMON_METRIC_KEYS */
    struct sink_spec *sinks;        /* -s/--sink, CKMON_SINKS */
    size_t sink_count;
    char *log;            /* -o/--log, CKMON_LOG; "-" is stdout */
    char *socket;         /* --socket, CKMON_SOCKET; NULL when neither was given */
    char *job;            /* --job, CKMON_JOB; NULL when neither was given */
    char *run_id;         /* --run-id, CKMON_RUN_ID; NULL when neither was given */
    char *listen;         /* --listen ADDR:PORT, CKMON_LISTEN; NULL: no /metrics */
    char *state;          /* --state, CKMON_STATE; NULL: LOG.state/ beside the log */
    char *sample_text;    /* --sample, CKMON_SAMPLE as given, NULL: the agent's default */
    double sample;        /* its value when given */
    char *budget_text;    /* run: --budget, CKMON_BUDGET as given, NULL: the agent's default */
    double flush_timeout; /* --flush-timeout, seconds */
    unsigned long long log_max_bytes; /* --log-max-bytes, CKMON_LOG_MAX_BYTES; 0: never rotate */
    unsigned long log_keep;           /* --log-keep, CKMON_LOG_KEEP: rotated segments kept */
    bool stats;                       /* collect --stats: print the state dir's stats.json */
    struct rule_set rules;            /* --alert, CKMON_ALERTS: the user's alert rules */
    char *on_alert;                   /* --on-alert, CKMON_ON_ALERT: a shell command, or NULL */
    double on_alert_timeout;          /* --on-alert-timeout, CKMON_ON_ALERT_TIMEOUT, seconds */
    double hdf5_timeout;              /* --hdf5-timeout, CKMON_HDF5_TIMEOUT; 0: the default */
    struct string_list fail_on;       /* --fail-on: rule names */
    bool quiet;                       /* -q: no alert lines, no summary */
    bool digest;                      /* --digest, CKMON_DIGEST=1: records get digests */
    bool follow;                      /* tail -f/--follow */
    bool members;                     /* tail --members: sets' files unfolded */
    bool pretty;                      /* inspect --pretty: the tail table instead of JSONL */
    bool all_files;                   /* inspect --all: every file of a directory */
    bool json;                        /* diff --json */
    char *output;                     /* report -o/--output */
    bool help;
    char **args; /* run: COMMAND and its arguments; inspect, diff: the files; last-good: GLOB */
    int arg_count;
};

/* Parses argv[0..argc) (the words after the subcommand's name). Returns 0, or -1 with a
 * one-line message in err (no "ckmon:" prefix, no newline). */
int options_parse(struct options *o, enum command cmd, int argc, char **argv, char *err,
                  size_t err_size);
void options_free(struct options *o);

/* The default collector socket, /tmp/ckmon-<uid>.sock. */
void default_socket_path(char *out, size_t size);

/* The list's items joined with sep, as the agent reads CKMON_PATHS and CKMON_KEYS;
 * NULL when out of memory. */
char *string_list_join(const struct string_list *l, char sep);

#endif
