"""The supervisor: one emulated kernel serving every bpf(2) call of a process tree.

:func:`run` starts the command under the trampoline (which installs the seccomp filter and hands
over the listener), then :class:`Session` answers each notification: bpf(2) with the emulated
kernel's result or errno, the file operations on emulated objects (bpffs paths, /proc fdinfo,
mmap of mmapable arrays...) from :mod:`bpfemu.exec.vfs`, and everything else with
SECCOMP_USER_NOTIF_FLAG_CONTINUE (the real kernel runs it as it is).

The session ends when every process of the tree is gone (the listener hangs up); its result is
the exit status of the command.
"""
import errno
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

from .. import uapi
from ..caps import ALL_CAPS, cap_set
from ..errors import bpf_error
from ..kernel import Kernel
from ..syscall.sys_bpf import sys_bpf
from . import abi, seccomp, vfs
from .files import FileBridge, SharedMemory
from .task import ExecTask

TRAMPOLINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trampoline.py")


def _rules():
    """What the filter sends to the supervisor (see vfs.HANDLERS for what each answers)."""
    R, NR = seccomp.Rule, abi.NR
    rules = [R(NR["bpf"])]
    for name in ("open", "openat", "openat2", "creat", "stat", "lstat", "newfstatat", "statx", "fstat", "statfs",
                 "fstatfs", "access", "faccessat", "faccessat2", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat",
                 "rename", "renameat", "renameat2", "readlink", "readlinkat", "getdents64", "getxattr", "lgetxattr", "listxattr", "llistxattr"):
        rules.append(R(NR[name]))
    # mmap of a file (not anonymous, fd not -1)
    rules.append(R(NR["mmap"], ("and", ("clear", 3, abi.MAP_ANONYMOUS), ("ne", 4, 0xFFFFFFFF))))
    # mprotect adding write or exec (a read-only mapping of a map may not become writable)
    rules.append(R(NR["mprotect"], ("set", 2, abi.PROT_WRITE | abi.PROT_EXEC)))
    rules.append(R(NR["fcntl"], ("eq", 1, abi.F_GETFL)))
    return rules


def filter_program():
    return seccomp.build_filter(_rules())


def _prog_hex(prog):
    import struct
    return b"".join(struct.pack("<HBBI", *ins) for ins in prog).hex()


class Session:
    """The supervisor of one process tree: the emulated kernel, the listener, the tasks."""

    def __init__(self, kernel, listener_fd, state_dir, uid=0, caps=None, debug=False):
        self.kernel = kernel
        self.listener = seccomp.Listener(listener_fd)
        self.state_dir = state_dir
        self.uid = uid
        self.caps = caps
        self.debug = debug
        self.files = FileBridge(self.listener, state_dir)
        self.tasks = {}  # tgid -> ExecTask
        self.tgid_of = {}  # tid -> tgid
        self.pidfds = {}  # pidfd -> tgid
        self.current_id = None
        self.current_tid = None
        self.calls = 0
        now = time.time()
        self.start_time = (int(now), int(now % 1 * 1e9))
        self.epoll = select.epoll()
        self.epoll.register(listener_fd, select.EPOLLIN)
        self.epoll.register(self.files.fileno(), select.EPOLLIN)
        self._saved_alloc = kernel.mmapable_alloc
        kernel.mmapable_alloc = self.files.mmapable_alloc

    # -- processes ---------------------------------------------------------------------------
    def task_for(self, tid):
        tgid = self.tgid_of.get(tid)
        if tgid is None:
            tgid = _tgid(tid)
            self.tgid_of[tid] = tgid
        t = self.tasks.get(tgid)
        if t is None or not t.alive:
            with self.kernel.lock:
                t = ExecTask(self, tgid, self.uid, self._caps())
            self.tasks[tgid] = t
            try:
                pfd = os.pidfd_open(tgid)
                self.pidfds[pfd] = tgid
                self.epoll.register(pfd, select.EPOLLIN)
            except OSError:
                pass
        return t

    def _caps(self):
        if self.caps is None:
            return ALL_CAPS if self.uid == 0 else frozenset()
        return cap_set(self.caps)

    def _process_exited(self, pfd):
        tgid = self.pidfds.pop(pfd)
        self.epoll.unregister(pfd)
        os.close(pfd)
        t = self.tasks.pop(tgid, None)
        if t is not None:
            t.exit()
        for tid in [k for k, v in self.tgid_of.items() if v == tgid]:
            del self.tgid_of[tid]

    def live_pids(self):
        return list(self.tasks)

    def cwd_of(self, pid):
        try:
            path = os.readlink("/proc/%d/cwd" % pid)
        except OSError:
            return "/"
        d = vfs.placeholder_dir_path(self, path)
        return d if d is not None else path

    def umask_of(self, pid):
        try:
            with open("/proc/%d/status" % pid, "rb") as f:
                for line in f:
                    if line.startswith(b"Umask:"):
                        return int(line.split()[1], 8)
        except (OSError, ValueError):
            pass
        return 0o022

    # -- the loop ------------------------------------------------------------------------------
    def serve(self, child=None):
        """Answer notifications until every process of the tree is gone; returns child's status."""
        status = None
        hup = False
        lfd = self.listener.fd
        while not hup or self.pidfds:
            for fd, ev in self.epoll.poll():
                if fd == lfd:
                    if ev & select.EPOLLIN:
                        self.handle_one()
                    elif ev & (select.EPOLLHUP | select.EPOLLERR):
                        hup = True
                        self.epoll.unregister(lfd)
                elif fd in self.pidfds:
                    if child is not None and self.pidfds[fd] == child.pid and status is None:
                        status = child.wait()
                    self._process_exited(fd)
                else:
                    self.reap()
            if hup and child is not None and status is None:
                status = child.wait()
        if child is not None and status is None:
            status = child.wait()
        self.reap()
        return status

    def reap(self):
        """Release the emulated files whose placeholders are gone (under the kernel's lock)."""
        with self.kernel.lock:
            return self.files.reap()

    def handle_one(self):
        n = self.listener.recv()
        if n is None:
            return
        self.calls += 1
        handler = vfs.HANDLERS.get(n.nr)
        if handler is None:
            self.listener.cont(n.id)
            return
        self.current_id = n.id
        self.current_tid = n.pid
        try:
            result = handler(self, n)
        except OSError as e:
            result = ("err", e.errno or errno.EIO)
        except Exception:  # a bug of ours must not take the tree down: say so, answer ENOSYS
            sys.stderr.write("bpfemu exec: internal error in %r\n%s" % (n, traceback.format_exc()))
            result = ("err", errno.ENOSYS)
        finally:
            self.current_id = None
        if self.debug:
            sys.stderr.write("bpfemu exec: %r -> %r\n" % (n, result))
        kind = result[0]
        if kind == "cont":
            self.listener.cont(n.id)
        elif kind == "val":
            self.listener.respond(n.id, val=result[1])
        elif kind == "err":
            self.listener.respond(n.id, error=result[1])
        # kind 'sent': answered already (ADDFD with SECCOMP_ADDFD_FLAG_SEND)

    # -- bpf(2) -------------------------------------------------------------------------------------
    def sys_bpf(self, n):
        task = self.task_for(n.pid)
        self.reap()
        cmd = _s32(n.args[0])
        uattr = n.args[1]
        size = n.args[2] & 0xFFFFFFFF
        extra = None
        if cmd == uapi.BPF_MAP_FREEZE:
            extra = self._count_mappings(task, uattr, size)
        try:
            return ("val", sys_bpf(task, cmd, uattr, size, task.mem))
        finally:
            if extra is not None:
                extra[0].writecnt -= extra[1]

    def _count_mappings(self, task, uattr, size):
        """For FREEZE: count the process tree's writable mappings of the map (bpf_map_write_active)."""
        if size < 4:
            return None
        try:
            fd = int.from_bytes(task.mem.read(uattr, 4), "little")
            f = task.fdget(fd)
        except OSError:
            return None
        m = f.obj
        mem = m.mmap_area if f.kind == "map" and m is not None else None
        if not isinstance(mem, SharedMemory):
            return None
        n = self.files.writable_mappings(mem, self.live_pids())
        m.writecnt += n
        return (m, n)

    def close(self):
        self.kernel.mmapable_alloc = self._saved_alloc
        for pfd in list(self.pidfds):
            os.close(pfd)
        self.pidfds.clear()
        self.files.close()
        self.epoll.close()
        os.close(self.listener.fd)


def _s32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _tgid(tid):
    try:
        with open("/proc/%d/status" % tid, "rb") as f:
            for line in f:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return tid


def run(argv, kernel=None, *, ncpus=None, state_dir=None, uid=0, caps=None, env=None, cwd=None,
        stdin=None, stdout=None, stderr=None, debug=False):
    """Run argv with its bpf(2) calls served by ``kernel`` (a new :class:`bpfemu.Kernel` if None).

    Returns the exit status as subprocess does (negative: killed by that signal), once every
    process the command started is gone. ``uid``/``caps``: the emulated credentials of every
    process of the tree (default root with every capability; the real process stays what it is).
    ``state_dir``: where the session keeps its working files (a temporary directory if None).
    stdin/stdout/stderr/env/cwd are passed to subprocess.Popen. Linux x86_64 only (OSError
    ENOSYS elsewhere)."""
    ok, why = abi.supported()
    if not ok:
        raise bpf_error(errno.ENOSYS, why)
    if kernel is None:
        kernel = Kernel(ncpus=ncpus)
    elif ncpus is not None and ncpus != kernel.ncpus:
        raise ValueError("ncpus=%d but the kernel has %d CPUs" % (ncpus, kernel.ncpus))
    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise ValueError("no command")
    if state_dir is None:
        state_dir = tempfile.mkdtemp(prefix="bpfemu-exec-")
    else:
        os.makedirs(state_dir, exist_ok=True)
        state_dir = tempfile.mkdtemp(prefix="session-", dir=state_dir)
    parent, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        prog = _prog_hex(filter_program())
        proc = subprocess.Popen([sys.executable, "-I", "-S", TRAMPOLINE, str(child_sock.fileno()), prog, "--"] + argv,
                                pass_fds=[child_sock.fileno()], env=env, cwd=cwd, stdin=stdin, stdout=stdout,
                                stderr=stderr)
        child_sock.close()
        msg, fds, _flags, _addr = socket.recv_fds(parent, 4096, 1)
        if not fds:
            # the trampoline could not install the filter (it said why on stderr)
            return proc.wait()
        session = Session(kernel, fds[0], state_dir, uid=uid, caps=caps, debug=debug)
        try:
            pfd = os.pidfd_open(proc.pid)
            session.pidfds[pfd] = proc.pid
            session.epoll.register(pfd, select.EPOLLIN)
            return session.serve(proc)
        finally:
            session.close()
    finally:
        parent.close()
        try:
            child_sock.close()
        except OSError:
            pass
        shutil.rmtree(state_dir, ignore_errors=True)  # the session's own directory (under --state-dir if given)
