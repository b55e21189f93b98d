/* set_layouts.h — the layouts of multi-file checkpoints ckmon recognises (set_layouts.c).
 *
 * One entry per layout: which file names belong to a set and in which directory, which
 * file commits it, and how to check a committed set against its own metadata on disk.
 */
#ifndef CKMON_SET_LAYOUTS_H
#define CKMON_SET_LAYOUTS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* What a file's path says about the set it belongs to. */
struct set_place {
    const char
        *kind;   /* "dcp", "hf-sharded", "deepspeed", "hf-trainer", "directory"; NULL: no set */
    char *dir;   /* the set's directory, malloc'd */
    bool commit; /* this file commits the set */
};

/* The kind called name, as a string that lives forever; NULL: no such kind. */
const char *set_kind(const char *name);

/* Classifies an absolute path; false when it belongs to no set (place->dir NULL). */
bool set_place_of(const char *path, struct set_place *place);

/* Whether the files of directory dir (set_place_of's) are those of the set record for
 * set_dir: the same directory, or its temporary name before it was renamed into place. */
bool set_dir_is(const char *dir, const char *set_dir);

/* What the check of a set found. */
struct set_check {
    cJSON *missing; /* array of strings: "NAME: absent", "NAME: N of M bytes" */
    cJSON *errors;  /* array of strings: the metadata could not be read */
    cJSON *ranks;   /* array of numbers the file names say wrote shards (DCP), or empty */
    cJSON *files;   /* object: name in dir → bytes on disk, the files the set consists of */
};

/* Checks the set of kind in dir: every file its metadata references exists and covers
 * the referenced bytes. The check's arrays are created here; false when out of memory. */
bool set_check(const char *kind, const char *dir, struct set_check *out);
void set_check_free(struct set_check *c);
/* Whether the commit file of a set of kind in dir exists on disk. */
bool set_commit_on_disk(const char *kind, const char *dir);

struct distcp_items;
/* The items of a DCP data file (path: .../__R_N.distcp) as the .metadata beside it names
 * them (core/parsers/distcp.h); false when there is none or it names none. */
bool dcp_items_of(const char *path, struct distcp_items *items);
void dcp_items_free(struct distcp_items *items);

#endif
