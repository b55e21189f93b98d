/* stats.h — streaming statistics over the elements of one tensor.
 *
 * A tensor's bytes arrive in pieces of any size (a write may end in the middle of an
 * element), so the accumulator carries a partial element between calls. Sums are kept
 * in double precision per block and blocks are merged with Chan's parallel formula, so
 * the mean and the population standard deviation stay accurate over billions of
 * elements. min/max/mean/std are over the finite elements only; NaN and ±Inf are
 * counted. The caller decides which bytes to feed (sampling happens above this layer).
 */
#ifndef CKMON_STATS_H
#define CKMON_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Element types, little-endian as every supported format stores them. */
enum dtype {
    DTYPE_F64,
    DTYPE_F32,
    DTYPE_F16,
    DTYPE_BF16,
    DTYPE_F8_E4M3,
    DTYPE_F8_E5M2,
    DTYPE_I64,
    DTYPE_I32,
    DTYPE_I16,
    DTYPE_I8,
    DTYPE_U64,
    DTYPE_U32,
    DTYPE_U16,
    DTYPE_U8,
    DTYPE_BOOL,
    DTYPE_COUNT
};

#define STATS_HEAD 8

/* Sums over the clusters of a sample (runs of `cluster` consecutive elements fed: the
 * pieces a sampled tensor reads), for the confidence intervals: per cluster j its finite
 * count m_j and the sums A_j, B_j of d and d^2, d = x - shift, over its finite elements;
 * accumulated here as the cross products the interval needs. */
struct cluster_sums {
    bool ready;   /* shift is set (at the first block) */
    double shift; /* the first block's mean of finite values */
    uint64_t count;
    double mm, ma, mb, aa, ab, bb; /* sums of m^2, mA, mB, A^2, AB, B^2 */
};

struct tensor_stats {
    enum dtype dtype;
    uint64_t elements; /* every element fed: finite + nan + inf */
    uint64_t finite;
    uint64_t nan;
    uint64_t inf;
    double min, max;         /* over finite elements; meaningless while finite == 0 */
    double mean;             /* running mean of the finite elements */
    double m2;               /* sum of squared deviations from the mean */
    double head[STATS_HEAD]; /* the first elements, NaN/Inf included */
    unsigned nhead;
    uint8_t carry[8]; /* bytes of an element split across two feeds */
    unsigned ncarry;
    unsigned cluster; /* elements per cluster, 0: none kept (exact statistics) */
    struct cluster_sums clusters;
};

/* Name as records spell it ("float32", "bfloat16", "bool", ...), and size in bytes. */
const char *dtype_name(enum dtype t);
size_t dtype_size(enum dtype t);

/* n elements of type t from src (any alignment) as doubles, as the statistics see them. */
void dtype_decode(enum dtype t, const void *src, double *dst, size_t n);

void stats_init(struct tensor_stats *s, enum dtype t);
/* Feed raw element bytes; len need not be a multiple of the element size. */
void stats_feed(struct tensor_stats *s, const void *bytes, size_t len);
/* Population standard deviation of the finite elements (0 when finite == 0). */
double stats_std(const struct tensor_stats *s);

/* The elements fed from now on form clusters of `elements` each (a sample of whole
 * pieces; feeds must keep to cluster boundaries except at the very end). `elements` is a
 * power of two up to STATS_CLUSTER_MAX, so that a cluster never spans two of the blocks
 * the statistics work in. */
#define STATS_CLUSTER_MAX 1024
void stats_set_cluster(struct tensor_stats *s, unsigned elements);
/* Half-widths of confidence intervals for the mean and the population std of the whole
 * tensor from which the clusters fed were drawn, `fraction` of it (the finite population
 * correction). The clusters are treated as a simple random sample of lines (the plan's
 * strata only make the true error smaller), the ratio estimator's variance by
 * linearization: for the mean from r_j = sum(x - mean), for the variance from
 * z_j = sum((x - mean)^2) - m_j var, i.e. the sample's own fourth moment when clusters
 * are single elements; the std's by the delta method. Each interval is at level 97.5%
 * (z = STATS_CI_Z), so that both hold together at least 95% of the time (Bonferroni).
 * False when there is no such sample (exact statistics, fewer than two clusters, no
 * finite element). */
#define STATS_CI_Z 2.2414
bool stats_ci95(const struct tensor_stats *s, double fraction, double *mean_half, double *std_half);

/* Which compiled kernel stats_feed uses: chosen from the CPU at first use (AUTO), or
 * forced, so that the tests and the benchmark can compare the two. Returns the one now
 * in use (AVX2 is refused on a CPU without it). */
enum stats_kernel { STATS_KERNEL_AUTO, STATS_KERNEL_PORTABLE, STATS_KERNEL_AVX2 };
enum stats_kernel stats_select_kernel(enum stats_kernel k);

#endif
