"""The two machines a test can run on, behind one shape: the emulator and the host kernel.

Used by the pytest plugin (``bpf_backend``) and by this project's conformance suite.
A backend has ``.name`` ('emu' or 'host'), ``.kernel`` (the emulated Kernel, None on
the host), ``.bpffs`` (a bpffs to pin under: the emulator's /sys/fs/bpf, or a private
mount on the host) and ``.spawn(uid=None, caps=None)``, a fresh task on that machine
(on the host, a real child process). Tasks carry ``.bpffs`` and ``.backend`` too.
``close()`` ends the tasks and, on the host, unmounts the private bpffs (which drops
whatever was pinned there).

:func:`need_host` is how a test that needs the host kernel skips (or, when the host is
required, fails) where it cannot have it.
"""
import os

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


class EmuBackend:
    name = "emu"

    def __init__(self, **kernel_args):
        self.kernel = Kernel(**kernel_args)
        self.bpffs = "/sys/fs/bpf"

    def spawn(self, uid=None, caps=None):
        t = self.kernel.spawn(uid=uid or 0, caps=caps)
        t.bpffs, t.backend = self.bpffs, self.name
        return t

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
        self.bpffs = self.host.mount_bpffs()

    def spawn(self, uid=None, caps=None):
        t = self.host.spawn(uid=uid or None, caps=caps)
        t.backend = self.name
        self.tasks.append(t)
        return t

    def close(self):
        for t in self.tasks:
            t.exit()
        self.host.unmount_bpffs()

    def __repr__(self):
        return "<bpf backend host>"
