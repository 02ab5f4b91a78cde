"""The conformance suite: every test runs on the emulator and on the host kernel.

Tests run on the plugin's ``bpf_backend`` fixture (bpfemu.testing.pytest_plugin): once on the
emulator, once on the host kernel (a real child process with a private bpffs), as the
repository's pyproject (``bpf_backend = "both"``) and ``bpfemu conform`` ask. The host half is
skipped with the reason where the real syscall is unusable, or fails with BPFEMU_REQUIRE_HOST=1
(or ``--bpf-require-host``). Two names for what most tests take:

- ``backend``: the machine (``bpf_backend``: ``.spawn()``, ``.kernel``, ``.bpffs``, ``.name``);
- ``proc``: a fresh privileged task on it (``bpf_backend.sys``), with ``.bpffs`` and ``.backend``;
- ``profile``: the kernel version's :class:`bpfemu.profiles.Profile` (``bpf_backend.profile``: the emulated
  kernel's, the VM's version's, or the host's). An expectation that differs between kernel versions is
  written once per version: asked of the profile, or kept in a table by ``profile.version``.

Shared helpers are in bpfemu.testing.support (importable); nothing is imported from here.
"""
import pytest


@pytest.fixture
def backend(bpf_backend):
    """The machine the test runs on: EmuBackend or HostBackend (bpfemu.testing.backends)."""
    return bpf_backend


@pytest.fixture
def proc(bpf_backend):
    """A fresh privileged task (uid 0, all capabilities, fds 0-2 taken) on the test's backend."""
    return bpf_backend.sys


@pytest.fixture
def profile(bpf_backend):
    """The kernel version's profile of the test's backend."""
    return bpf_backend.profile
