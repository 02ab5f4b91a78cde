"""ISA conformance: loads and stores of every size (zero- and sign-extending), atomics with and without fetch,
xchg, cmpxchg, load-acquire/store-release, ld_abs/ld_ind on packets, bpf2bpf calls; host and both emulator
engines."""
import itertools
import struct

import pytest

from bpfemu import uapi as u
from bpfemu.prog.insn import (BPF_ADD, BPF_ALU64_IMM, BPF_ALU64_REG, BPF_AND, BPF_ATOMIC_OP, BPF_B, BPF_EMIT_CALL,
                              BPF_CALL_REL, BPF_CMPXCHG, BPF_DW, BPF_EXIT_INSN, BPF_FETCH, BPF_H, BPF_LD_ABS,
                              BPF_LD_IND, BPF_LDX_MEM, BPF_LDX_MEMSX, BPF_LOAD_ACQ, BPF_MOV64_IMM, BPF_MOV64_REG,
                              BPF_OR, BPF_REG_0, BPF_REG_1, BPF_REG_2, BPF_REG_3, BPF_REG_4, BPF_REG_5, BPF_REG_6,
                              BPF_REG_7, BPF_REG_8, BPF_REG_9, BPF_REG_10, BPF_ST_MEM, BPF_STORE_REL, BPF_STX_MEM,
                              BPF_W, BPF_XCHG, BPF_XOR)

from . import isa_oracle as O
from . import progrun
from .isa import BACKENDS, ld64, make_sys, pack, refused_without, run_xdp, st64, unpack


@pytest.fixture(params=BACKENDS)
def isa_sys(request):
    s, done = make_sys(request.param)
    yield s
    done()


SIZES = {"b": (BPF_B, 1), "h": (BPF_H, 2), "w": (BPF_W, 4), "dw": (BPF_DW, 8)}
PATTERN = bytes(range(0x81, 0x81 + 24))  # every byte has its top bit set, so sign extension shows


@pytest.mark.parametrize("size,signed", [(sz, False) for sz in sorted(SIZES)] + [("b", True), ("h", True),
                                                                                  ("w", True)])
def test_ldx_packet(isa_sys, size, signed):
    """LDX of each size at every offset 0..15 of the packet (unaligned included): little-endian, zero- or
    sign-extended to 64 bits (there is no 64-bit sign-extending load)."""
    code, n = SIZES[size]
    if signed and refused_without(isa_sys, "ldsx", [BPF_LDX_MEMSX(code, BPF_REG_1, BPF_REG_6, 0)],
                                  "BPF_LDX uses reserved fields"):
        return
    body = []
    for off in range(16):
        ins = (BPF_LDX_MEMSX if signed else BPF_LDX_MEM)(code, BPF_REG_1, BPF_REG_6, off)
        body += [ins, st64(BPF_REG_1, 24 + 8 * off)]
    out = run_xdp(isa_sys, body, PATTERN + bytes(8 * 16))
    got = unpack(out[24:])
    want = [(O.signed(v, 8 * n) if signed else v) & ((1 << 64) - 1)
            for v in (int.from_bytes(PATTERN[o:o + n], "little") for o in range(16))]
    assert got == want


@pytest.mark.parametrize("size", sorted(SIZES))
def test_stx_and_st_packet(isa_sys, size):
    """STX stores the low bytes of a register; ST stores imm (sign-extended to 64 bits for DW)."""
    code, n = SIZES[size]
    regval = 0xf1e2d3c4b5a69788
    imm = -0x12345679
    body = [BPF_LDX_MEM(BPF_DW, BPF_REG_2, BPF_REG_6, 0)]
    for off in range(8):
        body.append(BPF_STX_MEM(code, BPF_REG_6, BPF_REG_2, 8 + 16 * off + off))
        body.append(BPF_ST_MEM(code, BPF_REG_6, 8 + 16 * off + 8, imm))
    data = struct.pack("<Q", regval) + b"\xaa" * (16 * 8)
    out = run_xdp(isa_sys, body, data)
    want = bytearray(data)
    for off in range(8):
        o = 8 + 16 * off + off
        want[o:o + n] = (regval & ((1 << 8 * n) - 1)).to_bytes(n, "little")
        o2 = 8 + 16 * off + 8
        want[o2:o2 + n] = (imm & ((1 << 8 * n) - 1)).to_bytes(n, "little")
    assert out == bytes(want)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_stack_load_store(isa_sys, size):
    """The stack (r10 - 1 .. r10 - 512): stores of each size at every alignment, loads of every size back."""
    code, n = SIZES[size]
    body = [BPF_LDX_MEM(BPF_DW, BPF_REG_2, BPF_REG_6, 0)]
    for k in range(4):  # fill r10-32..r10-1 with the pattern
        body.append(BPF_LDX_MEM(BPF_DW, BPF_REG_3, BPF_REG_6, 8 + 8 * k))
        body.append(BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_3, -32 + 8 * k))
    at = -32 + (n if n < 8 else 8) + (3 if n == 1 else 0)  # stack accesses must be size-aligned
    body.append(BPF_STX_MEM(code, BPF_REG_10, BPF_REG_2, at))  # the low n bytes of a register
    body.append(BPF_ST_MEM(code, BPF_REG_10, -512, -2))         # the frame's last byte ...
    body.append(BPF_LDX_MEM(code, BPF_REG_4, BPF_REG_10, -512))
    body.append(st64(BPF_REG_4, 40))
    for k in range(4):
        body.append(BPF_LDX_MEM(BPF_DW, BPF_REG_3, BPF_REG_10, -32 + 8 * k))
        body.append(st64(BPF_REG_3, 48 + 8 * k))
    # sign-extending loads from the stack (a kernel version without them refuses them)
    ldsx = [BPF_LDX_MEMSX(SIZES[sz][0], BPF_REG_5, BPF_REG_10, -32 + SIZES[sz][1]) for sz in ("b", "h", "w")]
    signed = not refused_without(isa_sys, "ldsx", ldsx[:1], "BPF_LDX uses reserved fields")
    for k, ins in enumerate(ldsx if signed else ()):
        body.append(ins)
        body.append(st64(BPF_REG_5, 80 + 8 * k))
    regval = 0x8877665544332211
    data = struct.pack("<Q", regval) + PATTERN[:32].ljust(32, b"\x99") + bytes(8) + bytes(32) + bytes(24)
    out = run_xdp(isa_sys, body, data)
    stack = bytearray(data[8:40])
    stack[32 + at:32 + at + n] = (regval & ((1 << 8 * n) - 1)).to_bytes(n, "little")
    assert out[48:80] == bytes(stack)
    assert unpack(out[40:48]) == [(-2) & ((1 << 8 * n) - 1)]
    if signed:
        assert unpack(out[80:104]) == [O.signed(int.from_bytes(stack[m:2 * m], "little"), 8 * m) & ((1 << 64) - 1)
                                       for m in (1, 2, 4)]


ATOMIC_OPS = {"add": BPF_ADD, "or": BPF_OR, "and": BPF_AND, "xor": BPF_XOR}
ATOMIC_VALUES = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 0xffffffffffffffff,
                 0x8000000000000000, 0x123456789abcdef0, 0xfedcba9876543210]


@pytest.mark.parametrize("size", ["w", "dw"])
@pytest.mark.parametrize("name", ["add", "or", "and", "xor", "add_fetch", "or_fetch", "and_fetch",
                                  "xor_fetch", "xchg"])
def test_atomic_rmw(isa_sys, name, size):
    """Atomic read-modify-write on a stack word: the new memory value, and (with BPF_FETCH, and for xchg)
    the old value in src, zero-extended for 32 bits; without fetch src is left alone."""
    code, n = SIZES[size]
    if name == "xchg":
        imm = BPF_XCHG
    else:
        imm = ATOMIC_OPS[name.split("_")[0]] | (BPF_FETCH if name.endswith("_fetch") else 0)
    pairs = list(itertools.product(ATOMIC_VALUES, ATOMIC_VALUES))
    body = []
    for k in range(len(pairs)):
        body += [ld64(BPF_REG_1, 16 * k), ld64(BPF_REG_2, 16 * k + 8),
                 BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_1, -8),
                 BPF_ATOMIC_OP(code, imm, BPF_REG_10, BPF_REG_2, -8),
                 BPF_LDX_MEM(BPF_DW, BPF_REG_1, BPF_REG_10, -8),
                 st64(BPF_REG_1, 16 * k), st64(BPF_REG_2, 16 * k + 8)]
    out = unpack(run_xdp(isa_sys, body, pack(v for p in pairs for v in p)))
    for k, (mem, src) in enumerate(pairs):
        new, new_src, _ = O.atomic(name, n, mem, src)
        if n == 4:  # a 32-bit op changes the low half of the 64-bit slot only
            new |= mem & 0xffffffff00000000
            if name.endswith("_fetch") or name == "xchg":
                new_src &= 0xffffffff
        assert (out[2 * k], out[2 * k + 1]) == (new, new_src), (name, size, hex(mem), hex(src))


@pytest.mark.parametrize("size", ["w", "dw"])
def test_atomic_cmpxchg(isa_sys, size):
    """cmpxchg: stores src when memory equals r0 (its low 32 bits for W); r0 gets the old value
    (zero-extended for W); src is unchanged."""
    code, n = SIZES[size]
    cases = []
    for mem, src in itertools.product(ATOMIC_VALUES[:6], ATOMIC_VALUES[4:]):
        cases.append((mem, src, mem))                        # equal: swaps
        cases.append((mem, src, mem ^ 1))                    # differs in bit 0
        cases.append((mem, src, mem ^ 0xffffffff00000000))  # differs in the upper half only
    body = []
    for k in range(len(cases)):
        body += [ld64(BPF_REG_1, 24 * k), ld64(BPF_REG_2, 24 * k + 8), ld64(BPF_REG_0, 24 * k + 16),
                 BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_1, -16),
                 BPF_ATOMIC_OP(code, BPF_CMPXCHG, BPF_REG_10, BPF_REG_2, -16),
                 BPF_LDX_MEM(BPF_DW, BPF_REG_1, BPF_REG_10, -16),
                 st64(BPF_REG_1, 24 * k), st64(BPF_REG_2, 24 * k + 8), st64(BPF_REG_0, 24 * k + 16)]
    out = unpack(run_xdp(isa_sys, body, pack(v for c in cases for v in c)))
    for k, (mem, src, r0) in enumerate(cases):
        new, new_src, new_r0 = O.atomic("cmpxchg", n, mem, src, r0)
        if n == 4:
            new |= mem & 0xffffffff00000000
        assert tuple(out[3 * k:3 * k + 3]) == (new, new_src, new_r0), (size, hex(mem), hex(src), hex(r0))


@pytest.mark.parametrize("size", sorted(SIZES))
def test_load_acquire_store_release(isa_sys, size):
    """load_acquire(src + off) into dst (zero-extended), store_release of src's low bytes at dst + off.
    A kernel version without them (6.15) does not know the one- and two-byte BPF_ATOMIC opcodes, and the
    imm of the word-sized ones is no atomic operation it knows."""
    code, n = SIZES[size]
    v = 0x8899aabbccddeeff
    body = [ld64(BPF_REG_1, 0),
            BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_1, -8),
            BPF_ATOMIC_OP(code, BPF_LOAD_ACQ, BPF_REG_3, BPF_REG_10, -8),
            st64(BPF_REG_3, 8),
            BPF_ST_MEM(BPF_DW, BPF_REG_10, -16, 0),
            BPF_ATOMIC_OP(code, BPF_STORE_REL, BPF_REG_10, BPF_REG_1, -16),
            BPF_LDX_MEM(BPF_DW, BPF_REG_4, BPF_REG_10, -16),
            st64(BPF_REG_4, 16)]
    refusal = ("unknown opcode %02x" % (0xc3 | code) if n < 4 else
               "BPF_ATOMIC uses invalid atomic opcode %02x" % BPF_LOAD_ACQ)
    if refused_without(isa_sys, "load_acquire", body, refusal, ndata=24):
        return
    out = unpack(run_xdp(isa_sys, body, pack([v, 0, 0])))
    assert out[1:] == [v & ((1 << 8 * n) - 1), v & ((1 << 8 * n) - 1)]


# ---- ld_abs / ld_ind: socket filters (data starts past the Ethernet header for them) --------------------

SKF_NET_OFF = -0x100000
SKF_LL_OFF = -0x200000
FRAME = bytes(range(0x11, 0x11 + 64))  # 64 bytes, none zero: a 0 retval means 'out of bounds'


def run_filter(sys, prog, data=FRAME):
    fd = progrun.load(sys, prog, u.BPF_PROG_TYPE_SOCKET_FILTER)
    try:
        r = progrun.test_run(sys, fd, data=data)
    finally:
        sys.close(fd)
    assert r.errno == 0, r
    return r.retval


def ld_abs_prog(size, k):
    return [BPF_MOV64_REG(BPF_REG_6, BPF_REG_1), BPF_LD_ABS(size, k), BPF_EXIT_INSN()]


def expect_abs(n, k, data=FRAME):
    """What ld_abs of n bytes at k sees in a socket filter's skb: data starts after the 14-byte Ethernet
    header; SKF_NET_OFF counts from the network header (the same place), SKF_LL_OFF from the mac header;
    out of bounds, the program returns 0."""
    eth = 14
    if k >= 0:
        pos = eth + k
    elif k >= SKF_NET_OFF:
        pos = eth + (k - SKF_NET_OFF)
    elif k >= SKF_LL_OFF:
        pos = k - SKF_LL_OFF
    else:
        return 0
    if pos + n > len(data):
        return 0
    return int.from_bytes(data[pos:pos + n], "big")


ABS_OFFSETS = [0, 1, 2, 3, 45, 46, 47, 48, 49, 50, 100, 0x7fffffff, -1, SKF_NET_OFF, SKF_NET_OFF + 3,
               SKF_NET_OFF + 48, SKF_NET_OFF + 50, SKF_LL_OFF, SKF_LL_OFF + 13, SKF_LL_OFF + 60, SKF_LL_OFF + 62,
               SKF_LL_OFF - 1, -0x80000000]


@pytest.mark.parametrize("size", ["b", "h", "w"])
def test_ld_abs(isa_sys, size):
    """ld_abs: big-endian load relative to the skb's data (or the network/mac header with the SKF_*_OFF
    bases); past the packet the program returns 0 at once."""
    code, n = SIZES[size]
    got = [run_filter(isa_sys, ld_abs_prog(code, k)) for k in ABS_OFFSETS]
    assert got == [expect_abs(n, k) for k in ABS_OFFSETS]


@pytest.mark.parametrize("size", ["b", "h", "w"])
def test_ld_ind(isa_sys, size):
    """ld_ind: the offset is src + imm truncated to s32."""
    code, n = SIZES[size]
    cases = [(0, 0), (1, 2), (40, 5), (45, 1), (0x100000000 + 3, 0), (0xffffffff, 1), (0xfffffffffffffffe, 4),
             (SKF_NET_OFF & ((1 << 64) - 1), 2), (2, -3), (50, 0)]
    got = []
    for src, imm in cases:
        prog = [BPF_MOV64_REG(BPF_REG_6, BPF_REG_1), *_ld_imm64(BPF_REG_7, src), BPF_LD_IND(code, BPF_REG_7, imm),
                BPF_EXIT_INSN()]
        got.append(run_filter(isa_sys, prog))
    want = [expect_abs(n, O.signed(src + imm, 32)) for src, imm in cases]
    assert got == want


def _ld_imm64(reg, v):
    from bpfemu.prog.insn import BPF_LD_IMM64
    return BPF_LD_IMM64(reg, v)


def test_ld_abs_out_of_bounds_exits_at_once(isa_sys):
    """The out-of-bounds exit skips everything after the load: r0 = 7 afterwards is never reached."""
    prog = [BPF_MOV64_REG(BPF_REG_6, BPF_REG_1), BPF_LD_ABS(BPF_W, 1000), BPF_MOV64_IMM(BPF_REG_0, 7),
            BPF_EXIT_INSN()]
    assert run_filter(isa_sys, prog) == 0
    prog[1] = BPF_LD_ABS(BPF_W, 0)
    assert run_filter(isa_sys, prog) == 7


def test_ld_abs_keeps_callee_saved(isa_sys):
    """R6-R9 survive ld_abs (R1-R5 are scratched; the program must not read them)."""
    prog = [BPF_MOV64_REG(BPF_REG_6, BPF_REG_1), BPF_MOV64_IMM(BPF_REG_7, 3), BPF_MOV64_IMM(BPF_REG_8, 40),
            BPF_MOV64_IMM(BPF_REG_9, 500), BPF_LD_ABS(BPF_B, 0),
            BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_7), BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_8),
            BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_9), BPF_EXIT_INSN()]
    assert run_filter(isa_sys, prog) == FRAME[14] + 543


# ---- bpf2bpf calls --------------------------------------------------------------------------------------

CALL_MARK = BPF_CALL_REL(-12345)


def test_call_frames(isa_sys):
    """A bpf2bpf call: arguments in r1-r5, result in r0, r6-r9 preserved, the callee's own stack (its
    r10 - 8 is not the caller's), nested two deep."""
    body = [
        BPF_ST_MEM(BPF_DW, BPF_REG_10, -8, 1111),
        BPF_MOV64_IMM(BPF_REG_7, 70), BPF_MOV64_IMM(BPF_REG_8, 80), BPF_MOV64_IMM(BPF_REG_9, 90),
        BPF_MOV64_IMM(BPF_REG_1, 1), BPF_MOV64_IMM(BPF_REG_2, 2), BPF_MOV64_IMM(BPF_REG_3, 3),
        BPF_MOV64_IMM(BPF_REG_4, 4), BPF_MOV64_IMM(BPF_REG_5, 5),
        CALL_MARK,  # call f (patched below)
        st64(BPF_REG_0, 0),
        BPF_LDX_MEM(BPF_DW, BPF_REG_1, BPF_REG_10, -8), st64(BPF_REG_1, 8),
        st64(BPF_REG_7, 16), st64(BPF_REG_8, 24), st64(BPF_REG_9, 32),
    ]
    # f(a..e): writes its own r10-8, clobbers r6-r9, calls g(a, b), returns a*1 + b*10 + ... + g's result
    f = [
        BPF_ST_MEM(BPF_DW, BPF_REG_10, -8, 2222),
        BPF_MOV64_IMM(BPF_REG_6, -1), BPF_MOV64_IMM(BPF_REG_7, -1), BPF_MOV64_IMM(BPF_REG_8, -1),
        BPF_MOV64_IMM(BPF_REG_9, -1),
        BPF_MOV64_REG(BPF_REG_0, BPF_REG_1),
        BPF_ALU64_IMM(0x20, BPF_REG_2, 10), BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_2),
        BPF_ALU64_IMM(0x20, BPF_REG_3, 100), BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_3),
        BPF_ALU64_IMM(0x20, BPF_REG_4, 1000), BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_4),
        BPF_ALU64_IMM(0x20, BPF_REG_5, 10000), BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_5),
        BPF_MOV64_REG(BPF_REG_6, BPF_REG_0),
        BPF_MOV64_IMM(BPF_REG_1, 7), BPF_MOV64_IMM(BPF_REG_2, 9),
        CALL_MARK,  # call g
        BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_6),
        BPF_LDX_MEM(BPF_DW, BPF_REG_1, BPF_REG_10, -8),
        BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_1),  # + 2222: its own slot survived g
        BPF_EXIT_INSN(),
    ]
    g = [BPF_ST_MEM(BPF_DW, BPF_REG_10, -8, 3333), BPF_MOV64_REG(BPF_REG_0, BPF_REG_1),
         BPF_ALU64_REG(0x20, BPF_REG_0, BPF_REG_2), BPF_EXIT_INSN()]
    from .isa import xdp_prog
    main = xdp_prog(40, body)
    call_at = main.index(CALL_MARK)
    f_start = len(main)
    main[call_at] = BPF_CALL_REL(f_start - call_at - 1)
    g_start = f_start + len(f)
    fc = f.index(CALL_MARK)
    f[fc] = BPF_CALL_REL(g_start - (f_start + fc) - 1)
    prog = main + f + g
    fd = progrun.load(isa_sys, prog, u.BPF_PROG_TYPE_XDP)
    try:
        r = progrun.test_run(isa_sys, fd, data=bytes(40))
    finally:
        isa_sys.close(fd)
    assert (r.errno, r.retval) == (0, 2)
    out = unpack(r.data_out[:40])
    assert out == [1 + 20 + 300 + 4000 + 50000 + 63 + 2222, 1111, 70, 80, 90]


def test_tail_call_limit(isa_sys):
    """A program tail-calling itself through a PROG_ARRAY runs 1 + 33 times (MAX_TAIL_CALL_CNT), then the
    call falls through; a tail call to an empty slot or past max_entries falls through at once."""
    from bpfemu.testing.support import create_map, update, u32
    from bpfemu.prog.insn import BPF_JGT, BPF_JMP_REG
    m = create_map(isa_sys, u.BPF_MAP_TYPE_PROG_ARRAY, key_size=4, value_size=4, max_entries=2)
    try:
        def prog(index):
            return [
                BPF_MOV64_REG(BPF_REG_6, BPF_REG_1),
                BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_1, 0), BPF_LDX_MEM(BPF_W, BPF_REG_3, BPF_REG_1, 4),
                BPF_MOV64_REG(BPF_REG_4, BPF_REG_2), BPF_ALU64_IMM(BPF_ADD, BPF_REG_4, 8),
                BPF_JMP_REG(BPF_JGT, BPF_REG_4, BPF_REG_3, 8),  # too short: straight to return
                BPF_LDX_MEM(BPF_DW, BPF_REG_4, BPF_REG_2, 0), BPF_ALU64_IMM(BPF_ADD, BPF_REG_4, 1),
                BPF_STX_MEM(BPF_DW, BPF_REG_2, BPF_REG_4, 0),
                BPF_MOV64_REG(BPF_REG_1, BPF_REG_6), *_ld_map_fd(BPF_REG_2, m), BPF_MOV64_IMM(BPF_REG_3, index),
                BPF_EMIT_CALL(12),
                BPF_MOV64_IMM(BPF_REG_0, 2), BPF_EXIT_INSN(),
            ]
        for index, runs in ((0, 34), (1, 1), (2, 1)):
            fd = progrun.load(isa_sys, prog(index), u.BPF_PROG_TYPE_XDP)
            update(isa_sys, m, u32(0), u32(fd))
            r = progrun.test_run(isa_sys, fd, data=bytes(16))
            assert (r.errno, r.retval) == (0, 2)
            assert struct.unpack_from("<Q", r.data_out)[0] == runs
            isa_sys.close(fd)
    finally:
        isa_sys.close(m)


def _ld_map_fd(reg, fd):
    from bpfemu.prog.insn import BPF_LD_MAP_FD
    return BPF_LD_MAP_FD(reg, fd)
