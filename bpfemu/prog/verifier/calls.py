"""Calls: helper calls (argument checks against the prototype, the return value), bpf-to-bpf calls and
returns, callbacks (bpf_loop, for_each_map_elem, timers), reference tracking (acquire, release, leaks),
bpf_spin_lock, LD_ABS/LD_IND, and the program's return value (check_return_code).
"""
import errno

from ..helpers import (ARG_ANYTHING, ARG_CONST_ALLOC_SIZE_OR_ZERO, ARG_CONST_MAP_PTR, ARG_CONST_SIZE,
                       ARG_CONST_SIZE_OR_ZERO, ARG_DONTCARE, ARG_KPTR_XCHG_DEST, ARG_PTR_TO_BTF_ID,
                       ARG_PTR_TO_BTF_ID_SOCK_COMMON, ARG_PTR_TO_CONST_STR, ARG_PTR_TO_CTX, ARG_PTR_TO_DYNPTR,
                       ARG_PTR_TO_FUNC, ARG_PTR_TO_MAP_KEY, ARG_PTR_TO_MAP_VALUE, ARG_PTR_TO_MEM,
                       ARG_PTR_TO_PERCPU_BTF_ID, ARG_PTR_TO_RINGBUF_MEM, ARG_PTR_TO_SOCK_COMMON,
                       ARG_PTR_TO_SOCKET, ARG_PTR_TO_SPIN_LOCK, ARG_PTR_TO_STACK, ARG_PTR_TO_TIMER,
                       FUNC_IDS, MAX_FUNC_ID, RET_INTEGER, RET_PTR_TO_BTF_ID, RET_PTR_TO_MAP_VALUE,
                       RET_PTR_TO_MEM, RET_PTR_TO_MEM_OR_BTF_ID, RET_PTR_TO_SOCK_COMMON, RET_PTR_TO_SOCKET,
                       RET_PTR_TO_TCP_SOCK, RET_VOID, bpf_helper_changes_pkt_data)
from ... import uapi
from . import tnum
from .alu import DST_OP_NO_MARK, SRC_OP
from .disasm import func_id_name
from .btf import BTF_KIND_STRUCT, BTF_KIND_UNION, btf_struct_ids_match, skip_mods
from .mem import ACCESS_HELPER, BPF_READ, BPF_WRITE, KPTR_KINDS, map_fields
from .regs import (btf_type_name, CONST_PTR_TO_DYNPTR, CONST_PTR_TO_MAP, DYNPTR_TYPE_FLAG_MASK, MEM_ALIGNED, MEM_ALLOC,
                   MEM_FIXED_SIZE, MEM_PERCPU, MEM_RCU, MEM_RDONLY, MEM_RINGBUF, MEM_UNINIT, MEM_WRITE, NOT_INIT,
                   OBJ_RELEASE, PTR_MAYBE_NULL, PTR_TO_BTF_ID, PTR_TO_BUF, PTR_TO_CTX, PTR_TO_FUNC,
                   PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_MEM, PTR_TO_PACKET, PTR_TO_PACKET_END,
                   PTR_TO_PACKET_META, PTR_TO_SOCK_COMMON, PTR_TO_SOCKET, PTR_TO_STACK, PTR_TO_TCP_SOCK,
                   PTR_TO_XDP_SOCK, PTR_TRUSTED, REG_LIVE_READ64, S32_MAX, S32_MIN, SCALAR_VALUE, U32, U64,
                   base_type, mark_known_zero, mark_not_init, reg_bounds_sync, reg_type_str, s64,
                   type_is_pkt_pointer, type_may_be_null)
from .state import MAX_CALL_FRAMES, STACK_SPILL, STACK_ZERO, init_func_state, format_func_state

F = FUNC_IDS
M = uapi
BPF_MAX_VAR_SIZ = 1 << 29
MAX_ERRNO = 4095
CALLER_SAVED = (0, 1, 2, 3, 4, 5)

# compatible register types per argument type (compatible_reg_types)
_MEM_TYPES = (PTR_TO_STACK, PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_MEM,
              PTR_TO_MEM | MEM_RINGBUF, PTR_TO_BUF, PTR_TO_BTF_ID | PTR_TRUSTED)
_SOCK_TYPES = (PTR_TO_SOCK_COMMON, PTR_TO_SOCKET, PTR_TO_TCP_SOCK, PTR_TO_XDP_SOCK)
COMPATIBLE = {
    ARG_PTR_TO_MAP_KEY: _MEM_TYPES, ARG_PTR_TO_MAP_VALUE: _MEM_TYPES, ARG_CONST_SIZE: (SCALAR_VALUE,),
    ARG_CONST_SIZE_OR_ZERO: (SCALAR_VALUE,), ARG_CONST_ALLOC_SIZE_OR_ZERO: (SCALAR_VALUE,),
    ARG_CONST_MAP_PTR: (CONST_PTR_TO_MAP,), ARG_PTR_TO_CTX: (PTR_TO_CTX,), ARG_PTR_TO_SOCK_COMMON: _SOCK_TYPES,
    ARG_PTR_TO_BTF_ID_SOCK_COMMON: _SOCK_TYPES + (PTR_TO_BTF_ID, PTR_TO_BTF_ID | PTR_TRUSTED),
    ARG_PTR_TO_SOCKET: (PTR_TO_SOCKET,),
    ARG_PTR_TO_BTF_ID: (PTR_TO_BTF_ID, PTR_TO_BTF_ID | PTR_TRUSTED, PTR_TO_BTF_ID | MEM_RCU),
    ARG_PTR_TO_SPIN_LOCK: (PTR_TO_MAP_VALUE, PTR_TO_BTF_ID | MEM_ALLOC), ARG_PTR_TO_MEM: _MEM_TYPES,
    ARG_PTR_TO_RINGBUF_MEM: (PTR_TO_MEM | MEM_RINGBUF,),
    ARG_PTR_TO_PERCPU_BTF_ID: (PTR_TO_BTF_ID | MEM_PERCPU, PTR_TO_BTF_ID | MEM_PERCPU | MEM_RCU,
                               PTR_TO_BTF_ID | MEM_PERCPU | PTR_TRUSTED),
    ARG_PTR_TO_FUNC: (PTR_TO_FUNC,), ARG_PTR_TO_STACK: (PTR_TO_STACK,), ARG_PTR_TO_CONST_STR: (PTR_TO_MAP_VALUE,),
    ARG_PTR_TO_TIMER: (PTR_TO_MAP_VALUE,), ARG_KPTR_XCHG_DEST: (PTR_TO_MAP_VALUE, PTR_TO_BTF_ID | MEM_ALLOC),
    ARG_PTR_TO_DYNPTR: (PTR_TO_STACK, CONST_PTR_TO_DYNPTR),
}
_ANY = 9   # ARG_ANYTHING / ARG_SCALAR
# the PTR_TO_BTF_ID register types check_reg_type matches against the argument's BTF id
_BTF_ARG_TYPES = frozenset((PTR_TO_BTF_ID, PTR_TO_BTF_ID | PTR_TRUSTED, PTR_TO_BTF_ID | PTR_TRUSTED | PTR_MAYBE_NULL,
                            PTR_TO_BTF_ID | MEM_RCU, PTR_TO_BTF_ID | PTR_MAYBE_NULL,
                            PTR_TO_BTF_ID | PTR_MAYBE_NULL | MEM_RCU))

# helpers whose map argument the verifier records (record_func_map)
_RECORD_MAP = frozenset(F[n] for n in ("tail_call", "map_lookup_elem", "map_update_elem", "map_delete_elem",
                                       "map_push_elem", "map_pop_elem", "map_peek_elem", "for_each_map_elem",
                                       "redirect_map", "map_lookup_percpu_elem"))
_ACQUIRE = frozenset(F[n] for n in ("sk_lookup_tcp", "sk_lookup_udp", "skc_lookup_tcp", "ringbuf_reserve",
                                    "kptr_xchg"))
_PTR_CAST = frozenset(F[n] for n in ("tcp_sock", "sk_fullsock", "skc_to_tcp_sock", "skc_to_tcp6_sock",
                                     "skc_to_udp6_sock", "skc_to_mptcp_sock", "skc_to_tcp_timewait_sock",
                                     "skc_to_tcp_request_sock"))
SYNC_CB_FUNCS = frozenset(F[n] for n in ("for_each_map_elem", "find_vma", "loop", "user_ringbuf_drain"))
ASYNC_CB_FUNCS = frozenset((F["timer_set_callback"],))

# map type -> the helpers that accept it (check_map_func_compatibility, first switch)
_MAP_FUNCS = {
    M.BPF_MAP_TYPE_PROG_ARRAY: ("tail_call",),
    M.BPF_MAP_TYPE_PERF_EVENT_ARRAY: ("perf_event_read", "perf_event_output", "skb_output",
                                      "perf_event_read_value", "xdp_output"),
    M.BPF_MAP_TYPE_RINGBUF: ("ringbuf_output", "ringbuf_reserve", "ringbuf_query", "ringbuf_reserve_dynptr",
                             "ringbuf_submit_dynptr", "ringbuf_discard_dynptr"),
    M.BPF_MAP_TYPE_USER_RINGBUF: ("user_ringbuf_drain",),
    M.BPF_MAP_TYPE_STACK_TRACE: ("get_stackid",),
    M.BPF_MAP_TYPE_CGROUP_ARRAY: ("skb_under_cgroup", "current_task_under_cgroup"),
    M.BPF_MAP_TYPE_CGROUP_STORAGE: ("get_local_storage",),
    M.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE: ("get_local_storage",),
    M.BPF_MAP_TYPE_DEVMAP: ("redirect_map", "map_lookup_elem"),
    M.BPF_MAP_TYPE_DEVMAP_HASH: ("redirect_map", "map_lookup_elem"),
    M.BPF_MAP_TYPE_CPUMAP: ("redirect_map",),
    M.BPF_MAP_TYPE_XSKMAP: ("redirect_map", "map_lookup_elem"),
    M.BPF_MAP_TYPE_ARRAY_OF_MAPS: ("map_lookup_elem",),
    M.BPF_MAP_TYPE_HASH_OF_MAPS: ("map_lookup_elem",),
    M.BPF_MAP_TYPE_SOCKMAP: ("sk_redirect_map", "sock_map_update", "msg_redirect_map", "sk_select_reuseport",
                             "map_lookup_elem"),
    M.BPF_MAP_TYPE_SOCKHASH: ("sk_redirect_hash", "sock_hash_update", "msg_redirect_hash",
                              "sk_select_reuseport", "map_lookup_elem"),
    M.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: ("sk_select_reuseport",),
    M.BPF_MAP_TYPE_QUEUE: ("map_peek_elem", "map_pop_elem", "map_push_elem"),
    M.BPF_MAP_TYPE_STACK: ("map_peek_elem", "map_pop_elem", "map_push_elem"),
    M.BPF_MAP_TYPE_SK_STORAGE: ("sk_storage_get", "sk_storage_delete", "kptr_xchg"),
    M.BPF_MAP_TYPE_INODE_STORAGE: ("inode_storage_get", "inode_storage_delete", "kptr_xchg"),
    M.BPF_MAP_TYPE_TASK_STORAGE: ("task_storage_get", "task_storage_delete", "kptr_xchg"),
    M.BPF_MAP_TYPE_CGRP_STORAGE: ("cgrp_storage_get", "cgrp_storage_delete", "kptr_xchg"),
    M.BPF_MAP_TYPE_BLOOM_FILTER: ("map_peek_elem", "map_push_elem"),
}
_MAP_FUNCS = {k: frozenset(F[n] for n in v) for k, v in _MAP_FUNCS.items()}
# helper -> the map types it accepts (second switch)
_FUNC_MAPS = {
    "tail_call": (M.BPF_MAP_TYPE_PROG_ARRAY,),
    "perf_event_read": (M.BPF_MAP_TYPE_PERF_EVENT_ARRAY,), "perf_event_output": (M.BPF_MAP_TYPE_PERF_EVENT_ARRAY,),
    "perf_event_read_value": (M.BPF_MAP_TYPE_PERF_EVENT_ARRAY,), "skb_output": (M.BPF_MAP_TYPE_PERF_EVENT_ARRAY,),
    "xdp_output": (M.BPF_MAP_TYPE_PERF_EVENT_ARRAY,),
    "ringbuf_output": (M.BPF_MAP_TYPE_RINGBUF,), "ringbuf_reserve": (M.BPF_MAP_TYPE_RINGBUF,),
    "ringbuf_query": (M.BPF_MAP_TYPE_RINGBUF,), "ringbuf_reserve_dynptr": (M.BPF_MAP_TYPE_RINGBUF,),
    "ringbuf_submit_dynptr": (M.BPF_MAP_TYPE_RINGBUF,), "ringbuf_discard_dynptr": (M.BPF_MAP_TYPE_RINGBUF,),
    "user_ringbuf_drain": (M.BPF_MAP_TYPE_USER_RINGBUF,), "get_stackid": (M.BPF_MAP_TYPE_STACK_TRACE,),
    "current_task_under_cgroup": (M.BPF_MAP_TYPE_CGROUP_ARRAY,), "skb_under_cgroup": (M.BPF_MAP_TYPE_CGROUP_ARRAY,),
    "redirect_map": (M.BPF_MAP_TYPE_DEVMAP, M.BPF_MAP_TYPE_DEVMAP_HASH, M.BPF_MAP_TYPE_CPUMAP,
                     M.BPF_MAP_TYPE_XSKMAP),
    "sk_redirect_map": (M.BPF_MAP_TYPE_SOCKMAP,), "msg_redirect_map": (M.BPF_MAP_TYPE_SOCKMAP,),
    "sock_map_update": (M.BPF_MAP_TYPE_SOCKMAP,),
    "sk_redirect_hash": (M.BPF_MAP_TYPE_SOCKHASH,), "msg_redirect_hash": (M.BPF_MAP_TYPE_SOCKHASH,),
    "sock_hash_update": (M.BPF_MAP_TYPE_SOCKHASH,),
    "get_local_storage": (M.BPF_MAP_TYPE_CGROUP_STORAGE, M.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE),
    "sk_select_reuseport": (M.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, M.BPF_MAP_TYPE_SOCKMAP, M.BPF_MAP_TYPE_SOCKHASH),
    "map_pop_elem": (M.BPF_MAP_TYPE_QUEUE, M.BPF_MAP_TYPE_STACK),
    "map_peek_elem": (M.BPF_MAP_TYPE_QUEUE, M.BPF_MAP_TYPE_STACK, M.BPF_MAP_TYPE_BLOOM_FILTER),
    "map_push_elem": (M.BPF_MAP_TYPE_QUEUE, M.BPF_MAP_TYPE_STACK, M.BPF_MAP_TYPE_BLOOM_FILTER),
    "map_lookup_percpu_elem": (M.BPF_MAP_TYPE_PERCPU_ARRAY, M.BPF_MAP_TYPE_PERCPU_HASH,
                               M.BPF_MAP_TYPE_LRU_PERCPU_HASH),
    "sk_storage_get": (M.BPF_MAP_TYPE_SK_STORAGE,), "sk_storage_delete": (M.BPF_MAP_TYPE_SK_STORAGE,),
    "inode_storage_get": (M.BPF_MAP_TYPE_INODE_STORAGE,), "inode_storage_delete": (M.BPF_MAP_TYPE_INODE_STORAGE,),
    "task_storage_get": (M.BPF_MAP_TYPE_TASK_STORAGE,), "task_storage_delete": (M.BPF_MAP_TYPE_TASK_STORAGE,),
    "cgrp_storage_get": (M.BPF_MAP_TYPE_CGRP_STORAGE,), "cgrp_storage_delete": (M.BPF_MAP_TYPE_CGRP_STORAGE,),
}
_FUNC_MAPS = {F[k]: frozenset(v) for k, v in _FUNC_MAPS.items()}


class ArgMeta:
    """struct bpf_call_arg_meta."""
    __slots__ = ("map", "map_uid", "raw_mode", "pkt_access", "release_regno", "regno", "access_size",
                 "mem_size", "msize_max_value", "ref_obj_id", "dynptr_id", "func_id", "subprogno",
                 "ret_btf_id", "kptr_field", "pkt_access_dynptr", "const_map_key")

    def __init__(self, func_id, pkt_access):
        self.map = None
        self.map_uid = 0
        self.raw_mode = False
        self.pkt_access = pkt_access
        self.release_regno = 0
        self.regno = 0
        self.access_size = 0
        self.mem_size = 0
        self.msize_max_value = 0
        self.ref_obj_id = 0
        self.dynptr_id = 0
        self.func_id = func_id
        self.subprogno = 0
        self.ret_btf_id = None
        self.kptr_field = None
        self.pkt_access_dynptr = False
        self.const_map_key = -1


def can_elide_value_nullness(m):
    """Arrays (not inner-map templates): a lookup with a constant key below max_entries cannot miss."""
    return m.map_type in (M.BPF_MAP_TYPE_ARRAY, M.BPF_MAP_TYPE_PERCPU_ARRAY) and \
        not m.map_flags & M.BPF_F_INNER_MAP


class CallMixin:

    def get_constant_map_key(self, key, key_size):
        """get_constant_map_key: the key the stack holds at the key pointer when it is known (zero bytes
        or a spill of a constant of the key's size; privileged programs only), else -1."""
        if not self.bpf_capable or key.type != PTR_TO_STACK or key.vm != 0:
            return -1
        st = self.cur_state
        frame = st.frame[key.frameno]
        slot = -(s64(key.vv) + key.off) - 1
        spi, off = slot // 8, slot % 8
        if slot < 0 or spi >= len(frame.stack):
            return -1
        stype = frame.stack[spi].st
        zero = 0
        i = off
        while i >= 0 and stype[i] == STACK_ZERO:
            zero += 1
            i -= 1
        if zero >= key_size:
            return 0
        if not frame.stack[spi].is_spilled_scalar():
            return -1
        spill = 0
        i = off
        while i >= 0 and stype[i] == STACK_SPILL:
            spill += 1
            i -= 1
        if spill != key_size:
            return -1
        r = frame.stack[spi].spilled
        if r.vm != 0:
            return -1
        return r.vv

    # ------------------------------------------------------------------ helpers
    def check_helper_call(self, insn):
        func_id = insn[4]
        insn_idx = self.insn_idx
        if func_id < 0 or func_id >= MAX_FUNC_ID:
            self.fail(errno.EINVAL, "invalid func %s#%d\n" % (func_id_name(func_id), func_id))
        fn = self.ops.get_func_proto(func_id, self)
        if fn is None:
            self.fail(errno.EINVAL, "program of this type cannot use helper %s#%d\n" % (func_id_name(func_id),
                                                                                       func_id))
        if not self.gpl_compatible and fn.gpl_only:
            self.fail(errno.EINVAL, "cannot call GPL-restricted function from non-GPL compatible program\n")
        if fn.might_sleep and not self.in_sleepable():
            self.fail(errno.EINVAL, "helper call might sleep in a non-sleepable prog\n")
        changes_data = bpf_helper_changes_pkt_data(func_id)
        meta = ArgMeta(func_id, fn.pkt_access)
        st = self.cur_state
        if st.active_rcu_lock and fn.might_sleep:
            self.fail(errno.EINVAL, "sleepable helper %s#%d in rcu_read_lock region\n"
                      % (func_id_name(func_id), func_id))
        if st.active_preempt_lock and fn.might_sleep:
            self.fail(errno.EINVAL, "sleepable helper %s#%d in non-preemptible region\n"
                      % (func_id_name(func_id), func_id))
        for i in range(5):
            self.check_func_arg(i, meta, fn, insn_idx)
        self.record_func_map(meta, func_id)
        self.record_func_key(meta, func_id)
        for i in range(meta.access_size):
            self.check_mem_access(meta.regno, i, 0x10, BPF_WRITE, -1, False, False)
        regs = st.frame[st.curframe].regs
        if meta.release_regno:
            ok = False
            at = fn.arg_type[meta.release_regno - 1]
            if at & 0xff == ARG_PTR_TO_DYNPTR:
                ok = self.unmark_dynptr(regs[meta.release_regno])
            elif func_id == F["kptr_xchg"] and meta.ref_obj_id:
                ok = self.release_reference(meta.ref_obj_id)
            elif meta.ref_obj_id:
                ok = self.release_reference(meta.ref_obj_id)
            elif regs[meta.release_regno].is_null():
                ok = True
            if not ok:
                self.fail(errno.EINVAL, "func %s#%d reference has not been acquired before\n"
                          % (func_id_name(func_id), func_id))
        if func_id == F["tail_call"]:
            if st.active_lock is not None:
                self.fail(errno.EINVAL, "tail_call cannot be used inside bpf_spin_lock-ed region\n")
            if self.check_reference_leak(False):
                self.fail(errno.EINVAL, "tail_call would lead to reference leak\n")
            if st.active_rcu_lock:
                self.fail(errno.EINVAL, "tail_call cannot be used inside bpf_rcu_read_lock-ed region\n")
            if st.active_preempt_lock:
                self.fail(errno.EINVAL, "tail_call cannot be used inside bpf_preempt_disable-ed region\n")
        elif func_id == F["get_local_storage"]:
            if not regs[2].is_null():
                self.fail(errno.EINVAL, "get_local_storage() doesn't support non-zero flags\n")
        elif func_id == F["for_each_map_elem"]:
            self.push_callback_call(insn, insn_idx, meta.subprogno, self.set_map_elem_callback_state)
        elif func_id == F["timer_set_callback"]:
            self.push_callback_call(insn, insn_idx, meta.subprogno, self.set_timer_callback_state)
        elif func_id == F["find_vma"]:
            self.push_callback_call(insn, insn_idx, meta.subprogno, self.set_find_vma_callback_state)
        elif func_id == F["loop"]:
            if st.frame[st.curframe].callback_depth < regs[1].umax:
                self.push_callback_call(insn, insn_idx, meta.subprogno, self.set_loop_callback_state)
            else:
                st.frame[st.curframe].callback_depth = 0
                if self.log_level & 2:
                    self.verbose("frame%d bpf_loop iteration limit reached\n" % st.curframe)
        elif func_id == F["dynptr_from_mem"]:
            if regs[1].type != PTR_TO_MAP_VALUE:
                self.fail(errno.EACCES, "Unsupported reg type %s for bpf_dynptr_from_mem data\n"
                          % reg_type_str(regs[1].type))
        elif func_id == F["user_ringbuf_drain"]:
            self.push_callback_call(insn, insn_idx, meta.subprogno, self.set_user_ringbuf_callback_state)
        # caller-saved registers are clobbered
        for r in CALLER_SAVED:
            mark_not_init(regs[r], not self.bpf_capable)
            self.check_reg_arg(r, DST_OP_NO_MARK)
        r0 = regs[0]
        r0.subreg_def = 0
        ret = fn.ret_type
        base = ret & 0xff
        flag = ret & ~0xff
        if base == RET_INTEGER:
            self.mark_reg_unknown(r0)
        elif base == RET_VOID:
            r0.type = NOT_INIT
        elif base == RET_PTR_TO_MAP_VALUE:
            mark_known_zero(r0)
            if meta.map is None:
                self.fail(errno.EINVAL, "kernel subsystem misconfigured verifier\n")
            if func_id == F["map_lookup_elem"] and self.array_const_key_nonnull and \
                    can_elide_value_nullness(meta.map) and \
                    0 <= meta.const_map_key < meta.map.max_entries:
                flag &= ~PTR_MAYBE_NULL   # a constant key within an array: the value exists
            r0.map = meta.map
            r0.map_uid = meta.map_uid
            r0.type = PTR_TO_MAP_VALUE | flag
            if not flag & PTR_MAYBE_NULL and any(k == "spin_lock" for k, _, _, _ in map_fields(meta.map)):
                self.id_gen += 1
                r0.id = self.id_gen
        elif base == RET_PTR_TO_SOCKET:
            mark_known_zero(r0)
            r0.type = PTR_TO_SOCKET | flag
        elif base == RET_PTR_TO_SOCK_COMMON:
            mark_known_zero(r0)
            r0.type = PTR_TO_SOCK_COMMON | flag
        elif base == RET_PTR_TO_TCP_SOCK:
            mark_known_zero(r0)
            r0.type = PTR_TO_TCP_SOCK | flag
        elif base == RET_PTR_TO_MEM:
            mark_known_zero(r0)
            r0.type = PTR_TO_MEM | flag
            r0.mem_size = meta.mem_size
        elif base == RET_PTR_TO_MEM_OR_BTF_ID:
            mark_known_zero(r0)
            rb, rid = meta.ret_btf_id
            t, _ = skip_mods(rb, rid)
            if t is not None and t.kind not in (BTF_KIND_STRUCT, BTF_KIND_UNION):
                r = rb.resolve_size(rid)
                if r is None:
                    self.fail(errno.EINVAL, "unable to resolve the size of type '%s': %d\n" % (rb.name(t), -22))
                r0.type = PTR_TO_MEM | flag
                r0.mem_size = r[1]
            else:
                r0.type = PTR_TO_BTF_ID | (flag & ~MEM_RDONLY)
                r0.btf, r0.btf_id = rb, rid
        elif base == RET_PTR_TO_BTF_ID:
            mark_known_zero(r0)
            r0.type = PTR_TO_BTF_ID | flag
            if func_id == F["kptr_xchg"]:
                kf = meta.kptr_field
                r0.btf, r0.btf_id = self.field_btf(kf), kf.btf_id
                if not getattr(r0.btf, "kernel_btf", False):
                    r0.type |= MEM_ALLOC
                    if kf.kind == "kptr_percpu":
                        r0.type |= MEM_PERCPU
            else:
                if fn.ret_btf == "BPF_PTR_POISON":
                    self.verbose("verifier internal error:")
                    self.fail(errno.EINVAL, "func %s has non-overwritten BPF_PTR_POISON return type\n"
                              % func_id_name(func_id))
                r0.btf, r0.btf_id = self.btf_struct(fn.ret_btf)
            if not r0.btf_id:
                self.fail(errno.EINVAL, "invalid return type %u of func %s#%d\n" % (base, func_id_name(func_id),
                                                                                   func_id))
        else:
            self.fail(errno.EINVAL, "unknown return type %u of func %s#%d\n" % (base, func_id_name(func_id),
                                                                               func_id))
        if r0.type & PTR_MAYBE_NULL:
            self.id_gen += 1
            r0.id = self.id_gen
        if func_id in _PTR_CAST:
            r0.ref_obj_id = meta.ref_obj_id
        elif func_id in _ACQUIRE or (func_id == F["map_lookup_elem"] and meta.map is not None and
                                     meta.map.map_type in (M.BPF_MAP_TYPE_SOCKMAP, M.BPF_MAP_TYPE_SOCKHASH)):
            rid = self.acquire_reference_state(insn_idx)
            r0.id = rid
            r0.ref_obj_id = rid
        self.do_refine_retval_range(r0, fn.ret_type, func_id, meta)
        self.check_map_func_compatibility(meta.map, func_id)
        if func_id == F["get_func_ip"]:
            self.check_get_func_ip()
        if changes_data:
            self.clear_all_pkt_pointers()

    def do_refine_retval_range(self, r0, ret_type, func_id, meta):
        if ret_type != RET_INTEGER:
            return
        if func_id in (F["get_stack"], F["get_task_stack"], F["probe_read_str"], F["probe_read_kernel_str"],
                       F["probe_read_user_str"]):
            r0.smax = meta.msize_max_value if meta.msize_max_value <= (1 << 63) - 1 else s64(meta.msize_max_value)
            r0.s32max = _s32(meta.msize_max_value)
            r0.smin = -MAX_ERRNO
            r0.s32min = -MAX_ERRNO
            reg_bounds_sync(r0)
        elif func_id == F["get_smp_processor_id"]:
            n = self.nr_cpu_ids - 1
            r0.umax = r0.u32max = r0.smax = r0.s32max = n
            r0.umin = r0.u32min = r0.smin = r0.s32min = 0
            reg_bounds_sync(r0)
        self.reg_bounds_sanity_check(r0, "retval")

    def check_get_func_ip(self):
        t = self.prog_type
        fid = F["get_func_ip"]
        if t == M.BPF_PROG_TYPE_TRACING:
            if not self.has_trampoline:
                self.fail(524, "func %s#%d supported only for fentry/fexit/fmod_ret programs\n"
                          % (func_id_name(fid), fid))
            return
        if t == M.BPF_PROG_TYPE_KPROBE:
            return
        self.fail(524, "func %s#%d not supported for program type %d\n" % (func_id_name(fid), fid, t))

    def clear_all_pkt_pointers(self):
        for r in self.cur_state.all_regs():
            if r.type in (PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_PACKET_END):
                self.mark_reg_invalid(r)

    def mark_reg_invalid(self, reg):
        if not self.allow_ptr_leaks:
            mark_not_init(reg, not self.bpf_capable)
        else:
            self.mark_reg_unknown(reg)

    def record_func_map(self, meta, func_id):
        if func_id not in _RECORD_MAP:
            return
        m = meta.map
        if m is None:
            self.fail(errno.EINVAL, "kernel subsystem misconfigured verifier\n")
        if m.map_flags & M.BPF_F_RDONLY_PROG and func_id in (F["map_delete_elem"], F["map_update_elem"],
                                                             F["map_push_elem"], F["map_pop_elem"]):
            self.fail(errno.EACCES, "write into map forbidden\n")
        aux = self.insn_aux[self.insn_idx]
        unpriv = not getattr(m, "bypass_spec_v1", False)
        aux.map_ptr_unpriv = aux.map_ptr_unpriv or unpriv
        if aux.map_ptr is None:
            aux.map_ptr = m
        elif aux.map_ptr is not m:
            aux.map_ptr_poisoned = True
        if func_id == F["tail_call"]:
            self.tail_calls.add(self.insn_idx)

    def record_func_key(self, meta, func_id):
        if func_id != F["tail_call"]:
            return
        m = meta.map
        if m is None or m.map_type != M.BPF_MAP_TYPE_PROG_ARRAY:
            self.fail(errno.EINVAL, "kernel subsystem misconfigured verifier\n")

    def check_map_func_compatibility(self, m, func_id):
        if m is None:
            return
        err = False
        allowed = _MAP_FUNCS.get(m.map_type)
        if allowed is not None and func_id not in allowed:
            if m.map_type in (M.BPF_MAP_TYPE_SOCKMAP, M.BPF_MAP_TYPE_SOCKHASH):
                if not self.may_update_sockmap(func_id):
                    err = True
            else:
                err = True
        if not err:
            maps = _FUNC_MAPS.get(func_id)
            if maps is not None and m.map_type not in maps:
                err = True
            if func_id == F["tail_call"] and not err and len(self.subprogs) > 1 and not self.jit_tail_calls:
                self.fail(errno.EINVAL, "tail_calls are not allowed in non-JITed programs with bpf-to-bpf calls\n")
        if err:
            self.fail(errno.EINVAL, "cannot pass map_type %d into func %s#%d\n" % (m.map_type,
                                                                                  func_id_name(func_id), func_id))

    def may_update_sockmap(self, func_id):
        if func_id not in (F["map_update_elem"], F["map_delete_elem"]):
            return False
        t = self.prog_type
        if t == M.BPF_PROG_TYPE_TRACING and self.expected_attach_type == M.BPF_TRACE_ITER:
            return True
        if t == M.BPF_PROG_TYPE_SOCK_OPS and func_id == F["map_delete_elem"]:
            return True
        if t in (M.BPF_PROG_TYPE_SOCKET_FILTER, M.BPF_PROG_TYPE_SCHED_CLS, M.BPF_PROG_TYPE_SCHED_ACT,
                 M.BPF_PROG_TYPE_XDP, M.BPF_PROG_TYPE_SK_REUSEPORT, M.BPF_PROG_TYPE_FLOW_DISSECTOR,
                 M.BPF_PROG_TYPE_SK_LOOKUP):
            return True
        self.verbose("cannot update sockmap in this context\n")
        return False

    # -- arguments --
    def check_func_arg(self, arg, meta, fn, insn_idx):
        regno = arg + 1
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        reg = regs[regno]
        arg_type = fn.arg_type[arg]
        if arg_type == ARG_DONTCARE:
            return
        self.check_reg_arg(regno, SRC_OP)
        if arg_type == _ANY:
            if self.is_pointer_value(regno):
                self.fail(errno.EACCES, "R%d leaks addr into helper function\n" % regno)
            return
        base = arg_type & 0xff
        if type_is_pkt_pointer(reg.type) and not self.may_access_direct_pkt_data(meta, BPF_READ):
            self.fail(errno.EACCES, "helper access to the packet is not allowed\n")
        if base == ARG_PTR_TO_MAP_VALUE:
            if meta.map is None:
                self.fail(errno.EACCES, "invalid map_ptr to access map->type\n")
            mt = meta.map.map_type
            if mt in (M.BPF_MAP_TYPE_SOCKMAP, M.BPF_MAP_TYPE_SOCKHASH):
                if arg_type == ARG_PTR_TO_MAP_VALUE:
                    arg_type = ARG_PTR_TO_BTF_ID_SOCK_COMMON
                else:
                    self.fail(errno.EINVAL, "invalid arg_type for sockmap/sockhash\n")
            elif mt == M.BPF_MAP_TYPE_BLOOM_FILTER and meta.func_id == F["map_peek_elem"]:
                arg_type = ARG_PTR_TO_MAP_VALUE | MEM_UNINIT | MEM_WRITE
            base = arg_type & 0xff
        skip_type_check = False
        if reg.is_null() and arg_type & PTR_MAYBE_NULL:
            skip_type_check = True
        if not skip_type_check:
            self.check_reg_type(regno, arg_type, fn.arg_btf.get(arg), meta)
            self.check_func_arg_reg_off(reg, regno, arg_type)
        if arg_type & OBJ_RELEASE:
            if base == ARG_PTR_TO_DYNPTR:
                self.check_release_dynptr(reg, regno)
            elif not reg.ref_obj_id and not reg.is_null():
                self.fail(errno.EINVAL, "R%d must be referenced when passed to release function\n" % regno)
            if meta.release_regno:
                self.fail(errno.EFAULT, "verifier internal error: more than one release argument\n")
            meta.release_regno = regno
        if reg.ref_obj_id and base != ARG_KPTR_XCHG_DEST:
            if meta.ref_obj_id:
                self.fail(errno.EFAULT, "verifier internal error: more than one arg with ref_obj_id R%d %u %u\n"
                          % (regno, reg.ref_obj_id, meta.ref_obj_id))
            meta.ref_obj_id = reg.ref_obj_id
        if base == ARG_CONST_MAP_PTR:
            if meta.map is not None:
                if meta.map is not reg.map or meta.map_uid != reg.map_uid:
                    self.fail(errno.EINVAL, "timer pointer in R1 map_uid=%d doesn't match map pointer in R2 "
                                            "map_uid=%d\n" % (meta.map_uid, reg.map_uid))
            meta.map = reg.map
            meta.map_uid = reg.map_uid
        elif base == ARG_PTR_TO_MAP_KEY:
            if meta.map is None:
                self.fail(errno.EACCES, "invalid map_ptr to access map->key\n")
            self.check_helper_mem_access(regno, meta.map.key_size, BPF_READ, False, None)
            if can_elide_value_nullness(meta.map):
                meta.const_map_key = self.get_constant_map_key(reg, meta.map.key_size)
        elif base == ARG_PTR_TO_MAP_VALUE:
            if arg_type & PTR_MAYBE_NULL and reg.is_null():
                return
            if meta.map is None:
                self.fail(errno.EACCES, "invalid map_ptr to access map->value\n")
            meta.raw_mode = bool(arg_type & MEM_UNINIT)
            self.check_helper_mem_access(regno, meta.map.value_size,
                                         BPF_WRITE if arg_type & MEM_WRITE else BPF_READ, False, meta)
        elif base == ARG_PTR_TO_PERCPU_BTF_ID:
            if not reg.btf_id:
                self.fail(errno.EACCES, "Helper has invalid btf_id in R%d\n" % regno)
            meta.ret_btf_id = (reg.btf or self.vmlinux, reg.btf_id)
        elif base == ARG_PTR_TO_SPIN_LOCK:
            if meta.func_id == F["spin_lock"]:
                self.process_spin_lock(regno, True)
            elif meta.func_id == F["spin_unlock"]:
                self.process_spin_lock(regno, False)
            else:
                self.fail(errno.EFAULT, "verifier internal error\n")
        elif base == ARG_PTR_TO_TIMER:
            self.process_timer_func(regno, meta)
        elif base == ARG_PTR_TO_FUNC:
            meta.subprogno = reg.subprogno
        elif base == ARG_PTR_TO_MEM:
            meta.raw_mode = bool(arg_type & MEM_UNINIT)
            if arg_type & MEM_FIXED_SIZE:
                self.check_helper_mem_access(regno, fn.arg_size[arg],
                                             BPF_WRITE if arg_type & MEM_WRITE else BPF_READ, False, meta)
                if arg_type & MEM_ALIGNED:
                    self.check_ptr_alignment(reg, 0, fn.arg_size[arg], True)
        elif base in (ARG_CONST_SIZE, ARG_CONST_SIZE_OR_ZERO):
            prev = fn.arg_type[arg - 1]
            self.check_mem_size_reg(reg, regno, BPF_WRITE if prev & MEM_WRITE else BPF_READ,
                                    base == ARG_CONST_SIZE_OR_ZERO, meta)
        elif base == ARG_PTR_TO_DYNPTR:
            self.process_dynptr_func(regno, insn_idx, arg_type)
        elif base == ARG_CONST_ALLOC_SIZE_OR_ZERO:
            if reg.vm != 0:
                self.fail(errno.EACCES, "R%d is not a known constant'\n" % regno)
            meta.mem_size = reg.vv
        elif base == ARG_PTR_TO_CONST_STR:
            self.check_reg_const_str(reg, regno)
        elif base == ARG_KPTR_XCHG_DEST:
            self.process_kptr_func(regno, meta)

    def check_reg_type(self, regno, arg_type, arg_btf, meta):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        compatible = COMPATIBLE.get(arg_type & 0xff)
        if compatible is None:
            self.fail(errno.EFAULT, "verifier internal error: unsupported arg type %d\n" % arg_type)
        t = reg.type
        if arg_type & MEM_RDONLY:
            t &= ~MEM_RDONLY
        if arg_type & PTR_MAYBE_NULL:
            t &= ~PTR_MAYBE_NULL
        if arg_type & 0xff == ARG_PTR_TO_MEM:
            t &= ~DYNPTR_TYPE_FLAG_MASK
        if meta.func_id == F["kptr_xchg"] and t & MEM_ALLOC and regno == 2:
            t &= ~(MEM_ALLOC | MEM_PERCPU)
        if t not in compatible:
            self.fail(errno.EACCES, "R%d type=%s expected=%s\n" % (regno, reg_type_str(reg.type),
                                                                   ", ".join(reg_type_str(c) for c in compatible)))
        if base_type(reg.type) != PTR_TO_BTF_ID:
            return
        if compatible is _MEM_TYPES:
            if not arg_type & MEM_RDONLY:
                self.fail(errno.EACCES, "%s() may write into memory pointed by R%d type=%s\n"
                          % (func_id_name(meta.func_id), regno, reg_type_str(reg.type)))
            return
        rt = reg.type
        if rt in _BTF_ARG_TYPES:
            strict = bool(arg_type & OBJ_RELEASE) and meta.func_id != F["sk_release"]
            if rt & PTR_MAYBE_NULL and (not arg_type & PTR_MAYBE_NULL or arg_type & OBJ_RELEASE):
                self.fail(errno.EACCES, "Possibly NULL pointer passed to helper arg%d\n" % regno)
            if arg_btf is None and arg_type & 0xff == ARG_PTR_TO_BTF_ID_SOCK_COMMON:
                arg_btf = "sock_common"
            if meta.func_id == F["kptr_xchg"]:
                self.map_kptr_match_type(meta.kptr_field, reg, regno)
            elif arg_btf is None:
                self.fail(errno.EFAULT, "verifier internal error: missing arg compatible BTF ID\n")
            elif arg_btf == "BPF_PTR_POISON":
                self.verbose("verifier internal error:")
                self.fail(errno.EACCES, "R%d has non-overwritten BPF_PTR_POISON type\n" % regno)
            else:
                kb, kid = self.btf_struct(arg_btf)
                if not btf_struct_ids_match(reg.btf or kb, reg.btf_id, reg.off, kb, kid, strict,
                                            not rt & MEM_ALLOC):
                    self.fail(errno.EACCES, "R%d is of type %s but %s is expected\n"
                              % (regno, btf_type_name(reg), kb.name(kid)))
        elif rt in (PTR_TO_BTF_ID | MEM_ALLOC, PTR_TO_BTF_ID | MEM_PERCPU | MEM_ALLOC):
            if meta.func_id not in (F["spin_lock"], F["spin_unlock"], F["kptr_xchg"]):
                self.fail(errno.EFAULT, "verifier internal error: unimplemented handling of MEM_ALLOC\n")
            if meta.func_id == F["kptr_xchg"] and regno == 2:
                self.map_kptr_match_type(meta.kptr_field, reg, regno)
        elif rt in (PTR_TO_BTF_ID | MEM_PERCPU, PTR_TO_BTF_ID | MEM_PERCPU | MEM_RCU,
                    PTR_TO_BTF_ID | MEM_PERCPU | PTR_TRUSTED):
            pass
        else:
            self.fail(errno.EFAULT, "verifier internal error: invalid PTR_TO_BTF_ID register for type match\n")

    def check_func_arg_reg_off(self, reg, regno, arg_type):
        t = reg.type
        if arg_type & OBJ_RELEASE:
            if arg_type & 0xff == ARG_PTR_TO_DYNPTR and t == PTR_TO_STACK:
                return
            if reg.off:
                self.fail(errno.EINVAL, "R%d must have zero offset when passed to release func or trusted arg to "
                                        "kfunc\n" % regno)
            return self.check_ptr_off_reg(reg, regno, False)
        if t in (PTR_TO_STACK, PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_MEM,
                 PTR_TO_MEM | MEM_RDONLY, PTR_TO_MEM | MEM_RINGBUF, PTR_TO_BUF, PTR_TO_BUF | MEM_RDONLY, 18,
                 SCALAR_VALUE):
            return
        if t in (PTR_TO_BTF_ID, PTR_TO_BTF_ID | MEM_ALLOC, PTR_TO_BTF_ID | PTR_TRUSTED, PTR_TO_BTF_ID | MEM_RCU):
            return self.check_ptr_off_reg(reg, regno, True)
        return self.check_ptr_off_reg(reg, regno, False)

    def check_helper_mem_access(self, regno, access_size, access_type, zero_size_allowed, meta):
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        reg = regs[regno]
        b = base_type(reg.type)
        if b in (PTR_TO_PACKET, PTR_TO_PACKET_META):
            return self.check_packet_access(regno, reg.off, access_size, zero_size_allowed)
        if b == PTR_TO_MAP_KEY:
            if access_type == BPF_WRITE:
                self.fail(errno.EACCES, "R%d cannot write into %s\n" % (regno, reg_type_str(reg.type)))
            return self.check_mem_region_access(regno, reg.off, access_size, reg.map.key_size, False)
        if b == PTR_TO_MAP_VALUE:
            self.check_map_access_type(regno, reg.off, access_size, access_type)
            return self.check_map_access(regno, reg.off, access_size, zero_size_allowed, helper=True)
        if b == PTR_TO_MEM:
            if reg.type & MEM_RDONLY and access_type == BPF_WRITE:
                self.fail(errno.EACCES, "R%d cannot write into %s\n" % (regno, reg_type_str(reg.type)))
            return self.check_mem_region_access(regno, reg.off, access_size, reg.mem_size, zero_size_allowed)
        if b == PTR_TO_BUF:
            if reg.type & MEM_RDONLY and access_type == BPF_WRITE:
                self.fail(errno.EACCES, "R%d cannot write into %s\n" % (regno, reg_type_str(reg.type)))
            return self.check_buffer_access(reg, regno, reg.off, access_size,
                                            "rdonly" if reg.type & MEM_RDONLY else "rdwr")
        if b == PTR_TO_STACK:
            return self.check_stack_range_initialized(regno, reg.off, access_size, zero_size_allowed,
                                                      ACCESS_HELPER, meta, access_type)
        if b == PTR_TO_BTF_ID:
            return self.check_ptr_to_btf_access(regno, reg.off, access_size, BPF_READ, -1)
        if b == PTR_TO_CTX and not self.ops.convert_ctx_access:
            if access_size == 0:
                if zero_size_allowed:
                    return
                self.fail(errno.EACCES)
            return self.check_mem_access(regno, access_size - 1, 0x10, access_type, -1, False, False)
        if zero_size_allowed and access_size == 0 and reg.is_null():
            return
        self.verbose("R%d type=%s " % (regno, reg_type_str(reg.type)))
        self.fail(errno.EACCES, "expected=%s\n" % reg_type_str(PTR_TO_STACK))

    def check_mem_size_reg(self, reg, regno, access_type, zero_size_allowed, meta):
        meta.msize_max_value = reg.umax
        if reg.vm != 0:
            meta = None
        if reg.smin < 0:
            self.fail(errno.EACCES, "R%d min value is negative, either use unsigned or 'var &= const'\n" % regno)
        if reg.umin == 0 and not zero_size_allowed:
            self.fail(errno.EACCES, "R%d invalid zero-sized read: u64=[%d,%d]\n" % (regno, s64(reg.umin),
                                                                                   s64(reg.umax)))
        if reg.umax >= BPF_MAX_VAR_SIZ:
            self.fail(errno.EACCES, "R%d unbounded memory access, use 'var &= const' or 'if (var < const)'\n"
                      % regno)
        self.check_helper_mem_access(regno - 1, reg.umax, access_type, zero_size_allowed, meta)

    def check_reg_const_str(self, reg, regno):
        if reg.type != PTR_TO_MAP_VALUE:
            self.fail(errno.EINVAL)
        m = reg.map
        if not self.map_is_rdonly(m):
            self.fail(errno.EACCES, "R%d does not point to a readonly map'\n" % regno)
        if reg.vm != 0:
            self.fail(errno.EACCES, "R%d is not a constant address'\n" % regno)
        if not self.map_has_direct_value(m):
            self.fail(errno.EACCES, "no direct value access support for this map type\n")
        self.check_map_access(regno, reg.off, m.value_size - reg.off, False, helper=True)
        off = reg.off + reg.vv
        data = getattr(m, "direct_value", None)
        raw = data(off, m.value_size - off) if data else bytes(m.value_size - off)
        if b"\0" not in raw:
            self.fail(errno.EINVAL, "string is not zero-terminated\n")

    def check_release_dynptr(self, reg, regno):
        if reg.type == PTR_TO_STACK:
            spi = self.dynptr_get_spi(reg)
            state = self.reg_func(reg)
            if spi < 0 or not state.stack[spi].spilled.ref_obj_id:
                self.fail(errno.EINVAL, "arg %d is an unacquired reference\n" % regno)
        else:
            self.fail(errno.EINVAL, "cannot release unowned const bpf_dynptr\n")

    # -- references --
    def acquire_reference_state(self, insn_idx):
        from .state import RefState
        self.id_gen += 1
        st = self.cur_state
        st.refs = st.refs + [RefState(self.id_gen, insn_idx, "ptr", st.curframe if
                                      st.frame[st.curframe].in_callback_fn else 0)]
        return self.id_gen

    def release_reference_state(self, vstate, id_):
        for i, r in enumerate(vstate.refs):
            if r.id == id_ and r.kind == "ptr":
                vstate.refs = vstate.refs[:i] + vstate.refs[i + 1:]
                return True
        return False

    def release_reference(self, ref_obj_id):
        if not self.release_reference_state(self.cur_state, ref_obj_id):
            return False
        for r in self.cur_state.all_regs():
            if r.ref_obj_id == ref_obj_id:
                self.mark_reg_invalid(r)
        return True

    def check_reference_leak(self, exception_exit):
        st = self.cur_state
        state = st.frame[st.curframe]
        if not exception_exit and state.frameno and not state.in_callback_fn:
            return False
        lingering = False
        for r in st.refs:
            if r.kind != "ptr":
                continue
            if not exception_exit and state.in_callback_fn and r.ptr != state.frameno:
                continue
            self.verbose("Unreleased reference id=%d alloc_insn=%d\n" % (r.id, r.insn_idx))
            lingering = True
        return lingering

    # -- locks, timers, kptrs --
    def process_spin_lock(self, regno, is_lock):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        st = self.cur_state
        if reg.vm != 0:
            self.fail(errno.EINVAL, "R%d doesn't have constant offset. bpf_spin_lock has to be at the constant "
                                    "offset\n" % regno)
        m = reg.map if reg.type == PTR_TO_MAP_VALUE else None
        if m is not None and not getattr(m, "btf", None) and not map_fields(m):
            self.fail(errno.EINVAL, "map '%s' has to have BTF in order to use bpf_spin_lock\n" % _map_name(m))
        fields = [f for f in map_fields(m)] if m is not None else []
        locks = [f for f in fields if f[0] == "spin_lock"]
        if not locks:
            self.fail(errno.EINVAL, "%s '%s' has no valid bpf_spin_lock\n" % ("map" if m is not None else "local",
                                                                              _map_name(m) if m else "kptr"))
        if locks[0][1] != reg.vv + reg.off:
            self.fail(errno.EINVAL, "off %d doesn't point to 'struct bpf_spin_lock' that is at %d\n"
                      % (reg.vv + reg.off, locks[0][1]))
        if is_lock:
            if st.active_lock is not None:
                self.fail(errno.EINVAL, "Locking two bpf_spin_locks are not allowed\n")
            st.active_lock = (m, reg.id)
        else:
            if st.active_lock is None:
                self.fail(errno.EINVAL, "bpf_spin_unlock without taking a lock\n")
            if st.active_lock[0] is not m or st.active_lock[1] != reg.id:
                self.fail(errno.EINVAL, "bpf_spin_unlock of different lock\n")
            st.active_lock = None

    def process_timer_func(self, regno, meta):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        m = reg.map
        if reg.vm != 0:
            self.fail(errno.EINVAL, "R%d doesn't have constant offset. bpf_timer has to be at the constant "
                                    "offset\n" % regno)
        if not getattr(m, "btf", None) and not map_fields(m):
            self.fail(errno.EINVAL, "map '%s' has to have BTF in order to use bpf_timer\n" % _map_name(m))
        timers = [f for f in map_fields(m) if f[0] == "timer"]
        if not timers:
            self.fail(errno.EINVAL, "map '%s' has no valid bpf_timer\n" % _map_name(m))
        if timers[0][1] != reg.vv + reg.off:
            self.fail(errno.EINVAL, "off %d doesn't point to 'struct bpf_timer' that is at %d\n"
                      % (reg.vv + reg.off, timers[0][1]))
        if meta.map is not None:
            self.fail(errno.EFAULT, "verifier bug. Two map pointers in a timer helper\n")
        meta.map_uid = reg.map_uid
        meta.map = m

    def process_kptr_func(self, regno, meta):
        reg = self.cur_state.frame[self.cur_state.curframe].regs[regno]
        if reg.type & MEM_ALLOC and base_type(reg.type) == PTR_TO_BTF_ID:
            rec = self.struct_meta_record(reg.btf, reg.btf_id)
        else:
            m = reg.map
            if not getattr(m, "btf", None):
                self.fail(errno.EINVAL, "map '%s' has to have BTF in order to use bpf_kptr_xchg\n" % _map_name(m))
            rec = map_fields(m)
            meta.map = m
        if reg.vm != 0:
            self.fail(errno.EINVAL, "R%d doesn't have constant offset. kptr has to be at the constant offset\n"
                      % regno)
        kptrs = [f for f in rec if f.kind in KPTR_KINDS]
        if not kptrs:
            self.fail(errno.EINVAL, "R%d has no valid kptr\n" % regno)
        off = reg.vv + reg.off
        f = [k for k in kptrs if k.off == off]
        if not f:
            self.fail(errno.EACCES, "off=%d doesn't point to kptr\n" % off)
        if f[0].kind not in ("kptr_ref", "kptr_percpu"):
            self.fail(errno.EACCES, "off=%d kptr isn't referenced kptr\n" % off)
        meta.kptr_field = f[0]

    # -- dynptrs (minimal) --
    def dynptr_get_spi(self, reg):
        off = reg.off + reg.vv
        if off % 8:
            return -1
        return (-off - 1) // 8

    def destroy_dynptr_slot(self, state, spi):
        self.fail(errno.EINVAL, "cannot overwrite referenced dynptr\n")

    def unmark_dynptr(self, reg):
        return False

    def process_dynptr_func(self, regno, insn_idx, arg_type):
        self.fail(errno.EINVAL, "dynptr arguments are not supported by the emulator\n")

    # ------------------------------------------------------------------ bpf2bpf calls
    def check_func_call(self, insn):
        st = self.cur_state
        target = self.insn_idx + insn[4] + 1
        sub = self.find_subprog(target)
        if sub < 0:
            self.fail(errno.EFAULT, "verifier bug. No program starts at insn %d\n" % target)
        caller = st.frame[st.curframe]
        if self.subprog_is_global(sub):
            err = self.btf_check_subprog_call(sub, caller.regs)
            name = self.subprog_name(sub)
            if st.active_lock is not None:
                self.fail(errno.EINVAL, "global function calls are not allowed while holding a lock,\n"
                                        "use static function instead\n")
            if st.active_preempt_lock:
                self.fail(errno.EINVAL, "global function calls are not allowed with preemption disabled,\n"
                                        "use static function instead\n")
            if err:
                self.fail(err, "Caller passes invalid args into func#%d ('%s')\n" % (sub, name))
            self.verbose("Func#%d ('%s') is global and assumed valid.\n" % (sub, name))
            if self.subprogs[sub].changes_pkt_data:
                self.clear_all_pkt_pointers()
            self.subprogs[sub].called = True
            for r in CALLER_SAVED:
                mark_not_init(caller.regs[r], not self.bpf_capable)
                self.check_reg_arg(r, DST_OP_NO_MARK)
            self.mark_reg_unknown(caller.regs[0])
            caller.regs[0].subreg_def = 0
            return
        self.setup_func_entry(sub, self.insn_idx, self.set_callee_state, st)
        for r in CALLER_SAVED:
            mark_not_init(caller.regs[r], not self.bpf_capable)
            self.check_reg_arg_in(caller, r, DST_OP_NO_MARK)
        self.insn_idx = self.subprogs[sub].start - 1
        if self.log_level & 3:
            self.verbose("caller:\n")
            self.verbose(format_func_state(caller, True, refs=st.refs, marks=self.log.liveness_marks))
            self.verbose("callee:\n")
            self.verbose(format_func_state(st.frame[st.curframe], True, refs=st.refs, marks=self.log.liveness_marks))

    def check_reg_arg_in(self, frame, regno, t):
        # __check_reg_arg on a given frame for DST_OP_NO_MARK (only liveness/subreg bookkeeping)
        frame.regs[regno].live |= 4

    def setup_func_entry(self, sub, callsite, set_callee_state, state):
        if state.curframe + 1 >= MAX_CALL_FRAMES:
            self.fail(errno.E2BIG, "the call stack of %d frames is too deep\n" % (state.curframe + 2))
        caller = state.frame[state.curframe]
        callee = init_func_state(callsite, state.curframe + 1, sub, not self.bpf_capable)
        state.frame.append(callee)
        set_callee_state(caller, callee, callsite)
        state.curframe += 1

    def set_callee_state(self, caller, callee, insn_idx):
        for i in range(1, 6):
            callee.regs[i].assign(caller.regs[i])

    def set_map_elem_callback_state(self, caller, callee, insn_idx):
        m = self.insn_aux[insn_idx].map_ptr
        if m is None or m.map_type not in (M.BPF_MAP_TYPE_HASH, M.BPF_MAP_TYPE_LRU_HASH, M.BPF_MAP_TYPE_ARRAY,
                                           M.BPF_MAP_TYPE_PERCPU_HASH, M.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                                           M.BPF_MAP_TYPE_PERCPU_ARRAY):
            self.fail(524, "callback function not allowed for map\n")
        callee.regs[1].assign(caller.regs[1])
        for i, t in ((2, PTR_TO_MAP_KEY), (3, PTR_TO_MAP_VALUE)):
            r = callee.regs[i]
            r.type = t
            mark_known_zero(r)
            r.type = t
            r.map = caller.regs[1].map
            r.map_uid = caller.regs[1].map_uid
        callee.regs[4].assign(caller.regs[3])
        mark_not_init(callee.regs[5])
        callee.in_callback_fn = True
        callee.callback_ret_range = (0, 1)

    def set_loop_callback_state(self, caller, callee, insn_idx):
        callee.regs[1].type = SCALAR_VALUE
        callee.regs[2].assign(caller.regs[3])
        for i in (3, 4, 5):
            mark_not_init(callee.regs[i])
        callee.in_callback_fn = True
        callee.callback_ret_range = (0, 1)

    def set_timer_callback_state(self, caller, callee, insn_idx):
        m = caller.regs[1].map
        uid = caller.regs[1].map_uid
        for i, t in ((1, CONST_PTR_TO_MAP), (2, PTR_TO_MAP_KEY), (3, PTR_TO_MAP_VALUE)):
            r = callee.regs[i]
            mark_known_zero(r)
            r.type = t
            r.map = m
            r.map_uid = uid
        mark_not_init(callee.regs[4])
        mark_not_init(callee.regs[5])
        callee.in_async_callback_fn = True
        callee.callback_ret_range = (0, 1)

    def set_find_vma_callback_state(self, caller, callee, insn_idx):
        callee.regs[1].assign(caller.regs[1])
        r = callee.regs[2]
        mark_known_zero(r)
        r.type = PTR_TO_BTF_ID
        r.btf, r.btf_id = self.btf_struct("vm_area_struct")
        callee.regs[3].assign(caller.regs[4])
        mark_not_init(callee.regs[4])
        mark_not_init(callee.regs[5])
        callee.in_callback_fn = True
        callee.callback_ret_range = (0, 1)

    def set_user_ringbuf_callback_state(self, caller, callee, insn_idx):
        mark_not_init(callee.regs[0])
        r = callee.regs[1]
        mark_known_zero(r)
        r.type = CONST_PTR_TO_DYNPTR
        r.dynptr_type = "local"
        callee.regs[2].assign(caller.regs[3])
        for i in (3, 4, 5):
            mark_not_init(callee.regs[i])
        callee.in_callback_fn = True
        callee.callback_ret_range = (0, 1)

    def push_callback_call(self, insn, insn_idx, sub, set_state):
        st = self.cur_state
        caller = st.frame[st.curframe]
        self.subprogs[sub].is_cb = True
        if insn[4] in ASYNC_CB_FUNCS:
            self.subprogs[sub].is_async_cb = True
            async_cb = self.push_async_cb(self.subprogs[sub].start, insn_idx, sub)
            callee = async_cb.frame[0]
            callee.async_entry_cnt = caller.async_entry_cnt + 1
            set_state(caller, callee, insn_idx)
            return
        cb = self.push_stack(self.subprogs[sub].start, insn_idx, False)
        self.setup_func_entry(sub, insn_idx, set_state, cb)
        cb.callback_unroll_depth += 1
        cb.frame[cb.curframe - 1].callback_depth += 1
        caller.callback_depth = 0

    def push_async_cb(self, insn_idx, prev_insn_idx, sub):
        from .state import VerifierState
        elem = VerifierState()
        elem.frame = [init_func_state(prev_insn_idx, 0, sub, not self.bpf_capable)]
        elem.curframe = 0
        elem.branches = 1
        elem.first_insn_idx = insn_idx
        self.stack.append((elem, insn_idx, prev_insn_idx, self.log.end_pos))
        if len(self.stack) > 8192:
            self.fail(errno.E2BIG, "The sequence of %d jumps is too complex.\n" % len(self.stack))
        return elem

    def prepare_func_exit(self):
        st = self.cur_state
        callee = st.frame[st.curframe]
        r0 = callee.regs[0]
        if r0.type == PTR_TO_STACK:
            self.fail(errno.EINVAL, "cannot return stack pointer to the caller\n")
        caller = st.frame[st.curframe - 1]
        if callee.in_callback_fn:
            if r0.type != SCALAR_VALUE:
                self.fail(errno.EACCES, "R0 not a scalar value\n")
            self.mark_reg_read(r0, REG_LIVE_READ64)
            lo, hi = callee.callback_ret_range
            if not (lo <= r0.smin and r0.smax <= hi):
                self.verbose_invalid_scalar(r0, (lo, hi), "At callback return", "R0")
                self.fail(errno.EINVAL)
        else:
            caller.regs[0].assign(r0)
        if callee.in_callback_fn:
            self.insn_idx = callee.callsite
        else:
            self.insn_idx = callee.callsite + 1
        if self.log_level & 3:
            self.verbose("returning from callee:\n")
            self.verbose(format_func_state(callee, True, refs=st.refs, marks=self.log.liveness_marks))
            self.verbose("to caller at %d:\n" % self.insn_idx)
            self.verbose(format_func_state(caller, True, refs=st.refs, marks=self.log.liveness_marks))
        in_cb = callee.in_callback_fn
        st.frame.pop()
        st.curframe -= 1
        if in_cb:
            prev = self.find_prev_entry(st, self.insn_idx)
            if prev is not None:
                self.widen_imprecise_scalars(prev, st)

    # -- LD_ABS / LD_IND --
    def check_ld_abs(self, insn):
        code, dst, src, off, imm = insn
        st = self.cur_state
        regs = st.frame[st.curframe].regs
        mode = code & 0xe0
        if self.prog_type not in (M.BPF_PROG_TYPE_SOCKET_FILTER, M.BPF_PROG_TYPE_SCHED_CLS,
                                  M.BPF_PROG_TYPE_SCHED_ACT):
            self.fail(errno.EINVAL, "BPF_LD_[ABS|IND] instructions not allowed for this program type\n")
        for i in range(st.curframe, 0, -1):
            if st.frame[i].in_callback_fn:
                self.fail(errno.EINVAL, "cannot use BPF_LD_[ABS|IND] within callback\n")
        if not self.ops.gen_ld_abs:
            self.fail(errno.EINVAL, "bpf verifier is misconfigured\n")
        if dst != 0 or off != 0 or code & 0x18 == 0x18 or (mode == 0x20 and src != 0):
            self.fail(errno.EINVAL, "BPF_LD_[ABS|IND] uses reserved fields\n")
        self.check_reg_arg(6, SRC_OP)
        if self.check_reference_leak(False):
            self.fail(errno.EINVAL, "BPF_LD_[ABS|IND] would lead to reference leak\n")
        if st.active_lock is not None:
            self.fail(errno.EINVAL, "BPF_LD_[ABS|IND] cannot be used inside bpf_spin_lock-ed region\n")
        if st.active_rcu_lock:
            self.fail(errno.EINVAL, "BPF_LD_[ABS|IND] cannot be used inside bpf_rcu_read_lock-ed region\n")
        if st.active_preempt_lock:
            self.fail(errno.EINVAL, "BPF_LD_[ABS|IND] cannot be used inside bpf_preempt_disable-ed region\n")
        if regs[6].type != PTR_TO_CTX:
            self.fail(errno.EINVAL, "at the time of BPF_LD_ABS|IND R6 != pointer to skb\n")
        if mode == 0x40:
            self.check_reg_arg(src, SRC_OP)
        self.check_ptr_off_reg(regs[6], 6, False)
        for r in CALLER_SAVED:
            mark_not_init(regs[r], not self.bpf_capable)
            self.check_reg_arg(r, DST_OP_NO_MARK)
        self.mark_reg_unknown(regs[0])
        regs[0].subreg_def = self.insn_idx + 1
        if st.curframe:
            self.push_stack(self.insn_idx + 1, self.insn_idx, False)
            mark_known_zero(regs[0])
            self.prepare_func_exit()
            self.insn_idx -= 1

    # -- the return value --
    def verbose_invalid_scalar(self, reg, rng, ctx, reg_name):
        out = "%s the register %s has" % (ctx, reg_name)
        unknown = True
        if reg.smin > -(1 << 63):
            out += " smin=%d" % reg.smin
            unknown = False
        if reg.smax < (1 << 63) - 1:
            out += " smax=%d" % reg.smax
            unknown = False
        if unknown:
            out += " unknown scalar value"
        self.verbose(out + " should have been in [%d, %d]\n" % rng)

    def check_return_code(self, regno, reg_name):
        st = self.cur_state
        frame = st.frame[0]
        is_subprog = frame.subprogno != 0
        t = self.prog_type
        at = self.expected_attach_type
        exit_ctx = "At program exit"
        rng = (0, 1)
        enforce = None
        return_32bit = False
        if not is_subprog or frame.in_exception_callback_fn:
            if t == M.BPF_PROG_TYPE_LSM and at != M.BPF_LSM_CGROUP or t == M.BPF_PROG_TYPE_STRUCT_OPS:
                if not self.attach_func_returns:
                    return
        self.check_reg_arg(regno, SRC_OP)
        if self.is_pointer_value(regno):
            self.fail(errno.EACCES, "R%d leaks addr as return value\n" % regno)
        reg = st.frame[st.curframe].regs[regno]
        if frame.in_async_callback_fn:
            exit_ctx = "At async callback return"
            rng = (0, 0)
        elif is_subprog and not frame.in_exception_callback_fn:
            if reg.type != SCALAR_VALUE:
                self.fail(errno.EINVAL, "At subprogram exit the register R%d is not a scalar value (%s)\n"
                          % (regno, reg_type_str(reg.type)))
            return
        else:
            if t == M.BPF_PROG_TYPE_CGROUP_SOCK_ADDR:
                if at in (M.BPF_CGROUP_UDP4_RECVMSG, M.BPF_CGROUP_UDP6_RECVMSG, M.BPF_CGROUP_UNIX_RECVMSG,
                          M.BPF_CGROUP_INET4_GETPEERNAME, M.BPF_CGROUP_INET6_GETPEERNAME,
                          M.BPF_CGROUP_UNIX_GETPEERNAME, M.BPF_CGROUP_INET4_GETSOCKNAME,
                          M.BPF_CGROUP_INET6_GETSOCKNAME, M.BPF_CGROUP_UNIX_GETSOCKNAME):
                    rng = (1, 1)
                if at in (M.BPF_CGROUP_INET4_BIND, M.BPF_CGROUP_INET6_BIND):
                    rng = (0, 3)
            elif t == M.BPF_PROG_TYPE_CGROUP_SKB:
                if at == M.BPF_CGROUP_INET_EGRESS:
                    rng = (0, 3)
                    enforce = (2, 3)
            elif t in (M.BPF_PROG_TYPE_CGROUP_SOCK, M.BPF_PROG_TYPE_SOCK_OPS, M.BPF_PROG_TYPE_CGROUP_DEVICE,
                       M.BPF_PROG_TYPE_CGROUP_SYSCTL, M.BPF_PROG_TYPE_CGROUP_SOCKOPT):
                pass
            elif t == M.BPF_PROG_TYPE_RAW_TRACEPOINT:
                if not self.attach_btf_id:
                    return
                rng = (0, 0)
            elif t == M.BPF_PROG_TYPE_TRACING:
                if at in (M.BPF_TRACE_FENTRY, M.BPF_TRACE_FEXIT):
                    rng = (0, 0)
                elif at in (M.BPF_TRACE_RAW_TP, M.BPF_MODIFY_RETURN):
                    return
                elif at == M.BPF_TRACE_ITER:
                    pass
                else:
                    self.fail(524)
            elif t == M.BPF_PROG_TYPE_KPROBE:
                if at == getattr(M, "BPF_TRACE_KPROBE_SESSION", -1):
                    rng = (0, 1)
                else:
                    return
            elif t == M.BPF_PROG_TYPE_SK_LOOKUP:
                rng = (0, 1)
            elif t == M.BPF_PROG_TYPE_LSM:
                if at != M.BPF_LSM_CGROUP:
                    return
                if not self.attach_func_returns:
                    rng = (1, 1)
            elif t == M.BPF_PROG_TYPE_NETFILTER:
                rng = (0, 1)
            else:
                return
        if reg.type != SCALAR_VALUE:
            self.fail(errno.EINVAL, "%s the register R%d is not a known value (%s)\n"
                      % (exit_ctx, regno, reg_type_str(reg.type)))
        if return_32bit:
            ok = rng[0] <= reg.s32min and reg.s32max <= rng[1]
        else:
            ok = rng[0] <= reg.smin and reg.smax <= rng[1]
        if not ok:
            self.verbose_invalid_scalar(reg, rng, exit_ctx, reg_name)
            self.fail(errno.EINVAL)
        if enforce is not None and tnum.tin(tnum.trange(*enforce), (reg.vv, reg.vm)):
            self.enforce_expected_attach_type = True


def _map_name(m):
    n = getattr(m, "name", b"") or b""
    if isinstance(n, bytes):
        n = n.split(b"\0", 1)[0].decode("latin1")
    return n


def _s32(v):
    v &= U32
    return v - (1 << 32) if v >> 31 else v
