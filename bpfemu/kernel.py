"""The emulated machine: a Kernel with its object allocators, and its tasks.

A :class:`Kernel` owns everything global (id allocators, sysctls, the
filesystem namespace with its bpffs mounts, the CPU count, one lock). A
:class:`Task` is a process: credentials and an fd table of open files. The
syscall itself is :meth:`Task.bpf`.
"""
import errno
import os
import threading
import weakref
from ctypes import addressof as _addressof

from . import inode, profiles
from .btf.object import vmlinux_object
from .btf.vmlinux import VMLINUX_PATH
from .caps import ALL_CAPS, CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN, cap_set
from .describe import describe
from .errors import bpf_error
from .fdinfo import fdinfo
from .host.sysinfo import (host_kernel_max, host_possible_cpus, host_protected_symlinks, host_total_memory,
                           host_unprivileged_bpf_disabled)
from .idr import IDR
from .limits import NR_CPUS
from .memcg import DEFAULT_MACHINE_MEMORY, DEFAULT_MEMORY_LIMIT, MemCg
from .objects import BUILT_IN, FMODE_READ, KINDS, File
from .surface import attr_args, c_id, c_int, c_mode, c_owner, c_path
from .syscall.mmap import bpf_map_mmap
from .syscall.map import map_elem_owned
from .syscall.sys_bpf import ELEM_FAST, do_bpf, owned_entry, sys_bpf, sys_bpf_elem
from .uapi import ATTR_SIZE
from .uapi import bpf_attr as _bpf_attr
from .timekeeping import Clock
from .usermem import LOCAL

DEFAULT_NCPUS = 2  # when /sys/devices/system/cpu/possible cannot be read
DEFAULT_NOFILE = 1024


_kernels = weakref.WeakSet()  # every Kernel: fork() takes their locks (below)
_forking = []  # the kernels whose locks the thread that forks holds, between the fork handlers


def _before_fork():
    """os.fork(): wait until no other thread is inside a Kernel (holds its lock), then hold them all.

    A fork copies a lock as it is: one held by another thread (a bpf() call in flight) would stay held in
    the child, which has no such thread, and the child's first call would wait for ever; the kernel's
    objects would be copied half-changed. A real process may fork while another thread is in bpf(2)."""
    ks = sorted(_kernels, key=id)  # one order, whoever forks
    for k in ks:
        k.lock.acquire()
    _forking[:] = ks


def _after_fork():
    """Parent and child after os.fork(): let go of the locks _before_fork took."""
    ks, _forking[:] = _forking[:], []
    for k in reversed(ks):
        k.lock.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)


class Kernel:
    """A fresh emulated machine.

    ``ncpus``: number of possible CPUs (per-CPU value layouts); defaults to the
    host's when readable, else 2. ``kernel_max``: the highest CPU number the kernel
    is built for (``/sys/devices/system/cpu/kernel_max``, CONFIG_NR_CPUS - 1; a
    CPUMAP holds at most kernel_max + 1 entries); default the host's, else 8191.
    ``unprivileged_bpf_disabled``: the sysctl (0, 1 or 2), default the host's value,
    else 2 (the kernel's default). ``protected_symlinks``: the sysctl fs.protected_symlinks (0 or 1),
    default the host's, else 0. ``memory_limit``: bytes of a memory cgroup the maps
    are charged to (default None: no cgroup limit, as on a host without one);
    ``machine_memory``: the machine's RAM, which the maps cannot exceed (default the
    host's MemTotal, else 8 GiB; None: unbounded). See :mod:`bpfemu.memcg`.
    ``btf_vmlinux``: the file the kernel's own BTF comes from (default the host's
    /sys/kernel/btf/vmlinux, so type ids match the host's; None, or a file that
    is missing, gives the BTF bpfemu builds). It is the BTF object with the first
    id (``kernel.btf_vmlinux``), read only when first needed. ``version``: the kernel
    version it behaves as, "6.1", "6.12" or "6.18" (its :class:`bpfemu.profiles.Profile`
    is ``kernel.profile``; default :func:`bpfemu.profiles.default_version`: the host's
    version when a profile matches it, else the newest). ``bpf_preload``: built with
    CONFIG_BPF_PRELOAD, so that a fresh bpffs lists maps.debug and progs.debug (a build
    option, not a version: Debian's kernels lack it; default True, or what
    :func:`bpfemu.profiles.set_default` made it).
    """

    # Where the memory of mmapable maps comes from (maps.bpf_map.bpf_map_area_mmapable_alloc): a callable
    # (size in bytes) -> a writable mmap.mmap of that size, or None for anonymous memory. ``bpfemu exec``
    # sets file-backed memory that the processes it supervises map too (so both see the same bytes).
    mmapable_alloc = None

    def __init__(self, ncpus=None, unprivileged_bpf_disabled=None, seed=0, memory_limit=DEFAULT_MEMORY_LIMIT,
                 kernel_max=None, machine_memory="host", protected_symlinks=None, btf_vmlinux=VMLINUX_PATH,
                 version=None, bpf_preload=None):
        self.profile = profiles.get(version)  # ValueError for a version without a profile
        self.version = self.profile.version
        self.bpf_preload = profiles.default_bpf_preload() if bpf_preload is None else bool(bpf_preload)
        self.ncpus = ncpus or host_possible_cpus() or DEFAULT_NCPUS
        if kernel_max is None:
            kernel_max = host_kernel_max()
            if kernel_max is None or kernel_max + 1 < self.ncpus:
                kernel_max = max(NR_CPUS, self.ncpus) - 1
        if kernel_max + 1 < self.ncpus:
            raise ValueError("kernel_max %d leaves no room for %d possible CPUs" % (kernel_max, self.ncpus))
        self.nr_cpus = kernel_max + 1  # CONFIG_NR_CPUS
        self.lock = threading.RLock()
        _kernels.add(self)  # fork() waits for its lock (_before_fork)
        self.current = None  # the task whose bpf() call is running (the kernel's `current`), under lock
        self.idr = {kind: IDR() for kind in KINDS}
        if unprivileged_bpf_disabled is None:
            unprivileged_bpf_disabled = host_unprivileged_bpf_disabled()
        if protected_symlinks is None:
            protected_symlinks = host_protected_symlinks()
        self.sysctl = {"kernel.unprivileged_bpf_disabled": unprivileged_bpf_disabled,
                       "fs.protected_symlinks": protected_symlinks,
                       # net.core.bpf_jit_enable: 1 runs loaded programs translated (bpfemu.prog.jit), 0 interpreted
                       "net.core.bpf_jit_enable": 1}
        self.clock = Clock(self.lock)  # time the test moves (kernel.clock.advance(ns)); timers fire then
        self.stats_enabled = 0         # BPF_ENABLE_STATS fds open (the bpf_stats_enabled_key count)
        self.trace_pipe = []           # bpf_trace_printk lines, oldest first (read_trace_pipe takes them)
        self.prandom = {}              # cpu -> state of bpf_get_prandom_u32's generator
        self.bpf_timers = {}           # (id of a map value storage, offset) -> the bpf_timer kept there
        self.seed = seed
        if machine_memory == "host":
            machine_memory = host_total_memory() or DEFAULT_MACHINE_MEMORY
        self.memcg = MemCg(memory_limit, machine_memory)  # the maps' memory: a cgroup limit and the machine
        self._rand_state = seed or 0x9E3779B9
        self.fs = inode.Namespace(self)
        self.tasks = []
        self._next_pid = 100
        self.fs.makedirs("/tmp", 0o1777)
        self.fs.makedirs("/sys/fs/bpf")
        self.mount_bpffs("/sys/fs/bpf")
        self.btf_vmlinux = vmlinux_object(self, btf_vmlinux)  # btf id 1, as the host registers its own at boot

    # -- objects -------------------------------------------------------
    def register(self, obj):
        """Give a new object its id (bpf_map_alloc_id and friends)."""
        obj.id = self.idr[obj.kind].alloc_cyclic(obj)
        return obj.id

    def _free(self, obj):
        if obj.freed:
            return
        obj.freed = True
        if obj.id:
            self.idr[obj.kind].remove(obj.id)
        if obj.kind == "map":
            self.memcg.uncharge(obj)  # freed memory leaves the memory cgroup at once
        obj.free()

    def objects(self, kind=None, built_in=False):
        """What is alive now, in (kind, id) order: a list of :class:`ObjectState`.

        Each entry names the object's kind ('map', 'prog', 'link', 'btf'), its id, the object,
        its reference count and who holds those references: ``fd 3 of task 101``, ``pin
        /sys/fs/bpf/m``, ``map 7`` (an outer map holding an inner one), ``file #12 (no fd)``
        (an open file kept only by something else, e.g. a memory mapping). An empty list
        means nothing is alive: the leak check of a test. The kernel's own objects (its vmlinux
        BTF, ``built in``) are listed only while something else holds them too, or with
        ``built_in=True``.
        """
        with self.lock:
            fd_slots = self._fd_slots()
            out = []
            for k in KINDS:
                if kind and k != kind:
                    continue
                for obj in self.idr[k]:
                    if not built_in and BUILT_IN in obj.holders and len(obj.holders) == 1:
                        continue
                    out.append(ObjectState(k, obj.id, obj, obj.refcnt, self._holder_names(obj, fd_slots)))
            return out

    def _fd_slots(self):
        """open file -> [(pid, fd)] over every live task."""
        slots = {}
        for t in self.tasks:
            for fd, slot in sorted(t.fdtable.items()):
                slots.setdefault(slot[0], []).append((t.pid, fd))
        return slots

    def _holder_names(self, obj, fd_slots):
        names = []
        for h, n in obj.holders.items():
            if isinstance(h, File):
                where = fd_slots.get(h, [])
                names.extend("fd %d of task %d" % (fd, pid) for pid, fd in where)
                if h.count > len(where):
                    names.append("file #%d (no fd)" % h.serial)
            elif isinstance(h, inode.Inode):
                names.append("pin %s" % self.fs.path_of(h))
            elif isinstance(h, Kernel):
                names.append("kernel (being created)")
            elif h is BUILT_IN:
                names.append("the kernel (built in)")
            else:
                names.extend(["%s %s" % (h.kind, h.id) if hasattr(h, "kind") else repr(h)] * n)
        return names

    # -- tasks and filesystems ----------------------------------------
    def spawn(self, uid=0, caps=None):
        """A new task (process): fds 0-2 taken by a terminal, root and all caps by default."""
        uid = c_id(uid)
        with self.lock:
            t = Task(self, uid, cap_set(caps) if uid == 0 or caps is not None else frozenset())
            tty = File(None, kind="tty")
            for fd in (0, 1, 2):
                t._install(fd, tty)
            return t

    def mount_bpffs(self, path):
        with self.lock:
            self.fs.mount_bpffs(path)

    def smp_processor_id(self):
        """The CPU the running syscall runs on: its task's ``cpu`` (0 outside a syscall)."""
        cur = self.current
        return cur.cpu if cur is not None else 0

    def clock_ns(self):
        """CLOCK_MONOTONIC of this kernel, in ns (see :mod:`bpfemu.timekeeping`)."""
        return self.clock.mono

    def read_trace_pipe(self):
        """What bpf_trace_printk wrote since the last read, as the lines of /sys/kernel/tracing/trace_pipe
        (``<comm>-<pid> [cpu] ..... <seconds>: bpf_trace_printk: <text>``); reading consumes them."""
        with self.lock:
            lines, self.trace_pipe = self.trace_pipe, []
            return lines

    def next_random(self):
        """Deterministic per-kernel pseudo-random u32 (hash seeds)."""
        x = self._rand_state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rand_state = x & 0xFFFFFFFF
        return self._rand_state

    @property
    def checked_user_memory(self):
        """True when every bad pointer a task passes gives EFAULT (user memory is copied with
        process_vm_readv/writev); False where bpfemu cannot check pointers (not Linux, or those calls are
        blocked by a seccomp profile): then only the NULL page gives EFAULT and another bad pointer crashes
        the process. :attr:`user_memory_reason` says why."""
        return LOCAL.checked

    @property
    def user_memory_reason(self):
        """Why user memory is not checked ('' when it is)."""
        return LOCAL.unchecked_reason

    def describe(self):
        """What this kernel holds, in a bpftool-like text (see :mod:`bpfemu.describe`)."""
        return describe(self)


class ObjectState:
    """One live object as :meth:`Kernel.objects` sees it."""

    __slots__ = ("kind", "id", "obj", "refcnt", "holders")

    def __init__(self, kind, id, obj, refcnt, holders):
        self.kind, self.id, self.obj, self.refcnt, self.holders = kind, id, obj, refcnt, holders

    def __repr__(self):
        return "<%s id %d refcnt %d held by %s>" % (self.kind, self.id, self.refcnt,
                                                    ", ".join(self.holders) or "nothing")


class Task:
    """A process of the emulated kernel."""

    def __init__(self, kernel, uid, caps):
        self.kernel = kernel
        self.uid = uid
        self.caps = caps
        self.fdtable = {}  # fd -> [File, cloexec]
        self.next_fd = 0
        self.nofile = DEFAULT_NOFILE
        self.alive = True
        self.umask = 0o022
        self.cwd = "/"
        self.affinity = frozenset([0])
        self.pid = kernel._next_pid
        kernel._next_pid += 1
        kernel.tasks.append(self)
        self.mem = LOCAL
        self.comm = b"bpfemu"  # task->comm (what bpf_get_current_comm gives; at most 15 bytes)

    @property
    def gid(self):
        """The task's gid: its uid, as tasks are made (root, or setuid/setgid to one id)."""
        return self.uid

    def __repr__(self):
        return "<Task pid %d uid %d%s>" % (self.pid, self.uid, "" if self.alive else " exited")

    @property
    def cpu(self):
        """The CPU this task runs on (what raw_smp_processor_id() gives its syscalls): the lowest CPU of its
        affinity mask, so that a test decides it (``sched_setaffinity({cpu})``). Default CPU 0."""
        return min(self.affinity)

    def sched_setaffinity(self, cpus):
        """sched_setaffinity(0, cpus): the CPUs this task may run on (EINVAL when none of them is possible).
        The emulated task runs on the lowest of them; pin it to one CPU to match a host task exactly."""
        try:
            want = {c for c in cpus}
        except TypeError:
            raise bpf_error(errno.EFAULT, "cpus is a set of CPU numbers") from None
        if not all(isinstance(c, int) for c in want):
            raise bpf_error(errno.EINVAL, "CPU numbers are integers")
        with self.kernel.lock:
            self._check_alive()
            ok = frozenset(c for c in want if 0 <= c < self.kernel.ncpus)
            if not ok:
                raise bpf_error(errno.EINVAL, "no possible CPU in %r" % sorted(want))
            self.affinity = ok

    def sched_getaffinity(self):
        return set(self.affinity)

    # -- credentials ---------------------------------------------------
    def capable(self, cap):
        return cap in self.caps

    def bpf_capable(self):
        return CAP_BPF in self.caps or CAP_SYS_ADMIN in self.caps

    def perfmon_capable(self):
        return CAP_PERFMON in self.caps or CAP_SYS_ADMIN in self.caps

    def net_capable(self):
        return CAP_NET_ADMIN in self.caps or CAP_SYS_ADMIN in self.caps

    # -- the syscall ---------------------------------------------------
    def bpf(self, cmd, attr, size=None):
        """bpf(cmd, &attr, size): attr is a ctypes object or bytearray laid out as union bpf_attr."""
        if size is None and type(attr) is _bpf_attr and attr._b_needsfree_ == 1:
            if not self.alive:
                raise bpf_error(errno.ESRCH, "task has exited")
            # a whole attr Python owns (uapi.make_attr): its bytes cannot fault, so no checked copy
            if cmd in ELEM_FAST:
                return sys_bpf_elem(self, cmd, attr, self.mem)
            raw = bytearray(attr)
            size = owned_entry(self, cmd, raw)  # the version's entry checks and attr size
            return do_bpf(self, cmd, raw, _addressof(attr), size, self.mem)
        addr, size = attr_args(attr, size)
        self._check_alive()
        return sys_bpf(self, cmd, addr, size, self.mem, None if isinstance(attr, int) else attr)

    # map_elem(cmd, fd, key, value=None, flags=0): an element command on bytes the caller owns (what the
    # typed Map API uses on an emulated task; see bpfemu.syscall.map.map_elem_owned)
    map_elem = map_elem_owned

    def _check_alive(self):
        if not self.alive:
            raise bpf_error(errno.ESRCH, "task has exited")

    # -- fd table ------------------------------------------------------
    def _install(self, fd, file, cloexec=False):
        file.get()
        self.fdtable[fd] = [file, cloexec]

    def fd_install(self, file, cloexec=True):
        """Install an open file at the lowest free fd (EMFILE past the limit)."""
        self._check_alive()
        fd = self.next_fd
        while fd in self.fdtable:
            fd += 1
        if fd >= self.nofile:
            raise bpf_error(errno.EMFILE, "too many open files")
        self._install(fd, file, cloexec)
        self.next_fd = fd + 1
        return fd

    def fdget(self, fd):
        """The open file behind fd, or EBADF."""
        slot = self.fdtable.get(fd) if isinstance(fd, int) else None
        if slot is None:
            raise bpf_error(errno.EBADF, "fd %r is not open" % (fd,))
        return slot[0]

    def close(self, fd):
        with self.kernel.lock:
            self._check_alive()
            slot = self.fdtable.pop(fd, None)
            if slot is None:
                raise bpf_error(errno.EBADF, "fd %r is not open" % (fd,))
            if fd < self.next_fd:
                self.next_fd = fd
            slot[0].put()

    def dup(self, fd, cloexec=False):
        """dup(2) (close-on-exec clear), or fcntl(F_DUPFD_CLOEXEC) with ``cloexec``: the lowest free fd."""
        with self.kernel.lock:
            self._check_alive()
            f = self.fdget(fd)
            return self.fd_install(f, cloexec=bool(cloexec))

    def fork(self, uid=None, caps=None):
        """A child sharing every open file; with uid/caps it drops privilege right after."""
        if uid is not None:
            uid = c_id(uid)
        with self.kernel.lock:
            self._check_alive()
            child = Task(self.kernel, self.uid, self.caps)
            for fd, (f, cloexec) in sorted(self.fdtable.items()):
                child._install(fd, f, cloexec)
            child.next_fd = self.next_fd
            child.nofile = self.nofile
            child.umask, child.cwd, child.affinity = self.umask, self.cwd, self.affinity
            if uid is not None:
                child.setuid(uid, caps)
            elif caps is not None:
                child.caps = cap_set(caps)
            return child

    def setuid(self, uid, caps=None):
        """Change credentials; a non-root uid drops every capability unless caps is given."""
        uid = c_id(uid)
        with self.kernel.lock:
            self.uid = uid
            self.caps = cap_set(caps) if caps is not None else (ALL_CAPS if uid == 0 else frozenset())

    def exit(self):
        """Close every fd; the task is gone (pins and objects held elsewhere stay)."""
        with self.kernel.lock:
            if not self.alive:
                return
            for fd in sorted(self.fdtable):
                self.fdtable.pop(fd)[0].put()
            self.alive = False
            self.kernel.tasks.remove(self)

    def send_fds(self, other, fds):
        """Pass fds to another task, as SCM_RIGHTS over a unix socket; returns the new fds there."""
        with self.kernel.lock:
            self._check_alive()
            other._check_alive()
            files = [self.fdget(fd) for fd in fds]
            return [other.fd_install(f, cloexec=False) for f in files]

    def fds(self):
        """The open fds of this task, sorted."""
        return sorted(self.fdtable)

    def open_dir(self, path):
        """open(path, O_RDONLY|O_DIRECTORY): an fd of a directory, e.g. a path_fd for BPF_F_PATH_FD."""
        path = c_path(path)
        with self.kernel.lock:
            self._check_alive()
            node = self.kernel.fs.open_dir(path, self)
            f = File(None, mode=FMODE_READ, kind="dir")
            f.inode = node
            return self.fd_install(f, cloexec=False)

    # -- filesystem ------------------------------------------------------
    def mkdir(self, path, mode=0o777):
        path, mode = c_path(path), c_mode(mode)
        with self.kernel.lock:
            self._check_alive()
            self.kernel.fs.mkdir(path, mode, self)

    def rmdir(self, path):
        path = c_path(path)
        with self.kernel.lock:
            self._check_alive()
            self.kernel.fs.rmdir(path, self)

    def unlink(self, path):
        path = c_path(path)
        with self.kernel.lock:
            self._check_alive()
            self.kernel.fs.unlink(path, self)

    def rename(self, old, new, flags=0):
        """rename(2); with flags renameat2(2): RENAME_NOREPLACE (1), RENAME_EXCHANGE (2), RENAME_WHITEOUT (4)."""
        old, new, flags = c_path(old), c_path(new), c_int(flags) & 0xFFFFFFFF
        with self.kernel.lock:
            self._check_alive()
            self.kernel.fs.rename(old, new, self, flags)

    def listdir(self, path):
        path = c_path(path)
        with self.kernel.lock:
            self._check_alive()
            return self.kernel.fs.listdir(path, self)

    def stat(self, path):
        path = c_path(path)
        with self.kernel.lock:
            self._check_alive()
            return self.kernel.fs.stat(path, self)

    def lstat(self, path):
        """lstat(2): stat of path without following a symlink as its last component."""
        path = c_path(path)
        with self.kernel.lock:
            self._check_alive()
            return self.kernel.fs.stat(path, self, follow=False)

    def chmod(self, path, mode):
        """chmod(2) of path (a symlink is followed): the owner or CAP_FOWNER (EPERM)."""
        path, mode = c_path(path), c_mode(mode)
        with self.kernel.lock:
            self._check_alive()
            self.kernel.fs.chmod(path, mode, self)

    def chown(self, path, uid, gid):
        """chown(2) of path (a symlink is followed); -1 keeps an id. CAP_CHOWN for another owner (EPERM)."""
        path, uid, gid = c_path(path), c_owner(uid), c_owner(gid)
        with self.kernel.lock:
            self._check_alive()
            self.kernel.fs.chown(path, uid, gid, self)

    def symlink(self, target, path):
        """symlink(2): a symbolic link at path whose body is target (not checked until followed)."""
        target, path = c_path(target), c_path(path)
        with self.kernel.lock:
            self._check_alive()
            self.kernel.fs.symlink(target, path, self)

    def readlink(self, path):
        """readlink(2): the body of the symbolic link at path (EINVAL for anything else)."""
        path = c_path(path)
        with self.kernel.lock:
            self._check_alive()
            return self.kernel.fs.readlink(path, self)

    def statfs(self, path):
        path = c_path(path)
        with self.kernel.lock:
            self._check_alive()
            return self.kernel.fs.statfs(path, self)

    def fdinfo(self, fd):
        """The text of /proc/self/fdinfo/<fd> (ENOENT, as opening that file, when fd is not open)."""
        with self.kernel.lock:
            slot = self.fdtable.get(fd) if isinstance(fd, int) else None
            if slot is None:
                raise bpf_error(errno.ENOENT, "/proc/self/fdinfo/%r: fd not open" % (fd,))
            return fdinfo(slot[0], slot[1])

    def mmap(self, fd, length, offset=0, writable=True):
        """mmap(MAP_SHARED) of a map fd: a :class:`bpfemu.surface.Mapping` sharing the map's memory."""
        return bpf_map_mmap(self, fd, length, offset, writable)
