"""pytest plugin of bpfemu (registered through the ``pytest11`` entry point).

Fixtures:

- ``bpf_kernel``: a fresh emulated :class:`bpfemu.Kernel` per test;
- ``bpf_sys``: a privileged task on it (uid 0, every capability, fds 0-2 taken);
- ``bpf_backend``: the test runs once per backend chosen by ``--bpf-backend``
  (``emu``, the default; ``host``; or ``both``; the ini option ``bpf_backend``
  sets the default of a project). It carries ``.name`` ('emu' or 'host'),
  ``.sys`` (a fresh task), ``.kernel`` (the emulated Kernel, None on the
  host), ``.bpffs`` (a private bpffs to pin under) and ``.spawn(uid=0,
  caps=None)`` for more tasks on the same machine. On the host, ``.sys`` is a
  real child process over the real syscall. When the host cannot run it (not
  Linux, no privilege) the host run is skipped with the reason, or fails with
  ``--bpf-require-host`` (or BPFEMU_REQUIRE_HOST=1 in the environment).

Marker ``@pytest.mark.bpf_unprivileged`` (optionally ``(uid=..., caps=...)``):
``bpf_sys`` and ``bpf_backend.sys`` are an unprivileged task (uid 1000, no
capabilities). Marker ``@pytest.mark.bpf_kernel(**kwargs)``: the arguments of
the emulated ``Kernel`` (``ncpus=``, ``memory_limit=``, ...) for ``bpf_kernel``
and the emulator side of ``bpf_backend``.

When a test using these fixtures fails, the report carries a section with
``kernel.describe()``: the maps, pins and fds the emulated kernel held.
"""
import pytest

from ..kernel import Kernel
from .backends import EmuBackend, HostBackend, need_host

BACKENDS = {"emu": ("emu",), "host": ("host",), "both": ("emu", "host")}
SECTION = "bpfemu kernel state (kernel.describe())"


def pytest_addoption(parser):
    group = parser.getgroup("bpfemu")
    group.addoption("--bpf-backend", choices=sorted(BACKENDS), default=None,
                    help="where tests using the bpf_backend fixture run: emu, host or both "
                         "(default: the ini option bpf_backend, else emu)")
    group.addoption("--bpf-require-host", action="store_true", default=False,
                    help="fail, rather than skip, host runs when the host kernel cannot run them "
                         "(also BPFEMU_REQUIRE_HOST=1)")
    parser.addini("bpf_backend", "default of --bpf-backend: emu, host or both", default="emu")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "bpf_unprivileged(uid=1000, caps=()): run bpf_sys / bpf_backend.sys as an unprivileged task")
    config.addinivalue_line(
        "markers", "bpf_kernel(**kwargs): arguments of the emulated Kernel of bpf_kernel / bpf_backend")


def backend_names(config):
    """The backends bpf_backend runs on: --bpf-backend, else the ini option bpf_backend."""
    choice = config.getoption("--bpf-backend") or config.getini("bpf_backend")
    if choice not in BACKENDS:
        raise pytest.UsageError("bpf_backend must be one of %s, not %r" % (", ".join(sorted(BACKENDS)), choice))
    return BACKENDS[choice]


def pytest_generate_tests(metafunc):
    if "bpf_backend" in metafunc.fixturenames:
        metafunc.parametrize("bpf_backend", backend_names(metafunc.config), indirect=True)


def _credentials(request):
    """(uid, caps) for the test's task: root with every capability, or what the marker asks."""
    mark = request.node.get_closest_marker("bpf_unprivileged")
    if mark is None:
        return 0, None
    return mark.kwargs.get("uid", 1000), tuple(mark.kwargs.get("caps", ()))


def _kernel_args(request):
    mark = request.node.get_closest_marker("bpf_kernel")
    return dict(mark.kwargs) if mark is not None else {}


@pytest.fixture
def bpf_kernel(request):
    """A fresh emulated kernel for one test (its arguments from @pytest.mark.bpf_kernel)."""
    return Kernel(**_kernel_args(request))


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
        need_host(request.config)
        b = HostBackend()
    else:
        b = EmuBackend(**_kernel_args(request))
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
        kernel = obj if isinstance(obj, Kernel) else getattr(obj, "kernel", None)
        if isinstance(kernel, Kernel):
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
