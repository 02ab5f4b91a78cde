"""Real kernels of other versions under QEMU: ``bpfemu.VM(kernel="6.1")``, Host()'s surface in a guest.

- :mod:`~bpfemu.host.vm.kernels`: the pinned Debian kernel packages and their cache;
- :mod:`~bpfemu.host.vm.launcher`: the initramfs and the QEMU command line;
- :mod:`~bpfemu.host.vm.wire`: the framing of many streams (and fd handles) on one serial port;
- :mod:`~bpfemu.host.vm.guest`: the agent in the guest;
- :mod:`~bpfemu.host.vm.machine`: :class:`VM`, :class:`VMHost` and :class:`VMTask`, the host side.

Like the rest of :mod:`bpfemu.host` this imports no emulator module; the guest tasks speak the host
child protocol of :mod:`bpfemu.host.rpc`.
"""
from .machine import VM, VMError, VMHost, VMTask, available  # noqa: F401
