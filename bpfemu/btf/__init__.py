"""BTF, the BPF Type Format: kernel/bpf/btf.c.

- :func:`btf_parse` validates a blob exactly as BPF_BTF_LOAD does (errno and
  verifier log included) and returns a :class:`Btf`;
- :class:`Btf` answers type lookups (by id, by name and kind), names, sizes;
- :mod:`bpfemu.btf.fields` finds the special fields of map values
  (spin locks, timers, kptrs, list heads, ...);
- :func:`vmlinux_btf` is the kernel's own BTF (the host's on Linux, else one
  bpfemu builds), loaded on first use;
- :class:`Builder` writes BTF blobs for tests.

This package depends only on :mod:`bpfemu.errors`.
"""
from .btf import Btf
from .builder import Builder
from .log import BytesBuffer, VerifierLog
from .parse import btf_parse
from .types import BtfType
from .vmlinux import vmlinux_btf
from . import uapi

__all__ = ["Btf", "BtfType", "Builder", "BytesBuffer", "VerifierLog", "btf_parse", "uapi", "load", "vmlinux_btf"]


def load(blob, log_level=1, log_size=65535, **kw):
    """Parse ``blob`` with a log: (Btf or None, errno or 0, log bytes, log_true_size).

    A convenience for tests and tools; the syscall layer calls :func:`btf_parse`.
    """
    ubuf = BytesBuffer(log_size) if log_size else None
    try:
        log = VerifierLog.init(log_level, ubuf, log_size)
    except OSError as e:
        return None, e.errno, b"", 0
    try:
        btf = btf_parse(blob, log, **kw)
        err = 0
    except OSError as e:
        btf, err = None, e.errno
    return btf, err, (ubuf.text() if ubuf else b""), log.true_size
