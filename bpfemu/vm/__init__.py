"""Real kernels of other versions under QEMU: ``bpfemu.VM(kernel="6.1")``, Host()'s surface in a guest.

- :mod:`bpfemu.vm.kernels`: the pinned Debian kernel packages and their cache;
- :mod:`bpfemu.vm.launcher`: the initramfs and the QEMU command line;
- :mod:`bpfemu.vm.guest`: the agent in the guest;
- :mod:`bpfemu.vm.machine`: :class:`VM` and :class:`VMTask`, the host side.
"""
from .machine import VM, VMError, VMTask, available  # noqa: F401
