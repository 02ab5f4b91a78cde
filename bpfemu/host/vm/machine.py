"""bpfemu.VM: the surface of ``bpfemu.Host()`` over a real kernel of another version, booted under QEMU.

``VM(kernel="6.1")`` boots the pinned kernel (see :mod:`bpfemu.host.vm.kernels`) and talks to the
agent in the guest (:mod:`bpfemu.host.vm.guest`) over one virtio-serial port. Every call runs in a
guest process: ``VM.bpf`` in the VM's main task, ``VM.spawn()``/``VM.fork()`` give further
tasks (:class:`VMTask`). A guest task runs the child loop of :mod:`bpfemu.host.rpc` unchanged --
the same protocol ``Host().spawn()`` uses over a socketpair -- so pointers inside ``attr`` are
marshalled the same way: the task asks for the memory the command reads, copies it into
guarded guest memory (an unreadable tail stays unreadable, so EFAULT stays EFAULT), runs the
syscall and sends back what the kernel wrote, which is written at the original addresses here.

Fds are guest fds (numbers in the guest task); they can travel between tasks of one VM
(``send_fds``) but not out of it. ``mmap`` of a map fd maps the guest's pages here: the guest's
RAM is a shared file, and the agent says which page frames back the guest's mapping. The paths of
``mkdir``, ``stat``... are guest paths: the guest sees the host's root read-only, with its own
/tmp, /proc and /sys; as ``Host().spawn()``'s, the tasks ``spawn()`` gives share a private bpffs at
/sys/fs/bpf.

Nothing here imports the emulator (the rule of :mod:`bpfemu.host`): the guest runs this package too.
"""
import collections
import errno
import pickle
import socket
import threading
import time
import weakref

from ... import hostenv
from ...errors import strerror
from ...limits import PAGE_SIZE
from ...surface import Mapping, c_fd, c_id
from .. import rpc
from ..libc import MACHINE, libc
from ..task import BPFFS, FD_RETURNING, HostTask
from . import kernels, launcher, wire


class VMError(RuntimeError):
    """The VM cannot be started or stopped talking (QEMU, kernel or guest trouble; the message says which)."""


class _Link:
    """The host end of the serial port: frames in and out, demultiplexed into per-channel queues."""

    def __init__(self, launch, timeout):
        self.launch = launch
        self.sock = launch.sock
        self.timeout = timeout
        self.reader = wire.Reader()
        self.queues = collections.defaultdict(collections.deque)  # chan -> deque of (data, handles)
        self.closed = set()
        self.control = collections.deque()
        self.hello = None
        self.lock = threading.RLock()  # one thread at a time on the port
        self.dead = None

    def send(self, chan, data, handles=()):
        with self.lock:
            self._check()
            try:
                self.sock.sendall(wire.encode(chan, data, handles))
            except OSError as e:
                self._die("the VM's serial port failed: %s" % e)

    def _check(self):
        if self.dead:
            raise VMError(self.dead)

    def _die(self, why):
        self.dead = "%s (%s)" % (why, self.launch.why())
        raise VMError(self.dead)

    def pump(self):
        """Read one chunk from the port and queue the frames in it."""
        self._check()
        self.sock.settimeout(self.timeout)
        try:
            chunk = self.sock.recv(1 << 18)
        except socket.timeout:
            self._die("the guest did not answer within %ss" % self.timeout)
        except OSError as e:
            self._die("the VM's serial port failed: %s" % e)
        if not chunk:
            self._die("the VM went away")
        self.reader.feed(chunk)
        for chan, data, handles in self.reader.frames():
            if chan != wire.CONTROL:
                self.queues[chan].append((data, handles))
                continue
            msg = pickle.loads(data)
            if msg[0] == "closed":
                self.closed.add(msg[1])
            elif msg[0] == "hello":
                self.hello = msg[1]
            else:
                self.control.append(msg)

    def next(self, chan):
        """The next (data, handles) of a task channel, or None when the task is gone."""
        with self.lock:
            while not self.queues[chan]:
                if chan in self.closed:
                    return None
                self.pump()
            return self.queues[chan].popleft()

    def unread(self, chan, item):
        with self.lock:
            self.queues[chan].appendleft(item)

    def call(self, *req):
        """A control request to the agent; its value, or OSError with the guest's errno."""
        with self.lock:
            self.send(wire.CONTROL, pickle.dumps(req))
            while not self.control:
                self.pump()
            msg = self.control.popleft()
        if msg[0] == "err":
            raise OSError(msg[1], strerror(msg[1]) + (" (%s)" % msg[2] if len(msg) > 2 else ""))
        return msg[1]


class Channel:
    """One guest task's RPC stream, shaped like the socket the host child protocol expects.

    ``rpc.send`` / ``rpc.recv`` use ``sendall``, ``recv``, ``sendmsg`` and ``recvmsg``; the
    SCM_RIGHTS "fds" here are the agent's handles for guest fds."""

    def __init__(self, link, chan):
        self.link = link
        self.chan = chan
        self.open = True

    def sendall(self, data):
        self.link.send(self.chan, bytes(data))

    def sendmsg(self, buffers, ancdata=(), flags=0, address=None):
        handles = []
        for level, typ, payload in ancdata:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                handles += list(memoryview(bytes(payload)).cast("i"))
        data = b"".join(bytes(b) for b in buffers)
        self.link.send(self.chan, data, handles)
        return len(data)

    def _take(self, n):
        item = self.link.next(self.chan)
        if item is None:
            return b"", []
        data, handles = item
        if len(data) > n:
            self.link.unread(self.chan, (data[n:], []))
            data = data[:n]
        return data, handles

    def recv(self, n):
        data, handles = self._take(n)
        if handles:  # fds nobody asked for: drop them, as the kernel closes unreceived SCM_RIGHTS fds
            self.link.call("release", handles)
        return data

    def recvmsg(self, bufsize, ancbufsize=0, flags=0):
        import array
        data, handles = self._take(bufsize)
        anc = []
        if handles:
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", handles).tobytes())]
        return data, anc, 0, None

    def close(self):
        if self.open:
            self.open = False
            if not self.link.dead and self.chan not in self.link.closed:
                try:
                    self.link.call("close_chan", self.chan)
                except (OSError, VMError):
                    pass


class _PortIO:
    """The host end of one task port: a spawned task's own serial port, no relay through the agent."""

    def __init__(self, vm, name, sock, timeout):
        self.vm = vm
        self.name = name
        self.sock = sock
        self.timeout = timeout
        self.reader = wire.Reader()
        self.queue = collections.deque()
        self.pid = None
        self.closed = ()

    @property
    def dead(self):
        return self.vm._link.dead

    def call(self, *req):
        return self.vm._link.call(*req)

    def send(self, chan, data, handles=()):
        self.vm._link._check()
        try:
            self.sock.settimeout(self.timeout)  # (next() polls with a short one; a big message takes longer)
            self.sock.sendall(wire.encode(0, data, handles))
        except OSError as e:
            self.vm._link._die("a task port failed: %s" % e)

    def next(self, chan):
        waited = 0.0
        while not self.queue:
            self.sock.settimeout(1.0)
            try:
                chunk = self.sock.recv(1 << 18)
            except socket.timeout:
                waited += 1.0
                if self.pid is not None and not self.vm._link.call("alive", self.pid):
                    return None  # the task is gone: EOF, as on a socketpair
                if waited >= self.timeout:  # a stuck task: end it, its caller sees EOF (the VM lives on)
                    if self.pid is not None:
                        try:
                            self.vm._link.call("os", "kill", (self.pid, 9))
                        except OSError:
                            pass
                        return None
                    self.vm._link._die("a guest task did not answer within %ss" % self.timeout)
                continue
            except OSError as e:
                self.vm._link._die("a task port failed: %s" % e)
            if not chunk:
                self.vm._link._die("the VM went away")
            self.reader.feed(chunk)
            self.queue.extend((data, handles) for _c, data, handles in self.reader.frames())
        return self.queue.popleft()

    def unread(self, chan, item):
        self.queue.appendleft(item)

    def reset(self):
        """Forget what a previous task left (the guest discards its side when the port closes)."""
        self.sock.setblocking(False)
        try:
            while self.sock.recv(1 << 18):
                pass
        except (BlockingIOError, OSError):
            pass
        self.sock.setblocking(True)
        self.reader = wire.Reader()
        self.queue.clear()
        self.pid = None


class PortChannel(Channel):
    """A task's stream on its own port; closing it gives the port back to the VM."""

    def close(self):
        if self.open:
            self.open = False
            self.link.reset()
            self.link.vm._free_ports.append(self.link)


class VMTask(HostTask):
    """A process in the guest doing bpf() and fd work for us: the surface of :class:`bpfemu.host.HostTask`.

    The conversation is the host child protocol of :mod:`bpfemu.host.rpc`, on the task's own serial port
    (or relayed by the agent); the fds that travel in it are the agent's handles for guest fds."""

    def __init__(self, vm, sock, pid, bpffs):
        super().__init__(sock, pid, bpffs, False)
        self.vm = vm

    def _exchange(self, work):
        def guarded():
            try:
                return work()
            except VMError as e:  # the VM itself stopped answering: the task is gone with it
                raise EOFError(str(e)) from None
        return super()._exchange(guarded)

    def _break(self, exc):
        super()._break(exc)
        if self.pid is not None and not self.vm._link.dead:
            try:
                self.vm._link.call("os", "kill", (self.pid, 9))
            except (OSError, VMError):
                pass

    def fork(self, uid=None, caps=None):
        uid = None if uid is None else c_id(uid)  # (EINVAL for a uid no C caller could pass, as Host's)

        def work():
            rpc.send(self.sock, ("fork", uid, caps))
            (_status, _pid), handles = rpc.recv(self.sock, want_fds=1)
            return handles

        handles = self._exchange(work)
        chan = self.vm._link.call("attach", handles[0])
        t = VMTask(self.vm, Channel(self.vm._link, chan), None, self.bpffs)
        try:
            status, val = rpc.recv(t.sock)
        except (EOFError, OSError, VMError) as e:
            t.sock.close()
            raise OSError(errno.ESRCH, "%s (bpfemu: the forked guest task did not start: %s)"
                          % (strerror(errno.ESRCH), e)) from None
        if status != "ok":
            t.sock.close()
            raise OSError(val, strerror(val))
        t.pid = val
        self.vm._tasks.append(t)
        return t

    def _take_handles(self, fds):
        """Our fds ``fds`` deposited with the agent: their handles (the agent keeps the guest fds)."""
        fds = [c_fd(fd) for fd in fds]  # (EBADF for an fd no C int holds, as Host's)

        def work():
            rpc.send(self.sock, ("send_fds", list(fds)))
            return rpc.recv(self.sock, want_fds=max(len(fds), 1))

        (status, val), handles = self._exchange(work)
        if status == "err":
            if handles:
                self.vm._link.call("release", handles)
            raise OSError(val, strerror(val))
        return handles

    def send_fds(self, other, fds):
        """SCM_RIGHTS from this guest task to another task of the same VM: the new fds there."""
        if isinstance(other, VMHost):
            other = other.main
        if not isinstance(other, VMTask) or other.vm is not self.vm:
            raise OSError(errno.EXDEV, "fds of a VM guest cannot leave it")
        handles = self._take_handles(fds)
        try:
            return other._recv_fds(handles)
        finally:
            self.vm._link.call("release", handles)

    def mmap(self, fd, length, offset=0, writable=True):
        """mmap(MAP_SHARED) of the task's map fd, seen here through the guest's RAM.

        The task passes the fd (the same open file, so the same mode) to the agent, which maps it
        (so the mapping pins the map and counts as its writer, as the task's own would) and says
        which guest page frames back it; those pages of the guest RAM file are mapped here, in
        order, into one range: the caller reads and writes the map's memory itself."""
        if not isinstance(length, int) or not isinstance(offset, int):
            raise OSError(errno.EINVAL, strerror(errno.EINVAL))  # (as Host's: no C size_t/off_t)
        handles = self._take_handles([fd])
        mid, frames = self.vm._link.call("mmap", handles[0], length, offset, writable)
        return self.vm._map_frames(mid, frames, length, writable)

    def _reap(self):
        pass


class VMHost:
    """What a ``bpfemu.Host()`` is, in a VM: the guest's main task for its own calls, and tasks of its own.

    ``bpf``, ``close``, ``dup``, the filesystem calls and ``mmap`` run in the VM's main task (a guest
    process in the guest's own mount namespace, as ``Host()`` is the calling process); :meth:`exit` closes
    the fds this object opened there. The tasks :meth:`spawn` gives share a private mount namespace with a
    fresh bpffs at /sys/fs/bpf, made on first use (:attr:`private_bpffs`): nothing they pin is seen outside
    it, and it goes away with its last task after :meth:`close_namespace` (or when this object is
    collected). ``VM.host()`` gives another one, as ``Host()`` does on the machine."""

    def __init__(self, vm):
        self.vm = vm
        self.bpffs = None
        self._opened = set()
        self._ns = None
        self._ns_lock = threading.Lock()
        self._ns_finalizer = None

    # -- the tasks' namespace ----------------------------------------------------------
    def _namespace(self):
        with self._ns_lock:
            if self._ns is None:
                self._ns = self.vm._link.call("namespace")
                self._ns_finalizer = weakref.finalize(self, self.vm._release_later, self._ns)
            return self._ns

    @property
    def private_bpffs(self):
        """(True, '') once this Host's tasks have their own bpffs at /sys/fs/bpf (the guest agent is root)."""
        self._namespace()
        return True, ""

    def close_namespace(self):
        """Let go of the tasks' namespace: it, its bpffs and their pins end with the last task in it."""
        with self._ns_lock:
            fin, self._ns_finalizer, self._ns = self._ns_finalizer, None, None
        if fin is not None:
            fin()

    def spawn(self, uid=None, caps=None):
        """A fresh guest process (fds 0-2 only) as ``uid`` with ``caps``: a :class:`VMTask` whose bpffs is this
        Host's tasks' private one at /sys/fs/bpf (as ``Host().spawn()``'s)."""
        return self.vm._spawn(None if uid is None else c_id(uid), caps, self._namespace(), BPFFS)

    def fork(self, uid=None, caps=None):
        """A copy of the main task with its fds, in the tasks' namespace."""
        return self.main.fork(uid, caps)

    # -- the main task: Host()'s own calls ------------------------------------------
    @property
    def main(self):
        return self.vm._main

    def bpf(self, cmd, attr, size=None):
        r = self.main.bpf(cmd, attr, size)
        if cmd in FD_RETURNING:
            self._opened.add(r)
        return r

    def close(self, fd):
        self.main.close(fd)
        self._opened.discard(fd)

    def dup(self, fd, cloexec=False):
        r = self.main.dup(fd, cloexec)
        self._opened.add(r)
        return r

    def exit(self):
        """Close every fd this Host opened in the main task (the main task lives on)."""
        for fd in sorted(self._opened):
            try:
                self.main.close(fd)
            except OSError:
                pass
        self._opened.clear()

    def fds(self):
        return self.main.fds()

    def send_fds(self, other, fds):
        return self.main.send_fds(other, fds)

    def _recv_fds(self, handles):
        return self.main._recv_fds(handles)

    def mkdir(self, path, mode=0o777):
        self.main.mkdir(path, mode)

    def rmdir(self, path):
        self.main.rmdir(path)

    def unlink(self, path):
        self.main.unlink(path)

    def rename(self, old, new, flags=0):
        self.main.rename(old, new, flags)

    def listdir(self, path):
        return self.main.listdir(path)

    def open_dir(self, path):
        r = self.main.open_dir(path)
        self._opened.add(r)
        return r

    def stat(self, path):
        return self.main.stat(path)

    def lstat(self, path):
        return self.main.lstat(path)

    def symlink(self, target, path):
        self.main.symlink(target, path)

    def chmod(self, path, mode):
        self.main.chmod(path, mode)

    def chown(self, path, uid, gid):
        self.main.chown(path, uid, gid)

    def readlink(self, path):
        return self.main.readlink(path)

    def sched_setaffinity(self, cpus):
        self.main.sched_setaffinity(cpus)

    def sched_getaffinity(self):
        return self.main.sched_getaffinity()

    def statfs(self, path):
        return self.main.statfs(path)

    def fdinfo(self, fd):
        return self.main.fdinfo(fd)

    def mmap(self, fd, length, offset=0, writable=True):
        return self.main.mmap(fd, length, offset, writable)

    def mount_bpffs(self, path=None):
        """Mount a bpffs in the guest (a fresh temp dir by default) and make it self.bpffs."""
        path = self.vm._link.call("mount_bpffs", path)
        self.bpffs = path
        self._mounted = path
        return path

    def unmount_bpffs(self):
        path, self._mounted = getattr(self, "_mounted", None), None
        if path is not None:
            self.vm._link.call("umount", path)
            if self.bpffs == path:
                self.bpffs = None


class VM(VMHost):
    """A real kernel of ``kernel`` version ("6.1", "6.12") in a QEMU guest, with Host()'s surface.

    ``memory_mb`` is the guest's RAM, ``cpus`` its possible CPU count (default: as many as the host
    has, so per-CPU value sizes agree; one is online), ``timeout`` how long (s) one answer may take,
    ``task_ports`` how many serial ports are set aside for tasks to talk on directly (more tasks
    than that at once talk through the agent, which costs about twice as much per call).
    Raises VMError when QEMU, busybox or the kernel is missing (``fetch=True`` fetches a missing
    pinned kernel first) or the guest does not come up. ``shutdown()`` powers the guest off.

    The VM is a :class:`VMHost` itself (``bpf`` and the fd and file calls in the guest's main task,
    ``spawn()`` tasks with a private bpffs at /sys/fs/bpf); :meth:`host` gives more of them, each with
    a namespace of its own, as each ``bpfemu.Host()`` has on the machine.
    """

    def __init__(self, kernel="6.12", memory_mb=512, cpus=None, timeout=120, fetch=False, task_ports=24):
        VMHost.__init__(self, self)
        self.version = kernel
        self._launch = None
        k = kernels.cached(kernel)
        if k is None:
            if not fetch:
                raise VMError("kernel %s is not in the cache %s: run tools/fetch_kernels.py %s" % (
                    kernel, kernels.kernel_dir(kernel), kernel))
            try:
                k = kernels.fetch(kernel)
            except kernels.KernelUnavailable as e:
                raise VMError(str(e)) from None
        self.kernel = k
        t0 = time.monotonic()
        try:
            self._launch = launcher.Launch(k, memory_mb=memory_mb, cpus=cpus, timeout=timeout,
                                           task_ports=task_ports)
        except launcher.LaunchError as e:
            raise VMError(str(e)) from None
        self._link = _Link(self._launch, timeout)
        self._free_ports = []
        self._tasks = []
        self._releases = []  # handles whose owners were collected, released at the next spawn
        try:
            with self._link.lock:
                while self._link.hello is None:
                    self._link.pump()
            self.facts = self._link.hello
            want = "0" if self._launch.cpus == 1 else "0-%d" % (self._launch.cpus - 1)
            if self.facts.get("possible") != want:
                raise launcher.LaunchError("the guest has possible CPUs %s, not %s: per-CPU sizes would differ"
                                           % (self.facts.get("possible"), want))
            self._launch.check_ram()
            socks = self._launch.connect_task_ports()
            self._free_ports = [_PortIO(self, name, socks[name], timeout)
                                for name, _p in reversed(self._launch.task_paths)
                                if name in socks and name in self.facts.get("task_ports", [])]
            self.boot_seconds = time.monotonic() - t0
            self._main = self._spawn(None, None, None, None)
        except launcher.LaunchError as e:
            self._launch.cleanup()
            raise VMError(str(e)) from None
        except BaseException:
            self._launch.cleanup()
            raise
        self.release = self.facts["release"]

    def __repr__(self):
        return "<bpfemu.VM %s (%s)>" % (self.version, getattr(self, "release", "?"))

    def host(self):
        """A fresh :class:`VMHost` of this VM: what ``bpfemu.Host()`` is on the machine."""
        return VMHost(self)

    @property
    def kernel_max(self):
        """The guest kernel's highest CPU number (/sys/devices/system/cpu/kernel_max: CONFIG_NR_CPUS - 1)."""
        return self.facts.get("kernel_max")

    @property
    def total_memory(self):
        """The guest's RAM in bytes as its kernel counts it (MemTotal)."""
        return self.facts.get("memtotal")

    @property
    def bpf_preload(self):
        """Whether the kernel was built with CONFIG_BPF_PRELOAD (a fresh bpffs lists maps.debug, progs.debug)."""
        return kernels.config_option(self.kernel, "CONFIG_BPF_PRELOAD") == "y"

    # -- tasks ---------------------------------------------------------------------
    def _release_later(self, handle):
        """A finalizer's release of an agent handle: queued (a finalizer may run inside a conversation)."""
        self._releases.append(handle)

    def _spawn(self, uid, caps, ns, bpffs):
        """A fresh guest process as ``uid`` with ``caps``, in the namespace behind handle ``ns`` (None: the
        guest's own). It talks to us on a task port of its own while there is a free one, else through the
        agent."""
        while self._releases:
            self._link.call("release", [self._releases.pop()])
        io = self._free_ports.pop() if self._free_ports else None
        try:
            chan, pid = self._link.call("spawn", uid, caps, io.name if io else None, ns)
        except BaseException:
            if io is not None:
                self._free_ports.append(io)
            raise
        if io is not None:
            io.pid = pid
            sock = PortChannel(io, None)
        else:
            sock = Channel(self._link, chan)
        t = VMTask(self, sock, pid, bpffs)
        try:
            status, val = rpc.recv(t.sock)
        except (EOFError, OSError) as e:
            t.alive = False
            sock.close()
            raise OSError(errno.ESRCH, "%s (bpfemu: the guest task did not start: %s)"
                          % (strerror(errno.ESRCH), e)) from None
        if status != "ok":
            t.alive = False
            sock.close()
            raise OSError(val, strerror(val))
        t.pid = val
        self._tasks = [x for x in self._tasks if x.alive]
        self._tasks.append(t)
        return t

    def _map_frames(self, mid, frames, length, writable):
        import ctypes
        lib = libc()
        n = len(frames) * PAGE_SIZE
        base = lib.mmap(None, n, 0, 0x22, -1, 0)  # a PROT_NONE range to fill, PRIVATE|ANONYMOUS
        if base in (None, ctypes.c_void_p(-1).value) or None in frames:
            if base not in (None, ctypes.c_void_p(-1).value):
                lib.munmap(base, n)
            self._link.call("munmap", mid)
            raise OSError(errno.ENOMEM, "cannot map the guest pages of a mapping")
        prot = 3 if writable else 1
        for i, frame in enumerate(frames):
            p = lib.mmap(base + i * PAGE_SIZE, PAGE_SIZE, prot, 0x11, self._launch.ram_fd,
                         frame * PAGE_SIZE)  # MAP_SHARED|MAP_FIXED
            if p != base + i * PAGE_SIZE:
                lib.munmap(base, n)
                self._link.call("munmap", mid)
                raise OSError(errno.ENOMEM, "cannot map guest page frame %#x" % frame)
        view = memoryview((ctypes.c_char * length).from_address(base)).cast("B")

        def unmap():
            lib.munmap(base, n)
            if self._launch is not None and not self._link.dead:
                self._link.call("munmap", mid)
        return Mapping(view, writable, unmap)

    def agent_call(self, op, *args):
        """A control request run by the guest agent (root): e.g. ("os", "mkdir", (path,))."""
        return self._link.call(op, *args)

    # -- the machine ----------------------------------------------------------------------
    def rss_kib(self):
        return self._launch.rss_kib()

    def shutdown(self, timeout=20):
        """End every task, power the guest off (QEMU is killed if it does not stop in ``timeout`` s)."""
        if self._launch is None:
            return
        try:
            for t in self._tasks:
                if t.alive:
                    try:
                        t.exit()
                    except (OSError, EOFError, VMError):
                        pass
            try:
                self._link.send(wire.CONTROL, pickle.dumps(("poweroff",)))
            except VMError:
                pass
            self._launch.wait(timeout)
        finally:
            self._launch.cleanup()
            self._launch = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def __del__(self):
        try:
            if getattr(self, "_launch", None) is not None:
                self._launch.cleanup()
        except Exception:
            pass


def available(kernel):
    """(True, '') when a VM of ``kernel`` can be started here (QEMU, busybox, cached kernel), else (False, why)."""
    if not hostenv.is_linux():
        return False, hostenv.not_linux_reason()
    try:
        launcher.find_qemu()
        launcher.find_busybox()
    except launcher.LaunchError as e:
        return False, str(e)
    if kernel not in kernels.PINS:
        return False, "no pinned kernel %r (pinned: %s)" % (kernel, ", ".join(kernels.PINS))
    if kernels.cached(kernel) is None:
        return False, "kernel %s not in the cache %s (run tools/fetch_kernels.py %s)" % (
            kernel, kernels.kernel_dir(kernel), kernel)
    if MACHINE != "x86_64":
        return False, "the guest runs this host's own Python and root over 9p: needs an x86_64 Linux host"
    return True, ""
