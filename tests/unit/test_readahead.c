/* test_readahead.c — the collector's reader thread (collector/readahead.c) hands the
 * parser exactly the bytes parse_feed_pread does.
 *
 * The file sizes straddle and wrap the ring of chunks several times; the errors are
 * real pread failures (a directory, a pipe), compared with parse_feed_pread's report.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector/readahead.h"
#include "xorshift.h"

/* A parser that keeps every byte it is fed. */
struct recorder {
    struct parser base;
    uint8_t *bytes;
    size_t len;
};

static void record_feed(struct parser *p, const uint8_t *data, size_t len)
{
    struct recorder *c = (struct recorder *)p;
    assert_true(len > 0);
    c->bytes = realloc(c->bytes, c->len + len);
    assert_non_null(c->bytes);
    memcpy(c->bytes + c->len, data, len);
    c->len += len;
}

static void recorder_init(struct recorder *c)
{
    memset(c, 0, sizeof *c);
    c->base.feed = record_feed;
}

/* A temporary file of `size` deterministic random bytes, unlinked; returns its fd. */
static int random_file(size_t size, uint8_t **content)
{
    char path[] = "/tmp/ckmon-readahead-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    uint8_t *data = malloc(size + 1);
    assert_non_null(data);
    uint64_t state = 0x9e3779b97f4a7c15ull ^ size;
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)xorshift64(&state);
    assert_int_equal(write(fd, data, size), (ssize_t)size);
    *content = data;
    return fd;
}

static void test_bytes_equal_the_file(void **state)
{
    (void)state;
    const size_t KIB = 1024;
    const size_t sizes[] = {0,
                            1,
                            4095,
                            128 * KIB - 1,
                            128 * KIB,
                            128 * KIB + 1,
                            256 * KIB,
                            1024 * KIB,
                            3 * 1024 * KIB + 12345,
                            9 * 1024 * KIB};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint8_t *content;
        int fd = random_file(sizes[k], &content);
        const off_t froms[] = {0, 1000};
        for (size_t f = 0; f < 2; f++) {
            off_t from = froms[f] < (off_t)sizes[k] ? froms[f] : (off_t)sizes[k];
            struct recorder c;
            struct report r;
            recorder_init(&c);
            report_init(&r, NULL);
            assert_true(parse_feed_readahead(fd, from, &c.base, &r));
            assert_int_equal(r.error_count, 0);
            assert_int_equal(c.len, sizes[k] - (size_t)from);
            if (c.len) assert_memory_equal(c.bytes, content + from, c.len);
            free(c.bytes);
            report_free(&r);
        }
        free(content);
        close(fd);
    }
}

/* Both sources on a descriptor pread refuses: the same result and the same error. */
static void assert_same_failure(int fd)
{
    struct recorder threaded, plain;
    struct report tr, pr;
    recorder_init(&threaded);
    recorder_init(&plain);
    report_init(&tr, NULL);
    report_init(&pr, NULL);
    assert_false(parse_feed_readahead(fd, 0, &threaded.base, &tr));
    assert_false(parse_feed_pread(fd, 0, &plain.base, &pr));
    assert_int_equal(threaded.len, 0);
    assert_int_equal(plain.len, 0);
    assert_int_equal(tr.error_count, 1);
    assert_int_equal(pr.error_count, 1);
    assert_string_equal(cJSON_GetArrayItem(tr.errors, 0)->valuestring,
                        cJSON_GetArrayItem(pr.errors, 0)->valuestring);
    assert_non_null(strstr(cJSON_GetArrayItem(tr.errors, 0)->valuestring, "read failed at byte 0"));
    report_free(&tr);
    report_free(&pr);
}

static void test_read_errors_match_pread(void **state)
{
    (void)state;
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
    assert_true(dir >= 0);
    assert_same_failure(dir); /* EISDIR */
    close(dir);
    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    assert_same_failure(pipe_fds[0]); /* ESPIPE */
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_equal_the_file),
        cmocka_unit_test(test_read_errors_match_pread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
