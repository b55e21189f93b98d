/* tensor.h — one tensor's data streaming past: sampling, statistics, the report.
 *
 * Every tensor format (torch, safetensors, npy/npz, GGUF, numpy arrays in pickles) ends
 * the same way: a known number of bytes of one dtype pass by, in order, and become one
 * entry of the record's "tensors". This is that shared end.
 *
 * The sampling plan (--sample s, parse_options.sample): which bytes the statistics read
 * depends only on the tensor's byte size, its element size and s, never on timing or on
 * how the bytes arrive. A tensor of at most TENSOR_EXACT_BYTES, or any tensor when s = 1,
 * is read whole. A larger one is cut into pieces of P bytes: a cache line (TENSOR_LINE;
 * every dtype's elements fit whole), or for a large tensor the longest power of two up
 * to TENSOR_PIECE_MAX bytes and STATS_CLUSTER_MAX elements that still leaves at least
 * TENSOR_PIECES_READ pieces to read (ceil(s T) of its T pieces): the same fraction in
 * fewer, longer pieces, which cost a jump and a page walk each, not one per 64 bytes
 * (TENSOR_PIECES_READ is twice the least plan's 1024 lines: with 1024, the accuracy
 * test's ci95 coverage fell one tensor short; docs/performance.md). Of its T pieces it
 * reads K = max(ceil(s T), TENSOR_EXACT_BYTES / TENSOR_LINE) (all when that is T): piece
 * stratum j = [floor(jT/K), floor((j+1)T/K)) contributes one piece, at a position inside
 * it drawn by a fixed hash of j (jittered systematic sampling), and stratum 0 its first
 * piece, which holds `head`. So the pieces read are spread evenly over the whole tensor
 * without falling into step with a layout's period. `sampled` in the record is the
 * fraction of elements read, and the statistics' per-piece sums (stats.h, clusters: a
 * piece is one cluster, its elements are not independent draws) give its ci95.
 *
 * Determinism: the read pieces are gathered and handed to the statistics TENSOR_GATHER
 * bytes at a time, an exact tensor's data TENSOR_SAMPLE_BLOCK bytes at a time (a block
 * that arrives in pieces is put together first), whatever the writes that carried them.
 * The statistics' rounding then depends only on the bytes, so a file streamed in any
 * pieces and the same file read by `ckmon inspect` give bit-identical numbers.
 *
 * The safety net (parse_options.budget, ../budget.h; the agent's, absent elsewhere):
 * before each gathered chunk or exact block after a tensor's first piece, the reader asks
 * the budget; once it refuses, the rest of the tensor is skipped and the tensor is marked
 * cut (tensor_reader_report then says so in the record's errors). Under normal load the
 * budget never refuses, so it never changes what is read.
 */
#ifndef CKMON_TENSOR_H
#define CKMON_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../stats.h"
#include "parser.h"
#include "report.h"

#define TENSOR_MAX_DIMS     16
#define TENSOR_SAMPLE_BLOCK (64 * 1024) /* an exact tensor's bytes per statistics call */
#define TENSOR_LINE         64          /* the shortest piece */
#define TENSOR_PIECE_MAX    4096        /* the longest piece: a page */
#define TENSOR_PIECES_READ  2048        /* pieces lengthen only down to this many read */
#define TENSOR_EXACT_BYTES  (64 * 1024) /* at most this: read whole; more: at least this */
#define TENSOR_GATHER       (8 * 1024)  /* gathered piece bytes per statistics call */
#define TENSOR_PREFETCH     8           /* pieces asked of memory before they are copied */
#define TENSOR_UPCOMING     16          /* a power of two over TENSOR_PREFETCH */

/* Which pieces a tensor's statistics read (see above): K of T, K == T when exact. */
struct sample_plan {
    uint64_t pieces, picks;
    uint64_t step, extra; /* T / K and T mod K, for the cursor */
    unsigned piece;       /* P, bytes: TENSOR_LINE, or longer for a large tensor */
};
/* For nbytes of elements of elsize bytes each. */
void sample_plan_init(struct sample_plan *p, uint64_t nbytes, size_t elsize, double sample);
static inline bool sample_plan_exact(const struct sample_plan *p)
{
    return p->picks >= p->pieces;
}
/* The piece stratum j (< picks) contributes (its byte offset: times p->piece). */
uint64_t sample_plan_piece(const struct sample_plan *p, uint64_t j);

/* The same pieces in order, without a division per piece: the cursor keeps stratum j's
 * first piece and jT mod K, and steps to the next stratum by adding. Zeroed: stratum 0. */
struct sample_cursor {
    uint64_t j, begin, rest;
};
/* The piece of the cursor's stratum (UINT64_MAX past the last), then the next stratum. */
uint64_t sample_cursor_next(struct sample_cursor *c, const struct sample_plan *p);

struct tensor_reader {
    char name[512];
    char dtype_name[24]; /* as reported; also for dtypes without statistics */
    bool has_stats;      /* false: a dtype the statistics cannot read (quantized) */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    uint64_t nbytes;   /* the data's total size */
    uint64_t consumed; /* bytes seen so far */
    bool wanted;       /* false: --keys leaves it out, nothing is decoded */
    bool cut;          /* the budget stopped the reading early */
    struct budget *budget;
    struct sample_plan plan;
    uint64_t pick;              /* sampled: the stratum whose piece comes next */
    uint64_t pick_at;           /* its byte offset in the data */
    struct sample_cursor ahead; /* TENSOR_PREFETCH strata further: pieces to prefetch */
    /* The pieces of the strata from pick to the ahead cursor's, each computed once, when
     * it is prefetched (stratum j's at j % TENSOR_UPCOMING). */
    uint64_t upcoming[TENSOR_UPCOMING];
    size_t gathered;    /* sampled: bytes in block waiting for the statistics */
    size_t block_read;  /* exact: bytes of the current block the statistics read */
    long long chunk_ns; /* under a budget: when the current chunk's reading began */
    struct tensor_stats stats;

    const struct report *taps; /* the report whose tap sees the data, or NULL */
    /* Last, so that starting a tensor need not clear it: the gathered pieces, or the
     * current exact block's bytes when they came in pieces. */
    uint8_t block[TENSOR_SAMPLE_BLOCK];
};

/* The number of elements of a shape; false when a dimension is negative or the
 * product does not fit in 64 bits. */
bool tensor_shape_elements(const int64_t *shape, int ndim, uint64_t *elements);
/* Prepares for a tensor of the given dtype and shape. Returns false (and reports an
 * error naming the tensor) when the shape is invalid or its byte size overflows. */
bool tensor_reader_init(struct tensor_reader *tr, struct report *r, const char *name,
                        enum dtype dtype, const int64_t *shape, int ndim,
                        const struct parse_options *o);
/* For a dtype without statistics (e.g. GGUF Q8_0): dtype and shape only, nbytes given. */
void tensor_reader_init_opaque(struct tensor_reader *tr, const char *name, const char *dtype_name,
                               const int64_t *shape, int ndim, uint64_t nbytes);
/* Feeds the next bytes of the data; returns how many it took (it stops at the end). */
size_t tensor_reader_feed(struct tensor_reader *tr, const uint8_t *data, size_t len);
static inline bool tensor_reader_done(const struct tensor_reader *tr)
{
    return tr->consumed >= tr->nbytes;
}
/* Reports the tensor (and, for a 0-d tensor, its value under the same name), and an
 * error when the budget cut its reading short. */
void tensor_reader_report(const struct tensor_reader *tr, struct report *r);

/* ---- A head in C order for data stored in another order ----------------------------
 * A Fortran-order array or a transposed view holds its elements in another order than
 * C order (last index fastest), so the first elements to pass are not its head. This
 * says where its first STATS_HEAD elements lie, catches their bytes as the data passes
 * and puts them into the statistics' head once the data is done. */
struct tensor_head {
    unsigned count;          /* 0: C order, the statistics' own head is right */
    uint64_t at[STATS_HEAD]; /* element positions in the data */
    uint8_t bytes[STATS_HEAD * 8];
};

/* For elements stored at position sum(index[d] * stride[d]). */
void tensor_head_plan(struct tensor_head *h, const int64_t *shape, const int64_t *stride, int ndim);
/* For a Fortran-order (column-major: first index fastest) array of this shape; ndim at
 * most TENSOR_FORTRAN_MAX_DIMS (numpy's own limit), else no head is planned. */
#define TENSOR_FORTRAN_MAX_DIMS 32
void tensor_head_plan_fortran(struct tensor_head *h, const int64_t *shape, int ndim);
/* data holds the bytes from data byte `from` on. */
void tensor_head_catch(struct tensor_head *h, size_t elsize, uint64_t from, const uint8_t *data,
                       size_t n);
void tensor_head_set(const struct tensor_head *h, struct tensor_stats *st);

/* ---- Tensors at known offsets of one stream (safetensors, GGUF) ------------------
 * Such formats list their tensors in a header, each at an offset of the stream, in an
 * order of the writer's choosing; the data then passes by once, in file order. */
struct tensor_entry {
    char *name;          /* owned by the sequence */
    char dtype_name[24]; /* for dtypes without statistics */
    bool readable;       /* dtype is one the statistics read */
    enum dtype dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    uint64_t begin, nbytes; /* where the data is, as stream offsets */
    size_t order;           /* position in the header */
};

struct tensor_sequence {
    struct tensor_entry *entries;
    size_t count, capacity;
    /* NULL, or one block, freed with the sequence, that holds every entry's name
     * (tensor_sequence_add_named): a name each costs a malloc and a free per tensor. */
    char *names;
    size_t next;  /* the entry being read or waited for */
    bool reading; /* reader holds entries[next] */
    struct tensor_reader reader;
};

/* Appends a copy of e (its name copied, its order set); false when out of memory. For
 * a readable dtype, e->nbytes must be the shape's size in that dtype. */
bool tensor_sequence_add(struct tensor_sequence *q, const struct tensor_entry *e);
/* The same without the copy: e->name lies in q->names, as all the entries' names then. */
bool tensor_sequence_add_named(struct tensor_sequence *q, const struct tensor_entry *e);
/* Puts the entries in stream order (on ties: empty ones first, then header order) and
 * drops, with an error prefixed by `format`, each entry whose data overlaps data kept
 * before it. */
void tensor_sequence_sort(struct tensor_sequence *q, struct report *r, const char *format);
/* Takes bytes at stream offset *offset (advanced over all of them): skips gaps, feeds
 * the tensors and reports each one as it completes. len == 0 reports the empty tensors
 * that are due; bytes after the last tensor are ignored. */
void tensor_sequence_feed(struct tensor_sequence *q, struct report *r,
                          const struct parse_options *o, uint64_t *offset, const uint8_t *data,
                          size_t len);
static inline bool tensor_sequence_done(const struct tensor_sequence *q)
{
    return q->next == q->count;
}
/* The stream ended at offset: true when every tensor was read, else reports which one
 * the data stopped at. */
bool tensor_sequence_finish(const struct tensor_sequence *q, struct report *r, const char *format,
                            uint64_t offset);
void tensor_sequence_free(struct tensor_sequence *q);

#endif
