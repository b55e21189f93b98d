/* test_stats.c — the statistics kernels (core/stats.c) against a plain reference.
 *
 * For each float dtype, random data with NaN, ±Inf, subnormals, zeros of both signs and
 * extreme values is encoded here (float16 through the compiler's _Float16, not the
 * kernel's bit manipulation), fed whole and in random pieces, through the portable
 * kernel and the AVX2 one when the CPU has it, and compared with a two-pass reference in
 * long double. Counts, min, max and head must be exact; mean and std agree to 1e-12 of
 * the data's magnitude. One case puts a large mean under a tiny spread, where a naive
 * one-pass variance loses every digit.
 *
 * A value that comes out slightly wrong barely moves a mean over thousands, so every bit
 * pattern of the 16-bit floats (whose decoders differ between the kernels) is also fed
 * on its own and checked for its exact value; float16's again with the SSE unit set to
 * treat denormals as zero (DAZ, FTZ), as some programs run, since a decoder that passes
 * a half's subnormals through float denormals would then lose them.
 *
 * The confidence half-widths of a clustered sample (stats_ci95) are checked against the
 * textbook computation done here from each cluster's own values, in long double.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE__
#include <pmmintrin.h> /* _MM_DENORMALS_ZERO_ON */
#endif

#include "core/stats.h"
#include "xorshift.h"

#define COUNT 50021 /* several blocks and a ragged end */

struct reference {
    uint64_t finite, nan, inf;
    double min, max, mean, std, scale;
    double head[STATS_HEAD];
};

static uint64_t state = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void)
{
    return xorshift64(&state);
}

static double uniform(void)
{
    return (double)(next_random() >> 11) / 0x1p53;
}

/* A value with the special cases mixed in; the dtype rounds it when encoding. */
static double sample_value(double center, double spread, double tiny)
{
    uint64_t r = next_random() % 1000;
    if (r == 0) return NAN;
    if (r == 1) return INFINITY;
    if (r == 2) return -INFINITY;
    if (r == 3) return tiny * (1 + (double)(next_random() % 7)); /* subnormal for the dtype */
    if (r == 4) return -0.0;
    return center + spread * (2 * uniform() - 1);
}

/* Encodes v as dtype t at p and returns the value the bytes hold. */
static double encode(enum dtype t, double v, uint8_t *p)
{
    switch (t) {
    case DTYPE_F64:
        memcpy(p, &v, 8);
        return v;
    case DTYPE_F32: {
        float f = (float)v;
        memcpy(p, &f, 4);
        return f;
    }
    case DTYPE_F16: {
        _Float16 h = (_Float16)v;
        memcpy(p, &h, 2);
        return (double)h;
    }
    case DTYPE_BF16: {
        float f = (float)v;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        uint16_t top = (uint16_t)(bits >> 16); /* truncation: any bf16 value will do */
        memcpy(p, &top, 2);
        bits = (uint32_t)top << 16;
        memcpy(&f, &bits, 4);
        return f;
    }
    default:
        fail_msg("dtype %d not covered", (int)t);
        return 0;
    }
}

static void reference_of(const double *x, size_t n, struct reference *r)
{
    long double sum = 0, sq = 0;
    memset(r, 0, sizeof *r);
    r->min = INFINITY;
    r->max = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (i < STATS_HEAD) r->head[i] = x[i];
        if (isnan(x[i])) {
            r->nan++;
        } else if (isinf(x[i])) {
            r->inf++;
        } else {
            r->finite++;
            sum += x[i];
            r->min = fmin(r->min, x[i]);
            r->max = fmax(r->max, x[i]);
            r->scale = fmax(r->scale, fabs(x[i]));
        }
    }
    long double mean = sum / r->finite;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) sq += (x[i] - mean) * (x[i] - mean);
    r->mean = (double)mean;
    r->std = (double)sqrtl(sq / r->finite);
}

static bool same(double a, double b)
{
    return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b));
}

static void check(const struct tensor_stats *s, const struct reference *r, size_t n,
                  double std_tolerance)
{
    assert_int_equal(s->elements, n);
    assert_int_equal(s->finite, r->finite);
    assert_int_equal(s->nan, r->nan);
    assert_int_equal(s->inf, r->inf);
    assert_true(s->min == r->min);
    assert_true(s->max == r->max);
    if (fabs(s->mean - r->mean) > 1e-12 * r->scale)
        fail_msg("mean %.17g, reference %.17g", s->mean, r->mean);
    if (fabs(stats_std(s) - r->std) > std_tolerance)
        fail_msg("std %.17g, reference %.17g", stats_std(s), r->std);
    assert_int_equal(s->nhead, n < STATS_HEAD ? n : STATS_HEAD);
    for (unsigned i = 0; i < s->nhead; i++)
        if (!same(s->head[i], r->head[i]))
            fail_msg("head[%u] %.17g, reference %.17g", i, s->head[i], r->head[i]);
}

/* Feeds the bytes whole and in random pieces (splitting elements), with each kernel. */
static void check_all_ways(enum dtype t, const uint8_t *bytes, size_t n, const struct reference *r,
                           double std_tolerance)
{
    static const enum stats_kernel kernels[] = {STATS_KERNEL_PORTABLE, STATS_KERNEL_AVX2};
    size_t len = n * dtype_size(t);
    for (size_t k = 0; k < 2; k++) {
        if (stats_select_kernel(kernels[k]) != kernels[k]) continue; /* a CPU without AVX2 */
        struct tensor_stats s;
        stats_init(&s, t);
        stats_feed(&s, bytes, len);
        check(&s, r, n, std_tolerance);

        stats_init(&s, t);
        for (size_t at = 0; at < len;) {
            size_t piece = 1 + next_random() % 9000;
            if (piece > len - at) piece = len - at;
            stats_feed(&s, bytes + at, piece);
            at += piece;
        }
        check(&s, r, n, std_tolerance);
    }
    stats_select_kernel(STATS_KERNEL_AUTO);
}

static void run_dtype(enum dtype t, double center, double spread, double tiny)
{
    uint8_t *bytes = malloc(COUNT * 8);
    double *values = malloc(COUNT * sizeof *values);
    struct reference r;
    assert_non_null(bytes);
    assert_non_null(values);
    for (size_t i = 0; i < COUNT; i++)
        values[i] = encode(t, sample_value(center, spread, tiny), bytes + i * dtype_size(t));
    reference_of(values, COUNT, &r);
    check_all_ways(t, bytes, COUNT, &r, 1e-12 * r.scale);
    free(bytes);
    free(values);
}

static void test_float64(void **unused)
{
    run_dtype(DTYPE_F64, 0.5, 3.0, 0x1p-1070);
}

static void test_float32(void **unused)
{
    run_dtype(DTYPE_F32, -0.01, 0.05, 0x1p-140);
}

static void test_float16(void **unused)
{
    run_dtype(DTYPE_F16, 2.0, 60000.0 - 2.0, 0x1p-20); /* up to the largest finite half */
}

static void test_bfloat16(void **unused)
{
    run_dtype(DTYPE_BF16, 0.0, 1e30, 0x1p-130);
}

/* A mean a fifth of the std away from 0, where the kernels sum around 0 rather than
 * around the mean (stats.c, centered_shift): as exact as around the mean. */
static void test_mean_near_zero(void **unused)
{
    double spread = 1.0, center = 0.2 * spread / sqrt(3.0);
    run_dtype(DTYPE_F64, center, spread, 0x1p-1070);
    run_dtype(DTYPE_F32, center, spread, 0x1p-140);
    run_dtype(DTYPE_F16, center, spread, 0x1p-20);
    run_dtype(DTYPE_BF16, center, spread, 0x1p-130);
}

/* Every float16 bit pattern once: the kernel's conversion against the compiler's. */
static void test_every_float16(void **unused)
{
    enum { N = 65536 };
    uint16_t *bytes = malloc(N * sizeof *bytes);
    double *values = malloc(N * sizeof *values);
    struct reference r;
    for (uint32_t i = 0; i < N; i++) {
        _Float16 h;
        bytes[i] = (uint16_t)i;
        memcpy(&h, &bytes[i], 2);
        values[i] = (double)h;
    }
    reference_of(values, N, &r);
    check_all_ways(DTYPE_F16, (const uint8_t *)bytes, N, &r, 1e-12 * r.scale);
    free(bytes);
    free(values);
}

/* The value of each of the 65536 patterns of a 16-bit float dtype, by the compiler's
 * conversion for float16 and by definition for bfloat16 (the top half of a float). */
static double *pattern_values(enum dtype t)
{
    double *values = malloc(65536 * sizeof *values);
    assert_non_null(values);
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t bits = (uint16_t)i;
        if (t == DTYPE_F16) {
            _Float16 h;
            memcpy(&h, &bits, 2);
            values[i] = (double)h;
        } else {
            uint32_t top = (uint32_t)bits << 16;
            float f;
            memcpy(&f, &top, 4);
            values[i] = f;
        }
    }
    return values;
}

/* Each pattern alone (the decoders' scalar tails) and eight times over (their vector
 * bodies), through each kernel: its value must come out exactly. */
static void check_each_pattern(enum dtype t, const double *values)
{
    static const enum stats_kernel kernels[] = {STATS_KERNEL_PORTABLE, STATS_KERNEL_AVX2};
    for (size_t k = 0; k < 2; k++) {
        if (stats_select_kernel(kernels[k]) != kernels[k]) continue; /* a CPU without AVX2 */
        for (uint32_t i = 0; i < 65536; i++) {
            uint16_t group[8];
            for (size_t j = 0; j < 8; j++)
                group[j] = (uint16_t)i;
            for (size_t n = 1; n <= 8; n += 7) {
                struct tensor_stats s;
                stats_init(&s, t);
                stats_feed(&s, group, n * sizeof group[0]);
                if (!same(s.head[0], values[i]) || (isfinite(values[i]) && s.min != values[i]))
                    fail_msg("%s 0x%04x, kernel %d, %zu: %.17g, expected %.17g", dtype_name(t),
                             (unsigned)i, (int)kernels[k], n, s.head[0], values[i]);
                assert_int_equal(s.finite, isfinite(values[i]) ? n : 0);
                assert_int_equal(s.nan, isnan(values[i]) ? n : 0);
            }
        }
    }
    stats_select_kernel(STATS_KERNEL_AUTO);
}

static void test_each_float16(void **unused)
{
    double *values = pattern_values(DTYPE_F16);
    check_each_pattern(DTYPE_F16, values);
    free(values);
}

static void test_each_bfloat16(void **unused)
{
    double *values = pattern_values(DTYPE_BF16);
    check_each_pattern(DTYPE_BF16, values);
    free(values);
}

#ifdef __SSE__
/* DAZ and FTZ stay set only for the test: the teardown restores the control word even
 * when a check fails. */
static unsigned saved_csr;

static int save_csr(void **unused)
{
    saved_csr = _mm_getcsr();
    return 0;
}

static int restore_csr(void **unused)
{
    _mm_setcsr(saved_csr);
    return 0;
}

/* float16 subnormals are normal numbers as floats and doubles, so nothing on the way may
 * read them as zero. The values are computed before DAZ is set. */
static void test_each_float16_with_daz_ftz(void **unused)
{
    double *values = pattern_values(DTYPE_F16);
    _mm_setcsr(_mm_getcsr() | _MM_DENORMALS_ZERO_ON | _MM_FLUSH_ZERO_ON);
    check_each_pattern(DTYPE_F16, values);
    free(values);
}
#endif

/* Mean 1e6, spread 1e-3 (a condition number mean/std near 2e9): a one-pass
 * sum(x^2) - n*mean^2 loses everything (its error is about 2^-52 * (mean/std)^2 = 600
 * times the variance). Shifted blocks merged with Chan's formula are limited by the
 * means' own rounding (2^-52 * mean/std, 4e-7) and must do at least that well. */
static void test_large_mean_small_spread(void **unused)
{
    enum { N = 200003 };
    double *values = malloc(N * sizeof *values);
    struct reference r;
    for (size_t i = 0; i < N; i++)
        values[i] = 1e6 + 1e-3 * (2 * uniform() - 1);
    reference_of(values, N, &r);
    check_all_ways(DTYPE_F64, (const uint8_t *)values, N, &r, 4e-7 * r.std);
    free(values);
}

/* Sorted data drifts far from any earlier shift: the second pass must catch it. */
static void test_sorted_ramp(void **unused)
{
    enum { N = 100000 };
    double *values = malloc(N * sizeof *values);
    struct reference r;
    for (size_t i = 0; i < N; i++)
        values[i] = 1e8 + (double)i * 1e-2;
    reference_of(values, N, &r);
    check_all_ways(DTYPE_F64, (const uint8_t *)values, N, &r, 1e-9 * r.std);
    free(values);
}

/* NaN and Inf blocks apart, as in real weights, around a mean far from 0: the AVX2 kernel's
 * one pass (8 KiB at a time) gives up on each stretch that holds one. The NaN pass sums a
 * stretch with NaNs again without them, replaced by the shift; a stretch with an Inf takes
 * the general path. NaNs sit in the head, twice in one block, at a block's last and first
 * element, and in the ragged end, which both passes sum element by element. */
static void test_sparse_non_finite(void **unused)
{
    enum { N = 4 * 4096 * 5 + 13 };
    static const enum dtype types[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16};
    static const size_t at[] = {5, 9000, 9001, 4 * 4096 - 1, 6 * 4096, N - 3, 40000, 50000};
    uint8_t *bytes = malloc(N * 4);
    double *values = malloc(N * sizeof *values);
    assert_non_null(bytes);
    assert_non_null(values);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        struct reference r;
        for (size_t i = 0; i < N; i++)
            values[i] =
                encode(types[k], 3.0 + 0.5 * (2 * uniform() - 1), bytes + i * dtype_size(types[k]));
        for (size_t j = 0; j < sizeof at / sizeof at[0]; j++) {
            double odd = j < 6 ? NAN : j == 6 ? INFINITY : -INFINITY;
            values[at[j]] = encode(types[k], odd, bytes + at[j] * dtype_size(types[k]));
        }
        reference_of(values, N, &r);
        check_all_ways(types[k], bytes, N, &r, 1e-12 * r.scale);
    }
    free(bytes);
    free(values);
}

static void test_nothing_finite(void **unused)
{
    float x[3000];
    struct tensor_stats s;
    for (size_t i = 0; i < 3000; i++)
        x[i] = i % 2 ? NAN : -INFINITY;
    stats_init(&s, DTYPE_F32);
    stats_feed(&s, x, sizeof x);
    assert_int_equal(s.finite, 0);
    assert_int_equal(s.nan, 1500);
    assert_int_equal(s.inf, 1500);
    assert_true(stats_std(&s) == 0);
}

/* Clusters of L float32 values with an offset of their own (so that clusters differ
 * more than elements within them), a long tail, a NaN and an Inf. */
enum { CLUSTERS = 3001, LONGEST = 256 }; /* whole clusters, then a short last one below */

static void check_confidence_of_clusters(size_t L)
{
    static float x[CLUSTERS * LONGEST];
    for (size_t c = 0; c < CLUSTERS; c++) {
        double offset = uniform() - 0.5;
        for (size_t i = 0; i < L; i++) {
            double u = uniform();
            x[c * L + i] = (float)(3 + offset + 0.2 * (u - 0.5) + (u > 0.995 ? 40 * u : 0));
        }
    }
    x[100] = NAN;
    x[2000] = INFINITY;
    const size_t n = CLUSTERS * L - 5;
    const double fraction = 0.0625;
    for (int k = STATS_KERNEL_PORTABLE; k <= STATS_KERNEL_AVX2; k++) {
        stats_select_kernel((enum stats_kernel)k);
        struct tensor_stats s;
        stats_init(&s, DTYPE_F32);
        double mean_half, std_half;
        stats_feed(&s, x, 8 * 1024);
        assert_false(stats_ci95(&s, fraction, &mean_half, &std_half)); /* not clustered */
        stats_init(&s, DTYPE_F32);
        stats_set_cluster(&s, L);
        stats_feed(&s, x, L * sizeof *x);
        assert_false(stats_ci95(&s, fraction, &mean_half, &std_half)); /* one cluster */
        for (size_t at = L; at < n; at += 8 * 1024 / sizeof *x)        /* as the reader gathers */
            stats_feed(&s, x + at, (n - at < 2048 ? n - at : 2048) * sizeof *x);
        assert_true(stats_ci95(&s, fraction, &mean_half, &std_half));

        long double sum = 0, count = 0, sq = 0, rr = 0, zz = 0;
        for (size_t i = 0; i < n; i++)
            if (isfinite(x[i])) sum += x[i], count++;
        long double mean = sum / count;
        for (size_t i = 0; i < n; i++)
            if (isfinite(x[i])) sq += (x[i] - mean) * (x[i] - mean);
        long double var = sq / count;
        for (size_t c = 0; c * L < n; c++) {
            long double r = 0, z = 0;
            for (size_t i = c * L; i < (c + 1) * L && i < n; i++) {
                if (!isfinite(x[i])) continue;
                r += x[i] - mean;
                z += (x[i] - mean) * (x[i] - mean) - var;
            }
            rr += r * r;
            zz += z * z;
        }
        long double scale = (1 - fraction) * CLUSTERS / (CLUSTERS - 1.0L) / (count * count);
        double want_mean = (double)(STATS_CI_Z * sqrtl(rr * scale));
        double want_std = (double)(STATS_CI_Z * sqrtl(zz * scale) / (2 * sqrtl(var)));
        assert_true(fabs(mean_half - want_mean) <= 1e-9 * want_mean);
        assert_true(fabs(std_half - want_std) <= 1e-9 * want_std);
        assert_true(want_mean > 0 && want_std > 0);
    }
    stats_select_kernel(STATS_KERNEL_AUTO);
}

/* Clusters of a 64-byte line, and of a 1 KiB piece (tensor.h, the sampling plan). */
static void test_confidence_of_a_clustered_sample(void **unused)
{
    check_confidence_of_clusters(16);
    check_confidence_of_clusters(LONGEST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float64),
        cmocka_unit_test(test_float32),
        cmocka_unit_test(test_float16),
        cmocka_unit_test(test_bfloat16),
        cmocka_unit_test(test_mean_near_zero),
        cmocka_unit_test(test_every_float16),
        cmocka_unit_test(test_large_mean_small_spread),
        cmocka_unit_test(test_sorted_ramp),
        cmocka_unit_test(test_nothing_finite),
        cmocka_unit_test(test_sparse_non_finite),
        cmocka_unit_test(test_confidence_of_a_clustered_sample),
        cmocka_unit_test(test_each_float16),
        cmocka_unit_test(test_each_bfloat16),
#ifdef __SSE__
        cmocka_unit_test_setup_teardown(test_each_float16_with_daz_ftz, save_csr, restore_csr),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
