"""What the typed API says when something is wrong, on both backends: the map and the key are named, the
emulator's own explanation is kept, nothing is truncated."""
import ctypes
import errno

import pytest

from bpfemu import Map
from bpfemu import uapi as u
from bpfemu.testing.support import err, update


class Pair(ctypes.Structure):
    _fields_ = [("a", ctypes.c_uint32), ("b", ctypes.c_uint32)]


@pytest.mark.parametrize("key,exc", [("seven", TypeError), (1.5, TypeError), (None, TypeError),
                                     (-1, ValueError), (1 << 32, ValueError)])
def test_a_key_the_key_type_cannot_hold_names_the_map_and_the_key(proc, key, exc):
    m = Map.create(proc, "hash", key="I", value="Q", max_entries=2, name="counts")
    for op in (lambda: m.__setitem__(key, 1), lambda: m[key], lambda: m.lookup(key), lambda: key in m,
               lambda: m.delete(key), lambda: m.update_batch([key], [1])):
        with pytest.raises(exc) as ei:
            op()
        text = str(ei.value)
        assert "hash map 'counts' (id %d)" % m.id in text and "key %r" % (key,) in text, text
    assert len(m) == 0


def test_raw_bytes_of_the_wrong_size_and_structs(proc):
    m = Map.create(proc, "hash", key_size=4, value_size=8, max_entries=2, name="raw")
    with pytest.raises(ValueError) as ei:
        m[b"abc"] = bytes(8)
    assert "'raw'" in str(ei.value) and "b'abc'" in str(ei.value) and "4 bytes" in str(ei.value)
    with pytest.raises(TypeError) as ei:
        m["abcd"] = bytes(8)
    assert "'raw'" in str(ei.value)
    with pytest.raises(ValueError) as ei:
        m[b"abcd"] = bytes(7)
    assert "value b'" in str(ei.value)
    s = Map.create(proc, "hash", key=Pair, value="<IHH", max_entries=2, name="pairs")
    with pytest.raises(TypeError) as ei:
        s["x"] = (1, 2, 3)  # a str is not a Pair (nor the fields of one)
    assert "'pairs'" in str(ei.value) and "key 'x'" in str(ei.value)
    with pytest.raises(ValueError) as ei:
        s[Pair(1, 2)] = (1, 2)  # two of the value's three fields
    assert "value (1, 2)" in str(ei.value)


def test_an_array_index_out_of_range_says_so(proc):
    a = Map.create(proc, "array", key="I", value="I", max_entries=2, name="slots")
    with pytest.raises(OSError) as ei:
        a[5] = 1
    e = ei.value
    assert e.errno == errno.E2BIG == err(update, proc, a.fd, (5).to_bytes(4, "little"), bytes(4))
    assert "out of range" in str(e) and "map is full" not in str(e)
    if proc.backend == "emu":  # the emulator's own explanation is what is shown
        try:
            update(proc, a.fd, (5).to_bytes(4, "little"), bytes(4))
        except OSError as raw:
            assert str(e).endswith(raw.bpf_detail)
    h = Map.create(proc, "hash", key="I", value="I", max_entries=1, name="full")
    h[1] = 1
    with pytest.raises(OSError) as ei:
        h[2] = 2
    assert str(ei.value).endswith("map is full")


@pytest.mark.parametrize("field,value", [("max_entries", 2**32), ("max_entries", 2**32 + 4), ("max_entries", -1),
                                         ("key_size", 2**32), ("value_size", -8), ("flags", 2**32)])
def test_attr_fields_are_never_truncated(proc, field, value):
    kw = dict(key_size=4, value_size=4, max_entries=4)
    kw[field] = value
    with pytest.raises(ValueError) as ei:
        Map.create(proc, "hash", **kw)
    assert repr(value) in str(ei.value)
    assert proc.fds() == [0, 1, 2]


def colliding_map(proc):
    """A 2-bucket zero-seed hash map holding two keys in one bucket, and those keys."""
    for k in range(1, 64):
        m = Map.create(proc, "hash", key="I", value="I", max_entries=2, flags=u.BPF_F_ZERO_SEED, name="buckets")
        m[0] = 0
        m[k] = k
        try:
            m.lookup_batch(count=1)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                return m, {0: 0, k: k}
            raise
        m.close()
    raise AssertionError("no two keys of 0..63 share a bucket")


def test_batch_ENOSPC_says_the_count_is_smaller_than_a_bucket(proc):
    m, content = colliding_map(proc)
    with pytest.raises(OSError) as ei:
        m.lookup_batch(count=1)
    assert ei.value.errno == errno.ENOSPC
    assert "count 1 is smaller than the next bucket's elements" in str(ei.value)
    assert dict(m.lookup_batch(count=2).items()) == content
    # the paged walks ask again with a larger count
    assert dict(m.lookup_batch().items()) == content
    assert [len(b.keys) for b in m.batches(count=1)] == [2]
