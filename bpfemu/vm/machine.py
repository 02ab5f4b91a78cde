"""bpfemu.VM: the surface of ``bpfemu.Host()`` over a real kernel of another version, booted under QEMU.

``VM(kernel="6.1")`` boots the pinned kernel (see :mod:`bpfemu.vm.kernels`) and talks to the
agent in the guest (:mod:`bpfemu.vm.guest`) over one virtio-serial port. Every call runs in a
guest process: ``VM.bpf`` in the VM's main task, ``VM.spawn()``/``VM.fork()`` give further
tasks (:class:`VMTask`). A guest task runs the child loop of :mod:`bpfemu.host` unchanged --
the same protocol ``Host().spawn()`` uses over a socketpair -- so pointers inside ``attr`` are
marshalled the same way: the task asks for the memory the command reads, copies it into
guarded guest memory (an unreadable tail stays unreadable, so EFAULT stays EFAULT), runs the
syscall and sends back what the kernel wrote, which is written at the original addresses here.

Fds are guest fds (numbers in the guest task); they can travel between tasks of one VM
(``send_fds``) but not out of it. ``mmap`` of a map fd maps the guest's pages here: the guest's
RAM is a shared file, and the agent says which page frames back the guest's mapping. The paths of
``mkdir``, ``stat``... are guest paths: the guest sees the host's root read-only, with its own
/tmp, /proc, /sys and a bpffs per ``mount_bpffs()``.
"""
import collections
import errno
import pickle
import socket
import threading
import time

from .. import host
from ..errors import strerror
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

    ``host._send`` / ``host._recv`` use ``sendall``, ``recv``, ``sendmsg`` and ``recvmsg``; the
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


class VMTask(host.HostTask):
    """A process in the guest doing bpf() and fd work for us: the surface of :class:`bpfemu.host.HostTask`."""

    def __init__(self, vm, chan, pid):
        super().__init__(Channel(vm._link, chan), pid, vm.bpffs, False)
        self.vm = vm

    def fork(self, uid=None, caps=None):
        host._send(self.sock, ("fork", uid, caps))
        (status, _pid), handles = host._recv(self.sock, want_fds=1)
        chan = self.vm._link.call("attach", handles[0])
        t = VMTask.__new__(VMTask)
        host.HostTask.__init__(t, Channel(self.vm._link, chan), None, self.bpffs, False)
        t.vm = self.vm
        status, val = host._recv(t.sock)
        if status != "ok":
            raise OSError(val, strerror(val))
        t.pid = val
        self.vm._tasks.append(t)
        return t

    def send_fds(self, other, fds):
        """SCM_RIGHTS from this guest task to another task of the same VM."""
        host._send(self.sock, ("send_fds", list(fds)))
        (status, val), handles = host._recv(self.sock, want_fds=max(len(fds), 1))
        try:
            if status == "err":
                raise OSError(val, strerror(val))
            if isinstance(other, VM):
                other = other.main
            if not isinstance(other, VMTask) or other.vm is not self.vm:
                raise OSError(errno.EXDEV, "fds of a VM guest cannot leave it")
            return other._recv_fds(handles)
        finally:
            if handles:
                self.vm._link.call("release", handles)

    def mmap(self, fd, length, offset=0, writable=True):
        """mmap(MAP_SHARED) of the task's map fd, seen here through the guest's RAM.

        The task passes the fd (the same open file, so the same mode) to the agent, which maps it
        (so the mapping pins the map and counts as its writer, as the task's own would) and says
        which guest page frames back it; those pages of the guest RAM file are mapped here, in
        order, into one range: the caller reads and writes the map's memory itself."""
        host._send(self.sock, ("send_fds", [fd]))
        (status, val), handles = host._recv(self.sock, want_fds=1)
        if status == "err":
            raise OSError(val, strerror(val))
        mid, frames = self.vm._link.call("mmap", handles[0], length, offset, writable)
        return self.vm._map_frames(mid, frames, length, writable)

    def _reap(self):
        pass


class VM:
    """A real kernel of ``kernel`` version ("6.1", "6.12") in a QEMU guest, with Host()'s surface.

    ``memory_mb`` is the guest's RAM, ``cpus`` its possible CPU count (default: as many as the host
    has, so per-CPU value sizes agree; one is online), ``timeout`` how long (s) one answer may take,
    ``task_ports`` how many serial ports are set aside for tasks to talk on directly (more tasks
    than that at once talk through the agent, which costs about twice as much per call).
    Raises VMError when QEMU, busybox or the kernel is missing (``fetch=True`` fetches a missing
    pinned kernel first) or the guest does not come up. ``shutdown()`` powers the guest off.
    """

    def __init__(self, kernel="6.12", memory_mb=512, cpus=None, timeout=120, fetch=False, task_ports=24):
        self.version = kernel
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
        self.bpffs = None
        self._mounted = []
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
            self.main = self.spawn()
        except launcher.LaunchError as e:
            self._launch.cleanup()
            raise VMError(str(e)) from None
        except BaseException:
            self._launch.cleanup()
            raise
        self.release = self.facts["release"]

    def __repr__(self):
        return "<bpfemu.VM %s (%s)>" % (self.version, getattr(self, "release", "?"))

    # -- tasks ---------------------------------------------------------------------
    def spawn(self, uid=None, caps=None):
        """A fresh guest process (fds 0-2 only) as ``uid`` with ``caps``: a :class:`VMTask`.

        It talks to us on a task port of its own while there is a free one, else through the agent."""
        io = self._free_ports.pop() if self._free_ports else None
        try:
            chan, pid = self._link.call("spawn", uid, caps, io.name if io else None)
        except BaseException:
            if io is not None:
                self._free_ports.append(io)
            raise
        if io is not None:
            io.pid = pid
            sock = PortChannel(io, None)
        else:
            sock = Channel(self._link, chan)
        t = VMTask.__new__(VMTask)
        host.HostTask.__init__(t, sock, pid, self.bpffs, False)
        t.vm = self
        status, val = host._recv(t.sock)
        if status != "ok":
            t.alive = False
            sock.close()
            raise OSError(val, strerror(val))
        t.pid = val
        self._tasks.append(t)
        return t

    def fork(self, uid=None, caps=None):
        return self.main.fork(uid, caps)

    # -- the main task: Host()'s own calls ------------------------------------------
    def bpf(self, cmd, attr, size=None):
        return self.main.bpf(cmd, attr, size)

    def close(self, fd):
        self.main.close(fd)

    def dup(self, fd):
        return self.main.dup(fd)

    def fds(self):
        return self.main.fds()

    def send_fds(self, other, fds):
        return self.main.send_fds(other, fds)

    def mkdir(self, path, mode=0o777):
        self.main.mkdir(path, mode)

    def rmdir(self, path):
        self.main.rmdir(path)

    def unlink(self, path):
        self.main.unlink(path)

    def rename(self, old, new):
        self.main.rename(old, new)

    def listdir(self, path):
        return self.main.listdir(path)

    def open_dir(self, path):
        return self.main.open_dir(path)

    def stat(self, path):
        return self.main.stat(path)

    def statfs(self, path):
        return self.main.statfs(path)

    def fdinfo(self, fd):
        return self.main.fdinfo(fd)

    def mmap(self, fd, length, offset=0, writable=True):
        return self.main.mmap(fd, length, offset, writable)

    def exit(self):
        """Close every fd the main task holds (a fresh main task takes its place)."""
        old = self.main
        self.main = self.spawn()
        old.exit()

    def _map_frames(self, mid, frames, length, writable):
        import ctypes

        from ..arraymap import Mapping
        lib = host.libc()
        lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        n = len(frames) * host.PAGE
        base = lib.mmap(None, n, 0, 0x22, -1, 0)  # a PROT_NONE range to fill, PRIVATE|ANONYMOUS
        if base in (None, ctypes.c_void_p(-1).value) or None in frames:
            if base not in (None, ctypes.c_void_p(-1).value):
                lib.munmap(base, n)
            self._link.call("munmap", mid)
            raise OSError(errno.ENOMEM, "cannot map the guest pages of a mapping")
        prot = 3 if writable else 1
        for i, frame in enumerate(frames):
            p = lib.mmap(base + i * host.PAGE, host.PAGE, prot, 0x11, self._launch.ram_fd,
                         frame * host.PAGE)  # MAP_SHARED|MAP_FIXED
            if p != base + i * host.PAGE:
                lib.munmap(base, n)
                self._link.call("munmap", mid)
                raise OSError(errno.ENOMEM, "cannot map guest page frame %#x" % frame)
        view = memoryview((ctypes.c_char * length).from_address(base)).cast("B")

        def unmap():
            lib.munmap(base, n)
            if self._launch is not None and not self._link.dead:
                self._link.call("munmap", mid)
        return Mapping(view, writable, unmap)

    # -- the guest's filesystem -------------------------------------------------------
    def mount_bpffs(self, path=None):
        """Mount a private bpffs in the guest (a fresh temp dir by default) and make it self.bpffs."""
        path = self._link.call("mount_bpffs", path)
        self._mounted.append(path)
        self.bpffs = path
        for t in self._tasks:
            t.bpffs = path
        return path

    def unmount_bpffs(self, path=None):
        path = path or (self._mounted[-1] if self._mounted else None)
        if path is None:
            return
        self._link.call("umount", path)
        self._mounted.remove(path)
        if self.bpffs == path:
            self.bpffs = self._mounted[-1] if self._mounted else None

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
    import platform
    import sys
    if not sys.platform.startswith("linux") or platform.machine() != "x86_64":
        return False, "the guest runs this host's own Python and root over 9p: needs an x86_64 Linux host"
    return True, ""
