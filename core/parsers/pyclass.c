/* pyclass.c — what the pickle walker knows of Python classes and functions: one table
 * entry per callable, and the maker that turns a call of it into plain data.
 *
 * Unpickling calls callables (REDUCE, NEWOBJ, BUILD); the walker never does. For the
 * callables listed in `classes` it builds the node the call would have produced: dicts
 * (dict, OrderedDict, defaultdict), containers, bytes, copyreg's reconstructed
 * instances, numpy arrays, dtypes and scalars. Anything else stays an inert object that
 * flatten.c describes as "module.name(...)". Adding a class is one entry and, when no
 * existing maker fits, one maker. The makers only read their arguments: nothing here
 * imports, evaluates or calls anything.
 */
#include "pyclass.h"

#include <stdio.h>
#include <string.h>

struct pyobj pyclass_not_understood;
#define NOT_UNDERSTOOD PYCLASS_NOT_UNDERSTOOD

/* ---- the makers: what one call builds (pyclass.h says what they return) ---- */

/* Python 2 names (which Python 3 writes for protocols < 3) and numpy 2's private modules
 * are spelled the modern way before matching. */
static const char *canonical_module(const char *module)
{
    static const char *const aliases[][2] = {
        {"__builtin__", "builtins"},
        {"copy_reg", "copyreg"},
        {"numpy._core.multiarray", "numpy.core.multiarray"},
        {"numpy._core.numeric", "numpy.core.numeric"},
    };
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (strcmp(module, aliases[i][0]) == 0) return aliases[i][1];
    return module;
}

static bool is_callable(const struct pyobj *o, const char *module, const char *name)
{
    return o->kind == PY_GLOBAL && strcmp(canonical_module(o->u.global.module), module) == 0 &&
           strcmp(o->u.global.name, name) == 0;
}

/* Items of any list, tuple, set or frozenset. */
static struct pyobj *const *seq_items(const struct pyobj *o, size_t *n)
{
    switch (o->kind) {
    case PY_LIST:
    case PY_TUPLE:
    case PY_SET:
    case PY_FROZENSET:
        *n = o->u.seq.len;
        return o->u.seq.at;
    default:
        *n = 0;
        return NULL;
    }
}

/* numpy's dtype codes ("f8", "<i4", "b1") for the element types statistics can read. */
static bool numpy_dtype(const char *code, enum dtype *out)
{
    static const struct {
        const char *code;
        enum dtype dtype;
    } known[] = {
        {"f8", DTYPE_F64}, {"f4", DTYPE_F32}, {"f2", DTYPE_F16}, {"i8", DTYPE_I64},
        {"i4", DTYPE_I32}, {"i2", DTYPE_I16}, {"i1", DTYPE_I8},  {"u8", DTYPE_U64},
        {"u4", DTYPE_U32}, {"u2", DTYPE_U16}, {"u1", DTYPE_U8},  {"b1", DTYPE_BOOL},
    };
    if (code[0] && strchr("<>|=", code[0])) code++;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(code, known[i].code) == 0) {
            *out = known[i].dtype;
            return true;
        }
    }
    return false;
}

static bool dtype_big_endian(const struct pyobj *dt)
{
    return dt->u.dtype.byteorder == '>' || dt->u.dtype.code[0] == '>';
}

/* numpy.dtype(code, align, copy); its BUILD state then gives the byte order. */
static struct pyobj *make_dtype(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    if (n < 1 || a[0]->kind != PY_STR || !a[0]->u.str.data) return NOT_UNDERSTOOD;
    struct pyobj *dt = pyobj_new(arena, PY_DTYPE);
    if (!dt) return NULL;
    snprintf(dt->u.dtype.code, sizeof(dt->u.dtype.code), "%s", a[0]->u.str.data);
    dt->u.dtype.byteorder = '=';
    return dt;
}

static void build_dtype(struct pyobj *dt, const struct pyobj *state)
{
    size_t n;
    struct pyobj *const *s = pyobj_tuple_items(state, &n);
    if (n >= 2 && s[1]->kind == PY_STR && s[1]->u.str.len == 1 && s[1]->u.str.data)
        dt->u.dtype.byteorder = s[1]->u.str.data[0];
}

static const char *array_shape(struct pyarena *arena, struct pyarray *arr,
                               const struct pyobj *shape, uint64_t *count)
{
    size_t ndim;
    struct pyobj *const *dims = pyobj_tuple_items(shape, &ndim);
    if (shape->kind != PY_TUPLE && shape->kind != PY_LIST) return "unrecognised numpy array shape";
    if (ndim > PYOBJ_MAX_DIMS) return "numpy array with too many dimensions";
    arr->shape = ndim ? pyarena_alloc(arena, ndim * sizeof(int64_t)) : NULL;
    if (ndim && !arr->shape) return "no memory left for the array's shape";
    *count = 1;
    for (size_t i = 0; i < ndim; i++) {
        if (dims[i]->kind != PY_INT || dims[i]->u.integer < 0)
            return "unrecognised numpy array shape";
        arr->shape[i] = dims[i]->u.integer;
        uint64_t d = (uint64_t)dims[i]->u.integer;
        *count = (d && *count > UINT64_MAX / 8 / d) ? UINT64_MAX / 8 : *count * d;
    }
    arr->ndim = (int)ndim;
    return NULL;
}

/* What keeps an array's statistics from being computed, or NULL. */
static const char *array_data(struct pyarray *arr, const struct pyobj *dt, const struct pyobj *data,
                              uint64_t count)
{
    arr->supported = numpy_dtype(dt->u.dtype.code, &arr->dtype);
    arr->dtype_name = arr->supported ? dtype_name(arr->dtype) : dt->u.dtype.code;
    arr->big_endian = dtype_big_endian(dt);
    if (!arr->supported) return "numpy dtype not supported";
    /* bytes, or a str holding raw bytes in Python 2 pickles */
    if (data->kind != PY_BYTES && data->kind != PY_STR)
        return "array data is not raw bytes (object arrays are not supported)";
    arr->nbytes = data->u.str.len;
    arr->data = (const uint8_t *)data->u.str.data;
    if (arr->nbytes != count * dtype_size(arr->dtype))
        return "array data size does not match its shape";
    if (!arr->data) return "array data not retained (over the parser's memory limits)";
    return NULL;
}

/* Fills an array node from what numpy's __setstate__ and _frombuffer receive. A problem
 * is recorded on the node instead of failing the walk: an odd array is still a tensor
 * worth naming. */
static void fill_array(struct pyarena *arena, struct pyobj *node, const struct pyobj *shape,
                       const struct pyobj *dt, const struct pyobj *data)
{
    struct pyarray *arr = &node->u.array;
    uint64_t count = 0;
    if (dt->kind != PY_DTYPE) {
        arr->problem = "unrecognised numpy array dtype";
        return;
    }
    arr->problem = array_shape(arena, arr, shape, &count);
    if (!arr->problem) arr->problem = array_data(arr, dt, data, count);
}

static struct pyobj *new_pending_array(struct pyarena *arena)
{
    struct pyobj *node = pyobj_new(arena, PY_ARRAY);
    if (node) node->u.array.problem = "no array state followed";
    return node;
}

/* BUILD state of numpy.core.multiarray._reconstruct(...): (version, shape, dtype,
 * fortran, data), or the same without the version in old pickles. */
static void build_array(struct pyarena *arena, struct pyobj *node, const struct pyobj *state)
{
    size_t n;
    struct pyobj *const *s = pyobj_tuple_items(state, &n);
    if (n == 5) s++, n--;
    if (n != 4)
        node->u.array.problem = "unrecognised numpy array state";
    else
        fill_array(arena, node, s[0], s[1], s[3]);
}

/* numpy.core.numeric._frombuffer(buffer, dtype, shape, order): arrays in protocol 5. */
static struct pyobj *make_frombuffer(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    if (n != 4) return NOT_UNDERSTOOD;
    struct pyobj *node = new_pending_array(arena);
    if (node) fill_array(arena, node, a[2], a[1], a[0]);
    return node;
}

/* numpy.core.multiarray.scalar(dtype, bytes): the number itself. */
static struct pyobj *make_scalar(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    enum dtype t;
    if (n != 2 || a[0]->kind != PY_DTYPE || !numpy_dtype(a[0]->u.dtype.code, &t) ||
        (a[1]->kind != PY_BYTES && a[1]->kind != PY_STR) || !a[1]->u.str.data ||
        a[1]->u.str.len != dtype_size(t))
        return NOT_UNDERSTOOD;
    struct pyobj *o = pyobj_new(arena, PY_FLOAT);
    if (o) pyobj_element(t, (const uint8_t *)a[1]->u.str.data, dtype_big_endian(a[0]), o);
    return o;
}

/* dict(mapping) or dict(pairs), as OrderedDict and dict are rebuilt. */
static struct pyobj *make_dict(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    struct pyobj *d = pyobj_new(arena, PY_DICT);
    if (!d || n == 0) return d;
    if (a[0]->kind == PY_DICT)
        return pyvec_extend(arena, &d->u.map, a[0]->u.map.at, a[0]->u.map.len) ? d : NULL;
    size_t count;
    struct pyobj *const *pairs = seq_items(a[0], &count);
    for (size_t i = 0; i < count; i++) {
        size_t two;
        struct pyobj *const *kv = pyobj_tuple_items(pairs[i], &two);
        if (two == 2 && !pyvec_extend(arena, &d->u.map, kv, 2)) return NULL;
    }
    return d;
}

/* A str encoded as latin-1 (one byte per code point below 256): Python 3 pickles bytes
 * this way for protocols < 3, as _codecs.encode(str, 'latin1'). */
static struct pyobj *latin1_bytes(struct pyarena *arena, const struct pyobj *s)
{
    if (s->kind != PY_STR) return NOT_UNDERSTOOD;
    if (!s->u.str.data || !pyarena_may_keep(arena, s->u.str.len))
        return pyobj_str(arena, PY_BYTES, NULL, s->u.str.len);
    uint8_t *out = pyarena_alloc(arena, s->u.str.len + 1);
    if (!out) return NULL;
    const uint8_t *in = (const uint8_t *)s->u.str.data;
    size_t n = 0;
    for (uint64_t i = 0; i < s->u.str.len; i++) {
        if ((in[i] == 0xc2 || in[i] == 0xc3) && i + 1 < s->u.str.len) {
            out[n++] = (uint8_t)(((in[i] & 0x03) << 6) | (in[i + 1] & 0x3f));
            i++;
        } else {
            out[n++] = in[i];
        }
    }
    return pyobj_str(arena, PY_BYTES, (const char *)out, n);
}

/* bytes() / bytearray(bytes) / bytearray(str, 'latin-1') */
static struct pyobj *make_bytes(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    if (n == 0) return pyobj_str(arena, PY_BYTES, "", 0);
    if (a[0]->kind == PY_BYTES) return a[0];
    if (n == 2) return latin1_bytes(arena, a[0]);
    return NOT_UNDERSTOOD;
}

/* copyreg._reconstructor(cls, base, state): instances in protocols 0 and 1. For a
 * builtin base (a dict or list subclass) state is the base's value. */
static struct pyobj *make_reconstructed(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    if (n != 3) return NOT_UNDERSTOOD;
    struct pyobj *o = pyobj_new(arena, PY_OBJECT);
    if (!o) return NULL;
    o->u.object.callable = a[0];
    bool ok = true;
    if (a[2]->kind == PY_DICT)
        ok = pyvec_extend(arena, &o->u.object.map, a[2]->u.map.at, a[2]->u.map.len);
    else if (a[2]->kind == PY_LIST)
        ok = pyvec_extend(arena, &o->u.object.items, a[2]->u.seq.at, a[2]->u.seq.len);
    return ok ? o : NULL;
}

/* list(x), tuple(x), set(x), frozenset(x) with x a sequence, or without x. */
static struct pyobj *make_container(struct pyarena *arena, enum pyobj_kind kind,
                                    struct pyobj *const *a, size_t n)
{
    size_t len = 0;
    struct pyobj *const *items = n ? seq_items(a[0], &len) : NULL;
    if (n && !items && a[0]->kind != PY_LIST && a[0]->kind != PY_TUPLE && a[0]->kind != PY_SET &&
        a[0]->kind != PY_FROZENSET)
        return NOT_UNDERSTOOD;
    return pyobj_seq(arena, kind, items, len);
}

static struct pyobj *make_list(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    return make_container(arena, PY_LIST, a, n);
}

static struct pyobj *make_tuple(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    return make_container(arena, PY_TUPLE, a, n);
}

static struct pyobj *make_set(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    return make_container(arena, PY_SET, a, n);
}

static struct pyobj *make_frozenset(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    return make_container(arena, PY_FROZENSET, a, n);
}

/* defaultdict(factory): the factory is not data */
static struct pyobj *make_empty_dict(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    (void)a, (void)n;
    return pyobj_new(arena, PY_DICT);
}

/* _codecs.encode(str, 'latin1') */
static struct pyobj *make_encoded(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    return n == 2 ? latin1_bytes(arena, a[0]) : NOT_UNDERSTOOD;
}

/* numpy.core.multiarray._reconstruct(ndarray, (0,), b'b'): the array comes with BUILD */
static struct pyobj *make_reconstruct(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    (void)a, (void)n;
    return new_pending_array(arena);
}

/* ---- the table ---- */

struct pyclass {
    const char *module, *name; /* as canonical_module spells the module */
    struct pyobj *(*make)(struct pyarena *arena, struct pyobj *const *args, size_t n);
};

static const struct pyclass classes[] = {
    {"builtins", "dict", make_dict},
    {"builtins", "list", make_list},
    {"builtins", "tuple", make_tuple},
    {"builtins", "set", make_set},
    {"builtins", "frozenset", make_frozenset},
    {"builtins", "bytes", make_bytes},
    {"builtins", "bytearray", make_bytes},
    {"collections", "OrderedDict", make_dict},
    {"collections", "defaultdict", make_empty_dict},
    {"_codecs", "encode", make_encoded},
    {"copyreg", "_reconstructor", make_reconstructed},
    {"numpy.core.multiarray", "_reconstruct", make_reconstruct},
    {"numpy.core.multiarray", "scalar", make_scalar},
    {"numpy.core.numeric", "_frombuffer", make_frombuffer},
    {"numpy", "dtype", make_dtype},
};

struct pyobj *pyclass_call(struct pyarena *arena, const struct pyobj *callable,
                           const struct pyobj *args)
{
    if (callable->kind != PY_GLOBAL || (args->kind != PY_TUPLE && args->kind != PY_LIST))
        return NOT_UNDERSTOOD;
    size_t n;
    struct pyobj *const *a = pyobj_tuple_items(args, &n);
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
        if (is_callable(callable, classes[i].module, classes[i].name))
            return classes[i].make(arena, a, n);
    return NOT_UNDERSTOOD;
}

bool pyclass_build(struct pyarena *arena, struct pyobj *inst, const struct pyobj *state)
{
    switch (inst->kind) {
    case PY_ARRAY:
        build_array(arena, inst, state);
        return true;
    case PY_DTYPE:
        build_dtype(inst, state);
        return true;
    default:
        return false;
    }
}
