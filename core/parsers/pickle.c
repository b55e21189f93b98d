/* pickle.c — a streaming, inert pickle walker (protocols 0-5) and the "pickle" parser.
 *
 * Unpickling a file means running the program it contains: GLOBAL names a callable,
 * REDUCE calls it. This walker executes the opcodes on a model of the objects
 * (pyobj.h) instead, so a call becomes a node that names its callable and keeps its
 * arguments, and nothing is ever imported or called. The callables listed in pyclass.c
 * are understood as the plain data they build (OrderedDict, set, bytes via
 * _codecs.encode, copyreg._reconstructor, numpy arrays, dtypes and scalars); everything
 * else stays an inert object, which flatten.c describes as "module.name(...)".
 *
 * Bytes arrive in pieces of any size. The walker reads one opcode, then its argument
 * (a fixed number of bytes, a text line, or a length followed by a payload), then
 * executes it. Payloads are not buffered beyond what is retained: a long string or
 * bytes object is counted down and kept only within the arena's limits (pyobj.h).
 *
 * Limits: text lines of INT/FLOAT/GLOBAL/GET... opcodes are at most PICKLE_MAX_LINE
 * bytes (longer is an error); STRING and UNICODE lines are read to any length but only
 * their first PICKLE_MAX_TEXT_LINE bytes are retained; LONG1/LONG4 integers longer
 * than PICKLE_MAX_LONG bytes (beyond any double) are an error. The stack, the
 * marks and the memo grow inside the arena, so PYOBJ_MEMORY_CAP bounds them all.
 *
 * BUILD state: a dict becomes the object's attributes; a (dict, slots-dict) pair is
 * merged into them; None changes nothing; any other state is kept as the attribute
 * "__state__" (reported as NAME.__state__...). numpy arrays and dtypes take their own
 * state. Data after STOP is not part of the pickle and is ignored.
 */
#include "pickle.h"
#include "flatten.h"
#include "parser.h"
#include "pyclass.h"
#include "pyobj.h"
#include "../jsontext.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PICKLE_MAX_LINE      4096
#define PICKLE_MAX_TEXT_LINE (1u << 20)
#define PICKLE_MAX_LONG      128
#define PICKLE_MAX_PROTOCOL  5

enum arg_kind {
    ARG_INVALID, /* not an opcode */
    ARG_NONE,
    ARG_FIXED, /* size bytes */
    ARG_SIZED, /* a little-endian length of size bytes, then that many bytes */
    ARG_LINE,
    ARG_LINES2, /* two lines: module and name */
};

struct opinfo {
    const char *name;
    uint8_t arg;
    uint8_t size;
};

static const struct opinfo opcodes[256] = {
    ['('] = {"MARK", ARG_NONE, 0},
    ['.'] = {"STOP", ARG_NONE, 0},
    ['0'] = {"POP", ARG_NONE, 0},
    ['1'] = {"POP_MARK", ARG_NONE, 0},
    ['2'] = {"DUP", ARG_NONE, 0},
    ['F'] = {"FLOAT", ARG_LINE, 0},
    ['I'] = {"INT", ARG_LINE, 0},
    ['J'] = {"BININT", ARG_FIXED, 4},
    ['K'] = {"BININT1", ARG_FIXED, 1},
    ['L'] = {"LONG", ARG_LINE, 0},
    ['M'] = {"BININT2", ARG_FIXED, 2},
    ['N'] = {"NONE", ARG_NONE, 0},
    ['P'] = {"PERSID", ARG_LINE, 0},
    ['Q'] = {"BINPERSID", ARG_NONE, 0},
    ['R'] = {"REDUCE", ARG_NONE, 0},
    ['S'] = {"STRING", ARG_LINE, 0},
    ['T'] = {"BINSTRING", ARG_SIZED, 4},
    ['U'] = {"SHORT_BINSTRING", ARG_SIZED, 1},
    ['V'] = {"UNICODE", ARG_LINE, 0},
    ['X'] = {"BINUNICODE", ARG_SIZED, 4},
    ['a'] = {"APPEND", ARG_NONE, 0},
    ['b'] = {"BUILD", ARG_NONE, 0},
    ['c'] = {"GLOBAL", ARG_LINES2, 0},
    ['d'] = {"DICT", ARG_NONE, 0},
    ['}'] = {"EMPTY_DICT", ARG_NONE, 0},
    ['e'] = {"APPENDS", ARG_NONE, 0},
    ['g'] = {"GET", ARG_LINE, 0},
    ['h'] = {"BINGET", ARG_FIXED, 1},
    ['i'] = {"INST", ARG_LINES2, 0},
    ['j'] = {"LONG_BINGET", ARG_FIXED, 4},
    ['l'] = {"LIST", ARG_NONE, 0},
    [']'] = {"EMPTY_LIST", ARG_NONE, 0},
    ['o'] = {"OBJ", ARG_NONE, 0},
    ['p'] = {"PUT", ARG_LINE, 0},
    ['q'] = {"BINPUT", ARG_FIXED, 1},
    ['r'] = {"LONG_BINPUT", ARG_FIXED, 4},
    ['s'] = {"SETITEM", ARG_NONE, 0},
    ['t'] = {"TUPLE", ARG_NONE, 0},
    [')'] = {"EMPTY_TUPLE", ARG_NONE, 0},
    ['u'] = {"SETITEMS", ARG_NONE, 0},
    ['G'] = {"BINFLOAT", ARG_FIXED, 8},
    [0x80] = {"PROTO", ARG_FIXED, 1},
    [0x81] = {"NEWOBJ", ARG_NONE, 0},
    [0x82] = {"EXT1", ARG_FIXED, 1},
    [0x83] = {"EXT2", ARG_FIXED, 2},
    [0x84] = {"EXT4", ARG_FIXED, 4},
    [0x85] = {"TUPLE1", ARG_NONE, 0},
    [0x86] = {"TUPLE2", ARG_NONE, 0},
    [0x87] = {"TUPLE3", ARG_NONE, 0},
    [0x88] = {"NEWTRUE", ARG_NONE, 0},
    [0x89] = {"NEWFALSE", ARG_NONE, 0},
    [0x8a] = {"LONG1", ARG_SIZED, 1},
    [0x8b] = {"LONG4", ARG_SIZED, 4},
    ['B'] = {"BINBYTES", ARG_SIZED, 4},
    ['C'] = {"SHORT_BINBYTES", ARG_SIZED, 1},
    [0x8c] = {"SHORT_BINUNICODE", ARG_SIZED, 1},
    [0x8d] = {"BINUNICODE8", ARG_SIZED, 8},
    [0x8e] = {"BINBYTES8", ARG_SIZED, 8},
    [0x8f] = {"EMPTY_SET", ARG_NONE, 0},
    [0x90] = {"ADDITEMS", ARG_NONE, 0},
    [0x91] = {"FROZENSET", ARG_NONE, 0},
    [0x92] = {"NEWOBJ_EX", ARG_NONE, 0},
    [0x93] = {"STACK_GLOBAL", ARG_NONE, 0},
    [0x94] = {"MEMOIZE", ARG_NONE, 0},
    [0x95] = {"FRAME", ARG_FIXED, 8},
    [0x96] = {"BYTEARRAY8", ARG_SIZED, 8},
    [0x97] = {"NEXT_BUFFER", ARG_NONE, 0},
    [0x98] = {"READONLY_BUFFER", ARG_NONE, 0},
};

#define PUT_LOG 16 /* memo entries a call's arguments may store and still be given back */
#define REGIONS 16 /* MARK depths whose allocations are followed */

/* What the walker looked like at a MARK. */
struct region {
    bool known;
    struct pyarena_mark mark;
    unsigned long mutations, puts;
    const void *stack, *memo, *marks; /* their arrays: moved, they may lie after mark */
};

/* A memo entry that held a call's argument given back: GET of it gets an unknown value,
 * with an error. torch never pickles a tensor's arguments twice (each is made afresh for
 * its tensor); a pickle that does is told in its record. */
static struct pyobj released = {.kind = PY_NONE};

enum step {
    STEP_OPCODE,
    STEP_FIXED,
    STEP_LINE,
    STEP_PAYLOAD,
    STEP_RAW_PAD_LENGTH, /* joblib: the byte that gives the pad's length */
    STEP_RAW_PAD,
    STEP_RAW_DATA,
    STEP_RAW_PICKLE, /* joblib: an object array's own pickle */
    STEP_STOPPED,
    STEP_FAILED
};

struct pickle_walker {
    struct report *report;
    pickle_on_stop on_stop;
    void *ctx;
    struct pyarena *arena;

    enum step step;
    uint64_t offset;    /* bytes taken so far */
    uint64_t op_offset; /* where the current opcode began */
    uint8_t op;
    bool reading_length; /* ARG_SIZED: the fixed bytes are the payload's length */

    uint8_t fixed[8];
    unsigned fixed_need, fixed_have;

    char *line; /* the current text line (malloc'd, at most line_limit bytes) */
    size_t line_len, line_alloc, line_limit;
    uint64_t line_total;    /* the whole line's length, retained or not */
    const char *first_line; /* GLOBAL/INST module, copied into the arena */

    uint64_t payload_need, payload_have;
    uint8_t *payload;     /* where retained payload bytes go; NULL: counted down only */
    uint8_t payload_last; /* last byte seen (the sign of an over-long LONG4) */
    uint8_t long_bytes[PICKLE_MAX_LONG];

    struct pyvec stack;
    size_t *marks; /* stack heights at each MARK */
    size_t nmarks, marks_cap;
    struct pyvec memo; /* by index; NULL entries are unset */
    size_t memo_count;

    /* joblib arrays (pyobj.h, struct pyarray's `follows`) */
    bool joblib;                  /* a NumpyArrayWrapper was seen */
    bool inside_array;            /* this walker reads an object array's pickle: no arrays follow */
    struct pyobj *raw;            /* the array whose data passes */
    struct tensor_reader *reader; /* its statistics (large: allocated at the first array) */
    uint8_t *row_block;           /* a row's bytes gathered for its statistics (pyobj.h) */
    size_t row_fill;
    uint64_t raw_left, raw_at;
    struct pickle_walker *nested; /* STEP_RAW_PICKLE: it shares this walker's arena */
    bool own_arena;

    /* Calls a parser takes over (pickle_walker_set_reduce_hook), and what makes their
     * arguments' memory safe to give back: the allocations since their MARK, when no
     * opcode changed an older container meanwhile, no vector of the walker moved, and
     * the memo entries stored meanwhile are known (the last PUT_LOG of them). */
    pickle_reduce_hook reduce_hook;
    void *hook_ctx;
    unsigned long mutations, puts;
    bool said_released;
    uint64_t put_log[PUT_LOG];
    struct region regions[REGIONS]; /* by MARK depth */
    struct region tuple_region;     /* of the last tuple built from a MARK */
    const struct pyobj *last_tuple;
    struct pyarena_mark after_tuple;
};

static const char *op_name(uint8_t op)
{
    return opcodes[op].name ? opcodes[op].name : "?";
}

static bool fail(struct pickle_walker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reports why the walk gives up (with the offset of the opcode at fault); always false. */
static bool fail(struct pickle_walker *w, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    report_error(w->report, "pickle: %s at byte %" PRIu64, why, w->op_offset);
    w->step = STEP_FAILED;
    return false;
}

static bool fail_memory(struct pickle_walker *w)
{
    return fail(w, "%s exceeds the %u MiB memory cap", op_name(w->op), PYOBJ_MEMORY_CAP >> 20);
}

/* ---- the stack, marks and memo ---- */

static size_t stack_floor(const struct pickle_walker *w)
{
    return w->nmarks ? w->marks[w->nmarks - 1] : 0;
}

static bool push(struct pickle_walker *w, struct pyobj *o)
{
    if (!o) return fail_memory(w);
    return pyvec_push(w->arena, &w->stack, o) || fail_memory(w);
}

static struct pyobj *pop(struct pickle_walker *w)
{
    if (w->stack.len <= stack_floor(w)) {
        fail(w, "stack underflow in %s", op_name(w->op));
        return NULL;
    }
    return w->stack.at[--w->stack.len];
}

static struct pyobj *top(struct pickle_walker *w)
{
    if (w->stack.len <= stack_floor(w)) {
        fail(w, "stack underflow in %s", op_name(w->op));
        return NULL;
    }
    return w->stack.at[w->stack.len - 1];
}

static bool push_mark(struct pickle_walker *w)
{
    if (w->nmarks == w->marks_cap) {
        size_t cap = w->marks_cap ? w->marks_cap * 2 : 16;
        size_t *marks = pyarena_alloc(w->arena, cap * sizeof(*marks));
        if (!marks) return fail_memory(w);
        if (w->nmarks) memcpy(marks, w->marks, w->nmarks * sizeof(*marks));
        w->marks = marks;
        w->marks_cap = cap;
    }
    w->marks[w->nmarks++] = w->stack.len;
    if (w->nmarks <= REGIONS)
        w->regions[w->nmarks - 1] = (struct region){.known = true,
                                                    .mark = pyarena_here(w->arena),
                                                    .mutations = w->mutations,
                                                    .puts = w->puts,
                                                    .stack = w->stack.at,
                                                    .memo = w->memo.at,
                                                    .marks = w->marks};
    return true;
}

/* Takes the items above the last MARK off the stack. They stay readable at *items
 * until the next push. */
static bool pop_mark(struct pickle_walker *w, struct pyobj ***items, size_t *n)
{
    *items = NULL;
    *n = 0;
    if (!w->nmarks) return fail(w, "%s without a MARK", op_name(w->op));
    size_t mark = w->marks[--w->nmarks];
    *items = w->stack.at + mark;
    *n = w->stack.len - mark;
    w->stack.len = mark;
    return true;
}

static bool memo_put(struct pickle_walker *w, uint64_t index)
{
    struct pyobj *o = top(w);
    if (!o) return false;
    /* the memo is an array indexed directly: an index it could never hold is refused */
    if (index >= PYOBJ_MEMORY_CAP / sizeof(void *))
        return fail(w, "memo index %" PRIu64 " beyond the memory cap", index);
    /* MEMOIZE, and the PUTs of most writers, store at the next index: a push */
    if (index >= w->memo.len &&
        !(index == w->memo.len ? pyvec_push(w->arena, &w->memo, NULL)
                               : pyvec_resize(w->arena, &w->memo, index + 1)))
        return fail_memory(w);
    if (!w->memo.at[index]) w->memo_count++;
    w->memo.at[index] = o;
    w->put_log[w->puts++ % PUT_LOG] = index;
    return true;
}

static bool memo_get(struct pickle_walker *w, uint64_t index)
{
    if (index >= w->memo.len || !w->memo.at[index])
        return fail(w, "%s of memo index %" PRIu64 " which was never stored", op_name(w->op),
                    index);
    if (w->memo.at[index] == &released) { /* left out, said once; the walk goes on */
        if (!w->said_released)
            report_error(w->report,
                         "pickle: %s of memo index %" PRIu64 " at byte %" PRIu64
                         ", a tensor's argument, which is not kept once read: left out",
                         op_name(w->op), index, w->op_offset);
        w->said_released = true;
        return push(w, pyobj_str(w->arena, PY_BYTES, NULL, 0));
    }
    return push(w, w->memo.at[index]);
}

/* ---- building nodes ---- */

static bool push_seq(struct pickle_walker *w, enum pyobj_kind kind, size_t n_from_stack)
{
    if (w->stack.len - stack_floor(w) < n_from_stack)
        return fail(w, "stack underflow in %s", op_name(w->op));
    w->stack.len -= n_from_stack;
    return push(w, pyobj_seq(w->arena, kind, w->stack.at + w->stack.len, n_from_stack));
}

static bool push_marked_seq(struct pickle_walker *w, enum pyobj_kind kind)
{
    struct pyobj **items;
    size_t n;
    if (!pop_mark(w, &items, &n)) return false;
    struct region r = w->nmarks < REGIONS ? w->regions[w->nmarks] : (struct region){0};
    struct pyobj *seq = pyobj_seq(w->arena, kind, items, n);
    if (!push(w, seq)) return false;
    /* A call's arguments: REDUCE may find them the last thing allocated */
    w->tuple_region = r;
    w->last_tuple = seq;
    w->after_tuple = pyarena_here(w->arena);
    return true;
}

static bool add_pairs(struct pickle_walker *w, struct pyobj *target, struct pyobj *const *items,
                      size_t n)
{
    struct pyvec *map = pyobj_map(target);
    if (!map) return fail(w, "%s on something that is not a dict", op_name(w->op));
    if (n % 2) return fail(w, "%s with an odd number of items", op_name(w->op));
    return pyvec_extend(w->arena, map, items, n) || fail_memory(w);
}

static bool add_items(struct pickle_walker *w, struct pyobj *target, struct pyobj *const *items,
                      size_t n)
{
    struct pyvec *vec = pyobj_items(target);
    if (!vec) return fail(w, "%s on something that is not a list or set", op_name(w->op));
    return pyvec_extend(w->arena, vec, items, n) || fail_memory(w);
}

/* APPENDS/SETITEMS/ADDITEMS: the marked items go into the container below the mark. */
static bool add_marked(struct pickle_walker *w, bool pairs)
{
    struct pyobj **items;
    size_t n;
    if (!pop_mark(w, &items, &n)) return false;
    struct pyobj *target = top(w);
    if (!target) return false;
    return pairs ? add_pairs(w, target, items, n) : add_items(w, target, items, n);
}

static bool push_global(struct pickle_walker *w, const char *module, const char *name)
{
    return push(w, pyobj_global(w->arena, module, name));
}

/* REDUCE, NEWOBJ, NEWOBJ_EX, OBJ and INST: callable(*args), never performed. */
static bool push_call(struct pickle_walker *w, struct pyobj *callable, struct pyobj *args)
{
    struct pyobj *o = pyclass_call(w->arena, callable, args);
    if (o == PYCLASS_NOT_UNDERSTOOD) {
        o = pyobj_new(w->arena, PY_OBJECT);
        if (o) {
            o->u.object.callable = callable;
            o->u.object.args = args;
        }
    }
    return push(w, o);
}

static bool push_marked_call(struct pickle_walker *w, struct pyobj *callable,
                             struct pyobj *const *args, size_t n)
{
    struct pyobj *tuple = pyobj_seq(w->arena, PY_TUPLE, args, n);
    if (!tuple) return fail_memory(w);
    return push_call(w, callable, tuple);
}

/* ---- BUILD ---- */

static bool merge_attrs(struct pickle_walker *w, struct pyobj *inst, const struct pyobj *dict)
{
    if (dict->kind == PY_NONE) return true;
    if (!inst->attrs && !(inst->attrs = pyobj_new(w->arena, PY_DICT))) return fail_memory(w);
    return pyvec_extend(w->arena, &inst->attrs->u.map, dict->u.map.at, dict->u.map.len) ||
           fail_memory(w);
}

static bool is_dict_or_none(const struct pyobj *o)
{
    return o->kind == PY_DICT || o->kind == PY_NONE;
}

static bool set_state(struct pickle_walker *w, struct pyobj *inst, struct pyobj *state)
{
    size_t n;
    struct pyobj *const *pair = pyobj_tuple_items(state, &n);
    if (state->kind == PY_NONE) return true;
    if (state->kind == PY_DICT) return merge_attrs(w, inst, state);
    if (state->kind == PY_TUPLE && n == 2 && is_dict_or_none(pair[0]) && is_dict_or_none(pair[1]))
        return merge_attrs(w, inst, pair[0]) && merge_attrs(w, inst, pair[1]);
    /* any other state is kept whole under one attribute */
    struct pyobj *kv[2] = {pyobj_str_copy(w->arena, "__state__", 9), state};
    struct pyobj *dict = pyobj_new(w->arena, PY_DICT);
    if (!kv[0] || !dict || !pyvec_extend(w->arena, &dict->u.map, kv, 2)) return fail_memory(w);
    return merge_attrs(w, inst, dict);
}

/* ---- joblib: an array's data in the file after its wrapper's BUILD ---- */

static void end_raw(struct pickle_walker *w)
{
    struct pyarray *arr = &w->raw->u.array;
    if (arr->streamed) *arr->streamed = w->reader->stats;
    if (arr->head && arr->streamed) tensor_head_set(arr->head, arr->streamed);
    w->raw = NULL;
    w->step = STEP_OPCODE;
}

static void start_raw_data(struct pickle_walker *w)
{
    w->step = STEP_RAW_DATA;
    w->raw_at = 0;
    if (w->raw_left == 0) end_raw(w);
}

static struct pickle_walker *walker_new(struct report *r, pickle_on_stop on_stop, void *ctx,
                                        struct pyarena *arena);

/* The object array's own pickle reached STOP: its items (pandas' labels) go to the
 * array the wrapper became. */
static void object_array_items(void *ctx, struct pyobj *root)
{
    struct pickle_walker *w = ctx;
    if (root->kind == PY_ARRAY && w->raw) w->raw->u.array.objects = root->u.array.objects;
}

static bool start_rows(struct pickle_walker *w, struct pyarray *arr)
{
    arr->rows = pyarena_alloc(w->arena, (size_t)arr->shape[0] * sizeof *arr->rows);
    if (!w->row_block) w->row_block = malloc(TENSOR_SAMPLE_BLOCK);
    if (!arr->rows || !w->row_block) return false;
    for (int64_t i = 0; i < arr->shape[0]; i++)
        stats_init(&arr->rows[i], arr->dtype);
    w->row_fill = 0;
    return true;
}

/* Data bytes from raw_at on into their rows' statistics, in blocks of
 * TENSOR_SAMPLE_BLOCK bytes from each row's start (flatten.c feeds a pickled column so). */
static void feed_rows(struct pickle_walker *w, struct pyarray *arr, const uint8_t *data, size_t n)
{
    uint64_t row_bytes = (uint64_t)arr->shape[1] * arr->elsize, at = w->raw_at;
    while (n > 0) {
        uint64_t row = at / row_bytes, in_row = at % row_bytes;
        size_t room = TENSOR_SAMPLE_BLOCK - w->row_fill;
        size_t take = n < room ? n : room;
        if (take > row_bytes - in_row) take = (size_t)(row_bytes - in_row);
        memcpy(w->row_block + w->row_fill, data, take);
        w->row_fill += take;
        data += take;
        n -= take;
        at += take;
        if (w->row_fill == TENSOR_SAMPLE_BLOCK || at % row_bytes == 0) {
            stats_feed(&arr->rows[row], w->row_block, w->row_fill);
            w->row_fill = 0;
        }
    }
}

static bool start_raw(struct pickle_walker *w, struct pyobj *node)
{
    struct pyarray *arr = &node->u.array;
    w->joblib = true;
    if (w->inside_array) return fail(w, "joblib array inside an object array's pickle");
    if (arr->follows == ARRAY_PICKLED) {
        /* in this walker's arena, so that the items outlive the nested walker */
        w->nested = walker_new(w->report, object_array_items, w, w->arena);
        if (!w->nested) return fail_memory(w);
        w->nested->inside_array = true;
        w->raw = node;
        w->step = STEP_RAW_PICKLE;
        return true;
    }
    if (!arr->elsize) return fail(w, "%s", arr->problem);
    if (arr->supported && arr->big_endian) arr->problem = "big-endian joblib arrays are not read";
    if (!arr->problem) {
        arr->streamed = pyarena_alloc(w->arena, sizeof *arr->streamed);
        if (!w->reader) w->reader = malloc(sizeof *w->reader);
        if (!arr->streamed || !w->reader) return fail_memory(w);
        /* Read whole, as arrays pickled inline are (the name is not known yet). */
        static const int64_t no_dims[1];
        static const struct parse_options whole = {.sample = 1};
        if (!tensor_reader_init(w->reader, w->report, "joblib array", arr->dtype,
                                arr->ndim ? arr->shape : no_dims, arr->ndim, &whole))
            return fail(w, "joblib array of an invalid shape");
        w->reader->wanted = true; /* --keys decides once the name is known */
        if (arr->ndim == 2 && !arr->fortran && arr->shape[0] > 1 &&
            arr->shape[0] <= PYOBJ_ROW_STATS && arr->shape[1] > 0 && !start_rows(w, arr))
            return fail_memory(w);
        /* a 0-dimensional array is also a value: its one element is kept */
        if (arr->ndim == 0 && !(arr->data = pyarena_alloc(w->arena, arr->nbytes)))
            return fail_memory(w);
    }
    w->raw = node;
    w->raw_left = arr->nbytes;
    w->raw_at = 0;
    if (arr->follows == ARRAY_RAW_PADDED)
        w->step = STEP_RAW_PAD_LENGTH;
    else
        start_raw_data(w);
    return true;
}

static size_t take_raw(struct pickle_walker *w, const uint8_t *data, size_t len)
{
    struct pyarray *arr = &w->raw->u.array;
    if (w->step == STEP_RAW_PAD_LENGTH) {
        w->raw_at = data[0]; /* the pad's length, counted down */
        w->step = STEP_RAW_PAD;
        if (w->raw_at == 0) start_raw_data(w);
        return 1;
    }
    if (w->step == STEP_RAW_PAD) {
        size_t n = w->raw_at < len ? (size_t)w->raw_at : len;
        w->raw_at -= n;
        if (w->raw_at == 0) start_raw_data(w);
        return n;
    }
    size_t n = w->raw_left < len ? (size_t)w->raw_left : len;
    if (arr->streamed) {
        tensor_reader_feed(w->reader, data, n);
        if (arr->head) tensor_head_catch(arr->head, arr->elsize, w->raw_at, data, n);
        if (arr->data) memcpy((uint8_t *)arr->data + w->raw_at, data, n);
        if (arr->rows) feed_rows(w, arr, data, n);
    }
    w->raw_at += n;
    w->raw_left -= n;
    if (w->raw_left == 0) end_raw(w);
    return n;
}

/* An object array's data: a whole pickle of its own (joblib writes it with pickle.dump). */
static size_t take_raw_pickle(struct pickle_walker *w, const uint8_t *data, size_t len)
{
    size_t n = pickle_walker_feed(w->nested, data, len);
    enum pickle_state state = pickle_walker_state(w->nested);
    if (state == PICKLE_RUNNING) return n;
    pickle_walker_free(w->nested);
    w->nested = NULL;
    if (state == PICKLE_FAILED) return fail(w, "an object array's pickle is malformed"), len;
    w->raw = NULL;
    w->step = STEP_OPCODE;
    return n;
}

static const char *kind_name(enum pyobj_kind kind)
{
    static const char *const names[] = {
        [PY_NONE] = "None",     [PY_BOOL] = "bool",           [PY_INT] = "int",
        [PY_BIGINT] = "int",    [PY_FLOAT] = "float",         [PY_STR] = "str",
        [PY_BYTES] = "bytes",   [PY_LIST] = "list",           [PY_TUPLE] = "tuple",
        [PY_SET] = "set",       [PY_FROZENSET] = "frozenset", [PY_DICT] = "dict",
        [PY_GLOBAL] = "global", [PY_OBJECT] = "object",       [PY_PID] = "persistent id",
        [PY_DTYPE] = "dtype",   [PY_ARRAY] = "array",         [PY_FOUND] = "tensor",
    };
    return names[kind];
}

static bool build(struct pickle_walker *w)
{
    struct pyobj *state = pop(w);
    struct pyobj *inst = state ? top(w) : NULL;
    if (!inst) return false;
    if (pyclass_build(w->arena, inst, state)) return true;
    switch (inst->kind) {
    case PY_OBJECT:
        if (!set_state(w, inst, state)) return false;
        if (pyclass_built(w->arena, inst) && inst->kind == PY_ARRAY &&
            inst->u.array.follows != ARRAY_INLINE)
            return start_raw(w, inst);
        return true;
    case PY_DICT:
    case PY_LIST:
    case PY_SET:
        return set_state(w, inst, state);
    default:
        return fail(w, "BUILD on a %s", kind_name(inst->kind));
    }
}

/* ---- arguments ---- */

static uint64_t le_uint(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* strtod that reads '.' as the decimal point whatever locale the monitored program set. */
static double strtod_c(const char *s, char **end)
{
    locale_t loc = json_c_locale();
    return loc ? strtod_l(s, end, loc) : strtod(s, end);
}

static bool only_space_left(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    return *p == '\0';
}

/* INT and LONG lines hold Python's int(text); a value beyond int64 becomes a double. */
static bool push_text_int(struct pickle_walker *w, char *text)
{
    if (w->op == 'L' && w->line_len && text[w->line_len - 1] == 'L') text[w->line_len - 1] = '\0';
    if (w->op == 'I' && strcmp(text, "01") == 0) return push(w, &pyobj_true);
    if (w->op == 'I' && strcmp(text, "00") == 0) return push(w, &pyobj_false);
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || !only_space_left(end))
        return fail(w, "%s argument is not an integer", op_name(w->op));
    if (errno == ERANGE) return push(w, pyobj_float(w->arena, PY_BIGINT, strtod_c(text, &end)));
    return push(w, pyobj_int(w->arena, v));
}

static bool push_text_float(struct pickle_walker *w, const char *text)
{
    char *end;
    double v = strtod_c(text, &end);
    if (end == text || !only_space_left(end)) return fail(w, "FLOAT argument is not a number");
    return push(w, pyobj_float(w->arena, PY_FLOAT, v));
}

static bool text_index(struct pickle_walker *w, const char *text, uint64_t *index)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || !only_space_left(end) || errno || text[0] == '-')
        return fail(w, "%s argument is not a memo index", op_name(w->op));
    *index = v;
    return true;
}

static size_t utf8_put(uint8_t *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex_value(const char *s, size_t digits, uint32_t *out)
{
    uint32_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        int d = hex_digit(s[i]);
        if (d < 0) return false;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return true;
}

/* raw-unicode-escape (UNICODE lines) to UTF-8: every byte is the code point of the same
 * value, except \uXXXX and \UXXXXXXXX after an odd run of backslashes. out has room
 * for 2 * n bytes. Returns the length written, or -1 for a bad escape. */
static ptrdiff_t decode_raw_unicode(const char *in, size_t n, uint8_t *out)
{
    size_t o = 0, backslashes = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '\\') backslashes++;
        if ((c == 'u' || c == 'U') && backslashes % 2 == 1) {
            size_t digits = c == 'u' ? 4 : 8;
            uint32_t cp;
            if (i + digits >= n) return -1;
            if (!hex_value(in + i + 1, digits, &cp) || cp > 0x10ffff) return -1;
            o--; /* the backslash that introduced the escape */
            o += utf8_put(out + o, cp);
            i += digits;
            backslashes = 0;
            continue;
        }
        if (c != '\\') backslashes = 0;
        o += utf8_put(out + o, (uint8_t)c);
    }
    return (ptrdiff_t)o;
}

/* The escapes of Python's string literals (STRING lines), in place of the quotes. */
static ptrdiff_t decode_string_escapes(const char *in, size_t n, uint8_t *out)
{
    static const char plain[] = "\\\\''\"\"a\ab\bf\fn\nr\rt\tv\v";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '\\' || i + 1 == n) {
            out[o++] = (uint8_t)in[i];
            continue;
        }
        char c = in[++i];
        const char *p = NULL;
        for (size_t k = 0; k + 1 < sizeof(plain); k += 2)
            if (plain[k] == c) p = plain + k + 1;
        uint32_t v;
        if (p) {
            out[o++] = (uint8_t)*p;
        } else if (c == 'x') {
            if (i + 2 >= n || !hex_value(in + i + 1, 2, &v)) return -1;
            out[o++] = (uint8_t)v;
            i += 2;
        } else if (c >= '0' && c <= '7') {
            v = 0;
            size_t k = 0;
            for (; k < 3 && i + k < n && in[i + k] >= '0' && in[i + k] <= '7'; k++)
                v = v * 8 + (uint32_t)(in[i + k] - '0');
            out[o++] = (uint8_t)v;
            i += k - 1;
        } else {
            out[o++] = '\\';
            out[o++] = (uint8_t)c;
        }
    }
    return (ptrdiff_t)o;
}

/* STRING and UNICODE lines; content beyond what was retained is counted, not kept. */
static bool push_text_string(struct pickle_walker *w)
{
    const char *text = w->line;
    size_t n = w->line_len;
    bool quoted_string = w->op == 'S';
    if (quoted_string) {
        if (n < 2 || text[0] != text[n - 1] || (text[0] != '\'' && text[0] != '"'))
            return fail(w, "STRING argument is not quoted");
        text++;
        n -= 2;
    }
    if (w->line_total > w->line_len || !pyarena_may_keep(w->arena, 2 * n + 1))
        return push(w, pyobj_str(w->arena, PY_STR, NULL, w->line_total));
    uint8_t *out = pyarena_alloc(w->arena, 2 * n + 1);
    if (!out) return fail_memory(w);
    ptrdiff_t len =
        quoted_string ? decode_string_escapes(text, n, out) : decode_raw_unicode(text, n, out);
    if (len < 0) return fail(w, "bad escape in %s argument", op_name(w->op));
    out[len] = '\0';
    return push(w, pyobj_str(w->arena, PY_STR, (const char *)out, (uint64_t)len));
}

/* LONG1/LONG4: little-endian two's complement of any length. */
static struct pyobj *decode_long(struct pickle_walker *w)
{
    uint64_t n = w->payload_need;
    const uint8_t *b = w->long_bytes;
    bool negative = n && (w->payload_last & 0x80);
    uint8_t fill = negative ? 0xff : 0;
    bool fits = true;
    for (uint64_t i = 8; i < n; i++)
        fits = fits && b[i] == fill && ((b[7] & 0x80) != 0) == negative;
    if (n <= 8 || fits) {
        uint64_t raw = le_uint(b, (unsigned)(n < 8 ? n : 8));
        if (n && n < 8 && negative) raw |= ~(uint64_t)0 << (8 * n);
        return pyobj_int(w->arena, (int64_t)raw);
    }
    double magnitude = 0;
    for (uint64_t i = n; i-- > 0;)
        magnitude = magnitude * 256 + (negative ? (uint8_t)~b[i] : b[i]);
    return pyobj_float(w->arena, PY_BIGINT, negative ? -(magnitude + 1) : magnitude);
}

static bool push_payload(struct pickle_walker *w)
{
    switch (w->op) {
    case 0x8a: /* LONG1 */
    case 0x8b: /* LONG4 */
        if (w->payload_need > PICKLE_MAX_LONG)
            return fail(w, "int of %" PRIu64 " bytes is wider than the %d-byte limit",
                        w->payload_need, PICKLE_MAX_LONG);
        return push(w, decode_long(w));
    case 'B':
    case 'C':
    case 0x8e:
    case 0x96: /* BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8 */
        return push(w, pyobj_str(w->arena, PY_BYTES, (const char *)w->payload, w->payload_need));
    default: /* BINSTRING SHORT_BINSTRING BINUNICODE SHORT_BINUNICODE BINUNICODE8 */
        return push(w, pyobj_str(w->arena, PY_STR, (const char *)w->payload, w->payload_need));
    }
}

/* ---- opcodes ---- */

static bool stop(struct pickle_walker *w)
{
    struct pyobj *root = pop(w);
    if (!root) return false;
    w->step = STEP_STOPPED;
    if (w->on_stop) w->on_stop(w->ctx, root);
    return true;
}

static bool pop_or_pop_mark(struct pickle_walker *w)
{
    struct pyobj **items;
    size_t n;
    if (w->stack.len > stack_floor(w)) {
        w->stack.len--;
        return true;
    }
    return pop_mark(w, &items, &n);
}

static bool dict_from_mark(struct pickle_walker *w)
{
    struct pyobj **items;
    size_t n;
    if (!pop_mark(w, &items, &n)) return false;
    if (n % 2) return fail(w, "DICT with an odd number of items");
    struct pyobj *d = pyobj_new(w->arena, PY_DICT);
    if (!d || !pyvec_extend(w->arena, &d->u.map, items, n)) return fail_memory(w);
    return push(w, d);
}

static bool append(struct pickle_walker *w, bool pair)
{
    struct pyobj *item[2];
    if (!(item[1] = pop(w))) return false;
    if (pair && !(item[0] = pop(w))) return false;
    struct pyobj *target = top(w);
    if (!target) return false;
    return pair ? add_pairs(w, target, item, 2) : add_items(w, target, item + 1, 1);
}

static bool stack_global(struct pickle_walker *w)
{
    struct pyobj *name = pop(w);
    struct pyobj *module = name ? pop(w) : NULL;
    if (!module) return false;
    if (module->kind != PY_STR || name->kind != PY_STR || !module->u.str.data || !name->u.str.data)
        return fail(w, "STACK_GLOBAL requires two str");
    return push_global(w, module->u.str.data, name->u.str.data);
}

static bool inst(struct pickle_walker *w)
{
    struct pyobj **args;
    size_t n;
    struct pyobj *name_str = pyobj_str_copy(w->arena, w->line, w->line_len);
    struct pyobj *cls =
        name_str ? pyobj_global(w->arena, w->first_line, name_str->u.str.data) : NULL;
    if (!cls) return fail_memory(w);
    if (!pop_mark(w, &args, &n)) return false;
    return push_marked_call(w, cls, args, n);
}

static bool obj(struct pickle_walker *w)
{
    struct pyobj **items;
    size_t n;
    if (!pop_mark(w, &items, &n)) return false;
    if (n == 0) return fail(w, "OBJ without a class");
    return push_marked_call(w, items[0], items + 1, n - 1);
}

/* Whether args is the tuple built last from a MARK, with nothing allocated since, and
 * nothing older can reach what was allocated since that MARK but through the memo
 * entries stored meanwhile. */
static bool arguments_alone(const struct pickle_walker *w, const struct pyobj *args)
{
    const struct region *r = &w->tuple_region;
    struct pyarena_mark now = pyarena_here(w->arena);
    return r->known && args == w->last_tuple && now.head == w->after_tuple.head &&
           now.used == w->after_tuple.used && now.after_head == w->after_tuple.after_head &&
           r->mutations == w->mutations && w->puts - r->puts <= PUT_LOG &&
           r->stack == w->stack.at && r->memo == w->memo.at && r->marks == w->marks && !w->nested &&
           !w->raw;
}

/* A memo entry worth keeping when its node goes: a copy of it. */
struct kept_entry {
    uint64_t index;
    struct pyobj node; /* strings malloc'd */
    char *a, *b;
};

static bool is_atom(const struct pyobj *o)
{
    return o->kind == PY_INT || o->kind == PY_BIGINT || o->kind == PY_FLOAT || o->kind == PY_STR ||
           o->kind == PY_BYTES || o->kind == PY_GLOBAL;
}

static char *copy_of(const char *s, uint64_t len)
{
    char *c = s ? malloc(len + 1) : NULL;
    if (c) memcpy(c, s, len), c[len] = '\0';
    return c;
}

/* Saves the memo entries stored since r that lead into the memory to give back: small
 * immutable values are copied (a storage's key, 'cpu': later tensors GET them), the
 * others are released. Returns how many were kept, or -1 without memory. */
static int save_entries(struct pickle_walker *w, const struct region *r, struct kept_entry *kept)
{
    int n = 0;
    for (unsigned long p = r->puts; p < w->puts; p++) {
        uint64_t index = w->put_log[p % PUT_LOG];
        struct pyobj *o = w->memo.at[index];
        if (o == &released || !pyarena_since(w->arena, r->mark, o)) continue;
        if (!is_atom(o)) {
            w->memo.at[index] = &released;
            continue;
        }
        struct kept_entry *k = &kept[n++];
        /* a node is allocated at its kind's size, not the whole struct's */
        *k = (struct kept_entry){.index = index};
        memcpy(&k->node, o, pyobj_node_size(o->kind));
        bool text = o->kind == PY_STR || o->kind == PY_BYTES;
        if (text && o->u.str.data && !(k->a = copy_of(o->u.str.data, o->u.str.len))) return -1;
        if (o->kind == PY_GLOBAL &&
            (!(k->a = copy_of(o->u.global.module, strlen(o->u.global.module))) ||
             !(k->b = copy_of(o->u.global.name, strlen(o->u.global.name)))))
            return -1;
        w->memo.at[index] = &released; /* until it is put back */
    }
    return n;
}

static struct pyobj *restore_entry(struct pickle_walker *w, const struct kept_entry *k)
{
    const struct pyobj *o = &k->node;
    switch (o->kind) {
    case PY_STR:
    case PY_BYTES: {
        if (!k->a) return pyobj_str(w->arena, o->kind, NULL, o->u.str.len);
        struct pyobj *s = pyobj_str_copy(w->arena, k->a, o->u.str.len);
        if (s) s->kind = o->kind;
        return s;
    }
    case PY_GLOBAL: {
        struct pyobj *m = pyobj_str_copy(w->arena, k->a, strlen(k->a));
        struct pyobj *n = pyobj_str_copy(w->arena, k->b, strlen(k->b));
        return m && n ? pyobj_global(w->arena, m->u.str.data, n->u.str.data) : NULL;
    }
    case PY_INT:
        return pyobj_int(w->arena, o->u.integer);
    default:
        return pyobj_float(w->arena, o->kind, o->u.number);
    }
}

/* REDUCE of a call the parser's hook takes over: its arguments' memory goes back to the
 * arena and the call becomes a PY_FOUND node. False when not taken (nothing changed). */
static bool taken_over(struct pickle_walker *w, struct pyobj *callable, struct pyobj *args)
{
    size_t found;
    if (!w->reduce_hook || !arguments_alone(w, args) ||
        !w->reduce_hook(w->hook_ctx, callable, args, &found))
        return false;
    struct kept_entry kept[PUT_LOG];
    int n = save_entries(w, &w->tuple_region, kept);
    bool ok = n >= 0;
    if (ok) pyarena_release(w->arena, w->tuple_region.mark);
    for (int i = 0; i < (n < 0 ? PUT_LOG : n); i++) {
        struct pyobj *o = ok ? restore_entry(w, &kept[i]) : NULL;
        if (o) w->memo.at[kept[i].index] = o;
        ok = ok && o;
        free(kept[i].a);
        free(kept[i].b);
    }
    w->tuple_region.known = false;
    w->last_tuple = NULL;
    struct pyobj *node = ok ? pyobj_new(w->arena, PY_FOUND) : NULL;
    if (node) node->u.found = found;
    push(w, node);
    return true;
}

static bool reduce(struct pickle_walker *w, unsigned nargs)
{
    struct pyobj *parts[3];
    for (unsigned i = nargs; i-- > 0;)
        if (!(parts[i] = pop(w))) return false;
    if (w->op == 'R' && taken_over(w, parts[0], parts[1])) return w->step != STEP_FAILED;
    /* NEWOBJ_EX's keyword arguments are dropped: they do not name anything */
    return push_call(w, parts[0], parts[1]);
}

static bool ext(struct pickle_walker *w)
{
    int64_t code =
        w->op == 0x84 ? (int32_t)le_uint(w->fixed, 4) : (int64_t)le_uint(w->fixed, w->fixed_need);
    if (code <= 0) return fail(w, "%s code must be positive", op_name(w->op));
    char text[24];
    int len = snprintf(text, sizeof(text), "%" PRId64, code);
    struct pyobj *s = pyobj_str_copy(w->arena, text, (size_t)len);
    return s ? push_global(w, "copyreg._extension_registry", s->u.str.data) : fail_memory(w);
}

static bool persid(struct pickle_walker *w, struct pyobj *id)
{
    struct pyobj *p = pyobj_new(w->arena, PY_PID);
    if (!id || !p) return fail_memory(w);
    p->u.pid = id;
    return push(w, p);
}

static bool proto(struct pickle_walker *w)
{
    if (w->fixed[0] > PICKLE_MAX_PROTOCOL)
        return fail(w, "unsupported pickle protocol %u", w->fixed[0]);
    return true;
}

static double be_double(const uint8_t *p)
{
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
        bits = bits << 8 | p[i];
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

/* Opcodes that change a container or object built earlier (see arguments_alone). */
static bool mutates(uint8_t op)
{
    return op == 'a' || op == 'e' || op == 's' || op == 'u' || op == 'b' || op == 0x90;
}

static bool execute(struct pickle_walker *w)
{
    struct pyobj *o;
    uint64_t index;
    w->mutations += mutates(w->op);
    switch (w->op) {
    case '(':
        return push_mark(w);
    case '.':
        return stop(w);
    case '0':
        return pop_or_pop_mark(w);
    case '1': {
        struct pyobj **items;
        size_t n;
        return pop_mark(w, &items, &n);
    }
    case '2':
        return (o = top(w)) && push(w, o);
    case 'F':
        return push_text_float(w, w->line);
    case 'I':
    case 'L':
        return push_text_int(w, w->line);
    case 'J':
        return push(w, pyobj_int(w->arena, (int32_t)le_uint(w->fixed, 4)));
    case 'K':
    case 'M':
        return push(w, pyobj_int(w->arena, (int64_t)le_uint(w->fixed, w->fixed_need)));
    case 'N':
        return push(w, &pyobj_none);
    case 'P':
        return persid(w, pyobj_str_copy(w->arena, w->line, w->line_len));
    case 'Q':
        return (o = pop(w)) && persid(w, o);
    case 'R':
        return reduce(w, 2);
    case 'S':
    case 'V':
        return push_text_string(w);
    case 'T':
    case 'U':
    case 'X':
    case 'B':
    case 'C':
    case 0x8a:
    case 0x8b:
    case 0x8c:
    case 0x8d:
    case 0x8e:
    case 0x96:
        return push_payload(w);
    case 'a':
        return append(w, false);
    case 'b':
        return build(w);
    case 'c': {
        struct pyobj *name = pyobj_str_copy(w->arena, w->line, w->line_len);
        return name ? push_global(w, w->first_line, name->u.str.data) : fail_memory(w);
    }
    case 'd':
        return dict_from_mark(w);
    case '}':
        return push(w, pyobj_new(w->arena, PY_DICT));
    case 'e':
        return add_marked(w, false);
    case 'g':
        return text_index(w, w->line, &index) && memo_get(w, index);
    case 'h':
    case 'j':
        return memo_get(w, le_uint(w->fixed, w->fixed_need));
    case 'i':
        return inst(w);
    case 'l':
        return push_marked_seq(w, PY_LIST);
    case ']':
        return push(w, pyobj_new(w->arena, PY_LIST));
    case 'o':
        return obj(w);
    case 'p':
        return text_index(w, w->line, &index) && memo_put(w, index);
    case 'q':
    case 'r':
        return memo_put(w, le_uint(w->fixed, w->fixed_need));
    case 's':
        return append(w, true);
    case 't':
        return push_marked_seq(w, PY_TUPLE);
    case ')':
        return push_seq(w, PY_TUPLE, 0);
    case 'u':
        return add_marked(w, true);
    case 'G':
        return push(w, pyobj_float(w->arena, PY_FLOAT, be_double(w->fixed)));
    case 0x80:
        return proto(w);
    case 0x81:
        return reduce(w, 2);
    case 0x82:
    case 0x83:
    case 0x84:
        return ext(w);
    case 0x85:
    case 0x86:
    case 0x87:
        return push_seq(w, PY_TUPLE, (size_t)(w->op - 0x84));
    case 0x88:
        return push(w, &pyobj_true);
    case 0x89:
        return push(w, &pyobj_false);
    case 0x8f:
        return push(w, pyobj_new(w->arena, PY_SET));
    case 0x90:
        return add_marked(w, false);
    case 0x91:
        return push_marked_seq(w, PY_FROZENSET);
    case 0x92:
        return reduce(w, 3);
    case 0x93:
        return stack_global(w);
    case 0x94:
        return memo_put(w, w->memo_count);
    case 0x95:
        return true; /* FRAME: only a hint for readers that prefetch */
    /* out-of-band buffers were not given to us: their contents are unknown */
    case 0x97:
        return push(w, pyobj_str(w->arena, PY_BYTES, NULL, 0));
    case 0x98:
        return top(w) != NULL;
    }
    return fail(w, "unknown opcode 0x%02x", w->op);
}

/* ---- reading opcodes and their arguments from pieces of any size ---- */

static bool is_text_string(uint8_t op)
{
    return op == 'S' || op == 'V';
}

static void start_line(struct pickle_walker *w)
{
    w->line_len = 0;
    w->line_total = 0;
    w->line_limit = is_text_string(w->op) ? PICKLE_MAX_TEXT_LINE : PICKLE_MAX_LINE;
    w->step = STEP_LINE;
}

static bool start_payload(struct pickle_walker *w)
{
    unsigned size = w->fixed_need;
    uint64_t len = le_uint(w->fixed, size);
    bool is_signed = w->op == 'T' || w->op == 0x8b; /* BINSTRING, LONG4 */
    if ((is_signed && (len & 0x80000000u)) || len > INT64_MAX)
        return fail(w, "%s length %" PRIu64 " is invalid", op_name(w->op), len);
    w->payload_need = len;
    w->payload_have = 0;
    w->payload_last = 0;
    w->payload = NULL;
    if (w->op == 0x8a || w->op == 0x8b) {
        if (len <= PICKLE_MAX_LONG) w->payload = w->long_bytes;
    } else if (pyarena_may_keep(w->arena, len + 1)) {
        w->payload = pyarena_alloc(w->arena, len + 1); /* zeroed: the str is NUL-terminated */
    }
    w->step = STEP_PAYLOAD;
    if (len > 0) return true;
    w->step = STEP_OPCODE;
    return execute(w);
}

static bool line_append(struct pickle_walker *w, const uint8_t *data, size_t n)
{
    w->line_total += n;
    size_t room = w->line_limit - w->line_len;
    if (n > room) {
        if (!is_text_string(w->op))
            return fail(w, "%s line longer than %u bytes", op_name(w->op), PICKLE_MAX_LINE);
        n = room;
    }
    if (w->line_len + n + 1 > w->line_alloc) {
        size_t alloc = w->line_alloc ? w->line_alloc : 256;
        while (alloc < w->line_len + n + 1)
            alloc *= 2;
        char *line = realloc(w->line, alloc);
        if (!line) return fail_memory(w);
        w->line = line;
        w->line_alloc = alloc;
    }
    memcpy(w->line + w->line_len, data, n);
    w->line_len += n;
    return true;
}

static void line_done(struct pickle_walker *w)
{
    if (!w->line) line_append(w, (const uint8_t *)"", 0);
    if (w->step == STEP_FAILED) return;
    w->line[w->line_len] = '\0';
    if (opcodes[w->op].arg == ARG_LINES2 && !w->first_line) {
        struct pyobj *module = pyobj_str_copy(w->arena, w->line, w->line_len);
        if (!module) {
            fail_memory(w);
            return;
        }
        w->first_line = module->u.str.data;
        start_line(w);
        return;
    }
    w->step = STEP_OPCODE;
    execute(w);
}

static size_t take_line(struct pickle_walker *w, const uint8_t *data, size_t len)
{
    const uint8_t *newline = memchr(data, '\n', len);
    size_t n = newline ? (size_t)(newline - data) : len;
    if (!line_append(w, data, n)) return len;
    if (!newline) return n;
    line_done(w);
    return n + 1;
}

static size_t take_payload(struct pickle_walker *w, const uint8_t *data, size_t len)
{
    uint64_t left = w->payload_need - w->payload_have;
    size_t n = left < len ? (size_t)left : len;
    if (w->payload) memcpy(w->payload + w->payload_have, data, n);
    w->payload_last = data[n - 1];
    w->payload_have += n;
    if (w->payload_have == w->payload_need) {
        w->step = STEP_OPCODE;
        execute(w);
    }
    return n;
}

/* A fixed argument, or a payload's length (then as much of the payload as is there). */
static size_t take_fixed(struct pickle_walker *w, const uint8_t *data, size_t len)
{
    size_t n = w->fixed_need - w->fixed_have;
    if (n > len) n = len;
    if (w->fixed_have == 0 && len >= sizeof w->fixed)
        memcpy(w->fixed, data, sizeof w->fixed); /* one move; the bytes past n mean nothing */
    else
        memcpy(w->fixed + w->fixed_have, data, n);
    w->fixed_have += (unsigned)n;
    if (w->fixed_have < w->fixed_need) return n;
    if (!w->reading_length) {
        w->step = STEP_OPCODE;
        execute(w);
    } else if (start_payload(w) && w->step == STEP_PAYLOAD && n < len) {
        n += take_payload(w, data + n, len - n);
    }
    return n;
}

/* Starts the opcode at data[0]; returns the bytes taken, its argument's too as far as
 * they are there: most opcodes are then done in one step of the feed loop. */
static size_t begin_opcode(struct pickle_walker *w, const uint8_t *data, size_t len)
{
    const struct opinfo *info = &opcodes[data[0]];
    w->op = data[0];
    w->op_offset = w->offset;
    switch (info->arg) {
    case ARG_NONE:
        execute(w);
        return 1;
    case ARG_FIXED:
    case ARG_SIZED:
        w->fixed_need = info->size;
        w->fixed_have = 0;
        w->reading_length = info->arg == ARG_SIZED;
        w->step = STEP_FIXED;
        return len > 1 ? 1 + take_fixed(w, data + 1, len - 1) : 1;
    case ARG_LINE:
    case ARG_LINES2:
        w->first_line = NULL;
        start_line(w);
        return 1;
    default:
        fail(w, "unknown opcode 0x%02x", w->op);
        return 1;
    }
}

size_t pickle_walker_feed(struct pickle_walker *w, const uint8_t *data, size_t len)
{
    size_t at = 0;
    while (at < len) {
        size_t n = 1;
        switch (w->step) {
        case STEP_STOPPED:
            return at;
        case STEP_FAILED:
            w->offset += len - at;
            return len;
        case STEP_OPCODE:
            n = begin_opcode(w, data + at, len - at);
            break;
        case STEP_FIXED:
            n = take_fixed(w, data + at, len - at);
            break;
        case STEP_LINE:
            n = take_line(w, data + at, len - at);
            break;
        case STEP_PAYLOAD:
            n = take_payload(w, data + at, len - at);
            break;
        case STEP_RAW_PAD_LENGTH:
        case STEP_RAW_PAD:
        case STEP_RAW_DATA:
            n = take_raw(w, data + at, len - at);
            break;
        case STEP_RAW_PICKLE:
            n = take_raw_pickle(w, data + at, len - at);
            break;
        }
        at += n;
        w->offset += n;
    }
    return at;
}

bool pickle_walker_finish(struct pickle_walker *w)
{
    switch (w->step) {
    case STEP_STOPPED:
        return true;
    case STEP_FAILED:
        return false;
    case STEP_OPCODE:
        report_error(w->report, "pickle: data ended at byte %" PRIu64 " before STOP", w->offset);
        break;
    case STEP_RAW_PAD_LENGTH:
    case STEP_RAW_PAD:
    case STEP_RAW_DATA:
    case STEP_RAW_PICKLE:
        report_error(w->report,
                     "pickle: data ended at byte %" PRIu64
                     " inside the data of a joblib array (its BUILD at byte %" PRIu64 ")",
                     w->offset, w->op_offset);
        break;
    default:
        report_error(w->report,
                     "pickle: data ended at byte %" PRIu64 " inside %s (opcode at byte %" PRIu64
                     ")",
                     w->offset, op_name(w->op), w->op_offset);
        break;
    }
    w->step = STEP_FAILED;
    return false;
}

bool pickle_walker_joblib(const struct pickle_walker *w)
{
    return w->joblib;
}

/* Marked items go into the container below their mark, as APPENDS/SETITEMS would have
 * done, or go (a tuple's items, a call's arguments, unfinished); false when out of memory. */
static bool settle_mark(struct pickle_walker *w)
{
    size_t mark = w->marks[--w->nmarks];
    struct pyobj *target = mark ? w->stack.at[mark - 1] : NULL;
    struct pyvec *map = target ? pyobj_map(target) : NULL;
    struct pyvec *items = target ? pyobj_items(target) : NULL;
    size_t n = w->stack.len - mark;
    bool ok = map     ? pyvec_extend(w->arena, map, w->stack.at + mark, n - n % 2)
              : items ? pyvec_extend(w->arena, items, w->stack.at + mark, n)
                      : true;
    w->stack.len = mark;
    return ok;
}

struct pyobj *pickle_walker_partial(struct pickle_walker *w)
{
    if (w->raw) w->raw->u.array.problem = "the data ended inside the array";
    if (w->raw) w->raw->u.array.streamed = NULL, w->raw->u.array.rows = NULL;
    while (w->nmarks)
        if (!settle_mark(w)) return NULL;
    /* an object and the state dict its BUILD did not reach */
    if (w->stack.len == 2 && w->stack.at[0]->kind == PY_OBJECT && w->stack.at[1]->kind == PY_DICT &&
        !set_state(w, w->stack.at[0], w->stack.at[1]))
        return NULL;
    return w->stack.len ? w->stack.at[0] : NULL;
}

enum pickle_state pickle_walker_state(const struct pickle_walker *w)
{
    if (w->step == STEP_STOPPED) return PICKLE_STOPPED;
    if (w->step == STEP_FAILED) return PICKLE_FAILED;
    return PICKLE_RUNNING;
}

/* A walker; with arena NULL it has one of its own, else it borrows that one. */
static struct pickle_walker *walker_new(struct report *r, pickle_on_stop on_stop, void *ctx,
                                        struct pyarena *arena)
{
    struct pickle_walker *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->own_arena = !arena;
    w->arena = arena ? arena : pyarena_new(PYOBJ_MEMORY_CAP);
    if (!w->arena) {
        free(w);
        return NULL;
    }
    w->report = r;
    w->on_stop = on_stop;
    w->ctx = ctx;
    w->step = STEP_OPCODE;
    return w;
}

struct pickle_walker *pickle_walker_new(struct report *r, pickle_on_stop on_stop, void *ctx)
{
    return walker_new(r, on_stop, ctx, NULL);
}

void pickle_walker_set_reduce_hook(struct pickle_walker *w, pickle_reduce_hook hook, void *ctx)
{
    w->reduce_hook = hook;
    w->hook_ctx = ctx;
}

void pickle_walker_free(struct pickle_walker *w)
{
    if (!w) return;
    pickle_walker_free(w->nested);
    free(w->reader);
    free(w->row_block);
    if (w->own_arena) pyarena_free(w->arena);
    free(w->line);
    free(w);
}

/* ---- the "pickle" parser: a walker whose root is flattened into the report ---- */

struct pickle_parser {
    struct parser base;
    struct report *report;
    struct pickle_walker *walker; /* freed as soon as the pickle is done */
    bool whole;                   /* reached STOP */
};

static void flatten_root(void *ctx, struct pyobj *root)
{
    struct pickle_parser *p = ctx;
    flatten(p->report, root, NULL, NULL);
}

/* The walk ended: whole, or cut short, when what was built before the break is still
 * worth reporting (the hyperparameters pickled before a model's first array). */
static void end_walk(struct pickle_parser *p)
{
    p->whole = pickle_walker_finish(p->walker);
    struct pyobj *partial = p->whole ? NULL : pickle_walker_partial(p->walker);
    if (partial) flatten(p->report, partial, NULL, NULL);
    pickle_walker_free(p->walker);
    p->walker = NULL;
}

/* Everything after STOP is ignored: the pickle ends there. */
static void pickle_feed(struct parser *base, const uint8_t *data, size_t len)
{
    struct pickle_parser *p = (struct pickle_parser *)base;
    if (!p->walker) return;
    pickle_walker_feed(p->walker, data, len);
    if (pickle_walker_joblib(p->walker)) base->format = "joblib";
    if (pickle_walker_state(p->walker) != PICKLE_RUNNING) end_walk(p);
}

static bool pickle_finish(struct parser *base)
{
    struct pickle_parser *p = (struct pickle_parser *)base;
    if (p->walker) end_walk(p);
    return p->whole;
}

static void pickle_destroy(struct parser *base)
{
    struct pickle_parser *p = (struct pickle_parser *)base;
    pickle_walker_free(p->walker);
    free(p);
}

/* Arrays inside a pickle are small enough to be read whole: options->sample is not used. */
struct parser *parser_pickle_new(struct report *r, const struct parse_options *o)
{
    (void)o;
    struct pickle_parser *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->walker = pickle_walker_new(r, flatten_root, p);
    if (!p->walker) {
        free(p);
        return NULL;
    }
    p->report = r;
    p->base.format = "pickle";
    p->base.feed = pickle_feed;
    p->base.finish = pickle_finish;
    p->base.destroy = pickle_destroy;
    p->base.tolerates_rewrites = false;
    return &p->base;
}
