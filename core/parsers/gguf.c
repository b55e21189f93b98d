/* gguf.c — the "gguf" parser: llama.cpp / GGML model files, versions 2 and 3.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 tensor count, u64 key-value count;
 * the key-value pairs (string key, u32 value type, value); the tensor infos (string
 * name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset); padding to the next
 * multiple of general.alignment (default 32); the data section, each tensor at data
 * start + its offset. A string is a u64 length and that many bytes.
 *
 * Metadata can be large (a tokenizer's vocabulary is an array of 150,000 strings), so
 * nothing is buffered beyond the field being read: the parser is a state machine over
 * fixed-size fields and strings, and strings longer than GGUF_MAX_NAME are counted
 * down, not kept.
 *
 * What is reported:
 * - scalars under their key; strings up to the record's 256 bytes;
 * - arrays of numbers (or bools): up to GGUF_LIST_VALUES items as values KEY.0, KEY.1,
 *   ...; longer ones as a tensor named KEY with statistics;
 * - arrays of strings: the first GGUF_LIST_VALUES items as values KEY.0 ...; the rest
 *   is skipped (a vocabulary is not a metric);
 * - arrays of arrays (the specification allows any nesting) are stepped over, with a
 *   stack of what is left at each level, and not reported;
 * - tensors by name, their shape in NumPy order: GGML's ne[0] is the fastest-varying
 *   dimension, so the reported shape is ne reversed (ne = [4096, 32000] is [32000, 4096]).
 *   F32, F16, BF16, F64 and I8-I64 get statistics; quantized types (Q8_0, Q4_K, IQ2_XXS,
 *   ...) are reported with GGML's type name and shape only. Their byte sizes come from
 *   the block layouts below; a type not in the table is reported without data. As every
 *   tensor's offset is absolute, an unknown type does not stop the others from being read.
 * Tensors are streamed in offset order whatever the order of their infos.
 */
#include "parser.h"
#include "tensor.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAX_TENSORS       1000000
#define GGUF_MAX_KV            1000000
#define GGUF_MAX_NAME          511 /* keys and tensor names; GGML's own names fit in 63 */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_LIST_VALUES       8
#define GGUF_MAX_NESTING       16 /* arrays of arrays stepped over, levels deep */
#define HEADER_BYTES           24 /* magic, version, tensor count, kv count */

enum value_type {
    T_U8,
    T_I8,
    T_U16,
    T_I16,
    T_U32,
    T_I32,
    T_F32,
    T_BOOL,
    T_STRING,
    T_ARRAY,
    T_U64,
    T_I64,
    T_F64,
    T_COUNT
};

/* Fixed-size value types; size 0 for strings and arrays. */
static const struct {
    uint8_t size;
    bool is_signed;
    enum dtype dtype;
} value_types[T_COUNT] = {
    [T_U8] = {1, false, DTYPE_U8},   [T_I8] = {1, true, DTYPE_I8},
    [T_U16] = {2, false, DTYPE_U16}, [T_I16] = {2, true, DTYPE_I16},
    [T_U32] = {4, false, DTYPE_U32}, [T_I32] = {4, true, DTYPE_I32},
    [T_F32] = {4, false, DTYPE_F32}, [T_BOOL] = {1, false, DTYPE_BOOL},
    [T_U64] = {8, false, DTYPE_U64}, [T_I64] = {8, true, DTYPE_I64},
    [T_F64] = {8, false, DTYPE_F64},
};

/* GGML tensor types: name as reported, elements per block, bytes per block (ggml's
 * type_traits; K-quants and most IQ types have blocks of 256). Gaps are types GGML
 * retired. */
static const struct ggml_type {
    const char *name;
    uint16_t block, size;
    bool readable;
    enum dtype dtype;
} ggml_types[] = {
    [0] = {"float32", 1, 4, true, DTYPE_F32},
    [1] = {"float16", 1, 2, true, DTYPE_F16},
    [2] = {"q4_0", 32, 18, false, 0},
    [3] = {"q4_1", 32, 20, false, 0},
    [6] = {"q5_0", 32, 22, false, 0},
    [7] = {"q5_1", 32, 24, false, 0},
    [8] = {"q8_0", 32, 34, false, 0},
    [9] = {"q8_1", 32, 36, false, 0},
    [10] = {"q2_K", 256, 84, false, 0},
    [11] = {"q3_K", 256, 110, false, 0},
    [12] = {"q4_K", 256, 144, false, 0},
    [13] = {"q5_K", 256, 176, false, 0},
    [14] = {"q6_K", 256, 210, false, 0},
    [15] = {"q8_K", 256, 292, false, 0},
    [16] = {"iq2_xxs", 256, 66, false, 0},
    [17] = {"iq2_xs", 256, 74, false, 0},
    [18] = {"iq3_xxs", 256, 98, false, 0},
    [19] = {"iq1_s", 256, 50, false, 0},
    [20] = {"iq4_nl", 32, 18, false, 0},
    [21] = {"iq3_s", 256, 110, false, 0},
    [22] = {"iq2_s", 256, 82, false, 0},
    [23] = {"iq4_xs", 256, 136, false, 0},
    [24] = {"int8", 1, 1, true, DTYPE_I8},
    [25] = {"int16", 1, 2, true, DTYPE_I16},
    [26] = {"int32", 1, 4, true, DTYPE_I32},
    [27] = {"int64", 1, 8, true, DTYPE_I64},
    [28] = {"float64", 1, 8, true, DTYPE_F64},
    [29] = {"iq1_m", 256, 56, false, 0},
    [30] = {"bfloat16", 1, 2, true, DTYPE_BF16},
    [34] = {"tq1_0", 256, 54, false, 0},
    [35] = {"tq2_0", 256, 66, false, 0},
    [39] = {"mxfp4", 32, 17, false, 0},
};

enum state {
    HEADER,
    KEY_LENGTH,
    KEY,
    VALUE_TYPE,
    VALUE,
    STRING_LENGTH,
    STRING,
    ARRAY_HEAD,
    ITEM,
    ITEM_STRING_LENGTH,
    ITEM_STRING,
    ARRAY_TENSOR,
    NESTED_HEAD,          /* arrays of arrays: an inner array's type and count */
    NESTED_STRING_LENGTH, /* a string inside one */
    NESTED_SKIP,          /* bytes stepped over inside one */
    NAME_LENGTH,
    NAME,
    DIMS_COUNT,
    DIM,
    TYPE_AND_OFFSET,
    DATA,
    FAILED
};

/* One level of arrays of arrays being stepped over. */
struct nest_level {
    enum value_type type; /* of its items */
    uint64_t left;        /* items still to step over */
};

struct gguf {
    struct parser base;
    struct report *report;
    const struct parse_options *options;
    enum state state;
    uint64_t offset;             /* file offset of the next byte */
    uint64_t field_offset;       /* where the field being read began, for errors */
    uint8_t field[HEADER_BYTES]; /* the longest fixed-size field is the header */
    size_t field_have;
    uint64_t text_len, text_have; /* the string being read; its first bytes in text */
    char text[GGUF_MAX_NAME + 1];

    uint64_t n_tensors, n_kv, kv_done, infos_done;
    uint64_t alignment;
    char key[GGUF_MAX_NAME + 1];
    enum value_type value_type; /* of the value, or of the array's items */
    uint64_t items, item;       /* array length, next item's index */
    struct nest_level nest[GGUF_MAX_NESTING];
    unsigned nesting;             /* levels of arrays of arrays open */
    uint64_t skip_left;           /* bytes NESTED_SKIP still steps over */
    struct tensor_reader array;   /* a long numeric array; last: it ends in a large buffer */
    char name[GGUF_MAX_NAME + 1]; /* the tensor info being read */
    uint32_t dims, dim;
    int64_t ne[TENSOR_MAX_DIMS];
    struct tensor_sequence tensors;
};

static void fail(struct gguf *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct gguf *g, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    report_error(g->report, "gguf: %s at byte %" PRIu64, why, g->field_offset);
    g->state = FAILED;
}

static uint64_t load_le(const uint8_t *p, size_t size)
{
    uint64_t v = 0;
    for (size_t i = size; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static void advance(struct gguf *g, const uint8_t **data, size_t *len, size_t n)
{
    *data += n;
    *len -= n;
    g->offset += n;
}

/* Gathers a field of `need` bytes across feeds; true once it is whole in g->field. */
static bool collect(struct gguf *g, const uint8_t **data, size_t *len, size_t need)
{
    if (g->field_have == 0) g->field_offset = g->offset;
    size_t n = need - g->field_have < *len ? need - g->field_have : *len;
    memcpy(g->field + g->field_have, *data, n);
    g->field_have += n;
    advance(g, data, len, n);
    if (g->field_have < need) return false;
    g->field_have = 0;
    return true;
}

/* Counts a string down, keeping its first GGUF_MAX_NAME bytes; true once it is over. */
static bool collect_string(struct gguf *g, const uint8_t **data, size_t *len)
{
    uint64_t left = g->text_len - g->text_have;
    size_t n = left < *len ? (size_t)left : *len;
    if (g->text_have < GGUF_MAX_NAME) {
        size_t keep =
            GGUF_MAX_NAME - (size_t)g->text_have < n ? GGUF_MAX_NAME - (size_t)g->text_have : n;
        memcpy(g->text + g->text_have, *data, keep);
    }
    g->text_have += n;
    advance(g, data, len, n);
    if (g->text_have < g->text_len) return false;
    g->text[g->text_len < GGUF_MAX_NAME ? g->text_len : GGUF_MAX_NAME] = '\0';
    return true;
}

/* Whether the whole string is in g->text. */
static bool text_whole(const struct gguf *g)
{
    return g->text_len <= GGUF_MAX_NAME;
}

/* ---- Values ---------------------------------------------------------------------- */

static void report_value(struct gguf *g, const char *key, enum value_type t, const uint8_t *b)
{
    unsigned size = value_types[t].size;
    uint64_t raw = load_le(b, size);
    unsigned shift = 64 - 8 * size;
    float f;
    double d;
    uint32_t raw32 = (uint32_t)raw;

    switch (t) {
    case T_F32:
        memcpy(&f, &raw32, sizeof f);
        return report_float(g->report, key, f);
    case T_F64:
        memcpy(&d, &raw, sizeof d);
        return report_float(g->report, key, d);
    case T_BOOL:
        return report_bool(g->report, key, raw != 0);
    default:
        if (value_types[t].is_signed)
            return report_int(g->report, key, (int64_t)(raw << shift) >> shift);
        if (raw > INT64_MAX) return report_float(g->report, key, (double)raw);
        return report_int(g->report, key, (int64_t)raw);
    }
}

static void set_alignment(struct gguf *g)
{
    uint64_t v = load_le(g->field, 4);
    if (g->value_type == T_U32 && v != 0 && (v & (v - 1)) == 0) {
        g->alignment = v;
        return;
    }
    report_error(g->report,
                 "gguf: general.alignment is not a power-of-two u32 at byte %" PRIu64 "; using %d",
                 g->field_offset, GGUF_DEFAULT_ALIGNMENT);
}

static void begin_info(struct gguf *g);

static void begin_kv(struct gguf *g)
{
    if (g->kv_done == g->n_kv) return begin_info(g);
    g->state = KEY_LENGTH;
}

static void end_kv(struct gguf *g)
{
    g->kv_done++;
    begin_kv(g);
}

static void string_done(struct gguf *g);

static void begin_string(struct gguf *g, uint64_t length, enum state state)
{
    g->text_len = length;
    g->text_have = 0;
    g->text[0] = '\0'; /* an empty string is never collected */
    g->state = state;
    if (length == 0) string_done(g);
}

static void begin_item(struct gguf *g)
{
    if (g->item == g->items) return end_kv(g);
    g->state = g->value_type == T_STRING ? ITEM_STRING_LENGTH : ITEM;
}

static void item_key(const struct gguf *g, char *out, size_t size)
{
    snprintf(out, size, "%s.%" PRIu64, g->key, g->item);
}

static void item_done(struct gguf *g)
{
    char key[GGUF_MAX_NAME + 24];
    item_key(g, key, sizeof key);
    report_value(g, key, g->value_type, g->field);
    g->item++;
    begin_item(g);
}

static void item_string_done(struct gguf *g)
{
    char key[GGUF_MAX_NAME + 24];
    if (g->item < GGUF_LIST_VALUES && text_whole(g)) {
        item_key(g, key, sizeof key);
        report_string(g->report, key, g->text, (size_t)g->text_len);
    }
    g->item++;
    begin_item(g);
}

static void value_type_read(struct gguf *g)
{
    uint32_t t = (uint32_t)load_le(g->field, 4);
    if (t >= T_COUNT) return fail(g, "value of %s has unknown type %" PRIu32, g->key, t);
    g->value_type = t;
    g->state = t == T_STRING ? STRING_LENGTH : t == T_ARRAY ? ARRAY_HEAD : VALUE;
}

static void value_read(struct gguf *g)
{
    if (strcmp(g->key, "general.alignment") == 0) set_alignment(g);
    report_value(g, g->key, g->value_type, g->field);
    end_kv(g);
}

/* ---- Arrays of arrays: stepped over ------------------------------------------------ */

/* Moves to the next thing to step over inside arrays of arrays, or past the whole value. */
static void next_nested(struct gguf *g)
{
    while (g->nesting > 0) {
        struct nest_level *level = &g->nest[g->nesting - 1];
        if (level->left == 0) {
            g->nesting--;
            continue;
        }
        if (level->type == T_ARRAY || level->type == T_STRING) {
            level->left--;
            g->state = level->type == T_ARRAY ? NESTED_HEAD : NESTED_STRING_LENGTH;
            return;
        }
        /* Fixed-size items: all of this level's at once. */
        if (__builtin_mul_overflow(level->left, (uint64_t)value_types[level->type].size,
                                   &g->skip_left))
            return fail(g, "array in %s of %" PRIu64 " items", g->key, level->left);
        level->left = 0;
        g->state = NESTED_SKIP;
        return;
    }
    end_kv(g);
}

static void open_nested(struct gguf *g, uint32_t type, uint64_t count)
{
    if (type >= T_COUNT) return fail(g, "array in %s holds an unknown type", g->key);
    if (g->nesting == GGUF_MAX_NESTING)
        return fail(g, "arrays in %s nested over %d levels", g->key, GGUF_MAX_NESTING);
    g->nest[g->nesting].type = type;
    g->nest[g->nesting++].left = count;
    next_nested(g);
}

static void nested_head_read(struct gguf *g)
{
    open_nested(g, (uint32_t)load_le(g->field, 4), load_le(g->field + 4, 8));
}

static void nested_skip(struct gguf *g, const uint8_t **data, size_t *len)
{
    size_t n = g->skip_left < *len ? (size_t)g->skip_left : *len;
    advance(g, data, len, n);
    g->skip_left -= n;
    if (g->skip_left == 0) next_nested(g);
}

static void array_head_read(struct gguf *g)
{
    uint32_t t = (uint32_t)load_le(g->field, 4);
    uint64_t count = load_le(g->field + 4, 8);
    if (t == T_ARRAY) return open_nested(g, t, count);
    if (t >= T_COUNT) return fail(g, "array %s holds an unknown type", g->key);
    g->value_type = t;
    g->items = count;
    g->item = 0;
    if (t == T_STRING || count <= GGUF_LIST_VALUES) return begin_item(g);
    if (count > INT64_MAX) return fail(g, "array %s of %" PRIu64 " items", g->key, count);
    int64_t shape[1] = {(int64_t)count};
    if (!tensor_reader_init(&g->array, g->report, g->key, value_types[t].dtype, shape, 1,
                            g->options))
        return fail(g, "array %s is too large", g->key);
    g->state = ARRAY_TENSOR;
}

/* ---- Tensor infos ------------------------------------------------------------------- */

static void start_data(struct gguf *g);

static void begin_info(struct gguf *g)
{
    if (g->infos_done == g->n_tensors) return start_data(g);
    g->state = NAME_LENGTH;
}

static const struct ggml_type *find_ggml_type(uint32_t type)
{
    if (type >= sizeof ggml_types / sizeof ggml_types[0] || !ggml_types[type].name) return NULL;
    return &ggml_types[type];
}

/* Sets e's place, dtype and size from the info's type t (NULL: unknown, no data);
 * returns NULL, or why the tensor cannot be read at all. */
static const char *place_tensor(const struct gguf *g, const struct ggml_type *t, uint64_t offset,
                                struct tensor_entry *e)
{
    uint64_t elements;
    if (!tensor_shape_elements(e->shape, e->ndim, &elements))
        return "negative dimension, or more than 2^64 elements";
    if (offset % g->alignment != 0 || offset > INT64_MAX) return "offset not aligned";
    e->begin = offset;
    if (!t) return NULL;
    if ((e->ndim ? g->ne[0] : 1) % t->block != 0) return "first dimension not a whole block";
    if (__builtin_mul_overflow(elements / t->block, (uint64_t)t->size, &e->nbytes))
        return "more than 2^64 bytes";
    e->readable = t->readable;
    e->dtype = t->dtype;
    snprintf(e->dtype_name, sizeof e->dtype_name, "%s", t->name);
    return NULL;
}

static void info_done(struct gguf *g)
{
    uint32_t type = (uint32_t)load_le(g->field, 4);
    uint64_t offset = load_le(g->field + 4, 8);
    const struct ggml_type *t = find_ggml_type(type);
    struct tensor_entry e = {.name = g->name, .ndim = (int)g->dims};
    for (uint32_t i = 0; i < g->dims; i++)
        e.shape[i] = g->ne[g->dims - 1 - i];

    const char *why = place_tensor(g, t, offset, &e);
    if (why) {
        report_error(g->report, "gguf: tensor %s: %s", g->name, why);
    } else {
        if (!t) {
            snprintf(e.dtype_name, sizeof e.dtype_name, "ggml_type_%" PRIu32, type);
            report_error(g->report, "gguf: tensor %s: unknown ggml type %" PRIu32 ", data not read",
                         g->name, type);
        }
        if (!tensor_sequence_add(&g->tensors, &e)) return fail(g, "out of memory");
    }
    g->infos_done++;
    begin_info(g);
}

static void dims_count_read(struct gguf *g)
{
    g->dims = (uint32_t)load_le(g->field, 4);
    g->dim = 0;
    if (g->dims > TENSOR_MAX_DIMS)
        return fail(g, "tensor %s has %" PRIu32 " dimensions", g->name, g->dims);
    g->state = g->dims ? DIM : TYPE_AND_OFFSET;
}

static void dim_read(struct gguf *g)
{
    /* A value over INT64_MAX turns negative here, which place_tensor rejects. */
    g->ne[g->dim++] = (int64_t)load_le(g->field, 8);
    if (g->dim == g->dims) g->state = TYPE_AND_OFFSET;
}

/* ---- Strings, header, data -------------------------------------------------------------- */

static void string_done(struct gguf *g)
{
    switch (g->state) {
    case KEY:
        memcpy(g->key, g->text, sizeof g->key);
        g->state = VALUE_TYPE;
        return;
    case STRING:
        if (text_whole(g)) report_string(g->report, g->key, g->text, (size_t)g->text_len);
        return end_kv(g);
    case ITEM_STRING:
        return item_string_done(g);
    default: /* NAME */
        memcpy(g->name, g->text, sizeof g->name);
        g->state = DIMS_COUNT;
        return;
    }
}

static void length_read(struct gguf *g)
{
    uint64_t length = load_le(g->field, 8);
    switch (g->state) {
    case KEY_LENGTH:
        if (length > GGUF_MAX_NAME) return fail(g, "key of %" PRIu64 " bytes", length);
        return begin_string(g, length, KEY);
    case STRING_LENGTH:
        return begin_string(g, length, STRING);
    case ITEM_STRING_LENGTH:
        return begin_string(g, length, ITEM_STRING);
    case NESTED_STRING_LENGTH:
        g->skip_left = length;
        g->state = NESTED_SKIP;
        if (length == 0) next_nested(g);
        return;
    default: /* NAME_LENGTH */
        if (length > GGUF_MAX_NAME) return fail(g, "tensor name of %" PRIu64 " bytes", length);
        return begin_string(g, length, NAME);
    }
}

static void header_read(struct gguf *g)
{
    uint32_t version = (uint32_t)load_le(g->field + 4, 4);
    if (memcmp(g->field, "GGUF", 4) != 0) return fail(g, "not a GGUF file");
    if (version == 2u << 24 || version == 3u << 24) return fail(g, "big-endian GGUF is not read");
    if (version != 2 && version != 3)
        return fail(g, "GGUF version %" PRIu32 " is not read", version);
    g->n_tensors = load_le(g->field + 8, 8);
    g->n_kv = load_le(g->field + 16, 8);
    if (g->n_tensors > GGUF_MAX_TENSORS)
        return fail(g, "tensor count %" PRIu64 " over the cap of %d", g->n_tensors,
                    GGUF_MAX_TENSORS);
    if (g->n_kv > GGUF_MAX_KV)
        return fail(g, "key-value count %" PRIu64 " over the cap of %d", g->n_kv, GGUF_MAX_KV);
    begin_kv(g);
}

static void feed_data(struct gguf *g, const uint8_t *data, size_t len)
{
    tensor_sequence_feed(&g->tensors, g->report, g->options, &g->offset, data, len);
}

static void start_data(struct gguf *g)
{
    uint64_t data_start = (g->offset + g->alignment - 1) / g->alignment * g->alignment;
    for (size_t i = 0; i < g->tensors.count; i++)
        g->tensors.entries[i].begin += data_start;
    tensor_sequence_sort(&g->tensors, g->report, "gguf");
    g->state = DATA;
    feed_data(g, NULL, 0);
}

static void array_tensor_feed(struct gguf *g, const uint8_t **data, size_t *len)
{
    advance(g, data, len, tensor_reader_feed(&g->array, *data, *len));
    if (!tensor_reader_done(&g->array)) return;
    tensor_reader_report(&g->array, g->report);
    end_kv(g);
}

/* One step: a field, a piece of a string or of array data, or all the data section. */
static void step(struct gguf *g, const uint8_t **data, size_t *len)
{
    switch (g->state) {
    case HEADER:
        if (collect(g, data, len, HEADER_BYTES)) header_read(g);
        return;
    case KEY_LENGTH:
    case STRING_LENGTH:
    case ITEM_STRING_LENGTH:
    case NESTED_STRING_LENGTH:
    case NAME_LENGTH:
        if (collect(g, data, len, 8)) length_read(g);
        return;
    case KEY:
    case STRING:
    case ITEM_STRING:
    case NAME:
        if (collect_string(g, data, len)) string_done(g);
        return;
    case VALUE_TYPE:
        if (collect(g, data, len, 4)) value_type_read(g);
        return;
    case VALUE:
        if (collect(g, data, len, value_types[g->value_type].size)) value_read(g);
        return;
    case ARRAY_HEAD:
        if (collect(g, data, len, 12)) array_head_read(g);
        return;
    case ITEM:
        if (collect(g, data, len, value_types[g->value_type].size)) item_done(g);
        return;
    case ARRAY_TENSOR:
        return array_tensor_feed(g, data, len);
    case NESTED_HEAD:
        if (collect(g, data, len, 12)) nested_head_read(g);
        return;
    case NESTED_SKIP:
        return nested_skip(g, data, len);
    case DIMS_COUNT:
        if (collect(g, data, len, 4)) dims_count_read(g);
        return;
    case DIM:
        if (collect(g, data, len, 8)) dim_read(g);
        return;
    case TYPE_AND_OFFSET:
        if (collect(g, data, len, 12)) info_done(g);
        return;
    case DATA:
        feed_data(g, *data, *len);
        *len = 0;
        return;
    case FAILED:
        *len = 0;
        return;
    }
}

static void gguf_feed(struct parser *p, const uint8_t *data, size_t len)
{
    struct gguf *g = (struct gguf *)p;
    while (len > 0)
        step(g, &data, &len);
}

static bool gguf_finish(struct parser *p)
{
    struct gguf *g = (struct gguf *)p;
    if (g->state == FAILED) return false;
    if (g->state == DATA) return tensor_sequence_finish(&g->tensors, g->report, "gguf", g->offset);
    const char *where = g->state == HEADER     ? "the header"
                        : g->kv_done < g->n_kv ? "the key-value pairs"
                                               : "the tensor infos";
    report_error(g->report, "gguf: data ended at byte %" PRIu64 " inside %s", g->offset, where);
    return false;
}

static void gguf_destroy(struct parser *p)
{
    struct gguf *g = (struct gguf *)p;
    tensor_sequence_free(&g->tensors);
    free(g);
}

struct parser *parser_gguf_new(struct report *r, const struct parse_options *o)
{
    struct gguf *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->base = (struct parser){
        .format = "gguf", .feed = gguf_feed, .finish = gguf_finish, .destroy = gguf_destroy};
    g->report = r;
    g->options = o;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    return &g->base;
}
