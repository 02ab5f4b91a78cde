"""Facts about the machine we run on, read from /sys and /proc (defaults of the emulated Kernel too).

Off Linux (or with BPFEMU_PLATFORM=nonlinux, see :mod:`bpfemu.hostenv`) nothing is read: each fact is unknown.
"""
from .. import hostenv


def host_possible_cpus(path="/sys/devices/system/cpu/possible"):
    """Number of possible CPUs as the kernel counts them (highest id + 1), or None."""
    if not hostenv.is_linux():
        return None
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    top = -1
    for part in text.split(","):
        if part:
            top = max(top, int(part.split("-")[-1]))
    return top + 1 if top >= 0 else None


def host_unprivileged_bpf_disabled(default=2):
    """The sysctl kernel.unprivileged_bpf_disabled, or ``default`` where it cannot be read."""
    if not hostenv.is_linux():
        return default
    try:
        with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default
