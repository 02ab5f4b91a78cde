"""The path walk's sysctl fs.protected_symlinks, which the test host has at 0 (the conformance tests cover
that): with it at 1, may_follow_link (fs/namei.c) refuses a symlink as the last component of a walk when
the follower does not own it, its directory is sticky and world-writable, and the directory's owner does not
own it either."""
import errno

import bpfemu
from bpfemu.testing.support import err


def _setup(protected):
    k = bpfemu.Kernel(protected_symlinks=protected)
    root = k.spawn()
    user = k.spawn(uid=1000, caps=())
    r = "/sys/fs/bpf"
    root.mkdir(r + "/d")
    user.symlink("d", r + "/users")
    root.symlink("d", r + "/roots")
    return k, root, user, r


def test_protected_symlinks_refuse_another_users_link_in_a_sticky_directory():
    k, root, user, r = _setup(1)
    assert err(root.stat, r + "/users") == errno.EACCES  # even root: the rule is on ownership
    assert err(root.listdir, r + "/users") == errno.EACCES
    assert err(root.stat, r + "/users/") == errno.EACCES  # a trailing slash follows it as the last component
    assert err(root.stat, r + "/users/.") == 0  # in the middle of a path it is not checked
    assert err(root.lstat, r + "/users") == 0 and root.readlink(r + "/users") == "d"
    assert err(user.stat, r + "/users") == 0  # its owner
    assert err(user.stat, r + "/roots") == 0  # owned by the directory's owner
    root.symlink("../users", r + "/d/via")  # its body ends on the protected link: checked as the last one
    assert err(root.stat, r + "/d/via") == errno.EACCES
    assert err(root.stat, r + "/d/via/.") == 0
    bpfemu.check_invariants(k)


def test_without_protected_symlinks_everyone_follows():
    k, root, user, r = _setup(0)
    assert [err(root.stat, r + "/users"), err(root.stat, r + "/d/../users/")] == [0, 0]
