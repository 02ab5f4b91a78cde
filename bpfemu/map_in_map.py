"""Maps of maps (the kernel's map_in_map.c with the of-maps parts of arraymap.c and
hashtab.c): ARRAY_OF_MAPS and HASH_OF_MAPS.

At creation ``inner_map_fd`` names a template map. Its shape is copied (type, key
and value size, flags, max_entries, special BTF fields) and the template itself is
not kept. This happens in map_alloc, so after map_create's privilege checks and
before the table's own size checks. From userspace a value is written as the fd of
a map whose shape matches the template, and read back as that map's id. Each stored
inner map is held by the outer map (the outer map is the holder), and released when
its slot is deleted or overwritten, or when the outer map is freed.
"""
import errno
import struct

from . import uapi
from .bpf_map import BpfMap
from .bpf_map import map_type
from .errors import ENOTSUPP, bpf_error
from .hashtab import HashMap
from .objmaps import FdArray

OF_MAPS = (uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS, uapi.BPF_MAP_TYPE_HASH_OF_MAPS)
# map types whose ops have no map_meta_equal: they cannot be inner maps (ENOTSUPP)
NO_META_EQUAL = frozenset((uapi.BPF_MAP_TYPE_PROG_ARRAY, uapi.BPF_MAP_TYPE_CGROUP_STORAGE,
                           uapi.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, uapi.BPF_MAP_TYPE_STRUCT_OPS))


def shape(m):
    """What bpf_map_meta_equal compares: type, sizes, flags (less RDONLY/WRONLY) and special fields."""
    return (m.map_type, m.key_size, m.value_size, m.map_flags, m.record or None)


class MapMeta:
    """The inner-map template (bpf_map_meta_alloc's copy of the inner map's shape)."""

    def __init__(self, inner):
        self.shape = shape(inner)
        self.max_entries = inner.max_entries

    def matches(self, m):
        """The inner type's map_meta_equal: the shape, and for ARRAY also max_entries
        unless the template was made with BPF_F_INNER_MAP."""
        if shape(m) != self.shape:
            return False
        map_type, flags = self.shape[0], self.shape[3]
        if map_type == uapi.BPF_MAP_TYPE_ARRAY and not flags & uapi.BPF_F_INNER_MAP:
            return m.max_entries == self.max_entries
        return True


def map_of_fd(task, fd):
    """__bpf_map_get on a user fd: EBADF when it is not open, EINVAL when it is not a map."""
    f = task.fdget(fd if 0 <= fd < 1 << 31 else -1)
    if f.kind != "map" or f.obj is None:
        raise bpf_error(errno.EINVAL, "fd %d is not a map" % fd)
    return f.obj


def meta_alloc(task, fd):
    """bpf_map_meta_alloc."""
    inner = map_of_fd(task, fd)
    if inner.map_type in OF_MAPS:
        raise bpf_error(errno.EINVAL, "a map of maps cannot be an inner map")
    if inner.map_type in NO_META_EQUAL:
        raise bpf_error(ENOTSUPP, "%s maps cannot be inner maps" % inner.type_name())
    return MapMeta(inner)


class OfMaps:
    """What both of-maps types share: the template, fd -> held map, map -> id."""

    @classmethod
    def map_alloc(cls, kernel, attr, task):
        """The template comes first, from the creating task's fds (after the privilege checks)."""
        m = cls.__new__(cls)
        m.meta = meta_alloc(task, attr.inner_map_fd)
        m.__init__(kernel, attr)
        return m

    def take_inner(self, task, value):
        """bpf_map_fd_get_ptr: the map behind the fd in value, held by this map."""
        inner = map_of_fd(task, struct.unpack("<i", bytes(value[:4]))[0])
        if not self.meta.matches(inner):
            raise bpf_error(errno.EINVAL, "inner map does not match the template")
        inner.hold(self)
        return inner

    def free_value(self, inner):
        inner.release(self)


@map_type(uapi.BPF_MAP_TYPE_HASH_OF_MAPS)
class HashOfMaps(OfMaps, HashMap):
    fd_values = True  # an existing key's inner map is swapped in place (6.16+)

    @classmethod
    def alloc_check(cls, attr, task):
        """fd_htab_map_alloc_check."""
        if attr.value_size != 4:
            raise bpf_error(errno.EINVAL, "value_size of a map of maps must be 4")
        super().alloc_check(attr, task)

    @property
    def user_value_size(self):
        return 4

    def to_user_value(self, inner):
        return struct.pack("<I", inner.id)

    def update_sys(self, task, key, value, flags):
        """bpf_fd_htab_map_update_elem: the fd first, then the flags and the table."""
        inner = self.take_inner(task, value)
        try:
            if flags > uapi.BPF_EXIST:
                raise bpf_error(errno.EINVAL, "bad update flags")
            self.insert(bytes(key), inner, flags)
        except OSError:
            inner.release(self)
            raise

    def lookup_and_delete(self, key, flags):
        raise bpf_error(ENOTSUPP)


@map_type(uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS)
class ArrayOfMaps(OfMaps, FdArray):
    # generic lookup and update batches; no delete batch
    lookup_batch = BpfMap.lookup_batch
    update_batch = BpfMap.update_batch

    def _slot(self, key):
        return struct.unpack("<I", bytes(key))[0]

    def lookup_sys(self, key, flags):
        inner = self.slots.get(self._slot(key))
        if inner is None:
            raise bpf_error(errno.ENOENT)
        return struct.pack("<I", inner.id)

    def update_sys(self, task, key, value, flags):
        """bpf_fd_array_map_update_elem: flags and index before the fd."""
        if flags != uapi.BPF_ANY:
            raise bpf_error(errno.EINVAL, "fd arrays only take BPF_ANY")
        i = self._slot(key)
        if i >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        inner = self.take_inner(task, value)
        old = self.slots.get(i)
        self.slots[i] = inner
        if old is not None:
            self.free_value(old)

    def delete(self, key):
        i = self._slot(key)
        if i >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        old = self.slots.pop(i, None)
        if old is None:
            raise bpf_error(errno.ENOENT)
        self.free_value(old)

    def on_free(self):
        slots, self.slots = self.slots, {}
        for inner in slots.values():
            self.free_value(inner)
