/* tensor.c — the shared end of every tensor format (see tensor.h).
 *
 * Formats know where a tensor's bytes are; this file decides which of them the
 * statistics read (the sampling plan), and turns the result into one record entry. A
 * tensor whose name --keys filters out is still walked through (its bytes must be
 * consumed to find the next one) but nothing is decoded, and the report drops the entry
 * by name anyway.
 *
 * Formats with a table of contents (safetensors, GGUF) hand it over as a
 * tensor_sequence and let this file walk the data section in file order.
 */
#include "tensor.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../budget.h"
#include "../grow.h"

/* s, cut to fit size bytes with its NUL (snprintf's "%s" parsed its format per tensor). */
static void copy_cut(char *out, size_t size, const char *s)
{
    size_t n = strnlen(s, size - 1);
    memcpy(out, s, n);
    out[n] = '\0';
}

static void set_identity(struct tensor_reader *tr, const char *name, const char *dtype_name,
                         const int64_t *shape, int ndim)
{
    memset(tr, 0, offsetof(struct tensor_reader, block));
    copy_cut(tr->name, sizeof tr->name, name);
    copy_cut(tr->dtype_name, sizeof tr->dtype_name, dtype_name);
    if (ndim < 0) ndim = 0;
    if (ndim > TENSOR_MAX_DIMS) ndim = TENSOR_MAX_DIMS;
    tr->ndim = ndim;
    memcpy(tr->shape, shape, (size_t)ndim * sizeof *shape);
}

bool tensor_shape_elements(const int64_t *shape, int ndim, uint64_t *elements)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(n, (uint64_t)shape[i], &n)) return false;
    }
    *elements = n;
    return true;
}

/* ---- The sampling plan ------------------------------------------------------------ */

/* The number of pieces of `piece` bytes that nbytes make, the last one maybe short. */
static uint64_t pieces_of(uint64_t nbytes, uint64_t piece)
{
    return nbytes / piece + (nbytes % piece != 0);
}

/* ceil(s T) as a count, at most T. */
static uint64_t share_of(double sample, uint64_t pieces)
{
    double want = ceil(sample * (double)pieces);
    return want < (double)pieces ? (uint64_t)want : pieces;
}

void sample_plan_init(struct sample_plan *p, uint64_t nbytes, size_t elsize, double sample)
{
    _Static_assert(TENSOR_PIECES_READ >= TENSOR_EXACT_BYTES / TENSOR_LINE,
                   "a plan of long pieces reads at least as many as the least plan");
    const uint64_t floor_picks = TENSOR_EXACT_BYTES / TENSOR_LINE;
    uint64_t longest = (uint64_t)STATS_CLUSTER_MAX * elsize;
    if (longest > TENSOR_PIECE_MAX) longest = TENSOR_PIECE_MAX;
    p->piece = TENSOR_LINE;
    p->pieces = pieces_of(nbytes, TENSOR_LINE);
    p->picks = p->pieces;
    if (!(sample > 0 && sample < 1) || p->pieces <= floor_picks) return;
    /* Longer pieces while twice the length still leaves TENSOR_PIECES_READ to read. */
    while (p->piece * 2 <= longest &&
           share_of(sample, pieces_of(nbytes, p->piece * 2)) >= TENSOR_PIECES_READ)
        p->piece *= 2;
    p->pieces = pieces_of(nbytes, p->piece);
    uint64_t picks = share_of(sample, p->pieces);
    p->picks = picks > floor_picks ? picks : floor_picks;
    p->step = p->pieces / p->picks;
    p->extra = p->pieces % p->picks;
}

/* splitmix64's finalizer: a fixed, well-mixed hash of the stratum number (the "seed" is
 * the constant added first), the same on every machine. */
static uint64_t stratum_hash(uint64_t j)
{
    uint64_t x = j + 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Stratum j's piece among its len: the hash scaled to len (a multiply, not a division). */
static uint64_t piece_in_stratum(uint64_t j, uint64_t begin, uint64_t len)
{
    return j == 0 ? 0 : begin + (uint64_t)(((unsigned __int128)stratum_hash(j) * len) >> 64);
}

uint64_t sample_plan_piece(const struct sample_plan *p, uint64_t j)
{
    if (sample_plan_exact(p)) return j;
    uint64_t lo = (uint64_t)((unsigned __int128)j * p->pieces / p->picks);
    uint64_t hi = (uint64_t)((unsigned __int128)(j + 1) * p->pieces / p->picks);
    return piece_in_stratum(j, lo, hi - lo);
}

uint64_t sample_cursor_next(struct sample_cursor *c, const struct sample_plan *p)
{
    if (c->j >= p->picks) return UINT64_MAX;
    uint64_t end = c->begin + p->step;
    c->rest += p->extra;
    if (c->rest >= p->picks) {
        c->rest -= p->picks;
        end++;
    }
    uint64_t piece = piece_in_stratum(c->j, c->begin, end - c->begin);
    c->begin = end;
    c->j++;
    return piece;
}

/* ---- Reading ------------------------------------------------------------------------ */

bool tensor_reader_init(struct tensor_reader *tr, struct report *r, const char *name,
                        enum dtype dtype, const int64_t *shape, int ndim,
                        const struct parse_options *o)
{
    uint64_t elements;
    if (dtype_size(dtype) == 0) {
        report_error(r, "%s: unknown element type %d", name, (int)dtype);
        return false;
    }
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) {
        report_error(r, "%s: %d dimensions (at most %d are read)", name, ndim, TENSOR_MAX_DIMS);
        return false;
    }
    set_identity(tr, name, dtype_name(dtype), shape, ndim);
    if (!tensor_shape_elements(shape, ndim, &elements) ||
        __builtin_mul_overflow(elements, (uint64_t)dtype_size(dtype), &tr->nbytes)) {
        report_error(r, "%s: invalid shape (a negative dimension or a size over 2^64 bytes)", name);
        return false;
    }
    tr->has_stats = true;
    tr->wanted = report_wants(r, name);
    tr->budget = o->budget;
    tr->taps = r->tap ? r : NULL;
    /* Outside (0, 1] (or NaN) the option means nothing sensible: the plan reads all. */
    sample_plan_init(&tr->plan, tr->nbytes, dtype_size(dtype), o->sample);
    stats_init(&tr->stats, dtype);
    if (!sample_plan_exact(&tr->plan))
        stats_set_cluster(&tr->stats, tr->plan.piece / dtype_size(dtype));
    return true;
}

void tensor_reader_init_opaque(struct tensor_reader *tr, const char *name, const char *dtype_name,
                               const int64_t *shape, int ndim, uint64_t nbytes)
{
    set_identity(tr, name, dtype_name, shape, ndim);
    tr->nbytes = nbytes;
}

/* Whether the next chunk may be read: always without a budget, and the tensor's first
 * piece always (it holds the head); otherwise as long as the budget allows. */
static bool chunk_allowed(struct tensor_reader *tr, bool first)
{
    if (!tr->budget || first) return true;
    if (budget_allows(tr->budget)) return true;
    tr->cut = true;
    return false;
}

static void chunk_begin(struct tensor_reader *tr)
{
    if (tr->budget) tr->chunk_ns = tr->budget->clock();
}

static void read_stats(struct tensor_reader *tr, const uint8_t *data, size_t len)
{
    stats_feed(&tr->stats, data, len);
    if (tr->budget) budget_charge(tr->budget, tr->chunk_ns, len);
}

/* Exact: every block whole, one statistics call per block (tensor.h, "Determinism"). */
static void feed_exact(struct tensor_reader *tr, const uint8_t *data, size_t take)
{
    size_t done = 0;
    while (done < take) {
        uint64_t block = tr->consumed / TENSOR_SAMPLE_BLOCK;
        size_t at = (size_t)(tr->consumed % TENSOR_SAMPLE_BLOCK);
        uint64_t block_end = tr->nbytes - block * TENSOR_SAMPLE_BLOCK;
        size_t block_len =
            block_end < TENSOR_SAMPLE_BLOCK ? (size_t)block_end : TENSOR_SAMPLE_BLOCK;
        size_t chunk = take - done < block_len - at ? take - done : block_len - at;
        if (at == 0) {
            /* A block the budget refuses: nothing of it, or of block 0 the head. */
            bool allowed = !tr->cut && chunk_allowed(tr, false);
            size_t head = block == 0 ? STATS_HEAD * dtype_size(tr->stats.dtype) : 0;
            tr->block_read = allowed ? block_len : head < block_len ? head : block_len;
            chunk_begin(tr);
        }
        if (at < tr->block_read) {
            size_t n = chunk < tr->block_read - at ? chunk : tr->block_read - at;
            if (at == 0 && n == tr->block_read) {
                read_stats(tr, data + done, n);
            } else {
                memcpy(tr->block + at, data + done, n);
                if (at + n == tr->block_read) read_stats(tr, tr->block, tr->block_read);
            }
        }
        tr->consumed += chunk;
        done += chunk;
    }
}

static void flush_gathered(struct tensor_reader *tr)
{
    if (tr->gathered == 0) return;
    read_stats(tr, tr->block, tr->gathered);
    tr->gathered = 0;
}

/* Moves to the next stratum's piece, or past the end when there is none; asks memory for
 * the start of the piece TENSOR_PREFETCH strata further when it is in these bytes
 * [from, to) of the data, so that the copies of scattered pieces overlap their cache
 * misses (the rest of a long piece the hardware's own prefetcher follows). */
static void next_pick(struct tensor_reader *tr, const uint8_t *data, uint64_t from, uint64_t to)
{
    _Static_assert(TENSOR_UPCOMING > TENSOR_PREFETCH &&
                       (TENSOR_UPCOMING & (TENSOR_UPCOMING - 1)) == 0,
                   "the strata pick to pick + TENSOR_PREFETCH fit in upcoming");
    const uint64_t piece = tr->plan.piece;
    tr->pick++;
    uint64_t next = tr->upcoming[tr->pick % TENSOR_UPCOMING];
    tr->pick_at = next != UINT64_MAX && !tr->cut ? next * piece : tr->nbytes;
    uint64_t ahead = sample_cursor_next(&tr->ahead, &tr->plan);
    tr->upcoming[(tr->pick + TENSOR_PREFETCH) % TENSOR_UPCOMING] = ahead;
    if (ahead != UINT64_MAX && ahead * piece >= from && ahead * piece < to)
        __builtin_prefetch(data + (ahead * piece - from));
}

/* Sampled: the planned pieces are copied out as they pass and handed to the statistics
 * TENSOR_GATHER bytes at a time; everything else is skipped without a look. */
static void feed_sampled(struct tensor_reader *tr, const uint8_t *data, size_t take)
{
    const uint64_t piece = tr->plan.piece;
    uint64_t from = tr->consumed, to = from + take;
    if (tr->pick == 0 && tr->ahead.j == 0) { /* the first piece: strata 0 to PREFETCH */
        for (uint64_t j = 0; j <= TENSOR_PREFETCH; j++)
            tr->upcoming[j % TENSOR_UPCOMING] = sample_cursor_next(&tr->ahead, &tr->plan);
    }
    while (tr->pick_at < to) {
        uint64_t piece_end = tr->pick_at + piece < tr->nbytes ? tr->pick_at + piece : tr->nbytes;
        uint64_t lo = tr->pick_at > from ? tr->pick_at : from;
        uint64_t hi = piece_end < to ? piece_end : to;
        if (lo == tr->pick_at) {
            /* A piece starts: first the budget's word, at the start of a chunk. */
            if (tr->gathered == 0) {
                if (!chunk_allowed(tr, tr->pick == 0)) {
                    tr->pick_at = tr->nbytes;
                    break;
                }
                chunk_begin(tr);
            }
        }
        uint8_t *to_block = tr->block + tr->gathered + (lo - tr->pick_at);
        if (hi - lo == TENSOR_LINE) /* a whole line, as most often: a copy without a call */
            memcpy(to_block, data + (lo - from), TENSOR_LINE);
        else
            memcpy(to_block, data + (lo - from), hi - lo);
        if (hi < piece_end) break; /* the piece goes on in the next bytes fed */
        tr->gathered += piece_end - tr->pick_at;
        if (tr->gathered + piece > TENSOR_GATHER) flush_gathered(tr);
        next_pick(tr, data, from, to);
    }
    tr->consumed = to;
    if (tr->consumed == tr->nbytes) flush_gathered(tr);
}

size_t tensor_reader_feed(struct tensor_reader *tr, const uint8_t *data, size_t len)
{
    uint64_t left = tr->nbytes - tr->consumed;
    size_t take = len < left ? len : (size_t)left;
    if (tr->taps && take) tr->taps->tap(tr->taps->tap_ctx, tr, tr->consumed, data, take);
    if (!tr->has_stats || !tr->wanted)
        tr->consumed += take;
    else if (sample_plan_exact(&tr->plan))
        feed_exact(tr, data, take);
    else
        feed_sampled(tr, data, take);
    return take;
}

/* A 0-d tensor's one value, typed as the record expects. Integers come back from the
 * statistics' head as doubles, exact up to 2^53. */
static void report_scalar(const struct tensor_reader *tr, struct report *r)
{
    const struct tensor_stats *st = &tr->stats;
    double v = st->head[0];
    if (st->nhead == 0) return;
    switch (st->dtype) {
    case DTYPE_BOOL:
        report_bool(r, tr->name, v != 0);
        return;
    case DTYPE_I64:
    case DTYPE_I32:
    case DTYPE_I16:
    case DTYPE_I8:
    case DTYPE_U64:
    case DTYPE_U32:
    case DTYPE_U16:
    case DTYPE_U8:
        if (v < 0x1p63)
            report_int(r, tr->name, (int64_t)v);
        else
            report_float(r, tr->name, v);
        return;
    default:
        report_float(r, tr->name, v);
        return;
    }
}

void tensor_reader_report(const struct tensor_reader *tr, struct report *r)
{
    if (!tr->has_stats) {
        /* Nothing was decoded: a zeroed accumulator has no finite element, so the
         * record's min/max/mean/std come out null. */
        struct tensor_stats none;
        stats_init(&none, DTYPE_U8);
        report_tensor(r, tr->name, tr->dtype_name, tr->shape, tr->ndim, &none, 0);
        if (report_wants(r, tr->name))
            report_error(r, "%s: statistics not computed for %s", tr->name, tr->dtype_name);
        return;
    }
    uint64_t elements = tr->nbytes / dtype_size(tr->stats.dtype);
    double sampled = elements ? (double)tr->stats.elements / (double)elements : 1.0;
    report_tensor(r, tr->name, tr->dtype_name, tr->shape, tr->ndim, &tr->stats, sampled);
    if (tr->ndim == 0) report_scalar(tr, r);
    if (tr->cut && tr->wanted)
        report_error(r,
                     "%s: statistics cut short by the overhead budget (--budget): %.3g of the "
                     "elements read instead of the plan's %.3g",
                     tr->name, sampled,
                     elements ? (double)tr->plan.picks / (double)tr->plan.pieces : 1.0);
}

/* ---- A head in C order ------------------------------------------------------------ */

void tensor_head_plan(struct tensor_head *h, const int64_t *shape, const int64_t *stride, int ndim)
{
    uint64_t elements, c_stride = 1;
    bool c_order = true;
    h->count = 0;
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] != 1 && (uint64_t)stride[d] != c_stride) c_order = false;
        c_stride *= (uint64_t)shape[d];
    }
    if (c_order || !tensor_shape_elements(shape, ndim, &elements)) return;
    h->count = elements < STATS_HEAD ? (unsigned)elements : STATS_HEAD;
    for (unsigned k = 0; k < h->count; k++) {
        uint64_t rest = k, at = 0;
        for (int d = ndim - 1; d >= 0; d--) {
            at += rest % (uint64_t)shape[d] * (uint64_t)stride[d];
            rest /= (uint64_t)shape[d];
        }
        h->at[k] = at;
    }
}

void tensor_head_plan_fortran(struct tensor_head *h, const int64_t *shape, int ndim)
{
    int64_t stride[TENSOR_FORTRAN_MAX_DIMS], step = 1;
    h->count = 0;
    if (ndim > TENSOR_FORTRAN_MAX_DIMS) return;
    for (int d = 0; d < ndim; d++) {
        stride[d] = step;
        /* Only the strides of the first elements matter; a product past 2^63 is never used. */
        if (__builtin_mul_overflow(step, shape[d], &step)) step = INT64_MAX;
    }
    tensor_head_plan(h, shape, stride, ndim);
}

void tensor_head_catch(struct tensor_head *h, size_t elsize, uint64_t from, const uint8_t *data,
                       size_t n)
{
    for (unsigned k = 0; k < h->count; k++) {
        uint64_t begin = h->at[k] * elsize, end = begin + elsize;
        uint64_t lo = begin > from ? begin : from, hi = end < from + n ? end : from + n;
        if (lo < hi) memcpy(h->bytes + k * elsize + (lo - begin), data + (lo - from), hi - lo);
    }
}

/* Decodes the caught elements the way the statistics decode them. */
void tensor_head_set(const struct tensor_head *h, struct tensor_stats *st)
{
    struct tensor_stats decoded;
    stats_init(&decoded, st->dtype);
    stats_feed(&decoded, h->bytes, h->count * dtype_size(st->dtype));
    memcpy(st->head, decoded.head, sizeof decoded.head);
    st->nhead = decoded.nhead;
}

/* ---- Tensors at known offsets ------------------------------------------------------ */

/* e appended under this name (the sequence's from then on). */
static bool append(struct tensor_sequence *q, const struct tensor_entry *e, char *name)
{
    if (!GROW_FOR_ONE(q->entries, q->count, q->capacity, 16)) return false;
    struct tensor_entry *copy = &q->entries[q->count];
    *copy = *e;
    copy->name = name;
    copy->order = q->count++;
    if (copy->readable)
        copy_cut(copy->dtype_name, sizeof copy->dtype_name, dtype_name(copy->dtype));
    return true;
}

bool tensor_sequence_add(struct tensor_sequence *q, const struct tensor_entry *e)
{
    char *name = strdup(e->name);
    if (name && append(q, e, name)) return true;
    free(name);
    return false;
}

bool tensor_sequence_add_named(struct tensor_sequence *q, const struct tensor_entry *e)
{
    return append(q, e, e->name);
}

/* The entry's name, unless it lies in the sequence's block of names. */
static void free_name(const struct tensor_sequence *q, struct tensor_entry *e)
{
    if (!q->names) free(e->name);
}

static int by_begin(const void *a, const void *b)
{
    const struct tensor_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if ((x->nbytes == 0) != (y->nbytes == 0)) return x->nbytes == 0 ? -1 : 1; /* empty first */
    return x->order < y->order ? -1 : x->order > y->order;
}

void tensor_sequence_sort(struct tensor_sequence *q, struct report *r, const char *format)
{
    size_t kept = 0;
    uint64_t end = 0;
    size_t sorted = 1;
    while (sorted < q->count && by_begin(&q->entries[sorted - 1], &q->entries[sorted]) < 0)
        sorted++;
    /* Writers mostly list their tensors in file order: then qsort, which cost more per
     * entry at 10^5 entries than reading the entry, is not needed. */
    if (sorted < q->count) qsort(q->entries, q->count, sizeof *q->entries, by_begin);
    for (size_t i = 0; i < q->count; i++) {
        struct tensor_entry *e = &q->entries[i];
        uint64_t e_end;
        /* An empty tensor holds no bytes, so it overlaps nothing. */
        if ((e->nbytes > 0 && e->begin < end) ||
            __builtin_add_overflow(e->begin, e->nbytes, &e_end)) {
            report_error(r, "%s: %s: data at byte %" PRIu64 " overlaps the tensor before it",
                         format, e->name, e->begin);
            free_name(q, e);
            continue;
        }
        if (e_end > end) end = e_end;
        q->entries[kept++] = *e;
    }
    q->count = kept;
}

static void start_entry(struct tensor_sequence *q, struct report *r, const struct parse_options *o)
{
    const struct tensor_entry *e = &q->entries[q->next];
    if (!e->readable || !tensor_reader_init(&q->reader, r, e->name, e->dtype, e->shape, e->ndim, o))
        tensor_reader_init_opaque(&q->reader, e->name, e->dtype_name, e->shape, e->ndim, e->nbytes);
    q->reading = true;
}

void tensor_sequence_feed(struct tensor_sequence *q, struct report *r,
                          const struct parse_options *o, uint64_t *offset, const uint8_t *data,
                          size_t len)
{
    while (q->next < q->count) {
        const struct tensor_entry *e = &q->entries[q->next];
        if (!q->reading && *offset < e->begin) {
            if (len == 0) return;
            size_t skip = e->begin - *offset < len ? (size_t)(e->begin - *offset) : len;
            data += skip;
            len -= skip;
            *offset += skip;
            continue;
        }
        if (!q->reading) start_entry(q, r, o);
        size_t n = tensor_reader_feed(&q->reader, data, len);
        data += n;
        len -= n;
        *offset += n;
        if (!tensor_reader_done(&q->reader)) return;
        tensor_reader_report(&q->reader, r);
        q->reading = false;
        q->next++;
    }
    *offset += len;
}

void tensor_sequence_free(struct tensor_sequence *q)
{
    for (size_t i = 0; i < q->count; i++)
        free_name(q, &q->entries[i]);
    free(q->entries);
    free(q->names);
    memset(q, 0, sizeof *q);
}

bool tensor_sequence_finish(const struct tensor_sequence *q, struct report *r, const char *format,
                            uint64_t offset)
{
    if (tensor_sequence_done(q)) return true;
    report_error(r,
                 "%s: data ended at byte %" PRIu64 ", inside or before tensor %s (%zu of %zu read)",
                 format, offset, q->entries[q->next].name, q->next, q->count);
    return false;
}
