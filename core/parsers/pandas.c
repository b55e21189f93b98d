/* pandas.c — where the columns of a pickled DataFrame or Series are (pandas.h).
 *
 * A frame pickles as pandas.core.frame.DataFrame (or .series.Series) with the state
 * {"_mgr": manager, ...}. pandas 1.x writes the manager in one of two forms:
 *   BlockManager(blocks, axes) by REDUCE, each block _unpickle_block(values, placement,
 *   ndim) — DataFrames;
 *   SingleBlockManager with the BUILD state (axes, values, items, {"0.14.1": {"axes":
 *   axes, "blocks": [{"values": v, "mgr_locs": placement}]}}) — Series.
 * axes are Index objects, _new_Index(cls, {"data": array, "name": ...}) or, for a
 * RangeIndex, _new_Index(RangeIndex, {"start", "stop", "step"}). For a DataFrame axes[0]
 * labels the columns and axes[1] the rows; a block's values are columns x rows and its
 * placement (a slice or an int array) says which columns its rows are. Nothing here
 * allocates nodes: the walker's tree is only read.
 */
#include "pandas.h"

#include <stdlib.h>
#include <string.h>

#define MANAGERS "pandas.core.internals.managers"

/* The arguments of o when it is a call of module.name, or NULL. */
static struct pyobj *const *call_args(const struct pyobj *o, const char *module, const char *name,
                                      size_t *n)
{
    *n = 0;
    if (!o || o->kind != PY_OBJECT || !o->u.object.callable ||
        !pyobj_is_global(o->u.object.callable, module, name) || !o->u.object.args)
        return NULL;
    return pyobj_tuple_items(o->u.object.args, n);
}

static bool as_int(const struct pyobj *o, int64_t *v)
{
    if (!o || o->kind != PY_INT) return false;
    *v = o->u.integer;
    return true;
}

/* An array whose elements can be read here: numeric, retained, 1-D. */
static bool readable(const struct pyarray *a)
{
    return a->supported && !a->problem && a->data && a->ndim == 1;
}

/* The labels of one axis. */
struct labels {
    int64_t count;
    bool range;
    int64_t start, step;
    const struct pyarray *array;  /* numeric labels */
    struct pyobj *const *objects; /* object labels (strings, mixed) */
};

static bool read_index(const struct pyobj *index, struct labels *l)
{
    size_t n;
    struct pyobj *const *a = call_args(index, "pandas.core.indexes.base", "_new_Index", &n);
    memset(l, 0, sizeof *l);
    if (n < 2 || a[0]->kind != PY_GLOBAL || a[1]->kind != PY_DICT) return false;
    if (strcmp(a[0]->u.global.name, "RangeIndex") == 0) {
        int64_t stop;
        l->step = 1;
        const struct pyobj *step = pyobj_dict_get(a[1], "step");
        if (!as_int(pyobj_dict_get(a[1], "start"), &l->start) ||
            !as_int(pyobj_dict_get(a[1], "stop"), &stop) || (step && !as_int(step, &l->step)) ||
            l->step == 0)
            return false;
        l->range = true;
        int64_t span = stop - l->start;
        l->count = span / l->step + (span % l->step != 0);
        if (l->count < 0) l->count = 0;
        return true;
    }
    const struct pyobj *data = pyobj_dict_get(a[1], "data");
    if (!data || data->kind != PY_ARRAY || data->u.array.ndim != 1) return false;
    const struct pyarray *arr = &data->u.array;
    l->count = arr->shape[0];
    if (arr->objects && arr->objects->kind == PY_LIST &&
        (int64_t)arr->objects->u.seq.len == l->count) {
        l->objects = arr->objects->u.seq.at;
        return true;
    }
    /* as a row index, streamed data (joblib) will do: its statistics were kept */
    if (!readable(arr) && !(arr->supported && !arr->problem && arr->streamed)) return false;
    l->array = arr;
    return true;
}

static void label_at(const struct labels *l, int64_t i, struct pandas_column *c)
{
    if (l->objects) {
        c->label = l->objects[i];
        return;
    }
    c->label = &c->label_value;
    if (l->range) {
        c->label_value = (struct pyobj){.kind = PY_INT, .u.integer = l->start + i * l->step};
        return;
    }
    size_t size = dtype_size(l->array->dtype);
    pyobj_element(l->array->dtype, l->array->data + (size_t)i * size, l->array->big_endian,
                  &c->label_value);
}

/* Column i of a block's placement: a slice(start, stop, step) or an int array. */
static bool placement_at(const struct pyobj *placement, int64_t i, int64_t *column)
{
    size_t n;
    struct pyobj *const *s = call_args(placement, "builtins", "slice", &n);
    if (!s) s = call_args(placement, "__builtin__", "slice", &n); /* protocols < 3 */
    if (s) {
        int64_t start = 0, step = 1;
        if (n < 2 || (s[0]->kind != PY_NONE && !as_int(s[0], &start)) ||
            (n > 2 && s[2]->kind != PY_NONE && !as_int(s[2], &step)))
            return false;
        *column = start + i * step;
        return true;
    }
    if (!placement || placement->kind != PY_ARRAY || !readable(&placement->u.array) ||
        i >= placement->u.array.shape[0])
        return false;
    struct pyobj v;
    const struct pyarray *a = &placement->u.array;
    pyobj_element(a->dtype, a->data + (size_t)i * dtype_size(a->dtype), a->big_endian, &v);
    if (v.kind != PY_INT) return false;
    *column = v.u.integer;
    return true;
}

/* One block's values and placement, in either manager form. */
struct block {
    const struct pyobj *values, *placement;
};

/* The manager's axes and blocks: *blocks are n_blocks items of `step` pyobjs each. */
static bool read_manager(const struct pyobj *mgr, struct pyobj *const **axes, size_t *n_axes,
                         struct pyobj *const **blocks, size_t *n_blocks, bool *reduced)
{
    size_t n;
    struct pyobj *const *a = call_args(mgr, MANAGERS, "BlockManager", &n);
    if (a && n >= 2) {
        *blocks = pyobj_tuple_items(a[0], n_blocks);
        *axes = pyobj_tuple_items(a[1], n_axes);
        *reduced = true;
        return true;
    }
    if (!mgr || mgr->kind != PY_OBJECT || !mgr->attrs) return false;
    const struct pyobj *state = pyobj_dict_get(mgr->attrs, "__state__");
    struct pyobj *const *s = state ? pyobj_tuple_items(state, &n) : NULL;
    if (n < 4 || s[3]->kind != PY_DICT) return false;
    const struct pyobj *extra = pyobj_dict_get(s[3], "0.14.1");
    if (!extra || extra->kind != PY_DICT) return false;
    const struct pyobj *ax = pyobj_dict_get(extra, "axes"), *bl = pyobj_dict_get(extra, "blocks");
    if (!ax || !bl) return false;
    *axes = pyobj_tuple_items(ax, n_axes);
    *blocks = pyobj_tuple_items(bl, n_blocks);
    *reduced = false;
    return true;
}

static bool read_block(const struct pyobj *b, bool reduced, struct block *out)
{
    if (reduced) {
        size_t n;
        struct pyobj *const *a = call_args(b, "pandas._libs.internals", "_unpickle_block", &n);
        if (n < 2) return false;
        out->values = a[0];
        out->placement = a[1];
    } else {
        if (b->kind != PY_DICT) return false;
        out->values = pyobj_dict_get(b, "values");
        out->placement = pyobj_dict_get(b, "mgr_locs");
    }
    return out->values && out->values->kind == PY_ARRAY;
}

static struct pyobj unnamed = {.kind = PY_STR, .u.str = {"values", 6}};

bool pandas_frame(const struct pyobj *o, struct pandas_frame *f)
{
    memset(f, 0, sizeof *f);
    if (o->kind != PY_OBJECT || !o->u.object.callable || !o->attrs) return false;
    if (pyobj_is_global(o->u.object.callable, "pandas.core.series", "Series"))
        f->series = true;
    else if (!pyobj_is_global(o->u.object.callable, "pandas.core.frame", "DataFrame"))
        return false;
    struct pyobj *const *axes, *const *blocks;
    size_t n_axes, n_blocks;
    bool reduced;
    if (!read_manager(pyobj_dict_get(o->attrs, "_mgr"), &axes, &n_axes, &blocks, &n_blocks,
                      &reduced))
        return false;
    struct labels columns, rows;
    if (n_axes != (f->series ? 1u : 2u) || !read_index(axes[n_axes - 1], &rows)) return false;
    if (f->series) {
        struct block b;
        if (n_blocks != 1 || !read_block(blocks[0], reduced, &b) || b.values->u.array.ndim != 1)
            return false;
        f->columns = calloc(1, sizeof *f->columns);
        if (!f->columns) return false;
        f->ncolumns = 1;
        const struct pyobj *name = pyobj_dict_get(o->attrs, "name");
        f->columns[0] =
            (struct pandas_column){.label = name && name->kind != PY_NONE ? name : &unnamed,
                                   .block = &b.values->u.array,
                                   .row = -1};
    } else {
        if (!read_index(axes[0], &columns) || columns.count > (1 << 24) ||
            (columns.array && !columns.array->data))
            return false;
        f->columns = calloc(columns.count ? (size_t)columns.count : 1, sizeof *f->columns);
        if (!f->columns) return false;
        f->ncolumns = (size_t)columns.count;
        for (size_t i = 0; i < f->ncolumns; i++)
            label_at(&columns, (int64_t)i, &f->columns[i]);
        for (size_t i = 0; i < n_blocks; i++) {
            struct block b;
            if (!read_block(blocks[i], reduced, &b) || b.values->u.array.ndim != 2) continue;
            for (int64_t row = 0; row < b.values->u.array.shape[0]; row++) {
                int64_t column;
                if (!placement_at(b.placement, row, &column) || column < 0 ||
                    column >= columns.count)
                    break;
                f->columns[column].block = &b.values->u.array;
                f->columns[column].row = row;
            }
        }
    }
    f->nrows = rows.count;
    f->index = rows.array;
    f->index_is_range = rows.range;
    f->index_start = rows.start;
    f->index_step = rows.step;
    return true;
}

void pandas_frame_free(struct pandas_frame *f)
{
    free(f->columns);
    f->columns = NULL;
}
