"""BTF objects on both backends: what BPF_BTF_LOAD returns, and the kernel's own BTF.

- a loaded BTF is an fd (read-only, close-on-exec) with an fdinfo ``btf_id`` line and a
  ``bpf_btf_info``: the blob, its size, the id, an empty name, ``kernel_btf`` 0;
- the info's buffers as the host fills them: a short blob buffer gets the first bytes and the
  whole size, a short name buffer a cut name and ENOSPC (the info is still written back), a name
  pointer without a length (or the reverse) EINVAL, a blob size without a pointer EFAULT;
- BTF ids are their own id space, found by BTF_GET_NEXT_ID and BTF_GET_FD_BY_ID, and the kernel's
  own BTF is one of them: id 1, name "vmlinux", ``kernel_btf`` 1, its blob the host's
  /sys/kernel/btf/vmlinux (off Linux: bpfemu's own, ``bpfemu.btf.vmlinux.fallback_blob()``);
- a BTF fd cannot be pinned, is no map, and is gone with its last fd;
- privileges: BTF_BTF_LOAD needs CAP_BPF (before the blob is read), the id commands CAP_SYS_ADMIN;
  btf_flags and the token fd are checked first.
"""
import ctypes
import errno
import os
import time

import pytest

from bpfemu import hostenv, uapi as u
from bpfemu.btf import Builder
from bpfemu.btf.vmlinux import fallback_blob
from bpfemu.testing.support import (attr_has, btf_fd_by_id, btf_info, btf_load, create_map, err, get_next_id, make_attr,
                                    map_id, pin)

BLOB = Builder().int("int", 4, signed=True).struct("pair", [("a", "int"), ("b", "int")]).blob()
VMLINUX = "/sys/kernel/btf/vmlinux"
INT_MAX = 2**31 - 1


def fdinfo(proc, fd):
    return dict(line.split(":\t", 1) for line in proc.fdinfo(fd).splitlines())


def btf_ids(proc, start=0):
    out = []
    while True:
        try:
            start = get_next_id(proc, start, u.BPF_BTF_GET_NEXT_ID)
        except OSError as e:
            assert e.errno == errno.ENOENT
            return out
        out.append(start)


def test_load_gives_a_read_only_btf_fd(proc):
    fd = btf_load(proc, BLOB)
    info = fdinfo(proc, fd)
    assert list(info) == ["pos", "flags", "mnt_id", "ino", "btf_id"]
    assert info["flags"] == "02000000"  # O_RDONLY | O_CLOEXEC
    i, blob, name = btf_info(proc, fd, btf_size=len(BLOB), name_len=8)
    assert int(info["btf_id"]) == i.id > 1
    assert (i.btf_size, i.kernel_btf, i.name_len) == (len(BLOB), 0, 0)
    assert blob == BLOB
    assert name == bytes(8)


def test_btf_ids_are_their_own_space(proc):
    a = btf_load(proc, BLOB)
    m = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    b = btf_load(proc, BLOB)
    ida, idb = btf_info(proc, a)[0].id, btf_info(proc, b)[0].id
    assert ida < idb and map_id(proc, m) > 0
    ids = btf_ids(proc)
    assert {1, ida, idb} <= set(ids)
    assert ids == sorted(ids)
    # an fd by id is the same object
    again = btf_fd_by_id(proc, idb)
    assert btf_info(proc, again)[0].id == idb
    assert fdinfo(proc, again)["flags"] == "02000000"


def test_btf_info_buffers(proc):
    fd = btf_load(proc, BLOB)
    i, blob, _ = btf_info(proc, fd, btf_size=10)
    assert blob == BLOB[:10] and i.btf_size == len(BLOB)
    i, blob, _ = btf_info(proc, fd, btf_size=len(BLOB) + 7)
    assert blob == BLOB + bytes(7)
    # no buffers: only the numbers
    i, _, _ = btf_info(proc, fd)
    assert (i.btf, i.btf_size, i.name, i.name_len) == (0, len(BLOB), 0, 0)


# info_len -> how many of (btf_size, id, name_len, kernel_btf) fit in it
SHORT = {0: 0, 4: 0, 8: 0, 12: 1, 16: 2, 24: 2, 28: 3, 32: 4}


@pytest.mark.parametrize("info_len", sorted(SHORT))
def test_btf_info_short_info_len(proc, info_len):
    """The info is copied in and out for min(info_len, 32) bytes; info_len reads back that."""
    fd = btf_load(proc, BLOB)
    info = u.bpf_btf_info()
    a = make_attr(**{"info.bpf_fd": fd, "info.info_len": info_len, "info.info": ctypes.addressof(info)})
    proc.bpf(u.BPF_OBJ_GET_INFO_BY_FD, a)
    assert a.info.info_len == info_len
    got = [info.btf_size, info.id, info.name_len, info.kernel_btf]
    want = [len(BLOB), btf_info(proc, fd)[0].id, 0, 0]
    n = SHORT[info_len]
    assert got[:n] == want[:n]
    assert got[n:] == [0] * (4 - n)


def test_btf_info_tail_must_be_zero(proc):
    fd = btf_load(proc, BLOB)
    raw = ctypes.create_string_buffer(bytes(32) + b"\x01" + bytes(7), 40)
    a = make_attr(**{"info.bpf_fd": fd, "info.info_len": 40, "info.info": ctypes.addressof(raw)})
    assert err(proc.bpf, u.BPF_OBJ_GET_INFO_BY_FD, a) == errno.E2BIG
    raw = ctypes.create_string_buffer(40)
    a = make_attr(**{"info.bpf_fd": fd, "info.info_len": 40, "info.info": ctypes.addressof(raw)})
    proc.bpf(u.BPF_OBJ_GET_INFO_BY_FD, a)
    assert a.info.info_len == 32


def _info_raw(proc, fd, btf=0, btf_size=0, name=0, name_len=0):
    info = u.bpf_btf_info()
    info.btf, info.btf_size, info.name, info.name_len = btf, btf_size, name, name_len
    a = make_attr(**{"info.bpf_fd": fd, "info.info_len": 32, "info.info": ctypes.addressof(info)})
    e = err(proc.bpf, u.BPF_OBJ_GET_INFO_BY_FD, a)
    return e, info, a.info.info_len


def test_btf_info_name_and_length_go_together(proc):
    fd = btf_load(proc, BLOB)
    nb = ctypes.create_string_buffer(4)
    assert _info_raw(proc, fd, name=0, name_len=4)[0] == errno.EINVAL
    assert _info_raw(proc, fd, name=ctypes.addressof(nb), name_len=0)[0] == errno.EINVAL
    assert _info_raw(proc, fd, btf=0, btf_size=4)[0] == errno.EFAULT  # the blob is copied first
    assert _info_raw(proc, fd, btf=0, btf_size=4, name=0, name_len=4)[0] == errno.EFAULT


def test_vmlinux_is_btf_id_1(backend, proc):
    assert btf_ids(proc)[0] == 1
    fd = btf_fd_by_id(proc, 1)
    i, _, name = btf_info(proc, fd, name_len=16)
    assert (i.id, i.kernel_btf, i.name_len) == (1, 1, 7)
    assert name == b"vmlinux" + bytes(9)
    assert fdinfo(proc, fd)["btf_id"] == "1"
    if backend.vm is not None:  # the guest's own BTF, which its sysfs file shows the size of
        assert i.btf_size == proc.stat(VMLINUX).st_size
        return
    if not hostenv.is_linux():  # off Linux the emulated kernel describes itself with bpfemu's own BTF
        want = fallback_blob()
    elif os.path.exists(VMLINUX):
        with open(VMLINUX, "rb") as f:
            want = f.read()
    else:
        return
    assert i.btf_size == len(want)
    assert btf_info(proc, fd, btf_size=4096)[1] == want[:4096] + bytes(max(0, 4096 - len(want)))


@pytest.mark.parametrize("name_len,written", [(1, b""), (4, b"vml"), (7, b"vmlinux"[:6])])
def test_vmlinux_name_too_short_is_ENOSPC(proc, name_len, written):
    fd = btf_fd_by_id(proc, 1)
    nb = ctypes.create_string_buffer(b"\xff" * 8, 8)
    e, info, info_len = _info_raw(proc, fd, name=ctypes.addressof(nb), name_len=name_len)
    assert e == errno.ENOSPC
    # the info went back all the same, with the name's whole length
    assert (info.id, info.name_len, info.kernel_btf, info_len) == (1, 7, 1, 32)
    assert nb.raw[:name_len] == written + b"\0"
    assert nb.raw[name_len:] == b"\xff" * (8 - name_len)


def test_vmlinux_name_exact_fit(proc):
    fd = btf_fd_by_id(proc, 1)
    nb = ctypes.create_string_buffer(b"\xff" * 9, 9)
    e, info, _ = _info_raw(proc, fd, name=ctypes.addressof(nb), name_len=8)
    assert e == 0 and nb.raw == b"vmlinux\0\xff"


def test_a_btf_fd_cannot_be_pinned(proc):
    fd = btf_load(proc, BLOB)
    assert err(pin, proc, fd, proc.bpffs + "/btf") == errno.EINVAL
    assert err(pin, proc, btf_fd_by_id(proc, 1), proc.bpffs + "/vmlinux") == errno.EINVAL


def test_a_btf_fd_is_no_map(proc):
    fd = btf_load(proc, BLOB)
    assert err(proc.bpf, u.BPF_MAP_LOOKUP_ELEM, make_attr(map_fd=fd)) == errno.EINVAL
    assert err(proc.bpf, u.BPF_MAP_FREEZE, make_attr(map_fd=fd)) == errno.EINVAL


def test_last_fd_frees_the_btf(proc):
    fd = btf_load(proc, BLOB)
    i = btf_info(proc, fd)[0].id
    dup = proc.dup(fd)
    proc.close(fd)
    assert btf_info(proc, dup)[0].id == i
    proc.close(dup)
    # the host frees it after an RCU grace period: wait for the id to go
    deadline = time.monotonic() + 5
    while i in btf_ids(proc, i - 1) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert i not in btf_ids(proc, i - 1)
    assert err(btf_fd_by_id, proc, i) == errno.ENOENT


def test_load_flags_and_token(proc, profile):
    assert err(btf_load, proc, BLOB, btf_flags=2) == errno.EINVAL
    if not attr_has(profile, u.BPF_BTF_LOAD, "btf_token_fd"):  # (6.9+): btf_flags and the token are past the
        # last field (CHECK_ATTR)
        assert err(btf_load, proc, BLOB, btf_flags=u.BPF_F_TOKEN_FD, btf_token_fd=99) == errno.EINVAL
        assert err(btf_load, proc, BLOB, btf_token_fd=99) == errno.EINVAL
        return
    assert err(btf_load, proc, BLOB, btf_flags=u.BPF_F_TOKEN_FD, btf_token_fd=99) == errno.EBADF
    fd = btf_load(proc, BLOB)
    assert err(btf_load, proc, BLOB, btf_flags=u.BPF_F_TOKEN_FD, btf_token_fd=fd) == errno.EINVAL  # not a token
    # without the flag the token fd is not looked at
    proc.close(btf_load(proc, BLOB, btf_token_fd=99))


def test_fd_by_id_flags(proc, profile):
    assert err(btf_fd_by_id, proc, 0) == errno.ENOENT
    assert err(proc.bpf, u.BPF_BTF_GET_FD_BY_ID, make_attr(btf_id=1, open_flags=1)) == errno.EINVAL
    # a token fd (6.18: open_flags and fd_by_id_token_fd); before, both are past the last field (btf_id)
    token = attr_has(profile, u.BPF_BTF_GET_FD_BY_ID, "fd_by_id_token_fd")
    assert err(proc.bpf, u.BPF_BTF_GET_FD_BY_ID, make_attr(btf_id=1, open_flags=u.BPF_F_TOKEN_FD,
                                                           fd_by_id_token_fd=99)) == (errno.EBADF if token else
                                                                                      errno.EINVAL)


CREDS = {
    "uid1000": (dict(uid=1000, caps=()), errno.EPERM, errno.EPERM),
    "uid0-nocaps": (dict(uid=0, caps=()), errno.EPERM, errno.EPERM),
    "CAP_BPF": (dict(uid=0, caps=("CAP_BPF",)), 0, errno.EPERM),
    "CAP_SYS_ADMIN": (dict(uid=0, caps=("CAP_SYS_ADMIN",)), 0, 0),
}


@pytest.mark.parametrize("cred", sorted(CREDS))
def test_privileges(backend, proc, cred):
    creds, load_err, admin_err = CREDS[cred]
    t = backend.spawn(**creds)
    assert err(btf_load, t, BLOB) == load_err
    # CAP_BPF is checked before the blob is read or parsed
    assert err(btf_load, t, b"junk") == (load_err or errno.EINVAL)
    assert err(btf_load, t, BLOB, btf_flags=2) == errno.EINVAL  # the flags come first
    assert err(btf_fd_by_id, t, 1) == admin_err
    assert err(get_next_id, t, 0, u.BPF_BTF_GET_NEXT_ID) == admin_err
    # a BTF fd handed over answers info whoever holds it
    [fd] = proc.send_fds(t, [btf_load(proc, BLOB)])
    assert btf_info(t, fd)[0].btf_size == len(BLOB)


def test_next_id_start(proc):
    assert err(get_next_id, proc, INT_MAX, u.BPF_BTF_GET_NEXT_ID) == errno.EINVAL
    assert get_next_id(proc, 0, u.BPF_BTF_GET_NEXT_ID) == 1
