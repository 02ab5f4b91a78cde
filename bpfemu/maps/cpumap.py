"""CPUMAP maps (the kernel's cpumap.c): a queue of a given size per CPU, for XDP redirects."""
import errno
import struct

from .. import uapi as F
from ..errors import bpf_error
from .bpf_map import ObjMap, map_check_no_btf, index_next_key, prog_fd, u32


class CpuMap(ObjMap):
    map_check_btf = map_check_no_btf

    def __init__(self, kernel, attr):
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size not in (4, 8)
                or attr.map_flags & ~F.BPF_F_NUMA_NODE):
            raise bpf_error(errno.EINVAL, "cpumap: key 4, value 4 or 8, only BPF_F_NUMA_NODE")
        if attr.max_entries > kernel.nr_cpus:
            raise bpf_error(errno.E2BIG, "more entries than NR_CPUS (%d)" % kernel.nr_cpus)
        super().__init__(kernel, attr)

    def mem_usage(self, count=None):
        return self.kernel.profile.size("bpf_cpu_map") + self.max_entries * 8  # the entries' queues and threads are not counted

    def lookup_sys(self, key, flags):
        v = self.slots.get(u32(key))
        if v is None:
            raise bpf_error(errno.ENOENT)
        return v

    def update_sys(self, task, key, value, flags):
        val = bytes(value) + bytes(8 - len(value))
        qsize, pfd = struct.unpack("<Ii", val)
        cpu = u32(key)
        if flags > F.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad flags")
        if cpu >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        if flags == F.BPF_NOEXIST:
            raise bpf_error(errno.EEXIST)
        if qsize > 16384:
            raise bpf_error(errno.EOVERFLOW, "qsize above 16384")
        if cpu >= self.kernel.ncpus:
            raise bpf_error(errno.ENODEV, "cpu %d is not possible" % cpu)
        if qsize == 0:
            self.slots.pop(cpu, None)
            return
        if self.value_size == 8 and pfd > 0:
            try:
                prog_fd(task, pfd)
            except OSError:  # __cpu_map_entry_alloc fails as a whole: ENOMEM whatever went wrong
                raise bpf_error(errno.ENOMEM, "fd %d is not a cpumap program" % pfd) from None
        self.slots[cpu] = struct.pack("<II", qsize, 0)[:self.value_size]

    def delete(self, key):
        if u32(key) >= self.max_entries:
            raise bpf_error(errno.EINVAL, "index out of range")
        self.slots.pop(u32(key), None)

    def get_next_key(self, key):
        return index_next_key(key, self.max_entries)
