"""OBJ_GET_INFO_BY_FD (bpf_obj_get_info_by_fd and bpf_map_get_info_by_fd)."""
import ctypes
import errno
import hashlib
import struct

from . import uapi
from .errors import bpf_error
from .syscall import check_uarg_tail_zero, command

MAP_INFO_SIZE = ctypes.sizeof(uapi.bpf_map_info)
SHA256_DIGEST_SIZE = 32
INFO_PAD = uapi.bpf_map_info.hash_size.offset + 4  # end of the last field; padding follows


def array_map_hash(m):
    """array_map_get_hash: SHA-256 of the value area, every element padded to 8 bytes."""
    h = hashlib.sha256()
    elem = (m.value_size + 7) // 8 * 8
    pad = bytes(elem - m.value_size)
    if getattr(m, "data", None) is not None:  # a flat (mmapable) value area is hashed as it lies
        h.update(memoryview(m.data)[:elem * m.max_entries])
        return h.digest()
    written = sorted(getattr(m, "values", None) or ())
    zero = bytes(min(elem * m.max_entries, 1 << 20) // elem * elem or elem)
    done = 0  # elements hashed so far; never-written ones are zeros, fed in big chunks
    for i in list(written) + [m.max_entries]:
        gap = (i - done) * elem
        while gap > 0:
            h.update(zero[:gap])
            gap -= len(zero)
        if i == m.max_entries:
            break
        h.update(bytes(m.lookup(struct.pack("<I", i)))[:m.value_size] + pad)
        done = i + 1
    return h.digest()


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
    if info_len > INFO_PAD and any(ctx.read(uinfo + INFO_PAD, info_len - INFO_PAD)):
        # the 4 padding bytes after hash_size count as tail too (host: E2BIG, before the hash checks)
        raise bpf_error(errno.E2BIG, "nonzero padding at the end of bpf_map_info")
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
        if m.map_type != uapi.BPF_MAP_TYPE_ARRAY:
            raise bpf_error(errno.EINVAL, "only array maps have a content hash")
        if info.hash_size != SHA256_DIGEST_SIZE:
            raise bpf_error(errno.EINVAL, "hash_size must be 32")
        if not m.frozen:
            raise bpf_error(errno.EPERM, "the content hash is only given for a frozen map")
        ctx.write(info.hash, array_map_hash(m))
    elif info.hash_size:
        raise bpf_error(errno.EINVAL, "hash_size without hash")
    ctx.write(uinfo, bytes(buf[:info_len]))
    ctx.put("info.info_len", info_len)
    return 0
