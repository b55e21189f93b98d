/* pyclass.h — the Python classes and functions the pickle walker understands (pyclass.c).
 *
 * A pickle rebuilds objects by calling things: REDUCE/NEWOBJ call a callable with
 * arguments, BUILD hands an object its state. The walker performs none of these; it
 * asks here whether the callable is one whose result is plain data, and gets that data
 * as a node of the Python-object model (pyobj.h).
 */
#ifndef CKMON_PYCLASS_H
#define CKMON_PYCLASS_H

#include <stdbool.h>

#include "pyobj.h"

/* What pyclass_call returns for a callable it does not know, or arguments it does not
 * understand: the caller keeps the call as an inert object. */
extern struct pyobj pyclass_not_understood;
#define PYCLASS_NOT_UNDERSTOOD (&pyclass_not_understood)

/* The node callable(*args) builds; PYCLASS_NOT_UNDERSTOOD; or NULL when the arena's
 * memory ran out. */
struct pyobj *pyclass_call(struct pyarena *arena, const struct pyobj *callable,
                           const struct pyobj *args);

/* BUILD(inst, state) for nodes the makers built that take their own state (numpy arrays
 * and dtypes). Returns false when inst is not one of them. */
bool pyclass_build(struct pyarena *arena, struct pyobj *inst, const struct pyobj *state);

/* After BUILD merged an object's state into its attributes: some classes' objects then
 * become something else, in place (joblib's NumpyArrayWrapper becomes the array whose
 * data follows in the file: pyobj.h, struct pyarray's `follows`). Returns whether inst
 * changed. */
bool pyclass_built(struct pyarena *arena, struct pyobj *inst);

#endif
