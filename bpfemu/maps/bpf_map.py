"""struct bpf_map and struct bpf_map_ops: what every map type shares, and every operation it may have.

A map type is a subclass of :class:`BpfMap` in its own file (named after the
kernel's), listed once in :mod:`bpfemu.maps.bpf_types`. Its methods are the
kernel's ``struct bpf_map_ops``, each declared here with the answer the kernel
gives when a type leaves the op out, so a type overrides only what it has:

==========================  ============================================  ==========================
op                          kernel                                        default here
==========================  ============================================  ==========================
``alloc_check`` (class)     map_alloc_check: attr checks before the       accept
                            privilege checks
``map_alloc`` (class)       map_alloc (after the privilege checks)        ``cls(kernel, attr)``
``on_free``                 map_free                                      nothing to drop
``lookup``                  map_lookup_elem                               ENOENT
``update``                  map_update_elem                               EINVAL
``delete``                  map_delete_elem                               EINVAL
``get_next_key``            map_get_next_key                              EINVAL
``lookup_and_delete``       map_lookup_and_delete_elem                    ENOTSUPP
``push``/``pop``/``peek``   map_push_elem/map_pop_elem/map_peek_elem      ENOTSUPP
``peek_value``              map_peek_elem of a bloom filter (a value in)  ENOTSUPP
``lookup_batch`` ...        map_lookup_batch, map_lookup_and_delete_      ENOTSUPP (types opt in to
                            batch, map_update_batch, map_delete_batch     the ``generic_map_*`` ones)
``map_mmap``                map_mmap                                      ENOTSUPP
``mmap_area`` (property)    the area bpf_map_area_mmapable_alloc made,    None
                            which every mapping of the map shares
``map_get_hash``            map_get_hash (content hash of a frozen map)   EINVAL
``map_check_btf``           map_check_btf                                 accept
``mem_usage``               map_mem_usage: the fdinfo ``memlock`` bytes   **required**
==========================  ============================================  ==========================

What the syscall layer adds on top (bpf_map_copy_value, bpf_map_update_value and
the lookup-and-delete dispatch of syscall.c) is ``lookup_sys``, ``update_sys``
and ``lookup_and_delete_sys``, which default to the plain ops. Keys and values
are bytes, in the layout userspace sees. :func:`implements` says whether a type
has an op (the kernel's ``map->ops->op != NULL``), for the commands whose
checks depend on it.
"""
import errno
import mmap as _mmap
import struct

from .. import uapi
from ..btf import fields as F
from ..btf import uapi as B
from ..errors import ENOTSUPP, bpf_error
from ..limits import S32_MAX, page_align, round_up
from ..objects import BpfObject, fdget

BPF_F_ACCESS_MASK = uapi.BPF_F_RDONLY | uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY | uapi.BPF_F_WRONLY_PROG

# The generic update/delete batches read the keys (and values) of up to this many bytes of
# elements with one copy. Reads have no side effects, so when such a copy faults, the chunk is
# done again element by element and the fault lands at the same element, with the same count.
BATCH_CHUNK = 1 << 20


def u32(b):
    """The u32 at the start of key or value bytes."""
    return struct.unpack_from("<I", b)[0]


def s32(b):
    return struct.unpack_from("<i", b)[0]


def index_next_key(key, max_entries):
    """The get_next_key of every map indexed by a u32 below max_entries (array_map_get_next_key,
    dev_map_get_next_key, ...): NULL or out of range -> 0, the last index -> ENOENT."""
    i = u32(key) if key is not None else None
    if i is None or i >= max_entries:
        return struct.pack("<I", 0)
    if i == max_entries - 1:
        raise bpf_error(errno.ENOENT)
    return struct.pack("<I", i + 1)


def map_flags_access_ok(flags):
    """bpf_map_flags_access_ok: a program may not be both read-only and write-only."""
    return not (flags & uapi.BPF_F_RDONLY_PROG and flags & uapi.BPF_F_WRONLY_PROG)


def fd_of_kind(task, fd, kind, wrong):
    """An fd stored in a map value (a program, socket, perf event, cgroup...): EBADF when it is not open,
    ``wrong`` when it is another kind of file. None of those objects is modeled yet, so this always fails."""
    fdget(task, fd if 0 <= fd <= S32_MAX else -1, kind, wrong)
    raise bpf_error(wrong, "%s objects are not modeled" % kind)  # pragma: no cover


def prog_fd(task, fd):
    return fd_of_kind(task, fd, "prog", errno.EINVAL)


def socket_fd(task, fd):
    return fd_of_kind(task, fd, "socket", errno.ENOTSOCK)


def bpf_map_area_mmapable_alloc(kernel, size):
    """bpf_map_area_mmapable_alloc (syscall.c): ``size`` bytes (a multiple of the page size) of zeroed
    memory that userspace may map, a writable ``mmap.mmap``.

    Anonymous memory, unless ``kernel.mmapable_alloc`` names another allocator (a callable size -> such an
    mmap): ``bpfemu exec`` gives file-backed memory there, which the processes it supervises map too."""
    alloc = kernel.mmapable_alloc
    return alloc(size) if alloc is not None else _mmap.mmap(-1, size)


def implements(m, op):
    """Whether map m's type has ``op`` (the kernel's ``map->ops->op != NULL``)."""
    return getattr(type(m), op) is not getattr(BpfMap, op)


# -- BTF: the special fields a map value may hold, and the map types that may hold each ----------------
# (map_check_btf of syscall.c; measured on 6.18 for every map type x field, conformance/test_map_btf.py)
T = uapi
_STORAGE = (T.BPF_MAP_TYPE_SK_STORAGE, T.BPF_MAP_TYPE_INODE_STORAGE, T.BPF_MAP_TYPE_TASK_STORAGE,
            T.BPF_MAP_TYPE_CGRP_STORAGE)
_LOCKS = (T.BPF_MAP_TYPE_HASH, T.BPF_MAP_TYPE_ARRAY, T.BPF_MAP_TYPE_CGROUP_STORAGE) + _STORAGE
_ASYNC = (T.BPF_MAP_TYPE_HASH, T.BPF_MAP_TYPE_LRU_HASH, T.BPF_MAP_TYPE_ARRAY)
_KPTRS = (T.BPF_MAP_TYPE_HASH, T.BPF_MAP_TYPE_PERCPU_HASH, T.BPF_MAP_TYPE_LRU_HASH, T.BPF_MAP_TYPE_LRU_PERCPU_HASH,
          T.BPF_MAP_TYPE_ARRAY, T.BPF_MAP_TYPE_PERCPU_ARRAY) + _STORAGE
FIELD_MAP_TYPES = {
    F.BPF_SPIN_LOCK: _LOCKS, F.BPF_RES_SPIN_LOCK: _LOCKS,
    F.BPF_TIMER: _ASYNC, F.BPF_WORKQUEUE: _ASYNC, F.BPF_TASK_WORK: _ASYNC,
    F.BPF_KPTR_UNREF: _KPTRS, F.BPF_KPTR_REF: _KPTRS, F.BPF_KPTR_PERCPU: _KPTRS, F.BPF_REFCOUNT: _KPTRS,
    F.BPF_UPTR: (T.BPF_MAP_TYPE_TASK_STORAGE,),
    F.BPF_LIST_HEAD: _ASYNC, F.BPF_RB_ROOT: _ASYNC,
}
# the fields map_check_btf looks for in a value (list and rb nodes are no special fields of a map value)
MAP_FIELDS = (F.BPF_SPIN_LOCK | F.BPF_RES_SPIN_LOCK | F.BPF_TIMER | F.BPF_KPTR | F.BPF_LIST_HEAD | F.BPF_RB_ROOT
              | F.BPF_REFCOUNT | F.BPF_WORKQUEUE | F.BPF_UPTR | F.BPF_TASK_WORK)
# bpf_obj_init_field runs on a value copied out to userspace: a list head points at itself, in the
# kernel's temporary copy. The emulator shows this kernel-looking address plus the field's offset.
KERNEL_COPY_ADDR = 0xFFFF888100000000


def int_bits_at_0(t, bits):
    """An INT of ``bits`` bits at bit offset 0 (BTF_INT_BITS, BTF_INT_OFFSET): the key types of arrays (32),
    local storage (32) and cgroup storage (64)."""
    if t.kind != B.BTF_KIND_INT:
        return False
    d = t.int_data
    return d & 0xFF == bits and not (d >> 16) & 0xFF


def map_check_no_btf(m, btf, key_type, value_type):
    """map_check_no_btf: the op of the types whose values BTF cannot describe (fd maps, stack traces)."""
    raise bpf_error(ENOTSUPP, "%s maps take no BTF key/value types" % m.type_name())


def _read_or_none(ctx, addr, n):
    try:
        return ctx.read(addr, n)
    except OSError:
        return None


_DEFAULT_LOOKUP_SYS = set()  # lookups that stand for BpfMap.lookup_sys in a subclass


class BpfMap(BpfObject):
    """A map: struct bpf_map's fields and the declared op set (see the module docstring)."""

    kind = "map"
    percpu = False
    unbounded = False  # no max_entries: the local storage types keep one element per owner object

    def __init_subclass__(cls, **kw):
        # a type whose lookup_sys is the default (the op itself) answers the syscall with its lookup
        # directly: one call less on every BPF_MAP_LOOKUP_ELEM
        super().__init_subclass__(**kw)
        ls = cls.lookup_sys
        if ls is BpfMap.lookup_sys or ls in _DEFAULT_LOOKUP_SYS:
            cls.lookup_sys = cls.lookup
            _DEFAULT_LOOKUP_SYS.add(cls.lookup)

    # -- creation and teardown -------------------------------------------------
    @classmethod
    def alloc_check(cls, attr, task):
        """map_alloc_check: validate attr before the privilege checks; raise OSError(errno)."""

    @classmethod
    def map_alloc(cls, kernel, attr, task):
        """map_alloc: build the map (map_create calls it after the privilege checks)."""
        return cls(kernel, attr)

    def __init__(self, kernel, attr):
        super().__init__(kernel)
        self.map_type = attr.map_type
        self.key_size = attr.key_size
        self.value_size = attr.value_size
        self.max_entries = attr.max_entries
        self.map_flags = attr.map_flags
        self.map_extra = attr.map_extra
        self.numa_node = attr.numa_node if attr.map_flags & uapi.BPF_F_NUMA_NODE else -1
        self.name = b""
        self.frozen = False
        self.writecnt = 0  # writable mmaps alive (bpf_map_write_active)
        self.btf_key_type_id = self.btf_value_type_id = self.btf_vmlinux_value_type_id = 0
        self.btf = None
        self.record = None  # BTF special fields (spin lock, timers...)
        self.bypass_spec_v1 = False  # set by array maps from their creator's capabilities

    def map_check_btf(self, btf, key_type, value_type):
        """The type's ``map_check_btf`` op: its own check of the key and value types (``btf`` a Btf,
        the types resolved :class:`~bpfemu.btf.types.BtfType`, the key VOID when no key id was given);
        raise OSError. A type without the op accepts any key type and refuses a missing one (EINVAL)."""

    def check_btf(self, task, btf_obj, key_id, value_id):
        """map_check_btf of syscall.c: the key and value types' sizes, the special fields of the value
        (the record) and which map types may hold them, then the type's own op.

        Errors: EINVAL (a size that does not match, no key type where the type needs one), EPERM (special
        fields without CAP_BPF), EACCES (special fields with BPF_F_RDONLY_PROG/WRONLY_PROG), EOPNOTSUPP
        (a field this map type cannot hold), those of btf_check_and_fixup_fields, those of the op.
        A value whose special fields are malformed gets no record, as on the host (the error is dropped)."""
        btf = btf_obj.btf
        if key_id:
            r = btf.type_id_size(key_id)
            if r is None or r[2] != self.key_size:
                raise bpf_error(errno.EINVAL, "btf_key_type_id %d does not have key_size %d" % (key_id, self.key_size))
            key_type = r[0]
        else:
            key_type = btf.type_by_id(0)
            if not implements(self, "map_check_btf"):
                raise bpf_error(errno.EINVAL, "%s maps need a btf_key_type_id" % self.type_name())
        r = btf.type_id_size(value_id)
        if r is None or r[2] != self.value_size:
            raise bpf_error(errno.EINVAL, "btf_value_type_id %d does not have value_size %d"
                            % (value_id, self.value_size))
        value_type = r[0]
        try:
            fields = 0  # map_check_btf's mask: the special fields this kernel version knows in a map value
            for name in self.kernel.profile.map_value_fields:
                fields |= getattr(F, name)
            rec = F.parse_fields(btf, value_type, fields & MAP_FIELDS, self.value_size,
                                 vmlinux=lambda: self.kernel.btf_vmlinux.btf,
                                 kptr_local=self.kernel.profile.kptr_local)
        except OSError:
            rec = None  # btf_parse_fields' ERR_PTR is kept as "no record"
        rules = self.kernel.profile.map_field_rules
        if rec is not None and rules != "record":
            self._check_field_kinds(task, rec, rules)
        elif rec is not None:
            if not task.bpf_capable():
                raise bpf_error(errno.EPERM, "special fields in a map value need CAP_BPF")
            if self.map_flags & (uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY_PROG):
                raise bpf_error(errno.EACCES, "special fields in a map value programs may not write")
            for bit in range(32):
                field = rec.field_mask & (1 << bit)
                if field and self.map_type not in FIELD_MAP_TYPES.get(field, ()):
                    raise bpf_error(errno.EOPNOTSUPP, "%s maps cannot hold a %s" % (
                        self.type_name(), F.FIELD_INFO[field][0]))
            err = F.check_and_fixup_fields(btf, rec)
            if err < 0:
                raise bpf_error(-err, "special fields of the value")
        self.record = rec
        if implements(self, "map_check_btf"):
            self.map_check_btf(btf, key_type, value_type)

    def _check_field_kinds(self, task, rec, rules):
        """map_check_btf of a kernel without btf_record (6.1): each kind of field in turn (the profile's
        ``map_field_rules``, in its order), its program flags (EACCES), CAP_BPF (EPERM) and map types."""
        for rule in rules:
            if not any(rec.has_field(getattr(F, name)) for name in rule.fields):
                continue
            if rule.needs_bpf and not task.bpf_capable():
                raise bpf_error(errno.EPERM, "%s in a map value need CAP_BPF" % "/".join(rule.fields))
            if self.map_flags & rule.eacces_flags:
                raise bpf_error(errno.EACCES, "%s in a map value programs may not write" % "/".join(rule.fields))
            if self.map_type not in rule.map_types:
                raise bpf_error(rule.errno, "%s maps cannot hold %s" % (self.type_name(), "/".join(rule.fields)))

    def fields_block_freeze(self):
        """Whether the value's special fields make MAP_FREEZE ENOTSUPP: any btf_record (6.2), or a field of a
        kind whose rule says so (the profile's ``map_field_rules``; 6.1: timers and kptrs)."""
        rec = self.record
        if rec is None:
            return False
        rules = self.kernel.profile.map_field_rules
        if rules == "record":
            return True
        return any(rule.blocks_freeze and rec.has_field(getattr(F, name)) for rule in rules for name in rule.fields)

    def common_refs(self):
        """bpf_map_free drops map->btf (whatever the type)."""
        return [self.btf] if self.btf is not None else []

    # -- special fields in values ---------------------------------------------------------------
    def obj_init(self, value):
        """The value with its special fields as a copy to userspace shows them (check_and_init_map_value):
        everything zero but a refcount (1) and a list head (pointing at itself). The emulator stores
        values so, as user bytes never reach those fields (copy_map_value skips them); per-CPU values
        get it on each CPU's copy."""
        rec = self.record
        if rec is None:
            return value
        v = bytearray(value)
        step = round_up(self.value_size, 8) if self.percpu else len(v)
        for base in range(0, len(v), step or 1):
            for f in rec.fields:
                off = base + f.offset
                v[off:off + f.size] = bytes(f.size)
                if f.type == F.BPF_REFCOUNT:
                    v[off:off + 4] = (1).to_bytes(4, "little")
                elif f.type == F.BPF_LIST_HEAD:
                    v[off:off + 16] = (KERNEL_COPY_ADDR + f.offset).to_bytes(8, "little") * 2
        return bytes(v)

    # -- sizes and memory ---------------------------------------------------------
    @property
    def user_value_size(self):
        """bpf_map_value_size: what a syscall copies for one value."""
        if self.percpu:
            return round_up(self.value_size, 8) * self.kernel.ncpus
        return self.value_size

    def count(self):
        """Number of elements stored (for describe, invariants and the memory formulas)."""
        return 0

    def mem_usage(self, count=None):
        """map_mem_usage: the bytes the kernel reports as this map's fdinfo ``memlock`` with ``count``
        elements stored (default: as many as now). Every map type defines it, in its own file."""
        raise NotImplementedError("%s defines no mem_usage" % type(self).__name__)

    def percpu_mem_usage(self, count=None):
        """The per-CPU value storage inside mem_usage(count): the memory cgroup's limit does not see it."""
        return 0

    def has_spin_lock(self):
        """Whether the value holds a bpf_spin_lock (what BPF_F_LOCK needs; a bpf_res_spin_lock does not do)."""
        return self.record is not None and self.record.has_field(F.BPF_SPIN_LOCK)

    # -- element ops ----------------------------------------------------------------
    def lookup(self, key, flags=0):
        raise bpf_error(errno.ENOENT)

    def update(self, key, value, flags):
        raise bpf_error(errno.EINVAL)

    def delete(self, key):
        raise bpf_error(errno.EINVAL)

    def get_next_key(self, key):
        raise bpf_error(errno.EINVAL)

    def lookup_and_delete(self, key, flags):
        raise bpf_error(ENOTSUPP)

    def push(self, value, flags):
        raise bpf_error(ENOTSUPP)

    def pop(self):
        raise bpf_error(ENOTSUPP)

    def peek(self):
        raise bpf_error(ENOTSUPP)

    def peek_value(self, value):
        """A bloom filter's map_peek_elem: None when value may be in the set, ENOENT when it is not."""
        raise bpf_error(ENOTSUPP)

    # -- the program side: what the helpers of a running program call --------------------------
    # A program sees a map's values in place: a lookup gives a pointer into the map's own storage (the
    # memory model maps ``buf`` into the program's address space), so what the program writes, LOOKUP and
    # mmap read, and the other way round. These ops never import the program side: they answer buffers.
    def value_region(self, key, cpu=0):
        """map_lookup_elem from a program: where the value of ``key`` lives, as ``(buf, off)``: ``buf`` a
        mutable buffer the map owns (a bytearray, or the mmap of an mmapable array) that keeps its size for
        as long as the element lives, and ``off`` the offset of the ``value_size`` bytes CPU ``cpu`` sees
        (per-CPU maps: that CPU's copy). None when there is no element (the helper returns NULL).
        The default finds nothing (queues, stacks and the fd maps return no value pointers)."""
        return None

    def prog_update(self, key, value, flags, cpu=0):
        """map_update_elem from a program (the op itself, not the syscall's wrapper): ``value`` is
        ``value_size`` bytes; a per-CPU map writes CPU ``cpu``'s copy only. Special fields are never copied
        from the program's value."""
        if self.record is not None:
            value = self.obj_init(value)
        self.update(key, value, flags)

    def prog_delete(self, key):
        """map_delete_elem from a program."""
        self.delete(key)

    def for_each_elem(self, cpu=0):
        """map_for_each_callback: yields ``(key bytes, (buf, off))`` for each element in the map's order, as
        :meth:`value_region` gives them; a type without the op yields nothing (the verifier only lets
        programs call bpf_for_each_map_elem on types that have it)."""
        return iter(())

    # struct bpf_map as x86-64 6.18 lays it out (and struct bpf_array's fields after it): what a program
    # reads through a map pointer (CONST_PTR_TO_MAP loads such as map->max_entries)
    KERNEL_STRUCT_SIZE = 512
    KERNEL_OPS_BASE = 0xFFFFFFFF82A00000  # where the emulated kernel's bpf_map_ops tables "are"

    def kernel_struct(self):
        """The bytes of the map's kernel struct a program may read (``struct bpf_map`` first, then the
        type's own fields): ops (a kernel-looking address per type), type, sizes, flags, id, name, NUMA
        node, BTF ids, bypass_spec_v1, frozen; an array's elem_size and index_mask."""
        b = bytearray(self.KERNEL_STRUCT_SIZE)
        struct.pack_into("<Q", b, 40, self.KERNEL_OPS_BASE + 0x100 * self.map_type)
        struct.pack_into("<IIIIQII", b, 64, self.map_type, self.key_size, self.value_size, self.max_entries,
                         self.map_extra, self.map_flags, self.id)
        struct.pack_into("<iIII", b, 104, self.numa_node, self.btf_key_type_id, self.btf_value_type_id,
                         self.btf_vmlinux_value_type_id)
        b[136:136 + len(self.name)] = self.name
        b[256] = 1 if self.bypass_spec_v1 else 0
        b[257] = 1 if self.frozen else 0
        if self.map_type in (uapi.BPF_MAP_TYPE_ARRAY, uapi.BPF_MAP_TYPE_PERCPU_ARRAY, uapi.BPF_MAP_TYPE_PROG_ARRAY,
                             uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY, uapi.BPF_MAP_TYPE_CGROUP_ARRAY,
                             uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS):
            mask = (1 << max(0, (self.max_entries - 1).bit_length())) - 1
            struct.pack_into("<II", b, 296, round_up(self.value_size, 8), mask)
        return bytes(b)

    # -- what the syscall layer calls --------------------------------------------------
    def lookup_sys(self, key, flags):
        """bpf_map_copy_value: the value userspace sees (fd maps answer ids)."""
        return self.lookup(key, flags)

    def update_sys(self, task, key, value, flags):
        """bpf_map_update_value: fd maps take an fd from the caller's table here; the special fields
        of a value are never copied from the caller."""
        if self.record is not None:
            value = self.obj_init(value)
        self.update(key, value, flags)

    def lookup_and_delete_sys(self, key, flags):
        """map_lookup_and_delete_elem's dispatch: pop for queues and stacks, the op for hash and stack
        trace maps, ENOTSUPP for every other type."""
        raise bpf_error(ENOTSUPP, "lookup-and-delete is not supported by %s maps" % self.type_name())

    # -- batch ops (ENOTSUPP unless the type takes the generic ones or has its own) ------
    def lookup_batch(self, ctx, b):
        raise bpf_error(ENOTSUPP, "%s maps have no lookup_batch" % self.type_name())

    def lookup_and_delete_batch(self, ctx, b):
        raise bpf_error(ENOTSUPP, "%s maps have no lookup_and_delete_batch" % self.type_name())

    def update_batch(self, ctx, b):
        raise bpf_error(ENOTSUPP, "%s maps have no update_batch" % self.type_name())

    def delete_batch(self, ctx, b):
        raise bpf_error(ENOTSUPP, "%s maps have no delete_batch" % self.type_name())

    def update_many(self, task, kbuf, vbuf, count, flags):
        """``count`` updates of the keys and values laid end to end in ``kbuf`` and ``vbuf`` (the body of
        generic_map_update_batch once a chunk is copied in), in order, stopping at the first error:
        (how many succeeded, the OSError or None). A type may do them together, with the same result."""
        ks, vs = self.key_size, self.user_value_size
        update = self.update_sys
        ko = vo = 0
        for i in range(count):
            try:
                update(task, kbuf[ko:ko + ks], vbuf[vo:vo + vs], flags)
            except OSError as e:
                return i, e
            ko += ks
            vo += vs
        return count, None

    def delete_many(self, kbuf, count):
        """``count`` deletes of the keys laid end to end in ``kbuf`` (generic_map_delete_batch), in order,
        stopping at the first error: (how many succeeded, the OSError or None)."""
        ks = self.key_size
        delete = self.delete
        ko = 0
        for i in range(count):
            try:
                delete(kbuf[ko:ko + ks])
            except OSError as e:
                return i, e
            ko += ks
        return count, None

    # -- whole-map ops -------------------------------------------------------------------
    def map_mmap(self, length, pgoff, writable=True):
        """The memory a mapping of ``length`` bytes at page ``pgoff`` sees (``writable``: a PROT_WRITE
        mapping, which some types refuse for some pages)."""
        raise bpf_error(ENOTSUPP, "%s maps cannot be mapped" % self.type_name())

    @property
    def mmap_area(self):
        """The memory every mapping of the map shares (what map_mmap hands out views of): the
        ``mmap.mmap`` from :func:`bpf_map_area_mmapable_alloc`, or None for a map that has none."""
        return None

    def map_get_hash(self):
        """The SHA-256 of the map's content (bpf_map_info.hash of a frozen map)."""
        raise bpf_error(errno.EINVAL, "%s maps have no content hash" % self.type_name())

    # -- fdinfo --------------------------------------------------------------------------
    def memory_footprint(self):
        """bpf_map_memory_footprint (6.1's fdinfo memlock): max_entries values and keys rounded up to 8 bytes
        together, page-aligned, whatever the type stores (bpf_map_value_size's value: per CPU for per-CPU
        maps, 4 bytes for fd maps)."""
        if self.map_type in uapi.PERCPU_MAP_TYPES:
            value = round_up(self.value_size, 8) * self.kernel.ncpus
        elif self.map_type in uapi.FD_MAP_TYPES:
            value = 4
        else:
            value = self.value_size
        return page_align(self.max_entries * round_up(self.key_size + value, 8))

    def memlock(self):
        """The fdinfo ``memlock`` figure: map_mem_usage, or the footprint estimate where the kernel version
        shows that (``profile.memlock``)."""
        if self.kernel.profile.memlock == "bpf_map_memory_footprint":
            return self.memory_footprint()
        return self.mem_usage()

    def show_fdinfo(self):
        """bpf_map_show_fdinfo's lines (memlock: see :meth:`memlock`)."""
        return [
            ("map_type", str(self.map_type)),
            ("key_size", str(self.key_size)),
            ("value_size", str(self.value_size)),
            ("max_entries", str(self.max_entries)),
            ("map_flags", "%#x" % self.map_flags),  # the kernel's %#x prints 0x0 for zero
            ("map_extra", "%#x" % self.map_extra),
            ("memlock", str(self.memlock())),
            ("map_id", str(self.id)),
            ("frozen", "1" if self.frozen else "0"),
        ]

    def self_check(self):
        """Problems with the map's own structures (invariants.py asks; [] when consistent)."""
        return []

    def type_name(self):
        return uapi.map_type_name(self.map_type)

    def __repr__(self):
        return "<%s map %r id %d>" % (self.type_name(), self.name.decode(errors="replace"), self.id)


class ObjMap(BpfMap):
    """A map whose values stand for kernel objects (fds of programs, sockets, devices, CPUs): elements in
    ``slots``, keyed by index or key bytes."""

    def __init__(self, kernel, attr):
        super().__init__(kernel, attr)
        self.slots = {}

    def count(self):
        return len(self.slots)


# -- the generic batch operations of syscall.c (generic_map_*_batch) ----------------------------------
# A map type that uses them says so in its class: ``lookup_batch = generic_map_lookup_batch``.

def batch_elem_flags(m, b):
    """elem_flags may only hold BPF_F_LOCK, and that only for a map with a spin lock (EINVAL)."""
    if b.elem_flags & ~uapi.BPF_F_LOCK:
        raise bpf_error(errno.EINVAL, "elem_flags may only hold BPF_F_LOCK")
    if b.elem_flags & uapi.BPF_F_LOCK and not m.has_spin_lock():
        raise bpf_error(errno.EINVAL, "BPF_F_LOCK on a map without a bpf_spin_lock")


def batch_begin(m, ctx, b):
    """What every batch does first: check elem_flags; count 0 is a no-op; else count reads 0 until done."""
    batch_elem_flags(m, b)
    if b.count:
        ctx.put("batch.count", 0)
    return b.count


def generic_map_lookup_batch(m, ctx, b):
    max_count = batch_begin(m, ctx, b)
    if not max_count:
        return 0
    ks, vs = m.key_size, m.user_value_size
    prev = ctx.read(b.in_batch, ks) if b.in_batch else None
    cp = 0
    err = 0
    while cp < max_count:
        try:
            key = m.get_next_key(prev)
        except OSError as e:
            err = e.errno
            break
        try:
            value = m.lookup_sys(key, b.elem_flags)
        except OSError as e:
            if e.errno == errno.ENOENT:
                prev = key
                continue
            raise
        ctx.write(b.keys + cp * ks, key)
        ctx.write(b.values + cp * vs, value)
        prev = key
        cp += 1
    ctx.put("batch.count", cp)
    if cp:
        ctx.write(b.out_batch, prev)
    if err:
        raise bpf_error(err)
    return 0


def generic_map_update_batch(m, ctx, b):
    max_count = batch_begin(m, ctx, b)
    if not max_count:
        return 0
    ks, vs = m.key_size, m.user_value_size
    keys, values, flags, task, update = b.keys, b.values, b.elem_flags, ctx.task, m.update_sys
    cp = 0
    try:
        while cp < max_count:
            c = min(max_count - cp, max(1, BATCH_CHUNK // (ks + vs or 1)))
            kbuf = _read_or_none(ctx, keys + cp * ks, c * ks)
            vbuf = _read_or_none(ctx, values + cp * vs, c * vs) if kbuf is not None else None
            if vbuf is None:  # something in this chunk faults: element by element, as the kernel
                for _ in range(c):
                    key = ctx.read(keys + cp * ks, ks)
                    value = ctx.read(values + cp * vs, vs)
                    update(task, key, value, flags)
                    cp += 1
                continue
            done, err = m.update_many(task, kbuf, vbuf, c, flags)
            cp += done
            if err is not None:
                raise err
    finally:
        ctx.put("batch.count", cp)
    return 0


def generic_map_delete_batch(m, ctx, b):
    max_count = batch_begin(m, ctx, b)
    if not max_count:
        return 0
    ks = m.key_size
    keys, delete = b.keys, m.delete
    cp = 0
    try:
        while cp < max_count:
            c = min(max_count - cp, max(1, BATCH_CHUNK // (ks or 1)))
            kbuf = _read_or_none(ctx, keys + cp * ks, c * ks)
            if kbuf is None:  # something in this chunk faults: element by element, as the kernel
                for _ in range(c):
                    delete(ctx.read(keys + cp * ks, ks))
                    cp += 1
                continue
            done, err = m.delete_many(kbuf, c)
            cp += done
            if err is not None:
                raise err
    finally:
        ctx.put("batch.count", cp)
    return 0
