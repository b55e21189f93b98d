/* pandas.h — a pickled pandas DataFrame or Series, seen as columns (pandas.c).
 *
 * pandas keeps a frame's data in blocks: 2-D arrays of several columns of one dtype
 * (columns x rows), in whatever order the frame's history left them, and the labels in
 * Index objects. flatten.c reports each column as one 1-D tensor named by its label; this
 * says where each column is: which block, which row of it.
 */
#ifndef CKMON_PANDAS_H
#define CKMON_PANDAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pyobj.h"

struct pandas_column {
    const struct pyobj *label; /* str() of it names the column; NULL: label_value */
    struct pyobj label_value;  /* a label read from a numeric Index */
    const struct pyarray *block;
    int64_t row; /* the column's row in a 2-D block; -1 for a 1-D block (a Series) */
};

struct pandas_frame {
    bool series;
    struct pandas_column *columns; /* malloc'd, in the frame's column order */
    size_t ncolumns;
    int64_t nrows;
    /* The row index when it is numeric: an array, or start + i * step. */
    const struct pyarray *index;
    bool index_is_range;
    int64_t index_start, index_step;
};

/* Whether o is a DataFrame or Series (pandas 1.x pickles) whose blocks and labels are
 * understood; fills f, to be freed with pandas_frame_free. */
bool pandas_frame(const struct pyobj *o, struct pandas_frame *f);
void pandas_frame_free(struct pandas_frame *f);

#endif
