"""Userspace element operations on object maps (fd arrays, stack trace, ring buffers,
cgroup storage, devmap, cpumap, xskmap, sockmap/hash, reuseport array, arena).

The emulator has no programs, sockets, perf events or cgroups: updates that
need one get the host's errno for an fd of the wrong kind (a map fd) or a
closed fd (99); an all-zero value is fd 0, open on both backends and no socket.
BPF_F_LOCK (flag 4) fails at the syscall (no spin lock) before any map op. ifindex 1 is the loopback device on every machine; a huge
ifindex exists nowhere.
"""
import struct

import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import (create_map, delete, err, freeze, keys, lookup, lookup_and_delete, next_key,
                                    possible_cpus, update)

OK, ENOENT, EBADF, ENOMEM, EEXIST, ENODEV, EINVAL, ENOSPC, E2BIG, ENOTSOCK, EOVERFLOW = 0, 2, 9, 12, 17, 19, 22, 28, 7, 88, 75
EOPNOTSUPP, ENOTSUPP = 95, 524
NOWHERE = 0x7FFF0000


def P(*v):
    return struct.pack("<%di" % len(v), *v)


def ops(proc, fd, k, vs, me):
    """errno of the standard probes of an empty map of key size k, value size vs."""
    key0 = bytes(k) if k else None
    big = b"\xff" * k if k else None
    last = P(me - 1) + bytes(k - 4) if k >= 4 else key0
    return {
        "lookup0": err(lookup, proc, fd, key0, vs),
        "lookup_big": err(lookup, proc, fd, big, vs),
        "next_none": err(next_key, proc, fd, None, max(k, 1)),
        "next0": err(next_key, proc, fd, key0, max(k, 1)),
        "next_last": err(next_key, proc, fd, last, max(k, 1)),
        "update_mapfd": err(update, proc, fd, key0, (P(fd) + bytes(max(vs - 4, 0)))[:vs]),
        "update_closed": err(update, proc, fd, key0, (P(99) + bytes(max(vs - 4, 0)))[:vs]),
        "update_big": err(update, proc, fd, big, bytes(vs)),
        "update_flag2": err(update, proc, fd, key0, bytes(vs), 2),
        "update_flag4": err(update, proc, fd, key0, bytes(vs), 4),
        "delete0": err(delete, proc, fd, key0),
        "delete_big": err(delete, proc, fd, big),
        "lookup_and_delete": err(lookup_and_delete, proc, fd, key0, vs),
        "freeze": err(freeze, proc, fd),
    }


def row(lookup0, lookup_big, next_none, next0, next_last, update_mapfd, update_closed, update_big, update_flag2,
        update_flag4, delete0, delete_big, lookup_and_delete, freeze):
    return dict(locals())


FD_ARRAY_BASE = dict(next_none=OK, next0=OK, next_last=ENOENT, update_big=E2BIG, update_flag2=EINVAL,
                     update_flag4=EINVAL, delete0=ENOENT, delete_big=E2BIG, lookup_and_delete=ENOTSUPP, freeze=OK)
EMPTY = {
    # name: (type, key_size, value_size, max_entries, map_flags, user value size, expected)
    "prog_array": ("PROG_ARRAY", 4, 4, 4, 0, 4, dict(FD_ARRAY_BASE, lookup0=ENOENT, lookup_big=ENOENT,
                                                      update_mapfd=EINVAL, update_closed=EBADF)),
    "perf_event_array": ("PERF_EVENT_ARRAY", 4, 4, 4, 0, 4, dict(FD_ARRAY_BASE, lookup0=ENOTSUPP, lookup_big=ENOTSUPP,
                                                                  update_mapfd=EBADF, update_closed=EBADF)),
    "cgroup_array": ("CGROUP_ARRAY", 4, 4, 4, 0, 4, dict(FD_ARRAY_BASE, lookup0=ENOTSUPP, lookup_big=ENOTSUPP,
                                                          update_mapfd=EBADF, update_closed=EBADF)),
    "stack_trace": ("STACK_TRACE", 4, 16, 4, 0, 16, row(ENOENT, ENOENT, ENOENT, ENOENT, ENOENT, EINVAL, EINVAL,
                                                         EINVAL, EINVAL, EINVAL, ENOENT, E2BIG, ENOENT, OK)),
    "ringbuf": ("RINGBUF", 0, 0, 4096, 0, 0, row(*[ENOTSUPP] * 9, EINVAL, ENOTSUPP, ENOTSUPP, ENOTSUPP, OK)),
    "user_ringbuf": ("USER_RINGBUF", 0, 0, 4096, 0, 0, row(*[ENOTSUPP] * 9, EINVAL, ENOTSUPP, ENOTSUPP, ENOTSUPP,
                                                           OK)),
    "cgroup_storage_8": ("CGROUP_STORAGE", 8, 8, 0, 0, 8, row(ENOENT, ENOENT, ENOENT, ENOENT, ENOENT, ENOENT,
                                                               ENOENT, ENOENT, ENOENT, EINVAL, EINVAL, EINVAL,
                                                               ENOTSUPP, OK)),
    "cgroup_storage_16": ("CGROUP_STORAGE", 16, 8, 0, 0, 8, row(ENOENT, ENOENT, ENOENT, ENOENT, ENOENT, ENOENT,
                                                                 ENOENT, ENOENT, ENOENT, EINVAL, EINVAL, EINVAL,
                                                                 ENOTSUPP, OK)),
    "xskmap": ("XSKMAP", 4, 4, 4, 0, 4, row(EOPNOTSUPP, EOPNOTSUPP, OK, OK, ENOENT, ENOTSOCK, EBADF, E2BIG,
                                             ENOTSOCK, EINVAL, OK, EINVAL, ENOTSUPP, OK)),
    "sockmap_4": ("SOCKMAP", 4, 4, 4, 0, 4, row(ENOSPC, ENOSPC, OK, OK, ENOENT, ENOTSOCK, EBADF, ENOTSOCK, ENOTSOCK,
                                                 EINVAL, EINVAL, EINVAL, ENOTSUPP, OK)),
    "sockmap_8": ("SOCKMAP", 4, 8, 4, 0, 8, row(ENOENT, ENOENT, OK, OK, ENOENT, ENOTSOCK, EBADF, ENOTSOCK, ENOTSOCK,
                                                 EINVAL, EINVAL, EINVAL, ENOTSUPP, OK)),
    "sockhash": ("SOCKHASH", 4, 8, 4, 0, 8, row(ENOENT, ENOENT, ENOENT, ENOENT, ENOENT, ENOTSOCK, EBADF, ENOTSOCK,
                                                 ENOTSOCK, EINVAL, ENOENT, ENOENT, ENOTSUPP, OK)),
    "reuseport_4": ("REUSEPORT_SOCKARRAY", 4, 4, 4, 0, 4, row(ENOSPC, ENOSPC, OK, OK, ENOENT, ENOTSOCK, EBADF, E2BIG,
                                                               ENOTSOCK, EINVAL, ENOENT, E2BIG, ENOTSUPP, OK)),
    "reuseport_8": ("REUSEPORT_SOCKARRAY", 4, 8, 4, 0, 8, row(ENOENT, ENOENT, OK, OK, ENOENT, ENOTSOCK, EBADF, E2BIG,
                                                               ENOTSOCK, EINVAL, ENOENT, E2BIG, ENOTSUPP, OK)),
    "arena": ("ARENA", 0, 0, 4, u.BPF_F_MMAPABLE, 0, row(EINVAL, EINVAL, EOPNOTSUPP, EOPNOTSUPP, EOPNOTSUPP,
                                                          EOPNOTSUPP, EOPNOTSUPP, EOPNOTSUPP, EOPNOTSUPP, EINVAL,
                                                          EOPNOTSUPP, EOPNOTSUPP, ENOTSUPP, OK)),
}


@pytest.mark.parametrize("name", sorted(EMPTY))
def test_ops_on_an_empty_map(proc, profile, name):
    t, k, v, me, flags, vs, want = EMPTY[name]
    mt = getattr(u, "BPF_MAP_TYPE_" + t)
    if not profile.knows_map_type(mt):
        pytest.skip("%s has no %s maps" % (profile.version, t))
    if want["lookup_and_delete"] != ENOTSUPP and mt not in profile.lookup_and_delete_types:
        want = dict(want, lookup_and_delete=ENOTSUPP)  # a type the version's command does not serve (6.18 added
        # STACK_TRACE)
    fd = create_map(proc, mt, k, v, me, flags)
    assert ops(proc, fd, k, vs, me) == want


def test_percpu_cgroup_storage_value_is_per_cpu(proc):
    fd = create_map(proc, u.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, 8, 4, 0)
    vs = 8 * possible_cpus(proc)
    assert err(lookup, proc, fd, bytes(8), vs) == ENOENT
    assert err(update, proc, fd, bytes(8), bytes(vs)) == ENOENT
    assert err(update, proc, fd, bytes(8), bytes(vs), 1) == EINVAL  # BPF_NOEXIST is not allowed


def test_batches_are_not_supported(proc):
    from bpfemu.testing.support import make_attr
    for t, k, v, me in (("PROG_ARRAY", 4, 4, 2), ("DEVMAP", 4, 4, 2), ("STACK_TRACE", 4, 8, 2), ("CPUMAP", 4, 4, 2)):
        fd = create_map(proc, getattr(u, "BPF_MAP_TYPE_" + t), k, v, me)
        for cmd in (u.BPF_MAP_LOOKUP_BATCH, u.BPF_MAP_UPDATE_BATCH, u.BPF_MAP_DELETE_BATCH,
                    u.BPF_MAP_LOOKUP_AND_DELETE_BATCH):
            assert err(proc.bpf, cmd, make_attr(**{"batch.map_fd": fd})) == ENOTSUPP, (t, cmd)


# -- devmap, devmap hash, cpumap: stored values -------------------------------------------------

def devmap_updates(proc, fd, v):
    out = {}
    for name, key, val in [("if0_fd5", 0, P(0, 5)), ("if0_nofd", 0, P(0, -1)), ("lo", 1, P(1, -1)),
                           ("lo_fd0", 2, P(1, 0)), ("lo_mapfd", 3, P(1, fd)), ("lo_fd99", 3, P(1, 99)),
                           ("nowhere", 0, P(NOWHERE, -1)), ("key9", 9, P(1, -1)), ("key1_again", 1, P(1, -1)),
                           ("key10", 10, P(1, -1)), ("key11", 11, P(1, -1))]:
        out[name] = err(update, proc, fd, P(key), val[:v])
    out["noexist"] = err(update, proc, fd, P(1), P(1, -1)[:v], 1)
    out["flag4"] = err(update, proc, fd, P(1), P(1, -1)[:v], 4)
    return out


def test_devmap(proc):
    for v in (4, 8):
        fd = create_map(proc, u.BPF_MAP_TYPE_DEVMAP, 4, v, 4)
        got = devmap_updates(proc, fd, v)
        want = dict(if0_fd5=OK if v == 4 else EINVAL, if0_nofd=OK, lo=OK, lo_fd0=OK,
                    lo_mapfd=OK if v == 4 else EINVAL, lo_fd99=OK if v == 4 else EINVAL, nowhere=EINVAL,
                    key9=E2BIG, key1_again=OK, key10=E2BIG, key11=E2BIG, noexist=EEXIST, flag4=EINVAL)
        assert got == want, v
        lo = P(1, 0)[:v]
        assert [err(lookup, proc, fd, P(i), v) for i in range(5)] == [ENOENT, 0, 0, 0 if v == 4 else ENOENT, ENOENT]
        assert lookup(proc, fd, P(1), v) == lo
        assert keys(proc, fd, 4) == [P(i) for i in range(4)]  # array order, empty slots included
        assert next_key(proc, fd, P(9), 4) == P(0)
        assert (err(delete, proc, fd, P(1)), err(delete, proc, fd, P(1)), err(delete, proc, fd, P(9))) == (
            0, 0, EINVAL)
        assert err(lookup, proc, fd, P(1), v) == ENOENT


def test_devmap_hash_order_and_errors(proc):
    for v in (4, 8):
        fd = create_map(proc, u.BPF_MAP_TYPE_DEVMAP_HASH, 4, v, 4)
        got = devmap_updates(proc, fd, v)
        want = dict(if0_fd5=EINVAL, if0_nofd=EINVAL, lo=OK, lo_fd0=OK, lo_mapfd=OK if v == 4 else EINVAL,
                    lo_fd99=OK if v == 4 else EINVAL, nowhere=EINVAL, key9=OK, key1_again=OK,
                    key10=E2BIG if v == 4 else OK, key11=E2BIG, noexist=EEXIST, flag4=EINVAL)
        assert got == want, v
        # buckets in index order (key & (n_buckets-1)), each newest first; a replaced key moves to the head
        order = [1, 9, 2, 3] if v == 4 else [1, 9, 10, 2]
        assert keys(proc, fd, 4) == [P(i) for i in order]
        assert next_key(proc, fd, P(9), 4) == P(order[2])
        assert next_key(proc, fd, P(7), 4) == P(order[0])  # a missing key restarts
        assert lookup(proc, fd, P(9), v) == P(1, 0)[:v]
        assert (err(delete, proc, fd, P(1)), err(delete, proc, fd, P(1))) == (0, ENOENT)
        assert keys(proc, fd, 4)[0] == P(9)


def test_cpumap(proc):
    ncpus = possible_cpus(proc)
    for v in (4, 8):
        fd = create_map(proc, u.BPF_MAP_TYPE_CPUMAP, 4, v, ncpus + 2)
        res = {
            "q10": err(update, proc, fd, P(0), P(10, -1)[:v]),
            "q0": err(update, proc, fd, P(1), P(0, 5)[:v]),  # qsize 0 empties the slot
            "q10_mapfd": err(update, proc, fd, P(1), P(10, fd)[:v]),
            "q10_fd99": err(update, proc, fd, P(1), P(10, 99)[:v]),
            "q10_fd0": err(update, proc, fd, P(1), P(10, 0)[:v]),
            "over_16384": err(update, proc, fd, P(0), P(16385, -1)[:v]),
            "impossible_cpu": err(update, proc, fd, P(ncpus), P(10, -1)[:v]),
            "out_of_range": err(update, proc, fd, P(ncpus + 2), P(10, -1)[:v]),
            "noexist": err(update, proc, fd, P(0), P(10, -1)[:v], 1),
            "flag4": err(update, proc, fd, P(0), P(10, -1)[:v], 4),
        }
        assert res == dict(q10=OK, q0=OK, q10_mapfd=OK if v == 4 else ENOMEM, q10_fd99=OK if v == 4 else ENOMEM,
                           q10_fd0=OK, over_16384=EOVERFLOW, impossible_cpu=ENODEV, out_of_range=E2BIG,
                           noexist=EEXIST, flag4=EINVAL), v
        assert lookup(proc, fd, P(0), v) == P(10, 0)[:v]
        assert err(lookup, proc, fd, P(ncpus), v) == ENOENT
        assert (err(delete, proc, fd, P(0)), err(delete, proc, fd, P(0)), err(delete, proc, fd, P(ncpus + 2))) == (
            0, 0, EINVAL)
        assert err(lookup, proc, fd, P(0), v) == ENOENT
        proc.close(fd)


def test_sockmap_fd_values(proc):
    fd = create_map(proc, u.BPF_MAP_TYPE_SOCKMAP, 4, 8, 2)
    assert err(update, proc, fd, P(0), struct.pack("<Q", 1 << 31)) == EINVAL  # beyond S32_MAX
    assert err(update, proc, fd, P(0), struct.pack("<Q", fd)) == ENOTSOCK
    rp = create_map(proc, u.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, 2)
    assert err(update, proc, rp, P(0), struct.pack("<Q", 1 << 31)) == EINVAL
    assert err(update, proc, rp, P(0), struct.pack("<Q", rp)) == ENOTSOCK


def test_local_storage_needs_btf(proc, profile):
    # without BTF ids map_alloc_check refuses; with them the btf_fd must be a BTF object
    for name in ("SK_STORAGE", "INODE_STORAGE", "TASK_STORAGE", "CGRP_STORAGE"):
        t = getattr(u, "BPF_MAP_TYPE_" + name)
        if not profile.knows_map_type(t):
            continue  # (CGRP_STORAGE: 6.2)
        assert err(create_map, proc, t, 4, 8, 0, u.BPF_F_NO_PREALLOC) == EINVAL
        assert err(create_map, proc, t, 4, 8, 0, u.BPF_F_NO_PREALLOC, btf_fd=99, btf_key_type_id=1,
                   btf_value_type_id=2) == EBADF


def test_cpumap_holds_at_most_nr_cpus_entries(backend, proc):
    """max_entries above CONFIG_NR_CPUS (/sys/devices/system/cpu/kernel_max + 1; 256 on the test host, 8192 in
    Debian's kernels) is E2BIG, checked in map_alloc. The bound is the backend's ``kernel_max`` + 1: the real
    kernel's (a VM's guest's), or the emulator's Kernel(kernel_max=...), default the host's."""
    nr_cpus = backend.kernel_max + 1
    assert err(create_map, proc, u.BPF_MAP_TYPE_CPUMAP, 4, 4, nr_cpus) == OK
    assert err(create_map, proc, u.BPF_MAP_TYPE_CPUMAP, 4, 4, nr_cpus + 1) == E2BIG
    assert err(create_map, proc, u.BPF_MAP_TYPE_CPUMAP, 4, 4, 8192) == (OK if nr_cpus >= 8192 else E2BIG)
