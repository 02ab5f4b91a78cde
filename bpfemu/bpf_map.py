"""struct bpf_map: what every map type shares, and the registry of map types.

A map type is a subclass of :class:`BpfMap` registered with
:func:`map_type`. Its class methods and methods are the kernel's
``struct bpf_map_ops``: ``alloc_check`` validates attr before anything is
allocated, the constructor is ``map_alloc``, and ``lookup``/``update``/
``delete``/``get_next_key``/``push``/``pop``/``peek``/the batch operations
act on keys and values as bytes, in the layout userspace sees.
"""
import errno

from . import uapi
from .errors import ENOTSUPP, bpf_error
from .objects import BpfObject

# map type number -> class
MAP_TYPES = {}


def map_type(*types):
    def deco(cls):
        for t in types:
            MAP_TYPES[t] = cls
        return cls

    return deco


# kernel limits every map type's checks share (x86_64, 4 KiB pages)
KMALLOC_MAX_SIZE = 1 << 22
PCPU_MIN_UNIT_SIZE = 32768
BPF_F_ACCESS_MASK = uapi.BPF_F_RDONLY | uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY | uapi.BPF_F_WRONLY_PROG


def map_flags_access_ok(flags):
    """bpf_map_flags_access_ok: a program may not be both read-only and write-only."""
    return not (flags & uapi.BPF_F_RDONLY_PROG and flags & uapi.BPF_F_WRONLY_PROG)


def round_up(n, m):
    return (n + m - 1) // m * m


def roundup_pow_of_two(n):
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


# privilege a type needs at creation (map_create's switch): None, 'bpf' or 'net'
UNPRIVILEGED_TYPES = frozenset(getattr(uapi, "BPF_MAP_TYPE_" + n) for n in (
    "ARRAY", "PERCPU_ARRAY", "PROG_ARRAY", "PERF_EVENT_ARRAY", "CGROUP_ARRAY", "ARRAY_OF_MAPS", "HASH",
    "PERCPU_HASH", "HASH_OF_MAPS", "RINGBUF", "USER_RINGBUF", "CGROUP_STORAGE", "PERCPU_CGROUP_STORAGE"))
NET_ADMIN_TYPES = frozenset(getattr(uapi, "BPF_MAP_TYPE_" + n) for n in (
    "SOCKMAP", "SOCKHASH", "DEVMAP", "DEVMAP_HASH", "XSKMAP"))


# The generic update/delete batches read the keys (and values) of up to this many bytes of
# elements with one copy. Reads have no side effects, so when such a copy faults, the chunk is
# done again element by element and the fault lands at the same element, with the same count.
BATCH_CHUNK = 1 << 20


def _read_or_none(ctx, addr, n):
    try:
        return ctx.read(addr, n)
    except OSError:
        return None


class BpfMap(BpfObject):
    """A map. Batch operations that a type lacks are set to None (the command gives ENOTSUPP)."""

    kind = "map"
    percpu = False
    lookup_and_delete_batch = None

    @classmethod
    def alloc_check(cls, attr, task):
        """Validate attr (map_alloc_check); raise OSError(errno)."""

    @classmethod
    def map_alloc(cls, kernel, attr, task):
        """ops->map_alloc: build the map (map_create calls it after the privilege checks)."""
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

    # -- sizes ---------------------------------------------------------------
    @property
    def user_value_size(self):
        """bpf_map_value_size: what a syscall copies for one value."""
        if self.percpu:
            return round_up(self.value_size, 8) * self.kernel.ncpus
        return self.value_size

    def has_spin_lock(self):
        return False

    # -- element ops (defaults refuse as the kernel's missing ops do) ----------
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

    def lookup_sys(self, key, flags):
        """bpf_map_copy_value: the value userspace sees (fd maps answer ids)."""
        return self.lookup(key, flags)

    def update_sys(self, task, key, value, flags):
        """bpf_map_update_value: fd maps take an fd from the caller's table here."""
        self.update(key, value, flags)

    # -- generic batch operations (generic_map_*_batch) ------------------------
    def _batch_flags(self, b):
        if b.elem_flags & ~uapi.BPF_F_LOCK:
            raise bpf_error(errno.EINVAL, "elem_flags may only hold BPF_F_LOCK")
        if b.elem_flags & uapi.BPF_F_LOCK and not self.has_spin_lock():
            raise bpf_error(errno.EINVAL, "BPF_F_LOCK on a map without a bpf_spin_lock")

    def _batch_begin(self, ctx, b):
        """What every batch does first: check elem_flags; count 0 is a no-op; else count reads 0 until done."""
        self._batch_flags(b)
        if b.count:
            ctx.put("batch.count", 0)
        return b.count

    def lookup_batch(self, ctx, b):
        max_count = self._batch_begin(ctx, b)
        if not max_count:
            return 0
        ks, vs = self.key_size, self.user_value_size
        prev = ctx.read(b.in_batch, ks) if b.in_batch else None
        cp = 0
        err = 0
        while cp < max_count:
            try:
                key = self.get_next_key(prev)
            except OSError as e:
                err = e.errno
                break
            try:
                value = self.lookup_sys(key, b.elem_flags)
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

    def update_batch(self, ctx, b):
        max_count = self._batch_begin(ctx, b)
        if not max_count:
            return 0
        ks, vs = self.key_size, self.user_value_size
        keys, values, flags, task, update = b.keys, b.values, b.elem_flags, ctx.task, self.update_sys
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
                ko = vo = 0
                for _ in range(c):
                    update(task, kbuf[ko:ko + ks], vbuf[vo:vo + vs], flags)
                    ko += ks
                    vo += vs
                    cp += 1
        finally:
            ctx.put("batch.count", cp)
        return 0

    def delete_batch(self, ctx, b):
        max_count = self._batch_begin(ctx, b)
        if not max_count:
            return 0
        ks = self.key_size
        keys, delete = b.keys, self.delete
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
                ko = 0
                for _ in range(c):
                    delete(kbuf[ko:ko + ks])
                    ko += ks
                    cp += 1
        finally:
            ctx.put("batch.count", cp)
        return 0

    def count(self):
        """Number of elements stored (for describe/invariants)."""
        return 0

    def mem_usage(self):
        return 0

    def type_name(self):
        return uapi.map_type_name(self.map_type)

    def __repr__(self):
        return "<%s map %r id %d>" % (self.type_name(), self.name.decode(errors="replace"), self.id)
