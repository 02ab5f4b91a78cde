"""The platform bpfemu runs on, asked in one place: Linux or not, and whether this process can read and write
its own memory with process_vm_readv/process_vm_writev (how a bad pointer becomes EFAULT instead of a crash).

Every platform probe of bpfemu goes through here: the emulator's user memory (:mod:`bpfemu.usermem`), the
host backend's ``available()``, the machine facts of :mod:`bpfemu.host.sysinfo` (CPU count, sysctls) and
the kernel BTF (:mod:`bpfemu.btf.vmlinux`). None of them reads ``/proc`` or ``/sys`` unless :func:`is_linux`.

``BPFEMU_PLATFORM=nonlinux`` in the environment makes bpfemu behave exactly as it does off Linux (macOS,
Windows, ...): :func:`is_linux` is False, so the host backend is unavailable ("not Linux"), no file under
/proc or /sys is read (the emulated kernel takes its defaults: 2 CPUs, unprivileged_bpf_disabled=2, a built
kernel BTF), and user memory is copied unchecked (only the NULL page gives EFAULT). pytest's
``--bpf-platform=nonlinux`` sets it for a test run and also hides /proc and /sys from the whole process.
"""
import ctypes
import errno
import os
import sys
import threading

ENV = "BPFEMU_PLATFORM"
NONLINUX = "nonlinux"

# process_vm_readv and process_vm_writev of each architecture (the kernel's syscall tables), used only to
# name them in a seccomp filter (bpfemu.testing.support.block_process_vm); libc calls them by name
PROCESS_VM_SYSCALLS = {
    "x86_64": (310, 311),
    "aarch64": (270, 271),
    "riscv64": (270, 271),
    "ppc64le": (351, 352),
    "s390x": (340, 341),
}


def simulated():
    """The platform bpfemu was told to simulate (``BPFEMU_PLATFORM``), or None."""
    v = os.environ.get(ENV, "")
    return v or None


def is_linux():
    """True on Linux, unless ``BPFEMU_PLATFORM=nonlinux`` simulates another platform."""
    return sys.platform.startswith("linux") and simulated() != NONLINUX


def not_linux_reason():
    """Why :func:`is_linux` is False, in words ('' when it is True)."""
    if is_linux():
        return ""
    if simulated() == NONLINUX:
        return "not Linux (simulated: %s=%s)" % (ENV, NONLINUX)
    return "not Linux (%s)" % sys.platform


class iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_lock = threading.Lock()
_status = None  # (pid, (ok, why)) of the last probe


def process_vm_functions():
    """libc's (process_vm_readv, process_vm_writev) with their prototypes, or None where there are none."""
    try:
        lib = ctypes.CDLL(None, use_errno=True)
        fns = (lib.process_vm_readv, lib.process_vm_writev)
    except (OSError, AttributeError):
        return None
    for f in fns:
        f.restype = ctypes.c_ssize_t
        f.argtypes = [ctypes.c_int, ctypes.POINTER(iovec), ctypes.c_ulong, ctypes.POINTER(iovec),
                      ctypes.c_ulong, ctypes.c_ulong]
    return fns


def _probe():
    if not is_linux():
        return False, not_linux_reason()
    fns = process_vm_functions()
    if fns is None:
        return False, "libc has no process_vm_readv"
    src = ctypes.create_string_buffer(b"bpfemu", 8)
    dst = ctypes.create_string_buffer(8)
    pid = os.getpid()
    for name, fn, local, remote in (("process_vm_readv", fns[0], dst, src), ("process_vm_writev", fns[1], src, dst)):
        lv, rv = iovec(ctypes.addressof(local), 8), iovec(ctypes.addressof(remote), 8)
        if fn(pid, ctypes.byref(lv), 1, ctypes.byref(rv), 1, 0) != 8:
            code = ctypes.get_errno()
            return False, ("%s fails with %s (a seccomp profile, as some containers have, or the ptrace policy "
                           "blocks it)" % (name, errno.errorcode.get(code, code)))
    return True, ""


def process_vm_status(refresh=False):
    """(True, '') when this process can use process_vm_readv/writev on itself, else (False, why).

    Probed once per process (a fork()ed child probes again); ``refresh`` probes anew."""
    global _status
    pid = os.getpid()
    st = _status
    if st is None or st[0] != pid or refresh:
        with _lock:
            st = _status = (pid, _probe())
    return st[1]
