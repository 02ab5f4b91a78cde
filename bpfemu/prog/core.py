"""The BPF interpreter: the reference semantics of every instruction (kernel/bpf/core.c ``___bpf_prog_run``).

What runs is an :class:`Image`: the instruction slots of a loaded program after the verifier's fixups (the
kernel's ``prog->insnsi``), plus how each ``ld_imm64`` with a pseudo source resolves. One invocation runs with
a :class:`RunCtx` (its :class:`~bpfemu.prog.memory.Memory`, the helper table, the CPU, the tail-call count,
the skb that ``ld_abs`` reads). :func:`bpf_prog_run` runs an image on a context pointer and returns R0 as a
u64; it calls the translated function when :mod:`bpfemu.prog.jit` made one (``image.bpf_func``), exactly as
the kernel calls ``prog->bpf_func`` when the JIT succeeded, and interprets otherwise.

Semantics are the kernel's as a program observes them after loading, that is including what the verifier
patches in (``do_misc_fixups``): division by zero gives 0, modulo by zero leaves dst (its low 32 bits,
zero-extended, for the 32-bit form), signed division of INT_MIN by -1 gives INT_MIN and signed modulo by -1
gives 0; ``may_goto`` falls through BPF_MAX_LOOPS times per call frame and then jumps; ``ld_abs``/``ld_ind``
out of the packet make the current frame return 0; a tail call past 33 falls through.

Registers R1-R5 keep their values across a helper or bpf2bpf call here, as in the kernel's interpreter (the
verifier forbids reading them after a call, so a JIT's clobbering is not observable); a callee frame starts
with R0 and R6-R9 zero and its own zeroed 512-byte stack.

Helpers are looked up by number in ``run.helpers`` (``{func_id: fn(run, r1, r2, r3, r4, r5) -> int}``),
kfuncs by BTF id in ``run.kfuncs``; an id with no implementation is a :class:`~bpfemu.prog.memory.Fault`.
"""
from .insn import (BPF_ABS, BPF_ADD, BPF_ALU, BPF_ALU64, BPF_AND, BPF_ARSH, BPF_ATOMIC, BPF_B, BPF_CALL,
                   BPF_CMPXCHG, BPF_DIV, BPF_DW, BPF_END, BPF_EXIT, BPF_FETCH, BPF_H, BPF_IMM, BPF_IND, BPF_JA,
                   BPF_JCOND, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JLE, BPF_JLT, BPF_JMP, BPF_JMP32, BPF_JNE, BPF_JSET,
                   BPF_JSGE, BPF_JSGT, BPF_JSLE, BPF_JSLT, BPF_LD, BPF_LDX, BPF_LOAD_ACQ, BPF_LSH, BPF_MEM,
                   BPF_MEMSX, BPF_MOD, BPF_MOV, BPF_MUL, BPF_NEG, BPF_OR, BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL,
                   BPF_RSH, BPF_ST, BPF_STORE_REL, BPF_STX, BPF_SUB, BPF_W, BPF_X, BPF_XCHG, BPF_XOR, Insn, flatten)
from .memory import ACCESS_ERRORS, M32, M64, MAX_CALL_FRAMES, PAGE_MASK, PAGE_SHIFT, S, U, Fault, Memory


class NotEmulated(Fault):
    """The program reached something the emulator does not model (a helper or kfunc without an
    implementation, a kernel symbol): the test run fails with EINVAL saying what, instead of guessing."""

MAX_TAIL_CALL_CNT = 33        # include/linux/bpf.h
BPF_MAX_LOOPS = 8 * 1024 * 1024  # may_goto budget per call frame (the interpreter's; see docs/kernel-notes.md)
BPF_FUNC_tail_call = 12
# helpers that call back into the program while they run (the callback gets the next call frame)
SYNC_CALLBACK_HELPERS = frozenset((164, 180, 181, 209))  # for_each_map_elem, find_vma, loop, user_ringbuf_drain
SKF_NET_OFF = -0x100000       # include/uapi/linux/filter.h: ld_abs offsets relative to the network header
SKF_LL_OFF = -0x200000        # ... and to the link-layer (mac) header

SIZE_BYTES = {BPF_B: 1, BPF_H: 2, BPF_W: 4, BPF_DW: 8}
LOAD = {n: U[n].unpack_from for n in U}
LOADS = {n: S[n].unpack_from for n in S}
STORE = {n: U[n].pack_into for n in U}


# ---- value semantics shared by the interpreter and the translator ------------------------------------------

def s64(v):
    """u64 -> the signed value of its two's complement."""
    return v - (1 << 64) if v & 0x8000000000000000 else v


def s32(v):
    v &= M32
    return v - (1 << 32) if v & 0x80000000 else v


def sext(v, bits):
    """The low ``bits`` of v, sign-extended, as a Python int."""
    m = (1 << bits) - 1
    v &= m
    sign = 1 << (bits - 1)
    return (v ^ sign) - sign


def bswap16(v):
    return ((v & 0xff) << 8) | ((v >> 8) & 0xff)


def bswap32(v):
    return int.from_bytes((v & M32).to_bytes(4, "little"), "big")


def bswap64(v):
    return int.from_bytes((v & M64).to_bytes(8, "little"), "big")


def sdiv(a, b):
    """C division (truncating toward zero) of signed ints, b != 0."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def smod(a, b):
    """C remainder (sign of the dividend) of signed ints, b != 0."""
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _div64(d, s, off):
    if s == 0:
        return 0
    if off == 1:
        ss = s64(s)
        if ss == -1:
            return -d & M64
        return sdiv(s64(d), ss) & M64
    return d // s


def _mod64(d, s, off):
    if s == 0:
        return d
    if off == 1:
        ss = s64(s)
        if ss == -1:
            return 0
        return smod(s64(d), ss) & M64
    return d % s


def _mov64(d, s, off):
    return sext(s, off) & M64 if off in (8, 16, 32) else s


def _div32(d, s, off):
    d &= M32
    s &= M32
    if s == 0:
        return 0
    if off == 1:
        ss = s32(s)
        if ss == -1:
            return -d & M32
        return sdiv(s32(d), ss) & M32
    return d // s


def _mod32(d, s, off):
    d &= M32
    s &= M32
    if s == 0:
        return d
    if off == 1:
        ss = s32(s)
        if ss == -1:
            return 0
        return smod(s32(d), ss) & M32
    return d % s


def _mov32(d, s, off):
    return sext(s, off) & M32 if off in (8, 16) else s & M32


# op -> fn(dst, src, off): u64 operands in, the result out (for ALU: the u32 result, zero-extended)
ALU64_OPS = {
    BPF_ADD: lambda d, s, off: (d + s) & M64,
    BPF_SUB: lambda d, s, off: (d - s) & M64,
    BPF_MUL: lambda d, s, off: (d * s) & M64,
    BPF_DIV: _div64,
    BPF_MOD: _mod64,
    BPF_OR: lambda d, s, off: d | s,
    BPF_AND: lambda d, s, off: d & s,
    BPF_XOR: lambda d, s, off: d ^ s,
    BPF_LSH: lambda d, s, off: (d << (s & 63)) & M64,
    BPF_RSH: lambda d, s, off: d >> (s & 63),
    BPF_ARSH: lambda d, s, off: (s64(d) >> (s & 63)) & M64,
    BPF_NEG: lambda d, s, off: -d & M64,
    BPF_MOV: _mov64,
}
ALU32_OPS = {
    BPF_ADD: lambda d, s, off: (d + s) & M32,
    BPF_SUB: lambda d, s, off: (d - s) & M32,
    BPF_MUL: lambda d, s, off: (d * s) & M32,
    BPF_DIV: _div32,
    BPF_MOD: _mod32,
    BPF_OR: lambda d, s, off: (d | s) & M32,
    BPF_AND: lambda d, s, off: d & s & M32,
    BPF_XOR: lambda d, s, off: (d ^ s) & M32,
    BPF_LSH: lambda d, s, off: (d << (s & 31)) & M32,
    BPF_RSH: lambda d, s, off: (d & M32) >> (s & 31),
    BPF_ARSH: lambda d, s, off: (s32(d) >> (s & 31)) & M32,
    BPF_NEG: lambda d, s, off: -d & M32,
    BPF_MOV: _mov32,
}


def alu64(op, off, d, s, imm=0):
    """ALU64 ``op`` on u64 dst ``d`` and u64 src ``s`` (for BPF_K, the sign-extended imm); returns u64.

    ``off`` selects sdiv/smod (1) or the width of a sign-extending mov (8/16/32); ``imm`` is the width of
    a bswap (BPF_ALU64 | BPF_END swaps unconditionally).
    """
    if op == BPF_END:
        return bswap16(d) if imm == 16 else bswap32(d) if imm == 32 else bswap64(d)
    fn = ALU64_OPS.get(op)
    if fn is None:
        raise Fault("bad ALU64 op %#x" % op)
    return fn(d, s, off)


def alu32(op, off, d, s, imm=0, to_be=False):
    """ALU (32-bit) ``op``: operands are the low 32 bits of ``d`` and ``s``; the u32 result is zero-extended.

    For BPF_END, ``to_be`` is the source bit (to_be/to_le) and ``imm`` the width; the result keeps the low
    ``imm`` bits (swapped for to_be), so to_le16 truncates.
    """
    if op == BPF_END:
        if imm == 16:
            return bswap16(d) if to_be else d & 0xffff
        if imm == 32:
            return bswap32(d) if to_be else d & M32
        return bswap64(d) if to_be else d & M64
    fn = ALU32_OPS.get(op)
    if fn is None:
        raise Fault("bad ALU op %#x" % op)
    return fn(d, s, off)


# op -> fn(a, b, sa, sb): whether the jump is taken, on the unsigned (a, b) or signed (sa, sb) operands
JMP_OPS = {
    BPF_JEQ: lambda a, b, sa, sb: a == b,
    BPF_JNE: lambda a, b, sa, sb: a != b,
    BPF_JGT: lambda a, b, sa, sb: a > b,
    BPF_JGE: lambda a, b, sa, sb: a >= b,
    BPF_JLT: lambda a, b, sa, sb: a < b,
    BPF_JLE: lambda a, b, sa, sb: a <= b,
    BPF_JSET: lambda a, b, sa, sb: bool(a & b),
    BPF_JSGT: lambda a, b, sa, sb: sa > sb,
    BPF_JSGE: lambda a, b, sa, sb: sa >= sb,
    BPF_JSLT: lambda a, b, sa, sb: sa < sb,
    BPF_JSLE: lambda a, b, sa, sb: sa <= sb,
}


SIGNED_JMP = frozenset((BPF_JSGT, BPF_JSGE, BPF_JSLT, BPF_JSLE))


def jmp_cond(op, a, b, is32):
    """Whether the conditional jump ``op`` is taken for dst ``a`` and src ``b`` (u64; JMP32 looks at the
    low 32 bits)."""
    if is32:
        a &= M32
        b &= M32
        sa, sb = (a ^ 0x80000000) - 0x80000000, (b ^ 0x80000000) - 0x80000000
    else:
        sa, sb = s64(a), s64(b)
    fn = JMP_OPS.get(op)
    if fn is None:
        raise Fault("bad jump op %#x" % op)
    return fn(a, b, sa, sb)


def atomic_rmw(imm, old, src, mask):
    """New memory value of the read-modify-write atomic ``imm`` (without BPF_FETCH) on ``old`` with ``src``."""
    op = imm & ~BPF_FETCH
    if op == BPF_ADD:
        return (old + src) & mask
    if op == BPF_OR:
        return old | (src & mask)
    if op == BPF_AND:
        return old & src
    if op == BPF_XOR:
        return old ^ (src & mask)
    raise Fault("bad atomic op %#x" % imm)


ATOMIC_RMW_OPS = frozenset((BPF_ADD, BPF_OR, BPF_AND, BPF_XOR))


def bpf_skb_load_helper(skb, k, size):
    """What ``ld_abs``/``ld_ind`` of ``size`` bytes at offset ``k`` (s32) loads: the big-endian value, or None
    when the kernel's ``bpf_skb_load_helper_{8,16,32}`` fails (the program's frame then returns 0).

    ``skb`` has ``buf`` (the skb's whole linear buffer), and ``data``, ``tail``, ``network_header`` and
    ``mac_header`` (None when unset) as indices into it: the fields of ``struct sk_buff`` relative to head.
    Offsets from SKF_NET_OFF count from the network header, from SKF_LL_OFF from the mac header.
    """
    if skb is None:
        raise Fault("ld_abs/ld_ind without an skb")
    if k >= 0:
        off = k
    elif k >= SKF_NET_OFF:
        off = k - SKF_NET_OFF + skb.network_header - skb.data
    elif k >= SKF_LL_OFF and skb.mac_header is not None:
        off = k - SKF_LL_OFF + skb.mac_header - skb.data
    else:
        return None
    if skb.tail - skb.data - off >= size:  # the linear part covers it (emulated skbs have no frags)
        start = skb.data + off
        return int.from_bytes(bytes(skb.buf[start:start + size]), "big")
    return None


# ---- the program image and one invocation ------------------------------------------------------------------

class Image:
    """The instructions a program runs (``prog->insnsi`` after the verifier's fixups) and how they resolve.

    ``insns``: Insn slots (builders' tuples are flattened). ``pseudo``: ``{pc: fn(run) -> u64}`` for each
    ``ld_imm64`` whose src_reg is not 0 (a map, a map value, a subprogram, a kernel symbol), resolved per run
    because addresses belong to the run's address space. ``bpf_func`` is the translated function once
    :func:`bpfemu.prog.jit.bpf_int_jit_compile` made one.
    """

    def __init__(self, insns, pseudo=None, name="", prog_type=0):
        self.insns = [Insn(*i) for i in flatten(insns)]
        self.pseudo = dict(pseudo or {})
        self.name = name
        self.prog_type = prog_type
        self.bpf_func = None
        self.jit_entry = None      # the translated main function, entered at any depth (tail calls)
        self.jit_subprogs = {}     # subprogram start pc -> translated function
        self.jit_error = None

    def __len__(self):
        return len(self.insns)

    def __repr__(self):
        return "<bpf image %s%d insns%s>" % (self.name and self.name + " ", len(self.insns),
                                            ", translated" if self.bpf_func else "")


class RunCtx:
    """The state of one program invocation (``bpf_prog_run`` and all it calls).

    ``mem``: the address space. ``helpers``: ``{func_id: fn(run, r1..r5) -> int}``. ``kfuncs``: ``{(btf_id,
    off): fn(run, r1..r5) -> int}``. ``cpu``: what ``bpf_get_smp_processor_id`` answers. ``skb``: what
    ld_abs/ld_ind read (see :func:`bpf_skb_load_helper`). ``tail_call_cnt`` counts tail calls of this run,
    shared by all frames as the x86 JIT shares it. ``insn_budget``: None, or how many instructions the
    reference interpreter may execute (a Fault past it; tests of unverified programs); ``insn_count``: how
    many it executed.
    """

    def __init__(self, mem=None, helpers=None, kfuncs=None, cpu=0, skb=None, kernel=None, insn_budget=None,
                 prog=None, task=None):
        self.mem = mem if mem is not None else Memory()
        self.helpers = helpers if helpers is not None else {}
        self.kfuncs = kfuncs if kfuncs is not None else {}
        self.cpu = cpu
        self.skb = skb
        self.kernel = kernel
        self.prog = prog      # the program running (struct bpf_prog: its stream, its maps)
        self.task = task      # the task the program runs for (``current``: pid, uid, comm)
        self.tail_call_cnt = 0
        self.insn_budget = insn_budget
        self.insn_count = 0  # instructions the reference interpreter executed in this run
        self._ldv = {}
        self._objs = None
        self._values = {}     # id(buffer) -> Region: map value storage mapped into this run
        self.depth = 0  # the call frame a helper was called from (set before callback helpers)
        self.locks = []       # bpf_spin_lock addresses held (the verifier pairs lock and unlock)
        self.retval = 0       # bpf_set_retval's value (cgroup programs)
        self.redirect = None  # where bpf_redirect*() sent the packet (bpf_redirect_info)
        self.cgroup_storage = {}  # cgroup storage map -> the storage a test run allocates for it

    def ld_imm64(self, image, pc):
        """The 64-bit value of the pseudo ``ld_imm64`` at ``pc`` of ``image`` in this run."""
        key = (id(image), pc)
        v = self._ldv.get(key)
        if v is None:
            fn = image.pseudo.get(pc)
            if fn is None:
                raise Fault("ld_imm64 at %d has pseudo src %d and no resolution" % (pc, image.insns[pc].src_reg),
                            pc=pc)
            v = self._ldv[key] = fn(self) & M64
        return v

    def object_addr(self, obj, kind="map", content=None):
        """The address of kernel object ``obj`` (a map, for a map pointer) in this run's address space,
        mapped on first use as a region of ``kind`` (what ``ld_imm64`` of a map fd resolves to). A map's
        region holds its ``struct bpf_map`` as the program may read it (``obj.kernel_struct()``); other
        objects' regions hold ``content`` (read-only), or nothing."""
        objs = self._objs
        if objs is None:
            objs = self._objs = {}
        addr = objs.get(id(obj))
        if addr is None:
            if content is None:
                content = obj.kernel_struct() if kind == "map" else b""
            _, addr = self.mem.add_buffer(kind, bytes(content), obj=obj, name=kind)
            objs[id(obj)] = addr
        return addr

    def map_value_addr(self, m, where):
        """The address of a value of map ``m`` in this run: ``where`` is ``(buf, off)`` as the map's
        ``value_region`` gives it; ``buf`` (the map's own storage) is mapped once per run, so the program
        reads and writes the very bytes LOOKUP and mmap see."""
        buf, off = where
        r = self._values.get(id(buf))
        if r is None:
            r, _ = self.mem.add_buffer("map_value", buf, obj=m, name=m.name.decode("latin-1", "replace"))
            self._values[id(buf)] = r
        return r.base + off

    def func_addr(self, image, pc):
        """The address of the subprogram of ``image`` starting at ``pc`` (``ld_imm64`` with
        BPF_PSEUDO_FUNC: a callback for bpf_loop, timers...)."""
        return self.object_addr((image, pc), kind="func")

    def call_func(self, addr, r1=0, r2=0, r3=0, r4=0, r5=0):
        """Call the callback at ``addr`` (from :meth:`func_addr`) in the frame above the helper's; returns R0.

        What bpf_loop, for_each_map_elem and the like do for each element; a timer firing calls it with
        ``run.depth`` 0 on a fresh run.
        """
        image, pc = self.mem.object_at(addr, "func")
        depth = self.depth + 1
        if depth >= MAX_CALL_FRAMES:
            raise Fault("callback nesting exceeds %d frames" % MAX_CALL_FRAMES, addr)
        saved = self.depth
        try:
            fn = image.jit_subprogs.get(pc) if image.bpf_func is not None else None
            if fn is not None:
                stk, r10 = self.mem.frame(depth)
                return fn(self, r1, r2, r3, r4, r5, depth, stk, r10) & M64
            return interpret(image, self, r1, pc=pc, depth=depth, args=(r2, r3, r4, r5))
        finally:
            self.depth = saved

    def helper(self, func_id):
        fn = self.helpers.get(func_id)
        if fn is None:
            raise NotEmulated("helper %d is not implemented by bpfemu" % func_id)
        return fn

    def kfunc(self, btf_id, off):
        fn = self.kfuncs.get((btf_id, off))
        if fn is None:
            raise NotEmulated("kfunc btf_id %d (module %d) is not implemented by bpfemu" % (btf_id, off))
        return fn

    def tail_call(self, map_addr, index):
        """JMP_TAIL_CALL: the Image to continue with, or None to fall through (counting as the kernel does:
        an index out of range does not count, an empty slot does)."""
        array = self.mem.object_at(map_addr, "map")
        if not array.bypass_spec_v1 and index >= array.max_entries:
            return None  # the verifier's 64-bit bounds check before tail calls through maps of unprivileged creators
        index &= M32
        if index >= array.max_entries:
            return None
        if self.tail_call_cnt >= MAX_TAIL_CALL_CNT:
            return None
        self.tail_call_cnt += 1
        return array.tail_call_image(index)


def bpf_prog_run(image, run, ctx):
    """Run ``image`` with R1 = ``ctx`` (an address in ``run.mem``); returns R0 (u64)."""
    f = image.bpf_func
    if f is not None:
        return f(run, ctx)
    return interpret(image, run, ctx)


def interpret(image, run, r1, pc=0, depth=0, args=()):
    """``___bpf_prog_run``: interpret ``image`` from its first instruction with R1 = ``r1``; returns R0.

    ``pc``, ``depth`` and ``args`` (R2..R5) start a callback subprogram in a frame of its own instead.

    A bad memory access raises :class:`~bpfemu.prog.memory.Fault` (with ``pc``), as does an instruction the
    kernel would never let run (a malformed opcode).
    """
    mem = run.mem
    pages = mem.pages
    _, fp = mem.frame(depth)
    regs = [0] * 11
    regs[1] = r1 & M64
    for k, v in enumerate(args):
        regs[2 + k] = v & M64
    regs[10] = fp
    insns = image.insns
    n = len(insns)
    may_goto = BPF_MAX_LOOPS
    frames = []  # (image, insns, return pc, saved regs, may_goto count)
    limit = run.insn_budget if run.insn_budget is not None else 1 << 62
    executed = 0
    try:
        while True:
            if pc >= n or pc < 0:
                raise Fault("fell off the program (pc %d of %d)" % (pc, n), pc=pc)
            executed += 1
            if executed > limit:
                raise Fault("instruction budget exhausted", pc=pc)
            code, dst, src, off, imm = insns[pc]
            cls = code & 7
            pc += 1
            if cls == BPF_ALU64 or cls == BPF_ALU:
                op = code & 0xf0
                if op == BPF_END:
                    if cls == BPF_ALU64:
                        regs[dst] = alu64(op, off, regs[dst], 0, imm)
                    else:
                        regs[dst] = alu32(op, off, regs[dst], 0, imm, to_be=bool(code & BPF_X))
                    continue
                if code & BPF_X:
                    s = regs[src]
                else:
                    s = imm & M64 if cls == BPF_ALU64 else imm & M32
                    if op == BPF_MOV:
                        off = 0  # ALU_MOV_K has no sign-extending form
                fn = (ALU64_OPS if cls == BPF_ALU64 else ALU32_OPS).get(op)
                if fn is None:
                    raise Fault("bad ALU op %#x" % code, pc=pc - 1)
                regs[dst] = fn(regs[dst], s, off)
                continue
            if cls == BPF_JMP or cls == BPF_JMP32:
                op = code & 0xf0
                if op == BPF_JA:
                    pc += imm if cls == BPF_JMP32 else off
                    continue
                if op == BPF_EXIT:
                    if not frames:
                        return regs[0]
                    image, insns, pc, saved, may_goto = frames.pop()
                    n = len(insns)
                    saved[0] = regs[0]
                    regs = saved
                    depth -= 1
                    continue
                if op == BPF_CALL and cls == BPF_JMP:
                    if src == BPF_PSEUDO_CALL:
                        if depth + 1 >= MAX_CALL_FRAMES:
                            raise Fault("call depth exceeds %d frames" % MAX_CALL_FRAMES, pc=pc - 1)
                        frames.append((image, insns, pc, regs, may_goto))
                        depth += 1
                        _, fp = mem.frame(depth)
                        callee = [0] * 11
                        callee[1:6] = regs[1:6]
                        callee[10] = fp
                        regs = callee
                        pc += imm
                        may_goto = BPF_MAX_LOOPS
                        continue
                    if src == BPF_PSEUDO_KFUNC_CALL:
                        fn = run.kfunc(imm, off)
                    elif imm == BPF_FUNC_tail_call:
                        target = run.tail_call(regs[2], regs[3])
                        if target is not None:
                            image, insns, n, pc = target, target.insns, len(target.insns), 0
                            regs[0] = 0
                            regs[2:10] = [0] * 8
                            may_goto = BPF_MAX_LOOPS
                        continue
                    else:
                        fn = run.helper(imm)
                        run.depth = depth
                    regs[0] = fn(run, regs[1], regs[2], regs[3], regs[4], regs[5]) & M64
                    continue
                if op == BPF_JCOND:  # may_goto
                    if may_goto == 0:
                        pc += off
                    else:
                        may_goto -= 1
                    continue
                b = regs[src] if code & BPF_X else (imm & M64 if cls == BPF_JMP else imm & M32)
                a = regs[dst]
                fn = JMP_OPS.get(op)
                if fn is None:
                    raise Fault("bad jump op %#x" % code, pc=pc - 1)
                if cls == BPF_JMP32:
                    a &= M32
                    b &= M32
                    if op in SIGNED_JMP:
                        taken = fn(a, b, (a ^ 0x80000000) - 0x80000000, (b ^ 0x80000000) - 0x80000000)
                    else:
                        taken = fn(a, b, 0, 0)
                elif op in SIGNED_JMP:
                    taken = fn(a, b, s64(a), s64(b))
                else:
                    taken = fn(a, b, 0, 0)
                if taken:
                    pc += off
                continue
            if cls == BPF_LDX:
                mode = code & 0xe0
                size = SIZE_BYTES[code & 0x18]
                a = (regs[src] + off) & M64
                if mode == BPF_MEM:
                    regs[dst] = LOAD[size](pages[a >> PAGE_SHIFT], a & PAGE_MASK)[0]
                elif mode == BPF_MEMSX and size != 8:
                    regs[dst] = LOADS[size](pages[a >> PAGE_SHIFT], a & PAGE_MASK)[0] & M64
                else:
                    raise Fault("bad LDX mode %#x" % code, pc=pc - 1)
                continue
            if cls == BPF_STX or cls == BPF_ST:
                mode = code & 0xe0
                size = SIZE_BYTES[code & 0x18]
                if mode == BPF_MEM:
                    a = (regs[dst] + off) & M64
                    v = regs[src] if cls == BPF_STX else imm & M64
                    STORE[size](pages[a >> PAGE_SHIFT], a & PAGE_MASK, v & ((1 << (size * 8)) - 1))
                    continue
                if mode == BPF_ATOMIC and cls == BPF_STX:
                    if imm == BPF_LOAD_ACQ:  # dst = load_acquire(src + off)
                        a = (regs[src] + off) & M64
                        regs[dst] = LOAD[size](pages[a >> PAGE_SHIFT], a & PAGE_MASK)[0]
                        continue
                    a = (regs[dst] + off) & M64
                    try:
                        _atomic(pages[a >> PAGE_SHIFT], a & PAGE_MASK, size, imm, src, regs, pc - 1)
                    except ACCESS_ERRORS as e:
                        raise Fault("bad atomic access at pc %d: %s" % (pc - 1, e), a, pc - 1) from None
                    continue
                if code == BPF_ST | 0xc0:  # BPF_NOSPEC: a speculation barrier, nothing to do here
                    continue
                raise Fault("bad store mode %#x" % code, pc=pc - 1)
            if cls == BPF_LD:
                mode = code & 0xe0
                size = code & 0x18
                if mode == BPF_IMM and size == BPF_DW:
                    if src == 0:
                        regs[dst] = (imm & M32) | ((insns[pc].imm & M32) << 32)
                    else:
                        regs[dst] = run.ld_imm64(image, pc - 1)
                    pc += 1
                    continue
                if mode in (BPF_ABS, BPF_IND) and size != BPF_DW:
                    k = imm if mode == BPF_ABS else s32(regs[src] + imm)
                    v = bpf_skb_load_helper(run.skb, k, SIZE_BYTES[size])
                    if v is None:  # the patched code: r0 = 0; exit
                        regs[0] = 0
                        if not frames:
                            return 0
                        image, insns, pc, saved, may_goto = frames.pop()
                        n = len(insns)
                        saved[0] = 0
                        regs = saved
                        depth -= 1
                        continue
                    regs[0] = v
                    continue
            raise Fault("bad opcode %#04x" % code, pc=pc - 1)
    except Fault as e:
        if e.pc is None:
            e.pc = pc - 1
        raise
    except ACCESS_ERRORS as e:
        if e.__traceback__.tb_next is not None:  # raised inside a helper: a bug there, not a bad access
            raise
        raise Fault("bad memory access at pc %d: %s" % (pc - 1, e), pc=pc - 1) from None
    finally:
        run.insn_count += executed


def _atomic(page, o, size, imm, src, regs, pc):
    """STX | ATOMIC at offset ``o`` of ``page`` (a page table entry): the read-modify-write ops, xchg,
    cmpxchg, store-release."""
    mask = (1 << (size * 8)) - 1
    store = STORE[size]
    if imm == BPF_STORE_REL:  # *(dst + off) = src
        store(page, o, regs[src] & mask)
        return
    if size not in (4, 8):
        raise Fault("atomic op %#x on %d bytes" % (imm, size), pc=pc)
    old = LOAD[size](page, o)[0]
    if imm == BPF_XCHG:
        store(page, o, regs[src] & mask)
        regs[src] = old
    elif imm == BPF_CMPXCHG:
        if old == regs[0] & mask:
            store(page, o, regs[src] & mask)
        regs[0] = old
    elif imm & ~BPF_FETCH in ATOMIC_RMW_OPS:
        store(page, o, atomic_rmw(imm, old, regs[src], mask))
        if imm & BPF_FETCH:
            regs[src] = old
    else:
        raise Fault("bad atomic op %#x" % imm, pc=pc)
