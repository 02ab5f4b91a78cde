"""Maps of maps (the kernel's map_in_map.c): the inner-map template and what ARRAY_OF_MAPS
(arraymap.py) and HASH_OF_MAPS (hashtab.py) share.

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

from .. import uapi
from ..errors import ENOTSUPP, bpf_error
from ..limits import S32_MAX
from ..objects import fdget

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
    return fdget(task, fd if 0 <= fd <= S32_MAX else -1, "map").obj


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

    def inner_map(self, key):
        """map_lookup_elem of a map of maps from a program: the inner map stored under key, or None."""
        if self.map_type == uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS:
            i = struct.unpack("<I", bytes(key[:4]))[0]
            return self.slots.get(i)
        e = self.elems.get(bytes(key))
        return None if e is None else e.value
