/* dtoa.c — the shortest decimal text that reads back as the same double (see dtoa.h).
 *
 * Schubfach (Raffaello Giulietti, "The Schubfach way to render doubles", 2020; Java's
 * Double.toString since 19), which is exact for every double with no fallback. v = c 2^q
 * reads back from any decimal inside its rounding interval (the half-gaps to its
 * neighbours; the lower one half as wide at a power of two, but for the smallest normal;
 * the ends included when c is even, strtod rounding ties to even). Scaled by 10^-k, with k
 * chosen so that the interval is 1 to 10 units of 10^k wide, at most one multiple of
 * 10^(k+1) fits in it, and one or two multiples of 10^k: if one of the first fits it is
 * the shortest; else the one of the second that fits, or the closer one when both do
 * (ties to the even digit, as printf rounds). The interval's ends and v are scaled, in
 * quarter units, by one 64x128-bit product each with 10^-k rounded up to 128 bits
 * (dtoa_pow10.h, generated with exact integers by tools/dtoa_pow10.py) and rounded to
 * odd, which the paper proves keeps every comparison above exact. This replaced Grisu3,
 * whose products could not decide 0.5% of random doubles and 1-2% of widened float32
 * values (statistics mostly are); those went to a big-integer fallback, and both
 * together were a sixth of the collector's time for a checkpoint of small tensors. The
 * texts are the same (a differential test against printf and strtod,
 * tests/unit/test_dtoa.c).
 */
#include "dtoa.h"

#include <stdbool.h>
#include <string.h>

#include "dtoa_pow10.h"

/* x * g / 2^128 rounded to odd (the integer below, made odd unless the quotient is an
 * integer), with g one of the table's powers of ten. The 64 low bits of x * g's low half
 * are dropped and g is an overestimate, so an exact quotient may come out up to one unit
 * of 2^-64 high: the quotient counts as exact below two. */
static uint64_t round_to_odd(const uint64_t g[2], uint64_t x)
{
    unsigned __int128 low = (unsigned __int128)g[1] * x;
    unsigned __int128 high = (unsigned __int128)g[0] * x + (uint64_t)(low >> 64);
    return (uint64_t)(high >> 64) | ((uint64_t)high > 1);
}

/* v (finite, > 0) as the shortest closest decimal digits * 10^exp10 (digits < 10^17,
 * perhaps with trailing zeros). */
static uint64_t shortest(double v, int *exp10)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int biased = (int)(bits >> 52);
    uint64_t fraction = bits & ((1ull << 52) - 1);
    uint64_t c = biased ? fraction | 1ull << 52 : fraction;
    int q = biased ? biased - 1075 : -1074;
    bool narrow = fraction == 0 && biased > 1;
    /* k = floor(log10(2^q)), or of 3/4 2^q when the interval is narrow below; h makes
     * the products quarter units of 10^k (floor(log2(10^-k)) by multiply and shift;
     * tools/dtoa_pow10.py checks both forms against exact ones). */
    int k = (q * 1262611 - (narrow ? 524031 : 0)) >> 22;
    int h = q + ((-k * 1741647) >> 19) + 1;
    const uint64_t *g = dtoa_pow10[-k - DTOA_POW10_MIN];
    uint64_t vb = round_to_odd(g, c << (h + 2));
    uint64_t lower = round_to_odd(g, ((c << 2) - 2 + narrow) << h) + (c & 1);
    uint64_t upper = round_to_odd(g, ((c << 2) + 2) << h) - (c & 1);
    uint64_t s = vb >> 2; /* floor(v 10^-k) */
    if (s >= 10) {
        uint64_t s10 = s / 10 * 40; /* the multiples of 10^(k+1) each side of v */
        bool below = lower <= s10, above = s10 + 40 <= upper;
        if (below != above) {
            *exp10 = k + 1;
            return s / 10 + above;
        }
    }
    bool below = lower <= 4 * s, above = 4 * s + 4 <= upper;
    *exp10 = k;
    if (below != above) return s + above;
    return s + (vb > 4 * s + 2 || (vb == 4 * s + 2 && (s & 1)));
}

/* n < 10^8 as its 8 digits, the first in the lowest byte, without the '0' added: the
 * halves, their hundreds and their tens split in parallel lanes of one 64-bit word by
 * multiplying by reciprocals (exact in these ranges: n / 10^4 = n * 109951163 >> 40, a
 * 4-digit lane / 100 = * 10486 >> 20, a 2-digit lane / 10 = * 103 >> 10). */
static uint64_t eight_digits(uint32_t n)
{
    uint64_t high = (uint64_t)n * 109951163 >> 40;
    uint64_t x = high | (n - high * 10000) << 32;
    uint64_t hundreds = (x * 10486 >> 20) & 0x0000007f0000007full;
    x = hundreds | (x - hundreds * 100) << 16;
    uint64_t tens = (x * 103 >> 10) & 0x000f000f000f000full;
    return tens | (x - tens * 10) << 8;
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

/* The text is laid out in a scratch buffer with copies of fixed sizes (no call, no loop
 * per digit) and copied out whole: out has room for DTOA_TEXT_MAX bytes. */
int dtoa_shortest(double v, char *out)
{
    char text[64], all[48]; /* the text; the digits, 17 with leading zeros, then slack */
    char *p = text;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    if (bits >> 63) *p++ = '-';
    bits &= ~0ull >> 1;
    if (bits == 0) {
        memcpy(p, "0", 2);
        memcpy(out, text, 4);
        return (int)(p + 1 - text);
    }
    memcpy(&v, &bits, sizeof v);
    int k;
    uint64_t n = shortest(v, &k);
    uint64_t top = n / 100000000, middle = eight_digits((uint32_t)(top % 100000000)),
             low = eight_digits((uint32_t)(n - top * 100000000));
    all[0] = (char)('0' + top / 100000000);
    uint64_t ascii = middle + 0x3030303030303030u;
    memcpy(all + 1, &ascii, 8);
    ascii = low + 0x3030303030303030u;
    memcpy(all + 9, &ascii, 8);
    memset(all + 17, '0', sizeof all - 17);
    /* Leading zeros are low zero bytes of the two words, trailing ones high zero bytes;
     * trailing zeros go to the exponent (%g prints significant digits only). */
    int lead = all[0] != '0' ? 0
               : middle      ? 1 + __builtin_ctzll(middle) / 8
                             : 9 + __builtin_ctzll(low) / 8;
    int trail = low ? __builtin_clzll(low) / 8 : middle ? 8 + __builtin_clzll(middle) / 8 : 16;
    const char *digits = all + lead;
    int len = 17 - lead - trail;
    int x = len + k + trail - 1; /* the exponent of the first digit */
    if (x < -4 || x >= len) {    /* as printf's %g: d.ddde±XX */
        p[0] = digits[0];
        p[1] = '.';
        memcpy(p + 2, digits + 1, 16);
        p = put_exponent(p + (len > 1 ? len + 1 : 1), x);
    } else if (x >= 0) { /* ddd.ddd */
        memcpy(p, digits, 24);
        memcpy(p + x + 2, digits + x + 1, 16);
        p[x + 1] = '.';
        p += len + (len > x + 1);
    } else { /* 0.000ddd */
        memcpy(p, "0.0000", 6);
        memcpy(p + 1 - x, digits, 24);
        p += 1 - x + len;
    }
    *p = '\0';
    memcpy(out, text, DTOA_TEXT_MAX);
    return (int)(p - text);
}
