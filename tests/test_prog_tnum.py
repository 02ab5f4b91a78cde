"""tnum arithmetic (bpfemu.prog.verifier.tnum): every operation is sound, i.e. for members a of A and b of B the
concrete result of a OP b is a member of tnum_OP(A, B)."""
import random

import pytest

from bpfemu.prog.verifier import tnum

U64 = (1 << 64) - 1


def members(t, rng, n=16):
    v, m = t
    out = [v]
    for _ in range(n):
        out.append(v | (rng.getrandbits(64) & m))
    return out


def rand_tnum(rng):
    kind = rng.randrange(4)
    if kind == 0:
        return tnum.const(rng.getrandbits(64))
    if kind == 1:
        m = rng.getrandbits(rng.randrange(1, 65))
    else:
        m = rng.getrandbits(64) & rng.getrandbits(64)
    v = rng.getrandbits(64) & ~m & U64
    return (v, m)


def is_member(t, x):
    return tnum.tin(t, tnum.const(x))


OPS = [
    (tnum.add, lambda a, b: (a + b) & U64),
    (tnum.sub, lambda a, b: (a - b) & U64),
    (tnum.mul, lambda a, b: (a * b) & U64),
    (tnum.tand, lambda a, b: a & b),
    (tnum.tor, lambda a, b: a | b),
    (tnum.txor, lambda a, b: a ^ b),
]


@pytest.mark.parametrize("op,concrete", OPS, ids=["add", "sub", "mul", "and", "or", "xor"])
def test_binary_ops_are_sound(op, concrete):
    rng = random.Random(1234)
    for _ in range(300):
        a, b = rand_tnum(rng), rand_tnum(rng)
        r = op(a, b)
        assert r[0] & r[1] == 0
        for x in members(a, rng, 4):
            for y in members(b, rng, 4):
                assert is_member(r, concrete(x, y))


def test_shifts_are_sound():
    rng = random.Random(7)
    for _ in range(300):
        a = rand_tnum(rng)
        s = rng.randrange(64)
        for x in members(a, rng, 8):
            assert is_member(tnum.lshift(a, s), (x << s) & U64)
            assert is_member(tnum.rshift(a, s), x >> s)
            sx = x - (1 << 64) if x >> 63 else x
            assert is_member(tnum.arshift(a, s, 64), (sx >> s) & U64)


def test_range_covers_the_range_and_constants_are_exact():
    rng = random.Random(3)
    for _ in range(300):
        lo = rng.getrandbits(rng.randrange(1, 65))
        hi = lo + rng.getrandbits(rng.randrange(0, 40))
        hi = min(hi, U64)
        t = tnum.trange(lo, hi)
        for x in (lo, hi, (lo + hi) // 2):
            assert is_member(t, x)
    assert tnum.trange(5, 5) == (5, 0)
    assert tnum.trange(0, 255) == (0, 255)
    assert tnum.trange(0, U64) == tnum.UNKNOWN


def test_intersect_keeps_common_members():
    rng = random.Random(11)
    for _ in range(300):
        a = rand_tnum(rng)
        x = members(a, rng, 1)[-1]
        b = (x & ~(m := rng.getrandbits(64)) & U64, m)   # another tnum containing x
        assert is_member(tnum.intersect(a, b), x)


def test_strn_formats_as_the_kernel_log():
    assert tnum.strn((5, 0)) == "5"
    assert tnum.strn((0x10000, 0)) == "0x10000"
    assert tnum.strn((0, 0xff)) == "(0x0; 0xff)"
    assert tnum.strn((0x100, 0xff)) == "(0x100; 0xff)"
