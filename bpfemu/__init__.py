"""bpfemu: a userspace emulator of the Linux bpf(2) object model.

    import bpfemu
    kernel = bpfemu.Kernel()
    proc = kernel.spawn()
    fd = proc.bpf(bpfemu.uapi.BPF_MAP_CREATE, attr)

``bpfemu.Host()`` offers the same surface over the real syscall.
"""
from . import uapi  # noqa: F401
from . import arraymap, hashtab  # noqa: F401  (register map types)
from . import objmaps  # noqa: F401  (object map types)
from . import map_in_map  # noqa: F401  (ARRAY_OF_MAPS, HASH_OF_MAPS)
from . import queue_stack_maps, bloom_filter, lpm_trie  # noqa: F401  (key-less maps, LPM trie)
from .errors import ENOTSUPP, bpf_error  # noqa: F401
from .kernel import Kernel, Task  # noqa: F401
from .invariants import check_invariants, InvariantError  # noqa: F401  (model consistency checker)
from .api import Map, MapInfo, BpfError  # noqa: F401  (the high-level map API)
from .syscall import _load_families

_load_families()
from . import host  # noqa: E402
from .host import Host  # noqa: E402  (the real kernel through bpf(2): Linux, privileged)
from .vm import VM  # noqa: E402  (a real kernel of another version, booted under QEMU)


__all__ = ["Kernel", "Task", "Host", "VM", "uapi", "ENOTSUPP"]
