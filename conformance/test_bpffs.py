"""bpffs: what a fresh mount holds, OBJ_PIN/OBJ_GET rules, and directory operations.

Every path is under proc.bpffs (/sys/fs/bpf: the emulator's, or on the host the tasks' private one). The
"outside" fixture is an ordinary directory under /tmp that is not on a bpffs.
"""
import errno
import itertools
import os
import shutil
import stat

import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import err, hash_map, lookup, map_id, obj_get, pin, preloaded, u32, u64, update

_seq = itertools.count()


@pytest.fixture
def outside(proc):
    path = "/tmp/bpfemu-outside-%d-%d" % (os.getpid(), next(_seq))
    proc.mkdir(path)
    yield path
    if proc.backend == "host" and getattr(proc, "vm", None) is None:  # (a VM's /tmp goes with the guest)
        shutil.rmtree(path, ignore_errors=True)


def make_plain_file(proc, path):
    """An ordinary file (setup only: the emulator's namespace gets one directly, a real kernel's task makes it
    with mknod, so that it is where the task sees it: in a VM, the guest's)."""
    if proc.backend == "emu":
        proc.kernel.fs.create_file(path)
    else:
        proc._call("call", "mknod", (path, stat.S_IFREG | 0o644))


# -- a fresh mount --------------------------------------------------------------

def test_fresh_bpffs_lists_the_preloaded_iterators(proc):
    """maps.debug and progs.debug where the kernel was built with CONFIG_BPF_PRELOAD (the host's, an emulated
    Kernel's by default); nothing without it (Debian's 6.1 and 6.12)."""
    assert proc.listdir(proc.bpffs) == preloaded(proc)


def test_fresh_bpffs_modes(proc):
    root = proc.stat(proc.bpffs)
    assert root.st_mode == stat.S_IFDIR | stat.S_ISVTX | 0o777 and root.st_nlink == 2 and root.st_uid == 0
    for name in preloaded(proc):
        st = proc.stat(proc.bpffs + "/" + name)
        assert (st.st_mode, st.st_nlink, st.st_uid) == (stat.S_IFREG | 0o400, 1, 0)


def test_statfs_says_BPF_FS_MAGIC(proc, outside):
    proc.mkdir(proc.bpffs + "/d")
    assert proc.statfs(proc.bpffs).f_type == u.BPF_FS_MAGIC == 0xCAFE4A11
    assert proc.statfs(proc.bpffs + "/d").f_type == u.BPF_FS_MAGIC
    assert proc.statfs(outside).f_type != u.BPF_FS_MAGIC


def test_preloaded_iterators_stay(proc):
    r = proc.bpffs
    fd = hash_map(proc)
    if not preloaded(proc):  # no iterators: a dotted name that is not there cannot even be looked up
        for op in (lambda: proc.unlink(r + "/maps.debug"), lambda: proc.rename(r + "/maps.debug", r + "/x"),
                   lambda: proc.rmdir(r + "/maps.debug"), lambda: proc.mkdir(r + "/maps.debug"),
                   lambda: pin(proc, fd, r + "/maps.debug"), lambda: obj_get(proc, r + "/maps.debug"),
                   lambda: proc.stat(r + "/maps.debug")):
            assert err(op) == errno.EPERM
        return
    assert err(proc.unlink, r + "/maps.debug") == errno.EPERM
    assert err(proc.rename, r + "/maps.debug", r + "/x") == errno.EPERM
    assert err(proc.rmdir, r + "/maps.debug") == errno.ENOTDIR
    assert err(proc.mkdir, r + "/maps.debug") == errno.EEXIST
    assert err(pin, proc, fd, r + "/maps.debug") == errno.EEXIST
    pin(proc, fd, r + "/x")
    assert err(proc.rename, r + "/x", r + "/progs.debug") == errno.EPERM
    assert err(obj_get, proc, r + "/maps.debug") == errno.ENOENT
    assert proc.listdir(r) == ["maps.debug", "progs.debug", "x"]


# -- OBJ_PIN ----------------------------------------------------------------------

def test_pin_makes_a_0600_file(proc):
    pin(proc, hash_map(proc), proc.bpffs + "/m")
    st = proc.stat(proc.bpffs + "/m")
    assert (st.st_mode, st.st_nlink) == (stat.S_IFREG | 0o600, 1)
    assert proc.listdir(proc.bpffs) == sorted(["m"] + preloaded(proc))


def test_pin_outside_bpffs_is_EPERM(proc, outside):
    fd = hash_map(proc)
    assert err(pin, proc, fd, outside + "/m") == errno.EPERM
    assert err(pin, proc, fd, outside + "/m.x") == errno.EPERM
    assert err(pin, proc, fd, proc.bpffs + "/../m") == errno.EPERM  # '..' leaves the mount
    assert proc.listdir(outside) == []


def test_pin_onto_an_existing_name_is_EEXIST(proc, outside):
    fd = hash_map(proc)
    pin(proc, fd, proc.bpffs + "/m")
    proc.mkdir(proc.bpffs + "/d")
    assert err(pin, proc, fd, proc.bpffs + "/m") == errno.EEXIST
    assert err(pin, proc, fd, proc.bpffs + "/d") == errno.EEXIST
    assert err(pin, proc, fd, proc.bpffs) == errno.EEXIST  # the mount point exists: EEXIST wins over EPERM
    assert err(pin, proc, fd, outside) == errno.EEXIST


def test_pin_into_a_missing_directory_is_ENOENT(proc):
    fd = hash_map(proc)
    assert err(pin, proc, fd, proc.bpffs + "/nodir/m") == errno.ENOENT
    assert err(pin, proc, fd, proc.bpffs + "/a/b/c") == errno.ENOENT
    assert err(pin, proc, fd, "") == errno.ENOENT


def test_pin_below_a_pin_is_ENOTDIR(proc):
    fd = hash_map(proc)
    pin(proc, fd, proc.bpffs + "/m")
    assert err(pin, proc, fd, proc.bpffs + "/m/x") == errno.ENOTDIR


def test_dotted_names_are_EPERM_on_bpffs(proc):
    fd = hash_map(proc)
    r = proc.bpffs
    assert err(pin, proc, fd, r + "/a.b") == errno.EPERM
    assert err(pin, proc, fd, r + "/no.dir/m") == errno.EPERM  # the dotted lookup fails before ENOENT
    assert err(proc.mkdir, r + "/d.x") == errno.EPERM
    assert err(obj_get, proc, r + "/a.b") == errno.EPERM
    assert err(proc.stat, r + "/a.b") == errno.EPERM
    pin(proc, fd, r + "/m")
    assert err(proc.rename, r + "/m", r + "/m.x") == errno.EPERM


def test_pinning_an_fd_that_is_not_a_bpf_object_is_EINVAL(proc):
    assert err(pin, proc, 0, proc.bpffs + "/tty") == errno.EINVAL
    assert err(pin, proc, 99, proc.bpffs + "/closed") == errno.EINVAL  # a closed fd too: not EBADF
    d = proc.open_dir(proc.bpffs)
    assert err(pin, proc, d, proc.bpffs + "/dir") == errno.EINVAL


def test_pin_file_flags(proc):
    fd = hash_map(proc)
    r = proc.bpffs
    assert err(pin, proc, fd, r + "/a", file_flags=u.BPF_F_RDONLY) == errno.EINVAL
    assert err(pin, proc, fd, r + "/a", file_flags=u.BPF_F_WRONLY) == errno.EINVAL
    assert err(pin, proc, fd, r + "/a", path_fd=3) == errno.EINVAL  # path_fd without BPF_F_PATH_FD


def test_pin_with_path_fd(proc, profile, outside):
    fd = hash_map(proc)
    r = proc.bpffs
    proc.mkdir(r + "/sub")
    d = proc.open_dir(r)
    sub = proc.open_dir(r + "/sub")
    PF = u.BPF_F_PATH_FD
    if not profile.path_fd:  # (6.5+): OBJ_PIN takes no file_flags, and path_fd is past its last field
        assert err(pin, proc, fd, "rel", file_flags=PF, path_fd=d) == errno.EINVAL
        assert err(pin, proc, fd, r + "/abs", file_flags=PF) == errno.EINVAL
        assert err(pin, proc, fd, r + "/abs", path_fd=d) == errno.EINVAL
        return
    pin(proc, fd, "rel", file_flags=PF, path_fd=d)
    pin(proc, fd, "sub/deeper", file_flags=PF, path_fd=d)
    pin(proc, fd, "../up", file_flags=PF, path_fd=sub)
    pin(proc, fd, r + "/abs", file_flags=PF, path_fd=d)  # an absolute path ignores path_fd
    assert proc.listdir(r) == sorted(["abs", "rel", "sub", "up"] + preloaded(proc))
    assert proc.listdir(r + "/sub") == ["deeper"]
    assert err(pin, proc, fd, "x", file_flags=PF, path_fd=fd) == errno.ENOTDIR
    assert err(pin, proc, fd, "x", file_flags=PF, path_fd=0) == errno.ENOTDIR
    assert err(pin, proc, fd, "x", file_flags=PF, path_fd=77) == errno.EBADF
    assert err(pin, proc, fd, "x", file_flags=PF, path_fd=proc.open_dir(outside)) == errno.EPERM


def test_open_dir_errors(proc):
    pin(proc, hash_map(proc), proc.bpffs + "/m")
    assert err(proc.open_dir, proc.bpffs + "/m") == errno.ENOTDIR
    assert err(proc.open_dir, proc.bpffs + "/nope") == errno.ENOENT


# -- OBJ_GET ----------------------------------------------------------------------

def test_get_of_something_that_is_not_a_pin_is_EACCES(proc, outside):
    make_plain_file(proc, outside + "/f")
    proc.mkdir(proc.bpffs + "/d")
    assert err(obj_get, proc, proc.bpffs) == errno.EACCES
    assert err(obj_get, proc, proc.bpffs + "/d") == errno.EACCES
    assert err(obj_get, proc, outside) == errno.EACCES
    assert err(obj_get, proc, outside + "/f") == errno.EACCES


def test_get_of_a_missing_pin_is_ENOENT(proc):
    assert err(obj_get, proc, proc.bpffs + "/nope") == errno.ENOENT
    assert err(obj_get, proc, proc.bpffs + "/nodir/nope") == errno.ENOENT


def test_get_file_flags_decide_the_fd_permissions(proc):
    fd = hash_map(proc)
    update(proc, fd, u32(1), u64(1))
    pin(proc, fd, proc.bpffs + "/m")
    ro = obj_get(proc, proc.bpffs + "/m", file_flags=u.BPF_F_RDONLY)
    wo = obj_get(proc, proc.bpffs + "/m", file_flags=u.BPF_F_WRONLY)
    rw = obj_get(proc, proc.bpffs + "/m")
    assert lookup(proc, ro, u32(1), 8) == u64(1)
    assert err(update, proc, ro, u32(1), u64(2)) == errno.EPERM
    update(proc, wo, u32(1), u64(3))
    assert err(lookup, proc, wo, u32(1), 8) == errno.EPERM
    assert lookup(proc, rw, u32(1), 8) == u64(3)
    assert map_id(proc, ro) == map_id(proc, fd)


@pytest.mark.parametrize("flags", [u.BPF_F_RDONLY | u.BPF_F_WRONLY, 1, u.BPF_F_RDONLY_PROG, u.BPF_F_TOKEN_FD])
def test_get_bad_file_flags_are_EINVAL(proc, flags):
    pin(proc, hash_map(proc), proc.bpffs + "/m")
    assert err(obj_get, proc, proc.bpffs + "/m", file_flags=flags) == errno.EINVAL


def test_get_with_bpf_fd_set_is_EINVAL(proc):
    pin(proc, hash_map(proc), proc.bpffs + "/m")
    p = (proc.bpffs + "/m\0").encode()
    import ctypes
    b = ctypes.create_string_buffer(p, len(p))
    assert err(proc.bpf, u.BPF_OBJ_GET, u.make_attr(pathname=ctypes.addressof(b), bpf_fd=3)) == errno.EINVAL


def test_get_with_path_fd(proc, profile):
    fd = hash_map(proc)
    pin(proc, fd, proc.bpffs + "/m")
    d = proc.open_dir(proc.bpffs)
    PF = u.BPF_F_PATH_FD
    if not profile.path_fd:  # (6.5+): not an OBJ_GET flag, and path_fd is past its last field
        assert err(obj_get, proc, "m", file_flags=PF, path_fd=d) == errno.EINVAL
        assert err(obj_get, proc, proc.bpffs + "/m", file_flags=PF) == errno.EINVAL
        assert err(obj_get, proc, proc.bpffs + "/m", path_fd=d) == errno.EINVAL
        return
    got = obj_get(proc, "m", file_flags=PF, path_fd=d)
    assert map_id(proc, got) == map_id(proc, fd)
    ro = obj_get(proc, "m", file_flags=PF | u.BPF_F_RDONLY, path_fd=d)
    assert err(update, proc, ro, u32(1), u64(1)) == errno.EPERM
    assert err(obj_get, proc, "m", file_flags=PF, path_fd=fd) == errno.ENOTDIR
    assert err(obj_get, proc, "m", path_fd=d) == errno.EINVAL


# -- directories --------------------------------------------------------------------

def test_mkdir_and_nlink(proc):
    r = proc.bpffs
    proc.mkdir(r + "/d")
    proc.mkdir(r + "/d7", 0o700)
    assert proc.stat(r + "/d").st_mode == stat.S_IFDIR | 0o755  # 0777 less the umask
    assert proc.stat(r + "/d7").st_mode == stat.S_IFDIR | 0o700
    assert proc.stat(r).st_nlink == 4
    assert proc.stat(r + "/d").st_nlink == 2
    proc.mkdir(r + "/d/e")
    assert proc.stat(r + "/d").st_nlink == 3
    assert proc.listdir(r + "/d") == ["e"]


def test_mkdir_errors(proc):
    r = proc.bpffs
    fd = hash_map(proc)
    pin(proc, fd, r + "/m")
    proc.mkdir(r + "/d")
    assert err(proc.mkdir, r + "/d") == errno.EEXIST
    assert err(proc.mkdir, r + "/m") == errno.EEXIST
    assert err(proc.mkdir, r + "/m/x") == errno.ENOTDIR
    assert err(proc.mkdir, r + "/no/x") == errno.ENOENT


def test_rmdir(proc):
    r = proc.bpffs
    proc.mkdir(r + "/d")
    pin(proc, hash_map(proc), r + "/d/m")
    assert err(proc.rmdir, r + "/d") == errno.ENOTEMPTY
    assert err(proc.rmdir, r + "/d/m") == errno.ENOTDIR
    assert err(proc.rmdir, r + "/zz") == errno.ENOENT
    assert err(proc.rmdir, r + "/d/.") == errno.EINVAL
    assert err(proc.rmdir, r) == errno.EBUSY  # the mount point
    proc.unlink(r + "/d/m")
    proc.rmdir(r + "/d")
    assert proc.listdir(r) == preloaded(proc)


def test_unlink_errors(proc):
    r = proc.bpffs
    proc.mkdir(r + "/d")
    assert err(proc.unlink, r + "/d") == errno.EISDIR
    assert err(proc.unlink, r + "/zz") == errno.ENOENT


def test_listdir_and_stat_errors(proc):
    r = proc.bpffs
    pin(proc, hash_map(proc), r + "/m")
    assert err(proc.listdir, r + "/m") == errno.ENOTDIR
    assert err(proc.listdir, r + "/zz") == errno.ENOENT
    assert err(proc.stat, r + "/zz") == errno.ENOENT
    assert err(proc.stat, r + "/m/x") == errno.ENOTDIR


def test_rename_moves_pins_across_directories(proc):
    r = proc.bpffs
    fd = hash_map(proc)
    proc.mkdir(r + "/d")
    pin(proc, fd, r + "/d/m")
    proc.rename(r + "/d/m", r + "/m2")
    assert proc.listdir(r + "/d") == []
    assert map_id(proc, obj_get(proc, r + "/m2")) == map_id(proc, fd)


def test_rename_errors(proc, outside):
    r = proc.bpffs
    fd = hash_map(proc)
    pin(proc, fd, r + "/m")
    pin(proc, fd, r + "/n")
    proc.mkdir(r + "/d")
    proc.mkdir(r + "/full")
    pin(proc, fd, r + "/full/q")
    proc.mkdir(r + "/empty")
    assert err(proc.rename, r + "/zz", r + "/yy") == errno.ENOENT
    assert err(proc.rename, r + "/d", r + "/m") == errno.ENOTDIR
    assert err(proc.rename, r + "/m", r + "/d") == errno.EISDIR
    assert err(proc.rename, r + "/m", r + "/full") == errno.EISDIR
    assert err(proc.rename, r + "/d", r + "/full") == errno.ENOTEMPTY
    assert err(proc.rename, r + "/d", r + "/d/sub") == errno.EINVAL
    assert err(proc.rename, r + "/m", outside + "/m") == errno.EXDEV
    proc.rename(r + "/d", r + "/empty")  # a directory onto an empty one replaces it
    proc.rename(r + "/m", r + "/n")  # a pin onto a pin replaces it
    assert proc.listdir(r) == sorted(["empty", "full", "n"] + preloaded(proc))


def test_rename_across_two_bpffs_mounts_is_EXDEV(proc, outside):
    """A second bpffs: kernel.mount_bpffs on the emulator, mount(2) in the task's mount namespace on the host."""
    second = outside + "/bpf2"
    proc.mkdir(second)
    if proc.backend == "emu":
        proc.kernel.mount_bpffs(second)
    else:
        proc.mount_bpffs(second)
    try:
        assert proc.listdir(second) == preloaded(proc)
        assert proc.statfs(second).f_type == u.BPF_FS_MAGIC
        fd = hash_map(proc)
        pin(proc, fd, proc.bpffs + "/m")
        pin(proc, fd, second + "/m")
        assert err(proc.rename, proc.bpffs + "/m", second + "/x") == errno.EXDEV
        assert err(proc.rename, proc.bpffs + "/m", second + "/m") == errno.EXDEV
    finally:
        if proc.backend == "host":
            proc.umount(second)
