/* fold.c — holding a set's files' records until the set's record (fold.h).
 *
 * A list of groups, one per set directory with records held, oldest first: a log has a
 * handful of sets in progress at a time.
 */
#include "fold.h"

#include <stdlib.h>
#include <string.h>

#include "set_layouts.h"

struct group {
    char *dir;
    cJSON *records; /* array */
    struct group *next;
};

struct fold {
    fold_out *out;
    void *ctx;
    struct group *groups; /* oldest first */
    size_t held;
};

struct fold *fold_new(fold_out *out, void *ctx)
{
    struct fold *f = calloc(1, sizeof *f);
    if (f) *f = (struct fold){.out = out, .ctx = ctx};
    return f;
}

static void group_free(struct group *g)
{
    cJSON_Delete(g->records);
    free(g->dir);
    free(g);
}

/* Takes the group for dir out of the list; NULL when there is none. */
static struct group *unlink_group(struct fold *f, const char *dir)
{
    for (struct group **at = &f->groups; *at; at = &(*at)->next)
        if (!dir || set_dir_is((*at)->dir, dir)) {
            struct group *g = *at;
            *at = g->next;
            f->held -= (size_t)cJSON_GetArraySize(g->records);
            return g;
        }
    return NULL;
}

/* A group's records on their own: no set record came for them. */
static void release(struct fold *f, struct group *g)
{
    cJSON *r;
    while ((r = cJSON_DetachItemFromArray(g->records, 0)))
        f->out(f->ctx, r, NULL);
    group_free(g);
}

/* Holds a set member's record; false when it is not one (or out of memory). */
static bool hold(struct fold *f, cJSON *record)
{
    const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(record, "path"));
    const char *was = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(record, "written_as"));
    struct set_place place;
    /* written_as: a file of a directory renamed into place while its record was held */
    if (!(path && set_place_of(path, &place)) && !(was && set_place_of(was, &place))) return false;
    struct group **at = &f->groups;
    while (*at && strcmp((*at)->dir, place.dir))
        at = &(*at)->next;
    if (!*at) {
        struct group *g = calloc(1, sizeof *g);
        if (!g || !(g->records = cJSON_CreateArray())) {
            free(g);
            free(place.dir);
            return false;
        }
        g->dir = place.dir;
        *at = g;
    } else {
        free(place.dir);
    }
    cJSON_AddItemToArray((*at)->records, record);
    if (++f->held > FOLD_MAX_HELD) release(f, unlink_group(f, NULL));
    return true;
}

void fold_take(struct fold *f, cJSON *record)
{
    const char *event = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(record, "event"));
    if (!event || !strcmp(event, "checkpoint")) {
        if (!hold(f, record)) f->out(f->ctx, record, NULL);
        return;
    }
    if (strcmp(event, "set")) return f->out(f->ctx, record, NULL);
    const char *dir = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(record, "path"));
    struct group *g = dir ? unlink_group(f, dir) : NULL;
    cJSON *none = g ? NULL : cJSON_CreateArray();
    f->out(f->ctx, record, g ? g->records : none);
    cJSON_Delete(none);
    if (g) group_free(g);
}

void fold_flush(struct fold *f)
{
    struct group *g;
    while ((g = unlink_group(f, NULL)))
        release(f, g);
}

void fold_free(struct fold *f)
{
    if (!f) return;
    struct group *g;
    while ((g = unlink_group(f, NULL)))
        group_free(g);
    free(f);
}
