"""Register state (struct bpf_reg_state) and the scalar bounds the verifier tracks.

A register has a type (``enum bpf_reg_type``: a base type plus flag bits), a fixed offset ``off`` for
pointers, and a variable part described five ways at once: a tnum ``var`` and the signed/unsigned 64-bit
and 32-bit ranges ``smin..smax``, ``umin..umax``, ``s32min..s32max``, ``u32min..u32max``. The functions
here keep these five views consistent the way kernel/bpf/verifier.c does (``reg_bounds_sync``: bounds from
the tnum, signed from unsigned and back, 32-bit from 64-bit and back, then the tnum from the bounds).

Signed values are Python ints in their signed range, unsigned ones in their unsigned range.
"""
from . import tnum

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1
S64_MIN = -(1 << 63)
S64_MAX = (1 << 63) - 1
S32_MIN = -(1 << 31)
S32_MAX = (1 << 31) - 1
SB = 1 << 31
SB64 = 1 << 63

# ---- enum bpf_reg_type: base types ----
NOT_INIT = 0
SCALAR_VALUE = 1
PTR_TO_CTX = 2
CONST_PTR_TO_MAP = 3
PTR_TO_MAP_VALUE = 4
PTR_TO_MAP_KEY = 5
PTR_TO_STACK = 6
PTR_TO_PACKET_META = 7
PTR_TO_PACKET = 8
PTR_TO_PACKET_END = 9
PTR_TO_FLOW_KEYS = 10
PTR_TO_SOCKET = 11
PTR_TO_SOCK_COMMON = 12
PTR_TO_TCP_SOCK = 13
PTR_TO_TP_BUFFER = 14
PTR_TO_XDP_SOCK = 15
PTR_TO_BTF_ID = 16
PTR_TO_MEM = 17
PTR_TO_ARENA = 18
PTR_TO_BUF = 19
PTR_TO_FUNC = 20
CONST_PTR_TO_DYNPTR = 21

BASE_TYPE_MASK = 0xff
# ---- enum bpf_type_flag ----
PTR_MAYBE_NULL = 1 << 8
MEM_RDONLY = 1 << 9
MEM_RINGBUF = 1 << 10
MEM_USER = 1 << 11
MEM_PERCPU = 1 << 12
OBJ_RELEASE = 1 << 13
PTR_UNTRUSTED = 1 << 14
MEM_UNINIT = 1 << 15
DYNPTR_TYPE_LOCAL = 1 << 16
DYNPTR_TYPE_RINGBUF = 1 << 17
MEM_FIXED_SIZE = 1 << 18
MEM_ALLOC = 1 << 19
PTR_TRUSTED = 1 << 20
MEM_RCU = 1 << 21
NON_OWN_REF = 1 << 22
DYNPTR_TYPE_SKB = 1 << 23
DYNPTR_TYPE_XDP = 1 << 24
MEM_ALIGNED = 1 << 25
MEM_WRITE = 1 << 26
DYNPTR_TYPE_FLAG_MASK = DYNPTR_TYPE_LOCAL | DYNPTR_TYPE_RINGBUF | DYNPTR_TYPE_SKB | DYNPTR_TYPE_XDP

BPF_ADD_CONST = 1 << 31   # id flag: this scalar is a linked one plus a constant (reg.off)

# liveness
REG_LIVE_NONE = 0
REG_LIVE_READ32 = 1
REG_LIVE_READ64 = 2
REG_LIVE_READ = REG_LIVE_READ32 | REG_LIVE_READ64
REG_LIVE_WRITTEN = 4
REG_LIVE_DONE = 8

_BASE_STR = {
    NOT_INIT: "?", SCALAR_VALUE: "scalar", PTR_TO_CTX: "ctx", CONST_PTR_TO_MAP: "map_ptr",
    PTR_TO_MAP_VALUE: "map_value", PTR_TO_STACK: "fp", PTR_TO_PACKET: "pkt", PTR_TO_PACKET_META: "pkt_meta",
    PTR_TO_PACKET_END: "pkt_end", PTR_TO_FLOW_KEYS: "flow_keys", PTR_TO_SOCKET: "sock",
    PTR_TO_SOCK_COMMON: "sock_common", PTR_TO_TCP_SOCK: "tcp_sock", PTR_TO_TP_BUFFER: "tp_buffer",
    PTR_TO_XDP_SOCK: "xdp_sock", PTR_TO_BTF_ID: "ptr_", PTR_TO_MEM: "mem", PTR_TO_ARENA: "arena",
    PTR_TO_BUF: "buf", PTR_TO_FUNC: "func", PTR_TO_MAP_KEY: "map_key", CONST_PTR_TO_DYNPTR: "dynptr_ptr",
}


def base_type(t):
    return t & BASE_TYPE_MASK


def type_may_be_null(t):
    return bool(t & PTR_MAYBE_NULL)


def reg_type_str(t):
    """reg_type_str: 'map_value_or_null', 'rdonly_mem', 'trusted_ptr_', ..."""
    b = t & BASE_TYPE_MASK
    post = ""
    if t & PTR_MAYBE_NULL:
        post = "or_null_" if b == PTR_TO_BTF_ID else "_or_null"
    pre = "".join(p for f, p in ((MEM_RDONLY, "rdonly_"), (MEM_RINGBUF, "ringbuf_"), (MEM_USER, "user_"),
                                 (MEM_PERCPU, "percpu_"), (MEM_RCU, "rcu_"), (PTR_UNTRUSTED, "untrusted_"),
                                 (PTR_TRUSTED, "trusted_")) if t & f)
    return pre + _BASE_STR.get(b, "?") + post


def type_is_pkt_pointer(t):
    t = t & BASE_TYPE_MASK
    return t == PTR_TO_PACKET or t == PTR_TO_PACKET_META


def type_is_sk_pointer(t):
    return t in (PTR_TO_SOCKET, PTR_TO_SOCK_COMMON, PTR_TO_TCP_SOCK, PTR_TO_XDP_SOCK)


def s64(v):
    v &= U64
    return v - (1 << 64) if v >> 63 else v


def s32(v):
    v &= U32
    return v - (1 << 32) if v >> 31 else v


def u64(v):
    return v & U64


def u32(v):
    return v & U32


class Reg:
    """struct bpf_reg_state. ``map`` is the map of map pointers; ``btf_id`` names the BTF type of
    PTR_TO_BTF_ID (the emulator keeps the type name); ``parent`` links to the same register of the last
    checkpoint (liveness)."""

    __slots__ = ("type", "off", "vv", "vm", "smin", "smax", "umin", "umax", "s32min", "s32max", "u32min",
                 "u32max", "id", "ref_obj_id", "map", "map_uid", "range", "mem_size", "btf", "btf_id", "subprogno",
                 "dynptr_type", "dynptr_first", "dynptr_id", "iter", "frameno", "subreg_def", "live",
                 "precise", "parent")

    def __init__(self):
        self.type = NOT_INIT
        self.off = 0
        self.vv = 0
        self.vm = U64
        self.smin = S64_MIN
        self.smax = S64_MAX
        self.umin = 0
        self.umax = U64
        self.s32min = S32_MIN
        self.s32max = S32_MAX
        self.u32min = 0
        self.u32max = U32
        self.id = 0
        self.ref_obj_id = 0
        self.map = None
        self.map_uid = 0
        self.range = 0
        self.mem_size = 0
        self.btf = None
        self.btf_id = 0
        self.subprogno = 0
        self.dynptr_type = None
        self.dynptr_first = False
        self.dynptr_id = 0
        self.iter = None
        self.frameno = 0
        self.subreg_def = 0
        self.live = 0
        self.precise = False
        self.parent = None

    def copy(self):
        r = Reg.__new__(Reg)
        r.type = self.type
        r.off = self.off
        r.vv = self.vv
        r.vm = self.vm
        r.smin = self.smin
        r.smax = self.smax
        r.umin = self.umin
        r.umax = self.umax
        r.s32min = self.s32min
        r.s32max = self.s32max
        r.u32min = self.u32min
        r.u32max = self.u32max
        r.id = self.id
        r.ref_obj_id = self.ref_obj_id
        r.map = self.map
        r.map_uid = self.map_uid
        r.range = self.range
        r.mem_size = self.mem_size
        r.btf = self.btf
        r.btf_id = self.btf_id
        r.subprogno = self.subprogno
        r.dynptr_type = self.dynptr_type
        r.dynptr_first = self.dynptr_first
        r.dynptr_id = self.dynptr_id
        r.iter = self.iter
        r.frameno = self.frameno
        r.subreg_def = self.subreg_def
        r.live = self.live
        r.precise = self.precise
        r.parent = self.parent
        return r

    def assign(self, o):
        """*self = *o, keeping nothing of self (struct assignment)."""
        self.type = o.type
        self.off = o.off
        self.vv = o.vv
        self.vm = o.vm
        self.smin = o.smin
        self.smax = o.smax
        self.umin = o.umin
        self.umax = o.umax
        self.s32min = o.s32min
        self.s32max = o.s32max
        self.u32min = o.u32min
        self.u32max = o.u32max
        self.id = o.id
        self.ref_obj_id = o.ref_obj_id
        self.map = o.map
        self.map_uid = o.map_uid
        self.range = o.range
        self.mem_size = o.mem_size
        self.btf = o.btf
        self.btf_id = o.btf_id
        self.subprogno = o.subprogno
        self.dynptr_type = o.dynptr_type
        self.dynptr_first = o.dynptr_first
        self.dynptr_id = o.dynptr_id
        self.iter = o.iter
        self.frameno = o.frameno
        self.subreg_def = o.subreg_def
        self.live = o.live
        self.precise = o.precise
        self.parent = o.parent

    def copy_state_from(self, o):
        """copy_register_state: everything but the liveness links."""
        parent, live = self.parent, self.live
        self.assign(o)
        self.parent = parent
        self.live = live

    # -- views --
    @property
    def var_off(self):
        return (self.vv, self.vm)

    @var_off.setter
    def var_off(self, t):
        self.vv, self.vm = t

    def is_const(self):
        return self.vm == 0

    def is_null(self):
        """register_is_null: a known zero scalar."""
        return self.type == SCALAR_VALUE and self.vm == 0 and self.vv == 0

    def raw_eq(self, o):
        """The bytes before 'id' compare equal (regs_exact's memcmp part)."""
        return (self.type == o.type and self.off == o.off and self.vv == o.vv and self.vm == o.vm and
                self.smin == o.smin and self.smax == o.smax and self.umin == o.umin and self.umax == o.umax and
                self.s32min == o.s32min and self.s32max == o.s32max and self.u32min == o.u32min and
                self.u32max == o.u32max and self.map is o.map and self.map_uid == o.map_uid and
                self.range == o.range and self.mem_size == o.mem_size and self.btf_id == o.btf_id and self.btf is o.btf and
                self.subprogno == o.subprogno and self.dynptr_type == o.dynptr_type and
                self.dynptr_first == o.dynptr_first)

    def __repr__(self):
        return "Reg(%s)" % format_reg(self, 0)


# ---- marking (the __mark_reg_* family) ----

def clear_raw(reg):
    reg.off = 0
    reg.map = None
    reg.map_uid = 0
    reg.range = 0
    reg.mem_size = 0
    reg.btf = None
    reg.btf_id = 0
    reg.subprogno = 0
    reg.dynptr_type = None
    reg.dynptr_first = False
    reg.dynptr_id = 0
    reg.iter = None


def set_known(reg, imm):
    """___mark_reg_known: every view is the constant imm (u64)."""
    imm &= U64
    reg.vv = imm
    reg.vm = 0
    sv = imm - (1 << 64) if imm >> 63 else imm
    reg.smin = reg.smax = sv
    reg.umin = reg.umax = imm
    lo = imm & U32
    reg.u32min = reg.u32max = lo
    reg.s32min = reg.s32max = lo - (1 << 32) if lo >> 31 else lo


def mark_known(reg, imm):
    """__mark_reg_known: clears off and the pointer info, id and ref_obj_id, then set_known."""
    clear_raw(reg)
    reg.id = 0
    reg.ref_obj_id = 0
    set_known(reg, imm)


def mark_known32(reg, imm):
    """__mark_reg32_known."""
    reg.vv, reg.vm = tnum.const_subreg((reg.vv, reg.vm), imm)
    lo = imm & U32
    reg.u32min = reg.u32max = lo
    reg.s32min = reg.s32max = lo - (1 << 32) if lo >> 31 else lo


def mark_unbounded(reg):
    reg.smin = S64_MIN
    reg.smax = S64_MAX
    reg.umin = 0
    reg.umax = U64
    reg.s32min = S32_MIN
    reg.s32max = S32_MAX
    reg.u32min = 0
    reg.u32max = U32


def mark_64_unbounded(reg):
    reg.smin = S64_MIN
    reg.smax = S64_MAX
    reg.umin = 0
    reg.umax = U64


def mark_32_unbounded(reg):
    reg.s32min = S32_MIN
    reg.s32max = S32_MAX
    reg.u32min = 0
    reg.u32max = U32


def mark_unknown(reg, precise=False):
    """__mark_reg_unknown: an unknown scalar."""
    clear_raw(reg)
    reg.type = SCALAR_VALUE
    reg.id = 0
    reg.ref_obj_id = 0
    reg.vv = 0
    reg.vm = U64
    reg.frameno = 0
    reg.precise = precise
    reg.smin = S64_MIN
    reg.smax = S64_MAX
    reg.umin = 0
    reg.umax = U64
    reg.s32min = S32_MIN
    reg.s32max = S32_MAX
    reg.u32min = 0
    reg.u32max = U32


def mark_not_init(reg, precise=False):
    mark_unknown(reg, precise)
    reg.type = NOT_INIT


def mark_known_zero(reg):
    """mark_reg_known_zero: a pointer base (off 0, var_off 0); the caller sets type."""
    mark_known(reg, 0)


def mark_const_zero(reg, precise=False):
    mark_known(reg, 0)
    reg.type = SCALAR_VALUE
    reg.precise = precise


# ---- bounds ----

def update_reg32_bounds(reg):
    v = reg.vv & U32
    m = reg.vm & U32
    smin = s32(v | (m & 0x80000000))
    if smin > reg.s32min:
        reg.s32min = smin
    smax = s32(v | (m & 0x7fffffff))
    if smax < reg.s32max:
        reg.s32max = smax
    if v > reg.u32min:
        reg.u32min = v
    if (v | m) < reg.u32max:
        reg.u32max = v | m


def update_reg64_bounds(reg):
    v = reg.vv
    m = reg.vm
    smin = s64(v | (m & (1 << 63)))
    if smin > reg.smin:
        reg.smin = smin
    smax = s64(v | (m & S64_MAX))
    if smax < reg.smax:
        reg.smax = smax
    if v > reg.umin:
        reg.umin = v
    if (v | m) < reg.umax:
        reg.umax = v | m
    if m:
        # the u64 range and the tnum may share a single value
        umin, umax = reg.umin, reg.umax
        tmax = v | m
        nxt = tnum.step((v, m), umin)
        in_t = (umin & ~m) == v
        if in_t and nxt > umax:
            set_known(reg, umin)
        elif not in_t and nxt == tmax:
            set_known(reg, tmax)
        elif not in_t and nxt <= umax and tnum.step((v, m), nxt) > umax:
            set_known(reg, nxt)


def update_reg_bounds(reg):
    update_reg32_bounds(reg)
    update_reg64_bounds(reg)


def reg32_deduce_bounds(reg):
    umin, umax, smin, smax = reg.umin, reg.umax, reg.smin, reg.smax
    u32min, u32max, s32min, s32max = reg.u32min, reg.u32max, reg.s32min, reg.s32max
    # (x & U32 ^ SB) - SB is the s32 of x; SB the 32-bit sign bit
    if (umin >> 32) == (umax >> 32):
        lo, hi = umin & U32, umax & U32
        if lo > u32min:
            u32min = lo
        if hi < u32max:
            u32max = hi
        slo, shi = (lo ^ SB) - SB, (hi ^ SB) - SB
        if slo <= shi:
            if slo > s32min:
                s32min = slo
            if shi < s32max:
                s32max = shi
    if (smin >> 32) == (smax >> 32):
        lo, hi = smin & U32, smax & U32
        if lo <= hi:
            if lo > u32min:
                u32min = lo
            if hi < u32max:
                u32max = hi
        slo, shi = (lo ^ SB) - SB, (hi ^ SB) - SB
        if slo <= shi:
            if slo > s32min:
                s32min = slo
            if shi < s32max:
                s32max = shi
    slo, shi = ((umin & U32) ^ SB) - SB, ((umax & U32) ^ SB) - SB
    if (((umin >> 32) + 1) & U32) == (umax >> 32) & U32 and slo < 0 and shi >= 0:
        if slo > s32min:
            s32min = slo
        if shi < s32max:
            s32max = shi
    slo, shi = ((smin & U32) ^ SB) - SB, ((smax & U32) ^ SB) - SB
    if ((((smin & U64) >> 32) + 1) & U32) == ((smax & U64) >> 32) & U32 and slo < 0 and shi >= 0:
        if slo > s32min:
            s32min = slo
        if shi < s32max:
            s32max = shi
    slo, shi = (u32min ^ SB) - SB, (u32max ^ SB) - SB
    if slo <= shi:
        if slo > s32min:
            s32min = slo
        if shi < s32max:
            s32max = shi
    a, b = s32min & U32, s32max & U32
    if a <= b:
        if a > u32min:
            u32min = a
        if b < u32max:
            u32max = b
    else:
        if u32max < a:
            s32min = (u32min ^ SB) - SB
            if b < u32max:
                u32max = b
        elif b < u32min:
            s32max = (u32max ^ SB) - SB
            if a > u32min:
                u32min = a
    reg.u32min, reg.u32max, reg.s32min, reg.s32max = u32min, u32max, s32min, s32max


def reg64_deduce_bounds(reg):
    umin, umax, smin, smax = reg.umin, reg.umax, reg.smin, reg.smax
    a, b = (umin ^ SB64) - SB64, (umax ^ SB64) - SB64
    if a <= b:
        if a > smin:
            smin = a
        if b < smax:
            smax = b
    a, b = smin & U64, smax & U64
    if a <= b:
        if a > umin:
            umin = a
        if b < umax:
            umax = b
    else:
        if umax < a:
            smin = (umin ^ SB64) - SB64
            if b < umax:
                umax = b
        elif b < umin:
            smax = (umax ^ SB64) - SB64
            if a > umin:
                umin = a
    reg.umin, reg.umax, reg.smin, reg.smax = umin, umax, smin, smax


def reg_deduce_mixed_bounds(reg):
    hi_mask = U64 ^ U32
    umin, umax, smin, smax = reg.umin, reg.umax, reg.smin, reg.smax
    u32min, u32max = reg.u32min, reg.u32max
    new = (umin & hi_mask) | u32min
    if new > umin:
        umin = new
    new = (umax & hi_mask) | u32max
    if new < umax:
        umax = new
    new = (((smin & hi_mask) | u32min) ^ SB64) - SB64
    if new > smin:
        smin = new
    new = (((smax & hi_mask) | u32max) ^ SB64) - SB64
    if new < smax:
        smax = new
    a, b = reg.s32min & U32, reg.s32max & U32
    if a <= b:
        new = (umin & hi_mask) | a
        if new > umin:
            umin = new
        new = (umax & hi_mask) | b
        if new < umax:
            umax = new
        new = (((smin & hi_mask) | a) ^ SB64) - SB64
        if new > smin:
            smin = new
        new = (((smax & hi_mask) | b) ^ SB64) - SB64
        if new < smax:
            smax = new
    reg.umin, reg.umax, reg.smin, reg.smax = umin, umax, smin, smax
    if reg.s32min >= 0 and smin >= S32_MIN and smax <= S32_MAX:
        reg.smin = reg.s32min
        reg.smax = reg.s32max
        reg.umin = reg.s32min & U64
        reg.umax = reg.s32max & U64
        reg.vv, reg.vm = tnum.intersect((reg.vv, reg.vm), tnum.trange(reg.smin & U64, reg.smax & U64))


def reg_deduce_bounds(reg):
    reg32_deduce_bounds(reg)
    reg64_deduce_bounds(reg)
    reg_deduce_mixed_bounds(reg)


def reg_bound_offset(reg):
    var64 = tnum.intersect((reg.vv, reg.vm), tnum.trange(reg.umin, reg.umax))
    var32 = tnum.intersect(tnum.subreg(var64), tnum.trange(reg.u32min, reg.u32max))
    reg.vv, reg.vm = tnum.tor(tnum.clear_subreg(var64), var32)


def reg_bounds_sync(reg):
    if reg.vm == 0:
        # a constant inside its own bounds: every view is that constant (what the general path computes)
        v = reg.vv
        sv = (v ^ SB64) - SB64
        lo = v & U32
        slo = (lo ^ SB) - SB
        if (reg.umin <= v <= reg.umax and reg.smin <= sv <= reg.smax and reg.u32min <= lo <= reg.u32max and
                reg.s32min <= slo <= reg.s32max):
            reg.umin = reg.umax = v
            reg.smin = reg.smax = sv
            reg.u32min = reg.u32max = lo
            reg.s32min = reg.s32max = slo
            return
    update_reg_bounds(reg)
    reg_deduce_bounds(reg)
    reg_deduce_bounds(reg)
    reg_deduce_bounds(reg)
    reg_bound_offset(reg)
    update_reg_bounds(reg)


def bounds_invariant_violation(reg):
    """reg_bounds_sanity_check's test: the message naming what is out of sync, or None."""
    if reg.umin > reg.umax or reg.smin > reg.smax or reg.u32min > reg.u32max or reg.s32min > reg.s32max:
        return "range bounds violation"
    if reg.vm == 0:
        uval = reg.vv
        sval = s64(uval)
        if reg.umin != uval or reg.umax != uval or reg.smin != sval or reg.smax != sval:
            return "const tnum out of sync with range bounds"
    if not (reg.vm & U32):
        uval32 = reg.vv & U32
        sval32 = s32(uval32)
        if reg.u32min != uval32 or reg.u32max != uval32 or reg.s32min != sval32 or reg.s32max != sval32:
            return "const subreg tnum out of sync with range bounds"
    return None


def reg_assign_32_into_64(reg):
    reg.umin = reg.u32min
    reg.umax = reg.u32max
    if 0 <= reg.s32min <= S32_MAX and 0 <= reg.s32max <= S32_MAX:
        reg.smin = reg.s32min
        reg.smax = reg.s32max
    else:
        reg.smin = 0
        reg.smax = U32


def zext_32_to_64(reg):
    reg.vv &= U32
    reg.vm &= U32
    reg_assign_32_into_64(reg)


def range_within(old, cur):
    return (old.umin <= cur.umin and old.umax >= cur.umax and old.smin <= cur.smin and
            old.smax >= cur.smax and old.u32min <= cur.u32min and old.u32max >= cur.u32max and
            old.s32min <= cur.s32min and old.s32max >= cur.s32max)


def reg_not_null(reg):
    """reg_not_null: pointer types whose base is never NULL (and whose offset cannot wrap it to zero)."""
    t = reg.type
    if t & PTR_MAYBE_NULL:
        return False
    if reg.smin <= -(1 << 29) or reg.smax >= (1 << 29):
        return False
    b = t & BASE_TYPE_MASK
    if b == PTR_TO_BTF_ID:
        if reg.ref_obj_id:
            return True
        flags = t & ~BASE_TYPE_MASK
        return bool(flags & (PTR_TRUSTED | MEM_ALLOC | NON_OWN_REF)) and not flags & ~(PTR_TRUSTED | MEM_ALLOC |
                                                                                     NON_OWN_REF)
    return b in (PTR_TO_SOCKET, PTR_TO_TCP_SOCK, PTR_TO_XDP_SOCK, PTR_TO_BUF, PTR_TO_MAP_VALUE, PTR_TO_MAP_KEY,
                 PTR_TO_SOCK_COMMON, PTR_TO_MEM, CONST_PTR_TO_MAP)


# ---- printing (log.c's print_reg_state) ----

def btf_type_name(reg):
    """The name of the BTF type a PTR_TO_BTF_ID register points to ('' when unknown)."""
    b = reg.btf
    if b is None:
        return ""
    return b.name(reg.btf_id)


def _unum(v):
    return "%d" % v if v <= 0xffff else "%#x" % v


def _snum(v):
    return "%d" % v if -32768 <= v <= 32767 else "%#x" % (v & U64)


def _scalar_ranges(reg, parts):
    mm = [["smin", reg.smin & U64, reg.smin == S64_MIN],
          ["smax", reg.smax & U64, reg.smax == S64_MAX],
          ["umin", reg.umin, reg.umin == 0],
          ["umax", reg.umax, reg.umax == U64],
          ["smin32", (reg.s32min & U64) if -32768 <= reg.s32min <= 32767 else reg.s32min & U32,
           reg.s32min == S32_MIN],
          ["smax32", (reg.s32max & U64) if -32768 <= reg.s32max <= 32767 else reg.s32max & U32,
           reg.s32max == S32_MAX],
          ["umin32", reg.u32min, reg.u32min == 0],
          ["umax32", reg.u32max, reg.u32max == U32]]
    for i, m1 in enumerate(mm):
        if m1[2]:
            continue
        neg1 = m1[0][0] == "s" and s64(m1[1]) < 0
        text = m1[0] + "="
        for j in range(i + 2, len(mm), 2):
            m2 = mm[j]
            if m2[2] or m2[1] != m1[1]:
                continue
            neg2 = m2[0][0] == "s" and s64(m2[1]) < 0
            if neg2 != neg1:
                continue
            m2[2] = True
            text += m2[0] + "="
        text += _snum(s64(m1[1])) if m1[0][0] == "s" else _unum(m1[1])
        parts.append(text)


def format_reg(reg, frameno, btf_name=None):
    """The text print_reg_state writes for one register (after 'R1=')."""
    t = reg.type
    out = ""
    if t == SCALAR_VALUE and reg.precise:
        out = "P"
    if t == SCALAR_VALUE and reg.vm == 0:
        return out + _snum(s64(reg.vv))
    out += reg_type_str(t)
    if t == PTR_TO_ARENA:
        return out
    if t == PTR_TO_STACK:
        if frameno != reg.frameno:
            out += "[%d]" % reg.frameno
        if reg.vm == 0:
            return out + _snum(s64(reg.vv + reg.off))
    b = t & BASE_TYPE_MASK
    if b == PTR_TO_BTF_ID:
        out += btf_type_name(reg)
    parts = []
    if reg.id:
        parts.append("id=%d" % (reg.id & ~BPF_ADD_CONST))
    add_const = "%+d" % reg.off if reg.id & BPF_ADD_CONST else ""
    if reg.ref_obj_id:
        parts.append("ref_obj_id=%d" % reg.ref_obj_id)
    if t & NON_OWN_REF:
        parts.append("non_own_ref")
    if b in (CONST_PTR_TO_MAP, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE) and reg.map is not None:
        name = getattr(reg.map, "name", b"") or b""
        if isinstance(name, bytes):
            name = name.split(b"\0", 1)[0].decode("latin1")
        if name:
            parts.append("map=%s" % name)
        parts.append("ks=%d,vs=%d" % (reg.map.key_size, reg.map.value_size))
    if t != SCALAR_VALUE and reg.off:
        parts.append("off=" + _snum(reg.off))
    if type_is_pkt_pointer(t):
        parts.append("r=" + _unum(reg.range & U64 if reg.range >= 0 else reg.range & U64))
    if b == PTR_TO_MEM:
        parts.append("sz=" + _unum(reg.mem_size))
    if t == CONST_PTR_TO_DYNPTR:
        parts.append("type=%s" % (reg.dynptr_type or "<invalid>"))
    if reg.vm == 0:
        if reg.vv:
            parts.append("imm=" + _snum(s64(reg.vv)))
    else:
        _scalar_ranges(reg, parts)
        if reg.vm != U64:
            parts.append("var_off=" + tnum.strn((reg.vv, reg.vm)))
    # the id line carries its '+off' right after it
    text = ",".join(parts)
    if add_const and parts and parts[0].startswith("id="):
        text = parts[0] + add_const + ("," + ",".join(parts[1:]) if len(parts) > 1 else "")
    elif add_const:
        text = add_const + text
    return out + "(" + text + ")"
