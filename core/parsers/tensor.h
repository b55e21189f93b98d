/* tensor.h — one tensor's data streaming past: sampling, statistics, the report.
 *
 * Every tensor format (torch, safetensors, npy/npz, GGUF, numpy arrays in pickles) ends
 * the same way: a known number of bytes of one dtype pass by, in order, and become one
 * entry of the record's "tensors". This is that shared end.
 *
 * Sampling: the data is cut into blocks of TENSOR_SAMPLE_BLOCK bytes; with fraction s,
 * block i is read when floor((i+1)*s) > floor(i*s) — evenly spaced blocks, deterministic,
 * the first block always (it holds `head`). s = 1 reads everything (exact statistics).
 * `sampled` in the record is the fraction of elements actually read.
 *
 * Determinism: a block is handed to the statistics in one call, whatever the writes
 * that carried it (a block that arrives in pieces is gathered first). The statistics'
 * rounding then depends only on the bytes, so a file streamed in any pieces and the
 * same file read by `ckmon inspect` give bit-identical numbers.
 *
 * Under an overhead budget (../budget.h, set for the thread in budget_active), the
 * budget decides instead, block by block, and a block 0 it refuses still gives the
 * head; the numbers then depend on timing, as sampled statistics may.
 */
#ifndef CKMON_TENSOR_H
#define CKMON_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../stats.h"
#include "report.h"

#define TENSOR_MAX_DIMS     16
#define TENSOR_SAMPLE_BLOCK (64 * 1024)

struct tensor_reader {
    char name[512];
    char dtype_name[24]; /* as reported; also for dtypes without statistics */
    bool has_stats;      /* false: a dtype the statistics cannot read (quantized) */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    uint64_t nbytes;   /* the data's total size */
    uint64_t consumed; /* bytes seen so far */
    double sample;
    size_t block_read; /* bytes of the current sampling block the statistics read */
    struct tensor_stats stats;

    const struct report *taps; /* the report whose tap sees the data, or NULL */
    /* Last, so that starting a tensor need not clear it: the current block's bytes so
     * far, when they came in pieces (offset consumed % TENSOR_SAMPLE_BLOCK). */
    uint8_t block[TENSOR_SAMPLE_BLOCK];
};

/* The number of elements of a shape; false when a dimension is negative or the
 * product does not fit in 64 bits. */
bool tensor_shape_elements(const int64_t *shape, int ndim, uint64_t *elements);
/* Prepares for a tensor of the given dtype and shape. Returns false (and reports an
 * error naming the tensor) when the shape is invalid or its byte size overflows. */
bool tensor_reader_init(struct tensor_reader *tr, struct report *r, const char *name,
                        enum dtype dtype, const int64_t *shape, int ndim, double sample);
/* For a dtype without statistics (e.g. GGUF Q8_0): dtype and shape only, nbytes given. */
void tensor_reader_init_opaque(struct tensor_reader *tr, const char *name, const char *dtype_name,
                               const int64_t *shape, int ndim, uint64_t nbytes);
/* Feeds the next bytes of the data; returns how many it took (it stops at the end). */
size_t tensor_reader_feed(struct tensor_reader *tr, const uint8_t *data, size_t len);
static inline bool tensor_reader_done(const struct tensor_reader *tr)
{
    return tr->consumed >= tr->nbytes;
}
/* tensor.h's sampling rule: whether block i of a tensor's data is read with fraction s. */
bool tensor_block_sampled(uint64_t block, double sample);
/* Reports the tensor (and, for a 0-d tensor, its value under the same name). */
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
    size_t next;  /* the entry being read or waited for */
    bool reading; /* reader holds entries[next] */
    struct tensor_reader reader;
};

/* Appends a copy of e (its name copied, its order set); false when out of memory. For
 * a readable dtype, e->nbytes must be the shape's size in that dtype. */
bool tensor_sequence_add(struct tensor_sequence *q, const struct tensor_entry *e);
/* Puts the entries in stream order (on ties: empty ones first, then header order) and
 * drops, with an error prefixed by `format`, each entry whose data overlaps data kept
 * before it. */
void tensor_sequence_sort(struct tensor_sequence *q, struct report *r, const char *format);
/* Takes bytes at stream offset *offset (advanced over all of them): skips gaps, feeds
 * the tensors and reports each one as it completes. len == 0 reports the empty tensors
 * that are due; bytes after the last tensor are ignored. */
void tensor_sequence_feed(struct tensor_sequence *q, struct report *r, double sample,
                          uint64_t *offset, const uint8_t *data, size_t len);
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
