"""The two machines a test can run on, behind one shape: the emulator and the host kernel.

Used by the pytest plugin (``bpf_backend``) and by this project's conformance suite.
A backend has ``.name`` ('emu' or 'host'), ``.kernel`` (the emulated Kernel, None on
the host), ``.bpffs`` (a bpffs to pin under: /sys/fs/bpf on both, on the host a
private one that only this backend's tasks see) and ``.spawn(uid=None, caps=None)``, a
fresh task on that machine (on the host, a real child process). Tasks carry ``.bpffs``
and ``.backend`` too. ``leaks()`` lists the bpf objects the machine's tasks and pins
still hold (the same question on both: empty when the code under test closed and
unpinned everything). ``close()`` ends the tasks; on the host the private bpffs, with
whatever was pinned there, goes with them.

:func:`need_host` is how a test that needs the host kernel skips (or, when the host is
required, fails) where it cannot have it.
"""
import ctypes
import errno
import os
import stat

from .. import uapi
from ..host.task import Host, available
from ..kernel import Kernel

_host_status = None


def host_status():
    """(True, '') when the real bpf() is usable here, else (False, why); computed once."""
    global _host_status
    if _host_status is None:
        _host_status = available()
    return _host_status


def host_required(config=None):
    """Whether a host kernel that cannot be used is a failure rather than a skip: BPFEMU_REQUIRE_HOST=1,
    or pytest's ``--bpf-require-host`` when ``config`` is given."""
    if os.environ.get("BPFEMU_REQUIRE_HOST") == "1":
        return True
    return bool(config is not None and config.getoption("--bpf-require-host", False))


def need_host(config=None):
    """Skip the running test when the host kernel cannot be used, or fail it when the host is required."""
    import pytest
    ok, why = host_status()
    if not ok:
        msg = "bpfemu: the host kernel cannot run this test: %s" % why
        if host_required(config):
            pytest.fail(msg)
        pytest.skip(msg)


def kernel_leaks(kernel):
    """The objects alive on an emulated kernel, one line each: 'map 1 held by fd 3 of task 100'."""
    return ["%s %d held by %s" % (s.kind, s.id, ", ".join(s.holders) or "nothing") for s in kernel.objects()]


_ID_LINES = (("link_id:", "link"), ("map_id:", "map"), ("prog_id:", "prog"), ("btf_id:", "btf"))


def _bpf_object(task, fd):
    """(kind, id) of the bpf object behind a host task's fd, from its fdinfo, or None."""
    try:
        text = task.fdinfo(fd)
    except OSError:
        return None
    lines = text.splitlines()
    for prefix, kind in _ID_LINES:
        for line in lines:
            if line.startswith(prefix):
                return kind, int(line.split(":", 1)[1])
    return None


def _pins(task, path, top=False):
    """Every pin under a bpffs directory, seen by ``task``."""
    for name in task.listdir(path):
        if top and name in ("maps.debug", "progs.debug"):  # the iterators every bpffs starts with
            continue
        full = path + "/" + name
        if stat.S_ISDIR(task.stat(full).st_mode):
            yield from _pins(task, full)
        else:
            yield full


def _obj_get(task, path):
    p = ctypes.create_string_buffer(path.encode())
    return task.bpf(uapi.BPF_OBJ_GET, uapi.make_attr(pathname=ctypes.addressof(p)))


class EmuBackend:
    name = "emu"

    def __init__(self, **kernel_args):
        self.kernel = Kernel(**kernel_args)
        self.bpffs = "/sys/fs/bpf"

    def spawn(self, uid=None, caps=None):
        t = self.kernel.spawn(uid=uid or 0, caps=caps)
        t.bpffs, t.backend = self.bpffs, self.name
        return t

    def leaks(self):
        """What is still alive, one line per object: 'map 1 held by fd 3 of task 100, pin /sys/fs/bpf/m'."""
        return kernel_leaks(self.kernel)

    def close(self):
        for t in list(self.kernel.tasks):
            t.exit()

    def __repr__(self):
        return "<bpf backend emu>"


class HostBackend:
    name = "host"
    kernel = None

    def __init__(self):
        self.host = Host()
        self.tasks = []
        ok, why = self.host.private_bpffs
        if not ok:
            raise OSError(errno.EPERM, "bpfemu: the host backend needs a private bpffs: %s" % why)
        self.bpffs = "/sys/fs/bpf"

    def spawn(self, uid=None, caps=None):
        t = self.host.spawn(uid=uid or None, caps=caps)
        t.backend = self.name
        self.tasks.append(t)
        return t

    def leaks(self):
        """What the tasks of this backend hold through their fds, and its bpffs through pins (the two
        iterators a fresh bpffs holds aside), one line per object, as :meth:`EmuBackend.leaks` says it.
        Objects reachable only through another (an inner map) show through that one."""
        held = {}
        for t in self.tasks:
            try:
                fds = t.fds()
            except OSError:  # the task exited: it holds nothing
                continue
            for fd in fds:
                if fd > 2:
                    obj = _bpf_object(t, fd)
                    if obj is not None:
                        held.setdefault(obj, []).append("fd %d of task %d" % (fd, t.pid))
        checker = self.host.spawn()
        try:
            for path in _pins(checker, self.bpffs, top=True):
                try:
                    fd = _obj_get(checker, path)
                except OSError:
                    continue
                obj = _bpf_object(checker, fd)
                checker.close(fd)
                if obj is not None:
                    held.setdefault(obj, []).append("pin " + path)
        finally:
            checker.exit()
        return ["%s %d held by %s" % (kind, id_, ", ".join(h)) for (kind, id_), h in sorted(held.items())]

    def close(self):
        for t in self.tasks:
            t.exit()
        self.host.close_namespace()

    def __repr__(self):
        return "<bpf backend host>"
