/* wire_tensors.c — a data message's tensors read into the text records print (see
 * wire_tensors.h), with a reader (jsonread.h) that gives up where cJSON might read the
 * text otherwise: then cJSON parses the packet whole, as before.
 *
 * The text is the tree's as cJSON and json_tensor_from_hex would have made it and
 * json_print printed it: members in their order, repeated ones too, every number in
 * shortest digits (jsontext.c's add_number: json_add_number), strings and member names
 * as json_print escapes them (json_add_name). In a tensor the name and dtype stay
 * strings whatever they say; everything else that is "#" and 16 hex digits is a number.
 */
#include "wire_tensors.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "jsonread.h"
#include "jsontext.h"

#define MAX_DEPTH      4  /* the array, a tensor, its ci95, shape or head, and one more */
#define MAX_SKIP_DEPTH 64 /* the members before "tensors" (values may nest) */
#define TEXT_LIMIT     ((size_t)1 << 30) /* as jsontext.c's: far above any packet's */

/* The members agents send in a tensor: first those its brief reads (the statistics',
 * then sampled to shape), then the others. Their names need no escapes, so they are
 * printed as they are, without a look at each byte. */
enum { KEY_SAMPLED = BRIEF_STATS, KEY_NAME, KEY_DTYPE, KEY_SHAPE, KEYS, KNOWN_KEYS = KEYS + 2 };
static const char *const known_keys[KNOWN_KEYS] = {
    "min", "max", "mean", "std", "nan", "inf", "sampled", "name", "dtype", "shape", "ci95", "head"};

enum kind { KIND_OTHER, KIND_NUMBER, KIND_STRING };

/* What a value read was: its number, and for an array or object the product of its items
 * (a shape's), 0 for any item that is not a number. */
struct value {
    enum kind kind;
    double number, product;
};

/* One tensor's brief as its members are read: the first of each name counts. */
struct reading {
    bool seen[KEYS];
    struct strbuf name, dtype;
    bool has_name, has_dtype;
    double number[KEYS]; /* the statistics' and sampled, NaN when not numbers */
    double elements;
};

struct transcode {
    struct json_reader r;
    struct strbuf *out;
    struct reading tensor;
};

static bool put_value(struct transcode *x, int depth, bool numbers, struct value *v);

#define BYTES(b) (0x0101010101010101ull * (b))

/* Eight lower-case hex digits at p as the 32 bits they spell, into *out; false for any
 * other text. A tensor's numbers are most of what the collector reads: each byte's
 * range is tested for all eight at once (b + c has its high bit set when b >= 0x80 - c,
 * for bytes below 0x80, without a carry into the next). */
static bool hex8(const unsigned char *p, uint32_t *out)
{
    uint64_t x;
    memcpy(&x, p, sizeof x); /* p[0], the most significant digit, in the lowest byte */
    uint64_t digit = (x + BYTES(0x50)) & ~(x + BYTES(0x46));  /* '0' <= b <= '9' */
    uint64_t letter = (x + BYTES(0x1f)) & ~(x + BYTES(0x19)); /* 'a' <= b <= 'f' */
    if ((x & BYTES(0x80)) || ((digit | letter) & BYTES(0x80)) != BYTES(0x80)) return false;
    uint64_t n = (x & BYTES(0x0f)) + ((letter & BYTES(0x80)) >> 7) * 9; /* a nibble a byte */
    n = __builtin_bswap64(n);                                           /* most significant up */
    n = (n | n >> 4) & 0x00ff00ff00ff00ffull;
    n = (n | n >> 8) & 0x0000ffff0000ffffull;
    *out = (uint32_t)(n | n >> 16);
    return true;
}

/* The text "#" + 16 hex digits at r->p (a string's, past its quote, as written by
 * json_add_hex_item) as the double whose bits they are, read in place; false, and
 * nothing read, for any other text. */
static bool hex_number(struct json_reader *r, double *v)
{
    uint32_t high, low;
    const unsigned char *p = (const unsigned char *)r->p;
    if (r->end - r->p < 19 || p[0] != '"' || p[1] != '#' || p[18] != '"' || !hex8(p + 2, &high) ||
        !hex8(p + 10, &low))
        return false;
    uint64_t bits = (uint64_t)high << 32 | low;
    memcpy(v, &bits, sizeof *v);
    r->p += 19;
    return true;
}

static void put_number(struct transcode *x, double d, struct value *v)
{
    json_add_number(x->out, d);
    v->kind = KIND_NUMBER;
    v->number = d;
}

/* A string, or the number its text "#" + 16 hex digits stands for when numbers; a string
 * stays in x->r.text until the next is read. */
static bool put_string(struct transcode *x, bool numbers, struct value *v)
{
    size_t len;
    double d;
    if (numbers && hex_number(&x->r, &d)) return put_number(x, d, v), true;
    if (!json_read_string(&x->r, &len)) return false;
    if (numbers && len == 17 && json_hex_number(x->r.text, &d)) /* written with escapes */
        return put_number(x, d, v), true;
    json_add_name(x->out, x->r.text); /* no NUL in it: U+0000 is left to cJSON */
    v->kind = KIND_STRING;
    return true;
}

static int known_key(const char *key)
{
    for (int i = 0; i < KNOWN_KEYS; i++)
        if (known_keys[i][0] == key[0] && !strcmp(key, known_keys[i])) return i;
    return -1;
}

/* A member name that is one of the known ones, written without escapes, read in place
 * (no copy, a comparison or two); -1, and nothing read, for any other. */
static int known_key_in_place(struct json_reader *r)
{
    if (json_read_peek(r) != '"') return -1;
    const char *name = r->p + 1;
    const char *end = memchr(name, '"', (size_t)(r->end - name) < 8 ? (size_t)(r->end - name) : 8);
    size_t len = end ? (size_t)(end - name) : 0;
    for (int i = 0; end && i < KNOWN_KEYS; i++)
        if (name[0] == known_keys[i][0] && !strncmp(name, known_keys[i], len) &&
            known_keys[i][len] == '\0') {
            r->p = end + 1;
            return i;
        }
    return -1;
}

/* A member of a tensor its brief reads, the first so named. */
static void note_member(struct reading *t, int key, const struct value *v, const char *text)
{
    if (key < 0 || key >= KEYS || t->seen[key]) return;
    t->seen[key] = true;
    if (key == KEY_NAME || key == KEY_DTYPE) {
        struct strbuf *b = key == KEY_NAME ? &t->name : &t->dtype;
        if (v->kind != KIND_STRING) return;
        sb_truncate(b, 0);
        sb_addz(b, text);
        *(key == KEY_NAME ? &t->has_name : &t->has_dtype) = true;
    } else if (key == KEY_SHAPE) {
        t->elements = v->product;
    } else {
        t->number[key] = v->kind == KIND_NUMBER ? v->number : NAN;
    }
}

/* An object; in a tensor (depth 1) the name and dtype stay strings whatever they say,
 * and its brief's members are noted. */
static bool put_object(struct transcode *x, int depth, struct value *v)
{
    if (!json_read_take(&x->r, '{')) return false;
    sb_add(x->out, "{", 1);
    if (json_read_take(&x->r, '}')) return sb_add(x->out, "}", 1), true;
    do {
        size_t len;
        struct value item;
        int key = known_key_in_place(&x->r);
        if (key < 0 && !json_read_string(&x->r, &len)) return false;
        if (key < 0 && (key = known_key(x->r.text)) < 0) {
            json_add_name(x->out, x->r.text);
            sb_add(x->out, ":", 1);
        } else {
            sb_add(x->out, "\"", 1);
            sb_addz(x->out, known_keys[key]);
            sb_add(x->out, "\":", 2);
        }
        if (!json_read_take(&x->r, ':')) return false;
        bool numbers = depth != 1 || (key != KEY_NAME && key != KEY_DTYPE);
        if (!put_value(x, depth + 1, numbers, &item)) return false;
        v->product *= item.kind == KIND_NUMBER ? item.number : 0;
        if (depth == 1) note_member(&x->tensor, key, &item, x->r.text);
        if (json_read_take(&x->r, '}')) return sb_add(x->out, "}", 1), true;
        sb_add(x->out, ",", 1);
    } while (json_read_take(&x->r, ','));
    return false;
}

static bool put_array(struct transcode *x, int depth, bool numbers, struct value *v)
{
    if (!json_read_take(&x->r, '[')) return false;
    sb_add(x->out, "[", 1);
    if (json_read_take(&x->r, ']')) return sb_add(x->out, "]", 1), true;
    do {
        struct value item;
        if (!put_value(x, depth + 1, numbers, &item)) return false;
        v->product *= item.kind == KIND_NUMBER ? item.number : 0;
        if (json_read_take(&x->r, ']')) return sb_add(x->out, "]", 1), true;
        sb_add(x->out, ",", 1);
    } while (json_read_take(&x->r, ','));
    return false;
}

static bool put_value(struct transcode *x, int depth, bool numbers, struct value *v)
{
    double d;
    *v = (struct value){KIND_OTHER, 0, 1};
    if (depth > MAX_DEPTH) return false;
    switch (json_read_peek(&x->r)) {
    case '{':
        return put_object(x, depth, v);
    case '[':
        return put_array(x, depth, numbers, v);
    case '"':
        return put_string(x, numbers, v);
    case 't':
        return json_read_literal(&x->r, "true") && (sb_addz(x->out, "true"), true);
    case 'f':
        return json_read_literal(&x->r, "false") && (sb_addz(x->out, "false"), true);
    case 'n':
        return json_read_literal(&x->r, "null") && (sb_addz(x->out, "null"), true);
    default:
        return json_read_number(&x->r, &d) && (put_number(x, d, v), true);
    }
}

/* The brief of the tensor just read, when its name is a string. */
static bool add_brief(struct printed_tensors *t, struct reading *read)
{
    if (!read->has_name) return true;
    if (!GROW_FOR_ONE(t->briefs, t->brief_count, t->brief_alloc, 64)) return false;
    size_t name_len = read->name.len, dtype_len = read->has_dtype ? read->dtype.len : 0;
    char *name = malloc(name_len + 1 + dtype_len + 1);
    if (!name) return false;
    memcpy(name, read->name.s, name_len + 1);
    if (read->has_dtype) memcpy(name + name_len + 1, read->dtype.s, dtype_len + 1);
    struct tensor_brief *b = &t->briefs[t->brief_count++];
    *b = (struct tensor_brief){name, read->has_dtype ? name + name_len + 1 : NULL, read->elements};
    memcpy(b->stat, read->number, sizeof b->stat);
    b->sampled = read->number[KEY_SAMPLED];
    return true;
}

/* The tensors, an array of objects, into t; false when this reader does not take them. */
static bool read_tensors(struct transcode *x, struct printed_tensors *t)
{
    x->out = &t->text;
    if (!json_read_take(&x->r, '[')) return false;
    if (json_read_take(&x->r, ']')) return true;
    do {
        struct value v;
        struct reading *read = &x->tensor;
        memset(read->seen, 0, sizeof read->seen);
        read->has_name = read->has_dtype = false;
        read->elements = 1;
        for (int i = 0; i < KEYS; i++)
            read->number[i] = NAN;
        if (t->count++) sb_add(&t->text, ",", 1);
        if (json_read_peek(&x->r) != '{' || !put_value(x, 1, false, &v) || !add_brief(t, read))
            return false;
        if (json_read_take(&x->r, ']')) return !t->text.overflow;
    } while (json_read_take(&x->r, ','));
    return false;
}

/* The packet's top-level "tensors" array read into t; [*start, *end) its text. False
 * when there is none, or this reader would not take it. */
static bool find_tensors(struct transcode *x, size_t *start, size_t *end, const char *packet,
                         struct printed_tensors *t)
{
    struct json_reader *r = &x->r;
    size_t len;
    if (!json_read_take(r, '{') || json_read_next_is(r, '}')) return false;
    do {
        if (!json_read_string(r, &len) || !json_read_take(r, ':')) return false;
        if (!strcmp(r->text, "tensors")) {
            json_read_peek(r);
            *start = (size_t)(r->p - packet);
            bool read = json_read_next_is(r, '[') && read_tensors(x, t);
            *end = (size_t)(r->p - packet);
            return read;
        }
        if (!json_read_skip(r, MAX_SKIP_DEPTH)) return false;
    } while (json_read_take(r, ','));
    return false;
}

/* A plain data message's members (wire_read_plain_data) into d and t; false at anything
 * else: another member, one twice, a value not of its kind, text after the object. */
static bool read_plain(struct transcode *x, struct plain_data *d, struct printed_tensors *t)
{
    static const char *const numbers[] = {"seq", "id", "bytes", "writes"};
    double *number[] = {&d->seq, &d->id, &d->bytes, &d->writes};
    struct json_reader *r = &x->r;
    bool seen_kind = false, seen[4] = {false};
    size_t len;
    if (!json_read_take(r, '{')) return false;
    do {
        if (!json_read_string(r, &len) || !json_read_take(r, ':')) return false;
        int i = 0;
        while (i < 4 && strcmp(r->text, numbers[i]))
            i++;
        if (i < 4) {
            if (seen[i] || !json_read_number(r, number[i])) return false;
            seen[i] = true;
        } else if (!strcmp(r->text, "t")) {
            if (seen_kind || !json_read_string(r, &len) || strcmp(r->text, "data")) return false;
            seen_kind = true;
        } else if (!strcmp(r->text, "format")) {
            if (d->format || !json_read_string(r, &len) || !(d->format = malloc(len + 1)))
                return false;
            memcpy(d->format, r->text, len + 1);
        } else if (!strcmp(r->text, "tensors")) {
            if (t->read || !json_read_next_is(r, '[') || !read_tensors(x, t)) return false;
            t->read = true;
        } else {
            return false;
        }
    } while (json_read_take(r, ','));
    return seen_kind && json_read_take(r, '}') && json_read_peek(r) == '\0' && r->p == r->end;
}

/* A transcoder of the packet's text into *texts (empty); false when there is no memory.
 * transcode_end frees it either way. */
static bool transcode_begin(struct transcode *x, const char *packet, size_t len,
                            struct printed_tensors *texts)
{
    *x = (struct transcode){.tensor = {.name.limit = len + 1, .dtype.limit = len + 1}};
    *texts = (struct printed_tensors){.text.limit = TEXT_LIMIT};
    return json_read_init(&x->r, packet, len);
}

static void transcode_end(struct transcode *x)
{
    json_read_free(&x->r);
    free(x->tensor.name.s);
    free(x->tensor.dtype.s);
}

bool wire_read_plain_data(const char *packet, size_t len, struct plain_data *d,
                          struct printed_tensors *texts)
{
    struct transcode x;
    *d = (struct plain_data){NAN, NAN, NAN, NAN, NULL};
    bool read = transcode_begin(&x, packet, len, texts) && read_plain(&x, d, texts);
    transcode_end(&x);
    if (!read) {
        printed_tensors_free(texts);
        free(d->format);
        d->format = NULL;
    }
    return read;
}

/* The packet with its tensors' text [start, end) as null, parsed by cJSON. */
static cJSON *parse_around(const char *packet, size_t len, size_t start, size_t end)
{
    size_t rest = start + 4 + (len - end);
    char *text = malloc(rest);
    cJSON *tree = NULL;
    if (text) {
        memcpy(text, packet, start);
        memcpy(text + start, "null", 4);
        memcpy(text + start + 4, packet + end, len - end);
        tree = cJSON_ParseWithLength(text, rest);
        free(text);
    }
    return tree;
}

/* cJSON's parse of the whole packet, its tensors' hex strings then made numbers. */
static cJSON *parse_whole(const char *packet, size_t len)
{
    cJSON *tree = cJSON_ParseWithLength(packet, len);
    cJSON *tensors = cJSON_GetObjectItemCaseSensitive(tree, "tensors"), *t;
    if (cJSON_IsArray(tensors)) cJSON_ArrayForEach(t, tensors) json_tensor_from_hex(t);
    return tree;
}

void printed_tensors_free(struct printed_tensors *t)
{
    for (size_t i = 0; i < t->brief_count; i++)
        free(t->briefs[i].name);
    free(t->briefs);
    free(t->text.s);
    *t = (struct printed_tensors){0};
}

cJSON *wire_parse_packet(const char *packet, size_t len, struct printed_tensors *texts)
{
    struct transcode x;
    size_t start = 0, end = 0;
    bool read =
        transcode_begin(&x, packet, len, texts) && find_tensors(&x, &start, &end, packet, texts);
    transcode_end(&x);
    cJSON *tree = read ? parse_around(packet, len, start, end) : NULL;
    if (tree) {
        texts->read = true;
        return tree;
    }
    printed_tensors_free(texts);
    return parse_whole(packet, len);
}
