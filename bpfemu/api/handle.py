"""Handle: an fd of a bpf object (a map today; programs and links later) owned by a Python object.

What every typed handle shares, so each kind gets it by subclassing:

- **stale use is an error, never another object**: once :meth:`Handle.close` ran, every use (``.fd``
  included) raises an EBADF :class:`~bpfemu.api.errors.BpfError` naming the closed handle, even though the
  fd number may by then name another object of the task (fds are reused lowest-first, as in the kernel);
- **threads**: any number of threads may use one handle; :meth:`close` waits for the calls in flight, so
  a call either completes on this handle's object or fails with EBADF;
- **a finalizer**: a handle dropped without ``close()`` closes its fd when it is collected and warns with
  a ResourceWarning, as Python's files do (:meth:`detach` hands the fd over instead).

A subclass sets ``kind`` ('map', 'prog', 'link'), calls ``Handle.__init__`` and brackets each use of the
fd with ``_enter(cmd)`` / ``_leave()``::

    self._enter(uapi.BPF_MAP_FREEZE)
    try:
        self.sys.bpf(uapi.BPF_MAP_FREEZE, uapi.make_attr(map_fd=self._fd))
    finally:
        self._leave()
"""
import collections
import errno as _errno
import itertools
import os
import threading
import warnings

from .. import uapi
from .errors import make_error

__all__ = ["Handle", "finalized_since"]

# handles the finalizer closed (they were dropped unclosed): a running count and the last few, for leak checks
_finalized = collections.deque(maxlen=64)
_finalized_count = itertools.count(1)
_finalized_last = 0


def finalized_since(mark):
    """(new mark, descriptions of the handles the finalizer closed since ``mark``); mark 0 is the start."""
    last = _finalized_last
    return last, [d for n, d in list(_finalized) if n > mark]

# (sys, fd) of handles collected while their task was in the middle of a call on this very thread (a
# garbage collection can run anywhere): closed at the next handle operation instead of re-entering it
_pending = []
_pending_lock = threading.Lock()


def _busy_here(sys):
    """True when this thread is inside a call on ``sys`` (its kernel's lock, or a HostTask's, is held)."""
    kernel = getattr(sys, "kernel", None)
    for lock in (getattr(kernel, "lock", None), getattr(sys, "_lock", None)):
        owned = getattr(lock, "_is_owned", None)
        if owned is not None and owned():
            return True
    return False


def _close_quietly(sys, fd):
    try:
        sys.close(fd)
    except Exception:  # the task may have exited, the process may be shutting down
        pass


def _close_pending():
    with _pending_lock:
        todo = list(_pending)
        del _pending[:]
    for sys, fd in todo:
        if _busy_here(sys):
            with _pending_lock:
                _pending.append((sys, fd))
        else:
            _close_quietly(sys, fd)


class Handle:
    """An owned fd of a bpf object on a task ``sys`` (anything with ``bpf()`` and ``close()``)."""

    kind = "object"

    def __init__(self, sys, fd, target=None):
        self.sys = sys
        self._fd = fd
        self._target = target or "%s fd %d" % (self.kind, fd)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._closed = False

    # -- the fd and its state -----------------------------------------------------
    @property
    def fd(self):
        """The fd number (EBADF BpfError once closed or detached)."""
        if self._closed:
            raise self._stale(None)
        return self._fd

    @property
    def closed(self):
        return self._closed

    def _stale(self, cmd):
        name = uapi.cmd_name(cmd) if cmd is not None else "use of the fd"
        return make_error(_errno.EBADF, name, self._target,
                          "this %s handle was closed (its fd %d may name another object now)"
                          % (self.kind, self._fd))

    def _enter(self, cmd=None):
        """Begin a use of the fd: EBADF when closed; close() waits until the matching _leave()."""
        if _pending:
            _close_pending()
        with self._lock:
            if self._closed:
                raise self._stale(cmd)
            self._busy += 1

    def _leave(self):
        with self._lock:
            self._busy -= 1
            if not self._busy and self._closed:  # close() marks the handle closed, then waits for this
                self._idle.notify_all()

    def _give_up_fd(self):
        """Mark closed once no call is in flight; the fd to close, or None when it was closed already."""
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            while self._busy:
                self._idle.wait()
            return self._fd

    # -- ending ------------------------------------------------------------------------
    def close(self):
        """Close the fd (again is a no-op). Calls in flight on other threads finish first; later uses
        raise EBADF."""
        fd = self._give_up_fd()
        if fd is not None:
            self.sys.close(fd)

    def detach(self):
        """Give the fd away: the handle is closed for use, the fd stays open and is the caller's."""
        fd = self._give_up_fd()
        if fd is None:
            raise self._stale(None)
        return fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if self.__dict__.get("_closed", True) or self.__dict__.get("_pid") != os.getpid():
            return  # closed, half-built, or a copy in a fork()ed child that does not own the fd
        self._closed = True
        global _finalized_last
        n = next(_finalized_count)
        _finalized.append((n, "%s %s fd %d" % (self.kind, self._target, self._fd)))
        _finalized_last = n
        try:
            warnings.warn("unclosed %s: %s fd %d (close it, or use 'with')" % (self.kind, self._target, self._fd),
                          ResourceWarning, source=self)
        except Exception:
            pass
        if _busy_here(self.sys):
            with _pending_lock:
                _pending.append((self.sys, self._fd))
        else:
            _close_quietly(self.sys, self._fd)
