/* table.h — log records as the readable table of `ckmon tail` and `inspect --pretty`.
 *
 * One checkpoint record is a line (path, format, ok, size, key values) and one line per
 * tensor; alert, set and load records are one line each (a set's files folded under
 * its line when the caller holds them: fold.h). Colour (alerts, incomplete
 * files, non-finite counts) only when the caller asks, which it does on a terminal
 * without NO_COLOR.
 */
#ifndef CKMON_TABLE_H
#define CKMON_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

/* Tensors shown per checkpoint: those with NaN/Inf first, then in the record's order. */
#define TABLE_MAX_TENSORS 20

struct table_style {
    bool color;
    const char *base; /* paths under this directory are shown relative to it; NULL: none */
};

/* Whether out should get colour: a terminal, and NO_COLOR unset or empty. */
bool table_wants_color(FILE *out);
/* The value for a key name in a record's values: the key itself, else the last key
 * ending in ".NAME" (`optim.param_groups.0.lr`, a Trainer's newest `log_history.N.loss`). */
const cJSON *table_key_value(const cJSON *values, const char *name);
/* A size as people read it, in buf: "512 B", "93.6 KiB" (units up to PiB, one decimal);
 * small_unit names sizes below 1 KiB ("B" in tables, "bytes" in a sentence). */
const char *table_size(double bytes, const char *small_unit, char *buf, size_t size);
/* Prints one record (any event) to out. */
void table_print(FILE *out, const cJSON *record, const struct table_style *style);
/* The files of a set folded under its line (fold.h): their names, incomplete ones
 * marked NO, at most TABLE_MAX_MEMBERS. */
#define TABLE_MAX_MEMBERS 12
void table_print_members(FILE *out, const cJSON *members, const struct table_style *style);

#endif
