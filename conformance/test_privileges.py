"""Privileges: every implemented command run by tasks with different credentials.

A privileged task creates the objects and hands fds over (fork/SCM_RIGHTS); the task under test
then runs each command. On the host the task is a child that called setresuid and capset
before its first call, so the real kernel decides. Expected results follow the rules the host
applies:
- MAP_CREATE: EPERM without CAP_BPF (or CAP_SYS_ADMIN) while kernel.unprivileged_bpf_disabled is
  nonzero; then the type's own capability (CAP_BPF, CAP_NET_ADMIN; CAP_SYS_ADMIN stands in);
  BPF_F_ZERO_SEED needs CAP_SYS_ADMIN.
- *_GET_NEXT_ID and *_GET_FD_BY_ID: CAP_SYS_ADMIN, nothing else will do.
- element commands, FREEZE and OBJ_GET_INFO_BY_FD on an fd someone passed: no check at all.
- OBJ_PIN/OBJ_GET: file permissions only (the bpffs root is 01777, a pin is 0600 of its creator).
"""
import ctypes
import errno

import pytest

from bpfemu import uapi as u
from bpfemu.host.sysinfo import host_unprivileged_bpf_disabled

from bpfemu.testing.support import (batch, create_map, err, freeze, get_next_id, hash_map, lookup, lookup_and_delete, make_attr,
                      map_fd_by_id, map_id, map_info, next_key, obj_get, pin, u32, u64, update)

INT_MAX = 2**31 - 1
OK, EPERM, EACCES, ENOENT = 0, errno.EPERM, errno.EACCES, errno.ENOENT

CREDS = {
    "root": dict(uid=None, caps=None),
    "uid1000": dict(uid=1000, caps=()),
    "uid0-nocaps": dict(uid=0, caps=()),
    "CAP_BPF": dict(uid=0, caps=("CAP_BPF",)),
    "CAP_NET_ADMIN": dict(uid=0, caps=("CAP_NET_ADMIN",)),
    "CAP_BPF+NET_ADMIN": dict(uid=0, caps=("CAP_BPF", "CAP_NET_ADMIN")),
    "CAP_SYS_ADMIN": dict(uid=0, caps=("CAP_SYS_ADMIN",)),
    "uid1000+CAP_BPF": dict(uid=1000, caps=("CAP_BPF",)),
}


def expected(cred, profile):
    caps = set(CREDS[cred]["caps"] or ()) if CREDS[cred]["caps"] is not None else {
        "CAP_BPF", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"}
    uid = CREDS[cred]["uid"] or 0
    sys_admin = "CAP_SYS_ADMIN" in caps
    bpf = "CAP_BPF" in caps or sys_admin
    net = "CAP_NET_ADMIN" in caps or (sys_admin and profile.net_admin == "bpf_net_capable")  # (6.1: NET_ADMIN)
    gate = OK if bpf or not host_unprivileged_bpf_disabled() else EPERM
    admin = OK if sys_admin else EPERM
    return {
        "create hash": gate,
        "create array": gate,
        "create hash ZERO_SEED": gate or admin,
        "create lru_hash (CAP_BPF type)": gate or (OK if bpf else EPERM),
        "create sockmap (CAP_NET_ADMIN type)": gate or (OK if net else EPERM),
        "update": OK, "lookup": OK, "get_next_key": OK, "delete": OK, "lookup_and_delete": OK,
        "lookup_batch": OK, "update_batch": OK, "delete_batch": OK, "info": OK,
        "freeze": OK if bpf or "bpf_capable" not in profile.freeze_checks else EPERM,  # (6.1 asks CAP_BPF)
        "map next_id": admin, "prog next_id": admin or ENOENT, "link next_id": admin or ENOENT,
        "btf next_id (start INT_MAX: EINVAL first)": errno.EINVAL,
        "map fd_by_id": admin, "map fd_by_id bad flags (EINVAL first)": errno.EINVAL,
        "prog fd_by_id": admin or ENOENT, "link fd_by_id": admin or ENOENT, "btf fd_by_id": admin or ENOENT,
        "pin in the bpffs root": OK,
        "get own pin": OK,
        "get root's 0600 pin": OK if uid == 0 or "CAP_DAC_OVERRIDE" in caps else EACCES,
        "unlink root's pin (sticky root)": OK if uid == 0 else EPERM,
        "mkdir in root's 0755 dir": OK if uid == 0 else EACCES,
    }


def run_matrix(root, t, fds, bpffs):
    """Every command as task t, on fds passed to it; {name: errno}."""
    f_upd, f_lad, f_frz, f_pin = fds
    mid = map_id(root, f_upd)
    out = {}

    def note(name, fn, *args, **kw):
        out[name] = err(fn, *args, **kw)

    note("create hash", hash_map, t, flags=0)
    note("create array", create_map, t, u.BPF_MAP_TYPE_ARRAY)
    note("create hash ZERO_SEED", hash_map, t)
    note("create lru_hash (CAP_BPF type)", create_map, t, u.BPF_MAP_TYPE_LRU_HASH)
    note("create sockmap (CAP_NET_ADMIN type)", create_map, t, u.BPF_MAP_TYPE_SOCKMAP, value_size=4)
    note("update", update, t, f_upd, u32(1), u64(1))
    note("lookup", lookup, t, f_upd, u32(1), 8)
    note("get_next_key", next_key, t, f_upd, None, 4)
    note("delete", t.bpf, u.BPF_MAP_DELETE_ELEM, make_attr(map_fd=f_upd, key=ctypes.addressof(KEY1)))
    update(root, f_lad, u32(2), u64(2))
    note("lookup_and_delete", lookup_and_delete, t, f_lad, u32(2), 8)
    update(root, f_lad, u32(3), u64(3))
    note("lookup_batch", lambda: _ok_or_enoent(batch(t, u.BPF_MAP_LOOKUP_BATCH, f_lad, 4, 4, 8)))
    note("update_batch", lambda: _ok_or_enoent(batch(t, u.BPF_MAP_UPDATE_BATCH, f_lad, 1, 4, 8,
                                                      keys=u32(4), values=u64(4))))
    note("delete_batch", lambda: _ok_or_enoent(batch(t, u.BPF_MAP_DELETE_BATCH, f_lad, 1, 4, 8, keys=u32(4))))
    note("info", map_info, t, f_upd)
    note("freeze", freeze, t, f_frz)
    note("map next_id", get_next_id, t, mid - 1)
    note("prog next_id", get_next_id, t, INT_MAX - 1, u.BPF_PROG_GET_NEXT_ID)
    note("link next_id", get_next_id, t, INT_MAX - 1, u.BPF_LINK_GET_NEXT_ID)
    note("btf next_id (start INT_MAX: EINVAL first)", get_next_id, t, INT_MAX, u.BPF_BTF_GET_NEXT_ID)
    note("map fd_by_id", map_fd_by_id, t, mid)
    note("map fd_by_id bad flags (EINVAL first)", map_fd_by_id, t, mid, 1)
    note("prog fd_by_id", t.bpf, u.BPF_PROG_GET_FD_BY_ID, make_attr(prog_id=INT_MAX - 1))
    note("link fd_by_id", t.bpf, u.BPF_LINK_GET_FD_BY_ID, make_attr(link_id=INT_MAX - 1))
    note("btf fd_by_id", t.bpf, u.BPF_BTF_GET_FD_BY_ID, make_attr(btf_id=INT_MAX - 1))
    note("pin in the bpffs root", pin, t, f_pin, bpffs + "/theirs")
    note("get own pin", obj_get, t, bpffs + "/theirs")
    note("get root's 0600 pin", obj_get, t, bpffs + "/roots")
    note("unlink root's pin (sticky root)", t.unlink, bpffs + "/roots")
    note("mkdir in root's 0755 dir", t.mkdir, bpffs + "/rootdir/x")
    return out


KEY1 = ctypes.create_string_buffer(u32(1), 4)


def _ok_or_enoent(res):
    """A batch that ran to the end reports ENOENT: that is success here."""
    if res.errno not in (0, ENOENT):
        raise OSError(res.errno, "batch")


@pytest.mark.parametrize("cred", list(CREDS))
def test_privilege_matrix(backend, proc, profile, cred):
    f_upd, f_lad, f_frz = hash_map(proc, flags=0), hash_map(proc, flags=0), hash_map(proc, flags=0)
    f_pin = hash_map(proc, flags=0)
    pin(proc, f_pin, proc.bpffs + "/roots")
    proc.mkdir(proc.bpffs + "/rootdir")
    t = backend.spawn(**CREDS[cred])
    fds = proc.send_fds(t, [f_upd, f_lad, f_frz, f_pin])
    got = run_matrix(proc, t, fds, proc.bpffs)
    assert got == expected(cred, profile)


def test_fork_dropping_privilege_keeps_inherited_fds_working(proc):
    fd = hash_map(proc, flags=0)
    child = proc.fork(uid=1000, caps=())
    try:
        update(child, fd, u32(1), u64(1))
        assert err(get_next_id, child, 0) == EPERM
        assert err(hash_map, child, flags=0) == (EPERM if host_unprivileged_bpf_disabled() else OK)
    finally:
        child.exit()


def test_caps_subset_on_a_fork(proc):
    child = proc.fork(uid=0, caps=("CAP_BPF",))
    try:
        assert err(create_map, child, u.BPF_MAP_TYPE_LRU_HASH) == OK
        assert err(get_next_id, child, 0) == EPERM
    finally:
        child.exit()
