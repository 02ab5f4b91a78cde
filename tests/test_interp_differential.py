"""The translator against the reference interpreter: random programs, identical results.

Programs are generated from a seeded random.Random (deterministic): straight-line mixes of every ALU, byte
swap, load, store and atomic form on random operands, and branchy ones with forward jumps of every condition
and counted loops. Each ends by storing every register and the stack into its context; both engines must
return the same R0 and leave the same bytes.
"""
import random

import pytest

from bpfemu.prog import jit
from bpfemu.prog.core import Image, RunCtx, bpf_prog_run, interpret
from bpfemu.prog.insn import *  # noqa: F401,F403 - builders read like the kernel's macros
from bpfemu.prog.memory import Memory

ALU_OPS = [BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_NEG, BPF_MOD, BPF_XOR,
           BPF_MOV, BPF_ARSH]
JMP_OPS = [BPF_JEQ, BPF_JNE, BPF_JGT, BPF_JGE, BPF_JLT, BPF_JLE, BPF_JSET, BPF_JSGT, BPF_JSGE, BPF_JSLT,
           BPF_JSLE]
EDGE = [0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000,
        0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff, 63, 64, 31, 32]
SAVE = -96    # random stack traffic stays below this; registers are saved above it at the end
CTX_SIZE = 512 + 80


def rand_value(rng):
    r = rng.random()
    if r < 0.5:
        return rng.choice(EDGE)
    if r < 0.7:
        return rng.getrandbits(8)
    return rng.getrandbits(64)


def rand_imm(rng):
    return rng.choice([0, 1, -1, 2, 7, -7, 31, 32, 63, 64, 0x7fffffff, -0x80000000, rng.getrandbits(31),
                       -rng.getrandbits(31)])


def rand_insn(rng, regs):
    """One straight-line instruction (or a short group) over the registers ``regs``."""
    d, s = rng.choice(regs), rng.choice(regs)
    k = rng.random()
    if k < 0.45:
        op = rng.choice(ALU_OPS)
        is64 = rng.random() < 0.5
        if op == BPF_NEG:
            return [(BPF_ALU64_IMM if is64 else BPF_ALU32_IMM)(BPF_NEG, d, 0)]
        off = 1 if op in (BPF_DIV, BPF_MOD) and rng.random() < 0.4 else 0
        if op == BPF_MOV and rng.random() < 0.3:
            return [(BPF_MOVSX64_REG(d, s, rng.choice([8, 16, 32])) if is64
                     else BPF_MOVSX32_REG(d, s, rng.choice([8, 16])))]
        if rng.random() < 0.5:
            return [(BPF_ALU64_REG_OFF if is64 else BPF_ALU32_REG_OFF)(op, d, s, off)]
        imm = rand_imm(rng)
        return [(BPF_ALU64_IMM_OFF if is64 else BPF_ALU32_IMM_OFF)(op, d, imm, off)]
    if k < 0.52:
        w = rng.choice([16, 32, 64])
        return [rng.choice([BPF_ENDIAN(BPF_TO_LE, d, w), BPF_ENDIAN(BPF_TO_BE, d, w), BPF_BSWAP(d, w)])]
    if k < 0.58:
        return [BPF_LD_IMM64(d, rand_value(rng))]
    size, n = rng.choice([(BPF_B, 1), (BPF_H, 2), (BPF_W, 4), (BPF_DW, 8)])
    off = rng.randrange(-512, SAVE - n + 1)
    if k < 0.70:
        return [BPF_STX_MEM(size, BPF_REG_10, s, off)]
    if k < 0.76:
        return [BPF_ST_MEM(size, BPF_REG_10, off, rand_imm(rng))]
    if k < 0.86:
        if n < 8 and rng.random() < 0.4:
            return [BPF_LDX_MEMSX(size, d, BPF_REG_10, off)]
        return [BPF_LDX_MEM(size, d, BPF_REG_10, off)]
    if k < 0.92:  # through a pointer in a register
        p = rng.choice([r for r in regs if r != s] or regs)
        base = rng.randrange(-512, SAVE - 16)
        j = rng.randrange(0, 16 - n + 1)
        return [BPF_MOV64_REG(p, BPF_REG_10), BPF_ALU64_IMM(BPF_ADD, p, base),
                rng.choice([BPF_LDX_MEM(size, d if d != p else s, p, j), BPF_STX_MEM(size, p, s, j)])]
    asize, an = rng.choice([(BPF_W, 4), (BPF_DW, 8)])
    off = -an * rng.randrange(SAVE // -an + 1, 512 // an + 1)
    op = rng.choice([BPF_ADD, BPF_OR, BPF_AND, BPF_XOR, BPF_ADD | BPF_FETCH, BPF_OR | BPF_FETCH,
                     BPF_AND | BPF_FETCH, BPF_XOR | BPF_FETCH, BPF_XCHG, BPF_CMPXCHG, BPF_LOAD_ACQ,
                     BPF_STORE_REL])
    if op == BPF_LOAD_ACQ:
        return [BPF_ATOMIC_OP(asize, op, d, BPF_REG_10, off)]
    return [BPF_ATOMIC_OP(asize, op, BPF_REG_10, s, off)]


def prologue(rng):
    """Save the ctx pointer at r10-8, give r0-r9 random values."""
    out = [BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_1, -8)]
    for r in range(10):
        out.append(BPF_LD_IMM64(r, rand_value(rng)))
    return out


def epilogue():
    """Registers to r10-88..r10-16, then those and the whole frame below SAVE into the ctx."""
    out = [BPF_STX_MEM(BPF_DW, BPF_REG_10, r, -88 + 8 * r) for r in range(10)]
    out.append(BPF_LDX_MEM(BPF_DW, BPF_REG_1, BPF_REG_10, -8))
    for k in range(512 // 8 - 1):  # -512 .. -16
        out.append(BPF_LDX_MEM(BPF_DW, BPF_REG_2, BPF_REG_10, -512 + 8 * k))
        out.append(BPF_STX_MEM(BPF_DW, BPF_REG_1, BPF_REG_2, 8 * k))
    out.append(BPF_LDX_MEM(BPF_DW, BPF_REG_0, BPF_REG_10, -88))
    out.append(BPF_EXIT_INSN())
    return out


def straight_line(rng, n):
    body = []
    while len(body) < n:
        body += rand_insn(rng, list(range(10)))
    return prologue(rng) + body + epilogue()


def branchy(rng, n):
    """Forward conditional jumps of every kind inside blocks, and counted loops (r9 counts)."""
    body = []
    regs = list(range(9))
    while len(body) < n:
        if rng.random() < 0.25:
            # a loop of 1..6 iterations around a random block with forward jumps inside
            inner = block(rng, regs, rng.randrange(3, 12))
            iters = rng.randrange(1, 7)
            loop = inner + [BPF_ALU64_IMM(BPF_SUB, BPF_REG_9, 1), None]
            size = insn_count([i for i in loop if i is not None]) + 1
            loop[-1] = BPF_JMP_IMM(BPF_JNE, BPF_REG_9, 0, -size)
            body += [BPF_MOV64_IMM(BPF_REG_9, iters)] + loop
        else:
            body += block(rng, regs, rng.randrange(3, 12))
    return prologue(rng) + body + epilogue()


def block(rng, regs, n):
    """Straight-line instructions with forward jumps that stay inside the block."""
    insns = []
    while len(insns) < n:
        insns.append(rand_insn(rng, regs))
    units = [None] * len(insns)  # unit k: an optional jump, then group k (built last to first)
    for k in range(len(insns) - 1, -1, -1):
        group = insns[k]
        unit = list(group)
        if rng.random() < 0.35:  # a jump before group k to the start of unit k+m
            m = rng.randrange(1, len(insns) - k + 1)
            skip = insn_count(group) + sum(insn_count(units[j]) for j in range(k + 1, k + m))
            op = rng.choice(JMP_OPS)
            a = rng.choice(regs)
            j = rng.random()
            if j < 0.4:
                jump = (BPF_JMP_REG if rng.random() < 0.5 else BPF_JMP32_REG)(op, a, rng.choice(regs), skip)
            elif j < 0.8:
                jump = (BPF_JMP_IMM if rng.random() < 0.5 else BPF_JMP32_IMM)(op, a, rand_imm(rng), skip)
            elif j < 0.9:
                jump = BPF_JMP_A(skip)
            else:
                jump = BPF_MAY_GOTO_INSN(skip)
            unit.insert(0, jump)
        units[k] = unit
    return [i for unit in units for i in unit]


def run_both(prog):
    image = Image(prog)
    results = []
    for engine in ("interp", "jit"):
        if engine == "jit":
            jit.bpf_int_jit_compile(image)
            assert image.bpf_func is not None, image.jit_error
        mem = Memory()
        ctx = bytearray(CTX_SIZE)
        _, addr = mem.add_buffer("ctx", ctx)
        r = RunCtx(mem, insn_budget=10 ** 6 if engine == "interp" else None)
        r0 = interpret(image, r, addr) if engine == "interp" else bpf_prog_run(image, r, addr)
        results.append((r0, bytes(ctx)))
    return results


@pytest.mark.parametrize("seed", range(60))
def test_straight_line(seed):
    rng = random.Random(seed)
    for _ in range(5):
        prog = straight_line(rng, rng.randrange(20, 120))
        ref, tr = run_both(prog)
        assert ref == tr, "seed %d: program %s" % (seed, prog)


@pytest.mark.parametrize("seed", range(60))
def test_branchy(seed):
    rng = random.Random(1000 + seed)
    for _ in range(4):
        prog = branchy(rng, rng.randrange(10, 60))
        ref, tr = run_both(prog)
        assert ref == tr, "seed %d: program %s" % (seed, prog)


def with_calls(rng, n):
    """A main program calling random subprograms (each random code over its own frame, returning r0),
    sometimes nested one deeper, with loads of the caller's registers around the calls."""
    subs = []
    for _ in range(rng.randrange(1, 4)):
        body = [BPF_LD_IMM64(r, rand_value(rng)) for r in (6, 7, 8, 9)]  # callee-saved: its own values
        body += block(rng, list(range(10)), rng.randrange(5, 25))
        subs.append(body + [BPF_EXIT_INSN()])
    main = prologue(rng)
    calls = []  # (index in main, subprogram number)
    while len(main) < n:
        main += block(rng, list(range(10)), rng.randrange(3, 10))
        calls.append((len(main), rng.randrange(len(subs))))
        main.append(None)
    main += epilogue()
    # a nested call: the first subprogram may call the last one
    nested = len(subs) > 1 and rng.random() < 0.5
    if nested:
        subs[0].insert(len(subs[0]) - 1, None)
    prog = list(main)
    starts = []
    pos = insn_count([i for i in prog if i is not None]) + sum(1 for i in prog if i is None)
    for s in subs:
        starts.append(pos)
        pos += insn_count([i for i in s if i is not None]) + sum(1 for i in s if i is None)

    def slot_of(seq, idx, base):
        return base + insn_count([i for i in seq[:idx] if i is not None]) + sum(1 for i in seq[:idx] if i is None)
    for idx, k in calls:
        at = slot_of(prog, idx, 0)
        prog[idx] = BPF_CALL_REL(starts[k] - at - 1)
    out = prog
    for k, s in enumerate(subs):
        s = list(s)
        if None in s:
            idx = s.index(None)
            at = slot_of(s, idx, starts[k])
            s[idx] = BPF_CALL_REL(starts[-1] - at - 1)
        out += s
    return out


@pytest.mark.parametrize("seed", range(30))
def test_calls(seed):
    rng = random.Random(5000 + seed)
    for _ in range(3):
        prog = with_calls(rng, rng.randrange(20, 60))
        ref, tr = run_both(prog)
        assert ref == tr, "seed %d: program %s" % (seed, prog)
