"""Array maps (the kernel's arraymap.c): ARRAY, PERCPU_ARRAY, the fd arrays (PROG_ARRAY,
PERF_EVENT_ARRAY, CGROUP_ARRAY) and ARRAY_OF_MAPS.

Every index below max_entries always exists and starts zeroed. Storage is
sparse (a dict of the indices ever written or looked up by a program, each a
bytearray that keeps its place for the map's life: array values are updated in
place, so a program's pointer, LOOKUP and UPDATE all see one value), so a huge
max_entries costs nothing until it is used. The one exception is an ARRAY
created with BPF_F_MMAPABLE: userspace may map its values, so they live in one
flat buffer laid out as the kernel lays them out (element i at i * round_up
(value_size, 8), the whole region page-aligned). That buffer is anonymous
memory, which the host OS only backs with pages once they are touched.

The fd arrays hold one object per slot, put there by an fd and read back as
an id; none of their objects (programs, perf events, cgroups) is modeled, so
their updates fail the way the kernel fails for an fd of the wrong kind.
"""
import errno
import hashlib
import struct

from .. import uapi
from ..errors import ENOTSUPP, bpf_error
from ..btf import uapi as B
from ..limits import INT_MAX, PAGE_SIZE, PCPU_MIN_UNIT_SIZE, S32_MAX, page_align, round_up
from ..objects import fdget
from .bpf_map import (BPF_F_ACCESS_MASK, BpfMap, ObjMap, bpf_map_area_mmapable_alloc, fd_of_kind,
                      generic_map_lookup_batch, generic_map_update_batch, index_next_key, int_bits_at_0,
                      map_check_no_btf, map_flags_access_ok, u32)
from .map_in_map import OfMaps

ARRAY_CREATE_FLAG_MASK = (uapi.BPF_F_NUMA_NODE | uapi.BPF_F_MMAPABLE | BPF_F_ACCESS_MASK
                          | uapi.BPF_F_PRESERVE_ELEMS | uapi.BPF_F_INNER_MAP)


def array_map_alloc_check(attr):
    percpu = attr.map_type == uapi.BPF_MAP_TYPE_PERCPU_ARRAY
    flags = attr.map_flags
    numa = flags & uapi.BPF_F_NUMA_NODE and attr.numa_node != 0xFFFFFFFF
    if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size == 0
            or flags & ~ARRAY_CREATE_FLAG_MASK
            or not map_flags_access_ok(flags)
            or (percpu and numa)):
        raise bpf_error(errno.EINVAL, "invalid array map attributes")
    if attr.map_type != uapi.BPF_MAP_TYPE_ARRAY and flags & (uapi.BPF_F_MMAPABLE | uapi.BPF_F_INNER_MAP):
        raise bpf_error(errno.EINVAL, "BPF_F_MMAPABLE/BPF_F_INNER_MAP are for plain arrays")
    if attr.map_type != uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY and flags & uapi.BPF_F_PRESERVE_ELEMS:
        raise bpf_error(errno.EINVAL, "BPF_F_PRESERVE_ELEMS is for perf event arrays")
    if attr.value_size > INT_MAX:
        raise bpf_error(errno.E2BIG, "value_size too large")
    if percpu and round_up(attr.value_size, 8) > PCPU_MIN_UNIT_SIZE:
        raise bpf_error(errno.E2BIG, "per-CPU value larger than a percpu unit")


class ArrayMap(BpfMap):
    """ARRAY (array_map_ops): values by index, mmapable with BPF_F_MMAPABLE, a content hash once frozen."""

    lookup_batch = generic_map_lookup_batch
    update_batch = generic_map_update_batch

    @classmethod
    def alloc_check(cls, attr, task):
        array_map_alloc_check(attr)

    @classmethod
    def map_alloc(cls, kernel, attr, task):
        """array_map_alloc: bypass_spec_v1 from the creator (the verifier reads it for tail calls)."""
        m = cls(kernel, attr)
        m.bypass_spec_v1 = task.perfmon_capable()
        return m

    def __init__(self, kernel, attr):
        super().__init__(kernel, attr)
        self.elem_size = round_up(self.value_size, 8)
        self.values = {}  # index -> user-layout value bytearray (not mmapable), updated in place
        self.data = None  # the flat value area of an mmapable array
        if attr.map_flags & uapi.BPF_F_MMAPABLE:
            self.data = bpf_map_area_mmapable_alloc(kernel, round_up(self.max_entries * self.elem_size, PAGE_SIZE))

    def count(self):
        return self.max_entries

    def map_check_btf(self, btf, key_type, value_type):
        """array_map_check_btf: a u32 key, or none for a global-data array (one element, a DATASEC value)."""
        if key_type.kind == 0:
            if self.map_type != uapi.BPF_MAP_TYPE_ARRAY or self.max_entries != 1:
                raise bpf_error(errno.EINVAL, "only a one-element array may have no key type")
            if value_type.kind != B.BTF_KIND_DATASEC:
                raise bpf_error(errno.EINVAL, "a keyless array's value type must be a DATASEC")
            return
        if not int_bits_at_0(key_type, 32):
            raise bpf_error(errno.EINVAL, "an array's key type must be a 32-bit int")

    def mem_usage(self, count=None):
        """array_map_mem_usage: the header and every element (an mmapable array page-aligns both)."""
        values = self.max_entries * self.elem_size
        if self.data is not None:
            return page_align(self.kernel.profile.size("bpf_array")) + page_align(values)
        return self.kernel.profile.size("bpf_array") + values

    def _index(self, key):
        return struct.unpack("<I", key)[0]

    def zero_value(self):
        v = bytes(self.user_value_size)
        return self.obj_init(v) if self.record is not None else v

    def lookup(self, key, flags=0):
        i = self._index(key)
        if i >= self.max_entries:
            raise bpf_error(errno.ENOENT)
        if self.data is not None:
            off = i * self.elem_size
            return self.data[off:off + self.value_size]
        v = self.values.get(i)
        return bytes(v) if v is not None else self.zero_value()

    def _storage(self, i):
        """The bytearray of element i (made zeroed on first use)."""
        v = self.values.get(i)
        if v is None:
            v = self.values[i] = bytearray(self.zero_value())
        return v

    def value_region(self, key, cpu=0):
        """array_map_lookup_elem / percpu_array_map_lookup_elem: element i's storage (CPU cpu's copy)."""
        i = self._index(key)
        if i >= self.max_entries:
            return None
        if self.data is not None:
            return self.data, i * self.elem_size
        return self._storage(i), cpu * self.elem_size if self.percpu else 0

    def prog_update(self, key, value, flags, cpu=0):
        """array_map_update_elem from a program: a per-CPU array writes this CPU's copy only."""
        if not self.percpu:
            return BpfMap.prog_update(self, key, value, flags, cpu)
        if (flags & ~uapi.BPF_F_LOCK) > uapi.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad update flags")
        i = self._index(key)
        if i >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index %d out of range" % i)
        if flags & uapi.BPF_NOEXIST:
            raise bpf_error(errno.EEXIST, "array elements always exist")
        off = cpu * self.elem_size
        self._storage(i)[off:off + self.value_size] = bytes(value[:self.value_size])

    def for_each_elem(self, cpu=0):
        """bpf_for_each_array_elem: every index in order."""
        for i in range(self.max_entries):
            yield struct.pack("<I", i), self.value_region(struct.pack("<I", i), cpu)

    def update(self, key, value, flags):
        if (flags & ~uapi.BPF_F_LOCK) > uapi.BPF_EXIST or (self.percpu and flags > uapi.BPF_EXIST):
            raise bpf_error(errno.EINVAL, "bad update flags")
        i = self._index(key)
        if i >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index %d out of range" % i)
        if flags & uapi.BPF_NOEXIST:
            raise bpf_error(errno.EEXIST, "array elements always exist")
        if flags & uapi.BPF_F_LOCK and not self.has_spin_lock():
            raise bpf_error(errno.EINVAL)
        if self.data is not None:
            off = i * self.elem_size
            self.data[off:off + self.value_size] = bytes(value[:self.value_size])
            return
        # per-CPU: each CPU's slot is copied whole, padding included (copy_map_value_long); in place
        v = self.values.get(i)
        if v is None:
            self.values[i] = bytearray(value)
        else:
            v[:] = value

    def delete(self, key):
        raise bpf_error(errno.EINVAL, "array elements cannot be deleted")

    def get_next_key(self, key):
        return index_next_key(key, self.max_entries)

    def map_mmap(self, length, pgoff, writable=True):
        """array_map_mmap: the memory a mapping of ``length`` bytes at page ``pgoff`` sees (EINVAL if not
        allowed)."""
        if self.data is None:
            raise bpf_error(errno.EINVAL, "the array was not created with BPF_F_MMAPABLE")
        if pgoff * PAGE_SIZE + length > len(self.data):
            raise bpf_error(errno.EINVAL, "mapping runs past the array's values")
        start = pgoff * PAGE_SIZE
        return memoryview(self.data)[start:start + length]

    @property
    def mmap_area(self):
        return self.data

    def map_get_hash(self):
        """array_map_get_hash: SHA-256 of the value area, every element padded to 8 bytes."""
        h = hashlib.sha256()
        elem = self.elem_size
        if self.data is not None:  # a flat (mmapable) value area is hashed as it lies
            h.update(memoryview(self.data)[:elem * self.max_entries])
            return h.digest()
        pad = bytes(elem - self.value_size)
        zero = bytes(min(elem * self.max_entries, 1 << 20) // elem * elem or elem)
        done = 0  # elements hashed so far; never-written ones are zeros, fed in big chunks
        for i in sorted(self.values) + [self.max_entries]:
            gap = (i - done) * elem
            while gap > 0:
                h.update(zero[:gap])
                gap -= len(zero)
            if i == self.max_entries:
                break
            h.update(bytes(self.lookup(struct.pack("<I", i)))[:self.value_size] + pad)
            done = i + 1
        return h.digest()


class PercpuArrayMap(ArrayMap):
    """PERCPU_ARRAY (percpu_array_map_ops): a value per possible CPU; neither mmap nor a content hash."""

    percpu = True
    map_mmap = BpfMap.map_mmap
    map_get_hash = BpfMap.map_get_hash

    def mem_usage(self, count=None):
        """A pointer per element, and each element's value on every CPU."""
        return self.kernel.profile.size("bpf_array") + self.max_entries * 8 + self.percpu_mem_usage()

    def percpu_mem_usage(self, count=None):
        return self.max_entries * self.elem_size * self.kernel.ncpus


# -- fd arrays ---------------------------------------------------------------------------------------

class FdArray(ObjMap):
    """What the fd arrays share: a 4-byte fd in, an object per slot, slots deleted by index."""

    wrong_fd = errno.EINVAL
    kind_name = "prog"

    @classmethod
    def alloc_check(cls, attr, task):
        """fd_array_map_alloc_check, then array_map_alloc_check."""
        if attr.value_size != 4 or attr.map_flags & (uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY_PROG):
            raise bpf_error(errno.EINVAL, "fd arrays hold 4-byte fds and take no program access flags")
        array_map_alloc_check(attr)

    @property
    def user_value_size(self):
        return 4

    @classmethod
    def map_alloc(cls, kernel, attr, task):
        """fd_array_map_alloc (array_map_alloc): bypass_spec_v1 from the creator."""
        m = cls(kernel, attr)
        m.bypass_spec_v1 = task.perfmon_capable()
        return m

    def mem_usage(self, count=None):
        """struct bpf_array, then one pointer per slot."""
        return self.kernel.profile.size("bpf_array") + self.max_entries * 8

    def lookup_sys(self, key, flags):
        raise bpf_error(ENOTSUPP, "%s has no syscall lookup" % self.type_name())

    def update_sys(self, task, key, value, flags):
        fd_array_index(self, key, flags)
        fd_of_kind(task, u32(value), self.kind_name, self.wrong_fd)

    def delete(self, key):
        i = u32(key)
        if i >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        if self.slots.pop(i, None) is None:
            raise bpf_error(errno.ENOENT)

    def get_next_key(self, key):
        return index_next_key(key, self.max_entries)


def fd_array_index(m, key, flags):
    """bpf_fd_array_map_update_elem's checks before the fd: BPF_ANY only (EINVAL), then the index
    (E2BIG)."""
    if flags != uapi.BPF_ANY:
        raise bpf_error(errno.EINVAL, "fd arrays only take BPF_ANY")
    i = u32(key)
    if i >= m.max_entries:
        raise bpf_error(errno.E2BIG, "index out of range")
    return i


class ProgArray(FdArray):
    """PROG_ARRAY (prog_array_map_ops): programs by index, held by the map; the first program stored (or
    loaded with the map) makes the owner every later one must match (the program object decides)."""

    prog_owner = None   # struct bpf_map_owner: set by the program object's map_compatible

    def lookup_sys(self, key, flags):
        """prog_fd_array_sys_lookup_elem: the program's id."""
        prog = self.slots.get(u32(key)) if u32(key) < self.max_entries else None
        if prog is None:
            raise bpf_error(errno.ENOENT)
        return struct.pack("<I", prog.id)

    def update_sys(self, task, key, value, flags):
        """bpf_fd_array_map_update_elem with prog_fd_array_get_ptr."""
        i = fd_array_index(self, key, flags)
        fd = u32(value)
        prog = fdget(task, fd if fd <= S32_MAX else -1, "prog").obj
        if prog.type == uapi.BPF_PROG_TYPE_EXT or not prog.map_compatible(self):
            raise bpf_error(errno.EINVAL, "program type does not match the program array's owner")
        prog.hold(self)
        old = self.slots.get(i)
        self.slots[i] = prog
        if old is not None:
            old.release(self)

    def delete(self, key):
        i = u32(key)
        if i >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        old = self.slots.pop(i, None)
        if old is None:
            raise bpf_error(errno.ENOENT)
        old.release(self)

    def held_objects(self):
        return list(self.slots.values())

    def tail_call_image(self, index):
        """What a tail call into slot ``index`` runs: the image of the program there, or None."""
        prog = self.slots.get(index)
        return None if prog is None else prog.image

    def on_free(self):
        progs, self.slots = list(self.slots.values()), {}
        for p in progs:
            p.release(self)
        super().on_free()


class PerfEventArray(FdArray):
    wrong_fd = errno.EBADF
    kind_name = "perf_event"
    map_check_btf = map_check_no_btf


class CgroupArray(FdArray):
    wrong_fd = errno.EBADF
    kind_name = "cgroup"
    map_check_btf = map_check_no_btf


class ArrayOfMaps(OfMaps, FdArray):
    """ARRAY_OF_MAPS (array_of_maps_map_ops): inner maps by index; the generic lookup and update batches."""

    lookup_batch = generic_map_lookup_batch
    update_batch = generic_map_update_batch
    map_check_btf = map_check_no_btf

    def lookup_sys(self, key, flags):
        inner = self.slots.get(u32(key))
        if inner is None:
            raise bpf_error(errno.ENOENT)
        return struct.pack("<I", inner.id)

    def update_sys(self, task, key, value, flags):
        """bpf_fd_array_map_update_elem: flags and index before the fd."""
        i = fd_array_index(self, key, flags)
        inner = self.take_inner(task, value)
        old = self.slots.get(i)
        self.slots[i] = inner
        if old is not None:
            self.free_value(old)

    def delete(self, key):
        i = u32(key)
        if i >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        old = self.slots.pop(i, None)
        if old is None:
            raise bpf_error(errno.ENOENT)
        self.free_value(old)

    def held_objects(self):
        return list(self.slots.values())

    def on_free(self):
        slots, self.slots = self.slots, {}
        for inner in slots.values():
            self.free_value(inner)
