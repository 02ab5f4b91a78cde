"""``bpfemu exec``: run unmodified programs with their bpf(2) calls served by the emulator.

    python3 -m bpfemu exec [--ncpus N] [--state-dir DIR] -- CMD [ARGS...]

or, from Python, :func:`run` (returns the exit status; the kernel can be inspected afterwards)::

    kernel = bpfemu.Kernel()
    status = bpfemu.exec.run(["bpftool", "map", "create", "/sys/fs/bpf/m", "type", "hash",
                              "key", "4", "value", "4", "entries", "8", "name", "m"], kernel=kernel)

Interposition is seccomp user notification (no privilege needed); see docs/exec.md.
"""
import errno
import os

from ..errors import bpf_error
from . import abi
from .daemon import run_attached
from .supervisor import run_here

__all__ = ["run"]


def run(argv, kernel=None, *, ncpus=None, state_dir=None, uid=0, caps=None, env=None, cwd=None,
        stdin=None, stdout=None, stderr=None, debug=False):
    """Run argv with its bpf(2) calls served by an emulated kernel; returns its exit status as subprocess
    does (negative: killed by that signal), once every process the command started is gone.

    ``kernel``: the :class:`bpfemu.Kernel` to serve it from, in this process (a new one with ``ncpus`` CPUs
    if None and no ``state_dir``), which a test can inspect afterwards. ``state_dir``: the directory of a
    kernel kept alive between runs by a daemon (:mod:`bpfemu.exec.daemon`, started on first use with
    ``ncpus`` CPUs): pins and every object they hold stay for the next run with the same directory, as on a
    machine with /sys/fs/bpf; not with ``kernel``. ``uid``/``caps``: the emulated credentials of every
    process of the tree (default root with every capability; the real process stays what it is).
    stdin/stdout/stderr/env/cwd are passed to subprocess.Popen (with ``state_dir``: None, DEVNULL, STDOUT
    for stderr, a file or an fd; not PIPE). Linux x86_64 only (OSError ENOSYS elsewhere)."""
    ok, why = abi.supported()
    if not ok:
        raise bpf_error(errno.ENOSYS, why)
    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise ValueError("no command")
    kw = dict(ncpus=ncpus, uid=uid, caps=caps, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr,
              debug=debug)
    if state_dir is None:
        return run_here(argv, kernel, **kw)
    if kernel is not None:
        raise ValueError("kernel= and state_dir= exclude each other: a state_dir's kernel lives in its daemon")
    return run_attached(os.fspath(state_dir), argv, **kw)
