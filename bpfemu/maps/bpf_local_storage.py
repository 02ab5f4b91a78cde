"""SK_STORAGE, INODE_STORAGE, TASK_STORAGE and CGRP_STORAGE maps (the kernel's bpf_local_storage.c):
their values are described by BTF, which the emulator does not load yet, so creation ends at the btf_fd
lookup of map_create."""
import errno

from .. import uapi as F
from ..errors import bpf_error
from ..limits import LOCAL_STORAGE_MAX_VALUE_SIZE
from .bpf_map import ObjMap


class LocalStorage(ObjMap):
    """Needs BTF ids; the emulator loads no BTF, so creation ends at the btf_fd lookup."""

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
        """bpf_local_storage_map_mem_usage: never asked, since creation stops at the btf_fd lookup; the
        struct sizes are to be measured on the host once BTF-described maps can be created."""
        raise NotImplementedError("local storage maps cannot be created without BTF")
