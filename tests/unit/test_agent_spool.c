/* test_agent_spool.c — the agent spool's file format (core/agent_spool.h), as the agent
 * writes it and a collector reads it: the header names the socket, packets come back in
 * order and byte for byte, and a file for another socket, of another version, or cut
 * inside a packet gives nothing past what it holds whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/agent_spool.h"
#include "core/wire.h"

static size_t build(unsigned char *buf, const char *socket, const char *const *packets, size_t n)
{
    size_t len = agent_spool_header(socket, buf, AGENT_SPOOL_HEADER_MAX);
    for (size_t i = 0; i < n; i++) {
        agent_spool_length(strlen(packets[i]), buf + len);
        memcpy(buf + len + 4, packets[i], strlen(packets[i]));
        len += 4 + strlen(packets[i]);
    }
    return len;
}

static void test_packets_come_back_in_order(void **state)
{
    (void)state;
    const char *packets[] = {"{\"t\":\"hello\",\"pid\":7}", "{\"t\":\"open\",\"id\":1}", "x"};
    unsigned char buf[512];
    size_t len = build(buf, "/tmp/a.sock", packets, 3);
    assert_int_equal(len, 16 + 11 + 3 * 4 + strlen(packets[0]) + strlen(packets[1]) + 1);
    assert_memory_equal(buf, "CKMSPOOL\x01\0\0\0\x0b\0\0\0/tmp/a.sock", 27);
    struct agent_spool_reader r;
    assert_true(agent_spool_open(&r, buf, len, "/tmp/a.sock"));
    const char *p;
    size_t n;
    for (size_t i = 0; i < 3; i++) {
        assert_true(agent_spool_next(&r, &p, &n));
        assert_int_equal(n, strlen(packets[i]));
        assert_memory_equal(p, packets[i], n);
    }
    assert_false(agent_spool_next(&r, &p, &n));
}

static void test_another_socket_or_version_is_refused(void **state)
{
    (void)state;
    const char *packets[] = {"{}"};
    unsigned char buf[512];
    size_t len = build(buf, "/tmp/a.sock", packets, 1);
    struct agent_spool_reader r;
    assert_false(agent_spool_open(&r, buf, len, "/tmp/b.sock"));
    assert_false(agent_spool_open(&r, buf, len, "/tmp/a.soc"));
    assert_false(agent_spool_open(&r, buf, 20, "/tmp/a.sock"));
    buf[8] = 2;
    assert_false(agent_spool_open(&r, buf, len, "/tmp/a.sock"));
    assert_int_equal(agent_spool_header("", buf, sizeof buf), 0);
    char too_long[200];
    memset(too_long, 'x', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    assert_int_equal(agent_spool_header(too_long, buf, sizeof buf), 0);
}

static void test_a_cut_or_oversized_packet_ends_the_file(void **state)
{
    (void)state;
    const char *packets[] = {"first", "second"};
    unsigned char buf[512];
    size_t len = build(buf, "s", packets, 2);
    struct agent_spool_reader r;
    const char *p;
    size_t n;
    assert_true(agent_spool_open(&r, buf, len - 1, "s"));
    assert_true(agent_spool_next(&r, &p, &n));
    assert_false(agent_spool_next(&r, &p, &n)); /* "second" lost its last byte */
    agent_spool_length(WIRE_MAX_MESSAGE + 1, buf + 17);
    assert_true(agent_spool_open(&r, buf, len, "s"));
    assert_false(agent_spool_next(&r, &p, &n));
}

static void test_the_directory_sits_beside_the_socket(void **state)
{
    (void)state;
    char dir[256];
    assert_true(agent_spool_dir("/run/x/c.sock", 1000, dir, sizeof dir));
    assert_string_equal(dir, "/run/x/ckmon-agent-spool-1000");
    assert_true(agent_spool_dir("/c.sock", 0, dir, sizeof dir));
    assert_string_equal(dir, "/ckmon-agent-spool-0");
    assert_true(agent_spool_dir("c.sock", 5, dir, sizeof dir));
    assert_string_equal(dir, "./ckmon-agent-spool-5");
    assert_false(agent_spool_dir("/run/x/c.sock", 1000, dir, 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packets_come_back_in_order),
        cmocka_unit_test(test_another_socket_or_version_is_refused),
        cmocka_unit_test(test_a_cut_or_oversized_packet_ends_the_file),
        cmocka_unit_test(test_the_directory_sits_beside_the_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
