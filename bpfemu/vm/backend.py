"""The VM as the conformance suite's "host" backend: one VM per kernel version per test session.

``BPFEMU_HOST_BACKEND=vm:6.1`` (or ``vm:6.12``) makes the suite's host side run in a real kernel
of that version (see ``conformance/conftest.py``); ``selected()`` reads it. ``session_vm(version)``
boots the VM on first use and keeps it for the rest of the process (powered off at exit);
``VMBackend`` has the shape of :class:`bpfemu.backends.HostBackend`: a private bpffs per
backend (unmounted at ``close()``, which drops what was pinned), tasks that are guest processes.
"""
import atexit
import os
import threading

from . import machine

ENV = "BPFEMU_HOST_BACKEND"

_vms = {}
_failed = {}
_lock = threading.Lock()


def selected():
    """The kernel version the host backend is to be a VM of ("6.1"), or None for the real host."""
    spec = os.environ.get(ENV, "").strip()
    if not spec or spec == "host":
        return None
    if not spec.startswith("vm:"):
        raise ValueError("%s=%r: expected 'host' or 'vm:VERSION'" % (ENV, spec))
    return spec[3:]


def session_vm(version):
    """The VM of ``version`` for this process, booted on first use; VMError if it cannot be."""
    with _lock:
        vm = _vms.get(version)
        if vm is not None:
            return vm
        if version in _failed:
            raise machine.VMError(_failed[version])
        try:
            vm = machine.VM(kernel=version)
        except (machine.VMError, OSError) as e:
            _failed[version] = str(e)
            raise machine.VMError(str(e)) from None
        _vms[version] = vm
        return vm


def status(version):
    """(True, '') when the VM of ``version`` is up (booting it if need be), else (False, why)."""
    ok, why = machine.available(version)
    if not ok:
        return ok, why
    try:
        session_vm(version)
    except machine.VMError as e:
        return False, str(e)
    return True, ""


@atexit.register
def _shutdown_all():
    for vm in list(_vms.values()):
        try:
            vm.shutdown()
        except Exception:
            pass
    _vms.clear()


class VMBackend:
    """The host backend's shape over a VM: ``.name`` 'host', ``.vm``, ``.bpffs``, ``.spawn()``, ``.close()``."""

    name = "host"
    kernel = None

    def __init__(self, vm):
        self.vm = vm
        self.tasks = []
        self.bpffs = vm.mount_bpffs()

    def spawn(self, uid=None, caps=None):
        t = self.vm.spawn(uid=uid or None, caps=caps)
        t.backend = self.name
        t.bpffs = self.bpffs
        self.tasks.append(t)
        return t

    def close(self):
        for t in self.tasks:
            t.exit()
        self.vm.unmount_bpffs(self.bpffs)

    def __repr__(self):
        return "<bpf backend host: VM %s>" % self.vm.version
