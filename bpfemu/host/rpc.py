"""The child side of a HostTask: a process that performs bpf() and fd work for its parent.

A child has its own copy of the parent's memory, so the pointers inside ``attr``
cannot be used as they are. For each call the child reads the command's
declaration in :mod:`bpfemu.syscall.table` (which attr fields are user
pointers, how long each buffer is, which way it is copied, and which buffers
hold pointers in turn), asks the parent for those bytes, builds private copies
that end at an unmapped guard page where the parent's memory ends, runs the
syscall on them and sends back what the kernel wrote, which the parent writes
into its memory at the original addresses. A pointer the parent cannot read
becomes a pointer to a guard page, so EFAULT stays EFAULT.

The conversation is length-prefixed pickles over a unix socket kept at fd
:data:`RPC_FD`; fds travel with SCM_RIGHTS.
"""
import ctypes
import errno
import os
import pickle
import re
import socket
import struct
import zlib

from .. import uapi
from ..caps import cap_set
from ..syscall.table import COMMANDS, IN, ByKind, PtrArray
from .libc import Guarded, capset, libc, mount, raw_bpf, renameat2, resident_runs, statfs, umount
from .sysinfo import host_possible_cpus

RPC_FD = 1000  # where a child keeps its end of the conversation, away from the low fds
COMPRESS_MIN = 1 << 16  # regions of the parent's memory at least this long travel compressed
DIFF_CHUNK = 1 << 16  # diff compares long buffers a chunk at a time, and looks closer only where they differ
# The most a child copies for one pointer. A batch with a huge count and buffers larger than this would
# fault in the child where it would not in the parent; no test needs buffers that large.
MAX_REGION = 64 << 20
ANON_KINDS = {"anon_inode:bpf-map": "map", "anon_inode:bpf-prog": "prog", "anon_inode:bpf_link": "link",
              "anon_inode:btf": "btf"}


# -- messages -----------------------------------------------------------------------------------------

def send(sock, obj, fds=()):
    data = pickle.dumps(obj)
    hdr = struct.pack("<I", len(data))
    if fds:
        socket.send_fds(sock, [hdr + data], list(fds))
    else:
        sock.sendall(hdr + data)


def _recv_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError("child went away")
        out += chunk
    return bytes(out)


def recv(sock, want_fds=0):
    fds = []
    if want_fds:
        msg, fds, _flags, _addr = socket.recv_fds(sock, 4, want_fds)
        while len(msg) < 4:
            msg += _recv_exact(sock, 4 - len(msg))
        (n,) = struct.unpack("<I", msg[:4])
        data = msg[4:]
        data += _recv_exact(sock, n - len(data))
    else:
        (n,) = struct.unpack("<I", _recv_exact(sock, 4))
        data = _recv_exact(sock, n)
    obj = pickle.loads(data)
    return (obj, fds) if want_fds else obj


# -- what a command's pointers need, evaluated in the child ----------------------------------------------

def map_sizes(fd):
    """(key_size, user value size) of the map behind fd in this process, or None."""
    info = uapi.bpf_map_info()
    a = uapi.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(info),
                          "info.info": ctypes.addressof(info)})
    try:
        raw_bpf(uapi.BPF_OBJ_GET_INFO_BY_FD, ctypes.addressof(a), ctypes.sizeof(a))
    except OSError:
        return None
    vs = info.value_size
    if info.type in uapi.PERCPU_MAP_TYPES:
        vs = (vs + 7) // 8 * 8 * (host_possible_cpus() or 1)
    elif info.type in uapi.FD_MAP_TYPES:
        vs = 4
    return info.key_size, vs


def fd_kind(fd):
    """'map', 'prog', 'link' or 'btf' for a bpf fd of this process, else None."""
    try:
        return ANON_KINDS.get(os.readlink("/proc/self/fd/%d" % fd))
    except (OSError, ValueError, OverflowError):
        return None


class Env:
    """What the table's length rules read: fields of ``buf`` laid out as ``ctype``, and the fds here."""

    def __init__(self, buf, ctype=uapi.bpf_attr):
        self.buf, self.ctype = buf, ctype
        self._sizes = {}

    def field(self, name):
        off, size = uapi.field_layout(self.ctype, name)
        return int.from_bytes(bytes(self.buf[off:off + size]).ljust(size, b"\0"), "little")

    def map_sizes(self, fd):
        if fd not in self._sizes:
            self._sizes[fd] = map_sizes(fd)
        return self._sizes[fd]

    kind = staticmethod(fd_kind)


class Region:
    """A buffer of the parent's the call needs: where its pointer sits (``holder`` + ``off``), where it points
    (``ptr``, ``n`` bytes), the declaration (``spec``), and once fetched, the child's copy."""

    def __init__(self, holder, off, ptr, n, direction, points_to, env):
        self.holder, self.off, self.ptr, self.n = holder, off, ptr, min(n, MAX_REGION)
        self.direction, self.points_to, self.env = direction, points_to, env
        self.data = self.guard = self.addr = self.length = None


def _regions(ptrs, holder, buf, env, limit):
    """The Regions of the declared pointers ``ptrs`` found in ``buf`` (the first ``limit`` bytes are real)."""
    out = []
    for p in ptrs:
        if p.when is not None and not p.when(env):
            continue
        off, _ = uapi.field_layout(env.ctype, p.field)
        if off + 8 > limit:
            continue
        ptr = int.from_bytes(bytes(buf[off:off + 8]), "little")
        n = p.length.eval(env)
        if ptr and n:
            out.append(Region(holder, off, ptr, n, p.direction, p.points_to, env))
    return out


def _inner_regions(r):
    """The Regions a fetched buffer points to in turn (bpf_map_info.hash, an array of string pointers...)."""
    spec = r.points_to
    if isinstance(spec, ByKind):
        spec = spec.choose(r.env)
    if spec is None or r.data is None:
        return []
    if isinstance(spec, PtrArray):
        count = min(spec.count.eval(r.env) or 0, len(r.data) // 8)
        n = spec.each.eval(r.env)
        return [Region(r, 8 * i, p, n, spec.direction, None, r.env)
                for i, p in enumerate(struct.unpack_from("<%dQ" % count, r.data)) if p and n]
    return _regions(spec.ptrs, r, r.data, Env(r.data, spec.ctype), len(r.data))


def pack_region(data):
    """What the parent sends for one region of its memory: the bytes; when there are many (a verifier log
    buffer of 16 MiB), ("0", length) for all zeros or ("z", compressed): through a VM's serial port every
    byte costs."""
    if len(data) < COMPRESS_MIN:
        return data
    if not data.lstrip(b"\0"):
        return ("0", len(data))
    return ("z", zlib.compress(data, 1))


def unpack_region(item):
    """(bytes, length): bytes None for a region of ``length`` zeros."""
    if not isinstance(item, tuple):
        return item, len(item)
    if item[0] == "0":
        return None, item[1]
    data = zlib.decompress(item[1])
    return data, len(data)


def _overlapping(regions):
    """Groups (lists) of the regions whose parent ranges overlap, transitively; the others alone."""
    groups = []
    for r in sorted(regions, key=lambda r: r.ptr):
        if groups and r.ptr < max(g.ptr + g.n for g in groups[-1]):
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def _fetch(sock, regions):
    """Ask the parent for its memory, place each copy in guarded memory and point the holder at it.

    Buffers that overlap in the parent (a batch's keys and values in one array, say) share one copy, so that
    the kernel's writes through one show through the other as in the parent; a buffer the parent could
    not read to its end gets a copy of its own that ends at a guard page."""
    send(sock, ("need", [(r.ptr, r.n) for r in regions]))
    for r, (data, length) in zip(regions, map(unpack_region, recv(sock))):
        r.length = length
        r.data = None if data is None else bytearray(data)  # (None: all zeros, nothing to point to)
    whole = [r for r in regions if r.length == r.n]
    for group in _overlapping(whole):
        lo, hi = min(r.ptr for r in group), max(r.ptr + r.n for r in group)
        guard = Guarded.get(hi - lo)  # zeroed
        for r in group:
            r.addr = guard.base + (r.ptr - lo)
            if r.data is not None:
                ctypes.memmove(r.addr, bytes(r.data), r.n)
        group[0].guard = guard  # freed once
    for r in regions:
        if r.length < r.n:  # short: ends at the guard
            r.guard = Guarded.get(r.n)
            r.addr = r.guard.guard - r.length
            if r.data is not None:
                ctypes.memmove(r.addr, bytes(r.data), r.length)
    for r in regions:
        packed = struct.pack("<Q", r.addr)
        holder = r.holder
        ctypes.memmove(holder.addr + r.off, packed, 8)
        if holder.data is not None:
            holder.data[r.off:r.off + 8] = packed  # the holder's "before" bytes hold the child's pointer


class _Attr:
    """The attr itself, as the holder of the top-level pointers."""

    def __init__(self, addr):
        self.addr, self.data = addr, None


def child_bpf(sock, cmd, attr_bytes, size, attr_fault):
    """Run one bpf() for the parent, asking it for the memory the command uses."""
    region = Guarded.get(len(attr_bytes))
    fetched = []
    try:
        # the attr sits right before the guard when the parent could not read all of it
        attr_addr = (region.guard - len(attr_bytes)) if attr_fault else region.base
        ctypes.memmove(attr_addr, attr_bytes, len(attr_bytes))
        head = bytearray(ctypes.string_at(attr_addr, min(len(attr_bytes), uapi.ATTR_SIZE)))
        head += bytes(uapi.ATTR_SIZE - len(head))
        entry = COMMANDS.get(cmd)
        todo = _regions(entry.user_ptrs, _Attr(attr_addr), head, Env(head), len(attr_bytes)) if entry else []
        while todo:  # a round per level of pointers
            _fetch(sock, todo)
            fetched += todo
            todo = [inner for r in todo for inner in _inner_regions(r)]
        before_attr = ctypes.string_at(attr_addr, len(attr_bytes))
        try:
            res = ("ok", raw_bpf(cmd, attr_addr, size))
        except OSError as e:
            res = ("err", e.errno)
        changes = [("attr", diff(before_attr, ctypes.string_at(attr_addr, len(attr_bytes))))]
        for r in fetched:
            if r.direction != IN:
                changes.append((r.ptr, _written(r)))
        return res + (changes,)
    finally:
        for r in fetched:
            if r.guard is not None:
                r.guard.free()
        region.free()


def _written(r):
    """What the call wrote into region r: diff() against the parent's bytes; for a region of zeros in fresh
    memory only the pages the kernel touched are read (a 16 MiB log buffer it wrote a line into)."""
    if r.data is not None:
        return diff(r.data, ctypes.string_at(r.addr, r.length))
    alone = r.guard is not None and r.addr == r.guard.base  # (not one of overlapping buffers sharing a copy)
    runs = resident_runs(r.guard.base, r.guard.usable) if alone else None
    if runs is None:
        return diff_zeros(ctypes.string_at(r.addr, r.length))
    out = []
    for off, n in runs:
        n = min(n, r.length - off)
        if n > 0:
            out += [(off + o, chunk) for o, chunk in diff_zeros(ctypes.string_at(r.addr + off, n))]
    return out


def diff(before, after):
    """[(offset, bytes)] of the runs where ``after`` differs from ``before`` (as long as ``after``).

    One XOR of the two as integers and a regex over the nonzero runs: C speed, where a byte loop cost most of
    a lookup's time in a host child (145 -> 76 us) and more in a VM guest."""
    if before == after:
        return []
    n = len(after)
    if n > DIFF_CHUNK:  # a long buffer the kernel wrote a little of (a log): only the chunks that changed
        out = []
        for i in range(0, n, DIFF_CHUNK):
            for off, chunk in diff(before[i:i + DIFF_CHUNK], after[i:i + DIFF_CHUNK]):
                if out and out[-1][0] + len(out[-1][1]) == i + off:  # a run across the chunk border
                    out[-1] = (out[-1][0], out[-1][1] + chunk)
                else:
                    out.append((i + off, chunk))
        return out
    x = (int.from_bytes(bytes(before[:n]), "little") ^ int.from_bytes(after, "little")).to_bytes(n, "little")
    return [(m.start(), bytes(after[m.start():m.end()])) for m in _NONZERO_RUN.finditer(x)]


def diff_zeros(after):
    """diff() of a buffer that was all zeros: the runs of nonzero bytes, looked for a chunk at a time."""
    out = []
    for i in range(0, len(after), DIFF_CHUNK):
        chunk = after[i:i + DIFF_CHUNK]
        if chunk.count(0) == len(chunk):
            continue
        for m in _NONZERO_RUN.finditer(chunk):
            if out and out[-1][0] + len(out[-1][1]) == i + m.start():
                out[-1] = (out[-1][0], out[-1][1] + m.group())
            else:
                out.append((i + m.start(), m.group()))
    return out


_NONZERO_RUN = re.compile(rb"[^\x00]+")


# -- the child process ------------------------------------------------------------------------------------

def open_fds(skip=RPC_FD):
    out = []
    for x in os.listdir("/proc/self/fd"):
        fd = int(x)
        if fd == skip:
            continue
        try:
            os.fstat(fd)  # the directory fd of the listing itself is closed by now
        except OSError:
            continue
        out.append(fd)
    return sorted(out)


def drop(uid, caps):
    """setuid the way a daemon does after fork; caps keeps a chosen set."""
    lib = libc()
    if uid is not None and uid != os.getuid():
        if caps:
            lib.prctl(8, 1, 0, 0, 0)  # PR_SET_KEEPCAPS
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if caps is not None:
        bits = 0
        for c in cap_set(caps):
            bits |= 1 << c
        capset(bits)


_CALLS = {"statfs": statfs, "mount": mount, "umount": umount, "renameat2": renameat2}  # the rest of "call" is os.<name>


def serve(sock):
    """The child's loop: perform requests until told to exit."""
    while True:
        try:
            req = recv(sock)
        except EOFError:
            os._exit(0)
        op = req[0]
        try:
            if op in ("close", "dup", "fdinfo") and req[1] == RPC_FD:
                raise OSError(errno.EBADF if op != "fdinfo" else errno.ENOENT, "the RPC socket is not the task's")
            if op == "bpf":
                result = child_bpf(sock, *req[1:])
            elif op == "close":
                os.close(req[1])
                result = ("ok", None)
            elif op == "dup":  # dup(2) clears close-on-exec, which os.dup sets; F_DUPFD_CLOEXEC keeps it
                r = os.dup(req[1])
                if not (len(req) > 2 and req[2]):
                    os.set_inheritable(r, True)
                result = ("ok", r)
            elif op == "fds":
                result = ("ok", open_fds())
            elif op == "recv_fds":
                send(sock, ("ready", None))
                _msg, fds = recv(sock, want_fds=req[1])
                result = ("ok", fds)
            elif op == "send_fds":
                send(sock, ("fds", None), fds=req[1])
                continue
            elif op == "fork":
                result = ("ok", child_fork(sock, req[1], req[2]))
                continue
            elif op == "exit":
                send(sock, ("ok", None))
                os._exit(0)
            elif op == "call":
                fn = _CALLS.get(req[1]) or getattr(os, req[1])
                result = ("ok", fn(*req[2]))
                if req[1] in ("stat", "lstat"):
                    result = ("ok", tuple(result[1]))
            elif op == "fdinfo":
                with open("/proc/self/fdinfo/%d" % req[1]) as f:
                    result = ("ok", f.read())
            else:
                result = ("err", errno.EINVAL)
        except OSError as e:
            result = ("err", e.errno)
        except (OverflowError, ValueError, TypeError):
            # an fd or mode no C int can hold (the parent converts them first: this is a last resort,
            # so that no request can end the child)
            result = ("err", errno.EBADF if op in ("close", "dup") else errno.EINVAL)
        send(sock, result)


def child_fork(sock, uid, caps):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        a.close()
        sock.detach()  # RPC_FD is about to become the new conversation
        os.dup2(b.fileno(), RPC_FD)
        b.close()
        new = socket.socket(fileno=RPC_FD)
        start_serving(new, uid, caps)
    b.close()
    send(sock, ("ok", pid), fds=[a.fileno()])
    a.close()
    return pid


def start_serving(sock, uid, caps):
    try:
        drop(uid, caps)
    except OSError as e:
        send(sock, ("err", e.errno))
        os._exit(1)
    except (OverflowError, ValueError, TypeError, KeyError):
        send(sock, ("err", errno.EINVAL))
        os._exit(1)
    send(sock, ("ok", os.getpid()))
    serve(sock)
    os._exit(0)
