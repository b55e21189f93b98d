/* options.c — one table of options for run, collect and inspect, with their variables.
 *
 * Hand-rolled rather than getopt_long: `run` must stop at COMMAND, `inspect` takes
 * options between files, and the messages must name the flag or variable at fault,
 * which getopt's own messages cannot do for variables.
 */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/budget.h"

enum option_id {
    OPT_PATHS,
    OPT_LOG,
    OPT_SINK,
    OPT_SAMPLE,
    OPT_BUDGET,
    OPT_KEYS,
    OPT_SOCKET,
    OPT_JOB,
    OPT_STATE,
    OPT_FLUSH_TIMEOUT,
    OPT_LOG_MAX_BYTES,
    OPT_LOG_KEEP,
    OPT_STATS,
    OPT_METRIC_KEYS,
    OPT_RUN_ID,
    OPT_LISTEN,
    OPT_ALERT,
    OPT_ON_ALERT,
    OPT_ON_ALERT_TIMEOUT,
    OPT_HDF5_TIMEOUT,
    OPT_FAIL_ON,
    OPT_QUIET,
    OPT_DIGEST,
    OPT_FOLLOW,
    OPT_MEMBERS,
    OPT_PRETTY,
    OPT_ALL,
    OPT_JSON,
    OPT_OUTPUT,
    OPT_HELP,
    OPT_COUNT
};

#define FOR_RUN       (1u << COMMAND_RUN)
#define FOR_COLLECT   (1u << COMMAND_COLLECT)
#define FOR_INSPECT   (1u << COMMAND_INSPECT)
#define FOR_LAST_GOOD (1u << COMMAND_LAST_GOOD)
#define FOR_TAIL      (1u << COMMAND_TAIL)
#define FOR_DIFF      (1u << COMMAND_DIFF)
#define FOR_REPORT    (1u << COMMAND_REPORT)
#define FOR_VERIFY    (1u << COMMAND_VERIFY)
#define FOR_SERVING   (FOR_RUN | FOR_COLLECT)
#define FOR_ALL       (FOR_SERVING | FOR_INSPECT)
#define FOR_VIEWS     (FOR_TAIL | FOR_DIFF | FOR_REPORT)

struct option_spec {
    enum option_id id;
    char short_name; /* 0: none */
    const char *long_name;
    const char *env;    /* NULL: none */
    char env_separator; /* 0: a single value; else the variable holds a list */
    bool takes_value;
    unsigned commands; /* which subcommands accept it */
};

static const struct option_spec option_table[] = {
    {OPT_PATHS, 'p', "paths", "CKMON_PATHS", ':', true, FOR_SERVING},
    {OPT_LOG, 'o', "log", "CKMON_LOG", 0, true,
     FOR_SERVING | FOR_LAST_GOOD | FOR_TAIL | FOR_VERIFY},
    {OPT_LOG, 0, "log", "CKMON_LOG", 0, true, FOR_REPORT}, /* report's -o is its page */
    {OPT_SINK, 's', "sink", "CKMON_SINKS", ' ', true, FOR_SERVING},
    {OPT_SAMPLE, 0, "sample", "CKMON_SAMPLE", 0, true, FOR_ALL | FOR_DIFF},
    {OPT_BUDGET, 0, "budget", "CKMON_BUDGET", 0, true, FOR_RUN},
    {OPT_KEYS, 0, "keys", "CKMON_KEYS", ':', true, FOR_ALL | FOR_DIFF},
    {OPT_SOCKET, 0, "socket", "CKMON_SOCKET", 0, true, FOR_SERVING | FOR_VERIFY},
    {OPT_JOB, 0, "job", "CKMON_JOB", 0, true, FOR_ALL | FOR_LAST_GOOD},
    {OPT_JOB, 0, "job", NULL, 0, true, FOR_REPORT}, /* a filter, not this process's label */
    {OPT_STATE, 0, "state", "CKMON_STATE", 0, true, FOR_SERVING},
    {OPT_FLUSH_TIMEOUT, 0, "flush-timeout", NULL, 0, true, FOR_SERVING},
    {OPT_LOG_MAX_BYTES, 0, "log-max-bytes", "CKMON_LOG_MAX_BYTES", 0, true, FOR_SERVING},
    {OPT_LOG_KEEP, 0, "log-keep", "CKMON_LOG_KEEP", 0, true, FOR_SERVING},
    {OPT_STATS, 0, "stats", NULL, 0, false, FOR_COLLECT},
    {OPT_METRIC_KEYS, 0, "metric-keys", "CKMON_METRIC_KEYS", ':', true, FOR_SERVING},
    {OPT_RUN_ID, 0, "run-id", "CKMON_RUN_ID", 0, true, FOR_SERVING},
    {OPT_LISTEN, 0, "listen", "CKMON_LISTEN", 0, true, FOR_SERVING},
    {OPT_ALERT, 0, "alert", "CKMON_ALERTS", ';', true, FOR_ALL},
    {OPT_ON_ALERT, 0, "on-alert", "CKMON_ON_ALERT", 0, true, FOR_SERVING},
    {OPT_ON_ALERT_TIMEOUT, 0, "on-alert-timeout", "CKMON_ON_ALERT_TIMEOUT", 0, true, FOR_SERVING},
    {OPT_HDF5_TIMEOUT, 0, "hdf5-timeout", "CKMON_HDF5_TIMEOUT", 0, true, FOR_ALL},
    {OPT_FAIL_ON, 0, "fail-on", NULL, 0, true, FOR_RUN | FOR_INSPECT},
    {OPT_QUIET, 'q', "quiet", NULL, 0, false, FOR_SERVING},
    {OPT_DIGEST, 0, "digest", "CKMON_DIGEST", 0, false, FOR_SERVING},
    {OPT_FOLLOW, 'f', "follow", NULL, 0, false, FOR_TAIL},
    {OPT_MEMBERS, 0, "members", NULL, 0, false, FOR_TAIL},
    {OPT_PRETTY, 0, "pretty", NULL, 0, false, FOR_INSPECT},
    {OPT_ALL, 0, "all", NULL, 0, false, FOR_INSPECT},
    {OPT_JSON, 0, "json", NULL, 0, false, FOR_DIFF},
    {OPT_OUTPUT, 'o', "output", NULL, 0, true, FOR_REPORT},
    {OPT_HELP, 'h', "help", NULL, 0, false, FOR_ALL | FOR_LAST_GOOD | FOR_VIEWS | FOR_VERIFY},
};

#define OPTION_COUNT (sizeof option_table / sizeof option_table[0])

static const char *const sink_formats[] = {"ndjson", "pushgateway", "victoriametrics", "influx",
                                           "prometheus"};

void default_socket_path(char *out, size_t size)
{
    snprintf(out, size, "/tmp/ckmon-%u.sock", (unsigned)getuid());
}

static int string_list_add(struct string_list *l, const char *s)
{
    char **grown = realloc(l->items, (l->count + 1) * sizeof *grown);
    if (!grown) return -1;
    l->items = grown;
    if (!(l->items[l->count] = strdup(s))) return -1;
    l->count++;
    return 0;
}

static void string_list_free(struct string_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

char *string_list_join(const struct string_list *l, char sep)
{
    size_t len = 1;
    for (size_t i = 0; i < l->count; i++)
        len += strlen(l->items[i]) + 1;
    char *out = malloc(len), *p = out;
    if (!out) return NULL;
    *p = '\0';
    for (size_t i = 0; i < l->count; i++) {
        if (i) *p++ = sep;
        p = stpcpy(p, l->items[i]);
    }
    return out;
}

/* Replaces *slot with a copy of value. */
static int set_string(char **slot, const char *value)
{
    char *copy = strdup(value);
    if (!copy) return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

static bool parse_number(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v)) return false;
    *out = v;
    return true;
}

static int add_sink(struct options *o, const char *spec, const char *source, char *err,
                    size_t err_size)
{
    const char *eq = strchr(spec, '=');
    if (!eq) {
        snprintf(err, err_size, "%s: '%s' is not FORMAT=URL", source, spec);
        return -1;
    }
    size_t format_len = (size_t)(eq - spec);
    const char *url = eq + 1;
    const char *format = NULL;
    for (size_t i = 0; i < sizeof sink_formats / sizeof sink_formats[0]; i++)
        if (strlen(sink_formats[i]) == format_len && !strncmp(spec, sink_formats[i], format_len))
            format = sink_formats[i];
    if (!format) {
        snprintf(err, err_size,
                 "%s: unknown sink format '%.*s' (ndjson, pushgateway, victoriametrics, influx, "
                 "prometheus)",
                 source, (int)format_len, spec);
        return -1;
    }
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(err, err_size, "%s: '%s' is not an http:// or https:// URL", source, url);
        return -1;
    }
    struct sink_spec *grown = realloc(o->sinks, (o->sink_count + 1) * sizeof *grown);
    if (!grown) return -1;
    o->sinks = grown;
    struct sink_spec *s = &o->sinks[o->sink_count];
    s->format = strdup(format);
    s->url = strdup(url);
    if (!s->format || !s->url) {
        free(s->format);
        free(s->url);
        return -1;
    }
    o->sink_count++;
    return 0;
}

static int set_sample(struct options *o, const char *value, const char *source, char *err,
                      size_t err_size)
{
    double v;
    if (!parse_number(value, &v) || !(v > 0 && v <= 1)) {
        snprintf(err, err_size, "%s: '%s' is not a fraction in (0, 1]", source, value);
        return -1;
    }
    o->sample = v;
    return set_string(&o->sample_text, value);
}

static int set_budget(struct options *o, const char *value, const char *source, char *err,
                      size_t err_size)
{
    double v;
    if (!budget_parse_percent(value, &v)) {
        snprintf(err, err_size, "%s: '%s' is not a percentage in (0, 100]", source, value);
        return -1;
    }
    return set_string(&o->budget_text, value);
}

static int set_seconds(double *out, const char *value, const char *source, char *err,
                       size_t err_size)
{
    double v;
    if (!parse_number(value, &v) || v < 0) {
        snprintf(err, err_size, "%s: '%s' is not a number of seconds", source, value);
        return -1;
    }
    *out = v;
    return 0;
}

static int add_rule(struct options *o, const char *value, const char *source, char *err,
                    size_t err_size)
{
    char problem[400];
    if (rules_add(&o->rules, value, problem, sizeof problem) == 0) return 0;
    snprintf(err, err_size, "%s: %s", source, problem);
    return -1;
}

/* --fail-on's names, each a built-in rule or a --alert NAME (checked once all rules are in). */
static int check_fail_on(struct options *o, char *err, size_t err_size)
{
    for (size_t i = 0; i < o->fail_on.count; i++)
        if (!rules_known(&o->rules, o->fail_on.items[i])) {
            snprintf(err, err_size, "--fail-on: unknown rule '%s' (%s, or a --alert NAME)",
                     o->fail_on.items[i], builtin_rule_list);
            return -1;
        }
    return 0;
}

static int add_fail_on(struct options *o, const char *value)
{
    char *copy = strdup(value), *save = NULL;
    int rc = copy ? 0 : -1;
    for (char *name = copy ? strtok_r(copy, ", ", &save) : NULL; name && rc == 0;
         name = strtok_r(NULL, ", ", &save))
        rc = string_list_add(&o->fail_on, name);
    free(copy);
    return rc;
}

/* A count of bytes, with an optional K, M or G (powers of 1024). */
static int set_size(unsigned long long *out, const char *value, const char *source, char *err,
                    size_t err_size)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    int shift = !*end               ? 0
                : !strcmp(end, "K") ? 10
                : !strcmp(end, "M") ? 20
                : !strcmp(end, "G") ? 30
                                    : -1;
    if (end == value || *value == '-' || errno || shift < 0 || v > (~0ULL >> shift)) {
        snprintf(err, err_size, "%s: '%s' is not a size (bytes, or a number with K, M or G)",
                 source, value);
        return -1;
    }
    *out = v << shift;
    return 0;
}

static int set_count(unsigned long *out, const char *value, const char *source, char *err,
                     size_t err_size)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (end == value || *end || *value == '-' || errno) {
        snprintf(err, err_size, "%s: '%s' is not a count", source, value);
        return -1;
    }
    *out = v;
    return 0;
}

static int set_socket(struct options *o, const char *value, const char *source, char *err,
                      size_t err_size)
{
    if (strlen(value) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        snprintf(err, err_size, "%s: socket path is longer than %zu bytes", source,
                 sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        return -1;
    }
    return set_string(&o->socket, value);
}

/* ADDR:PORT, [ADDR6]:PORT, or PORT alone (scrape.c binds it). */
static int set_listen(struct options *o, const char *value, const char *source, char *err,
                      size_t err_size)
{
    const char *colon = strrchr(value, ':');
    const char *port = colon ? colon + 1 : value;
    char *end;
    errno = 0;
    unsigned long n = strtoul(port, &end, 10);
    if (end == port || *end || errno || n > 65535 || *port == '-' || *port == '+' ||
        (value[0] == '[' && (!colon || colon[-1] != ']'))) {
        snprintf(err, err_size, "%s: '%s' is not ADDR:PORT", source, value);
        return -1;
    }
    if (set_string(&o->listen, value) < 0) {
        snprintf(err, err_size, "%s: out of memory", source);
        return -1;
    }
    return 0;
}

/* Applies one value of an option; source names the flag or variable in messages. */
static int apply(struct options *o, const struct option_spec *spec, const char *value,
                 const char *source, char *err, size_t err_size)
{
    if (spec->takes_value && *value == '\0') {
        snprintf(err, err_size, "%s: empty value", source);
        return -1;
    }
    int rc;
    switch (spec->id) {
    case OPT_PATHS:
        rc = string_list_add(&o->paths, value);
        break;
    case OPT_KEYS:
        rc = string_list_add(&o->keys, value);
        break;
    case OPT_METRIC_KEYS:
        rc = string_list_add(&o->metric_keys, value);
        break;
    case OPT_LISTEN:
        return set_listen(o, value, source, err, err_size);
    case OPT_RUN_ID:
        rc = set_string(&o->run_id, value);
        break;
    case OPT_LOG:
        rc = set_string(&o->log, value);
        break;
    case OPT_JOB:
        rc = set_string(&o->job, value);
        break;
    case OPT_STATE:
        rc = set_string(&o->state, value);
        break;
    case OPT_OUTPUT:
        rc = set_string(&o->output, value);
        break;
    case OPT_SOCKET:
        return set_socket(o, value, source, err, err_size);
    case OPT_SINK:
        return add_sink(o, value, source, err, err_size);
    case OPT_SAMPLE:
        return set_sample(o, value, source, err, err_size);
    case OPT_BUDGET:
        return set_budget(o, value, source, err, err_size);
    case OPT_FLUSH_TIMEOUT:
        return set_seconds(&o->flush_timeout, value, source, err, err_size);
    case OPT_ON_ALERT_TIMEOUT:
        return set_seconds(&o->on_alert_timeout, value, source, err, err_size);
    case OPT_HDF5_TIMEOUT:
        return set_seconds(&o->hdf5_timeout, value, source, err, err_size);
    case OPT_ALERT:
        return add_rule(o, value, source, err, err_size);
    case OPT_ON_ALERT:
        rc = set_string(&o->on_alert, value);
        break;
    case OPT_FAIL_ON:
        rc = add_fail_on(o, value);
        break;
    case OPT_QUIET:
        o->quiet = true;
        return 0;
    case OPT_DIGEST: /* the flag (no value), or CKMON_DIGEST=1; CKMON_DIGEST=0 is off */
        if (strcmp(value, "") && strcmp(value, "1") && strcmp(value, "0")) {
            snprintf(err, err_size, "%s: '%s' is not 1 or 0", source, value);
            return -1;
        }
        o->digest = strcmp(value, "0") != 0;
        return 0;
    case OPT_LOG_MAX_BYTES:
        return set_size(&o->log_max_bytes, value, source, err, err_size);
    case OPT_LOG_KEEP:
        return set_count(&o->log_keep, value, source, err, err_size);
    case OPT_STATS:
        o->stats = true;
        return 0;
    case OPT_FOLLOW:
        o->follow = true;
        return 0;
    case OPT_MEMBERS:
        o->members = true;
        return 0;
    case OPT_PRETTY:
        o->pretty = true;
        return 0;
    case OPT_ALL:
        o->all_files = true;
        return 0;
    case OPT_JSON:
        o->json = true;
        return 0;
    case OPT_HELP:
        o->help = true;
        return 0;
    default:
        rc = -1;
    }
    if (rc < 0) snprintf(err, err_size, "%s: out of memory", source);
    return rc;
}

/* Applies a variable's value: one value, or each item of a separated list. */
static int apply_env(struct options *o, const struct option_spec *spec, char *err, size_t err_size)
{
    const char *value = getenv(spec->env);
    if (!value || !*value) return 0;
    if (!spec->env_separator) return apply(o, spec, value, spec->env, err, err_size);
    char *copy = strdup(value), *save = NULL;
    const char separators[] = {spec->env_separator, '\0'};
    int rc = copy ? 0 : -1;
    for (char *item = copy ? strtok_r(copy, separators, &save) : NULL; item && rc == 0;
         item = strtok_r(NULL, separators, &save))
        rc = apply(o, spec, item, spec->env, err, err_size);
    if (!copy) snprintf(err, err_size, "%s: out of memory", spec->env);
    free(copy);
    return rc;
}

/* A name may have one entry per set of commands (report's -o is not --log): the one
 * for cmd wins, else any, so that the message can say the option is not cmd's. */
static const struct option_spec *find_option(enum command cmd, const char *name, size_t len,
                                             char short_name)
{
    const struct option_spec *found = NULL;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const struct option_spec *spec = &option_table[i];
        bool named = short_name
                         ? spec->short_name == short_name
                         : strlen(spec->long_name) == len && !strncmp(spec->long_name, name, len);
        if (!named) continue;
        if (spec->commands & (1u << cmd)) return spec;
        found = spec;
    }
    return found;
}

/* Parses the option word argv[*i] (and its value, which may be the next word). */
static int parse_flag(struct options *o, enum command cmd, int argc, char **argv, int *i,
                      bool *given, char *err, size_t err_size)
{
    const char *word = argv[*i], *value = NULL;
    const struct option_spec *spec;
    char source[64];
    if (word[1] == '-') {
        const char *name = word + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        spec = find_option(cmd, name, len, 0);
        if (eq) value = eq + 1;
        snprintf(source, sizeof source, "--%.*s", (int)len, name);
    } else {
        spec = find_option(cmd, NULL, 0, word[1]);
        if (word[2]) value = word + 2;
        snprintf(source, sizeof source, "-%c", word[1]);
    }
    if (!spec || !(spec->commands & (1u << cmd))) {
        snprintf(err, err_size, "unknown option '%s'", source);
        return -1;
    }
    /* Messages name the flag as the user typed it, and its long form when that differs. */
    if (word[1] != '-') snprintf(source, sizeof source, "-%c (--%s)", word[1], spec->long_name);
    if (!spec->takes_value && value) {
        snprintf(err, err_size, "%s takes no value", source);
        return -1;
    }
    if (spec->takes_value && !value) {
        if (*i + 1 >= argc) {
            snprintf(err, err_size, "%s needs a value", source);
            return -1;
        }
        value = argv[++*i];
    }
    given[spec->id] = true;
    return apply(o, spec, value ? value : "", source, err, err_size);
}

static int add_arg(struct options *o, char *arg)
{
    char **grown = realloc(o->args, (size_t)(o->arg_count + 2) * sizeof *grown);
    if (!grown) return -1;
    o->args = grown;
    o->args[o->arg_count++] = arg;
    o->args[o->arg_count] = NULL;
    return 0;
}

/* Words after the options end: run keeps everything from COMMAND on as it is,
 * inspect and diff take files between options, collect, tail and report take none. */
static int parse_words(struct options *o, enum command cmd, int argc, char **argv, bool *given,
                       char *err, size_t err_size)
{
    bool options_ended = false;
    for (int i = 0; i < argc; i++) {
        const char *word = argv[i];
        if (!options_ended && !strcmp(word, "--")) {
            options_ended = true;
            continue;
        }
        if (!options_ended && word[0] == '-' && word[1] != '\0') {
            if (parse_flag(o, cmd, argc, argv, &i, given, err, err_size) < 0) return -1;
            if (o->help) return 0;
            continue;
        }
        if (cmd == COMMAND_COLLECT || cmd == COMMAND_TAIL || cmd == COMMAND_REPORT) {
            snprintf(err, err_size, "unexpected argument '%s'", word);
            return -1;
        }
        if (add_arg(o, argv[i]) < 0) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        if (cmd == COMMAND_RUN) options_ended = true;
    }
    return 0;
}

int options_parse(struct options *o, enum command cmd, int argc, char **argv, char *err,
                  size_t err_size)
{
    memset(o, 0, sizeof *o);
    o->flush_timeout = DEFAULT_FLUSH_SEC;
    o->log_keep = DEFAULT_LOG_KEEP;
    o->on_alert_timeout = DEFAULT_ON_ALERT_TIMEOUT;
    bool given[OPT_COUNT] = {false};
    if (parse_words(o, cmd, argc, argv, given, err, err_size) < 0) return -1;
    if (o->help) return 0;
    /* inspect and diff read flags only: a monitored job's variables must not change what
     * someone inspecting or comparing its files sees. */
    for (size_t i = 0; i < OPTION_COUNT && cmd != COMMAND_INSPECT && cmd != COMMAND_DIFF; i++) {
        const struct option_spec *spec = &option_table[i];
        if (spec->env && (spec->commands & (1u << cmd)) && !given[spec->id] &&
            apply_env(o, spec, err, err_size) < 0)
            return -1;
    }
    if (check_fail_on(o, err, err_size) < 0) return -1;
    if (!o->log && cmd != COMMAND_INSPECT && cmd != COMMAND_DIFF &&
        set_string(&o->log, DEFAULT_LOG) < 0) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    return 0;
}

void options_free(struct options *o)
{
    string_list_free(&o->paths);
    string_list_free(&o->keys);
    string_list_free(&o->metric_keys);
    for (size_t i = 0; i < o->sink_count; i++) {
        free(o->sinks[i].format);
        free(o->sinks[i].url);
    }
    free(o->sinks);
    free(o->log);
    free(o->socket);
    free(o->job);
    free(o->run_id);
    free(o->listen);
    free(o->state);
    free(o->output);
    free(o->sample_text);
    free(o->budget_text);
    rules_free(&o->rules);
    free(o->on_alert);
    string_list_free(&o->fail_on);
    free(o->args);
    memset(o, 0, sizeof *o);
}
