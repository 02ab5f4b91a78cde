"""Maps with BTF on both backends: MAP_CREATE's btf_fd / btf_key_type_id / btf_value_type_id, the special
fields of values, and BPF_F_LOCK.

- the generic checks (map_check_btf of syscall.c): the key and value types must have the map's sizes,
  a type without the map_check_btf op needs a key type, the kernel's own BTF is refused (EACCES);
- each type's own check: arrays take a 32-bit int key (or none for a one-element DATASEC array), hash
  tables need a key, LPM tries a struct key, bloom filters none, cgroup storage a u64 or struct
  bpf_cgroup_storage_key, local storage an int, fd and stack maps no BTF at all (ENOTSUPP);
- the matrix of special fields (spin locks, timers, workqueues, task work, kptrs, uptrs, list heads,
  rb roots, refcounts) x map types, as 6.18 answers it (EOPNOTSUPP, EACCES for the devmaps, whose
  creation adds BPF_F_RDONLY_PROG);
- special fields are never copied from the caller: an update leaves them, a lookup shows them as the
  kernel initializes a copy (zero; a refcount 1; a list head pointing at itself, a kernel address);
  BPF_F_LOCK on lookup, update and the batches, EINVAL without a bpf_spin_lock; a map with special
  fields cannot be frozen or mapped (ENOTSUPP); malformed fields in a DATASEC value leave the map
  without them, as on the host;
- the map holds its BTF and reports its ids in bpf_map_info;
- local storage maps, which need BTF: their memlock and what their element commands answer for fds.
"""
import errno
import time

import pytest

from bpfemu import uapi as u
from bpfemu.btf import Builder
from bpfemu.testing.support import (batch, btf_fd_by_id, btf_info, btf_load, create_map, err, fdinfo_value, freeze,
                                    get_next_id, lookup, lookup_and_delete, map_info, need_map_type, possible_cpus,
                                    u32, u64, update)

OK, EPERM, EBADF, EACCES, EEXIST, EINVAL, ENOENT = 0, 1, 9, 13, 17, 22, 2
ENOTSOCK, EOPNOTSUPP, ENOTSUPP = 88, 95, 524
NP, LOCK = u.BPF_F_NO_PREALLOC, u.BPF_F_LOCK
NCPUS = possible_cpus()  # the host's, which the emulated kernels take too (2 off Linux)

# -- BTF of map values -------------------------------------------------------------------------------

SPECIAL_STRUCTS = [("bpf_timer", 2), ("bpf_wq", 2), ("bpf_list_head", 2), ("bpf_list_node", 3), ("bpf_rb_root", 2),
                   ("bpf_rb_node", 4)]


def base():
    """int (1), long long (2), unsigned int (3), the special structs of bpf.h, a node type for list heads
    and rb roots, a local struct and a 'task_struct' (whose name makes a kptr to it a kernel kptr), and
    the key types some maps want."""
    b = Builder().int("int", 4, signed=True).int("long long", 8, signed=True).int("unsigned int", 4)
    b.struct("bpf_spin_lock", [("val", "unsigned int")])
    b.struct("bpf_res_spin_lock", [("val", "unsigned int")])
    arrays = {}
    for n in (2, 3, 4):
        b.array("long long", n, index="int")
        arrays[n] = b.last
    for name, n in SPECIAL_STRUCTS:
        b.struct(name, [("__opaque", arrays[n])])
    b.struct("bpf_task_work", [("__opaque", "long long")])
    b.struct("bpf_refcount", [("__opaque", "unsigned int")])
    b.struct("node_data", [("key", "long long"), ("l", "bpf_list_node"), ("r", "bpf_rb_node"),
                           ("rc", "bpf_refcount")])
    b.struct("local", [("x", "long long")])
    b.struct("task_struct", [("x", "long long")])
    b.struct("lpm_key", [("prefixlen", "unsigned int"), ("data", "unsigned int")])
    b.struct("bpf_cgroup_storage_key", [("cgroup_inode_id", "long long"), ("attach_type", "unsigned int")])
    b.typedef("__u32", "unsigned int")
    b.struct("s4", [("a", "int")])
    return b


def kptr(b, tag, target):
    b.type_tag(tag, target)
    b.ptr(b.last)
    return b.last


def field_members(b, field):
    """The members of a value holding ``field`` (and what it needs beside it)."""
    if field == "none4":
        return [("a", "int")]
    if field == "none8":
        return [("a", "long long")]
    if field.startswith("bpf_") and field not in ("bpf_list_head", "bpf_rb_root"):
        return [("f", field)]
    if field in ("bpf_list_head", "bpf_rb_root"):
        return [("l", "bpf_spin_lock"), ("f", field)]
    tag, target = {"kptr_untrusted": ("kptr_untrusted", "local"), "kptr_local": ("kptr", "local"),
                   "kptr_kernel": ("kptr", "task_struct"), "percpu_kptr": ("percpu_kptr", "local"),
                   "uptr": ("uptr", "local")}[field]
    return [("f", kptr(b, tag, target))]


def value_btf(members, tags=()):
    """(blob, value id, value size) of struct value { members }, with decl tags (name, component) on it."""
    b = base()
    if callable(members):
        members = members(b)
    b.struct("value", members)
    vid = b.last
    for name, comp in tags:
        b.decl_tag(name, vid, comp)
    blob = b.blob()
    from bpfemu.btf import load
    btf = load(blob, log_level=0, log_size=0)[0]
    return blob, vid, btf.size_of(vid), btf


def field_btf(field):
    tags = {"bpf_list_head": [("contains:node_data:l", 1)], "bpf_rb_root": [("contains:node_data:r", 1)]}
    return value_btf(lambda b: field_members(b, field), tags.get(field, ()))


def type_id(btf, name, kind=4):
    return btf.find_by_name_kind(name, kind)


FIELDS = ["none4", "none8", "bpf_spin_lock", "bpf_res_spin_lock", "bpf_timer", "bpf_wq", "bpf_task_work",
          "kptr_untrusted", "kptr_local", "kptr_kernel", "percpu_kptr", "uptr", "bpf_list_head", "bpf_rb_root",
          "bpf_refcount", "bpf_list_node", "bpf_rb_node"]
# map type: (key: 'int' / 'u64' / 'lpm' / None, value sizes it takes (None: any, 'x8': multiples of 8),
#            max_entries, flags), then the 6.18 answer for each field of FIELDS:
# ok, OP (EOPNOTSUPP), NS (ENOTSUPP, map_check_no_btf), AC (EACCES), IN (EINVAL), -- (no value of that size)
MATRIX = {
    "HASH": (("int", None, 4, 0), "ok ok ok ok ok ok ok ok ok ok ok OP ok ok ok ok ok"),
    "HASH NO_PREALLOC": (("int", None, 4, NP), "ok ok ok ok ok ok ok ok ok ok ok OP ok ok ok ok ok"),
    "ARRAY": (("int", None, 4, 0), "ok ok ok ok ok ok ok ok ok ok ok OP ok ok ok ok ok"),
    "ARRAY MMAPABLE": (("int", None, 4, u.BPF_F_MMAPABLE), "ok ok ok ok ok ok ok ok ok ok ok OP ok ok ok ok ok"),
    "PROG_ARRAY": (("int", (4,), 4, 0), "ok -- OP OP -- -- -- -- -- -- -- -- -- -- OP -- --"),
    "PERF_EVENT_ARRAY": (("int", (4,), 4, 0), "NS -- OP OP -- -- -- -- -- -- -- -- -- -- OP -- --"),
    "PERCPU_HASH": (("int", None, 4, 0), "ok ok OP OP OP OP OP ok ok ok ok OP OP OP ok ok ok"),
    "PERCPU_ARRAY": (("int", None, 4, 0), "ok ok OP OP OP OP OP ok ok ok ok OP OP OP ok ok ok"),
    "STACK_TRACE": (("int", "x8", 4, 0), "-- NS -- -- OP OP OP OP OP OP OP OP OP OP -- NS NS"),
    "CGROUP_ARRAY": (("int", (4,), 4, 0), "NS -- OP OP -- -- -- -- -- -- -- -- -- -- OP -- --"),
    "LRU_HASH": (("int", None, 4, 0), "ok ok OP OP ok ok ok ok ok ok ok OP OP OP ok ok ok"),
    "LRU_PERCPU_HASH": (("int", None, 4, 0), "ok ok OP OP OP OP OP ok ok ok ok OP OP OP ok ok ok"),
    "LPM_TRIE": (("lpm", None, 4, NP), "ok ok OP OP OP OP OP OP OP OP OP OP OP OP OP ok ok"),
    "ARRAY_OF_MAPS": (("int", (4,), 4, 0), "NS -- OP OP -- -- -- -- -- -- -- -- -- -- OP -- --"),
    "HASH_OF_MAPS": (("int", (4,), 4, 0), "NS -- OP OP -- -- -- -- -- -- -- -- -- -- OP -- --"),
    "DEVMAP": (("int", (4, 8), 4, 0), "NS NS AC AC -- -- AC AC AC AC AC AC -- -- AC -- --"),
    "SOCKMAP": (("int", (4, 8), 4, 0), "NS NS OP OP -- -- OP OP OP OP OP OP -- -- OP -- --"),
    "CPUMAP": (("int", (4, 8), 4, 0), "NS NS OP OP -- -- OP OP OP OP OP OP -- -- OP -- --"),
    "XSKMAP": (("int", (4,), 4, 0), "NS -- OP OP -- -- -- -- -- -- -- -- -- -- OP -- --"),
    "SOCKHASH": (("int", (4, 8), 4, 0), "NS NS OP OP -- -- OP OP OP OP OP OP -- -- OP -- --"),
    "CGROUP_STORAGE": (("u64", None, 0, 0), "ok ok ok ok OP OP OP OP OP OP OP OP OP OP OP ok ok"),
    "REUSEPORT_SOCKARRAY": (("int", (4, 8), 4, 0), "ok ok OP OP -- -- OP OP OP OP OP OP -- -- OP -- --"),
    "PERCPU_CGROUP_STORAGE": (("u64", None, 0, 0), "ok ok OP OP OP OP OP OP OP OP OP OP OP OP OP ok ok"),
    "QUEUE": ((None, None, 4, 0), "IN IN IN IN IN IN IN IN IN IN IN IN IN IN IN IN IN"),
    "STACK": ((None, None, 4, 0), "IN IN IN IN IN IN IN IN IN IN IN IN IN IN IN IN IN"),
    "SK_STORAGE": (("int", None, 0, NP), "ok ok ok ok OP OP OP ok ok ok ok OP OP OP ok ok ok"),
    "DEVMAP_HASH": (("int", (4, 8), 4, 0), "NS NS AC AC -- -- AC AC AC AC AC AC -- -- AC -- --"),
    "INODE_STORAGE": (("int", None, 0, NP), "ok ok ok ok OP OP OP ok ok ok ok OP OP OP ok ok ok"),
    "TASK_STORAGE": (("int", None, 0, NP), "ok ok ok ok OP OP OP ok ok ok ok ok OP OP ok ok ok"),
    "BLOOM_FILTER": ((None, None, 4, 0), "ok ok OP OP OP OP OP OP OP OP OP OP OP OP OP ok ok"),
    "CGRP_STORAGE": (("int", None, 0, NP), "ok ok ok ok OP OP OP ok ok ok ok OP OP OP ok ok ok"),
}
CODES = {"ok": OK, "OP": EOPNOTSUPP, "NS": ENOTSUPP, "AC": EACCES, "IN": EINVAL}
# the btf_field_type of each field of FIELDS that map_check_btf may look for
FIELD_TYPE = {"bpf_spin_lock": "BPF_SPIN_LOCK", "bpf_res_spin_lock": "BPF_RES_SPIN_LOCK", "bpf_timer": "BPF_TIMER",
              "bpf_wq": "BPF_WORKQUEUE", "bpf_task_work": "BPF_TASK_WORK", "kptr_untrusted": "BPF_KPTR_UNREF",
              "kptr_local": "BPF_KPTR_REF", "kptr_kernel": "BPF_KPTR_REF", "percpu_kptr": "BPF_KPTR_PERCPU",
              "uptr": "BPF_UPTR", "bpf_list_head": "BPF_LIST_HEAD", "bpf_rb_root": "BPF_RB_ROOT",
              "bpf_refcount": "BPF_REFCOUNT"}


# the fields of FIELDS that point to a struct of the map's own BTF (local kptrs)
LOCAL_KPTRS = ("kptr_untrusted", "kptr_local", "percpu_kptr", "uptr")


def special_in(profile, field):
    """Whether the kernel version looks for ``field`` in a map value (``profile.map_value_fields``) and takes
    it (a kptr to a struct of the map's BTF needs ``profile.kptr_local``); where it does not, the field is
    plain data (as a struct of its size without special fields: none4, none8)."""
    from bpfemu.btf import fields as F
    if field not in FIELD_TYPE:
        return True
    if field in LOCAL_KPTRS and not profile.kptr_local:
        return False
    mask = 0
    for name in profile.map_value_fields:
        mask |= getattr(F, name)
    return bool(getattr(F, FIELD_TYPE[field]) & mask)


def held(profile, field):
    """The special fields (btf field type names) the kernel version finds in the value of ``field``."""
    lock = ["BPF_SPIN_LOCK"] if field in GRAPH_ROOTS else []  # (a graph root comes with its lock)
    return lock + ([FIELD_TYPE[field]] if field in FIELD_TYPE and special_in(profile, field) else [])


def answer(profile, name, field, vsize):
    """The answer (a CODES key) for ``field`` in a map of MATRIX's row ``name``, in this kernel version:
    the row's (6.18's) where the version keeps special fields in a btf_record; where it checks them kind by
    kind (6.1, ``profile.map_field_rules``), the errno of the first kind the map type may not hold, else the
    row's answer for plain data of the value's size."""
    row = MATRIX[name][1]
    rules = profile.map_field_rules
    if rules != "record":
        plain = row.split()[FIELDS.index("none8" if vsize % 8 == 0 else "none4")]
        if plain == "IN":
            return plain  # (the key type check comes first)
        fields = held(profile, field)
        for rule in rules:
            if not set(fields) & set(rule.fields):
                continue
            if (MATRIX[name][0][3] | FORCED_FLAGS.get(name, 0)) & rule.eacces_flags:
                return "AC"
            if map_type(name) not in rule.map_types:
                return {v: k for k, v in CODES.items()}[rule.errno]
        return plain
    if not special_in(profile, field):  # plain data, beside the bpf_spin_lock a graph root comes with
        plain = "none8" if vsize % 8 == 0 else "none4"
        lock = row.split()[FIELDS.index("bpf_spin_lock")]
        if field in GRAPH_ROOTS:  # the lock's answer (None: the table has none, its lock alone does not fit)
            return lock if lock != "--" else None
        return row.split()[FIELDS.index(plain)]
    return row.split()[FIELDS.index(field)]


GRAPH_ROOTS = ("bpf_list_head", "bpf_rb_root")
# map flags a map type sets itself (dev_map_alloc: programs only read a device map's values)
FORCED_FLAGS = {"DEVMAP": u.BPF_F_RDONLY_PROG, "DEVMAP_HASH": u.BPF_F_RDONLY_PROG}


def map_type(name):
    return getattr(u, "BPF_MAP_TYPE_" + name.split()[0])


def key_of(btf, key):
    """(key type id, key size) of the key kinds of MATRIX."""
    if key == "int":
        return 1, 4
    if key == "u64":
        return 2, 8
    if key == "lpm":
        return type_id(btf, "lpm_key"), 8
    return 0, 0


def create_with_btf(proc, t, key_size, value_size, max_entries, flags, btf_fd, key_id, value_id, **extra):
    return create_map(proc, t, key_size, value_size, max_entries, flags, btf_fd=btf_fd, btf_key_type_id=key_id,
                      btf_value_type_id=value_id, **extra)


def test_special_field_matrix(proc, profile):
    """Every map type x every special field: the errno of MAP_CREATE is 6.18's."""
    loaded = {}
    for field in FIELDS:
        blob, vid, vsize, btf = field_btf(field)
        loaded[field] = (btf_load(proc, blob), vid, vsize, btf)
    inner = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    bad = []
    for name, ((key, sizes, max_entries, flags), row) in MATRIX.items():
        if not profile.knows_map_type(map_type(name)):
            continue  # (CGRP_STORAGE, ARENA: not in 6.1)
        for field, want in zip(FIELDS, row.split()):
            fd, vid, vsize, btf = loaded[field]
            fits = (vsize % 8 == 0) if sizes == "x8" else (sizes is None or vsize in sizes)
            assert fits == (want != "--"), (name, field)
            if fits:
                want = answer(profile, name, field, vsize)
                if want is None:
                    continue
            if not fits:
                continue
            kid, ksize = key_of(btf, key)
            extra = {"inner_map_fd": inner} if name.endswith("_OF_MAPS") else {}
            try:
                proc.close(create_with_btf(proc, map_type(name), ksize, vsize, max_entries, flags, fd, kid, vid,
                                           **extra))
                got = OK
            except OSError as e:
                got = e.errno
            if got != CODES[want]:
                bad.append((name, field, want, got))
    assert not bad


# -- the generic checks -----------------------------------------------------------------------------

@pytest.fixture
def plain(proc):
    """A loaded BTF with struct value { long long a; } (8 bytes): (btf fd, Btf, value id)."""
    blob, vid, _size, btf = value_btf([("a", "long long")])
    return btf_load(proc, blob), btf, vid


H, A = u.BPF_MAP_TYPE_HASH, u.BPF_MAP_TYPE_ARRAY


def test_sizes_must_match(proc, plain):
    fd, btf, vid = plain
    assert err(create_with_btf, proc, H, 4, 8, 4, 0, fd, 1, vid) == OK
    assert err(create_with_btf, proc, H, 8, 8, 4, 0, fd, 1, vid) == EINVAL  # int key, key_size 8
    assert err(create_with_btf, proc, H, 4, 16, 4, 0, fd, 1, vid) == EINVAL
    assert err(create_with_btf, proc, H, 8, 8, 4, 0, fd, 2, vid) == OK  # long long key
    assert err(create_with_btf, proc, H, 4, 8, 4, 0, fd, 1, 2) == OK  # a long long value
    assert err(create_with_btf, proc, H, 4, 8, 4, 0, fd, type_id(btf, "__u32", 8), vid) == OK  # typedef key


def test_type_ids_that_name_no_sized_type(proc, plain):
    fd, btf, vid = plain
    assert err(create_with_btf, proc, H, 4, 8, 4, 0, fd, 1, 100000) == EINVAL
    assert err(create_with_btf, proc, H, 4, 8, 4, 0, fd, 100000, vid) == EINVAL
    assert err(create_with_btf, proc, H, 4, 8, 4, 0, fd, 0, vid) == EINVAL  # a hash table needs a key type


def test_key_id_without_value_id(proc, plain):
    fd, _btf, _vid = plain
    assert err(create_with_btf, proc, H, 4, 8, 4, 0, fd, 1, 0) == EINVAL


def test_btf_fd_must_be_a_loaded_btf(proc, plain):
    fd, _btf, vid = plain
    m = create_map(proc, A, 4, 4, 1)
    assert err(create_with_btf, proc, H, 4, 8, 4, 0, 999, 1, vid) == EBADF
    assert err(create_with_btf, proc, H, 4, 8, 4, 0, m, 1, vid) == EINVAL
    assert err(create_with_btf, proc, H, 4, 8, 4, 0, btf_fd_by_id(proc, 1), 1, vid) == EACCES  # vmlinux
    # without type ids the fd is not looked at
    proc.close(create_map(proc, H, 4, 8, 4, btf_fd=999))


def test_array_keys(proc):
    blob, vid, size, btf = value_btf([("a", "long long")])
    b = Builder().int("int", 4, signed=True).int("short", 4, bits=16).struct("k", [("a", "int")])
    b.int("long long", 8).struct("v", [("a", "long long")]).typedef("t", "int")
    fd = btf_load(proc, b.blob())
    assert err(create_with_btf, proc, A, 4, 8, 4, 0, fd, 1, 5) == OK
    assert err(create_with_btf, proc, A, 4, 8, 4, 0, fd, 6, 5) == OK  # a typedef of int
    assert err(create_with_btf, proc, A, 4, 8, 4, 0, fd, 2, 5) == EINVAL  # 16 bits in 4 bytes
    assert err(create_with_btf, proc, A, 4, 8, 4, 0, fd, 3, 5) == EINVAL  # a struct
    assert err(create_with_btf, proc, A, 4, 8, 1, 0, fd, 0, 5) == EINVAL  # keyless, but no DATASEC value
    assert err(create_with_btf, proc, u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 4, 0, fd, 3, 5) == EINVAL
    assert err(create_with_btf, proc, u.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4, 0, fd, 3, 1) == OK  # no op: any key


def _datasec_btf():
    b = Builder().int("int", 4, signed=True).struct("bpf_spin_lock", [("val", "int")])
    b.var("a", "bpf_spin_lock", linkage=1).var("b", "bpf_spin_lock", linkage=1).var("c", "int", linkage=1)
    b.datasec(".data", [("a", 0, 4), ("b", 4, 4)], size=8)
    two = b.last
    b.datasec(".bss", [("a", 0, 4), ("c", 4, 4)], size=8)
    one = b.last
    b.datasec(".rodata", [("c", 0, 4)], size=4)
    return b.blob(), two, one, b.last


def freeze_refused(profile, field_type):
    """Whether a special field of this type makes MAP_FREEZE ENOTSUPP in the kernel version (any one does
    with a btf_record; 6.1: timers and kptrs)."""
    rules = profile.map_field_rules
    return rules == "record" or any(field_type in r.fields and r.blocks_freeze for r in rules)


def eacces_flags(profile, field_type):
    """The map flags that make MAP_CREATE EACCES for a special field of this type in the kernel version."""
    rules = profile.map_field_rules
    if rules == "record":
        return u.BPF_F_RDONLY_PROG | u.BPF_F_WRONLY_PROG
    return sum(r.eacces_flags for r in rules if field_type in r.fields)


def test_global_data_arrays(proc, profile):
    """A one-element ARRAY may have no key type when its value is a DATASEC (.data, .bss, .rodata)."""
    blob, two, one, plain = _datasec_btf()
    fd = btf_load(proc, blob)
    assert err(create_with_btf, proc, A, 4, 8, 1, 0, fd, 0, one) == OK
    assert err(create_with_btf, proc, A, 4, 8, 2, 0, fd, 0, one) == EINVAL
    assert err(create_with_btf, proc, A, 4, 4, 1, 0, fd, 0, plain) == OK
    assert err(create_with_btf, proc, u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 1, 0, fd, 0, plain) == EINVAL
    m = create_with_btf(proc, A, 4, 8, 1, 0, fd, 0, one)
    update(proc, m, u32(0), b"\xff" * 8, LOCK)
    assert lookup(proc, m, u32(0), 8) == bytes(4) + b"\xff" * 4
    assert err(freeze, proc, m) == (ENOTSUPP if freeze_refused(profile, "BPF_SPIN_LOCK") else OK)


def test_malformed_fields_leave_the_map_without_them(proc):
    """Two spin locks in one DATASEC: BTF_LOAD accepts it (it checks structs), MAP_CREATE too, and the map
    behaves as if its value had no special field (btf_parse_fields' error is dropped)."""
    blob, two, _one, _plain = _datasec_btf()
    fd = btf_load(proc, blob)
    m = create_with_btf(proc, A, 4, 8, 1, 0, fd, 0, two)
    assert err(update, proc, m, u32(0), b"\xff" * 8, LOCK) == EINVAL
    update(proc, m, u32(0), b"\xff" * 8)
    assert lookup(proc, m, u32(0), 8) == b"\xff" * 8
    freeze(proc, m)


def test_value_type_other_than_struct_has_no_fields(proc, plain):
    fd, _btf, _vid = plain
    m = create_with_btf(proc, A, 4, 4, 4, 0, fd, 1, 1)  # an int value
    assert err(update, proc, m, u32(0), u32(7), LOCK) == EINVAL
    freeze(proc, m)


@pytest.mark.parametrize("flags,want", [(u.BPF_F_RDONLY_PROG, EACCES), (u.BPF_F_WRONLY_PROG, EACCES),
                                        (u.BPF_F_RDONLY, OK)])
def test_special_fields_and_program_access(proc, profile, flags, want):
    blob, vid, size, _btf = field_btf("bpf_spin_lock")
    fd = btf_load(proc, blob)
    if want == EACCES and not flags & eacces_flags(profile, "BPF_SPIN_LOCK"):
        want = OK  # (6.1: a bpf_spin_lock refuses BPF_F_RDONLY_PROG only)
    assert err(create_with_btf, proc, H, 4, size, 4, flags, fd, 1, vid) == want
    blob, vid, size, _btf = value_btf([("a", "long long")])
    fd = btf_load(proc, blob)
    assert err(create_with_btf, proc, H, 4, size, 4, flags, fd, 1, vid) == OK


@pytest.mark.parametrize("name,ksize,kid,want", [
    ("LPM_TRIE", 4, 1, EINVAL), ("BLOOM_FILTER", 0, 0, OK), ("CGROUP_STORAGE", 8, 2, OK),
    ("CGROUP_STORAGE", 8, 1, EINVAL), ("CGROUP_STORAGE", 16, "bpf_cgroup_storage_key", OK),
    ("CGROUP_STORAGE", 16, "lpm_key", EINVAL), ("SK_STORAGE", 4, "s4", EINVAL), ("SK_STORAGE", 4, 3, OK),
    ("TASK_STORAGE", 4, "__u32", OK), ("QUEUE", 0, 0, EINVAL), ("ARENA", 0, 0, EINVAL),
])
def test_key_types_per_map_type(proc, name, ksize, kid, want):
    blob, vid, vsize, btf = value_btf([("a", "long long")])
    fd = btf_load(proc, blob)
    if isinstance(kid, str):
        kid = type_id(btf, kid, 8 if kid == "__u32" else 4)
    flags = {"LPM_TRIE": NP, "SK_STORAGE": NP, "TASK_STORAGE": NP, "ARENA": u.BPF_F_MMAPABLE}.get(name, 0)
    max_entries = 0 if "STORAGE" in name else 4
    vs = 0 if name == "ARENA" else vsize
    assert err(create_with_btf, proc, map_type(name), ksize, vs, max_entries, flags, fd, kid, vid) == want


# -- the map and its BTF -------------------------------------------------------------------------------

def test_map_info_and_the_btf_it_holds(proc, plain):
    fd, _btf, vid = plain
    bid = btf_info(proc, fd)[0].id
    m = create_with_btf(proc, H, 4, 8, 4, 0, fd, 1, vid)
    i = map_info(proc, m)
    assert (i.btf_id, i.btf_key_type_id, i.btf_value_type_id, i.btf_vmlinux_value_type_id) == (bid, 1, vid, 0)
    proc.close(fd)
    # the map keeps the BTF alive: its id still opens it
    again = btf_fd_by_id(proc, bid)
    assert btf_info(proc, again)[0].id == bid
    proc.close(again)
    proc.close(m)
    deadline = time.monotonic() + 5  # the host frees it after an RCU grace period
    while bid in btf_ids(proc, bid - 1) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert err(btf_fd_by_id, proc, bid) == ENOENT


def btf_ids(proc, start):
    try:
        return [get_next_id(proc, start, u.BPF_BTF_GET_NEXT_ID)]
    except OSError:
        return []


def test_map_without_btf_reports_none(proc):
    i = map_info(proc, create_map(proc, H, 4, 8, 4))
    assert (i.btf_id, i.btf_key_type_id, i.btf_value_type_id) == (0, 0, 0)


# -- values with special fields ------------------------------------------------------------------------

def locked_value():
    """struct value { int cnt; struct bpf_spin_lock lock; long long data; } (16 bytes, lock at 4)."""
    return value_btf([("cnt", "int"), ("lock", "bpf_spin_lock"), ("data", "long long")])


@pytest.fixture(params=["HASH", "ARRAY"])
def locked(request, proc):
    blob, vid, size, _btf = locked_value()
    assert size == 16
    fd = btf_load(proc, blob)
    return create_with_btf(proc, map_type(request.param), 4, 16, 4, 0, fd, 1, vid), request.param


V = b"\x11" * 4 + b"\xff" * 4 + b"\x22" * 8
SEEN = b"\x11" * 4 + bytes(4) + b"\x22" * 8  # the lock is never copied from the caller


def test_lock_bytes_are_not_copied(proc, locked):
    m, _name = locked
    update(proc, m, u32(1), V)
    assert lookup(proc, m, u32(1), 16) == SEEN
    assert lookup(proc, m, u32(1), 16, LOCK) == SEEN
    update(proc, m, u32(1), V.replace(b"\x11", b"\x33"), LOCK)
    assert lookup(proc, m, u32(1), 16, LOCK) == SEEN.replace(b"\x11", b"\x33")


def test_lock_update_flags(proc, locked):
    m, name = locked
    assert err(update, proc, m, u32(1), V, LOCK | u.BPF_EXIST) == (ENOENT if name == "HASH" else OK)
    update(proc, m, u32(1), V, LOCK)
    assert err(update, proc, m, u32(1), V, LOCK | u.BPF_NOEXIST) == EEXIST
    assert err(update, proc, m, u32(1), V, LOCK | u.BPF_EXIST) == OK
    assert err(update, proc, m, u32(1), V, LOCK | 8) == EINVAL


def test_lock_lookup_and_delete(proc, locked):
    m, name = locked
    update(proc, m, u32(1), V)
    if name == "HASH":
        assert lookup_and_delete(proc, m, u32(1), 16, LOCK) == SEEN
        assert err(lookup, proc, m, u32(1), 16) == ENOENT
    else:
        assert err(lookup_and_delete, proc, m, u32(1), 16, LOCK) == ENOTSUPP


def test_lock_batches(proc, locked):
    m, name = locked
    r = batch(proc, u.BPF_MAP_UPDATE_BATCH, m, 2, 4, 16, keys=u32(1) + u32(2), values=V + V, elem_flags=LOCK)
    assert (r.errno, r.count) == (0, 2)
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, m, 4, 4, 16, elem_flags=LOCK)
    got = dict(zip([r.keys[i:i + 4] for i in range(0, 4 * r.count, 4)],
                   [r.values[i:i + 16] for i in range(0, 16 * r.count, 16)]))
    assert got[u32(1)] == got[u32(2)] == SEEN
    if name == "HASH":
        r = batch(proc, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH, m, 4, 4, 16, elem_flags=LOCK)
        assert r.count == 2 and r.values[:16] == SEEN


def test_lock_flag_needs_a_spin_lock(proc, plain):
    fd, _btf, vid = plain
    m = create_with_btf(proc, H, 4, 8, 4, 0, fd, 1, vid)
    update(proc, m, u32(1), u64(1))
    assert err(update, proc, m, u32(1), u64(1), LOCK) == EINVAL
    assert err(lookup, proc, m, u32(1), 8, LOCK) == EINVAL
    assert err(lookup_and_delete, proc, m, u32(1), 8, LOCK) == EINVAL
    for cmd in (u.BPF_MAP_LOOKUP_BATCH, u.BPF_MAP_UPDATE_BATCH):
        assert batch(proc, cmd, m, 1, 4, 8, keys=u32(1), values=u64(1), elem_flags=LOCK).errno == EINVAL


@pytest.mark.parametrize("field", ["bpf_res_spin_lock", "bpf_timer", "kptr_untrusted"])
def test_other_fields_are_no_lock(proc, profile, field):
    blob, vid, size, _btf = field_btf(field)
    m = create_with_btf(proc, H, 4, size, 4, 0, btf_load(proc, blob), 1, vid)
    assert err(update, proc, m, u32(1), b"\xff" * size, LOCK) == EINVAL
    update(proc, m, u32(1), b"\xff" * size)
    # (a field the version does not know is plain data: what the update wrote)
    assert lookup(proc, m, u32(1), size) == (bytes(size) if special_in(profile, field) else b"\xff" * size)


def mixed(field):
    """struct value { long long a; <field> f; long long b; }."""
    return value_btf(lambda b: [("a", "long long")] + field_members(b, field) + [("b", "long long")],
                     {"bpf_list_head": [("contains:node_data:l", 2)], "bpf_rb_root": [("contains:node_data:r", 2)]}
                     .get(field, ()))


def field_span(btf, vid, name):
    """(offset, size) of member ``name`` of the value struct."""
    t = btf.type_by_id(vid)
    for m in t.members:
        if btf.str_by_offset(m[0]) == name.encode():
            return m[2] // 8, btf.size_of(m[1])
    raise KeyError(name)


KERNEL_HALF = 0xFFFF800000000000


@pytest.mark.parametrize("field", ["bpf_timer", "bpf_wq", "bpf_task_work", "kptr_untrusted", "kptr_local",
                                   "kptr_kernel", "percpu_kptr", "bpf_refcount", "bpf_list_head", "bpf_rb_root"])
@pytest.mark.parametrize("name", ["HASH", "ARRAY", "PERCPU_ARRAY"])
def test_special_fields_after_update(proc, profile, name, field):
    """What a lookup shows of each special field, whatever the update wrote there: zeros, a refcount of 1,
    a list head that points at itself (in the kernel's copy: a kernel address)."""
    blob, vid, size, btf = mixed(field)
    fd = btf_load(proc, blob)
    want = answer(profile, name, field, size)
    if want is None:
        pytest.skip("no answer in the table for a lone bpf_spin_lock in %s maps" % name)
    want = CODES[want]
    got = err(create_with_btf, proc, map_type(name), 4, size, 4, 0, fd, 1, vid)
    assert got == want
    if got:
        return
    m = create_with_btf(proc, map_type(name), 4, size, 4, 0, fd, 1, vid)
    per = NCPUS if name.startswith("PERCPU") else 1
    step = (size + 7) // 8 * 8
    update(proc, m, u32(1), (b"\xff" * size + bytes(step - size)) * per)
    raw = lookup(proc, m, u32(1), step * per)
    spans = [field_span(btf, vid, n) for n in ("l", "f") if n == "f" or field in ("bpf_list_head", "bpf_rb_root")]
    if not special_in(profile, field):
        spans = spans[:-1]  # plain data (but the lock beside a graph root)
    for cpu in range(per):
        v = raw[cpu * step:cpu * step + size]
        special = set()
        for off, n in spans:
            special.update(range(off, off + n))
            part = v[off:off + n]
            if field == "bpf_refcount" and n == 4:
                assert part == u32(1)
            elif field == "bpf_list_head" and n == 16:
                nxt, prv = int.from_bytes(part[:8], "little"), int.from_bytes(part[8:], "little")
                assert nxt == prv >= KERNEL_HALF
            else:
                assert part == bytes(n), (off, n)
        assert all(v[i] == 0xFF for i in range(size) if i not in special)


def test_special_fields_forbid_freeze_and_mmap(proc):
    blob, vid, size, _btf = field_btf("bpf_timer")
    fd = btf_load(proc, blob)
    m = create_with_btf(proc, A, 4, size, 4, u.BPF_F_MMAPABLE, fd, 1, vid)
    assert err(freeze, proc, m) == ENOTSUPP
    assert err(proc.mmap, m, 4096) == ENOTSUPP
    blob, vid, size, _btf = value_btf([("a", "long long")])
    m = create_with_btf(proc, A, 4, size, 4, u.BPF_F_MMAPABLE, btf_load(proc, blob), 1, vid)
    proc.mmap(m, 4096).close()
    freeze(proc, m)


# -- local storage ---------------------------------------------------------------------------------------

STORAGE = ["SK_STORAGE", "INODE_STORAGE", "TASK_STORAGE", "CGRP_STORAGE"]


def storage(proc, name, field="none8"):
    blob, vid, size, _btf = field_btf(field)
    return create_with_btf(proc, map_type(name), 4, size, 0, NP, btf_load(proc, blob), 1, vid), size


def _rpow2(n):
    p = 1
    while p < n:
        p *= 2
    return p


# sizeof(struct bpf_local_storage_map) as memlock counts it; 6.1 shows its footprint estimate (max_entries 0: 0)
LOCAL_STORAGE_MAP = {"6.18": 448, "6.12": 432}


@pytest.mark.parametrize("name", STORAGE)
def test_local_storage_memlock_and_info(proc, profile, name):
    if not profile.knows_map_type(getattr(u, "BPF_MAP_TYPE_" + name)):
        pytest.skip("%s has no %s maps" % (profile.version, name))
    m, size = storage(proc, name)
    want = LOCAL_STORAGE_MAP[profile.version] + 16 * max(2, _rpow2(NCPUS)) if profile.version in LOCAL_STORAGE_MAP \
        else 0
    assert int(fdinfo_value(proc, m, "memlock")) == want
    i = map_info(proc, m)
    assert (i.max_entries, i.map_flags, i.key_size, i.value_size) == (0, NP, 4, size)


# what each command answers for an fd of the caller that is not a socket / pidfd / cgroup
NOT_OWNER = {"SK_STORAGE": ENOTSOCK, "TASK_STORAGE": EBADF, "CGRP_STORAGE": EBADF}


@pytest.mark.parametrize("name", STORAGE)
def test_local_storage_elements(proc, profile, name):
    need_map_type(profile, getattr(u, "BPF_MAP_TYPE_" + name))
    m, size = storage(proc, name)
    other = create_map(proc, A, 4, 4, 1)
    key = u32(other)
    assert err(update, proc, m, u32(999), u64(1)) == EBADF
    assert err(lookup, proc, m, u32(0xFFFFFFFF), 8) == EBADF
    for cmd in (u.BPF_MAP_LOOKUP_BATCH, u.BPF_MAP_UPDATE_BATCH, u.BPF_MAP_DELETE_BATCH):
        assert batch(proc, cmd, m, 1, 4, 8, keys=key, values=u64(1)).errno == ENOTSUPP
    assert err(lookup_and_delete, proc, m, key, 8) == ENOTSUPP
    if name in NOT_OWNER:
        e = NOT_OWNER[name]
        assert [err(update, proc, m, key, u64(1)), err(lookup, proc, m, key, 8),
                err(proc.bpf, u.BPF_MAP_DELETE_ELEM, u.make_attr(map_fd=m, key=_addr(key)))] == [e, e, e]
        return
    # INODE_STORAGE: any file has an inode; every bpf object fd shares the one anonymous inode
    assert err(lookup, proc, m, key, 8) == ENOENT
    update(proc, m, key, u64(7))
    assert lookup(proc, m, u32(m), 8) == u64(7)  # the map's own fd: the same inode
    assert err(update, proc, m, key, u64(8), u.BPF_NOEXIST) == EEXIST
    assert err(update, proc, m, key, u64(8), 8) == EINVAL
    assert err(update, proc, m, u32(0), u64(8), u.BPF_EXIST) == ENOENT  # fd 0 is not a bpf object
    update(proc, m, u32(0), u64(9))
    assert lookup(proc, m, u32(0), 8) == u64(9) and lookup(proc, m, key, 8) == u64(7)
    proc.bpf(u.BPF_MAP_DELETE_ELEM, u.make_attr(map_fd=m, key=_addr(key)))
    assert err(lookup, proc, m, key, 8) == ENOENT


_keep = []


def _addr(data):
    import ctypes
    b = ctypes.create_string_buffer(data, len(data))
    _keep.append(b)
    return ctypes.addressof(b)
