"""MAP_CREATE for every map type: sizes x flags x privilege, errno for errno.

Each row is (key_size, value_size, max_entries, map_flags, extra attr fields,
errno for root, errno for an unprivileged task). The unprivileged column
assumes kernel.unprivileged_bpf_disabled != 0 (the kernel's default, 2): then
only a type's map_alloc_check errors (EINVAL, E2BIG) come before EPERM; checks
a type makes in map_alloc come after the privilege check, so an unprivileged
caller sees EPERM there. When the sysctl is 0 the unprivileged column is not
checked (the test says so in its skip reason).
"""
import pytest

from bpfemu import uapi as u
from bpfemu.host.sysinfo import host_unprivileged_bpf_disabled

from bpfemu.testing.support import create_map, err, need_map_type, unprivileged

OK, EPERM, EBADF, EINVAL, E2BIG, ERANGE, ENOTSUPP = 0, 1, 9, 22, 7, 34, 524
F = u
NP, RO, WO, RP, WP = F.BPF_F_NO_PREALLOC, F.BPF_F_RDONLY, F.BPF_F_WRONLY, F.BPF_F_RDONLY_PROG, F.BPF_F_WRONLY_PROG
NUMA, MM = F.BPF_F_NUMA_NODE, F.BPF_F_MMAPABLE
BTF_IDS = dict(btf_key_type_id=1, btf_value_type_id=2)

FD_ARRAY = [
    (4, 4, 1, 0, {}, OK, EPERM),
    (4, 4, 64, RO, {}, OK, EPERM),
    (4, 4, 1, NUMA, {}, OK, EPERM),
    (4, 8, 1, 0, {}, EINVAL, EINVAL),
    (4, 0, 1, 0, {}, EINVAL, EINVAL),
    (8, 4, 1, 0, {}, EINVAL, EINVAL),
    (4, 4, 0, 0, {}, EINVAL, EINVAL),
    (4, 4, 1, RP, {}, EINVAL, EINVAL),
    (4, 4, 1, WP, {}, EINVAL, EINVAL),
    (4, 4, 1, NP, {}, EINVAL, EINVAL),
    (4, 4, 1, MM, {}, EINVAL, EINVAL),
    (4, 4, 1, F.BPF_F_INNER_MAP, {}, EINVAL, EINVAL),
    (4, 4, 1, RO | WO, {}, EINVAL, EINVAL),
]
CASES = {
    "UNSPEC": [(4, 4, 1, 0, {}, EINVAL, EINVAL), (0, 0, 0, 0, {}, EINVAL, EINVAL)],
    "PROG_ARRAY": FD_ARRAY + [(4, 4, 1, F.BPF_F_PRESERVE_ELEMS, {}, EINVAL, EINVAL)],
    "PERF_EVENT_ARRAY": FD_ARRAY + [(4, 4, 1, F.BPF_F_PRESERVE_ELEMS, {}, OK, EPERM)],
    "CGROUP_ARRAY": FD_ARRAY + [(4, 4, 1, F.BPF_F_PRESERVE_ELEMS, {}, EINVAL, EINVAL)],
    "STACK_TRACE": [
        (4, 8, 1, 0, {}, OK, EPERM), (4, 1016, 2, 0, {}, OK, EPERM), (4, 16, 3, RO | NUMA, {}, OK, EPERM),
        (4, 1024, 1, 0, {}, EINVAL, EPERM),  # deeper than kernel.perf_event_max_stack (127)
        (4, 12, 1, 0, {}, EINVAL, EPERM), (4, 0, 1, 0, {}, EINVAL, EPERM), (4, 4, 1, 0, {}, EINVAL, EPERM),
        (8, 8, 1, 0, {}, EINVAL, EPERM), (4, 8, 0, 0, {}, EINVAL, EPERM), (4, 8, 1, NP, {}, EINVAL, EPERM),
        (4, 32, 1, F.BPF_F_STACK_BUILD_ID, {}, OK, EPERM), (4, 48, 1, F.BPF_F_STACK_BUILD_ID, {}, EINVAL, EPERM),
        (4, 4064, 1, F.BPF_F_STACK_BUILD_ID, {}, OK, EPERM), (4, 4096, 1, F.BPF_F_STACK_BUILD_ID, {}, EINVAL, EPERM),
        (4, 8, 1, RO | WO, {}, EINVAL, EINVAL),
    ],
    "RINGBUF": [
        (0, 0, 4096, 0, {}, OK, EPERM), (0, 0, 65536, NUMA, {}, OK, EPERM),
        (0, 0, 4095, 0, {}, EINVAL, EPERM), (0, 0, 2048, 0, {}, EINVAL, EPERM), (0, 0, 12288, 0, {}, EINVAL, EPERM),
        (0, 0, 0, 0, {}, EINVAL, EPERM), (4, 0, 4096, 0, {}, EINVAL, EPERM), (0, 4, 4096, 0, {}, EINVAL, EPERM),
        (0, 0, 4096, MM, {}, EINVAL, EPERM), (0, 0, 4096, RO, {}, EINVAL, EPERM),
    ],
    "CGROUP_STORAGE": [
        (8, 8, 0, 0, {}, OK, EPERM), (16, 8, 0, 0, {}, OK, EPERM), (8, 4096, 0, RP, {}, OK, EPERM),
        (4, 8, 0, 0, {}, EINVAL, EPERM), (8, 0, 0, 0, {}, EINVAL, EPERM), (8, 8, 1, 0, {}, EINVAL, EPERM),
        (8, 65536, 0, 0, {}, E2BIG, EPERM), (8, 8, 0, NP, {}, EINVAL, EPERM), (8, 8, 0, RP | WP, {}, EINVAL, EPERM),
    ],
    "PERCPU_CGROUP_STORAGE": [
        (8, 8, 0, 0, {}, OK, EPERM), (8, 32768, 0, 0, {}, OK, EPERM), (8, 32769, 0, 0, {}, E2BIG, EPERM),
        (16, 8, 1, 0, {}, EINVAL, EPERM),
    ],
    "DEVMAP": [
        (4, 4, 1, 0, {}, OK, EPERM), (4, 8, 8, RO | NUMA, {}, OK, EPERM), (4, 12, 1, 0, {}, EINVAL, EINVAL),
        (8, 4, 1, 0, {}, EINVAL, EINVAL), (4, 4, 0, 0, {}, EINVAL, EINVAL), (4, 4, 1, RP, {}, EINVAL, EINVAL),
        (4, 4, 1, NP, {}, EINVAL, EINVAL),
    ],
    "DEVMAP_HASH": [
        (4, 4, 1, 0, {}, OK, EPERM), (4, 8, 100, WO, {}, OK, EPERM), (4, 2, 1, 0, {}, EINVAL, EINVAL),
        (4, 4, 0, 0, {}, EINVAL, EINVAL),
    ],
    "CPUMAP": [
        (4, 4, 1, 0, {}, OK, EPERM), (4, 8, 64, NUMA, {}, OK, EPERM), (4, 12, 1, 0, {}, EINVAL, EPERM),
        (4, 4, 0, 0, {}, EINVAL, EPERM), (4, 4, 1, RO, {}, EINVAL, EPERM), (4, 4, 1 << 20, 0, {}, E2BIG, EPERM),
    ],
    "XSKMAP": [
        (4, 4, 1, 0, {}, OK, EPERM), (4, 4, 8, RO, {}, OK, EPERM), (4, 8, 1, 0, {}, EINVAL, EPERM),
        (4, 4, 0, 0, {}, EINVAL, EPERM), (4, 4, 1, RP, {}, EINVAL, EPERM),
    ],
    "SOCKMAP": [
        (4, 4, 1, 0, {}, OK, EPERM), (4, 8, 1, WO, {}, OK, EPERM), (4, 2, 1, 0, {}, EINVAL, EPERM),
        (8, 4, 1, 0, {}, EINVAL, EPERM), (4, 4, 0, 0, {}, EINVAL, EPERM), (4, 4, 1, NP, {}, EINVAL, EPERM),
    ],
    "SOCKHASH": [
        (1, 4, 1, 0, {}, OK, EPERM), (512, 8, 4, 0, {}, OK, EPERM), (513, 4, 1, 0, {}, E2BIG, EPERM),
        (0, 4, 1, 0, {}, EINVAL, EPERM), (4, 16, 1, 0, {}, EINVAL, EPERM), (4, 4, 1, RP, {}, EINVAL, EPERM),
    ],
    "REUSEPORT_SOCKARRAY": [
        (4, 4, 1, 0, {}, OK, EPERM), (4, 8, 8, RO, {}, OK, EPERM), (4, 2, 1, 0, {}, EINVAL, EINVAL),
        (8, 8, 1, 0, {}, EINVAL, EINVAL), (4, 8, 0, 0, {}, EINVAL, EINVAL), (4, 8, 1, NP, {}, EINVAL, EINVAL),
    ],
    "SK_STORAGE": [
        (4, 8, 0, NP, {}, EINVAL, EINVAL),  # no BTF ids
        (4, 8, 0, NP, dict(BTF_IDS, btf_fd=99), EBADF, EPERM),  # ids, then btf_fd is looked up
        (4, 8, 0, 0, BTF_IDS, EINVAL, EINVAL), (4, 8, 1, NP, BTF_IDS, EINVAL, EINVAL),
        (8, 8, 0, NP, BTF_IDS, EINVAL, EINVAL), (4, 0, 0, NP, BTF_IDS, EINVAL, EINVAL),
        (4, 65536, 0, NP, BTF_IDS, E2BIG, E2BIG), (4, 8, 0, NP | RO, BTF_IDS, EINVAL, EINVAL),
        (4, 8, 0, NP, dict(btf_value_type_id=2, btf_fd=99), EINVAL, EINVAL),
        (4, 8, 0, NP, dict(btf_key_type_id=1, btf_fd=99), EINVAL, EINVAL),
    ],
    "STRUCT_OPS": [
        (4, 4, 1, 0, {}, EINVAL, EINVAL),  # no btf_vmlinux_value_type_id
        (4, 4, 1, 0, dict(btf_vmlinux_value_type_id=1), ENOTSUPP, EPERM),  # id 1 is no struct_ops value type
        (4, 4, 2, 0, dict(btf_vmlinux_value_type_id=1), EINVAL, EINVAL),
        (8, 4, 1, 0, dict(btf_vmlinux_value_type_id=1), EINVAL, EINVAL),
        (4, 4, 1, RO, dict(btf_vmlinux_value_type_id=1), EINVAL, EINVAL),
        (4, 4, 1, 0, dict(btf_vmlinux_value_type_id=1, btf_key_type_id=1), EINVAL, EINVAL),
    ],
    "ARENA": [
        (0, 0, 1, MM, {}, OK, EPERM), (0, 0, 16, MM | F.BPF_F_SEGV_ON_FAULT | F.BPF_F_NO_USER_CONV, {}, OK, EPERM),
        (0, 0, 1, MM, dict(map_extra=1 << 32), OK, EPERM),
        (0, 0, 1, 0, {}, EINVAL, EPERM), (0, 0, 0, MM, {}, EINVAL, EPERM), (4, 0, 1, MM, {}, EINVAL, EPERM),
        (0, 0, 1, MM | NUMA, {}, EINVAL, EPERM), (0, 0, 1, MM, dict(map_extra=100), EINVAL, EPERM),
        (0, 0, (1 << 20) + 1, MM, {}, E2BIG, EPERM),
        (0, 0, 2, MM, dict(map_extra=(1 << 32) - 4096), ERANGE, EPERM),
    ],
}
CASES["SK_STORAGE"] += [(4, 8, 0, NP, {"btf_key_type_id": 1, "btf_value_type_id": 2, "btf_fd": 0}, EINVAL, EPERM)]
for name in ("INODE_STORAGE", "TASK_STORAGE", "CGRP_STORAGE"):
    CASES[name] = CASES["SK_STORAGE"]
UNKNOWN = [34, 35, 1000, 0xFFFFFFFF]


def check(proc, name, rows, col, profile):
    t = getattr(u, "BPF_MAP_TYPE_" + name)
    need_map_type(profile, t)
    bad = []
    for row in rows:
        k, v, me, flags, extra, want = row[0], row[1], row[2], row[3], row[4], row[col]
        if col == 6:
            want = unprivileged(profile, want)
        got = err(create_map, proc, t, k, v, me, flags, **extra)
        if got != want:
            bad.append((row[:5], "want %d got %d" % (want, got)))
    assert not bad, bad


@pytest.mark.parametrize("name", sorted(CASES))
def test_privileged(proc, profile, name):
    check(proc, name, CASES[name], 5, profile)


@pytest.mark.parametrize("name", sorted(CASES))
def test_unprivileged(backend, profile, name):
    if not host_unprivileged_bpf_disabled():
        pytest.skip("the unprivileged column assumes kernel.unprivileged_bpf_disabled != 0")
    check(backend.spawn(uid=1000, caps=()), name, CASES[name], 6, profile)


@pytest.mark.parametrize("caps", [("CAP_BPF",), ("CAP_NET_ADMIN",), ("CAP_SYS_ADMIN",)])
def test_capabilities_per_type(backend, profile, caps):
    """CAP_BPF covers the CAP_BPF types, CAP_NET_ADMIN the net ones, CAP_SYS_ADMIN stands in for both."""
    p = backend.spawn(uid=1000, caps=caps)
    bpf = "CAP_BPF" in caps or "CAP_SYS_ADMIN" in caps
    # with kernel.unprivileged_bpf_disabled set, CAP_BPF is needed first, for every type
    # the network types ask CAP_NET_ADMIN (6.1) or bpf_net_capable, which CAP_SYS_ADMIN also passes
    net_caps = ("CAP_NET_ADMIN",) if profile.net_admin == "CAP_NET_ADMIN" else ("CAP_NET_ADMIN", "CAP_SYS_ADMIN")
    net = any(c in caps for c in net_caps) and (bpf or not host_unprivileged_bpf_disabled())
    rows = [("STACK_TRACE", (4, 8, 1, 0), bpf), ("CPUMAP", (4, 4, 1, 0), bpf), ("RINGBUF", (0, 0, 4096, 0), bpf),
            ("DEVMAP", (4, 4, 1, 0), net), ("SOCKMAP", (4, 4, 1, 0), net), ("XSKMAP", (4, 4, 1, 0), net),
            ("REUSEPORT_SOCKARRAY", (4, 4, 1, 0), bpf), ("ARENA", (0, 0, 1, MM), bpf)]
    for name, args, allowed in rows:
        if not profile.knows_map_type(getattr(u, "BPF_MAP_TYPE_" + name)):
            continue  # (ARENA: 6.9)
        if not allowed and name == "RINGBUF" and not host_unprivileged_bpf_disabled():
            allowed = True
        got = err(create_map, p, getattr(u, "BPF_MAP_TYPE_" + name), *args)
        assert got == (OK if allowed else EPERM), (name, caps)


@pytest.mark.parametrize("t", UNKNOWN)
def test_unknown_type(backend, profile, t):
    assert err(create_map, backend.spawn(), t, 4, 4, 1) == EINVAL
    assert err(create_map, backend.spawn(uid=1000, caps=()), t, 4, 4, 1) == unprivileged(profile, EINVAL)


def test_vmlinux_value_type_id_only_for_struct_ops(proc):
    assert err(create_map, proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1, btf_vmlinux_value_type_id=1) == EINVAL
    # before the type is even looked up
    assert err(create_map, proc, 1000, 4, 4, 1, btf_vmlinux_value_type_id=1) == EINVAL


def test_map_extra_only_for_bloom_and_arena(proc):
    for t in (u.BPF_MAP_TYPE_ARRAY, u.BPF_MAP_TYPE_RINGBUF, u.BPF_MAP_TYPE_DEVMAP, 1000):
        assert err(create_map, proc, t, 4, 4, 1, map_extra=1) == EINVAL


def test_local_storage_btf_fd_not_btf(proc):
    m = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    for name in ("SK_STORAGE", "INODE_STORAGE", "TASK_STORAGE", "CGRP_STORAGE"):
        t = getattr(u, "BPF_MAP_TYPE_" + name)
        assert err(create_map, proc, t, 4, 8, 0, NP, btf_fd=m, **BTF_IDS) == EINVAL


def test_devmap_keeps_the_rdonly_prog_it_adds(proc):
    from bpfemu.testing.support import map_info
    for t in (u.BPF_MAP_TYPE_DEVMAP, u.BPF_MAP_TYPE_DEVMAP_HASH):
        assert map_info(proc, create_map(proc, t, 4, 4, 1, NUMA)).map_flags == NUMA | RP


# value_size at the limit of each local storage type, and one past it (E2BIG). The limit is U16_MAX less
# sizeof(struct bpf_local_storage_elem) (128 on 6.18); per-CPU cgroup storage stops at PCPU_MIN_UNIT_SIZE.
# At the limit, the BTF-described types go on to the btf_fd check (fd 0 is no BTF: EINVAL).
@pytest.mark.parametrize("name,limit,at_limit", [
    ("CGROUP_STORAGE", 65535 - 128, OK), ("PERCPU_CGROUP_STORAGE", 32768, OK),
    ("SK_STORAGE", 65535 - 128, EINVAL), ("INODE_STORAGE", 65535 - 128, EINVAL),
    ("TASK_STORAGE", 65535 - 128, EINVAL), ("CGRP_STORAGE", 65535 - 128, EINVAL)])
def test_local_storage_value_limit(proc, profile, name, limit, at_limit):
    t = getattr(u, "BPF_MAP_TYPE_" + name)
    need_map_type(profile, t)
    if "CGROUP_STORAGE" in name:
        kw = dict(key_size=8, max_entries=0)
    else:
        kw = dict(key_size=4, max_entries=0, flags=NP, btf_fd=0, **BTF_IDS)
    assert err(create_map, proc, t, value_size=limit, **kw) == at_limit
    assert err(create_map, proc, t, value_size=limit + 1, **kw) == E2BIG
