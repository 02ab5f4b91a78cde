"""pytest plugin of bpfemu (registered through the ``pytest11`` entry point).

Fixtures:

- ``bpf_kernel``: a fresh emulated :class:`bpfemu.Kernel` per test;
- ``bpf_sys``: a privileged task on it (uid 0, every capability, fds 0-2 taken);
- ``bpf_backend``: the test runs once per backend chosen by ``--bpf-backend``
  (``emu``, the default; ``host``; or ``both``). It carries ``.name`` ('emu' or
  'host'), ``.sys`` (a fresh task), ``.kernel`` (the emulated Kernel, None on
  the host), ``.bpffs`` (a private bpffs to pin under) and ``.spawn(uid=0,
  caps=None)`` for more tasks on the same machine. On the host, ``.sys`` is a
  real child process over the real syscall. When the host cannot run it (not
  Linux, no privilege) the host run is skipped with the reason, or fails with
  ``--bpf-require-host``.

Marker ``@pytest.mark.bpf_unprivileged`` (optionally ``(uid=..., caps=...)``):
``bpf_sys`` and ``bpf_backend.sys`` are an unprivileged task (uid 1000, no
capabilities).

When a test using these fixtures fails, the report carries a section with
``kernel.describe()``: the maps, pins and fds the emulated kernel held.
"""
import pytest

import bpfemu
from bpfemu.backends import EmuBackend, HostBackend, host_status

BACKENDS = {"emu": ("emu",), "host": ("host",), "both": ("emu", "host")}
SECTION = "bpfemu kernel state (kernel.describe())"


def pytest_addoption(parser):
    group = parser.getgroup("bpfemu")
    group.addoption("--bpf-backend", choices=sorted(BACKENDS), default="emu",
                    help="where tests using the bpf_backend fixture run: emu (default), host or both")
    group.addoption("--bpf-require-host", action="store_true", default=False,
                    help="fail, rather than skip, host runs when the host kernel cannot run them")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "bpf_unprivileged(uid=1000, caps=()): run bpf_sys / bpf_backend.sys as an unprivileged task")


def pytest_generate_tests(metafunc):
    if "bpf_backend" in metafunc.fixturenames:
        names = BACKENDS[metafunc.config.getoption("--bpf-backend")]
        metafunc.parametrize("bpf_backend", names, indirect=True)


def _credentials(request):
    """(uid, caps) for the test's task: root with every capability, or what the marker asks."""
    mark = request.node.get_closest_marker("bpf_unprivileged")
    if mark is None:
        return 0, None
    return mark.kwargs.get("uid", 1000), tuple(mark.kwargs.get("caps", ()))


@pytest.fixture
def bpf_kernel():
    """A fresh emulated kernel for one test."""
    return bpfemu.Kernel()


@pytest.fixture
def bpf_sys(request, bpf_kernel):
    """A task on ``bpf_kernel``: privileged, or unprivileged under @pytest.mark.bpf_unprivileged."""
    uid, caps = _credentials(request)
    return bpf_kernel.spawn(uid=uid, caps=caps)


@pytest.fixture
def bpf_backend(request):
    """The emulator or the host kernel (see ``--bpf-backend``), with a fresh task as ``.sys``."""
    name = getattr(request, "param", "emu")
    uid, caps = _credentials(request)
    if name == "host":
        ok, why = host_status()
        if not ok:
            msg = "bpfemu: the host kernel cannot run this test: %s" % why
            if request.config.getoption("--bpf-require-host"):
                pytest.fail(msg)
            pytest.skip(msg)
        b = HostBackend()
    else:
        b = EmuBackend()
    try:
        b.sys = b.spawn(uid, caps)
    except BaseException:
        b.close()
        raise
    yield b
    b.close()


def _kernel_of(item):
    args = getattr(item, "funcargs", None) or {}
    for name in ("bpf_kernel", "bpf_backend", "bpf_sys"):
        obj = args.get(name)
        kernel = obj if isinstance(obj, bpfemu.Kernel) else getattr(obj, "kernel", None)
        if isinstance(kernel, bpfemu.Kernel):
            return kernel
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    kernel = _kernel_of(item)
    if kernel is None:
        return
    try:
        text = kernel.describe()
    except Exception as e:  # never hide the test's own failure
        text = "kernel.describe() failed: %r" % (e,)
    rep.sections.append((SECTION, text))
