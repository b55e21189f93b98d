/* pickle.h — the streaming, inert pickle walker (pickle.c), for every format that holds
 * pickles: plain pickle files, joblib, torch's data.pkl and its legacy format.
 *
 * It unpickles protocols 0-5 from bytes fed in pieces of any size, without importing or
 * calling anything (the objects are modelled by pyobj.h; the classes it understands are
 * listed in pyclass.c), and hands the root object to on_stop when it reaches STOP. The
 * root and every node reachable from it stay valid until pickle_walker_free. Errors
 * (malformed, truncated, over the memory cap) go to the report with their byte offset.
 */
#ifndef CKMON_PICKLE_H
#define CKMON_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pyobj.h"
#include "report.h"

struct pickle_walker;
typedef void (*pickle_on_stop)(void *ctx, struct pyobj *root);

enum pickle_state { PICKLE_RUNNING, PICKLE_STOPPED, PICKLE_FAILED };

struct pickle_walker *pickle_walker_new(struct report *r, pickle_on_stop on_stop, void *ctx);
/* Returns how many bytes belong to the pickle: all of len, or fewer when STOP came
 * within them (the rest is whatever follows the pickle). After STOP or a failure it
 * takes nothing more (a failed walker claims all bytes, as they are ignored). */
size_t pickle_walker_feed(struct pickle_walker *w, const uint8_t *data, size_t len);
/* The data ended: true when the pickle was whole (reached STOP); otherwise reports why. */
bool pickle_walker_finish(struct pickle_walker *w);
enum pickle_state pickle_walker_state(const struct pickle_walker *w);
/* Whether the pickle holds joblib arrays (its format is then "joblib"). */
bool pickle_walker_joblib(const struct pickle_walker *w);
/* After a failure or a truncation: the root as far as it was built (items after an
 * unfinished MARK put where they were going, an object given the state dict its BUILD
 * did not reach), or NULL when nothing sensible is left. Valid until free. */
struct pyobj *pickle_walker_partial(struct pickle_walker *w);
void pickle_walker_free(struct pickle_walker *w);

/* A parser may take a call over as it is made (torch: a tensor's rebuild): the hook
 * returns true and sets *found when it took all it needs from args; the call then
 * becomes the node PY_FOUND(found), and the memory its arguments took is given back
 * (pickle.c), so that the walker's memory does not grow with the tensors' arguments.
 * It is asked only about REDUCE calls whose arguments nothing else can reach. */
typedef bool (*pickle_reduce_hook)(void *ctx, const struct pyobj *callable,
                                   const struct pyobj *args, size_t *found);
void pickle_walker_set_reduce_hook(struct pickle_walker *w, pickle_reduce_hook hook, void *ctx);

#endif
