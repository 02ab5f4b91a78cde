"""What a caller hands to either backend and gets back from it: the shapes the emulator and the host share.

- :func:`address_of` and :func:`attr_args`: the address and size of the buffer passed as ``attr`` (a
  ctypes object, a bytearray, a writable memoryview, or an int address with its size);
- :class:`Mapping`: what ``task.mmap(fd, ...)`` returns on both backends;
- :class:`StatResult` and :class:`StatfsResult`: what the emulator's ``stat``/``statfs`` return (the host
  returns ``os.stat_result`` and a StatfsResult);
- :func:`c_fd`, :func:`c_int`, :func:`c_path`, :func:`c_mode`, :func:`c_id`: the arguments of the task verbs
  as a C caller could pass them, with the errno both backends give for anything else (bad input is an
  OSError on every backend, never a Python exception of another kind).

This module imports nothing of bpfemu: the emulator, the host backend and the typed API all build on it.
"""
import ctypes
import errno
import os
from collections import namedtuple

StatResult = namedtuple("StatResult", "st_mode st_ino st_nlink st_uid st_gid st_size")
StatfsResult = namedtuple("StatfsResult", "f_type")

_CTYPES = (ctypes.Union, ctypes.Structure, ctypes.Array, ctypes._SimpleCData)


def address_of(buf):
    """Address and length of a writable buffer (ctypes object or bytearray), or (int, None)."""
    if isinstance(buf, _CTYPES):
        return ctypes.addressof(buf), ctypes.sizeof(buf)
    if isinstance(buf, int):
        return buf, None
    if isinstance(buf, (bytearray, memoryview)):
        n = len(buf) if isinstance(buf, bytearray) else buf.nbytes
        if n == 0:
            return 0, 0
        c = (ctypes.c_char * n).from_buffer(buf)
        return ctypes.addressof(c), n
    raise TypeError("attr must be a ctypes object, a bytearray or a writable memoryview, not %s"
                    % type(buf).__name__)


def _oserror(e):
    return OSError(e, os.strerror(e))


def c_int(value, e=errno.EINVAL):
    """``value`` as a C int argument: an int in [-2^31, 2^31), else OSError(e)."""
    if isinstance(value, int) and -(1 << 31) <= value < 1 << 31:
        return int(value)
    raise _oserror(e)


def c_fd(fd):
    """An fd argument: a C int, else EBADF (no such fd can be open)."""
    return c_int(fd, errno.EBADF)


def c_path(path):
    """A path argument as the kernel reads it (getname): the C string up to its first NUL, as str
    (bytes are decoded with surrogateescape); a path that is no string is EFAULT, like a bad pointer."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if isinstance(path, (bytes, bytearray)):
        path = bytes(path).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    elif isinstance(path, str):
        path = path.split("\0", 1)[0]
    else:
        raise _oserror(errno.EFAULT)
    return path


def c_mode(mode):
    """A mode_t argument: an int, truncated to 32 bits as C does (returned as the signed int Python's os
    functions take); anything else is EINVAL."""
    if isinstance(mode, int):
        mode &= 0xFFFFFFFF
        return mode - (1 << 32) if mode >= 1 << 31 else mode
    raise _oserror(errno.EINVAL)


def c_id(uid):
    """A uid or gid for setresuid: 0 .. 2^32 - 2 (-1 means "unchanged" to the kernel); else EINVAL."""
    if isinstance(uid, int) and 0 <= uid < 0xFFFFFFFF:
        return int(uid)
    raise _oserror(errno.EINVAL)


def c_owner(uid):
    """A uid or gid for chown(2): 0 .. 2^32 - 2, or -1 (also as 2^32 - 1) for "keep"; else EINVAL."""
    if isinstance(uid, int) and -1 <= uid <= 0xFFFFFFFF:
        return -1 if uid in (-1, 0xFFFFFFFF) else int(uid)
    raise _oserror(errno.EINVAL)


def attr_args(attr, size=None):
    """(address, size) of bpf(cmd, attr, size)'s attr: ``size`` defaults to the buffer's own (TypeError for a
    bare address without one)."""
    addr, n = address_of(attr)
    if size is None:
        if n is None:
            raise TypeError("size is required when attr is an address")
        size = n
    return addr, size


class Mapping:
    """A shared mapping of a map's values (what ``proc.mmap`` returns on both backends).

    Index, slice and assign like a bytearray of ``len(m)`` bytes; a read-only
    mapping refuses writes (TypeError). ``close()`` unmaps it (the kernel's
    munmap), which is when a writable mapping stops blocking MAP_FREEZE.
    """

    def __init__(self, view, writable, on_close):
        self._view = view if writable else view.toreadonly()
        self.writable = writable
        self._on_close = on_close

    @property
    def closed(self):
        return self._view is None

    def _live(self):
        if self._view is None:
            raise ValueError("mapping is closed")
        return self._view

    def __len__(self):
        return len(self._live())

    def __getitem__(self, i):
        r = self._live()[i]
        return bytes(r) if isinstance(r, memoryview) else r

    def __setitem__(self, i, data):
        self._live()[i] = data

    def tobytes(self):
        return self._live().tobytes()

    def close(self):
        if self._view is None:
            return
        view, self._view = self._view, None
        view.release()
        on_close, self._on_close = self._on_close, None
        on_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
