"""struct bpf_insn: the instruction encoding, opcode constants and the kernel's builder macros.

Models ``include/uapi/linux/bpf.h`` / ``bpf_common.h`` (opcode fields) and ``include/linux/filter.h`` (the
``BPF_*`` builder macros the kernel and its selftests write programs with). The ISA is described in
``Documentation/bpf/standardization/instruction-set.rst``.

An instruction is 8 bytes: ``code`` (u8), ``dst_reg`` (low nibble) and ``src_reg`` (high nibble) of one byte,
``off`` (s16) and ``imm`` (s32), little-endian. ``BPF_LD | BPF_DW | BPF_IMM`` takes two slots (the second holds
the upper 32 bits of the constant in its ``imm``).

Builders return an :class:`Insn`, or a tuple of two for the wide ``ld_imm64`` forms, exactly where the kernel's
macros expand to two initializers. Jump offsets are counted in slots, as in the kernel, so programs read like
the selftests::

    prog = [
        BPF_MOV64_IMM(BPF_REG_0, 0),
        BPF_LD_MAP_FD(BPF_REG_1, map_fd),      # two slots
        BPF_JMP_IMM(BPF_JEQ, BPF_REG_0, 0, 1),
        BPF_MOV64_IMM(BPF_REG_0, 1),
        BPF_EXIT_INSN(),
    ]
    raw = encode(prog)                          # bytes, 8 per slot
    assert decode(raw) == list(flatten(prog))
"""
import struct
from typing import NamedTuple, Tuple, Union

# instruction classes (code & 0x07)
BPF_LD = 0x00
BPF_LDX = 0x01
BPF_ST = 0x02
BPF_STX = 0x03
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_JMP32 = 0x06
BPF_ALU64 = 0x07

# load/store size (code & 0x18)
BPF_W = 0x00
BPF_H = 0x08
BPF_B = 0x10
BPF_DW = 0x18

# load/store mode (code & 0xe0)
BPF_IMM = 0x00
BPF_ABS = 0x20
BPF_IND = 0x40
BPF_MEM = 0x60
BPF_LEN = 0x80     # classic BPF only
BPF_MSH = 0xa0     # classic BPF only
BPF_MEMSX = 0x80   # sign-extending load (ISA v4)
BPF_ATOMIC = 0xc0
BPF_XADD = 0xc0    # the old name of BPF_ATOMIC

# source operand (code & 0x08)
BPF_K = 0x00
BPF_X = 0x08

# ALU operations (code & 0xf0)
BPF_ADD = 0x00
BPF_SUB = 0x10
BPF_MUL = 0x20
BPF_DIV = 0x30
BPF_OR = 0x40
BPF_AND = 0x50
BPF_LSH = 0x60
BPF_RSH = 0x70
BPF_NEG = 0x80
BPF_MOD = 0x90
BPF_XOR = 0xa0
BPF_MOV = 0xb0
BPF_ARSH = 0xc0
BPF_END = 0xd0

# byte-swap direction (BPF_END's source bit)
BPF_TO_LE = 0x00
BPF_TO_BE = 0x08
BPF_FROM_LE = BPF_TO_LE
BPF_FROM_BE = BPF_TO_BE

# jump operations (code & 0xf0)
BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_JGT = 0x20
BPF_JGE = 0x30
BPF_JSET = 0x40
BPF_JNE = 0x50
BPF_JSGT = 0x60
BPF_JSGE = 0x70
BPF_CALL = 0x80
BPF_EXIT = 0x90
BPF_JLT = 0xa0
BPF_JLE = 0xb0
BPF_JSLT = 0xc0
BPF_JSLE = 0xd0
BPF_JCOND = 0xe0   # may_goto (src_reg BPF_MAY_GOTO)
BPF_MAY_GOTO = 0

# atomic operations (imm of a BPF_ATOMIC store)
BPF_FETCH = 0x01
BPF_XCHG = 0xe0 | BPF_FETCH
BPF_CMPXCHG = 0xf0 | BPF_FETCH
BPF_LOAD_ACQ = 0x100
BPF_STORE_REL = 0x110

# src_reg of ld_imm64: what the 64-bit constant means
BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_MAP_VALUE = 2
BPF_PSEUDO_BTF_ID = 3
BPF_PSEUDO_FUNC = 4
BPF_PSEUDO_MAP_IDX = 5
BPF_PSEUDO_MAP_IDX_VALUE = 6

# src_reg of a call
BPF_PSEUDO_CALL = 1
BPF_PSEUDO_KFUNC_CALL = 2

# registers
BPF_REG_0, BPF_REG_1, BPF_REG_2, BPF_REG_3, BPF_REG_4, BPF_REG_5 = range(6)
BPF_REG_6, BPF_REG_7, BPF_REG_8, BPF_REG_9, BPF_REG_10 = range(6, 11)
BPF_REG_ARG1, BPF_REG_ARG2, BPF_REG_ARG3, BPF_REG_ARG4, BPF_REG_ARG5 = range(1, 6)
BPF_REG_CTX = BPF_REG_6
BPF_REG_FP = BPF_REG_10
MAX_BPF_REG = 11

INSN_SIZE = 8
MAX_BPF_STACK = 512


def BPF_CLASS(code):
    return code & 0x07


def BPF_SIZE(code):
    return code & 0x18


def BPF_MODE(code):
    return code & 0xe0


def BPF_OP(code):
    return code & 0xf0


def BPF_SRC(code):
    return code & 0x08


_BYTES = {BPF_B: 1, BPF_H: 2, BPF_W: 4, BPF_DW: 8}


def bpf_size_to_bytes(size):
    """Bytes moved by a load/store of size field ``size`` (BPF_B/H/W/DW)."""
    return _BYTES[size]


def bytes_to_bpf_size(n):
    return {1: BPF_B, 2: BPF_H, 4: BPF_W, 8: BPF_DW}[n]


_PACK = struct.Struct("<BBhi")


class Insn(NamedTuple):
    """One 8-byte slot of ``struct bpf_insn``. ``off`` is s16 and ``imm`` s32, as the kernel reads them."""
    code: int
    dst_reg: int = 0
    src_reg: int = 0
    off: int = 0
    imm: int = 0

    def pack(self):
        """The slot's 8 bytes. Raises ``struct.error`` for a field out of its C range."""
        return _PACK.pack(self.code, (self.dst_reg & 0xf) | ((self.src_reg & 0xf) << 4), self.off, self.imm)

    @property
    def is_ld_imm64(self):
        return self.code == BPF_LD | BPF_DW | BPF_IMM


Slot = Union[Insn, Tuple[Insn, Insn]]


def _s32(v):
    v &= 0xffffffff
    return v - (1 << 32) if v & 0x80000000 else v


def _s16(v):
    v &= 0xffff
    return v - (1 << 16) if v & 0x8000 else v


def flatten(insns):
    """The slots of a program written with builders (wide ``ld_imm64`` tuples expanded), in order."""
    for i in insns:
        if isinstance(i, Insn):
            yield i
        else:
            yield from flatten(i)


def encode(insns):
    """``bytes`` of the program, 8 per slot, as ``attr.insns`` points at them."""
    return b"".join(i.pack() for i in flatten(insns))


def decode(raw):
    """The slots of raw instruction bytes (a length not a multiple of 8 is ``ValueError``)."""
    if len(raw) % INSN_SIZE:
        raise ValueError("instruction bytes must be a multiple of 8, got %d" % len(raw))
    out = []
    for code, regs, off, imm in _PACK.iter_unpack(bytes(raw)):
        out.append(Insn(code, regs & 0xf, regs >> 4, off, imm))
    return out


def insn_count(insns):
    """Slots the program takes (``attr.insn_cnt``)."""
    return sum(1 for _ in flatten(insns))


# ---- the builders of include/linux/filter.h (and the selftests' additions), same names and argument order ----

def BPF_RAW_INSN(CODE, DST, SRC, OFF, IMM):
    return Insn(CODE, DST, SRC, _s16(OFF), _s32(IMM))


def BPF_ALU64_REG(OP, DST, SRC):
    return Insn(BPF_ALU64 | BPF_OP(OP) | BPF_X, DST, SRC, 0, 0)


def BPF_ALU32_REG(OP, DST, SRC):
    return Insn(BPF_ALU | BPF_OP(OP) | BPF_X, DST, SRC, 0, 0)


def BPF_ALU64_IMM(OP, DST, IMM):
    return Insn(BPF_ALU64 | BPF_OP(OP) | BPF_K, DST, 0, 0, _s32(IMM))


def BPF_ALU32_IMM(OP, DST, IMM):
    return Insn(BPF_ALU | BPF_OP(OP) | BPF_K, DST, 0, 0, _s32(IMM))


def BPF_ALU64_REG_OFF(OP, DST, SRC, OFF):
    """ALU with a nonzero ``off``: sdiv/smod when OFF is 1 (ISA v4)."""
    return Insn(BPF_ALU64 | BPF_OP(OP) | BPF_X, DST, SRC, _s16(OFF), 0)


def BPF_ALU32_REG_OFF(OP, DST, SRC, OFF):
    return Insn(BPF_ALU | BPF_OP(OP) | BPF_X, DST, SRC, _s16(OFF), 0)


def BPF_ALU64_IMM_OFF(OP, DST, IMM, OFF):
    return Insn(BPF_ALU64 | BPF_OP(OP) | BPF_K, DST, 0, _s16(OFF), _s32(IMM))


def BPF_ALU32_IMM_OFF(OP, DST, IMM, OFF):
    return Insn(BPF_ALU | BPF_OP(OP) | BPF_K, DST, 0, _s16(OFF), _s32(IMM))


def BPF_ENDIAN(TYPE, DST, LEN):
    """Byte swap to/from little (BPF_TO_LE) or big (BPF_TO_BE) endian of LEN bits (16, 32, 64)."""
    return Insn(BPF_ALU | BPF_END | BPF_SRC(TYPE), DST, 0, 0, LEN)


def BPF_BSWAP(DST, LEN):
    """Unconditional byte swap of LEN bits (ISA v4: BPF_ALU64 | BPF_END)."""
    return Insn(BPF_ALU64 | BPF_END | BPF_TO_LE, DST, 0, 0, LEN)


def BPF_MOV64_REG(DST, SRC):
    return Insn(BPF_ALU64 | BPF_MOV | BPF_X, DST, SRC, 0, 0)


def BPF_MOV32_REG(DST, SRC):
    return Insn(BPF_ALU | BPF_MOV | BPF_X, DST, SRC, 0, 0)


def BPF_MOV64_IMM(DST, IMM):
    return Insn(BPF_ALU64 | BPF_MOV | BPF_K, DST, 0, 0, _s32(IMM))


def BPF_MOV32_IMM(DST, IMM):
    return Insn(BPF_ALU | BPF_MOV | BPF_K, DST, 0, 0, _s32(IMM))


def BPF_MOVSX64_REG(DST, SRC, OFF):
    """Sign-extending move of the low OFF bits (8, 16, 32) into 64 bits (ISA v4)."""
    return Insn(BPF_ALU64 | BPF_MOV | BPF_X, DST, SRC, OFF, 0)


def BPF_MOVSX32_REG(DST, SRC, OFF):
    return Insn(BPF_ALU | BPF_MOV | BPF_X, DST, SRC, OFF, 0)


def BPF_ZEXT_REG(DST):
    """The verifier's explicit zero-extension (mov32 with imm 1)."""
    return Insn(BPF_ALU | BPF_MOV | BPF_X, DST, DST, 0, 1)


def BPF_LD_IMM64_RAW(DST, SRC, IMM):
    """Two slots: ld_imm64 of a 64-bit constant, ``SRC`` saying what the constant means (BPF_PSEUDO_*)."""
    IMM &= 0xffffffffffffffff
    return (Insn(BPF_LD | BPF_DW | BPF_IMM, DST, SRC, 0, _s32(IMM)),
            Insn(0, 0, 0, 0, _s32(IMM >> 32)))


def BPF_LD_IMM64_RAW_FULL(DST, SRC, OFF1, OFF2, IMM1, IMM2):
    """Two slots with every field of both given: ld_imm64 with nonzero offsets or a constant split as the
    test wants (the verifier's checks of reserved fields)."""
    return (Insn(BPF_LD | BPF_DW | BPF_IMM, DST, SRC, _s16(OFF1), _s32(IMM1)),
            Insn(0, 0, 0, _s16(OFF2), _s32(IMM2)))


def BPF_LD_IMM64(DST, IMM):
    return BPF_LD_IMM64_RAW(DST, 0, IMM)


def BPF_LD_MAP_FD(DST, MAP_FD):
    return BPF_LD_IMM64_RAW(DST, BPF_PSEUDO_MAP_FD, MAP_FD)


def BPF_LD_MAP_VALUE(DST, MAP_FD, VALUE_OFF):
    """Two slots: a pointer to the value of the map (array, one element) at VALUE_OFF."""
    return (Insn(BPF_LD | BPF_DW | BPF_IMM, DST, BPF_PSEUDO_MAP_VALUE, 0, _s32(MAP_FD)),
            Insn(0, 0, 0, 0, _s32(VALUE_OFF)))


def BPF_LD_MAP_IDX(DST, IDX):
    """Two slots: the map at index IDX of ``attr.fd_array``."""
    return BPF_LD_IMM64_RAW(DST, BPF_PSEUDO_MAP_IDX, IDX)


def BPF_LD_ABS(SIZE, IMM):
    return Insn(BPF_LD | BPF_SIZE(SIZE) | BPF_ABS, 0, 0, 0, _s32(IMM))


def BPF_LD_IND(SIZE, SRC, IMM):
    return Insn(BPF_LD | BPF_SIZE(SIZE) | BPF_IND, 0, SRC, 0, _s32(IMM))


def BPF_LDX_MEM(SIZE, DST, SRC, OFF):
    return Insn(BPF_LDX | BPF_SIZE(SIZE) | BPF_MEM, DST, SRC, _s16(OFF), 0)


def BPF_LDX_MEMSX(SIZE, DST, SRC, OFF):
    """Sign-extending load (ISA v4)."""
    return Insn(BPF_LDX | BPF_SIZE(SIZE) | BPF_MEMSX, DST, SRC, _s16(OFF), 0)


def BPF_STX_MEM(SIZE, DST, SRC, OFF):
    return Insn(BPF_STX | BPF_SIZE(SIZE) | BPF_MEM, DST, SRC, _s16(OFF), 0)


def BPF_ST_MEM(SIZE, DST, OFF, IMM):
    return Insn(BPF_ST | BPF_SIZE(SIZE) | BPF_MEM, DST, 0, _s16(OFF), _s32(IMM))


def BPF_ATOMIC_OP(SIZE, OP, DST, SRC, OFF):
    """Atomic OP (BPF_ADD, BPF_AND|BPF_FETCH, BPF_XCHG, BPF_CMPXCHG, ...) on *(SIZE *)(DST + OFF) with SRC."""
    return Insn(BPF_STX | BPF_SIZE(SIZE) | BPF_ATOMIC, DST, SRC, _s16(OFF), _s32(OP))


def BPF_STX_XADD(SIZE, DST, SRC, OFF):
    return BPF_ATOMIC_OP(SIZE, BPF_ADD, DST, SRC, OFF)


def BPF_JMP_REG(OP, DST, SRC, OFF):
    return Insn(BPF_JMP | BPF_OP(OP) | BPF_X, DST, SRC, _s16(OFF), 0)


def BPF_JMP_IMM(OP, DST, IMM, OFF):
    return Insn(BPF_JMP | BPF_OP(OP) | BPF_K, DST, 0, _s16(OFF), _s32(IMM))


def BPF_JMP32_REG(OP, DST, SRC, OFF):
    return Insn(BPF_JMP32 | BPF_OP(OP) | BPF_X, DST, SRC, _s16(OFF), 0)


def BPF_JMP32_IMM(OP, DST, IMM, OFF):
    return Insn(BPF_JMP32 | BPF_OP(OP) | BPF_K, DST, 0, _s16(OFF), _s32(IMM))


def BPF_JMP_A(OFF):
    return Insn(BPF_JMP | BPF_JA, 0, 0, _s16(OFF), 0)


def BPF_JMP32_A(IMM):
    """gotol: an unconditional jump whose 32-bit offset is in imm (ISA v4)."""
    return Insn(BPF_JMP32 | BPF_JA, 0, 0, 0, _s32(IMM))


def BPF_MAY_GOTO_INSN(OFF):
    return Insn(BPF_JMP | BPF_JCOND, 0, BPF_MAY_GOTO, _s16(OFF), 0)


def BPF_EMIT_CALL(FUNC):
    """Call of helper number FUNC (``BPF_FUNC_*``)."""
    return Insn(BPF_JMP | BPF_CALL, 0, 0, 0, _s32(FUNC))


def BPF_CALL_REL(IMM):
    """bpf-to-bpf call of the subprogram IMM slots after the next instruction."""
    return Insn(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, _s32(IMM))


def BPF_CALL_KFUNC(OFF, IMM):
    """Call of the kfunc of BTF id IMM (OFF: index of its module BTF in fd_array, 0 for vmlinux)."""
    return Insn(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, _s16(OFF), _s32(IMM))


def BPF_EXIT_INSN():
    return Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)


def BPF_ST_NOSPEC():
    """The verifier's speculation barrier (BPF_ST | BPF_NOSPEC); never valid in a loaded program."""
    return Insn(BPF_ST | 0xc0, 0, 0, 0, 0)


__all__ = [n for n in list(globals()) if n.startswith("BPF_") or n.startswith("MAX_BPF")] + [
    "Insn", "Slot", "encode", "decode", "flatten", "insn_count", "bpf_size_to_bytes", "bytes_to_bpf_size",
    "INSN_SIZE"]
