/* flatten.h — turn a tree of Python objects (pyobj.h) into a record's values and tensors.
 *
 * The naming rules are the record's (CONTRACT.md): dict keys and object attributes are
 * joined with '.', list/tuple/set items are named by index, numeric lists longer than
 * FLATTEN_MAX_LISTED items become float64/int64 tensors, and a root that is a single
 * value or tensor is named "value" (or the report's root_name, which then also comes
 * before the names of a container's items: one item of DCP's .distcp). Keys that are not str are named by their Python
 * str(): 3, True, None, 1.5, (1, 2) — floats as Python's repr() writes them (10.0,
 * 1e+16), bytes and the items of tuples by repr() (b'\n', ("it's",)), other objects by
 * their description. A NUL in a name is written \x00: record keys cannot hold one.
 *
 * Limits that keep a hostile tree from costing more than it is worth: nesting deeper
 * than FLATTEN_MAX_DEPTH is not descended (one error), at most FLATTEN_MAX_NODES nodes
 * are visited (shared subtrees count once per path), and names longer than
 * FLATTEN_MAX_NAME bytes are not reported (one error).
 */
#ifndef CKMON_FLATTEN_H
#define CKMON_FLATTEN_H

#include <stdbool.h>

#include "pyobj.h"
#include "report.h"

#define FLATTEN_MAX_LISTED 8
#define FLATTEN_MAX_DEPTH  64
#define FLATTEN_MAX_NODES  (1u << 22)
#define FLATTEN_MAX_NAME   4096

/* Offered every node, with its full name, before the default rules apply; returns true
 * when it has reported the node itself (then its children are not visited). Formats
 * that know more about some objects (torch tensors) use it. */
typedef bool (*flatten_hook)(void *ctx, struct report *r, const char *name, const struct pyobj *o);

void flatten(struct report *r, const struct pyobj *root, flatten_hook hook, void *ctx);

#endif
