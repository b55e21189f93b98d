/* pyobj.h — an inert model of the Python objects a checkpoint holds.
 *
 * The pickle walker and the JSON parser both build trees of these nodes and hand them
 * to flatten.c, which turns them into the record's values and tensors. Nothing here
 * ever imports, calls or evaluates anything: a pickled call such as os.system(...) is
 * just an object node naming its callable.
 *
 * Every node of one parse lives in one arena (a list of malloc'd chunks) that is freed
 * at once. The arena has a byte budget, PYOBJ_MEMORY_CAP (64 MiB): once the nodes,
 * vectors and retained payloads of a parse would exceed it, allocation fails and the
 * parse stops with an error. That bounds what a hostile or merely huge file can make
 * the monitored program allocate. Payloads (string and bytes contents) are retained
 * only while they are at most PYOBJ_KEEP_MAX bytes and the arena is under half its cap,
 * so that large data degrades into "not retained" before structure stops fitting; short
 * ones (names, keys: PYOBJ_KEEP_SMALL bytes at most) are structure, kept up to the cap.
 */
#ifndef CKMON_PYOBJ_H
#define CKMON_PYOBJ_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../stats.h"
#include "tensor.h"

#define PYOBJ_MEMORY_CAP (64u << 20) /* bytes one parse may hold in its arena */
#define PYOBJ_KEEP_MAX   (16u << 20) /* largest str/bytes payload retained */
#define PYOBJ_KEEP_SMALL 4096        /* payloads kept as long as anything fits */
#define PYOBJ_MAX_DIMS   32          /* numpy's own limit on array dimensions */
#define PYOBJ_ROW_STATS  256         /* rows of a streamed 2-D array given statistics each */

struct pyarena;

struct pyarena *pyarena_new(size_t cap);
void pyarena_free(struct pyarena *a);
/* Zeroed, 16-byte aligned memory; NULL once the arena's budget would be exceeded. */
void *pyarena_alloc(struct pyarena *a, size_t n);
/* Whether a payload of n bytes should be retained (see PYOBJ_KEEP_MAX above). */
bool pyarena_may_keep(const struct pyarena *a, uint64_t n);

/* A point in the arena's allocations: everything allocated after it can be given back
 * at once (the pickle walker drops a tensor's arguments once a parser took what it
 * needs from them, pickle.c). */
struct pyarena_mark {
    const void *head, *after_head; /* the chunk being carved, and the one after it */
    size_t used;                   /* how much of head was carved */
};
struct pyarena_mark pyarena_here(const struct pyarena *a);
/* Whether p lies in memory allocated after m. */
bool pyarena_since(const struct pyarena *a, struct pyarena_mark m, const void *p);
/* Gives back (zeroed) everything allocated after m; nothing may point into it after. */
void pyarena_release(struct pyarena *a, struct pyarena_mark m);

enum pyobj_kind {
    PY_NONE,
    PY_BOOL,
    PY_INT,
    PY_BIGINT, /* an int beyond int64, kept as the nearest double */
    PY_FLOAT,
    PY_STR,
    PY_BYTES,
    PY_LIST,
    PY_TUPLE,
    PY_SET,
    PY_FROZENSET,
    PY_DICT,
    PY_GLOBAL, /* a module attribute named by GLOBAL/STACK_GLOBAL; never resolved */
    PY_OBJECT, /* the result of a call/instantiation we do not perform */
    PY_PID,    /* a persistent id (PERSID/BINPERSID); torch storages are these */
    PY_DTYPE,  /* numpy.dtype(...) */
    PY_ARRAY,  /* a numpy array rebuilt from its pickled state */
    PY_FOUND,  /* a call a parser took over as it was made (pickle.h, reduce hook) */
};

/* A growable array of node pointers, allocated from the arena. */
struct pyvec {
    struct pyobj **at;
    size_t len, cap;
};

struct pyarray {
    const char *dtype_name; /* as records spell it, or numpy's code when unsupported */
    enum dtype dtype;       /* valid when supported */
    bool supported;         /* dtype is one stats can read */
    bool big_endian;        /* the data is big-endian and must be swapped to be read */
    int ndim;
    int64_t *shape;              /* ndim entries (none for a 0-dimensional array) */
    const uint8_t *data;         /* NULL when not retained */
    uint64_t nbytes;             /* the element data's size, retained or not */
    const char *problem;         /* why statistics cannot be computed, or NULL */
    bool fortran;                /* the data is in Fortran order */
    const struct pyobj *objects; /* an object array's items (a list), when pickled inline */
    /* joblib writes an array's data into the file right after the pickled wrapper that
     * describes it, raw (after a pad) or, for object arrays, as a pickle of its own.
     * The walker reads it as it passes, never retained: its statistics land in
     * `streamed` (and, in Fortran order, its C-order head is caught by `head`). */
    enum pyarray_data { ARRAY_INLINE, ARRAY_RAW, ARRAY_RAW_PADDED, ARRAY_PICKLED } follows;
    size_t elsize;                 /* bytes per element, when follows != ARRAY_INLINE */
    struct tensor_stats *streamed; /* NULL until the data passed */
    struct tensor_head *head;      /* Fortran order only */
    /* A C-order 2-D array of at most PYOBJ_ROW_STATS rows (pandas keeps its columns as
     * the rows of such blocks): each row's statistics too, fed as a tensor reader feeds
     * an exact tensor, so that a row reads as if it were an array of its own. */
    struct tensor_stats *rows;
};

struct pyobj {
    enum pyobj_kind kind;
    /* BUILD state of lists, dicts, sets and objects: a PY_DICT of attributes, or NULL. */
    struct pyobj *attrs;
    union {
        bool boolean;
        int64_t integer;
        double number; /* PY_FLOAT, PY_BIGINT */
        struct {
            const char *data; /* NUL-terminated UTF-8 (str) or raw bytes; NULL: not retained */
            uint64_t len;
        } str;            /* PY_STR and PY_BYTES */
        struct pyvec seq; /* list, tuple, set, frozenset: items */
        struct pyvec map; /* dict: keys and values interleaved, in insertion order */
        struct {
            const char *module, *name;
        } global;
        struct {
            struct pyobj *callable; /* usually a PY_GLOBAL */
            struct pyobj *args;     /* NULL when none were given */
            struct pyvec items;     /* APPEND/APPENDS/ADDITEMS onto the object */
            struct pyvec map;       /* SETITEM/SETITEMS onto the object */
        } object;
        struct pyobj *pid;
        struct {
            char code[16];  /* numpy's dtype code: "f8", "i4", "b1", "U10"... */
            char byteorder; /* '<', '>', '|' or '=' */
            int64_t elsize; /* itemsize from the BUILD state (flexible dtypes), else 0 */
        } dtype;
        struct pyarray array;
        size_t found; /* PY_FOUND: what the parser's hook returned */
    } u;
};

/* Shared constants: None, True and False are never allocated. */
extern struct pyobj pyobj_none, pyobj_true, pyobj_false;

/* The bytes a node of this kind occupies: only those may be read or copied. */
size_t pyobj_node_size(enum pyobj_kind kind);
struct pyobj *pyobj_new(struct pyarena *a, enum pyobj_kind kind);
struct pyobj *pyobj_int(struct pyarena *a, int64_t v);
struct pyobj *pyobj_float(struct pyarena *a, enum pyobj_kind kind, double v);
/* A str/bytes node; data (may be NULL: not retained) must live in the arena. */
struct pyobj *pyobj_str(struct pyarena *a, enum pyobj_kind kind, const char *data, uint64_t len);
/* Copies len bytes into the arena (NUL-terminated) and returns a str node. */
struct pyobj *pyobj_str_copy(struct pyarena *a, const char *s, size_t len);
struct pyobj *pyobj_global(struct pyarena *a, const char *module, const char *name);
/* A list, tuple, set or frozenset node holding a copy of n items, in the same
 * allocation (a vector that grows later moves out); NULL when out of budget. */
struct pyobj *pyobj_seq(struct pyarena *a, enum pyobj_kind kind, struct pyobj *const *items,
                        size_t n);

/* Appends n items; false when out of budget. */
bool pyvec_extend(struct pyarena *a, struct pyvec *v, struct pyobj *const *items, size_t n);
/* Inline: the pickle walker pushes every opcode's result, and most fit. */
static inline bool pyvec_push(struct pyarena *a, struct pyvec *v, struct pyobj *o)
{
    if (v->len < v->cap) {
        v->at[v->len++] = o;
        return true;
    }
    return pyvec_extend(a, v, &o, 1);
}
/* Grows v to n items, the new ones NULL; false when out of budget. */
bool pyvec_resize(struct pyarena *a, struct pyvec *v, size_t n);

/* Containers an item can be appended to, and where a dict item goes; NULL if none. */
struct pyvec *pyobj_items(struct pyobj *o);
struct pyvec *pyobj_map(struct pyobj *o);

bool pyobj_is_str(const struct pyobj *o, const char *s);
bool pyobj_is_global(const struct pyobj *o, const char *module, const char *name);
/* The value of str key s in a dict node (last one wins), or NULL. */
struct pyobj *pyobj_dict_get(const struct pyobj *dict, const char *key);
/* Items of a tuple or list (NULL and *n = 0 otherwise). */
struct pyobj *const *pyobj_tuple_items(const struct pyobj *o, size_t *n);

/* The value of one element of a numeric array (little-endian unless big_endian) as an
 * int, float or bool node written into *out (no allocation: used for numpy scalars and
 * 0-dimensional arrays). */
void pyobj_element(enum dtype t, const uint8_t *bytes, bool big_endian, struct pyobj *out);

#endif
