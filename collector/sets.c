/* sets.c — grouping checkpoint records into sets, and writing one record per set.
 *
 * Lists, not hash tables: a collector has a handful of sets in progress at a time (one
 * per save, each of them in one directory), and a set only a few dozen writers.
 */
#include "sets.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/wire.h"
#include "set_layouts.h"

/* A committed set waits this long for its shards' records, still held for a rename. */
#define COMMIT_WAIT_US (RENAME_WINDOW_US + 200000)
/* A set whose writers all ended is torn once it has been quiet this long. */
#define QUIET_US    (2 * RENAME_WINDOW_US)
#define VALUES_KEPT 64 /* merged values per set */

struct set_file {
    char *name;
    int64_t bytes;
    bool complete;
    char *error; /* the record's first error, or NULL */
};

struct set_writer {
    long pid;
    bool ended;
    bool restored; /* known from a stopped collector: ended once its pid is gone */
};

struct set_rank {
    long rank;
    int64_t done_us; /* its last file closed */
};

struct set {
    char *dir;
    const char *kind;
    struct identity who; /* the committing record's, else the first record's */
    int64_t first_us, last_us, commit_us;
    bool committed;
    struct set_file *files;
    size_t file_count;
    struct set_writer *writers;
    size_t writer_count;
    struct set_rank *ranks;
    size_t rank_count;
    cJSON *values;
    struct set *next;
};

struct sets {
    set_emit_fn emit;
    void *ctx;
    struct set *list;
    sets_changed_fn changed; /* NULL: nobody keeps them */
    void *changed_ctx;
};

static void changed(struct sets *s)
{
    if (s->changed) s->changed(s->changed_ctx, s);
}

struct sets *sets_new(set_emit_fn emit, void *ctx)
{
    struct sets *s = calloc(1, sizeof *s);
    if (s) *s = (struct sets){.emit = emit, .ctx = ctx};
    return s;
}

static void set_free(struct set *set)
{
    for (size_t i = 0; i < set->file_count; i++) {
        free(set->files[i].name);
        free(set->files[i].error);
    }
    free(set->files);
    free(set->writers);
    free(set->ranks);
    cJSON_Delete(set->values);
    identity_free(&set->who);
    free(set->dir);
    free(set);
}

void sets_free(struct sets *s)
{
    if (!s) return;
    while (s->list) {
        struct set *set = s->list;
        s->list = set->next;
        set_free(set);
    }
    free(s);
}

/* Grows an array by one zeroed element; NULL when out of memory. */
static void *grow(void *array, size_t *count, size_t size)
{
    char *grown = realloc(array, (*count + 1) * size);
    if (!grown) return NULL;
    memset(grown + *count * size, 0, size);
    (*count)++;
    return grown;
}

static struct set *find_or_add(struct sets *s, const char *dir, const char *kind,
                               const struct record *r)
{
    for (struct set *set = s->list; set; set = set->next)
        if (!strcmp(set->dir, dir)) return set;
    struct set *set = calloc(1, sizeof *set);
    if (!set || !(set->dir = strdup(dir)) || !identity_copy(&set->who, &r->who) ||
        !(set->values = cJSON_CreateObject())) {
        if (set) set_free(set);
        return NULL;
    }
    set->kind = kind;
    set->first_us = INT64_MAX;
    set->next = s->list;
    s->list = set;
    return set;
}

static void note_writer(struct set *set, const struct record *r)
{
    for (size_t i = 0; i < set->writer_count; i++)
        if (set->writers[i].pid == r->who.pid) return;
    struct set_writer *w = grow(set->writers, &set->writer_count, sizeof *w);
    if (w) (set->writers = w)[set->writer_count - 1].pid = r->who.pid;
}

static void note_rank(struct set *set, const struct record *r)
{
    if (!r->who.has_rank) return;
    for (size_t i = 0; i < set->rank_count; i++)
        if (set->ranks[i].rank == r->who.rank) {
            if (r->time_us > set->ranks[i].done_us) set->ranks[i].done_us = r->time_us;
            return;
        }
    struct set_rank *k = grow(set->ranks, &set->rank_count, sizeof *k);
    if (k) (set->ranks = k)[set->rank_count - 1] = (struct set_rank){r->who.rank, r->time_us};
}

static void note_file(struct set *set, const struct record *r)
{
    size_t dir_len = strlen(set->dir);
    if (strncmp(r->path, set->dir, dir_len) || r->path[dir_len] != '/') return; /* `latest` */
    const char *name = r->path + dir_len + 1;
    struct set_file *f = NULL;
    for (size_t i = 0; i < set->file_count && !f; i++)
        if (!strcmp(set->files[i].name, name)) f = &set->files[i];
    if (!f) {
        struct set_file *grown = grow(set->files, &set->file_count, sizeof *grown);
        if (!grown) return;
        set->files = grown;
        f = &grown[set->file_count - 1];
        if (!(f->name = strdup(name))) {
            set->file_count--;
            return;
        }
    }
    const cJSON *error = cJSON_GetArrayItem(r->errors, 0);
    f->bytes = r->bytes;
    f->complete = r->complete;
    free(f->error);
    f->error = cJSON_IsString(error) ? strdup(error->valuestring) : NULL;
}

/* The commit file's top-level scalars (trainer_state.json's global_step, epoch...):
 * nested keys of a commit file are its metadata, not the training's values. */
static void merge_values(struct set *set, const struct record *r)
{
    const cJSON *v;
    int kept = cJSON_GetArraySize(set->values);
    cJSON_ArrayForEach(v, r->values)
    {
        if (kept >= VALUES_KEPT) return;
        if (!v->string || strchr(v->string, '.') || cJSON_IsNull(v) ||
            cJSON_GetObjectItemCaseSensitive(set->values, v->string))
            continue;
        cJSON_AddItemToObject(set->values, v->string, cJSON_Duplicate(v, false));
        kept++;
    }
}

/* A file of a directory renamed into place (a held record renamed after the commit):
 * it joins that directory's set. */
static bool in_renamed(struct sets *s, const char *path, struct set_place *place)
{
    for (struct set *set = s->list; set; set = set->next) {
        size_t n = strlen(set->dir);
        if (set->committed && !strcmp(set->kind, "directory") && !strncmp(path, set->dir, n) &&
            path[n] == '/') {
            *place = (struct set_place){set->kind, strdup(set->dir), false};
            return place->dir != NULL;
        }
    }
    return false;
}

void sets_note(struct sets *s, const struct record *r, int64_t now_us)
{
    struct set_place place;
    if (!s || !r->path || !(set_place_of(r->path, &place) || in_renamed(s, r->path, &place)))
        return;
    struct set *set = find_or_add(s, place.dir, place.kind, r);
    free(place.dir);
    if (!set) return;
    int64_t opened = r->time_us - (int64_t)(r->seconds * 1e6);
    if (opened < set->first_us) set->first_us = opened;
    set->last_us = now_us;
    note_writer(set, r);
    if (!place.commit) note_rank(set, r); /* the slowest rank is about its shards */
    note_file(set, r);
    if (place.commit) {
        merge_values(set, r);
        identity_free(&set->who);
        identity_copy(&set->who, &r->who);
        set->committed = true;
        set->commit_us = now_us;
    }
    changed(s);
}

void sets_renamed(struct sets *s, const char *from, const char *to, int64_t now_us)
{
    for (struct set *set = s ? s->list : NULL; set; set = set->next) {
        char *dir;
        if (strcmp(set->kind, "directory") || strcmp(set->dir, from) || !(dir = strdup(to)))
            continue;
        free(set->dir);
        set->dir = dir;
        set->committed = true;
        set->commit_us = now_us;
        set->last_us = now_us;
        changed(s);
        return;
    }
}

void sets_process_ended(struct sets *s, long pid, int64_t now_us)
{
    (void)now_us;
    bool noted = false;
    for (struct set *set = s ? s->list : NULL; set; set = set->next)
        for (size_t i = 0; i < set->writer_count; i++)
            if (set->writers[i].pid == pid && !set->writers[i].ended)
                noted = set->writers[i].ended = true;
    if (noted) changed(s);
}

/* ---- the set record ---- */

static int by_value(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* The ranks the file names say (DCP) and the ranks seen writing, sorted, each once. */
static cJSON *all_ranks(const struct set *set, cJSON *named_ranks)
{
    size_t n = 0, total = set->rank_count + (size_t)cJSON_GetArraySize(named_ranks);
    long *ranks = malloc((total + 1) * sizeof *ranks);
    const cJSON *r;
    if (!ranks) return NULL;
    cJSON_ArrayForEach(r, named_ranks) ranks[n++] = (long)r->valuedouble;
    for (size_t i = 0; i < set->rank_count; i++)
        ranks[n++] = set->ranks[i].rank;
    qsort(ranks, n, sizeof *ranks, by_value);
    cJSON *out = cJSON_CreateArray();
    for (size_t i = 0; out && i < n; i++)
        if (i == 0 || ranks[i] != ranks[i - 1])
            cJSON_AddItemToArray(out, cJSON_CreateNumber((double)ranks[i]));
    free(ranks);
    return out;
}

/* The step a directory's name ends with (step_500, global_step500, checkpoint-500). */
static void step_from_name(cJSON *values, const char *dir)
{
    const char *end = dir + strlen(dir), *p = end;
    while (p > dir && isdigit((unsigned char)p[-1]))
        p--;
    if (p == end || end - p > 15 || cJSON_GetObjectItemCaseSensitive(values, "step")) return;
    cJSON_AddNumberToObject(values, "step", (double)strtoll(p, NULL, 10));
}

/* Whether a line of missing is about file name already. */
static bool named(const cJSON *missing, const char *name)
{
    const cJSON *m;
    size_t n = strlen(name);
    cJSON_ArrayForEach(m, missing) if (!strncmp(m->valuestring, name, n) &&
                                       m->valuestring[n] == ':') return true;
    return false;
}

static cJSON *set_json(const struct set *set, int64_t now_us)
{
    struct set_check check;
    if (!set_check(set->kind, set->dir, &check)) return NULL;
    for (size_t i = 0; i < set->file_count; i++) {
        const struct set_file *f = &set->files[i];
        if (f->complete || named(check.missing, f->name)) continue;
        char text[700];
        snprintf(text, sizeof text, "%s: %lld bytes, incomplete when written%s%.500s", f->name,
                 (long long)f->bytes, f->error ? ": " : "", f->error ? f->error : "");
        cJSON_AddItemToArray(check.missing, cJSON_CreateString(text));
    }
    int64_t end_us = set->committed ? set->commit_us : set->last_us;
    double bytes = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, check.files) bytes += f->valuedouble;
    const struct set_rank *slowest = NULL;
    for (size_t i = 0; i < set->rank_count; i++)
        if (!slowest || set->ranks[i].done_us > slowest->done_us) slowest = &set->ranks[i];

    char time[RFC3339_SIZE];
    format_rfc3339(end_us ? end_us : now_us, time, sizeof time);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "schema", 1);
    cJSON_AddStringToObject(o, "event", "set");
    cJSON_AddStringToObject(o, "time", time);
    if (set->who.host) cJSON_AddStringToObject(o, "host", set->who.host);
    if (set->who.job) cJSON_AddStringToObject(o, "job", set->who.job);
    if (set->who.run) cJSON_AddStringToObject(o, "run", set->who.run);
    cJSON_AddStringToObject(o, "path", set->dir);
    cJSON_AddStringToObject(o, "kind", set->kind);
    cJSON_AddNumberToObject(o, "files", (double)cJSON_GetArraySize(check.files));
    cJSON_AddNumberToObject(o, "bytes", bytes);
    cJSON *ranks = all_ranks(set, check.ranks);
    cJSON_AddItemToObject(o, "ranks", ranks ? ranks : cJSON_CreateArray());
    double first = set->first_us == INT64_MAX ? (double)end_us : (double)set->first_us;
    cJSON_AddNumberToObject(o, "seconds", end_us > first ? ((double)end_us - first) / 1e6 : 0);
    if (slowest) {
        cJSON *slow = cJSON_AddObjectToObject(o, "slowest");
        cJSON_AddNumberToObject(slow, "rank", (double)slowest->rank);
        double s = ((double)slowest->done_us - first) / 1e6;
        cJSON_AddNumberToObject(slow, "seconds", s > 0 ? s : 0);
    }
    bool complete = !cJSON_GetArraySize(check.missing) && !cJSON_GetArraySize(check.errors);
    cJSON_AddBoolToObject(o, "complete", complete);
    cJSON_AddItemToObject(o, "missing", check.missing);
    cJSON *values = cJSON_Duplicate(set->values, true);
    if (values) step_from_name(values, set->dir);
    cJSON_AddItemToObject(o, "values", values ? values : cJSON_CreateObject());
    if (cJSON_GetArraySize(check.errors))
        cJSON_AddItemToObject(o, "errors", check.errors);
    else
        cJSON_Delete(check.errors);
    cJSON_Delete(check.files);
    cJSON_Delete(check.ranks);
    return o;
}

/* A writer a stopped collector knew of, which never connected here: ended when its
 * process is gone (the writers of a set are this host's processes). */
static bool gone(struct set_writer *w)
{
    if (w->restored && kill((pid_t)w->pid, 0) != 0 && errno == ESRCH) w->ended = true;
    return w->ended;
}

static bool ended(struct set *set)
{
    for (size_t i = 0; i < set->writer_count; i++)
        if (!gone(&set->writers[i])) return false;
    return true;
}

static bool restored_alive(const struct set *set)
{
    for (size_t i = 0; i < set->writer_count; i++)
        if (set->writers[i].restored && !set->writers[i].ended) return true;
    return false;
}

/* Writes the set's record, unless it was never committed here while its commit is on
 * disk: then another host's collector saw the commit, and writes it. */
static void finish(struct sets *s, struct set *set, int64_t now_us)
{
    if (set->committed || !set_commit_on_disk(set->kind, set->dir)) {
        cJSON *o = set_json(set, now_us);
        if (o) s->emit(s->ctx, o, set->who.pid);
        cJSON_Delete(o);
    }
    set_free(set);
}

static int64_t due(struct set *set)
{
    if (set->committed) return set->commit_us + COMMIT_WAIT_US;
    if (ended(set)) return set->last_us + QUIET_US;
    /* a restored writer that never connected again: looked at every quiet period */
    return restored_alive(set) ? set->last_us + QUIET_US : -1;
}

int64_t sets_next_due(const struct sets *s)
{
    int64_t next = -1;
    for (struct set *set = s ? s->list : NULL; set; set = set->next) {
        int64_t d = due(set);
        if (d >= 0 && (next < 0 || d < next)) next = d;
    }
    return next;
}

void sets_expire(struct sets *s, int64_t now_us)
{
    bool finished = false;
    for (struct set **p = s ? &s->list : NULL; p && *p;) {
        struct set *set = *p;
        int64_t d = due(set);
        if (d >= 0 && now_us >= d && !set->committed && !ended(set)) {
            set->last_us = now_us; /* a restored writer still alive: look again later */
            d = -1;
        }
        if (d < 0 || now_us < d) {
            p = &set->next;
            continue;
        }
        *p = set->next;
        finish(s, set, now_us);
        finished = true;
    }
    if (finished) changed(s);
}

void sets_shutdown(struct sets *s, int64_t now_us)
{
    bool finished = s && s->list;
    while (s && s->list) {
        struct set *set = s->list;
        s->list = set->next;
        finish(s, set, now_us);
    }
    if (finished) changed(s);
}

/* ---- in progress across a restart ---- */

void sets_on_change(struct sets *s, sets_changed_fn fn, void *ctx)
{
    s->changed = fn;
    s->changed_ctx = ctx;
}

static void add_text_member(cJSON *o, const char *name, const char *value)
{
    if (value) cJSON_AddStringToObject(o, name, value);
}

static cJSON *identity_json(const struct identity *who)
{
    cJSON *o = cJSON_CreateObject();
    add_text_member(o, "host", who->host);
    add_text_member(o, "program", who->program);
    add_text_member(o, "job", who->job);
    add_text_member(o, "run", who->run);
    cJSON_AddNumberToObject(o, "pid", (double)who->pid);
    if (who->has_rank) cJSON_AddNumberToObject(o, "rank", (double)who->rank);
    if (who->has_local_rank) cJSON_AddNumberToObject(o, "local_rank", (double)who->local_rank);
    if (who->has_world_size) cJSON_AddNumberToObject(o, "world_size", (double)who->world_size);
    return o;
}

static cJSON *set_state_json(const struct set *set)
{
    cJSON *o = cJSON_CreateObject(), *files, *writers, *ranks;
    cJSON_AddStringToObject(o, "dir", set->dir);
    cJSON_AddStringToObject(o, "kind", set->kind);
    cJSON_AddItemToObject(o, "who", identity_json(&set->who));
    cJSON_AddNumberToObject(o, "first_us", (double)set->first_us);
    cJSON_AddNumberToObject(o, "last_us", (double)set->last_us);
    cJSON_AddNumberToObject(o, "commit_us", (double)set->commit_us);
    cJSON_AddBoolToObject(o, "committed", set->committed);
    cJSON_AddItemToObject(o, "files", files = cJSON_CreateArray());
    for (size_t i = 0; i < set->file_count; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", set->files[i].name);
        cJSON_AddNumberToObject(f, "bytes", (double)set->files[i].bytes);
        cJSON_AddBoolToObject(f, "complete", set->files[i].complete);
        add_text_member(f, "error", set->files[i].error);
        cJSON_AddItemToArray(files, f);
    }
    cJSON_AddItemToObject(o, "writers", writers = cJSON_CreateArray());
    for (size_t i = 0; i < set->writer_count; i++) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddNumberToObject(w, "pid", (double)set->writers[i].pid);
        cJSON_AddBoolToObject(w, "ended", set->writers[i].ended);
        cJSON_AddItemToArray(writers, w);
    }
    cJSON_AddItemToObject(o, "ranks", ranks = cJSON_CreateArray());
    for (size_t i = 0; i < set->rank_count; i++) {
        cJSON *k = cJSON_CreateObject();
        cJSON_AddNumberToObject(k, "rank", (double)set->ranks[i].rank);
        cJSON_AddNumberToObject(k, "done_us", (double)set->ranks[i].done_us);
        cJSON_AddItemToArray(ranks, k);
    }
    cJSON_AddItemToObject(o, "values", cJSON_Duplicate(set->values, true));
    return o;
}

cJSON *sets_state(const struct sets *s)
{
    cJSON *all = cJSON_CreateArray();
    for (const struct set *set = s ? s->list : NULL; all && set; set = set->next)
        cJSON_AddItemToArray(all, set_state_json(set));
    return all;
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *name)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static bool identity_from(struct identity *who, const cJSON *o)
{
    *who = (struct identity){.pid = (long)num(o, "pid")};
    who->has_rank = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "rank"));
    who->rank = (long)num(o, "rank");
    who->has_local_rank = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "local_rank"));
    who->local_rank = (long)num(o, "local_rank");
    who->has_world_size = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "world_size"));
    who->world_size = (long)num(o, "world_size");
    struct identity names = *who;
    names.host = (char *)str(o, "host");
    names.program = (char *)str(o, "program");
    names.job = (char *)str(o, "job");
    names.run = (char *)str(o, "run");
    return identity_copy(who, &names);
}

/* One saved set, unless its directory is in progress here already. */
static void restore_one(struct sets *s, const cJSON *o)
{
    const char *dir = str(o, "dir"), *kind = set_kind(str(o, "kind"));
    if (!dir || *dir != '/' || !kind) return;
    for (struct set *set = s->list; set; set = set->next)
        if (!strcmp(set->dir, dir)) return;
    struct set *set = calloc(1, sizeof *set);
    if (!set || !(set->dir = strdup(dir)) ||
        !identity_from(&set->who, cJSON_GetObjectItemCaseSensitive(o, "who"))) {
        if (set) free(set->dir);
        free(set);
        return;
    }
    set->kind = kind;
    set->first_us = (int64_t)num(o, "first_us");
    set->last_us = (int64_t)num(o, "last_us");
    set->commit_us = (int64_t)num(o, "commit_us");
    set->committed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "committed"));
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(o, "values"), *e;
    set->values = cJSON_IsObject(values) ? cJSON_Duplicate(values, true) : cJSON_CreateObject();
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "files"))
    {
        struct set_file *f = grow(set->files, &set->file_count, sizeof *f);
        if (!f) break;
        set->files = f;
        f = &f[set->file_count - 1];
        const char *name = str(e, "name"), *error = str(e, "error");
        if (!name || !(f->name = strdup(name))) {
            set->file_count--;
            continue;
        }
        f->bytes = (int64_t)num(e, "bytes");
        f->complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "complete"));
        f->error = error ? strdup(error) : NULL;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "writers"))
    {
        struct set_writer *w = grow(set->writers, &set->writer_count, sizeof *w);
        if (!w) break;
        (set->writers = w)[set->writer_count - 1] = (struct set_writer){
            (long)num(e, "pid"), cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "ended")), true};
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "ranks"))
    {
        struct set_rank *k = grow(set->ranks, &set->rank_count, sizeof *k);
        if (!k) break;
        (set->ranks = k)[set->rank_count - 1] =
            (struct set_rank){(long)num(e, "rank"), (int64_t)num(e, "done_us")};
    }
    set->next = s->list;
    s->list = set;
}

void sets_restore(struct sets *s, const cJSON *saved)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, saved) if (cJSON_IsObject(o)) restore_one(s, o);
    changed(s);
}
