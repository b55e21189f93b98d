/* test_paths.c — the quick test of opens for reading (core/paths.c, paths_may_match).
 *
 * paths_may_match may only say no when the full test (absolute_path, then paths_match)
 * says no: every glob list below is checked against every path, relative and absolute,
 * with "." and ".." and repeated slashes, from a working directory whose own name matches
 * some globs. Ground truth is the full test itself. And it must say no to what Python's
 * imports open, or it would save nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/paths.h"

static char *user_globs[] = {"*.pt",           "/data/exact.bin", "*/run-?/*.ckpt", "*[.]npz",
                             "*\\*.weird",     "*step_[0-9]*",    "*/models/*",     "*.pt[h]",
                             "*/checkpoint-*", "*/latest",        "literal"};

static const char *const paths[] = {
    "model.pt",
    "a/b/model.pt",
    "/abs/model.pt",
    "/abs/../model.pt",
    "x/./model.pt",
    "model.pt/",
    "model.pt/.",
    "dir/..",
    ".",
    "..",
    "/",
    "latest",
    "a/latest",
    "../latest",
    "/srv/latest",
    "/srv/latestx",
    "x/latest/..",
    "global_step5/m.bin",
    "/g/global_step5/m.bin",
    "/g/global_step/m.bin",
    "m.bin",
    "checkpoint-3/config.json",
    "/c/checkpoint-3/config.json",
    "/c/checkpoint-x/config.json",
    "/c/checkpoint-3/../config.json",
    "ckpt/a.json",
    "/ckpt/a.json",
    "/x/a.json",
    "run-1/a.ckpt",
    "/r/run-1/a.ckpt",
    "/r/run-12/a.ckpt",
    "a.npz",
    "/a.npz",
    "a*.weird",
    "/a*.weird",
    "/a.weird",
    "/data/exact.bin",
    "exact.bin",
    "/data/../data/exact.bin",
    "step_12",
    "/s/step_12",
    "/s/step_x",
    "models/a",
    "/m/models/a",
    "x.pth",
    "/x.pth",
    "/x.pthx",
    "literal",
    "/literal",
    "a/.metadata",
    "/a/.metadata",
    "/usr/lib/python3/dist-packages/torch/__init__.py",
    "/usr/lib/python3/dist-packages/torch/__pycache__/__init__.cpython-311.pyc",
    "",
    "//double//slash.pt",
    "/trail.pt/..",
    "a.safetensors.index.json",
    "/a.bin.index.json",
    "/x/checkpoint-12/trainer_state.json",
    "/d/__0_0.distcp",
    "/d/.metadata"};

static void check_globs(char *const *globs, size_t count)
{
    struct glob_hints hints;
    assert_true(glob_hints_compile(&hints, globs, count));
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char abs[PATH_MAX];
        bool matches =
            absolute_path(AT_FDCWD, paths[i], abs, sizeof abs) && paths_match(globs, count, abs);
        if (matches && !paths_may_match(&hints, paths[i]))
            fail_msg("%s (absolute %s) matches, but the quick test said no", paths[i], abs);
    }
    free(hints.hints);
}

/* From a working directory whose name carries what the globs look for, and from /. */
static void test_never_rejects_a_match(void **state)
{
    (void)state;
    char dir[] = "/tmp/ckmon-paths-XXXXXX", cwd[PATH_MAX], sub[PATH_MAX + 64];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/checkpoint-7", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_non_null(getcwd(cwd, sizeof cwd));
    const char *places[] = {sub, "/", dir};
    for (size_t p = 0; p < 3; p++) {
        assert_int_equal(chdir(places[p]), 0);
        check_globs((char *const *)default_checkpoint_globs, default_checkpoint_glob_count);
        check_globs(user_globs, sizeof user_globs / sizeof user_globs[0]);
        for (size_t g = 0; g < sizeof user_globs / sizeof user_globs[0]; g++)
            check_globs(&user_globs[g], 1);
    }
    assert_int_equal(chdir(cwd), 0);
    rmdir(sub);
    rmdir(dir);
}

/* What `import torch` opens: rejected without making the path absolute. */
static void test_rejects_what_python_imports(void **state)
{
    (void)state;
    struct glob_hints hints;
    assert_true(glob_hints_compile(&hints, (char *const *)default_checkpoint_globs,
                                   default_checkpoint_glob_count));
    static const char *const imports[] = {
        "/usr/lib/python3/dist-packages/torch/__pycache__/__init__.cpython-311.pyc",
        "/usr/lib/python3/dist-packages/torch/_C.cpython-311-x86_64-linux-gnu.so",
        "/usr/lib/python3.11/encodings/__init__.py",
        "/usr/lib/python3/dist-packages/numpy/core/_multiarray_umath.cpython-311.so",
        "/etc/ld.so.cache",
        "/proc/self/maps",
        "/usr/lib/python3/dist-packages/torch/lib/libtorch_cpu.so",
        "/usr/lib/python3/dist-packages/torch-1.13.1.dist-info/METADATA",
    };
    for (size_t i = 0; i < sizeof imports / sizeof imports[0]; i++)
        if (paths_may_match(&hints, imports[i])) fail_msg("%s was not rejected", imports[i]);
    /* and what a job reads back */
    assert_true(paths_may_match(&hints, "/runs/a/epoch_3.pt"));
    assert_true(paths_may_match(&hints, "/runs/checkpoint-500/config.json"));
    assert_true(paths_may_match(&hints, "epoch_3.pt"));
    free(hints.hints);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_never_rejects_a_match),
        cmocka_unit_test(test_rejects_what_python_imports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
