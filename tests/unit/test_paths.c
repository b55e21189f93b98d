/* test_paths.c — prepared glob sets (core/paths.c) against fnmatch itself.
 *
 * The agent asks about every open for writing through a glob_set, which refuses most
 * paths before fnmatch runs: by the text a glob's match must end with, or a run of its
 * literal characters the path must contain. A shortcut that refuses a path fnmatch would
 * accept loses a checkpoint, so every glob here (sets, '?', escapes, an unterminated '[')
 * is tried on every path and the answer must be fnmatch's, through both glob_set_match
 * and paths_match.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fnmatch.h>
#include <stdlib.h>

#include "core/paths.h"

static const char *const globs[] = {
    "*.pt",
    "*checkpoint*/*.json",
    "*/checkpoint-[0-9]*/*",
    "*/global_step[0-9]*/*",
    "*/latest",
    "*/.metadata",
    "/runs/?/x.pt",
    "*[]]*.bin",
    "*[!a-z]x.pt",
    "*\\*.pt",
    "*[ab.pt",
    "/exact/path.npy",
    "*",
    "*.",
    "run-*-[0-9][0-9].ckpt",
    "*/ckpt/*",
};

static const char *const paths[] = {
    "/runs/a/x.pt",
    "/runs/ab/x.pt",
    "/w/checkpoint-12/model.safetensors",
    "/w/checkpoint-x/m",
    "/w/global_step7/mp.pt",
    "/w/latest",
    "/w/latestx",
    "/w/.metadata",
    "/a/checkpoint_dir/trainer_state.json",
    "/a/b]c.bin",
    "/a/9x.pt",
    "/a/ax.pt",
    "/a/*.pt",
    "/a/[ab.pt",
    "/exact/path.npy",
    "/exact/path.npyx",
    "/",
    "/a.",
    "/r/run-a-42.ckpt",
    "/r/run-a-4.ckpt",
    "/d/ckpt/x",
    "/f0.txt",
    "",
};

static void test_sets_agree_with_fnmatch(void **state)
{
    (void)state;
    size_t n = sizeof globs / sizeof globs[0];
    for (size_t g = 0; g < n; g++) {
        char *one[] = {(char *)globs[g]};
        struct glob_set *s = glob_set_new(one, 1);
        assert_non_null(s);
        for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
            bool expected = fnmatch(globs[g], paths[p], 0) == 0;
            if (glob_set_match(s, paths[p]) != expected ||
                paths_match(one, 1, paths[p]) != expected)
                fail_msg("glob %s, path %s: fnmatch says %d", globs[g], paths[p], expected);
        }
        free(s);
    }
}

static void test_default_globs(void **state)
{
    (void)state;
    struct glob_set *s =
        glob_set_new((char *const *)default_checkpoint_globs, default_checkpoint_glob_count);
    assert_non_null(s);
    assert_true(glob_set_match(s, "/w/model.h5"));
    assert_true(glob_set_match(s, "/w/checkpoint-3/optimizer.pt"));
    assert_true(glob_set_match(s, "/w/checkpoint-3/rng_state_0.bin"));
    assert_false(glob_set_match(s, "/w/many/f17.txt"));
    assert_false(glob_set_match(s, "/w/checkpoint-x/notes.txt"));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sets_agree_with_fnmatch),
        cmocka_unit_test(test_default_globs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
