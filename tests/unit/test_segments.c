/* test_segments.c — naming, listing, finding, following and reading rotated log segments
 * (collector/segments.c), on real files in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collector/segments.h"

static char dir[64], base[96];

static void touch(const char *suffix, time_t mtime)
{
    char path[160];
    snprintf(path, sizeof path, "%s%s", base, suffix);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
    assert_int_equal(futimens(fd, times), 0);
    close(fd);
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/ckmon-segments-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(base, sizeof base, "%s/run.jsonl", dir);
    return 0;
}

static int teardown(void **state)
{
    char command[128];
    snprintf(command, sizeof command, "rm -rf %s", dir);
    return system(command);
}

static void test_names(void **state)
{
    char *active = segment_path("/x/log", SEGMENT_ACTIVE), *third = segment_path("/x/log", 3);
    assert_string_equal(active, "/x/log");
    assert_string_equal(third, "/x/log.3");
    free(active);
    free(third);
}

static void test_list_is_numeric_and_strict(void **state)
{
    touch("", 100);
    touch(".1", 100);
    touch(".2", 100);
    touch(".10", 100);
    touch(".01", 100);  /* not ours: a leading zero */
    touch(".3x", 100);  /* not a number */
    touch(".old", 100); /* logrotate's dateext-like names */
    struct segment_list l;
    assert_true(segment_list(base, &l));
    assert_int_equal(l.count, 3);
    assert_int_equal(l.seqs[0], 1);
    assert_int_equal(l.seqs[1], 2);
    assert_int_equal(l.seqs[2], 10);
    segment_list_free(&l);
}

static void test_find_by_inode(void **state)
{
    touch("", 100);
    touch(".4", 100);
    struct stat st;
    char path[160];
    unsigned long seq = 99;
    snprintf(path, sizeof path, "%s.4", base);
    assert_int_equal(stat(path, &st), 0);
    assert_true(segment_find(base, st.st_dev, st.st_ino, &seq));
    assert_int_equal(seq, 4);
    assert_int_equal(stat(base, &st), 0);
    assert_true(segment_find(base, st.st_dev, st.st_ino, &seq));
    assert_int_equal(seq, SEGMENT_ACTIVE);
    assert_false(segment_find(base, st.st_dev, st.st_ino + 12345, &seq));
}

static void test_next(void **state)
{
    touch("", 300);
    touch(".1", 100);
    touch(".2", 200);
    assert_int_equal(segment_next(base, 1), 2);
    assert_int_equal(segment_next(base, 2), SEGMENT_ACTIVE); /* no .3 */
    assert_int_equal(segment_next(base, SEGMENT_ACTIVE), SEGMENT_ACTIVE);
    touch(".2", 50); /* older than .1: another rotator's numbering, not ours */
    assert_int_equal(segment_next(base, 1), SEGMENT_ACTIVE);
}

static void write_text(const char *suffix, const char *text)
{
    char path[160];
    snprintf(path, sizeof path, "%s%s", base, suffix);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void append_line(void *ctx, const char *line)
{
    strcat(ctx, line);
}

static void test_each_line_reads_the_whole_log_in_order(void **state)
{
    char seen[256] = "";
    errno = 0;
    assert_false(segment_each_line(base, append_line, seen)); /* no log yet */
    assert_int_equal(errno, ENOENT);
    write_text(".2", "c\nd\n");
    write_text(".10", "e\n");
    write_text(".1", "a\nb"); /* a last line without its newline is still a line */
    write_text("", "f\n");
    assert_true(segment_each_line(base, append_line, seen));
    assert_string_equal(seen, "a\nbc\nd\ne\nf\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_list_is_numeric_and_strict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_by_inode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_line_reads_the_whole_log_in_order, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
