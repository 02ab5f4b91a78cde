"""Array maps (the kernel's arraymap.c): ARRAY and PERCPU_ARRAY.

Every index below max_entries always exists and starts zeroed. Storage is
sparse (a dict of the indices ever written), so a huge max_entries costs
nothing until it is used. The one exception is an ARRAY created with
BPF_F_MMAPABLE: userspace may map its values, so they live in one flat
buffer laid out as the kernel lays them out (element i at i * round_up
(value_size, 8), the whole region page-aligned). That buffer is anonymous
memory, which the host OS only backs with pages once they are touched.

This module also holds the emulator's side of mmap(2) on a map fd
(:func:`bpf_map_mmap`, the kernel's syscall.c ``bpf_map_mmap``) and
:class:`Mapping`, the object both backends return for a mapping.
"""
import errno
import mmap as _mmap
import struct

from . import uapi
from .bpf_map import BPF_F_ACCESS_MASK, PCPU_MIN_UNIT_SIZE, BpfMap, map_flags_access_ok, map_type, round_up
from .errors import ENOTSUPP, bpf_error
from .objects import FMODE_READ, FMODE_WRITE

INT_MAX = 2**31 - 1
PAGE_SIZE = 4096
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


def array_get_next_key(key, max_entries):
    """array_map_get_next_key (every array type): NULL or out of range -> 0, the last index -> ENOENT."""
    i = struct.unpack("<I", key)[0] if key is not None else None
    if i is None or i >= max_entries:
        return struct.pack("<I", 0)
    if i == max_entries - 1:
        raise bpf_error(errno.ENOENT)
    return struct.pack("<I", i + 1)


@map_type(uapi.BPF_MAP_TYPE_ARRAY, uapi.BPF_MAP_TYPE_PERCPU_ARRAY)
class ArrayMap(BpfMap):
    """ARRAY / PERCPU_ARRAY. Subclasses (fd arrays) reuse lookup/update/get_next_key by index."""

    delete_batch = None

    @classmethod
    def alloc_check(cls, attr, task):
        array_map_alloc_check(attr)

    def __init__(self, kernel, attr):
        super().__init__(kernel, attr)
        self.percpu = attr.map_type == uapi.BPF_MAP_TYPE_PERCPU_ARRAY
        self.elem_size = round_up(self.value_size, 8)
        self.values = {}  # index -> user-layout value bytes (not mmapable)
        self.data = None  # the flat value area of an mmapable array
        if attr.map_flags & uapi.BPF_F_MMAPABLE:
            size = round_up(self.max_entries * self.elem_size, PAGE_SIZE)
            alloc = kernel.map_memory
            self.data = alloc(size) if alloc is not None else _mmap.mmap(-1, size)

    def count(self):
        return self.max_entries

    def mem_usage(self):
        if self.data is not None:
            return len(self.data)
        return len(self.values) * self.elem_size * (self.kernel.ncpus if self.percpu else 1)

    def _index(self, key):
        return struct.unpack("<I", key)[0]

    def zero_value(self):
        return bytes(self.user_value_size)

    def lookup(self, key, flags=0):
        i = self._index(key)
        if i >= self.max_entries:
            raise bpf_error(errno.ENOENT)
        if self.data is not None:
            off = i * self.elem_size
            return self.data[off:off + self.value_size]
        return self.values.get(i) or self.zero_value()

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
        # per-CPU: each CPU's slot is copied whole, padding included (copy_map_value_long)
        self.values[i] = bytes(value)

    def delete(self, key):
        raise bpf_error(errno.EINVAL, "array elements cannot be deleted")

    def get_next_key(self, key):
        return array_get_next_key(key, self.max_entries)

    # -- array_map_mmap -------------------------------------------------------
    @property
    def has_mmap(self):
        """Only the plain ARRAY has a map_mmap op (mmap of any other array: ENOTSUPP)."""
        return self.map_type == uapi.BPF_MAP_TYPE_ARRAY

    def map_mmap(self, length, pgoff):
        """The memory a mapping of ``length`` bytes at page ``pgoff`` sees (EINVAL if not allowed)."""
        if self.data is None:
            raise bpf_error(errno.EINVAL, "the array was not created with BPF_F_MMAPABLE")
        if pgoff * PAGE_SIZE + length > len(self.data):
            raise bpf_error(errno.EINVAL, "mapping runs past the array's values")
        start = pgoff * PAGE_SIZE
        return memoryview(self.data)[start:start + length]


class Mapping:
    """A shared mapping of a map's values (what ``proc.mmap`` returns on both backends).

    Index, slice and assign like a bytearray of ``len(m)`` bytes; a read-only
    mapping refuses writes (TypeError). ``close()`` unmaps it (the kernel's
    munmap), which is when a writable mapping stops blocking MAP_FREEZE.
    """

    def __init__(self, view, writable, on_close):
        self._view = view if writable else view.toreadonly()
        self.writable = writable
        self._on_close = on_close

    @property
    def closed(self):
        return self._view is None

    def _live(self):
        if self._view is None:
            raise ValueError("mapping is closed")
        return self._view

    def __len__(self):
        return len(self._live())

    def __getitem__(self, i):
        r = self._live()[i]
        return bytes(r) if isinstance(r, memoryview) else r

    def __setitem__(self, i, data):
        self._live()[i] = data

    def tobytes(self):
        return self._live().tobytes()

    def close(self):
        if self._view is None:
            return
        view, self._view = self._view, None
        view.release()
        on_close, self._on_close = self._on_close, None
        on_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def bpf_map_mmap(task, fd, length, offset=0, writable=True):
    """mmap(NULL, length, PROT_READ[|PROT_WRITE], MAP_SHARED, fd, offset) of a map fd in the emulator."""
    kernel = task.kernel
    with kernel.lock:
        task._check_alive()
        if length <= 0 or offset % PAGE_SIZE or offset < 0:
            raise bpf_error(errno.EINVAL, "bad mmap length or offset")
        f = task.fdget(fd)
        # do_mmap: any mapping needs a readable file, a shared writable one a writable file
        if not f.mode & FMODE_READ or (writable and not f.mode & FMODE_WRITE):
            raise bpf_error(errno.EACCES, "the fd's access mode does not allow this mapping")
        m = f.obj
        if f.kind != "map" or m is None:
            raise bpf_error(errno.ENODEV, "fd %d cannot be mapped" % fd)
        if not getattr(m, "has_mmap", False) or m.record:
            raise bpf_error(ENOTSUPP, "%s maps cannot be mapped" % m.type_name())
        if not f.mode & FMODE_WRITE:
            # do_mmap drops VM_SHARED from a shared mapping of a file not open for writing
            raise bpf_error(errno.EINVAL, "a read-only map fd gives no shared mapping")
        if writable:
            if m.frozen:
                raise bpf_error(errno.EPERM, "the map is frozen")
            if m.map_flags & uapi.BPF_F_RDONLY_PROG:
                raise bpf_error(errno.EACCES, "BPF_F_RDONLY_PROG map")
        view = m.map_mmap(round_up(length, PAGE_SIZE), offset // PAGE_SIZE)[:length]
        f.get()  # the mapping keeps the open file (and so the map) alive
        if writable:
            m.writecnt += 1

        def unmap():
            with kernel.lock:
                if writable:
                    m.writecnt -= 1
                f.put()

        return Mapping(view, writable, unmap)
