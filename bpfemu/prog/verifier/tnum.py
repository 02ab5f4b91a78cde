"""Tracked numbers: a 64-bit value of which some bits are known (kernel/bpf/tnum.c).

A tnum is a pair ``(value, mask)`` of unsigned 64-bit ints: a bit set in ``mask`` is unknown, a bit clear in
``mask`` has the value of that bit of ``value`` (``value & mask == 0`` always). The verifier keeps one per
register as its ``var_off``. The functions here are pure and return new pairs; every result is masked to
64 bits.
"""
U64 = (1 << 64) - 1
U32 = (1 << 32) - 1

UNKNOWN = (0, U64)


def const(v):
    return (v & U64, 0)


def is_const(t):
    return t[1] == 0


def is_unknown(t):
    return t[1] == U64


def equals_const(t, v):
    return t[1] == 0 and t[0] == (v & U64)


def trange(lo, hi):
    """The smallest tnum holding every value of the unsigned range [lo, hi] (tnum_range)."""
    chi = (lo ^ hi) & U64
    bits = chi.bit_length()
    if bits > 63:
        return UNKNOWN
    delta = (1 << bits) - 1
    return (lo & ~delta & U64, delta)


def lshift(t, shift):
    return ((t[0] << shift) & U64, (t[1] << shift) & U64)


def rshift(t, shift):
    return (t[0] >> shift, t[1] >> shift)


def _sx(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def arshift(t, shift, bitness):
    """Arithmetic right shift of a 32- or 64-bit tnum (the sign bit of value and mask both spread)."""
    if bitness == 32:
        return ((_sx(t[0], 32) >> shift) & U32, (_sx(t[1], 32) >> shift) & U32)
    return ((_sx(t[0], 64) >> shift) & U64, (_sx(t[1], 64) >> shift) & U64)


def add(a, b):
    sm = (a[1] + b[1]) & U64
    sv = (a[0] + b[0]) & U64
    sigma = (sm + sv) & U64
    chi = sigma ^ sv
    mu = chi | a[1] | b[1]
    return (sv & ~mu & U64, mu)


def sub(a, b):
    dv = (a[0] - b[0]) & U64
    alpha = (dv + a[1]) & U64
    beta = (dv - b[1]) & U64
    chi = alpha ^ beta
    mu = chi | a[1] | b[1]
    return (dv & ~mu & U64, mu)


def neg(a):
    return sub((0, 0), a)


def tand(a, b):
    alpha = a[0] | a[1]
    beta = b[0] | b[1]
    v = a[0] & b[0]
    return (v, alpha & beta & ~v & U64)


def tor(a, b):
    v = a[0] | b[0]
    mu = a[1] | b[1]
    return (v, mu & ~v & U64)


def txor(a, b):
    v = a[0] ^ b[0]
    mu = a[1] | b[1]
    return (v & ~mu & U64, mu)


def union(a, b):
    """tnum_union: the bits known and equal in both."""
    v = a[0] & b[0]
    mu = ((a[0] ^ b[0]) | a[1] | b[1]) & U64
    return (v & ~mu & U64, mu)


def mul(a, b):
    """Product of two tnums (the 6.17+ algorithm): shift-and-add over the bits of ``a``; a known 1 bit adds
    ``b``, an unknown bit takes the union of adding it and not."""
    av, am = a
    bv, bm = b
    acc = (0, 0)
    while av or am:
        if av & 1:
            acc = add(acc, (bv, bm))
        elif am & 1:
            acc = union(acc, add(acc, (bv, bm)))
        av >>= 1
        am >>= 1
        bv = (bv << 1) & U64
        bm = (bm << 1) & U64
    return acc


def overlap(a, b):
    mu = ~a[1] & ~b[1] & U64
    return (a[0] & mu) == (b[0] & mu)


def intersect(a, b):
    v = a[0] | b[0]
    mu = a[1] & b[1]
    return (v & ~mu & U64, mu)


def union(a, b):
    v = a[0] & b[0]
    mu = (a[0] ^ b[0]) | a[1] | b[1]
    return (v & ~mu & U64, mu)


def cast(a, size):
    m = (1 << (size * 8)) - 1
    return (a[0] & m, a[1] & m)


def is_aligned(a, size):
    if not size:
        return True
    return not ((a[0] | a[1]) & (size - 1))


def tin(a, b):
    """True when every value of b is a value of a (tnum_in)."""
    if b[1] & ~a[1]:
        return False
    return a[0] == (b[0] & ~a[1])


def subreg(a):
    return (a[0] & U32, a[1] & U32)


def clear_subreg(a):
    return ((a[0] >> 32) << 32, (a[1] >> 32) << 32)


def with_subreg(reg, sub):
    return tor(clear_subreg(reg), subreg(sub))


def const_subreg(a, v):
    return with_subreg(a, const(v))


def subreg_is_const(a):
    return not (a[1] & U32)


def sbin(a):
    """The 64 characters '0', '1' or 'x' of a, most significant first (tnum_sbin)."""
    v, m = a
    return "".join("x" if (m >> i) & 1 else ("1" if (v >> i) & 1 else "0") for i in range(63, -1, -1))


def strn(a):
    """tnum_strn: a known tnum as its value (decimal up to 0xffff, else hex), else '(value; mask)'."""
    v, m = a
    if m == 0:
        return "%d" % v if v <= 0xffff else "%#x" % v
    return "(%#x; %#x)" % (v, m)


def _swab(v, n):
    return int.from_bytes(v.to_bytes(n, "little"), "big")


def bswap16(a):
    return (_swab(a[0] & 0xffff, 2), _swab(a[1] & 0xffff, 2))


def bswap32(a):
    return (_swab(a[0] & U32, 4), _swab(a[1] & U32, 4))


def bswap64(a):
    return (_swab(a[0], 8), _swab(a[1], 8))


def step(t, z):
    """tnum_step: the smallest member of t greater than z (t's largest member when there is none; its
    smallest when z is below it)."""
    v, m = t
    tmax = v | m
    if z >= tmax:
        return tmax
    if z < v:
        return v
    d = z - v                       # members are v + y for y a subset of m
    carry = (1 << (d & ~m & U64).bit_length()) - 1
    filled = (d | carry | (~m & U64)) & U64
    return v | (((filled + 1) & U64) & m)
