"""The machines a test can run on, behind one shape: the emulator and a real kernel.

Used by the pytest plugin (``bpf_backend``) and by this project's conformance suite.
A backend has ``.name`` ('emu', or 'host' for a real kernel), ``.kernel`` (the emulated
Kernel, None on a real one), ``.vm`` (the :class:`bpfemu.host.vm.VM` a real kernel runs in,
None for the machine's own), ``.bpffs`` (a bpffs to pin under: /sys/fs/bpf on all, on a
real kernel a private one that only this backend's tasks see) and ``.spawn(uid=None,
caps=None)``, a fresh task on that machine (on a real kernel, a real process). Tasks carry
``.bpffs`` and ``.backend`` too. ``leaks()`` lists the bpf objects the machine's tasks and
pins still hold (the same question on all: empty when the code under test closed and
unpinned everything). ``close()`` ends the tasks; on a real kernel the private bpffs, with
whatever was pinned there, goes with them.

The real kernel of a session is the machine's own (``host``) or a kernel of another version
under QEMU (``vm:6.1``, one VM for the whole process): :func:`use_real_kernel` chooses it (the
plugin's ``--bpf-backend``), :func:`real_kernel` is its ``bpfemu.Host()`` (what tests that
compare the emulator with the kernel call directly), :func:`real_backend` a backend on it.
:func:`need_host` is how a test that needs the real kernel skips (or, when it is required,
fails) where it cannot have it.
"""
import ctypes
import errno
import os
import stat

import atexit
import threading

from .. import profiles, uapi
from ..host.sysinfo import host_kernel_max, host_total_memory
from ..host.task import Host, available
from ..host.vm import kernels as vm_kernels
from ..host.vm import machine as vm_machine
from ..kernel import Kernel

_host_status = None
_real = "host"  # the session's real kernel: "host" or "vm:VERSION"


def parse_backend(spec):
    """('emu', None), ('host', None) or ('vm', version) for a backend spec 'emu', 'host', 'vm:6.1'; ValueError."""
    if spec in ("emu", "host"):
        return spec, None
    if spec.startswith("vm:") and len(spec) > 3:
        return "vm", spec[3:]
    raise ValueError("a bpf backend is emu, host or vm:VERSION, not %r" % (spec,))


def use_real_kernel(spec):
    """Make ``spec`` ('host' or 'vm:VERSION') the real kernel of this session (what :func:`real_kernel`,
    :func:`host_status` and :func:`real_backend` mean)."""
    global _real, _host_status
    kind, _v = parse_backend(spec)
    if kind == "emu":
        raise ValueError("the real kernel is host or vm:VERSION, not emu")
    if spec != _real:
        _real, _host_status = spec, None


def real_kernel_spec():
    """'host' or 'vm:VERSION': the session's real kernel."""
    return _real


def real_vm_version():
    """The kernel version of the session's VM ('6.1'), or None when the real kernel is the machine's own."""
    return parse_backend(_real)[1]


def host_status():
    """(True, '') when the session's real kernel is usable here, else (False, why); computed once (for a VM,
    that boots it)."""
    global _host_status
    if _host_status is None:
        version = real_vm_version()
        _host_status = available() if version is None else vm_status(version)
    return _host_status


def real_kernel():
    """The session's real kernel as ``bpfemu.Host()`` is one: Host() itself, or a fresh
    :class:`bpfemu.host.vm.VMHost` of the session's VM (its tasks have a private bpffs of their own)."""
    version = real_vm_version()
    return Host() if version is None else session_vm(version).host()


def real_profile():
    """The profile of the session's real kernel: the VM's version's, or the host's (the newest when no profile
    matches the host's version)."""
    version = real_vm_version()
    return profiles.get(version or profiles.host_version() or profiles.NEWEST)


def twin_kernel(**kernel_args):
    """A fresh emulated :class:`bpfemu.Kernel` of the session's real kernel's version (:func:`real_profile`),
    for the tests that compare the two side by side (fuzzers, state machines): they compare like with like
    whatever ``--bpf-kernel`` says."""
    kernel_args.setdefault("version", real_profile().version)
    return Kernel(**kernel_args)


def real_bpf_preload():
    """Whether the session's VM kernel was built with CONFIG_BPF_PRELOAD (read from its cached config, without
    booting it); None when the real kernel is the host's (its backends find out from a fresh bpffs)."""
    version = real_vm_version()
    if version is None:
        return None
    cached = vm_kernels.cached(version)
    return cached is not None and vm_kernels.config_option(cached, "CONFIG_BPF_PRELOAD") == "y"


def real_backend():
    """A backend on the session's real kernel: HostBackend, or VMBackend on the session's VM."""
    version = real_vm_version()
    return HostBackend() if version is None else VMBackend(session_vm(version))


# -- one VM per kernel version for the whole process -------------------------------------------------

_vms = {}
_vm_failed = {}
_vm_lock = threading.Lock()


# The session VMs' RAM: the suite's largest map (a BLOOM_FILTER of 2^32 bits, 512 MiB) fits; the guest uses
# only what it touches (about 300-700 MiB over a run).
SESSION_VM_MB = 1280


def session_vm(version):
    """The VM of ``version`` for this process, booted on first use and powered off at exit; VMError if it
    cannot be."""
    with _vm_lock:
        vm = _vms.get(version)
        if vm is not None:
            return vm
        if version in _vm_failed:
            raise vm_machine.VMError(_vm_failed[version])
        try:
            vm = vm_machine.VM(kernel=version, memory_mb=SESSION_VM_MB)
        except (vm_machine.VMError, OSError) as e:
            _vm_failed[version] = str(e)
            raise vm_machine.VMError(str(e)) from None
        _vms[version] = vm
        return vm


def vm_status(version):
    """(True, '') when the VM of ``version`` is up (booting it if need be), else (False, why)."""
    ok, why = vm_machine.available(version)
    if not ok:
        return ok, "no VM of kernel %s: %s" % (version, why)
    try:
        session_vm(version)
    except vm_machine.VMError as e:
        return False, "the VM of kernel %s did not start: %s" % (version, e)
    return True, ""


@atexit.register
def _shutdown_vms():
    for vm in list(_vms.values()):
        try:
            vm.shutdown()
        except Exception:
            pass
    _vms.clear()


def host_required(config=None):
    """Whether a host kernel that cannot be used is a failure rather than a skip: BPFEMU_REQUIRE_HOST=1,
    or pytest's ``--bpf-require-host`` when ``config`` is given."""
    if os.environ.get("BPFEMU_REQUIRE_HOST") == "1":
        return True
    return bool(config is not None and config.getoption("--bpf-require-host", False))


def need_host(config=None, own_process=None):
    """Skip the running test when the real kernel cannot be used, or fail it when it is required.

    ``own_process`` names what the test needs of the calling process itself on the real kernel (its own
    page protections, the machine's memory cgroups): a VM cannot give that, so there the test is skipped
    with that reason."""
    import pytest
    version = real_vm_version()
    if own_process and version is not None:
        pytest.skip("bpfemu: the real kernel is a VM (%s): the test needs %s" % (version, own_process))
    ok, why = host_status()
    if not ok:
        msg = "bpfemu: the real kernel cannot run this test: %s" % why
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
    """The emulator: a fresh :class:`bpfemu.Kernel` (``kernel_args``: its arguments, ``version=`` among them).
    ``.profile`` is its kernel version's profile, ``.bpf_preload`` whether its bpffs has maps.debug and
    progs.debug; tasks carry both too. ``.kernel_max`` and ``.machine_memory`` are the machine's, as on a real
    kernel: its highest CPU number (CONFIG_NR_CPUS - 1) and its RAM in bytes (None: unbounded)."""

    name = "emu"
    vm = None

    def __init__(self, **kernel_args):
        self.kernel = Kernel(**kernel_args)
        self.bpffs = "/sys/fs/bpf"
        self.profile = self.kernel.profile
        self.bpf_preload = self.kernel.bpf_preload
        self.kernel_max = self.kernel.nr_cpus - 1
        self.machine_memory = self.kernel.memcg.machine

    def spawn(self, uid=None, caps=None):
        t = self.kernel.spawn(uid=uid or 0, caps=caps)
        t.bpffs, t.backend, t.profile, t.bpf_preload = self.bpffs, self.name, self.profile, self.bpf_preload
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
    """The machine's own kernel (``host``: a ``bpfemu.Host()``), or ``host`` given: a Host-like of another
    real kernel (a :class:`bpfemu.host.vm.VMHost`). ``.kernel_max`` is the kernel's highest CPU number
    (/sys/devices/system/cpu/kernel_max), ``.machine_memory`` its RAM in bytes (MemTotal); None if unreadable."""

    name = "host"
    kernel = None
    vm = None

    def __init__(self, host=None):
        self.host = host if host is not None else Host()
        self.tasks = []
        self.profile = profiles.get(profiles.host_version() or profiles.NEWEST)
        self.bpf_preload = None  # found from the fresh bpffs by the first task
        self.kernel_max = host_kernel_max()
        self.machine_memory = host_total_memory()
        ok, why = self.host.private_bpffs
        if not ok:
            raise OSError(errno.EPERM, "bpfemu: the host backend needs a private bpffs: %s" % why)
        self.bpffs = "/sys/fs/bpf"

    def spawn(self, uid=None, caps=None):
        t = self.host.spawn(uid=uid or None, caps=caps)
        if self.bpf_preload is None:  # the first task sees the bpffs as it was made
            self.bpf_preload = "maps.debug" in t.listdir(self.bpffs)
        t.backend, t.profile, t.bpf_preload = self.name, self.profile, self.bpf_preload
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


class VMBackend(HostBackend):
    """A real kernel of another version in a VM: a fresh ``vm.host()`` (tasks with a private bpffs of
    their own) on ``vm``, which outlives the backend."""

    def __init__(self, vm):
        self.vm = vm
        HostBackend.__init__(self, vm.host())
        self.profile = profiles.get(vm.version)
        self.bpf_preload = vm.bpf_preload
        self.kernel_max = vm.kernel_max
        self.machine_memory = vm.total_memory

    def __repr__(self):
        return "<bpf backend host: VM %s (%s)>" % (self.vm.version, self.vm.release)
