/* grow.h — room for one more item at the end of an array that doubles as it fills.
 *
 * Lists all over ckmon (a torch archive's views, a table of contents' entries, a
 * record's tensor summaries, verify's targets) take items one at a time into a malloc'd
 * array of `count` items with room for `capacity`; this is that growth, written once.
 */
#ifndef CKMON_GROW_H
#define CKMON_GROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

/* Room for item `count` in *array (room for *capacity items of `size` bytes), doubling
 * from `first` items; false, the array as it was, when memory runs out. */
static inline bool grow_for_one(void **array, size_t count, size_t *capacity, size_t size,
                                size_t first)
{
    if (count < *capacity) return true;
    size_t want = *capacity ? 2 * *capacity : first;
    void *grown = realloc(*array, want * size);
    if (!grown) return false;
    *array = grown;
    *capacity = want;
    return true;
}

/* The same for an array named by its pointer, whose items' size it knows. */
#define GROW_FOR_ONE(array, count, capacity, first)                                                \
    grow_for_one((void **)&(array), (count), &(capacity), sizeof *(array), (first))

#endif
