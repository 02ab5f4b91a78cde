"""The host backend: bpfemu's task surface over the real bpf(2) syscall (Linux, privileged).

- :mod:`~bpfemu.host.task`: :class:`Host` (this process) and :class:`HostTask` (a child process);
- :mod:`~bpfemu.host.rpc`: the child's side, and how it carries the memory a call points to;
- :mod:`~bpfemu.host.libc`: libc and the raw syscalls, with each architecture's syscall numbers;
- :mod:`~bpfemu.host.sysinfo`: facts about this machine (possible CPUs, the unprivileged-BPF sysctl).

Nothing here imports the emulator.
"""
from .libc import raw_bpf  # noqa: F401
from .task import FD_RETURNING, Host, HostTask, available  # noqa: F401
