"""bpfemu.Host: the task surface of bpfemu over the real bpf(2) syscall.

``Host()`` is the calling process itself: ``bpf()`` is the raw syscall, fds
are real fds. ``Host().spawn()`` and ``.fork()`` give a :class:`HostTask`, a
real child process that performs each call for us (optionally after dropping
uid and capabilities), so fork, fd passing and privilege tests run on the
real kernel with the same code as on the emulator.

A child has its own copy of our memory, so the pointers inside ``attr`` cannot
be handed to it as they are. The child asks for the memory a command will
read (the lengths follow from the command and, for maps, from the map's
sizes), builds private copies with an unmapped guard page where our memory
ends, runs the syscall on them and sends back what the kernel wrote, which is
then written into our memory at the original addresses. Pointers we cannot
read become pointers to the guard page there, so EFAULT stays EFAULT.
"""
import ctypes
import errno
import os
import pickle
import re
import platform  # imported here: a child that dropped to another uid may not be able to read the stdlib
import signal
import socket
import struct
import sys
import tempfile

from . import uapi
from .errors import ENOTSUPP, strerror  # noqa: F401
from .usermem import NULL_PAGE, _iovec, address_of

SYS_bpf = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
PAGE = 4096
RPC_FD = 1000  # where a child keeps its end of the conversation, away from the low fds
# The most a child copies for one pointer. A batch with a huge count and buffers larger than this would
# fault in the child where it would not in this process; no test needs buffers that large.
MAX_REGION = 64 << 20

_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        _libc.mmap.restype = ctypes.c_void_p
        _libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                               ctypes.c_long]
        _libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _libc.process_vm_readv.restype = ctypes.c_ssize_t
    return _libc


def available():
    """(True, '') when the real bpf() syscall is usable here, else (False, reason)."""
    if not sys.platform.startswith("linux"):
        return False, "not Linux"
    import platform
    if platform.machine() not in SYS_bpf:
        return False, "unknown bpf syscall number for %s" % platform.machine()
    try:
        h = Host()
        a = uapi.make_attr(map_type=uapi.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=4, max_entries=1)
        fd = h.bpf(uapi.BPF_MAP_CREATE, a)
        os.close(fd)
    except OSError as e:
        return False, "bpf(BPF_MAP_CREATE) failed: %s" % e
    return True, ""


def raw_bpf(cmd, addr, size):
    import platform
    r = libc().syscall(ctypes.c_long(SYS_bpf[platform.machine()]), ctypes.c_int(cmd), ctypes.c_void_p(addr),
                       ctypes.c_uint(size))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, strerror(e))
    return r


def read_partial(addr, n):
    """Up to n bytes of our memory at addr, stopping where it stops being readable."""
    if n <= 0 or addr < NULL_PAGE:
        return b""
    buf = ctypes.create_string_buffer(n)
    lib = libc()
    got = lib.process_vm_readv(os.getpid(), ctypes.byref(_iovec(ctypes.addressof(buf), n)), 1,
                               ctypes.byref(_iovec(addr, n)), 1, 0)
    if got <= 0:
        return b""
    return buf.raw[:got]


def write_back(addr, before, after):
    """Write the bytes of ``after`` that differ from ``before`` at addr (ctypes.memmove)."""
    i, n = 0, len(after)
    while i < n:
        if before[i] == after[i]:
            i += 1
            continue
        j = i
        while j < n and before[j] != after[j]:
            j += 1
        ctypes.memmove(addr + i, after[i:j], j - i)
        i = j


class _Surface:
    """What Host and HostTask share."""

    bpffs = None

    def stat(self, path):
        return os.stat(path)


class Host(_Surface):
    """The calling process over the real syscall."""

    def __init__(self, bpffs=None):
        self._opened = set()
        self.bpffs = bpffs
        self._mounted = None

    # -- the syscall ------------------------------------------------------------
    def bpf(self, cmd, attr, size=None):
        addr, n = address_of(attr)
        if size is None:
            if n is None:
                raise TypeError("size is required when attr is an address")
            size = n
        r = raw_bpf(cmd, addr, size)
        if cmd in FD_RETURNING:
            self._opened.add(r)
        return r

    # -- processes and fds -------------------------------------------------------
    def close(self, fd):
        os.close(fd)
        self._opened.discard(fd)

    def dup(self, fd):
        r = os.dup(fd)
        self._opened.add(r)
        return r

    def exit(self):
        """Close every fd this Host opened (the process itself lives on)."""
        for fd in sorted(self._opened):
            try:
                os.close(fd)
            except OSError:
                pass
        self._opened.clear()

    def fork(self, uid=None, caps=None):
        return HostTask._start(uid=uid, caps=caps, clean=False, bpffs=self.bpffs)

    def spawn(self, uid=None, caps=None):
        """A fresh child process: fds 0-2 only, like Kernel.spawn()."""
        return HostTask._start(uid=uid, caps=caps, clean=True, bpffs=self.bpffs)

    def send_fds(self, other, fds):
        return other._recv_fds(fds)

    def fds(self):
        return _open_fds(skip=None)

    # -- filesystem ----------------------------------------------------------------
    def mkdir(self, path, mode=0o777):
        os.mkdir(path, mode)

    def rmdir(self, path):
        os.rmdir(path)

    def unlink(self, path):
        os.unlink(path)

    def rename(self, old, new):
        os.rename(old, new)

    def listdir(self, path):
        return sorted(os.listdir(path))

    def open_dir(self, path):
        """An fd of the directory at path (O_RDONLY|O_DIRECTORY), e.g. for BPF_F_PATH_FD."""
        r = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        self._opened.add(r)
        return r

    def statfs(self, path):
        return _statfs(path)

    def fdinfo(self, fd):
        with open("/proc/self/fdinfo/%d" % fd) as f:
            return f.read()

    def mmap(self, fd, length, offset=0, writable=True):
        """mmap(MAP_SHARED) of a map fd: an arraymap.Mapping over the real mapping."""
        return _mmap_fd(fd, length, offset, writable)

    def mount_bpffs(self, path=None):
        """Mount a private bpffs (a temp dir by default) and make it self.bpffs."""
        if path is None:
            path = tempfile.mkdtemp(prefix="bpfemu-bpffs-")
        _mount("bpf", path, "bpf")
        self._mounted = path
        self.bpffs = path
        return path

    def unmount_bpffs(self):
        if self._mounted:
            _umount(self._mounted)
            try:
                os.rmdir(self._mounted)
            except OSError:
                pass
            self._mounted = None


FD_RETURNING = {uapi.BPF_MAP_CREATE, uapi.BPF_OBJ_GET, uapi.BPF_MAP_GET_FD_BY_ID, uapi.BPF_PROG_GET_FD_BY_ID,
                uapi.BPF_LINK_GET_FD_BY_ID, uapi.BPF_BTF_GET_FD_BY_ID, uapi.BPF_PROG_LOAD, uapi.BPF_BTF_LOAD,
                uapi.BPF_LINK_CREATE}


def _mount(src, target, fstype):
    lib = libc()
    lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    if lib.mount(src.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, strerror(e), target)


def _mmap_fd(fd, length, offset, writable):
    from .arraymap import Mapping
    lib = libc()
    lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    prot = 3 if writable else 1  # PROT_READ|PROT_WRITE or PROT_READ
    p = lib.mmap(None, length, prot, 1, fd, offset)  # MAP_SHARED
    if p in (None, ctypes.c_void_p(-1).value):
        e = ctypes.get_errno()
        raise OSError(e, strerror(e))
    view = memoryview((ctypes.c_char * length).from_address(p)).cast("B")
    return Mapping(view, writable, lambda: lib.munmap(p, length))


def _umount(target):
    lib = libc()
    lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    if lib.umount2(target.encode(), 2) != 0:  # MNT_DETACH
        e = ctypes.get_errno()
        raise OSError(e, strerror(e), target)


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_long * 15)]


def _statfs(path):
    from .inode import StatfsResult
    buf = _Statfs()
    lib = libc()
    if lib.statfs(path.encode(), ctypes.byref(buf)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, strerror(e), path)
    return StatfsResult(buf.f_type & 0xFFFFFFFF)


# -- the child side -----------------------------------------------------------------

def _send(sock, obj, fds=()):
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


def _recv(sock, want_fds=0):
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


class _Capset:
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]


def _set_caps(caps):
    from .kernel import _caps
    bits = 0
    for c in _caps(caps):
        bits |= 1 << c
    hdr = _Capset.Header(0x20080522, 0)
    data = (_Capset.Data * 2)()
    for i in range(2):
        word = (bits >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = word
    if libc().syscall(126, ctypes.byref(hdr), ctypes.byref(data)) != 0:  # capset
        e = ctypes.get_errno()
        raise OSError(e, strerror(e))


def _drop(uid, caps):
    """setuid the way a daemon does after fork; caps keeps a chosen set."""
    lib = libc()
    if uid is not None and uid != os.getuid():
        if caps:
            lib.prctl(8, 1, 0, 0, 0)  # PR_SET_KEEPCAPS
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if caps is not None:
        _set_caps(caps)


def _map_sizes(fd):
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
        from .kernel import host_possible_cpus
        vs = (vs + 7) // 8 * 8 * (host_possible_cpus() or 1)
    elif info.type in uapi.FD_MAP_TYPES:
        vs = 4
    return info.key_size, vs


def pointer_regions(cmd, attr):
    """[(attr field, length)] the kernel may read or write for cmd, with lengths known here."""
    C = uapi
    if cmd == C.BPF_MAP_CREATE:
        return [("excl_prog_hash", 32)]
    if cmd in (C.BPF_MAP_LOOKUP_ELEM, C.BPF_MAP_UPDATE_ELEM, C.BPF_MAP_DELETE_ELEM, C.BPF_MAP_GET_NEXT_KEY,
               C.BPF_MAP_LOOKUP_AND_DELETE_ELEM):
        sizes = _map_sizes(attr.map_fd)
        if sizes is None:
            return []
        ks, vs = sizes
        return [("key", ks), ("value", ks if cmd == C.BPF_MAP_GET_NEXT_KEY else vs)]
    if cmd in (C.BPF_MAP_LOOKUP_BATCH, C.BPF_MAP_LOOKUP_AND_DELETE_BATCH, C.BPF_MAP_UPDATE_BATCH,
               C.BPF_MAP_DELETE_BATCH):
        sizes = _map_sizes(attr.batch.map_fd)
        if sizes is None:
            return []
        ks, vs = sizes
        n = attr.batch.count
        return [("batch.in_batch", max(ks, 4)), ("batch.out_batch", max(ks, 4)),
                ("batch.keys", min(ks * n, MAX_REGION)), ("batch.values", min(vs * n, MAX_REGION))]
    if cmd in (C.BPF_OBJ_PIN, C.BPF_OBJ_GET):
        return [("pathname", PAGE)]
    if cmd == C.BPF_OBJ_GET_INFO_BY_FD:
        return [("info.info", min(attr.info.info_len, PAGE))]
    return []


class _Guarded:
    """Anonymous memory with an unmapped (PROT_NONE) page right after ``n`` usable bytes.

    ``_Guarded.get(n)`` reuses a freed region of the same size, zeroed (as fresh memory is): a call
    needs up to three, and mmap + mprotect + munmap of each cost most of a call in a VM guest."""

    _pool = {}  # usable size -> [free regions]
    POOLED = 4  # regions kept per size, for sizes up to POOL_MAX
    POOL_MAX = 16 * PAGE

    def __init__(self, n):
        lib = libc()
        self.usable = (n + PAGE - 1) // PAGE * PAGE
        self.base = lib.mmap(None, self.usable + PAGE, 3, 0x22, -1, 0)  # RW, PRIVATE|ANONYMOUS
        if self.base in (None, ctypes.c_void_p(-1).value):
            raise MemoryError("mmap failed")
        lib.mprotect(self.base + self.usable, PAGE, 0)
        self.guard = self.base + self.usable
        self.size = self.usable + PAGE

    @classmethod
    def get(cls, n):
        free = cls._pool.get((n + PAGE - 1) // PAGE * PAGE)
        if free:
            g = free.pop()
            ctypes.memset(g.base, 0, g.usable)
            return g
        return cls(n)

    def free(self):
        free = self._pool.setdefault(self.usable, [])
        if self.usable <= self.POOL_MAX and len(free) < self.POOLED:
            free.append(self)
            return
        libc().munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc().munmap(self.base, self.size)


def _serve(sock):
    """The child's loop: perform requests until told to exit."""
    while True:
        try:
            req = _recv(sock)
        except EOFError:
            os._exit(0)
        op = req[0]
        try:
            if op == "bpf":
                result = _child_bpf(sock, *req[1:])
            elif op == "close":
                os.close(req[1])
                result = ("ok", None)
            elif op == "dup":
                result = ("ok", os.dup(req[1]))
            elif op == "fds":
                result = ("ok", _open_fds())
            elif op == "recv_fds":
                _send(sock, ("ready", None))
                _msg, fds = _recv(sock, want_fds=req[1])
                result = ("ok", fds)
            elif op == "send_fds":
                _send(sock, ("fds", None), fds=req[1])
                continue
            elif op == "fork":
                result = ("ok", _child_fork(sock, req[1], req[2]))
                continue
            elif op == "exit":
                _send(sock, ("ok", None))
                os._exit(0)
            elif op == "call":
                fn = getattr(os, req[1]) if req[1] != "statfs" else _statfs
                result = ("ok", fn(*req[2]))
                if req[1] == "stat":
                    result = ("ok", tuple(result[1]))
            elif op == "fdinfo":
                with open("/proc/self/fdinfo/%d" % req[1]) as f:
                    result = ("ok", f.read())
            else:
                result = ("err", errno.EINVAL)
        except OSError as e:
            result = ("err", e.errno)
        except (OverflowError, ValueError):
            # an fd or mode no C int can hold: the syscall would see garbage and refuse it
            result = ("err", errno.EBADF if op in ("close", "dup", "fdinfo") else errno.EINVAL)
        _send(sock, result)


def _child_bpf(sock, cmd, attr_bytes, size, attr_fault):
    """Run one bpf() for the parent, asking it for the memory the command uses."""
    region = _Guarded.get(max(len(attr_bytes), 1))
    try:
        # the attr sits right before the guard when the parent could not read all of it
        attr_addr = (region.guard - len(attr_bytes)) if attr_fault else region.base
        ctypes.memmove(attr_addr, attr_bytes, len(attr_bytes))
        head = bytearray(ctypes.string_at(attr_addr, min(len(attr_bytes), uapi.ATTR_SIZE)))
        head += bytes(uapi.ATTR_SIZE - len(head))
        attr = uapi.bpf_attr.from_buffer(head)
        wanted = []
        for field, n in pointer_regions(cmd, attr):
            off, _ = uapi.attr_field(field)
            ptr = int.from_bytes(head[off:off + 8], "little")
            if ptr and n > 0 and off + 8 <= len(attr_bytes):
                wanted.append((field, off, ptr, n))
        buffers = []
        got = _fetch(sock, [(ptr, n) for _f, _o, ptr, n in wanted]) if wanted else []  # no round trip for none
        for (field, off, ptr, n), data in zip(wanted, got):
            g, addr = _place(data, n)
            ctypes.memmove(attr_addr + off, struct.pack("<Q", addr), 8)
            buffers.append((g, addr, ptr, data))
        # pointers inside the memory we just copied (the content hash of bpf_map_info)
        for i, (field, off, ptr, n) in enumerate(wanted):
            g, addr, _ptr, data = buffers[i]
            for inner_off, inner_n in nested_regions(cmd, attr, field, data):
                inner_ptr = int.from_bytes(data[inner_off:inner_off + 8], "little")
                if not inner_ptr:
                    continue
                [inner] = _fetch(sock, [(inner_ptr, inner_n)])
                g2, addr2 = _place(inner, inner_n)
                ctypes.memmove(addr + inner_off, struct.pack("<Q", addr2), 8)
                data = data[:inner_off] + struct.pack("<Q", addr2) + data[inner_off + 8:]
                buffers[i] = (g, addr, ptr, data)
                buffers.append((g2, addr2, inner_ptr, inner))
        before_attr = ctypes.string_at(attr_addr, len(attr_bytes))
        try:
            rv = raw_bpf(cmd, attr_addr, size)
            res = ("ok", rv)
        except OSError as e:
            res = ("err", e.errno)
        after_attr = bytearray(ctypes.string_at(attr_addr, len(attr_bytes)))
        changes = [("attr", _diff(before_attr, after_attr))]
        for g, addr, ptr, data in buffers:
            after = ctypes.string_at(addr, len(data))
            changes.append((ptr, _diff(data, after)))
        for g, *_ in buffers:
            g.free()
        return res + (changes,)
    finally:
        region.free()


def _fetch(sock, regions):
    """Ask the parent for its memory: [(addr, n)] -> [bytes, possibly short where it is unreadable]."""
    _send(sock, ("need", regions))
    return _recv(sock)


def _place(data, n):
    """A private copy of data in guarded memory; a short copy ends right at the guard page."""
    g = _Guarded.get(max(n, 1))
    addr = g.guard - len(data) if len(data) < n else g.base
    ctypes.memmove(addr, data, len(data))
    return g, addr


def nested_regions(cmd, attr, field, data):
    """[(offset in data, length)] of pointers inside a buffer the kernel follows too."""
    if cmd == uapi.BPF_OBJ_GET_INFO_BY_FD and field == "info.info" and _map_sizes(attr.info.bpf_fd):
        off = uapi.bpf_map_info.hash.offset
        if len(data) >= off + 8:
            return [(off, 32)]
    return []


def _diff(before, after):
    """[(offset, bytes)]: the runs of bytes where after differs from before (same length)."""
    if before == after:
        return []
    n = len(after)
    x = (int.from_bytes(before[:n], "little") ^ int.from_bytes(after, "little")).to_bytes(n, "little")
    return [(m.start(), bytes(after[m.start():m.end()])) for m in _NONZERO_RUN.finditer(x)]


_NONZERO_RUN = re.compile(rb"[^\x00]+")


def _open_fds(skip=RPC_FD):
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


def _child_fork(sock, uid, caps):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        a.close()
        sock.detach()  # RPC_FD is about to become the new conversation
        os.dup2(b.fileno(), RPC_FD)
        b.close()
        new = socket.socket(fileno=RPC_FD)
        _start_serving(new, uid, caps)
    b.close()
    _send(sock, ("ok", pid), fds=[a.fileno()])
    a.close()
    return pid


def _start_serving(sock, uid, caps):
    try:
        _drop(uid, caps)
    except OSError as e:
        _send(sock, ("err", e.errno))
        os._exit(1)
    _send(sock, ("ok", os.getpid()))
    _serve(sock)
    os._exit(0)


class HostTask(_Surface):
    """A real child process doing bpf() and fd work on our behalf."""

    def __init__(self, sock, pid, bpffs, direct_child):
        self.sock = sock
        self.pid = pid
        self.bpffs = bpffs
        self.alive = True
        self._direct = direct_child

    @classmethod
    def _start(cls, uid, caps, clean, bpffs):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_IGN)
                a.close()
                os.dup2(b.fileno(), RPC_FD)
                if b.fileno() != RPC_FD:
                    b.close()
                if clean:
                    os.closerange(3, RPC_FD)
                    os.closerange(RPC_FD + 1, 65536)
                sock = socket.socket(fileno=RPC_FD)
                _start_serving(sock, uid, caps)
            finally:
                os._exit(1)
        b.close()
        t = cls(a, pid, bpffs, True)
        status, val = _recv(a)
        if status != "ok":
            t._reap()
            raise OSError(val, strerror(val))
        return t

    def _call(self, *req):
        if not self.alive:
            raise OSError(errno.ESRCH, strerror(errno.ESRCH))
        _send(self.sock, req)
        status, val = _recv(self.sock)
        if status == "err":
            raise OSError(val, strerror(val))
        return val

    def bpf(self, cmd, attr, size=None):
        addr, n = address_of(attr)
        if size is None:
            if n is None:
                raise TypeError("size is required when attr is an address")
            size = n
        size &= 0xFFFFFFFF
        want = min(size, PAGE + 1)
        data = read_partial(addr, want)
        if not self.alive:
            raise OSError(errno.ESRCH, strerror(errno.ESRCH))
        _send(self.sock, ("bpf", cmd, data, size, len(data) < want))
        msg = _recv(self.sock)
        while msg[0] == "need":  # the child asks for our memory, possibly in rounds (nested pointers)
            _send(self.sock, [read_partial(ptr, n) for ptr, n in msg[1]])
            msg = _recv(self.sock)
        status, val, changes = msg
        for where, diffs in changes:
            base = addr if where == "attr" else where
            for off, chunk in diffs:
                ctypes.memmove(base + off, chunk, len(chunk))
        if status == "err":
            raise OSError(val, strerror(val))
        return val

    def close(self, fd):
        self._call("close", fd)

    def dup(self, fd):
        return self._call("dup", fd)

    def fds(self):
        return self._call("fds")

    def fork(self, uid=None, caps=None):
        _send(self.sock, ("fork", uid, caps))
        (status, pid), fds = _recv(self.sock, want_fds=1)
        sock = socket.socket(fileno=fds[0])
        status, val = _recv(sock)
        if status != "ok":
            raise OSError(val, strerror(val))
        return HostTask(sock, val, self.bpffs, False)

    def send_fds(self, other, fds):
        """SCM_RIGHTS through us: our fds travel to ``other`` over real unix sockets."""
        _send(self.sock, ("send_fds", list(fds)))
        (status, val), got = _recv(self.sock, want_fds=max(len(fds), 1))
        if status == "err":  # sendmsg refused one of the fds (EBADF)
            raise OSError(val, strerror(val))
        try:
            if isinstance(other, HostTask):
                return other._recv_fds(got)
            return got  # the calling process itself
        finally:
            if isinstance(other, HostTask):
                for fd in got:
                    os.close(fd)

    def _recv_fds(self, fds):
        _send(self.sock, ("recv_fds", len(fds)))
        _recv(self.sock)
        _send(self.sock, ("fds",), fds=fds)
        status, val = _recv(self.sock)
        if status == "err":
            raise OSError(val, strerror(val))
        return val

    def exit(self):
        if not self.alive:
            return
        try:
            self._call("exit")
        except (OSError, EOFError):
            pass
        self.alive = False
        self.sock.close()
        self._reap()

    def _reap(self):
        if self._direct:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass

    def __del__(self):
        try:
            if self.alive:
                self.exit()
        except Exception:
            pass

    # -- filesystem (done in the child, with its credentials) ------------------
    def mkdir(self, path, mode=0o777):
        self._call("call", "mkdir", (path, mode))

    def rmdir(self, path):
        self._call("call", "rmdir", (path,))

    def unlink(self, path):
        self._call("call", "unlink", (path,))

    def rename(self, old, new):
        self._call("call", "rename", (old, new))

    def listdir(self, path):
        return sorted(self._call("call", "listdir", (path,)))

    def open_dir(self, path):
        """An fd of the directory at path in the child (O_RDONLY|O_DIRECTORY)."""
        return self._call("call", "open", (path, os.O_RDONLY | os.O_DIRECTORY))

    def stat(self, path):
        return os.stat_result(self._call("call", "stat", (path,)))

    def statfs(self, path):
        return self._call("call", "statfs", (path,))

    def fdinfo(self, fd):
        return self._call("fdinfo", fd)

    def mmap(self, fd, length, offset=0, writable=True):
        """mmap of the child's map fd, made in *our* address space so the caller can touch it.

        The child passes the fd (the same open file, so the same mode) over SCM_RIGHTS and we map
        that; the mapping pins the map and counts as its writer exactly as the child's would.
        """
        _send(self.sock, ("send_fds", [fd]))
        (status, val), got = _recv(self.sock, want_fds=1)
        if status == "err":
            raise OSError(val, strerror(val))
        try:
            return _mmap_fd(got[0], length, offset, writable)
        finally:
            os.close(got[0])

