"""The program commands of bpf(2) (the program half of the kernel's syscall.c): BPF_PROG_LOAD.

:func:`prog_load` hands the copied-in attr to :func:`bpfemu.prog.load.bpf_prog_load` (the checks of
``bpf_prog_load()`` in the kernel's order, then the verifier) through :class:`LoadCtx`, the caller's view
the program side needs: capabilities, user memory, the fd resolver, the kernel's BTF. A verified program
becomes a kernel object (:class:`bpfemu.prog.prog.BpfProg`: an id, the references on its maps) and the
caller gets a read-write fd to it.
"""
import errno

from ..errors import bpf_error
from ..objects import FMODE_READ, FMODE_WRITE, fdget
from ..prog.load import LoadContext, bpf_prog_load
from .common import new_fd, obj_name_cpy
from .table import command
from .. import uapi

_CAPS = {"bpf": "bpf_capable", "perfmon": "perfmon_capable", "net_admin": "net_capable"}


class LoadCtx(LoadContext):
    """bpf_prog_load's view of the syscall in flight (see :class:`bpfemu.prog.load.LoadContext`)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.task = ctx.task
        self.unprivileged_bpf_disabled = ctx.kernel.sysctl["kernel.unprivileged_bpf_disabled"]

    def capable(self, name):
        t = self.task
        if name == "sys_admin":
            from ..caps import CAP_SYS_ADMIN
            return t.capable(CAP_SYS_ADMIN)
        return getattr(t, _CAPS[name])()

    def read(self, addr, n):
        return self.ctx.read(addr, n)

    def write(self, addr, data):
        self.ctx.write(addr, data)

    def read_str(self, addr, maxlen):
        """strncpy_from_user: bytes up to the NUL (at most ``maxlen``), EFAULT only for what it must read."""
        out = b""
        while len(out) < maxlen:
            step = min(maxlen - len(out), 4096 - (addr + len(out)) % 4096)
            chunk = self.ctx.read(addr + len(out), step)
            nul = chunk.find(b"\0")
            if nul >= 0:
                return out + chunk[:nul]
            out += chunk
        return out

    def map_of_fd(self, fd):
        if not 0 <= fd <= 0x7fffffff:
            return errno.EBADF
        try:
            return fdget(self.task, fd, "map").obj
        except OSError as e:
            return e.errno

    def obj_name_cpy(self, raw):
        return obj_name_cpy(raw)

    def token_of_fd(self, fd):
        fdget(self.task, fd, "token")
        raise bpf_error(errno.EINVAL, "BPF tokens are not modeled")  # pragma: no cover (no token objects)

    def btf_of_fd(self, fd):
        return fdget(self.task, fd, "btf").obj

    @property
    def kernel_btf(self):
        """The kernel's BTF, loaded on first use by the verifier (a callable the verifier calls)."""
        from ..btf.vmlinux import vmlinux_btf
        return vmlinux_btf


@command(uapi.BPF_PROG_LOAD)
def prog_load(ctx):
    prog, _res = bpf_prog_load(ctx.attr, LoadCtx(ctx), uattr_size=ctx.size, uattr=ctx.uattr)
    prog.created_by_uid = ctx.task.uid
    prog.publish(ctx.kernel)
    prog.hold(ctx.kernel)  # the creation reference, dropped once the fd holds it
    try:
        return new_fd(ctx.task, prog, FMODE_READ | FMODE_WRITE)
    finally:
        prog.release(ctx.kernel)
