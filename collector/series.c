/* series.c — per-series snapshots of the previous checkpoint, in memory and on disk.
 *
 * A collector serving many ranks of a large model would hold ranks × tensors summaries
 * if it kept every series in memory, so with a state dir only the SERIES_CACHED most
 * recently used stay; the others are read back from their file when their next
 * checkpoint comes, which is rare next to the work of writing it.
 */
#include "series.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/jsontext.h"
#include "core/grow.h"
#include "core/strbuf.h"
#include "metrics.h"

#define SERIES_CACHED   64
#define SERIES_FILE_MAX (256u << 20)

const char *const tensor_stat_names[STAT_COUNT] = {"min", "max", "mean", "std", "nan", "inf"};

bool dtype_is_floating(const char *dtype)
{
    return !strncmp(dtype, "float", 5) || !strncmp(dtype, "bfloat", 6) || !strcmp(dtype, "half") ||
           !strcmp(dtype, "double");
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct tensor_summary *)a)->name,
                  ((const struct tensor_summary *)b)->name);
}

static double number_or_nan(const cJSON *item)
{
    return cJSON_IsNumber(item) ? item->valuedouble : NAN;
}

/* The members a summary reads: the statistics', then these. */
enum { MEMBER_NAME = STAT_COUNT, MEMBER_DTYPE, MEMBER_SHAPE, MEMBER_SAMPLED, MEMBER_COUNT };

/* A tensor's members by what they are, in one pass (a lookup per member walked the
 * tensor's members ten times, for each of a record's tensors); the first of a repeated
 * name counts, as with a lookup. */
static void summary_members(const cJSON *t, const cJSON *found[MEMBER_COUNT])
{
    static const char *const names[MEMBER_COUNT - STAT_COUNT] = {"name", "dtype", "shape",
                                                                 "sampled"};
    for (const cJSON *m = t->child; m; m = m->next) {
        for (int i = 0; m->string && i < MEMBER_COUNT; i++) {
            const char *name = i < STAT_COUNT ? tensor_stat_names[i] : names[i - STAT_COUNT];
            if (!found[i] && m->string[0] == name[0] && !strcmp(m->string, name)) {
                found[i] = m;
                break;
            }
        }
    }
}

/* Room for one more summary at the end of l, or NULL. */
static struct tensor_summary *list_room(struct tensor_list *l)
{
    if (!GROW_FOR_ONE(l->items, l->count, l->alloc, 64)) return NULL;
    return &l->items[l->count];
}

bool tensor_list_add(struct tensor_list *l, const cJSON *tensor)
{
    const cJSON *found[MEMBER_COUNT] = {0}, *dim;
    summary_members(tensor, found);
    const cJSON *name = found[MEMBER_NAME], *dtype = found[MEMBER_DTYPE];
    if (!cJSON_IsString(name)) return true;
    struct tensor_summary *out = list_room(l);
    if (!out) return false;
    out->floating = cJSON_IsString(dtype) && dtype_is_floating(dtype->valuestring);
    out->elements = 1;
    cJSON_ArrayForEach(dim, found[MEMBER_SHAPE]) out->elements *=
        cJSON_IsNumber(dim) ? dim->valuedouble : 0;
    for (int i = 0; i < STAT_COUNT; i++)
        out->stat[i] = number_or_nan(found[i]);
    out->sampled = number_or_nan(found[MEMBER_SAMPLED]);
    if (!(out->name = strdup(name->valuestring))) return false;
    l->count++;
    return true;
}

_Static_assert((int)BRIEF_STATS == (int)STAT_COUNT && (int)BRIEF_INF == (int)STAT_INF,
               "a brief's statistics are a summary's, in its order");

bool tensor_list_add_brief(struct tensor_list *l, struct tensor_brief *b)
{
    struct tensor_summary *out = list_room(l);
    char *name = b->name;
    b->name = NULL;
    if (!out) return free(name), false;
    *out = (struct tensor_summary){name, b->dtype && dtype_is_floating(b->dtype), b->elements};
    memcpy(out->stat, b->stat, sizeof out->stat);
    out->sampled = b->sampled;
    l->count++;
    return true;
}

bool tensor_list_of_record(const cJSON *record, struct tensor_list *l)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(record, "tensors"))
    {
        if (!tensor_list_add(l, t)) return false;
    }
    return true;
}

void tensor_list_free(struct tensor_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].name);
    free(l->items);
    *l = (struct tensor_list){0};
}

/* Sorts the summaries and keeps one of each name: a file that repeats a name (a
 * hostile one) must not make a lookup ambiguous. */
static void sort_unique(struct snapshot *s)
{
    if (s->count < 2) return;
    qsort(s->tensors, s->count, sizeof *s->tensors, by_name);
    size_t kept = 0;
    for (size_t i = 0; i < s->count; i++)
        if (!kept || strcmp(s->tensors[kept - 1].name, s->tensors[i].name))
            s->tensors[kept++] = s->tensors[i];
    s->count = kept;
}

bool snapshot_from_list(const struct tensor_list *l, int64_t bytes, struct snapshot *out)
{
    size_t room = 0;
    *out = (struct snapshot){.bytes = bytes};
    for (size_t i = 0; i < l->count; i++)
        room += strlen(l->items[i].name) + 1;
    if (l->count && (!(out->tensors = malloc(l->count * sizeof *out->tensors)) ||
                     !(out->names = malloc(room)))) {
        snapshot_free(out);
        return false;
    }
    for (char *at = out->names; out->count < l->count; out->count++) {
        const struct tensor_summary *t = &l->items[out->count];
        size_t size = strlen(t->name) + 1;
        out->tensors[out->count] = *t;
        out->tensors[out->count].name = memcpy(at, t->name, size);
        at += size;
    }
    sort_unique(out);
    return true;
}

bool snapshot_from_record(const cJSON *record, struct snapshot *out)
{
    struct tensor_list l = {0};
    int64_t bytes = (int64_t)number_or_nan(cJSON_GetObjectItemCaseSensitive(record, "bytes"));
    bool ok = tensor_list_of_record(record, &l) && snapshot_from_list(&l, bytes, out);
    tensor_list_free(&l);
    return ok;
}

void snapshot_free(struct snapshot *s)
{
    free(s->tensors);
    free(s->names);
    *s = (struct snapshot){0};
}

const struct tensor_summary *snapshot_find(const struct snapshot *s, const char *name)
{
    struct tensor_summary key = {.name = (char *)name};
    return s->count ? bsearch(&key, s->tensors, s->count, sizeof key, by_name) : NULL;
}

bool summary_same_stats(const struct tensor_summary *a, const struct tensor_summary *b)
{
    for (int i = 0; i < STAT_COUNT; i++)
        if (!(a->stat[i] == b->stat[i] || (isnan(a->stat[i]) && isnan(b->stat[i])))) return false;
    return true;
}

bool series_key(const cJSON *record, char *key, size_t size)
{
    struct record_labels l;
    if (!record_labels_get(record, &l)) return false;
    int n =
        snprintf(key, size, "%s\x1f%s\x1f%s\x1f%s", l.job, l.host, l.rank ? l.rank : "", l.file);
    return n > 0 && (size_t)n < size;
}

/* ---- the store ---- */

struct series {
    char *key;
    struct snapshot snap;
    struct series *next; /* most recently used first */
};

struct series_store {
    char *base; /* the state dir, or NULL: memory only */
    char *dir;  /* base/series */
    struct series *list;
    size_t count;
    cJSON *totals; /* "job\x1fhost\x1frank\x1frule": alerts so far; NULL until needed */
    bool failed;   /* said once on stderr that snapshots cannot be saved */
};

struct series_store *series_open(const char *dir)
{
    struct series_store *st = calloc(1, sizeof *st);
    if (st && dir && (!(st->base = strdup(dir)) || asprintf(&st->dir, "%s/series", dir) < 0)) {
        free(st->base);
        free(st);
        return NULL;
    }
    return st;
}

static void series_free(struct series *s)
{
    free(s->key);
    snapshot_free(&s->snap);
    free(s);
}

void series_close(struct series_store *st)
{
    if (!st) return;
    for (struct series *s = st->list, *next; s; s = next) {
        next = s->next;
        series_free(s);
    }
    cJSON_Delete(st->totals);
    free(st->base);
    free(st->dir);
    free(st);
}

/* FNV-1a: a file name for the key that no key's characters can break. */
static char *series_path(const struct series_store *st, const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    char *path = NULL;
    return asprintf(&path, "%s/%016llx.json", st->dir, (unsigned long long)h) < 0 ? NULL : path;
}

static char *read_small_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    char *text = NULL;
    if (fd < 0) return NULL;
    if (fstat(fd, &sb) == 0 && sb.st_size < SERIES_FILE_MAX &&
        (text = malloc((size_t)sb.st_size + 1))) {
        ssize_t n = read(fd, text, (size_t)sb.st_size);
        if (n != sb.st_size) {
            free(text);
            text = NULL;
        } else {
            text[n] = '\0';
        }
    }
    close(fd);
    return text;
}

/* The snapshot saved for key, when its file holds one for this very key. */
static bool load_snapshot(const struct series_store *st, const char *key, struct snapshot *out)
{
    char *path = series_path(st, key), *text = path ? read_small_file(path) : NULL;
    cJSON *saved = text ? cJSON_Parse(text) : NULL;
    const cJSON *saved_key = cJSON_GetObjectItemCaseSensitive(saved, "series");
    bool ok = cJSON_IsString(saved_key) && !strcmp(saved_key->valuestring, key) &&
              snapshot_from_record(saved, out);
    cJSON_Delete(saved);
    free(text);
    free(path);
    return ok;
}

static bool write_all(int fd, const char *text, size_t len)
{
    while (len) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        text += n;
        len -= (size_t)n;
    }
    return true;
}

/* Replaces path's contents with the count parts, one after another (by a rename, so a
 * reader never sees half). */
static void save_text(struct series_store *st, const char *path, const struct iovec *parts,
                      int count)
{
    char *tmp = NULL;
    bool ok = false;
    mkdir(st->base, 0700);
    mkdir(st->dir, 0700);
    if (path && asprintf(&tmp, "%s.tmp", path) >= 0) {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ok = fd >= 0;
        for (int i = 0; ok && i < count; i++)
            ok = parts[i].iov_base && write_all(fd, parts[i].iov_base, parts[i].iov_len);
        if (fd >= 0 && close(fd) < 0) ok = false;
        ok = ok && rename(tmp, path) == 0;
        if (!ok) unlink(tmp);
    }
    if (!ok && !st->failed) {
        st->failed = true;
        fprintf(stderr, "ckmon: cannot save series state in %s: %s\n", st->dir, strerror(errno));
    }
    free(tmp);
}

/* The snapshot as a record-like object that snapshot_from_record reads: its size, and
 * its checkpoint's tensors as the record printed them. A model's tens of thousands of
 * tensors are saved at every checkpoint, on the collector's one thread: printing the
 * snapshot's statistics again (sorted, in shortest digits) cost a tenth of the
 * collector's instructions per tensor, their text ready made costs a write of it. The
 * file is bigger for it (each tensor's head too), which only a restart reads.
 *
 * A snapshot that cannot be kept (over SERIES_FILE_MAX, or no text: tensors NULL) removes
 * the file of the one before: a collector started again then compares the next checkpoint
 * with none, not with one older than the last. */
static void save_snapshot(struct series_store *st, const char *key, const struct snapshot *s,
                          const char *tensors, size_t len)
{
    struct strbuf head = {.limit = SERIES_FILE_MAX};
    char *path = series_path(st, key);
    sb_addz(&head, "{\"series\":");
    json_add_string(&head, key);
    sb_addf(&head, ",\"bytes\":%lld,\"tensors\":[", (long long)s->bytes);
    struct iovec parts[] = {{head.s, head.len}, {(char *)tensors, len}, {"]}", 2}};
    if (tensors && !head.overflow && len < SERIES_FILE_MAX - head.len)
        save_text(st, path, parts, sizeof parts / sizeof parts[0]);
    else if (path)
        unlink(path);
    free(head.s);
    free(path);
}

/* The series called key, moved to the front; NULL when it is not in memory. */
static struct series *find_cached(struct series_store *st, const char *key)
{
    for (struct series **at = &st->list; *at; at = &(*at)->next)
        if (!strcmp((*at)->key, key)) {
            struct series *s = *at;
            *at = s->next;
            s->next = st->list;
            st->list = s;
            return s;
        }
    return NULL;
}

/* A new series at the front, dropping the least recently used beyond the cache. */
static struct series *add_series(struct series_store *st, const char *key)
{
    struct series *s = calloc(1, sizeof *s);
    if (!s || !(s->key = strdup(key))) {
        free(s);
        return NULL;
    }
    s->next = st->list;
    st->list = s;
    if (++st->count > SERIES_CACHED && st->dir) {
        struct series **at = &st->list;
        while ((*at)->next)
            at = &(*at)->next;
        series_free(*at);
        *at = NULL;
        st->count--;
    }
    return s;
}

const struct snapshot *series_previous(struct series_store *st, const char *key)
{
    struct series *s = find_cached(st, key);
    if (s) return &s->snap;
    struct snapshot snap;
    if (!st->dir || !load_snapshot(st, key, &snap)) return NULL;
    if (!(s = add_series(st, key))) {
        snapshot_free(&snap);
        return NULL;
    }
    s->snap = snap;
    return &s->snap;
}

void series_update(struct series_store *st, const char *key, struct snapshot *snap,
                   const char *tensors, size_t len)
{
    struct series *s = find_cached(st, key);
    if (!s && !(s = add_series(st, key))) {
        snapshot_free(snap);
        return;
    }
    snapshot_free(&s->snap);
    s->snap = *snap;
    *snap = (struct snapshot){0};
    if (st->dir) save_snapshot(st, key, &s->snap, tensors, len);
}

double series_count_alert(struct series_store *st, const cJSON *record, const char *rule)
{
    char key[SERIES_KEY_SIZE], *path = NULL;
    struct record_labels l;
    if (!record_labels_get(record, &l)) return 0;
    snprintf(key, sizeof key, "%s\x1f%s\x1f%s\x1f%s", l.job, l.host, l.rank ? l.rank : "", rule);
    if (st->dir && asprintf(&path, "%s/alerts.json", st->dir) < 0) path = NULL;
    if (!st->totals) {
        char *text = path ? read_small_file(path) : NULL;
        st->totals = text ? cJSON_Parse(text) : NULL;
        free(text);
        if (!cJSON_IsObject(st->totals)) {
            cJSON_Delete(st->totals);
            st->totals = cJSON_CreateObject();
        }
    }
    cJSON *n = cJSON_GetObjectItemCaseSensitive(st->totals, key);
    double total = (cJSON_IsNumber(n) ? n->valuedouble : 0) + 1;
    if (cJSON_IsNumber(n))
        cJSON_SetNumberValue(n, total);
    else
        cJSON_AddNumberToObject(st->totals, key, total);
    char *text = path ? json_print_wire(st->totals) : NULL;
    struct iovec all = {text, text ? strlen(text) : 0};
    if (text) save_text(st, path, &all, 1);
    free(text);
    free(path);
    return total;
}
