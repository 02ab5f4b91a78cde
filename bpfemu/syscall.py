"""sys_bpf: the front of the bpf(2) syscall.

It does what the kernel's ``__sys_bpf`` does before a command runs: refuse an
oversized ``attr`` with a nonzero tail (E2BIG), copy in at most
``sizeof(union bpf_attr)`` bytes (zero-filling a short one), and dispatch
through one table from command number to handler. Handlers live in one module
per command family (syscall_map, syscall_obj, syscall_id, syscall_info) and
register themselves with :func:`command`; the table is also what the docs and
``python -m bpfemu commands`` print.
"""
import ctypes
import errno

from . import uapi
from .errors import bpf_error

PAGE_SIZE = 4096

# cmd -> Command
COMMANDS = {}


class Command:
    def __init__(self, cmd, fn, last_field):
        self.cmd = cmd
        self.fn = fn
        self.name = uapi.cmd_name(cmd)
        self.last_field = last_field
        self.attr_end = uapi.offsetofend(last_field) if last_field else uapi.ATTR_SIZE


def command(cmd, last_field=None):
    """Register ``fn(ctx)`` as the handler of ``cmd``; ``last_field`` defaults to uapi.LAST_FIELD."""

    def deco(fn):
        COMMANDS[cmd] = Command(cmd, fn, last_field or uapi.LAST_FIELD.get(cmd))
        return fn

    return deco


def implemented():
    """{command name: True/False} for every command of the kernel's enum bpf_cmd."""
    _load_families()
    out = {}
    for name, value in uapi.ENUMS["bpf_cmd"]:
        if name.startswith("__"):
            continue
        out[name] = value in COMMANDS
    return out


class Ctx:
    """One syscall in flight: the caller, its memory, the copied-in attr."""

    __slots__ = ("task", "kernel", "mem", "attr", "uattr", "size", "cmd", "raw")

    def __init__(self, task, mem, cmd, raw, uattr, size):
        self.task = task
        self.kernel = task.kernel
        self.mem = mem
        self.cmd = cmd
        self.raw = raw  # bytearray(ATTR_SIZE), zero-filled past size
        self.attr = uapi.bpf_attr.from_buffer(raw)
        self.uattr = uattr
        self.size = size

    def check_attr(self, end):
        """CHECK_ATTR: every byte after the command's last field must be zero."""
        if any(self.raw[end:]):
            raise bpf_error(errno.EINVAL, "nonzero bytes after the last field of %s" % uapi.cmd_name(self.cmd))

    def put(self, field, value):
        """put_user/copy_to_user of one attr field back into the caller's attr."""
        off, size = uapi.attr_field(field)
        if isinstance(value, int):
            value = value.to_bytes(size, "little", signed=value < 0)
        self.mem.write(self.uattr + off, value)

    def read(self, addr, n):
        return self.mem.read(addr, n)

    def write(self, addr, data):
        self.mem.write(addr, data)


def check_uarg_tail_zero(mem, uattr, expected, actual):
    """bpf_check_uarg_tail_zero: a larger struct than we know is fine if the excess is zero."""
    if actual > PAGE_SIZE:
        raise bpf_error(errno.E2BIG, "attr size %d larger than a page" % actual)
    if actual <= expected:
        return
    tail = mem.read(uattr + expected, actual - expected)
    if any(tail):
        raise bpf_error(errno.E2BIG, "nonzero bytes past the kernel's union bpf_attr")


def sys_bpf(task, cmd, uattr, size, mem):
    """The syscall: returns the non-negative result or raises OSError(errno)."""
    size &= 0xFFFFFFFF
    check_uarg_tail_zero(mem, uattr, uapi.ATTR_SIZE, size)
    size = min(size, uapi.ATTR_SIZE)
    raw = bytearray(uapi.ATTR_SIZE)
    raw[:size] = mem.read(uattr, size)
    entry = COMMANDS.get(cmd)
    if entry is None:
        if cmd in uapi.CMD_NAMES:
            raise bpf_error(errno.EINVAL, "%s is not implemented by bpfemu" % uapi.cmd_name(cmd))
        raise bpf_error(errno.EINVAL, "unknown bpf command %d" % cmd)
    ctx = Ctx(task, mem, cmd, raw, uattr, size)
    with task.kernel.lock:
        return entry.fn(ctx)


_loaded = False


def _load_families():
    global _loaded
    if not _loaded:
        from . import syscall_id, syscall_info, syscall_map, syscall_obj  # noqa: F401
        _loaded = True

