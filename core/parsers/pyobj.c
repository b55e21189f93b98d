/* pyobj.c — the arena and the small helpers of the Python-object model (pyobj.h).
 *
 * The arena hands out zeroed memory carved from calloc'd chunks and frees them all at
 * once; nothing is freed individually. A vector that grows gets a new, larger array
 * and abandons the old one in the arena, which at most doubles what vectors cost and
 * keeps every allocation inside the budget.
 */
#include "pyobj.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_SIZE (64u << 10) /* requests above a quarter of this get a chunk of their own */
#define ALIGN      16u

struct chunk {
    struct chunk *next;
    size_t size, used;
    _Alignas(ALIGN) unsigned char data[];
};

struct pyarena {
    struct chunk *chunks; /* the first one is the one being carved */
    size_t cap, used;     /* bytes malloc'd for chunks, and the limit */
};

struct pyobj pyobj_none = {.kind = PY_NONE};
struct pyobj pyobj_true = {.kind = PY_BOOL, .u.boolean = true};
struct pyobj pyobj_false = {.kind = PY_BOOL, .u.boolean = false};

struct pyarena *pyarena_new(size_t cap)
{
    struct pyarena *a = calloc(1, sizeof(*a));
    if (a) a->cap = cap;
    return a;
}

void pyarena_free(struct pyarena *a)
{
    if (!a) return;
    struct chunk *c = a->chunks;
    while (c) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

bool pyarena_may_keep(const struct pyarena *a, uint64_t n)
{
    if (n <= PYOBJ_KEEP_SMALL) return a->used + n <= a->cap;
    return n <= PYOBJ_KEEP_MAX && a->used + n <= a->cap / 2;
}

static struct chunk *chunk_new(struct pyarena *a, size_t size)
{
    size_t total = sizeof(struct chunk) + size;
    if (total > a->cap - a->used) return NULL;
    struct chunk *c = calloc(1, total);
    if (!c) return NULL;
    c->size = size;
    a->used += total;
    return c;
}

void *pyarena_alloc(struct pyarena *a, size_t n)
{
    if (n > a->cap) return NULL;
    n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    struct chunk *head = a->chunks;
    if (head && head->size - head->used >= n) {
        void *p = head->data + head->used;
        head->used += n;
        return p;
    }
    if (n > CHUNK_SIZE / 4) {
        /* A large block gets its own chunk, slotted behind the head so that the head's
         * free space stays in use. */
        struct chunk *c = chunk_new(a, n);
        if (!c) return NULL;
        c->used = n;
        if (head) {
            c->next = head->next;
            head->next = c;
        } else {
            a->chunks = c;
        }
        return c->data;
    }
    struct chunk *c = chunk_new(a, CHUNK_SIZE);
    if (!c) return NULL;
    c->next = head;
    a->chunks = c;
    c->used = n;
    return c->data;
}

struct pyarena_mark pyarena_here(const struct pyarena *a)
{
    struct chunk *head = a->chunks;
    return (struct pyarena_mark){head, head ? head->next : NULL, head ? head->used : 0};
}

/* The chunks allocated after m come first in the list (new heads, and large blocks
 * slotted behind them), then m's head, then the large blocks slotted behind m's head
 * since m, then m's after_head. */
static bool chunk_since(const struct chunk *c, struct pyarena_mark m, const void *p)
{
    const unsigned char *b = p;
    return b >= c->data && b < c->data + c->size && (c != m.head || b >= c->data + m.used);
}

bool pyarena_since(const struct pyarena *a, struct pyarena_mark m, const void *p)
{
    const struct chunk *c = a->chunks;
    for (; c && c != m.head; c = c->next)
        if (chunk_since(c, m, p)) return true;
    if (!c) return false;
    if (chunk_since(c, m, p)) return true;
    for (c = c->next; c && c != m.after_head; c = c->next)
        if (chunk_since(c, m, p)) return true;
    return false;
}

static void free_chunk(struct pyarena *a, struct chunk *c)
{
    a->used -= sizeof *c + c->size;
    free(c);
}

void pyarena_release(struct pyarena *a, struct pyarena_mark m)
{
    while (a->chunks && a->chunks != m.head) {
        struct chunk *c = a->chunks;
        a->chunks = c->next;
        free_chunk(a, c);
    }
    struct chunk *head = a->chunks;
    if (!head) return;
    while (head->next && head->next != m.after_head) {
        struct chunk *c = head->next;
        head->next = c->next;
        free_chunk(a, c);
    }
    memset(head->data + m.used, 0, head->used - m.used);
    head->used = m.used;
}

/* Bytes a node of this kind needs: scalars do not pay for the largest union member. */
size_t pyobj_node_size(enum pyobj_kind kind)
{
    size_t head = offsetof(struct pyobj, u);
    switch (kind) {
    case PY_NONE:
    case PY_BOOL:
    case PY_INT:
    case PY_BIGINT:
    case PY_FLOAT:
        return head + sizeof(int64_t);
    case PY_STR:
    case PY_BYTES:
    case PY_GLOBAL:
        return head + 2 * sizeof(void *) + sizeof(uint64_t);
    case PY_LIST:
    case PY_TUPLE:
    case PY_SET:
    case PY_FROZENSET:
    case PY_DICT:
        return head + sizeof(struct pyvec);
    case PY_PID:
    case PY_FOUND:
        return head + sizeof(void *);
    case PY_OBJECT:
    case PY_DTYPE:
    case PY_ARRAY:
        break;
    }
    return sizeof(struct pyobj);
}

struct pyobj *pyobj_new(struct pyarena *a, enum pyobj_kind kind)
{
    struct pyobj *o = pyarena_alloc(a, pyobj_node_size(kind));
    if (o) o->kind = kind;
    return o;
}

struct pyobj *pyobj_int(struct pyarena *a, int64_t v)
{
    struct pyobj *o = pyobj_new(a, PY_INT);
    if (o) o->u.integer = v;
    return o;
}

struct pyobj *pyobj_float(struct pyarena *a, enum pyobj_kind kind, double v)
{
    struct pyobj *o = pyobj_new(a, kind);
    if (o) o->u.number = v;
    return o;
}

struct pyobj *pyobj_str(struct pyarena *a, enum pyobj_kind kind, const char *data, uint64_t len)
{
    struct pyobj *o = pyobj_new(a, kind);
    if (o) {
        o->u.str.data = data;
        o->u.str.len = len;
    }
    return o;
}

struct pyobj *pyobj_str_copy(struct pyarena *a, const char *s, size_t len)
{
    char *copy = pyarena_alloc(a, len + 1);
    if (!copy) return NULL;
    memcpy(copy, s, len);
    return pyobj_str(a, PY_STR, copy, len);
}

struct pyobj *pyobj_global(struct pyarena *a, const char *module, const char *name)
{
    struct pyobj *o = pyobj_new(a, PY_GLOBAL);
    if (o) {
        o->u.global.module = module;
        o->u.global.name = name;
    }
    return o;
}

struct pyobj *pyobj_seq(struct pyarena *a, enum pyobj_kind kind, struct pyobj *const *items,
                        size_t n)
{
    size_t node = pyobj_node_size(kind);
    if (n > (PYOBJ_MEMORY_CAP - node) / sizeof(*items)) return NULL;
    struct pyobj *o = pyarena_alloc(a, node + n * sizeof(*items));
    if (!o) return NULL;
    o->kind = kind;
    o->u.seq.at = (struct pyobj **)((char *)o + node);
    o->u.seq.len = o->u.seq.cap = n;
    if (n) memcpy(o->u.seq.at, items, n * sizeof(*items));
    return o;
}

static bool pyvec_reserve(struct pyarena *a, struct pyvec *v, size_t extra)
{
    if (extra <= v->cap - v->len) return true;
    if (extra > SIZE_MAX / sizeof(void *) / 2 - v->len) return false;
    size_t cap = v->cap ? v->cap * 2 : 4;
    while (cap < v->len + extra)
        cap *= 2;
    struct pyobj **at = pyarena_alloc(a, cap * sizeof(*at));
    if (!at) return false;
    if (v->len) memcpy(at, v->at, v->len * sizeof(*at));
    v->at = at;
    v->cap = cap;
    return true;
}

bool pyvec_extend(struct pyarena *a, struct pyvec *v, struct pyobj *const *items, size_t n)
{
    if (n == 0) return true;
    if (!pyvec_reserve(a, v, n)) return false;
    memcpy(v->at + v->len, items, n * sizeof(*items));
    v->len += n;
    return true;
}

bool pyvec_resize(struct pyarena *a, struct pyvec *v, size_t n)
{
    if (n <= v->len) return true;
    if (!pyvec_reserve(a, v, n - v->len)) return false;
    memset(v->at + v->len, 0, (n - v->len) * sizeof(*v->at));
    v->len = n;
    return true;
}

struct pyvec *pyobj_items(struct pyobj *o)
{
    switch (o->kind) {
    case PY_LIST:
    case PY_SET:
    case PY_FROZENSET:
        return &o->u.seq;
    case PY_OBJECT:
        return &o->u.object.items;
    default:
        return NULL;
    }
}

struct pyvec *pyobj_map(struct pyobj *o)
{
    if (o->kind == PY_DICT) return &o->u.map;
    if (o->kind == PY_OBJECT) return &o->u.object.map;
    return NULL;
}

bool pyobj_is_str(const struct pyobj *o, const char *s)
{
    return o && o->kind == PY_STR && o->u.str.data && strlen(s) == o->u.str.len &&
           memcmp(o->u.str.data, s, o->u.str.len) == 0;
}

bool pyobj_is_global(const struct pyobj *o, const char *module, const char *name)
{
    return o && o->kind == PY_GLOBAL && strcmp(o->u.global.module, module) == 0 &&
           strcmp(o->u.global.name, name) == 0;
}

struct pyobj *pyobj_dict_get(const struct pyobj *dict, const char *key)
{
    if (!dict || dict->kind != PY_DICT) return NULL;
    struct pyobj *found = NULL;
    for (size_t i = 0; i + 1 < dict->u.map.len; i += 2)
        if (pyobj_is_str(dict->u.map.at[i], key)) found = dict->u.map.at[i + 1];
    return found;
}

struct pyobj *const *pyobj_tuple_items(const struct pyobj *o, size_t *n)
{
    if (o && (o->kind == PY_TUPLE || o->kind == PY_LIST)) {
        *n = o->u.seq.len;
        return o->u.seq.at;
    }
    *n = 0;
    return NULL;
}

static void set_int(struct pyobj *out, int64_t v)
{
    out->kind = PY_INT;
    out->u.integer = v;
}

void pyobj_element(enum dtype t, const uint8_t *bytes, bool big_endian, struct pyobj *out)
{
    size_t size = dtype_size(t);
    uint8_t le[8] = {0};
    for (size_t i = 0; i < size && i < sizeof(le); i++)
        le[i] = big_endian ? bytes[size - 1 - i] : bytes[i];
    uint64_t raw = 0;
    for (size_t i = 0; i < size; i++)
        raw |= (uint64_t)le[i] << (8 * i);
    int shift = (int)(64 - 8 * size);
    memset(&out->u, 0, sizeof(out->u));
    out->attrs = NULL;
    switch (t) {
    case DTYPE_BOOL:
        out->kind = PY_BOOL;
        out->u.boolean = raw != 0;
        return;
    case DTYPE_I64:
    case DTYPE_I32:
    case DTYPE_I16:
    case DTYPE_I8:
        /* sign-extend through the top of a 64-bit word */
        set_int(out, (int64_t)(raw << shift) >> shift);
        return;
    case DTYPE_U32:
    case DTYPE_U16:
    case DTYPE_U8:
        set_int(out, (int64_t)raw);
        return;
    case DTYPE_U64:
        if (raw <= INT64_MAX) {
            set_int(out, (int64_t)raw);
        } else {
            out->kind = PY_BIGINT;
            out->u.number = (double)raw;
        }
        return;
    default: {
        /* Floating types: the statistics decoder already knows every format. */
        struct tensor_stats st;
        stats_init(&st, t);
        stats_feed(&st, le, size);
        out->kind = PY_FLOAT;
        out->u.number = st.head[0];
        return;
    }
    }
}
