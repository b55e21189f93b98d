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
 */
#ifndef CKMON_TENSOR_H
#define CKMON_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../stats.h"
#include "report.h"

#define TENSOR_MAX_DIMS 16
#define TENSOR_SAMPLE_BLOCK (64 * 1024)

struct tensor_reader {
    char name[512];
    char dtype_name[24];  /* as reported; also for dtypes without statistics */
    bool has_stats;       /* false: a dtype the statistics cannot read (quantized) */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    uint64_t nbytes;      /* the data's total size */
    uint64_t consumed;    /* bytes seen so far */
    double sample;
    struct tensor_stats stats;
};

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
/* Reports the tensor (and, for a 0-d tensor, its value under the same name). */
void tensor_reader_report(const struct tensor_reader *tr, struct report *r);

#endif
