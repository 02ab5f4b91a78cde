"""OBJ_GET_INFO_BY_FD (bpf_obj_get_info_by_fd and bpf_map_get_info_by_fd)."""
import ctypes
import errno

from . import uapi
from .errors import bpf_error
from .syscall import check_uarg_tail_zero, command

MAP_INFO_SIZE = ctypes.sizeof(uapi.bpf_map_info)


@command(uapi.BPF_OBJ_GET_INFO_BY_FD)
def obj_get_info_by_fd(ctx):
    a = ctx.attr
    ctx.check_attr(uapi.offsetofend("info.info"))
    slot = ctx.task.fdtable.get(a.info.bpf_fd)
    if slot is None:
        raise bpf_error(errno.EBADFD, "fd %d is not open" % a.info.bpf_fd)
    f = slot[0]
    if f.kind == "map" and f.obj is not None:
        return map_get_info(ctx, f.obj)
    raise bpf_error(errno.EINVAL, "OBJ_GET_INFO_BY_FD on a %s fd" % f.kind)


def map_get_info(ctx, m):
    a = ctx.attr
    uinfo = a.info.info
    info_len = a.info.info_len
    check_uarg_tail_zero(ctx.mem, uinfo, MAP_INFO_SIZE, info_len)
    info_len = min(info_len, MAP_INFO_SIZE)
    buf = bytearray(MAP_INFO_SIZE)
    buf[:info_len] = ctx.read(uinfo, info_len)
    info = uapi.bpf_map_info.from_buffer(buf)
    info.type = m.map_type
    info.id = m.id
    info.key_size = m.key_size
    info.value_size = m.value_size
    info.max_entries = m.max_entries
    info.map_flags = m.map_flags
    info.map_extra = m.map_extra
    name_off = uapi.bpf_map_info.name.offset
    buf[name_off:name_off + uapi.BPF_OBJ_NAME_LEN] = m.name.ljust(uapi.BPF_OBJ_NAME_LEN, b"\0")
    info.btf_vmlinux_value_type_id = m.btf_vmlinux_value_type_id
    if m.btf is not None:
        info.btf_id = m.btf.id
        info.btf_key_type_id = m.btf_key_type_id
        info.btf_value_type_id = m.btf_value_type_id
    if info.hash:
        if not hasattr(m, "map_hash"):
            raise bpf_error(errno.EINVAL, "this map type has no content hash")
        if info.hash_size != 32:
            raise bpf_error(errno.EINVAL, "hash_size must be 32")
        ctx.write(info.hash, m.map_hash())
    elif info.hash_size:
        raise bpf_error(errno.EINVAL, "hash_size without hash")
    ctx.write(uinfo, bytes(buf[:info_len]))
    ctx.put("info.info_len", info_len)
    return 0
