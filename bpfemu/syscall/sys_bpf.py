"""__sys_bpf: the front of the bpf(2) syscall.

It does what the kernel's ``__sys_bpf`` does before a command runs: refuse an
oversized ``attr`` with a nonzero tail (E2BIG), copy in at most
``sizeof(union bpf_attr)`` bytes (zero-filling a short one), find the command
in the table (:mod:`bpfemu.syscall.table`), apply its CHECK_ATTR, and call its
handler under the kernel's lock. The attr size, the commands known and each
command's last field are the kernel version's (``kernel.profile``). A :class:`Ctx` is one call in flight: the
caller, its attr, and its memory through the per-call page cache of
:class:`bpfemu.usermem.UserCopy`.
"""
import ctypes
import errno

from .. import uapi
from ..errors import bpf_error
from ..objects import fdget
from ..usermem import UserCopy
from . import btf as _btf, id as _id, info as _info, map as _map, obj as _obj  # noqa: F401  (the families register)
from .common import check_uarg_tail_zero
from .table import COMMANDS

ATTR_SIZE = uapi.ATTR_SIZE
_attr_field = uapi.attr_field


class Ctx(UserCopy):
    """One syscall in flight: the caller, its memory (``read``/``write``), the copied-in attr."""

    __slots__ = ("task", "kernel", "attr", "uattr", "size", "cmd", "raw", "entry", "attr_end")

    def __init__(self, task, mem, entry, raw, uattr, size, attr_end=None):
        UserCopy.__init__(self, mem)
        self.task = task
        self.kernel = task.kernel
        self.entry = entry
        self.cmd = entry.cmd
        self.raw = raw  # bytearray(ATTR_SIZE), zero-filled past size
        self.attr = uapi.bpf_attr.from_buffer(raw)
        self.uattr = uattr
        self.size = size
        # the end of the command's last field in this kernel version
        self.attr_end = task.kernel.profile.attr_end(entry) if attr_end is None else attr_end

    def knows(self, field):
        """Whether this kernel version's command reads (or writes back) attr field ``field``."""
        return uapi.offsetofend(field) <= self.attr_end

    def field(self, name):
        """The unsigned value of an attr field ('map_fd', 'batch.count')."""
        off, size = _attr_field(name)
        return int.from_bytes(self.raw[off:off + size], "little")

    def fdget(self, name):
        """The open file behind the fd in attr field ``name``, of the kind the table declares for it."""
        off, size, d = self.entry.fd_at[name]
        return fdget(self.task, int.from_bytes(self.raw[off:off + size], "little"), d.kinds, d.wrong, d.closed)

    def put(self, field, value):
        """put_user/copy_to_user of one attr field back into the caller's attr."""
        off, size = _attr_field(field)
        if isinstance(value, int):
            value = value.to_bytes(size, "little", signed=value < 0)
        self.write(self.uattr + off, value)


def _owned(obj, size):
    """Whether obj is a buffer Python allocated itself, holding at least size bytes: its bytes can
    be copied without a checked read (it cannot fault). Objects made with from_address/from_buffer
    or views into other objects do not own their memory and take the checked path."""
    if type(obj) is bytearray:
        return size <= len(obj)
    return getattr(obj, "_b_needsfree_", 0) == 1 and size <= ctypes.sizeof(obj)


def sys_bpf(task, cmd, uattr, size, mem, attr_obj=None):
    """The syscall: returns the non-negative result or raises OSError(errno).

    ``attr_obj``, when given, is the object at ``uattr`` (lets an owned attr skip the checked copy)."""
    size &= 0xFFFFFFFF
    kernel = task.kernel
    profile = kernel.profile
    if (profile.unpriv_check_at_entry and cmd in (uapi.BPF_MAP_CREATE, uapi.BPF_PROG_LOAD)
            and kernel.sysctl["kernel.unprivileged_bpf_disabled"] and not task.bpf_capable()):
        raise bpf_error(errno.EPERM, "unprivileged BPF is disabled (kernel.unprivileged_bpf_disabled), checked "
                                     "at the syscall's entry in %s" % profile.version)
    limit = profile.attr_size  # sizeof(union bpf_attr) in this version
    if size > limit:
        check_uarg_tail_zero(mem.read, uattr, limit, size)
        size = limit
    if attr_obj is not None and size and _owned(attr_obj, size):
        raw = bytearray(ctypes.string_at(uattr, size))
        if size < ATTR_SIZE:
            raw += bytes(ATTR_SIZE - size)
    elif size == ATTR_SIZE:
        raw = bytearray(mem.read(uattr, size))
    else:
        raw = bytearray(ATTR_SIZE)
        raw[:size] = mem.read(uattr, size)
    entry = COMMANDS.get(cmd)
    if entry is not None and not profile.knows_command(cmd):
        raise bpf_error(errno.EINVAL, "%s is not a command of %s" % (entry.name, profile.version))
    if entry is None or entry.handler is None:
        if cmd in uapi.CMD_NAMES:
            raise bpf_error(errno.EINVAL, "%s is not implemented by bpfemu" % uapi.cmd_name(cmd))
        raise bpf_error(errno.EINVAL, "unknown bpf command %d" % cmd)
    end = profile.attr_end(entry)  # CHECK_ATTR
    if raw.count(0, end) != ATTR_SIZE - end:
        raise bpf_error(errno.EINVAL, "nonzero bytes after %s, the last field of %s in %s" % (
            profile.last_field(entry), entry.name, profile.version))
    ctx = Ctx(task, mem, entry, raw, uattr, size, end)
    with kernel.lock:
        outer, kernel.current = kernel.current, task  # the kernel's `current` for ops that look at the caller
        try:
            return entry.handler(ctx)
        finally:
            kernel.current = outer
            if ctx._pending:
                ctx.flush()


def implemented():
    """{command name: True/False} for every command of the kernel's enum bpf_cmd."""
    out = {}
    for name, value in uapi.ENUMS["bpf_cmd"]:
        if not name.startswith("__"):
            entry = COMMANDS.get(value)
            out[name] = entry is not None and entry.handler is not None
    return out
