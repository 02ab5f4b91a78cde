"""STACK_TRACE maps (the kernel's stackmap.c): stacks are only written by programs, so from
userspace the map stays empty. Its checks run in map_alloc, after map_create's privilege checks."""
import errno

from .. import uapi as F
from ..errors import bpf_error
from ..limits import PERF_EVENT_MAX_STACK, roundup_pow_of_two
from .bpf_map import BPF_F_ACCESS_MASK, ObjMap, map_check_no_btf, u32


STACK_CREATE_FLAG_MASK = F.BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK | F.BPF_F_STACK_BUILD_ID
BUILD_ID_SIZE = 32  # sizeof(struct bpf_stack_build_id)


class StackMap(ObjMap):
    """STACK_TRACE (stack_trace_map_ops)."""

    map_check_btf = map_check_no_btf

    def __init__(self, kernel, attr):
        vs = attr.value_size
        if attr.map_flags & ~STACK_CREATE_FLAG_MASK:
            raise bpf_error(errno.EINVAL, "unknown stack map flags")
        if attr.max_entries == 0 or attr.key_size != 4 or vs < 8 or vs % 8:
            raise bpf_error(errno.EINVAL, "stack map: key 4, value a nonzero multiple of 8")
        if attr.map_flags & F.BPF_F_STACK_BUILD_ID:
            if vs % BUILD_ID_SIZE or vs // BUILD_ID_SIZE > PERF_EVENT_MAX_STACK:
                raise bpf_error(errno.EINVAL, "build-id stack value size")
        elif vs // 8 > PERF_EVENT_MAX_STACK:
            raise bpf_error(errno.EINVAL, "stack deeper than kernel.perf_event_max_stack")
        if attr.max_entries > 1 << 31:
            raise bpf_error(errno.E2BIG, "too many buckets")
        super().__init__(kernel, attr)
        self.n_buckets = roundup_pow_of_two(attr.max_entries)

    def mem_usage(self, count=None):
        """stack_map_mem_usage: the map, a bucket pointer each, and every preallocated bucket."""
        elem = 16 + self.value_size  # struct stack_map_bucket header + data
        return self.kernel.profile.size("bpf_stack_map") + self.n_buckets * 8 + self.max_entries * elem

    def _extract(self, key):
        raise bpf_error(errno.ENOENT)

    def lookup_sys(self, key, flags):
        return self._extract(key)

    def lookup_and_delete_sys(self, key, flags):
        return self._extract(key)

    def update(self, key, value, flags):
        raise bpf_error(errno.EINVAL, "stack maps are filled by programs")

    def delete(self, key):
        if u32(key) >= self.n_buckets:
            raise bpf_error(errno.E2BIG, "stack id out of range")
        raise bpf_error(errno.ENOENT)

    def get_next_key(self, key):
        raise bpf_error(errno.ENOENT)
