"""The conformance harness: every test runs on the emulator and on the host kernel.

The ``proc`` fixture is a fresh task on a fresh backend:
- ``emu``: ``bpfemu.Kernel().spawn()``;
- ``host``: ``bpfemu.Host().spawn()``, a real child process with only fds 0-2
  open, and a private bpffs mounted for the test (unmounted afterwards, which
  drops whatever the test pinned).

Both carry ``.bpffs`` (where to pin) and ``.backend`` ('emu' or 'host').
The host side runs when the real syscall is usable; otherwise it is skipped
with the reason, unless BPFEMU_REQUIRE_HOST=1, where that is a failure.
"""
import os

import pytest

from bpfemu.backends import EmuBackend, HostBackend, host_status


def host_required():
    return os.environ.get("BPFEMU_REQUIRE_HOST") == "1"


def _need_host():
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
