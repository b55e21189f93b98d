/* set_layouts.c — the layouts of multi-file checkpoints, and checking a set on disk.
 *
 * Checks read only metadata and the files' sizes and headers, never tensor data, so a
 * set of hundreds of gigabytes is judged in milliseconds. They look at the shared
 * directory itself, not at what this collector saw written: shards written by ranks on
 * other hosts are judged as well.
 *   dcp         __<rank>_<n>.distcp from every rank; .metadata (a pickle of torch's
 *               Metadata) commits it, and its storage_data says which byte ranges of
 *               which file each item is
 *   hf-sharded  NAME-0000k-of-0000N.safetensors|.bin; NAME.safetensors.index.json or
 *               NAME.bin.index.json commits it, its weight_map names the shards
 *   deepspeed   global_stepN/ shards; the `latest` file beside it, holding the tag,
 *               commits it; zero_pp_rank_K shards must exist for every K up to the last
 *   hf-trainer  checkpoint-N/, whatever is in it; trainer_state.json commits it
 *   directory   everything below a directory with a temporary name (Orbax's
 *               NAME.orbax-checkpoint-tmp-T/, NAME.tmp/); renaming the directory into
 *               place commits it (sets.h: sets_renamed)
 * In every kind a safetensors file must hold the bytes its header describes and a zip
 * (torch.save) file must end with its central directory: that catches a shard truncated
 * after the fact, whoever wrote it.
 */
#include "set_layouts.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/parsers/distcp.h"
#include "core/parsers/pickle.h"
#include "core/parsers/report.h"

#define METADATA_MAX_BYTES     (256LL << 20) /* a .metadata or index beyond this is not read */
#define SAFETENSORS_HEADER_MAX (100LL << 20)
#define ZIP_TAIL               65558 /* the end-of-central-directory record and the longest comment */
#define DIRECTORY_DEPTH        4     /* levels of subdirectories a directory set's check reads */

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static char *path_join(const char *dir, const char *name)
{
    char *out = NULL;
    return asprintf(&out, "%s/%s", dir, name) < 0 ? NULL : out;
}

/* The whole of a small file, NUL-terminated; NULL when absent or too large. */
static char *read_small(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    char *buf = NULL;
    if (fd < 0) return NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= METADATA_MAX_BYTES &&
        (buf = malloc((size_t)st.st_size + 1))) {
        ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
        if (n < 0) n = 0;
        buf[n] = '\0';
        *len = (size_t)n;
    }
    close(fd);
    return buf;
}

/* DeepSpeed's `latest`: the tag of the committed step, a directory beside it. */
static char *deepspeed_tag_dir(const char *latest_path)
{
    size_t len = 0;
    char *tag = read_small(latest_path, &len), *dir = NULL, *out = NULL;
    if (!tag || len == 0 || len > 255) goto done;
    tag[strcspn(tag, "\r\n")] = '\0';
    if (!*tag || strchr(tag, '/') || !strcmp(tag, ".") || !strcmp(tag, "..")) goto done;
    if (!(dir = strndup(latest_path, (size_t)(base_of(latest_path) - latest_path))) ||
        asprintf(&out, "%s%s", dir, tag) < 0)
        out = NULL;
    struct stat st;
    if (out && (stat(out, &st) != 0 || !S_ISDIR(st.st_mode))) {
        free(out);
        out = NULL;
    }
done:
    free(tag);
    free(dir);
    return out;
}

const char *set_kind(const char *name)
{
    static const char *const kinds[] = {"dcp", "hf-sharded", "deepspeed", "hf-trainer",
                                        "directory"};
    for (size_t i = 0; name && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i], name)) return kinds[i];
    return NULL;
}

/* The names of directories filled before they are renamed into place: Orbax's
 * NAME.orbax-checkpoint-tmp-TIMESTAMP, and NAME.tmp. */
static bool temporary_dir(const char *name, size_t len)
{
    static const char *const patterns[] = {"*.orbax-checkpoint-tmp-*", "*.tmp"};
    char copy[NAME_MAX + 1];
    if (len == 0 || len > NAME_MAX) return false;
    memcpy(copy, name, len);
    copy[len] = '\0';
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++)
        if (!fnmatch(patterns[i], copy, 0) && strcmp(copy, ".tmp")) return true;
    return false;
}

bool set_dir_is(const char *dir, const char *set_dir)
{
    if (!strcmp(dir, set_dir)) return true;
    const char *base = base_of(dir), *set_base = base_of(set_dir);
    size_t n = strlen(set_base);
    if (base - dir != set_base - set_dir || strncmp(dir, set_dir, (size_t)(base - dir)) ||
        strncmp(base, set_base, n) || !temporary_dir(base, strlen(base)))
        return false;
    return !strcmp(base + n, ".tmp") || !strncmp(base + n, ".orbax-checkpoint-tmp-", 22);
}

/* The innermost directory of path with a temporary name, malloc'd; NULL: none. */
static char *temporary_ancestor(const char *path, const char *base)
{
    const char *end = base - 1; /* the '/' before the file's name */
    while (end > path) {
        const char *start = end;
        while (start > path && start[-1] != '/')
            start--;
        if (temporary_dir(start, (size_t)(end - start))) return strndup(path, (size_t)(end - path));
        end = start - 1;
    }
    return NULL;
}

bool set_place_of(const char *path, struct set_place *place)
{
    *place = (struct set_place){0};
    const char *base = base_of(path);
    if (base == path) return false;
    if ((place->dir = temporary_ancestor(path, base))) {
        place->kind = "directory";
        return true;
    }
    char *dir = strndup(path, (size_t)(base - path - 1));
    if (!dir) return false;
    const char *parent = base_of(dir);
    if (!fnmatch("checkpoint-[0-9]*", parent, 0)) {
        place->kind = "hf-trainer";
        place->commit = !strcmp(base, "trainer_state.json");
    } else if (ends_with(base, ".distcp") || !strcmp(base, ".metadata")) {
        place->kind = "dcp";
        place->commit = !strcmp(base, ".metadata");
    } else if (!fnmatch("*-[0-9]*-of-[0-9]*.safetensors", base, 0) ||
               !fnmatch("*-[0-9]*-of-[0-9]*.bin", base, 0) ||
               ends_with(base, ".safetensors.index.json") || ends_with(base, ".bin.index.json")) {
        place->kind = "hf-sharded";
        place->commit = ends_with(base, ".index.json");
    } else if (!fnmatch("global_step*", parent, 0)) {
        place->kind = "deepspeed";
    } else if (!strcmp(base, "latest")) {
        free(dir);
        if (!(dir = deepspeed_tag_dir(path))) return false;
        place->kind = "deepspeed";
        place->commit = true;
    }
    if (!place->kind) {
        free(dir);
        return false;
    }
    place->dir = dir;
    return true;
}

/* ---- checks ---- */

static void add_text(cJSON *array, const char *fmt, const char *name, long long a, long long b)
{
    char text[600];
    snprintf(text, sizeof text, fmt, name, a, b);
    cJSON_AddItemToArray(array, cJSON_CreateString(text));
}

/* A file the metadata references must exist and hold at least `needed` bytes. */
static void check_covers(struct set_check *c, const char *dir, const char *name, long long needed)
{
    char *path = path_join(dir, name);
    struct stat st;
    if (!path) return;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        add_text(c->missing, "%s: absent", name, 0, 0);
    else if ((long long)st.st_size < needed)
        add_text(c->missing, "%s: %lld of %lld bytes", name, (long long)st.st_size, needed);
    free(path);
}

/* The bytes a safetensors file's header says it holds; -1 when it is not readable. */
static long long safetensors_needed(int fd)
{
    uint8_t head[8];
    if (pread(fd, head, 8, 0) != 8) return -1;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | head[i];
    if (n == 0 || n > (uint64_t)SAFETENSORS_HEADER_MAX) return -1;
    char *text = malloc(n + 1);
    if (!text) return -1;
    ssize_t got = pread(fd, text, n, 8);
    long long end = -1;
    if (got == (ssize_t)n) {
        text[n] = '\0';
        cJSON *h = cJSON_Parse(text), *t;
        end = h ? 0 : -1;
        cJSON_ArrayForEach(t, h)
        {
            cJSON *offsets = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
            cJSON *last = cJSON_GetArrayItem(offsets, 1);
            if (cJSON_IsNumber(last) && last->valuedouble > end) end = (long long)last->valuedouble;
        }
        cJSON_Delete(h);
    }
    free(text);
    return end < 0 ? -1 : 8 + (long long)n + end;
}

/* Whether a zip file's last bytes hold its end-of-central-directory record. */
static bool zip_has_end(int fd, off_t size)
{
    off_t start = size > ZIP_TAIL ? size - ZIP_TAIL : 0;
    size_t n = (size_t)(size - start);
    uint8_t *tail = malloc(n);
    bool found = false;
    if (tail && pread(fd, tail, n, start) == (ssize_t)n)
        for (size_t i = n >= 22 ? n - 22 + 1 : 0; i-- > 0 && !found;)
            found = !memcmp(tail + i, "PK\5\6", 4);
    free(tail);
    return found;
}

/* A file of the set on disk: its size into files, and whether its own header says it is
 * whole (safetensors, zip); a torn one goes to missing. */
static void check_file(struct set_check *c, const char *dir, const char *name)
{
    char *path = path_join(dir, name);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) : -1;
    struct stat st;
    uint8_t magic[4];
    free(path);
    if (fd < 0) return;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        cJSON_AddNumberToObject(c->files, name, (double)st.st_size);
        if (ends_with(name, ".safetensors")) {
            long long needed = safetensors_needed(fd);
            if (needed < 0)
                add_text(c->missing, "%s: unreadable header", name, 0, 0);
            else if (needed > (long long)st.st_size)
                add_text(c->missing, "%s: %lld of %lld bytes", name, (long long)st.st_size, needed);
        } else if (pread(fd, magic, 4, 0) == 4 && !memcmp(magic, "PK\3\4", 4) &&
                   !ends_with(name, ".distcp") && !zip_has_end(fd, st.st_size)) {
            add_text(c->missing, "%s: truncated (%lld bytes, no zip directory at the end)", name,
                     (long long)st.st_size, 0);
        }
    }
    close(fd);
}

/* The files of dir (and of its subdirectories, depth levels down: a directory set's
 * arrays), named relative to top. */
static void check_tree(struct set_check *c, const char *top, const char *sub, int depth)
{
    char *dir = sub ? path_join(top, sub) : strdup(top);
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *name = NULL;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || ends_with(e->d_name, ".tmp"))
            continue;
        if (!sub)
            check_file(c, top, e->d_name);
        else if ((name = path_join(sub, e->d_name)))
            check_file(c, top, name);
        if (depth > 0 && e->d_type == DT_DIR)
            check_tree(c, top, name ? name : e->d_name, depth - 1);
        free(name);
    }
    if (d) closedir(d);
    free(dir);
}

static void check_directory(struct set_check *c, const char *dir)
{
    check_tree(c, dir, NULL, 0);
}

/* ---- DCP: the .metadata pickle ---- */

struct pickle_root {
    struct pyobj *root;
};

static void on_root(void *ctx, struct pyobj *root)
{
    ((struct pickle_root *)ctx)->root = root;
}

static const struct pyobj *attr(const struct pyobj *o, const char *name)
{
    return o && o->kind == PY_OBJECT && o->attrs ? pyobj_dict_get(o->attrs, name) : NULL;
}

static bool int_of(const struct pyobj *o, long long *v)
{
    if (!o || o->kind != PY_INT) return false;
    *v = o->u.integer;
    return true;
}

/* The end of the furthest item referenced in each file, from storage_data. */
struct needed {
    char **names;
    long long *ends;
    size_t count;
};

static void need(struct needed *n, const char *name, long long end)
{
    for (size_t i = 0; i < n->count; i++)
        if (!strcmp(n->names[i], name)) {
            if (end > n->ends[i]) n->ends[i] = end;
            return;
        }
    char **names = realloc(n->names, (n->count + 1) * sizeof *names);
    if (names) n->names = names;
    long long *ends = names ? realloc(n->ends, (n->count + 1) * sizeof *ends) : NULL;
    if (ends) n->ends = ends;
    if (ends && (names[n->count] = strdup(name))) ends[n->count++] = end;
}

/* A .metadata read and walked: its storage_data dict, or NULL. */
struct dcp_metadata {
    char *bytes;
    struct report rep;
    struct pickle_walker *walker;
    struct pickle_root got;
};

static const struct pyobj *dcp_storage(const char *dir, struct dcp_metadata *m)
{
    char *path = path_join(dir, ".metadata");
    size_t len = 0;
    *m = (struct dcp_metadata){0};
    report_init(&m->rep, NULL);
    m->bytes = path ? read_small(path, &len) : NULL;
    free(path);
    if (!m->bytes || !(m->walker = pickle_walker_new(&m->rep, on_root, &m->got))) return NULL;
    pickle_walker_feed(m->walker, (const uint8_t *)m->bytes, len);
    pickle_walker_finish(m->walker);
    const struct pyobj *storage = attr(m->got.root, "storage_data");
    return storage && storage->kind == PY_DICT ? storage : NULL;
}

static void dcp_metadata_free(struct dcp_metadata *m)
{
    if (m->walker) pickle_walker_free(m->walker);
    report_free(&m->rep);
    free(m->bytes);
}

/* One storage_data entry: MetadataIndex -> _StorageInfo(relative_path, offset, length);
 * false for an entry of another shape or a path outside the directory. */
static bool storage_entry(const struct pyobj *storage, size_t i, const char **file,
                          long long *offset, long long *length)
{
    const struct pyobj *info = storage->u.map.at[i + 1];
    const struct pyobj *rel = attr(info, "relative_path");
    if (!rel || rel->kind != PY_STR || !rel->u.str.data || strchr(rel->u.str.data, '/') ||
        !int_of(attr(info, "offset"), offset) || !int_of(attr(info, "length"), length) ||
        *offset < 0 || *length < 0)
        return false;
    *file = rel->u.str.data;
    return true;
}

static void check_dcp(struct set_check *c, const char *dir)
{
    struct dcp_metadata m;
    const struct pyobj *storage = dcp_storage(dir, &m);
    if (!m.bytes) {
        add_text(c->missing, "%s: absent (the set was never committed)", ".metadata", 0, 0);
        dcp_metadata_free(&m);
        return;
    }
    struct needed n = {0};
    for (size_t i = 0; storage && i + 1 < storage->u.map.len; i += 2) {
        const char *file;
        long long offset, length;
        if (storage_entry(storage, i, &file, &offset, &length)) need(&n, file, offset + length);
    }
    if (!storage)
        cJSON_AddItemToArray(c->errors,
                             cJSON_CreateString(".metadata: no storage_data in its pickle"));
    for (size_t i = 0; i < n.count; i++) {
        int rank, file;
        check_covers(c, dir, n.names[i], n.ends[i]);
        if (sscanf(n.names[i], "__%d_%d.distcp", &rank, &file) == 2) {
            bool seen = false;
            const cJSON *r;
            cJSON_ArrayForEach(r, c->ranks) seen |= r->valueint == rank;
            if (!seen) cJSON_AddItemToArray(c->ranks, cJSON_CreateNumber(rank));
        }
        free(n.names[i]);
    }
    free(n.names);
    free(n.ends);
    dcp_metadata_free(&m);
}

static int by_offset(const void *a, const void *b)
{
    const struct distcp_item *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static int by_name(const void *a, const void *b)
{
    const struct distcp_item *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : by_offset(a, b);
}

/* Chunks of one tensor in one file (a sharded tensor's pieces) share its name: each is
 * then named NAME@OFFSET, by where it is in the file. */
static void name_chunks(struct distcp_items *items)
{
    if (items->count < 2) return; /* nothing to sort (qsort must not see NULL) */
    qsort(items->at, items->count, sizeof *items->at, by_name);
    for (size_t i = 0, j; i < items->count; i = j) {
        for (j = i + 1; j < items->count && !strcmp(items->at[j].name, items->at[i].name); j++)
            ;
        for (size_t k = i; j - i > 1 && k < j; k++) {
            char *named = NULL;
            if (asprintf(&named, "%s@%llu", items->at[k].name,
                         (unsigned long long)items->at[k].offset) < 0)
                continue;
            free(items->at[k].name);
            items->at[k].name = named;
        }
    }
    qsort(items->at, items->count, sizeof *items->at, by_offset);
}

bool dcp_items_of(const char *path, struct distcp_items *items)
{
    *items = (struct distcp_items){0};
    const char *base = base_of(path);
    if (base == path || !ends_with(base, ".distcp")) return false;
    char *dir = strndup(path, (size_t)(base - path - 1));
    struct dcp_metadata m;
    const struct pyobj *storage = dir ? dcp_storage(dir, &m) : NULL;
    for (size_t i = 0; storage && i + 1 < storage->u.map.len; i += 2) {
        const char *file;
        long long offset, length;
        const struct pyobj *fqn = attr(storage->u.map.at[i], "fqn");
        if (!storage_entry(storage, i, &file, &offset, &length) || strcmp(file, base) || !fqn ||
            fqn->kind != PY_STR || !fqn->u.str.data)
            continue;
        struct distcp_item *at = realloc(items->at, (items->count + 1) * sizeof *at);
        if (!at) break;
        items->at = at;
        at[items->count] =
            (struct distcp_item){(uint64_t)offset, (uint64_t)length, strdup(fqn->u.str.data)};
        if (at[items->count].name) items->count++;
    }
    if (dir) dcp_metadata_free(&m);
    free(dir);
    name_chunks(items);
    if (items->count) return true;
    dcp_items_free(items);
    return false;
}

void dcp_items_free(struct distcp_items *items)
{
    for (size_t i = 0; i < items->count; i++)
        free(items->at[i].name);
    free(items->at);
    *items = (struct distcp_items){0};
}

/* ---- HF: the index's weight_map ---- */

static void check_hf_index(struct set_check *c, const char *dir, const char *index_name)
{
    char *path = path_join(dir, index_name);
    size_t len = 0;
    char *text = path ? read_small(path, &len) : NULL;
    free(path);
    cJSON *index = text ? cJSON_Parse(text) : NULL, *shard;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
    if (!cJSON_IsObject(map)) add_text(c->errors, "%s: no weight_map", index_name, 0, 0);
    cJSON *seen = cJSON_CreateObject();
    cJSON_ArrayForEach(shard, map)
    {
        if (!cJSON_IsString(shard) || strchr(shard->valuestring, '/') ||
            cJSON_GetObjectItemCaseSensitive(seen, shard->valuestring))
            continue;
        cJSON_AddTrueToObject(seen, shard->valuestring);
        check_covers(c, dir, shard->valuestring, 1);
    }
    cJSON_Delete(seen);
    cJSON_Delete(index);
    free(text);
}

static void check_hf(struct set_check *c, const char *dir, bool need_index)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool indexed = false;
    while (d && (e = readdir(d)))
        if (ends_with(e->d_name, ".safetensors.index.json") ||
            ends_with(e->d_name, ".bin.index.json")) {
            check_hf_index(c, dir, e->d_name);
            indexed = true;
        }
    if (d) closedir(d);
    if (need_index && !indexed)
        add_text(c->missing, "%s: absent (the set was never committed)", "*.index.json", 0, 0);
}

/* ---- DeepSpeed: shard names ---- */

static void check_deepspeed(struct set_check *c, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool model = false;
    long long dp_last = -1;
    uint64_t seen_bits = 0; /* zero_pp_rank_K for K < 64 */
    while (d && (e = readdir(d))) {
        const char *zero = strstr(e->d_name, "zero_pp_rank_");
        int k, mp;
        model |= !fnmatch("*mp_rank_*_model_states.pt", e->d_name, 0);
        if (zero && sscanf(zero, "zero_pp_rank_%d_mp_rank_%d", &k, &mp) == 2 && k >= 0) {
            if (k > dp_last) dp_last = k;
            if (k < 64) seen_bits |= 1ULL << k;
        }
    }
    if (d) closedir(d);
    if (!model) add_text(c->missing, "%s: absent", "mp_rank_00_model_states.pt", 0, 0);
    for (long long k = 0; k <= dp_last && k < 64; k++)
        if (!(seen_bits >> k & 1)) {
            char text[80];
            snprintf(text, sizeof text, "zero_pp_rank_%lld_mp_rank_*_optim_states.pt: absent", k);
            cJSON_AddItemToArray(c->missing, cJSON_CreateString(text));
        }
}

bool set_check(const char *kind, const char *dir, struct set_check *out)
{
    *out = (struct set_check){cJSON_CreateArray(), cJSON_CreateArray(), cJSON_CreateArray(),
                              cJSON_CreateObject()};
    if (!out->missing || !out->errors || !out->ranks || !out->files) {
        set_check_free(out);
        return false;
    }
    if (!strcmp(kind, "dcp"))
        check_dcp(out, dir);
    else if (!strcmp(kind, "hf-sharded"))
        check_hf(out, dir, true);
    else if (!strcmp(kind, "hf-trainer"))
        check_hf(out, dir, false);
    else if (!strcmp(kind, "deepspeed"))
        check_deepspeed(out, dir);
    if (!strcmp(kind, "deepspeed") && !set_commit_on_disk(kind, dir))
        add_text(out->missing, "%s: does not name this step (the set was never committed)",
                 "latest", 0, 0);
    if (!strcmp(kind, "hf-trainer") && !set_commit_on_disk(kind, dir))
        add_text(out->missing, "%s: absent (the set was never committed)", "trainer_state.json", 0,
                 0);
    if (!strcmp(kind, "directory")) {
        if (temporary_dir(base_of(dir), strlen(base_of(dir))))
            add_text(out->missing, "%s: not renamed into place (the set was never committed)",
                     base_of(dir), 0, 0);
        check_tree(out, dir, NULL, DIRECTORY_DEPTH);
        return true;
    }
    check_directory(out, dir);
    return true;
}

void set_check_free(struct set_check *c)
{
    cJSON_Delete(c->missing);
    cJSON_Delete(c->errors);
    cJSON_Delete(c->ranks);
    cJSON_Delete(c->files);
    *c = (struct set_check){0};
}

bool set_commit_on_disk(const char *kind, const char *dir)
{
    struct stat st;
    char *path = NULL;
    bool found = false;
    if (!strcmp(kind, "dcp"))
        path = path_join(dir, ".metadata");
    else if (!strcmp(kind, "hf-trainer"))
        path = path_join(dir, "trainer_state.json");
    else if (!strcmp(kind, "deepspeed")) {
        /* `latest` beside the step directory, naming it */
        char *parent = base_of(dir) > dir ? strndup(dir, (size_t)(base_of(dir) - dir - 1)) : NULL;
        char *latest = parent ? path_join(parent, "latest") : NULL;
        char *tag_dir = latest ? deepspeed_tag_dir(latest) : NULL;
        found = tag_dir && !strcmp(tag_dir, dir);
        free(parent);
        free(latest);
        free(tag_dir);
        return found;
    } else if (!strcmp(kind, "hf-sharded")) {
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d)) && !found)
            found = ends_with(e->d_name, ".index.json");
        if (d) closedir(d);
        return found;
    } else if (!strcmp(kind, "directory")) {
        /* renamed into place: by another process, whose collector writes the set; or
         * removed: nothing is left to judge */
        return !temporary_dir(base_of(dir), strlen(base_of(dir))) || stat(dir, &st) != 0;
    }
    found = path && stat(path, &st) == 0;
    free(path);
    return found;
}
