"""kfunc calls (BPF_PSEUDO_KFUNC_CALL): add_kfunc_call before the walk, check_kfunc_call during it
(kernel/bpf/verifier.c: fetch_kfunc_meta, check_kfunc_args, get_kfunc_ptr_arg_type, the return value), and
open-coded iterators (process_iter_arg, process_iter_next_call).

Which kfunc a program may call, and its KF_* flags, come from :mod:`bpfemu.prog.kfuncs` (the kernel's kfunc
sets); its prototype comes from the kernel BTF (the call's imm is the FUNC's id there). The arguments are
checked from the prototype as the kernel does: scalars (``__k`` constants, ``rdonly_buf_size``), the
context, pointers to kernel structs (trusted, RCU, referenced), memory with a size (``__sz``, ``__szk``),
constant strings (``__str``), allocated objects (``__alloc``), maps (``__map``), NULL for ``__nullable``
and ``__opt``, iterator states on the stack. As on the reference host every kfunc takes trusted
arguments (KF_TRUSTED_ARGS is the default there).

Not modelled (the call is refused with EINVAL and a line saying so): dynptrs, bpf_list/bpf_rb graph
arguments, workqueues, IRQ flags, resilient spin locks, callbacks, refcounted kptrs, ``__prog`` arguments,
arena pointers.
"""
import errno

from ..kfuncs import (DEV_BOUND_KFUNCS, KF_ACQUIRE, KF_DESTRUCTIVE, KF_ITER_DESTROY, KF_ITER_NEW, KF_ITER_NEXT,
                      KF_RCU, KF_RCU_PROTECTED, KF_RELEASE, KF_RET_NULL, KF_SLEEPABLE, kfunc_flags)
from ... import uapi
from . import tnum
from .btf import (BTF_KIND_FUNC, BTF_KIND_STRUCT, BTF_KIND_UNION, btf_struct_ids_match, btf_type_str,
                  is_struct, skip_mods)
from .regs import (CONST_PTR_TO_MAP, MEM_ALLOC, MEM_PERCPU, MEM_RCU, MEM_RDONLY, NOT_INIT, OBJ_RELEASE,
                   PTR_MAYBE_NULL, PTR_TO_BTF_ID, PTR_TO_CTX, PTR_TO_FUNC, PTR_TO_MAP_VALUE, PTR_TO_MEM,
                   PTR_TO_SOCK_COMMON, PTR_TO_SOCKET, PTR_TO_STACK, PTR_TO_TCP_SOCK, PTR_TRUSTED, PTR_UNTRUSTED,
                   SCALAR_VALUE, base_type, btf_type_name, mark_const_zero, mark_known_zero, mark_not_init,
                   reg_type_str, s64)
from .state import BPF_REG_SIZE, STACK_INVALID, STACK_ITER

BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_ARRAY, BTF_KIND_ENUM, BTF_KIND_FUNC_PROTO, BTF_KIND_ENUM64 = 1, 2, 3, 6, 13, 19
BTF_KIND_TYPEDEF = 8
MAX_BPF_FUNC_REG_ARGS = 5
MAX_KFUNC_DESCS = 256
CALLER_SAVED = (0, 1, 2, 3, 4, 5)
U32_MAX = 0xffffffff
BPF_GLOBAL_PERCPU_MA_MAX_SIZE = 512
ITER_PREFIX = "bpf_iter_"
BPF_ITER_STATE_ACTIVE, BPF_ITER_STATE_DRAINED = "active", "drained"

(KF_ARG_PTR_TO_CTX, KF_ARG_PTR_TO_ALLOC_BTF_ID, KF_ARG_PTR_TO_REFCOUNTED_KPTR, KF_ARG_PTR_TO_DYNPTR,
 KF_ARG_PTR_TO_ITER, KF_ARG_PTR_TO_LIST_HEAD, KF_ARG_PTR_TO_LIST_NODE, KF_ARG_PTR_TO_BTF_ID, KF_ARG_PTR_TO_MEM,
 KF_ARG_PTR_TO_MEM_SIZE, KF_ARG_PTR_TO_CALLBACK, KF_ARG_PTR_TO_RB_ROOT, KF_ARG_PTR_TO_RB_NODE, KF_ARG_PTR_TO_NULL,
 KF_ARG_PTR_TO_CONST_STR, KF_ARG_PTR_TO_MAP, KF_ARG_PTR_TO_WORKQUEUE, KF_ARG_PTR_TO_IRQ_FLAG,
 KF_ARG_PTR_TO_RES_SPIN_LOCK) = range(19)
# struct types an argument names to ask for special handling (kf_arg_btf_ids)
_SPECIAL_ARG_STRUCTS = {
    "bpf_dynptr": KF_ARG_PTR_TO_DYNPTR, "bpf_list_head": KF_ARG_PTR_TO_LIST_HEAD,
    "bpf_list_node": KF_ARG_PTR_TO_LIST_NODE, "bpf_rb_root": KF_ARG_PTR_TO_RB_ROOT,
    "bpf_rb_node": KF_ARG_PTR_TO_RB_NODE, "bpf_wq": KF_ARG_PTR_TO_WORKQUEUE,
    "bpf_res_spin_lock": KF_ARG_PTR_TO_RES_SPIN_LOCK,
}
_NOT_MODELLED_ARGS = {
    KF_ARG_PTR_TO_DYNPTR: "dynptr", KF_ARG_PTR_TO_LIST_HEAD: "bpf_list_head", KF_ARG_PTR_TO_LIST_NODE: "bpf_list_node",
    KF_ARG_PTR_TO_RB_ROOT: "bpf_rb_root", KF_ARG_PTR_TO_RB_NODE: "bpf_rb_node", KF_ARG_PTR_TO_WORKQUEUE: "bpf_wq",
    KF_ARG_PTR_TO_IRQ_FLAG: "irq flag", KF_ARG_PTR_TO_RES_SPIN_LOCK: "bpf_res_spin_lock",
    KF_ARG_PTR_TO_CALLBACK: "callback", KF_ARG_PTR_TO_REFCOUNTED_KPTR: "refcounted kptr",
}
# the struct each register type stands for when passed where a kernel struct is expected (reg2btf_ids)
_REG2BTF = {PTR_TO_SOCKET: "sock", PTR_TO_SOCK_COMMON: "sock_common", PTR_TO_TCP_SOCK: "tcp_sock",
            CONST_PTR_TO_MAP: "bpf_map"}
# kfuncs whose return value the verifier builds itself (special_kfunc_set)
_OBJ_NEW = ("bpf_obj_new_impl", "bpf_percpu_obj_new_impl")
_OBJ_DROP = ("bpf_obj_drop_impl", "bpf_percpu_obj_drop_impl")
_GRAPH = ("bpf_refcount_acquire_impl", "bpf_list_push_front_impl", "bpf_list_push_back_impl", "bpf_list_pop_front",
          "bpf_list_pop_back", "bpf_list_front", "bpf_list_back", "bpf_rbtree_remove", "bpf_rbtree_add_impl",
          "bpf_rbtree_first", "bpf_rbtree_root", "bpf_rbtree_left", "bpf_rbtree_right")

# the kernel's context struct of each program type (the second column of bpf_types.h)
KERN_CTX = {
    "SOCKET_FILTER": "sk_buff", "SCHED_CLS": "sk_buff", "SCHED_ACT": "sk_buff", "XDP": "xdp_buff",
    "CGROUP_SKB": "sk_buff", "CGROUP_SOCK": "sock", "CGROUP_SOCK_ADDR": "bpf_sock_addr_kern",
    "LWT_IN": "sk_buff", "LWT_OUT": "sk_buff", "LWT_XMIT": "sk_buff", "LWT_SEG6LOCAL": "sk_buff",
    "SOCK_OPS": "bpf_sock_ops_kern", "SK_SKB": "sk_buff", "SK_MSG": "sk_msg", "FLOW_DISSECTOR": "bpf_flow_dissector",
    "KPROBE": "pt_regs", "PERF_EVENT": "bpf_perf_event_data_kern", "CGROUP_DEVICE": "bpf_cgroup_dev_ctx",
    "CGROUP_SYSCTL": "bpf_sysctl_kern", "CGROUP_SOCKOPT": "bpf_sockopt_kern", "SK_REUSEPORT": "sk_reuseport_kern",
    "SK_LOOKUP": "bpf_sk_lookup_kern", "NETFILTER": "bpf_nf_ctx",
}


class KfuncMeta:
    """struct bpf_kfunc_call_arg_meta."""
    __slots__ = ("btf", "func_id", "flags", "proto", "name", "release_regno", "ref_obj_id", "const_found",
                 "const_value", "r0_size", "r0_rdonly", "ret_btf_id", "arg_btf", "arg_btf_id", "iter_spi",
                 "iter_frameno", "map", "map_uid")

    def __init__(self, btf, func_id, flags, proto, name):
        self.btf, self.func_id, self.flags, self.proto, self.name = btf, func_id, flags, proto, name
        self.release_regno = 0
        self.ref_obj_id = 0
        self.const_found = False
        self.const_value = 0
        self.r0_size = 0
        self.r0_rdonly = False
        self.ret_btf_id = 0
        self.arg_btf = None
        self.arg_btf_id = 0
        self.iter_spi = -1
        self.iter_frameno = 0
        self.map = None
        self.map_uid = 0


def _is_scalar(t):
    """btf_type_is_scalar: an int, an enum (after modifiers)."""
    return t is not None and t.kind in (BTF_KIND_INT, BTF_KIND_ENUM, BTF_KIND_ENUM64)


def _is_void(t):
    return t is None


class KfuncMixin:
    """The verifier's kfunc calls."""

    # -- before the walk --
    def add_kfunc_call(self, btf_id, off):
        """add_kfunc_call: the kfunc table of the program, filled while subprograms are found."""
        if not self.kfunc_calls:
            if not self.jit_requested:
                self.fail(524, "JIT is required for calling kernel function\n")
            if not self.gpl_compatible:
                self.fail(errno.EINVAL, "cannot call kernel function from non-GPL compatible program\n")
        if not btf_id and not off:
            self.kfunc_calls.append((btf_id, off))
            return
        if off:
            # a module's BTF through fd_array; modules are not modelled
            self.fail(errno.EINVAL, "failed to find BTF for kernel function\n")
        if (btf_id, off) in self.kfunc_calls:
            return
        if len([k for k in self.kfunc_calls if k[0] or k[1]]) >= MAX_KFUNC_DESCS:
            self.fail(errno.E2BIG, "too many different kernel function calls\n")
        b = self.vmlinux
        func = b.type_by_id(btf_id) if btf_id > 0 else None
        if func is None or func.kind != BTF_KIND_FUNC:
            self.fail(errno.EINVAL, "kernel btf_id %u is not a function\n" % (btf_id & 0xffffffff))
        proto = b.type_by_id(func.type)
        if proto is None or proto.kind != BTF_KIND_FUNC_PROTO:
            self.fail(errno.EINVAL, "kernel function btf_id %u does not have a valid func_proto\n" % btf_id)
        if b.name(func) in DEV_BOUND_KFUNCS:
            # bpf_dev_bound_kfunc_check: the emulator has no device to bind a program to
            self.fail(errno.EINVAL, "metadata kfuncs require device-bound program\n")
        self.kfunc_calls.append((btf_id, off))

    def kfunc_is_iter_next(self, insn):
        """For the CFG pass: whether the call is an iterator's next (a forced checkpoint)."""
        if not insn[4] or insn[3]:
            return False
        name = self.kernel_func_name(insn[4])
        f = kfunc_flags(name, self.resolved_prog_type()) if name else None
        return f is not None and bool(f & KF_ITER_NEXT)

    def resolved_prog_type(self):
        return self.prog_type

    def call_name(self, insn):
        """The name the log prints for a call (kfunc names from the kernel BTF)."""
        if insn[2] == 2 and insn[4] and not insn[3]:   # BPF_PSEUDO_KFUNC_CALL
            return self.kernel_func_name(insn[4])
        return None

    # -- the walk --
    def fetch_kfunc_meta(self, insn):
        """fetch_kfunc_meta: (meta, name); meta is None when the program may not call the kfunc."""
        b = self.vmlinux
        func = b.type_by_id(insn[4])
        name = b.name(func)
        flags = kfunc_flags(name, self.resolved_prog_type())
        if flags is None:
            return None, name
        return KfuncMeta(b, insn[4], flags, b.type_by_id(func.type), name), name

    def check_kfunc_call(self, insn):
        if insn[4] == 0:
            # an unresolved (weak) kfunc: fine as long as the walk never reaches it (checked after the walk)
            if not self.cur_state.speculative:
                self.kfunc0_seen.add(self.insn_idx)
            return
        meta, name = self.fetch_kfunc_meta(insn)
        if meta is None:
            self.fail(errno.EACCES, "calling kernel function %s is not allowed\n" % name)
        insn_idx = self.insn_idx
        st = self.cur_state
        regs = st.frame[st.curframe].regs
        flags = meta.flags
        if name == "__bpf_trap":
            self.fail(errno.EFAULT, "unexpected __bpf_trap() due to uninitialized variable?\n")
        is_next = bool(flags & KF_ITER_NEXT)
        self.insn_aux[insn_idx].is_iter_next = is_next
        if flags & KF_DESTRUCTIVE and not self.caps_sys_boot:
            self.fail(errno.EACCES, "destructive kfunc calls require CAP_SYS_BOOT capability\n")
        sleepable = bool(flags & KF_SLEEPABLE)
        if sleepable and not self.in_sleepable():
            self.fail(errno.EACCES, "program must be sleepable to call sleepable kfunc %s\n" % name)
        self.check_kfunc_args(meta, insn_idx)
        rcu_lock, rcu_unlock = name == "bpf_rcu_read_lock", name == "bpf_rcu_read_unlock"
        preempt_disable, preempt_enable = name == "bpf_preempt_disable", name == "bpf_preempt_enable"
        if st.active_rcu_lock:
            if rcu_lock:
                self.fail(errno.EINVAL, "nested rcu read lock (kernel function %s)\n" % name)
            elif rcu_unlock:
                for r in self.all_regs_and_iters(st):
                    if r.type & MEM_RCU:
                        r.type &= ~(MEM_RCU | PTR_MAYBE_NULL)
                        r.type |= PTR_UNTRUSTED
                st.active_rcu_lock = False
            elif sleepable:
                self.fail(errno.EACCES, "kernel func %s is sleepable within rcu_read_lock region\n" % name)
        elif rcu_lock:
            st.active_rcu_lock = True
        elif rcu_unlock:
            self.fail(errno.EINVAL, "unmatched rcu read unlock (kernel function %s)\n" % name)
        if st.active_preempt_lock:
            if preempt_disable:
                st.active_preempt_lock += 1
            elif preempt_enable:
                st.active_preempt_lock -= 1
            elif sleepable:
                self.fail(errno.EACCES, "kernel func %s is sleepable within non-preemptible region\n" % name)
        elif preempt_disable:
            st.active_preempt_lock += 1
        elif preempt_enable:
            self.fail(errno.EINVAL, "unmatched attempt to enable preemption (kernel function %s)\n" % name)
        if meta.release_regno:
            if not self.release_reference(regs[meta.release_regno].ref_obj_id):
                self.fail(errno.EINVAL, "kfunc %s#%d reference has not been acquired before\n" % (name, meta.func_id))
        if name == "bpf_throw":
            self.fail(errno.EINVAL, "kfunc %s is not modelled by the emulator (exceptions)\n" % name)
        for r in CALLER_SAVED:
            mark_not_init(regs[r], not self.bpf_capable)
            self.check_reg_arg(r, 0x2)   # DST_OP_NO_MARK
        b = meta.btf
        t, _ = skip_mods(b, meta.proto.type)
        if flags & KF_ACQUIRE and not self._is_struct_ptr(b, t) and name not in _OBJ_NEW + ("bpf_refcount_acquire_impl",):
            self.fail(errno.EINVAL, "acquire kernel function does not return PTR_TO_BTF_ID\n")
        r0 = regs[0]
        r0.subreg_def = 0
        if _is_scalar(t):
            self.mark_reg_unknown(r0)
        elif t is not None and t.kind == BTF_KIND_PTR:
            ptr_t, ptr_id = skip_mods(b, t.type)
            if name in _OBJ_NEW:
                self.kfunc_obj_new(meta, r0, insn_idx)
            elif name in _GRAPH:
                self.fail(errno.EINVAL, "kfunc %s is not modelled by the emulator (graph objects)\n" % name)
            elif name == "bpf_cast_to_kern_ctx":
                mark_known_zero(r0)
                r0.type = PTR_TO_BTF_ID | PTR_TRUSTED
                r0.btf, r0.btf_id = b, meta.ret_btf_id
            elif name == "bpf_rdonly_cast":
                v = meta.const_value
                rt = b.type_by_id(v) if 0 < v <= U32_MAX else None
                if v and rt is None:
                    self.fail(errno.EINVAL, "Unknown type ID %d passed to kfunc bpf_rdonly_cast\n" % s64(v))
                mark_known_zero(r0)
                if rt is not None and rt.kind in (BTF_KIND_STRUCT, BTF_KIND_UNION):
                    r0.type = PTR_TO_BTF_ID | PTR_UNTRUSTED
                    r0.btf, r0.btf_id = b, v
                elif rt is None:
                    # void: read-only memory of no size, read through probes
                    r0.type = PTR_TO_MEM | MEM_RDONLY | PTR_UNTRUSTED
                    r0.mem_size = 0
                else:
                    self.fail(errno.EINVAL, "kfunc bpf_rdonly_cast type ID argument must be of a struct or void\n")
            elif name in ("bpf_dynptr_slice", "bpf_dynptr_slice_rdwr"):
                self.fail(errno.EINVAL, "kfunc %s is not modelled by the emulator (dynptrs)\n" % name)
            elif ptr_t is None:
                # a kfunc returning 'void *' returns a scalar
                self.mark_reg_unknown(r0)
            elif not is_struct(ptr_t):
                if not meta.r0_size:
                    r = b.resolve_size(ptr_id)
                    if r is not None:
                        meta.r0_size = r[1]
                        meta.r0_rdonly = True
                if not meta.r0_size:
                    self.fail(errno.EINVAL, "kernel function %s returns pointer type %s %s is not supported\n"
                              % (name, btf_type_str(ptr_t), b.name(ptr_t)))
                mark_known_zero(r0)
                r0.type = PTR_TO_MEM
                r0.mem_size = meta.r0_size
                if meta.r0_rdonly:
                    r0.type |= MEM_RDONLY
                if meta.ref_obj_id:
                    r0.ref_obj_id = meta.ref_obj_id
            else:
                mark_known_zero(r0)
                r0.btf = b
                r0.type = PTR_TO_BTF_ID
                r0.btf_id = ptr_id
                if is_next:
                    it = self.iter_slot(st, meta)
                    r0.type |= MEM_RCU if it.type & MEM_RCU else PTR_TRUSTED
            if flags & KF_RET_NULL:
                r0.type |= PTR_MAYBE_NULL
                self.id_gen += 1
                r0.id = self.id_gen
            if flags & KF_ACQUIRE:
                rid = self.acquire_reference_state(insn_idx)
                if flags & KF_RET_NULL:
                    r0.id = rid
                r0.ref_obj_id = rid
            if r0.type & MEM_ALLOC and base_type(r0.type) == PTR_TO_BTF_ID and not r0.id and \
                    any(f[0] == "spin_lock" for f in self.struct_meta_record(r0.btf, r0.btf_id)):
                self.id_gen += 1
                r0.id = self.id_gen
        elif t is None:
            pass
        if is_next:
            self.process_iter_next_call(insn_idx, meta)

    @staticmethod
    def _is_struct_ptr(b, t):
        if t is None or t.kind != BTF_KIND_PTR:
            return False
        pt, _ = skip_mods(b, t.type)
        return is_struct(pt)

    def all_regs_and_iters(self, st):
        """bpf_for_each_reg_in_vstate_mask with spills and iterator slots."""
        for f in st.frame[:st.curframe + 1]:
            for r in f.regs:
                yield r
            for s in f.stack:
                if s.st[7] in (1, STACK_ITER):   # STACK_SPILL, STACK_ITER
                    yield s.spilled

    # -- arguments --
    def _param(self, meta, i):
        name_off, tid = meta.proto.params[i]
        n = meta.btf.str_by_offset(name_off) or b""
        return (n.decode("latin-1") if isinstance(n, bytes) else n), tid

    def check_kfunc_args(self, meta, insn_idx):
        b = meta.btf
        params = meta.proto.params
        nargs = len(params)
        name = meta.name
        if nargs > MAX_BPF_FUNC_REG_ARGS:
            self.fail(errno.EINVAL, "Function %s has %d > %d args\n" % (name, nargs, MAX_BPF_FUNC_REG_ARGS))
        st = self.cur_state
        regs = st.frame[st.curframe].regs
        i = 0
        while i < nargs:
            regno = i + 1
            reg = regs[regno]
            pname, ptid = self._param(meta, i)
            t, _ = skip_mods(b, ptid)
            if pname.endswith("__ign"):
                i += 1
                continue
            if _is_scalar(t):
                if reg.type != SCALAR_VALUE:
                    self.fail(errno.EINVAL, "R%d is not a scalar\n" % regno)
                buf_sz = False
                if pname.endswith("__k"):
                    if meta.const_found:
                        self.fail(errno.EFAULT, "verifier internal error: only one constant argument permitted\n")
                    if reg.vm != 0:
                        self.fail(errno.EINVAL, "R%d must be a known constant\n" % regno)
                    self.mark_chain_precision(regno)
                    meta.const_found = True
                    meta.const_value = reg.vv
                elif pname == "rdonly_buf_size":
                    meta.r0_rdonly = True
                    buf_sz = True
                elif pname == "rdwr_buf_size":
                    buf_sz = True
                if buf_sz:
                    if meta.r0_size:
                        self.fail(errno.EINVAL, "2 or more rdonly/rdwr_buf_size parameters for kfunc")
                    if reg.vm != 0:
                        self.fail(errno.EINVAL, "R%d is not a const\n" % regno)
                    meta.r0_size = reg.vv
                    if meta.r0_size > U32_MAX:
                        self.fail(errno.EINVAL, "R%d rdonly/rdwr_buf_size exceeds u32 max\n" % regno)
                    self.mark_chain_precision(regno)
                i += 1
                continue
            if t is None or t.kind != BTF_KIND_PTR:
                self.fail(errno.EINVAL, "Unrecognized arg#%d type %s\n" % (i, btf_type_str(t)))
            if (reg.is_null() or reg.type & PTR_MAYBE_NULL) and not pname.endswith("__nullable") and \
                    not pname.endswith("__opt"):
                self.fail(errno.EACCES, "Possibly NULL pointer passed to trusted arg%d\n" % i)
            release = bool(meta.flags & KF_RELEASE)
            if reg.ref_obj_id:
                if release and meta.ref_obj_id:
                    self.fail(errno.EFAULT, "verifier internal error: more than one arg with ref_obj_id R%d %u %u\n"
                              % (regno, reg.ref_obj_id, meta.ref_obj_id))
                meta.ref_obj_id = reg.ref_obj_id
                if release:
                    meta.release_regno = regno
            ref_t, ref_id = skip_mods(b, t.type)
            ref_tname = b.name(ref_t) if ref_t is not None else ""
            kind = self.get_kfunc_ptr_arg_type(meta, t, ref_t, ref_tname, i, nargs, pname)
            if kind == KF_ARG_PTR_TO_NULL:
                i += 1
                continue
            if kind in _NOT_MODELLED_ARGS:
                self.fail(errno.EINVAL, "kfunc %s: %s arguments are not modelled by the emulator\n"
                          % (name, _NOT_MODELLED_ARGS[kind]))
            if kind == KF_ARG_PTR_TO_MAP:
                if reg.type != CONST_PTR_TO_MAP:
                    self.fail(errno.EINVAL, "pointer in R%d isn't map pointer\n" % regno)
                meta.map, meta.map_uid = reg.map, reg.map_uid
            if kind in (KF_ARG_PTR_TO_MAP, KF_ARG_PTR_TO_ALLOC_BTF_ID, KF_ARG_PTR_TO_BTF_ID):
                if not self.is_trusted_reg(reg):
                    if not meta.flags & KF_RCU:
                        self.fail(errno.EINVAL, "R%d must be referenced or trusted\n" % regno)
                    if not reg.type & MEM_RCU:
                        self.fail(errno.EINVAL, "R%d must be a rcu pointer\n" % regno)
            arg_type = OBJ_RELEASE if release and reg.ref_obj_id else 0
            self.check_func_arg_reg_off(reg, regno, arg_type)
            if kind == KF_ARG_PTR_TO_CTX:
                if reg.type != PTR_TO_CTX:
                    self.fail(errno.EINVAL, "arg#%d expected pointer to ctx, but got %s\n"
                              % (i, reg_type_str(reg.type)))
                if name == "bpf_cast_to_kern_ctx":
                    meta.ret_btf_id = self.get_kern_ctx_btf_id()
            elif kind == KF_ARG_PTR_TO_ALLOC_BTF_ID:
                if reg.type == PTR_TO_BTF_ID | MEM_ALLOC:
                    if name != "bpf_obj_drop_impl":
                        self.fail(errno.EINVAL, "arg#%d expected for bpf_obj_drop_impl()\n" % i)
                elif reg.type == PTR_TO_BTF_ID | MEM_ALLOC | MEM_PERCPU:
                    if name != "bpf_percpu_obj_drop_impl":
                        self.fail(errno.EINVAL, "arg#%d expected for bpf_percpu_obj_drop_impl()\n" % i)
                else:
                    self.fail(errno.EINVAL, "arg#%d expected pointer to allocated object\n" % i)
                if not reg.ref_obj_id:
                    self.fail(errno.EINVAL, "allocated object must be referenced\n")
                meta.arg_btf, meta.arg_btf_id = reg.btf, reg.btf_id
            elif kind == KF_ARG_PTR_TO_ITER:
                self.process_iter_arg(regno, insn_idx, meta)
            elif kind in (KF_ARG_PTR_TO_MAP, KF_ARG_PTR_TO_BTF_ID):
                if kind == KF_ARG_PTR_TO_MAP:
                    ref_t, ref_id = skip_mods(self.vmlinux, self.vmlinux.find_by_name_kind("bpf_map",
                                                                                             BTF_KIND_STRUCT))
                    ref_tname = "bpf_map"
                bt = base_type(reg.type)
                unsafe = reg.type & ~0xff & ~(PTR_TRUSTED | MEM_ALLOC | MEM_RCU | MEM_PERCPU)
                if (bt != PTR_TO_BTF_ID or (unsafe and not reg.type & MEM_RCU)) and bt not in _REG2BTF:
                    self.verbose("arg#%d is %s " % (i, reg_type_str(reg.type)))
                    self.fail(errno.EINVAL, "expected %s or socket\n"
                              % reg_type_str(bt | (reg.type & (PTR_TRUSTED | MEM_ALLOC | MEM_RCU))))
                self.process_kf_arg_ptr_to_btf_id(reg, ref_t, ref_tname, ref_id, meta, i)
            elif kind == KF_ARG_PTR_TO_MEM:
                r = b.resolve_size(ref_id)
                if r is None:
                    self.fail(errno.EINVAL, "arg#%d reference type('%s %s') size cannot be determined: %d\n"
                              % (i, btf_type_str(ref_t), ref_tname, -errno.EINVAL))
                self.check_mem_reg(reg, regno, r[1])
            elif kind == KF_ARG_PTR_TO_MEM_SIZE:
                size_reg = regs[regno + 1]
                sname, _ = self._param(meta, i + 1)
                if not reg.is_null() or not pname.endswith("__opt"):
                    try:
                        self.check_kfunc_mem_size_reg(size_reg, regno + 1)
                    except self.Error:
                        self.verbose("arg#%d arg#%d memory, len pair leads to invalid memory access\n" % (i, i + 1))
                        raise
                if sname.endswith("__szk"):
                    if meta.const_found:
                        self.fail(errno.EFAULT, "verifier internal error: only one constant argument permitted\n")
                    if size_reg.vm != 0:
                        self.fail(errno.EINVAL, "R%d must be a known constant\n" % (regno + 1))
                    meta.const_found = True
                    meta.const_value = size_reg.vv
                i += 1
            elif kind == KF_ARG_PTR_TO_CONST_STR:
                if reg.type != PTR_TO_MAP_VALUE:
                    self.fail(errno.EINVAL, "arg#%d doesn't point to a const string\n" % i)
                self.check_reg_const_str(reg, regno)
            i += 1
        if meta.flags & KF_RELEASE and not meta.release_regno:
            self.fail(errno.EINVAL, "release kernel function %s expects refcounted PTR_TO_BTF_ID\n" % name)

    def check_kfunc_mem_size_reg(self, reg, regno):
        """check_kfunc_mem_size_reg: the size in ``reg`` bounds an access through the register before it,
        read and write (a maybe-NULL buffer counts as not NULL here)."""
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        mem = regs[regno - 1]
        saved = mem.copy() if mem.type & PTR_MAYBE_NULL else None
        if saved is not None:
            self.mark_ptr_not_null_reg(mem)
        try:
            self.check_mem_size_reg(reg, regno, 1, True, None)
            self.check_mem_size_reg(reg, regno, 2, True, None)
        finally:
            if saved is not None:
                mem.assign(saved)

    def get_kfunc_ptr_arg_type(self, meta, t, ref_t, ref_tname, argno, nargs, pname):
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        regno = argno + 1
        reg = regs[regno]
        b = meta.btf
        if meta.name == "bpf_cast_to_kern_ctx":
            return KF_ARG_PTR_TO_CTX
        if self.kfunc_arg_is_ctx(b, t):
            return KF_ARG_PTR_TO_CTX
        if pname.endswith("__nullable") and reg.is_null():
            return KF_ARG_PTR_TO_NULL
        if pname.endswith("__alloc"):
            return KF_ARG_PTR_TO_ALLOC_BTF_ID
        if pname.endswith("__refcounted_kptr"):
            return KF_ARG_PTR_TO_REFCOUNTED_KPTR
        if pname.endswith("__irq_flag"):
            return KF_ARG_PTR_TO_IRQ_FLAG
        special = _SPECIAL_ARG_STRUCTS.get(ref_tname) if is_struct(ref_t) else None
        if special == KF_ARG_PTR_TO_DYNPTR:
            return special
        if (meta.flags & (KF_ITER_NEW | KF_ITER_NEXT | KF_ITER_DESTROY) and argno == 0) or pname.endswith("__iter"):
            return KF_ARG_PTR_TO_ITER
        if special is not None:
            return special
        if pname.endswith("__str"):
            return KF_ARG_PTR_TO_CONST_STR
        if pname.endswith("__map"):
            return KF_ARG_PTR_TO_MAP
        if base_type(reg.type) == PTR_TO_BTF_ID or base_type(reg.type) in _REG2BTF:
            if not is_struct(ref_t):
                self.fail(errno.EINVAL, "kernel function %s args#%d pointer type %s %s is not supported\n"
                          % (meta.name, argno, btf_type_str(ref_t), ref_tname))
            return KF_ARG_PTR_TO_BTF_ID
        if ref_t is not None and ref_t.kind == BTF_KIND_FUNC_PROTO:
            return KF_ARG_PTR_TO_CALLBACK
        mem_size = False
        if argno + 1 < nargs:
            sname, stid = self._param(meta, argno + 1)
            st_, _ = skip_mods(b, stid)
            if _is_scalar(st_) and regs[regno + 1].type == SCALAR_VALUE and \
                    (sname.endswith("__sz") or sname.endswith("__szk")):
                mem_size = True
        if not _is_scalar(ref_t) and not self.btf_type_is_scalar_struct(b, ref_t, 0) and \
                (not mem_size or ref_t is not None):
            self.fail(errno.EINVAL, "arg#%d pointer type %s %s must point to %sscalar, or struct with scalar\n"
                      % (argno, btf_type_str(ref_t), ref_tname, "void, " if mem_size else ""))
        return KF_ARG_PTR_TO_MEM_SIZE if mem_size else KF_ARG_PTR_TO_MEM

    def btf_type_is_scalar_struct(self, b, t, rec):
        """__btf_type_is_scalar_struct: a struct of scalars (arrays of them, nested structs to 4 levels)."""
        if t is None or t.kind != BTF_KIND_STRUCT:
            return False
        for _name, mtid, _off in t.members:
            mt, _ = skip_mods(b, mtid)
            if mt is not None and mt.kind == BTF_KIND_STRUCT:
                if rec >= 3:
                    self.verbose("max struct nesting depth exceeded\n")
                    return False
                if not self.btf_type_is_scalar_struct(b, mt, rec + 1):
                    return False
                continue
            if mt is not None and mt.kind == BTF_KIND_ARRAY:
                elem, nelems = mt.array[0], mt.array[2]
                if not nelems:
                    return False
                et, _ = skip_mods(b, elem)
                if not _is_scalar(et):
                    return False
                continue
            if not _is_scalar(mt):
                return False
        return True

    def kfunc_arg_is_ctx(self, b, t):
        """btf_is_prog_ctx_type for a kfunc argument: a pointer to the program type's context struct (the
        uapi one, or the kernel one it projects)."""
        class _Arg:
            pass
        a = _Arg()
        a.type = t.type
        return self.btf_is_prog_ctx_type(b, a)

    def get_kern_ctx_btf_id(self):
        """get_kern_ctx_btf_id: the kernel's context struct of this program type."""
        name = None
        for k, v in KERN_CTX.items():
            if getattr(uapi, "BPF_PROG_TYPE_" + k, None) == self.resolved_prog_type():
                name = v
        tid = self.vmlinux.find_by_name_kind(name, BTF_KIND_STRUCT) if name else None
        if not tid or tid < 0:
            self.fail(errno.EINVAL, "kern ctx type id %u is not a struct\n" % 0)
        return tid

    def process_kf_arg_ptr_to_btf_id(self, reg, ref_t, ref_tname, ref_id, meta, argno):
        vm = self.vmlinux
        if base_type(reg.type) == PTR_TO_BTF_ID:
            reg_btf, reg_ref_id = reg.btf or vm, reg.btf_id
        else:
            reg_btf = vm
            reg_ref_id = vm.find_by_name_kind(_REG2BTF[base_type(reg.type)], BTF_KIND_STRUCT)
        strict = bool(meta.flags & KF_RELEASE and reg.ref_obj_id)
        reg_ref_t, reg_ref_id = skip_mods(reg_btf, reg_ref_id)
        reg_ref_tname = reg_btf.name(reg_ref_t) if reg_ref_t is not None else ""
        same = btf_struct_ids_match(reg_btf, reg_ref_id, reg.off, meta.btf, ref_id, strict,
                                    not reg.type & MEM_ALLOC)
        projection = (ref_tname, reg_ref_tname) in (("__sk_buff", "sk_buff"), ("xdp_md", "xdp_buff"))
        if not projection and not same:
            self.fail(errno.EINVAL, "kernel function %s args#%d expected pointer to %s %s but R%d has a pointer "
                                    "to %s %s\n" % (meta.name, argno, btf_type_str(ref_t), ref_tname, argno + 1,
                                                    btf_type_str(reg_ref_t), reg_ref_tname))

    # -- bpf_obj_new --
    def kfunc_obj_new(self, meta, r0, insn_idx):
        if meta.const_value >> 32:
            self.fail(errno.EINVAL, "local type ID argument must be in range [0, U32_MAX]\n")
        b = self.prog_btf
        if b is None:
            self.fail(errno.EINVAL, "bpf_obj_new/bpf_percpu_obj_new requires prog BTF\n")
        rt = b.type_by_id(meta.const_value)
        if rt is None or rt.kind != BTF_KIND_STRUCT:
            self.fail(errno.EINVAL, "bpf_obj_new/bpf_percpu_obj_new type ID argument must be of a struct\n")
        percpu = meta.name == "bpf_percpu_obj_new_impl"
        if percpu:
            if rt.size > BPF_GLOBAL_PERCPU_MA_MAX_SIZE:
                self.fail(errno.EINVAL, "bpf_percpu_obj_new type size (%d) is greater than %d\n"
                          % (rt.size, BPF_GLOBAL_PERCPU_MA_MAX_SIZE))
            if not self.btf_type_is_scalar_struct(b, rt, 0):
                self.fail(errno.EINVAL, "bpf_percpu_obj_new type ID argument must be of a struct of scalars\n")
            if self.struct_meta_record(b, meta.const_value):
                self.fail(errno.EINVAL, "bpf_percpu_obj_new type ID argument must not contain special fields\n")
        mark_known_zero(r0)
        r0.type = PTR_TO_BTF_ID | MEM_ALLOC | (MEM_PERCPU if percpu else 0)
        r0.btf, r0.btf_id = b, meta.const_value

    # -- open-coded iterators --
    def iter_get_spi(self, reg, nr_slots):
        """stack_slot_obj_get_spi for an iterator: (spi, 0); (None, ERANGE) when the slots are not allocated
        yet; (None, EINVAL) after logging why the offset is wrong."""
        if reg.vm != 0:
            self.verbose("iter has to be at a constant offset\n")
            return None, errno.EINVAL
        off = reg.off + s64(reg.vv)
        spi = (-off - 1) // BPF_REG_SIZE
        if off % BPF_REG_SIZE or spi + 1 < nr_slots:
            self.verbose("cannot pass in iter at an offset=%d\n" % off)
            return None, errno.EINVAL
        if spi >= len(self.reg_func(reg).stack):
            return None, errno.ERANGE
        return spi, 0

    def iter_type(self, meta, regno):
        """btf_check_iter_arg: (btf id, type name without bpf_iter_, nr_slots) of the iterator argument."""
        b = meta.btf
        params = meta.proto.params
        ok = regno - 1 < len(params)
        if ok:
            t, _ = skip_mods(b, params[regno - 1][1])
            ok = t is not None and t.kind == BTF_KIND_PTR
        if ok:
            t, tid = skip_mods(b, t.type)
            ok = t is not None and t.kind in (BTF_KIND_STRUCT, BTF_KIND_UNION) and b.name(t).startswith(ITER_PREFIX)
        if not ok:
            self.fail(errno.EINVAL, "expected valid iter pointer as arg #%d\n" % (regno - 1))
        return tid, b.name(t)[len(ITER_PREFIX):], t.size // BPF_REG_SIZE

    def process_iter_arg(self, regno, insn_idx, meta):
        st = self.cur_state
        reg = st.frame[st.curframe].regs[regno]
        if reg.type != PTR_TO_STACK:
            self.fail(errno.EINVAL, "arg#%d expected pointer to an iterator on stack\n" % (regno - 1))
        tid, tname, nr_slots = self.iter_type(meta, regno)
        if meta.flags & KF_ITER_NEW:
            spi, err = self.iter_get_spi(reg, nr_slots)
            state = self.reg_func(reg)
            if err == errno.EINVAL or (spi is not None and any(
                    STACK_ITER in state.stack[spi - i].st for i in range(nr_slots))):
                self.fail(errno.EINVAL, "expected uninitialized iter_%s as arg #%d\n" % (tname, regno - 1))
            for off in range(0, nr_slots * 8, BPF_REG_SIZE):
                self.check_mem_access(regno, off, 0x18, 2, -1, False, False)   # BPF_DW, BPF_WRITE
            spi, err = self.iter_get_spi(reg, nr_slots)
            if err:
                self.fail(err)
            rid = self.acquire_reference_state(insn_idx)
            for i in range(nr_slots):
                slot = state.stack[spi - i]
                s = slot.spilled
                mark_known_zero(s)
                s.type = PTR_TO_STACK
                if meta.flags & KF_RCU_PROTECTED:
                    s.type |= MEM_RCU if self.in_rcu_cs() else PTR_UNTRUSTED
                s.live |= 4   # REG_LIVE_WRITTEN
                s.ref_obj_id = rid if i == 0 else 0
                s.iter = (tid, tname, BPF_ITER_STATE_ACTIVE, 0)
                slot.st[:] = [STACK_ITER] * 8
                if self.log_level:
                    self.scratched.add(("s", spi - i))
            return
        spi, err = self.iter_get_spi(reg, nr_slots)
        state = self.reg_func(reg)
        if err:
            err = errno.EINVAL
        else:
            for i in range(nr_slots):
                slot = state.stack[spi - i]
                s = slot.spilled
                if s.type & PTR_UNTRUSTED:
                    err = errno.EPROTO
                    break
                if (i == 0 and not s.ref_obj_id) or (i and s.ref_obj_id) or s.iter is None or \
                        s.iter[0] != tid or any(x != STACK_ITER for x in slot.st):
                    err = errno.EINVAL
                    break
        if err == errno.EINVAL:
            self.fail(err, "expected an initialized iter_%s as arg #%d\n" % (tname, regno - 1))
        if err == errno.EPROTO:
            self.fail(err, "expected an RCU CS when using %s\n" % meta.name)
        for i in range(nr_slots):
            self.mark_reg_read(state.stack[spi - i].spilled, 2)   # REG_LIVE_READ64
        meta.iter_spi = spi
        meta.iter_frameno = reg.frameno
        meta.ref_obj_id = state.stack[spi].spilled.ref_obj_id
        if meta.flags & KF_ITER_DESTROY:
            self.release_reference(meta.ref_obj_id)
            for i in range(nr_slots):
                slot = state.stack[spi - i]
                mark_not_init(slot.spilled, not self.bpf_capable)
                slot.spilled.live |= 4
                slot.st[:] = [STACK_INVALID] * 8
                if self.log_level:
                    self.scratched.add(("s", spi - i))

    def iter_slot(self, st, meta):
        """get_iter_from_state: the iterator's first slot register."""
        return st.frame[meta.iter_frameno].stack[meta.iter_spi].spilled

    def process_iter_next_call(self, insn_idx, meta):
        cur = self.cur_state
        it = self.iter_slot(cur, meta)
        tid, tname, state, depth = it.iter
        if state == BPF_ITER_STATE_ACTIVE:
            if cur.parent is None or cur.parent.insn_idx != insn_idx:
                self.fail(errno.EFAULT, "bug: bad parent state for iter next call")
            prev = self.find_prev_entry(cur.parent, insn_idx)
            queued = self.push_stack(insn_idx + 1, insn_idx, False)
            qit = self.iter_slot(queued, meta)
            qit.iter = (tid, tname, BPF_ITER_STATE_ACTIVE, depth + 1)
            if prev is not None:
                self.widen_imprecise_scalars(prev, queued)
            self.mark_ptr_not_null_reg(queued.frame[queued.curframe].regs[0])
        it.iter = (tid, tname, BPF_ITER_STATE_DRAINED, depth)
        mark_const_zero(cur.frame[cur.curframe].regs[0], not self.bpf_capable)

    def iter_active(self, st):
        """For is_state_visited at an iterator's next: whether the iterator in R1 is still active."""
        f = st.frame[st.curframe]
        r1 = f.regs[1]
        if r1.type != PTR_TO_STACK:
            return False
        spi = (-(r1.off + s64(r1.vv)) - 1) // BPF_REG_SIZE
        state = st.frame[r1.frameno]
        if not 0 <= spi < len(state.stack):
            return False
        it = state.stack[spi].spilled.iter
        return it is not None and it[2] == BPF_ITER_STATE_ACTIVE

    def iter_active_depths_differ(self, old, cur):
        for fr in range(old.curframe, -1, -1):
            fo = old.frame[fr]
            for i, slot in enumerate(fo.stack):
                if slot.st[0] != STACK_ITER:
                    continue
                it = slot.spilled.iter
                if it is None or it[2] != BPF_ITER_STATE_ACTIVE:
                    continue
                cs = cur.frame[fr].stack
                if i >= len(cs) or cs[i].spilled.iter is None or cs[i].spilled.iter[3] != it[3]:
                    return True
        return False
