/* regress_main.c — replays files through a fuzz target's entry point, without libFuzzer.
 *
 * `make regress` links each fuzz target with this main instead of libFuzzer's and runs
 * it over the seed corpus and every input that once crashed (tests/fuzz/regressions/),
 * so the bugs fuzzing found stay fixed in an ordinary gcc build and in CI.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *data = malloc(cap);
    for (size_t n; data && (n = fread(data + len, 1, cap - len, f)) > 0;) {
        len += n;
        uint8_t *grown = len == cap ? realloc(data, cap *= 2) : data;
        if (!grown) free(data);
        data = grown;
    }
    fclose(f);
    if (!data) {
        fprintf(stderr, "%s: out of memory\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    int failed = 0;
    for (int i = 1; i < argc; i++)
        failed |= replay(argv[i]);
    return failed;
}
