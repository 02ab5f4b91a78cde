"""What users of bcc's table API and cilium/ebpf's Map expect of bpfemu.Map, on both backends: clear(),
per-CPU sum()/max(), paged batches, unpin()/is_pinned, hashable keys."""
import ctypes

import pytest

from bpfemu import Map
from bpfemu import uapi as u
from bpfemu.testing.support import hash_map, pin


class Flow(ctypes.Structure):
    _fields_ = [("saddr", ctypes.c_uint32), ("daddr", ctypes.c_uint32), ("sport", ctypes.c_uint16),
                ("dport", ctypes.c_uint16)]


def zero_seed(proc, type="hash", **kw):
    return Map.create(proc, type, flags=u.BPF_F_ZERO_SEED, **kw)


@pytest.mark.parametrize("type", ["hash", "lru_hash", "percpu_hash", "lpm_trie"])
def test_clear_empties_a_hash_like_map(proc, type):
    if type == "lpm_trie":
        m = Map.create(proc, type, key_size=8, value_size=4, max_entries=16, flags=u.BPF_F_NO_PREALLOC)
        keys = [(24).to_bytes(4, "little") + bytes([10, 0, i, 0]) for i in range(5)]
    else:
        m = zero_seed(proc, type, key="I", value="I", max_entries=16)
        keys = list(range(5))
    for k in keys:
        m[k] = 1
    assert m.clear() == 5
    assert list(m.keys()) == [] and m.clear() == 0


@pytest.mark.parametrize("type", ["array", "percpu_array"])
def test_clear_zeroes_an_array(proc, type):
    m = Map.create(proc, type, key="I", value="Q", max_entries=3)
    m[1] = 7
    assert m.clear() == 3
    zero = [0] * m.ncpus if m.percpu else 0
    assert [m[i] for i in range(3)] == [zero] * 3


def test_clear_empties_an_fd_array_and_a_queue(proc):
    inner = Map.create(proc, "array", key="I", value="I", max_entries=1)
    outer = Map.create(proc, "array_of_maps", key="I", max_entries=3, inner_map=inner)
    outer[0] = outer[2] = inner
    assert outer.clear() == 2
    assert [outer.get(i) for i in range(3)] == [None] * 3
    for t in ("queue", "stack"):
        q = Map.create(proc, t, value="I", max_entries=4)
        for i in range(3):
            q.push(i)
        assert q.clear() == 3
        with pytest.raises(FileNotFoundError):
            q.peek()


def test_clear_is_refused_where_it_means_nothing(proc):
    b = Map.create(proc, "bloom_filter", value="I", max_entries=4)
    with pytest.raises(TypeError):
        b.clear()


@pytest.mark.parametrize("type", ["percpu_hash", "percpu_array", "lru_percpu_hash"])
def test_percpu_sum_and_max(proc, type):
    m = Map.create(proc, type, key="I", value="Q", max_entries=4)
    n = m.ncpus
    vals = [3 * c + 1 for c in range(n)]
    m[1] = vals
    assert m.sum(1) == sum(vals) and m.max(1) == max(vals)
    if type != "percpu_array":
        with pytest.raises(FileNotFoundError):
            m.sum(2)
    plain = zero_seed(proc, "hash", key="I", value="Q", max_entries=4)
    plain[1] = 5
    with pytest.raises(TypeError):
        plain.sum(1)


def test_batches_page_through_the_map(proc):
    m = zero_seed(proc, key="I", value="Q", max_entries=256)
    want = {k: k * k for k in range(100)}
    m.update_batch(want, want.values())
    pages = list(m.batches(count=7))
    assert all(len(p.keys) <= 14 for p in pages) and pages[-1].next is None  # 14: a bucket may double it
    got = {}
    for p in pages:
        got.update(p.items())
    assert got == want
    assert dict(m.lookup_batch().items()) == want  # no count: everything, in pages
    drained = {}
    for p in m.batches(count=16, delete=True):
        drained.update(p.items())
    assert drained == want and len(m) == 0
    assert [(p.keys, p.next) for p in m.batches()] == [([], None)]  # an empty map: one empty page


def test_lookup_batch_without_count_on_a_huge_map(proc):
    m = Map.create(proc, "hash", key="I", value="Q", max_entries=1 << 24, flags=u.BPF_F_NO_PREALLOC)
    m.update_batch([1, 2, 3], [10, 20, 30])
    b = m.lookup_batch()
    assert dict(b.items()) == {1: 10, 2: 20, 3: 30} and b.next is None


def test_unpin_and_is_pinned(proc):
    path = proc.bpffs + "/flows"
    m = zero_seed(proc, key="I", value="I", max_entries=4)
    assert not m.is_pinned and m.pin_path is None
    m.unpin()  # never pinned: nothing to do
    m.pin(path)
    assert m.is_pinned and m.pin_path == path
    with Map.from_pin(proc, path) as again:
        assert again.is_pinned and again.pin_path == path
    proc.unlink(path)
    assert not m.is_pinned  # removed behind its back
    pin(proc, hash_map(proc), path)
    assert not m.is_pinned  # the path names another map now
    proc.unlink(path)
    m.pin(path)
    m.unpin()
    assert not m.is_pinned and m.pin_path is None
    assert "flows" not in proc.listdir(proc.bpffs)
    m.unpin()  # again: nothing


def test_items_keys_are_hashable_even_for_structures(proc):
    m = zero_seed(proc, key=Flow, value="Q", max_entries=8)
    f1, f2 = Flow(1, 2, 3, 4), Flow(5, 6, 7, 8)
    m[f1] = 10
    m[f2] = 20
    d = dict(m.items())
    assert sorted(d.values()) == [10, 20]
    k1 = next(k for k in d if k.saddr == 1)
    assert isinstance(k1, Flow) and (k1.daddr, k1.sport, k1.dport) == (2, 3, 4)
    assert k1 == f1 and k1 != f2 and d[k1] == 10 and m[k1] == 10
    assert len(set(m.keys()) | set(m.keys())) == 2
    assert "saddr=1" in repr(k1)
    arr = zero_seed(proc, key=ctypes.c_uint8 * 4, value="I", max_entries=2)
    arr[(ctypes.c_uint8 * 4)(10, 0, 0, 1)] = 1
    assert [list(k) for k in dict(arr.items())] == [[10, 0, 0, 1]]
