/* torch.c — PyTorch checkpoints as torch.save writes them: the zip format (the default
 * since torch 1.6) and the legacy one.
 *
 * The archive's records, in the order torch writes them: PREFIX/data.pkl (the object,
 * with every tensor pickled as a call that rebuilds it from a storage), then in 2.x
 * PREFIX/byteorder, one PREFIX/data/KEY record per storage, PREFIX/version and
 * PREFIX/.data/serialization_id. PREFIX varies (the file's stem, "archive") and is
 * ignored. Local headers carry no sizes (zip.h), so a storage record's length comes
 * from data.pkl: the storage's numel times its element size.
 *
 * data.pkl is walked by the pickle walker (pickle.h) and flattened (flatten.h) into
 * values; a hook recognizes the tensors on the way, by their rebuild call:
 *   torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)
 *   torch._utils._rebuild_tensor_v3(..., hooks, dtype, ...)   untyped storage, sized in bytes
 *   torch._utils._rebuild_tensor(storage, offset, size, stride)
 *   _rebuild_parameter / _rebuild_parameter_with_state(tensor, ...) and (subclasses)
 *   torch._tensor._rebuild_from_type_v2(rebuild, type, args, state): the tensor inside.
 * The storage is the persistent id ('storage', torch.<Type>Storage, key, location, numel).
 * Each tensor is a view into its storage: the elements from its storage offset on. A
 * contiguous view (C order, or any permutation of it, such as a transpose) covers one
 * byte range of the storage, read as the record streams by; several views of one
 * storage each get theirs. A permuted view's head is picked out in its own index order
 * (tensor_head). Views with gaps (x[::2]) are reported with dtype and shape only.
 *
 * OrderedDict state dicts carry a `_metadata` attribute (module versions); it is
 * dropped. Not read: big-endian archives (a "byteorder" record of "big"), sparse and
 * quantized tensors.
 *
 * The legacy format (_use_new_zipfile_serialization=False, torch < 1.6) is five pickles
 * back to back — torch's magic number, the protocol version, system information, the
 * object, the list of storage keys in the order they follow — then each storage as a
 * little-endian int64 element count and its bytes. The same views are read from it.
 */
#include "parser.h"
#include "flatten.h"
#include "pickle.h"
#include "pyobj.h"
#include "tensor.h"
#include "../grow.h"
#include "torch.h"
#include "zip.h"

#include <stdlib.h>
#include <string.h>

#define STORAGE_KEY_MAX 64

struct element_type {
    const char *storage; /* torch.<storage> in the persistent id */
    const char *dtype;   /* torch.<dtype> for _rebuild_tensor_v3 */
    const char *alias;   /* torch's other name for the dtype */
    const char *name;    /* as the record spells it */
    size_t size;
    bool readable; /* statistics can read it: then it is `type` */
    enum dtype type;
};

static const struct element_type element_types[] = {
    {"DoubleStorage", "float64", "double", "float64", 8, true, DTYPE_F64},
    {"FloatStorage", "float32", "float", "float32", 4, true, DTYPE_F32},
    {"HalfStorage", "float16", "half", "float16", 2, true, DTYPE_F16},
    {"BFloat16Storage", "bfloat16", NULL, "bfloat16", 2, true, DTYPE_BF16},
    {"LongStorage", "int64", "long", "int64", 8, true, DTYPE_I64},
    {"IntStorage", "int32", "int", "int32", 4, true, DTYPE_I32},
    {"ShortStorage", "int16", "short", "int16", 2, true, DTYPE_I16},
    {"CharStorage", "int8", NULL, "int8", 1, true, DTYPE_I8},
    {"ByteStorage", "uint8", NULL, "uint8", 1, true, DTYPE_U8},
    {"BoolStorage", "bool", NULL, "bool", 1, true, DTYPE_BOOL},
    {NULL, "float8_e4m3fn", NULL, "float8_e4m3fn", 1, true, DTYPE_F8_E4M3},
    {NULL, "float8_e5m2", NULL, "float8_e5m2", 1, true, DTYPE_F8_E5M2},
    {"ComplexFloatStorage", "complex64", "cfloat", "complex64", 8, false, DTYPE_U8},
    {"ComplexDoubleStorage", "complex128", "cdouble", "complex128", 16, false, DTYPE_U8},
    {"UntypedStorage", NULL, NULL, "uint8", 1, true, DTYPE_U8},
};

/* One tensor: a byte range of one storage. Its reader (large: it holds a sampling
 * block) exists only while the storage's bytes pass through its range; readers are
 * reused, so memory follows how many views overlap, not how many there are. */
struct view {
    char key[STORAGE_KEY_MAX]; /* its storage */
    char *name;
    enum dtype dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    uint64_t begin, nbytes; /* within the storage */
    uint64_t storage_nbytes;
    size_t storage_elsize;
    size_t order; /* position in the object, for a stable sort */
    const char *dtype_name;
    bool partial;    /* dtype and shape only: a view with gaps, or an element type not read */
    bool readable;   /* its element type is one statistics read */
    bool referenced; /* the object holds it (a view made at REDUCE may be dropped unnamed) */
    bool reported;
    struct tensor_head head; /* a permuted view's head, in its own index order */
    struct tensor_reader *reader;
};

enum member { M_OTHER, M_PICKLE, M_STORAGE, M_EARLY };

/* TorchScript (torch.jit.save) writes the storages before data.pkl: they are kept, up to
 * EARLY_MAX bytes in all, and read once data.pkl has said what they hold. */
#define EARLY_MAX (64u << 20)
struct early {
    char key[STORAGE_KEY_MAX];
    uint8_t *bytes;
    size_t len, cap;
    bool whole;
};

/* The legacy format's pickles, in order, then its storages. */
enum legacy_part { L_MAGIC, L_PROTOCOL, L_SYS_INFO, L_OBJECT, L_KEYS, L_STORAGES };

struct torch {
    struct parser base;
    struct report *report;
    const struct parse_options *options;
    struct zip_walker *zip;
    struct pickle_walker *pickle;
    bool pickled; /* data.pkl reached STOP and was flattened */
    bool broken;  /* a record was malformed or cut short */
    bool said_early;
    bool pickle_seen;
    bool constants_seen; /* TorchScript's constants.pkl */
    bool in_constants;   /* its tensors' storages are PREFIX/constants/KEY */

    struct early *early; /* storages that came before data.pkl */
    size_t nearly, early_cap, early_bytes;

    struct view *views; /* sorted by storage key once data.pkl is done */
    size_t nviews, cap;
    size_t named;                 /* views the object holds so far */
    struct tensor_reader **spare; /* readers no view holds */
    size_t nspare, spare_cap;

    enum member member;
    size_t first, last;  /* M_STORAGE: views[first, last) are the storage's */
    uint64_t at, nbytes; /* M_STORAGE: bytes of the storage so far, and in all */

    /* the legacy format */
    enum legacy_part part;
    char (*keys)[STORAGE_KEY_MAX]; /* storage order */
    size_t nkeys, next_key;
    uint8_t count[8]; /* a storage's element count */
    size_t count_have;
};

/* ---- Recognizing tensors in data.pkl ---------------------------------------------- */

static const struct element_type *by_storage(const char *storage)
{
    for (size_t i = 0; i < sizeof element_types / sizeof element_types[0]; i++)
        if (element_types[i].storage && strcmp(element_types[i].storage, storage) == 0)
            return &element_types[i];
    return NULL;
}

static const struct element_type *by_dtype(const struct pyobj *g)
{
    if (!g || g->kind != PY_GLOBAL || strcmp(g->u.global.module, "torch") != 0) return NULL;
    for (size_t i = 0; i < sizeof element_types / sizeof element_types[0]; i++) {
        const struct element_type *e = &element_types[i];
        if (e->dtype && (strcmp(e->dtype, g->u.global.name) == 0 ||
                         (e->alias && strcmp(e->alias, g->u.global.name) == 0)))
            return e;
    }
    return NULL;
}

static bool get_int(const struct pyobj *o, int64_t *v)
{
    if (!o || o->kind != PY_INT) return false;
    *v = o->u.integer;
    return true;
}

/* A tuple of ints (size or stride); false when it is not one or has too many. */
static bool get_dims(const struct pyobj *o, int64_t *dims, int *ndim)
{
    size_t n;
    struct pyobj *const *items = pyobj_tuple_items(o, &n);
    if (!o || (o->kind != PY_TUPLE && o->kind != PY_LIST) || n > TENSOR_MAX_DIMS) return false;
    for (size_t i = 0; i < n; i++)
        if (!get_int(items[i], &dims[i])) return false;
    *ndim = (int)n;
    return true;
}

/* Whether the elements the view addresses are exactly numel consecutive ones from its
 * offset: C order or any permutation of it. Size-1 dimensions do not matter. */
static bool dense(const int64_t *size, const int64_t *stride, int ndim)
{
    bool used[TENSOR_MAX_DIMS] = {false};
    int64_t expected = 1;
    for (int k = 0; k < ndim; k++) {
        int pick = -1;
        for (int i = 0; i < ndim; i++) {
            if (used[i] || size[i] == 1) continue;
            if (stride[i] == expected && (pick < 0 || size[i] > size[pick])) pick = i;
        }
        if (pick < 0) break;
        used[pick] = true;
        if (__builtin_mul_overflow(expected, size[pick], &expected)) return false;
    }
    for (int i = 0; i < ndim; i++)
        if (!used[i] && size[i] != 1) return false;
    return true;
}

static struct view *new_view(struct torch *t)
{
    if (!GROW_FOR_ONE(t->views, t->nviews, t->cap, 64)) return NULL;
    struct view *v = &t->views[t->nviews];
    memset(v, 0, sizeof *v);
    v->order = t->nviews;
    return v;
}

/* A view for the args of a _rebuild_tensor* call (v3: dtype given); its index, or -1.
 * With a name, problems are reported; without one (at REDUCE, pickle.h's hook) nothing
 * is, and the call is left for flatten, which comes back with the name. */
static long make_view(struct torch *t, const char *name, struct pyobj *const *args, size_t n,
                      bool v3)
{
    struct report *r = t->report;
    size_t np = 0;
    struct pyobj *const *id =
        n >= 4 && args[0]->kind == PY_PID ? pyobj_tuple_items(args[0]->u.pid, &np) : NULL;
    int64_t offset, numel, size[TENSOR_MAX_DIMS], stride[TENSOR_MAX_DIMS];
    int ndim, nstride;
    if (np < 5 || !pyobj_is_str(id[0], "storage") || id[1]->kind != PY_GLOBAL ||
        id[2]->kind != PY_STR || !id[2]->u.str.data || id[2]->u.str.len >= STORAGE_KEY_MAX ||
        (t->in_constants && id[2]->u.str.len >= STORAGE_KEY_MAX - 10) || !get_int(id[4], &numel) ||
        numel < 0 || !get_int(args[1], &offset) || offset < 0 || !get_dims(args[2], size, &ndim) ||
        !get_dims(args[3], stride, &nstride) || nstride != ndim) {
        if (name) report_error(r, "%s: tensor not understood", name);
        t->broken |= name != NULL;
        return -1;
    }
    const struct element_type *storage = by_storage(id[1]->u.global.name);
    const struct element_type *e = v3 ? by_dtype(n >= 7 ? args[6] : NULL) : storage;
    if (!storage || !e) {
        if (name) report_error(r, "%s: element type %s not read", name, id[1]->u.global.name);
        return -1;
    }
    struct view *v = new_view(t);
    if (!v) {
        if (name) report_error(r, "%s: out of memory", name);
        t->broken |= name != NULL;
        return -1;
    }
    /* both lengths were checked above; no snprintf: it was half of a tensor's view */
    size_t prefix = t->in_constants ? strlen("constants/") : 0;
    memcpy(v->key, "constants/", prefix);
    memcpy(v->key + prefix, id[2]->u.str.data, id[2]->u.str.len + 1);
    v->storage_elsize = storage->size;
    uint64_t elements = 0, reach = 0; /* elements, and how far past the offset they go */
    bool sized = !__builtin_mul_overflow((uint64_t)numel, storage->size, &v->storage_nbytes) &&
                 !__builtin_mul_overflow((uint64_t)offset, e->size, &v->begin) &&
                 tensor_shape_elements(size, ndim, &elements) &&
                 !__builtin_mul_overflow(elements, e->size, &v->nbytes);
    for (int i = 0; sized && elements && i < ndim; i++) {
        uint64_t step;
        sized = stride[i] >= 0 &&
                !__builtin_mul_overflow((uint64_t)(size[i] - 1), (uint64_t)stride[i], &step) &&
                !__builtin_add_overflow(reach, step, &reach);
    }
    if (elements) reach += 1;
    if (!sized || __builtin_mul_overflow(reach, e->size, &reach) || v->begin > v->storage_nbytes ||
        reach > v->storage_nbytes - v->begin) {
        if (name) report_error(r, "%s: outside its storage", name);
        t->broken |= name != NULL;
        return -1;
    }
    /* dtype and shape only: nothing of the storage is read for it (it stays a view so
     * that its storage's size is known) */
    v->partial = !e->readable || (elements > 1 && !dense(size, stride, ndim));
    v->dtype_name = e->name;
    v->readable = e->readable;
    v->dtype = e->type;
    if (!v->partial) tensor_head_plan(&v->head, size, stride, ndim);
    v->ndim = ndim;
    memcpy(v->shape, size, (size_t)ndim * sizeof *size);
    return (long)t->nviews++;
}

/* The object holds views[i] under name; a view held twice is read for each name. */
static void name_view(struct torch *t, size_t i, const char *name)
{
    struct report *r = t->report;
    if (t->views[i].referenced) {
        struct view *copy = new_view(t);
        if (!copy) {
            report_error(r, "%s: out of memory", name);
            t->broken = true;
            return;
        }
        *copy = t->views[i];
        i = t->nviews++;
    }
    struct view *v = &t->views[i];
    v->referenced = true;
    v->order = t->named++; /* in the object's order, which is the record's */
    if (v->partial) {
        struct tensor_stats none;
        stats_init(&none, DTYPE_U8);
        report_tensor(r, name, v->dtype_name, v->shape, v->ndim, &none, 0);
        if (report_wants(r, name))
            report_error(r, "%s: %s; statistics not computed", name,
                         v->readable ? "a view with gaps" : v->dtype_name);
        v->reported = true;
        v->nbytes = 0;
        return;
    }
    if (!(v->name = strdup(name))) {
        report_error(r, "%s: out of memory", name);
        v->referenced = false; /* dropped with the unheld ones */
        t->broken = true;
    }
}

static void add_tensor(struct torch *t, const char *name, struct pyobj *const *args, size_t n,
                       bool v3)
{
    long i = make_view(t, name, args, n, v3);
    if (i >= 0) name_view(t, (size_t)i, name);
}

static bool is_rebuild(const struct pyobj *o, const char *which)
{
    return pyobj_is_global(o, "torch._utils", which);
}

/* A state_dict()'s _metadata: module name -> {"version": N, ...}, for every module. */
static bool is_module_metadata(const char *name, const struct pyobj *o)
{
    const char *last = strrchr(name, '.');
    if (o->kind != PY_DICT || strcmp(last ? last + 1 : name, "_metadata") != 0) return false;
    for (size_t i = 1; i < o->u.map.len; i += 2) {
        const struct pyobj *v = o->u.map.at[i];
        if (v->kind != PY_DICT || !pyobj_dict_get(v, "version")) return false;
    }
    return true;
}

/* The call that rebuilds a tensor, or NULL; parameters (_rebuild_parameter(tensor, ...))
 * by the tensor inside, to a bounded depth: the pickle could nest them without end. */
static const struct pyobj *tensor_call(const struct pyobj *o, struct pyobj *const **args, size_t *n,
                                       const struct pyobj **found)
{
    for (int depth = 0; depth < 8; depth++) {
        if (o->kind == PY_FOUND) *found = o; /* made at REDUCE (torch_reduce) */
        if (o->kind != PY_OBJECT || !o->u.object.callable) return NULL;
        const struct pyobj *c = o->u.object.callable;
        *args = pyobj_tuple_items(o->u.object.args, n);
        if (!is_rebuild(c, "_rebuild_parameter") && !is_rebuild(c, "_rebuild_parameter_with_state"))
            return c;
        if (*n < 1) return NULL;
        o = (*args)[0];
    }
    return NULL;
}

/* The flatten hook: tensors, and state dicts' _metadata (dropped). */
static bool torch_hook(void *ctx, struct report *r, const char *name, const struct pyobj *o)
{
    struct torch *t = ctx;
    (void)r;
    if (is_module_metadata(name, o)) return true;
    struct pyobj *const *args;
    size_t n;
    const struct pyobj *found = NULL;
    const struct pyobj *c = tensor_call(o, &args, &n, &found);
    if (found && found->u.found < t->nviews) {
        name_view(t, found->u.found, name);
        return true;
    }
    if (c && pyobj_is_global(c, "torch._tensor", "_rebuild_from_type_v2") && n >= 3) {
        /* a tensor subclass: (rebuild, type, rebuild's args, state) */
        c = args[0];
        args = pyobj_tuple_items(args[2], &n);
    }
    if (!c) return false;
    if (is_rebuild(c, "_rebuild_tensor_v2") || is_rebuild(c, "_rebuild_tensor"))
        add_tensor(t, name, args, n, false);
    else if (is_rebuild(c, "_rebuild_tensor_v3"))
        add_tensor(t, name, args, n, true);
    else
        return false;
    return true;
}

/* The walker's hook: a tensor's view is made as its rebuild call is, so that the
 * walker can give back what its arguments took (pickle.h); flatten names it. */
static bool torch_reduce(void *ctx, const struct pyobj *callable, const struct pyobj *args,
                         size_t *found)
{
    struct torch *t = ctx;
    bool v3 = is_rebuild(callable, "_rebuild_tensor_v3");
    size_t n;
    struct pyobj *const *items = pyobj_tuple_items(args, &n);
    if (args->kind != PY_TUPLE || !(v3 || is_rebuild(callable, "_rebuild_tensor_v2") ||
                                    is_rebuild(callable, "_rebuild_tensor")))
        return false;
    long i = make_view(t, NULL, items, n, v3);
    if (i < 0) return false;
    *found = (size_t)i;
    return true;
}

static int by_key(const void *a, const void *b)
{
    const struct view *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static void read_early(struct torch *t);

static void pickled(void *ctx, struct pyobj *root)
{
    struct torch *t = ctx;
    flatten(t->report, root, torch_hook, t);
    size_t held = 0; /* views made at REDUCE that the object does not hold are dropped */
    for (size_t i = 0; i < t->nviews; i++)
        if (t->views[i].referenced) t->views[held++] = t->views[i];
    t->nviews = held;
    if (t->nviews) qsort(t->views, t->nviews, sizeof *t->views, by_key);
    t->pickled = true;
    if (t->nearly) read_early(t);
}

/* TorchScript's constants.pkl: the tuple of tensors its code calls CONSTANTS.c0, c1, ...,
 * named constants.0, constants.1, ...; their storages (PREFIX/constants/KEY) came before
 * it and were kept. */
static void pickled_constants(void *ctx, struct pyobj *root)
{
    struct torch *t = ctx;
    const char *saved = t->report->root_name;
    t->report->root_name = "constants";
    t->in_constants = true;
    flatten(t->report, root, torch_hook, t);
    t->in_constants = false;
    t->report->root_name = saved;
    if (t->nviews) qsort(t->views, t->nviews, sizeof *t->views, by_key);
    if (t->nearly) read_early(t);
}

/* ---- The records -------------------------------------------------------------------- */

/* The storage's views, views[*first, return). torch writes the storages in the order
 * of their keys, which is the views' order: those after the last storage's are tried
 * before a search. */
static size_t find_storage(const struct torch *t, const char *key, size_t *first)
{
    size_t lo = 0, hi = t->nviews, next = t->last;
    if (next < t->nviews && strcmp(t->views[next].key, key) == 0 &&
        (next == 0 || strcmp(t->views[next - 1].key, key) != 0))
        lo = hi = next;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->views[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    while (hi < t->nviews && strcmp(t->views[hi].key, key) == 0)
        hi++;
    return hi;
}

static void too_early(struct torch *t, const char *key)
{
    if (!t->said_early)
        report_error(t->report,
                     "torch: storage %s comes before data.pkl and over the %u MiB kept for "
                     "such storages; not read",
                     key, EARLY_MAX >> 20);
    t->said_early = t->broken = true;
}

/* A storage before data.pkl: kept (EARLY_MAX in all), or not read, said once. */
static void keep_early(struct torch *t, const char *key)
{
    if (strlen(key) >= STORAGE_KEY_MAX || t->early_bytes >= EARLY_MAX) return too_early(t, key);
    if (t->nearly == t->early_cap) {
        size_t cap = t->early_cap * 2 + 4;
        struct early *grown = realloc(t->early, cap * sizeof *grown);
        if (!grown) return too_early(t, key);
        t->early = grown;
        t->early_cap = cap;
    }
    struct early *e = &t->early[t->nearly++];
    memset(e, 0, sizeof *e);
    strcpy(e->key, key);
    t->member = M_EARLY;
}

static void take_early(struct torch *t, const uint8_t *bytes, size_t len)
{
    struct early *e = &t->early[t->nearly - 1];
    if (e->cap && !e->bytes) return; /* gave up on it */
    if (e->len + len > e->cap) {
        size_t cap = e->cap ? e->cap : 4096;
        while (cap < e->len + len)
            cap *= 2;
        uint8_t *grown = t->early_bytes + len <= EARLY_MAX ? realloc(e->bytes, cap) : NULL;
        if (!grown) {
            free(e->bytes);
            e->bytes = NULL;
            e->cap = 1;
            return too_early(t, e->key);
        }
        e->bytes = grown;
        e->cap = cap;
    }
    memcpy(e->bytes + e->len, bytes, len);
    e->len += len;
    t->early_bytes += len;
}

static size_t feed_storage(struct torch *t, const uint8_t *bytes, size_t len);
static void end_storage(struct torch *t, bool whole);

/* data.pkl is done: the storages kept before it are read now, then let go. */
static void read_early(struct torch *t)
{
    enum member saved = t->member;
    for (size_t i = 0; i < t->nearly; i++) {
        struct early *e = &t->early[i];
        size_t first, last = find_storage(t, e->key, &first);
        if (first < last && !(e->cap && !e->bytes)) {
            t->member = M_STORAGE;
            t->first = first;
            t->last = last;
            t->at = 0;
            t->nbytes = t->views[first].storage_nbytes;
            if (e->len) feed_storage(t, e->bytes, e->len);
            end_storage(t, e->whole);
        }
        free(e->bytes);
    }
    free(t->early);
    t->early = NULL;
    t->nearly = t->early_cap = t->early_bytes = 0;
    t->member = saved;
}

static bool torch_begin(void *ctx, const struct zip_member *m)
{
    struct torch *t = ctx;
    const char *slash = strchr(m->name, '/');
    const char *record = slash ? slash + 1 : m->name;
    t->member = M_OTHER;
    if (strcmp(record, "data.pkl") == 0 && !t->pickle_seen) {
        t->pickle_seen = true;
        t->pickle = pickle_walker_new(t->report, pickled, t);
        if (!t->pickle) {
            report_error(t->report, "torch: out of memory");
            t->broken = true;
            return false;
        }
        pickle_walker_set_reduce_hook(t->pickle, torch_reduce, t);
        t->member = M_PICKLE;
        return true;
    }
    if (strncmp(record, "code/", 5) == 0 || strcmp(record, "constants.pkl") == 0)
        t->base.format = "torchscript";
    if (strcmp(record, "constants.pkl") == 0 && t->pickled && !t->constants_seen) {
        t->constants_seen = true;
        if (!(t->pickle = pickle_walker_new(t->report, pickled_constants, t))) {
            report_error(t->report, "torch: out of memory");
            t->broken = true;
            return false;
        }
        t->member = M_PICKLE;
        return true;
    }
    if (strncmp(record, "constants/", 10) == 0) {
        keep_early(t, record); /* its tensors are in constants.pkl, which comes after */
        return false;
    }
    if (strncmp(record, "data/", 5) != 0) return false;
    if (!t->pickled) {
        keep_early(t, record + 5);
        return false; /* its size is not known yet: the walker finds its end */
    }
    size_t first, last = find_storage(t, record + 5, &first);
    if (first == last) return false; /* no tensor uses it */
    t->member = M_STORAGE;
    t->first = first;
    t->last = last;
    t->at = 0;
    t->nbytes = t->views[first].storage_nbytes;
    return true;
}

/* A reader for a view whose bytes begin to pass; false when out of memory (reported). */
static bool take_reader(struct torch *t, struct view *v)
{
    v->reader = t->nspare ? t->spare[--t->nspare] : malloc(sizeof *v->reader);
    if (!v->reader) {
        report_error(t->report, "%s: out of memory", v->name);
        t->broken = true;
        return false;
    }
    /* the shape was checked when the view was made */
    return tensor_reader_init(v->reader, t->report, v->name, v->dtype, v->shape, v->ndim,
                              t->options);
}

static void give_back_reader(struct torch *t, struct view *v)
{
    if (!v->reader) return;
    if (t->nspare == t->spare_cap) {
        size_t cap = t->spare_cap ? 2 * t->spare_cap : 4;
        struct tensor_reader **grown = realloc(t->spare, cap * sizeof *grown);
        if (!grown) {
            free(v->reader);
            v->reader = NULL;
            return;
        }
        t->spare = grown;
        t->spare_cap = cap;
    }
    t->spare[t->nspare++] = v->reader;
    v->reader = NULL;
}

static size_t feed_storage(struct torch *t, const uint8_t *bytes, size_t len)
{
    size_t n = t->nbytes - t->at < len ? (size_t)(t->nbytes - t->at) : len;
    uint64_t from = t->at, to = t->at + n;
    for (size_t i = t->first; i < t->last; i++) {
        struct view *v = &t->views[i];
        uint64_t end = v->begin + v->nbytes;
        uint64_t lo = v->begin > from ? v->begin : from, hi = end < to ? end : to;
        if (v->reported || (lo >= hi && end > to)) continue; /* not yet, or done */
        if (!v->reader && !take_reader(t, v)) {
            v->reported = true;
            continue;
        }
        if (lo < hi) {
            tensor_reader_feed(v->reader, bytes + (lo - from), (size_t)(hi - lo));
            tensor_head_catch(&v->head, dtype_size(v->dtype), lo - v->begin, bytes + (lo - from),
                              (size_t)(hi - lo));
        }
        if (end <= to) {
            if (v->head.count) tensor_head_set(&v->head, &v->reader->stats);
            tensor_reader_report(v->reader, t->report);
            v->reported = true;
            give_back_reader(t, v);
        }
    }
    t->at = to;
    return n;
}

static size_t torch_data(void *ctx, const uint8_t *bytes, size_t len)
{
    struct torch *t = ctx;
    switch (t->member) {
    case M_PICKLE:
        return pickle_walker_feed(t->pickle, bytes, len);
    case M_STORAGE:
        return feed_storage(t, bytes, len);
    case M_EARLY:
        take_early(t, bytes, len);
        return len;
    default:
        return len;
    }
}

static void end_storage(struct torch *t, bool whole)
{
    if (t->at == 0) feed_storage(t, NULL, 0); /* reports empty tensors */
    if (!whole || t->at < t->nbytes) {
        report_error(t->report, "torch: storage %s ended after %llu of %llu bytes",
                     t->views[t->first].key, (unsigned long long)t->at,
                     (unsigned long long)t->nbytes);
        t->broken = true;
    }
}

static void torch_end(void *ctx, bool whole)
{
    struct torch *t = ctx;
    if (t->member == M_PICKLE) {
        if (!pickle_walker_finish(t->pickle)) t->broken = true;
        pickle_walker_free(t->pickle); /* the tree was flattened: its memory can go */
        t->pickle = NULL;
    } else if (t->member == M_STORAGE) {
        end_storage(t, whole);
    } else if (t->member == M_EARLY) {
        t->early[t->nearly - 1].whole = whole;
    }
    t->member = M_OTHER;
}

static const struct zip_handler torch_handler = {torch_begin, torch_data, torch_end, true};

/* Tensors whose data never came; reported as one error naming where it should have been
 * (the "file" or the "archive"). */
static size_t unread_tensors(const struct torch *t, const char *container)
{
    size_t unread = 0;
    for (size_t i = 0; i < t->nviews; i++)
        unread += !t->views[i].reported;
    if (unread)
        report_error(t->report, "torch: %zu tensors' data not in the %s", unread, container);
    return unread;
}

/* ---- The legacy format ------------------------------------------------------------ */

static void legacy_keys(void *ctx, struct pyobj *root)
{
    struct torch *t = ctx;
    size_t n;
    struct pyobj *const *items = pyobj_tuple_items(root, &n);
    t->keys = calloc(n ? n : 1, sizeof *t->keys);
    if (!t->keys) {
        report_error(t->report, "torch: out of memory");
        t->broken = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i]->kind != PY_STR || !items[i]->u.str.data ||
            items[i]->u.str.len >= STORAGE_KEY_MAX) {
            report_error(t->report, "torch: storage key %zu not understood", i);
            t->broken = true;
            return;
        }
        memcpy(t->keys[i], items[i]->u.str.data, items[i]->u.str.len + 1);
    }
    t->nkeys = n;
}

static void ignore_root(void *ctx, struct pyobj *root)
{
    (void)ctx;
    (void)root;
}

static bool next_pickle(struct torch *t)
{
    if (t->pickle) pickle_walker_free(t->pickle);
    t->pickle = NULL;
    if (++t->part == L_STORAGES) return true;
    pickle_on_stop on_stop = t->part == L_OBJECT ? pickled
                             : t->part == L_KEYS ? legacy_keys
                                                 : ignore_root;
    t->pickle = pickle_walker_new(t->report, on_stop, t);
    if (!t->pickle) report_error(t->report, "torch: out of memory");
    if (t->pickle && t->part == L_OBJECT) pickle_walker_set_reduce_hook(t->pickle, torch_reduce, t);
    return t->pickle != NULL;
}

/* The element count before a storage's bytes: its views say how long they are. */
static bool start_legacy_storage(struct torch *t)
{
    uint64_t numel = 0;
    for (int i = 7; i >= 0; i--)
        numel = numel << 8 | t->count[i];
    t->count_have = 0;
    const char *key = t->keys[t->next_key++];
    size_t first, last = find_storage(t, key, &first);
    if (first == last) {
        report_error(t->report, "torch: storage %s of a tensor not read; the rest is not read",
                     key);
        return false;
    }
    t->first = first;
    t->last = last;
    t->at = 0;
    t->nbytes = t->views[first].storage_nbytes;
    uint64_t bytes;
    if (__builtin_mul_overflow(numel, t->views[first].storage_elsize, &bytes) ||
        bytes != t->nbytes) {
        report_error(t->report, "torch: storage %s holds %llu elements, not %llu bytes' worth", key,
                     (unsigned long long)numel, (unsigned long long)t->nbytes);
        return false;
    }
    t->member = M_STORAGE;
    if (t->nbytes == 0) torch_end(t, true);
    return true;
}

static size_t legacy_step(struct torch *t, const uint8_t *data, size_t len)
{
    if (t->part < L_STORAGES) {
        size_t n = pickle_walker_feed(t->pickle, data, len);
        enum pickle_state state = pickle_walker_state(t->pickle);
        if (state == PICKLE_FAILED || (state == PICKLE_STOPPED && !next_pickle(t)))
            t->broken = true;
        return n;
    }
    if (t->member != M_STORAGE) {
        size_t n = 8 - t->count_have < len ? 8 - t->count_have : len;
        memcpy(t->count + t->count_have, data, n);
        t->count_have += n;
        if (t->count_have == 8 && !start_legacy_storage(t)) t->broken = true;
        return n;
    }
    size_t n = feed_storage(t, data, len);
    if (t->at == t->nbytes) torch_end(t, true);
    return n;
}

static void legacy_feed(struct parser *p, const uint8_t *data, size_t len)
{
    struct torch *t = (struct torch *)p;
    while (len > 0 && !t->broken &&
           !(t->part == L_STORAGES && t->next_key == t->nkeys && t->member != M_STORAGE)) {
        size_t n = legacy_step(t, data, len);
        data += n;
        len -= n;
    }
}

static bool legacy_finish(struct parser *p)
{
    struct torch *t = (struct torch *)p;
    if (t->part < L_STORAGES && !t->broken) pickle_walker_finish(t->pickle);
    bool whole = t->part == L_STORAGES && t->next_key == t->nkeys && t->member != M_STORAGE;
    if (t->member == M_STORAGE) torch_end(t, false);
    if (!whole && !t->broken && t->part == L_STORAGES)
        report_error(t->report, "torch: data ended before storage %zu of %zu", t->next_key + 1,
                     t->nkeys);
    return whole && unread_tensors(t, "file") == 0 && !t->broken;
}

/* ---- The parser ------------------------------------------------------------------------ */

static void torch_feed(struct parser *p, const uint8_t *data, size_t len)
{
    zip_walker_feed(((struct torch *)p)->zip, data, len);
}

size_t torch_feed_archive(struct parser *p, const uint8_t *data, size_t len)
{
    return zip_walker_feed_archive(((struct torch *)p)->zip, data, len);
}

bool torch_archive_ended(const struct parser *p)
{
    return zip_walker_ended(((const struct torch *)p)->zip);
}

static bool torch_finish(struct parser *p)
{
    struct torch *t = (struct torch *)p;
    bool whole = zip_walker_finish(t->zip) && t->pickled && !t->broken;
    if (unread_tensors(t, "archive")) whole = false;
    if (!t->pickle_seen) report_error(t->report, "torch: no data.pkl");
    return whole;
}

static void torch_destroy(struct parser *p)
{
    struct torch *t = (struct torch *)p;
    zip_walker_free(t->zip);
    if (t->pickle) pickle_walker_free(t->pickle);
    for (size_t i = 0; i < t->nviews; i++) {
        free(t->views[i].name);
        free(t->views[i].reader);
    }
    for (size_t i = 0; i < t->nspare; i++)
        free(t->spare[i]);
    for (size_t i = 0; i < t->nearly; i++)
        free(t->early[i].bytes);
    free(t->early);
    free(t->spare);
    free(t->views);
    free(t->keys);
    free(t);
}

static struct torch *torch_new(struct report *r, const struct parse_options *o)
{
    struct torch *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->base = (struct parser){.format = "torch", .destroy = torch_destroy};
    t->report = r;
    t->options = o;
    return t;
}

struct parser *parser_torch_new(struct report *r, const struct parse_options *o)
{
    struct torch *t = torch_new(r, o);
    if (!t) return NULL;
    t->base.feed = torch_feed;
    t->base.finish = torch_finish;
    t->base.tolerates_rewrites = true;
    t->zip = zip_walker_new(r, "torch", &torch_handler, t, o && o->crc_after_close);
    if (!t->zip) {
        free(t);
        return NULL;
    }
    return &t->base;
}

/* TorchScript (torch.jit.save): the zip format, with its storages first (detect.c). */
struct parser *parser_torchscript_new(struct report *r, const struct parse_options *o)
{
    struct parser *p = parser_torch_new(r, o);
    if (p) p->format = "torchscript";
    return p;
}

struct parser *parser_torch_legacy_new(struct report *r, const struct parse_options *o)
{
    struct torch *t = torch_new(r, o);
    if (!t) return NULL;
    t->base.feed = legacy_feed;
    t->base.finish = legacy_finish;
    t->pickle = pickle_walker_new(r, ignore_root, t); /* the magic number's */
    if (!t->pickle) {
        free(t);
        return NULL;
    }
    return &t->base;
}
