"""Special fields in BTF structs: struct btf_record (btf_parse_fields of kernel/bpf/btf.c).

A map value (or a program-allocated object) may hold kernel-managed fields,
found by the name of their struct type or by a type tag on a pointer:

==================  =========================  ====  =====
field               how it is recognised       size  align
==================  =========================  ====  =====
BPF_SPIN_LOCK       struct bpf_spin_lock         4     4
BPF_RES_SPIN_LOCK   struct bpf_res_spin_lock     4     4
BPF_TIMER           struct bpf_timer            16     8
BPF_WORKQUEUE       struct bpf_wq               16     8
BPF_TASK_WORK       struct bpf_task_work         8     8
BPF_LIST_HEAD       struct bpf_list_head        16     8
BPF_LIST_NODE       struct bpf_list_node        24     8
BPF_RB_ROOT         struct bpf_rb_root          16     8
BPF_RB_NODE         struct bpf_rb_node          32     8
BPF_REFCOUNT        struct bpf_refcount          4     4
BPF_KPTR_*          ptr -> type_tag "kptr" /     8     8
                    "kptr_untrusted" /
                    "percpu_kptr" -> struct
BPF_UPTR            ptr -> type_tag "uptr"       8     8
==================  =========================  ====  =====

:func:`parse_fields` gives a :class:`BtfRecord` (fields sorted by offset, the
offsets of the unique ones cached) or raises OSError with the kernel's errno;
:func:`parse_struct_metas` is the part of BPF_BTF_LOAD that checks the structs
of a program BTF holding such fields.
"""
import errno

from ..errors import bpf_error
from . import uapi as U

BPF_SPIN_LOCK = 1 << 0
BPF_TIMER = 1 << 1
BPF_KPTR_UNREF = 1 << 2
BPF_KPTR_REF = 1 << 3
BPF_KPTR_PERCPU = 1 << 4
BPF_KPTR = BPF_KPTR_UNREF | BPF_KPTR_REF | BPF_KPTR_PERCPU
BPF_LIST_HEAD = 1 << 5
BPF_LIST_NODE = 1 << 6
BPF_RB_ROOT = 1 << 7
BPF_RB_NODE = 1 << 8
BPF_GRAPH_NODE = BPF_RB_NODE | BPF_LIST_NODE
BPF_GRAPH_ROOT = BPF_RB_ROOT | BPF_LIST_HEAD
BPF_REFCOUNT = 1 << 9
BPF_WORKQUEUE = 1 << 10
BPF_UPTR = 1 << 11
BPF_RES_SPIN_LOCK = 1 << 12
BPF_TASK_WORK = 1 << 13

# name, size, alignment
FIELD_INFO = {
    BPF_SPIN_LOCK: ("bpf_spin_lock", 4, 4),
    BPF_RES_SPIN_LOCK: ("bpf_res_spin_lock", 4, 4),
    BPF_TIMER: ("bpf_timer", 16, 8),
    BPF_WORKQUEUE: ("bpf_wq", 16, 8),
    BPF_TASK_WORK: ("bpf_task_work", 8, 8),
    BPF_KPTR_UNREF: ("kptr", 8, 8),
    BPF_KPTR_REF: ("kptr", 8, 8),
    BPF_KPTR_PERCPU: ("percpu_kptr", 8, 8),
    BPF_UPTR: ("uptr", 8, 8),
    BPF_LIST_HEAD: ("bpf_list_head", 16, 8),
    BPF_LIST_NODE: ("bpf_list_node", 24, 8),
    BPF_RB_ROOT: ("bpf_rb_root", 16, 8),
    BPF_RB_NODE: ("bpf_rb_node", 32, 8),
    BPF_REFCOUNT: ("bpf_refcount", 4, 4),
}

# (field, struct name, unique): a unique field appears at most once among the members of one
# struct (or the vars of one DATASEC); a struct nested in it counts on its own
_FIELD_TYPES = ((BPF_SPIN_LOCK, b"bpf_spin_lock", True), (BPF_RES_SPIN_LOCK, b"bpf_res_spin_lock", True),
                (BPF_TIMER, b"bpf_timer", True), (BPF_WORKQUEUE, b"bpf_wq", True),
                (BPF_TASK_WORK, b"bpf_task_work", True), (BPF_LIST_HEAD, b"bpf_list_head", False),
                (BPF_LIST_NODE, b"bpf_list_node", False), (BPF_RB_ROOT, b"bpf_rb_root", False),
                (BPF_RB_NODE, b"bpf_rb_node", False), (BPF_REFCOUNT, b"bpf_refcount", False))

BTF_FIELDS_MAX = 11
MAX_RESOLVE_DEPTH = 32
FIELD_IGNORE, FIELD_FOUND = 0, 1
PAGE_SIZE = 4096

# Kernel structs whose referenced kptrs the kernel can release (register_btf_id_dtor_kfuncs):
# struct name -> destructor kfunc
DTOR_KFUNCS = {
    b"task_struct": b"bpf_task_release_dtor",
    b"cgroup": b"bpf_cgroup_release_dtor",
    b"bpf_cpumask": b"bpf_cpumask_release_dtor",
    b"bpf_crypto_ctx": b"bpf_crypto_ctx_release_dtor",
    b"prog_test_ref_kfunc": b"bpf_kfunc_call_test_release_dtor",
    b"prog_test_member": b"bpf_kfunc_call_memb_release_dtor",
}


class _Err(Exception):
    def __init__(self, err):
        Exception.__init__(self, err)
        self.err = err


class BtfField:
    """struct btf_field: offset and size in bytes, type (a BPF_* bit), kptr/graph details."""

    __slots__ = ("offset", "size", "type", "kptr_btf", "kptr_btf_id", "kernel_kptr", "dtor",
                 "graph_value_btf_id", "graph_node_name", "graph_node_offset", "graph_value_rec")

    def __init__(self, type, offset, size):
        self.type = type
        self.offset = offset
        self.size = size
        self.kptr_btf = None
        self.kptr_btf_id = 0
        self.kernel_kptr = False
        self.dtor = None
        self.graph_value_btf_id = 0
        self.graph_node_name = None
        self.graph_node_offset = 0
        self.graph_value_rec = None

    @property
    def name(self):
        return FIELD_INFO[self.type][0]

    def __repr__(self):
        return "<BtfField %s off=%d size=%d>" % (self.name, self.offset, self.size)


class BtfRecord:
    """struct btf_record: the special fields of one type, sorted by offset."""

    def __init__(self):
        self.fields = []
        self.field_mask = 0
        self.spin_lock_off = -errno.EINVAL
        self.res_spin_lock_off = -errno.EINVAL
        self.timer_off = -errno.EINVAL
        self.wq_off = -errno.EINVAL
        self.task_work_off = -errno.EINVAL
        self.refcount_off = -errno.EINVAL

    @property
    def cnt(self):
        return len(self.fields)

    def has_field(self, mask):
        return bool(self.field_mask & mask)

    def __repr__(self):
        return "<BtfRecord %r>" % (self.fields,)


class _Info:
    __slots__ = ("type", "off", "kptr_type_id", "node_name", "value_btf_id")

    def __init__(self, type=0, off=0):
        self.type = type
        self.off = off
        self.kptr_type_id = 0
        self.node_name = None
        self.value_btf_id = 0

    def copy(self):
        c = _Info(self.type, self.off)
        c.kptr_type_id, c.node_name, c.value_btf_id = self.kptr_type_id, self.node_name, self.value_btf_id
        return c


def _name(btf, t):
    return btf.log_name(t.name_off)


def _find_struct(t, off, sz, ftype, out):
    if t.kind != U.BTF_KIND_STRUCT or t.size != sz:
        return FIELD_IGNORE
    out.append(_Info(ftype, off))
    return FIELD_FOUND


def find_kptr(btf, t, off, sz, field_mask, out=None):
    """btf_find_kptr: FIELD_FOUND (appending to out), FIELD_IGNORE, or -EINVAL."""
    if t.kind == U.BTF_KIND_VOLATILE:
        t = btf.type_by_id(t.type)
    if t is None or t.kind != U.BTF_KIND_PTR:
        return FIELD_IGNORE
    t = btf.type_by_id(t.type)
    if t is None or t.kind != U.BTF_KIND_TYPE_TAG or t.kflag:
        return FIELD_IGNORE
    nt = btf.type_by_id(t.type)
    if nt is not None and nt.kind == U.BTF_KIND_TYPE_TAG:
        return -errno.EINVAL
    tag = _name(btf, t)
    if tag == b"kptr_untrusted":
        ftype = BPF_KPTR_UNREF
    elif tag == b"kptr":
        ftype = BPF_KPTR_REF
    elif tag == b"percpu_kptr":
        ftype = BPF_KPTR_PERCPU
    elif tag == b"uptr":
        ftype = BPF_UPTR
    else:
        return -errno.EINVAL
    if not ftype & field_mask:
        return FIELD_IGNORE
    st, res_id = btf.skip_modifiers(t.type)
    if st is None or st.kind != U.BTF_KIND_STRUCT:
        return -errno.EINVAL
    if out is not None:
        i = _Info(ftype, off)
        i.kptr_type_id = res_id
        out.append(i)
    return FIELD_FOUND


def _find_next_decl_tag(btf, pt, comp_idx, key, last_id):
    n = btf.nr_types_total()
    for i in range(last_id + 1, n):
        t = btf.type_by_id(i)
        if t.kind != U.BTF_KIND_DECL_TAG:
            continue
        if btf.type_by_id(t.type) is not pt:
            continue
        if t.component_idx != comp_idx:
            continue
        if not _name(btf, t).startswith(key):
            continue
        return i
    return -errno.ENOENT


def find_decl_tag_value(btf, pt, comp_idx, key):
    """btf_find_decl_tag_value: the value after ``key`` of the one decl tag on (pt, comp_idx)."""
    i = _find_next_decl_tag(btf, pt, comp_idx, key, 0)
    if i < 0:
        return i
    value = _name(btf, btf.type_by_id(i))[len(key):]
    if _find_next_decl_tag(btf, pt, comp_idx, key, i) >= 0:
        return -errno.EEXIST
    return value


def _find_graph_root(btf, pt, t, comp_idx, off, sz, out, head_type):
    if t.kind != U.BTF_KIND_STRUCT or t.size != sz:
        return FIELD_IGNORE
    value = find_decl_tag_value(btf, pt, comp_idx, b"contains:")
    if isinstance(value, int):
        return -errno.EINVAL
    colon = value.find(b":")
    if colon < 0:
        return -errno.EINVAL
    vid = btf.find_by_name_kind(value[:colon], U.BTF_KIND_STRUCT)
    if vid < 0:
        return vid
    node = value[colon + 1:]
    if not node:
        return -errno.EINVAL
    i = _Info(head_type, off)
    i.value_btf_id = vid
    i.node_name = node
    out.append(i)
    return FIELD_FOUND


def _get_field_type(btf, var_type, field_mask, seen):
    """btf_get_field_type: (type, size, align), 0 (not special), or -E2BIG (a second unique field)."""
    name = _name(btf, var_type)
    ftype = 0
    for bit, n, unique in _FIELD_TYPES:
        if field_mask & bit and name == n:
            if unique:
                if seen[0] & bit:
                    return -errno.E2BIG
                seen[0] |= bit
            ftype = bit
            break
    if not ftype and field_mask & (BPF_KPTR | BPF_UPTR) and var_type.kind != U.BTF_KIND_STRUCT:
        ftype = BPF_KPTR_REF
    if not ftype:
        return 0
    _n, size, align = FIELD_INFO[ftype]
    return ftype, size, align


def _repeat_fields(info, first, field_cnt, repeat_cnt, elem_size, info_cnt):
    for i in info[first:first + field_cnt]:
        if i.type not in (BPF_KPTR_UNREF, BPF_KPTR_REF, BPF_KPTR_PERCPU, BPF_UPTR, BPF_LIST_HEAD, BPF_RB_ROOT):
            return -errno.EINVAL
    total = field_cnt * (repeat_cnt + 1)
    if total > info_cnt:
        return -errno.E2BIG
    base = info[first:first + field_cnt]
    for r in range(repeat_cnt):
        for b in base:
            c = b.copy()
            c.off = (c.off + (r + 1) * elem_size) & 0xFFFFFFFF
            info.append(c)
    return 0


def _find_nested_struct(btf, t, off, nelems, field_mask, info, info_cnt, level):
    level += 1
    if level >= MAX_RESOLVE_DEPTH:
        return -errno.E2BIG
    first = len(info)
    ret = _find_struct_field(btf, t, field_mask, info, info_cnt, level)
    if ret <= 0:
        return ret
    for i in info[first:first + ret]:
        i.off = (i.off + off) & 0xFFFFFFFF
    if nelems > 1:
        err = _repeat_fields(info, first, ret, nelems - 1, t.size, info_cnt)
        ret = ret * nelems if err == 0 else err
    return ret


def _find_field_one(btf, var, var_type, var_idx, off, expected_size, field_mask, seen, info, info_cnt, level):
    nelems = 1
    i = 0
    while i < MAX_RESOLVE_DEPTH and var_type.kind == U.BTF_KIND_ARRAY:
        et, _idx, n = var_type.array
        nelems = (nelems * n) & 0xFFFFFFFF
        var_type = btf.type_by_id(et)
        i += 1
    if i == MAX_RESOLVE_DEPTH:
        return -errno.E2BIG
    if nelems == 0:
        return 0
    r = _get_field_type(btf, var_type, field_mask, seen)
    if r == 0 and var_type.kind == U.BTF_KIND_STRUCT:
        sz = var_type.size
        if expected_size and expected_size != sz * nelems:
            return 0
        return _find_nested_struct(btf, var_type, off, nelems, field_mask, info, info_cnt, level)
    if r == 0:
        return 0
    if isinstance(r, int):
        return r
    ftype, sz, align = r
    if expected_size and expected_size != sz * nelems:
        return 0
    if off % align:
        return 0
    first = len(info)
    out = info if info_cnt else []
    if ftype in (BPF_SPIN_LOCK, BPF_RES_SPIN_LOCK, BPF_TIMER, BPF_WORKQUEUE, BPF_TASK_WORK, BPF_LIST_NODE,
                 BPF_RB_NODE, BPF_REFCOUNT):
        ret = _find_struct(var_type, off, sz, ftype, out)
    elif ftype in (BPF_KPTR_UNREF, BPF_KPTR_REF, BPF_KPTR_PERCPU, BPF_UPTR):
        ret = find_kptr(btf, var_type, off, sz, field_mask, out)
    elif ftype in (BPF_LIST_HEAD, BPF_RB_ROOT):
        ret = _find_graph_root(btf, var, var_type, var_idx, off, sz, out, ftype)
    else:
        return -errno.EFAULT
    if ret < 0:
        return ret
    if ret == FIELD_IGNORE:
        return 0
    if not info_cnt:
        return -errno.E2BIG
    if nelems > 1:
        ret = _repeat_fields(info, first, 1, nelems - 1, sz, info_cnt)
        if ret < 0:
            return ret
    return nelems


def _find_struct_field(btf, t, field_mask, info, info_cnt, level):
    idx = 0
    seen = [0]
    for i, m in enumerate(t.members):
        mt = btf.type_by_id(m[1])
        off = btf.member_bit_offset(t, m)
        if off % 8:
            return -errno.EINVAL
        off //= 8
        ret = _find_field_one(btf, t, mt, i, off, 0, field_mask, seen, info, info_cnt - idx, level)
        if ret < 0:
            return ret
        idx += ret
    return idx


def _find_datasec_var(btf, t, field_mask, info, info_cnt, level):
    idx = 0
    seen = [0]
    for vtype, off, size in t.vsis:
        var = btf.type_by_id(vtype)
        var_type = btf.type_by_id(var.type)
        ret = _find_field_one(btf, var, var_type, -1, off, size, field_mask, seen, info, info_cnt - idx, level)
        if ret < 0:
            return ret
        idx += ret
    return idx


def find_field(btf, t, field_mask, info, info_cnt=BTF_FIELDS_MAX):
    if t.kind == U.BTF_KIND_STRUCT:
        return _find_struct_field(btf, t, field_mask, info, info_cnt, 0)
    if t.kind == U.BTF_KIND_DATASEC:
        return _find_datasec_var(btf, t, field_mask, info, info_cnt, 0)
    return -errno.EINVAL


def _vmlinux(vmlinux):
    if callable(vmlinux):
        vmlinux = vmlinux()
    return vmlinux


def _parse_kptr(btf, field, info, vmlinux, kptr_local=True):
    """btf_parse_kptr: is the pointee a kernel type (then it needs a destructor for a ref kptr)? Else a
    local kptr, where the kernel version has them (``kptr_local``)."""
    t = btf.type_by_id(info.kptr_type_id)
    name = btf.str_by_offset(t.name_off) or b""
    kbtf = _vmlinux(vmlinux)
    kid = kbtf.find_by_name_kind(name, t.kind) if kbtf is not None else -errno.ENOENT
    if kid == -errno.ENOENT and not kptr_local:
        return kid
    if kid == -errno.ENOENT:
        field.kptr_btf = btf
        field.kptr_btf_id = info.kptr_type_id
        return 0
    if kid < 0:
        return kid
    if info.type == BPF_KPTR_REF:
        dtor = DTOR_KFUNCS.get(name)
        if dtor is None or kbtf.find_by_name_kind(dtor, U.BTF_KIND_FUNC) < 0:
            return -errno.ENOENT
        field.dtor = dtor
    field.kptr_btf = kbtf
    field.kptr_btf_id = kid
    field.kernel_kptr = True
    return 0


def _parse_graph_root(btf, field, info, node_type_name, node_align):
    t = btf.type_by_id(info.value_btf_id)
    found = None
    for m in t.members:
        if btf.log_name(m[0]) != info.node_name:
            continue
        if found is not None:
            return -errno.EINVAL
        n = btf.type_by_id(m[1])
        found = n
        if n.kind != U.BTF_KIND_STRUCT:
            return -errno.EINVAL
        if btf.log_name(n.name_off) != node_type_name:
            return -errno.EINVAL
        off = btf.member_bit_offset(n, m)
        if off % 8:
            return -errno.EINVAL
        off //= 8
        if off % node_align:
            return -errno.EINVAL
        field.graph_value_btf_id = info.value_btf_id
        field.graph_node_name = info.node_name
        field.graph_node_offset = off
    if found is None:
        return -errno.ENOENT
    return 0


def parse_fields(btf, t, field_mask, value_size, vmlinux=None, kptr_local=True):
    """btf_parse_fields: the BtfRecord of type ``t`` (a STRUCT or DATASEC), None when it has none.
    ``kptr_local``: a kptr may point to a struct of ``btf`` itself (6.2; else ENOENT: kernel types only).

    Raises OSError: E2BIG (two of a unique field, too many fields), EINVAL (a
    misplaced or malformed field), EEXIST (overlapping fields), ENOENT (a kptr
    to a kernel type the kernel cannot release, a graph root whose node type
    is missing), EFAULT (a field past value_size).
    """
    info = []
    ret = find_field(btf, t, field_mask, info)
    if ret < 0:
        raise bpf_error(-ret, "special fields of the value type")
    if not ret:
        return None
    rec = BtfRecord()
    next_off = 0
    for i in info[:ret]:
        size = FIELD_INFO[i.type][1]
        if i.off + size > value_size:
            raise bpf_error(errno.EFAULT, "special field past the value")
        if i.off < next_off:
            raise bpf_error(errno.EEXIST, "special fields overlap")
        next_off = i.off + size
        rec.field_mask |= i.type
        f = BtfField(i.type, i.off, size)
        if i.type == BPF_SPIN_LOCK:
            rec.spin_lock_off = i.off
        elif i.type == BPF_RES_SPIN_LOCK:
            rec.res_spin_lock_off = i.off
        elif i.type == BPF_TIMER:
            rec.timer_off = i.off
        elif i.type == BPF_WORKQUEUE:
            rec.wq_off = i.off
        elif i.type == BPF_TASK_WORK:
            rec.task_work_off = i.off
        elif i.type == BPF_REFCOUNT:
            rec.refcount_off = i.off
        elif i.type in (BPF_KPTR_UNREF, BPF_KPTR_REF, BPF_KPTR_PERCPU, BPF_UPTR):
            err = _parse_kptr(btf, f, i, vmlinux, kptr_local)
            if err < 0:
                raise bpf_error(-err, "kptr field")
        elif i.type == BPF_LIST_HEAD:
            err = _parse_graph_root(btf, f, i, b"bpf_list_node", 8)
            if err < 0:
                raise bpf_error(-err, "bpf_list_head field")
        elif i.type == BPF_RB_ROOT:
            err = _parse_graph_root(btf, f, i, b"bpf_rb_node", 8)
            if err < 0:
                raise bpf_error(-err, "bpf_rb_root field")
        rec.fields.append(f)
    if rec.spin_lock_off >= 0 and rec.res_spin_lock_off >= 0:
        raise bpf_error(errno.EINVAL, "both a bpf_spin_lock and a bpf_res_spin_lock")
    if rec.has_field(BPF_GRAPH_ROOT) and rec.spin_lock_off < 0 and rec.res_spin_lock_off < 0:
        raise bpf_error(errno.EINVAL, "a list head or rb root needs a spin lock beside it")
    if rec.refcount_off < 0 and rec.has_field(BPF_LIST_NODE) and rec.has_field(BPF_RB_NODE):
        raise bpf_error(errno.EINVAL, "a list node and an rb node need a bpf_refcount")
    rec.fields.sort(key=lambda f: f.offset)
    return rec


ALLOC_OBJ_FIELDS = (b"bpf_spin_lock", b"bpf_list_head", b"bpf_list_node", b"bpf_rb_root",
                    b"bpf_rb_node", b"bpf_refcount")


def check_and_fixup_fields(btf, rec):
    """btf_check_and_fixup_fields: graph roots point at records; ownership has no cycles; uptr targets."""
    if rec is None or not rec.field_mask & (BPF_GRAPH_ROOT | BPF_UPTR):
        return 0
    metas = btf.struct_meta_tab or {}
    for f in rec.fields:
        if f.type == BPF_UPTR:
            if f.kernel_kptr:
                return -errno.EINVAL
            t = f.kptr_btf.type_by_id(f.kptr_btf_id)
            if not t.size:
                return -errno.EINVAL
            if t.size > PAGE_SIZE:
                return -errno.E2BIG
            continue
        if not f.type & BPF_GRAPH_ROOT:
            continue
        meta = metas.get(f.graph_value_btf_id)
        if meta is None:
            return -errno.EFAULT
        f.graph_value_rec = meta
        if not rec.field_mask & BPF_GRAPH_NODE:
            continue
        if meta.field_mask & BPF_GRAPH_ROOT:
            return -errno.ELOOP
    return 0


def parse_struct_metas(btf, vmlinux=None):
    """btf_parse_struct_metas + fixups: 0, or the negative errno that fails BPF_BTF_LOAD.

    Sets ``btf.struct_meta_tab`` to {struct type id: BtfRecord} for each
    struct with a member of a special struct type or a kptr pointer.
    """
    aof = set()
    for name in ALLOC_OBJ_FIELDS:
        i = btf.find_by_name_kind(name, U.BTF_KIND_STRUCT)
        if i >= 0:
            aof.add(i)
    n = btf.nr_types_total()
    for i in range(1, n):
        t = btf.type_by_id(i)
        if t is None:
            return -errno.EINVAL
        if find_kptr(btf, t, 0, 0, BPF_KPTR) == FIELD_FOUND:
            aof.add(i)
    if not aof:
        return 0
    tab = {}
    mask = (BPF_SPIN_LOCK | BPF_RES_SPIN_LOCK | BPF_LIST_HEAD | BPF_LIST_NODE | BPF_RB_ROOT | BPF_RB_NODE |
            BPF_REFCOUNT | BPF_KPTR)
    for i in range(1, n):
        t = btf.type_by_id(i)
        if t.kind != U.BTF_KIND_STRUCT:
            continue
        if not any(m[1] in aof for m in t.members):
            continue
        try:
            rec = parse_fields(btf, t, mask, t.size, vmlinux)
        except OSError as e:
            return -e.errno
        if rec is None:
            return -errno.EFAULT
        tab[i] = rec
    btf.struct_meta_tab = tab
    for rec in tab.values():
        err = check_and_fixup_fields(btf, rec)
        if err < 0:
            btf.struct_meta_tab = None
            return err
    return 0


def find_struct_meta(btf, type_id):
    tab = btf.struct_meta_tab
    return tab.get(type_id) if tab else None


__all__ = ["BtfField", "BtfRecord", "parse_fields", "parse_struct_metas", "find_kptr", "FIELD_INFO"]
