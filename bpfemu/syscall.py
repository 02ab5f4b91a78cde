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
from .usermem import NULL_PAGE, LocalMemory

PAGE_SIZE = 4096
ATTR_SIZE = uapi.ATTR_SIZE
_attr_field = uapi.attr_field

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


# Commands that copy many small pieces (a batch: a key and a value per element) must not pay one
# checked copy (a process_vm_readv/writev syscall) per piece:
# - reads: after the first few reads of a call, whole pages of the caller's memory are read once
#   and the pieces served from them for the rest of this one syscall. A page is readable as a
#   whole or not at all, so EFAULT comes exactly where the piecewise read would give it.
# - writes: once a write to a page succeeded in this call, later writes that fall in such pages
#   cannot fault; they are queued and land, merged and in order, before the syscall returns
#   (also when it fails), so the caller sees the same bytes. Reads see the queued writes.
# Handlers use ctx.read/ctx.write (not ctx.mem) for this to hold.
PAGED_AFTER = 4
PAGE_MASK = ~(PAGE_SIZE - 1)


class Ctx:
    """One syscall in flight: the caller, its memory, the copied-in attr."""

    __slots__ = ("task", "kernel", "mem", "attr", "uattr", "size", "cmd", "raw", "_reads", "_pages", "_wpages",
                 "_pending", "_writes")

    def __init__(self, task, mem, cmd, raw, uattr, size):
        self.task = task
        self.kernel = task.kernel
        self.mem = mem
        self.cmd = cmd
        self.raw = raw  # bytearray(ATTR_SIZE), zero-filled past size
        self.attr = uapi.bpf_attr.from_buffer(raw)
        self.uattr = uattr
        self.size = size
        self._reads = 0
        self._pages = None  # page address -> bytearray of its bytes as this call sees them
        self._wpages = None  # pages written successfully in this call
        self._pending = None  # queued writes: [[addr, bytearray]] runs of adjacent writes
        self._writes = 0

    def check_attr(self, end):
        """CHECK_ATTR: every byte after the command's last field must be zero."""
        raw = self.raw
        if raw.count(0, end) != len(raw) - max(0, min(end, len(raw))):
            raise bpf_error(errno.EINVAL, "nonzero bytes after the last field of %s" % uapi.cmd_name(self.cmd))

    def put(self, field, value):
        """put_user/copy_to_user of one attr field back into the caller's attr."""
        off, size = _attr_field(field)
        if isinstance(value, int):
            value = value.to_bytes(size, "little", signed=value < 0)
        self.write(self.uattr + off, value)

    def _paged(self):
        """The page cache, or None when this memory is not a LocalMemory (it may guard single bytes)."""
        if self._pages is None:
            if not isinstance(self.mem, LocalMemory):
                self._reads = -(1 << 62)
                return None
            self._pages = {}
            self._wpages = set()
        return self._pages

    def read(self, addr, n):
        self._reads += 1
        if self._reads <= PAGED_AFTER or n >= PAGE_SIZE or n <= 0 or addr < NULL_PAGE or addr + n > 1 << 64:
            if self._pending:
                self.flush()
            return self.mem.read(addr, n)
        pages = self._paged()
        if pages is None:
            return self.mem.read(addr, n)
        first = addr & PAGE_MASK
        off = addr - first
        page = pages.get(first)
        if page is None:
            if self._pending:
                self.flush()
            page = pages[first] = bytearray(self.mem.read(first, PAGE_SIZE))
        if off + n <= PAGE_SIZE:
            return bytes(page[off:off + n])
        nxt = first + PAGE_SIZE
        page2 = pages.get(nxt)
        if page2 is None:
            if self._pending:
                self.flush()
            page2 = pages[nxt] = bytearray(self.mem.read(nxt, PAGE_SIZE))
        return bytes(page[off:]) + bytes(page2[:off + n - PAGE_SIZE])

    def write(self, addr, data):
        n = len(data)
        if n <= 0:
            self.mem.write(addr, data)
            return
        wpages = self._wpages
        first, last = addr & PAGE_MASK, (addr + n - 1) & PAGE_MASK
        if wpages is not None and first in wpages and last in wpages and (
                first == last or all(p in wpages for p in range(first, last, PAGE_SIZE))):
            data = bytes(data)
            runs = self._pending
            end = addr + n
            for r in runs:
                if addr < r[0] + len(r[1]) and end > r[0]:  # overlaps a queued write: order matters
                    self.flush()
                    runs = self._pending
                    break
            for r in runs:
                if r[0] + len(r[1]) == addr:
                    r[1] += data
                    break
            else:
                if len(runs) >= 16:
                    self.flush()
                    runs = self._pending
                runs.append([addr, bytearray(data)])
        else:
            if self._pending:
                self.flush()
            try:
                self.mem.write(addr, data)
            except OSError:
                if self._pages:
                    self._pages.clear()  # part of it may have landed: read afresh
                raise
            self._writes += 1
            if self._writes > 1 and n < PAGE_SIZE and self._paged() is not None:
                if self._pending is None:
                    self._pending = []
                wpages = self._wpages
                for p in range(first, last + 1, PAGE_SIZE):
                    wpages.add(p)
        pages = self._pages
        if pages:
            page = first
            while page <= last:
                cached = pages.get(page)
                if cached is not None:
                    lo, hi = max(addr, page), min(addr + n, page + PAGE_SIZE)
                    cached[lo - page:hi - page] = bytes(data[lo - addr:hi - addr])
                page += PAGE_SIZE

    def flush(self):
        """Land the queued writes: runs of adjacent writes, which never overlap one another."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        for a, run in pending:
            self.mem.write(a, run)


def check_uarg_tail_zero(mem, uattr, expected, actual):
    """bpf_check_uarg_tail_zero: a larger struct than we know is fine if the excess is zero."""
    if actual > PAGE_SIZE:
        raise bpf_error(errno.E2BIG, "attr size %d larger than a page" % actual)
    if actual <= expected:
        return
    # check_zeroed_user reads word by word and stops at the first nonzero one: a nonzero byte
    # before an unreadable page is E2BIG, not EFAULT (so read a page at a time, in order)
    addr, end = uattr + expected, uattr + actual
    while addr < end:
        n = min(end, (addr // PAGE_SIZE + 1) * PAGE_SIZE) - addr
        if any(mem.read(addr, n)):
            raise bpf_error(errno.E2BIG, "nonzero bytes past the kernel's union bpf_attr")
        addr += n


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
    if size > ATTR_SIZE:
        check_uarg_tail_zero(mem, uattr, ATTR_SIZE, size)
        size = ATTR_SIZE
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
    if entry is None:
        if cmd in uapi.CMD_NAMES:
            raise bpf_error(errno.EINVAL, "%s is not implemented by bpfemu" % uapi.cmd_name(cmd))
        raise bpf_error(errno.EINVAL, "unknown bpf command %d" % cmd)
    ctx = Ctx(task, mem, cmd, raw, uattr, size)
    with task.kernel.lock:
        try:
            return entry.fn(ctx)
        finally:
            if ctx._pending:
                ctx.flush()


_loaded = False


def _load_families():
    global _loaded
    if not _loaded:
        from . import syscall_id, syscall_info, syscall_map, syscall_obj  # noqa: F401
        _loaded = True

