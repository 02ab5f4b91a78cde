"""pytest plugin of bpfemu (registered through the ``pytest11`` entry point).

Fixtures:

- ``bpf_kernel``: a fresh emulated :class:`bpfemu.Kernel` per test;
- ``bpf_sys``: a privileged task on it (uid 0, every capability, fds 0-2 taken). ``bpf_kernel`` and
  ``bpf_sys`` are always the emulator, whatever ``--bpf-backend`` says: a test that should run on the
  host kernel too takes ``bpf_backend`` (and its ``.sys``);
- ``bpf_backend``: the test runs once per backend chosen by ``--bpf-backend``
  (``emu``, the default; ``host``, the machine's kernel; ``vm:6.1``, a real kernel of that
  version booted under QEMU, one VM for the whole session (:mod:`bpfemu.host.vm`); ``both``,
  which is ``emu,host``; or a comma-separated list such as ``emu,vm:6.1``, with at most one real
  kernel; the ini option ``bpf_backend`` sets the default of a project). It carries ``.name``
  ('emu', or 'host' for a real kernel), ``.sys`` (a fresh task), ``.kernel`` (the emulated Kernel,
  None on a real one), ``.vm`` (the VM, or None), ``.profile`` (the kernel version's
  :class:`bpfemu.profiles.Profile`), ``.bpffs`` (/sys/fs/bpf: on a real kernel a private bpffs
  only this backend's tasks see), ``.spawn(uid=0, caps=None)`` for more tasks on the same machine
  and ``.leaks()``. On a real kernel, ``.sys`` is a real process over the real syscall. When the
  real kernel cannot run it (not Linux, no privilege, no QEMU or kernel for a VM) the run is
  skipped with the reason, or fails with ``--bpf-require-host`` (or BPFEMU_REQUIRE_HOST=1 in the
  environment). The real kernel chosen is also what :func:`bpfemu.testing.backends.real_kernel`
  gives tests that compare the emulator with the kernel themselves.

Markers:

- ``@pytest.mark.bpf_unprivileged`` (optionally ``(uid=..., caps=...)``): ``bpf_sys`` and
  ``bpf_backend.sys`` are an unprivileged task (uid 1000, no capabilities);
- ``@pytest.mark.bpf_kernel(**kwargs)``: the arguments of the emulated ``Kernel`` (``ncpus=``,
  ``unprivileged_bpf_disabled=``, ``memory_limit=``, ``version=``...) for ``bpf_kernel`` and the emulator
  side of ``bpf_backend``; ``--bpf-kernel=6.1`` (ini ``bpf_kernel``) is the version of every emulated kernel
  of the session, also of those tests make themselves with ``bpfemu.Kernel()``
  (:func:`bpfemu.profiles.set_default`); without it, the VM's version with ``--bpf-backend=vm:VERSION``, else
  the host's when a profile matches it, else the newest. With a VM as the real kernel, the emulated kernels
  also take its ``bpf_preload`` (Debian's kernels are built without CONFIG_BPF_PRELOAD); ``--bpf-ncpus``/``--bpf-unprivileged-bpf-disabled`` (ini ``bpf_ncpus``,
  ``bpf_unprivileged_bpf_disabled``) set the first two for every test, so per-CPU results do not depend on
  the machine (the host side always has the machine's);
- ``@pytest.mark.bpf_leak_check`` (or ``--bpf-leak-check``, ini ``bpf_leak_check = true``): a test that
  passes fails if, when it returns, its machine still holds a bpf object (an fd of one of its tasks, a pin)
  or a bpfemu handle was left for the garbage collector to close; on both backends (``.leaks()``);
- ``@pytest.mark.bpf_bad_pointers``: the test passes bad pointers (unmapped, PROT_NONE, read-only); it
  is skipped, with the reason, where bpfemu cannot detect them (``Kernel.checked_user_memory`` False: not
  Linux, or process_vm_readv blocked);
- ``@pytest.mark.bpf_needs_linux("what")``: the test needs what only Linux has (seccomp, the host's kernel
  BTF, ...); it is skipped, saying so, where bpfemu runs as off Linux
  (:func:`bpfemu.testing.support.need_linux`, which a test calls when it finds out at run time).

``--bpf-platform=nonlinux`` (or BPFEMU_PLATFORM=nonlinux) runs the session as on a machine that is not
Linux (:mod:`bpfemu.hostenv`): no host backend, unchecked user memory, and /proc and /sys hidden from the
whole process (opening a file there is ENOENT), so a test that reads them directly shows.

When a test using these fixtures fails, the report carries a section with
``kernel.describe()``: the maps, pins and fds the emulated kernel held.
"""
import errno
import gc
import os
import sys

import pytest

from .. import hostenv, profiles
from ..api.handle import finalized_since
from ..kernel import Kernel
from . import backends
from .backends import EmuBackend, HostBackend, kernel_leaks, need_host
from .support import need_bad_pointer_detection, need_linux

BACKENDS = {"emu": ("emu",), "host": ("host",), "both": ("emu", "host")}  # and vm:VERSION, lists of them
SECTION = "bpfemu kernel state (kernel.describe())"
PLATFORMS = ("native", hostenv.NONLINUX)


def pytest_addoption(parser):
    group = parser.getgroup("bpfemu")
    group.addoption("--bpf-backend", default=None,
                    help="where tests using the bpf_backend fixture run: emu, host, vm:VERSION (a real kernel of "
                         "that version under QEMU), both (emu,host), or a comma-separated list such as "
                         "emu,vm:6.1 (default: the ini option bpf_backend, else emu)")
    group.addoption("--bpf-kernel", default=None,
                    help="the kernel version the emulator behaves as (a profile: 6.1, 6.12, 6.18; default: the ini "
                         "option bpf_kernel, else the VM's version with --bpf-backend=vm:VERSION, else the host's "
                         "version when it has a profile, else the newest)")
    group.addoption("--bpf-require-host", action="store_true", default=False,
                    help="fail, rather than skip, host runs when the host kernel cannot run them "
                         "(also BPFEMU_REQUIRE_HOST=1)")
    group.addoption("--bpf-ncpus", type=int, default=None,
                    help="possible CPUs of every emulated kernel (default: the ini option bpf_ncpus, else the host's)")
    group.addoption("--bpf-unprivileged-bpf-disabled", type=int, choices=(0, 1, 2), default=None,
                    help="kernel.unprivileged_bpf_disabled of every emulated kernel (default: the ini option "
                         "bpf_unprivileged_bpf_disabled, else the host's)")
    group.addoption("--bpf-leak-check", action="store_true", default=False,
                    help="fail a test whose machine still holds bpf objects when it returns (every test; "
                         "or mark tests with bpf_leak_check)")
    group.addoption("--bpf-platform", choices=PLATFORMS, default=None,
                    help="nonlinux: run as on a machine that is not Linux (also BPFEMU_PLATFORM=nonlinux)")
    parser.addini("bpf_backend", "default of --bpf-backend: emu, host, vm:VERSION, both or a list", default="emu")
    parser.addini("bpf_kernel", "default of --bpf-kernel: the emulated kernel's version", default="")
    parser.addini("bpf_ncpus", "default of --bpf-ncpus", default="")
    parser.addini("bpf_unprivileged_bpf_disabled", "default of --bpf-unprivileged-bpf-disabled", default="")
    parser.addini("bpf_leak_check", "check every test for leaks (--bpf-leak-check)", type="bool", default=False)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "bpf_unprivileged(uid=1000, caps=()): run bpf_sys / bpf_backend.sys as an unprivileged task")
    config.addinivalue_line(
        "markers", "bpf_kernel(**kwargs): arguments of the emulated Kernel of bpf_kernel / bpf_backend "
                   "(ncpus=, unprivileged_bpf_disabled=, memory_limit=, ...)")
    config.addinivalue_line(
        "markers", "bpf_leak_check: fail if the test's machine still holds bpf objects when it returns")
    config.addinivalue_line(
        "markers", "bpf_bad_pointers: the test passes bad pointers; skipped where bpfemu cannot detect them")
    config.addinivalue_line(
        "markers", "bpf_needs_linux(what): the test needs what only Linux has; skipped, saying so, off Linux")
    platform = config.getoption("--bpf-platform") or hostenv.simulated()
    if platform == hostenv.NONLINUX:
        simulate_nonlinux()
    real = [n for n in backend_names(config) if n != "emu"]
    backends.use_real_kernel(real[0] if real else "host")
    version = kernel_version(config)
    preload = backends.real_bpf_preload()  # a VM's build option (None for the host: keep the default)
    # what every Kernel() of the session is, also those tests make themselves
    profiles.set_default(version, True if preload is None else preload)


_hidden = False


def _hide_proc_and_sys(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
        path = os.fsdecode(args[0])
        if path in ("/proc", "/sys") or path.startswith(("/proc/", "/sys/")):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory (bpfemu: --bpf-platform=nonlinux "
                                                  "hides /proc and /sys)", path)


def simulate_nonlinux():
    """Run this process as on a machine that is not Linux, for good: BPFEMU_PLATFORM=nonlinux (bpfemu's
    probes and every child process honour it) and /proc and /sys hidden (an audit hook: opening or listing
    anything there is ENOENT)."""
    global _hidden
    os.environ[hostenv.ENV] = hostenv.NONLINUX
    from ..usermem import reprobe
    reprobe()
    if backends._host_status is not None and backends._host_status[0]:
        backends._host_status = None  # an "available" found before cannot hold off Linux
    if not _hidden:
        sys.addaudithook(_hide_proc_and_sys)
        _hidden = True


def pytest_runtest_setup(item):
    if item.get_closest_marker("bpf_bad_pointers") is not None:
        need_bad_pointer_detection()
    mark = item.get_closest_marker("bpf_needs_linux")
    if mark is not None:
        need_linux(mark.args[0] if mark.args else mark.kwargs.get("what", item.name))


def kernel_version(config):
    """The emulated kernel's version: --bpf-kernel, else the ini option bpf_kernel, else the VM's version when
    the real kernel is one, else None (the host's version when a profile matches it, else the newest)."""
    v = (config.getoption("--bpf-kernel") or config.getini("bpf_kernel") or "").strip()
    if not v:
        return backends.real_vm_version()
    if v not in profiles.PROFILES:
        raise pytest.UsageError("--bpf-kernel %r: the profiles are %s" % (v, ", ".join(profiles.VERSIONS)))
    return v


def backend_names(config):
    """The backends bpf_backend runs on ('emu', 'host', 'vm:6.1'): --bpf-backend, else the ini option
    bpf_backend; UsageError for anything else, or for two real kernels."""
    choice = (config.getoption("--bpf-backend") or config.getini("bpf_backend")).strip()
    names = []
    for part in choice.split(","):
        part = part.strip()
        try:
            names += BACKENDS[part] if part in BACKENDS else [part] if backends.parse_backend(part) else []
        except ValueError:
            raise pytest.UsageError("bpf_backend must be emu, host, both, vm:VERSION or a comma-separated list "
                                    "of them, not %r" % (choice,)) from None
    names = list(dict.fromkeys(names))
    if len([n for n in names if n != "emu"]) > 1:
        raise pytest.UsageError("bpf_backend %r names more than one real kernel" % (choice,))
    return tuple(names)


def pytest_generate_tests(metafunc):
    if "bpf_backend" in metafunc.fixturenames:
        metafunc.parametrize("bpf_backend", backend_names(metafunc.config), indirect=True)


def _credentials(request):
    """(uid, caps) for the test's task: root with every capability, or what the marker asks."""
    mark = request.node.get_closest_marker("bpf_unprivileged")
    if mark is None:
        return 0, None
    return mark.kwargs.get("uid", 1000), tuple(mark.kwargs.get("caps", ()))


def _int_option(config, option, ini):
    v = config.getoption(option)
    if v is None:
        text = config.getini(ini).strip()
        if text:
            try:
                v = int(text)
            except ValueError:
                raise pytest.UsageError("%s must be an integer, not %r" % (ini, text)) from None
    return v


def _kernel_args(request):
    """The emulated Kernel's arguments: --bpf-ncpus and --bpf-unprivileged-bpf-disabled (or their ini
    options), then the test's bpf_kernel marker."""
    args = {}
    config = request.config
    for option, ini, name in (("--bpf-ncpus", "bpf_ncpus", "ncpus"),
                              ("--bpf-unprivileged-bpf-disabled", "bpf_unprivileged_bpf_disabled",
                               "unprivileged_bpf_disabled")):
        v = _int_option(config, option, ini)
        if v is not None:
            args[name] = v
    mark = request.node.get_closest_marker("bpf_kernel")
    if mark is not None:
        args.update(mark.kwargs)
    return args


@pytest.fixture
def bpf_kernel(request):
    """A fresh emulated kernel for one test (its arguments from @pytest.mark.bpf_kernel). Always the
    emulator: with --bpf-backend=both, use bpf_backend for a test that should run on the host too."""
    return Kernel(**_kernel_args(request))


@pytest.fixture
def bpf_sys(request, bpf_kernel):
    """A task on ``bpf_kernel``: privileged, or unprivileged under @pytest.mark.bpf_unprivileged. Always an
    emulated task (``bpf_backend.sys`` is the one that follows --bpf-backend)."""
    uid, caps = _credentials(request)
    return bpf_kernel.spawn(uid=uid, caps=caps)


@pytest.fixture
def bpf_backend(request):
    """The emulator or the host kernel (see ``--bpf-backend``), with a fresh task as ``.sys``."""
    name = getattr(request, "param", "emu")
    uid, caps = _credentials(request)
    if name != "emu":
        need_host(request.config)
        try:
            b = backends.real_backend()
        except OSError as e:
            if backends.host_required(request.config):
                pytest.fail(str(e))
            pytest.skip(str(e))
    else:
        b = EmuBackend(**_kernel_args(request))
    try:
        b.sys = b.spawn(uid, caps)
    except BaseException:
        b.close()
        raise
    yield b
    b.close()


def _leak_check_wanted(item):
    if item.get_closest_marker("bpf_leak_check") is not None:
        return True
    return bool(item.config.getoption("--bpf-leak-check") or item.config.getini("bpf_leak_check"))


def _leaks(item):
    args = getattr(item, "funcargs", None) or {}
    backend = args.get("bpf_backend")
    if backend is not None:
        return backend.leaks()
    kernel = args.get("bpf_kernel")
    if isinstance(kernel, Kernel):
        return kernel_leaks(kernel)
    return []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if not _leak_check_wanted(item):
        yield
        return
    mark, _ = finalized_since(0)
    outcome = yield
    if outcome.excinfo is not None:
        return
    gc.collect()
    _, unclosed = finalized_since(mark)
    problems = ["%s (closed by the garbage collector: it was never closed)" % d for d in unclosed] + _leaks(item)
    if problems:
        exc = pytest.fail.Exception("bpfemu leak check: the test left %d bpf object(s) behind:\n  %s"
                                    % (len(problems), "\n  ".join(problems)), pytrace=False)
        if hasattr(outcome, "force_exception"):
            outcome.force_exception(exc)
        else:  # pragma: no cover - pluggy before 1.1
            raise exc


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
