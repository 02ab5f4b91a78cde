"""The agent inside a VM guest: relays the host's RPC streams to guest tasks over one serial port.

Run as the guest's first process (through :mod:`bpfemu.host.vm.guest_boot`) after the
launcher's init has made the host's root (shared read-only over 9p) its root (switch_root) with proc, sysfs,
devtmpfs, a tmpfs on /tmp and bpffs on /sys/fs/bpf mounted.

Each guest task is a process forked from this agent that runs the host child loop of
:mod:`bpfemu.host.rpc` (``start_serving``) on its own serial port or a unix socket, exactly as
``Host().spawn()``'s children do; the agent copies bytes between that socket and the task's channel on the port
(see :mod:`bpfemu.host.vm.wire`), and keeps the fds tasks pass (SCM_RIGHTS) under handles.

Control requests (channel 0, pickled tuples; each answered with ("ok", value) or ("err", errno)):
("spawn", uid, caps, port, ns) -> (channel or None, pid) of a new task, which talks on the task port
named ``port`` when one is given (see PortSock), else through the agent, in the mount namespace of
handle ``ns`` (or the guest's own); ("namespace",) -> handle of a new mount namespace with a fresh
bpffs at /sys/fs/bpf; ("alive", pid);
("attach", handle) -> channel of the socket behind a handle (a task's fork); ("release", [handles]);
("mount_bpffs", path or None) -> path of a fresh private bpffs; ("umount", path); ("os", name, args)
-> os.<name>(*args) run by the agent (root, for the harness's own setup); ("mmap", handle, length,
offset, writable) -> (id, page frames); ("munmap", id);
("poweroff",). The agent announces itself with ("hello", facts) on channel 0.
"""
import ctypes
import errno
import os
import pickle
import select
import signal
import socket
import struct
import sys
import tempfile
import time

from bpfemu.host import libc as hostlibc
from bpfemu.host import rpc
from bpfemu.host import sysinfo
from bpfemu.host.task import _make_namespace
from bpfemu.host.vm import wire

MAX_FDS = 253  # SCM_MAX_FD
PAGE = 4096


def _side_call(addr, req, fds=(), want_fds=0):
    """One request on the agent's fd side channel (an abstract unix socket): deposit or withdraw fds."""
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # out of the way of the task's own fds (which a test counts), next to its RPC fd
    os.dup2(c.fileno(), rpc.RPC_FD + 1)
    c.close()
    c = socket.socket(fileno=rpc.RPC_FD + 1)
    try:
        c.connect(addr)
        rpc.send(c, req, fds=fds)
        return rpc.recv(c, want_fds=want_fds)
    finally:
        c.close()


class PortSock:
    """The socket a guest task serves the host child protocol on, over its own virtio-serial port.

    A spawned task talks to the host directly on a port of its own (no relay through the agent: under
    TCG every switch between processes flushes the soft TLB, and the relay cost two of them each way).
    Bytes travel in frames (:mod:`bpfemu.host.vm.wire`); fds cannot cross the port, so those the task sends
    are deposited with the agent (over a short-lived unix socket) and travel as handles, and handles
    that arrive are withdrawn from the agent as fds, so ``socket.send_fds``/``recv_fds`` work as on a
    socketpair. The port is kept at ``rpc.RPC_FD``, where the task keeps its end of the conversation.
    """

    def __init__(self, fd, agent_addr):
        self.fd = fd
        self.agent = agent_addr
        self.reader = wire.Reader()
        self.pending = []  # (data, handles) not consumed yet

    def fileno(self):
        return self.fd

    def detach(self):
        fd, self.fd = self.fd, -1
        return fd

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _write(self, data, handles=()):
        buf = memoryview(wire.encode(0, bytes(data), handles))
        while buf:
            buf = buf[os.write(self.fd, buf):]

    def sendall(self, data):
        self._write(data)

    def sendmsg(self, buffers, ancdata=(), flags=0, address=None):
        fds = []
        for level, typ, payload in ancdata:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds += list(memoryview(bytes(payload)).cast("i"))
        data = b"".join(bytes(b) for b in buffers)
        handles = _side_call(self.agent, ("deposit", len(fds)), fds=fds) if fds else []
        if isinstance(handles, tuple):  # ("err", errno): a bad fd, as sendmsg would say
            raise OSError(handles[1], os.strerror(handles[1]))
        self._write(data, handles)
        return len(data)

    def _take(self, n):
        while not self.pending:
            chunk = os.read(self.fd, 1 << 18)
            if not chunk:
                return b"", []
            self.reader.feed(chunk)
            self.pending += [(d, h) for _c, d, h in self.reader.frames()]
        data, handles = self.pending.pop(0)
        if len(data) > n:
            self.pending.insert(0, (data[n:], []))
            data = data[:n]
        return data, handles

    def recv(self, n):
        data, _handles = self._take(n)
        return data

    def recvmsg(self, bufsize, ancbufsize=0, flags=0):
        import array
        data, handles = self._take(bufsize)
        anc = []
        if handles:
            _msg, fds = _side_call(self.agent, ("withdraw", handles), want_fds=len(handles))
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        return data, anc, 0, None


class Agent:
    def __init__(self, port_path):
        self.port = os.open(port_path, os.O_RDWR)
        self.side = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.side_addr = "\0bpfemu-agent-%d" % os.getpid()
        self.side.bind(self.side_addr)
        self.side.listen(16)
        self.task_ports = _task_ports()
        self.reader = wire.Reader()
        self.tasks = {}  # chan -> socket
        self.by_sock = {}  # fileno -> chan
        self.handles = {}  # handle -> fd
        self.next_chan = 1
        self.next_handle = 1
        self.mounts = []
        self.mappings = {}

    # -- the port ---------------------------------------------------------------
    def write(self, chan, data, handles=()):
        buf = memoryview(wire.encode(chan, data, handles))
        while buf:
            n = os.write(self.port, buf)
            buf = buf[n:]

    def reply(self, obj):
        self.write(wire.CONTROL, pickle.dumps(obj))

    # -- tasks ------------------------------------------------------------------
    def add_task(self, sock):
        chan = self.next_chan
        self.next_chan += 1
        self.tasks[chan] = sock
        self.by_sock[sock.fileno()] = chan
        return chan

    def spawn(self, uid, caps, port=None, ns=None):
        """A new task: (channel, pid), channel None when it talks on its own port (a task port name).

        ``ns`` is the handle of a mount namespace (see ``namespace``) the task enters first, or None for
        the guest's own."""
        ns_fd = self.handles[ns] if ns is not None else None
        if port is not None:
            return None, self.spawn_on_port(uid, caps, self.task_ports[port], ns_fd)
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            try:
                _enter(ns_fd)
                os.dup2(b.fileno(), rpc.RPC_FD)
                os.closerange(3, rpc.RPC_FD)
                os.closerange(rpc.RPC_FD + 1, 65536)
                rpc.start_serving(socket.socket(fileno=rpc.RPC_FD), uid, caps)
            finally:
                os._exit(1)
        b.close()
        return self.add_task(a), pid

    def spawn_on_port(self, uid, caps, path, ns_fd):
        pid = os.fork()
        if pid == 0:
            try:
                _enter(ns_fd)
                fd = None
                for _try in range(200):  # the port's previous task may not have closed it yet
                    try:
                        fd = os.open(path, os.O_RDWR)
                        break
                    except OSError as e:
                        if e.errno != errno.EBUSY:
                            raise
                        time.sleep(0.01)
                os.dup2(fd, rpc.RPC_FD)
                os.closerange(3, rpc.RPC_FD)
                os.closerange(rpc.RPC_FD + 1, 65536)
                rpc.start_serving(PortSock(rpc.RPC_FD, self.side_addr), uid, caps)
            finally:
                os._exit(1)
        return pid

    def namespace(self):
        """A new mount namespace with a fresh bpffs at /sys/fs/bpf (as a ``Host()``'s tasks have): a handle of
        its fd; the namespace lives while the handle or a task in it does."""
        old = signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # _make_namespace waits for its helper child
        try:
            fd, why = _make_namespace()
        finally:
            signal.signal(signal.SIGCHLD, old)
        if fd is None:
            raise OSError(errno.EPERM, why)
        return self.deposit(fd)

    def deposit(self, fd):
        h = self.next_handle
        self.next_handle += 1
        self.handles[h] = fd
        return h

    def side_request(self):
        """Serve one request on the fd side channel: ("deposit", n) + fds -> handles; ("withdraw", handles)."""
        c, _ = self.side.accept()
        try:
            (req, fds) = rpc.recv(c, want_fds=MAX_FDS)
            if req[0] == "deposit":
                rpc.send(c, [self.deposit(fd) for fd in fds])
            elif req[0] == "withdraw":
                rpc.send(c, ("fds", None), fds=[self.handles[h] for h in req[1]])
        except (OSError, EOFError, KeyError):
            pass
        finally:
            c.close()

    def from_task(self, chan):
        sock = self.tasks[chan]
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, MAX_FDS)
        except OSError:
            data, fds = b"", []
        if not data:
            for fd in fds:
                os.close(fd)
            self.drop(chan)
            self.reply(("closed", chan))
            return
        self.write(chan, data, [self.deposit(fd) for fd in fds])

    def to_task(self, chan, data, handles):
        sock = self.tasks.get(chan)
        if sock is None:
            return  # the task is gone; the host learns it from the ("closed", chan) already sent
        try:
            if handles:
                socket.send_fds(sock, [data], [self.handles[h] for h in handles])
            else:
                sock.sendall(data)
        except OSError:
            self.drop(chan)
            self.reply(("closed", chan))

    def drop(self, chan):
        sock = self.tasks.pop(chan, None)
        if sock is not None:
            self.by_sock.pop(sock.fileno(), None)
            sock.close()

    # -- control ------------------------------------------------------------------
    def control(self, req):
        op = req[0]
        if op == "spawn":
            return self.spawn(*req[1:])
        if op == "namespace":
            return self.namespace()
        if op == "alive":
            try:
                with open("/proc/%d/stat" % req[1]) as f:
                    return f.read().split(") ")[-1][:1] != "Z"
            except OSError:
                return False
        if op == "attach":
            fd = self.handles.pop(req[1])
            return self.add_task(socket.socket(fileno=fd))
        if op == "release":
            for h in req[1]:
                fd = self.handles.pop(h, None)
                if fd is not None:
                    os.close(fd)
            return None
        if op == "close_chan":
            self.drop(req[1])
            return None
        if op == "mount_bpffs":
            path = req[1] if len(req) > 1 and req[1] else tempfile.mkdtemp(prefix="bpfemu-bpffs-")
            os.makedirs(path, exist_ok=True)
            hostlibc.mount("bpf", path, "bpf")
            self.mounts.append(path)
            return path
        if op == "umount":
            hostlibc.umount(req[1])
            os.rmdir(req[1])
            return None
        if op == "os":
            fn = getattr(os, req[1])
            r = fn(*req[2])
            return tuple(r) if isinstance(r, os.stat_result) else r
        if op == "mmap":
            return self.mmap(*req[1:])
        if op == "munmap":
            addr, length = self.mappings.pop(req[1])
            hostlibc.libc().munmap(ctypes.c_void_p(addr), ctypes.c_size_t(length))
            return None
        if op == "poweroff":
            os.sync()
            libc = ctypes.CDLL(None, use_errno=True)
            libc.reboot(0x4321FEDC)  # LINUX_REBOOT_CMD_POWER_OFF
            return None
        raise OSError(errno.EINVAL, "unknown control request %r" % (op,))

    def mmap(self, handle, length, offset, writable):
        """mmap(MAP_SHARED) of the fd behind handle, kept here; (id, [guest page frame of each page]).

        The host maps those frames of the guest's RAM (a shared file) to see the same memory."""
        fd = self.handles.pop(handle)
        lib = hostlibc.libc()
        try:
            p = lib.mmap(None, length, 3 if writable else 1, 1, fd, offset)  # PROT_READ[|WRITE], MAP_SHARED
            if p in (None, ctypes.c_void_p(-1).value):
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
        finally:
            os.close(fd)  # the mapping holds the file
        pages = (length + PAGE - 1) // PAGE
        frames = []
        with open("/proc/self/pagemap", "rb") as f:
            for i in range(pages):
                for _try in range(2):
                    f.seek((p // PAGE + i) * 8)
                    entry, = struct.unpack("<Q", f.read(8))
                    if entry >> 63:  # present
                        break
                    ctypes.string_at(p + i * PAGE, 1)  # fault the page in, then look again
                frames.append(entry & ((1 << 55) - 1) if entry >> 63 else None)
        mid = self.next_handle
        self.next_handle += 1
        self.mappings[mid] = (p, length)
        return mid, frames

    def run(self):
        uname = os.uname()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        with open("/sys/devices/system/cpu/possible") as f:
            possible = f.read().strip()
        self.reply(("hello", {"release": uname.release, "version": uname.version, "possible": possible,
                              "kernel_max": sysinfo.host_kernel_max(), "memtotal": sysinfo.host_total_memory(),
                              "pid": os.getpid(), "uptime": uptime,
                              "task_ports": sorted(self.task_ports)}))
        while True:
            fds = [self.port, self.side.fileno()] + [s.fileno() for s in self.tasks.values()]
            ready, _, _ = select.select(fds, [], [])
            for fd in ready:
                if fd == self.side.fileno():
                    self.side_request()
                elif fd == self.port:
                    chunk = os.read(self.port, 1 << 16)
                    if not chunk:
                        continue  # the host side is not connected (yet, or any more)
                    self.reader.feed(chunk)
                    for chan, data, handles in self.reader.frames():
                        if chan == wire.CONTROL:
                            try:
                                res = ("ok", self.control(pickle.loads(data)))
                            except OSError as e:
                                res = ("err", e.errno or errno.EIO)
                            except Exception as e:  # never let the agent die: the guest would panic
                                res = ("err", errno.EIO, repr(e))
                            self.reply(res)
                        else:
                            self.to_task(chan, data, handles)
                else:
                    chan = self.by_sock.get(fd)
                    if chan is not None:
                        self.from_task(chan)


def _enter(ns_fd):
    """In a new task before it serves: SIGCHLD ignored (its forks are reaped by the kernel), and the mount
    namespace ``ns_fd`` entered (None: stay in the guest's own)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    if ns_fd is not None:
        hostlibc.setns(ns_fd, hostlibc.CLONE_NEWNS)
        os.chdir("/")


def _task_ports():
    """{name: /dev path} of the virtio-serial ports set aside for tasks (wire.TASK_PORT_PREFIX)."""
    out = {}
    base = "/sys/class/virtio-ports"
    for dev in os.listdir(base) if os.path.isdir(base) else ():
        try:
            with open(os.path.join(base, dev, "name")) as f:
                name = f.read().strip()
        except OSError:
            continue
        if name.startswith(wire.TASK_PORT_PREFIX):
            out[name] = "/dev/" + dev
    return out


def main(argv):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # tasks and orphaned forks are reaped by the kernel
    try:
        os.sched_setaffinity(0, {0})  # the agent and its tasks on one CPU: a wakeup on another costs an IPI
    except OSError:
        pass
    Agent(argv[0]).run()


if __name__ == "__main__":
    main(sys.argv[1:])
