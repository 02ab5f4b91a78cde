"""The supervisor: one emulated kernel serving every bpf(2) call of a process tree.

:meth:`Session.spawn` starts a command under the trampoline (which installs the seccomp filter and hands
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
import struct
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
    return b"".join(struct.pack("<HBBI", *ins) for ins in prog).hex()


class Tree:
    """One process tree attached to a session: the listener its seccomp filter reports to, the emulated
    credentials its processes get, where its diagnostics go, and (when the session started it) its first
    process. It is done when the listener has hung up (every process holding the filter is gone), each of
    its processes' exit has been seen, and the first one has been waited for."""

    def __init__(self, listener_fd, uid=0, caps=None, debug=False, errout=None, child=None):
        self.listener = seccomp.Listener(listener_fd) if listener_fd is not None else None
        self.uid = uid
        self.caps = caps
        self.debug = debug
        self.errout = errout if errout is not None else sys.stderr
        self.child = child  # subprocess.Popen of the trampoline, or None
        self.status = None
        self.hup = False
        self.tgids = set()  # processes of the tree whose exit is awaited

    @property
    def done(self):
        return self.hup and not self.tgids and (self.child is None or self.status is not None)

    def say(self, text):
        try:
            self.errout.write(text)
            self.errout.flush()
        except (OSError, ValueError):
            pass

    def close(self):
        if self.listener is not None:
            os.close(self.listener.fd)
            self.listener = None


class Session:
    """One emulated kernel serving the process trees attached to it (:meth:`spawn`, :meth:`attach`).

    ``state_dir``: a directory of its own for the real directories that stand for bpffs directories
    (emptied by :meth:`close`)."""

    def __init__(self, kernel, state_dir):
        self.kernel = kernel
        self.state_dir = state_dir
        self.pidfds = {}  # pidfd -> (tgid, Tree)
        self.pidfd_of = {}  # tgid -> pidfd (FileBridge reads fds of processes through them)
        self.files = FileBridge(state_dir, self.pidfd_of)
        self.trees = {}  # listener fd -> Tree
        self.tasks = {}  # tgid -> ExecTask
        self.tgid_of = {}  # tid -> tgid
        self.unserved = set()  # tgids whose memory could not be reached (said once on the tree's stderr)
        self.current = None  # the notification being answered
        self.current_tree = None
        self.calls = 0
        now = time.time()
        self.start_time = (int(now), int(now % 1 * 1e9))
        self.epoll = select.epoll()
        self.epoll.register(self.files.fileno(), select.EPOLLIN)
        self._saved_alloc = kernel.mmapable_alloc
        kernel.mmapable_alloc = self.files.mmapable_alloc

    # -- trees ----------------------------------------------------------------------------------
    def attach(self, listener_fd, uid=0, caps=None, debug=False, errout=None, child=None):
        """Serve the tree whose seccomp listener is listener_fd (the session owns the fd from now on)."""
        tree = Tree(listener_fd, uid, caps, debug, errout, child)
        self.trees[listener_fd] = tree
        self.epoll.register(listener_fd, select.EPOLLIN)
        if child is not None:
            self._watch(child.pid, tree)
        return tree

    def spawn(self, argv, uid=0, caps=None, debug=False, env=None, cwd=None, stdin=None, stdout=None,
              stderr=None, errout=None, new_session=False):
        """Start argv under the trampoline and attach its tree; returns the Tree (its ``child`` is the
        process). When the trampoline cannot install the filter, the tree is done at once with its status."""
        parent, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen([sys.executable, "-I", "-S", TRAMPOLINE, str(child_sock.fileno()),
                                     _prog_hex(filter_program()), "--"] + list(argv),
                                    pass_fds=[child_sock.fileno()], env=env, cwd=cwd, stdin=stdin, stdout=stdout,
                                    stderr=stderr, start_new_session=new_session)
            child_sock.close()
            _msg, fds, _flags, _addr = socket.recv_fds(parent, 4096, 1)
        finally:
            parent.close()
            child_sock.close()
        if not fds:  # the trampoline could not install the filter (it said why on stderr)
            tree = Tree(None, uid, caps, debug, errout, proc)
            tree.hup = True
            tree.status = proc.wait()
            return tree
        return self.attach(fds[0], uid, caps, debug, errout, proc)

    def _watch(self, tgid, tree):
        try:
            pfd = os.pidfd_open(tgid)
        except OSError:
            return None
        self.pidfds[pfd] = (tgid, tree)
        self.pidfd_of[tgid] = pfd
        self.epoll.register(pfd, select.EPOLLIN)
        tree.tgids.add(tgid)
        return pfd

    # -- processes ---------------------------------------------------------------------------
    def task_for(self, tid):
        """The emulated task of the thread tid's process (made on its first call, with the credentials
        of the tree whose call is being answered)."""
        tgid = self.tgid_of.get(tid)
        if tgid is None:
            tgid = _tgid(tid)
            self.tgid_of[tid] = tgid
        t = self.tasks.get(tgid)
        if t is None or not t.alive:
            tree = self.current_tree
            try:
                with self.kernel.lock:
                    t = ExecTask(self, tgid, tree.uid, self._caps(tree))
            except OSError as e:  # its memory is out of reach: each of its calls fails with this errno; say why
                if tgid not in self.unserved:
                    self.unserved.add(tgid)
                    tree.say("bpfemu exec: cannot serve process %d: %s\n" % (tgid, e.strerror or e))
                raise
            self.tasks[tgid] = t
            if tgid not in self.pidfd_of:
                self._watch(tgid, tree)
        return t

    @staticmethod
    def _caps(tree):
        if tree.caps is None:
            return ALL_CAPS if tree.uid == 0 else frozenset()
        return cap_set(tree.caps)

    def _process_exited(self, pfd):
        tgid, tree = self.pidfds.pop(pfd)
        if self.pidfd_of.get(tgid) == pfd:
            del self.pidfd_of[tgid]
        self.epoll.unregister(pfd)
        os.close(pfd)
        tree.tgids.discard(tgid)
        if tree.child is not None and tree.child.pid == tgid and tree.status is None:
            tree.status = tree.child.wait()
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
    def fileno(self):
        """An fd that is readable when :meth:`poll` has something to do (for a daemon's own loop)."""
        return self.epoll.fileno()

    def poll(self, timeout=None):
        """Answer what is ready (waiting up to timeout seconds, None: until something is); returns the
        trees that became done, which are detached."""
        events = self.epoll.poll(timeout)
        files = self.files.fileno()
        if any(fd == files for fd, _ev in events):
            # releases first: a process that closed its last fd of a map and then calls bpf() sees the map gone
            self.reap()
        finished = []
        for fd, ev in events:
            tree = self.trees.get(fd)
            if tree is not None:
                if ev & select.EPOLLIN:
                    self.handle_one(tree)
                elif ev & (select.EPOLLHUP | select.EPOLLERR) and not tree.hup:
                    tree.hup = True
                    self.epoll.unregister(fd)
            elif fd in self.pidfds:
                self._process_exited(fd)
        for fd, tree in list(self.trees.items()):
            if tree.hup and tree.child is not None and tree.status is None and not tree.tgids:
                tree.status = tree.child.wait()
            if tree.done:
                del self.trees[fd]
                tree.close()
                finished.append(tree)
        if finished:
            self.reap()
        return finished

    def serve(self, tree):
        """Answer notifications until tree is done; returns its status (of its first process)."""
        while not tree.done or any(t is tree for t in self.trees.values()):
            self.poll()
        return tree.status

    def reap(self):
        """Release the emulated files whose placeholders are gone (under the kernel's lock)."""
        with self.kernel.lock:
            return self.files.reap()

    def handle_one(self, tree):
        n = tree.listener.recv()
        if n is None:
            return
        self.calls += 1
        handler = vfs.HANDLERS.get(n.nr)
        if handler is None:
            tree.listener.cont(n.id)
            return
        self.current = n
        self.current_tree = tree
        try:
            result = handler(self, n)
        except OSError as e:
            result = ("err", e.errno or errno.EIO)
        except Exception:  # a bug of ours must not take the tree down: say so, answer ENOSYS
            tree.say("bpfemu exec: internal error in %r\n%s" % (n, traceback.format_exc()))
            result = ("err", errno.ENOSYS)
        finally:
            self.current = None
        if tree.debug:
            tree.say("bpfemu exec: %r -> %r\n" % (n, result))
        kind = result[0]
        if kind == "cont":
            tree.listener.cont(n.id)
        elif kind == "val":
            tree.listener.respond(n.id, val=result[1])
        elif kind == "err":
            tree.listener.respond(n.id, error=result[1])
        # kind 'sent': answered already (ADDFD with SECCOMP_ADDFD_FLAG_SEND)

    # -- bpf(2) -------------------------------------------------------------------------------------
    def sys_bpf(self, n):
        task = self.task_for(n.pid)
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
        """Detach every tree (their processes' intercepted calls then fail with ENOSYS) and give back the
        kernel's allocator; the kernel and its objects stay."""
        self.kernel.mmapable_alloc = self._saved_alloc
        for tree in self.trees.values():
            tree.close()
        self.trees.clear()
        for pfd in list(self.pidfds):
            os.close(pfd)
        self.pidfds.clear()
        self.pidfd_of.clear()
        self.files.close()
        self.epoll.close()


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


def run_here(argv, kernel=None, *, ncpus=None, uid=0, caps=None, env=None, cwd=None, stdin=None, stdout=None,
             stderr=None, debug=False):
    """:func:`bpfemu.exec.run` with the kernel in this process (``kernel``, or a new one)."""
    ok, why = abi.supported()
    if not ok:
        raise bpf_error(errno.ENOSYS, why)
    if kernel is None:
        kernel = Kernel(ncpus=ncpus)
    elif ncpus is not None and ncpus != kernel.ncpus:
        raise ValueError("ncpus=%d but the kernel has %d CPUs" % (ncpus, kernel.ncpus))
    work = tempfile.mkdtemp(prefix="bpfemu-exec-")
    try:
        session = Session(kernel, work)
        try:
            tree = session.spawn(argv, uid=uid, caps=caps, debug=debug, env=env, cwd=cwd, stdin=stdin,
                                 stdout=stdout, stderr=stderr)
            return tree.status if tree.done else session.serve(tree)
        finally:
            session.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
