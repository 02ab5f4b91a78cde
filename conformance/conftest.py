"""The conformance harness: every test runs on the emulator and on the host kernel.

The ``proc`` fixture is a fresh task on a fresh backend:
- ``emu``: ``bpfemu.Kernel().spawn()``;
- ``host``: ``bpfemu.Host().spawn()``, a real child process with only fds 0-2
  open, and a private bpffs mounted for the test (unmounted afterwards, which
  drops whatever the test pinned).

Both carry ``.bpffs`` (where to pin) and ``.backend`` ('emu' or 'host').
The host side runs when the real syscall is usable; otherwise it is skipped
with the reason, unless BPFEMU_REQUIRE_HOST=1, where that is a failure.

BPFEMU_HOST_BACKEND=vm:6.1 (or vm:6.12) runs the host side in a real kernel of
that version under QEMU instead (``bpfemu.vm``; one VM for the whole session):
HostBackend and ``bpfemu.Host()`` are then the VM's. Tests that need what only
the calling process has (its own page protections, the host's cgroupfs) say so
with ``_need_host(needs=...)`` and are skipped there.
"""
import os

import pytest

import bpfemu
from bpfemu.backends import EmuBackend, HostBackend, host_status
from bpfemu.vm import backend as vm_backend

VM_KERNEL = vm_backend.selected()
if VM_KERNEL is not None:
    def HostBackend():  # noqa: F811  (the VM plays the host)
        return vm_backend.VMBackend(vm_backend.session_vm(VM_KERNEL))

    def host_status():  # noqa: F811
        return vm_backend.status(VM_KERNEL)

    bpfemu.Host = lambda *a, **k: vm_backend.session_vm(VM_KERNEL)


def host_required():
    return os.environ.get("BPFEMU_REQUIRE_HOST") == "1"


def _need_host(needs=None):
    """Skip (or fail under BPFEMU_REQUIRE_HOST=1) unless the host backend is usable; ``needs`` names
    what the test needs of the calling process itself, which a VM backend cannot give."""
    if needs and VM_KERNEL is not None:
        pytest.skip("host backend is a VM (%s): the test needs %s" % (VM_KERNEL, needs))
    ok, why = host_status()
    if not ok:
        if host_required():
            pytest.fail("BPFEMU_REQUIRE_HOST=1 but the host kernel backend is unusable: %s" % why)
        pytest.skip("host kernel backend unusable: %s" % why)


@pytest.fixture(params=["emu", "host"])
def backend(request):
    """A fresh machine: EmuBackend or HostBackend; .spawn() gives a task."""
    if request.param == "host":
        _need_host()
        b = HostBackend()
    else:
        b = EmuBackend()
    yield b
    b.close()


@pytest.fixture
def proc(backend):
    """A fresh privileged task (uid 0, all capabilities, fds 0-2 taken) on each backend."""
    return backend.spawn()
