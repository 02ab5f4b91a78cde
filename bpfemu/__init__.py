"""bpfemu: a userspace emulator of the Linux bpf(2) object model.

    import bpfemu
    kernel = bpfemu.Kernel()
    proc = kernel.spawn()
    fd = proc.bpf(bpfemu.uapi.BPF_MAP_CREATE, attr)

``bpfemu.Host()`` offers the same surface over the real syscall, ``bpfemu.VM(kernel="6.1")`` over a real
kernel of another version booted under QEMU; ``bpfemu.Map`` is the typed API over either; ``bpfemu.Object``
opens a clang-compiled BPF object and loads it as libbpf does. The package's layout follows the kernel's
kernel/bpf/: ``syscall/`` (the bpf(2) commands and
their table), ``maps/`` (one module per map type), ``host/`` (the real syscall), ``api/`` (the typed
API) and ``testing/`` (the pytest plugin, backends and ``bpfemu conform``).
"""
from . import host, uapi  # noqa: F401
from .api import BpfError, Map, MapInfo, Program, ProgInfo  # noqa: F401  (the typed map and program API)
from .errors import ENOTSUPP, bpf_error  # noqa: F401
from .host import Host  # noqa: F401  (the real kernel through bpf(2): Linux, privileged)
from .host.vm import VM  # noqa: F401  (a real kernel of another version, booted under QEMU)
from .invariants import InvariantError, check_invariants  # noqa: F401  (model consistency checker)
from .kernel import Kernel, Task  # noqa: F401
from .libbpf import Object  # noqa: F401  (clang-compiled BPF objects, opened and loaded as libbpf does)

__all__ = ["Kernel", "Task", "Host", "VM", "Map", "MapInfo", "Program", "ProgInfo", "Object", "BpfError", "uapi",
           "ENOTSUPP", "check_invariants"]
