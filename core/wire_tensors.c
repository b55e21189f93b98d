/* wire_tensors.c — a data message's tensors read into the text records print (see
 * wire_tensors.h), with a reader (jsonread.h) that gives up where cJSON might read the
 * text otherwise: then cJSON parses the packet whole, as before.
 *
 * The text is the tree's as cJSON and json_tensor_from_hex would have made it and
 * json_print printed it: members in their order, repeated ones too, every number in
 * shortest digits (jsontext.c's add_number: json_add_number), strings and member names
 * as json_print escapes them (json_add_name). In a tensor the name and dtype stay
 * strings whatever they say; everything else that is "#" and 16 hex digits is a number.
 *
 * A tensor exactly as agents write it (report.c: no white space, known names, hex
 * numbers, a plain ASCII name) is read by a path of its own that copies its names and
 * strings as they are and never steps back; anything else there sends that tensor to
 * the general walk, which gives the same text and brief (test_wire_tensors.c).
 */
#include "wire_tensors.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "grow.h"
#include "jsonread.h"
#include "jsontext.h"

#define MAX_DEPTH      4  /* the array, a tensor, its ci95, shape or head, and one more */
#define MAX_SKIP_DEPTH 64 /* the members before "tensors" (values may nest) */
#define TEXT_LIMIT     ((size_t)1 << 30) /* as jsontext.c's: far above any packet's */

/* The members agents send in a tensor: first those its brief reads (the statistics',
 * then sampled to shape), then the others. Their names need no escapes, so they are
 * printed as they are, without a look at each byte; each is shorter than 8 bytes and
 * padded with NULs to 8, so that a name is matched as one word. */
enum {
    KEY_SAMPLED = BRIEF_STATS,
    KEY_NAME,
    KEY_DTYPE,
    KEY_SHAPE,
    KEYS,
    KEY_CI95 = KEYS,
    KEY_HEAD,
    KNOWN_KEYS
};
#define KEY_MAX 7
static const char known_keys[KNOWN_KEYS][KEY_MAX + 1] = {
    "min", "max", "mean", "std", "nan", "inf", "sampled", "name", "dtype", "shape", "ci95", "head"};

enum kind { KIND_OTHER, KIND_NUMBER, KIND_STRING };

/* What a value read was: its number, its string (len bytes at text: in the packet itself
 * when in_place, else valid until the next value is read), and for an array or object
 * the product of its items (a shape's), 0 for any item that is not a number. */
struct value {
    enum kind kind;
    double number, product;
    const char *text;
    size_t len;
    bool in_place;
};

/* A tensor's name or dtype as noted: len bytes at s, in the packet or in copy. */
struct noted {
    bool has;
    const char *s;
    size_t len;
    struct strbuf copy;
};

/* One tensor's brief as its members are read: the first of each name counts. */
struct reading {
    bool seen[KEYS];
    struct noted name, dtype;
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

/* Sixteen lower-case hex digits at p as the 64 bits they spell, into *out; false for any
 * other text. A tensor's numbers are most of what the collector reads, so all sixteen
 * are tested and converted at once, in one SSE2 register (every x86-64 has it): a byte
 * is a digit or a letter when its distance from '0' or 'a' saturates to 0 past 9 or 5;
 * pairs of nibbles are joined within 16-bit lanes and packed to 8 bytes, the first the
 * most significant. Elsewhere, eight at a time in a 64-bit word: each byte's range is
 * tested for all eight at once (b + c has its high bit set when b >= 0x80 - c, for bytes
 * below 0x80, without a carry into the next). Inline: gcc would call it, and the call
 * cost a third of its work. */
#ifdef __SSE2__
static inline __attribute__((always_inline)) bool hex16(const unsigned char *p, uint64_t *out)
{
    __m128i x = _mm_loadu_si128((const __m128i *)p), zero = _mm_setzero_si128();
    __m128i digit = _mm_sub_epi8(x, _mm_set1_epi8('0'));
    __m128i letter = _mm_sub_epi8(x, _mm_set1_epi8('a'));
    __m128i is_digit = _mm_cmpeq_epi8(_mm_subs_epu8(digit, _mm_set1_epi8(9)), zero);
    __m128i is_letter = _mm_cmpeq_epi8(_mm_subs_epu8(letter, _mm_set1_epi8(5)), zero);
    if (_mm_movemask_epi8(_mm_or_si128(is_digit, is_letter)) != 0xffff) return false;
    __m128i n = _mm_or_si128(_mm_and_si128(is_digit, digit),
                             _mm_and_si128(is_letter, _mm_add_epi8(letter, _mm_set1_epi8(10))));
    n = _mm_and_si128(_mm_or_si128(_mm_slli_epi16(n, 4), _mm_srli_epi16(n, 8)),
                      _mm_set1_epi16(0xff)); /* lane i: digit 2i << 4 | digit 2i + 1 */
    *out = __builtin_bswap64((uint64_t)_mm_cvtsi128_si64(_mm_packus_epi16(n, n)));
    return true;
}
#else
static inline __attribute__((always_inline)) bool hex8(const unsigned char *p, uint32_t *out)
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

static inline __attribute__((always_inline)) bool hex16(const unsigned char *p, uint64_t *out)
{
    uint32_t high, low;
    if (!hex8(p, &high) || !hex8(p + 8, &low)) return false;
    *out = (uint64_t)high << 32 | low;
    return true;
}
#endif

/* The string "#" + 16 hex digits at *at (its quote; as written by json_add_hex_item),
 * before end, as the double whose bits they are, read in place (*at moved past it);
 * false, and nothing read, for any other text. */
static inline bool hex_number(const char **at, const char *end, double *v)
{
    uint64_t bits;
    const unsigned char *p = (const unsigned char *)*at;
    if (end - *at < 19 || p[0] != '"' || p[1] != '#' || p[18] != '"' || !hex16(p + 2, &bits))
        return false;
    memcpy(v, &bits, sizeof *v);
    *at += 19;
    return true;
}

static void put_number(struct strbuf *out, double d, struct value *v)
{
    json_add_number(out, d);
    v->kind = KIND_NUMBER;
    v->number = d;
}

/* A string, or the number its text "#" + 16 hex digits stands for when numbers; a string
 * stays in x->r.text until the next is read. */
static bool put_string(struct transcode *x, bool numbers, struct value *v)
{
    size_t len;
    double d;
    if (numbers && hex_number(&x->r.p, x->r.end, &d)) return put_number(x->out, d, v), true;
    if (!json_read_string(&x->r, &len)) return false;
    if (numbers && len == 17 && json_hex_number(x->r.text, &d)) /* written with escapes */
        return put_number(x->out, d, v), true;
    json_add_name(x->out, x->r.text); /* no NUL in it: U+0000 is left to cJSON */
    *v = (struct value){KIND_STRING, 0, 1, x->r.text, len};
    return true;
}

/* Which of count names (NUL-padded to 8 bytes) has the bytes of word (in memory order),
 * or -1; looked for from the one expected, first, on. */
static int key_of(uint64_t word, const char (*keys)[KEY_MAX + 1], int count, int first)
{
    for (int n = 0, i = first; n < count; n++, i = i + 1 < count ? i + 1 : 0) {
        uint64_t known;
        memcpy(&known, keys[i], sizeof known);
        if (word == known) return i;
    }
    return -1;
}

static int known_key(const char *key)
{
    size_t len = strlen(key);
    uint64_t word = 0;
    if (len > KEY_MAX) return -1;
    memcpy(&word, key, len);
    return key_of(word, known_keys, KNOWN_KEYS, 0);
}

/* The bytes of a name at name, fewer than 8 before end, up to its closing quote, as
 * key_at takes them (*len of them); false when it has none. Apart, so that key_at's
 * common path is a leaf that saves no registers. */
static __attribute__((noinline)) bool short_name(const char *name, const char *end, uint64_t *word,
                                                 size_t *len)
{
    for (*len = 0; name + *len < end && name[*len] != '"';)
        ++*len;
    if (name + *len == end) return false;
    memcpy(word, name, *len);
    return true;
}

/* A member name at *at (its quote) that is one of count keys, written without escapes,
 * read in place (no copy; *at moved past its closing quote); -1, and nothing read, for
 * any other. The 8 bytes after the quote are read as one word (little-endian, as in
 * hex16) and its closing quote found in all at once: the lowest byte that is '"' is the
 * lowest that (x ^ '"') - 1 borrows into (those above may be wrong). Byte by byte only
 * for a name fewer than 8 bytes from the end (a packet's last member). */
static inline int key_at(const char **at, const char *end, const char (*keys)[KEY_MAX + 1],
                         int count, int first)
{
    const char *name = *at + 1;
    uint64_t word = 0, quotes;
    size_t len = 0;
    if (*at >= end || **at != '"') return -1;
    if (end - name >= (ptrdiff_t)sizeof word) {
        memcpy(&word, name, sizeof word);
        quotes = word ^ BYTES('"');
        quotes = (quotes - BYTES(1)) & ~quotes & BYTES(0x80);
        len = quotes ? (size_t)__builtin_ctzll(quotes) / 8 : 0;
        word = len ? word & ~0ull >> (64 - 8 * len) : 0;
    } else if (!short_name(name, end, &word, &len)) {
        return -1;
    }
    int key = len ? key_of(word, keys, count, first) : -1;
    if (key >= 0) *at = name + len + 1;
    return key;
}

static int known_key_in_place(struct json_reader *r)
{
    return json_read_peek(r) == '"' ? key_at(&r->p, r->end, known_keys, KNOWN_KEYS, 0) : -1;
}

/* A member of a tensor its brief reads, the first so named. */
static void note_member(struct reading *t, int key, const struct value *v)
{
    if (key < 0 || key >= KEYS || t->seen[key]) return;
    t->seen[key] = true;
    if (key == KEY_NAME || key == KEY_DTYPE) {
        struct noted *n = key == KEY_NAME ? &t->name : &t->dtype;
        if (v->kind != KIND_STRING) return;
        *n = (struct noted){true, v->text, v->len, n->copy};
        if (v->in_place) return; /* the packet outlives the brief's reading */
        sb_truncate(&n->copy, 0);
        sb_add(&n->copy, v->text, v->len);
        n->s = n->copy.s;
        n->has = n->s != NULL; /* out of memory: no brief */
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
        if (depth == 1) note_member(&x->tensor, key, &item);
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
        return json_read_number(&x->r, &d) && (put_number(x->out, d, v), true);
    }
}

/* The closing quote of a string at p (past its opening quote), before end, whose bytes are
 * all printable ASCII but '\\': what records print as it is; NULL for any other. */
static const char *plain_string_end(const char *p, const char *end)
{
    for (; end - p >= 8; p += 8) { /* to the first byte that is not such, 8 at a time */
        uint64_t x, quote, backslash;
        memcpy(&x, p, sizeof x);
        quote = x ^ BYTES('"');
        backslash = x ^ BYTES('\\');
        uint64_t stop = (((quote - BYTES(1)) & ~quote) | ((backslash - BYTES(1)) & ~backslash) |
                         ((x - BYTES(0x20)) & ~x) | x) &
                        BYTES(0x80); /* exact in its lowest byte, as in key_at */
        if (stop) {
            p += __builtin_ctzll(stop) / 8;
            break;
        }
    }
    for (; p < end && *p != '"'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x80 || *p == '\\') return NULL;
    return p < end ? p : NULL;
}

/* A number at *at as agents write it: a hex number, or null (a statistic with no finite
 * element, a head's NaN); written out and noted in v as put_value would. */
static inline __attribute__((always_inline)) bool
put_agent_number(struct strbuf *out, const char **at, const char *end, struct value *v)
{
    double d;
    *v = (struct value){KIND_OTHER, 0, 1};
    if (hex_number(at, end, &d)) return put_number(out, d, v), true;
    if (end - *at < 4 || memcmp(*at, "null", 4)) return false;
    sb_add(out, "null", 4);
    *at += 4;
    return true;
}

/* A value at *at of a tensor as agents write it (report.c): put_agent_number's, an array
 * of them, or for the name and dtype a plain string; written out and noted in v as
 * put_value would. False at anything else, with out perhaps part written. */
static bool put_agent_value(struct strbuf *out, int key, const char **at, const char *end,
                            struct value *v)
{
    const char *p = *at, *close;
    struct value item;
    if (key == KEY_NAME || key == KEY_DTYPE) {
        if (p >= end || *p != '"' || !(close = plain_string_end(p + 1, end))) return false;
        sb_add(out, p, (size_t)(close + 1 - p));
        *v = (struct value){KIND_STRING, 0, 1, p + 1, (size_t)(close - p - 1), true};
        *at = close + 1;
        return true;
    }
    if (p >= end || *p != '[') return put_agent_number(out, at, end, v);
    *v = (struct value){KIND_OTHER, 0, 1};
    sb_add(out, "[", 1);
    for (p++; p < end && *p != ']';) {
        if (!put_agent_number(out, &p, end, &item) || p + 1 >= end || (*p != ',' && *p != ']') ||
            (p[0] == ',' && p[1] == ']'))
            return false;
        v->product *= item.kind == KIND_NUMBER ? item.number : 0;
        if (*p == ',') sb_add(out, p++, 1);
    }
    if (p >= end) return false;
    sb_add(out, "]", 1);
    *at = p + 1;
    return true;
}

/* A tensor at x->r.p exactly as agents write it: no white space, known member names
 * only, values as put_agent_value takes them. That is nearly every tensor, and read so
 * it costs a fraction of put_value's walk (a call per character taken, a look at each
 * name's every byte). The same text and brief as put_value (test_wire_tensors.c); false,
 * nothing read and nothing written, at anything else: then put_value reads it. */
static bool put_agent_tensor(struct transcode *x)
{
    /* the member agents write after each (report.c), looked for first */
    static const signed char after[KNOWN_KEYS] = {
        [KEY_NAME] = KEY_DTYPE,   [KEY_DTYPE] = KEY_SHAPE,  [KEY_SHAPE] = BRIEF_MIN,
        [BRIEF_MIN] = BRIEF_MAX,  [BRIEF_MAX] = BRIEF_MEAN, [BRIEF_MEAN] = BRIEF_STD,
        [BRIEF_STD] = BRIEF_NAN,  [BRIEF_NAN] = BRIEF_INF,  [BRIEF_INF] = KEY_SAMPLED,
        [KEY_SAMPLED] = KEY_HEAD, [KEY_CI95] = KEY_HEAD,    [KEY_HEAD] = KEY_NAME};
    const char *p = x->r.p, *end = x->r.end;
    struct strbuf *out = x->out;
    size_t mark = out->len;
    int key = KEY_HEAD;
    if (out->overflow || p >= end || *p++ != '{') return false;
    sb_add(out, "{", 1);
    for (;;) {
        const char *name = p;
        struct value v;
        key = key_at(&p, end, known_keys, KNOWN_KEYS, after[key]);
        if (key < 0 || p >= end || *p != ':') break;
        sb_add(out, name, (size_t)(++p - name)); /* "key": as it is */
        if (!put_agent_value(out, key, &p, end, &v) || p >= end || (*p != ',' && *p != '}')) break;
        note_member(&x->tensor, key, &v);
        sb_add(out, p, 1);
        if (*p++ == '}') {
            x->r.p = p;
            return true;
        }
    }
    sb_truncate(out, mark);
    return false;
}

/* The brief of a tensor about to be read: nothing seen yet. */
static void reading_reset(struct reading *read)
{
    memset(read->seen, 0, sizeof read->seen);
    read->name.has = read->dtype.has = false;
    read->elements = 1;
    for (int i = 0; i < KEYS; i++)
        read->number[i] = NAN;
}

/* The brief of the tensor just read, when its name is a string. */
static bool add_brief(struct printed_tensors *t, struct reading *read)
{
    if (!read->name.has) return true;
    /* from 4: most messages hold one tensor, and 64 of them were a block too big to be
     * had from malloc's caches */
    if (!GROW_FOR_ONE(t->briefs, t->brief_count, t->brief_alloc, 4)) return false;
    size_t name_len = read->name.len, dtype_len = read->dtype.has ? read->dtype.len : 0;
    char *name = malloc(name_len + 1 + dtype_len + 1);
    if (!name) return false;
    memcpy(name, read->name.s, name_len);
    name[name_len] = '\0';
    if (read->dtype.has) memcpy(name + name_len + 1, read->dtype.s, dtype_len);
    name[name_len + 1 + dtype_len] = '\0';
    struct tensor_brief *b = &t->briefs[t->brief_count++];
    *b = (struct tensor_brief){name, read->dtype.has ? name + name_len + 1 : NULL, read->elements};
    memcpy(b->stat, read->number, sizeof b->stat);
    b->sampled = read->number[KEY_SAMPLED];
    return true;
}

/* The tensors, an array of objects, into t; false when this reader does not take them. */
static bool read_tensors(struct transcode *x, struct printed_tensors *t)
{
    x->out = &t->text;
    sb_reserve(x->out, (size_t)(x->r.end - x->r.p)); /* about the tensors' text printed */
    if (!json_read_take(&x->r, '[')) return false;
    if (json_read_take(&x->r, ']')) return true;
    do {
        struct value v;
        struct reading *read = &x->tensor;
        reading_reset(read);
        if (t->count++) sb_add(&t->text, ",", 1);
        if (!put_agent_tensor(x)) {
            reading_reset(read);
            if (json_read_peek(&x->r) != '{' || !put_value(x, 1, false, &v)) return false;
        }
        if (!add_brief(t, read)) return false;
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
 * else: another member, one twice, one whose name, kind or format is written with
 * escapes, a value not of its kind, text after the object. Member names are matched in place, as a
 * tensor's (key_at): with a message per tensor, reading them was a tenth of the collector's
 * instructions. */
static bool read_plain(struct transcode *x, struct plain_data *d, struct printed_tensors *t)
{
    enum { KIND, ID, SIZE, WRITES, FORMAT, TENSORS, SEQ, NAMES }; /* in the order agents write */
    static const char names[NAMES][KEY_MAX + 1] = {"t",      "id",      "bytes", "writes",
                                                   "format", "tensors", "seq"};
    double *number[NAMES] = {
        [ID] = &d->id, [SIZE] = &d->bytes, [WRITES] = &d->writes, [SEQ] = &d->seq};
    struct json_reader *r = &x->r;
    bool seen[NAMES] = {false};
    int key = SEQ;
    if (!json_read_take(r, '{')) return false;
    do {
        json_read_peek(r);
        key = key_at(&r->p, r->end, names, NAMES, (key + 1) % NAMES);
        if (key < 0 || seen[key] || !json_read_take(r, ':')) return false;
        seen[key] = true;
        bool string = json_read_peek(r) == '"'; /* the kind and format: plain, in place */
        if (number[key]) {
            if (!json_read_number(r, number[key])) return false;
        } else if (key == KIND) {
            if (!string || r->end - r->p < 6 || memcmp(r->p, "\"data\"", 6)) return false;
            r->p += 6;
        } else if (key == FORMAT) {
            const char *close = string ? plain_string_end(r->p + 1, r->end) : NULL;
            size_t len = close ? (size_t)(close - r->p - 1) : 0;
            if (!close || !(d->format = malloc(len + 1))) return false;
            memcpy(d->format, r->p + 1, len);
            d->format[len] = '\0';
            r->p = close + 1;
        } else {
            if (!json_read_next_is(r, '[') || !read_tensors(x, t)) return false;
            t->read = true;
        }
    } while (json_read_take(r, ','));
    return seen[KIND] && json_read_take(r, '}') && json_read_peek(r) == '\0' && r->p == r->end;
}

/* A transcoder of the packet's text into *texts (empty); false when there is no memory.
 * transcode_end frees it either way. */
static bool transcode_begin(struct transcode *x, const char *packet, size_t len,
                            struct printed_tensors *texts)
{
    *x = (struct transcode){.tensor = {.name.copy.limit = len + 1, .dtype.copy.limit = len + 1}};
    *texts = (struct printed_tensors){.text.limit = TEXT_LIMIT};
    return json_read_init(&x->r, packet, len);
}

static void transcode_end(struct transcode *x)
{
    json_read_free(&x->r);
    free(x->tensor.name.copy.s);
    free(x->tensor.dtype.copy.s);
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
