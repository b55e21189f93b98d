/* wire_tensors.h — a data message's tensors read straight into the text records print.
 *
 * A data message is mostly its tensors: some 400 bytes each, a dozen members whose
 * statistics are strings of hex (jsontext.h, json_add_hex_item). Parsed into cJSON, a
 * tensor became two dozen nodes that the collector made, printed, walked for the alert
 * rules and freed: most of its work per tensor. Here the "tensors" array is read by a
 * reader of its own (jsonread.h) that writes each tensor as json_print would print the
 * tree (each hex string the number it stands for, shortest digits) and keeps a brief of
 * what the collector's alert rules and series read of it; cJSON parses only the rest of
 * the packet (its id, counts, values, errors). What this reader does not take (an escape
 * it does not know, nesting past a few levels, anything but an array of objects) is
 * parsed by cJSON whole, as before, its tensors left in the tree.
 */
#ifndef CKMON_WIRE_TENSORS_H
#define CKMON_WIRE_TENSORS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "strbuf.h"

/* What the alert rules and the series take of a tensor (collector/series.h), from the
 * first of each of its members so named. */
enum tensor_brief_stat {
    BRIEF_MIN,
    BRIEF_MAX,
    BRIEF_MEAN,
    BRIEF_STD,
    BRIEF_NAN,
    BRIEF_INF,
    BRIEF_STATS
};
struct tensor_brief {
    char *name;        /* malloc'd, the dtype after its NUL */
    const char *dtype; /* NULL when not a string */
    double elements;   /* the product of its shape's items (0 for any not a number) */
    double stat[BRIEF_STATS];
    double sampled; /* these NaN when not a number */
};

/* A packet's tensors as records print them (json_print): "{...},{...}", count of them,
 * and the briefs of those whose name is a string, in order. */
struct printed_tensors {
    bool read; /* the tensors are here; the tree has null in their place */
    struct strbuf text;
    size_t count;
    struct tensor_brief *briefs;
    size_t brief_count, brief_alloc;
};
void printed_tensors_free(struct printed_tensors *t);

/* The packet (one JSON object) as cJSON, NULL when it is not JSON or there is no memory.
 * Its top-level "tensors" array (when it is one) is read into *texts (texts->read), or
 * when this reader does not take it, left in the tree with the tensors' numbers as
 * numbers (json_tensor_from_hex). */
cJSON *wire_parse_packet(const char *packet, size_t len, struct printed_tensors *texts);

/* A data message of plain members only, read without a tree: "t":"data", and at most
 * once each "seq", "id", "bytes" and "writes" (numbers: NaN when absent), "format" (a
 * string: malloc'd, NULL when absent) and "tensors" (into *texts, texts->read). A torch.save sends
 * one such message per tensor, and cJSON's tree of its half-dozen members cost more than its
 * tensor's text. False for any other packet, or one this reader does not take (then:
 * wire_parse_packet), with nothing to free. */
struct plain_data {
    double seq, id, bytes, writes;
    char *format;
};
bool wire_read_plain_data(const char *packet, size_t len, struct plain_data *d,
                          struct printed_tensors *texts);

#endif
