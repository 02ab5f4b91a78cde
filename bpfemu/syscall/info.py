"""OBJ_GET_INFO_BY_FD (bpf_obj_get_info_by_fd and bpf_map_get_info_by_fd).

The command resolves its fd to a map, program, link or BTF object and hands it
to the info function of that kind; ``@info_of('prog')`` is how a family module
adds another kind's (bpf_prog_get_info_by_fd lives with the program commands).
"""
import ctypes
import errno

from .. import uapi
from ..errors import bpf_error
from ..limits import SHA256_DIGEST_SIZE
from ..maps.bpf_map import implements
from .common import check_uarg_tail_zero
from .table import command

MAP_INFO_SIZE = ctypes.sizeof(uapi.bpf_map_info)  # the newest layout; a kernel version's may end sooner
INFO_PAD = uapi.bpf_map_info.hash_size.offset + 4  # end of the last field; padding follows
HASH_END = INFO_PAD  # a struct bpf_map_info without hash and hash_size ends before them

INFO_OF = {}  # object kind -> fn(ctx, obj)


def info_of(kind):
    """Decorator: ``fn(ctx, obj)`` answers OBJ_GET_INFO_BY_FD for objects of ``kind``."""

    def deco(fn):
        INFO_OF[kind] = fn
        return fn

    return deco


@command(uapi.BPF_OBJ_GET_INFO_BY_FD)
def obj_get_info_by_fd(ctx):
    f = ctx.fdget("info.bpf_fd")
    fn = INFO_OF.get(f.kind)
    if fn is None:
        raise bpf_error(errno.EINVAL, "OBJ_GET_INFO_BY_FD on a %s fd is not modeled" % f.kind)
    return fn(ctx, f.obj)


@info_of("map")
def map_get_info(ctx, m):
    """bpf_map_get_info_by_fd, with this kernel version's struct bpf_map_info (``profile.map_info_size``) and
    its way of filling it: from the caller's copy (6.18: the hash request travels in it) or from zeros."""
    a = ctx.attr
    profile = ctx.kernel.profile
    size = profile.map_info_size
    uinfo = a.info.info
    info_len = a.info.info_len
    check_uarg_tail_zero(ctx.mem.read, uinfo, size, info_len)
    info_len = min(info_len, size)
    if size > HASH_END and info_len > INFO_PAD and any(ctx.read(uinfo + INFO_PAD, info_len - INFO_PAD)):
        # the 4 padding bytes after hash_size count as tail too (host: E2BIG, before the hash checks)
        raise bpf_error(errno.E2BIG, "nonzero padding at the end of bpf_map_info")
    buf = bytearray(MAP_INFO_SIZE)
    if profile.map_info_reads_user:
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
    if size <= HASH_END:  # no hash, hash_size in this version's struct
        pass
    elif info.hash:
        if not implements(m, "map_get_hash"):
            raise bpf_error(errno.EINVAL, "only array maps have a content hash")
        if info.hash_size != SHA256_DIGEST_SIZE:
            raise bpf_error(errno.EINVAL, "hash_size must be 32")
        if not m.frozen:
            raise bpf_error(errno.EPERM, "the content hash is only given for a frozen map")
        ctx.write(info.hash, m.map_get_hash())
    elif info.hash_size:
        raise bpf_error(errno.EINVAL, "hash_size without hash")
    ctx.write(uinfo, bytes(buf[:info_len]))
    ctx.put("info.info_len", info_len)
    return 0
