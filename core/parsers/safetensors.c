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
 * The header is read in place (jsonread.h), without a tree: a header of 10^5 entries
 * cost cJSON a dozen allocations and frees per entry, more than the rest of the
 * agent's work per tensor. A header the reader refuses (text cJSON reads otherwise, or
 * not at all) goes to cJSON as before; both fill the same struct entry_members, checked
 * in one place, so the record is the same either way. The reader takes the header in
 * one pass: what it would report waits until it has read all of it, and the entries it
 * added are dropped when it refuses the text partway.
 *
 * Writers need not store tensors in header order, so the entries are sorted by begin
 * and the data is streamed in file order, skipping gaps. An entry that is malformed,
 * whose byte size disagrees with its dtype and shape, or that overlaps the one before
 * it is reported as an error and skipped; the others are still read.
 */
#include "parser.h"
#include "../grow.h"
#include "../jsonread.h"
#include "../jsontext.h"
#include "tensor.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
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

/* A header entry's members as read_entry checks them, whether cJSON or the reader found
 * them: the first member of each name, as cJSON_GetObjectItem gives it. */
struct entry_members {
    bool object;
    const char *dtype;              /* NULL: absent, or not a string */
    int shape_count, offsets_count; /* elements; -1: absent, or not an array */
    double shape[TENSOR_MAX_DIMS];  /* the first elements; NaN for one not a number */
    double offsets[2];
};

static bool count_of(double v, uint64_t *out)
{
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
static const char *read_entry(const struct entry_members *m, uint64_t header_len,
                              struct tensor_entry *e)
{
    uint64_t elements, nbytes, begin, end, v;

    if (!m->object) return "is not an object";
    if (!m->dtype || m->shape_count < 0 || m->offsets_count < 0)
        return "needs dtype, shape and data_offsets";
    set_dtype(e, m->dtype);
    if (m->shape_count > TENSOR_MAX_DIMS) return "too many dimensions";
    for (int i = 0; i < m->shape_count; i++) {
        if (!count_of(m->shape[i], &v)) return "shape holds a negative or non-integral dimension";
        e->shape[e->ndim++] = (int64_t)v;
    }
    if (m->offsets_count != 2 || !count_of(m->offsets[0], &begin) ||
        !count_of(m->offsets[1], &end) || end < begin)
        return "data_offsets is not [begin, end] with begin <= end";
    if (!tensor_shape_elements(e->shape, e->ndim, &elements)) return "shape's size overflows";
    if (e->readable &&
        (__builtin_mul_overflow(elements, dtype_size(e->dtype), &nbytes) || nbytes != end - begin))
        return "data_offsets disagree with dtype and shape";
    e->begin = 8 + header_len + begin;
    e->nbytes = end - begin;
    return NULL;
}

/* The entry called name goes to the sequence, or its error to the report; false when
 * out of memory. */
static bool add_entry(struct safetensors *s, char *name, const struct entry_members *m)
{
    struct tensor_entry e = {.name = name};
    const char *why = read_entry(m, s->header_len, &e);
    if (why) {
        report_error(s->report, "safetensors: header entry %s: %s", name, why);
        return true;
    }
    return tensor_sequence_add(&s->tensors, &e);
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

/* One __metadata__ member called name: a string, a number, or neither (both NULL). */
static void report_metadata_member(struct safetensors *s, const char *name, const char *string,
                                   const double *number)
{
    char key[1024];
    if ((size_t)snprintf(key, sizeof key, "__metadata__.%s", name) >= sizeof key)
        report_error(s->report, "safetensors: a __metadata__ key is over %zu bytes", sizeof key);
    else if (string)
        report_metadata_string(s->report, key, string);
    else if (number)
        report_float(s->report, key, *number);
    else
        report_error(s->report, "safetensors: %s is not a string", key);
}

/* ---- The header read in place (jsonread.h) ---------------------------------------------- */

/* Deeper than any safetensors header: one that is goes to cJSON. The root is level 0,
 * a value at level L is stepped over with depth HEADER_MAX_DEPTH - L. */
#define HEADER_MAX_DEPTH 64

enum header_read { HEADER_READ, HEADER_REFUSED, HEADER_NO_MEMORY };

/* What the one pass over the header has done so far, to be reported or undone. */
struct header_pass {
    struct json_reader r;
    size_t names_used; /* bytes of the sequence's block of names holding entries' names */
    /* Where the root members that report something begin (__metadata__, an entry with an
     * error): they are reported once the reader has taken the whole header, so that a
     * header it refuses halfway has reported nothing when cJSON parses it. */
    const char **later;
    size_t later_count, later_capacity;
};

static bool starts_number(char c)
{
    return c == '-' || (c >= '0' && c <= '9');
}

/* An array's numbers: the first room of them in out (NaN for what is not a number),
 * how many there are in *count; *count stays -1 when the value is no array. */
static bool read_numbers(struct json_reader *r, double *out, int room, int *count)
{
    if (json_read_peek(r) != '[') return json_read_skip(r, HEADER_MAX_DEPTH - 2);
    json_read_take(r, '[');
    *count = 0;
    if (json_read_take(r, ']')) return true;
    do {
        double v = NAN;
        bool ok = starts_number(json_read_peek(r)) ? json_read_number(r, &v)
                                                   : json_read_skip(r, HEADER_MAX_DEPTH - 3);
        if (!ok) return false;
        if (*count < room) out[*count] = v;
        ++*count;
        if (json_read_take(r, ']')) return true;
    } while (json_read_take(r, ','));
    return false;
}

/* The dtype's text, when the value is a string, into dtype (size bytes: a longer tag is
 * no readable one, and only its start is kept as the dtype's name). */
static bool read_dtype(struct json_reader *r, struct entry_members *m, char *dtype, size_t size)
{
    size_t len;
    if (json_read_peek(r) != '"') return json_read_skip(r, HEADER_MAX_DEPTH - 2);
    if (!json_read_string(r, &len)) return false;
    if (len >= size) len = size - 1;
    memcpy(dtype, r->text, len); /* the reader refuses U+0000: no NUL inside */
    dtype[len] = '\0';
    m->dtype = dtype;
    return true;
}

/* One entry's value, read whole. */
static bool read_members(struct json_reader *r, struct entry_members *m, char *dtype, size_t size)
{
    bool dtype_seen = false, shape_seen = false, offsets_seen = false;
    *m = (struct entry_members){.shape_count = -1, .offsets_count = -1};
    if (!json_read_take(r, '{')) return json_read_skip(r, HEADER_MAX_DEPTH - 1);
    m->object = true;
    if (json_read_take(r, '}')) return true;
    do {
        size_t len;
        bool ok;
        if (!json_read_string(r, &len) || !json_read_take(r, ':')) return false;
        if (!dtype_seen && !strcmp(r->text, "dtype"))
            dtype_seen = true, ok = read_dtype(r, m, dtype, size);
        else if (!shape_seen && !strcmp(r->text, "shape"))
            shape_seen = true, ok = read_numbers(r, m->shape, TENSOR_MAX_DIMS, &m->shape_count);
        else if (!offsets_seen && !strcmp(r->text, "data_offsets"))
            offsets_seen = true, ok = read_numbers(r, m->offsets, 2, &m->offsets_count);
        else
            ok = json_read_skip(r, HEADER_MAX_DEPTH - 2);
        if (!ok) return false;
        if (json_read_take(r, '}')) return true;
    } while (json_read_take(r, ','));
    return false;
}

/* __metadata__'s value, which the pass has read whole, member by member to the report;
 * name: room for its longest name. */
static void report_metadata(struct safetensors *s, struct json_reader *r, char *name)
{
    size_t len;
    double v;
    if (!json_read_take(r, '{')) {
        report_error(s->report, "safetensors: __metadata__ is not an object");
        return;
    }
    while (json_read_string(r, &len) && json_read_take(r, ':')) {
        memcpy(name, r->text, len + 1);
        char c = json_read_peek(r);
        if (c == '"' && json_read_string(r, &len))
            report_metadata_member(s, name, r->text, NULL);
        else if (starts_number(c) && json_read_number(r, &v))
            report_metadata_member(s, name, NULL, &v);
        else if (json_read_skip(r, HEADER_MAX_DEPTH - 2))
            report_metadata_member(s, name, NULL, NULL);
        json_read_take(r, ',');
    }
}

/* The root member at `at`, held back by the pass (struct header_pass), to the report. */
static void report_later(struct safetensors *s, struct json_reader *r, const char *at, char *name)
{
    char dtype[32];
    size_t len;
    struct entry_members m;
    r->p = at;
    json_read_string(r, &len);
    json_read_take(r, ':');
    memcpy(name, r->text, len + 1);
    if (!strcmp(name, "__metadata__")) return report_metadata(s, r, name);
    read_members(r, &m, dtype, sizeof dtype);
    add_entry(s, name, &m); /* an entry held back has an error, which this reports */
}

/* The member at `at`, whose name (len bytes) the reader holds: an entry goes to the sequence, its
 * name to the sequence's block; __metadata__ and an entry with an error wait in
 * pass->later. */
static enum header_read read_member(struct safetensors *s, struct header_pass *pass, const char *at,
                                    size_t len)
{
    char dtype[32];
    struct entry_members m;
    struct json_reader *r = &pass->r;
    char *name = s->tensors.names + pass->names_used;
    bool metadata = !strcmp(r->text, "__metadata__");
    struct tensor_entry e = {.name = name};

    if (!metadata) memcpy(name, r->text, len + 1);
    if (metadata ? !json_read_skip(r, HEADER_MAX_DEPTH - 1)
                 : !read_members(r, &m, dtype, sizeof dtype))
        return HEADER_REFUSED;
    if (metadata || read_entry(&m, s->header_len, &e)) {
        if (!GROW_FOR_ONE(pass->later, pass->later_count, pass->later_capacity, 4))
            return HEADER_NO_MEMORY;
        pass->later[pass->later_count++] = at;
        return HEADER_READ;
    }
    if (!tensor_sequence_add_named(&s->tensors, &e)) return HEADER_NO_MEMORY;
    pass->names_used += len + 1;
    return HEADER_READ;
}

/* The root object's members, in order, in one pass. */
static enum header_read read_root(struct safetensors *s, struct header_pass *pass)
{
    struct json_reader *r = &pass->r;
    if (!json_read_take(r, '{')) return HEADER_REFUSED;
    if (json_read_take(r, '}')) return HEADER_READ;
    do {
        const char *at = r->p;
        size_t len;
        if (!json_read_string(r, &len) || !json_read_take(r, ':')) return HEADER_REFUSED;
        enum header_read read = read_member(s, pass, at, len);
        if (read != HEADER_READ) return read;
    } while (json_read_take(r, ','));
    return json_read_take(r, '}') ? HEADER_READ : HEADER_REFUSED;
}

/* The header without a tree, in one pass. The entries' names go to a block of names as
 * long as the header (the sequence's), which no name is longer than, nor all of them
 * together. What the pass reports waits until the reader has taken all of it: when it
 * refuses (HEADER_REFUSED), the entries are dropped, nothing was reported, and cJSON is
 * to parse the header. */
static enum header_read read_header(struct safetensors *s)
{
    struct header_pass pass = {0};
    enum header_read result = HEADER_REFUSED; /* without memory for the reader, cJSON tries */
    s->tensors.names = malloc(s->header_have + 1);
    if (s->tensors.names && json_read_init(&pass.r, s->header, s->header_have))
        result = read_root(s, &pass);
    for (size_t i = 0; result == HEADER_READ && i < pass.later_count; i++)
        report_later(s, &pass.r, pass.later[i], s->tensors.names + pass.names_used);
    if (result == HEADER_REFUSED) tensor_sequence_free(&s->tensors);
    json_read_free(&pass.r);
    free(pass.later);
    return result;
}

/* ---- The header as cJSON parses it --------------------------------------------------- */

static void numbers_of(const cJSON *array, double *out, int room, int *count)
{
    const cJSON *item;
    *count = 0;
    cJSON_ArrayForEach(item, array)
    {
        if (*count < room) out[*count] = cJSON_IsNumber(item) ? item->valuedouble : NAN;
        ++*count;
    }
}

static void members_of(const cJSON *item, struct entry_members *m)
{
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    *m = (struct entry_members){.object = cJSON_IsObject(item),
                                .dtype = cJSON_IsString(dtype) ? dtype->valuestring : NULL,
                                .shape_count = -1,
                                .offsets_count = -1};
    if (cJSON_IsArray(shape)) numbers_of(shape, m->shape, TENSOR_MAX_DIMS, &m->shape_count);
    if (cJSON_IsArray(offsets)) numbers_of(offsets, m->offsets, 2, &m->offsets_count);
}

static void metadata_of(struct safetensors *s, const cJSON *metadata)
{
    const cJSON *item;
    if (!cJSON_IsObject(metadata)) {
        report_error(s->report, "safetensors: __metadata__ is not an object");
        return;
    }
    cJSON_ArrayForEach(item, metadata)
    {
        report_metadata_member(s, item->string, cJSON_IsString(item) ? item->valuestring : NULL,
                               cJSON_IsNumber(item) ? &item->valuedouble : NULL);
    }
}

/* The header's tensors go to the sequence, its metadata straight to the report. */
static bool collect_entries(struct safetensors *s, const cJSON *root)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        struct entry_members m;
        if (strcmp(item->string, "__metadata__") == 0) {
            metadata_of(s, item);
            continue;
        }
        members_of(item, &m);
        if (!add_entry(s, item->string, &m)) return false;
    }
    return true;
}

static void feed_data(struct safetensors *s, const uint8_t *data, size_t len)
{
    tensor_sequence_feed(&s->tensors, s->report, s->options, &s->offset, data, len);
}

/* The header by the reader, or by cJSON when the reader does not take it. */
static void parse_header(struct safetensors *s)
{
    enum header_read read = read_header(s);
    cJSON *root = read == HEADER_REFUSED ? cJSON_ParseWithLength(s->header, s->header_have) : NULL;
    free(s->header);
    s->header = NULL;
    if (read == HEADER_REFUSED && !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(s, "header is not a JSON object");
    }
    bool ok = read == HEADER_READ || (read == HEADER_REFUSED && collect_entries(s, root));
    cJSON_Delete(root);
    if (!ok) return fail(s, "out of memory");
    tensor_sequence_sort(&s->tensors, s->report, "safetensors");
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
