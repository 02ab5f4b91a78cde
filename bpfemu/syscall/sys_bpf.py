"""__sys_bpf: the front of the bpf(2) syscall.

It does what the kernel's ``__sys_bpf`` does before a command runs: refuse an
oversized ``attr`` with a nonzero tail (E2BIG), copy in at most
``sizeof(union bpf_attr)`` bytes (zero-filling a short one), find the command
in the table (:mod:`bpfemu.syscall.table`), apply its CHECK_ATTR, and call its
handler under the kernel's lock. The attr size, the commands known and each
command's last field are the kernel version's (``kernel.profile``), on every way in
(:func:`sys_bpf`, :func:`owned_entry` + :func:`do_bpf`, :func:`sys_bpf_elem`). A :class:`Ctx` is one call in flight: the
caller, its attr, and its memory through the per-call page cache of
:class:`bpfemu.usermem.UserCopy`.
"""
import ctypes
import errno

from .. import uapi
from ..errors import bpf_error
from ..objects import FMODE_READ, FMODE_WRITE, fdget
from ..usermem import LocalMemory, UserCopy
from . import btf as _btf, id as _id, info as _info, map as _map, obj as _obj, prog as _prog  # noqa: F401,E501  (the families register)
from .common import check_uarg_tail_zero
from .table import COMMANDS

ATTR_SIZE = uapi.ATTR_SIZE
_attr_field = uapi.attr_field


class Ctx(UserCopy):
    """One syscall in flight: the caller, its memory (``read``/``write``), the copied-in attr.

    ``raw`` is the attr as copied in (``sizeof(union bpf_attr)`` bytes, zero past ``size``); ``attr`` the
    ctypes view of it (made on first use); ``args`` the fields the command's declaration names in
    ``args``, decoded once (None when it names none); ``attr_end`` the end of the command's last field in
    this kernel version."""

    __slots__ = ("task", "kernel", "_attr", "uattr", "size", "cmd", "raw", "entry", "args", "attr_end")

    def __init__(self, task, mem, entry, raw, uattr, size, attr_end=None):
        # UserCopy's state, set here rather than by a call: this runs once per syscall
        self.mem = mem
        self._reads = 0
        self._pages = self._wpages = self._pending = None
        self._writes = 0
        self.task = task
        self.kernel = task.kernel
        self.entry = entry
        self.cmd = entry.cmd
        self.raw = raw  # bytearray(ATTR_SIZE), zero-filled past size
        self._attr = None
        self.uattr = uattr
        self.size = size
        unpack = entry.unpack_args
        self.args = unpack(raw) if unpack is not None else None
        # the end of the command's last field in this kernel version
        self.attr_end = task.kernel.profile.attr_end(entry) if attr_end is None else attr_end

    def knows(self, field):
        """Whether this kernel version's command reads (or writes back) attr field ``field``."""
        return uapi.offsetofend(field) <= self.attr_end

    @property
    def attr(self):
        """The copied-in attr as a ``uapi.bpf_attr`` over ``raw`` (writes to it change ``raw``)."""
        a = self._attr
        if a is None:
            a = self._attr = _bpf_attr_from_buffer(self.raw)
        return a

    def field(self, name):
        """The unsigned value of an attr field ('map_fd', 'batch.count')."""
        off, size = _attr_field(name)
        return int.from_bytes(self.raw[off:off + size], "little")

    def fdget(self, name, fd=None):
        """The open file behind the fd in attr field ``name`` (``fd``: its value, when already decoded), of
        the kind the table declares for it."""
        off, size, d = self.entry.fd_at[name]
        if fd is None:
            fd = int.from_bytes(self.raw[off:off + size], "little")
        return fdget(self.task, fd, d.kinds, d.wrong, d.closed)

    def put(self, field, value):
        """put_user/copy_to_user of one scalar attr field back into the caller's attr (a field the command
        declares in ``attr_out``): the whole field or, when it faults, nothing (:meth:`UserCopy.put_user`)."""
        off, size = self.entry.attr_out_at.get(field) or _attr_field(field)
        if isinstance(value, int):
            value = value.to_bytes(size, "little", signed=value < 0)
        self.put_user(self.uattr + off, value)


_bpf_attr_from_buffer = uapi.bpf_attr.from_buffer
_string_at = ctypes.string_at


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
    profile = task.kernel.profile
    _check_unpriv_at_entry(task, cmd, profile)
    limit = profile.attr_size  # sizeof(union bpf_attr) in this version
    if size > limit:
        check_uarg_tail_zero(mem.read, uattr, limit, size)
        size = limit
    if attr_obj is not None and size and _owned(attr_obj, size):
        raw = bytearray(_string_at(uattr, size))
        if size < ATTR_SIZE:
            raw += bytes(ATTR_SIZE - size)
    elif size == ATTR_SIZE:
        raw = bytearray(mem.read(uattr, size))
    else:
        raw = bytearray(ATTR_SIZE)
        raw[:size] = mem.read(uattr, size)
    return do_bpf(task, cmd, raw, uattr, size, mem)


def _check_unpriv_at_entry(task, cmd, profile):
    """A version that checks kernel.unprivileged_bpf_disabled first thing (before the attr is read)."""
    if (profile.unpriv_check_at_entry and cmd in _UNPRIV_AT_ENTRY
            and task.kernel.sysctl["kernel.unprivileged_bpf_disabled"] and not task.bpf_capable()):
        raise bpf_error(errno.EPERM, "unprivileged BPF is disabled (kernel.unprivileged_bpf_disabled), checked "
                                     "at the syscall's entry in %s" % profile.version)


_UNPRIV_AT_ENTRY = frozenset((uapi.BPF_MAP_CREATE, uapi.BPF_PROG_LOAD))


def owned_entry(task, cmd, raw):
    """What :func:`sys_bpf` checks before the copy, for a whole attr (``raw``, ATTR_SIZE bytes) Python owns
    and passes without a size: the version's entry privilege check, then E2BIG for nonzero bytes past the
    version's ``sizeof(union bpf_attr)``. Returns the size the version copies in."""
    profile = task.kernel.profile
    _check_unpriv_at_entry(task, cmd, profile)
    limit = profile.attr_size
    if limit < ATTR_SIZE and raw.count(0, limit) != ATTR_SIZE - limit:
        raise bpf_error(errno.E2BIG, "nonzero bytes past the kernel's struct (%d bytes in %s)" % (
            limit, profile.version))
    return min(limit, ATTR_SIZE)


def _check_attr(profile, entry, raw):
    """The version knows the command; CHECK_ATTR with the version's last field. Returns the attr end."""
    if not profile.knows_command(entry.cmd):
        raise bpf_error(errno.EINVAL, "%s is not a command of %s" % (entry.name, profile.version))
    end = profile.attr_end(entry)  # CHECK_ATTR
    if raw.count(0, end) != ATTR_SIZE - end:
        raise bpf_error(errno.EINVAL, "nonzero bytes after %s, the last field of %s in %s" % (
            profile.last_field(entry), entry.name, profile.version))
    return end


def do_bpf(task, cmd, raw, uattr, size, mem):
    """The rest of the syscall once the attr is copied in (``raw``, ATTR_SIZE bytes, zero past what the
    version copies): find the command, check that the version knows it, CHECK_ATTR with the version's
    last field, run the handler under the kernel's lock."""
    entry = COMMANDS.get(cmd)
    profile = task.kernel.profile
    if entry is not None and not profile.knows_command(cmd):
        raise bpf_error(errno.EINVAL, "%s is not a command of %s" % (entry.name, profile.version))
    if entry is None or entry.handler is None:
        if cmd in uapi.CMD_NAMES:
            raise bpf_error(errno.EINVAL, "%s is not implemented by bpfemu" % uapi.cmd_name(cmd))
        raise bpf_error(errno.EINVAL, "unknown bpf command %d" % cmd)
    end = _check_attr(profile, entry, raw)
    ctx = Ctx(task, mem, entry, raw, uattr, size, end)
    kernel = task.kernel
    with kernel.lock:
        if not task.alive:  # exit() and syscalls serialize: a task that exited makes no more calls
            raise bpf_error(errno.ESRCH, "task has exited")
        outer, kernel.current = kernel.current, task  # the kernel's `current` for ops that look at the caller
        try:
            return entry.handler(ctx)
        finally:
            kernel.current = outer
            if ctx._pending:
                ctx.flush()


_LOOKUP, _UPDATE = uapi.BPF_MAP_LOOKUP_ELEM, uapi.BPF_MAP_UPDATE_ELEM
ELEM_FAST = frozenset((_LOOKUP, _UPDATE))
_BLOOM = uapi.BPF_MAP_TYPE_BLOOM_FILTER
_ELEM_LOCK = uapi.BPF_F_LOCK


def _elem_plans(profile):
    """{command: (Command, attr end, the zero tail past it)} of the :data:`ELEM_FAST` commands ``profile``
    knows and checks nothing else for at the entry: what :func:`owned_entry` and :func:`_check_attr`
    reduce to for a whole attr Python owns. The tail past the command's last field holds the part past
    the version's attr size, so one comparison with zeros passes both checks; an attr that fails it
    goes through them for the error they give, in their order."""
    plans = {}
    for cmd in ELEM_FAST:
        if profile.knows_command(cmd) and not (profile.unpriv_check_at_entry and cmd in _UNPRIV_AT_ENTRY):
            entry = COMMANDS[cmd]
            end = profile.attr_end(entry)
            plans[cmd] = (entry, end, bytes(ATTR_SIZE - end))
    _ELEM_PLANS[profile] = plans
    return plans


_ELEM_PLANS = {}  # profile -> its plans (built on first use; the facts of a profile never change)


def sys_bpf_elem(task, cmd, attr, mem):
    """do_bpf of BPF_MAP_LOOKUP_ELEM or BPF_MAP_UPDATE_ELEM (:data:`ELEM_FAST`) for a whole ``uapi.bpf_attr``
    Python owns, copying through a :class:`LocalMemory`: the same steps (CHECK_ATTR, the handler's checks
    in its order, the copies, the map operation) without building a :class:`Ctx`. What the short way
    does not cover (a key-less map, a bloom filter) goes to the handler after the checks, which have no
    side effects and so run again there with the same outcome. The version's facts hold here as on the
    long way: its attr size (:func:`owned_entry`) and its last field of the command."""
    raw = bytes(attr)
    kernel = task.kernel
    profile = kernel.profile
    plan = (_ELEM_PLANS.get(profile) or _elem_plans(profile)).get(cmd)
    if plan is not None and raw.endswith(plan[2]):
        entry, end = plan[0], plan[1]
    else:  # the version's errors, in the kernel's order
        entry = COMMANDS[cmd]
        owned_entry(task, cmd, raw)
        end = _check_attr(profile, entry, raw)
    map_fd, ukey, uvalue, flags = entry.unpack_args(raw)
    # 'with', not acquire() then try: an exception between the two (KeyboardInterrupt, a signal handler's)
    # would leave the kernel's lock held for good
    with kernel.lock:
        if not task.alive:  # exit() and syscalls serialize (the caller's check ran before the lock)
            raise bpf_error(errno.ESRCH, "task has exited")
        outer, kernel.current = kernel.current, task
        try:
            if type(mem) is LocalMemory:
                slot = task.fdtable.get(map_fd)
                if cmd == _LOOKUP:
                    # lookup_check without the calls when nothing is unusual (no flags, a readable map fd)
                    if slot is not None and not flags:
                        f = slot[0]
                        m = f.obj
                        if f.kind != "map" or m is None or not f.mode & FMODE_READ:
                            f, m = _map.lookup_check(task, entry, map_fd, flags)
                    else:
                        f, m = _map.lookup_check(task, entry, map_fd, flags)
                    ks = m.key_size
                    if ks and m.map_type != _BLOOM:
                        mem.read_apply_write(ukey, ks, m.lookup_sys, flags, uvalue)
                        return 0
                else:
                    # write_check likewise (a writable fd of a map not frozen, no BPF_F_LOCK)
                    if slot is not None and not flags & _ELEM_LOCK:
                        f = slot[0]
                        m = f.obj
                        if f.kind != "map" or m is None or not f.mode & FMODE_WRITE or m.frozen:
                            f, m = _map.write_check(task, entry, map_fd, flags)
                    else:
                        f, m = _map.write_check(task, entry, map_fd, flags)
                    ks = m.key_size
                    if ks:
                        key, value = mem.read2(ukey, ks, uvalue, m.user_value_size)
                        m.update_sys(task, key, value, flags)
                        return 0
            ctx = Ctx(task, mem, entry, bytearray(raw), ctypes.addressof(attr), min(profile.attr_size, ATTR_SIZE), end)
            try:
                return entry.handler(ctx)
            finally:
                if ctx._pending:
                    ctx.flush()
        finally:
            kernel.current = outer


def implemented():
    """{command name: True/False} for every command of the kernel's enum bpf_cmd."""
    out = {}
    for name, value in uapi.ENUMS["bpf_cmd"]:
        if not name.startswith("__"):
            entry = COMMANDS.get(value)
            out[name] = entry is not None and entry.handler is not None
    return out
