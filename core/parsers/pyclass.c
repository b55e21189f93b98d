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
#include <stdlib.h>
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
        if (module[0] == aliases[i][0][0] && strcmp(module, aliases[i][0]) == 0)
            return aliases[i][1];
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
    /* (version, byteorder, subarray, names, fields, elsize, alignment, flags) */
    if (n >= 6 && s[5]->kind == PY_INT && s[5]->u.integer > 0) dt->u.dtype.elsize = s[5]->u.integer;
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
    if (data->kind == PY_LIST) arr->objects = data; /* pandas labels */
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

/* A Fortran-order array's C-order head (tensor.h), in the arena. */
_Static_assert(PYOBJ_MAX_DIMS <= TENSOR_FORTRAN_MAX_DIMS, "every pickled array's head is planned");
static void plan_fortran_head(struct pyarena *arena, struct pyarray *arr)
{
    arr->head = pyarena_alloc(arena, sizeof *arr->head);
    if (arr->head) tensor_head_plan_fortran(arr->head, arr->shape, arr->ndim);
}

/* BUILD state of numpy.core.multiarray._reconstruct(...): (version, shape, dtype,
 * fortran, data), or the same without the version in old pickles. */
static void build_array(struct pyarena *arena, struct pyobj *node, const struct pyobj *state)
{
    size_t n;
    struct pyobj *const *s = pyobj_tuple_items(state, &n);
    if (n == 5) s++, n--;
    if (n != 4) {
        node->u.array.problem = "unrecognised numpy array state";
        return;
    }
    fill_array(arena, node, s[0], s[1], s[3]);
    node->u.array.fortran = s[2] == &pyobj_true && node->u.array.ndim > 1;
    if (node->u.array.fortran && !node->u.array.problem) plan_fortran_head(arena, &node->u.array);
}

/* numpy.core.numeric._frombuffer(buffer, dtype, shape, order): arrays in protocol 5. */
static struct pyobj *make_frombuffer(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    if (n != 4) return NOT_UNDERSTOOD;
    struct pyobj *node = new_pending_array(arena);
    if (!node) return NULL;
    fill_array(arena, node, a[2], a[1], a[0]);
    node->u.array.fortran = pyobj_is_str(a[3], "F") && node->u.array.ndim > 1;
    if (node->u.array.fortran && !node->u.array.problem) plan_fortran_head(arena, &node->u.array);
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

/* Bytes per element of a dtype whose data is raw: from the BUILD state for flexible
 * types (U10, S5, V24), else the code's digits ("c16", "M8"); 0 when unknown. */
static size_t raw_element_size(const struct pyobj *dt, const struct pyarray *arr)
{
    if (arr->supported) return dtype_size(arr->dtype);
    if (dt->u.dtype.elsize > 0) return (size_t)dt->u.dtype.elsize;
    const char *code = dt->u.dtype.code;
    while (*code && strchr("<>|=", *code))
        code++;
    if (!*code || !strchr("biufcmMSV", *code)) return 0;
    long size = strtol(code + 1, NULL, 10);
    return size > 0 && size <= 1 << 20 ? (size_t)size : 0;
}

/* joblib.numpy_pickle.NumpyArrayWrapper after its BUILD (attributes subclass, shape,
 * order, dtype, allow_mmap and, since joblib 1.2, numpy_array_alignment_bytes): it
 * becomes the array it wraps, whose data follows in the file (pyobj.h). The data's
 * size must be known, or nothing after it can be read: a wrapper without one keeps
 * `problem` and follows = ARRAY_RAW with elsize 0, which the walker refuses. */
static bool built_joblib_array(struct pyarena *arena, struct pyobj *inst)
{
    const struct pyobj *shape = inst->attrs ? pyobj_dict_get(inst->attrs, "shape") : NULL;
    const struct pyobj *dt = inst->attrs ? pyobj_dict_get(inst->attrs, "dtype") : NULL;
    const struct pyobj *order = inst->attrs ? pyobj_dict_get(inst->attrs, "order") : NULL;
    bool padded = inst->attrs && pyobj_dict_get(inst->attrs, "numpy_array_alignment_bytes");
    memset(&inst->u, 0, sizeof inst->u);
    inst->kind = PY_ARRAY;
    inst->attrs = NULL;
    struct pyarray *arr = &inst->u.array;
    arr->follows = padded ? ARRAY_RAW_PADDED : ARRAY_RAW;
    uint64_t count = 0;
    if (!shape || !dt || dt->kind != PY_DTYPE) {
        arr->problem = "unrecognised joblib array wrapper";
        return true;
    }
    if ((arr->problem = array_shape(arena, arr, shape, &count))) return true;
    arr->supported = numpy_dtype(dt->u.dtype.code, &arr->dtype);
    arr->dtype_name = arr->supported ? dtype_name(arr->dtype) : dt->u.dtype.code;
    arr->big_endian = dtype_big_endian(dt);
    if (strchr(dt->u.dtype.code, 'O')) {
        arr->follows = ARRAY_PICKLED;
        arr->problem = "array data is not raw bytes (object arrays are not supported)";
        return true;
    }
    arr->elsize = raw_element_size(dt, arr);
    if (!arr->elsize || __builtin_mul_overflow(count, arr->elsize, &arr->nbytes) ||
        count >= UINT64_MAX / 8) {
        arr->elsize = 0;
        arr->problem = "joblib array of unknown size";
        return true;
    }
    if (!arr->supported) arr->problem = "numpy dtype not supported";
    arr->fortran = order && pyobj_is_str(order, "F") && arr->ndim > 1;
    if (arr->fortran) plan_fortran_head(arena, arr);
    return true;
}

/* dill._dill._create_array(f, args, state, npdict): dill's own call for f(*args) then
 * BUILD(state), with numpy's _reconstruct as f; npdict (an array subclass's __dict__)
 * is not data. */
static struct pyobj *make_dill_array(struct pyarena *arena, struct pyobj *const *a, size_t n)
{
    if (n < 3 || !is_callable(a[0], "numpy.core.multiarray", "_reconstruct")) return NOT_UNDERSTOOD;
    struct pyobj *node = new_pending_array(arena);
    if (node) build_array(arena, node, a[2]);
    return node;
}

/* ---- the table ---- */

struct pyclass {
    const char *module, *name; /* as canonical_module spells the module */
    /* callable(*args); NULL: the call stays an inert object */
    struct pyobj *(*make)(struct pyarena *arena, struct pyobj *const *args, size_t n);
    /* After BUILD gave such an object its attributes: what it becomes (pyclass.h). */
    bool (*built)(struct pyarena *arena, struct pyobj *inst);
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
    {"joblib.numpy_pickle", "NumpyArrayWrapper", NULL, built_joblib_array},
    {"dill._dill", "_create_array", make_dill_array},
};

static const struct pyclass *find_class(const struct pyobj *callable)
{
    if (callable->kind != PY_GLOBAL) return NULL;
    /* spelled canonically once, not once per entry: torch pickles an OrderedDict() per tensor */
    const char *module = canonical_module(callable->u.global.module);
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
        if (callable->u.global.name[0] == classes[i].name[0] &&
            strcmp(callable->u.global.name, classes[i].name) == 0 &&
            strcmp(module, classes[i].module) == 0)
            return &classes[i];
    return NULL;
}

struct pyobj *pyclass_call(struct pyarena *arena, const struct pyobj *callable,
                           const struct pyobj *args)
{
    if (callable->kind != PY_GLOBAL || (args->kind != PY_TUPLE && args->kind != PY_LIST))
        return NOT_UNDERSTOOD;
    size_t n;
    struct pyobj *const *a = pyobj_tuple_items(args, &n);
    const struct pyclass *c = find_class(callable);
    return c && c->make ? c->make(arena, a, n) : NOT_UNDERSTOOD;
}

bool pyclass_built(struct pyarena *arena, struct pyobj *inst)
{
    if (inst->kind != PY_OBJECT || !inst->u.object.callable) return false;
    const struct pyclass *c = find_class(inst->u.object.callable);
    return c && c->built && c->built(arena, inst);
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
