"""bpfemu.Map, the high-level API, on both backends: same values, same errnos as the raw calls."""
import ctypes
import errno

import pytest

from bpfemu import uapi as u
from bpfemu.api import BpfError, Map

from bpfemu.testing.support import err, hash_map, keys, lookup, map_id, u32, update

ENOTSUPP = 524


class Pair(ctypes.Structure):
    _fields_ = [("a", ctypes.c_uint32), ("b", ctypes.c_uint32)]


def counts(proc, max_entries=4, **kw):
    return Map.create(proc, "hash", key="I", value="Q", max_entries=max_entries, name="counts",
                      flags=u.BPF_F_ZERO_SEED, **kw)


def test_typed_round_trip_and_raw_view(proc):
    m = counts(proc)
    m[1] = 42
    assert m[1] == 42 and m.lookup(1) == 42 and m.get(2, "none") == "none"
    # the same bytes through the raw call
    assert lookup(proc, m.fd, u32(1), 8) == (42).to_bytes(8, "little")
    assert m.id == map_id(proc, m.fd) and m.name == "counts" and m.type == u.BPF_MAP_TYPE_HASH


@pytest.mark.parametrize("t", ["hash", "HASH", "BPF_MAP_TYPE_HASH", u.BPF_MAP_TYPE_HASH])
def test_type_by_name_or_number(proc, t):
    with Map.create(proc, t, key_size=4, value_size=8, max_entries=1) as m:
        assert m.info().type == u.BPF_MAP_TYPE_HASH


def test_full_map_error_names_command_and_map(proc):
    m = counts(proc, max_entries=1)
    m[1] = 1
    with pytest.raises(OSError) as ei:
        m[2] = 2
    e = ei.value
    assert isinstance(e, BpfError) and e.errno == errno.E2BIG
    assert e.errno == err(update, proc, m.fd, u32(3), bytes(8))
    assert str(e) == "E2BIG: BPF_MAP_UPDATE_ELEM on hash map 'counts' (id %d): map is full" % m.id


def test_missing_key_is_KeyError_for_mapping_and_ENOENT_for_methods(proc):
    m = counts(proc)
    with pytest.raises(KeyError):
        m[7]
    with pytest.raises(KeyError):
        del m[7]
    with pytest.raises(FileNotFoundError) as ei:
        m.lookup(7)
    assert ei.value.errno == errno.ENOENT and isinstance(ei.value, BpfError)
    with pytest.raises(FileNotFoundError):
        m.delete(7)
    assert 7 not in m


def test_update_flags_keep_errnos(proc):
    m = counts(proc)
    m.update(1, 1, flags=u.BPF_NOEXIST)
    with pytest.raises(FileExistsError):
        m.update(1, 2, flags=u.BPF_NOEXIST)
    with pytest.raises(FileNotFoundError):
        m.update(2, 2, flags=u.BPF_EXIST)
    with pytest.raises(OSError) as ei:
        m.update(1, 2, flags=99)
    assert ei.value.errno == errno.EINVAL == err(update, proc, m.fd, u32(1), bytes(8), 99)
    assert m[1] == 1


def test_walk_survives_deleting_the_current_key(proc):
    m = counts(proc, max_entries=16)
    for i in range(10):
        m[i] = i * i
    seen = []
    for k in m.keys():
        seen.append(k)
        if k % 2:
            del m[k]
    assert sorted(seen) == list(range(10))  # every key once, none twice
    assert sorted(m) == [0, 2, 4, 6, 8] and len(m) == 5
    assert [k for k, _ in m.items()] == [int.from_bytes(k, "little") for k in keys(proc, m.fd, 4)]
    assert dict(m.items()) == {k: k * k for k in (0, 2, 4, 6, 8)}
    assert sorted(m.values()) == [0, 4, 16, 36, 64]
    for k in m.keys():
        del m[k]
    assert list(m.items()) == [] and len(m) == 0


def test_array_len_and_delete_errno(proc):
    a = Map.create(proc, "array", key="I", value="I", max_entries=3)
    assert len(a) == 3 and list(a.items()) == [(0, 0), (1, 0), (2, 0)]
    with pytest.raises(OSError) as ei:
        del a[0]
    assert ei.value.errno == errno.EINVAL
    assert 3 not in a


def test_struct_and_ctypes_types(proc):
    m = Map.create(proc, "hash", key=Pair, value="<IHH", max_entries=4, flags=u.BPF_F_ZERO_SEED)
    assert (m.key_size, m.value_size) == (8, 8)
    m[Pair(1, 2)] = (7, 8, 9)
    m[(3, 4)] = (1, 2, 3)
    got = {(k.a, k.b): v for k, v in m.items()}
    assert got == {(1, 2): (7, 8, 9), (3, 4): (1, 2, 3)}
    r = Map.create(proc, "array", key_size=4, value_size=4, max_entries=2)
    r[1] = b"abcd"
    assert r[1] == b"abcd" and r[0] == bytes(4)
    with pytest.raises(ValueError):
        r[1] = b"abc"


def test_percpu_values_are_lists(proc):
    m = Map.create(proc, "percpu_hash", key="I", value="I", max_entries=2, flags=u.BPF_F_ZERO_SEED)
    n = m.ncpus
    m[1] = 5
    assert m[1] == [5] * n
    m[2] = list(range(n))
    assert m[2] == list(range(n))
    with pytest.raises(ValueError):
        m[2] = [1] * (n + 1)
    # one per-CPU value spans round_up(4, 8) bytes per CPU in the raw call
    assert len(lookup(proc, m.fd, u32(2), 8 * n)) == 8 * n


def test_batches(proc):
    m = counts(proc, max_entries=64)
    assert m.update_batch(range(20), [i + 100 for i in range(20)]) == 20
    got, token = {}, None
    while True:
        b = m.lookup_batch(count=8, in_batch=token) if token is not None else m.lookup_batch(count=8)
        got.update(b.items())
        if b.next is None:
            break
        token = b.next
    assert got == {i: i + 100 for i in range(20)}
    assert m.delete_batch([0, 1, 2]) == 3
    with pytest.raises(FileNotFoundError) as ei:
        m.delete_batch([3, 0])
    assert ei.value.count == 1
    drained = {}
    token = None
    while True:
        b = m.lookup_and_delete_batch(count=64, in_batch=token)
        drained.update(b.items())
        if b.next is None:
            break
        token = b.next
    assert drained == {i: i + 100 for i in range(4, 20)} and len(m) == 0


def test_array_has_no_delete_batch(proc):
    a = Map.create(proc, "array", key="I", value="I", max_entries=2)
    with pytest.raises(OSError) as ei:
        a.delete_batch([0])
    assert ei.value.errno == ENOTSUPP and "BPF_MAP_DELETE_BATCH" in str(ei.value)


def test_freeze_pin_and_reopen(proc, profile):
    m = counts(proc)
    m[1] = 10
    m.freeze()
    with pytest.raises(PermissionError):
        m[2] = 1
    with pytest.raises(OSError) as e:  # frozen means no write permission, checked before EBUSY (6.1: no
        m.freeze()  # write permission check, EBUSY)
    assert e.value.errno == (errno.EPERM if "write_perm" in profile.freeze_checks else errno.EBUSY)
    path = proc.bpffs + "/counts"
    m.pin(path)
    with pytest.raises(FileExistsError):
        m.pin(path)
    with Map.from_pin(proc, path, key="I", value="Q") as again:
        assert again.id == m.id and again[1] == 10 and again.fd != m.fd
    with Map.from_id(proc, m.id, key="I", value="Q") as by_id:
        assert by_id[1] == 10 and by_id.name == "counts"
    with pytest.raises(FileNotFoundError):
        Map.from_pin(proc, proc.bpffs + "/nothing")
    proc.unlink(path)


def test_close_and_context_manager(proc):
    with counts(proc) as m:
        fd = m.fd
    assert m.closed
    assert err(proc.close, fd) == errno.EBADF
    m.close()  # again: nothing


def test_info_fields(proc):
    m = counts(proc, max_entries=9)
    i = m.info()
    assert (i.type, i.key_size, i.value_size, i.max_entries, i.name, i.id) == (
        u.BPF_MAP_TYPE_HASH, 4, 8, 9, "counts", m.id)
    assert i.map_flags == u.BPF_F_ZERO_SEED and i.type_name == "hash"


def test_bad_create_names_the_map(proc):
    with pytest.raises(OSError) as ei:
        Map.create(proc, "hash", key_size=0, value_size=8, max_entries=1, name="bad")
    assert ei.value.errno == errno.EINVAL
    assert str(ei.value).startswith("EINVAL: BPF_MAP_CREATE on hash map 'bad': ")


def test_queue_push_pop(proc):
    q = Map.create(proc, "queue", value="I", max_entries=2)
    q.push(1)
    q.push(2)
    with pytest.raises(OSError) as ei:
        q.push(3)
    assert ei.value.errno == errno.E2BIG
    assert q.peek() == 1 and q.pop() == 1 and q.pop() == 2
    with pytest.raises(FileNotFoundError):
        q.pop()
    with pytest.raises(TypeError):
        len(q)


def test_map_in_map(proc):
    inner = Map.create(proc, "array", key="I", value="I", max_entries=1)
    outer = Map.create(proc, "array_of_maps", key="I", max_entries=2, inner_map=inner)
    outer[0] = inner
    assert outer[0] == inner.id  # fds in, ids out
    with pytest.raises(KeyError):  # an empty slot of an array of maps is ENOENT
        outer[1]


def test_unprivileged_create_errno_matches_raw(backend):
    user = backend.spawn(uid=1000, caps=())
    raw = err(hash_map, user)
    try:
        Map.create(user, "hash", key_size=4, value_size=8, max_entries=1).close()
        got = 0
    except OSError as e:
        got = e.errno
        assert isinstance(e, BpfError) and isinstance(e, PermissionError) == (got == errno.EPERM)
    assert got == raw
