"""``bpfemu exec``: run unmodified programs with their bpf(2) calls served by the emulator.

    python3 -m bpfemu exec [--ncpus N] [--state-dir DIR] -- CMD [ARGS...]

or, from Python, :func:`run` (returns the exit status; the kernel can be inspected afterwards)::

    kernel = bpfemu.Kernel()
    status = bpfemu.exec.run(["bpftool", "map", "create", "/sys/fs/bpf/m", "type", "hash",
                              "key", "4", "value", "4", "entries", "8", "name", "m"], kernel=kernel)

Interposition is seccomp user notification (no privilege needed); see docs/exec.md.
"""
from .supervisor import run  # noqa: F401
from .cli import main  # noqa: F401

__all__ = ["run", "main"]
