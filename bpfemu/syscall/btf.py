"""The BTF commands of bpf(2): BPF_BTF_LOAD and OBJ_GET_INFO_BY_FD of a BTF fd (syscall.c's
bpf_btf_load and bpf_btf_get_info_by_fd, btf.c's btf_new_fd and btf_get_info_by_fd).

BTF_GET_FD_BY_ID and BTF_GET_NEXT_ID are with the other id commands (:mod:`bpfemu.syscall.id`); they
find the kernel's own BTF (id 1) as well as the loaded ones. A BTF fd cannot be pinned: OBJ_PIN takes
maps, programs and links only (EINVAL), as on the host.

Nothing here is charged to the memory cgroup: the kernel allocates a BTF without __GFP_ACCOUNT
(measured on 6.18: loading 1.7 MB of BTF five times leaves a memory cgroup's kernel usage where it was).
"""
import ctypes
import errno

from .. import uapi
from ..btf.object import BtfObject
from ..btf.parse import btf_parse
from ..errors import bpf_error
from ..objects import FMODE_READ
from .common import check_uarg_tail_zero, new_fd
from .info import info_of
from .table import command

BTF_INFO_SIZE = ctypes.sizeof(uapi.bpf_btf_info)
TRUE_SIZE_END = uapi.offsetofend("btf_log_true_size")


class UserBuffer:
    """The log buffer at user address ``addr``, as :mod:`bpfemu.btf.log` writes it (offset-relative)."""

    __slots__ = ("ctx", "addr")

    def __init__(self, ctx, addr):
        self.ctx, self.addr = ctx, addr

    def write(self, off, data):
        self.ctx.write(self.addr + off, data)

    def read(self, off, n):
        return self.ctx.read(self.addr + off, n)


@command(uapi.BPF_BTF_LOAD)
def btf_load(ctx):
    """bpf_btf_load: btf_flags, the token, CAP_BPF, then btf_new_fd (btf_parse, an id, an fd)."""
    a = ctx.attr
    if a.btf_flags & ~uapi.BPF_F_TOKEN_FD:
        raise bpf_error(errno.EINVAL, "btf_flags may only hold BPF_F_TOKEN_FD")
    if a.btf_flags & uapi.BPF_F_TOKEN_FD:
        ctx.fdget("btf_token_fd")  # EBADF, or EINVAL: no fd is a token in the emulator
        raise bpf_error(errno.EINVAL, "BPF tokens are not modeled")  # pragma: no cover (no token objects)
    if not ctx.task.bpf_capable():
        raise bpf_error(errno.EPERM, "BPF_BTF_LOAD needs CAP_BPF")
    size = a.btf_size
    addr = a.btf

    def read():
        return ctx.read(addr, size) if size else b""

    def write_true_size(n):
        ctx.put("btf_log_true_size", n)

    ubuf = UserBuffer(ctx, a.btf_log_buf) if a.btf_log_buf else None
    btf = btf_parse(read, log=(a.btf_log_level, ubuf, a.btf_log_size), btf_size=size,
                    vmlinux=lambda: ctx.kernel.btf_vmlinux.btf, profile=ctx.kernel.profile,
                    write_true_size=write_true_size if ctx.size >= TRUE_SIZE_END and ctx.knows("btf_log_true_size")
                    else None)
    obj = BtfObject(ctx.kernel, btf)
    ctx.kernel.register(obj)
    obj.hold(ctx.kernel)  # btf_parse's reference, handed to the fd
    try:
        return new_fd(ctx.task, obj, FMODE_READ)  # anon_inode_getfd(..., O_RDONLY | O_CLOEXEC)
    finally:
        obj.release(ctx.kernel)


@info_of("btf")
def btf_get_info(ctx, obj):
    """bpf_btf_get_info_by_fd + btf_get_info_by_fd: btf bytes, btf_size, id, name, kernel_btf.

    The blob is copied first (min(btf_size asked, its size); EFAULT), then the name pointer and length
    must both be set or both be zero (EINVAL); a name buffer too short gets the name cut and a NUL, the
    info is still written back, and the call fails with ENOSPC."""
    a = ctx.attr
    uinfo, info_len = a.info.info, a.info.info_len
    check_uarg_tail_zero(ctx.mem.read, uinfo, BTF_INFO_SIZE, info_len)
    n = min(info_len, BTF_INFO_SIZE)
    buf = bytearray(BTF_INFO_SIZE)
    buf[:n] = ctx.read(uinfo, n)
    info = uapi.bpf_btf_info.from_buffer(buf)
    info.id = obj.id
    data = obj.raw_bytes()
    copy = min(len(data), info.btf_size)
    if copy:
        ctx.write(info.btf, data[:copy])
    info.btf_size = len(data)
    info.kernel_btf = 1 if obj.kernel_btf else 0
    uname, uname_len = info.name, info.name_len
    if (not uname) != (not uname_len):
        raise bpf_error(errno.EINVAL, "bpf_btf_info.name and name_len must be given together")
    name = obj.name
    info.name_len = len(name)
    ret = 0
    if uname:
        if uname_len >= len(name) + 1:
            ctx.write(uname, name + b"\0")
        else:
            if uname_len > 1:
                ctx.write(uname, name[:uname_len - 1])
            ctx.write(uname + uname_len - 1, b"\0")
            ret = errno.ENOSPC
    ctx.write(uinfo, bytes(buf[:n]))
    ctx.put("info.info_len", n)
    if ret:
        raise bpf_error(ret, "bpf_btf_info.name_len %d cannot hold the name %r" % (uname_len, name))
    return 0
