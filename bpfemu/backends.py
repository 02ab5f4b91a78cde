"""The two machines a test can run on, behind one shape: the emulator and the host kernel.

Used by the pytest plugin (``bpf_backend``) and by this project's conformance suite.
A backend has ``.name`` ('emu' or 'host'), ``.kernel`` (the emulated Kernel, None on
the host), ``.bpffs`` (a bpffs to pin under: the emulator's /sys/fs/bpf, or a private
mount on the host) and ``.spawn(uid=None, caps=None)``, a fresh task on that machine
(on the host, a real child process). Tasks carry ``.bpffs`` and ``.backend`` too.
``close()`` ends the tasks and, on the host, unmounts the private bpffs (which drops
whatever was pinned there).
"""
import bpfemu

_host_status = None


def host_status():
    """(True, '') when the real bpf() is usable here, else (False, why); computed once."""
    global _host_status
    if _host_status is None:
        _host_status = bpfemu.host.available()
    return _host_status


class EmuBackend:
    name = "emu"

    def __init__(self, **kernel_args):
        self.kernel = bpfemu.Kernel(**kernel_args)
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
        self.host = bpfemu.Host()
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
