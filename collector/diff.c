/* diff.c — `ckmon diff A B`: two checkpoint files compared tensor by tensor.
 *
 * Bounded memory, whatever the files' sizes and formats: neither file's tensors are held.
 * Pass 1 parses A with the ordinary parsers and a tensor tap (report.h) that notes, for
 * each tensor, where its data lies in A: the parsers hand the tap pointers into the
 * buffer the file was read into, so a pointer there is a file offset. A tensor whose data
 * is not in the file as it is (a compressed .npz member, say) is copied to a spool file
 * instead. Pass 2 parses B the same way; as each piece of a B tensor's data passes, the
 * same elements of A are read back (pread from A or the spool) and compared. So the
 * memory is a table of tensor names and a few buffers, and A is read twice, B once.
 *
 * Elements pair by position in storage order and compare as doubles (so float32 in one
 * file and float16 in the other compare by value). An element differs unless both are
 * equal or both NaN. The largest absolute difference is over the pairs without a NaN;
 * the relative L2 difference ‖a−b‖/‖a‖ sums (a−b)² over the pairs where both are finite
 * and a² over A's finite elements. With --sample s, only the pieces of B's data that the
 * statistics read with --sample s are compared (tensor.h's sampling plan).
 *
 * Tensors that no tensor reader streams (numpy arrays inside a pickle, long numeric
 * lists) are compared by their record entries: statistics and head. Values are compared
 * as JSON. Exit 0: the same; 1: different; 2: trouble (unreadable, incomplete).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/jsontext.h"
#include "core/parsers/parser.h"
#include "core/parsers/tensor.h"
#include "cli.h"
#include "compressed.h"
#include "table.h"

#define DIFF_TROUBLE  2
#define DIFF_ELEMENTS 16384 /* elements read from A and compared per step */
/* The sample the parsers' own statistics use: the plan's least, they are not shown. */
#define STATS_SAMPLE 1e-12

/* A tensor whose data passed the tap. */
struct located {
    char *name;
    bool readable; /* a dtype the statistics decode: dtype holds it */
    enum dtype dtype;
    uint64_t nbytes;
    off_t file_at;  /* where its data is in A, or -1 */
    off_t spool_at; /* where its copy is in the spool, or -1 */
    bool broken;    /* its data came neither in place nor in one piece: not compared */
    /* B side: the comparison */
    struct located *pair; /* A's tensor of the same name */
    uint64_t compared, differ;
    double max_abs, sum_d2, sum_a2;
    uint8_t carry[8]; /* the bytes of an element split between two pieces */
    unsigned ncarry;
    struct sample_plan plan; /* --sample: the pieces of B's data compared */
    uint64_t pick, pick_at;  /* the next planned piece, and its byte offset */
};

struct tensors {
    struct located *items;
    size_t count, capacity;
};

/* Readers in use map to their tensor (a reader serves one tensor at a time, and torch
 * feeds the views of one storage in turns). */
struct active {
    const struct tensor_reader *reader;
    size_t index;
};

struct side {
    const char *path;
    int fd;
    const char *format;
    bool complete;
    struct report report;
    struct tensors tensors;
    struct active *active;
    size_t nactive, active_cap;
    /* the piece of the file being parsed */
    const uint8_t *chunk;
    off_t chunk_at;
    size_t chunk_len;
};

struct diff {
    struct side a, b;
    struct key_filter keys;
    double sample;
    FILE *spool;
    off_t spool_end;
    uint8_t *a_bytes; /* A's bytes of the elements being compared */
    double *xa, *xb;
    bool trouble;
};

static void fail(struct diff *d, const char *what)
{
    fprintf(stderr, "ckmon diff: %s\n", what);
    d->trouble = true;
}

static struct located *add_tensor(struct diff *d, struct side *s, const struct tensor_reader *tr)
{
    struct tensors *t = &s->tensors;
    if (t->count == t->capacity) {
        size_t cap = t->capacity ? 2 * t->capacity : 64;
        struct located *grown = realloc(t->items, cap * sizeof *grown);
        if (!grown) return fail(d, "out of memory"), NULL;
        t->items = grown;
        t->capacity = cap;
    }
    struct located *l = &t->items[t->count];
    *l = (struct located){.name = strdup(tr->name),
                          .readable = tr->has_stats,
                          .dtype = tr->stats.dtype,
                          .nbytes = tr->nbytes,
                          .file_at = -1,
                          .spool_at = -1};
    if (!l->name) return fail(d, "out of memory"), NULL;
    t->count++;
    return l;
}

/* The tensor a reader serves; at == 0 starts a new one. */
static struct located *tensor_of(struct diff *d, struct side *s, const struct tensor_reader *tr,
                                 uint64_t at)
{
    for (size_t i = 0; i < s->nactive; i++) {
        if (s->active[i].reader != tr) continue;
        if (at == 0) {
            if (!add_tensor(d, s, tr)) return NULL;
            s->active[i].index = s->tensors.count - 1;
        }
        return &s->tensors.items[s->active[i].index];
    }
    if (at != 0) return NULL;
    if (s->nactive == s->active_cap) {
        size_t cap = s->active_cap ? 2 * s->active_cap : 8;
        struct active *grown = realloc(s->active, cap * sizeof *grown);
        if (!grown) return fail(d, "out of memory"), NULL;
        s->active = grown;
        s->active_cap = cap;
    }
    if (!add_tensor(d, s, tr)) return NULL;
    s->active[s->nactive++] = (struct active){tr, s->tensors.count - 1};
    return &s->tensors.items[s->tensors.count - 1];
}

/* ---- Pass 1: where A's tensors are ------------------------------------------------ */

static bool spool_write(struct diff *d, const void *data, size_t len)
{
    if (!d->spool && !(d->spool = tmpfile())) return fail(d, "cannot create a spool file"), false;
    if (fwrite(data, 1, len, d->spool) != len) return fail(d, "cannot write the spool file"), false;
    d->spool_end += (off_t)len;
    return true;
}

/* Copies a tensor's first `at` bytes, found in place so far, from A into the spool. */
static bool spool_from_file(struct diff *d, struct located *l, uint64_t at)
{
    uint8_t buf[1 << 16];
    for (uint64_t done = 0; done < at;) {
        size_t n = at - done < sizeof buf ? (size_t)(at - done) : sizeof buf;
        if (pread(d->a.fd, buf, n, l->file_at + (off_t)done) != (ssize_t)n)
            return fail(d, "cannot read A again"), false;
        if (!spool_write(d, buf, n)) return false;
        done += n;
    }
    return true;
}

static void locate(void *ctx, const struct tensor_reader *tr, uint64_t at, const uint8_t *data,
                   size_t len)
{
    struct diff *d = ctx;
    struct side *s = &d->a;
    struct located *l = tensor_of(d, s, tr, at);
    if (!l || l->broken) return;
    bool in_place = data >= s->chunk && data + len <= s->chunk + s->chunk_len;
    off_t here = s->chunk_at + (data - s->chunk);
    if (at == 0 && in_place) l->file_at = here;
    if (l->file_at >= 0 && in_place && here == l->file_at + (off_t)at) return;
    if (l->file_at >= 0 || at == 0) {
        /* from here on its bytes go to the spool, the ones before too */
        l->spool_at = d->spool_end;
        if (l->file_at >= 0 && !spool_from_file(d, l, at)) return;
        l->file_at = -1;
    }
    if (l->spool_at + (off_t)at != d->spool_end) {
        l->broken = true; /* pieces of two tensors took turns */
        return;
    }
    spool_write(d, data, len);
}

/* ---- Pass 2: B's elements against A's ---------------------------------------------- */

static int by_name(const void *x, const void *y)
{
    const struct located *a = x, *b = y;
    return strcmp(a->name, b->name);
}

/* A side's tensor by name, once its tensors are sorted by name. */
static struct located *find_tensor(struct side *s, const char *name)
{
    struct located key = {.name = (char *)name};
    if (!s->tensors.count) return NULL;
    return bsearch(&key, s->tensors.items, s->tensors.count, sizeof key, by_name);
}

static void sort_tensors(struct side *s)
{
    if (s->tensors.count)
        qsort(s->tensors.items, s->tensors.count, sizeof *s->tensors.items, by_name);
}

static bool comparable(const struct located *b)
{
    const struct located *a = b->pair;
    return a && !a->broken && a->readable && b->readable &&
           a->nbytes / dtype_size(a->dtype) == b->nbytes / dtype_size(b->dtype);
}

/* What the comparison of a tensor adds up (the rules: the top comment). */
struct sums {
    uint64_t differ;
    double max_abs, sum_d2, sum_a2;
};

static void compare_doubles(const double *x, const double *y, size_t n, struct sums *s)
{
    for (size_t i = 0; i < n; i++) {
        double diff = x[i] - y[i], ad = fabs(diff);
        bool same = x[i] == y[i] || (x[i] != x[i] && y[i] != y[i]);
        bool x_finite = x[i] - x[i] == 0, both_finite = x_finite && y[i] - y[i] == 0;
        s->differ += !same;
        s->max_abs = ad > s->max_abs ? ad : s->max_abs; /* NaN never wins */
        s->sum_d2 += both_finite ? diff * diff : 0;
        s->sum_a2 += x_finite ? x[i] * x[i] : 0;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX2_TARGET __attribute__((target("avx2,fma")))

/* The same rules four doubles at a time, for float32 or float64 on both sides (the
 * common case, and the one `make bench` times): 6 times faster than decoding first. */
AVX2_TARGET static inline __m256d load4(const uint8_t *p, bool f32)
{
    return f32 ? _mm256_cvtps_pd(_mm_loadu_ps((const float *)p))
               : _mm256_loadu_pd((const double *)p);
}

AVX2_TARGET static void compare_avx2(const uint8_t *a, const uint8_t *b, size_t n, bool f32,
                                     struct sums *s)
{
    size_t size = f32 ? 4 : 8, body = n / 4 * 4;
    __m256d max_abs = _mm256_set1_pd(s->max_abs), sum_d2 = _mm256_setzero_pd(),
            sum_a2 = _mm256_setzero_pd(), zero = _mm256_setzero_pd();
    __m256d abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    uint64_t same = 0;
    for (size_t i = 0; i < body; i += 4) {
        __m256d x = load4(a + i * size, f32), y = load4(b + i * size, f32);
        __m256d diff = _mm256_sub_pd(x, y);
        __m256d eq = _mm256_or_pd(
            _mm256_cmp_pd(x, y, _CMP_EQ_OQ),
            _mm256_and_pd(_mm256_cmp_pd(x, x, _CMP_UNORD_Q), _mm256_cmp_pd(y, y, _CMP_UNORD_Q)));
        same += (uint64_t)__builtin_popcount((unsigned)_mm256_movemask_pd(eq));
        max_abs = _mm256_max_pd(_mm256_and_pd(diff, abs_mask), max_abs); /* NaN: keeps max */
        __m256d x_finite = _mm256_cmp_pd(_mm256_sub_pd(x, x), zero, _CMP_EQ_OQ);
        __m256d both =
            _mm256_and_pd(x_finite, _mm256_cmp_pd(_mm256_sub_pd(y, y), zero, _CMP_EQ_OQ));
        __m256d dm = _mm256_and_pd(diff, both), xm = _mm256_and_pd(x, x_finite);
        sum_d2 = _mm256_fmadd_pd(dm, dm, sum_d2);
        sum_a2 = _mm256_fmadd_pd(xm, xm, sum_a2);
    }
    double m[4], d2[4], a2[4];
    _mm256_storeu_pd(m, max_abs);
    _mm256_storeu_pd(d2, sum_d2);
    _mm256_storeu_pd(a2, sum_a2);
    s->differ += body - same;
    for (int k = 0; k < 4; k++) {
        s->max_abs = m[k] > s->max_abs ? m[k] : s->max_abs;
        s->sum_d2 += d2[k];
        s->sum_a2 += a2[k];
    }
    double x[4], y[4];
    size_t rest = n - body;
    dtype_decode(f32 ? DTYPE_F32 : DTYPE_F64, a + body * size, x, rest);
    dtype_decode(f32 ? DTYPE_F32 : DTYPE_F64, b + body * size, y, rest);
    compare_doubles(x, y, rest, s);
}

static bool have_avx2(void)
{
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return known;
}
#else
static bool have_avx2(void)
{
    return false;
}
#define compare_avx2(a, b, n, f32, s) ((void)0)
#endif

/* Compares n elements of B (whole ones, at element index `first`) with A's. */
static void compare_elements(struct diff *d, struct located *b, uint64_t first, const uint8_t *eb,
                             size_t n)
{
    const struct located *a = b->pair;
    size_t sa = dtype_size(a->dtype), sb = dtype_size(b->dtype);
    off_t base = a->file_at >= 0 ? a->file_at : a->spool_at;
    int fd = a->file_at >= 0 ? d->a.fd : fileno(d->spool);
    bool fast =
        a->dtype == b->dtype && (a->dtype == DTYPE_F32 || a->dtype == DTYPE_F64) && have_avx2();
    struct sums sums = {.max_abs = b->max_abs};
    for (size_t done = 0; done < n;) {
        size_t k = n - done < DIFF_ELEMENTS ? n - done : DIFF_ELEMENTS;
        off_t from = base + (off_t)((first + done) * sa);
        if (pread(fd, d->a_bytes, k * sa, from) != (ssize_t)(k * sa)) {
            fail(d, "cannot read A again");
            return;
        }
        if (fast) {
            compare_avx2(d->a_bytes, eb + done * sb, k, a->dtype == DTYPE_F32, &sums);
        } else {
            dtype_decode(a->dtype, d->a_bytes, d->xa, k);
            dtype_decode(b->dtype, eb + done * sb, d->xb, k);
            compare_doubles(d->xa, d->xb, k, &sums);
        }
        done += k;
    }
    b->differ += sums.differ;
    b->max_abs = sums.max_abs;
    b->sum_d2 += sums.sum_d2;
    b->sum_a2 += sums.sum_a2;
    b->compared += n;
}

/* Bytes of B's data at byte `at` of the tensor: whole elements, the carry completed first. */
static void compare_bytes(struct diff *d, struct located *b, uint64_t at, const uint8_t *data,
                          size_t len)
{
    size_t size = dtype_size(b->dtype);
    if (b->ncarry) {
        size_t take = size - b->ncarry < len ? size - b->ncarry : len;
        memcpy(b->carry + b->ncarry, data, take);
        b->ncarry += take;
        data += take;
        len -= take;
        at += take;
        if (b->ncarry < size) return;
        compare_elements(d, b, at / size - 1, b->carry, 1);
        b->ncarry = 0;
    }
    size_t whole = len / size;
    if (whole) compare_elements(d, b, at / size, data, whole);
    b->ncarry = (unsigned)(len - whole * size);
    memcpy(b->carry, data + whole * size, b->ncarry);
}

/* The planned piece after b->pick (its offset, or the data's end after the last). */
static void next_pick(struct located *b)
{
    b->pick_at =
        b->pick < b->plan.picks ? sample_plan_piece(&b->plan, b->pick) * b->plan.piece : b->nbytes;
}

static void compare(void *ctx, const struct tensor_reader *tr, uint64_t at, const uint8_t *data,
                    size_t len)
{
    struct diff *d = ctx;
    struct located *b = tensor_of(d, &d->b, tr, at);
    if (!b) return;
    if (at == 0) {
        b->pair = find_tensor(&d->a, b->name);
        sample_plan_init(&b->plan, b->nbytes, b->readable ? dtype_size(b->dtype) : 1, d->sample);
        next_pick(b);
    }
    if (!comparable(b) || !report_wants(&d->b.report, b->name)) return;
    if (sample_plan_exact(&b->plan)) return compare_bytes(d, b, at, data, len);
    /* only the planned pieces, as the statistics read them (elements never straddle
     * pieces: every element size divides TENSOR_LINE) */
    while (len > 0 && b->pick < b->plan.picks) {
        if (at + len <= b->pick_at) return;
        if (at < b->pick_at) {
            size_t skip = (size_t)(b->pick_at - at);
            data += skip;
            len -= skip;
            at += skip;
        }
        uint64_t piece_end =
            b->pick_at + b->plan.piece < b->nbytes ? b->pick_at + b->plan.piece : b->nbytes;
        size_t n = piece_end - at < len ? (size_t)(piece_end - at) : len;
        compare_bytes(d, b, at, data, n);
        data += n;
        len -= n;
        at += n;
        if (at == piece_end) {
            b->pick++;
            next_pick(b);
        }
    }
}

/* ---- Parsing ---------------------------------------------------------------------- */

static bool parse_side(struct diff *d, struct side *s, tensor_tap *tap)
{
    s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (s->fd < 0 || fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "ckmon diff: %s: %s\n", s->path,
                s->fd < 0 ? strerror(errno) : "not a regular file");
        d->trouble = true;
        return false;
    }
    struct parse_options options = {.sample = STATS_SAMPLE};
    report_init(&s->report, &d->keys);
    s->report.tap = tap;
    s->report.tap_ctx = d;
    struct parser *p = parser_detect_new(s->path, &s->report, &options);
    uint8_t *buf = parse_read_buffer();
    if (!p || !buf) {
        if (p) p->destroy(p);
        free(buf);
        fail(d, "out of memory");
        return false;
    }
    off_t offset = 0;
    enum parse_slice result;
    do {
        s->chunk = buf;
        s->chunk_at = offset;
        s->chunk_len = PARSE_READ_CHUNK;
        result = parse_feed_slice(s->fd, &offset, offset + PARSE_READ_CHUNK, buf, p, &s->report);
    } while (result == PARSE_MORE && !d->trouble);
    s->complete = p->finish(p) && result == PARSE_AT_END;
    s->format = p->format;
    bool on_disk = p->on_disk;
    p->destroy(p);
    free(buf);
    /* joblib compressed with xz, lzma or lz4, which the detect parser leaves "unknown":
     * decompressed as the collector does, its bytes are nowhere in the file (the spool) */
    s->chunk = NULL;
    s->chunk_len = 0;
    if (!on_disk) compressed_read_claimed(s->fd, &s->format, &s->complete, &s->report, &options);
    if (d->spool) fflush(d->spool);
    if (on_disk) { /* read by libhdf5 in another process: no bytes pass the tap */
        fprintf(stderr, "ckmon diff: %s: %s files are not compared tensor by tensor\n", s->path,
                s->format);
        d->trouble = true;
        return false;
    }
    return true;
}

/* ---- The result ------------------------------------------------------------------- */

/* A record's tensor entries sorted by name, to find one by name. */
struct entries {
    cJSON **items;
    size_t count;
};

static const char *entry_name(const cJSON *t)
{
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "name"));
    return name ? name : "";
}

static int by_entry_name(const void *x, const void *y)
{
    return strcmp(entry_name(*(cJSON *const *)x), entry_name(*(cJSON *const *)y));
}

static bool index_entries(struct entries *e, cJSON *tensors)
{
    size_t n = (size_t)cJSON_GetArraySize(tensors), i = 0;
    e->items = malloc((n ? n : 1) * sizeof *e->items);
    e->count = n;
    if (!e->items) return false;
    for (cJSON *t = tensors ? tensors->child : NULL; t; t = t->next)
        e->items[i++] = t;
    qsort(e->items, n, sizeof *e->items, by_entry_name);
    return true;
}

static cJSON *entry_named(const struct entries *e, const char *name)
{
    cJSON key = {.type = cJSON_Object}, named = {.type = cJSON_String, .string = "name"};
    named.valuestring = (char *)name;
    key.child = &named;
    const cJSON *k = &key;
    cJSON **found = bsearch(&k, e->items, e->count, sizeof *e->items, by_entry_name);
    return found ? *found : NULL;
}

/* Non-finite as the records write them. */
static cJSON *json_double(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateString(isnan(v) ? "nan" : "inf");
}

/* Entries of a record tensor that must match for "same by statistics". */
static bool same_statistics(const cJSON *x, const cJSON *y)
{
    static const char *const members[] = {"min", "max", "mean", "std", "nan", "inf", "head"};
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
        if (!cJSON_Compare(cJSON_GetObjectItemCaseSensitive(x, members[i]),
                           cJSON_GetObjectItemCaseSensitive(y, members[i]), true))
            return false;
    return true;
}

static void add_pair(cJSON *o, const char *name, const cJSON *x, const cJSON *y)
{
    if (cJSON_Compare(x, y, true)) {
        cJSON_AddItemToObject(o, name, cJSON_Duplicate(x, true));
        return;
    }
    cJSON *pair = cJSON_AddArrayToObject(o, name);
    cJSON_AddItemToArray(pair, cJSON_Duplicate(x, true));
    cJSON_AddItemToArray(pair, cJSON_Duplicate(y, true));
}

/* One common tensor: status and figures. */
static cJSON *common_tensor(struct diff *d, const cJSON *x, const cJSON *y, bool *differs)
{
    const char *name = entry_name(y);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    const cJSON *dx = cJSON_GetObjectItemCaseSensitive(x, "dtype"),
                *dy = cJSON_GetObjectItemCaseSensitive(y, "dtype"),
                *sx = cJSON_GetObjectItemCaseSensitive(x, "shape"),
                *sy = cJSON_GetObjectItemCaseSensitive(y, "shape");
    add_pair(o, "dtype", dx, dy);
    add_pair(o, "shape", sx, sy);
    bool changed = !cJSON_Compare(dx, dy, true) || !cJSON_Compare(sx, sy, true);
    struct located *b = find_tensor(&d->b, name);
    bool different = changed;
    if (b && comparable(b)) {
        uint64_t elements = b->nbytes / dtype_size(b->dtype);
        different |= b->differ > 0;
        cJSON_AddStringToObject(o, "compared_by", "elements");
        cJSON_AddNumberToObject(o, "elements", (double)elements);
        cJSON_AddNumberToObject(o, "compared", (double)b->compared);
        cJSON_AddNumberToObject(o, "differ", (double)b->differ);
        cJSON_AddItemToObject(o, "max_abs_diff", json_double(b->max_abs));
        double rel = b->sum_d2 == 0 ? 0 : sqrt(b->sum_d2) / sqrt(b->sum_a2);
        cJSON_AddItemToObject(o, "rel_l2", json_double(rel));
    } else {
        different |= !same_statistics(x, y);
        cJSON_AddStringToObject(o, "compared_by", "statistics");
    }
    cJSON_AddStringToObject(o, "status", changed ? "changed" : different ? "different" : "same");
    *differs |= different;
    return o;
}

static cJSON *lone_tensor(const cJSON *t, const char *status)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", entry_name(t));
    cJSON_AddItemToObject(o, "dtype",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(t, "dtype"), true));
    cJSON_AddItemToObject(o, "shape",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(t, "shape"), true));
    cJSON_AddStringToObject(o, "status", status);
    return o;
}

static cJSON *side_json(const struct side *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", s->path);
    cJSON_AddStringToObject(o, "format", s->format ? s->format : "unknown");
    cJSON_AddBoolToObject(o, "complete", s->complete);
    if (s->report.errors)
        cJSON_AddItemToObject(o, "errors", cJSON_Duplicate(s->report.errors, true));
    return o;
}

static cJSON *result_json(struct diff *d, bool *differs)
{
    cJSON *ta = report_take_tensors(&d->a.report), *tb = report_take_tensors(&d->b.report), *t;
    cJSON *va = d->a.report.values, *vb = d->b.report.values, *v;
    struct entries ea, eb;
    if (!index_entries(&ea, ta) || !index_entries(&eb, tb)) {
        free(ea.items);
        cJSON_Delete(ta);
        cJSON_Delete(tb);
        return NULL;
    }
    if (va) report_drop_replaced(va);
    if (vb) report_drop_replaced(vb);
    cJSON *o = cJSON_CreateObject(), *tensors = cJSON_CreateArray(), *values = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "a", side_json(&d->a));
    cJSON_AddItemToObject(o, "b", side_json(&d->b));
    cJSON_AddNumberToObject(o, "sample", d->sample);
    cJSON_ArrayForEach(t, ta)
    {
        cJSON *other = entry_named(&eb, entry_name(t));
        cJSON_AddItemToArray(tensors, other ? common_tensor(d, t, other, differs)
                                            : lone_tensor(t, "removed"));
        *differs |= !other;
    }
    cJSON_ArrayForEach(t, tb)
    {
        if (entry_named(&ea, entry_name(t))) continue;
        cJSON_AddItemToArray(tensors, lone_tensor(t, "added"));
        *differs = true;
    }
    cJSON *changed = cJSON_AddObjectToObject(values, "changed"),
          *added = cJSON_AddObjectToObject(values, "added"),
          *removed = cJSON_AddObjectToObject(values, "removed");
    cJSON_ArrayForEach(v, va)
    {
        cJSON *w = cJSON_GetObjectItemCaseSensitive(vb, v->string);
        if (!w)
            cJSON_AddItemToObject(removed, v->string, cJSON_Duplicate(v, true));
        else if (!cJSON_Compare(v, w, true))
            add_pair(changed, v->string, v, w);
    }
    cJSON_ArrayForEach(v, vb)
    {
        if (!cJSON_GetObjectItemCaseSensitive(va, v->string))
            cJSON_AddItemToObject(added, v->string, cJSON_Duplicate(v, true));
    }
    *differs |= changed->child || added->child || removed->child;
    cJSON_AddBoolToObject(o, "identical", !*differs);
    cJSON_AddItemToObject(o, "tensors", tensors);
    cJSON_AddItemToObject(o, "values", values);
    free(ea.items);
    free(eb.items);
    cJSON_Delete(ta);
    cJSON_Delete(tb);
    return o;
}

/* ---- The table -------------------------------------------------------------------- */

/* A JSON value as a short text (strings without quotes). */
static const char *text_of(const cJSON *v, char *buf, size_t size)
{
    char *printed = cJSON_IsString(v) ? NULL : json_print(v);
    snprintf(buf, size, "%s", cJSON_IsString(v) ? v->valuestring : printed ? printed : "?");
    free(printed);
    return buf;
}

/* A number in 6 significant digits (the table's), else as text_of. */
static const char *figure(const cJSON *v, char *buf, size_t size)
{
    if (!cJSON_IsNumber(v)) return text_of(v, buf, size);
    snprintf(buf, size, "%.6g", v->valuedouble);
    return buf;
}

/* A member that is a value, or [A's, B's] when they differ (is_pair says which). */
static const char *pair_text(const cJSON *v, bool is_pair, char *buf, size_t size)
{
    char x[80], y[80];
    if (!is_pair) return text_of(v, buf, size);
    snprintf(buf, size, "%s -> %s", text_of(v->child, x, sizeof x),
             text_of(v->child->next, y, sizeof y));
    return buf;
}

static void print_table(const cJSON *r, bool color)
{
    const cJSON *t, *v;
    const char *red = color ? "\033[31m" : "", *green = color ? "\033[32m" : "",
               *plain = color ? "\033[0m" : "";
    char a[160], b[160], c[64], e[64];
    for (int side = 0; side < 2; side++) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, side ? "b" : "a");
        printf("%s: %s (%s%s)\n", side ? "B" : "A",
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "path")),
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "format")),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "complete")) ? "" : ", INCOMPLETE");
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(s, "errors"))
            printf("   error: %s\n", v->valuestring);
    }
    printf("\n  %-40s %-10s %-12s %12s %12s %18s\n", "tensor", "dtype", "shape", "max |a-b|",
           "rel L2", "elements differ");
    int same = 0, shown = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(r, "tensors"))
    {
        const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "status"));
        char mark = !strcmp(status, "added")     ? '+'
                    : !strcmp(status, "removed") ? '-'
                    : !strcmp(status, "same")    ? ' '
                                                 : '~';
        const char *paint = mark == '+' ? green : mark == ' ' ? "" : red;
        same += mark == ' ';
        shown++;
        const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(t, "dtype"),
                    *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
        printf("%s%c %-40s %-10s %-12s", paint, mark, entry_name(t),
               pair_text(dtype, cJSON_IsArray(dtype), a, sizeof a),
               pair_text(shape, shape->child && cJSON_IsArray(shape->child), b, sizeof b));
        const cJSON *differ = cJSON_GetObjectItemCaseSensitive(t, "differ");
        if (differ)
            printf(" %12s %12s %8.0f of %-8.0f",
                   figure(cJSON_GetObjectItemCaseSensitive(t, "max_abs_diff"), c, sizeof c),
                   figure(cJSON_GetObjectItemCaseSensitive(t, "rel_l2"), e, sizeof e),
                   differ->valuedouble,
                   cJSON_GetObjectItemCaseSensitive(t, "compared")->valuedouble);
        else if (mark == '~' || mark == ' ')
            printf(" %12s %12s %18s", "", "", "(statistics)");
        printf("%s\n", plain);
    }
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(r, "values");
    static const char *const kinds[] = {"changed", "added", "removed"};
    int nvalues = 0;
    for (int k = 0; k < 3; k++)
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(values, kinds[k]))
        {
            if (!nvalues++) printf("\n  values\n");
            printf("%s%c %s: %s%s\n", k == 1 ? green : red, "~+-"[k], v -> string,
                   pair_text(v, k == 0, a, sizeof a), plain);
        }
    printf("\n%s: %d of %d tensors the same, %d values differ\n",
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "identical")) ? "identical"
                                                                          : "different",
           same, shown, nvalues);
}

int cmd_diff(int argc, char **argv)
{
    struct options o;
    int rc = cli_parse(&o, COMMAND_DIFF, argc, argv);
    if (rc >= 0) return rc;
    if (o.arg_count != 2) {
        options_free(&o);
        return usage_error(COMMAND_DIFF, "two files to compare, A and B");
    }
    struct diff d = {.a = {.path = o.args[0], .fd = -1},
                     .b = {.path = o.args[1], .fd = -1},
                     .keys = {.patterns = o.keys.items, .count = o.keys.count},
                     .sample = o.sample_text ? o.sample : 1};
    d.a_bytes = malloc(DIFF_ELEMENTS * 8);
    d.xa = malloc(DIFF_ELEMENTS * sizeof *d.xa);
    d.xb = malloc(DIFF_ELEMENTS * sizeof *d.xb);
    if (!d.a_bytes || !d.xa || !d.xb) fail(&d, "out of memory");
    if (!d.trouble && parse_side(&d, &d.a, locate)) {
        sort_tensors(&d.a);
        if (parse_side(&d, &d.b, compare)) sort_tensors(&d.b);
    }
    rc = DIFF_TROUBLE;
    if (!d.trouble) {
        bool differs = false;
        cJSON *r = result_json(&d, &differs);
        if (o.json) {
            char *text = r ? json_print(r) : NULL;
            if (text) puts(text);
            free(text);
        } else if (r) {
            print_table(r, table_wants_color(stdout));
        }
        cJSON_Delete(r);
        rc = !r || !d.a.complete || !d.b.complete ? DIFF_TROUBLE : differs ? 1 : 0;
        if (!d.a.complete || !d.b.complete)
            fprintf(stderr, "ckmon diff: %s is incomplete or malformed\n",
                    d.a.complete ? d.b.path : d.a.path);
    }
    for (struct side *s = &d.a; s <= &d.b; s++) {
        if (s->fd >= 0) close(s->fd);
        report_free(&s->report);
        for (size_t i = 0; i < s->tensors.count; i++)
            free(s->tensors.items[i].name);
        free(s->tensors.items);
        free(s->active);
    }
    if (d.spool) fclose(d.spool);
    free(d.a_bytes);
    free(d.xa);
    free(d.xb);
    options_free(&o);
    return rc;
}
