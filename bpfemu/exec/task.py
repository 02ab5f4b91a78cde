"""ExecTask: a real process of the supervised tree as a task of the emulated kernel.

The emulated syscall layer asks a task for four things: its credentials, its memory, its fd
table (``fdget``, ``fd_install``, ``fdtable.get``) and its working directory. Here the memory is
the process's own (process_vm_readv/writev on its pid, /proc/PID/mem where those are blocked), the fd table is the real one (see
:mod:`bpfemu.exec.files`: an emulated file is a placeholder fd there), and the working directory
is the real one (/proc/PID/cwd). The credentials are the emulated ones the session was started
with (root with every capability by default), whatever the real process has.
"""
import os

from ..kernel import Task
from ..usermem import ProcessMemory


class RealFdTable:
    """The task's fd table as the emulator reads it: the real one, resolved on demand."""

    def __init__(self, task):
        self.task = task

    def get(self, fd, default=None):
        try:
            return [self.task.fdget(fd), False]
        except OSError:
            return default

    def __contains__(self, fd):
        return self.get(fd) is not None

    def _fds(self):
        if not self.task.alive:
            return []
        try:
            return sorted(int(n) for n in os.listdir("/proc/%d/fd" % self.task.pid))
        except OSError:
            return []

    def items(self):
        """(fd, [File, cloexec]) of the emulated files open in the process now."""
        out = []
        for fd in self._fds():
            try:
                kind, f, _ident = self.task.session.files.lookup(self.task.pid, fd)
            except OSError:
                continue
            if kind == "file":
                out.append((fd, [f, False]))
        return out

    def values(self):
        return [slot for _fd, slot in self.items()]

    def __iter__(self):
        return iter([fd for fd, _slot in self.items()])

    def __len__(self):
        return len(self.items())

    def pop(self, fd, default=None):
        return default


class ExecTask(Task):
    """The emulated task of one real process (thread group) ``pid`` of the session."""

    def __init__(self, session, pid, uid, caps):
        super().__init__(session.kernel, uid, caps)
        self.session = session
        self.pid = pid
        self.mem = ProcessMemory(pid)
        self.fdtable = RealFdTable(self)

    def __repr__(self):
        return "<ExecTask pid %d uid %d%s>" % (self.pid, self.uid, "" if self.alive else " exited")

    # -- fd table -------------------------------------------------------------------------
    def fdget(self, fd):
        return self.session.files.file_of(self.pid, fd)

    def fd_install(self, file, cloexec=True):
        return self.session.files.install(self.session.current, file, cloexec)

    def close(self, fd):  # pragma: no cover - the process closes its own fds
        raise NotImplementedError("the supervised process closes its fds itself")

    def dup(self, fd):  # pragma: no cover
        raise NotImplementedError("the supervised process dups its fds itself")

    # -- working directory and umask ---------------------------------------------------------
    @property
    def cwd(self):
        """The real working directory, as a path of the emulated namespace (made there if new)."""
        path = self.session.cwd_of(self.pid)
        fs = self.kernel.fs
        try:
            fs.walk(path)
        except OSError:
            fs.makedirs(path)
        return path

    @cwd.setter
    def cwd(self, value):
        pass

    @property
    def umask(self):
        return self.session.umask_of(self.pid)

    @umask.setter
    def umask(self, value):
        pass

    def exit(self):
        with self.kernel.lock:
            if not self.alive:
                return
            self.alive = False
            if self in self.kernel.tasks:
                self.kernel.tasks.remove(self)
        self.mem.close()
