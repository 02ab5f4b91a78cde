"""Random bpf(2) call sequences for the fuzz tests, replayable on any backend.

A call is described without addresses (:class:`Call`): pointers are
:class:`Ptr` specs (NULL, a low address, a PROT_NONE page, a kernel address, or
an offset into one of the arena's guarded pages, so a too-short buffer ends at
an unreadable page instead of overrunning Python's heap), fds are plain ints
(fd 0 is a terminal, closed and out-of-range fds included). :class:`Arena`
turns a call into real memory for one backend; two arenas with the same seed
hold the same bytes at different addresses, so results can be compared.

Which attr fields of a command are pointers and which are fds comes from the
command table (:mod:`bpfemu.syscall.table`); the strategies here only choose
values for them and for the scalar fields each generator varies.
"""
import ctypes
import errno
import os
import random

from hypothesis import strategies as st

from .. import uapi as u
from ..errors import ENOTSUPP
from ..host.rpc import RPC_FD
from ..syscall.table import COMMANDS

PAGE = 4096
NPAGES = 6
KERNEL_ADDR = 0xFFFFFFFF81000000

# every errno the host's bpf(2) and its fd/filesystem paths can give for bad input
HOST_ERRNOS = frozenset((errno.EPERM, errno.ENOENT, errno.ESRCH, errno.EBADF, errno.EBADFD, errno.EFAULT, errno.EINVAL,
                         errno.E2BIG, errno.EEXIST, errno.ENOSPC, errno.ENOMEM, ENOTSUPP, errno.EOPNOTSUPP,
                         errno.EACCES, errno.EBUSY, errno.EMFILE, errno.ENOTDIR, errno.EISDIR,
                         errno.ENAMETOOLONG, errno.ELOOP, errno.EXDEV, errno.ENOTEMPTY, errno.ENODEV,
                         errno.ENXIO, errno.EAGAIN, errno.ERANGE, errno.EOVERFLOW))


def _libc():
    lib = ctypes.CDLL(None, use_errno=True)
    lib.mmap.restype = ctypes.c_void_p
    lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    lib.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return lib


class Ptr:
    """Where a pointer field points: kind 'null', 'low', 'guard', 'kernel' or 'buf' (page, offset)."""

    __slots__ = ("kind", "page", "off")

    def __init__(self, kind, page=0, off=0):
        self.kind, self.page, self.off = kind, page, off

    def __repr__(self):
        return "Ptr(%r, %d, %d)" % (self.kind, self.page, self.off) if self.kind == "buf" else "Ptr(%r)" % self.kind


class Call:
    """One bpf(cmd, attr, size): attr fields (ints, Ptr, or fd ints), written at ``where``."""

    def __init__(self, cmd, fields, size=None, where=None, raw=None):
        self.cmd, self.fields, self.size, self.where, self.raw = cmd, fields, size, where, raw

    def __repr__(self):
        name = u.CMD_NAMES.get(self.cmd, self.cmd) if hasattr(u, "CMD_NAMES") else self.cmd
        return "Call(%s, %r, size=%r, where=%r%s)" % (name, self.fields, self.size, self.where,
                                                     ", raw=%s" % self.raw.hex() if self.raw else "")


class Arena:
    """NPAGES read-write pages, each followed by a PROT_NONE page, filled from ``seed``."""

    def __init__(self, seed, bpffs="/sys/fs/bpf"):
        self.lib = _libc()
        self.size = NPAGES * 2 * PAGE
        self.base = self.lib.mmap(None, self.size, 3, 0x22, -1, 0)
        if not self.base or self.base == ctypes.c_void_p(-1).value:
            raise MemoryError("mmap failed")
        for i in range(NPAGES):
            self.lib.mprotect(self.base + (2 * i + 1) * PAGE, PAGE, 0)
        rnd = random.Random(seed)
        data = bytes(rnd.choice((0, 0, 0, 1, 2, 3, 5, 0xFF)) for _ in range(NPAGES * PAGE))
        for i in range(NPAGES):
            ctypes.memmove(self.page(i), data[i * PAGE:(i + 1) * PAGE], PAGE)
        # page 0 holds path names: "<bpffs>/p<n>\0" every 64 bytes
        for n in range(8):
            p = (bpffs.rstrip("/") + "/p%d" % (n % 3) if n < 6 else "/tmp/p%d" % n).encode() + b"\0"
            ctypes.memmove(self.page(0) + 64 * n, p, len(p))

    def page(self, i):
        return self.base + 2 * i * PAGE

    def addr(self, p):
        if p.kind == "null":
            return 0
        if p.kind == "low":
            return 0x10
        if p.kind == "guard":
            return self.page(p.page % NPAGES) + PAGE
        if p.kind == "kernel":
            return KERNEL_ADDR
        return self.page(p.page % NPAGES) + p.off % PAGE

    def pages(self):
        return [ctypes.string_at(self.page(i), PAGE) for i in range(NPAGES)]

    def build(self, call):
        """(attr address, size) with the call's attr written into this arena."""
        a = u.make_attr()
        raw = bytearray(bytes(call.raw) if call.raw is not None else bytes(ctypes.sizeof(a)))
        raw += bytes(max(0, ctypes.sizeof(a) - len(raw)))
        a = u.bpf_attr.from_buffer(raw)
        for name, v in call.fields.items():
            off, n = u.attr_field(name)
            v = self.addr(v) if isinstance(v, Ptr) else v
            raw[off:off + n] = (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")
        size = ctypes.sizeof(a) if call.size is None else call.size
        if call.where is None:
            # the attr at the end of the last page: bytes past it are unreadable
            n = min(max(size, 0), PAGE)
            at = self.page(NPAGES - 1) + PAGE - n
            ctypes.memset(self.page(NPAGES - 1), 0, PAGE)  # the attr page holds only this attr
        else:
            at = self.addr(call.where)
        if call.where is None or call.where.kind == "buf":
            room = self.page(((at - self.base) // (2 * PAGE))) + PAGE - at
            ctypes.memmove(at, bytes(raw[:room]), min(room, len(raw)))
        return at, size

    def close(self):
        if self.base:
            self.lib.munmap(self.base, self.size)
            self.base = 0


def run(task, arena, call):
    """Perform the call: ('ok', rv) or ('err', errno)."""
    at, size = arena.build(call)
    try:
        return ("ok", task.bpf(call.cmd, at, size))
    except OSError as e:
        return ("err", e.errno)


# -- strategies ----------------------------------------------------------------------

def ptrs(small=True):
    """Pointer specs: mostly valid buffers (some short or misaligned), some bad."""
    buf = st.builds(lambda p, off: Ptr("buf", p, off), st.integers(1, NPAGES - 2),
                    st.sampled_from([0, 0, 0, 8, 1, 3, PAGE - 4, PAGE - 8, PAGE - 1, PAGE - 64]))
    bad = st.sampled_from([Ptr("null"), Ptr("low"), Ptr("guard", 1), Ptr("kernel")])
    return st.one_of(buf, buf, buf, bad)


def fds(max_fd=12):
    return st.one_of(st.integers(0, max_fd), st.sampled_from([-1, 1 << 31, 100000, 1023, 1024]))


def flags():
    return st.one_of(st.sampled_from([0, 0, 0, 1, 2, 3, 4, u.BPF_F_LOCK]), st.integers(0, 2**64 - 1))


def counts(huge=True):
    """Batch counts; huge ones only where the backend need not copy count * size bytes (not the host RPC)."""
    return st.one_of(st.integers(0, 20), st.sampled_from([2**32 - 1, 1 << 20] if huge else [64, 0]))


ELEM_CMDS = (u.BPF_MAP_LOOKUP_ELEM, u.BPF_MAP_UPDATE_ELEM, u.BPF_MAP_DELETE_ELEM,
             u.BPF_MAP_LOOKUP_AND_DELETE_ELEM)
BATCH_CMDS = (u.BPF_MAP_LOOKUP_BATCH, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH, u.BPF_MAP_UPDATE_BATCH,
              u.BPF_MAP_DELETE_BATCH)
# map types whose behaviour is deterministic on the host (LRU victims too, for a task pinned to one CPU)
DIFF_MAP_TYPES = (u.BPF_MAP_TYPE_HASH, u.BPF_MAP_TYPE_ARRAY, u.BPF_MAP_TYPE_PERCPU_HASH,
                  u.BPF_MAP_TYPE_PERCPU_ARRAY, u.BPF_MAP_TYPE_QUEUE, u.BPF_MAP_TYPE_STACK,
                  u.BPF_MAP_TYPE_BLOOM_FILTER, u.BPF_MAP_TYPE_LRU_HASH, u.BPF_MAP_TYPE_LRU_PERCPU_HASH)
HASHES = (u.BPF_MAP_TYPE_HASH, u.BPF_MAP_TYPE_PERCPU_HASH, u.BPF_MAP_TYPE_LRU_HASH,
          u.BPF_MAP_TYPE_LRU_PERCPU_HASH)


@st.composite
def map_creates(draw, types=DIFF_MAP_TYPES):
    t = draw(st.sampled_from(types))
    keyless = t in (u.BPF_MAP_TYPE_QUEUE, u.BPF_MAP_TYPE_STACK, u.BPF_MAP_TYPE_BLOOM_FILTER)
    ks = draw(st.sampled_from([0, 4, 4, 8, 3, 5000] if not keyless else [0, 0, 4]))
    vs = draw(st.sampled_from([0, 4, 8, 8, 12, 100, 1 << 20]))
    me = draw(st.sampled_from([0, 1, 4, 16, 64]))
    fl = draw(st.sampled_from([0, 0, u.BPF_F_NO_PREALLOC, u.BPF_F_RDONLY, u.BPF_F_WRONLY, u.BPF_F_RDONLY_PROG,
                               u.BPF_F_MMAPABLE, u.BPF_F_NUMA_NODE, u.BPF_F_NO_COMMON_LRU, 1 << 30]))
    if t in HASHES:
        fl |= u.BPF_F_ZERO_SEED  # bucket order is then the host's
    return Call(u.BPF_MAP_CREATE, {"map_type": t, "key_size": ks, "value_size": vs, "max_entries": me,
                                   "map_flags": fl, "map_extra": draw(st.sampled_from([0, 0, 0, 3, 16]))})


def declared_fields(draw, cmd, fds=None, ptr_strategies=None, scalars=None):
    """Fields of a call of ``cmd``: a pointer spec for every user pointer the table declares (from
    ``ptr_strategies`` by field, else :func:`ptrs`), ``fds`` for the fd fields given, 0 most of the time
    for the other declared fd fields, and the ``scalars`` strategies by field."""
    entry = COMMANDS[cmd]
    ptr_strategies = ptr_strategies or {}
    f = {p.field: draw(ptr_strategies.get(p.field, ptrs())) for p in entry.user_ptrs}
    for name in entry.fds:
        f[name] = fds[name] if fds and name in fds else draw(st.sampled_from([0, 0, 0, 1, 3, 1023]))
    for name, strategy in (scalars or {}).items():
        f[name] = draw(strategy)
    return f


@st.composite
def map_calls(draw, max_fd=12, huge=True):
    """Semi-valid map commands: real fds mixed with bad ones, random flags, sizes, pointers."""
    cmd = draw(st.sampled_from(ELEM_CMDS + ELEM_CMDS + BATCH_CMDS + (u.BPF_MAP_GET_NEXT_KEY, u.BPF_MAP_FREEZE)))
    fd = draw(st.one_of(st.integers(3, max_fd), fds(max_fd)))
    nullable = st.one_of(st.just(Ptr("null")), ptrs())
    if cmd in BATCH_CMDS:
        return Call(cmd, declared_fields(draw, cmd, {"batch.map_fd": fd}, {"batch.in_batch": nullable}, {
            "batch.count": counts(huge), "batch.elem_flags": flags(), "batch.flags": st.sampled_from([0, 0, 1])}))
    if cmd == u.BPF_MAP_GET_NEXT_KEY:
        return Call(cmd, declared_fields(draw, cmd, {"map_fd": fd}, {"key": nullable}))
    # flags past DELETE_ELEM's last field exercise CHECK_ATTR
    extra = {"flags": flags()} if cmd in ELEM_CMDS else {}
    return Call(cmd, declared_fields(draw, cmd, {"map_fd": fd}, scalars=extra))


@st.composite
def obj_calls(draw, max_fd=12):
    cmd = draw(st.sampled_from([u.BPF_OBJ_PIN, u.BPF_OBJ_GET, u.BPF_OBJ_GET_INFO_BY_FD]))
    if cmd == u.BPF_OBJ_GET_INFO_BY_FD:
        return Call(cmd, declared_fields(draw, cmd, {"info.bpf_fd": draw(fds(max_fd))}, scalars={
            "info.info_len": st.sampled_from([0, 4, 8, 40, 80, 200, 4096, 5000])}))
    paths = st.one_of(st.builds(lambda n: Ptr("buf", 0, 64 * n), st.integers(0, 7)), ptrs())
    file_flags = st.sampled_from([0, 0, u.BPF_F_RDONLY, u.BPF_F_WRONLY, 3, 1 << 14])
    return Call(cmd, declared_fields(draw, cmd, {"bpf_fd": draw(fds(max_fd))}, {"pathname": paths},
                                     {"file_flags": file_flags}))


@st.composite
def raw_calls(draw):
    """Anything: a random command number (unknown ones too), random attr bytes and size."""
    cmd = draw(st.one_of(st.integers(0, 40), st.sampled_from([-1, 2**31 - 1, 1000, 2**32 - 1])))
    raw = draw(st.binary(min_size=0, max_size=160))
    size = draw(st.one_of(st.just(len(raw)), st.sampled_from([0, 1, 8, 48, 120, 160, 4096, 4097, 2**32 - 1])))
    where = draw(st.one_of(st.none(), st.sampled_from([Ptr("null"), Ptr("low"), Ptr("guard", 2)]),
                           st.builds(lambda o: Ptr("buf", 3, o), st.sampled_from([0, 1, PAGE - 16]))))
    return Call(cmd, {}, size=size, where=where, raw=raw)


@st.composite
def id_calls(draw):
    cmd = draw(st.sampled_from([u.BPF_MAP_GET_NEXT_ID, u.BPF_MAP_GET_FD_BY_ID, u.BPF_PROG_GET_NEXT_ID]))
    if cmd == u.BPF_MAP_GET_FD_BY_ID:
        return Call(cmd, {"map_id": draw(st.integers(0, 10)), "open_flags": draw(st.sampled_from([0, 1, 8, 16]))})
    return Call(cmd, {"start_id": draw(st.sampled_from([0, 1, 2, 2**32 - 1]))})


def fd_ops(max_fd=12, huge=True):
    """Non-bpf fd operations: ('close', fd) or ('dup', fd); huge fds (past int) only if huge."""
    # never the host child's own RPC socket (bpfemu.host.RPC_FD): dup/close of it is the harness, not the kernel
    small = st.integers(-1, 1100).filter(lambda fd: fd != RPC_FD)
    return st.tuples(st.sampled_from(["close", "dup"]), fds(max_fd) if huge else small)


def setup_calls():
    """Maps every sequence starts with (fds 3..): a ZERO_SEED hash, an array, a percpu hash, a queue."""
    base = {"key_size": 4, "value_size": 8, "max_entries": 8}
    return [Call(u.BPF_MAP_CREATE, dict(base, map_type=u.BPF_MAP_TYPE_HASH, map_flags=u.BPF_F_ZERO_SEED)),
            Call(u.BPF_MAP_CREATE, dict(base, map_type=u.BPF_MAP_TYPE_ARRAY)),
            Call(u.BPF_MAP_CREATE, dict(base, map_type=u.BPF_MAP_TYPE_PERCPU_HASH,
                                        map_flags=u.BPF_F_ZERO_SEED | u.BPF_F_NO_PREALLOC)),
            Call(u.BPF_MAP_CREATE, dict(base, map_type=u.BPF_MAP_TYPE_QUEUE, key_size=0))]


def examples(default):
    """Hypothesis example count: BPFEMU_FUZZ_EXAMPLES scales the fuzzers up for long runs."""
    return int(os.environ.get("BPFEMU_FUZZ_EXAMPLES", default))
