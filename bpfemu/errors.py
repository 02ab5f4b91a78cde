"""One way to fail: an OSError carrying the kernel's errno.

Every error the emulator raises goes through :func:`bpf_error`, so the errno is
the contract and Python picks the matching OSError subclass (ENOENT gives
FileNotFoundError, EPERM PermissionError, ...), exactly as the real syscall
does through ``ctypes.get_errno()`` in :class:`bpfemu.Host`.
"""
import errno as _errno
import os

ENOTSUPP = 524  # kernel-internal "operation not supported", visible to userspace as 524

_EXTRA_NAMES = {ENOTSUPP: "ENOTSUPP"}


def errno_name(code):
    return _EXTRA_NAMES.get(code) or _errno.errorcode.get(code, str(code))


def strerror(code):
    if code == ENOTSUPP:
        return "Unknown error 524 (ENOTSUPP: not supported)"
    return os.strerror(code)


def bpf_error(code, detail=None):
    """Build the OSError for errno ``code``; ``detail`` explains it (emulator only)."""
    msg = strerror(code)
    if detail:
        msg = "%s (bpfemu: %s)" % (msg, detail)
    e = OSError(code, msg)
    e.bpf_detail = detail
    return e


class KernelError(Exception):
    """Raised only for misuse of the Python API itself (not a syscall outcome)."""
