"""The passes before the walk: subprograms, jumps within them, the control-flow graph, ld_imm64 forms.

- add_subprog_and_kfunc: every bpf-to-bpf call or callback reference starts a subprogram;
- check_subprogs: jumps stay inside their subprogram, each subprogram ends in exit or jump;
- resolve_pseudo_ldimm64: reserved fields of loads, ld_imm64 pairs, map fds/indexes to map objects,
  unknown opcodes;
- check_cfg: a depth-first walk marks prune points and finds jumps out of range, back-edges (unprivileged),
  unreachable instructions and jumps into the middle of ld_imm64;
- check_max_stack_depth: the stack used along each call chain.
"""
import errno
import functools

from ..helpers import FUNC_IDS
from ..insn import (BPF_ABS, BPF_CALL, BPF_DW, BPF_EXIT, BPF_IMM, BPF_IND, BPF_JA, BPF_JCOND, BPF_JMP, BPF_JMP32,
                    BPF_LD, BPF_LDX, BPF_MEM, BPF_MEMSX, BPF_PSEUDO_BTF_ID, BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC,
                    BPF_PSEUDO_KFUNC_CALL, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE,
                    BPF_PSEUDO_MAP_VALUE, BPF_X)
from ... import uapi
from ...profiles.profile import INSTRUCTIONS
from .btf import (BTF_KIND_DATASEC, BTF_KIND_VAR, BTF_KIND_DECL_TAG, BTF_KIND_FUNC, BTF_KIND_FUNC_PROTO, BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_TYPE_TAG,
                  BTF_KIND_TYPEDEF, NamesOnlyBtf, btf_type_str, get_ctx_arg_idx, is_any_enum, is_small_int,
                  is_struct, iter_ctx_arg_info, skip_mods)
from .calls import ASYNC_CB_FUNCS, SYNC_CB_FUNCS
from ..helpers import (ARG_ANYTHING, ARG_DONTCARE, ARG_PTR_TO_ARENA, ARG_PTR_TO_BTF_ID, ARG_PTR_TO_CTX,
                       ARG_PTR_TO_DYNPTR, ARG_PTR_TO_MEM)
from .regs import (CONST_PTR_TO_MAP, MEM_PERCPU, MEM_RDONLY, PTR_MAYBE_NULL, PTR_TO_ARENA, PTR_TO_BTF_ID, PTR_TO_CTX,
                   PTR_TO_FUNC, PTR_TO_MAP_VALUE, PTR_TO_MEM, PTR_TRUSTED, PTR_UNTRUSTED, SCALAR_VALUE, mark_known,
                   mark_known_zero)

BPF_MAX_SUBPROGS = 256
MAX_USED_MAPS = 64
BPF_MAX_VAR_OFF = 1 << 29
MAX_BPF_STACK = 512
DISCOVERED, EXPLORED = 0x10, 0x20
FALLTHROUGH, BRANCH = 1, 2


# The instructions whose knowledge depends on the kernel version (a profile's ``instructions``).
ALL_INSTRUCTIONS = frozenset(INSTRUCTIONS)


@functools.lru_cache(maxsize=None)
def opcode_table(instructions=ALL_INSTRUCTIONS):
    """bpf_opcode_in_insntable of a kernel that knows ``instructions`` (a frozenset of ALL_INSTRUCTIONS'
    names): the set of valid opcodes. bswap is BPF_ALU64 | BPF_END, may_goto BPF_JMP | BPF_JCOND,
    one- and two-byte BPF_ATOMIC the load-acquire/store-release sizes; the other cpu=v4 instructions reuse
    opcodes and differ in their off field (sign-extending loads: BPF_MEMSX, whose opcodes are refused earlier,
    as reserved fields of BPF_LDX)."""
    ok = set()
    for cls in (0x04, 0x07):     # ALU, ALU64
        for op in (0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xa0, 0xb0, 0xc0):
            ok.add(cls | op | 0x00)
            ok.add(cls | op | 0x08)
        ok.add(cls | 0x80)            # NEG
    ok.add(0x04 | 0xd0 | 0x00)
    ok.add(0x04 | 0xd0 | 0x08)
    if "bswap" in instructions:
        ok.add(0x07 | 0xd0 | 0x00)    # ALU64 END TO_LE (bswap)
    ok.add(BPF_JMP | 0x80)            # CALL
    ok.add(BPF_JMP | 0x90)            # EXIT
    for cls in (BPF_JMP, BPF_JMP32):
        for op in (0x10, 0x50, 0x20, 0xa0, 0x30, 0xb0, 0x60, 0xc0, 0x70, 0xd0, 0x40):
            ok.add(cls | op | 0x00)
            ok.add(cls | op | 0x08)
    ok.add(BPF_JMP | BPF_JA)
    ok.add(BPF_JMP32 | BPF_JA)
    for size in (0x00, 0x08, 0x10, 0x18):
        ok.add(0x03 | 0x60 | size)    # STX MEM
        ok.add(0x02 | 0x60 | size)    # ST MEM
        ok.add(0x01 | 0x60 | size)    # LDX MEM
    for size in (0x00, 0x18):
        ok.add(0x03 | 0xc0 | size)    # STX ATOMIC W, DW
    if "load_acquire" in instructions or "store_release" in instructions:
        ok.add(0x03 | 0xc0 | 0x08)    # STX ATOMIC H, B (load-acquire/store-release only)
        ok.add(0x03 | 0xc0 | 0x10)
    for size in (0x00, 0x08, 0x10):
        if "ldsx" in instructions:
            ok.add(0x01 | 0x80 | size)    # LDX MEMSX
        ok.add(0x00 | 0x20 | size)    # LD ABS
        ok.add(0x00 | 0x40 | size)    # LD IND
    ok.add(0x18)                      # LD IMM DW
    if "may_goto" in instructions:
        ok.add(BPF_JMP | BPF_JCOND)
    return frozenset(ok)


OPCODES = opcode_table()


class SubprogInfo:
    __slots__ = ("start", "stack_depth", "has_tail_call", "tail_call_reachable", "has_ld_abs", "is_cb",
                 "is_async_cb", "is_exception_cb", "changes_pkt_data", "called", "linkage", "name", "args",
                 "unreliable", "verified")

    def __init__(self, start):
        self.start = start
        self.stack_depth = 0
        self.has_tail_call = False
        self.tail_call_reachable = False
        self.has_ld_abs = False
        self.is_cb = False
        self.is_async_cb = False
        self.is_exception_cb = False
        self.changes_pkt_data = False
        self.called = False
        self.linkage = 0      # BTF_FUNC_STATIC
        self.name = ""
        self.args = None      # btf_prepare_func_args: [(arg type, mem size, (btf, id) or None)]
        self.unreliable = False
        self.verified = False


def is_ldimm64(insn):
    return insn[0] == 0x18


def is_pseudo_call(insn):
    return insn[0] == BPF_JMP | BPF_CALL and insn[2] == BPF_PSEUDO_CALL


def is_pseudo_func(insn):
    return insn[0] == 0x18 and insn[2] == BPF_PSEUDO_FUNC


def is_kfunc_call(insn):
    return insn[0] == BPF_JMP | BPF_CALL and insn[2] == BPF_PSEUDO_KFUNC_CALL


class CfgMixin:

    # -- subprograms --
    def find_subprog(self, off):
        for i, s in enumerate(self.subprogs):
            if s.start == off:
                return i
        return -1

    def find_containing_subprog(self, off):
        best = None
        for i, s in enumerate(self.subprogs):
            if s.start <= off:
                best = i
        return best

    def add_subprog(self, off):
        if off >= self.insn_cnt or off < 0:
            self.fail(errno.EINVAL, "call to invalid destination\n")
        i = self.find_subprog(off)
        if i >= 0:
            return i
        if len(self.subprogs) >= BPF_MAX_SUBPROGS:
            self.fail(errno.E2BIG, "too many subprograms\n")
        self.subprogs.append(SubprogInfo(off))
        self.subprogs.sort(key=lambda s: s.start)
        return self.find_subprog(off)

    def add_subprog_and_kfunc(self):
        self.add_subprog(0)
        for i, insn in enumerate(self.insns):
            if not is_pseudo_func(insn) and not is_pseudo_call(insn) and not is_kfunc_call(insn):
                continue
            if not self.bpf_capable:
                self.fail(errno.EPERM, "loading/calling other bpf or kernel functions are allowed for CAP_BPF and "
                                       "CAP_SYS_ADMIN\n")
            if is_pseudo_func(insn) or is_pseudo_call(insn):
                self.add_subprog(i + insn[4] + 1)
            else:
                self.add_kfunc_call(insn[4], insn[3])
        if self.log_level & 2:
            for i, s in enumerate(self.subprogs):
                self.verbose("func#%d @%d\n" % (i, s.start))

    def check_subprogs(self):
        subs = self.subprogs
        n = self.insn_cnt
        cur = 0
        start = subs[0].start
        end = subs[1].start if len(subs) > 1 else n
        tail_call = FUNC_IDS["tail_call"]
        for i, insn in enumerate(self.insns):
            code = insn[0]
            if code == BPF_JMP | BPF_CALL and insn[2] == 0 and insn[4] == tail_call:
                subs[cur].has_tail_call = True
                subs[cur].tail_call_reachable = True
            cls = code & 7
            if cls == BPF_LD and code & 0xe0 in (BPF_ABS, BPF_IND):
                subs[cur].has_ld_abs = True
            if cls in (BPF_JMP, BPF_JMP32) and code & 0xf0 not in (BPF_EXIT, BPF_CALL):
                off = i + (insn[4] if code == BPF_JMP32 | BPF_JA else insn[3]) + 1
                if off < start or off >= end:
                    self.fail(errno.EINVAL, "jump out of range from insn %d to %d\n" % (i, off))
            if i == end - 1:
                if code not in (BPF_JMP | BPF_EXIT, BPF_JMP32 | BPF_JA, BPF_JMP | BPF_JA):
                    self.fail(errno.EINVAL, "last insn is not an exit or jmp\n")
                start = end
                cur += 1
                if cur < len(subs):
                    end = subs[cur + 1].start if cur + 1 < len(subs) else n

    def check_abnormal_return(self):
        for s in self.subprogs[1:]:
            if s.has_ld_abs:
                self.fail(errno.EINVAL, "LD_ABS is not allowed in subprogs without BTF\n")
            if s.has_tail_call:
                self.fail(errno.EINVAL, "tail_call is not allowed in subprogs without BTF\n")

    # -- ld_imm64 and the basic opcode sanity check --
    def resolve_pseudo_ldimm64(self):
        insns = self.insns
        n = self.insn_cnt
        i = 0
        while i < n:
            code, dst, src, off, imm = insns[i]
            if code & 7 == BPF_LDX and ((code & 0xe0 != BPF_MEM and (code & 0xe0 != BPF_MEMSX or
                                                                      "ldsx" not in self.instructions))
                                        or imm != 0):
                self.fail(errno.EINVAL, "BPF_LDX uses reserved fields\n")
            if code == 0x18:
                if i == n - 1 or insns[i + 1][0] != 0 or insns[i + 1][1] != 0 or insns[i + 1][2] != 0 or \
                        insns[i + 1][3] != 0:
                    self.fail(errno.EINVAL, "invalid bpf_ld_imm64 insn\n")
                if src == 0:
                    i += 2
                    continue
                aux = self.insn_aux[i]
                if src == BPF_PSEUDO_BTF_ID:
                    self._ldimm64_idx = i
                    self.check_pseudo_btf_id(insns[i], aux)
                    i += 2
                    continue
                if src == BPF_PSEUDO_FUNC:
                    aux.ptr_type = PTR_TO_FUNC
                    i += 2
                    continue
                if src in (BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_MAP_IDX_VALUE):
                    pass
                elif src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX) and insns[i + 1][4] == 0:
                    pass
                else:
                    self.fail(errno.EINVAL, "unrecognized bpf_ld_imm64 insn\n")
                if src in (BPF_PSEUDO_MAP_IDX_VALUE, BPF_PSEUDO_MAP_IDX):
                    if self.fd_array is None:
                        self.fail(errno.EPROTO, "fd_idx without fd_array is invalid\n")
                    fd = self.fd_array(imm)
                else:
                    fd = imm
                idx = self.add_used_map_from_fd(fd)
                m = self.used_maps[idx]
                aux.map_index = idx
                self.check_map_prog_compatibility(m)
                if src in (BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_MAP_IDX_VALUE):
                    moff = insns[i + 1][4] & 0xffffffff
                    if moff >= BPF_MAX_VAR_OFF:
                        self.fail(errno.EINVAL, "direct value offset of %u is not allowed\n" % moff)
                    if m.map_type not in (uapi.BPF_MAP_TYPE_ARRAY, uapi.BPF_MAP_TYPE_ARENA):
                        self.fail(errno.EINVAL, "no direct value access support for this map type\n")
                    if m.map_type == uapi.BPF_MAP_TYPE_ARRAY and (m.max_entries != 1 or moff >= m.value_size):
                        # array_map_direct_value_addr: ENOTSUPP for more than one element, EINVAL past the value
                        self.fail(524 if m.max_entries != 1 else errno.EINVAL,
                                  "invalid access to map value pointer, value_size=%u off=%u\n" % (m.value_size, moff))
                    aux.map_off = moff
                i += 2
                continue
            if code not in self.opcodes:
                self.fail(errno.EINVAL, "unknown opcode %02x\n" % code)
            i += 1

    def check_pseudo_btf_id(self, insn, aux):
        """check_pseudo_btf_id: ld_imm64 of a kernel variable (a ksym) or function by its kernel BTF id. The
        register gets a pointer to the variable's type (a kernel struct, or read-only memory of its size; a
        per-CPU variable is MEM_PERCPU) or, for a function, read-only memory of no size."""
        nxt = self.insns[self.insn_idx_of(insn)]
        btf_fd = nxt[4]
        if btf_fd:
            # a module's BTF (an fd in the second half): the emulator has no module BTFs
            self.fail(errno.EINVAL, "invalid module BTF object FD specified.\n")
        b = self.vmlinux
        if isinstance(b, NamesOnlyBtf):
            self.fail(errno.EINVAL, "kernel is missing BTF, make sure CONFIG_DEBUG_INFO_BTF=y is specified in "
                                    "Kconfig.\n")
        tid = insn[4]
        t = b.type_by_id(tid) if tid > 0 else None
        if t is None:
            self.fail(errno.ENOENT, "ldimm64 insn specifies invalid btf_id %d.\n" % tid)
        if not self.ksym_funcs and t.kind != BTF_KIND_VAR:
            self.fail(errno.EINVAL, "pseudo btf_id %d in ldimm64 isn't KIND_VAR.\n" % tid)
        if t.kind not in (BTF_KIND_VAR, BTF_KIND_FUNC):
            self.fail(errno.EINVAL, "pseudo btf_id %d in ldimm64 isn't KIND_VAR or KIND_FUNC\n" % tid)
        if t.kind == BTF_KIND_VAR and not self.kallsyms_all:
            # kallsyms_lookup_name: without CONFIG_KALLSYMS_ALL (the reference host's config) kallsyms has
            # functions but no variables
            self.fail(errno.ENOENT, "ldimm64 failed to find the address for kernel symbol '%s'.\n" % b.name(t))
        if t.kind == BTF_KIND_FUNC:
            aux.btf_var = (PTR_TO_MEM | MEM_RDONLY, 0, None, 0)
            return
        percpu = False
        sec = b.find_by_name_kind(".data..percpu", BTF_KIND_DATASEC)
        if sec is not None and sec > 0:
            percpu = any(v[0] == tid for v in b.type_by_id(sec).vsis)
        vt, vid = skip_mods(b, t.type)
        if percpu:
            aux.btf_var = (PTR_TO_BTF_ID | MEM_PERCPU, 0, b, t.type)
        elif not is_struct(vt):
            r = b.resolve_size(vid)
            if r is None:
                self.fail(errno.EINVAL, "ldimm64 unable to resolve the size of type '%s': %d\n"
                          % (b.name(vt) if vt is not None else "", -errno.EINVAL))
            aux.btf_var = (PTR_TO_MEM | MEM_RDONLY, r[1], None, 0)
        else:
            aux.btf_var = (PTR_TO_BTF_ID, 0, b, t.type)

    def insn_idx_of(self, insn):
        """The index of the second half of the ld_imm64 being resolved."""
        return self._ldimm64_idx + 1

    def process_fd_array(self, cnt, btf_of_fd=None):
        """process_fd_array (6.14+): with fd_array_cnt, every fd of fd_array is taken now, a map into the
        maps the program uses (even one no instruction names), a BTF into the BTFs it holds."""
        if not cnt:
            return
        if cnt >= 0xffffffff // 4:
            self.fail(errno.EINVAL, "fd_array_cnt is too big (%u)\n" % cnt)
        if self.fd_array is None:
            self.fail(errno.EFAULT)
        for i in range(cnt):
            try:
                fd = self.fd_array(i)
            except OSError as e:
                self.fail(e.errno)
            m = self.map_resolver(fd) if self.map_resolver and 0 <= fd else errno.EBADF
            if m is not None and not isinstance(m, int):
                self.add_used_map(m, fd)
                continue
            if btf_of_fd is not None and fd >= 0:
                try:
                    btf_of_fd(fd)
                    continue
                except OSError:
                    pass
            self.fail(m or errno.EBADF, "fd %d is not pointing to valid bpf_map or btf\n" % fd)

    def add_used_map(self, m, fd):
        """__add_used_map: the map's index in used_maps (added once)."""
        for i, um in enumerate(self.used_maps):
            if um is m:
                return i
        if len(self.used_maps) >= MAX_USED_MAPS:
            self.fail(errno.E2BIG, "The total number of maps per program has reached the limit of %u\n"
                      % MAX_USED_MAPS)
        self.check_map_prog_compatibility(m)
        self.used_maps.append(m)
        self.used_map_fds.append((fd, m))
        if m.map_type in (uapi.BPF_MAP_TYPE_CGROUP_STORAGE, uapi.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE):
            for other in self.used_maps[:-1]:
                if other.map_type == m.map_type and other is not m:
                    self.fail(errno.EBUSY, "only one cgroup storage of each type is allowed\n")
        return len(self.used_maps) - 1

    def add_used_map_from_fd(self, fd):
        for i, (f, m) in enumerate(self.used_map_fds):
            if f == fd:
                return i
        m = self.map_resolver(fd) if self.map_resolver else errno.EBADF
        if m is None or isinstance(m, int):
            # the resolver answers EBADF for a closed fd, EINVAL for an fd of another kind
            self.fail(m or errno.EBADF, "fd %d is not pointing to valid bpf_map\n" % fd)
        for i, um in enumerate(self.used_maps):
            if um is m:
                self.used_map_fds.append((fd, m))
                return i
        if len(self.used_maps) >= MAX_USED_MAPS:
            self.fail(errno.E2BIG, "The total number of maps per program has reached the limit of %u\n"
                      % MAX_USED_MAPS)
        self.used_maps.append(m)
        self.used_map_fds.append((fd, m))
        if m.map_type in (uapi.BPF_MAP_TYPE_CGROUP_STORAGE, uapi.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE):
            for other in self.used_maps[:-1]:
                if other.map_type == m.map_type and other is not m:
                    self.fail(errno.EBUSY, "only one cgroup storage of each type is allowed\n")
        return len(self.used_maps) - 1

    def check_map_prog_compatibility(self, m):
        from .mem import map_fields
        kinds = {k for k, _, _, _ in map_fields(m)}
        t = self.prog_type
        tracing = t in (uapi.BPF_PROG_TYPE_KPROBE, uapi.BPF_PROG_TYPE_TRACEPOINT, uapi.BPF_PROG_TYPE_PERF_EVENT,
                        uapi.BPF_PROG_TYPE_RAW_TRACEPOINT, uapi.BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE)
        if kinds & {"list_head", "rb_root"} and tracing:
            self.fail(errno.EINVAL, "tracing progs cannot use bpf_{list_head,rb_root} yet\n")
        if "spin_lock" in kinds:
            if t == uapi.BPF_PROG_TYPE_SOCKET_FILTER:
                self.fail(errno.EINVAL, "socket filter progs cannot use bpf_spin_lock yet\n")
            if tracing:
                self.fail(errno.EINVAL, "tracing progs cannot use bpf_spin_lock yet\n")
        if "timer" in kinds and tracing:
            self.fail(errno.EINVAL, "tracing progs cannot use bpf_timer yet\n")
        if "wq" in kinds and tracing:
            self.fail(errno.EINVAL, "tracing progs cannot use bpf_wq yet\n")
        if m.map_type == uapi.BPF_MAP_TYPE_STRUCT_OPS:
            self.fail(errno.EINVAL, "bpf_struct_ops map cannot be used in prog\n")
        if self.sleepable and m.map_type not in (
                uapi.BPF_MAP_TYPE_HASH, uapi.BPF_MAP_TYPE_LRU_HASH, uapi.BPF_MAP_TYPE_ARRAY,
                uapi.BPF_MAP_TYPE_PERCPU_HASH, uapi.BPF_MAP_TYPE_PERCPU_ARRAY, uapi.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS, uapi.BPF_MAP_TYPE_HASH_OF_MAPS, uapi.BPF_MAP_TYPE_RINGBUF,
                uapi.BPF_MAP_TYPE_USER_RINGBUF, uapi.BPF_MAP_TYPE_INODE_STORAGE, uapi.BPF_MAP_TYPE_SK_STORAGE,
                uapi.BPF_MAP_TYPE_TASK_STORAGE, uapi.BPF_MAP_TYPE_CGRP_STORAGE, uapi.BPF_MAP_TYPE_QUEUE,
                uapi.BPF_MAP_TYPE_STACK, uapi.BPF_MAP_TYPE_ARENA):
            self.fail(errno.EINVAL, "Sleepable programs can only use array, hash, ringbuf and local storage maps\n")

    # -- the control-flow graph --
    def push_insn(self, t, w, e, insn_state, insn_stack):
        if e == FALLTHROUGH and insn_state[t] >= (DISCOVERED | FALLTHROUGH):
            return 0
        if e == BRANCH and insn_state[t] >= (DISCOVERED | BRANCH):
            return 0
        if w < 0 or w >= self.insn_cnt:
            self.verbose_linfo(t, "%d: " % t)
            self.fail(errno.EINVAL, "jump out of range from insn %d to %d\n" % (t, w))
        if e == BRANCH:
            self.prune_points[w] = 1
        if insn_state[w] == 0:
            insn_state[t] = DISCOVERED | e
            insn_state[w] = DISCOVERED
            insn_stack.append(w)
            return 1
        if (insn_state[w] & 0xf0) == DISCOVERED:
            if self.bpf_capable:
                return 0
            self.verbose_linfo(t, "%d: " % t)
            self.verbose_linfo(w, "%d: " % w)
            self.fail(errno.EINVAL, "back-edge from insn %d to %d\n" % (t, w))
        if insn_state[w] == EXPLORED:
            insn_state[t] = DISCOVERED | e
            return 0
        self.fail(errno.EFAULT, "insn state internal bug\n")

    def visit_func_call_insn(self, t, visit_callee, st, stack):
        insns = self.insns
        sz = 2 if is_ldimm64(insns[t]) else 1
        r = self.push_insn(t, t + sz, FALLTHROUGH, st, stack)
        if r:
            return r
        self.prune_points[t + sz] = 1
        if visit_callee:
            w = t + insns[t][4] + 1
            self.prune_points[t] = 1
            r = self.push_insn(t, w, BRANCH, st, stack)
        return r

    def visit_insn(self, t, st, stack):
        insn = self.insns[t]
        code = insn[0]
        if is_pseudo_func(insn):
            return self.visit_func_call_insn(t, True, st, stack)
        cls = code & 7
        if cls != BPF_JMP and cls != BPF_JMP32:
            sz = 2 if code == 0x18 else 1
            return self.push_insn(t, t + sz, FALLTHROUGH, st, stack)
        op = code & 0xf0
        aux = self.insn_aux
        if op == BPF_EXIT:
            return 0
        if op == BPF_CALL:
            if insn[2] == 0 and insn[4] in ASYNC_CB_FUNCS:
                self.prune_points[t] = 1
            if insn[2] == 0 and insn[4] in SYNC_CB_FUNCS:
                aux[t].calls_callback = True
                aux[t].force_checkpoint = True
                self.prune_points[t] = 1
            if insn[2] == BPF_PSEUDO_KFUNC_CALL and self.kfunc_is_iter_next(insn):
                # checkpoints at an iterator's next() make its loop converge
                self.prune_points[t] = 1
                aux[t].force_checkpoint = True
            return self.visit_func_call_insn(t, insn[2] == BPF_PSEUDO_CALL, st, stack)
        if op == BPF_JA:
            if code & BPF_X:
                return -errno.EINVAL
            off = insn[3] if cls == BPF_JMP else insn[4]
            r = self.push_insn(t, t + off + 1, FALLTHROUGH, st, stack)
            if r:
                return r
            self.prune_points[t + off + 1] = 1
            return r
        self.prune_points[t] = 1
        if code == BPF_JMP | BPF_JCOND and insn[2] == 0:
            aux[t].force_checkpoint = True
            aux[t].is_may_goto = True
        r = self.push_insn(t, t + 1, FALLTHROUGH, st, stack)
        if r:
            return r
        return self.push_insn(t, t + insn[3] + 1, BRANCH, st, stack)

    def check_cfg(self):
        n = self.insn_cnt
        st = [0] * n
        st[0] = DISCOVERED
        stack = [0]
        while stack:
            t = stack[-1]
            r = self.visit_insn(t, st, stack)
            if r == 0:
                st[t] = EXPLORED
                stack.pop()
            elif r < 0:
                self.fail(-r)
        ex = self.exception_callback_subprog
        if ex:
            b = self.subprogs[ex].start
            st[b] = DISCOVERED
            stack = [b]
            while stack:
                t = stack[-1]
                r = self.visit_insn(t, st, stack)
                if r == 0:
                    st[t] = EXPLORED
                    stack.pop()
                elif r < 0:
                    self.fail(-r)
        i = 0
        while i < n:
            if st[i] != EXPLORED:
                self.fail(errno.EINVAL, "unreachable insn %d\n" % i)
            if self.insns[i][0] == 0x18:
                if i + 1 < n and st[i + 1] != 0:
                    self.fail(errno.EINVAL, "jump into the middle of ldimm64 insn %d\n" % i)
                i += 1
            i += 1

    # -- stack depth along call chains --
    def round_up_stack_depth(self, depth):
        if self.jit_requested:
            return (depth + 15) // 16 * 16
        return (max(depth, 1) + 31) // 32 * 32

    def check_max_stack_depth(self):
        subs = self.subprogs
        priv_mode = None
        if any(s.has_tail_call for s in subs):
            priv_mode = "none"
        if priv_mode is None:
            priv_mode = "adaptive" if self.priv_stack_allowed() else "none"
        for i in range(len(subs) - 1, -1, -1):
            if not i or subs[i].is_async_cb:
                self.check_max_stack_depth_subprog(i, not i and priv_mode == "adaptive")

    def priv_stack_allowed(self):
        t = self.prog_type
        if not self.jit_requested:
            return False
        if t in (uapi.BPF_PROG_TYPE_KPROBE, uapi.BPF_PROG_TYPE_TRACEPOINT, uapi.BPF_PROG_TYPE_PERF_EVENT,
                 uapi.BPF_PROG_TYPE_RAW_TRACEPOINT):
            return True
        if t == uapi.BPF_PROG_TYPE_TRACING and self.expected_attach_type != uapi.BPF_TRACE_ITER:
            return True
        return False

    def check_max_stack_depth_subprog(self, idx, priv_supported):
        subs = self.subprogs
        insns = self.insns
        n_sub = len(subs)
        depth = 0
        frame = 0
        tail_call_reachable = False
        ret_insn = []
        ret_prog = []
        priv = {}
        i = subs[idx].start
        if not priv_supported:
            priv[idx] = "none"

        def end_of(k):
            return subs[k + 1].start if k + 1 < n_sub else self.insn_cnt
        while True:
            # process_func
            if subs[idx].has_ld_abs:
                in_cb = subs[idx].is_cb or any(subs[p].is_cb for p in ret_prog[:frame])
                if in_cb:
                    self.fail(errno.EINVAL, "cannot use BPF_LD_[ABS|IND] within callback\n")
            if idx and subs[idx].has_tail_call and depth >= 256:
                self.fail(errno.EACCES, "tail_calls are not allowed when call stack of previous frames is %d "
                                        "bytes. Too large\n" % depth)
            sd = self.round_up_stack_depth(subs[idx].stack_depth)
            if priv_supported and priv.get(idx) is None and sd >= 64:
                priv[idx] = "adaptive"
            if priv.get(idx) == "adaptive":
                if sd > MAX_BPF_STACK:
                    self.fail(errno.EACCES, "stack size of subprog %d is %d. Too large\n" % (idx, sd))
            else:
                depth += sd
                if depth > MAX_BPF_STACK:
                    self.fail(errno.EACCES, "combined stack size of %d calls is %d. Too large\n"
                              % (frame + 1, depth))
            # continue_func
            while True:
                end = end_of(idx)
                called = False
                while i < end:
                    insn = insns[i]
                    if not is_pseudo_call(insn) and not is_pseudo_func(insn):
                        i += 1
                        continue
                    ret_insn[frame:] = [i + 1]
                    ret_prog[frame:] = [idx]
                    nxt = i + insn[4] + 1
                    sidx = self.find_subprog(nxt)
                    if sidx < 0:
                        self.fail(errno.EFAULT, "verifier bug. No program starts at insn %d\n" % nxt)
                    if subs[sidx].is_async_cb:
                        if subs[sidx].has_tail_call:
                            self.fail(errno.EFAULT, "verifier bug. subprog has tail_call and async cb\n")
                        if not is_pseudo_call(insn):
                            i += 1
                            continue
                    i = nxt
                    idx = sidx
                    if not priv_supported:
                        priv[idx] = "none"
                    if subs[idx].has_tail_call:
                        tail_call_reachable = True
                    frame += 1
                    if frame >= 8:
                        self.fail(errno.E2BIG, "the call stack of %d frames is too deep !\n" % frame)
                    called = True
                    break
                if called:
                    break
                if tail_call_reachable:
                    for j in range(frame):
                        subs[ret_prog[j]].tail_call_reachable = True
                if frame == 0:
                    return
                if priv.get(idx) != "adaptive":
                    depth -= self.round_up_stack_depth(subs[idx].stack_depth)
                frame -= 1
                i = ret_insn[frame]
                idx = ret_prog[frame]

    # -- ld_imm64 at walk time --
    def check_ld_imm(self, insn, nxt):
        code, dst, src, off, imm = insn
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        if code & 0x18 != BPF_DW:
            self.fail(errno.EINVAL, "invalid BPF_LD_IMM insn\n")
        if off != 0:
            self.fail(errno.EINVAL, "BPF_LD_IMM64 uses reserved fields\n")
        from .alu import DST_OP
        self.check_reg_arg(dst, DST_OP)
        dreg = regs[dst]
        if src == 0:
            dreg.type = SCALAR_VALUE
            mark_known(dreg, ((nxt[4] & 0xffffffff) << 32) | (imm & 0xffffffff))
            return
        mark_known_zero(dreg)
        aux = self.insn_aux[self.insn_idx]
        if src == BPF_PSEUDO_BTF_ID:
            rtype, size, b, tid = aux.btf_var
            dreg.type = rtype
            if rtype & 0xff == PTR_TO_MEM:
                dreg.mem_size = size
            else:
                dreg.btf, dreg.btf_id = b, tid
            return
        if src == BPF_PSEUDO_FUNC:
            sub = self.find_subprog(self.insn_idx + imm + 1)
            if not self.has_func_info:
                self.fail(errno.EINVAL, "missing btf func_info\n")
            if self.subprogs[sub].linkage != 0:
                self.fail(errno.EINVAL, "callback function not static\n")
            if sub == 0:
                self.fail(errno.EINVAL, "callback function cannot be the main program\n")
            dreg.type = PTR_TO_FUNC
            dreg.subprogno = sub
            return
        m = self.used_maps[aux.map_index]
        dreg.map = m
        if src in (BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_MAP_IDX_VALUE):
            if m.map_type == uapi.BPF_MAP_TYPE_ARENA:
                self.mark_reg_unknown(dreg)
                return
            dreg.type = PTR_TO_MAP_VALUE
            dreg.off = aux.map_off
        elif src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX):
            dreg.type = CONST_PTR_TO_MAP
        else:
            self.fail(errno.EINVAL, "bpf verifier is misconfigured\n")


class AttachMixin:
    """check_attach_btf_id / bpf_check_attach_target for tracing programs, and btf_ctx_access (the
    arguments of the attach target as the program's context)."""

    attach_func_proto = None
    attach_func_name = ""
    attach_btf_trace = False
    ctx_arg_info = ()

    def check_attach_btf_id(self):
        A = uapi
        pt = self.prog_type
        eat = self.expected_attach_type
        if pt == A.BPF_PROG_TYPE_SYSCALL:
            if self.sleepable:
                return
            self.fail(errno.EINVAL, "Syscall programs can only be sleepable\n")
        if self.sleepable and not self.can_be_sleepable():
            self.fail(errno.EINVAL, self.sleepable_log + "\n")
        if pt == A.BPF_PROG_TYPE_STRUCT_OPS:
            return self.check_struct_ops_btf_id()
        if pt not in (A.BPF_PROG_TYPE_TRACING, A.BPF_PROG_TYPE_LSM, A.BPF_PROG_TYPE_EXT):
            return
        btf_id = self.attach_btf_id
        if not btf_id:
            self.fail(errno.EINVAL, "Tracing programs must provide btf_id\n")
        b = self.vmlinux
        t = b.type_by_id(btf_id)
        if t is None or isinstance(b, NamesOnlyBtf):
            self.fail(errno.EINVAL, "attach_btf_id %u is invalid\n" % btf_id)
        tname = b.name(t)
        if pt == A.BPF_PROG_TYPE_EXT:
            self.fail(errno.EINVAL, "Cannot replace kernel functions\n")
        if eat == A.BPF_TRACE_RAW_TP:
            if t.kind != BTF_KIND_TYPEDEF:
                self.fail(errno.EINVAL, "attach_btf_id %u is not a typedef\n" % btf_id)
            if not tname.startswith("btf_trace_"):
                self.fail(errno.EINVAL, "attach_btf_id %u points to wrong type name %s\n" % (btf_id, tname))
            tname = tname[len("btf_trace_"):]
            # the typedef is a pointer to the template's prototype (void *__data first)
            p = b.type_by_id(t.type)
            proto = b.type_by_id(p.type) if p is not None and p.kind == BTF_KIND_PTR else None
            if proto is None or proto.kind != BTF_KIND_FUNC_PROTO:
                self.fail(errno.EINVAL)
            self.attach_btf_trace = True
        elif eat == A.BPF_TRACE_ITER:
            if t.kind != BTF_KIND_FUNC:
                self.fail(errno.EINVAL, "attach_btf_id %u is not a function\n" % btf_id)
            proto = b.type_by_id(t.type)
            if proto is None or proto.kind != BTF_KIND_FUNC_PROTO:
                self.fail(errno.EINVAL)
        else:
            # fentry/fexit/fmod_ret/lsm need trampolines (PROG_LOAD refused them where the profile has none)
            if t.kind != BTF_KIND_FUNC:
                self.fail(errno.EINVAL, "attach_btf_id %u is not a function\n" % btf_id)
            proto = b.type_by_id(t.type)
        self.attach_func_proto = proto
        self.attach_func_name = tname
        if eat == A.BPF_TRACE_ITER:
            if not tname.startswith("bpf_iter_"):
                self.fail(errno.EINVAL)
            info = iter_ctx_arg_info(b, tname[len("bpf_iter_"):], proto)
            if info is None:
                self.fail(errno.EINVAL)
            self.ctx_arg_info = info

    def check_struct_ops_btf_id(self):
        """check_struct_ops_btf_id: no struct_ops type (bpf_struct_ops_desc) is registered in the emulator."""
        if not self.gpl_compatible:
            self.fail(errno.EINVAL, "struct ops programs must have a GPL compatible license\n")
        if not self.attach_btf_id:
            self.fail(524)
        self.fail(524, "attach_btf_id %u is not a supported struct\n" % self.attach_btf_id)

    def can_be_sleepable(self):
        A = uapi
        pt, eat = self.prog_type, self.expected_attach_type
        if pt == A.BPF_PROG_TYPE_TRACING:
            return eat in (A.BPF_TRACE_FENTRY, A.BPF_TRACE_FEXIT, A.BPF_MODIFY_RETURN, A.BPF_TRACE_ITER)
        if pt == A.BPF_PROG_TYPE_LSM:
            return eat != A.BPF_LSM_CGROUP
        return pt in (A.BPF_PROG_TYPE_KPROBE, A.BPF_PROG_TYPE_STRUCT_OPS)

    def btf_ctx_access(self, off, size, t):
        """btf_ctx_access: (reg type, (btf, id) or None, None) for an allowed read of argument slot ``off``,
        None (with the reason in the log) otherwise."""
        from .regs import (MEM_PERCPU, MEM_USER, PTR_MAYBE_NULL, PTR_TO_BTF_ID, PTR_TO_BUF, PTR_TRUSTED,
                           SCALAR_VALUE as SV)
        A = uapi
        proto = self.attach_func_proto
        b = self.vmlinux
        tname = self.attach_func_name
        scalar = (SV, None, None)
        if off % 8:
            self.verbose("func '%s' offset %d is not multiple of 8\n" % (tname, off))
            return None
        arg = get_ctx_arg_idx(b, proto, off)
        params = list(proto.params) if proto is not None else []
        nr_args = len(params) if proto is not None else 5
        if self.attach_btf_trace:
            params = params[1:]
            nr_args -= 1
        if arg > nr_args:
            self.verbose("func '%s' doesn't have %d-th argument\n" % (tname, arg + 1))
            return None
        if arg == nr_args:
            eat = self.expected_attach_type
            if eat in (A.BPF_LSM_MAC, A.BPF_LSM_CGROUP, A.BPF_TRACE_FEXIT):
                if proto is None:
                    return scalar
                tt = b.type_by_id(proto.type)
            elif eat == A.BPF_MODIFY_RETURN:
                if proto is None:
                    return None
                tt, _ = skip_mods(b, proto.type)
                if not is_small_int(tt):
                    self.verbose("ret type %s not allowed for fmod_ret\n" % btf_type_str(tt))
                    return None
            else:
                self.verbose("func '%s' doesn't have %d-th argument\n" % (tname, arg + 1))
                return None
            pname = b""
        else:
            if proto is None:
                return scalar
            tt = b.type_by_id(params[arg][1])
            pname = b.str_by_offset(params[arg][0]) or b""
        while tt is not None and tt.kind in (BTF_KIND_TYPEDEF, 9, 10, 11, 18):
            tt = b.type_by_id(tt.type)
        if is_small_int(tt) or is_any_enum(tt) or is_struct(tt):
            return scalar
        if tt is None or tt.kind != BTF_KIND_PTR:
            self.verbose("func '%s' arg%d '%s' has type %s. Only pointer access is allowed\n"
                         % (tname, arg, b.name(tt) if tt is not None else "", btf_type_str(tt)))
            return None
        if size != 8:
            self.verbose("func '%s' size %d must be 8\n" % (tname, size))
            return None
        for o, rtype, _bid in self.ctx_arg_info:
            if o == off and rtype & 0xff == PTR_TO_BUF and rtype & PTR_MAYBE_NULL:
                return (rtype, None, None)
        if tt.type == 0:
            return scalar
        pt_, _ = skip_mods(b, tt.type)
        if pt_ is not None and pt_.kind in (BTF_KIND_INT,):
            return scalar
        for o, rtype, bid in self.ctx_arg_info:
            if o == off:
                if not bid or not bid[1]:
                    self.verbose("invalid btf_id for context argument offset %u\n" % off)
                    return None
                return (rtype, bid, None)
        rtype = PTR_TO_BTF_ID
        if self.prog_args_trusted():
            rtype |= PTR_TRUSTED
        if pname.endswith(b"__nullable"):
            rtype |= PTR_MAYBE_NULL
        bid = tt.type
        t2 = b.type_by_id(bid)
        if t2 is not None and t2.kind == BTF_KIND_TYPE_TAG:
            tag = b.name(t2)
            if tag == "user":
                rtype |= MEM_USER
            if tag == "percpu":
                rtype |= MEM_PERCPU
        while t2 is not None and t2.kind in (BTF_KIND_TYPEDEF, 9, 10, 11, 18):
            bid = t2.type
            t2 = b.type_by_id(bid)
        if not is_struct(t2):
            self.verbose("func '%s' arg%d type %s is not a struct\n" % (tname, arg, btf_type_str(t2)))
            return None
        self.verbose("func '%s' arg%d has btf_id %d type %s '%s'\n" % (tname, arg, bid, btf_type_str(t2),
                                                                      b.name(t2)))
        return (rtype, (b, bid), None)

    def prog_args_trusted(self):
        A = uapi
        if self.prog_type == A.BPF_PROG_TYPE_TRACING:
            return self.expected_attach_type in (A.BPF_TRACE_RAW_TP, A.BPF_TRACE_ITER)
        if self.prog_type == A.BPF_PROG_TYPE_STRUCT_OPS:
            return True
        return False


class FuncInfo:
    """The func_info (or line_info) attributes of PROG_LOAD: ``cnt``, ``rec_size``, ``read(off, n)`` -> ``n``
    bytes of the user's record array from byte ``off`` (raises OSError(EFAULT)) and ``set_rec_size(n)``
    (writes attr.func_info_rec_size / line_info_rec_size back, raising OSError(EFAULT)). A ``read`` taking
    one argument is read as ``read(i)`` -> the i-th record (``rec_size`` bytes)."""

    def __init__(self, cnt, rec_size, read, set_rec_size=None):
        self.cnt, self.rec_size, self.set_rec_size = cnt, rec_size, set_rec_size
        try:
            nparams = read.__code__.co_argcount - (1 if hasattr(read, "__self__") else 0)
        except AttributeError:
            nparams = 2
        if nparams == 1:
            def by_offset(off, n, _read=read, _rs=rec_size):
                out = b""
                while n > 0:
                    i, o = divmod(off, _rs)
                    chunk = bytes(_read(i))[o:o + n]
                    if not chunk:
                        raise OSError(errno.EFAULT, "past the records")
                    out += chunk
                    off += len(chunk)
                    n -= len(chunk)
                return out
            self.read = by_offset
        else:
            self.read = read


class _LogAdapter:
    """The ``vlog(bytes)`` the BTF checks write through, onto the verifier's log."""

    def __init__(self, env):
        self.env = env

    def vlog(self, data):
        self.env.verbose(data.decode("latin-1") if isinstance(data, bytes) else data)


class BtfInfoMixin:
    """check_btf_info_early / check_btf_info: the program's BTF, its func_info and line_info records (the
    checks of :mod:`bpfemu.btf.func_info`, in the kernel's order)."""

    prog_btf = None
    func_info = None        # [(insn_off, type_id)] once checked
    line_info = None        # [LineInfo] once checked
    func_info_attr = None   # FuncInfo or None
    line_info_attr = None   # FuncInfo (of line_info) or None
    line_info_cnt = 0

    def _btf_checks(self, fn, *args):
        from ...btf import func_info as FI
        try:
            return getattr(FI, fn)(*args)
        except OSError as e:
            self.fail(e.errno)

    def check_btf_info_early(self, btf_of_fd=None, prog_btf_fd=0):
        fi = self.func_info_attr
        if not (fi and fi.cnt) and not self.line_info_cnt:
            return False
        if btf_of_fd is None:
            self.fail(errno.EBADF)
        try:
            b = btf_of_fd(prog_btf_fd)
        except OSError as e:
            self.fail(e.errno)
        if getattr(b, "kernel_btf", False):
            self.fail(errno.EACCES)
        self.prog_btf = b
        self.check_btf_func_early()
        return True

    def check_btf_func_early(self):
        fi = self.func_info_attr
        if not fi or not fi.cnt:
            return
        recs = self._btf_checks("check_func_info_early", self.prog_btf, fi.read, fi.rec_size, fi.cnt,
                                _LogAdapter(self), fi.set_rec_size)
        self.func_info = [(r.insn_off, r.type_id) for r in recs]

    def check_btf_info(self):
        fi = self.func_info_attr
        if not (fi and fi.cnt) and not self.line_info_cnt:
            self.check_abnormal_return()
            return
        self.check_btf_func()
        self.check_btf_line()

    def check_btf_func(self):
        fi = self.func_info_attr
        if not fi or not fi.cnt:
            self.check_abnormal_return()
            return
        from ...btf.func_info import FuncInfo as Rec, Subprog
        linkage = self._btf_checks("check_func_info", self.prog_btf, [Rec(*r) for r in self.func_info],
                                   [Subprog(s.start, s.has_ld_abs, s.has_tail_call) for s in self.subprogs],
                                   _LogAdapter(self))
        b = self.prog_btf
        for sub, (off, tid), link in zip(self.subprogs, self.func_info, linkage):
            sub.linkage = link
            sub.name = b.name(b.type_by_id(tid))

    def check_btf_line(self):
        li = self.line_info_attr
        if not li or not li.cnt:
            return
        from ..prog import pack_insns
        self.line_info = self._btf_checks("check_line_info", self.prog_btf, li.read, li.rec_size, li.cnt,
                                          pack_insns(self.insns), [s.start for s in self.subprogs],
                                          _LogAdapter(self), li.set_rec_size)


# the context type each program type's global functions take (the first column of bpf_types.h), and the
# kernel type a program may name instead (btf_is_projection_of)
_CTX_TYPE_NAMES = {
    "SOCKET_FILTER": "__sk_buff", "SCHED_CLS": "__sk_buff", "SCHED_ACT": "__sk_buff", "XDP": "xdp_md",
    "CGROUP_SKB": "__sk_buff", "CGROUP_SOCK": "bpf_sock", "CGROUP_SOCK_ADDR": "bpf_sock_addr",
    "LWT_IN": "__sk_buff", "LWT_OUT": "__sk_buff", "LWT_XMIT": "__sk_buff", "LWT_SEG6LOCAL": "__sk_buff",
    "SOCK_OPS": "bpf_sock_ops", "SK_SKB": "__sk_buff", "SK_MSG": "sk_msg_md", "FLOW_DISSECTOR": "__sk_buff",
    "KPROBE": "bpf_user_pt_regs_t", "TRACEPOINT": "__u64", "PERF_EVENT": "bpf_perf_event_data",
    "RAW_TRACEPOINT": "bpf_raw_tracepoint_args", "RAW_TRACEPOINT_WRITABLE": "bpf_raw_tracepoint_args",
    "CGROUP_DEVICE": "bpf_cgroup_dev_ctx", "CGROUP_SYSCTL": "bpf_sysctl", "CGROUP_SOCKOPT": "bpf_sockopt",
    "LIRC_MODE2": "__u32", "SK_REUSEPORT": "sk_reuseport_md", "SK_LOOKUP": "bpf_sk_lookup",
    "NETFILTER": "bpf_nf_ctx",
}
_PROJECTIONS = {("__sk_buff", "sk_buff"), ("xdp_md", "xdp_buff")}
ARG_TAG_CTX, ARG_TAG_NONNULL, ARG_TAG_TRUSTED, ARG_TAG_NULLABLE, ARG_TAG_ARENA = 1, 2, 4, 8, 16
_ARG_TAGS = {"ctx": ARG_TAG_CTX, "trusted": ARG_TAG_TRUSTED, "nonnull": ARG_TAG_NONNULL,
             "nullable": ARG_TAG_NULLABLE, "arena": ARG_TAG_ARENA}


class GlobalFuncMixin:
    """Global (BTF_FUNC_GLOBAL) subprograms: verified once on their own with arguments from their BTF
    prototype (btf_prepare_func_args), and calls to them checked against it (btf_check_subprog_call)."""

    def _func_btf(self, sub):
        if not self.func_info:
            return None, None, 0
        tid = self.func_info[sub][1]
        return self.prog_btf, self.prog_btf.type_by_id(tid), tid

    def ctx_type_name(self):
        for name, v in _CTX_TYPE_NAMES.items():
            if getattr(uapi, "BPF_PROG_TYPE_" + name, None) == self.prog_type:
                return v
        return ""

    def btf_is_prog_ctx_type(self, b, t):
        tt = b.type_by_id(t.type)
        if self.prog_type == uapi.BPF_PROG_TYPE_KPROBE:
            while tt is not None and tt.kind in (9, 10, 11, 18):
                tt = b.type_by_id(tt.type)
            if tt is not None and tt.kind == BTF_KIND_TYPEDEF and b.name(tt) == "bpf_user_pt_regs_t":
                return True
        while tt is not None and tt.kind in (BTF_KIND_TYPEDEF, 9, 10, 11, 18):
            tt = b.type_by_id(tt.type)
        if not is_struct(tt):
            return False
        tname = b.name(tt)
        ctx = self.ctx_type_name()
        if not ctx:
            return False
        if (ctx, tname) in _PROJECTIONS:
            return True
        if ctx == tname:
            return True
        return ctx == "bpf_user_pt_regs_t" and tname == "pt_regs"

    def find_arg_tags(self, b, fn_id, arg):
        """btf_find_next_decl_tag over all DECL_TAGs 'arg:...' of argument ``arg`` of FUNC ``fn_id``."""
        out = []
        for i in b.ids():
            t = b.type_by_id(i)
            if t.kind == BTF_KIND_DECL_TAG and t.type == fn_id and t.component_idx == arg:
                name = b.name(t)
                if name.startswith("arg:"):
                    out.append(name[4:])
        return out

    def btf_prepare_func_args(self, sub):
        """Returns 0 or a positive errno (with the reason logged); caches the argument types."""
        info = self.subprogs[sub]
        if info.args is not None:
            return 0
        is_global = info.linkage == 1
        b, fn_t, fn_id = self._func_btf(sub)
        if fn_t is None:
            if not is_global:
                return errno.EINVAL
            self.verbose("Global functions need valid BTF\n")
            return errno.EFAULT
        tname = b.name(fn_t)
        proto = b.type_by_id(fn_t.type)
        if proto is None or proto.kind != BTF_KIND_FUNC_PROTO:
            self.verbose("Invalid type of function %s()\n" % tname)
            return errno.EFAULT
        params = proto.params
        if len(params) > 5:
            if is_global:
                self.verbose("Global function %s() with %d > %d args. Buggy compiler.\n" % (tname, len(params), 5))
            return errno.EINVAL
        rt, _ = skip_mods(b, proto.type)
        if rt is None or not (rt.kind == BTF_KIND_INT or is_any_enum(rt)):
            if is_global:
                self.verbose("Global function %s() doesn't return scalar. Only those are supported.\n" % tname)
            return errno.EINVAL
        args = []
        for i, (_pn, ptid) in enumerate(params):
            tags = 0
            for tag in self.find_arg_tags(b, fn_id, i):
                if not is_global:
                    self.verbose("arg#%d type tag is not supported in static functions\n" % i)
                    return errno.EOPNOTSUPP
                if tag not in _ARG_TAGS:
                    self.verbose("arg#%d has unsupported set of tags\n" % i)
                    return errno.EOPNOTSUPP
                tags |= _ARG_TAGS[tag]
            t, _ = skip_mods(b, ptid)
            if t is not None and t.kind == BTF_KIND_PTR:
                if tags & ARG_TAG_CTX or self.btf_is_prog_ctx_type(b, t):
                    if tags & ~ARG_TAG_CTX:
                        self.verbose("arg#%d has invalid combination of tags\n" % i)
                        return errno.EINVAL
                    args.append((ARG_PTR_TO_CTX, 0, None))
                    continue
                pt_, _ = skip_mods(b, t.type)
                if is_struct(pt_) and b.name(pt_) == "bpf_dynptr":
                    if tags:
                        self.verbose("arg#%d has invalid combination of tags\n" % i)
                        return errno.EINVAL
                    args.append((ARG_PTR_TO_DYNPTR | MEM_RDONLY, 0, None))
                    continue
                if tags & ARG_TAG_TRUSTED:
                    if tags & ARG_TAG_NONNULL:
                        self.verbose("arg#%d has invalid combination of tags\n" % i)
                        return errno.EINVAL
                    if not is_struct(pt_):
                        self.verbose("arg#%d type is not a struct\n" % i)
                        return errno.EINVAL
                    kb, kid = self.btf_struct(b.name(pt_))
                    if not kid:
                        self.verbose("failed to find kernel BTF type ID of '%s': %d\n" % (b.name(pt_), -2))
                        return errno.ENOENT
                    at = ARG_PTR_TO_BTF_ID | PTR_TRUSTED
                    if tags & ARG_TAG_NULLABLE:
                        at |= PTR_MAYBE_NULL
                    args.append((at, 0, (kb, kid)))
                    continue
                if tags & ARG_TAG_ARENA:
                    if tags & ~ARG_TAG_ARENA:
                        self.verbose("arg#%d arena cannot be combined with any other tags\n" % i)
                        return errno.EINVAL
                    args.append((ARG_PTR_TO_ARENA, 0, None))
                    continue
                if is_global:
                    if tags & ARG_TAG_NULLABLE:
                        self.verbose("arg#%d has invalid combination of tags\n" % i)
                        return errno.EINVAL
                    _rt, rid = skip_mods(b, t.type)
                    r = b.resolve_size(rid)
                    if r is None:
                        self.verbose("arg#%d reference type('%s %s') size cannot be determined: %d\n"
                                     % (i, btf_type_str(_rt), b.name(_rt) if _rt is not None else "", -22))
                        return errno.EINVAL
                    at = ARG_PTR_TO_MEM | PTR_MAYBE_NULL
                    if tags & ARG_TAG_NONNULL:
                        at &= ~PTR_MAYBE_NULL
                    args.append((at, r[1], None))
                    continue
            if tags:
                self.verbose("arg#%d has pointer tag, but is not a pointer type\n" % i)
                return errno.EINVAL
            if t is not None and (t.kind == BTF_KIND_INT or is_any_enum(t)):
                args.append((ARG_ANYTHING, 0, None))
                continue
            if not is_global:
                return errno.EINVAL
            self.verbose("Arg#%d type %s in %s() is not supported yet.\n" % (i, btf_type_str(t), tname))
            return errno.EINVAL
        info.args = args
        return 0

    def btf_check_subprog_call(self, sub, regs):
        """0, or the errno of the first argument that does not match the callee's BTF prototype."""
        if not self.func_info:
            return errno.EINVAL
        if not self.func_info[sub][1]:
            return errno.EFAULT
        info = self.subprogs[sub]
        if info.unreliable:
            return errno.EINVAL
        try:
            err = self.btf_check_func_arg_match(sub, regs)
        except self.Error as e:
            err = e.errno
        if err:
            info.unreliable = True
        return err

    def btf_check_func_arg_match(self, sub, regs):
        err = self.btf_prepare_func_args(sub)
        if err:
            return err
        for i, (at, mem_size, bid) in enumerate(self.subprogs[sub].args):
            regno = i + 1
            reg = regs[regno]
            base = at & 0xff
            if at == ARG_ANYTHING:
                if reg.type != SCALAR_VALUE:
                    self.verbose("R%d is not a scalar\n" % regno)
                    return errno.EINVAL
            elif at == ARG_PTR_TO_CTX:
                self.check_func_arg_reg_off(reg, regno, ARG_DONTCARE)
                if reg.type != PTR_TO_CTX:
                    self.verbose("arg#%d expects pointer to ctx\n" % i)
                    return errno.EINVAL
            elif base == ARG_PTR_TO_MEM:
                self.check_func_arg_reg_off(reg, regno, ARG_DONTCARE)
                if self.check_mem_reg(reg, regno, mem_size):
                    return errno.EINVAL
                if not at & PTR_MAYBE_NULL and reg.type & PTR_MAYBE_NULL:
                    self.verbose("arg#%d is expected to be non-NULL\n" % i)
                    return errno.EINVAL
            elif base == ARG_PTR_TO_ARENA:
                if reg.type not in (PTR_TO_ARENA, SCALAR_VALUE):
                    self.verbose("R%d is not a pointer to arena or scalar.\n" % regno)
                    return errno.EINVAL
            elif at == ARG_PTR_TO_DYNPTR | MEM_RDONLY:
                self.check_func_arg_reg_off(reg, regno, ARG_PTR_TO_DYNPTR)
                self.process_dynptr_func(regno, -1, at)
            elif base == ARG_PTR_TO_BTF_ID:
                if reg.is_null() and at & PTR_MAYBE_NULL:
                    continue
                from .calls import ArgMeta
                self.check_reg_type(regno, at, bid, ArgMeta(0, False))
                self.check_func_arg_reg_off(reg, regno, at)
            else:
                self.verbose("verifier bug: unrecognized arg#%d type %d\n" % (i, at))
                return errno.EFAULT
        return 0

    def check_mem_reg(self, reg, regno, mem_size):
        """check_mem_reg: the callee may read and write ``mem_size`` bytes through the pointer."""
        if reg.is_null():
            return 0
        saved = None
        if reg.type & PTR_MAYBE_NULL:
            saved = reg.copy()
            reg.type &= ~PTR_MAYBE_NULL
        try:
            self.check_helper_mem_access(regno, mem_size, 1, True, None)
            self.check_helper_mem_access(regno, mem_size, 2, True, None)
        finally:
            if saved is not None:
                reg.assign(saved)
        return 0

    def setup_global_func_regs(self, sub, regs):
        """do_check_common for a global subprogram: R1..R5 from its BTF prototype."""
        name = self.subprog_name(sub)
        self.verbose("Validating %s() func#%d...\n" % (name, sub))
        err = self.btf_prepare_func_args(sub)
        if err:
            self.fail(err)
        for i, (at, mem_size, bid) in enumerate(self.subprogs[sub].args):
            reg = regs[i + 1]
            base = at & 0xff
            if at == ARG_PTR_TO_CTX:
                mark_known_zero(reg)
                reg.type = PTR_TO_CTX
            elif at == ARG_ANYTHING:
                reg.type = SCALAR_VALUE
                self.mark_reg_unknown(reg)
            elif at == ARG_PTR_TO_DYNPTR | MEM_RDONLY:
                self.fail(errno.EINVAL, "dynptr arguments are not supported by the emulator\n")
            elif base == ARG_PTR_TO_MEM:
                mark_known_zero(reg)
                reg.type = PTR_TO_MEM | (at & PTR_MAYBE_NULL)
                reg.mem_size = mem_size
                self.id_gen += 1
                reg.id = self.id_gen
            elif base == ARG_PTR_TO_BTF_ID:
                mark_known_zero(reg)
                reg.type = PTR_TO_BTF_ID | (at & (PTR_MAYBE_NULL | PTR_UNTRUSTED | PTR_TRUSTED))
                reg.btf, reg.btf_id = bid
                self.id_gen += 1
                reg.id = self.id_gen
            elif base == ARG_PTR_TO_ARENA:
                self.mark_reg_unknown(reg)
            else:
                self.fail(errno.EFAULT, "verifier bug: unhandled arg#%d type %d\n" % (i, at))

    def do_check_subprogs(self):
        """Verify each global subprogram the walk found called, until no new one is found."""
        if not self.func_info:
            return
        while True:
            new = 0
            for i in range(1, len(self.subprogs)):
                s = self.subprogs[i]
                if s.linkage != 1 or not s.called or s.verified:
                    continue
                self.insn_idx = s.start
                self.do_check_common(i)
                if self.log_level & 3:
                    self.verbose("Func#%d ('%s') is safe for any args that match its prototype\n"
                                 % (i, self.subprog_name(i)))
                s.verified = True
                new += 1
            if not new:
                return
