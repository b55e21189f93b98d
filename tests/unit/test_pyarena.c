/* test_pyarena.c — giving back what an arena handed out after a mark (core/parsers/pyobj.c).
 *
 * The pickle walker gives back a tensor's rebuild arguments once torch made its view of
 * them (pickle.c): everything allocated after the mark, small blocks carved from the
 * current chunk, new chunks and large blocks slotted behind it, must go back, zeroed, and
 * nothing allocated before the mark may be touched. A cap that only fits the arena again
 * after the release shows that the bytes were really returned.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/parsers/pyobj.h"

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

static void test_release_gives_back_everything_after_the_mark(void **state)
{
    (void)state;
    struct pyarena *a = pyarena_new(1u << 20);
    unsigned char *before = pyarena_alloc(a, 100);
    memset(before, 0xaa, 100);
    struct pyarena_mark m = pyarena_here(a);
    unsigned char *small = pyarena_alloc(a, 48);
    unsigned char *big = pyarena_alloc(a, 200000); /* a chunk of its own */
    unsigned char *many[40];
    for (int i = 0; i < 40; i++) /* several new chunks of 64 KiB */
        many[i] = pyarena_alloc(a, 8000);
    assert_non_null(small);
    assert_non_null(big);
    memset(small, 0x55, 48);
    assert_true(pyarena_since(a, m, small));
    assert_true(pyarena_since(a, m, big + 199999));
    assert_true(pyarena_since(a, m, many[39]));
    assert_false(pyarena_since(a, m, before));
    assert_false(pyarena_since(a, m, before + 99));
    assert_null(pyarena_alloc(a, 600000)); /* over the cap while they are held */

    pyarena_release(a, m);
    for (int i = 0; i < 100; i++)
        assert_int_equal(before[i], 0xaa);
    unsigned char *again = pyarena_alloc(a, 48);
    assert_ptr_equal(again, small); /* carved from the same place */
    assert_true(all_zero(again, 48));
    assert_non_null(pyarena_alloc(a, 600000)); /* the bytes came back */
    pyarena_free(a);
}

static void test_release_at_an_empty_arena(void **state)
{
    (void)state;
    struct pyarena *a = pyarena_new(1u << 20);
    struct pyarena_mark m = pyarena_here(a);
    unsigned char *p = pyarena_alloc(a, 64);
    assert_true(pyarena_since(a, m, p));
    pyarena_release(a, m);
    assert_non_null(pyarena_alloc(a, (1u << 20) - 4096));
    pyarena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release_gives_back_everything_after_the_mark),
        cmocka_unit_test(test_release_at_an_empty_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
