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
    proc.mkdir(r + "/d/e")
    proc.mkdir(r + "/d/e/f")
    assert err(proc.rename, r + "/d", r + "/d/e/f/x") == errno.EINVAL  # below itself, however deep
    assert err(proc.rename, r + "/d/e/f", r + "/d") == errno.ENOTEMPTY  # onto an ancestor: lock_rename's trap
    assert err(proc.rename, r + "/d/e", r + "/d/e") == 0 and err(proc.rename, r + "/m", r + "/m") == 0  # itself
    proc.rmdir(r + "/d/e/f")
    proc.rmdir(r + "/d/e")
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


# -- the path walk (fs/namei.c): lengths, trailing slashes, '.' and '..', the order of checks -------------

E = errno


def test_names_longer_than_NAME_MAX(proc):
    """A component of 256 bytes: ENAMETOOLONG from the lookup of a name bpffs has no entry for, wherever the
    walk meets it; 255 bytes are fine. A dotted name is EPERM first (bpf_lookup checks the dot before
    simple_lookup checks the length)."""
    r, fd = proc.bpffs, hash_map(proc)
    n255, n256 = "n" * 255, "n" * 256
    pin(proc, fd, r + "/" + n255)
    proc.mkdir(r + "/d")
    assert err(pin, proc, fd, r + "/" + n256) == E.ENAMETOOLONG
    assert err(proc.mkdir, r + "/" + n256) == E.ENAMETOOLONG
    assert err(proc.rename, r + "/d", r + "/" + n256) == E.ENAMETOOLONG
    assert err(proc.rename, r + "/" + n256, r + "/x") == E.ENAMETOOLONG
    for verb in (proc.stat, proc.unlink, proc.rmdir, proc.listdir):
        assert err(verb, r + "/" + n256) == E.ENAMETOOLONG
        assert err(verb, r + "/" + n256 + "/x") == E.ENAMETOOLONG  # a directory component too
    assert err(obj_get, proc, r + "/" + n256) == E.ENAMETOOLONG
    assert err(proc.mkdir, r + "/a." + "n" * 300) == E.EPERM
    assert proc.listdir(r) == sorted(["d", n255] + preloaded(proc))
    assert map_id(proc, obj_get(proc, r + "/" + n255)) == map_id(proc, fd)


@pytest.mark.parametrize("total", [4095, 4096])
def test_paths_of_PATH_MAX_bytes(proc, total):
    """A path of PATH_MAX bytes (4096, without its NUL) is ENAMETOOLONG before any lookup; 4095 is walked.
    Padded with './' so that every component is short."""
    r, fd = proc.bpffs, hash_map(proc)

    def padded(name):
        fill = total - len(r) - 1 - len(name)
        return r + "/" + "./" * (fill // 2) + "/" * (fill % 2) + name

    assert len(padded("m")) == total
    want = E.ENAMETOOLONG if total >= 4096 else 0
    assert err(pin, proc, fd, padded("m")) == want
    assert err(proc.mkdir, padded("d")) == want
    assert err(proc.stat, padded("zz")) == (want or E.ENOENT)
    assert err(obj_get, proc, padded("zz")) == (want or E.ENOENT)


def test_trailing_slashes(proc):
    """``name/`` asks for a directory: a lookup that ends on a pin is ENOTDIR; creating a pin there is ENOENT
    (filename_create: a new name with a trailing slash is only for mkdir), onto an existing name EEXIST;
    unlink of ``pin/`` is ENOTDIR and removes nothing (the map stays); rename with a slash on either side
    of a pin is ENOTDIR. Directories take trailing slashes everywhere."""
    r, fd = proc.bpffs, hash_map(proc)
    mid = map_id(proc, fd)
    pin(proc, fd, r + "/q")
    pin(proc, fd, r + "/p2")
    proc.close(fd)  # the pins hold the map now
    assert err(pin, proc, obj_get(proc, r + "/q"), r + "/p/") == E.ENOENT
    assert err(pin, proc, obj_get(proc, r + "/q"), r + "/q/") == E.EEXIST
    assert err(obj_get, proc, r + "/q/") == E.ENOTDIR
    assert err(proc.stat, r + "/q/") == E.ENOTDIR
    assert err(proc.unlink, r + "/q/") == E.ENOTDIR
    assert err(proc.unlink, r + "/absent/") == E.ENOENT
    assert err(proc.rename, r + "/p2", r + "/p3/") == E.ENOTDIR
    assert err(proc.rename, r + "/p2/", r + "/p3") == E.ENOTDIR
    assert err(proc.rename, r + "/absent/", r + "/p3") == E.ENOENT
    assert sorted(proc.listdir(r)) == sorted(["p2", "q"] + preloaded(proc))
    proc.unlink(r + "/p2")
    assert map_id(proc, obj_get(proc, r + "/q")) == mid  # the map is still there, and still this map
    proc.mkdir(r + "/d/")
    assert err(proc.mkdir, r + "/d/") == E.EEXIST
    assert proc.listdir(r + "/d/") == [] and err(obj_get, proc, r + "/d/") == E.EACCES
    assert err(proc.unlink, r + "/d/") == E.EISDIR
    proc.rename(r + "/d/", r + "/e/")
    proc.rmdir(r + "/e//")


def test_dot_and_dotdot_as_the_last_component(proc):
    """unlink: EISDIR for ``.``, ``..`` and the root; rmdir: EINVAL for ``.``, ENOTEMPTY for ``..``, EBUSY for the
    root; mkdir and OBJ_PIN: EEXIST; rename: EBUSY on either side. As a middle component each is walked."""
    r, fd = proc.bpffs, hash_map(proc)
    proc.mkdir(r + "/d")
    for path in (r + "/d/.", r + "/d/..", "/"):
        assert err(proc.unlink, path) == E.EISDIR
    assert [err(proc.rmdir, p) for p in (r + "/d/.", r + "/d/..", "/")] == [E.EINVAL, E.ENOTEMPTY, E.EBUSY]
    assert [err(proc.mkdir, p) for p in (r + "/d/.", r + "/d/..", "/")] == [E.EEXIST] * 3
    assert [err(pin, proc, fd, p) for p in (r + "/d/.", r + "/d/..")] == [E.EEXIST] * 2
    assert err(proc.rename, r + "/d/.", r + "/x") == E.EBUSY
    assert err(proc.rename, r + "/d", r + "/d/..") == E.EBUSY
    pin(proc, fd, r + "/d/../d/./m")
    assert proc.listdir(r + "/d/.") == ["m"]
    assert map_id(proc, obj_get(proc, r + "/./d/../d/m")) == map_id(proc, fd)


def test_order_of_checks_for_an_unprivileged_task(backend, proc):
    """may_delete checks write permission on the directory (EACCES), then the sticky bit (EPERM), then the
    type (ENOTDIR/EISDIR): uid 1000 removing root's entries gets EPERM in the sticky bpffs root and EACCES
    in a root-owned 0755 directory, whatever the entry's type."""
    r, fd = proc.bpffs, hash_map(proc)
    pin(proc, fd, r + "/m")
    proc.mkdir(r + "/d", 0o755)
    pin(proc, fd, r + "/d/m")
    proc.mkdir(r + "/d/e")
    user = backend.spawn(uid=1000, caps=())
    assert [err(user.rmdir, r + "/m"), err(user.unlink, r + "/d")] == [E.EPERM, E.EPERM]
    assert [err(user.rmdir, r + "/d/m"), err(user.unlink, r + "/d/e")] == [E.EACCES, E.EACCES]
    assert [err(proc.rmdir, r + "/m"), err(proc.unlink, r + "/d")] == [E.ENOTDIR, E.EISDIR]
    assert err(user.rename, r + "/d/m", r + "/mine") == E.EACCES
    assert err(user.rename, r + "/m", r + "/mine") == E.EPERM
    assert err(user.mkdir, r + "/d/x") == E.EACCES
    assert err(user.mkdir, r + "/d/m") == E.EEXIST  # EEXIST before the permission check
    proc.mkdir(r + "/closed", 0o700)
    assert err(user.stat, r + "/closed/x") == E.EACCES  # no search permission: before ENOENT
    assert err(user.mkdir, r + "/closed/x") == E.EACCES


def test_moving_a_directory_needs_write_permission_on_it(backend, proc):
    """rename of a directory to another parent changes its '..': vfs_rename wants MAY_WRITE on the directory
    itself. uid 1000 owning ua and ub cannot move root's 0755 directory from ua to ub (EACCES), but can
    rename it inside ua, and can move root's pins between them."""
    r, fd = proc.bpffs, hash_map(proc)
    user = backend.spawn(uid=1000, caps=())
    user.mkdir(r + "/ua")
    user.mkdir(r + "/ub")
    proc.mkdir(r + "/ua/rootdir", 0o755)
    pin(proc, fd, r + "/ua/rootpin")
    assert err(user.rename, r + "/ua/rootdir", r + "/ub/moved") == E.EACCES
    assert user.listdir(r + "/ub") == []
    user.rename(r + "/ua/rootdir", r + "/ua/renamed")
    user.rename(r + "/ua/rootpin", r + "/ub/pin")
    assert user.listdir(r + "/ua") == ["renamed"] and user.listdir(r + "/ub") == ["pin"]


def test_a_removed_directory_keeps_its_fd(proc, profile):
    """A directory fd outlives rmdir: names cannot be created or found in it (ENOENT), but '..' still leads
    to where it was."""
    if not profile.path_fd:
        pytest.skip("%s has no BPF_F_PATH_FD (profile.path_fd, 6.5+): paths are not relative to an fd" %
                    profile.version)
    r, fd = proc.bpffs, hash_map(proc)
    pin(proc, fd, r + "/m")
    proc.mkdir(r + "/d")
    dfd = proc.open_dir(r + "/d")
    proc.rmdir(r + "/d")
    PF = u.BPF_F_PATH_FD
    assert err(pin, proc, fd, "x", file_flags=PF, path_fd=dfd) == E.ENOENT
    assert err(obj_get, proc, "x", file_flags=PF, path_fd=dfd) == E.ENOENT
    assert err(pin, proc, fd, "x.y", file_flags=PF, path_fd=dfd) == E.ENOENT  # before the dotted name's EPERM
    assert map_id(proc, obj_get(proc, "../m", file_flags=PF, path_fd=dfd)) == map_id(proc, fd)
    pin(proc, fd, "../n", file_flags=PF, path_fd=dfd)
    assert "n" in proc.listdir(r)


def test_dotted_names_in_a_directory_of_mode_0(proc):
    """bpf_lookup refuses dotted names only in a directory with some mode bit set: in a 0000 directory the
    lookup goes on (root, with CAP_DAC_OVERRIDE, may search it) and a missing name is ENOENT."""
    r, fd = proc.bpffs, hash_map(proc)
    proc.mkdir(r + "/z", 0)
    assert proc.stat(r + "/z").st_mode & 0o7777 == 0
    assert err(proc.stat, r + "/z/a.b") == E.ENOENT
    assert err(pin, proc, fd, r + "/z/a.b") == 0
    assert err(proc.mkdir, r + "/z/c.d") == 0
    assert proc.listdir(r + "/z") == ["a.b", "c.d"]


# -- symbolic links (bpf_symlink; fs/namei.c follows them) ----------------------------------------------

def test_symlinks_are_made_and_followed(proc):
    """bpffs makes symlinks (mode 0777, size 0, owned by the caller); a body is not checked when made. The
    walk follows a symlink met in the middle of a path from the directory holding it (or from the root for
    an absolute body), and as the last component for stat, OBJ_GET and open, not for lstat and readlink;
    a trailing slash follows it too."""
    r, fd = proc.bpffs, hash_map(proc)
    proc.mkdir(r + "/d")
    pin(proc, fd, r + "/d/m")
    proc.symlink("d", r + "/l")
    proc.symlink(r + "/d/m", r + "/abs")
    proc.symlink("../d/m", r + "/d/rel")
    proc.symlink("nowhere", r + "/dangling")
    st = proc.lstat(r + "/l")
    assert (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_nlink, st.st_size, st.st_uid) == (
        stat.S_IFLNK, 0o777, 1, 0, 0)
    assert stat.S_ISDIR(proc.stat(r + "/l").st_mode) and stat.S_ISLNK(proc.lstat(r + "/l/..").st_mode) is False
    assert proc.stat(r + "/d").st_nlink == 2  # a symlink is no subdirectory
    assert proc.readlink(r + "/l") == "d" and proc.readlink(r + "/dangling") == "nowhere"
    assert sorted(proc.listdir(r + "/l")) == ["m", "rel"]
    for p in (r + "/l/m", r + "/abs", r + "/d/rel", r + "/l/rel", r + "/l/../abs"):
        assert map_id(proc, obj_get(proc, p)) == map_id(proc, fd), p
    assert stat.S_ISDIR(proc.lstat(r + "/l/").st_mode)  # the slash follows it
    assert [err(proc.readlink, p) for p in (r + "/d", r + "/l/", r + "/zz", r + "/d/m")] == [
        E.EINVAL, E.EINVAL, E.ENOENT, E.EINVAL]
    assert [err(proc.stat, r + "/dangling"), err(obj_get, proc, r + "/dangling")] == [E.ENOENT, E.ENOENT]
    assert err(obj_get, proc, r + "/l") == E.EACCES  # a directory, not a pin
    pin(proc, fd, r + "/l/n")  # a symlink in the middle of a new name's path
    proc.mkdir(r + "/l/e")
    assert sorted(proc.listdir(r + "/d")) == ["e", "m", "n", "rel"]
    assert map_id(proc, obj_get(proc, r + "/d/n")) == map_id(proc, fd)


def test_symlink_errors(proc):
    """symlink: an empty body ENOENT, a body of PATH_MAX bytes ENAMETOOLONG (4095 is made), a dotted or
    256-byte name as for any new name (EPERM, ENAMETOOLONG), a trailing slash ENOENT, an existing name
    EEXIST. Creating over a symlink (mkdir, OBJ_PIN, even with a slash, even dangling) is EEXIST: the last
    component is not followed. unlink and rename take the symlink itself; rmdir of it, or any of them with a
    trailing slash, is ENOTDIR."""
    r, fd = proc.bpffs, hash_map(proc)
    proc.mkdir(r + "/d")
    proc.symlink("d", r + "/l")
    proc.symlink("nowhere", r + "/dangling")
    assert [err(proc.symlink, t, r + "/s") for t in ("", "x" * 4096)] == [E.ENOENT, E.ENAMETOOLONG]
    assert [err(proc.symlink, "d", p) for p in (r + "/a.b", r + "/" + "n" * 256, r + "/t/", r + "/d", r + "/l")] == [
        E.EPERM, E.ENAMETOOLONG, E.ENOENT, E.EEXIST, E.EEXIST]
    for p in (r + "/l", r + "/l/", r + "/dangling", r + "/dangling/"):
        assert [err(proc.mkdir, p), err(pin, proc, fd, p)] == [E.EEXIST, E.EEXIST], p
    assert [err(proc.rmdir, r + "/l"), err(proc.rmdir, r + "/l/"), err(proc.unlink, r + "/l/")] == [E.ENOTDIR] * 3
    assert [err(proc.rename, r + "/l/", r + "/l2"), err(proc.rename, r + "/l", r + "/l2/")] == [E.ENOTDIR] * 2
    assert err(proc.rename, r + "/l", r + "/d") == E.EISDIR  # a symlink onto a directory
    proc.symlink("x" * 4095, r + "/long")
    assert err(proc.stat, r + "/long") == E.ENAMETOOLONG  # its one component is longer than NAME_MAX
    proc.rename(r + "/l", r + "/d/l")  # the symlink moves, its body stays relative to where it is now
    assert err(proc.listdir, r + "/d/l") == E.ENOENT
    proc.unlink(r + "/d/l")
    assert proc.listdir(r + "/d") == []


def test_symlinks_followed_at_most_40_times(proc):
    """One walk follows at most MAXSYMLINKS (40) symlinks, nested ones included: ELOOP for the 41st; a
    symlink to itself is ELOOP."""
    r = proc.bpffs
    proc.mkdir(r + "/d")
    for i in range(41):
        proc.symlink("c%d" % (i + 1) if i < 40 else "d", r + "/c%d" % i)
    assert stat.S_ISDIR(proc.stat(r + "/c1").st_mode)  # 40 symlinks
    assert err(proc.stat, r + "/c0") == E.ELOOP  # 41
    assert err(proc.mkdir, r + "/c1/x") == 0 and err(proc.mkdir, r + "/c0/y") == E.ELOOP
    proc.symlink("c1/x/../x", r + "/nested")  # 40 inside, 1 for itself
    assert err(proc.stat, r + "/nested") == E.ELOOP
    proc.symlink("self", r + "/self")
    assert [err(proc.stat, r + "/self"), err(proc.stat, r + "/self/x"), err(proc.unlink, r + "/self")] == [
        E.ELOOP, E.ELOOP, 0]


def test_symlinks_of_other_users(backend, proc):
    """A symlink is owned by its maker (no umask); following it needs search permission on every directory
    its body walks; in the sticky bpffs root, root's symlink cannot be removed by uid 1000 (EPERM) while
    its own can."""
    r = proc.bpffs
    proc.mkdir(r + "/closed", 0o700)
    proc.mkdir(r + "/closed/in")
    proc.symlink("closed/in", r + "/rootlink")
    user = backend.spawn(uid=1000, caps=())
    user.symlink("closed/in", r + "/mine")
    assert (proc.lstat(r + "/mine").st_uid, stat.S_IMODE(proc.lstat(r + "/mine").st_mode)) == (1000, 0o777)
    assert err(user.stat, r + "/mine") == E.EACCES
    assert err(user.readlink, r + "/rootlink") == 0
    assert stat.S_ISDIR(proc.stat(r + "/mine").st_mode)
    assert [err(user.unlink, r + "/rootlink"), err(user.unlink, r + "/mine")] == [E.EPERM, 0]
    assert err(user.symlink, "x", r + "/closed/s") == E.EACCES


# -- chmod and chown (setattr_prepare on bpffs inodes) -------------------------------------------------

def test_chmod_of_a_pin_opens_it_to_other_users(backend, proc):
    """A pin is 0600 root: uid 1000 cannot OBJ_GET it (EACCES) until root makes it 0644 (read-only then) or
    0666, as a daemon does to share a map. chmod needs the owner or CAP_FOWNER (EPERM), follows a symlink,
    and keeps only the 07777 bits; the set-group-ID bit goes when the caller is not in the file's group."""
    r, fd = proc.bpffs, hash_map(proc)
    pin(proc, fd, r + "/m")
    proc.symlink("m", r + "/l")
    user = backend.spawn(uid=1000, caps=())
    assert err(obj_get, user, r + "/m", file_flags=u.BPF_F_RDONLY) == E.EACCES
    assert err(user.chmod, r + "/m", 0o666) == E.EPERM
    proc.chmod(r + "/l", 0o100644)
    assert stat.S_IMODE(proc.stat(r + "/m").st_mode) == 0o644 and stat.S_ISREG(proc.stat(r + "/m").st_mode)
    assert stat.S_IMODE(proc.lstat(r + "/l").st_mode) == 0o777
    assert err(obj_get, user, r + "/m", file_flags=u.BPF_F_RDONLY) == 0
    assert err(obj_get, user, r + "/m") == E.EACCES
    proc.chmod(r + "/m", 0o666)
    assert map_id(user, obj_get(user, r + "/m")) == map_id(proc, fd)
    user.mkdir(r + "/ud", 0o755)
    user.chmod(r + "/ud", 0o2777)  # its own group: the set-group-ID bit stays
    assert stat.S_IMODE(user.stat(r + "/ud").st_mode) == 0o2777
    proc.chown(r + "/ud", -1, 0)
    user.chmod(r + "/ud", 0o2755)  # not in group 0 any more: it goes
    assert stat.S_IMODE(user.stat(r + "/ud").st_mode) == 0o755
    assert [err(proc.chmod, r + "/zz", 0o600), err(proc.chmod, r + "/m/", 0o600)] == [E.ENOENT, E.ENOTDIR]


def test_chown_rules(backend, proc):
    """chown: a new owner needs CAP_CHOWN (EPERM), a new group that the owner is in it (or CAP_CHOWN); -1
    keeps an id. In a set-group-ID directory new entries take its group and new directories its bit; chown
    of a non-directory drops set-user-ID, and set-group-ID with group execute."""
    r, fd = proc.bpffs, hash_map(proc)
    user = backend.spawn(uid=1000, caps=())
    pin(proc, fd, r + "/m")
    proc.chown(r + "/m", 1000, 1000)
    assert (proc.stat(r + "/m").st_uid, proc.stat(r + "/m").st_gid) == (1000, 1000)
    assert map_id(user, obj_get(user, r + "/m")) == map_id(proc, fd)  # uid 1000 owns it now
    assert [err(user.chown, r + "/m", 0, -1), err(user.chown, r + "/m", -1, 0)] == [E.EPERM, E.EPERM]
    assert [err(user.chown, r + "/m", 1000, 1000), err(user.chown, r + "/m", -1, -1)] == [0, 0]
    assert err(user.chown, r + "/m", 1001, -1) == E.EPERM
    proc.mkdir(r + "/g", 0o777)
    proc.chown(r + "/g", -1, 1001)
    proc.chmod(r + "/g", 0o2777)
    user.mkdir(r + "/g/sub", 0o755)
    pin(user, obj_get(user, r + "/m"), r + "/g/pin")
    user.symlink("pin", r + "/g/link")
    got = [(proc.lstat(r + "/g/" + n).st_uid, proc.lstat(r + "/g/" + n).st_gid,
            stat.S_IMODE(proc.lstat(r + "/g/" + n).st_mode)) for n in ("sub", "pin", "link")]
    assert got == [(1000, 1001, 0o2755), (1000, 1001, 0o600), (1000, 1001, 0o777)]
    proc.chmod(r + "/g/pin", 0o6750)
    proc.chown(r + "/g/pin", -1, -1)  # a non-directory loses set-user-ID, and set-group-ID with group execute
    assert stat.S_IMODE(proc.stat(r + "/g/pin").st_mode) == 0o750
    proc.chmod(r + "/g/pin", 0o6640)
    proc.chown(r + "/g/pin", -1, -1)
    assert stat.S_IMODE(proc.stat(r + "/g/pin").st_mode) == 0o2640
    proc.chmod(r + "/g/sub", 0o6755)
    proc.chown(r + "/g/sub", 0, 0)  # a directory keeps both
    assert stat.S_IMODE(proc.stat(r + "/g/sub").st_mode) == 0o6755


# -- renameat2 -------------------------------------------------------------------------------------------

NOREPLACE, EXCHANGE, WHITEOUT = 1, 2, 4


def test_renameat2_noreplace_and_exchange(proc):
    """RENAME_NOREPLACE: EEXIST for a target that exists (also '.'/'..' as the target, where rename says
    EBUSY). RENAME_EXCHANGE swaps two existing entries of any types, across directories: ENOENT without a
    target, EINVAL with NOREPLACE or WHITEOUT, EINVAL for an entry and its ancestor either way. Unknown
    flags EINVAL; RENAME_WHITEOUT on bpffs is EINVAL after the other checks (simple_rename)."""
    r, fd = proc.bpffs, hash_map(proc)
    other = hash_map(proc)
    pin(proc, fd, r + "/m")
    pin(proc, other, r + "/n")
    proc.mkdir(r + "/d")
    proc.mkdir(r + "/d/e")
    assert err(proc.rename, r + "/m", r + "/n", NOREPLACE) == E.EEXIST
    assert err(proc.rename, r + "/m", r + "/d/..", NOREPLACE) == E.EEXIST
    assert err(proc.rename, r + "/m", r + "/d/..") == E.EBUSY
    assert err(proc.rename, r + "/zz", r + "/n", NOREPLACE) == E.ENOENT
    proc.rename(r + "/m", r + "/m2", NOREPLACE)
    assert [err(proc.rename, r + "/m2", r + "/x", f) for f in (EXCHANGE, EXCHANGE | NOREPLACE, EXCHANGE | WHITEOUT, 8,
                                                                16)] == [E.ENOENT, E.EINVAL, E.EINVAL, E.EINVAL, E.EINVAL]
    proc.rename(r + "/m2", r + "/n", EXCHANGE)
    assert map_id(proc, obj_get(proc, r + "/n")) == map_id(proc, fd)
    assert map_id(proc, obj_get(proc, r + "/m2")) == map_id(proc, other)
    proc.rename(r + "/n", r + "/d/e", EXCHANGE)  # a pin and a directory in another directory swap
    assert stat.S_ISDIR(proc.stat(r + "/n").st_mode) and map_id(proc, obj_get(proc, r + "/d/e")) == map_id(proc, fd)
    assert proc.stat(r + "/d").st_nlink == 2 and proc.stat(r).st_nlink == 4  # the directory moved up
    proc.mkdir(r + "/n/deep")
    assert err(proc.rename, r + "/n", r + "/n/deep", EXCHANGE) == E.EINVAL
    assert err(proc.rename, r + "/n/deep", r + "/n", EXCHANGE) == E.EINVAL
    assert err(proc.rename, r + "/m2/", r + "/n", EXCHANGE) == E.ENOTDIR
    assert err(proc.rename, r + "/n", r + "/m2/", EXCHANGE) == E.ENOTDIR
    assert err(proc.rename, r + "/n/", r + "/m2", EXCHANGE) == 0  # a directory source takes the slash
    assert err(proc.rename, r + "/n", r + "/n", EXCHANGE) == 0
    assert [err(proc.rename, r + "/m2", r + "/q", WHITEOUT), err(proc.rename, r + "/zz", r + "/q", WHITEOUT)] == [
        E.EINVAL, E.ENOENT]
    assert err(proc.rename, r + "/maps.debug", r + "/q", WHITEOUT) == E.EPERM


def test_renameat2_exchange_permissions(backend, proc):
    """Exchanging across directories needs write permission on each directory that moves, and removal
    rights (sticky bit) on both entries."""
    r, fd = proc.bpffs, hash_map(proc)
    user = backend.spawn(uid=1000, caps=())
    user.mkdir(r + "/ua")
    user.mkdir(r + "/ub")
    proc.mkdir(r + "/ua/rootdir", 0o755)
    user.mkdir(r + "/ub/mine")
    pin(proc, fd, r + "/rootpin")
    user.mkdir(r + "/userdir")
    assert err(user.rename, r + "/ua/rootdir", r + "/ub/mine", EXCHANGE) == E.EACCES
    assert err(user.rename, r + "/ub/mine", r + "/ua/rootdir", EXCHANGE) == E.EACCES
    assert err(user.rename, r + "/userdir", r + "/rootpin", EXCHANGE) == E.EPERM  # sticky root: not its pin
    user.rename(r + "/ub/mine", r + "/userdir", EXCHANGE)
    assert proc.lstat(r + "/userdir").st_uid == 1000 and user.listdir(r + "/ub") == ["mine"]
