"""OBJ_GET_INFO_BY_FD on maps: every byte of struct bpf_map_info, and the info_len rules.

The kernel fills info_len bytes of its struct bpf_map_info (its size is the kernel version's:
``profile.map_info_size``, 104 with 6.18's hash and hash_size, 88 before) and copies them back; only
the map id differs between runs, so it is read back and put in the expected bytes. 6.18 starts from
the caller's own bytes (it copies them in, so fields a map has no value for keep what the caller
wrote: ``profile.map_info_reads_user``); older versions start from zeros.
"""
import ctypes
import struct

import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import addr, buf, create_map, err, freeze, make_attr, update

INFO = ctypes.sizeof(u.bpf_map_info)  # the newest layout (a version's struct may end sooner)
OFF = {f[0]: (getattr(u.bpf_map_info, f[0]).offset, getattr(u.bpf_map_info, f[0]).size)
       for f in u.bpf_map_info._fields_}
# fields a plain map (no BTF, no offload, not struct_ops) leaves as the caller wrote them
KEPT = ["ifindex", "netns_dev", "netns_ino", "btf_id", "btf_key_type_id", "btf_value_type_id", "btf_vmlinux_id"]


def get_info(proc, fd, data, info_len=None):
    """Run the command over a buffer holding data; returns (buffer bytes after, returned info_len)."""
    b = buf(data)
    a = make_attr(**{"info.bpf_fd": fd, "info.info_len": len(data) if info_len is None else info_len,
                     "info.info": addr(b)})
    proc.bpf(u.BPF_OBJ_GET_INFO_BY_FD, a)
    return b.raw, a.info.info_len


def put(b, field, value):
    off, size = OFF[field]
    if isinstance(value, int):
        value = value.to_bytes(size, "little")
    b[off:off + size] = value.ljust(size, b"\0")


def kept(profile):
    """The fields a plain map leaves as the caller wrote them, in this kernel version."""
    return KEPT if profile.map_info_reads_user else []


def has_hash(profile):
    """Whether this version's struct bpf_map_info has hash and hash_size (6.18)."""
    return profile.map_info_size > OFF["hash"][0]


def read_id(proc, fd):
    raw, _ = get_info(proc, fd, bytes(INFO))
    return struct.unpack_from("<I", raw, OFF["id"][0])[0]


def expected(mid, map_type, k, v, me, flags, name=b"", extra=0, start=None):
    b = bytearray(start if start is not None else bytes(INFO))
    for f, val in (("type", map_type), ("id", mid), ("key_size", k), ("value_size", v), ("max_entries", me),
                   ("map_flags", flags), ("name", name), ("btf_vmlinux_value_type_id", 0), ("map_extra", extra)):
        put(b, f, val)
    return bytes(b)


CASES = [
    (u.BPF_MAP_TYPE_HASH, 4, 8, 16, u.BPF_F_NO_PREALLOC, b"h", 0),
    (u.BPF_MAP_TYPE_ARRAY, 4, 1, 1, u.BPF_F_RDONLY_PROG | u.BPF_F_MMAPABLE, b"array.of_15_chr", 0),
    (u.BPF_MAP_TYPE_PERCPU_HASH, 12, 20, 7, 0, b"", 0),
    (u.BPF_MAP_TYPE_BLOOM_FILTER, 0, 4, 100, 0, b"bloom", 7),
    (u.BPF_MAP_TYPE_QUEUE, 0, 4, 3, 0, b"q", 0),
    (u.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, 0, b"rb", 0),
    (u.BPF_MAP_TYPE_DEVMAP, 4, 4, 3, 0, b"dev", 0),  # devmap adds BPF_F_RDONLY_PROG itself
    (u.BPF_MAP_TYPE_CGROUP_STORAGE, 8, 8, 0, 0, b"cg", 0),
    (u.BPF_MAP_TYPE_ARENA, 0, 0, 2, u.BPF_F_MMAPABLE, b"arena", 0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: u.map_type_name(c[0]))
def test_every_byte(proc, profile, case):
    t, k, v, me, flags, name, extra = case
    if not profile.knows_map_type(t):
        pytest.skip("%s has no %s maps" % (profile.version, u.map_type_name(t)))
    fd = create_map(proc, t, k, v, me, flags, name=name, map_extra=extra)
    mid = read_id(proc, fd)
    shown = flags | (u.BPF_F_RDONLY_PROG if t == u.BPF_MAP_TYPE_DEVMAP else 0)
    raw, n = get_info(proc, fd, bytes(INFO))
    assert n == profile.map_info_size
    assert raw == expected(mid, t, k, v, me, shown, name, extra)


def test_unfilled_fields_keep_the_callers_bytes(proc, profile):
    """6.18 keeps the caller's bytes where a plain map has nothing to say; older versions write zeros."""
    fd = create_map(proc, u.BPF_MAP_TYPE_HASH, 4, 8, 2, name=b"m")
    mid = read_id(proc, fd)
    size = profile.map_info_size
    start = bytearray(b"\xa5" * OFF["hash"][0]) + bytes(INFO - OFF["hash"][0])
    raw, n = get_info(proc, fd, bytes(start), info_len=size)
    assert n == size
    want = bytearray(expected(mid, u.BPF_MAP_TYPE_HASH, 4, 8, 2, 0, b"m", start=start))
    for f in KEPT:
        off, fsize = OFF[f]
        want[off:off + fsize] = (b"\xa5" if f in kept(profile) else b"\0") * fsize
    assert raw[:size] == bytes(want[:size]) and raw[size:] == bytes(start[size:])


@pytest.mark.parametrize("at", [100, 103])
def test_nonzero_padding_after_hash_size_gives_E2BIG(proc, profile, at):
    # bytes 100..103 pad the struct to 104; the kernel wants them zero like a tail,
    # and says so before it looks at the hash request (before 6.18 they are past the struct: tail)
    fd = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    data = bytearray(INFO)
    data[at] = 1
    assert err(get_info, proc, fd, bytes(data)) == 7
    assert err(get_info, proc, fd, bytes(data) + bytes(8)) == 7
    put(data, "hash_size", 16)
    assert err(get_info, proc, fd, bytes(data)) == 7
    # info_len 100 stops before the padding: it is not looked at
    put(data, "hash_size", 0)
    assert get_info(proc, fd, bytes(data), info_len=100)[1] == min(100, profile.map_info_size)


def test_name_is_padded_with_zeros_over_the_callers_bytes(proc):
    fd = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name=b"ab")
    start = bytearray(INFO)
    put(start, "name", b"\xff" * 16)
    raw, _ = get_info(proc, fd, bytes(start))
    off, size = OFF["name"]
    assert raw[off:off + size] == b"ab" + bytes(14)


@pytest.mark.parametrize("n", [0, 1, 4, 7, 24, 40, 41, 80, 96, 100, 103])
def test_short_info_len_fills_a_prefix(proc, profile, n):
    fd = create_map(proc, u.BPF_MAP_TYPE_HASH, 4, 8, 2, name=b"m")
    full, _ = get_info(proc, fd, bytes(INFO))
    start = b"\x5a" * OFF["hash"][0] + bytes(INFO - OFF["hash"][0])  # hash, hash_size are inputs: zero
    raw, got = get_info(proc, fd, start, info_len=n)
    n = min(n, profile.map_info_size)  # (past an older version's struct: the tail is zero)
    assert got == n
    want = bytearray(start)
    want[:n] = full[:n]
    for f in kept(profile):  # inside the prefix the kernel keeps the caller's bytes for these
        off, size = OFF[f]
        lo, hi = off, min(off + size, n)
        if lo < hi:
            want[lo:hi] = b"\x5a" * (hi - lo)
    assert raw == bytes(want)


@pytest.mark.parametrize("n", [INFO + 1, INFO + 8, 4096])
def test_longer_buffer_with_zero_tail(proc, profile, n):
    fd = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    raw, got = get_info(proc, fd, bytes(n))
    size = profile.map_info_size
    assert got == size
    assert raw[size:] == bytes(n - size)


@pytest.mark.parametrize("at", [INFO, INFO + 7, 4095])
def test_nonzero_tail_gives_E2BIG(proc, at):
    fd = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    data = bytearray(4096)
    data[at] = 1
    assert err(get_info, proc, fd, bytes(data)) == 7


def test_info_len_over_a_page_gives_E2BIG(proc):
    fd = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    assert err(get_info, proc, fd, bytes(4097)) == 7


def test_closed_fd_gives_EBADFD(proc):
    assert err(get_info, proc, 99, bytes(INFO)) == 77
    fd = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    proc.close(fd)
    assert err(get_info, proc, fd, bytes(INFO)) == 77


def test_non_bpf_fd_gives_EINVAL(proc):
    # fds 0-2 are open and are not bpf objects on both backends
    assert err(get_info, proc, 0, bytes(INFO)) == 22


def test_null_buffer(proc):
    fd = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    a = make_attr(**{"info.bpf_fd": fd, "info.info_len": 0, "info.info": 0})
    assert proc.bpf(u.BPF_OBJ_GET_INFO_BY_FD, a) == 0 and a.info.info_len == 0
    a = make_attr(**{"info.bpf_fd": fd, "info.info_len": INFO, "info.info": 0})
    assert err(proc.bpf, u.BPF_OBJ_GET_INFO_BY_FD, a) == 14


def test_bad_attr_tail(proc):
    fd = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    b = buf(INFO)
    a = make_attr(**{"info.bpf_fd": fd, "info.info_len": INFO, "info.info": addr(b)})
    raw = bytearray(bytes(a))
    raw[u.offsetofend("info.info")] = 1
    assert err(proc.bpf, u.BPF_OBJ_GET_INFO_BY_FD, raw, len(raw)) == 22


def test_no_permission_needed(proc, profile):
    for flags in (u.BPF_F_RDONLY, u.BPF_F_WRONLY):
        fd = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1, flags)
        raw, _ = get_info(proc, fd, bytes(INFO))
        assert struct.unpack_from("<I", raw, OFF["map_flags"][0])[0] == 0  # fd modes are not map flags
    fd = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    freeze(proc, fd)
    assert get_info(proc, fd, bytes(INFO))[1] == profile.map_info_size


def test_unprivileged_caller(backend, profile):
    p = backend.spawn(uid=1000, caps=())
    root = backend.spawn()
    fd = create_map(root, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    (fd2,) = root.send_fds(p, [fd])
    assert get_info(p, fd2, bytes(INFO))[1] == profile.map_info_size


def with_hash(data, ptr, size):
    b = bytearray(data)
    put(b, "hash", ptr)
    put(b, "hash_size", size)
    return bytes(b)


def test_hash_requests(proc, profile):
    # the hash pointer is never written on these paths, so any nonzero value will do
    arr = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 8, 2)
    update(proc, arr, struct.pack("<I", 0), bytes(8))
    hm = create_map(proc, u.BPF_MAP_TYPE_HASH, 4, 8, 2)
    pa = create_map(proc, u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 2)
    freeze(proc, pa)
    if not has_hash(profile):  # before 6.18 hash and hash_size are past the struct: a nonzero tail
        for fd, ptr, size in ((hm, 8, 32), (arr, 8, 32), (arr, 0, 32), (pa, 8, 32)):
            assert err(get_info, proc, fd, with_hash(bytes(INFO), ptr, size)) == 7
        return
    assert err(get_info, proc, hm, with_hash(bytes(INFO), 8, 32)) == 22  # no map_get_hash
    assert err(get_info, proc, pa, with_hash(bytes(INFO), 8, 32)) == 22
    assert err(get_info, proc, arr, with_hash(bytes(INFO), 8, 16)) == 22  # not SHA-256 sized
    assert err(get_info, proc, arr, with_hash(bytes(INFO), 8, 32)) == 1  # EPERM: not frozen
    assert err(get_info, proc, arr, with_hash(bytes(INFO), 0, 32)) == 22  # size without pointer
    raw, _ = get_info(proc, arr, with_hash(bytes(INFO), 0, 0))
    assert raw[OFF["hash"][0]:] == bytes(INFO - OFF["hash"][0])


@pytest.mark.parametrize("value_size", [4, 8, 12])
def test_frozen_array_content_hash_is_sha256_of_the_padded_values(proc, profile, value_size):
    import hashlib
    fd = create_map(proc, u.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=value_size, max_entries=5)
    update(proc, fd, struct.pack("<I", 1), bytes(range(1, value_size + 1)))
    update(proc, fd, struct.pack("<I", 4), b"\xff" * value_size)
    freeze(proc, fd)
    digest = buf(32)
    if not has_hash(profile):  # no content hash before 6.18: the request is a nonzero tail
        assert err(get_info, proc, fd, with_hash(bytes(INFO), addr(digest), 32)) == 7
        assert digest.raw == bytes(32)
        return
    raw, n = get_info(proc, fd, with_hash(bytes(INFO), addr(digest), 32))
    elem = (value_size + 7) // 8 * 8
    area = bytearray(elem * 5)
    area[elem:elem + value_size] = bytes(range(1, value_size + 1))
    area[4 * elem:4 * elem + value_size] = b"\xff" * value_size
    assert digest.raw == hashlib.sha256(bytes(area)).digest()
    # hash and hash_size are echoed back as they were passed
    assert raw[OFF["hash"][0]:OFF["hash"][0] + 8] == addr(digest).to_bytes(8, "little")
    assert n == INFO
