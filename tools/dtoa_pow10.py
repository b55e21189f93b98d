#!/usr/bin/env python3
"""dtoa_pow10.py — writes core/dtoa_pow10.h, the powers of ten core/dtoa.c scales by.

For every e that a double's conversion needs (-292..324), 10^e = g * 2^r with
2^127 <= g < 2^128, g rounded up to an integer (exact when 10^e is one): the
Schubfach way (Giulietti) needs an overestimate, which the products' round-to-odd
then absorbs. Computed with Python's exact integers, so the table is checked by
running this again: `python3 tools/dtoa_pow10.py | diff - core/dtoa_pow10.h`.
Also checks the shift-and-multiply logarithms dtoa.c uses against exact ones.
"""
import sys

E_MIN, E_MAX = -292, 324


def floor_log2_pow10(e):
    """floor(log2(10^e)), exactly."""
    if e >= 0:
        return (10**e).bit_length() - 1
    # 2^r <= 10^e < 2^(r+1)  <=>  2^-r >= 10^-e > 2^(-r-1)
    n = 10**-e
    r = -(n.bit_length() - 1)
    return r if n == 1 << -r else r - 1


def ceil_div(a, b):
    return -(-a // b)


def significand(e):
    r = floor_log2_pow10(e) - 127
    if e >= 0:
        num, den = 10**e, 1
    else:
        num, den = 1, 10**-e
    if r >= 0:
        den <<= r
    else:
        num <<= -r
    g = ceil_div(num, den)
    assert 1 << 127 <= g < 1 << 128
    return g


def floor_log10(num, den):
    """floor(log10(num / den)) for positive integers."""
    k = len(str(num // den)) - 1 if num >= den else -1
    while num < den * 10**k if k >= 0 else num * 10**-k < den:
        k -= 1
    while (num >= den * 10 ** (k + 1)) if k + 1 >= 0 else (num * 10 ** -(k + 1) >= den):
        k += 1
    return k


def check_logarithms():
    for q in range(-1100, 1100):
        num, den = (1 << q, 1) if q >= 0 else (1, 1 << -q)
        assert (q * 1262611) >> 22 == floor_log10(num, den), q
        assert (q * 1262611 - 524031) >> 22 == floor_log10(3 * num, 4 * den), q
    for e in range(-400, 400):
        assert (e * 1741647) >> 19 == floor_log2_pow10(e), e


def main():
    check_logarithms()
    out = sys.stdout
    out.write("/* dtoa_pow10.h — 10^e for e in [DTOA_POW10_MIN, 324] as g * 2^r, 2^127 <= g < 2^128,\n")
    out.write(" * g rounded up ({high 64 bits, low 64 bits}; r follows from e, core/dtoa.c).\n")
    out.write(" * Generated with exact integers by tools/dtoa_pow10.py; do not edit. */\n")
    out.write("#define DTOA_POW10_MIN (%d)\n\n" % E_MIN)
    out.write("static const uint64_t dtoa_pow10[][2] = {\n")
    for e in range(E_MIN, E_MAX + 1):
        g = significand(e)
        out.write("    {0x%016xu, 0x%016xu}, /* %d */\n" % (g >> 64, g & (2**64 - 1), e))
    out.write("};\n")


if __name__ == "__main__":
    main()
