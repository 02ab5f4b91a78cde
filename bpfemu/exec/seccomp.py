"""seccomp user notification through ctypes (include/uapi/linux/seccomp.h, kernel/seccomp.c).

Three parts:

- :func:`build_filter` assembles the classic BPF program that seccomp runs on every syscall of
  the supervised tree: ``SECCOMP_RET_USER_NOTIF`` for the calls the supervisor answers (some only
  when an argument says so, e.g. ``mmap`` of a file), ``SECCOMP_RET_ALLOW`` for the rest.
- :func:`install_filter` is what the supervised process runs on itself before it execs the
  command: ``PR_SET_NO_NEW_PRIVS`` (which lets an unprivileged process install a filter) then
  ``seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER | ..._WAIT_KILLABLE_RECV)``,
  which returns the listener fd. The filter is inherited across fork and kept across execve.
- :class:`Listener` is the supervisor's side of that fd: ``recv`` a notification, ``respond``
  with a value, an errno or ``SECCOMP_USER_NOTIF_FLAG_CONTINUE``, ``addfd`` to put one of our open
  files into the caller's fd table (SECCOMP_IOCTL_NOTIF_ADDFD), ``id_valid``.

x86_64 only for now: the syscall numbers of the filter come from :mod:`bpfemu.exec.abi`.
"""
import ctypes
import errno
import os
import struct

from . import abi

# prctl / seccomp(2)
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_NOTIF_SIZES = 3
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_ALLOW = 0x7FFF0000

SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
SECCOMP_ADDFD_FLAG_SETFD = 1
SECCOMP_ADDFD_FLAG_SEND = 2
SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP = 1


def _ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (ord("!") << 8) | nr


NOTIF_SIZE = 80  # struct seccomp_notif: id, pid, flags, struct seccomp_data (nr, arch, ip, args[6])
RESP_SIZE = 24  # struct seccomp_notif_resp: id, val, error, flags
ADDFD_SIZE = 24  # struct seccomp_notif_addfd: id, flags, srcfd, newfd, newfd_flags
SECCOMP_IOCTL_NOTIF_RECV = _ioc(3, 0, NOTIF_SIZE)
SECCOMP_IOCTL_NOTIF_SEND = _ioc(3, 1, RESP_SIZE)
SECCOMP_IOCTL_NOTIF_ID_VALID = _ioc(1, 2, 8)
SECCOMP_IOCTL_NOTIF_ADDFD = _ioc(1, 3, ADDFD_SIZE)
SECCOMP_IOCTL_NOTIF_SET_FLAGS = _ioc(1, 4, 8)

# classic BPF (include/uapi/linux/filter.h)
BPF_LD_W_ABS = 0x20
BPF_ALU_AND_K = 0x54
BPF_JMP_JEQ_K = 0x15
BPF_JMP_JGE_K = 0x35
BPF_JMP_JSET_K = 0x45
BPF_RET_K = 0x06

# struct seccomp_data offsets
OFF_NR = 0
OFF_ARCH = 4


def off_arg(i, high=False):
    return 16 + 8 * i + (4 if high else 0)


class sock_filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class sock_fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(sock_filter))]


class Rule:
    """Notify on syscall ``nr`` when ``when`` holds (None: always).

    ``when`` is a tuple: ('ne', argno, value) notifies when the low 32 bits of the argument
    differ from value, ('eq', argno, value) when they equal it, ('set', argno, mask) when the
    argument has any bit of mask set, and ('and', cond, cond) when both hold."""

    def __init__(self, nr, when=None):
        self.nr = nr
        self.when = when


def _cond_insns(cond, fail):
    """Instructions that fall through when cond holds and jump to label ``fail`` otherwise.

    Returned as (code, jt, jf, k) with jump targets as labels ('fail'), resolved by the caller."""
    kind = cond[0]
    if kind == "and":
        return _cond_insns(cond[1], fail) + _cond_insns(cond[2], fail)
    _, argno, value = cond
    out = [(BPF_LD_W_ABS, 0, 0, off_arg(argno))]
    if kind == "eq":
        out.append((BPF_JMP_JEQ_K, 0, fail, value))
    elif kind == "ne":
        out.append((BPF_JMP_JEQ_K, fail, 0, value))
    elif kind == "set":
        out.append((BPF_JMP_JSET_K, 0, fail, value))
    elif kind == "clear":
        out.append((BPF_JMP_JSET_K, fail, 0, value))
    else:
        raise ValueError(kind)
    return out


def build_filter(rules, arch=None):
    """The filter program for ``rules`` (a list of :class:`Rule`), as a list of sock_filter tuples.

    Layout: check the architecture (other ABIs, e.g. i386 through int 0x80, are allowed through
    untouched), load the syscall number, then one block per rule: compare the number, test the
    argument conditions, return USER_NOTIF; every miss falls to the next block, the end allows."""
    arch = arch or abi.AUDIT_ARCH
    blocks = []
    for r in rules:
        body = [("nr", r.nr)]
        if r.when is not None:
            body += _cond_insns(r.when, "next")
        body.append((BPF_RET_K, 0, 0, SECCOMP_RET_USER_NOTIF))
        blocks.append(body)
    prog = [(BPF_LD_W_ABS, 0, 0, OFF_ARCH), (BPF_JMP_JEQ_K, 1, 0, arch), (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)]
    for body in blocks:
        # the block starts by reloading nr (the conditions clobber A)
        insns = [(BPF_LD_W_ABS, 0, 0, OFF_NR)]
        for ins in body:
            if ins[0] == "nr":
                insns.append((BPF_JMP_JEQ_K, 0, "next", ins[1]))
            else:
                insns.append(ins)
        n = len(insns)
        for i, (code, jt, jf, k) in enumerate(insns):
            # "next" is the first instruction after this block
            jt = n - i - 1 if jt == "next" else jt
            jf = n - i - 1 if jf == "next" else jf
            if jt > 255 or jf > 255:
                raise ValueError("jump too long")
            prog.append((code, jt, jf, k))
    prog.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    return prog


_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        _libc.prctl.restype = ctypes.c_int
        _libc.ioctl.restype = ctypes.c_int
        _libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    return _libc


def _check(r):
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def notif_sizes():
    """(sizeof seccomp_notif, seccomp_notif_resp, seccomp_data) as this kernel has them."""
    buf = (ctypes.c_uint16 * 3)()
    _check(libc().syscall(abi.NR["seccomp"], SECCOMP_GET_NOTIF_SIZES, 0, buf))
    return tuple(buf)


def install_filter(prog, flags=SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV):
    """Install prog on the calling thread (and its future children); returns the listener fd.

    Falls back to a plain NEW_LISTENER filter on kernels without WAIT_KILLABLE_RECV (before 5.19)."""
    arr = (sock_filter * len(prog))(*[sock_filter(*ins) for ins in prog])
    fprog = sock_fprog(len(prog), arr)
    c = libc()
    _check(c.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    r = c.syscall(abi.NR["seccomp"], SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(fprog))
    if r < 0 and ctypes.get_errno() == errno.EINVAL and flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV:
        r = c.syscall(abi.NR["seccomp"], SECCOMP_SET_MODE_FILTER, flags & ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
                      ctypes.byref(fprog))
    return _check(r)


_NOTIF = struct.Struct("<QIIiIQ6Q")
_RESP = struct.Struct("<QqiI")
_ADDFD = struct.Struct("<QIIII")


class Notification:
    """One intercepted syscall: ``id``, ``pid`` (the thread, in our pid namespace), ``nr``, ``args``, and
    the ``listener`` it came from (answers and ADDFD go there)."""

    __slots__ = ("id", "pid", "nr", "arch", "ip", "args", "listener")

    def __init__(self, raw, listener=None):
        self.id, self.pid, _flags, self.nr, self.arch, self.ip, *args = _NOTIF.unpack(raw)
        self.args = args
        self.listener = listener

    def __repr__(self):
        return "<notif %d pid %d %s%r>" % (self.id, self.pid, abi.NAMES.get(self.nr, self.nr), tuple(self.args))


class Listener:
    """The supervisor's end of a seccomp listener fd."""

    def __init__(self, fd):
        self.fd = fd
        self._c = libc()
        self._recv = ctypes.create_string_buffer(NOTIF_SIZE)
        self._resp = ctypes.create_string_buffer(RESP_SIZE)
        self._addfd = ctypes.create_string_buffer(ADDFD_SIZE)
        try:
            flags = ctypes.c_uint64(SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
            self._c.ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, ctypes.byref(flags))  # 6.6+: a faster hand-off
        except Exception:  # pragma: no cover
            pass

    def recv(self):
        """The next notification, or None when the caller went away before we read it (ENOENT)."""
        ctypes.memset(self._recv, 0, NOTIF_SIZE)
        if self._c.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_RECV, self._recv) < 0:
            e = ctypes.get_errno()
            if e in (errno.ENOENT, errno.EINTR, errno.EAGAIN):
                return None
            raise OSError(e, os.strerror(e))
        return Notification(self._recv.raw, self)

    def respond(self, nid, val=0, error=0, flags=0):
        """Answer notification nid: ``val`` as the result, or ``-error``; False if the caller is gone."""
        _RESP.pack_into(self._resp, 0, nid, val, -error if error else 0, flags)
        if self._c.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_SEND, self._resp) < 0:
            e = ctypes.get_errno()
            if e in (errno.ENOENT, errno.EINPROGRESS):
                return False
            raise OSError(e, os.strerror(e))
        return True

    def cont(self, nid):
        """Let the call run in the kernel as it is (SECCOMP_USER_NOTIF_FLAG_CONTINUE)."""
        return self.respond(nid, flags=SECCOMP_USER_NOTIF_FLAG_CONTINUE)

    def addfd(self, nid, srcfd, cloexec=False, newfd=None, send=False):
        """Install our srcfd in the caller's fd table: the lowest free fd, or newfd (replacing it).

        With send=True this also answers the notification with the new fd. Returns the fd number;
        raises OSError (EMFILE when the caller has no free fd, ENOENT when it went away)."""
        flags = (SECCOMP_ADDFD_FLAG_SETFD if newfd is not None else 0) | (SECCOMP_ADDFD_FLAG_SEND if send else 0)
        _ADDFD.pack_into(self._addfd, 0, nid, flags, srcfd, newfd or 0, os.O_CLOEXEC if cloexec else 0)
        return _check(self._c.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_ADDFD, self._addfd))

    def id_valid(self, nid):
        v = ctypes.c_uint64(nid)
        return self._c.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_ID_VALID, ctypes.byref(v)) == 0
