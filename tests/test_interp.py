"""The engines (reference interpreter and translator) and the memory model they run on: unit tests.

The instruction semantics themselves are proven against the host in conformance/test_isa_*.py; this file
covers what the host cannot show: that every bad access is a Fault and never touches Python memory, tail
calls and their limit, helper dispatch, call depth, translation fallbacks.
"""
import pytest

from bpfemu.prog import jit
from bpfemu.prog.core import (BPF_FUNC_tail_call, MAX_TAIL_CALL_CNT, Image, RunCtx, bpf_prog_run, interpret)
from bpfemu.prog.insn import *  # noqa: F401,F403 - builders read like the kernel's macros
from bpfemu.prog.memory import FIRST_PAGE, PAGE_SIZE, STACK_SIZE, Fault, Memory

ENGINES = ["interp", "jit"]


def run(engine, insns, ctx=None, mem=None, **kw):
    """Run insns on a fresh RunCtx; ctx: bytes for a ctx region (or None: R1 = 0). Returns (r0, run, ctx buf)."""
    image = Image(insns)
    if engine == "jit":
        jit.bpf_int_jit_compile(image)
        assert image.bpf_func is not None, image.jit_error
    mem = mem or Memory()
    r = RunCtx(mem, **kw)
    buf = None
    addr = 0
    if ctx is not None:
        buf = bytearray(ctx)
        _, addr = mem.add_buffer("ctx", buf)
    return bpf_prog_run(image, r, addr), r, buf


# ---- the memory model ------------------------------------------------------------------------------------

def test_regions_are_page_aligned_below_4g_with_guard_pages():
    m = Memory()
    r1, a1 = m.add_buffer("x", bytearray(16))
    r2, a2 = m.add_buffer("y", bytearray(PAGE_SIZE + 100))
    r3, a3 = m.add_buffer("z", bytearray(8))
    for a in (a1, a2, a3):
        assert a % PAGE_SIZE == 0 and FIRST_PAGE * PAGE_SIZE <= a < 1 << 32
    assert a2 >= a1 + 2 * PAGE_SIZE and a3 >= a2 + 3 * PAGE_SIZE  # an unmapped page after each
    assert m.resolve(a1 + 15) == (r1, 15)
    assert m.resolve(a2 + PAGE_SIZE + 99) == (r2, PAGE_SIZE + 99)
    with pytest.raises(Fault):
        m.resolve(a1 + 15, 2)  # one byte past the end
    for bad in (0, 8, FIRST_PAGE * PAGE_SIZE - 1, a1 + PAGE_SIZE, 1 << 32, -8):
        with pytest.raises(Fault):
            m.resolve(bad)
    m.remove(r1)
    with pytest.raises(Fault):
        m.load(a1, 1)
    m.store(a3, 8, 0x1122334455667788)
    assert m.read(a3, 8) == bytes.fromhex("8877665544332211")
    assert m.load(a3 + 7, 1, signed=True) == 0x11
    # loads across a page boundary inside one region
    m.write(a2 + PAGE_SIZE - 2, b"\x01\x02\x03\x04")
    assert m.load(a2 + PAGE_SIZE - 2, 4) == 0x04030201


def test_read_only_region():
    m = Memory()
    _, ro = m.add_buffer("rodata", b"\x01\x02\x03\x04")
    assert m.load(ro, 4) == 0x04030201
    with pytest.raises(Fault):
        m.store(ro, 1, 0)
    owned = bytearray(4)
    _, ro2 = m.add_buffer("ctx", owned, readonly=True)
    for engine in ENGINES:
        with pytest.raises(Fault):
            run(engine, [BPF_LD_IMM64(BPF_REG_1, ro2), BPF_ST_MEM(BPF_W, BPF_REG_1, 0, 1), BPF_EXIT_INSN()],
                mem=m)
    assert owned == bytes(4)


def test_frames_are_zeroed_per_entry():
    m = Memory()
    stk, r10 = m.frame(0)
    stk[0] = 7
    stk2, r10b = m.frame(0)
    assert stk2 is stk and stk[0] == 0 and r10 == r10b == m.region_of(r10 - 1).base + STACK_SIZE


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad", [
    [BPF_MOV64_IMM(BPF_REG_1, 0), BPF_LDX_MEM(BPF_DW, BPF_REG_0, BPF_REG_1, 0)],          # NULL
    [BPF_LDX_MEM(BPF_DW, BPF_REG_0, BPF_REG_10, 0)],                                      # at r10
    [BPF_LDX_MEM(BPF_DW, BPF_REG_0, BPF_REG_10, -STACK_SIZE - 8)],                        # below the frame
    [BPF_MOV64_REG(BPF_REG_1, BPF_REG_10), BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, 8),
     BPF_STX_MEM(BPF_DW, BPF_REG_1, BPF_REG_1, -8)],                                      # store past the top
    [BPF_LD_IMM64(BPF_REG_1, 0x7f0000001000), BPF_ST_MEM(BPF_W, BPF_REG_1, 0, 1)],        # a host address
    [BPF_MOV64_REG(BPF_REG_1, BPF_REG_10), BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, 4096 * 4),
     BPF_LDX_MEM(BPF_B, BPF_REG_0, BPF_REG_1, 0)],                                        # pages further on
    [BPF_MOV64_IMM(BPF_REG_1, -8), BPF_LDX_MEM(BPF_B, BPF_REG_0, BPF_REG_1, 4)],          # wraps past 2**64
    [BPF_MOV64_IMM(BPF_REG_1, 4), BPF_LDX_MEM(BPF_B, BPF_REG_0, BPF_REG_1, -8)],          # wraps below 0
    [BPF_MOV64_REG(BPF_REG_1, BPF_REG_10), BPF_ALU64_IMM(BPF_SUB, BPF_REG_1, 8),
     BPF_MOV64_IMM(BPF_REG_2, 1), BPF_ATOMIC_OP(BPF_DW, BPF_ADD, BPF_REG_1, BPF_REG_2, 16)],  # atomic
    [BPF_LDX_MEM(BPF_B, BPF_REG_0, BPF_REG_1, 8)],                                        # past the ctx
])
def test_bad_access_is_a_fault(engine, bad):
    prog = bad + [BPF_MOV64_IMM(BPF_REG_0, 0), BPF_EXIT_INSN()]
    with pytest.raises(Fault):
        run(engine, prog, ctx=bytes(8))


@pytest.mark.parametrize("engine", ENGINES)
def test_stack_pointer_through_other_registers(engine):
    """A stack pointer copied to another register, moved and dereferenced reaches the same frame bytes."""
    prog = [
        BPF_ST_MEM(BPF_DW, BPF_REG_10, -16, 0x1234),
        BPF_MOV64_REG(BPF_REG_3, BPF_REG_10),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_3, -24),
        BPF_LDX_MEM(BPF_DW, BPF_REG_0, BPF_REG_3, 8),
        BPF_MOV64_IMM(BPF_REG_4, 1),
        BPF_ATOMIC_OP(BPF_DW, BPF_ADD | BPF_FETCH, BPF_REG_3, BPF_REG_4, 8),
        BPF_LDX_MEM(BPF_DW, BPF_REG_5, BPF_REG_10, -16),
        BPF_ALU64_IMM(BPF_LSH, BPF_REG_5, 16),
        BPF_ALU64_REG(BPF_OR, BPF_REG_0, BPF_REG_5),
        BPF_EXIT_INSN(),
    ]
    assert run(engine, prog)[0] == 0x1234 | (0x1235 << 16)


# ---- calls -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_helper_dispatch(engine):
    seen = []

    def helper(run_, r1, r2, r3, r4, r5):
        seen.append((r1, r2, r3, r4, r5, run_.cpu))
        return -1

    prog = [BPF_MOV64_IMM(BPF_REG_1, 1), BPF_MOV64_IMM(BPF_REG_2, 2), BPF_MOV64_IMM(BPF_REG_3, 3),
            BPF_MOV64_IMM(BPF_REG_4, 4), BPF_MOV64_IMM(BPF_REG_5, 5), BPF_EMIT_CALL(77),
            BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_1), BPF_EXIT_INSN()]
    r0, _, _ = run(engine, prog, helpers={77: helper}, cpu=3)
    assert seen == [(1, 2, 3, 4, 5, 3)]
    assert r0 == 0  # -1 as u64, plus r1 (kept across the call) wraps to 0


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_helper_is_a_fault_only_when_called(engine):
    prog = [BPF_MOV64_IMM(BPF_REG_0, 0), BPF_JMP_IMM(BPF_JEQ, BPF_REG_0, 0, 1), BPF_EMIT_CALL(99),
            BPF_EXIT_INSN()]
    assert run(engine, prog)[0] == 0
    with pytest.raises(Fault, match="helper 99"):
        run(engine, [BPF_EMIT_CALL(99), BPF_EXIT_INSN()])


def chain(depth):
    """main calls f1 calls f2 ... f_depth; each frame writes its depth to its own r10-8 and returns the sum
    of its frame slot and the callee's result."""
    prog = []
    for d in range(depth + 1):
        prog += [BPF_ST_MEM(BPF_DW, BPF_REG_10, -8, d + 1)]
        if d < depth:
            prog += [BPF_CALL_REL(3)]  # the next function starts 4 slots after the call
        else:
            prog += [BPF_MOV64_IMM(BPF_REG_0, 0)]
        prog += [BPF_LDX_MEM(BPF_DW, BPF_REG_1, BPF_REG_10, -8), BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_1),
                 BPF_EXIT_INSN()]
    return prog


@pytest.mark.parametrize("engine", ENGINES)
def test_call_depth(engine):
    assert run(engine, chain(7))[0] == sum(range(1, 9))  # 8 frames: the kernel's MAX_CALL_FRAMES
    with pytest.raises(Fault, match="call depth"):
        run(engine, chain(8))


class ProgArray:
    """Just enough of a PROG_ARRAY for tail calls (max_entries, tail_call_image, bypass_spec_v1: made by a
    privileged creator, so the index is taken as a u32) and for its map pointer (kernel_struct)."""

    bypass_spec_v1 = True

    def __init__(self, n):
        self.max_entries = n
        self.slots = {}

    def kernel_struct(self):
        return bytes(64)

    def tail_call_image(self, index):
        return self.slots.get(index)


def counting_tail_caller(array, index=0):
    """ctx[0] += 1, then tail_call(ctx, array, index); r0 = ctx[0] when the call falls through."""
    prog = [
        BPF_LDX_MEM(BPF_DW, BPF_REG_2, BPF_REG_1, 0),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, 1),
        BPF_STX_MEM(BPF_DW, BPF_REG_1, BPF_REG_2, 0),
        BPF_MOV64_REG(BPF_REG_6, BPF_REG_1),
        BPF_LD_MAP_FD(BPF_REG_2, 0),
        BPF_MOV64_IMM(BPF_REG_3, index),
        BPF_EMIT_CALL(BPF_FUNC_tail_call),
        BPF_LDX_MEM(BPF_DW, BPF_REG_0, BPF_REG_6, 0),
        BPF_EXIT_INSN(),
    ]
    return Image(prog, pseudo={4: lambda r: r.object_addr(array)})


@pytest.mark.parametrize("engine", ENGINES)
def test_tail_call_limit(engine):
    """A program tail-calling itself runs 1 + MAX_TAIL_CALL_CNT (33) times; then the call falls through."""
    array = ProgArray(4)
    image = counting_tail_caller(array)
    array.slots[0] = image
    if engine == "jit":
        jit.bpf_int_jit_compile(image)
    mem = Memory()
    ctx = bytearray(8)
    _, addr = mem.add_buffer("ctx", ctx)
    r = RunCtx(mem)
    assert bpf_prog_run(image, r, addr) == 1 + MAX_TAIL_CALL_CNT == 34
    assert r.tail_call_cnt == MAX_TAIL_CALL_CNT


@pytest.mark.parametrize("engine", ENGINES)
def test_tail_call_misses(engine):
    """An index past max_entries falls through without counting; an empty slot counts."""
    array = ProgArray(2)
    for index, counted in ((2, 0), (1, 1), (0xffffffff, 0)):
        image = counting_tail_caller(array, index)
        if engine == "jit":
            jit.bpf_int_jit_compile(image)
        mem = Memory()
        _, addr = mem.add_buffer("ctx", bytearray(8))
        r = RunCtx(mem)
        assert bpf_prog_run(image, r, addr) == 1
        assert r.tail_call_cnt == counted


@pytest.mark.parametrize("engine", ENGINES)
def test_tail_call_from_a_subprogram_returns_to_its_caller(engine):
    """A tail call made in a bpf2bpf callee replaces that callee: its target's r0 is what the call returns."""
    array = ProgArray(1)
    target = Image([BPF_MOV64_IMM(BPF_REG_0, 40), BPF_EXIT_INSN()])
    array.slots[0] = target
    prog = [
        BPF_CALL_REL(3),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_0, 2),   # 40 + 2
        BPF_EXIT_INSN(),
        BPF_EXIT_INSN(),                        # padding (never reached)
        BPF_LD_MAP_FD(BPF_REG_2, 0),            # the callee
        BPF_MOV64_IMM(BPF_REG_3, 0),
        BPF_EMIT_CALL(BPF_FUNC_tail_call),
        BPF_MOV64_IMM(BPF_REG_0, 1),
        BPF_EXIT_INSN(),
    ]
    image = Image(prog, pseudo={4: lambda r: r.object_addr(array)})
    if engine == "jit":
        jit.bpf_int_jit_compile(image)
        assert image.bpf_func is not None, image.jit_error
    assert bpf_prog_run(image, RunCtx(), 0) == 42


@pytest.mark.parametrize("engine", ENGINES)
def test_unresolved_pseudo_ld_imm64_is_a_fault(engine):
    with pytest.raises(Fault, match="ld_imm64"):
        run(engine, [BPF_LD_MAP_FD(BPF_REG_1, 3), BPF_MOV64_IMM(BPF_REG_0, 0), BPF_EXIT_INSN()])


def test_insn_budget_stops_a_runaway_interpretation():
    with pytest.raises(Fault, match="budget"):
        interpret(Image([BPF_JMP_A(-1), BPF_EXIT_INSN()]), RunCtx(insn_budget=1000), 0)


@pytest.mark.parametrize("prog, why", [
    ([BPF_MOV64_IMM(BPF_REG_0, 0)], "past"),                              # no exit
    ([BPF_JMP_A(5), BPF_EXIT_INSN()], "leaves"),                          # jump out of the program
    ([BPF_RAW_INSN(0xff, 0, 0, 0, 0), BPF_EXIT_INSN()], "op 0xf0"),        # no such opcode
])
def test_untranslatable_programs_fall_back_to_the_interpreter(prog, why):
    image = jit.bpf_int_jit_compile(Image(prog))
    assert image.bpf_func is None and why in image.jit_error
    with pytest.raises(Fault):
        bpf_prog_run(image, RunCtx(), 0)


def test_translation_of_deeply_nested_branches():
    """Long if-chains nest deeper than Python's indentation limit unless the translator dispatches."""
    prog = [BPF_MOV64_IMM(BPF_REG_0, 0)]
    for k in range(300):
        prog += [BPF_JMP_IMM(BPF_JEQ, BPF_REG_1, k, 1), BPF_ALU64_IMM(BPF_ADD, BPF_REG_0, 1)]
    prog.append(BPF_EXIT_INSN())
    image = jit.bpf_int_jit_compile(Image(prog))
    assert image.bpf_func is not None, image.jit_error
    for x in (0, 5, 299, 1000):
        assert bpf_prog_run(image, RunCtx(), x) == interpret(image, RunCtx(), x)


def test_region_views_of_foreign_storage():
    """A region over a memoryview of someone else's buffer (how map values will be handed to programs):
    program writes land in that buffer, and writes past the view fault without touching the rest."""
    storage = bytearray(32)
    view = memoryview(storage)[8:16]
    mem = Memory()
    _, addr = mem.add_buffer("map_value", view)
    prog = [BPF_LD_IMM64(BPF_REG_1, addr), BPF_ST_MEM(BPF_DW, BPF_REG_1, 0, -1), BPF_MOV64_IMM(BPF_REG_0, 0),
            BPF_EXIT_INSN()]
    for engine in ENGINES:
        storage[:] = bytes(32)
        run(engine, prog, mem=mem)
        assert storage == bytes(8) + b"\xff" * 8 + bytes(16)
    bad = [BPF_LD_IMM64(BPF_REG_1, addr), BPF_ST_MEM(BPF_DW, BPF_REG_1, 4, -1), BPF_EXIT_INSN()]
    for engine in ENGINES:
        storage[:] = bytes(32)
        with pytest.raises(Fault):
            run(engine, bad, mem=mem)
        assert storage == bytes(32)


def fake_bpf_loop(run_, nr, callback, ctx, flags, _):
    """Just enough of bpf_loop: call callback(i, ctx) until it returns nonzero; the number of calls."""
    for i in range(nr):
        if run_.call_func(callback, i, ctx):
            return i + 1
    return nr


@pytest.mark.parametrize("engine", ENGINES)
def test_callbacks(engine):
    """A callback subprogram (ld_imm64 BPF_PSEUDO_FUNC) called by a helper: its own frame above the
    caller's, the caller's stack reached through the pointer it was given, nested in a bpf2bpf call."""
    prog = [
        BPF_CALL_REL(2),                           # main: call f, return its result
        BPF_EXIT_INSN(),
        BPF_EXIT_INSN(),
        BPF_ST_MEM(BPF_DW, BPF_REG_10, -8, 0),     # f: sum = 0 on its own stack
        BPF_MOV64_IMM(BPF_REG_1, 10),
        BPF_LD_IMM64_RAW(BPF_REG_2, BPF_PSEUDO_FUNC, 0),  # the callback (resolved below)
        BPF_MOV64_REG(BPF_REG_3, BPF_REG_10),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_3, -8),
        BPF_MOV64_IMM(BPF_REG_4, 0),
        BPF_EMIT_CALL(181),
        BPF_LDX_MEM(BPF_DW, BPF_REG_1, BPF_REG_10, -8),
        BPF_ALU64_IMM(BPF_MUL, BPF_REG_0, 1000),
        BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_1),
        BPF_EXIT_INSN(),
        BPF_ST_MEM(BPF_DW, BPF_REG_10, -8, 77),    # callback(i, ctx): its own frame...
        BPF_LDX_MEM(BPF_DW, BPF_REG_3, BPF_REG_2, 0),
        BPF_ALU64_REG(BPF_ADD, BPF_REG_3, BPF_REG_1),
        BPF_STX_MEM(BPF_DW, BPF_REG_2, BPF_REG_3, 0),  # ...*ctx += i
        BPF_MOV64_IMM(BPF_REG_0, 0),
        BPF_JMP_IMM(BPF_JLT, BPF_REG_1, 6, 1),
        BPF_MOV64_IMM(BPF_REG_0, 1),               # stop after i == 6
        BPF_EXIT_INSN(),
    ]
    image = Image(prog)
    cb = len(image.insns) - 8
    ld_at = 5
    image.insns[ld_at] = image.insns[ld_at]._replace(imm=cb - ld_at - 1)
    image.pseudo[ld_at] = lambda r: r.func_addr(image, cb)
    if engine == "jit":
        jit.bpf_int_jit_compile(image)
        assert image.bpf_func is not None, image.jit_error
        assert cb in image.jit_subprogs
    r = RunCtx(helpers={181: fake_bpf_loop})
    assert bpf_prog_run(image, r, 0) == 7 * 1000 + sum(range(7))
    assert r.depth == 1  # the helper was called from f's frame
