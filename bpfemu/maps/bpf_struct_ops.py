"""STRUCT_OPS maps (the kernel's bpf_struct_ops.c): the value type must be a kernel struct_ops type
from vmlinux BTF, which is not modeled, so creation fails with ENOTSUPP after alloc_check."""
import errno

from .. import uapi as F
from ..errors import ENOTSUPP, bpf_error
from .bpf_map import ObjMap


class StructOpsMap(ObjMap):
    """The value type must be a kernel struct_ops type from vmlinux BTF, which is not modeled."""

    @classmethod
    def alloc_check(cls, attr, task):
        if (attr.key_size != 4 or attr.max_entries != 1
                or attr.map_flags & ~(F.BPF_F_LINK | F.BPF_F_VTYPE_BTF_OBJ_FD)
                or not attr.btf_vmlinux_value_type_id):
            raise bpf_error(errno.EINVAL, "struct_ops: key 4, one entry, a vmlinux value type id")

    def __init__(self, kernel, attr):
        raise bpf_error(ENOTSUPP, "no struct_ops type with BTF id %d" % attr.btf_vmlinux_value_type_id)

    def mem_usage(self, count=None):
        """bpf_struct_ops_map_mem_usage: never asked, since creation fails (no struct_ops types)."""
        raise NotImplementedError("struct_ops maps cannot be created")
