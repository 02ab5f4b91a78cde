"""ISA conformance: ALU and ALU64 (every operation, register and immediate source), byte swaps, sign-extending
moves, on edge-case operands; each result is checked against the ISA document's definition (isa_oracle) on
the host kernel and on both emulator engines."""
import itertools

import pytest

from bpfemu.prog.insn import (BPF_ADD, BPF_ALU32_IMM, BPF_ALU32_IMM_OFF, BPF_ALU32_REG, BPF_ALU32_REG_OFF,
                              BPF_ALU64_IMM, BPF_ALU64_IMM_OFF, BPF_ALU64_REG, BPF_ALU64_REG_OFF, BPF_AND,
                              BPF_ARSH, BPF_BSWAP, BPF_DIV, BPF_ENDIAN, BPF_LSH, BPF_MOD, BPF_MOV,
                              BPF_MOVSX32_REG, BPF_MOVSX64_REG, BPF_MUL, BPF_NEG, BPF_OR, BPF_REG_1, BPF_REG_2,
                              BPF_REG_3, BPF_RSH, BPF_SUB, BPF_TO_BE, BPF_TO_LE, BPF_XOR)

from . import isa_oracle as O
from .isa import BACKENDS, IMMS, VALUES, chunks, ld64, make_sys, pack, refused_without, run_xdp, st64, unpack


@pytest.fixture(params=BACKENDS)
def isa_sys(request):
    s, done = make_sys(request.param)
    yield s
    done()


# name -> (BPF op, off)
BINARY = {"add": (BPF_ADD, 0), "sub": (BPF_SUB, 0), "mul": (BPF_MUL, 0), "div": (BPF_DIV, 0),
          "sdiv": (BPF_DIV, 1), "mod": (BPF_MOD, 0), "smod": (BPF_MOD, 1), "or": (BPF_OR, 0),
          "and": (BPF_AND, 0), "xor": (BPF_XOR, 0), "lsh": (BPF_LSH, 0), "rsh": (BPF_RSH, 0),
          "arsh": (BPF_ARSH, 0), "mov": (BPF_MOV, 0)}
PAIRS = list(itertools.product(VALUES, VALUES))
PAIR_CHUNK = 200  # 16 bytes a pair: what one XDP packet holds


def signed_refused(isa_sys, off, insn):
    """sdiv/smod (off 1) on a kernel version without them: refused as reserved fields of BPF_ALU."""
    return off == 1 and refused_without(isa_sys, "sdiv_smod", [ld64(BPF_REG_1, 0), ld64(BPF_REG_2, 8), insn],
                                        "BPF_ALU uses reserved fields")


def reg_insn(width, op, off, dst, src):
    if width == 64:
        return BPF_ALU64_REG_OFF(op, dst, src, off) if off else BPF_ALU64_REG(op, dst, src)
    return BPF_ALU32_REG_OFF(op, dst, src, off) if off else BPF_ALU32_REG(op, dst, src)


def imm_insn(width, op, off, dst, imm):
    if width == 64:
        return BPF_ALU64_IMM_OFF(op, dst, imm, off) if off else BPF_ALU64_IMM(op, dst, imm)
    return BPF_ALU32_IMM_OFF(op, dst, imm, off) if off else BPF_ALU32_IMM(op, dst, imm)


@pytest.mark.parametrize("width", [64, 32])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_alu_reg(isa_sys, name, width):
    """dst op= src for every pair of edge values (dst and src in different registers)."""
    op, off = BINARY[name]
    if signed_refused(isa_sys, off, reg_insn(width, op, off, BPF_REG_1, BPF_REG_2)):
        return
    for chunk in chunks(PAIRS, PAIR_CHUNK):
        body = []
        for k in range(len(chunk)):
            body += [ld64(BPF_REG_1, 16 * k), ld64(BPF_REG_2, 16 * k + 8),
                     reg_insn(width, op, off, BPF_REG_1, BPF_REG_2), st64(BPF_REG_1, 16 * k)]
        out = unpack(run_xdp(isa_sys, body, pack(v for pair in chunk for v in pair)))
        got = out[0::2]
        want = [O.alu(name, width, a, b) for a, b in chunk]
        bad = [(hex(a), hex(b), hex(g), hex(w)) for (a, b), g, w in zip(chunk, got, want) if g != w]
        assert not bad, "%s%d: (dst, src, got, want) %s" % (name, width, bad[:8])
        assert out[1::2] == [b for _, b in chunk]  # src is left alone


@pytest.mark.parametrize("width", [64, 32])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_alu_same_reg(isa_sys, name, width):
    """dst op= dst: source and destination are one register."""
    op, off = BINARY[name]
    if signed_refused(isa_sys, off, reg_insn(width, op, off, BPF_REG_1, BPF_REG_1)):
        return
    body = []
    for k in range(len(VALUES)):
        body += [ld64(BPF_REG_3, 8 * k), reg_insn(width, op, off, BPF_REG_3, BPF_REG_3), st64(BPF_REG_3, 8 * k)]
    got = unpack(run_xdp(isa_sys, body, pack(VALUES)))
    assert got == [O.alu(name, width, v, v) for v in VALUES]


def imm_ok(name, width, imm):
    """Whether the verifier takes the immediate form (division by zero and out-of-range shifts are
    refused at load time)."""
    if name in ("div", "sdiv", "mod", "smod") and imm == 0:
        return False
    if name in ("lsh", "rsh", "arsh") and not 0 <= imm < width:
        return False
    return True


@pytest.mark.parametrize("width", [64, 32])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_alu_imm(isa_sys, name, width):
    """dst op= imm: ALU64 sign-extends imm to 64 bits, ALU takes its 32 bits."""
    op, off = BINARY[name]
    if signed_refused(isa_sys, off, imm_insn(width, op, off, BPF_REG_1, 7)):
        return
    n = len(VALUES)
    for imms in chunks([i for i in IMMS if imm_ok(name, width, i)], 8):
        body = []
        for j, imm in enumerate(imms):
            for k in range(n):
                body += [ld64(BPF_REG_1, 8 * k), imm_insn(width, op, off, BPF_REG_1, imm),
                         st64(BPF_REG_1, 8 * (n + j * n + k))]
        data = pack(VALUES + [0] * (n * len(imms)))
        got = unpack(run_xdp(isa_sys, body, data))[n:]
        want = [O.alu(name, width, v, imm & ((1 << 64) - 1)) for imm in imms for v in VALUES]
        bad = [(hex(v), imm, hex(g), hex(w))
               for (imm, v), g, w in zip(itertools.product(imms, VALUES), got, want) if g != w]
        assert not bad, "%s%d imm: (dst, imm, got, want) %s" % (name, width, bad[:8])


UNARY = {
    "neg64": lambda d: BPF_ALU64_IMM(BPF_NEG, d, 0),
    "neg32": lambda d: BPF_ALU32_IMM(BPF_NEG, d, 0),
    "movsx8_64": lambda d: BPF_MOVSX64_REG(d, d, 8),
    "movsx16_64": lambda d: BPF_MOVSX64_REG(d, d, 16),
    "movsx32_64": lambda d: BPF_MOVSX64_REG(d, d, 32),
    "movsx8_32": lambda d: BPF_MOVSX32_REG(d, d, 8),
    "movsx16_32": lambda d: BPF_MOVSX32_REG(d, d, 16),
    "le16": lambda d: BPF_ENDIAN(BPF_TO_LE, d, 16),
    "le32": lambda d: BPF_ENDIAN(BPF_TO_LE, d, 32),
    "le64": lambda d: BPF_ENDIAN(BPF_TO_LE, d, 64),
    "be16": lambda d: BPF_ENDIAN(BPF_TO_BE, d, 16),
    "be32": lambda d: BPF_ENDIAN(BPF_TO_BE, d, 32),
    "be64": lambda d: BPF_ENDIAN(BPF_TO_BE, d, 64),
    "bswap16": lambda d: BPF_BSWAP(d, 16),
    "bswap32": lambda d: BPF_BSWAP(d, 32),
    "bswap64": lambda d: BPF_BSWAP(d, 64),
}


# the unary instructions a kernel version may not know: name prefix -> (instruction, the verifier's refusal)
UNARY_NEWER = {"movsx": ("movsx", "BPF_MOV uses reserved fields"), "bswap": ("bswap", "unknown opcode d7")}


def unary_oracle(name, v):
    if name.startswith("neg"):
        return O.unary("neg", int(name[3:]), v)
    if name.startswith("movsx"):
        bits, width = name[5:].split("_")
        return O.unary("movsx" + bits, int(width), v)
    return O.unary(name, 64, v)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_alu_unary(isa_sys, name):
    """neg, sign-extending moves, to_le/to_be and bswap of every edge value."""
    newer = [UNARY_NEWER[p] for p in UNARY_NEWER if name.startswith(p)]
    if newer and refused_without(isa_sys, newer[0][0], [ld64(BPF_REG_2, 0), UNARY[name](BPF_REG_2)], newer[0][1]):
        return
    body = []
    for k in range(len(VALUES)):
        body += [ld64(BPF_REG_2, 8 * k), UNARY[name](BPF_REG_2), st64(BPF_REG_2, 8 * k)]
    got = unpack(run_xdp(isa_sys, body, pack(VALUES)))
    want = [unary_oracle(name, v) for v in VALUES]
    assert got == want, [(hex(v), hex(g), hex(w)) for v, g, w in zip(VALUES, got, want) if g != w][:8]


@pytest.mark.parametrize("width", [64, 32])
def test_mov_imm(isa_sys, width):
    """mov of an immediate: ALU64 sign-extends, ALU zero-extends; the old value is gone."""
    body = []
    for k, imm in enumerate(IMMS):
        body += [ld64(BPF_REG_1, 8 * k), imm_insn(width, BPF_MOV, 0, BPF_REG_1, imm), st64(BPF_REG_1, 8 * k)]
    got = unpack(run_xdp(isa_sys, body, pack([0xffffffffffffffff] * len(IMMS))))
    assert got == [imm & ((1 << width) - 1) for imm in IMMS]
