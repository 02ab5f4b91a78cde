"""Bad arguments to the task verbs: an OSError with the kernel's errno on every backend, never another
Python exception, and never the end of a host child.

Each argument is what a C caller could pass: an fd no C int can hold is no open fd (EBADF), a path is
the C string up to its first NUL, None as a path is a NULL pointer (EFAULT), a mode is truncated to
mode_t. On the host the same calls run through the calling process (``Host()``) and through a child
(``proc``, a HostTask), which must go on answering afterwards.
"""
import errno

import pytest

from bpfemu import Host, uapi as u
from bpfemu.testing.support import create_map, err

EBADF, ENOENT, EFAULT, EINVAL, ENOMEM, EOVERFLOW, ENOTDIR = (errno.EBADF, errno.ENOENT, errno.EFAULT, errno.EINVAL,
                                                            errno.ENOMEM, errno.EOVERFLOW, errno.ENOTDIR)
BIG = [2**31, -2**31 - 1, 2**64, "3", None, 3.0]

CASES = [(verb, (fd,), EBADF) for verb in ("close", "dup") for fd in BIG + [-1, 999]]
CASES += [("fdinfo", (fd,), ENOENT) for fd in BIG + [-1, 999]]  # opening /proc/self/fdinfo/<fd>
CASES += [(verb, (path,), e) for verb in ("rmdir", "unlink", "stat", "lstat", "readlink", "listdir", "open_dir", "statfs",
                                                  "mkdir")
          for path, e in (("", ENOENT), (None, EFAULT), (7, EFAULT), ("\0/x", ENOENT), (b"", ENOENT))]
CASES += [("chmod", (path, 0o600), e) for path, e in (("", ENOENT), (None, EFAULT), ("\0/x", ENOENT))]
CASES += [("chmod", ("/nonexistent", None), EINVAL), ("chown", ("/nonexistent", 2**32, -1), EINVAL),
          ("chown", ("/nonexistent", -1, "0"), EINVAL), ("chown", (None, -1, -1), EFAULT),
          ("rename", ("/nonexistent", "/x", 2**40), EINVAL), ("rename", ("/nonexistent", "/x", 8), EINVAL),
          ("rename", ("{bpffs}/nonexistent", "{bpffs}/x", 2), ENOENT), ("readlink", ("/",), EINVAL)]
CASES += [("symlink", ("", "/tmp/x"), ENOENT), ("symlink", ("x", ""), ENOENT), ("symlink", (None, "/tmp/x"), EFAULT),
          ("symlink", ("x", 7), EFAULT), ("rename", ("", "/x"), ENOENT), ("rename", (None, "/x"), EFAULT), ("rename", ("/nonexistent", None), EFAULT),
          ("mkdir", ("/nonexistent/d", "x"), EINVAL), ("send_fds", (None, [2**31]), EBADF),
          ("bpf", (2**40, u.make_attr()), EINVAL), ("bpf", (-2**31 - 1, u.make_attr()), EINVAL),
          ("bpf", (u.BPF_MAP_CREATE, 2**70, 10), EFAULT), ("bpf", (u.BPF_MAP_CREATE, -5, 10), EFAULT),
          ("spawn", (-5,), EINVAL), ("spawn", (2**32 - 1,), EINVAL), ("fork", (2**40,), EINVAL),
          ("sched_setaffinity", ([],), EINVAL), ("sched_setaffinity", ([9999],), EINVAL),
          ("sched_setaffinity", (None,), EFAULT), ("sched_setaffinity", (["0"],), EINVAL)]
MMAP = [((4096, 1), EINVAL), ((0, 0), EINVAL), ((-1, 0), ENOMEM), ((2**47, 0), ENOMEM), ((2**70, 0), EINVAL),
        ((4096, -4096), EOVERFLOW), ((4096, 4096 * 4096), EINVAL), ((4096, 0.5), EINVAL)]


def _targets(proc, backend):
    return [proc, Host()] if backend.name == "host" else [proc]


def _call(who, backend, verb, args):
    # "{bpffs}": a path on a writable filesystem (a VM's root is read-only: EROFS comes before the lookup)
    args = tuple(a.format(bpffs=who.bpffs) if isinstance(a, str) and "{bpffs}" in a else a for a in args)
    if verb == "spawn":
        return (who.spawn if isinstance(who, Host) else backend.spawn)(*args)
    if verb == "send_fds":
        return who.send_fds(backend.spawn(), args[1])
    return getattr(who, verb)(*args)


@pytest.mark.parametrize("verb,args,want", CASES, ids=lambda x: repr(x)[:30])
def test_bad_arguments_are_oserrors(proc, backend, verb, args, want):
    for who in _targets(proc, backend):
        got = err(_call, who, backend, verb, args)
        assert got == want, (who, verb, args)
    assert proc.fds() == [0, 1, 2]  # the task still answers


@pytest.mark.parametrize("args,want", MMAP, ids=repr)
def test_bad_mmap_arguments(proc, backend, args, want):
    for who in _targets(proc, backend):
        fd = create_map(who, u.BPF_MAP_TYPE_ARRAY, 4, 8, 1024, u.BPF_F_MMAPABLE)
        try:
            assert err(who.mmap, fd, *args) == want, (who, args)
            assert err(who.mmap, 2**31, 4096) == EBADF
        finally:
            who.close(fd)


def test_paths_end_at_their_first_nul(proc):
    d = proc.bpffs + "/d"
    proc.mkdir(d + "\0ignored")
    assert proc.listdir(d + "\0/more") == []
    proc.rename(d + "\0", d + "2\0x")
    assert "d2" in proc.listdir(proc.bpffs)
    assert err(proc.rmdir, proc.bpffs + "/d2/\0") == 0
