"""CGROUP_STORAGE and PERCPU_CGROUP_STORAGE maps (the kernel's local_storage.c): storage slots appear
when a program is attached to a cgroup, so from userspace the map is always empty."""
import errno

from .. import uapi as F
from ..errors import bpf_error
from ..limits import LOCAL_STORAGE_MAX_VALUE_SIZE, PCPU_MIN_UNIT_SIZE
from ..btf.uapi import BTF_KIND_INT, BTF_KIND_STRUCT
from .bpf_map import BPF_F_ACCESS_MASK, ObjMap, int_bits_at_0, map_flags_access_ok


def member_is_reg_int(btf, s, m, expected_offset, expected_size):
    """btf_member_is_reg_int: member ``m`` of struct ``s`` is a whole int of ``expected_size`` bytes at byte
    ``expected_offset``."""
    r = btf.type_id_size(m[1])
    if r is None or r[0].kind != BTF_KIND_INT:
        return False
    d = r[0].int_data
    nr_bits = d & 0xFF
    if s.kflag:
        bitfield_size, bit_offset = m[2] >> 24, m[2] & 0xFFFFFF
        return not bitfield_size and (bit_offset + 7) // 8 == expected_offset and (nr_bits + 7) // 8 == expected_size
    return not ((d >> 16) & 0xFF or m[2] % 8 or (m[2] + 7) // 8 != expected_offset or nr_bits % 8
                or (nr_bits + 7) // 8 != expected_size)


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

    def map_check_btf(self, btf, key_type, value_type):
        """cgroup_storage_check_btf: a struct bpf_cgroup_storage_key (a u64 inode id and a u32 attach type)
        for 16-byte keys, else a u64."""
        if self.key_size == 16:
            if key_type.kind != BTF_KIND_STRUCT or key_type.vlen != 2:
                raise bpf_error(errno.EINVAL, "the key type must be struct bpf_cgroup_storage_key")
            m0, m1 = key_type.members
            if not member_is_reg_int(btf, key_type, m0, 0, 8) or not member_is_reg_int(btf, key_type, m1, 8, 4):
                raise bpf_error(errno.EINVAL, "the key type must be struct bpf_cgroup_storage_key")
        elif not int_bits_at_0(key_type, 64):
            raise bpf_error(errno.EINVAL, "the key type must be a u64 (a cgroup inode id)")

    def mem_usage(self, count=None):
        return self.kernel.profile.size("bpf_cgroup_storage_map")  # storages are charged to their cgroups

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
