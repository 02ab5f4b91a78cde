"""``bpfemu exec --state-dir DIR``: one emulated kernel kept alive between invocations, as a machine keeps
/sys/fs/bpf.

The first ``bpfemu exec --state-dir DIR -- CMD`` starts a small daemon (``python3 -m bpfemu.exec.daemon
DIR``) that owns a :class:`bpfemu.Kernel` and a :class:`~bpfemu.exec.supervisor.Session`, and listens on
``DIR/kernel.sock``; every ``bpfemu exec --state-dir DIR`` after it, including the first, is a client that
asks the daemon to run its command. Pins, the maps they hold, bpffs directories and object ids therefore
survive from one invocation to the next, until ``bpfemu exec --state-dir DIR --stop`` (or SIGTERM to the
daemon).

The daemon starts the command itself (under the trampoline, as :func:`bpfemu.exec.run` does), with the
client's standard streams, environment and working directory, so that the supervisor is an ancestor of
every process it serves: reading their memory (process_vm_readv, pidfd_getfd) then needs no more than the
Yama ptrace scope 1 that many distributions set. The client waits for the status and forwards SIGINT,
SIGTERM, SIGHUP and SIGQUIT to the command's process group; if the client goes away first, the group gets
SIGHUP, as from a terminal that hung up.

Files in DIR: ``kernel.sock`` (the daemon's socket, mode 0600), ``daemon.log`` (its diagnostics),
``daemon.lock`` (serializes starting it), ``dirs/`` (the real directories standing for bpffs directories).
One user per DIR: the daemon can only serve processes it may trace.

Protocol (SOCK_SEQPACKET, one JSON object per message): ``{"op": "run", "argv", "env", "cwd", "uid", "caps",
"debug", "ncpus"}`` with the client's stdin, stdout and stderr as SCM_RIGHTS, answered by ``{"pid": P}``
then ``{"status": S}`` (subprocess's convention: negative for a signal), or ``{"errno": E, "error": text}``;
``{"op": "info"}`` -> ``{"pid", "ncpus", "trees"}``; ``{"op": "stop"}`` -> ``{"stopping": true}``, and the
connection closes when the daemon has exited.
"""
import argparse
import errno
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback

from ..kernel import Kernel
from .supervisor import Session

SOCK = "kernel.sock"
LOG = "daemon.log"
LOCK = "daemon.lock"
DIRS = "dirs"
MAX_MSG = 1 << 20
START_TIMEOUT = 30.0
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


# -- the wire ------------------------------------------------------------------------------------------------
def _send(sock, obj, fds=()):
    data = json.dumps(obj).encode("ascii")  # ensure_ascii keeps undecodable bytes (surrogates) as escapes
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def _recv(sock, maxfds=0):
    """(message, fds), or (None, []) when the peer closed."""
    if maxfds:
        data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MSG, maxfds)
    else:
        data, fds = sock.recv(MAX_MSG), []
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data.decode("ascii")), fds


def _sock_path(dirfd):
    # through the directory's fd: a socket path is limited to 108 bytes, DIR may be longer
    return "/proc/self/fd/%d/%s" % (dirfd, SOCK)


def _connect(state_dir):
    """A connection to DIR's daemon, or None when none is listening."""
    dfd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            s.connect(_sock_path(dfd))
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            return None
        except BaseException:
            s.close()
            raise
        return s
    finally:
        os.close(dfd)


# -- the client --------------------------------------------------------------------------------------------
def connect(state_dir, ncpus=None, start=True):
    """A connection to the daemon of state_dir, starting one (with ``ncpus`` CPUs) if none runs and start is
    true; None if none runs and start is false."""
    state_dir = os.path.abspath(state_dir)
    s = _connect(state_dir) if os.path.isdir(state_dir) else None
    if s is not None or not start:
        return s
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    lock = os.open(os.path.join(state_dir, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        s = _connect(state_dir)  # another client may have started it meanwhile
        if s is None:
            _start(state_dir, ncpus)
            s = _connect(state_dir)
        if s is None:
            raise OSError(errno.ECONNREFUSED, "the bpfemu exec daemon of %s does not answer" % state_dir)
        return s
    finally:
        os.close(lock)


def _start(state_dir, ncpus):
    """Start the daemon of state_dir and wait until it listens (its socket is bound)."""
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([pkg_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    r, w = os.pipe()
    cmd = [sys.executable, "-m", "bpfemu.exec.daemon", "--ready-fd", str(w)]
    if ncpus is not None:
        cmd += ["--ncpus", str(ncpus)]
    log = os.open(os.path.join(state_dir, LOG), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        subprocess.Popen(cmd + [state_dir], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                         pass_fds=[w], cwd="/", env=env, start_new_session=True)
    finally:
        os.close(w)
        os.close(log)
    try:
        ready = b""
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                break
            chunk = os.read(r, 64)
            if not chunk:
                break
            ready += chunk
    finally:
        os.close(r)
    if ready != b"ready\n":
        raise OSError(errno.EIO, "the bpfemu exec daemon of %s did not start (see %s)"
                      % (state_dir, os.path.join(state_dir, LOG)))


def _std_fd(stream, default, opened):
    if stream is None:
        return default
    if stream == subprocess.DEVNULL:
        fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        opened.append(fd)
        return fd
    if isinstance(stream, int):
        if stream < 0:
            raise ValueError("with state_dir, stdin/stdout/stderr are None, DEVNULL, a file or an fd "
                             "(stderr also STDOUT; not PIPE)")
        return stream
    return stream.fileno()


def run_attached(state_dir, argv, ncpus=None, uid=0, caps=None, env=None, cwd=None, stdin=None, stdout=None,
                 stderr=None, debug=False):
    """Run argv on the kernel of state_dir's daemon (started if needed); returns its status as subprocess
    does. See :func:`bpfemu.exec.run`."""
    opened = []
    sock = connect(state_dir, ncpus)
    try:
        fds = [_std_fd(stdin, 0, opened), _std_fd(stdout, 1, opened)]
        fds.append(fds[1] if stderr == subprocess.STDOUT else _std_fd(stderr, 2, opened))
        env = dict(os.environ) if env is None else {os.fsdecode(k): os.fsdecode(v) for k, v in env.items()}
        msg = {"op": "run", "argv": [os.fsdecode(a) for a in argv], "env": env,
               "cwd": os.path.abspath(os.fsdecode(cwd) if cwd is not None else os.getcwd()),
               "uid": uid, "caps": list(caps) if caps is not None else None, "debug": bool(debug), "ncpus": ncpus}
        _send(sock, msg, fds)
        for fd in opened:
            os.close(fd)
        opened = []
        reply, _ = _recv(sock)
        if reply is None:
            raise OSError(errno.ECONNRESET, "the bpfemu exec daemon of %s went away" % state_dir)
        if "errno" in reply:
            raise OSError(reply["errno"], reply["error"])
        pid = reply["pid"]

        def forward(sig, _frame):
            try:
                os.killpg(pid, sig)
            except OSError:
                pass

        saved = {}
        if _main_thread():
            for sig in FORWARDED:
                saved[sig] = signal.signal(sig, forward)
        try:
            while True:
                try:
                    reply, _ = _recv(sock)
                    break
                except InterruptedError:  # pragma: no cover - PEP 475 retries recv
                    continue
        finally:
            for sig, h in saved.items():
                signal.signal(sig, h)
        if reply is None:
            raise OSError(errno.ECONNRESET, "the bpfemu exec daemon of %s went away" % state_dir)
        return reply["status"]
    finally:
        for fd in opened:
            os.close(fd)
        sock.close()


def _main_thread():
    import threading
    return threading.current_thread() is threading.main_thread()


def info(state_dir):
    """{"pid", "ncpus", "trees"} of state_dir's daemon, or None when none runs."""
    sock = connect(state_dir, start=False)
    if sock is None:
        return None
    with sock:
        _send(sock, {"op": "info"})
        reply, _ = _recv(sock)
        return reply


def stop(state_dir, wait=True):
    """Ask state_dir's daemon to exit once the commands it runs are done; True if one was running. With wait,
    return when it has exited."""
    sock = connect(state_dir, start=False)
    if sock is None:
        return False
    with sock:
        _send(sock, {"op": "stop"})
        reply, _ = _recv(sock)
        if wait and reply is not None:
            while sock.recv(MAX_MSG):
                pass
    return True


# -- the daemon --------------------------------------------------------------------------------------------
class _Run:
    """A command the daemon runs for a client: its tree, the client's connection (None once it hung up), and
    the client's stderr for the supervisor's diagnostics."""

    __slots__ = ("tree", "conn", "errout")

    def __init__(self, tree, conn, errout):
        self.tree, self.conn, self.errout = tree, conn, errout


class Daemon:
    """The kernel of one state directory and the clients attached to it."""

    def __init__(self, state_dir, ncpus=None):
        self.state_dir = os.path.abspath(state_dir)
        self.kernel = Kernel(ncpus=ncpus)
        dirs = os.path.join(self.state_dir, DIRS)
        shutil.rmtree(dirs, ignore_errors=True)
        os.makedirs(dirs, mode=0o755)
        self.session = Session(self.kernel, dirs)
        self.dirfd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        path = _sock_path(self.dirfd)
        try:
            os.unlink(path)  # a dead daemon's (connect() found nobody listening, under the lock)
        except FileNotFoundError:
            pass
        old = os.umask(0o177)
        try:
            self.listener.bind(path)
        finally:
            os.umask(old)
        self.listener.listen(16)
        self.ident = os.stat(path).st_ino
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # signals wake the loop
        self.epoll = select.epoll()
        for fd in (self.listener.fileno(), self.session.fileno(), self.wake_r):
            self.epoll.register(fd, select.EPOLLIN)
        self.clients = {}  # fd -> connection waiting for a request
        self.runs = {}  # fd of a running command's connection -> _Run
        self.run_of = {}  # Tree -> _Run
        self.stoppers = []  # connections of --stop, closed when the daemon exits
        self.stopping = False

    def serve(self):
        """Serve until stopped and every command is done."""
        while not (self.stopping and not self.run_of):
            for fd, ev in self.epoll.poll():
                if fd == self.session.fileno():
                    for tree in self.session.poll(0):
                        self._finished(tree)
                elif fd == self.wake_r:
                    while True:
                        try:
                            if not os.read(self.wake_r, 256):
                                break
                        except BlockingIOError:
                            break
                elif self.listener is not None and fd == self.listener.fileno():
                    self._accept()
                elif fd in self.runs:
                    self._client_gone(fd)
                elif fd in self.clients:
                    self._request(fd)

    def stop(self):
        """Stop taking requests; :meth:`serve` returns once the running commands are done."""
        self.stopping = True
        if self.listener is None:
            return
        try:
            if os.stat(_sock_path(self.dirfd)).st_ino == self.ident:
                os.unlink(_sock_path(self.dirfd))
        except OSError:
            pass
        self.epoll.unregister(self.listener.fileno())
        self.listener.close()
        self.listener = None

    def _accept(self):
        try:
            conn, _addr = self.listener.accept()
        except OSError:
            return
        self.clients[conn.fileno()] = conn
        self.epoll.register(conn.fileno(), select.EPOLLIN | select.EPOLLRDHUP)

    def _forget(self, conn):
        fd = conn.fileno()
        self.clients.pop(fd, None)
        self.runs.pop(fd, None)
        self.epoll.unregister(fd)
        conn.close()

    def _client_gone(self, fd):
        """A client whose command still runs hung up (it is never sent anything else): SIGHUP its group."""
        run = self.runs[fd]
        self._forget(run.conn)
        run.conn = None
        try:
            os.killpg(run.tree.child.pid, signal.SIGHUP)
        except OSError:
            pass

    def _request(self, fd):
        conn = self.clients[fd]
        try:
            msg, fds = _recv(conn, 3)
        except (OSError, ValueError):
            msg, fds = None, []
        if msg is None:
            self._forget(conn)
            return
        try:
            op = msg.get("op")
            if op == "run":
                self._run(conn, msg, fds)
            elif op == "info":
                _send(conn, {"pid": os.getpid(), "ncpus": self.kernel.ncpus, "trees": len(self.run_of)})
            elif op == "stop":
                _send(conn, {"stopping": True})
                del self.clients[fd]
                self.epoll.unregister(fd)
                self.stoppers.append(conn)
                self.stop()
            else:
                _send(conn, {"errno": errno.EINVAL, "error": "unknown request %r" % op})
        except OSError:
            self._forget(conn)
        except Exception:  # a malformed request, or a bug of ours: say so, keep serving the others
            sys.stderr.write("bpfemu exec daemon: request %r\n%s" % (msg, traceback.format_exc()))
            sys.stderr.flush()
            try:
                _send(conn, {"errno": errno.EINVAL, "error": "bad request (see %s)" % os.path.join(self.state_dir, LOG)})
            except OSError:
                pass
            if fd in self.clients:
                self._forget(conn)
        finally:
            for x in fds:
                os.close(x)

    def _run(self, conn, msg, fds):
        ncpus = msg.get("ncpus")
        if ncpus is not None and ncpus != self.kernel.ncpus:
            _send(conn, {"errno": errno.EINVAL,
                         "error": "the kernel of %s has %d possible CPUs, not %d (stop it with --stop first)"
                                  % (self.state_dir, self.kernel.ncpus, ncpus)})
            return
        if len(fds) != 3 or not msg.get("argv"):
            _send(conn, {"errno": errno.EINVAL, "error": "a run request carries argv, stdin, stdout and stderr"})
            return
        errout = os.fdopen(os.dup(fds[2]), "w", errors="replace")
        try:
            tree = self.session.spawn(msg["argv"], uid=msg.get("uid", 0), caps=msg.get("caps"),
                                      debug=msg.get("debug", False), env=msg.get("env"), cwd=msg.get("cwd"),
                                      stdin=fds[0], stdout=fds[1], stderr=fds[2], errout=errout, new_session=True)
        except OSError as e:
            errout.close()
            _send(conn, {"errno": e.errno or errno.EIO, "error": "%s: %s" % (msg["argv"][0], e.strerror)})
            return
        run = _Run(tree, conn, errout)
        fd = conn.fileno()
        del self.clients[fd]
        self.runs[fd] = run
        self.run_of[tree] = run
        _send(conn, {"pid": tree.child.pid})
        if tree.done:  # the trampoline could not install the filter
            self._finished(tree)

    def _finished(self, tree):
        run = self.run_of.pop(tree)
        run.errout.close()
        if run.conn is not None:
            try:
                _send(run.conn, {"status": tree.status})
            except OSError:
                pass
            self._forget(run.conn)

    def close(self):
        self.stop()
        for conn in list(self.clients.values()) + [r.conn for r in self.runs.values()]:
            self._forget(conn)
        self.session.close()
        shutil.rmtree(self.session.state_dir, ignore_errors=True)
        for conn in self.stoppers:
            conn.close()
        os.close(self.dirfd)
        os.close(self.wake_r)
        os.close(self.wake_w)
        self.epoll.close()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m bpfemu.exec.daemon",
                                description="The emulated kernel of a bpfemu exec state directory "
                                            "(started by bpfemu exec --state-dir DIR).")
    p.add_argument("--ncpus", type=int, default=None)
    p.add_argument("--ready-fd", type=int, default=None, help="write 'ready' there once listening")
    p.add_argument("state_dir")
    args = p.parse_args(argv)
    d = Daemon(args.state_dir, ncpus=args.ncpus)
    signal.set_wakeup_fd(d.wake_w)

    def terminate(_sig, _frame):
        d.stop()

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    signal.signal(signal.SIGHUP, lambda _sig, _frame: None)  # a handler, not SIG_IGN: commands must not inherit it
    if args.ready_fd is not None:
        os.write(args.ready_fd, b"ready\n")
        os.close(args.ready_fd)
    try:
        d.serve()
    finally:
        d.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
