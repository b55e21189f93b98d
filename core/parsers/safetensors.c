/* safetensors.c — the "safetensors" parser.
 *
 * Layout: a little-endian u64 N, N bytes of JSON (name → {dtype, shape, data_offsets
 * [begin, end)} plus an optional "__metadata__" of string → string), then the data
 * section; a tensor's bytes are at file offset 8 + N + begin. The header is buffered
 * (it has to be whole to be parsed) and is capped at SAFETENSORS_MAX_HEADER bytes,
 * below the specification's 100,000,000: real headers are a few hundred kilobytes, and
 * this parser runs inside other people's programs. The buffer grows with the bytes
 * that actually arrive, not with the N the file claims.
 *
 * Writers need not store tensors in header order, so the entries are sorted by begin
 * and the data is streamed in file order, skipping gaps. An entry that is malformed,
 * whose byte size disagrees with its dtype and shape, or that overlaps the one before
 * it is reported as an error and skipped; the others are still read.
 */
#include "parser.h"
#include "../jsontext.h"
#include "tensor.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAFETENSORS_MAX_HEADER (64u << 20)
#define HEADER_FIRST_ALLOC     4096
#define MAX_EXACT_DOUBLE       9007199254740992.0 /* 2^53: JSON numbers are doubles */

static const struct {
    const char *tag;
    enum dtype dtype;
} readable_dtypes[] = {
    {"F64", DTYPE_F64},   {"F32", DTYPE_F32},         {"F16", DTYPE_F16},
    {"BF16", DTYPE_BF16}, {"F8_E4M3", DTYPE_F8_E4M3}, {"F8_E5M2", DTYPE_F8_E5M2},
    {"I64", DTYPE_I64},   {"I32", DTYPE_I32},         {"I16", DTYPE_I16},
    {"I8", DTYPE_I8},     {"U64", DTYPE_U64},         {"U32", DTYPE_U32},
    {"U16", DTYPE_U16},   {"U8", DTYPE_U8},           {"BOOL", DTYPE_BOOL},
};

enum state { READ_LENGTH, READ_HEADER, READ_DATA, FAILED };

struct safetensors {
    struct parser base;
    struct report *report;
    const struct parse_options *options;
    enum state state;
    uint64_t offset; /* file offset of the next byte */
    uint8_t length_bytes[8];
    size_t length_have;
    uint64_t header_len;
    char *header;
    size_t header_have, header_cap;
    struct tensor_sequence tensors;
};

static void fail(struct safetensors *s, const char *why)
{
    report_error(s->report, "safetensors: %s at byte %" PRIu64, why, s->offset);
    s->state = FAILED;
}

/* ---- Header entries ---------------------------------------------------------------- */

static bool json_count(const cJSON *n, uint64_t *out)
{
    if (!cJSON_IsNumber(n)) return false;
    double v = n->valuedouble;
    if (!(v >= 0 && v <= MAX_EXACT_DOUBLE) || v != (double)(uint64_t)v) return false;
    *out = (uint64_t)v;
    return true;
}

/* Other dtypes (C64, F8_E8M0, F4, ...) keep their tag, in lower case, without statistics. */
static void set_dtype(struct tensor_entry *e, const char *tag)
{
    for (size_t i = 0; i < sizeof readable_dtypes / sizeof readable_dtypes[0]; i++) {
        if (strcmp(tag, readable_dtypes[i].tag) != 0) continue;
        e->readable = true;
        e->dtype = readable_dtypes[i].dtype;
        return;
    }
    size_t i = 0;
    for (; tag[i] && i + 1 < sizeof e->dtype_name; i++)
        e->dtype_name[i] = (char)tolower((unsigned char)tag[i]);
    e->dtype_name[i] = '\0';
}

/* Fills e from one header entry, whose data follows a header of header_len bytes;
 * NULL, or what is wrong with the entry. */
static const char *read_entry(const cJSON *item, uint64_t header_len, struct tensor_entry *e)
{
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    const cJSON *dim;
    uint64_t elements, nbytes, begin, end, v;

    if (!cJSON_IsObject(item)) return "is not an object";
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offsets))
        return "needs dtype, shape and data_offsets";
    set_dtype(e, dtype->valuestring);
    if (cJSON_GetArraySize(shape) > TENSOR_MAX_DIMS) return "too many dimensions";
    cJSON_ArrayForEach(dim, shape)
    {
        if (!json_count(dim, &v)) return "shape holds a negative or non-integral dimension";
        e->shape[e->ndim++] = (int64_t)v;
    }
    if (cJSON_GetArraySize(offsets) != 2 || !json_count(offsets->child, &begin) ||
        !json_count(offsets->child->next, &end) || end < begin)
        return "data_offsets is not [begin, end] with begin <= end";
    if (!tensor_shape_elements(e->shape, e->ndim, &elements)) return "shape's size overflows";
    if (e->readable &&
        (__builtin_mul_overflow(elements, dtype_size(e->dtype), &nbytes) || nbytes != end - begin))
        return "data_offsets disagree with dtype and shape";
    e->begin = 8 + header_len + begin;
    e->nbytes = end - begin;
    return NULL;
}

/* ---- __metadata__ ------------------------------------------------------------------ */

/* Whether s is written like a decimal number (strtod alone would also take "nan",
 * "inf" and hexadecimal). */
static bool looks_decimal(const char *s)
{
    bool digit = false;
    for (; *s; s++) {
        if (!strchr("+-0123456789.eE", *s)) return false;
        digit |= isdigit((unsigned char)*s) != 0;
    }
    return digit;
}

static void report_metadata_string(struct report *r, const char *key, const char *text)
{
    char *end;
    if (looks_decimal(text)) {
        if (!strpbrk(text, ".eE")) {
            errno = 0;
            long long i = strtoll(text, &end, 10);
            if (*end == '\0' && errno == 0) return report_int(r, key, i);
        }
        locale_t c_locale = json_c_locale();
        double d = c_locale ? strtod_l(text, &end, c_locale) : strtod(text, &end);
        if (*end == '\0') return report_float(r, key, d);
    }
    report_string(r, key, text, strlen(text));
}

static void report_metadata(struct safetensors *s, const cJSON *metadata)
{
    const cJSON *item;
    char key[1024];
    if (!cJSON_IsObject(metadata)) {
        report_error(s->report, "safetensors: __metadata__ is not an object");
        return;
    }
    cJSON_ArrayForEach(item, metadata)
    {
        if ((size_t)snprintf(key, sizeof key, "__metadata__.%s", item->string) >= sizeof key)
            report_error(s->report, "safetensors: a __metadata__ key is over %zu bytes",
                         sizeof key);
        else if (cJSON_IsString(item))
            report_metadata_string(s->report, key, item->valuestring);
        else if (cJSON_IsNumber(item))
            report_float(s->report, key, item->valuedouble);
        else
            report_error(s->report, "safetensors: %s is not a string", key);
    }
}

/* ---- The header as a whole ----------------------------------------------------------- */

/* The header's tensors go to the sequence, its metadata straight to the report. */
static bool collect_entries(struct safetensors *s, const cJSON *root)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        struct tensor_entry e = {.name = item->string};
        if (strcmp(item->string, "__metadata__") == 0) {
            report_metadata(s, item);
            continue;
        }
        const char *why = read_entry(item, s->header_len, &e);
        if (why)
            report_error(s->report, "safetensors: header entry %s: %s", item->string, why);
        else if (!tensor_sequence_add(&s->tensors, &e))
            return false;
    }
    tensor_sequence_sort(&s->tensors, s->report, "safetensors");
    return true;
}

static void feed_data(struct safetensors *s, const uint8_t *data, size_t len)
{
    tensor_sequence_feed(&s->tensors, s->report, s->options, &s->offset, data, len);
}

static void parse_header(struct safetensors *s)
{
    cJSON *root = cJSON_ParseWithLength(s->header, s->header_have);
    free(s->header);
    s->header = NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(s, "header is not a JSON object");
    }
    bool ok = collect_entries(s, root);
    cJSON_Delete(root);
    if (!ok) return fail(s, "out of memory");
    s->state = READ_DATA;
    feed_data(s, NULL, 0); /* empty tensors at the very start */
}

static size_t take_length(struct safetensors *s, const uint8_t *data, size_t len)
{
    size_t n = 8 - s->length_have < len ? 8 - s->length_have : len;
    memcpy(s->length_bytes + s->length_have, data, n);
    s->length_have += n;
    s->offset += n;
    if (s->length_have < 8) return n;
    for (int i = 7; i >= 0; i--)
        s->header_len = s->header_len << 8 | s->length_bytes[i];
    if (s->header_len < 2 || s->header_len > SAFETENSORS_MAX_HEADER) {
        char why[96];
        snprintf(why, sizeof why, "header length %" PRIu64 " outside [2, %u]", s->header_len,
                 SAFETENSORS_MAX_HEADER);
        fail(s, why);
        return n;
    }
    s->state = READ_HEADER;
    return n;
}

/* The buffer grows with the bytes that arrive, up to the declared length. */
static size_t take_header(struct safetensors *s, const uint8_t *data, size_t len)
{
    size_t left = (size_t)(s->header_len - s->header_have);
    size_t n = left < len ? left : len;
    if (s->header_have + n > s->header_cap) {
        size_t cap = s->header_cap ? s->header_cap * 2 : HEADER_FIRST_ALLOC;
        if (cap < s->header_have + n) cap = s->header_have + n;
        if (cap > s->header_len) cap = (size_t)s->header_len;
        char *grown = realloc(s->header, cap);
        if (!grown) {
            fail(s, "out of memory for the header");
            return n;
        }
        s->header = grown;
        s->header_cap = cap;
    }
    memcpy(s->header + s->header_have, data, n);
    s->header_have += n;
    s->offset += n;
    if (s->header_have == s->header_len) parse_header(s);
    return n;
}

static void safetensors_feed(struct parser *p, const uint8_t *data, size_t len)
{
    struct safetensors *s = (struct safetensors *)p;
    while (len > 0) {
        size_t n;
        switch (s->state) {
        case READ_LENGTH:
            n = take_length(s, data, len);
            break;
        case READ_HEADER:
            n = take_header(s, data, len);
            break;
        case READ_DATA:
            feed_data(s, data, len);
            return;
        default:
            return;
        }
        data += n;
        len -= n;
    }
}

static bool safetensors_finish(struct parser *p)
{
    struct safetensors *s = (struct safetensors *)p;
    switch (s->state) {
    case FAILED:
        return false;
    case READ_DATA:
        return tensor_sequence_finish(&s->tensors, s->report, "safetensors", s->offset);
    default:
        report_error(s->report, "safetensors: data ended at byte %" PRIu64 " inside the header",
                     s->offset);
        return false;
    }
}

static void safetensors_destroy(struct parser *p)
{
    struct safetensors *s = (struct safetensors *)p;
    tensor_sequence_free(&s->tensors);
    free(s->header);
    free(s);
}

struct parser *parser_safetensors_new(struct report *r, const struct parse_options *o)
{
    struct safetensors *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base = (struct parser){.format = "safetensors",
                              .feed = safetensors_feed,
                              .finish = safetensors_finish,
                              .destroy = safetensors_destroy};
    s->report = r;
    s->options = o;
    return &s->base;
}
