"""SK_STORAGE, INODE_STORAGE, TASK_STORAGE and CGRP_STORAGE maps (the kernel's bpf_local_storage.c and
bpf_sk_storage.c, bpf_inode_storage.c, bpf_task_storage.c, bpf_cgrp_storage.c).

Each element is stored on a kernel object named by the fd in the key: a socket, a file's inode, a task
(a pidfd), a cgroup (a cgroup directory fd). Of those the emulator has only files, so:

- INODE_STORAGE keeps values per inode: every bpf object fd (map, BTF, ...) shares the kernel's one
  anonymous inode, as on the host, so they all name the same element; a terminal or a directory is its
  own inode;
- SK_STORAGE answers ENOTSOCK for any open fd, TASK_STORAGE and CGRP_STORAGE EBADF (not a pidfd, not a
  cgroup), as the host does for those fds; a closed fd is EBADF everywhere.

Creation needs BTF key and value types (the kernel enforces it for userspace dumping); the map has no
max_entries, no get_next_key and no batches (ENOTSUPP).
"""
import errno

from .. import uapi as F
from ..errors import ENOTSUPP, bpf_error
from ..limits import LOCAL_STORAGE_MAX_VALUE_SIZE, roundup_pow_of_two
from ..objects import KINDS
from .bpf_map import ObjMap, int_bits_at_0, s32

# sizeof(struct bpf_local_storage_map) and of one bucket (x86_64), as map_mem_usage counts them
BUCKET_SIZE = 16
ANON_INODE = "anon_inode"  # the inode every bpf object file shares


class LocalStorage(ObjMap):
    """The four local storage types (bpf_local_storage_map_ops of each)."""

    unbounded = True

    @classmethod
    def alloc_check(cls, attr, task):
        """bpf_local_storage_map_alloc_check."""
        flags = attr.map_flags
        if (flags & ~(F.BPF_F_NO_PREALLOC | F.BPF_F_CLONE) or not flags & F.BPF_F_NO_PREALLOC
                or attr.max_entries or attr.key_size != 4 or not attr.value_size
                or not attr.btf_key_type_id or not attr.btf_value_type_id):
            raise bpf_error(errno.EINVAL, "local storage: key 4, no max_entries, NO_PREALLOC and BTF ids")
        if attr.value_size > LOCAL_STORAGE_MAX_VALUE_SIZE:
            raise bpf_error(errno.E2BIG, "value too large")

    def mem_usage(self, count=None):
        """bpf_local_storage_map_mem_usage: the map and its buckets (one per possible CPU rounded up to a
        power of two, at least 2); the elements are not counted."""
        return self.kernel.profile.size("bpf_local_storage_map") + BUCKET_SIZE * max(2, roundup_pow_of_two(self.kernel.ncpus))

    def map_check_btf(self, btf, key_type, value_type):
        """bpf_local_storage_map_check_btf: the key is an int (the fd)."""
        if not int_bits_at_0(key_type, 32):
            raise bpf_error(errno.EINVAL, "the key type of a local storage map must be a 32-bit int")

    # -- the owner an fd names ------------------------------------------------------------------
    def owner(self, key):
        """The object whose storage the fd in ``key`` names, for the calling task (EBADF, ENOTSOCK)."""
        fd = s32(key)
        slot = self.kernel.current.fdtable.get(fd) if fd >= 0 else None
        if slot is None:
            raise bpf_error(errno.EBADF, "fd %d is not open" % fd)
        f = slot[0]
        t = self.map_type
        if t == F.BPF_MAP_TYPE_SK_STORAGE:
            raise bpf_error(errno.ENOTSOCK, "fd %d is not a socket (the emulator has none)" % fd)
        if t == F.BPF_MAP_TYPE_TASK_STORAGE:
            raise bpf_error(errno.EBADF, "fd %d is not a pidfd (the emulator has none)" % fd)
        if t == F.BPF_MAP_TYPE_CGRP_STORAGE:
            raise bpf_error(errno.EBADF, "fd %d is not a cgroup (the emulator has none)" % fd)
        if f.kind in KINDS:
            return ANON_INODE
        return f.inode if f.inode is not None else f

    # -- element ops ------------------------------------------------------------------------------
    def lookup_sys(self, key, flags):
        v = self.slots.get(self.owner(key))
        if v is None:
            raise bpf_error(errno.ENOENT)
        return v

    def update_sys(self, task, key, value, flags):
        """bpf_local_storage_update: the owner first, then the flags (EINVAL), EEXIST/ENOENT."""
        owner = self.owner(key)
        if (flags & ~F.BPF_F_LOCK) > F.BPF_EXIST or (flags & F.BPF_F_LOCK and not self.has_spin_lock()):
            raise bpf_error(errno.EINVAL, "bad update flags")
        old = self.slots.get(owner)
        mode = flags & ~F.BPF_F_LOCK
        if old is not None and mode == F.BPF_NOEXIST:
            raise bpf_error(errno.EEXIST)
        if old is None and mode == F.BPF_EXIST:
            raise bpf_error(errno.ENOENT)
        self.slots[owner] = self.obj_init(value) if self.record is not None else bytes(value)

    def delete(self, key):
        if self.slots.pop(self.owner(key), None) is None:
            raise bpf_error(errno.ENOENT)

    def get_next_key(self, key):
        raise bpf_error(ENOTSUPP, "local storage has no key order")
