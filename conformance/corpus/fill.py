"""Programs that the verifier selftests generate in code instead of listing (``.fill_helper``).

test_verifier.c builds a handful of its programs with C functions: long jump chains, programs near the
1M-instruction limit, programs sized to cross a page boundary when the verifier patches them. These are
our own generators of programs of the same shape, written from what those tests exercise; each takes the
case's declared ``retval`` (which the selftests use to pick a variant) and returns
``(slots, retval, func_info)``: the instruction slots, the return value the run must give, and the
func_info records (or None to keep the case's own). The slots may be given as a function that builds them,
when building is costly and the expected value is known without it (its ``size`` attribute then gives the
number of slots).

Every generator is called as ``gen(retval, func_info, seed)``: the case's declared ``retval`` and
``func_info`` and a seed string.

Where the kernel's generator draws random constants we draw them from a seeded generator, so a case's
program is the same on every run and on both backends.
"""
import random

from bpfemu.prog.insn import (
    BPF_ALU64_IMM, BPF_ALU64_REG, BPF_B, BPF_CALL, BPF_CALL_REL, BPF_DW, BPF_EMIT_CALL,
    BPF_EXIT_INSN, BPF_JEQ, BPF_JMP, BPF_JMP32_IMM, BPF_JMP_A, BPF_JMP_IMM, BPF_JNE, BPF_LD,
    BPF_LD_ABS, BPF_LD_IMM64, BPF_MOV, BPF_MOV32_IMM, BPF_MOV64_IMM, BPF_MOV64_REG, BPF_PSEUDO_CALL,
    BPF_PSEUDO_FUNC, BPF_RAW_INSN, BPF_REG_0, BPF_REG_1, BPF_REG_2, BPF_REG_3, BPF_REG_4, BPF_REG_6,
    BPF_REG_10, BPF_RSH, BPF_ST_MEM, BPF_STX_MEM, BPF_XOR, BPF_IMM)

# helper ids are stable uapi numbers (enum bpf_func_id)
FUNC_get_prandom_u32 = 7
FUNC_skb_vlan_push = 18
FUNC_skb_vlan_pop = 19
FUNC_loop = 181

MAX_TEST_INSNS = 1000000  # test_verifier's fill buffer
MAX_JMP_SEQ = 8192


class SemiRandom:
    """64-bit constants biased toward the shapes that stress range tracking: small values, values around
    the 32-bit and sign boundaries, sign-extended negatives, single bytes at any position, all ones; seeded.
    One 128-bit draw per value: the low byte picks the shape and shift, the rest is the payload."""

    _SPECIAL = (0, 0xffffffffffffffff, 1 << 63, 1 << 47, 1 << 31, 1 << 32, 0x7fffffffffffffff, 0xffffffff)

    def __init__(self, seed):
        self.r = random.Random(seed)

    def get(self):
        x = self.r.getrandbits(128)
        shape, shift, p = x & 15, (x >> 4) & 63, x >> 16
        if shape == 0:
            v = (p & 0xff) << shift
        elif shape == 1:
            v = p & 0xffff
        elif shape == 2:
            v = p & 0xffffffff
        elif shape == 3:
            v = 0xffffffff00000000 | (p & 0xffffffff)       # a negative s64 with a random low word
        elif shape == 4:
            v = 0x8000000000000000 | (p & 0xffffffff)
        elif shape == 5:
            v = 0x00000000ffff0000 | (p & 0xffff)
        elif shape == 6:
            v = 0x7fffffff00000000 | (p & 0xffffffff)
        elif shape == 7:
            v = 0xffffffffffffffff ^ ((p & 0xff) << shift)
        elif shape == 8:
            v = self._SPECIAL[p & 7]
        elif shape == 9:
            v = (p & 0xffffffffff) << (shift % 24)
        elif shape == 10:
            v = 0x0000000100000000 | (p & 0xffffff)
        else:
            v = p
        return v & 0xffffffffffffffff


def _s32(v):
    v &= 0xffffffff
    return v - (1 << 32) if v >> 31 else v


def ld_abs_vlan_push_pop(retval, func_info, seed):
    """Five rounds of 51 packet loads each followed by a vlan push, then 51 loads each followed by a vlan
    pop, every step checking its result and jumping to a common error exit near the end; padded with
    moves to just under the 16-bit jump range (so the ld_abs rewrites push the offsets to their limit)."""
    push_cnt = 51
    n = (1 << 15) - push_cnt * 2 * 5 * 6
    p = [BPF_MOV64_REG(BPF_REG_6, BPF_REG_1)]

    def to_error():  # the jump at index len(p) lands on slot n - 2
        return n - len(p) - 3

    for _round in range(5):
        for _ in range(push_cnt):
            p.append(BPF_LD_ABS(BPF_B, 0))
            p.append(BPF_JMP32_IMM(BPF_JNE, BPF_REG_0, 0x34, to_error()))
            p += [BPF_MOV64_REG(BPF_REG_1, BPF_REG_6), BPF_MOV64_IMM(BPF_REG_2, 1), BPF_MOV64_IMM(BPF_REG_3, 2),
                  BPF_EMIT_CALL(FUNC_skb_vlan_push)]
            p.append(BPF_JMP_IMM(BPF_JNE, BPF_REG_0, 0, to_error()))
        for _ in range(push_cnt):
            p.append(BPF_LD_ABS(BPF_B, 0))
            p.append(BPF_JMP32_IMM(BPF_JNE, BPF_REG_0, 0x34, to_error()))
            p += [BPF_MOV64_REG(BPF_REG_1, BPF_REG_6), BPF_EMIT_CALL(FUNC_skb_vlan_pop)]
            p.append(BPF_JMP_IMM(BPF_JNE, BPF_REG_0, 0, to_error()))
    p += [BPF_ALU64_IMM(BPF_MOV, BPF_REG_0, 0xbef)] * (n - 3 - len(p))
    p += [BPF_JMP_A(1), BPF_MOV32_IMM(BPF_REG_0, 0), BPF_EXIT_INSN()]
    return p, retval, None


def jump_around_ld_abs(retval, func_info, seed):
    """One packet load and a jump over a long run of packet loads to the exit: after the verifier expands
    each ld_abs into several instructions the jump must still reach."""
    n = (1 << 15) // 7
    p = [BPF_MOV64_REG(BPF_REG_6, BPF_REG_1), BPF_LD_ABS(BPF_B, 0)]
    p.append(BPF_JMP_IMM(BPF_JEQ, BPF_REG_0, 10, n - len(p) - 2))
    while len(p) < n - 1:
        p.append(BPF_LD_ABS(BPF_B, 1))
    p.append(BPF_EXIT_INSN())
    return p, retval, None


def rand_ld_dw(retval, func_info, seed):
    """r0 = xor of many 64-bit ld_imm64 constants, folded to 32 bits; the program fills ``retval`` slots
    (the case's retval is the length), and the expected result is computed here."""
    rnd = SemiRandom(seed)
    want = retval
    values = [rnd.get() for _ in range(max(0, (want - 1 + 2) // 3))]
    acc = 0
    for v in values:
        acc ^= v
    acc ^= acc >> 32

    def slots():
        p = [BPF_MOV32_IMM(BPF_REG_0, 0)]
        xor = BPF_ALU64_REG(BPF_XOR, BPF_REG_0, BPF_REG_1)
        for v in values:
            p.extend(BPF_LD_IMM64(BPF_REG_1, v))
            p.append(xor)
        return p + [BPF_MOV64_REG(BPF_REG_1, BPF_REG_0), BPF_ALU64_IMM(BPF_RSH, BPF_REG_1, 32),
                    BPF_ALU64_REG(BPF_XOR, BPF_REG_0, BPF_REG_1), BPF_EXIT_INSN()]
    slots.size = 1 + 3 * len(values) + 4
    return slots, acc & 0xffffffff, None


def _jump_chain(p, rnd, stack_slots):
    for k in range(1, MAX_JMP_SEQ + 1):
        p.append(BPF_EMIT_CALL(FUNC_get_prandom_u32))
        p.append(BPF_JMP_IMM(BPF_JEQ, BPF_REG_0, _s32(rnd.get()), 2))
        p.append(BPF_MOV64_REG(BPF_REG_1, BPF_REG_10))
        p.append(BPF_STX_MEM(BPF_DW, BPF_REG_1, BPF_REG_6, -8 * (k % stack_slots + 1)))
    # padding, sized so the verifier's state-pruning heuristics still keep the program under 1M insns
    p += [BPF_ALU64_IMM(BPF_MOV, BPF_REG_0, 42)] * (MAX_TEST_INSNS - MAX_JMP_SEQ * 4 - len(p))
    p.append(BPF_EXIT_INSN())


def scale(retval, func_info, seed):
    """Near the 1M-instruction limit: 8k conditional jumps around stack stores, then padding; variant 2
    puts the same chain at call depth 8 (so fewer stack slots are free)."""
    rnd = SemiRandom(seed)
    variant = retval
    p = []
    if variant == 1:
        p.append(BPF_MOV64_REG(BPF_REG_6, BPF_REG_1))
        _jump_chain(p, rnd, 64)
    elif variant == 2:
        nest = 7
        for _ in range(nest):
            p += [BPF_CALL_REL(1), BPF_EXIT_INSN()]
        p.append(BPF_MOV64_REG(BPF_REG_6, BPF_REG_1))
        _jump_chain(p, rnd, 64 - 4 * nest)
    else:
        return [], variant, None
    return p, 42, None


def _torture_1():
    hlen = 128
    p = [None] * 259
    p[0] = BPF_EMIT_CALL(FUNC_get_prandom_u32)
    for i in range(1, hlen + 1):
        p[i] = BPF_JMP_IMM(BPF_JEQ, BPF_REG_0, i, hlen)   # forward into the second half ...
        p[i + hlen] = BPF_JMP_A(hlen - i)                 # ... which jumps on to the end
    p[257] = BPF_MOV64_IMM(BPF_REG_0, 1)
    p[258] = BPF_EXIT_INSN()
    return p


def _torture_2():
    n, off = 4100, 2048
    p = [None] * n
    p[0] = BPF_EMIT_CALL(FUNC_get_prandom_u32)
    for i in range(1, off + 1):
        p[i] = BPF_JMP_IMM(BPF_JEQ, BPF_REG_0, i, off)
    p[off + 1] = BPF_JMP_A(off)
    i = off + 2
    while i <= off * 2 + 1:
        for j in range(16):  # blocks of 16 jumps that all land on the block's end
            p[i + j] = BPF_JMP_A(16 - j - 1)
        i += 16
    p[n - 2] = BPF_MOV64_IMM(BPF_REG_0, 2)
    p[n - 1] = BPF_EXIT_INSN()
    return p


def torturous_jumps(retval, func_info, seed):
    """Dense forward jump patterns that stress the JIT's convergence of jump offsets (variants 1 and 2),
    and both as subprograms of one program (variant 3)."""
    variant = retval
    if variant == 1:
        return _torture_1(), 1, None
    if variant == 2:
        return _torture_2(), 2, None
    if variant == 3:
        a, b = _torture_1(), _torture_2()
        main = [BPF_RAW_INSN(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, 4),
                BPF_RAW_INSN(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, 4 + len(a) - 1),
                BPF_ST_MEM(BPF_B, BPF_REG_10, -32, 0), BPF_MOV64_IMM(BPF_REG_0, 3), BPF_EXIT_INSN()]
        return main + a + b, 3, None
    return [], variant, None


def big_prog_with_loop_1(retval, func_info, seed):
    """A bpf_loop call with a callback, padded so that the program is one page of instructions minus a few:
    inlining bpf_loop then makes the verifier reallocate the program across a page boundary."""
    n = 4096 - 25
    p = [BPF_ALU64_IMM(BPF_MOV, BPF_REG_1, 1)]
    load_at = len(p)
    p.append(None)  # the ld_imm64 of the callback, two slots, filled below
    p.append(None)
    p += [BPF_ALU64_IMM(BPF_MOV, BPF_REG_3, 0), BPF_ALU64_IMM(BPF_MOV, BPF_REG_4, 0),
          BPF_EMIT_CALL(FUNC_loop)]
    while len(p) < n - 3:
        p.append(BPF_ALU64_IMM(BPF_MOV, BPF_REG_0, 0))
    p.append(BPF_EXIT_INSN())
    callback = len(p)
    p += [BPF_ALU64_IMM(BPF_MOV, BPF_REG_0, 0), BPF_EXIT_INSN()]
    p[load_at] = BPF_RAW_INSN(BPF_LD | BPF_IMM | BPF_DW, BPF_REG_2, BPF_PSEUDO_FUNC, 0, callback - load_at - 1)
    p[load_at + 1] = BPF_RAW_INSN(0, 0, 0, 0, 0)
    assert len(p) == n
    func_info = list(func_info)
    if len(func_info) > 1:
        func_info[1] = (callback, func_info[1][1])
    return p, retval, func_info


GENERATORS = {
    "bpf_fill_ld_abs_vlan_push_pop": ld_abs_vlan_push_pop,
    "bpf_fill_jump_around_ld_abs": jump_around_ld_abs,
    "bpf_fill_rand_ld_dw": rand_ld_dw,
    "bpf_fill_scale": scale,
    "bpf_fill_torturous_jumps": torturous_jumps,
    "bpf_fill_big_prog_with_loop_1": big_prog_with_loop_1,
}
