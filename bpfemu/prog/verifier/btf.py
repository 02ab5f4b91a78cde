"""What the verifier asks of BTF (the verifier-facing parts of kernel/bpf/btf.c).

The BTF objects themselves (the program's BTF from ``prog_btf_fd``, the kernel's own) are read through the
interface of ``bpfemu.btf.Btf``: ``type_by_id(id)`` -> type with ``kind``, ``vlen``, ``kflag``, ``size``/``type``,
``members`` [(name_off, type, offset)], ``params`` [(name_off, type)], ``array`` (elem, index, nelems),
``int_data``, ``linkage``, ``component_idx``; ``name(type or id)``, ``str_by_offset(off)``,
``find_by_name_kind(name, kind)``, ``skip_modifiers(id)`` -> (type, id), ``resolve_size(id)``, ``ids()``.
"""
(BTF_KIND_UNKN, BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_ARRAY, BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_ENUM,
 BTF_KIND_FWD, BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_RESTRICT, BTF_KIND_FUNC,
 BTF_KIND_FUNC_PROTO, BTF_KIND_VAR, BTF_KIND_DATASEC, BTF_KIND_FLOAT, BTF_KIND_DECL_TAG, BTF_KIND_TYPE_TAG,
 BTF_KIND_ENUM64) = range(20)
BTF_FUNC_STATIC, BTF_FUNC_GLOBAL, BTF_FUNC_EXTERN = 0, 1, 2
BTF_INT_SIGNED = 1

_MODIFIERS = (BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_RESTRICT, BTF_KIND_TYPE_TAG)
WALK_SCALAR, WALK_PTR, WALK_STRUCT = 0, 1, 2

# the kernel structs behind the BTF ids the helper prototypes name (BTF_ID_LIST... in the kernel sources)
HELPER_BTF_STRUCTS = {
    "&btf_tracing_ids[BTF_TRACING_TYPE_TASK]": "task_struct",
    "&btf_tracing_ids[BTF_TRACING_TYPE_FILE]": "file",
    "&btf_tracing_ids[BTF_TRACING_TYPE_VMA]": "vm_area_struct",
    "&bpf_bprm_opts_set_btf_ids[0]": "linux_binprm",
    "&bpf_cgroup_btf_id[0]": "cgroup",
    "&bpf_d_path_btf_ids[0]": "path",
    "&bpf_ima_file_hash_btf_ids[0]": "file",
    "&bpf_ima_inode_hash_btf_ids[0]": "inode",
    "&bpf_inode_storage_btf_ids[0]": "inode",
    "&bpf_skb_output_btf_ids[0]": "sk_buff",
    "&bpf_sock_from_file_btf_ids[0]": "socket",
    "&bpf_sock_from_file_btf_ids[1]": "file",
    "&bpf_task_pt_regs_ids[0]": "pt_regs",
    "&bpf_xdp_get_buff_len_bpf_ids[0]": "xdp_buff",
    "&bpf_xdp_output_btf_ids[0]": "xdp_buff",
    "&btf_seq_file_ids[0]": "seq_file",
    "&tcp_sock_id": "tcp_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_INET]": "inet_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_INET_CONN]": "inet_connection_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_INET_REQ]": "inet_request_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_INET_TW]": "inet_timewait_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_REQ]": "request_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_SOCK]": "sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_SOCK_COMMON]": "sock_common",
    "&btf_sock_ids[BTF_SOCK_TYPE_TCP]": "tcp_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_TCP_REQ]": "tcp_request_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_TCP_TW]": "tcp_timewait_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_TCP6]": "tcp6_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_UDP]": "udp_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_UDP6]": "udp6_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_UNIX]": "unix_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_MPTCP]": "mptcp_sock",
    "&btf_sock_ids[BTF_SOCK_TYPE_SOCKET]": "socket",
}


class _NamedType:
    __slots__ = ("name_off", "info", "kind", "vlen", "kflag", "size", "members", "params")

    def __init__(self, name_off):
        self.name_off = name_off
        self.kind = BTF_KIND_STRUCT
        self.info = BTF_KIND_STRUCT << 24
        self.vlen = self.kflag = self.size = 0
        self.members = self.params = ()

    @property
    def type(self):
        return self.size


class NamesOnlyBtf:
    """The kernel BTF when none is available: every struct asked for by name exists, empty."""

    kernel_btf = True

    def __init__(self):
        self._names = [""]
        self._ids = {}

    def find_by_name_kind(self, name, kind):
        if kind not in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            return -2
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if name not in self._ids:
            self._ids[name] = len(self._names)
            self._names.append(name)
        return self._ids[name]

    def type_by_id(self, tid):
        if 0 < tid < len(self._names):
            return _NamedType(tid)
        return None

    def name(self, t):
        if not isinstance(t, int):
            t = t.name_off
        return self._names[t] if 0 <= t < len(self._names) else ""

    def str_by_offset(self, off):
        return self._names[off].encode("latin-1") if 0 <= off < len(self._names) else None

    def skip_modifiers(self, tid):
        return self.type_by_id(tid), tid

    def resolve_size(self, tid):
        return None

    def ids(self):
        return range(1, len(self._names))


def skip_mods(btf, tid):
    """btf_type_skip_modifiers: (type, id)."""
    t = btf.type_by_id(tid)
    while t is not None and t.kind in _MODIFIERS:
        tid = t.type
        t = btf.type_by_id(tid)
    return t, tid


def is_struct(t):
    return t is not None and t.kind in (BTF_KIND_STRUCT, BTF_KIND_UNION)


def is_small_int(t):
    return t is not None and t.kind == BTF_KIND_INT and t.size <= 8


def is_any_enum(t):
    return t is not None and t.kind in (BTF_KIND_ENUM, BTF_KIND_ENUM64)


def _member_bits(t, m):
    """(bit offset, bitfield size) of a member of struct type t."""
    if t.kflag:
        return m[2] & 0xffffff, m[2] >> 24
    return m[2], 0


def btf_struct_walk(btf, t, off, size, flag, walk_flex_arrays, log):
    """One step of btf_struct_walk: (result, next id, flag, field name). ``result`` is WALK_SCALAR/PTR/STRUCT
    or a negative errno (the reason written to ``log``, a callable taking one line)."""
    from .regs import MEM_PERCPU, MEM_RCU, MEM_USER, PTR_UNTRUSTED
    while True:
        if t is not None and t.kind in _MODIFIERS:
            t, _ = skip_mods(btf, t.type)
        tname = btf.name(t) if t is not None else ""
        if not is_struct(t):
            log("Type '%s' is not a struct\n" % tname)
            return -22, 0, flag, None
        vlen = t.vlen
        if t.kind == BTF_KIND_UNION and vlen != 1 and not flag & PTR_UNTRUSTED:
            flag |= PTR_UNTRUSTED
        if off + size > t.size:
            ok = False
            if walk_flex_arrays and vlen:
                last = t.members[vlen - 1]
                mt, _ = skip_mods(btf, last[1])
                if mt is not None and mt.kind == BTF_KIND_ARRAY and mt.array[2] == 0:
                    moff = _member_bits(t, last)[0] // 8
                    if off >= moff:
                        et, _ = skip_mods(btf, mt.array[0])
                        if et is not None and et.kind == BTF_KIND_INT:
                            return WALK_SCALAR, 0, flag, None
                        if is_struct(et) and et.size:
                            off = (off - moff) % et.size
                            t = et
                            ok = True
            if ok:
                continue
            log("access beyond struct %s at off %u size %u\n" % (tname, off & 0xffffffff, size))
            return -13, 0, flag, None
        descended = False
        for m in t.members:
            bitoff, bitsize = _member_bits(t, m)
            moff = bitoff // 8
            if off + size <= moff:
                break
            if bitsize:
                end_bit = bitoff + bitsize
                if off <= moff and (end_bit + 7) // 8 <= off + size:
                    return WALK_SCALAR, 0, flag, None
                continue
            if off < moff:
                break
            mid = m[1]
            mname = (btf.str_by_offset(m[0]) or b"").decode("latin-1")
            r = btf.resolve_size(mid)
            if r is None:
                log("field %s doesn't have size\n" % mname)
                return -14, 0, flag, None
            outer, msize, elem_type, elem_id, nelems = r
            if outer.kind != BTF_KIND_ARRAY:
                cur_t = outer
                mid = skip_mods(btf, mid)[1]
            mtrue_end = moff + msize
            if off >= mtrue_end:
                continue
            if outer.kind == BTF_KIND_ARRAY:
                if moff == mtrue_end:
                    continue
                msize //= nelems
                moff += (off - moff) // msize * msize
                cur_t = elem_type
                mid = elem_id
            if is_struct(cur_t):
                if off == moff:
                    return WALK_STRUCT, mid, flag, None
                off -= moff
                t = cur_t
                descended = True
                break
            if cur_t is not None and cur_t.kind == BTF_KIND_PTR:
                if msize != size or off != moff:
                    log("cannot access ptr member %s with moff %u in struct %s with off %u size %u\n"
                        % (mname, moff, tname, off, size))
                    return -13, 0, flag, None
                tmp = 0
                tt = btf.type_by_id(cur_t.type)
                if tt is not None and tt.kind == BTF_KIND_TYPE_TAG:
                    tag = btf.name(tt)
                    tmp = {"user": MEM_USER, "percpu": MEM_PERCPU, "rcu": MEM_RCU}.get(tag, 0)
                st, sid = skip_mods(btf, cur_t.type)
                if is_struct(st):
                    return WALK_PTR, sid, flag | tmp, mname
            if off + size > mtrue_end and not flag & PTR_UNTRUSTED:
                log("access beyond the end of member %s (mend:%u) in struct %s with off %u size %u\n"
                    % (mname, mtrue_end, tname, off, size))
                return -13, 0, flag, None
            return WALK_SCALAR, 0, flag, None
        if descended:
            continue
        log("struct %s doesn't have field at offset %d\n" % (tname, off))
        return -22, 0, flag, None


def btf_types_are_same(btf1, id1, btf2, id2):
    if id1 != id2:
        return False
    if btf1 is btf2:
        return True
    return btf1.type_by_id(id1) is btf2.type_by_id(id2)


def btf_struct_ids_match(btf, tid, off, need_btf, need_id, strict, walk_flex_arrays):
    """btf_struct_ids_match: whether type ``tid`` at ``off`` is, or starts with, type ``need_id``."""
    if off == 0 and btf_types_are_same(btf, tid, need_btf, need_id):
        return True
    if strict:
        return False
    while True:
        t = btf.type_by_id(tid)
        if t is None:
            return False
        r, tid, _f, _n = btf_struct_walk(btf, t, off, 1, 0, walk_flex_arrays, lambda s: None)
        if r != WALK_STRUCT:
            return False
        if btf_types_are_same(btf, tid, need_btf, need_id):
            return True
        off = 0


def btf_nested_type_is_trusted(btf, walk_id, field_name, btf_id, suffix):
    """btf_nested_type_is_trusted: the kernel lists the pointer fields it trusts as members of a struct
    named '<type><suffix>' in its BTF (task_struct__safe_rcu, ...)."""
    if btf is None or field_name is None:
        return False
    wt = btf.type_by_id(walk_id)
    if wt is None:
        return False
    safe = btf.name(wt) + suffix
    if len(safe) >= 64:
        return False
    sid = btf.find_by_name_kind(safe, wt.kind)
    if sid is None or sid < 0:
        return False
    st = btf.type_by_id(sid)
    for m in st.members:
        mt = btf.type_by_id(m[1])
        if mt is None or mt.kind != BTF_KIND_PTR:
            continue
        _t, tid = skip_mods(btf, mt.type)
        if tid == btf_id and (btf.str_by_offset(m[0]) or b"").decode("latin-1") == field_name:
            return True
    return False


# bpf_iter targets (struct bpf_iter_reg): per target, the context fields that are not plain arguments:
# (field of struct bpf_iter__<target>, register type flags, struct name or None for a buffer)
def _iter_targets():
    from .regs import MEM_RDONLY, PTR_MAYBE_NULL, PTR_TO_BTF_ID, PTR_TO_BUF, PTR_TRUSTED
    orn = PTR_TO_BTF_ID | PTR_MAYBE_NULL
    buf = PTR_TO_BUF | PTR_MAYBE_NULL
    return {
        "task": [("task", orn | PTR_TRUSTED, "task_struct")],
        "task_file": [("task", orn, "task_struct"), ("file", orn, "file")],
        "task_vma": [("task", orn, "task_struct"), ("vma", orn, "vm_area_struct")],
        "bpf_map": [("map", orn | PTR_TRUSTED, "bpf_map")],
        "bpf_map_elem": [("key", buf | MEM_RDONLY, None), ("value", buf, None)],
        "bpf_prog": [("prog", orn, "bpf_prog")],
        "bpf_link": [("link", orn, "bpf_link")],
        "cgroup": [("cgroup", orn | PTR_TRUSTED, "cgroup")],
        "ksym": [("ksym", orn, "kallsym_iter")],
        "netlink": [("sk", orn, "netlink_sock")],
        "ipv6_route": [("rt", orn, "fib6_info")],
        "bpf_sk_storage_map": [("sk", orn, "sock"), ("value", buf, None)],
        "unix": [("unix_sk", orn, "unix_sock")],
        "tcp": [("sk_common", orn | PTR_TRUSTED, "sock_common")],
        "udp": [("udp_sk", orn | PTR_TRUSTED, "udp_sock")],
        "sockmap": [("key", buf | MEM_RDONLY, None), ("sk", orn, "sock")],
        "kmem_cache": [("s", orn | PTR_TRUSTED, "kmem_cache")],
    }


ITER_TARGETS = None


def iter_ctx_arg_info(kbtf, target, proto):
    """prog->aux->ctx_arg_info of an iterator program: [(offset, reg type, (btf, id) or None)], or None
    when ``target`` is no registered bpf_iter target. struct bpf_iter__<target> holds one u64 per argument of
    the target's bpf_iter_<target> function, in order, so a field's offset is 8 times its argument's index."""
    global ITER_TARGETS
    if ITER_TARGETS is None:
        ITER_TARGETS = _iter_targets()
    fields = ITER_TARGETS.get(target)
    if fields is None:
        return None
    names = [(kbtf.str_by_offset(n) or b"").decode("latin-1") for n, _t in proto.params]
    out = []
    for name, rtype, struct in fields:
        bid = None
        if struct is not None:
            i = kbtf.find_by_name_kind(struct, BTF_KIND_STRUCT)
            bid = (kbtf, i if i is not None and i > 0 else 0)
        out.append((8 * names.index(name) if name in names else -1, rtype, bid))
    return out


KIND_STR = ("UNKN", "INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FWD", "TYPEDEF", "VOLATILE", "CONST",
            "RESTRICT", "FUNC", "FUNC_PROTO", "VAR", "DATASEC", "FLOAT", "DECL_TAG", "TYPE_TAG", "ENUM64")


def btf_type_str(t):
    return KIND_STR[t.kind] if t is not None and t.kind < len(KIND_STR) else "UNKN"


def _slot_bytes(btf, tid):
    t, _ = skip_mods(btf, tid)
    if t is None:
        return 0
    return 8 if t.kind == BTF_KIND_PTR else (t.size + 7) // 8 * 8


def get_ctx_arg_idx(btf, proto, off):
    """get_ctx_arg_idx: which argument (u64 slots, structs spanning several) ``off`` falls in."""
    if proto is None:
        return off // 8
    offset = 0
    for i, (_n, tid) in enumerate(proto.params):
        offset += _slot_bytes(btf, tid)
        if off < offset:
            return i
    offset += _slot_bytes(btf, proto.type)
    if off < offset:
        return len(proto.params)
    return len(proto.params) + 1
