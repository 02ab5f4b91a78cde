"""Register bounds (bpfemu.prog.verifier.regs / alu): reg_bounds_sync never loses a value a register can hold,
and the scalar ALU range rules are sound for every concrete pair of operands they cover."""
import random

import pytest

from bpfemu.prog.verifier import regs as R
from bpfemu.prog.verifier import tnum
from bpfemu.prog.verifier.alu import (scalar32_add, scalar_add, scalar_and, scalar_lsh, scalar_mul, scalar_or,
                                      scalar_rsh, scalar_sub, scalar_xor, scalar32_and, scalar32_or,
                                      scalar32_xor, scalar32_sub, scalar32_mul)

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1


def reg_from_values(vals):
    """The tightest register state the verifier could hold for exactly this set of 64-bit values."""
    r = R.Reg()
    r.type = R.SCALAR_VALUE
    r.umin, r.umax = min(vals), max(vals)
    s = [R.s64(v) for v in vals]
    r.smin, r.smax = min(s), max(s)
    lo = [v & U32 for v in vals]
    r.u32min, r.u32max = min(lo), max(lo)
    s32 = [R.s32(v) for v in lo]
    r.s32min, r.s32max = min(s32), max(s32)
    t = tnum.const(vals[0])
    for v in vals[1:]:
        t = tnum.union(t, tnum.const(v))
    r.vv, r.vm = t
    return r


def contains(r, v):
    v &= U64
    return (r.umin <= v <= r.umax and r.smin <= R.s64(v) <= r.smax and r.u32min <= (v & U32) <= r.u32max and
            r.s32min <= R.s32(v) <= r.s32max and tnum.tin((r.vv, r.vm), tnum.const(v)))


def rand_values(rng):
    base = rng.choice([0, 1 << 31, (1 << 32) - 5, 1 << 63, U64 - 100, rng.getrandbits(64)])
    width = rng.choice([0, 1, 8, 200, 1 << 20, 1 << 33])
    return [(base + rng.randrange(width + 1)) & U64 for _ in range(rng.randrange(1, 6))]


def test_bounds_sync_keeps_every_value_and_is_consistent():
    rng = random.Random(42)
    for _ in range(2000):
        vals = rand_values(rng)
        r = reg_from_values(vals)
        R.reg_bounds_sync(r)
        for v in vals:
            assert contains(r, v), (vals, r)
        assert R.bounds_invariant_violation(r) is None


def test_constant_fast_path_matches_the_general_path():
    rng = random.Random(5)
    for _ in range(500):
        v = rng.getrandbits(64)
        a = R.Reg()
        R.mark_known(a, v)
        b = a.copy()
        R.reg_bounds_sync(a)
        # the general path, as when the register is not known to be constant
        R.update_reg_bounds(b)
        for _ in range(3):
            R.reg_deduce_bounds(b)
        R.reg_bound_offset(b)
        R.update_reg_bounds(b)
        assert a.raw_eq(b)


BINOPS = [
    ("add", lambda d, s: (scalar32_add(d, s), scalar_add(d, s), setattr_t(d, tnum.add(d.var_off, s.var_off))),
     lambda a, b: a + b),
    ("sub", lambda d, s: (scalar32_sub(d, s), scalar_sub(d, s), setattr_t(d, tnum.sub(d.var_off, s.var_off))),
     lambda a, b: a - b),
    ("and", lambda d, s: (setattr_t(d, tnum.tand(d.var_off, s.var_off)), scalar32_and(d, s), scalar_and(d, s)),
     lambda a, b: a & b),
    ("or", lambda d, s: (setattr_t(d, tnum.tor(d.var_off, s.var_off)), scalar32_or(d, s), scalar_or(d, s)),
     lambda a, b: a | b),
    ("xor", lambda d, s: (setattr_t(d, tnum.txor(d.var_off, s.var_off)), scalar32_xor(d, s), scalar_xor(d, s)),
     lambda a, b: a ^ b),
    ("mul", lambda d, s: (setattr_t(d, tnum.mul(d.var_off, s.var_off)), scalar32_mul(d, s), scalar_mul(d, s)),
     lambda a, b: a * b),
]


def setattr_t(r, t):
    r.vv, r.vm = t


@pytest.mark.parametrize("name,apply,concrete", BINOPS, ids=[b[0] for b in BINOPS])
def test_alu64_rules_are_sound(name, apply, concrete):
    rng = random.Random(hash(name) & 0xffff)
    for _ in range(400):
        xs, ys = rand_values(rng), rand_values(rng)
        d, s = reg_from_values(xs), reg_from_values(ys)
        R.reg_bounds_sync(d)
        R.reg_bounds_sync(s)
        apply(d, s)
        R.reg_bounds_sync(d)
        for x in xs:
            for y in ys:
                assert contains(d, concrete(x, y)), (name, xs, ys, d)


def test_shift_rules_are_sound():
    rng = random.Random(9)
    for _ in range(400):
        xs = rand_values(rng)
        k = rng.randrange(64)
        for fn, concrete in ((scalar_lsh, lambda a: (a << k) & U64), (scalar_rsh, lambda a: a >> k)):
            d = reg_from_values(xs)
            R.reg_bounds_sync(d)
            s = R.Reg()
            R.mark_known(s, k)
            fn(d, s)
            R.reg_bounds_sync(d)
            for x in xs:
                assert contains(d, concrete(x))


def test_print_matches_the_kernel_log_format():
    r = R.Reg()
    R.mark_unknown(r)
    r.umax = r.u32max = 0xffffffff
    r.smax = 0xffffffff
    r.smin = 0
    r.vv, r.vm = 0, 0xffffffff
    R.reg_bounds_sync(r)
    assert R.format_reg(r, 0) == "scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff))"
    c = R.Reg()
    R.mark_known(c, 5)
    c.type = R.SCALAR_VALUE
    assert R.format_reg(c, 0) == "5"
    R.mark_known(c, (-1) & U64)
    assert R.format_reg(c, 0) == "-1"
