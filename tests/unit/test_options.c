/* test_options.c — flags and environment of run, collect and inspect (collector/options.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/options.h"

static const char *const variables[] = {
    "CKMON_PATHS",  "CKMON_KEYS", "CKMON_SINKS", "CKMON_LOG",           "CKMON_SAMPLE",
    "CKMON_SOCKET", "CKMON_JOB",  "CKMON_STATE", "CKMON_LOG_MAX_BYTES", "CKMON_LOG_KEEP"};

static int clear_environment(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof variables / sizeof variables[0]; i++)
        unsetenv(variables[i]);
    return 0;
}

/* Parses a NULL-terminated list of words; the words must outlive o (args point at them). */
#define WORDS(...) ((char *[]){__VA_ARGS__, NULL})

static int count_words(char **words)
{
    int n = 0;
    while (words[n])
        n++;
    return n;
}

static char err[512];

static int parse(struct options *o, enum command cmd, char **words)
{
    err[0] = '\0';
    return options_parse(o, cmd, count_words(words), words, err, sizeof err);
}

static void expect_error(enum command cmd, char **words, const char *fragment)
{
    struct options o;
    assert_int_equal(parse(&o, cmd, words), -1);
    if (!strstr(err, fragment)) fail_msg("error '%s' does not mention '%s'", err, fragment);
    options_free(&o);
}

static void test_defaults(void **state)
{
    (void)state;
    struct options o;
    assert_int_equal(parse(&o, COMMAND_COLLECT, WORDS(NULL)), 0);
    assert_string_equal(o.log, "./ckmon.jsonl");
    assert_null(o.socket);
    assert_null(o.job);
    assert_null(o.state);
    assert_null(o.sample_text);
    assert_int_equal(o.paths.count, 0);
    assert_int_equal(o.keys.count, 0);
    assert_int_equal(o.sink_count, 0);
    assert_true(o.flush_timeout == 10.0);
    assert_true(o.hdf5_timeout == 0); /* hdf5.c's own deadline */
    assert_false(o.help);
    options_free(&o);
}

static void test_flags(void **state)
{
    (void)state;
    struct options o;
    assert_int_equal(parse(&o, COMMAND_COLLECT,
                           WORDS("-p", "*.pt", "--paths=*.bin", "--paths", "/ck/*", "-o", "l.jsonl",
                                 "--keys", "model.*", "--keys=epoch", "--socket", "/tmp/s", "--job",
                                 "j1", "--sample=0.25", "--state", "/st", "--flush-timeout", "2.5",
                                 "-s", "influx=http://h:8086/db", "--sink=ndjson=https://h/x")),
                     0);
    assert_int_equal(o.paths.count, 3);
    assert_string_equal(o.paths.items[0], "*.pt");
    assert_string_equal(o.paths.items[1], "*.bin");
    assert_string_equal(o.paths.items[2], "/ck/*");
    assert_int_equal(o.keys.count, 2);
    assert_string_equal(o.keys.items[1], "epoch");
    assert_string_equal(o.log, "l.jsonl");
    assert_string_equal(o.socket, "/tmp/s");
    assert_string_equal(o.job, "j1");
    assert_string_equal(o.state, "/st");
    assert_string_equal(o.sample_text, "0.25");
    assert_true(o.sample == 0.25);
    assert_true(o.flush_timeout == 2.5);
    assert_int_equal(o.sink_count, 2);
    assert_string_equal(o.sinks[0].format, "influx");
    assert_string_equal(o.sinks[0].url, "http://h:8086/db");
    assert_string_equal(o.sinks[1].format, "ndjson");
    assert_string_equal(o.sinks[1].url, "https://h/x");
    char *joined = string_list_join(&o.paths, ':');
    assert_string_equal(joined, "*.pt:*.bin:/ck/*");
    free(joined);
    options_free(&o);
}

static void test_environment_fallbacks(void **state)
{
    (void)state;
    struct options o;
    setenv("CKMON_PATHS", "*.pt::*.bin", 1); /* empty items are skipped */
    setenv("CKMON_KEYS", "a.*:b", 1);
    setenv("CKMON_SINKS", "ndjson=http://a  pushgateway=https://b", 1);
    setenv("CKMON_LOG", "-", 1);
    setenv("CKMON_SAMPLE", "1", 1);
    setenv("CKMON_SOCKET", "/run/s", 1);
    setenv("CKMON_JOB", "envjob", 1);
    setenv("CKMON_STATE", "/var/st", 1);
    assert_int_equal(parse(&o, COMMAND_RUN, WORDS("cmd")), 0);
    assert_int_equal(o.paths.count, 2);
    assert_string_equal(o.paths.items[1], "*.bin");
    assert_int_equal(o.keys.count, 2);
    assert_string_equal(o.keys.items[0], "a.*");
    assert_int_equal(o.sink_count, 2);
    assert_string_equal(o.sinks[1].format, "pushgateway");
    assert_string_equal(o.log, "-");
    assert_true(o.sample == 1.0);
    assert_string_equal(o.socket, "/run/s");
    assert_string_equal(o.job, "envjob");
    assert_string_equal(o.state, "/var/st");
    options_free(&o);
}

static void test_flags_win_over_environment(void **state)
{
    (void)state;
    struct options o;
    setenv("CKMON_PATHS", "*.a:*.b", 1);
    setenv("CKMON_JOB", "envjob", 1);
    setenv("CKMON_SAMPLE", "0.5", 1);
    assert_int_equal(parse(&o, COMMAND_RUN, WORDS("-p", "*.c", "--job", "flagjob", "cmd")), 0);
    assert_int_equal(o.paths.count, 1); /* the flag replaces the variable's whole list */
    assert_string_equal(o.paths.items[0], "*.c");
    assert_string_equal(o.job, "flagjob");
    assert_string_equal(o.sample_text, "0.5"); /* not given as a flag: still from the variable */
    options_free(&o);
}

static void test_run_stops_at_command(void **state)
{
    (void)state;
    struct options o;
    assert_int_equal(parse(&o, COMMAND_RUN, WORDS("-p", "*.pt", "python3", "-p", "x", "--", "y")),
                     0);
    assert_int_equal(o.paths.count, 1);
    assert_int_equal(o.arg_count, 5);
    assert_string_equal(o.args[0], "python3");
    assert_string_equal(o.args[1], "-p");
    assert_string_equal(o.args[3], "--");
    assert_null(o.args[5]);
    options_free(&o);

    assert_int_equal(parse(&o, COMMAND_RUN, WORDS("--job", "j", "--", "-weird", "--help")), 0);
    assert_false(o.help);
    assert_int_equal(o.arg_count, 2);
    assert_string_equal(o.args[0], "-weird");
    options_free(&o);

    assert_int_equal(parse(&o, COMMAND_RUN, WORDS("--job", "j")), 0);
    assert_int_equal(o.arg_count, 0);
    options_free(&o);
}

static void test_inspect_takes_files_between_options(void **state)
{
    (void)state;
    struct options o;
    setenv("CKMON_KEYS", "ignored", 1); /* inspect does not read the environment */
    assert_int_equal(parse(&o, COMMAND_INSPECT,
                           WORDS("a.pt", "--keys", "w*", "b.pt", "--sample", "0.1", "--", "-c.pt")),
                     0);
    assert_int_equal(o.arg_count, 3);
    assert_string_equal(o.args[0], "a.pt");
    assert_string_equal(o.args[1], "b.pt");
    assert_string_equal(o.args[2], "-c.pt");
    assert_int_equal(o.keys.count, 1);
    assert_string_equal(o.keys.items[0], "w*");
    assert_null(o.log);
    options_free(&o);
}

static void test_help(void **state)
{
    (void)state;
    struct options o;
    assert_int_equal(parse(&o, COMMAND_COLLECT, WORDS("--help")), 0);
    assert_true(o.help);
    options_free(&o);
    assert_int_equal(parse(&o, COMMAND_RUN, WORDS("-h", "--bogus")), 0);
    assert_true(o.help);
    options_free(&o);
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_error(COMMAND_RUN, WORDS("--sample", "-0.1", "x"), "--sample");
    expect_error(COMMAND_RUN, WORDS("--sample", "1.5", "x"), "'1.5' is not a fraction");
    expect_error(COMMAND_RUN, WORDS("--sample", "0", "x"), "--sample");
    expect_error(COMMAND_RUN, WORDS("--sample", "half", "x"), "--sample");
    expect_error(COMMAND_RUN, WORDS("--sample", "nan", "x"), "--sample");
    expect_error(COMMAND_INSPECT, WORDS("--sample=2", "f"), "--sample");
    expect_error(COMMAND_COLLECT, WORDS("--sink", "graphite=http://h"),
                 "unknown sink format 'graphite'");
    expect_error(COMMAND_COLLECT, WORDS("--sink", "ndjson=ftp://h"), "http://");
    expect_error(COMMAND_COLLECT, WORDS("-s", "ndjson"), "FORMAT=URL");
    expect_error(COMMAND_COLLECT, WORDS("--flush-timeout", "-1"), "--flush-timeout");
    expect_error(COMMAND_INSPECT, WORDS("--hdf5-timeout", "soon", "f"), "--hdf5-timeout");
    expect_error(COMMAND_DIFF, WORDS("--hdf5-timeout", "5", "a", "b"), "--hdf5-timeout");
    expect_error(COMMAND_COLLECT, WORDS("--log="), "--log: empty value");
    expect_error(COMMAND_COLLECT,
                 WORDS("--socket", "/tmp/"
                                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                 "longer than");
}

static void test_bad_flags(void **state)
{
    (void)state;
    expect_error(COMMAND_RUN, WORDS("--bogus", "x"), "unknown option '--bogus'");
    expect_error(COMMAND_RUN, WORDS("-x", "cmd"), "unknown option '-x'");
    expect_error(COMMAND_COLLECT, WORDS("-p"), "-p (--paths) needs a value");
    expect_error(COMMAND_COLLECT, WORDS("--help=yes"), "takes no value");
    expect_error(COMMAND_COLLECT, WORDS("stray"), "unexpected argument 'stray'");
    expect_error(COMMAND_INSPECT, WORDS("--log", "x", "f"), "unknown option '--log'");
    expect_error(COMMAND_INSPECT, WORDS("-p", "*.pt", "f"), "unknown option '-p'");
}

static void test_bad_environment(void **state)
{
    (void)state;
    setenv("CKMON_SAMPLE", "2", 1);
    expect_error(COMMAND_COLLECT, WORDS(NULL), "CKMON_SAMPLE: '2'");
    unsetenv("CKMON_SAMPLE");
    setenv("CKMON_SINKS", "ndjson=http://ok bogus=http://no", 1);
    expect_error(COMMAND_COLLECT, WORDS(NULL), "CKMON_SINKS: unknown sink format 'bogus'");
    /* A flag overrides a bad variable without reading it. */
    struct options o;
    assert_int_equal(parse(&o, COMMAND_COLLECT, WORDS("-s", "influx=http://h")), 0);
    assert_int_equal(o.sink_count, 1);
    options_free(&o);
}

static void test_log_rotation(void **state)
{
    (void)state;
    struct options o;
    assert_int_equal(parse(&o, COMMAND_COLLECT, WORDS(NULL)), 0);
    assert_true(o.log_max_bytes == 0 && o.log_keep == DEFAULT_LOG_KEEP && !o.stats);
    options_free(&o);
    setenv("CKMON_LOG_KEEP", "2", 1);
    assert_int_equal(parse(&o, COMMAND_COLLECT, WORDS("--log-max-bytes", "64M", "--stats")), 0);
    assert_true(o.log_max_bytes == 64ull << 20 && o.log_keep == 2 && o.stats);
    options_free(&o);
    assert_int_equal(parse(&o, COMMAND_RUN, WORDS("--log-max-bytes=1500", "x")), 0);
    assert_true(o.log_max_bytes == 1500);
    options_free(&o);
    expect_error(COMMAND_RUN, WORDS("--log-max-bytes", "10T", "x"), "is not a size");
    expect_error(COMMAND_RUN, WORDS("--log-max-bytes", "-5", "x"), "is not a size");
    expect_error(COMMAND_RUN, WORDS("--log-keep", "many", "x"), "is not a count");
    expect_error(COMMAND_RUN, WORDS("--stats", "x"), "unknown option '--stats'");
}

int main(void)
{
#define TEST(f) cmocka_unit_test_setup(f, clear_environment)
    const struct CMUnitTest tests[] = {
        TEST(test_defaults),
        TEST(test_flags),
        TEST(test_environment_fallbacks),
        TEST(test_flags_win_over_environment),
        TEST(test_run_stops_at_command),
        TEST(test_inspect_takes_files_between_options),
        TEST(test_help),
        TEST(test_bad_values),
        TEST(test_bad_flags),
        TEST(test_bad_environment),
        TEST(test_log_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
