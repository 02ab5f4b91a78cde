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


def host_kernel_max(path="/sys/devices/system/cpu/kernel_max"):
    """The highest CPU number the kernel was built for (CONFIG_NR_CPUS - 1), or None."""
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def host_total_memory(path="/proc/meminfo"):
    """The machine's RAM in bytes (MemTotal: the kernel's totalram_pages), or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def host_protected_symlinks(default=0):
    """The sysctl fs.protected_symlinks, or ``default`` (the kernel's) where it cannot be read."""
    try:
        with open("/proc/sys/fs/protected_symlinks") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def host_unprivileged_bpf_disabled(default=2):
    """The sysctl kernel.unprivileged_bpf_disabled, or ``default`` where it cannot be read."""
    if not hostenv.is_linux():
        return default
    try:
        with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default
