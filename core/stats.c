/* stats.c — streaming tensor statistics (see stats.h).
 *
 * This is the hot loop of ckmon: every tensor byte a monitored program writes passes
 * through it, so it has to run near memory bandwidth. Elements are handled in blocks
 * of BLOCK: a block is decoded to doubles in a buffer that stays in L1, its moments
 * are computed there, and the block is merged into the running totals with Chan et
 * al.'s formula, so accuracy does not degrade with the number of elements.
 *
 * Within a block, one pass sums the deviations d = x - shift and d^2 from a shift
 * close to the mean (the running mean of the blocks before, or the block's first
 * element), with m2 = sum(d^2) - sum(d)^2 / n. Its relative rounding error grows with
 * (mean - shift)^2 / variance; when that ratio is large (a first element far out, or
 * sorted data), a second pass around the block's own mean does the classic corrected
 * two-pass computation. A NaN or Inf makes sum(d) non-finite; only then does a block
 * look at each element's class (the slow path drops the non-finite ones and retries).
 *
 * The loops are written for gcc -O2 without -ffast-math. Its vectorizer (the "very
 * cheap" cost model) only takes loops it can cover without a scalar remainder, so each
 * loop runs over a count the compiler can see is a multiple of a group, followed by a
 * scalar tail. It never reorders a floating-point reduction either, so a block is
 * viewed as ROWS rows and one loop over the columns adds up each column in registers
 * (a map, which vectorizes), leaving a few column totals to add at the end. Within a
 * column the rows feed four independent chains of partial sums, so the additions'
 * latency overlaps (this doubled the speed from L2 over one chain of 16 rows). Selects
 * are written so that gcc if-converts them.
 *
 * The per-element code is compiled twice (everything on that path is always_inline):
 * a portable build, and one for AVX2 with FMA and F16C, chosen from the CPU at first
 * use. The AVX2 build also has one-pass kernels for float64, float32, float16 and bfloat16
 * (see ONE_PASS), which take 8 KiB of elements at a time once a tensor's head is read; they
 * prefetch ahead of their reads, and sum around 0 rather than the mean when the mean is
 * near 0 (centered_shift). 8 KiB with a NaN among them are summed again without it by a
 * pass of its own (the NaN pass), not decoded into doubles block by block; an Inf, and
 * float64's NaNs, take the general path. A flag through the inlined
 * chain, constant in each, lets the AVX2 build decode the 16-bit floats with intrinsics of
 * its own: float16 with vcvtph2ps, as exact as the portable bit manipulation and like it
 * unaffected by DAZ, and bfloat16 with a word unpack that gcc does not find.
 * tests/unit/test_stats.c checks both against a reference, and each 16-bit pattern's exact
 * value; tools/bench/stats_speed.c measures both.
 */
#include "stats.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#endif

/* Everything on the per-element path is inlined into the two entry points below, so
 * that each is compiled whole for its instruction set. */
#define HOT __attribute__((always_inline)) inline

#define BLOCK          1024 /* elements per block: 8 KiB of doubles, comfortably inside L1 */
#define DECODE_GROUP   32   /* decoding loop counts are multiples of this: any vector width */
#define COLUMN_GROUP   8    /* and column counts of this (8 doubles: the widest vector) */
#define ROWS           32   /* a block folds into BLOCK / ROWS column totals (a multiple of 4) */
#define MAX_COLUMNS    (BLOCK / ROWS)
#define ONE_PASS_BYTES 8192 /* source bytes the AVX2 one pass takes at once (feed_blocks) */
_Static_assert(BLOCK % STATS_CLUSTER_MAX == 0, "a cluster lies inside one block");
/* Above this (mean - shift)^2 / variance, a block's m2 from one pass could lose more
 * than about 2^-32 of its value to rounding, and a second pass is taken. */
#define SHIFT_LIMIT 0x1p20

/* Moments of a set of finite values: what two sets need to be merged exactly. */
struct moments {
    uint64_t count;
    double mean, m2, min, max;
};

/* Sums over a block of deviations from a shift, and its range. */
struct block_sums {
    double dev, dev2, min, max;
};

/* ---- Element decoding: little-endian bytes to exact doubles ---------------------- */

static inline float float_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t bits_from_float(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Branch-free choice between two bit patterns: gcc if-converts (and so vectorizes) an
 * integer select but not one between floats, since with -ftrapping-math it will not
 * compute a float conversion on a path that did not ask for it. */
static inline uint32_t select_bits(bool cond, uint32_t when_true, uint32_t when_false)
{
    uint32_t mask = -(uint32_t)cond;
    return (when_true & mask) | (when_false & ~mask);
}

/* IEEE half to float, exact (the method of Fabian Giesen's half_to_float_fast):
 * normal numbers by moving the fields and rebiasing the exponent; Inf and NaN by
 * rebiasing further to an all-ones exponent; subnormals as 2^-14 * (1 + m/1024) minus
 * 2^-14, so that no float denormal is ever an operand (a program running with DAZ
 * would read one as 0). */
static inline float half_to_float(uint32_t h)
{
    uint32_t bits = (h & 0x7fff) << 13, exponent = bits & 0x0f800000;
    bits += (127 - 15) << 23;
    bits += select_bits(exponent == 0x0f800000, (128 - 16) << 23, 0);
    bits += select_bits(exponent == 0, 1 << 23, 0);
    float v = float_from_bits(bits) - float_from_bits(select_bits(exponent == 0, 113 << 23, 0));
    return float_from_bits(bits_from_float(v) | (h & 0x8000) << 16);
}

/* float8 e4m3fn (PyTorch float8_e4m3fn, safetensors F8_E4M3): bias 7, no infinities,
 * only S.1111.111 is NaN, so the largest value is 448. Same method as for halves. */
static inline float e4m3fn_to_float(uint32_t b)
{
    uint32_t bits = (b & 0x7f) << 20, exponent = bits & 0x07800000;
    bits += (127 - 7) << 23;
    bits += select_bits(exponent == 0, 1 << 23, 0);
    float v = float_from_bits(bits) - float_from_bits(select_bits(exponent == 0, 121 << 23, 0));
    bits = select_bits((b & 0x7f) == 0x7f, 0x7fc00000, bits_from_float(v));
    return float_from_bits(bits | (b & 0x80) << 24);
}

static inline double load_f32(const uint8_t *p)
{
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t load_u16_bits(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline double load_f16(const uint8_t *p)
{
    return half_to_float(load_u16_bits(p));
}

/* bfloat16 is the top half of a float. */
static inline double load_bf16(const uint8_t *p)
{
    return float_from_bits(load_u16_bits(p) << 16);
}

/* e5m2 is the top byte of an IEEE half. */
static inline double load_f8_e5m2(const uint8_t *p)
{
    return half_to_float((uint32_t)p[0] << 8);
}

static inline double load_f8_e4m3(const uint8_t *p)
{
    return e4m3fn_to_float(p[0]);
}

#define LOAD_INT(name, type)                                                                       \
    static inline double load_##name(const uint8_t *p)                                             \
    {                                                                                              \
        type v;                                                                                    \
        memcpy(&v, p, sizeof v);                                                                   \
        return (double)v;                                                                          \
    }
LOAD_INT(i64, int64_t)
LOAD_INT(i32, int32_t)
LOAD_INT(i16, int16_t)
LOAD_INT(i8, int8_t)
LOAD_INT(u64, uint64_t)
LOAD_INT(u32, uint32_t)
LOAD_INT(u16, uint16_t)
LOAD_INT(u8, uint8_t)

static inline double load_bool(const uint8_t *p)
{
    return p[0] != 0;
}

/* One decoder per dtype: n elements from src (any alignment) into dst. */
#define DECODER(name, size)                                                                        \
    static HOT void decode_##name(const uint8_t *restrict src, double *restrict dst, size_t n)     \
    {                                                                                              \
        size_t body = n / DECODE_GROUP * DECODE_GROUP;                                             \
        for (size_t i = 0; i < body; i++)                                                          \
            dst[i] = load_##name(src + i * (size));                                                \
        for (size_t i = body; i < n; i++)                                                          \
            dst[i] = load_##name(src + i * (size));                                                \
    }
/* float64 is already what the blocks hold: a copy (gcc would not vectorize the loop). */
static HOT void decode_f64(const uint8_t *restrict src, double *restrict dst, size_t n)
{
    memcpy(dst, src, n * sizeof *dst);
}
DECODER(f32, 4)
DECODER(f16, 2)
DECODER(bf16, 2)
DECODER(f8_e4m3, 1)
DECODER(f8_e5m2, 1)
DECODER(i64, 8)
DECODER(i32, 4)
DECODER(i16, 2)
DECODER(i8, 1)
DECODER(u64, 8)
DECODER(u32, 4)
DECODER(u16, 2)
DECODER(u8, 1)
DECODER(bool, 1)

#if defined(__x86_64__) && defined(__GNUC__)
/* The AVX2 kernel's instruction sets. Every AVX2 CPU so far has F16C, but it is a
 * CPUID bit of its own, so cpu_has_avx2() checks it too. */
#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))

/* The AVX2 kernel's decoders for the 16-bit floats, written with intrinsics since gcc
 * does not find these instructions. They are not always_inline: decode(), compiled on
 * its own for no particular CPU before it is inlined into either kernel, could not take
 * them in; one call per block costs nothing. */

/* vcvtph2ps does in one instruction what half_to_float takes a dozen for, and as
 * exactly: a subnormal half becomes a normal float, and MXCSR.DAZ is ignored for its
 * half inputs (Intel SDM, VCVTPH2PS), so a program running with DAZ/FTZ still gets its
 * subnormals. The scalar tail uses it too: the AVX2 kernel has one float16 method. */
AVX2_TARGET static void decode_f16_avx2(const uint8_t *restrict src, double *restrict dst, size_t n)
{
    size_t body = n / 8 * 8;
    for (size_t i = 0; i < body; i += 8) {
        __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * i)));
        _mm256_storeu_pd(dst + i, _mm256_cvtps_pd(_mm256_castps256_ps128(f)));
        _mm256_storeu_pd(dst + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)));
    }
    for (size_t i = body; i < n; i++)
        dst[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)load_u16_bits(src + 2 * i))));
}

/* Interleaving zero words below the bfloat16 words makes four floats in one instruction,
 * where gcc zero-extends, shifts and extracts; the kernel runs a fifth faster from L1. */
AVX2_TARGET static void decode_bf16_avx2(const uint8_t *restrict src, double *restrict dst,
                                         size_t n)
{
    size_t body = n / 8 * 8;
    __m128i zero = _mm_setzero_si128();
    for (size_t i = 0; i < body; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + 2 * i));
        __m128 lo = _mm_castsi128_ps(_mm_unpacklo_epi16(zero, h));
        __m128 hi = _mm_castsi128_ps(_mm_unpackhi_epi16(zero, h));
        _mm256_storeu_pd(dst + i, _mm256_cvtps_pd(lo));
        _mm256_storeu_pd(dst + i + 4, _mm256_cvtps_pd(hi));
    }
    for (size_t i = body; i < n; i++)
        dst[i] = load_bf16(src + 2 * i);
}
#else
/* Never asked for: there is no AVX2 kernel here. */
#define decode_f16_avx2  decode_f16
#define decode_bf16_avx2 decode_bf16
#endif

/* avx2: the caller is the AVX2 kernel (a constant once inlined). */
static HOT void decode(enum dtype t, const uint8_t *restrict src, double *restrict dst, size_t n,
                       bool avx2)
{
    switch (t) {
#define DECODE_CASE(type, name)                                                                    \
    case type:                                                                                     \
        return decode_##name(src, dst, n);
    case DTYPE_F16:
        return avx2 ? decode_f16_avx2(src, dst, n) : decode_f16(src, dst, n);
    case DTYPE_BF16:
        return avx2 ? decode_bf16_avx2(src, dst, n) : decode_bf16(src, dst, n);
        DECODE_CASE(DTYPE_F64, f64)
        DECODE_CASE(DTYPE_F32, f32)
        DECODE_CASE(DTYPE_F8_E4M3, f8_e4m3)
        DECODE_CASE(DTYPE_F8_E5M2, f8_e5m2)
        DECODE_CASE(DTYPE_I64, i64)
        DECODE_CASE(DTYPE_I32, i32)
        DECODE_CASE(DTYPE_I16, i16)
        DECODE_CASE(DTYPE_I8, i8)
        DECODE_CASE(DTYPE_U64, u64)
        DECODE_CASE(DTYPE_U32, u32)
        DECODE_CASE(DTYPE_U16, u16)
        DECODE_CASE(DTYPE_U8, u8)
        DECODE_CASE(DTYPE_BOOL, bool)
#undef DECODE_CASE
    default:
        return;
    }
}

static const struct {
    const char *name;
    size_t size;
} dtypes[DTYPE_COUNT] = {
    [DTYPE_F64] = {"float64", 8},
    [DTYPE_F32] = {"float32", 4},
    [DTYPE_F16] = {"float16", 2},
    [DTYPE_BF16] = {"bfloat16", 2},
    [DTYPE_F8_E4M3] = {"float8_e4m3fn", 1},
    [DTYPE_F8_E5M2] = {"float8_e5m2", 1},
    [DTYPE_I64] = {"int64", 8},
    [DTYPE_I32] = {"int32", 4},
    [DTYPE_I16] = {"int16", 2},
    [DTYPE_I8] = {"int8", 1},
    [DTYPE_U64] = {"uint64", 8},
    [DTYPE_U32] = {"uint32", 4},
    [DTYPE_U16] = {"uint16", 2},
    [DTYPE_U8] = {"uint8", 1},
    [DTYPE_BOOL] = {"bool", 1},
};

static bool dtype_valid(enum dtype t)
{
    return (unsigned)t < DTYPE_COUNT;
}

const char *dtype_name(enum dtype t)
{
    return dtype_valid(t) ? dtypes[t].name : "unknown";
}

size_t dtype_size(enum dtype t)
{
    return dtype_valid(t) ? dtypes[t].size : 0;
}

/* ---- Block moments ------------------------------------------------------------- */

/* Adds one column's totals (or one element: d, d*d, x, x) to a block's sums. */
static HOT void add_column(struct block_sums *s, double dev, double dev2, double lo, double hi)
{
    s->dev += dev;
    s->dev2 += dev2;
    s->min = lo < s->min ? lo : s->min;
    s->max = hi > s->max ? hi : s->max;
}

/* The block's n values viewed as ROWS rows of cols columns: each column's sums. */
/* One row's element of column c into chain k's sums. */
#define FOLD_ROW(k, r)                                                                             \
    do {                                                                                           \
        double v = x[(r)*cols + c], d = v - shift;                                                 \
        d1_##k += d;                                                                               \
        d2_##k += d * d;                                                                           \
        l_##k = v < l_##k ? v : l_##k;                                                             \
        h_##k = v > h_##k ? v : h_##k;                                                             \
    } while (0)

/* Each column's rows go to four independent chains of partial sums (rows r, r+1, r+2,
 * r+3), so that the additions' latency overlaps instead of adding up row after row. */
static HOT void fold_columns(const double *restrict x, size_t cols, double shift,
                             double *restrict dev, double *restrict dev2, double *restrict lo,
                             double *restrict hi)
{
    for (size_t c = 0; c < cols; c++) {
        double d1_0 = 0, d1_1 = 0, d1_2 = 0, d1_3 = 0, d2_0 = 0, d2_1 = 0, d2_2 = 0, d2_3 = 0;
        double l_0 = INFINITY, l_1 = INFINITY, l_2 = INFINITY, l_3 = INFINITY;
        double h_0 = -INFINITY, h_1 = -INFINITY, h_2 = -INFINITY, h_3 = -INFINITY;
#pragma GCC unroll 8
        for (size_t r = 0; r < ROWS; r += 4) {
            FOLD_ROW(0, r);
            FOLD_ROW(1, r + 1);
            FOLD_ROW(2, r + 2);
            FOLD_ROW(3, r + 3);
        }
        dev[c] = (d1_0 + d1_1) + (d1_2 + d1_3);
        dev2[c] = (d2_0 + d2_1) + (d2_2 + d2_3);
        l_0 = l_1 < l_0 ? l_1 : l_0;
        l_2 = l_3 < l_2 ? l_3 : l_2;
        lo[c] = l_2 < l_0 ? l_2 : l_0;
        h_0 = h_1 > h_0 ? h_1 : h_0;
        h_2 = h_3 > h_2 ? h_3 : h_2;
        hi[c] = h_2 > h_0 ? h_2 : h_0;
    }
}

static HOT struct block_sums sum_block(const double *restrict x, size_t n, double shift)
{
    double dev[MAX_COLUMNS], dev2[MAX_COLUMNS], lo[MAX_COLUMNS], hi[MAX_COLUMNS];
    size_t cols = n / (ROWS * COLUMN_GROUP) * COLUMN_GROUP;
    struct block_sums s = {0, 0, INFINITY, -INFINITY};

    fold_columns(x, cols, shift, dev, dev2, lo, hi);
    for (size_t c = 0; c < cols; c++)
        add_column(&s, dev[c], dev2[c], lo[c], hi[c]);
    for (size_t i = cols * ROWS; i < n; i++) {
        double d = x[i] - shift;
        add_column(&s, d, d * d, x[i], x[i]);
    }
    return s;
}

/* Moments of a block's n > 0 values around shift. The mean comes out non-finite when
 * a value is NaN or Inf (or the sums overflow); the caller checks. */
/* The moments from one pass's sums; *again when they may have lost too much to rounding
 * (far from the shift) and a pass around the block's own mean should be taken. */
static HOT struct moments sums_moments(struct block_sums s, size_t n, double shift, bool *again)
{
    struct moments m = {.count = n, .min = s.min, .max = s.max};
    double correction = s.dev * s.dev / (double)n;
    m.mean = shift + s.dev / (double)n;
    m.m2 = s.dev2 - correction;
    *again = isfinite(m.mean) && correction > m.m2 * SHIFT_LIMIT;
    return m;
}

static HOT struct moments block_moments(const double *restrict x, size_t n, double shift)
{
    bool again;
    struct moments m = sums_moments(sum_block(x, n, shift), n, shift, &again);
    if (again) {
        struct block_sums s = sum_block(x, n, m.mean);
        m.mean += s.dev / (double)n;
        m.m2 = s.dev2 - s.dev * s.dev / (double)n;
    }
    if (m.m2 < 0) m.m2 = 0;
    return m;
}

/* Moves the finite values of x to its front, counting the NaNs and Infs left out;
 * returns how many are finite. Only blocks that hold a non-finite value come here. */
static HOT size_t keep_finite(double *x, size_t n, uint64_t *nan, uint64_t *inf)
{
    size_t kept = 0, nans = 0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        x[kept] = v;
        kept += v - v == 0; /* false for NaN and ±Inf alike */
        nans += v != v;
    }
    *nan += nans;
    *inf += n - kept - nans;
    return kept;
}

/* Chan et al.: the moments of the union of two disjoint sets. */
static HOT void merge_moments(struct tensor_stats *s, const struct moments *b)
{
    if (b->count == 0) return;
    if (s->finite == 0) {
        s->min = b->min;
        s->max = b->max;
        s->mean = b->mean;
        s->m2 = b->m2;
        s->finite = b->count;
        return;
    }
    double na = (double)s->finite, nb = (double)b->count, n = na + nb;
    double delta = b->mean - s->mean;
    s->mean += delta * (nb / n);
    s->m2 += b->m2 + delta * delta * (na / n) * nb;
    s->min = b->min < s->min ? b->min : s->min;
    s->max = b->max > s->max ? b->max : s->max;
    s->finite += b->count;
}

/* A cluster's finite count and sums of d, d^2 around shift: four chains each, so that the
 * additions overlap; a NaN or Inf makes a sum non-finite, and only then are the
 * elements looked at one by one. */
static HOT void cluster_sums(const double *x, size_t n, double shift, double *m, double *a,
                             double *b)
{
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    size_t body = n / 4 * 4;
    for (size_t i = 0; i < body; i += 4) {
        double d0 = x[i] - shift, d1 = x[i + 1] - shift, d2 = x[i + 2] - shift,
               d3 = x[i + 3] - shift;
        a0 += d0, a1 += d1, a2 += d2, a3 += d3;
        b0 += d0 * d0, b1 += d1 * d1, b2 += d2 * d2, b3 += d3 * d3;
    }
    for (size_t i = body; i < n; i++) {
        double d = x[i] - shift;
        a0 += d, b0 += d * d;
    }
    *a = (a0 + a1) + (a2 + a3);
    *b = (b0 + b1) + (b2 + b3);
    *m = (double)n;
    if (isfinite(*a) && isfinite(*b)) return;
    *a = *b = *m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - shift;
        if (!(x[i] - x[i] == 0)) continue;
        *a += d, *b += d * d, *m += 1;
    }
}

/* The shift to sum deviations from, for values of this mean and variance: 0 when the mean
 * is within a quarter of a standard deviation of it, as for most weights. The rounding
 * error of m2 = sum(d^2) - sum(d)^2 / n grows with 1 + (mean - shift)^2 / variance, so a
 * shift of 0 costs at most 1/16 of it over the mean itself, and the AVX2 kernels leave
 * out a subtraction per four elements: a sixth of the 16-bit kernels' instructions. */
static HOT double centered_shift(double mean, double variance)
{
    return mean * mean * 16 <= variance ? 0 : mean;
}

/* Adds the clusters of n decoded values (stats.h, struct cluster_sums). */
static HOT void add_clusters(struct tensor_stats *s, const double *x, size_t n)
{
    struct cluster_sums *c = &s->clusters;
    if (!c->ready) {
        double sum = 0, count = 0, squares = 0;
        for (size_t i = 0; i < n; i++)
            if (x[i] - x[i] == 0) sum += x[i], count++;
        double mean = count > 0 ? sum / count : 0;
        for (size_t i = 0; i < n; i++)
            if (x[i] - x[i] == 0) squares += (x[i] - mean) * (x[i] - mean);
        c->shift = count > 0 ? centered_shift(mean, squares / count) : 0;
        c->ready = true;
    }
    for (size_t i = 0; i < n; i += s->cluster) {
        double m, a, b;
        cluster_sums(x + i, n - i < s->cluster ? n - i : s->cluster, c->shift, &m, &a, &b);
        c->count++;
        c->mm += m * m, c->ma += m * a, c->mb += m * b;
        c->aa += a * a, c->ab += a * b, c->bb += b * b;
    }
}

/* Accounts for n decoded values (n <= BLOCK); x may be reordered. */
static HOT void add_block(struct tensor_stats *s, double *x, size_t n)
{
    for (size_t i = 0; i < n && s->nhead < STATS_HEAD; i++)
        s->head[s->nhead++] = x[i];
    s->elements += n;
    if (s->cluster) add_clusters(s, x, n);

    struct moments m = block_moments(x, n, s->finite ? s->mean : x[0]);
    if (!isfinite(m.mean)) {
        /* A NaN or Inf (or sums beyond the double range, which the slow path leaves
         * as they are): drop the non-finite values and start over. */
        size_t kept = keep_finite(x, n, &s->nan, &s->inf);
        if (kept == 0) return;
        m = block_moments(x, kept, s->finite ? s->mean : x[0]);
    }
    merge_moments(s, &m);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The AVX2 kernel's one pass for float32 and the 16-bit floats, which the decode-then-fold
 * path left at 60% of memory bandwidth for the 16-bit ones: eight elements are loaded as
 * floats (exact for all three), their min and max taken eight wide in float, and their
 * deviations summed four wide in double, without the round trip through a buffer of
 * doubles. A block with a NaN or Inf, or far from its shift, gives up (its sums say so)
 * and is done again by the general path, which sorts that out. */
/* Sixteen elements as two vectors of floats, in any order (sums, min and max do not care). */
AVX2_TARGET static inline void load16_f32(const uint8_t *p, __m256 *f0, __m256 *f1)
{
    *f0 = _mm256_loadu_ps((const float *)(const void *)p);
    *f1 = _mm256_loadu_ps((const float *)(const void *)(p + 32));
}

AVX2_TARGET static inline void load16_f16(const uint8_t *p, __m256 *f0, __m256 *f1)
{
    *f0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
    *f1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)));
}

/* Zero words interleaved below the bfloat16 words: elements 0-3 and 8-11, then 4-7 and 12-15. */
AVX2_TARGET static inline void load16_bf16(const uint8_t *p, __m256 *f0, __m256 *f1)
{
    __m256i words = _mm256_loadu_si256((const __m256i *)(const void *)p),
            zero = _mm256_setzero_si256();
    *f0 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, words));
    *f1 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, words));
}

/* How far ahead of the kernels' reads the next lines are asked for: the hardware
 * prefetcher alone left float32 at 85% of memcpy's bandwidth, waiting on memory
 * between its bursts of work. */
#define PREFETCH_AHEAD 2048

/* Deviations from shift; unshifted: the shift is 0 and the subtraction, exact then, is left
 * out (the kernels run a loop for each, see centered_shift). */
AVX2_TARGET static HOT __m256d deviation(__m256d x, __m256d shift, bool shifted)
{
    return shifted ? _mm256_sub_pd(x, shift) : x;
}

AVX2_TARGET static HOT void add_deviations(__m256 f, __m256d shift, bool shifted, __m256d *a0,
                                           __m256d *a1, __m256d *q0, __m256d *q1)
{
    __m256d d0 = deviation(_mm256_cvtps_pd(_mm256_castps256_ps128(f)), shift, shifted);
    __m256d d1 = deviation(_mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)), shift, shifted);
    *a0 = _mm256_add_pd(*a0, d0);
    *a1 = _mm256_add_pd(*a1, d1);
    *q0 = _mm256_fmadd_pd(d0, d0, *q0);
    *q1 = _mm256_fmadd_pd(d1, d1, *q1);
}

AVX2_TARGET static inline double sum4(__m256d v)
{
    double x[4];
    _mm256_storeu_pd(x, v);
    return (x[0] + x[1]) + (x[2] + x[3]);
}

/* The running sums of a one-pass kernel: deviations four wide in double, in four chains
 * each, and the range eight wide in float. */
struct lanes {
    __m256d a0, a1, a2, a3, q0, q1, q2, q3;
    __m256 lo, hi;
};

AVX2_TARGET static inline void lanes_clear(struct lanes *v)
{
    v->a0 = v->a1 = v->a2 = v->a3 = v->q0 = v->q1 = v->q2 = v->q3 = _mm256_setzero_pd();
    v->lo = _mm256_set1_ps(INFINITY);
    v->hi = _mm256_set1_ps(-INFINITY);
}

AVX2_TARGET static HOT void lanes_add(struct lanes *v, __m256 f0, __m256 f1, __m256d shift,
                                      bool shifted)
{
    v->lo = _mm256_min_ps(v->lo, _mm256_min_ps(f0, f1));
    v->hi = _mm256_max_ps(v->hi, _mm256_max_ps(f0, f1));
    add_deviations(f0, shift, shifted, &v->a0, &v->a1, &v->q0, &v->q1);
    add_deviations(f1, shift, shifted, &v->a2, &v->a3, &v->q2, &v->q3);
}

AVX2_TARGET static inline __m256d lanes_dev(const struct lanes *v)
{
    return _mm256_add_pd(_mm256_add_pd(v->a0, v->a1), _mm256_add_pd(v->a2, v->a3));
}

AVX2_TARGET static inline __m256d lanes_dev2(const struct lanes *v)
{
    return _mm256_add_pd(_mm256_add_pd(v->q0, v->q1), _mm256_add_pd(v->q2, v->q3));
}

/* Sums dev and dev2 with the range of lo and hi. */
AVX2_TARGET static inline struct block_sums range_sums(double dev, double dev2, __m256 lo,
                                                       __m256 hi)
{
    float l[8], h[8];
    _mm256_storeu_ps(l, lo);
    _mm256_storeu_ps(h, hi);
    struct block_sums s = {dev, dev2, INFINITY, -INFINITY};
    for (int k = 0; k < 8; k++)
        add_column(&s, 0, 0, l[k], h[k]);
    return s;
}

/* lanes_add for elements among which are NaNs: those are counted, a lane each, in *nan,
 * and replaced in the sums by fill, the shift itself as a float, so that they add nothing.
 * min and max pass a NaN by (of a NaN and x, vminps gives its second operand, x), with
 * the range of f1 in lo1 and hi1 so that each chain takes one operation. An Inf is summed
 * like any value, and its sums come out non-finite. */
AVX2_TARGET static HOT void lanes_add_nan(struct lanes *v, __m256 *lo1, __m256 *hi1, __m256 f0,
                                          __m256 f1, __m256 fill, __m256d shift, __m256i *nan)
{
    __m256 nan0 = _mm256_cmp_ps(f0, f0, _CMP_UNORD_Q), nan1 = _mm256_cmp_ps(f1, f1, _CMP_UNORD_Q);
    /* A true comparison is -1 in each lane. */
    *nan = _mm256_sub_epi32(*nan, _mm256_castps_si256(nan0));
    *nan = _mm256_sub_epi32(*nan, _mm256_castps_si256(nan1));
    v->lo = _mm256_min_ps(f0, v->lo);
    v->hi = _mm256_max_ps(f0, v->hi);
    *lo1 = _mm256_min_ps(f1, *lo1);
    *hi1 = _mm256_max_ps(f1, *hi1);
    add_deviations(_mm256_blendv_ps(f0, fill, nan0), shift, true, &v->a0, &v->a1, &v->q0, &v->q1);
    add_deviations(_mm256_blendv_ps(f1, fill, nan1), shift, true, &v->a2, &v->a3, &v->q2, &v->q3);
}

AVX2_TARGET static inline uint64_t count_lanes(__m256i counts)
{
    uint32_t c[8];
    uint64_t total = 0;
    _mm256_storeu_si256((__m256i *)(void *)c, counts);
    for (int k = 0; k < 8; k++)
        total += c[k];
    return total;
}

/* The one pass over n elements, and the NaN pass: the same over elements among which are
 * NaNs, those left out of the sums and the range and counted, around a shift that is a
 * float (lanes_add_nan). */
#define ONE_PASS(name, size)                                                                       \
    AVX2_TARGET static HOT void run_##name(struct lanes *v, const uint8_t *src, size_t n,          \
                                           __m256d sh, bool shifted)                               \
    {                                                                                              \
        for (size_t i = 0; i < n; i += 16) {                                                       \
            __m256 f0, f1;                                                                         \
            _mm_prefetch((const char *)src + i * (size) + PREFETCH_AHEAD, _MM_HINT_T0);            \
            load16_##name(src + i * (size), &f0, &f1);                                             \
            lanes_add(v, f0, f1, sh, shifted);                                                     \
        }                                                                                          \
    }                                                                                              \
    AVX2_TARGET static struct block_sums one_pass_##name(const uint8_t *src, size_t n,             \
                                                         double shift)                             \
    {                                                                                              \
        __m256d sh = _mm256_set1_pd(shift);                                                        \
        struct lanes v;                                                                            \
        lanes_clear(&v);                                                                           \
        size_t body = n / 16 * 16;                                                                 \
        if (shift == 0)                                                                            \
            run_##name(&v, src, body, sh, false);                                                  \
        else                                                                                       \
            run_##name(&v, src, body, sh, true);                                                   \
        struct block_sums s = range_sums(sum4(lanes_dev(&v)), sum4(lanes_dev2(&v)), v.lo, v.hi);   \
        for (size_t i = body; i < n; i++) {                                                        \
            double x = load_##name(src + i * (size)), d = x - shift;                               \
            add_column(&s, d, d *d, x, x);                                                         \
        }                                                                                          \
        return s;                                                                                  \
    }                                                                                              \
    AVX2_TARGET static struct block_sums nan_pass_##name(const uint8_t *src, size_t n,             \
                                                         float shift, uint64_t *nan)               \
    {                                                                                              \
        __m256d sh = _mm256_set1_pd(shift);                                                        \
        __m256 fill = _mm256_set1_ps(shift), lo1 = _mm256_set1_ps(INFINITY), hi1 = -lo1;           \
        __m256i nans = _mm256_setzero_si256();                                                     \
        struct lanes v;                                                                            \
        lanes_clear(&v);                                                                           \
        size_t body = n / 16 * 16;                                                                 \
        for (size_t i = 0; i < body; i += 16) {                                                    \
            __m256 f0, f1;                                                                         \
            load16_##name(src + i * (size), &f0, &f1);                                             \
            lanes_add_nan(&v, &lo1, &hi1, f0, f1, fill, sh, &nans);                                \
        }                                                                                          \
        struct block_sums sums = range_sums(sum4(lanes_dev(&v)), sum4(lanes_dev2(&v)),             \
                                            _mm256_min_ps(v.lo, lo1), _mm256_max_ps(v.hi, hi1));   \
        *nan = count_lanes(nans);                                                                  \
        for (size_t i = body; i < n; i++) {                                                        \
            double x = load_##name(src + i * (size)), d = x - shift;                               \
            if (x == x)                                                                            \
                add_column(&sums, d, d *d, x, x);                                                  \
            else                                                                                   \
                ++*nan;                                                                            \
        }                                                                                          \
        return sums;                                                                               \
    }
ONE_PASS(f32, 4)
ONE_PASS(f16, 2)
ONE_PASS(bf16, 2)

/* One vector of four doubles into a chain of sums and a range. */
AVX2_TARGET static HOT void add_f64x4(const uint8_t *p, __m256d shift, bool shifted, __m256d *a,
                                      __m256d *q, __m256d *lo, __m256d *hi)
{
    __m256d x = _mm256_loadu_pd((const double *)(const void *)p), d = deviation(x, shift, shifted);
    *lo = _mm256_min_pd(*lo, x);
    *hi = _mm256_max_pd(*hi, x);
    *a = _mm256_add_pd(*a, d);
    *q = _mm256_fmadd_pd(d, d, *q);
}

/* float64 needs no conversion and no float range: four vectors of doubles at a time, one
 * chain of sums for each, two of the range, four wide in double. */
AVX2_TARGET static HOT struct block_sums run_f64(const uint8_t *src, size_t n, __m256d sh,
                                                 bool shifted)
{
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, q0 = a0, q1 = a0, q2 = a0, q3 = a0;
    __m256d lo0 = _mm256_set1_pd(INFINITY), lo1 = lo0, hi0 = _mm256_set1_pd(-INFINITY), hi1 = hi0;
    for (size_t i = 0; i < n; i += 16) {
        const uint8_t *p = src + i * 8;
        _mm_prefetch((const char *)p + PREFETCH_AHEAD, _MM_HINT_T0);
        _mm_prefetch((const char *)p + PREFETCH_AHEAD + 64, _MM_HINT_T0);
        add_f64x4(p, sh, shifted, &a0, &q0, &lo0, &hi0);
        add_f64x4(p + 32, sh, shifted, &a1, &q1, &lo1, &hi1);
        add_f64x4(p + 64, sh, shifted, &a2, &q2, &lo0, &hi0);
        add_f64x4(p + 96, sh, shifted, &a3, &q3, &lo1, &hi1);
    }
    double l[4], h[4];
    _mm256_storeu_pd(l, _mm256_min_pd(lo0, lo1));
    _mm256_storeu_pd(h, _mm256_max_pd(hi0, hi1));
    struct block_sums s = {sum4(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3))),
                           sum4(_mm256_add_pd(_mm256_add_pd(q0, q1), _mm256_add_pd(q2, q3))),
                           INFINITY, -INFINITY};
    for (int k = 0; k < 4; k++)
        add_column(&s, 0, 0, l[k], h[k]);
    return s;
}

AVX2_TARGET static struct block_sums one_pass_f64(const uint8_t *src, size_t n, double shift)
{
    __m256d sh = _mm256_set1_pd(shift);
    size_t body = n / 16 * 16;
    struct block_sums s = shift == 0 ? run_f64(src, body, sh, false) : run_f64(src, body, sh, true);
    for (size_t i = body; i < n; i++) {
        double x, d;
        memcpy(&x, src + i * 8, sizeof x);
        d = x - shift;
        add_column(&s, d, d * d, x, x);
    }
    return s;
}

/* The same for a sampled tensor, whose clusters (stats.h) are its pieces (64 bytes or
 * longer): sixteen elements at a time still, each piece's sums of deviations from the
 * clusters' shift also folded into *c, a copy the caller keeps only when the block is not
 * done again. The block's sums are taken around that shift too. n is whole pieces (the
 * gathered ones), each a multiple of sixteen elements. */
#define CLUSTERED_PASS(name, size)                                                                 \
    AVX2_TARGET static HOT struct block_sums clustered_run_##name(                                 \
        const uint8_t *src, size_t n, size_t cluster, __m256d sh, bool shifted,                    \
        struct cluster_sums *c)                                                                    \
    {                                                                                              \
        __m256d a = _mm256_setzero_pd(), q = a;                                                    \
        __m256 lo = _mm256_set1_ps(INFINITY), hi = _mm256_set1_ps(-INFINITY);                      \
        double m = (double)cluster;                                                                \
        for (size_t i = 0; i < n; i += cluster) {                                                  \
            struct lanes v;                                                                        \
            lanes_clear(&v);                                                                       \
            v.lo = lo, v.hi = hi;                                                                  \
            for (size_t k = i; k < i + cluster; k += 16) {                                         \
                __m256 f0, f1;                                                                     \
                load16_##name(src + k * (size), &f0, &f1);                                         \
                lanes_add(&v, f0, f1, sh, shifted);                                                \
            }                                                                                      \
            __m256d la = lanes_dev(&v), lq = lanes_dev2(&v);                                       \
            a = _mm256_add_pd(a, la);                                                              \
            q = _mm256_add_pd(q, lq);                                                              \
            lo = v.lo, hi = v.hi;                                                                  \
            double da = sum4(la), db = sum4(lq);                                                   \
            c->count++;                                                                            \
            c->mm += m * m, c->ma += m * da, c->mb += m * db;                                      \
            c->aa += da * da, c->ab += da * db, c->bb += db * db;                                  \
        }                                                                                          \
        return range_sums(sum4(a), sum4(q), lo, hi);                                               \
    }                                                                                              \
    AVX2_TARGET static struct block_sums clustered_##name(                                         \
        const uint8_t *src, size_t n, size_t cluster, double shift, struct cluster_sums *c)        \
    {                                                                                              \
        __m256d sh = _mm256_set1_pd(shift);                                                        \
        if (shift == 0) return clustered_run_##name(src, n, cluster, sh, false, c);                \
        return clustered_run_##name(src, n, cluster, sh, true, c);                                 \
    }
CLUSTERED_PASS(f32, 4)
CLUSTERED_PASS(f16, 2)
CLUSTERED_PASS(bf16, 2)

/* Moments from a one pass's sums of n elements around shift, merged unless they came out
 * non-finite or lost too much to rounding (then false, and nothing is merged). */
static HOT bool merge_sums(struct tensor_stats *s, struct block_sums sums, size_t n, double shift)
{
    bool again;
    struct moments m = sums_moments(sums, n, shift, &again);
    if (!isfinite(m.mean) || again) return false;
    if (m.m2 < 0) m.m2 = 0;
    merge_moments(s, &m);
    return true;
}

/* A sampled block of whole pieces in one pass (above); false: the general path. */
static HOT bool add_clustered_one_pass(struct tensor_stats *s, const uint8_t *src, size_t n)
{
    struct cluster_sums c = s->clusters;
    if (!c.ready || s->cluster % 16 || n % s->cluster) return false;
    struct block_sums sums;
    switch (s->dtype) {
    case DTYPE_F32:
        sums = clustered_f32(src, n, s->cluster, c.shift, &c);
        break;
    case DTYPE_F16:
        sums = clustered_f16(src, n, s->cluster, c.shift, &c);
        break;
    case DTYPE_BF16:
        sums = clustered_bf16(src, n, s->cluster, c.shift, &c);
        break;
    default:
        return false;
    }
    if (!isfinite(c.bb) || !merge_sums(s, sums, n, c.shift)) return false;
    s->elements += n;
    s->clusters = c;
    return true;
}

/* n elements that hold a NaN, summed in one pass over the others (the NaN pass, around the
 * shift as a float); false: the general path, as for other dtypes, an Inf among them (its
 * sums come out non-finite), or sums too far from the shift. */
static HOT bool add_nan_pass(struct tensor_stats *s, const uint8_t *src, size_t n, float shift)
{
    uint64_t nan;
    struct block_sums sums;
    switch (s->dtype) {
    case DTYPE_F32:
        sums = nan_pass_f32(src, n, shift, &nan);
        break;
    case DTYPE_F16:
        sums = nan_pass_f16(src, n, shift, &nan);
        break;
    case DTYPE_BF16:
        sums = nan_pass_bf16(src, n, shift, &nan);
        break;
    default:
        return false;
    }
    if (nan < n && !merge_sums(s, sums, n - nan, shift)) return false;
    s->elements += n;
    s->nan += nan;
    return true;
}

/* n elements (ONE_PASS_BYTES of them at most) in the AVX2 kernel's one pass, when it has
 * one for the dtype and nothing else needs the decoded values (the head is complete);
 * false: take the general path. Elements with a NaN among them take the NaN pass: the
 * general path would decode them and sum each block twice with sum_block around a scalar
 * keep_finite, and with a NaN every 10^5 elements those blocks took a tenth of the 16-bit
 * kernels' time (docs/performance.md). An Inf, rarer, still takes the general path. */
static HOT bool add_one_pass(struct tensor_stats *s, const uint8_t *src, size_t n)
{
    if (s->nhead < STATS_HEAD || s->finite == 0) return false;
    if (s->cluster) return add_clustered_one_pass(s, src, n);
    struct block_sums sums;
    double shift = centered_shift(s->mean, s->m2 / (double)s->finite);
    switch (s->dtype) {
    case DTYPE_F64:
        sums = one_pass_f64(src, n, shift);
        break;
    case DTYPE_F32:
        sums = one_pass_f32(src, n, shift);
        break;
    case DTYPE_F16:
        sums = one_pass_f16(src, n, shift);
        break;
    case DTYPE_BF16:
        sums = one_pass_bf16(src, n, shift);
        break;
    default:
        return false;
    }
    if (merge_sums(s, sums, n, shift)) {
        s->elements += n;
        return true;
    }
    /* Finite sums that lost too much to rounding: the NaN pass would lose it again. */
    if (isfinite(sums.dev)) return false;
    return add_nan_pass(s, src, n, (float)shift);
}
#else
static bool add_one_pass(struct tensor_stats *s, const uint8_t *src, size_t n)
{
    return false;
}
#endif

/* The AVX2 kernel's one pass takes ONE_PASS_BYTES of elements at a time: each pass's sums
 * are reduced, turned into moments and merged (two divisions among some forty
 * instructions), which at a block a pass cost the 16-bit kernels a tenth of their time. A
 * sampled tensor's clusters go a block at a time, and so does what the one pass does not
 * take, to the general path through block. */
static HOT void feed_blocks(struct tensor_stats *s, const uint8_t *src, size_t count, bool avx2)
{
    double block[BLOCK];
    size_t size = dtypes[s->dtype].size;

    while (count > 0) {
        size_t chunk = avx2 && !s->cluster ? ONE_PASS_BYTES / size : BLOCK;
        size_t n = count < chunk ? count : chunk;
        if (!avx2 || !add_one_pass(s, src, n)) {
            n = n < BLOCK ? n : BLOCK;
            decode(s->dtype, src, block, n, avx2);
            add_block(s, block, n);
        }
        src += n * size;
        count -= n;
    }
}

/* The same code twice: once for any x86-64 (or other) CPU, once for AVX2 with FMA and
 * F16C, where the decoding and column loops run four doubles wide. Chosen once, at first
 * use. */
static void feed_portable(struct tensor_stats *s, const uint8_t *src, size_t count)
{
    feed_blocks(s, src, count, false);
}

#if defined(__x86_64__) && defined(__GNUC__)
AVX2_TARGET static void feed_avx2(struct tensor_stats *s, const uint8_t *src, size_t count)
{
    feed_blocks(s, src, count, true);
}

/* F16C from CPUID itself: clang 14 (make fuzz) has no "f16c" for __builtin_cpu_supports. */
static bool cpu_has_avx2(void)
{
    unsigned eax, ebx, ecx, edx;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
}
#else
#define feed_avx2 feed_portable
static bool cpu_has_avx2(void)
{
    return false;
}
#endif

static enum stats_kernel kernel_in_use = STATS_KERNEL_AUTO;

enum stats_kernel stats_select_kernel(enum stats_kernel k)
{
    if (k == STATS_KERNEL_AUTO) k = cpu_has_avx2() ? STATS_KERNEL_AVX2 : STATS_KERNEL_PORTABLE;
    if (k == STATS_KERNEL_AVX2 && !cpu_has_avx2()) k = STATS_KERNEL_PORTABLE;
    __atomic_store_n(&kernel_in_use, k, __ATOMIC_RELAXED);
    return k;
}

static void feed_elements(struct tensor_stats *s, const uint8_t *src, size_t count)
{
    enum stats_kernel k = __atomic_load_n(&kernel_in_use, __ATOMIC_RELAXED);
    if (k == STATS_KERNEL_AUTO) k = stats_select_kernel(STATS_KERNEL_AUTO);
    if (k == STATS_KERNEL_AVX2)
        feed_avx2(s, src, count);
    else
        feed_portable(s, src, count);
}

/* ---- Public API ------------------------------------------------------------------ */

void dtype_decode(enum dtype t, const void *src, double *dst, size_t n)
{
    if (dtype_valid(t)) decode(t, src, dst, n, false);
}

void stats_init(struct tensor_stats *s, enum dtype t)
{
    memset(s, 0, sizeof *s);
    s->dtype = t;
}

void stats_feed(struct tensor_stats *s, const void *bytes, size_t len)
{
    const uint8_t *p = bytes;
    size_t size = dtype_size(s->dtype);
    if (size == 0 || len == 0) return;

    if (s->ncarry > 0) {
        size_t take = size - s->ncarry < len ? size - s->ncarry : len;
        memcpy(s->carry + s->ncarry, p, take);
        s->ncarry += take;
        p += take;
        len -= take;
        if (s->ncarry < size) return;
        feed_elements(s, s->carry, 1);
        s->ncarry = 0;
    }
    size_t whole = len / size;
    feed_elements(s, p, whole);
    s->ncarry = len - whole * size;
    memcpy(s->carry, p + whole * size, s->ncarry);
}

double stats_std(const struct tensor_stats *s)
{
    return s->finite ? sqrt(s->m2 / (double)s->finite) : 0;
}

void stats_set_cluster(struct tensor_stats *s, unsigned elements)
{
    s->cluster = elements;
}

bool stats_ci95(const struct tensor_stats *s, double fraction, double *mean_half, double *std_half)
{
    const struct cluster_sums *c = &s->clusters;
    if (!s->cluster || c->count < 2 || s->finite == 0) return false;
    double n = (double)s->finite, k = (double)c->count;
    double a = s->mean - c->shift, var = s->m2 / n, b = a * a - var, sd = sqrt(var);
    double f = fraction > 0 && fraction < 1 ? fraction : 1;
    double scale = (1 - f) * k / (k - 1) / (n * n);
    /* sum r_j^2 and sum z_j^2 (stats.h), r_j = A_j - a m_j, z_j = B_j - 2a A_j + b m_j */
    double rr = c->aa - 2 * a * c->ma + a * a * c->mm;
    double zz = c->bb + 4 * a * a * c->aa + b * b * c->mm - 4 * a * c->ab + 2 * b * c->mb -
                4 * a * b * c->ma;
    *mean_half = STATS_CI_Z * sqrt(fmax(rr * scale, 0));
    *std_half = sd > 0 ? STATS_CI_Z * sqrt(fmax(zz * scale, 0)) / (2 * sd) : 0;
    return true;
}
