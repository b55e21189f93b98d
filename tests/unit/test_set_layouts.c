/* test_set_layouts.c — the layouts of multi-file checkpoints (collector/set_layouts.c).
 *
 * Which paths belong to which set and which file commits it; and the check of a set on
 * disk against its own metadata: a DCP .metadata pickle with torch's class names
 * (fixtures/dcp_metadata.h, made by make_dcp_metadata.py, whose ITEMS are the byte ranges
 * expected here), an HF index, DeepSpeed's shard names and `latest`, and the headers of
 * safetensors and zip files, and directories filled under a temporary name and renamed
 * into place. Each test builds the set's directory in a temporary dir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collector/set_layouts.h"
#include "core/parsers/distcp.h"
#include "fixtures/dcp_metadata.h"

static char root[] = "/tmp/ckmon-set-layouts-XXXXXX";

static int make_root(void **state)
{
    (void)state;
    strcpy(root, "/tmp/ckmon-set-layouts-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int remove_root(void **state)
{
    (void)state;
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", root);
    return system(command) == 0 ? 0 : -1;
}

static char *under(const char *name)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", root, name);
    return p;
}

static void write_bytes(const char *name, const void *data, size_t len)
{
    int fd = open(under(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void write_size(const char *name, size_t size)
{
    char *zeros = calloc(1, size + 1);
    write_bytes(name, zeros, size);
    free(zeros);
}

/* Makes directory NAME under the root; returns its path in a buffer of the caller's. */
static char *make_dir(const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s", under(name));
    assert_int_equal(mkdir(path, 0755), 0);
    return path;
}

/* The check's missing lines, joined by " | " ("" when none). */
static char *missing_of(const char *kind, const char *dir, struct set_check *c)
{
    static char text[2048];
    assert_true(set_check(kind, dir, c));
    text[0] = '\0';
    const cJSON *m;
    cJSON_ArrayForEach(m, c->missing)
    {
        if (text[0]) strcat(text, " | ");
        strncat(text, m->valuestring, sizeof text - strlen(text) - 1);
    }
    return text;
}

/* ---- set_place_of ---- */

static void assert_place(const char *path, const char *kind, const char *dir, bool commit)
{
    struct set_place place;
    bool found = set_place_of(path, &place);
    if (!kind) {
        assert_false(found);
        assert_null(place.dir);
        return;
    }
    assert_true(found);
    assert_string_equal(place.kind, kind);
    assert_string_equal(place.dir, dir);
    assert_int_equal(place.commit, commit);
    free(place.dir);
}

static void test_place_of_each_layout(void **state)
{
    (void)state;
    assert_place("/c/step_5/__0_0.distcp", "dcp", "/c/step_5", false);
    assert_place("/c/step_5/__12_3.distcp", "dcp", "/c/step_5", false);
    assert_place("/c/step_5/.metadata", "dcp", "/c/step_5", true);
    assert_place("/m/model-00001-of-00003.safetensors", "hf-sharded", "/m", false);
    assert_place("/m/pytorch_model-00002-of-00002.bin", "hf-sharded", "/m", false);
    assert_place("/m/model.safetensors.index.json", "hf-sharded", "/m", true);
    assert_place("/m/pytorch_model.bin.index.json", "hf-sharded", "/m", true);
    assert_place("/o/checkpoint-500/optimizer.pt", "hf-trainer", "/o/checkpoint-500", false);
    assert_place("/o/checkpoint-500/trainer_state.json", "hf-trainer", "/o/checkpoint-500", true);
    assert_place("/o/checkpoint-500/model-00001-of-00002.safetensors", "hf-trainer",
                 "/o/checkpoint-500", false);
    assert_place("/r/global_step10/mp_rank_00_model_states.pt", "deepspeed", "/r/global_step10",
                 false);
    /* A directory filled under a temporary name: everything below it, however deep. */
    assert_place("/c/7.orbax-checkpoint-tmp-1733/state.pt", "directory",
                 "/c/7.orbax-checkpoint-tmp-1733", false);
    assert_place("/c/7.orbax-checkpoint-tmp-1733/params/d/0.0", "directory",
                 "/c/7.orbax-checkpoint-tmp-1733", false);
    assert_place("/c/step_9.tmp/checkpoint-9/trainer_state.json", "directory", "/c/step_9.tmp",
                 false);
    assert_place("/c/.tmp/model.pt", NULL, NULL, false);
    /* Not sets: a single checkpoint file, a bare name, `latest` naming no directory. */
    assert_place("/c/model.pt", NULL, NULL, false);
    assert_place("/c/model.safetensors", NULL, NULL, false);
    assert_place("model-00001-of-00002.safetensors", NULL, NULL, false);
    assert_place("/nonexistent-ckmon/latest", NULL, NULL, false);
}

static void test_place_of_deepspeed_latest(void **state)
{
    (void)state;
    char dir[512];
    make_dir("global_step7", dir, sizeof dir);
    write_bytes("latest", "global_step7\n", 13);
    assert_place(under("latest"), "deepspeed", under("global_step7"), true);
    /* A tag that escapes the directory, or names nothing, is no commit. */
    write_bytes("latest", "../global_step7", 15);
    assert_place(under("latest"), NULL, NULL, false);
    write_bytes("latest", "global_step8", 12);
    assert_place(under("latest"), NULL, NULL, false);
}

/* ---- DCP ---- */

static void test_dcp_whole(void **state)
{
    (void)state;
    struct set_check c;
    write_bytes(".metadata", dcp_metadata, sizeof dcp_metadata);
    write_size("__0_0.distcp", 9700);
    write_size("__1_0.distcp", 10200);
    assert_true(set_commit_on_disk("dcp", root));
    assert_string_equal(missing_of("dcp", root, &c), "");
    assert_int_equal(cJSON_GetArraySize(c.errors), 0);
    /* The ranks the storage_data's file names say, and every file with its size. */
    assert_int_equal(cJSON_GetArraySize(c.ranks), 2);
    assert_int_equal(cJSON_GetArraySize(c.files), 3);
    assert_int_equal(cJSON_GetObjectItem(c.files, "__1_0.distcp")->valuedouble, 10200);
    set_check_free(&c);
}

static void test_dcp_short_and_absent(void **state)
{
    (void)state;
    struct set_check c;
    write_bytes(".metadata", dcp_metadata, sizeof dcp_metadata);
    write_size("__0_0.distcp", 9699); /* one byte short of layers.0.weight's end */
    assert_string_equal(missing_of("dcp", root, &c),
                        "__0_0.distcp: 9699 of 9700 bytes | __1_0.distcp: absent");
    set_check_free(&c);
}

static void test_dcp_never_committed(void **state)
{
    (void)state;
    struct set_check c;
    write_size("__0_0.distcp", 9700);
    assert_false(set_commit_on_disk("dcp", root));
    assert_string_equal(missing_of("dcp", root, &c),
                        ".metadata: absent (the set was never committed)");
    set_check_free(&c);
}

static void test_dcp_metadata_unreadable(void **state)
{
    (void)state;
    struct set_check c;
    write_bytes(".metadata", dcp_metadata, sizeof dcp_metadata / 2); /* a torn pickle */
    missing_of("dcp", root, &c);
    assert_int_equal(cJSON_GetArraySize(c.errors), 1);
    assert_string_equal(cJSON_GetArrayItem(c.errors, 0)->valuestring,
                        ".metadata: no storage_data in its pickle");
    set_check_free(&c);
}

/* The items of one .distcp file as the .metadata beside it names them, by offset. */
static void test_dcp_items_of(void **state)
{
    (void)state;
    struct distcp_items items;
    write_bytes(".metadata", dcp_metadata, sizeof dcp_metadata);
    assert_true(dcp_items_of(under("__1_0.distcp"), &items));
    assert_int_equal(items.count, 2);
    assert_string_equal(items.at[0].name, "layers.1.weight");
    assert_int_equal(items.at[0].offset, 0);
    assert_int_equal(items.at[0].length, 9000);
    assert_string_equal(items.at[1].name, "layers.1.bias");
    assert_int_equal(items.at[1].offset, 9000);
    assert_ptr_equal(distcp_item_at(&items, 9000), &items.at[1]);
    assert_null(distcp_item_at(&items, 8999));
    dcp_items_free(&items);
    assert_true(dcp_items_of(under("__0_0.distcp"), &items));
    assert_int_equal(items.count, 2);
    assert_string_equal(items.at[0].name, "step");
    dcp_items_free(&items);
    assert_false(dcp_items_of(under("__7_0.distcp"), &items)); /* named by no item */
    assert_false(dcp_items_of(under("model.pt"), &items));
    unlink(under(".metadata"));
    assert_false(dcp_items_of(under("__0_0.distcp"), &items));
}

/* ---- Hugging Face ---- */

/* A safetensors file with one F32 tensor of n elements; cut bytes short of whole. */
static void write_safetensors(const char *name, int n, int cut)
{
    char header[128];
    int hlen =
        snprintf(header, sizeof header,
                 "{\"w\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[0,%d]}}", n, 4 * n);
    size_t total = 8 + (size_t)hlen + 4 * (size_t)n - (size_t)cut;
    uint8_t *bytes = calloc(1, 8 + (size_t)hlen + 4 * (size_t)n);
    for (int i = 0; i < 8; i++)
        bytes[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(bytes + 8, header, (size_t)hlen);
    write_bytes(name, bytes, total);
    free(bytes);
}

static const char INDEX[] = "{\"metadata\":{\"total_size\":80},\"weight_map\":{"
                            "\"a\":\"model-00001-of-00002.safetensors\","
                            "\"b\":\"model-00002-of-00002.safetensors\","
                            "\"c\":\"model-00002-of-00002.safetensors\"}}";

static void test_hf_sharded(void **state)
{
    (void)state;
    struct set_check c;
    write_safetensors("model-00001-of-00002.safetensors", 10, 0);
    assert_false(set_commit_on_disk("hf-sharded", root));
    assert_string_equal(missing_of("hf-sharded", root, &c),
                        "*.index.json: absent (the set was never committed)");
    set_check_free(&c);
    write_bytes("model.safetensors.index.json", INDEX, strlen(INDEX));
    assert_true(set_commit_on_disk("hf-sharded", root));
    assert_string_equal(missing_of("hf-sharded", root, &c),
                        "model-00002-of-00002.safetensors: absent");
    set_check_free(&c);
    /* The second shard, then cut short: its own header says how long it must be. */
    write_safetensors("model-00002-of-00002.safetensors", 10, 0);
    assert_string_equal(missing_of("hf-sharded", root, &c), "");
    set_check_free(&c);
    write_safetensors("model-00002-of-00002.safetensors", 10, 3);
    size_t hlen = strlen("{\"w\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[0,40]}}");
    char expected[128];
    snprintf(expected, sizeof expected, "model-00002-of-00002.safetensors: %zu of %zu bytes",
             8 + hlen + 37, 8 + hlen + 40);
    assert_string_equal(missing_of("hf-sharded", root, &c), expected);
    set_check_free(&c);
}

static void test_hf_index_without_weight_map(void **state)
{
    (void)state;
    struct set_check c;
    write_bytes("model.safetensors.index.json", "{\"metadata\":{}}", 15);
    missing_of("hf-sharded", root, &c);
    assert_int_equal(cJSON_GetArraySize(c.errors), 1);
    assert_string_equal(cJSON_GetArrayItem(c.errors, 0)->valuestring,
                        "model.safetensors.index.json: no weight_map");
    set_check_free(&c);
}

static void test_hf_trainer(void **state)
{
    (void)state;
    struct set_check c;
    char dir_copy[512];
    make_dir("checkpoint-5", dir_copy, sizeof dir_copy);
    write_safetensors("checkpoint-5/model.safetensors", 4, 0);
    assert_string_equal(missing_of("hf-trainer", dir_copy, &c),
                        "trainer_state.json: absent (the set was never committed)");
    set_check_free(&c);
    write_bytes("checkpoint-5/trainer_state.json", "{\"global_step\":5}", 17);
    assert_true(set_commit_on_disk("hf-trainer", dir_copy));
    assert_string_equal(missing_of("hf-trainer", dir_copy, &c), "");
    set_check_free(&c);
}

/* ---- DeepSpeed ---- */

static void test_deepspeed(void **state)
{
    (void)state;
    struct set_check c;
    char dir[512];
    make_dir("global_step10", dir, sizeof dir);
    write_size("global_step10/zero_pp_rank_0_mp_rank_00_optim_states.pt", 10);
    write_size("global_step10/zero_pp_rank_2_mp_rank_00_optim_states.pt", 10);
    assert_false(set_commit_on_disk("deepspeed", dir));
    assert_string_equal(missing_of("deepspeed", dir, &c),
                        "mp_rank_00_model_states.pt: absent | "
                        "zero_pp_rank_1_mp_rank_*_optim_states.pt: absent | "
                        "latest: does not name this step (the set was never committed)");
    set_check_free(&c);
    write_size("global_step10/mp_rank_00_model_states.pt", 10);
    write_size("global_step10/zero_pp_rank_1_mp_rank_00_optim_states.pt", 10);
    write_bytes("latest", "global_step10", 13);
    assert_true(set_commit_on_disk("deepspeed", dir));
    assert_string_equal(missing_of("deepspeed", dir, &c), "");
    assert_int_equal(cJSON_GetArraySize(c.files), 4);
    set_check_free(&c);
}

/* ---- Any kind: a zip (torch.save) file must end with its central directory ---- */

static void test_zip_without_its_end(void **state)
{
    (void)state;
    struct set_check c;
    char dir[512];
    make_dir("checkpoint-9", dir, sizeof dir);
    write_bytes("checkpoint-9/trainer_state.json", "{}", 2);
    write_bytes("checkpoint-9/optimizer.pt", "PK\3\4 a torch.save cut short", 28);
    write_bytes("checkpoint-9/whole.pt",
                "PK\3\4....PK\5\6"
                "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
                30);
    assert_string_equal(missing_of("hf-trainer", dir, &c),
                        "optimizer.pt: truncated (28 bytes, no zip directory at the end)");
    set_check_free(&c);
}

/* ---- A directory renamed into place ---- */

static void test_directory(void **state)
{
    (void)state;
    struct set_check c;
    char temp[512], final[512], params[512];
    make_dir("7.orbax-checkpoint-tmp-1733", temp, sizeof temp);
    make_dir("7.orbax-checkpoint-tmp-1733/params", params, sizeof params);
    snprintf(final, sizeof final, "%s", under("7"));
    write_size("7.orbax-checkpoint-tmp-1733/_CHECKPOINT_METADATA", 30);
    write_size("7.orbax-checkpoint-tmp-1733/params/w.npy", 200);
    assert_false(set_commit_on_disk("directory", temp));
    assert_string_equal(missing_of("directory", temp, &c),
                        "7.orbax-checkpoint-tmp-1733: not renamed into place (the set was never "
                        "committed)");
    /* Files below it count, named from the set's directory. */
    assert_int_equal(cJSON_GetArraySize(c.files), 2);
    assert_int_equal(cJSON_GetObjectItem(c.files, "params/w.npy")->valuedouble, 200);
    set_check_free(&c);
    assert_int_equal(rename(temp, final), 0);
    assert_true(set_commit_on_disk("directory", temp)); /* gone: renamed by someone */
    assert_true(set_commit_on_disk("directory", final));
    assert_string_equal(missing_of("directory", final, &c), "");
    assert_int_equal(cJSON_GetArraySize(c.files), 2);
    set_check_free(&c);
    /* The temporary name's files belong to the set record of the final name. */
    assert_true(set_dir_is(temp, final));
    assert_true(set_dir_is("/c/step_9.tmp", "/c/step_9"));
    assert_false(set_dir_is("/c/step_9.tmp", "/c/step_1"));
    assert_false(set_dir_is("/d/step_9.tmp", "/c/step_9"));
    assert_false(set_dir_is("/c/step_9x", "/c/step_9"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_place_of_each_layout),
        cmocka_unit_test_setup_teardown(test_place_of_deepspeed_latest, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_dcp_whole, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_dcp_short_and_absent, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_dcp_never_committed, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_dcp_metadata_unreadable, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_dcp_items_of, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_hf_sharded, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_hf_index_without_weight_map, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_hf_trainer, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_deepspeed, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_zip_without_its_end, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_directory, make_root, remove_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
