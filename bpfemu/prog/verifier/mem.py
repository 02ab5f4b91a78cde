"""Memory access checks per pointer type (check_mem_access and friends), and the stack's spills and fills.

Loads, stores and atomics reach :meth:`MemMixin.check_mem_access` with the base register, the offset and
size; each pointer type has its rule: map values and keys (bounds incl. the variable part, special
fields, read-only/write-only maps), the context (the program type's ``is_valid_access``), packets (the
range proven by comparisons with ``data_end``), the stack (slot types, spilled registers, variable
offsets), sockets, flow keys, buffers.
"""
import errno
import weakref

from ..insn import (BPF_ADD, BPF_AND, BPF_ATOMIC, BPF_CMPXCHG, BPF_DW, BPF_FETCH, BPF_LOAD_ACQ, BPF_MEM,
                    BPF_MEMSX, BPF_OR, BPF_ST, BPF_STORE_REL, BPF_W, BPF_XCHG, BPF_XOR)
from ... import uapi
from . import tnum
from .alu import BPF_MAX_VAR_OFF, DST_OP, DST_OP_NO_MARK, SRC_OP, coerce_reg_to_size, coerce_reg_to_size_sx, \
    get_reg_width
from .regs import (CONST_PTR_TO_MAP, MEM_RDONLY, NOT_INIT, PTR_MAYBE_NULL, PTR_TO_ARENA, PTR_TO_BTF_ID,
                   PTR_TO_BUF, PTR_TO_CTX, PTR_TO_FLOW_KEYS, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_MEM,
                   PTR_TO_PACKET, PTR_TO_PACKET_END, PTR_TO_PACKET_META, PTR_TO_SOCK_COMMON, PTR_TO_SOCKET,
                   PTR_TO_STACK, PTR_TO_TCP_SOCK, PTR_TO_TP_BUFFER, PTR_TO_XDP_SOCK, REG_LIVE_READ64,
                   REG_LIVE_WRITTEN, S32_MAX, S32_MIN, S64_MIN, SCALAR_VALUE, U64, Reg, base_type,
                   mark_const_zero, mark_known, mark_known_zero, reg_type_str, s64, type_is_pkt_pointer,
                   type_is_sk_pointer, MEM_ALLOC, MEM_PERCPU, MEM_RCU, MEM_USER, NON_OWN_REF, PTR_TRUSTED,
                   PTR_UNTRUSTED, btf_type_name)
from .btf import (BTF_KIND_STRUCT, WALK_PTR, WALK_SCALAR, WALK_STRUCT, btf_nested_type_is_trusted,
                  btf_struct_ids_match, btf_struct_walk)
from .state import (BPF_REG_SIZE, STACK_DYNPTR, STACK_INVALID, STACK_ITER, STACK_MISC, STACK_SPILL,
                    STACK_ZERO, StackSlot)

BPF_READ, BPF_WRITE = 1, 2
ACCESS_DIRECT, ACCESS_HELPER = 1, 2
MAX_BPF_STACK = 512
BPF_F_RDONLY_PROG = uapi.BPF_F_RDONLY_PROG
BPF_F_WRONLY_PROG = uapi.BPF_F_WRONLY_PROG
MAX_PACKET_OFF = 0xffff
SIZE_BYTES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}

_SPILLABLE = frozenset((PTR_TO_MAP_VALUE, PTR_TO_STACK, PTR_TO_CTX, PTR_TO_PACKET, PTR_TO_PACKET_META,
                        PTR_TO_PACKET_END, PTR_TO_FLOW_KEYS, CONST_PTR_TO_MAP, PTR_TO_SOCKET, PTR_TO_SOCK_COMMON,
                        PTR_TO_TCP_SOCK, PTR_TO_XDP_SOCK, PTR_TO_BTF_ID, PTR_TO_BUF, PTR_TO_MEM, 20,
                        PTR_TO_MAP_KEY, PTR_TO_ARENA))

_ALIGN_DESC = {PTR_TO_FLOW_KEYS: "flow keys ", PTR_TO_MAP_KEY: "key ", PTR_TO_MAP_VALUE: "value ",
               PTR_TO_CTX: "context ", PTR_TO_STACK: "stack ", PTR_TO_SOCKET: "sock ",
               PTR_TO_SOCK_COMMON: "sock_common ", PTR_TO_TCP_SOCK: "tcp_sock ", PTR_TO_XDP_SOCK: "xdp_sock "}

FIELD_NAMES = {"spin_lock": "bpf_spin_lock", "timer": "bpf_timer", "wq": "bpf_wq", "kptr": "kptr",
               "kptr_ref": "kptr", "kptr_percpu": "percpu_kptr", "uptr": "uptr", "list_head": "bpf_list_head",
               "list_node": "bpf_list_node", "rb_root": "bpf_rb_root", "rb_node": "bpf_rb_node",
               "refcount": "bpf_refcount", "task_work": "bpf_task_work", "res_spin_lock": "bpf_res_spin_lock"}


# objects whose referenced kptrs are RCU-protected (rcu_protected_types)
RCU_PROTECTED_TYPES = frozenset(("prog_test_ref_kfunc", "cgroup", "bpf_cpumask", "task_struct", "bpf_crypto_ctx"))


def is_spillable_regtype(t):
    return (t & 0xff) in _SPILLABLE


def stack_narrow_access_ok(off, fill_size, spill_size):
    """bpf_stack_narrow_access_ok (little-endian): a narrow fill must read the spill's low bytes, i.e. start
    at the slot's start."""
    return not off % BPF_REG_SIZE


class MemMixin:

    # -- register operand checks --
    def check_reg_arg(self, regno, t):
        """check_reg_arg: SRC_OP needs an initialized register; DST_OP(_NO_MARK) may not be R10."""
        if regno >= 11:
            self.fail(errno.EINVAL, "R%d is invalid\n" % regno)
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        reg = regs[regno]
        if self.log_level:
            self.scratched.add(regno)
        if t == SRC_OP:
            if reg.type == NOT_INIT:
                self.fail(errno.EACCES, "R%d !read_ok\n" % regno)
            if regno == 10:
                return
            self.mark_reg_read(reg, REG_LIVE_READ64)
        else:
            if regno == 10:
                self.fail(errno.EACCES, "frame pointer is read only\n")
            reg.live |= REG_LIVE_WRITTEN
            if t == DST_OP:
                self.mark_reg_unknown(reg)

    def mark_reg_read(self, reg, flag):
        parent = reg.parent
        state = reg
        while parent is not None:
            if state.live & REG_LIVE_WRITTEN:
                break
            if parent.live & REG_LIVE_READ64 or (parent.live & flag) == flag:
                break
            parent.live |= flag
            state = parent
            parent = state.parent

    def is_pointer_value(self, regno):
        if self.allow_ptr_leaks:
            return False
        return self.cur_state.frame[self.cur_state.curframe].regs[regno].type != SCALAR_VALUE

    def reg_func(self, reg):
        """func(): the frame a stack pointer points into."""
        return self.cur_state.frame[reg.frameno]

    # -- load / store / atomic instructions --
    def check_load_mem(self, insn, strict_once, is_ldsx, allow_trust_mismatch, ctx):
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        self.check_reg_arg(insn[2], SRC_OP)
        self.check_reg_arg(insn[1], DST_OP_NO_MARK)
        src_type = regs[insn[2]].type
        self.check_mem_access(insn[2], insn[3], insn[0] & 0x18, BPF_READ, insn[1], strict_once, is_ldsx)
        self.save_aux_ptr_type(src_type, allow_trust_mismatch)
        self.reg_bounds_sanity_check(regs[insn[1]], ctx)

    def check_store_reg(self, insn, strict_once):
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        self.check_reg_arg(insn[2], SRC_OP)
        self.check_reg_arg(insn[1], SRC_OP)
        dst_type = regs[insn[1]].type
        self.check_mem_access(insn[1], insn[3], insn[0] & 0x18, BPF_WRITE, insn[2], strict_once, False)
        self.save_aux_ptr_type(dst_type, False)

    def check_st(self, insn):
        code, dst, src, off, imm = insn
        if code & 0xe0 != BPF_MEM or src != 0:
            self.fail(errno.EINVAL, "BPF_ST uses reserved fields\n")
        self.check_reg_arg(dst, SRC_OP)
        dst_type = self.cur_state.frame[self.cur_state.curframe].regs[dst].type
        if dst_type == PTR_TO_CTX and not self.st_to_ctx:
            self.fail(errno.EACCES, "BPF_ST stores into R%d %s is not allowed\n" % (dst, reg_type_str(dst_type)))
        self.check_mem_access(dst, off, code & 0x18, BPF_WRITE, -1, False, False)
        self.save_aux_ptr_type(dst_type, False)

    def check_atomic(self, insn):
        imm = insn[4]
        if imm in (BPF_ADD, BPF_ADD | BPF_FETCH, BPF_AND, BPF_AND | BPF_FETCH, BPF_OR, BPF_OR | BPF_FETCH,
                   BPF_XOR, BPF_XOR | BPF_FETCH, BPF_XCHG, BPF_CMPXCHG):
            return self.check_atomic_rmw(insn)
        if imm == BPF_LOAD_ACQ and "load_acquire" in self.instructions:
            return self.check_atomic_load(insn)
        if imm == BPF_STORE_REL and "store_release" in self.instructions:
            return self.check_atomic_store(insn)
        self.fail(errno.EINVAL, "BPF_ATOMIC uses invalid atomic opcode %02x\n" % (imm & 0xffffffff))

    def atomic_ptr_type_ok(self, regno):
        t = self.cur_state.frame[self.cur_state.curframe].regs[regno].type
        if t == PTR_TO_CTX or type_is_pkt_pointer(t) or t == PTR_TO_FLOW_KEYS or type_is_sk_pointer(t):
            return False
        return True

    def check_atomic_rmw(self, insn):
        code, dst, src, off, imm = insn
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        if code & 0x18 not in (BPF_W, BPF_DW):
            self.fail(errno.EINVAL, "invalid atomic operand size\n")
        self.check_reg_arg(src, SRC_OP)
        self.check_reg_arg(dst, SRC_OP)
        if imm == BPF_CMPXCHG:
            self.check_reg_arg(0, SRC_OP)
            if self.is_pointer_value(0):
                self.fail(errno.EACCES, "R%d leaks addr into mem\n" % 0)
        if self.is_pointer_value(src):
            self.fail(errno.EACCES, "R%d leaks addr into mem\n" % src)
        if not self.atomic_ptr_type_ok(dst):
            self.fail(errno.EACCES, "BPF_ATOMIC stores into R%d %s is not allowed\n"
                      % (dst, reg_type_str(regs[dst].type)))
        if imm & BPF_FETCH:
            load_reg = 0 if imm == BPF_CMPXCHG else src
            self.check_reg_arg(load_reg, DST_OP)
        else:
            load_reg = -1
        self.check_mem_access(dst, off, code & 0x18, BPF_READ, -1, True, False)
        if load_reg >= 0:
            self.check_mem_access(dst, off, code & 0x18, BPF_READ, load_reg, True, False)
        self.save_aux_ptr_type(regs[dst].type, False)
        self.check_mem_access(dst, off, code & 0x18, BPF_WRITE, -1, True, False)

    def check_atomic_load(self, insn):
        code, dst, src, off, imm = insn
        if not self.atomic_ptr_type_ok(src) and False:
            pass
        self.check_load_mem((code, dst, src, off, imm), True, False, False, "atomic_load")

    def check_atomic_store(self, insn):
        self.check_store_reg(insn, True)

    def save_aux_ptr_type(self, t, allow_trust_mismatch):
        aux = self.insn_aux[self.insn_idx]
        prev = aux.ptr_type
        if prev == NOT_INIT:
            aux.ptr_type = t
            return
        if t != prev and (not _mismatch_ok(t) or not _mismatch_ok(prev)):
            if allow_trust_mismatch and base_type(t) == PTR_TO_BTF_ID and base_type(prev) == PTR_TO_BTF_ID:
                return
            self.fail(errno.EINVAL, "same insn cannot be used with different pointers\n")

    # -- alignment --
    def check_ptr_alignment(self, reg, off, size, strict_once):
        strict = self.strict_alignment or strict_once
        t = reg.type
        if t in (PTR_TO_PACKET, PTR_TO_PACKET_META):
            if not strict or size == 1:
                return
            ip_align = 2
            ro = tnum.add((reg.vv, reg.vm), tnum.const(ip_align + reg.off + off))
            if not tnum.is_aligned(ro, size):
                self.fail(errno.EACCES, "misaligned packet access off %d+%s+%d+%d size %d\n"
                          % (ip_align, self.tnum_strn((reg.vv, reg.vm)), reg.off, off, size))
            return
        if t == PTR_TO_ARENA:
            return
        desc = _ALIGN_DESC.get(t, "")
        if t == PTR_TO_STACK:
            strict = True
        if not strict or size == 1:
            return
        ro = tnum.add((reg.vv, reg.vm), tnum.const(reg.off + off))
        if not tnum.is_aligned(ro, size):
            self.fail(errno.EACCES, "misaligned %saccess off %s+%d+%d size %d\n"
                      % (desc, self.tnum_strn((reg.vv, reg.vm)), reg.off, off, size))

    # -- the dispatcher --
    def check_mem_access(self, regno, off, bpf_size, t, value_regno, strict_once, is_ldsx):
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        reg = regs[regno]
        size = SIZE_BYTES[bpf_size]
        self.check_ptr_alignment(reg, off, size, strict_once)
        off += reg.off
        rt = reg.type
        if rt == PTR_TO_MAP_KEY:
            if t == BPF_WRITE:
                self.fail(errno.EACCES, "write to change key R%d not allowed\n" % regno)
            self.check_mem_region_access(regno, off, size, reg.map.key_size, False)
            if value_regno >= 0:
                self.mark_reg_unknown(regs[value_regno])
        elif rt == PTR_TO_MAP_VALUE:
            if t == BPF_WRITE and value_regno >= 0 and self.is_pointer_value(value_regno):
                self.fail(errno.EACCES, "R%d leaks addr into map\n" % value_regno)
            self.check_map_access_type(regno, off, size, t)
            self.check_map_access(regno, off, size, False)
            kptr = None
            if reg.vm == 0:
                kptr = self.find_map_field(reg.map, off + reg.vv, KPTR_KINDS)
            if kptr is not None:
                self.check_map_kptr_access(regno, value_regno, kptr, self.insns[self.insn_idx])
            elif t == BPF_READ and value_regno >= 0:
                m = reg.map
                if reg.vm == 0 and self.map_is_rdonly(m) and self.map_has_direct_value(m):
                    val = self.map_direct_read(m, off + reg.vv, size, is_ldsx)
                    regs[value_regno].type = SCALAR_VALUE
                    mark_known(regs[value_regno], val)
                else:
                    self.mark_reg_unknown(regs[value_regno])
        elif base_type(rt) == PTR_TO_MEM:
            rdonly = bool(rt & MEM_RDONLY)
            if rt & PTR_MAYBE_NULL:
                self.fail(errno.EACCES, "R%d invalid mem access '%s'\n" % (regno, reg_type_str(rt)))
            if t == BPF_WRITE and rdonly:
                self.fail(errno.EACCES, "R%d cannot write into %s\n" % (regno, reg_type_str(rt)))
            if t == BPF_WRITE and value_regno >= 0 and self.is_pointer_value(value_regno):
                self.fail(errno.EACCES, "R%d leaks addr into mem\n" % value_regno)
            self.check_mem_region_access(regno, off, size, reg.mem_size, False)
            if value_regno >= 0 and (t == BPF_READ or rdonly):
                self.mark_reg_unknown(regs[value_regno])
        elif rt == PTR_TO_CTX:
            if t == BPF_WRITE and value_regno >= 0 and self.is_pointer_value(value_regno):
                self.fail(errno.EACCES, "R%d leaks addr into ctx\n" % value_regno)
            self.check_ptr_off_reg(reg, regno)
            reg_type, btf_id, ranged = self.check_ctx_access(off, size, t, is_ldsx)
            if t == BPF_READ and value_regno >= 0:
                vr = regs[value_regno]
                if reg_type == SCALAR_VALUE:
                    self.mark_reg_unknown(vr)
                    if ranged is not None:
                        lo, hi = ranged
                        vr.s32min = max(vr.s32min, lo)
                        vr.s32max = min(vr.s32max, hi)
                        vr.smin = max(vr.smin, lo)
                        vr.smax = min(vr.smax, hi)
                        self.bounds_sync(vr)
                else:
                    mark_known_zero(vr)
                    if reg_type & PTR_MAYBE_NULL:
                        self.id_gen += 1
                        vr.id = self.id_gen
                    vr.subreg_def = 0
                    if base_type(reg_type) == PTR_TO_BTF_ID:
                        vr.btf, vr.btf_id = self.btf_struct(btf_id)
                vr.type = reg_type
        elif rt == PTR_TO_STACK:
            self.check_stack_access_within_bounds(regno, off, size, ACCESS_DIRECT, t)
            if t == BPF_READ:
                self.check_stack_read(regno, off, size, value_regno)
            else:
                self.check_stack_write(regno, off, size, value_regno)
        elif type_is_pkt_pointer(rt):
            if t == BPF_WRITE and not self.may_access_direct_pkt_data(None, t):
                self.fail(errno.EACCES, "cannot write into packet\n")
            if t == BPF_WRITE and value_regno >= 0 and self.is_pointer_value(value_regno):
                self.fail(errno.EACCES, "R%d leaks addr into packet\n" % value_regno)
            self.check_packet_access(regno, off, size, False)
            if t == BPF_READ and value_regno >= 0:
                self.mark_reg_unknown(regs[value_regno])
        elif rt == PTR_TO_FLOW_KEYS:
            if t == BPF_WRITE and value_regno >= 0 and self.is_pointer_value(value_regno):
                self.fail(errno.EACCES, "R%d leaks addr into flow keys\n" % value_regno)
            if size < 0 or off < 0 or off + size > self.flow_keys_size:
                self.fail(errno.EACCES, "invalid access to flow keys off=%d size=%d\n" % (off, size))
            if t == BPF_READ and value_regno >= 0:
                self.mark_reg_unknown(regs[value_regno])
        elif type_is_sk_pointer(rt):
            if t == BPF_WRITE:
                self.fail(errno.EACCES, "R%d cannot write into %s\n" % (regno, reg_type_str(rt)))
            self.check_sock_access(regno, off, size, t)
            if value_regno >= 0:
                self.mark_reg_unknown(regs[value_regno])
        elif rt == PTR_TO_TP_BUFFER:
            self.check_buffer_access(reg, regno, off, size, "tracepoint")
            if off + size > self.max_tp_access:
                self.max_tp_access = off + size
            if t == BPF_READ and value_regno >= 0:
                self.mark_reg_unknown(regs[value_regno])
        elif base_type(rt) == PTR_TO_BTF_ID and not rt & PTR_MAYBE_NULL:
            self.check_ptr_to_btf_access(regno, off, size, t, value_regno)
        elif rt == CONST_PTR_TO_MAP:
            self.check_ptr_to_map_access(regno, off, size, t, value_regno)
        elif base_type(rt) == PTR_TO_BUF and not rt & PTR_MAYBE_NULL:
            rdonly = bool(rt & MEM_RDONLY)
            if rdonly and t == BPF_WRITE:
                self.fail(errno.EACCES, "R%d cannot write into %s\n" % (regno, reg_type_str(rt)))
            self.check_buffer_access(reg, regno, off, size, "rdonly" if rdonly else "rdwr")
            if value_regno >= 0 and (rdonly or t == BPF_READ):
                self.mark_reg_unknown(regs[value_regno])
        elif rt == PTR_TO_ARENA:
            if t == BPF_READ and value_regno >= 0:
                self.mark_reg_unknown(regs[value_regno])
        else:
            self.fail(errno.EACCES, "R%d invalid mem access '%s'\n" % (regno, reg_type_str(rt)))
        if size < 8 and value_regno >= 0 and t == BPF_READ and regs[value_regno].type == SCALAR_VALUE:
            if is_ldsx:
                coerce_reg_to_size_sx(regs[value_regno], size)
            else:
                coerce_reg_to_size(regs[value_regno], size)

    # -- generic region checks --
    def mem_access_error(self, regno, off, size, mem_size):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        rt = reg.type
        if rt == PTR_TO_MAP_KEY:
            self.verbose("invalid access to map key, key_size=%d off=%d size=%d\n" % (mem_size, off, size))
        elif rt == PTR_TO_MAP_VALUE:
            self.verbose("invalid access to map value, value_size=%d off=%d size=%d\n" % (mem_size, off, size))
        elif rt in (PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_PACKET_END):
            self.verbose("invalid access to packet, off=%d size=%d, R%d(id=%d,off=%d,r=%d)\n"
                         % (off, size, regno, reg.id, off, mem_size))
        else:
            self.verbose("invalid access to memory, mem_size=%u off=%d size=%d\n" % (mem_size, off, size))

    def mem_access_ok(self, off, size, mem_size, zero_size_allowed):
        size_ok = size > 0 or (size == 0 and zero_size_allowed)
        return off >= 0 and size_ok and off + size <= mem_size

    def check_mem_region_access(self, regno, off, size, mem_size, zero_size_allowed):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        if reg.smin < 0 and (reg.smin == S64_MIN or not (S32_MIN <= off + reg.smin <= S32_MAX) or
                             reg.smin + off < 0):
            self.fail(errno.EACCES, "R%d min value is negative, either use unsigned index or do a if (index >=0) "
                                    "check.\n" % regno)
        o = _s32c(reg.smin + off)
        if not self.mem_access_ok(o, size, mem_size, zero_size_allowed):
            self.mem_access_error(regno, o, size, mem_size)
            self.fail(errno.EACCES, "R%d min value is outside of the allowed memory range\n" % regno)
        if reg.umax >= BPF_MAX_VAR_OFF:
            self.fail(errno.EACCES, "R%d unbounded memory access, make sure to bounds check any such access\n"
                      % regno)
        o = _s32c(reg.umax + off)
        if not self.mem_access_ok(o, size, mem_size, zero_size_allowed):
            self.mem_access_error(regno, o, size, mem_size)
            self.fail(errno.EACCES, "R%d max value is outside of the allowed memory range\n" % regno)

    def check_ptr_off_reg(self, reg, regno, fixed_off_ok=False):
        if reg.off < 0:
            self.fail(errno.EACCES, "negative offset %s ptr R%d off=%d disallowed\n"
                      % (reg_type_str(reg.type), regno, reg.off))
        if not fixed_off_ok and reg.off:
            self.fail(errno.EACCES, "dereference of modified %s ptr R%d off=%d disallowed\n"
                      % (reg_type_str(reg.type), regno, reg.off))
        if reg.vm != 0 or reg.vv:
            self.fail(errno.EACCES, "variable %s access var_off=%s disallowed\n"
                      % (reg_type_str(reg.type), self.tnum_strn((reg.vv, reg.vm))))

    def check_buffer_access(self, reg, regno, off, size, info):
        if off < 0:
            self.fail(errno.EACCES, "R%d invalid %s buffer access: off=%d, size=%d\n" % (regno, info, off, size))
        if reg.vm != 0 or reg.vv:
            self.fail(errno.EACCES, "R%d invalid variable buffer offset: off=%d, var_off=%s\n"
                      % (regno, off, self.tnum_strn((reg.vv, reg.vm))))

    # -- maps --
    def check_map_access_type(self, regno, off, size, t):
        m = self.cur_state.frame[self.cur_state.curframe].regs[regno].map
        flags = m.map_flags
        if t == BPF_WRITE and flags & BPF_F_RDONLY_PROG:
            self.fail(errno.EACCES, "write into map forbidden, value_size=%d off=%d size=%d\n"
                      % (m.value_size, off, size))
        if t == BPF_READ and flags & BPF_F_WRONLY_PROG:
            self.fail(errno.EACCES, "read from map forbidden, value_size=%d off=%d size=%d\n"
                      % (m.value_size, off, size))

    def check_map_access(self, regno, off, size, zero_size_allowed, helper=False):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        m = reg.map
        self.check_mem_region_access(regno, off, size, m.value_size, zero_size_allowed)
        fields = map_fields(m)
        for f in fields:
            kind, p, fsize = f[0], f[1], f[2]
            if reg.smin + off < p + fsize and p < reg.umax + off + size:
                if kind in KPTR_KINDS:
                    name = FIELD_NAMES[kind]
                    if helper:
                        self.fail(errno.EACCES, "%s cannot be accessed indirectly by helper\n" % name)
                    if reg.vm != 0:
                        self.fail(errno.EACCES, "%s access cannot have variable offset\n" % name)
                    if p != off + reg.vv:
                        self.fail(errno.EACCES, "%s access misaligned expected=%u off=%u\n" % (name, p, off + reg.vv))
                    if size != 8:
                        self.fail(errno.EACCES, "%s access size must be BPF_DW\n" % name)
                else:
                    self.fail(errno.EACCES, "%s cannot be accessed directly by load/store\n"
                              % FIELD_NAMES.get(kind, kind))

    def find_map_field(self, m, off, kinds):
        for f in map_fields(m):
            if f.off == off and f.kind in kinds:
                return f
        return None

    def check_map_kptr_access(self, regno, value_regno, field, insn):
        """check_map_kptr_access: loads of a kptr give a PTR_TO_BTF_ID of its type; stores must match it."""
        cls = insn[0] & 7
        if insn[0] & 0xe0 != BPF_MEM:
            self.fail(errno.EACCES, "kptr in map can only be accessed using BPF_MEM instruction mode\n")
        if cls != 1 and field.kind in ("kptr_ref", "kptr_percpu"):   # BPF_LDX
            self.fail(errno.EACCES, "store to referenced kptr disallowed\n")
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        if cls == 1:
            self.mark_btf_ld_reg(regs[value_regno], PTR_TO_BTF_ID, self.field_btf(field), field.btf_id,
                                 self.btf_ld_kptr_type(field))
        elif cls == 3:   # BPF_STX
            val = regs[value_regno]
            if val.is_null():
                return
            self.map_kptr_match_type(field, val, value_regno)
        elif cls == 2:   # BPF_ST
            if insn[4]:
                self.fail(errno.EACCES, "BPF_ST imm must be 0 when storing to kptr at off=%u\n" % field.off)
        else:
            self.fail(errno.EACCES, "kptr in map can only be accessed using BPF_LDX/BPF_STX/BPF_ST\n")

    def field_btf(self, field):
        """The BTF a kptr field's type id belongs to (the kernel's unless the record says otherwise)."""
        b = field[4] if len(field) > 4 else None
        return b if b is not None else self.vmlinux

    def btf_ld_kptr_type(self, field):
        flag = PTR_MAYBE_NULL
        b = self.field_btf(field)
        kernel = getattr(b, "kernel_btf", False)
        rcu_safe = field.kind == "kptr_percpu" or (field.kind == "kptr_ref" and
                                                   self.rcu_protected_object(b, field.btf_id))
        if rcu_safe and self.in_rcu_cs():
            flag |= MEM_RCU
            if field.kind == "kptr_percpu":
                flag |= MEM_PERCPU
            elif not kernel:
                flag |= MEM_ALLOC
        else:
            flag |= PTR_UNTRUSTED
        return flag

    def rcu_protected_object(self, b, btf_id):
        if not getattr(b, "kernel_btf", False):
            return True
        return b.name(btf_id) in RCU_PROTECTED_TYPES

    def in_rcu_cs(self):
        st = self.cur_state
        return bool(st.active_rcu_lock) or st.active_lock is not None or not self.in_sleepable()

    def map_kptr_match_type(self, field, reg, regno):
        """map_kptr_match_type: the pointer stored into (or exchanged with) a kptr field has its type."""
        kb = self.field_btf(field)
        targ = kb.name(field.btf_id)
        reg_name = ""
        ok = base_type(reg.type) == PTR_TO_BTF_ID
        if ok:
            if getattr(reg.btf, "kernel_btf", False):
                perm = PTR_MAYBE_NULL | PTR_TRUSTED | MEM_RCU
                if field.kind == "kptr":
                    perm |= PTR_UNTRUSTED
            else:
                perm = PTR_MAYBE_NULL | MEM_ALLOC
                if field.kind == "kptr_percpu":
                    perm |= MEM_PERCPU
            flags = reg.type & ~0xff
            if flags & ~perm or (field.kind == "kptr_percpu") != bool(reg.type & MEM_PERCPU):
                ok = False
        if ok:
            reg_name = btf_type_name(reg)
            self.check_ptr_off_reg(reg, regno, True)
            ok = btf_struct_ids_match(reg.btf, reg.btf_id, reg.off, kb, field.btf_id, field.kind != "kptr",
                                      not reg.type & MEM_ALLOC)
        if ok:
            return
        self.verbose("invalid kptr access, R%d type=%s%s " % (regno, reg_type_str(reg.type), reg_name))
        self.verbose("expected=%s%s" % (reg_type_str(PTR_TO_BTF_ID), targ))
        if field.kind == "kptr":
            self.verbose(" or %s%s\n" % (reg_type_str(PTR_TO_BTF_ID | PTR_UNTRUSTED), targ))
        else:
            self.verbose("\n")
        self.fail(errno.EACCES)

    def mark_btf_ld_reg(self, reg, reg_type, b, btf_id, flag):
        if reg_type == SCALAR_VALUE:
            self.mark_reg_unknown(reg)
            return
        mark_known_zero(reg)
        reg.type = PTR_TO_BTF_ID | flag
        reg.btf = b
        reg.btf_id = btf_id
        if flag & PTR_MAYBE_NULL:
            self.id_gen += 1
            reg.id = self.id_gen

    @staticmethod
    def map_is_rdonly(m):
        return bool(m.map_flags & BPF_F_RDONLY_PROG) and getattr(m, "frozen", False) and not getattr(m, "writecnt", 0)

    @staticmethod
    def map_has_direct_value(m):
        return m.map_type == 2   # BPF_MAP_TYPE_ARRAY (insn_array, arena aside)

    def map_direct_read(self, m, off, size, is_ldsx):
        data = getattr(m, "direct_value", None)
        raw = data(off, size) if data else bytes(size)
        v = int.from_bytes(raw, "little")
        if is_ldsx:
            bits = size * 8
            if v >> (bits - 1):
                v -= 1 << bits
        return v & U64

    # -- packets --
    def may_access_direct_pkt_data(self, meta, t):
        ok = self.ops.may_access_direct_pkt_data(self, meta, t)
        if ok and meta is None and t == BPF_WRITE:
            self.seen_direct_write = True   # the tc prologue (gen_prologue) depends on it
        return ok

    def check_packet_access(self, regno, off, size, zero_size_allowed):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        if reg.smin < 0:
            self.fail(errno.EACCES, "R%d min value is negative, either use unsigned index or do a if (index >=0) "
                                    "check.\n" % regno)
        if reg.range < 0 or not self.mem_access_ok(off, size, reg.range, zero_size_allowed):
            if reg.range >= 0:
                self.mem_access_error(regno, off, size, reg.range)
            self.fail(errno.EACCES if reg.range >= 0 else errno.EINVAL,
                      "R%d offset is outside of the packet\n" % regno)
        o = off + reg.umax + size - 1
        if o > self.max_pkt_offset:
            self.max_pkt_offset = o

    # -- context --
    def check_ctx_access(self, off, size, t, is_ldsx):
        """The program type's is_valid_access: (reg_type, btf type name, s32 range or None)."""
        res = self.ops.is_valid_access(self, off, size, t, is_ldsx)
        if res is None:
            self.fail(errno.EACCES, "invalid bpf_context access off=%d size=%d\n" % (off, size))
        if off + size > self.max_ctx_offset:  # aux->max_ctx_offset: what a test run's ctx_in must cover
            self.max_ctx_offset = off + size
        return res

    def check_sock_access(self, regno, off, size, t):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        if reg.smin < 0:
            self.fail(errno.EACCES, "R%d min value is negative, either use unsigned index or do a if (index >=0) "
                                    "check.\n" % regno)
        from ..ctx import sock_access_ok
        if not sock_access_ok(reg.type, off, size, t):
            self.fail(errno.EACCES, "R%d invalid %s access off=%d size=%d\n"
                      % (regno, reg_type_str(reg.type), off, size))

    def check_ptr_to_btf_access(self, regno, off, size, t, value_regno):
        """check_ptr_to_btf_access: loads through a pointer to a kernel (or program) struct, walked in its BTF."""
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        reg = regs[regno]
        b = reg.btf or self.vmlinux
        tname = btf_type_name(reg)
        kernel = getattr(b, "kernel_btf", False)
        if not self.allow_ptr_leaks:
            self.fail(errno.EPERM, "'struct %s' access is allowed only to CAP_PERFMON and CAP_SYS_ADMIN\n" % tname)
        if not self.gpl_compatible and kernel:
            self.fail(errno.EINVAL, "Cannot access kernel 'struct %s' from non-GPL compatible program\n" % tname)
        if off < 0:
            self.fail(errno.EACCES, "R%d is ptr_%s invalid negative access: off=%d\n" % (regno, tname, off))
        if reg.vm != 0 or reg.vv:
            self.fail(errno.EACCES, "R%d is ptr_%s invalid variable offset: off=%d, var_off=%s\n"
                      % (regno, tname, off, self.tnum_strn((reg.vv, reg.vm))))
        if reg.type & MEM_USER:
            self.fail(errno.EACCES, "R%d is ptr_%s access user memory: off=%d\n" % (regno, tname, off))
        if reg.type & MEM_PERCPU:
            self.fail(errno.EACCES, "R%d is ptr_%s access percpu memory: off=%d\n" % (regno, tname, off))
        if t != BPF_READ and reg.type & PTR_UNTRUSTED:
            self.fail(errno.EACCES, "only read is supported\n")
        is_alloc = bool(reg.type & MEM_ALLOC)
        struct_access = getattr(self.ops, "btf_struct_access", None)
        if struct_access is not None and not is_alloc and t == BPF_WRITE:
            ret = struct_access(self, reg, off, size)
            btf_id, flag, field_name = 0, 0, None
        else:
            if t != BPF_READ and not (is_alloc and not reg.type & NON_OWN_REF and
                                      base_type(reg.type) == PTR_TO_BTF_ID and reg.type & ~0xff == MEM_ALLOC):
                self.fail(errno.EACCES, "only read is supported\n")
            ret, btf_id, flag, field_name = self.btf_struct_access(reg, off, size)
        if ret != PTR_TO_BTF_ID:
            pass
        elif reg.type & PTR_UNTRUSTED:
            flag = PTR_UNTRUSTED
        elif self.is_trusted_reg(reg) or reg.type & MEM_RCU:
            bid = reg.btf_id
            if btf_nested_type_is_trusted(b, bid, field_name, btf_id, "__safe_trusted"):
                flag |= PTR_TRUSTED
            elif btf_nested_type_is_trusted(b, bid, field_name, btf_id, "__safe_trusted_or_null"):
                flag |= PTR_TRUSTED | PTR_MAYBE_NULL
            elif self.in_rcu_cs() and not reg.type & PTR_MAYBE_NULL:
                rcu_or_null = btf_nested_type_is_trusted(b, bid, field_name, btf_id, "__safe_rcu_or_null")
                if btf_nested_type_is_trusted(b, bid, field_name, btf_id, "__safe_rcu"):
                    flag |= MEM_RCU
                elif flag & MEM_RCU or rcu_or_null:
                    flag |= MEM_RCU | PTR_MAYBE_NULL
                    if rcu_or_null and flag & PTR_UNTRUSTED:
                        flag &= ~PTR_UNTRUSTED
                elif flag & (MEM_PERCPU | MEM_USER):
                    pass
                else:
                    flag &= ~(PTR_TRUSTED | MEM_RCU)
            else:
                flag = PTR_UNTRUSTED
        else:
            flag &= ~(PTR_TRUSTED | MEM_RCU)
        if t == BPF_READ and value_regno >= 0:
            self.mark_btf_ld_reg(regs[value_regno], ret, b, btf_id, flag)

    def is_trusted_reg(self, reg):
        """is_trusted_reg: referenced; or a socket type with no flag; or only MEM_ALLOC/PTR_TRUSTED/NON_OWN_REF."""
        if reg.ref_obj_id:
            return True
        t = reg.type
        flags = t & ~0xff
        unsafe = flags & ~(MEM_ALLOC | PTR_TRUSTED | NON_OWN_REF)
        if base_type(t) in (PTR_TO_SOCKET, PTR_TO_SOCK_COMMON, PTR_TO_TCP_SOCK, CONST_PTR_TO_MAP) and not unsafe:
            return True
        return bool(flags & (MEM_ALLOC | PTR_TRUSTED | NON_OWN_REF)) and not unsafe

    def btf_struct_access(self, reg, off, size):
        """btf_struct_access: (SCALAR_VALUE or PTR_TO_BTF_ID, next btf id, flag, field name)."""
        b = reg.btf or self.vmlinux
        tid = reg.btf_id
        if reg.type & MEM_ALLOC:
            rec = self.struct_meta_record(b, tid)
            for f in rec:
                if off < f[1] + f[2] and f[1] < off + size:
                    self.fail(errno.EACCES, "direct access to %s is disallowed\n" % FIELD_NAMES.get(f[0], f[0]))
        t = b.type_by_id(tid)
        flag = 0
        field_name = None
        while t is not None:
            r, nid, flag, fname = btf_struct_walk(b, t, off, size, flag, not reg.type & MEM_ALLOC, self.verbose)
            if fname is not None:
                field_name = fname
            if r == WALK_PTR:
                if reg.type & MEM_ALLOC:
                    return SCALAR_VALUE, 0, 0, field_name
                return PTR_TO_BTF_ID, nid, flag, field_name
            if r == WALK_SCALAR:
                return SCALAR_VALUE, 0, 0, field_name
            if r == WALK_STRUCT:
                t = b.type_by_id(nid)
                off = 0
                continue
            self.fail(-r)
        self.fail(errno.EINVAL)

    def struct_meta_record(self, b, tid):
        """The special fields of a program-BTF struct (btf_find_struct_meta), as Field tuples."""
        metas = getattr(b, "struct_meta_tab", None)
        if not metas:
            return ()
        meta = metas.get(tid) if isinstance(metas, dict) else None
        rec = getattr(meta, "record", None) if meta is not None else None
        if rec is None:
            return ()
        return map_fields(type("M", (), {"record": rec})())

    def check_ptr_to_map_access(self, regno, off, size, t, value_regno):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        tname = MAP_STRUCT.get(reg.map.map_type)
        if tname is None:
            self.fail(524, "map_ptr access not supported for map type %d\n" % reg.map.map_type)
        if not self.allow_ptr_leaks:
            self.fail(errno.EPERM, "'struct %s' access is allowed only to CAP_PERFMON and CAP_SYS_ADMIN\n" % tname)
        if off < 0:
            self.fail(errno.EACCES, "R%d is %s invalid negative access: off=%d\n" % (regno, tname, off))
        if t != BPF_READ:
            self.fail(errno.EACCES, "only read from %s is supported\n" % tname)
        from ..ctx import bpf_map_struct_access
        ok = bpf_map_struct_access(reg.map, off, size)
        if not ok:
            self.fail(errno.EACCES, "access beyond the end of member %s (mend:%d) in struct %s with off %d size %d\n"
                      % ok if isinstance(ok, tuple) else "invalid access\n")
        if value_regno >= 0:
            self.mark_reg_unknown(self.cur_state.frame[self.cur_state.curframe].regs[value_regno])

    # -- the stack --
    def check_stack_access_within_bounds(self, regno, off, access_size, src, t):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        state = self.reg_func(reg)
        if t == BPF_READ:
            extra = " read from"
        else:
            extra = " write to"
        if reg.vm == 0:
            min_off = s64(reg.vv) + off
            max_off = min_off + access_size
        else:
            if reg.smax >= BPF_MAX_VAR_OFF or reg.smin <= -BPF_MAX_VAR_OFF:
                self.fail(errno.EACCES, "invalid unbounded variable-offset%s stack R%d\n" % (extra, regno))
            min_off = reg.smin + off
            max_off = reg.smax + off + access_size
        if t == BPF_WRITE or self.allow_uninit_stack:
            min_valid = -MAX_BPF_STACK
        else:
            min_valid = -state.allocated_stack
        err = 0
        if min_off < min_valid or min_off > -1:
            err = errno.EACCES
        elif max_off > 0:
            err = errno.EINVAL
        elif access_size < 0:
            err = errno.EFAULT
        if err:
            if reg.vm == 0:
                self.fail(err, "invalid%s stack R%d off=%d size=%d\n" % (extra, regno, off, access_size))
            self.fail(err, "invalid variable-offset%s stack R%d var_off=%s off=%d size=%d\n"
                      % (extra, regno, self.tnum_strn((reg.vv, reg.vm)), off, access_size))
        state.grow_stack(-min_off)
        self.note_stack_depth(state, -min_off)

    def check_stack_read(self, regno, off, size, dst_regno):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        state = self.reg_func(reg)
        if dst_regno < 0 and reg.vm != 0:
            self.fail(errno.EACCES, "variable offset stack pointer cannot be passed into helper function; "
                                    "var_off=%s off=%d size=%d\n" % (self.tnum_strn((reg.vv, reg.vm)), off, size))
        if reg.vm == 0:
            self.check_stack_read_fixed_off(state, off + s64(reg.vv), size, dst_regno)
        else:
            self.check_stack_range_initialized(regno, off, size, False, ACCESS_DIRECT, None)
            min_off = reg.smin + off
            max_off = reg.smax + off
            self.mark_reg_stack_read(state, min_off, max_off + size, dst_regno)

    def check_stack_write(self, regno, off, size, value_regno):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        state = self.reg_func(reg)
        if reg.vm == 0:
            self.check_stack_write_fixed_off(state, off + s64(reg.vv), size, value_regno)
        else:
            self.check_stack_write_var_off(state, regno, off, size, value_regno)

    @staticmethod
    def mark_stack_slot_misc(st, i):
        if st[i] == STACK_ZERO or st[i] == STACK_INVALID:
            return
        st[i] = STACK_MISC

    def destroy_if_dynptr_stack_slot(self, state, spi):
        slot = state.stack[spi]
        if slot.st[0] != STACK_DYNPTR:
            return
        self.destroy_dynptr_slot(state, spi)

    def scrub_special_slot(self, state, spi):
        slot = state.stack[spi]
        slot.spilled.type = NOT_INIT
        if slot.st[7] in (STACK_SPILL, STACK_DYNPTR, STACK_ITER):
            for i in range(8):
                if slot.st[i] != STACK_INVALID:
                    slot.st[i] = STACK_MISC

    def save_register_state(self, state, spi, reg, size):
        slot = state.stack[spi]
        slot.spilled.copy_state_from(reg)
        if size == BPF_REG_SIZE:
            slot.spilled.live |= REG_LIVE_WRITTEN
        i = BPF_REG_SIZE
        while i > BPF_REG_SIZE - size:
            slot.st[i - 1] = STACK_SPILL
            i -= 1
        while i:
            self.mark_stack_slot_misc(slot.st, i - 1)
            i -= 1

    def check_stack_write_fixed_off(self, state, off, size, value_regno):
        cur = self.cur_state.frame[self.cur_state.curframe]
        slot_i = -off - 1
        spi = slot_i // BPF_REG_SIZE
        insn = self.insns[self.insn_idx]
        slot = state.stack[spi]
        if (not self.allow_ptr_leaks and slot.is_spilled_reg() and not slot.is_spilled_scalar() and
                size != BPF_REG_SIZE):
            self.fail(errno.EACCES, "attempt to corrupt spilled pointer on stack\n")
        reg = cur.regs[value_regno] if value_regno >= 0 else None
        self.destroy_if_dynptr_stack_slot(state, spi)
        if self.log_level:
            self.scratched.add(("s", spi))
        is_st_mem = insn[0] & 7 == BPF_ST and insn[0] & 0xe0 == BPF_MEM
        if reg is not None and not off % BPF_REG_SIZE and reg.type == SCALAR_VALUE and self.bpf_capable:
            fits = get_reg_width(reg) <= 8 * size
            if fits:
                self.assign_scalar_id_before_mov(reg)
            self.save_register_state(state, spi, reg, size)
            if not fits:
                slot.spilled.id = 0
        elif reg is None and not off % BPF_REG_SIZE and is_st_mem and self.bpf_capable:
            tmp = Reg()
            mark_known(tmp, insn[4])
            tmp.type = SCALAR_VALUE
            self.save_register_state(state, spi, tmp, size)
        elif reg is not None and is_spillable_regtype(reg.type):
            if size != BPF_REG_SIZE:
                self.verbose_linfo(self.insn_idx, "; ")
                self.fail(errno.EACCES, "invalid size of register spill\n")
            if state is not cur and reg.type == PTR_TO_STACK:
                self.fail(errno.EINVAL, "cannot spill pointers to stack into stack frame of the caller\n")
            self.save_register_state(state, spi, reg, size)
        else:
            typ = STACK_MISC
            self.scrub_special_slot(state, spi)
            if size == BPF_REG_SIZE:
                slot.spilled.live |= REG_LIVE_WRITTEN
            if (reg is not None and reg.is_null()) or (reg is None and is_st_mem and insn[4] == 0):
                typ = STACK_ZERO
            for i in range(size):
                slot.st[(slot_i - i) % BPF_REG_SIZE] = typ

    def check_stack_write_var_off(self, state, ptr_regno, off, size, value_regno):
        cur = self.cur_state.frame[self.cur_state.curframe]
        ptr_reg = cur.regs[ptr_regno]
        min_off = ptr_reg.smin + off
        max_off = ptr_reg.smax + off + size
        value_reg = cur.regs[value_regno] if value_regno >= 0 else None
        insn = self.insns[self.insn_idx]
        is_st_mem = insn[0] & 7 == BPF_ST and insn[0] & 0xe0 == BPF_MEM
        writing_zero = (value_reg is not None and value_reg.is_null()) or (value_reg is None and is_st_mem and
                                                                           insn[4] == 0)
        for i in range(min_off, max_off):
            spi = (-i - 1) // BPF_REG_SIZE
            self.destroy_if_dynptr_stack_slot(state, spi)
        for i in range(min_off, max_off):
            slot_i = -i - 1
            spi = slot_i // BPF_REG_SIZE
            slot = state.stack[spi]
            st = slot.st
            k = slot_i % BPF_REG_SIZE
            if not self.allow_ptr_leaks and st[k] != STACK_MISC and st[k] != STACK_ZERO:
                self.fail(errno.EINVAL, "spilled ptr in range of var-offset stack write; insn %d, ptr off: %d"
                          % (self.insn_idx, i))
            if writing_zero and st[k] == STACK_SPILL and slot.is_spilled_scalar():
                sp = slot.spilled
                if sp.vm == 0 and sp.vv == 0:
                    continue
            self.scrub_special_slot(state, spi)
            new_type = STACK_MISC
            if writing_zero and st[k] == STACK_ZERO:
                new_type = STACK_ZERO
            if st[k] == STACK_INVALID and not self.allow_uninit_stack:
                self.fail(errno.EINVAL, "uninit stack in range of var-offset write prohibited for !root; insn %d, "
                                        "off: %d" % (self.insn_idx, i))
            st[k] = new_type

    def mark_reg_stack_read(self, ptr_state, min_off, max_off, dst_regno):
        cur = self.cur_state.frame[self.cur_state.curframe]
        zeros = 0
        for i in range(min_off, max_off):
            slot_i = -i - 1
            spi = slot_i // BPF_REG_SIZE
            if ptr_state.stack[spi].st[slot_i % BPF_REG_SIZE] != STACK_ZERO:
                break
            zeros += 1
        if zeros == max_off - min_off:
            mark_const_zero(cur.regs[dst_regno], not self.bpf_capable)
        else:
            self.mark_reg_unknown(cur.regs[dst_regno])
        cur.regs[dst_regno].live |= REG_LIVE_WRITTEN

    def check_stack_read_fixed_off(self, reg_state, off, size, dst_regno):
        cur = self.cur_state.frame[self.cur_state.curframe]
        slot_i = -off - 1
        spi = slot_i // BPF_REG_SIZE
        slot = reg_state.stack[spi]
        st = slot.st
        reg = slot.spilled
        if self.log_level:
            self.scratched.add(("s", spi))
        if st[7] == STACK_SPILL:
            spill_size = 1
            i = BPF_REG_SIZE - 1
            while i > 0 and st[i - 1] == STACK_SPILL:
                spill_size += 1
                i -= 1
            if size != BPF_REG_SIZE or spill_size != BPF_REG_SIZE:
                if reg.type != SCALAR_VALUE:
                    self.verbose_linfo(self.insn_idx, "; ")
                    self.fail(errno.EACCES, "invalid size of register fill\n")
                self.mark_reg_read(reg, REG_LIVE_READ64)
                if dst_regno < 0:
                    return
                if size <= spill_size and stack_narrow_access_ok(off, size, spill_size):
                    dreg = cur.regs[dst_regno]
                    subreg_def = dreg.subreg_def
                    dreg.copy_state_from(reg)
                    dreg.subreg_def = subreg_def
                    if get_reg_width(reg) > size * 8:
                        dreg.id = 0
                        dreg.off = 0
                else:
                    spill_cnt = zero_cnt = 0
                    for i in range(size):
                        ty = st[(slot_i - i) % BPF_REG_SIZE]
                        if ty == STACK_SPILL:
                            spill_cnt += 1
                            continue
                        if ty == STACK_MISC:
                            continue
                        if ty == STACK_ZERO:
                            zero_cnt += 1
                            continue
                        if ty == STACK_INVALID and self.allow_uninit_stack:
                            continue
                        self.fail(errno.EACCES, "invalid read from stack off %d+%d size %d\n" % (off, i, size))
                    if spill_cnt == size and reg.vm == 0 and reg.vv == 0:
                        mark_const_zero(cur.regs[dst_regno], not self.bpf_capable)
                    elif zero_cnt == size:
                        mark_const_zero(cur.regs[dst_regno], not self.bpf_capable)
                    else:
                        self.mark_reg_unknown(cur.regs[dst_regno])
                cur.regs[dst_regno].live |= REG_LIVE_WRITTEN
            elif dst_regno >= 0:
                cur.regs[dst_regno].copy_state_from(reg)
                cur.regs[dst_regno].live |= REG_LIVE_WRITTEN
            elif not self.allow_ptr_leaks and reg.type != SCALAR_VALUE:
                self.fail(errno.EACCES, "leaking pointer from stack off %d\n" % off)
            self.mark_reg_read(reg, REG_LIVE_READ64)
        else:
            for i in range(size):
                ty = st[(slot_i - i) % BPF_REG_SIZE]
                if ty == STACK_MISC or ty == STACK_ZERO:
                    continue
                if ty == STACK_INVALID and self.allow_uninit_stack:
                    continue
                self.fail(errno.EACCES, "invalid read from stack off %d+%d size %d\n" % (off, i, size))
            self.mark_reg_read(reg, REG_LIVE_READ64)
            if dst_regno >= 0:
                self.mark_reg_stack_read(reg_state, off, off + size, dst_regno)

    def check_stack_range_initialized(self, regno, off, access_size, zero_size_allowed, src, meta,
                                      access_type=BPF_READ):
        """Every byte a helper (or a variable-offset load) reads from the stack must be initialized; a helper
        may write anything there (the slots become STACK_MISC)."""
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        state = self.reg_func(reg)
        err_extra = ""
        if access_size == 0 and not zero_size_allowed:
            self.fail(errno.EACCES, "invalid zero-sized read\n")
        # 6.14+: only a helper that writes the memory turns the slots into STACK_MISC (a read leaves a key's
        # STACK_ZERO or spilled constant for get_constant_map_key)
        clobber = src == ACCESS_HELPER and access_type == BPF_WRITE
        self.check_stack_access_within_bounds(regno, off, access_size, src, access_type)
        if reg.vm == 0:
            min_off = max_off = s64(reg.vv) + off
        else:
            if not self.bypass_spec_v1:
                self.fail(errno.EACCES, "R%d%s variable offset stack access prohibited for !root, var_off=%s\n"
                          % (regno, err_extra, self.tnum_strn((reg.vv, reg.vm))))
            if meta is not None and meta.raw_mode:
                meta = None
            min_off = reg.smin + off
            max_off = reg.smax + off
        if meta is not None and meta.raw_mode:
            for i in range(min_off, max_off + access_size):
                slot_i = -i - 1
                if state.allocated_stack <= slot_i:
                    continue
                if state.stack[slot_i // BPF_REG_SIZE].st[slot_i % BPF_REG_SIZE] == STACK_DYNPTR:
                    self.fail(errno.EACCES, "potential write to dynptr at off=%d disallowed\n" % i)
            meta.access_size = access_size
            meta.regno = regno
            return
        for i in range(min_off, max_off + access_size):
            slot_i = -i - 1
            spi = slot_i // BPF_REG_SIZE
            if state.allocated_stack <= slot_i:
                self.fail(errno.EFAULT, "verifier bug: allocated_stack too small")
            slot = state.stack[spi]
            k = slot_i % BPF_REG_SIZE
            ty = slot.st[k]
            if ty == STACK_MISC:
                pass
            elif ty == STACK_ZERO or (ty == STACK_INVALID and self.allow_uninit_stack):
                if clobber:
                    slot.st[k] = STACK_MISC
            elif slot.st[7] == STACK_SPILL and (slot.spilled.type == SCALAR_VALUE or self.allow_ptr_leaks):
                if clobber:
                    self.mark_reg_unknown(slot.spilled)
                    for j in range(8):
                        if slot.st[j] != STACK_INVALID:
                            slot.st[j] = STACK_MISC
            else:
                if reg.vm == 0:
                    self.fail(errno.EACCES, "invalid%s read from stack R%d off %d+%d size %d\n"
                              % (err_extra, regno, min_off, i - min_off, access_size))
                self.fail(errno.EACCES, "invalid%s read from stack R%d var_off %s+%d size %d\n"
                          % (err_extra, regno, self.tnum_strn((reg.vv, reg.vm)), i - min_off, access_size))
            self.mark_reg_read(slot.spilled, REG_LIVE_READ64)


# the struct behind CONST_PTR_TO_MAP per map type (the ops' map_btf_id)
MAP_STRUCT = {
    uapi.BPF_MAP_TYPE_ARRAY: "bpf_array", uapi.BPF_MAP_TYPE_PERCPU_ARRAY: "bpf_array",
    uapi.BPF_MAP_TYPE_PROG_ARRAY: "bpf_array", uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY: "bpf_array",
    uapi.BPF_MAP_TYPE_CGROUP_ARRAY: "bpf_array", uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS: "bpf_array",
    uapi.BPF_MAP_TYPE_HASH: "bpf_htab", uapi.BPF_MAP_TYPE_PERCPU_HASH: "bpf_htab",
    uapi.BPF_MAP_TYPE_LRU_HASH: "bpf_htab", uapi.BPF_MAP_TYPE_LRU_PERCPU_HASH: "bpf_htab",
    uapi.BPF_MAP_TYPE_HASH_OF_MAPS: "bpf_htab", uapi.BPF_MAP_TYPE_LPM_TRIE: "lpm_trie",
    uapi.BPF_MAP_TYPE_STACK_TRACE: "bpf_stack_map", uapi.BPF_MAP_TYPE_DEVMAP: "bpf_dtab",
    uapi.BPF_MAP_TYPE_DEVMAP_HASH: "bpf_dtab", uapi.BPF_MAP_TYPE_SOCKMAP: "bpf_stab",
    uapi.BPF_MAP_TYPE_SOCKHASH: "bpf_shtab", uapi.BPF_MAP_TYPE_CPUMAP: "bpf_cpu_map",
    uapi.BPF_MAP_TYPE_XSKMAP: "xsk_map", uapi.BPF_MAP_TYPE_QUEUE: "bpf_queue_stack",
    uapi.BPF_MAP_TYPE_STACK: "bpf_queue_stack", uapi.BPF_MAP_TYPE_RINGBUF: "bpf_ringbuf_map",
    uapi.BPF_MAP_TYPE_USER_RINGBUF: "bpf_ringbuf_map", uapi.BPF_MAP_TYPE_BLOOM_FILTER: "bpf_bloom_filter",
    uapi.BPF_MAP_TYPE_SK_STORAGE: "bpf_local_storage_map", uapi.BPF_MAP_TYPE_INODE_STORAGE: "bpf_local_storage_map",
    uapi.BPF_MAP_TYPE_TASK_STORAGE: "bpf_local_storage_map", uapi.BPF_MAP_TYPE_CGRP_STORAGE: "bpf_local_storage_map",
    uapi.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: "reuseport_array", uapi.BPF_MAP_TYPE_ARENA: "bpf_arena",
    uapi.BPF_MAP_TYPE_CGROUP_STORAGE: "bpf_cgroup_storage_map",
    uapi.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE: "bpf_cgroup_storage_map",
}


def _s32c(v):
    """The kernel passes these offsets as int: wrap to 32 bits."""
    v &= 0xffffffff
    return v - (1 << 32) if v >> 31 else v


def _mismatch_ok(t):
    return base_type(t) not in (PTR_TO_CTX, PTR_TO_SOCKET, PTR_TO_SOCK_COMMON, PTR_TO_TCP_SOCK, PTR_TO_XDP_SOCK,
                                PTR_TO_BTF_ID, PTR_TO_ARENA)


class Field(tuple):
    """One special field of a map value (struct btf_field): kind name, offset, size, and for a kptr the BTF
    id of the kernel struct it points to."""
    __slots__ = ()

    def __new__(cls, kind, off, size, btf_id=0):
        return tuple.__new__(cls, (kind, off, size, btf_id))

    kind = property(lambda self: self[0])
    off = property(lambda self: self[1])
    size = property(lambda self: self[2])
    btf_id = property(lambda self: self[3])


# struct btf_field's type bits (enum btf_field_type) -> the kind names used here
FIELD_KINDS = {1 << 0: "spin_lock", 1 << 1: "timer", 1 << 2: "kptr", 1 << 3: "kptr_ref", 1 << 4: "kptr_percpu",
               1 << 5: "list_head", 1 << 6: "list_node", 1 << 7: "rb_root", 1 << 8: "rb_node",
               1 << 9: "refcount", 1 << 10: "wq", 1 << 11: "uptr", 1 << 12: "res_spin_lock",
               1 << 13: "task_work"}
KPTR_KINDS = ("kptr", "kptr_ref", "kptr_percpu", "uptr")


def map_fields(m):
    """The special fields of a map value (its btf_record), as :class:`Field` s sorted by offset. ``m.record``
    is a ``bpfemu.btf`` BtfRecord or a list of (kind, offset, size[, kptr btf id]) tuples."""
    rec = getattr(m, "record", None)
    if not rec:
        return ()
    cached = getattr(m, "_verifier_fields", None)
    if cached is not None and cached[0] is rec:
        return cached[1]
    if isinstance(rec, (list, tuple)):
        fields = tuple(sorted((Field(*f) for f in rec), key=lambda f: f.off))
    else:
        fields = tuple(Field(FIELD_KINDS.get(f.type, "?"), f.offset, f.size, getattr(f, "kptr_btf_id", 0))
                       for f in getattr(rec, "fields", ()))
    try:
        m._verifier_fields = (rec, fields)
    except AttributeError:
        pass
    return fields

class InnerMapView:
    """The inner-map template of a map of maps as the verifier sees it (bpf_map_meta_alloc's copy: type,
    sizes, flags, special fields; no name)."""

    def __init__(self, shape, max_entries, btf=None):
        self.map_type, self.key_size, self.value_size, self.map_flags, self.record = shape
        self.max_entries = max_entries
        self.btf = btf
        self.name = b""
        self.inner_map_meta = None


_INNER_VIEWS = weakref.WeakKeyDictionary()   # template -> its view (one per template: regsafe compares maps by identity)


def inner_map_of(m):
    """The inner-map template of ``m`` (a map of maps), or None: ``m.inner_map_meta`` when the map object
    has one, else a view of ``m.meta`` (bpfemu.maps.map_in_map.MapMeta: ``shape``, ``max_entries``)."""
    if m.map_type not in (uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS, uapi.BPF_MAP_TYPE_HASH_OF_MAPS):
        return None
    inner = getattr(m, "inner_map_meta", None)
    if inner is not None:
        return inner
    meta = getattr(m, "meta", None)
    shape = getattr(meta, "shape", None)
    if shape is None:
        return None
    v = _INNER_VIEWS.get(meta)
    if v is None:
        v = _INNER_VIEWS[meta] = InnerMapView(shape, meta.max_entries, getattr(meta, "btf", None))
    return v
