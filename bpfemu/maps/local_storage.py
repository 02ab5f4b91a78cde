"""CGROUP_STORAGE and PERCPU_CGROUP_STORAGE maps (the kernel's local_storage.c): storage slots appear
when a program is attached to a cgroup, so from userspace the map is always empty."""
import errno

from .. import uapi as F
from ..errors import bpf_error
from ..limits import LOCAL_STORAGE_MAX_VALUE_SIZE, PCPU_MIN_UNIT_SIZE
from .bpf_map import BPF_F_ACCESS_MASK, ObjMap, map_flags_access_ok


class CgroupStorage(ObjMap):
    """Storage slots appear when a program is attached to a cgroup: from userspace, always empty."""

    def __init__(self, kernel, attr):
        percpu = attr.map_type == F.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
        limit = min(LOCAL_STORAGE_MAX_VALUE_SIZE, PCPU_MIN_UNIT_SIZE) if percpu else LOCAL_STORAGE_MAX_VALUE_SIZE
        if attr.key_size not in (16, 8):
            raise bpf_error(errno.EINVAL, "key is a struct bpf_cgroup_storage_key (16) or a cgroup id (8)")
        if attr.value_size == 0:
            raise bpf_error(errno.EINVAL, "value_size 0")
        if attr.value_size > limit:
            raise bpf_error(errno.E2BIG, "value too large")
        if attr.map_flags & ~(F.BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK) or not map_flags_access_ok(attr.map_flags):
            raise bpf_error(errno.EINVAL, "bad cgroup storage flags")
        if attr.max_entries:
            raise bpf_error(errno.EINVAL, "cgroup storage has no max_entries")
        super().__init__(kernel, attr)
        self.percpu = percpu

    def mem_usage(self, count=None):
        return 328  # struct bpf_cgroup_storage_map; storages are charged to their cgroups

    def lookup_sys(self, key, flags):
        raise bpf_error(errno.ENOENT)

    def update(self, key, value, flags):
        if flags & ~(F.BPF_F_LOCK | F.BPF_EXIST):
            raise bpf_error(errno.EINVAL, "bad flags")
        raise bpf_error(errno.ENOENT)

    def delete(self, key):
        raise bpf_error(errno.EINVAL, "cgroup storage cannot be deleted")

    def get_next_key(self, key):
        raise bpf_error(errno.ENOENT)
