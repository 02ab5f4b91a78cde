"""ISA conformance: conditional jumps (JMP and JMP32, every condition, register and immediate source),
unconditional jumps (ja, gotol), backward jumps, may_goto, ld_imm64 and exit; host and both emulator engines."""
import itertools

import pytest

from bpfemu.prog.insn import (BPF_ADD, BPF_ALU64_IMM, BPF_EXIT_INSN, BPF_JEQ, BPF_JGE, BPF_JGT,
                              BPF_JLE, BPF_JLT, BPF_JMP32_A, BPF_JMP32_IMM, BPF_JMP32_REG, BPF_JMP_A, BPF_JMP_IMM,
                              BPF_JMP_REG, BPF_JNE, BPF_JSET, BPF_JSGE, BPF_JSGT, BPF_JSLE, BPF_JSLT, BPF_LD_IMM64,
                              BPF_MAY_GOTO_INSN, BPF_MOV64_IMM, BPF_MOV64_REG, BPF_REG_0, BPF_REG_1, BPF_REG_2,
                              BPF_REG_3, BPF_REG_4)

from . import isa_oracle as O
from .isa import BACKENDS, chunks, ld64, make_sys, pack, refused_without, run_xdp, st64, unpack


@pytest.fixture(params=BACKENDS)
def isa_sys(request):
    s, done = make_sys(request.param)
    yield s
    done()


CONDS = {"jeq": BPF_JEQ, "jne": BPF_JNE, "jgt": BPF_JGT, "jge": BPF_JGE, "jlt": BPF_JLT, "jle": BPF_JLE,
         "jset": BPF_JSET, "jsgt": BPF_JSGT, "jsge": BPF_JSGE, "jslt": BPF_JSLT, "jsle": BPF_JSLE}
# the boundaries of unsigned and signed order in 32 and 64 bits, and values equal in their low half only
JVALUES = [0, 1, 2, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 0x100000001, 0x17fffffff, 0x180000000,
           0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff, 0xfffffffffffffffe, 0xffffffff80000000,
           0xffffffff00000001, 0x80000000ffffffff, 0x123456789]
JIMMS = [0, 1, -1, 2, -2, 0x7fffffff, -0x80000000, 0x23456789]


def cond_body(k, jump):
    """r0 = 1; if (cond) skip; r0 = 0; store r0 at slot k."""
    return [BPF_MOV64_IMM(BPF_REG_0, 1), jump, BPF_MOV64_IMM(BPF_REG_0, 0), st64(BPF_REG_0, 16 * k)]


@pytest.mark.parametrize("width", [64, 32])
@pytest.mark.parametrize("name", sorted(CONDS))
def test_jump_reg(isa_sys, name, width):
    op = CONDS[name]
    pairs = list(itertools.product(JVALUES, JVALUES))
    for chunk in chunks(pairs, 200):
        body = []
        for k in range(len(chunk)):
            j = (BPF_JMP_REG if width == 64 else BPF_JMP32_REG)(op, BPF_REG_1, BPF_REG_2, 1)
            body += [ld64(BPF_REG_1, 16 * k), ld64(BPF_REG_2, 16 * k + 8)] + cond_body(k, j)
        got = unpack(run_xdp(isa_sys, body, pack(v for p in chunk for v in p)))[0::2]
        want = [int(O.jump(name, width, a, b)) for a, b in chunk]
        bad = [(hex(a), hex(b), g) for (a, b), g, w in zip(chunk, got, want) if g != w]
        assert not bad, "%s%d (dst, src, got) %s" % (name, width, bad[:8])


@pytest.mark.parametrize("width", [64, 32])
@pytest.mark.parametrize("name", sorted(CONDS))
def test_jump_imm(isa_sys, name, width):
    """JMP compares with the imm sign-extended to 64 bits, JMP32 with its 32 bits."""
    op = CONDS[name]
    cases = list(itertools.product(JVALUES, JIMMS))
    body = []
    for k, (a, imm) in enumerate(cases):
        j = (BPF_JMP_IMM if width == 64 else BPF_JMP32_IMM)(op, BPF_REG_3, imm, 1)
        body += [ld64(BPF_REG_3, 16 * k)] + cond_body(k, j)
    data = pack(v for a, _ in cases for v in (a, 0))
    got = unpack(run_xdp(isa_sys, body, data))[0::2]
    want = [int(O.jump(name, width, a, imm & ((1 << 64) - 1))) for a, imm in cases]
    bad = [(hex(a), imm, g) for (a, imm), g, w in zip(cases, got, want) if g != w]
    assert not bad, "%s%d imm (dst, imm, got) %s" % (name, width, bad[:8])


def test_jump_same_register(isa_sys):
    """if r1 op r1: every condition against itself."""
    body = []
    names = sorted(CONDS)
    for k, (name, width) in enumerate(itertools.product(names, (64, 32))):
        j = (BPF_JMP_REG if width == 64 else BPF_JMP32_REG)(CONDS[name], BPF_REG_1, BPF_REG_1, 1)
        body += [ld64(BPF_REG_1, 16 * k)] + cond_body(k, j)
    cases = list(itertools.product(names, (64, 32)))
    v = 0x80000000ffffffff
    got = unpack(run_xdp(isa_sys, body, pack([v, 0] * len(cases))))[0::2]
    assert got == [int(O.jump(n, w, v, v)) for n, w in cases]


def test_ja_forward_backward_and_gotol(isa_sys):
    """ja +off (including 0 and backward) and gotol (JMP32 | JA, its offset in imm, forward and backward)
    take the path their offsets say; each path adds its own marks. in[0] picks one of two paths."""
    body = [
        BPF_MOV64_IMM(BPF_REG_1, 0),
        ld64(BPF_REG_2, 0),
        BPF_JMP_IMM(BPF_JNE, BPF_REG_2, 0, 1),
        BPF_JMP_A(1),                            # in == 0: skip the next
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, 100),
        BPF_JMP_A(0),                            # to the next instruction
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, 1),
        BPF_JMP_IMM(BPF_JNE, BPF_REG_2, 0, 1),
        BPF_JMP32_A(1),                          # in == 0: gotol over the next
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, 1000),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, 10),
        BPF_MOV64_IMM(BPF_REG_4, 0),
        BPF_JMP_A(2),                            # forward over the loop body
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, 7),    # reached only by the backward gotol
        BPF_JMP_A(0),
        BPF_JMP_IMM(BPF_JNE, BPF_REG_4, 0, 2),
        BPF_MOV64_IMM(BPF_REG_4, 1),
        BPF_JMP32_A(-5),                         # gotol backward
        st64(BPF_REG_1, 8),
    ]
    assert unpack(run_xdp(isa_sys, body, pack([0, 0]))) == [0, 1 + 10 + 7]
    assert unpack(run_xdp(isa_sys, body, pack([1, 0]))) == [1, 100 + 1 + 1000 + 10 + 7]


def test_backward_loop(isa_sys):
    """A counted loop with a backward conditional jump (bounded, so the verifier takes it)."""
    body = [
        ld64(BPF_REG_2, 0),                 # n (unknown to the verifier but masked below)
        BPF_ALU64_IMM(0x50, BPF_REG_2, 63),  # n &= 63
        BPF_MOV64_IMM(BPF_REG_1, 0),
        BPF_MOV64_IMM(BPF_REG_3, 0),
        BPF_JMP_REG(BPF_JGE, BPF_REG_3, BPF_REG_2, 3),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, 3),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_3, 1),
        BPF_JMP_A(-4),
        st64(BPF_REG_1, 8),
        st64(BPF_REG_3, 16),
    ]
    for n in (0, 1, 5, 63, 64 + 9):
        got = unpack(run_xdp(isa_sys, body, pack([n, 0, 0])))
        assert got[1:] == [3 * (n & 63), n & 63]


NO_PRECISION = ("the emulator's verifier has no precision tracking yet (docs/verifier.md): it compares every "
                "scalar as precise, so it does not prune a may_goto loop over a constant counter as the host "
                "does and refuses the program; the _unknown_counter variants run the same loops")


def may_goto_refused(isa_sys, body):
    """may_goto on a kernel version without it (6.9): its opcode is unknown."""
    return refused_without(isa_sys, "may_goto", body, "unknown opcode e5", ndata=24)


def _needs_precision(request):
    if "emu" in request.node.name:
        request.applymarker(pytest.mark.xfail(reason=NO_PRECISION, strict=False))


def test_may_goto_loop_ends_by_its_condition(isa_sys, request):
    """may_goto falls through while its budget lasts: a loop that ends on its own condition first never
    sees it taken."""
    body = [
        ld64(BPF_REG_2, 0),
        BPF_MOV64_IMM(BPF_REG_1, 0),
        BPF_MAY_GOTO_INSN(3),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, 1),
        BPF_JMP_REG(BPF_JGE, BPF_REG_1, BPF_REG_2, 1),
        BPF_JMP_A(-4),
        st64(BPF_REG_1, 8),
    ]
    if may_goto_refused(isa_sys, body):
        return
    _needs_precision(request)
    for n in (1, 2, 1000):
        got = unpack(run_xdp(isa_sys, body, pack([n, 0])))
        assert got[1] == n


def test_may_goto_loop_ends_by_its_condition_unknown_counter(isa_sys):
    """The same loop with a counter the verifier cannot fold (it starts from the packet)."""
    body = [
        ld64(BPF_REG_2, 0),
        ld64(BPF_REG_1, 16),
        BPF_MAY_GOTO_INSN(3),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, 1),
        BPF_JMP_REG(BPF_JGE, BPF_REG_1, BPF_REG_2, 1),
        BPF_JMP_A(-4),
        st64(BPF_REG_1, 8),
    ]
    if may_goto_refused(isa_sys, body):
        return
    for n in (1, 2, 1000):
        got = unpack(run_xdp(isa_sys, body, pack([n, 0, 0])))
        assert got[1] == n


def test_may_goto_first_execution_falls_through(isa_sys):
    body = [
        BPF_MOV64_IMM(BPF_REG_1, 5),
        BPF_MAY_GOTO_INSN(1),
        BPF_MOV64_IMM(BPF_REG_1, 6),
        st64(BPF_REG_1, 0),
    ]
    if may_goto_refused(isa_sys, body):
        return
    assert unpack(run_xdp(isa_sys, body, pack([0]))) == [6]


LD_IMM64 = [0, 1, 0xffffffff, 0x100000000, 0xffffffff00000000, 0x8000000000000000, 0xffffffffffffffff,
            0x0123456789abcdef, 0x80000000, 0x7fffffff80000000]


def test_ld_imm64(isa_sys):
    """lddw: the two slots' imm fields make one 64-bit constant (the second slot's imm is the upper half)."""
    body = []
    for k, v in enumerate(LD_IMM64):
        body += [BPF_LD_IMM64(BPF_REG_4, v), st64(BPF_REG_4, 8 * k)]
    assert unpack(run_xdp(isa_sys, body, pack([0xee] * len(LD_IMM64)))) == LD_IMM64


def test_mov_reg_keeps_source(isa_sys):
    body = [ld64(BPF_REG_1, 0), BPF_MOV64_REG(BPF_REG_2, BPF_REG_1), BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, 1),
            st64(BPF_REG_1, 8), st64(BPF_REG_2, 16)]
    v = 0xffffffffffffffff
    assert unpack(run_xdp(isa_sys, body, pack([v, 0, 0]))) == [v, v, 0]


def test_exit_returns_r0(isa_sys):
    """The program's return value is R0's low 32 bits (test_run's retval is a u32)."""
    from . import progrun
    from bpfemu import uapi as u
    for v in (0, 1, 2, 0x7fffffff, 0xfffffffe):
        prog = [BPF_LD_IMM64(BPF_REG_0, (0xabcd << 32) | v), BPF_EXIT_INSN()]
        fd = progrun.load(isa_sys, prog, u.BPF_PROG_TYPE_SOCKET_FILTER)
        try:
            r = progrun.test_run(isa_sys, fd, data=bytes(64))
        finally:
            isa_sys.close(fd)
        assert (r.errno, r.retval) == (0, v)


def test_may_goto_budget_is_shared_by_the_frame(isa_sys, request):
    """Once one may_goto loop has used up the frame's budget, another may_goto of the same frame jumps at
    once. (How many iterations the budget gives differs: the host's x86 JIT bounds it by time, the emulator
    counts BPF_MAX_LOOPS iterations, see docs/kernel-notes.md.)"""
    if "emu-interp" in request.node.name:
        pytest.skip("8M iterations: too slow for the reference interpreter in a test")
    body = [
        BPF_MOV64_IMM(BPF_REG_1, 0),
        BPF_MAY_GOTO_INSN(2),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, 1),
        BPF_JMP_A(-3),
        BPF_MOV64_IMM(BPF_REG_2, 0),
        BPF_MAY_GOTO_INSN(2),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, 1),
        BPF_JMP_A(-3),
        st64(BPF_REG_1, 0),
        st64(BPF_REG_2, 8),
    ]
    if may_goto_refused(isa_sys, body):
        return
    _needs_precision(request)
    first, second = unpack(run_xdp(isa_sys, body, pack([0, 0])))
    assert first > 0 and second == 0


def test_may_goto_budget_is_shared_by_the_frame_unknown_counter(isa_sys, request):
    """The same two loops with counters the verifier cannot fold (they start from the packet)."""
    if "emu-interp" in request.node.name:
        pytest.skip("8M iterations: too slow for the reference interpreter in a test")
    body = [
        ld64(BPF_REG_1, 16),
        BPF_MAY_GOTO_INSN(2),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, 1),
        BPF_JMP_A(-3),
        ld64(BPF_REG_2, 16),
        BPF_MAY_GOTO_INSN(2),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, 1),
        BPF_JMP_A(-3),
        st64(BPF_REG_1, 0),
        st64(BPF_REG_2, 8),
    ]
    if may_goto_refused(isa_sys, body):
        return
    first, second = unpack(run_xdp(isa_sys, body, pack([0, 0, 0])))[:2]
    assert first > 0 and second == 0
