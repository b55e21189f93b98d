/* dtoa.c — the shortest decimal text that reads back as the same double (see dtoa.h).
 *
 * Grisu3 (Florian Loitsch, "Printing floating-point numbers quickly and accurately with
 * integers", PLDI 2010; as in double-conversion): the double's rounding interval is
 * scaled by a cached power of ten into a 64-bit fixed-point window, digits are cut from
 * its upper end until the rest falls inside it, and the last digit is moved toward the
 * double. The products are off by at most one unit, so Grisu3 knows when its answer
 * might not be the shortest closest one (0.5% of random doubles, 1-2% of float32 values
 * widened, which statistics mostly are): those go the slow way, the text printf gives
 * with 1, 2, ... 17 digits until one reads back, found exactly with big integers
 * (slow_digits) rather than by printf and strtod themselves, which took 16,000
 * instructions a double, 7% of the collector's for a checkpoint of small tensors. The
 * cached powers are
 * 10^(8i - 348), rounded to 64 bits (computed with exact integers; the first matches
 * the paper's table).
 */
#include "dtoa.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct diyfp {
    uint64_t f;
    int e;
};

static const struct diyfp cached_powers[] = {
    {0xfa8fd5a0081c0288ull, -1220}, {0xbaaee17fa23ebf76ull, -1193}, {0x8b16fb203055ac76ull, -1166},
    {0xcf42894a5dce35eaull, -1140}, {0x9a6bb0aa55653b2dull, -1113}, {0xe61acf033d1a45dfull, -1087},
    {0xab70fe17c79ac6caull, -1060}, {0xff77b1fcbebcdc4full, -1034}, {0xbe5691ef416bd60cull, -1007},
    {0x8dd01fad907ffc3cull, -980},  {0xd3515c2831559a83ull, -954},  {0x9d71ac8fada6c9b5ull, -927},
    {0xea9c227723ee8bcbull, -901},  {0xaecc49914078536dull, -874},  {0x823c12795db6ce57ull, -847},
    {0xc21094364dfb5637ull, -821},  {0x9096ea6f3848984full, -794},  {0xd77485cb25823ac7ull, -768},
    {0xa086cfcd97bf97f4ull, -741},  {0xef340a98172aace5ull, -715},  {0xb23867fb2a35b28eull, -688},
    {0x84c8d4dfd2c63f3bull, -661},  {0xc5dd44271ad3cdbaull, -635},  {0x936b9fcebb25c996ull, -608},
    {0xdbac6c247d62a584ull, -582},  {0xa3ab66580d5fdaf6ull, -555},  {0xf3e2f893dec3f126ull, -529},
    {0xb5b5ada8aaff80b8ull, -502},  {0x87625f056c7c4a8bull, -475},  {0xc9bcff6034c13053ull, -449},
    {0x964e858c91ba2655ull, -422},  {0xdff9772470297ebdull, -396},  {0xa6dfbd9fb8e5b88full, -369},
    {0xf8a95fcf88747d94ull, -343},  {0xb94470938fa89bcfull, -316},  {0x8a08f0f8bf0f156bull, -289},
    {0xcdb02555653131b6ull, -263},  {0x993fe2c6d07b7facull, -236},  {0xe45c10c42a2b3b06ull, -210},
    {0xaa242499697392d3ull, -183},  {0xfd87b5f28300ca0eull, -157},  {0xbce5086492111aebull, -130},
    {0x8cbccc096f5088ccull, -103},  {0xd1b71758e219652cull, -77},   {0x9c40000000000000ull, -50},
    {0xe8d4a51000000000ull, -24},   {0xad78ebc5ac620000ull, 3},     {0x813f3978f8940984ull, 30},
    {0xc097ce7bc90715b3ull, 56},    {0x8f7e32ce7bea5c70ull, 83},    {0xd5d238a4abe98068ull, 109},
    {0x9f4f2726179a2245ull, 136},   {0xed63a231d4c4fb27ull, 162},   {0xb0de65388cc8ada8ull, 189},
    {0x83c7088e1aab65dbull, 216},   {0xc45d1df942711d9aull, 242},   {0x924d692ca61be758ull, 269},
    {0xda01ee641a708deaull, 295},   {0xa26da3999aef774aull, 322},   {0xf209787bb47d6b85ull, 348},
    {0xb454e4a179dd1877ull, 375},   {0x865b86925b9bc5c2ull, 402},   {0xc83553c5c8965d3dull, 428},
    {0x952ab45cfa97a0b3ull, 455},   {0xde469fbd99a05fe3ull, 481},   {0xa59bc234db398c25ull, 508},
    {0xf6c69a72a3989f5cull, 534},   {0xb7dcbf5354e9beceull, 561},   {0x88fcf317f22241e2ull, 588},
    {0xcc20ce9bd35c78a5ull, 614},   {0x98165af37b2153dfull, 641},   {0xe2a0b5dc971f303aull, 667},
    {0xa8d9d1535ce3b396ull, 694},   {0xfb9b7cd9a4a7443cull, 720},   {0xbb764c4ca7a44410ull, 747},
    {0x8bab8eefb6409c1aull, 774},   {0xd01fef10a657842cull, 800},   {0x9b10a4e5e9913129ull, 827},
    {0xe7109bfba19c0c9dull, 853},   {0xac2820d9623bf429ull, 880},   {0x80444b5e7aa7cf85ull, 907},
    {0xbf21e44003acdd2dull, 933},   {0x8e679c2f5e44ff8full, 960},   {0xd433179d9c8cb841ull, 986},
    {0x9e19db92b4e31ba9ull, 1013},  {0xeb96bf6ebadf77d9ull, 1039},  {0xaf87023b9bf0ee6bull, 1066},
};

static const uint64_t powers_of_ten[] = {1ull,
                                         10ull,
                                         100ull,
                                         1000ull,
                                         10000ull,
                                         100000ull,
                                         1000000ull,
                                         10000000ull,
                                         100000000ull,
                                         1000000000ull,
                                         10000000000ull,
                                         100000000000ull,
                                         1000000000000ull,
                                         10000000000000ull,
                                         100000000000000ull,
                                         1000000000000000ull,
                                         10000000000000000ull,
                                         100000000000000000ull,
                                         1000000000000000000ull,
                                         10000000000000000000ull};

#define HIDDEN_BIT  (1ull << 52)
#define SIGNIFICAND (HIDDEN_BIT - 1)

static struct diyfp multiply(struct diyfp a, struct diyfp b)
{
    unsigned __int128 p = (unsigned __int128)a.f * b.f;
    uint64_t high = (uint64_t)(p >> 64), low = (uint64_t)p;
    return (struct diyfp){high + (low >> 63), a.e + b.e + 64}; /* rounded */
}

static struct diyfp normalize(struct diyfp d)
{
    int shift = __builtin_clzll(d.f);
    return (struct diyfp){d.f << shift, d.e - shift};
}

/* The interval of reals that round to v: its boundaries m- and m+, on m+'s exponent. */
static void boundaries(struct diyfp v, bool normal, struct diyfp *minus, struct diyfp *plus)
{
    struct diyfp p = {(v.f << 1) + 1, v.e - 1};
    while (!(p.f & (HIDDEN_BIT << 1))) {
        p.f <<= 1;
        p.e--;
    }
    p.f <<= 64 - 52 - 2;
    p.e -= 64 - 52 - 2;
    /* The lower gap is half as wide at a power of two (the binade below is denser), but
     * for the smallest normal (subnormals are as dense). */
    struct diyfp m = v.f == HIDDEN_BIT && normal ? (struct diyfp){(v.f << 2) - 1, v.e - 2}
                                                 : (struct diyfp){(v.f << 1) - 1, v.e - 1};
    m.f <<= m.e - p.e;
    m.e = p.e;
    *minus = m;
    *plus = p;
}

/* The cached power c = 10^-k that brings a number of binary exponent e into [-60, -32]. */
static struct diyfp cached_power(int e, int *k)
{
    double dk = (-61 - e) * 0.30102999566398114 + 347; /* log10(2) */
    int ik = (int)dk;
    if (dk - ik > 0.0) ik++;
    unsigned index = (unsigned)((ik >> 3) + 1);
    *k = -(-348 + (int)index * 8);
    return cached_powers[index];
}

/* The digits of n (1 for 0), from its bit length: log10(2) is about 1233 / 4096. */
static int decimal_digits(uint32_t n)
{
    n |= 1; /* as many digits; and a bit length of at least 1 */
    int t = (32 - __builtin_clz(n)) * 1233 >> 12;
    return t + 1 - (n < powers_of_ten[t]);
}

/* Moves the last digit down while that brings the text closer to w, then says whether
 * the result is certainly the closest of the shortest (false: the caller must ask
 * someone slower). distance is too_high - w, all in units of the scaled interval. */
static bool round_weed(char *digits, int len, uint64_t distance, uint64_t unsafe, uint64_t rest,
                       uint64_t ten_kappa, uint64_t unit)
{
    uint64_t small = distance - unit, big = distance + unit;
    while (rest < small && unsafe - rest >= ten_kappa &&
           (rest + ten_kappa < small || small - rest >= rest + ten_kappa - small)) {
        digits[len - 1]--;
        rest += ten_kappa;
    }
    if (rest < big && unsafe - rest >= ten_kappa &&
        (rest + ten_kappa < big || big - rest > rest + ten_kappa - big))
        return false;
    return 2 * unit <= rest && rest <= unsafe - 4 * unit;
}

/* The digits of the interval's upper end until what is left is inside the interval,
 * widened by one unit each side for the products' rounding ("unsafe"); round_weed then
 * decides. Returns the digit count, or 0 when the result is not certain. */
static int generate(struct diyfp low, struct diyfp w, struct diyfp high, char *digits, int *k)
{
    uint64_t unit = 1;
    uint64_t too_low = low.f - unit, too_high = high.f + unit, unsafe = too_high - too_low;
    const struct diyfp one = {1ull << -w.e, w.e};
    uint32_t integrals = (uint32_t)(too_high >> -one.e);
    uint64_t fractionals = too_high & (one.f - 1);
    int len = 0, kappa = decimal_digits(integrals);
    while (kappa > 0) {
        uint32_t divisor = (uint32_t)powers_of_ten[kappa - 1]; /* a 32-bit division */
        digits[len++] = (char)('0' + integrals / divisor);
        integrals %= divisor;
        kappa--;
        uint64_t rest = ((uint64_t)integrals << -one.e) + fractionals;
        if (rest < unsafe) {
            *k += kappa;
            return round_weed(digits, len, too_high - w.f, unsafe, rest,
                              (uint64_t)divisor << -one.e, unit)
                       ? len
                       : 0;
        }
    }
    for (;;) {
        fractionals *= 10;
        unsafe *= 10;
        digits[len++] = (char)('0' + (fractionals >> -one.e));
        fractionals &= one.f - 1;
        kappa--;
        if (fractionals < unsafe) {
            unit = powers_of_ten[-kappa]; /* scaled as unsafe was, a digit at a time */
            *k += kappa;
            return round_weed(digits, len, (too_high - w.f) * unit, unsafe, fractionals, one.f,
                              unit)
                       ? len
                       : 0;
        }
        if (len >= 18) return 0; /* cannot happen for a double; no runaway */
    }
}

/* v (finite, > 0) as digits (at most 17, no leading zero) times 10^*k; 0 when Grisu
 * cannot be sure of the shortest (about 0.5% of doubles). */
static int grisu3(double v, char *digits, int *k)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int biased = (int)(bits >> 52 & 0x7ff);
    struct diyfp d = biased ? (struct diyfp){(bits & SIGNIFICAND) | HIDDEN_BIT, biased - 1075}
                            : (struct diyfp){bits & SIGNIFICAND, -1074};
    struct diyfp minus, plus;
    boundaries(d, biased > 1, &minus, &plus);
    struct diyfp c = cached_power(plus.e, k);
    struct diyfp w = multiply(normalize(d), c);
    return generate(multiply(minus, c), w, multiply(plus, c), digits, k);
}

/* The fallback works on exact big integers (Steele and White's and Dragon4's scaling):
 * numbers below 2^1280, enough for every double's value, its rounding interval and the
 * power of ten that scales them, with room for the digits' multiplications by ten. */
#define BIG_LIMBS 40

struct big {
    int n; /* limbs in use, the highest non-zero */
    uint32_t limb[BIG_LIMBS];
};

static void big_set(struct big *b, uint64_t v)
{
    b->limb[0] = (uint32_t)v;
    b->limb[1] = (uint32_t)(v >> 32);
    b->n = v >> 32 ? 2 : v ? 1 : 0;
}

static void big_mul(struct big *b, uint32_t m)
{
    uint64_t carry = 0;
    for (int i = 0; i < b->n; i++) {
        carry += (uint64_t)b->limb[i] * m;
        b->limb[i] = (uint32_t)carry;
        carry >>= 32;
    }
    if (carry) b->limb[b->n++] = (uint32_t)carry;
}

static void big_shift_left(struct big *b, int bits)
{
    int words = bits / 32, rest = bits % 32;
    b->limb[b->n + words] = 0; /* limbs past n are not kept zero */
    for (int i = b->n - 1; i >= 0; i--) {
        uint64_t v = (uint64_t)b->limb[i] << rest;
        b->limb[i + words + 1] |= (uint32_t)(v >> 32);
        b->limb[i + words] = (uint32_t)v;
    }
    for (int i = 0; i < words; i++)
        b->limb[i] = 0;
    b->n += words + 1;
    while (b->n && !b->limb[b->n - 1])
        b->n--;
}

static void big_mul_pow10(struct big *b, int k)
{
    for (; k >= 9; k -= 9)
        big_mul(b, 1000000000u);
    big_mul(b, (uint32_t)powers_of_ten[k]);
}

static int big_compare(const struct big *a, const struct big *b)
{
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    for (int i = a->n - 1; i >= 0; i--)
        if (a->limb[i] != b->limb[i]) return a->limb[i] < b->limb[i] ? -1 : 1;
    return 0;
}

/* a -= b, where b <= a. */
static void big_subtract(struct big *a, const struct big *b)
{
    int64_t borrow = 0;
    for (int i = 0; i < a->n; i++) {
        borrow += (int64_t)a->limb[i] - (i < b->n ? b->limb[i] : 0);
        a->limb[i] = (uint32_t)borrow;
        borrow >>= 32;
    }
    while (a->n && !a->limb[a->n - 1])
        a->n--;
}

/* The fallback: what printf with 1, 2, ... 17 significant digits gives (the value
 * rounded to that many digits, ties to even) until one reads back as v, exactly: v is
 * r/s * 10^k with 1 <= r/s < 10, and a text reads back when it is less than the half-gap
 * to v's neighbour on its side away (mp above, mm below; at that distance too when v's
 * significand is even, strtod rounding ties to even). Each digit is taken from r, and
 * what is left of r is the distance from v down to the digits so far. */
static int slow_digits(double v, char *digits, int *k)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int biased = (int)(bits >> 52 & 0x7ff);
    uint64_t f = biased ? (bits & SIGNIFICAND) | HIDDEN_BIT : bits & SIGNIFICAND;
    int e = biased ? biased - 1075 : -1074;
    bool narrow_below = f == HIDDEN_BIT && biased > 1, even = !(f & 1);
    /* Everything times 4, so that the half-gaps (a quarter of an ulp below a power of
     * two) are integers. */
    struct big r = {0}, s = {0}, mp = {0}, mm = {0}, t;
    big_set(&r, f);
    big_set(&s, 1);
    big_set(&mp, 2);
    big_set(&mm, narrow_below ? 1 : 2);
    big_shift_left(&r, 2 + (e > 0 ? e : 0));
    big_shift_left(&s, 2 + (e < 0 ? -e : 0));
    if (e > 0) big_shift_left(&mp, e), big_shift_left(&mm, e);
    int x = (int)floor(log10(v)); /* the first digit's exponent, perhaps one off */
    if (x >= 0) {
        big_mul_pow10(&s, x);
    } else {
        big_mul_pow10(&r, -x);
        big_mul_pow10(&mp, -x);
        big_mul_pow10(&mm, -x);
    }
    t = s;
    big_mul(&t, 10);
    if (big_compare(&r, &t) >= 0) {
        s = t;
        x++;
    } else if (big_compare(&r, &s) < 0) {
        big_mul(&r, 10);
        big_mul(&mp, 10);
        big_mul(&mm, 10);
        x--;
    }
    for (int len = 1;; len++) {
        char d = 0;
        while (big_compare(&r, &s) >= 0) {
            big_subtract(&r, &s);
            d++;
        }
        digits[len - 1] = (char)('0' + d);
        t = r;
        big_shift_left(&t, 1);
        int half = big_compare(&t, &s); /* the rest against half a unit of the last digit */
        bool up = half > 0 || (half == 0 && (d & 1));
        if (up) {
            t = s;
            big_subtract(&t, &r);
        }
        int gap = big_compare(up ? &t : &r, up ? &mp : &mm);
        if (gap < 0 || (gap == 0 && even) || len == 17) {
            int i = len - 1;
            while (up && i >= 0 && digits[i] == '9')
                digits[i--] = '0';
            if (up && i < 0) { /* 9.99 became 10.0 */
                digits[0] = '1';
                x++;
            } else if (up) {
                digits[i]++;
            }
            while (len > 1 && digits[len - 1] == '0')
                len--;
            *k = x - (len - 1);
            return len;
        }
        big_mul(&r, 10);
        big_mul(&mp, 10);
        big_mul(&mm, 10);
    }
}

static char *put_exponent(char *p, int e)
{
    *p++ = 'e';
    *p++ = e < 0 ? '-' : '+';
    unsigned u = (unsigned)(e < 0 ? -e : e);
    if (u >= 100) *p++ = (char)('0' + u / 100);
    *p++ = (char)('0' + u / 10 % 10);
    *p++ = (char)('0' + u % 10);
    return p;
}

int dtoa_shortest(double v, char *out)
{
    char *p = out, digits[24];
    if (v < 0 || (v == 0 && 1 / v < 0)) {
        *p++ = '-';
        v = -v;
    }
    if (v == 0) {
        *p++ = '0';
        *p = '\0';
        return (int)(p - out);
    }
    int k, len = grisu3(v, digits, &k);
    if (len == 0) len = slow_digits(v, digits, &k);
    int x = len + k - 1;      /* the exponent of the first digit */
    if (x < -4 || x >= len) { /* as printf's %g: d.ddde±XX */
        *p++ = digits[0];
        if (len > 1) {
            *p++ = '.';
            memcpy(p, digits + 1, (size_t)len - 1);
            p += len - 1;
        }
        p = put_exponent(p, x);
    } else if (x >= 0) { /* ddd.ddd */
        memcpy(p, digits, (size_t)x + 1);
        p += x + 1;
        if (len > x + 1) {
            *p++ = '.';
            memcpy(p, digits + x + 1, (size_t)(len - x - 1));
            p += len - x - 1;
        }
    } else { /* 0.000ddd */
        *p++ = '0';
        *p++ = '.';
        for (int z = 0; z < -x - 1; z++)
            *p++ = '0';
        memcpy(p, digits, (size_t)len);
        p += len;
    }
    *p = '\0';
    return (int)(p - out);
}
