"""LPM_TRIE: the emulator's sorted-prefix model against an explicit compressed binary trie.

The reference below builds the kernel's shape (real and intermediate nodes,
children chosen by the next bit) and walks it in postorder, the way
trie_get_next_key does; the emulator only sorts prefixes. Hypothesis checks
that both give the same lookups, errnos and key order, for small and odd key sizes.
"""
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

import bpfemu
from bpfemu import uapi as u
from bpfemu.maps.lpm_trie import LpmTrieMap


class Node:
    def __init__(self, plen, data, real, key=None, value=None):
        self.plen, self.data, self.real, self.key, self.value = plen, data, real, key, value
        self.child = [None, None]


def bit(data, i):
    return (data[i // 8] >> (7 - i % 8)) & 1


def match(a_data, a_plen, b_data, b_plen, limit):
    n = min(a_plen, b_plen, limit)
    for i in range(n):
        if bit(a_data, i) != bit(b_data, i):
            return i
    return n


class RefTrie:
    def __init__(self, max_plen):
        self.root, self.max = None, max_plen

    def insert(self, plen, data, key, value):
        """Place a real node; returns True when it is a new entry."""
        new = Node(plen, data, True, key, value)
        slot = (self, "root")
        node = self.root
        while node is not None:
            m = match(node.data, node.plen, data, plen, self.max)
            if m != node.plen or node.plen == plen:
                break
            slot = (node.child, bit(data, node.plen))
            node = node.child[bit(data, node.plen)]
        if node is None:
            self._set(slot, new)
            return True
        m = match(node.data, node.plen, data, plen, self.max)
        if node.plen == plen and m == plen:
            new.child = node.child
            self._set(slot, new)
            return not node.real
        if m == plen:  # the new key is a prefix of node
            new.child[bit(node.data, m)] = node
            self._set(slot, new)
            return True
        im = Node(m, data, False)
        im.child[bit(data, m)] = new
        im.child[bit(node.data, m)] = node
        self._set(slot, im)
        return True

    @staticmethod
    def _set(slot, node):
        holder, where = slot
        if isinstance(where, str):
            setattr(holder, where, node)
        else:
            holder[where] = node

    def postorder(self):
        out = []

        def walk(n):
            if n is None:
                return
            walk(n.child[0])
            walk(n.child[1])
            if n.real:
                out.append(n)
        walk(self.root)
        return out

    def lookup(self, plen, data):
        best, node = None, self.root
        while node is not None:
            m = match(node.data, node.plen, data, plen, self.max)
            if m == self.max:
                return node
            if m < node.plen:
                break
            if node.real:
                best = node
            node = node.child[bit(data, node.plen)]
        return best


KEY_SIZES = st.sampled_from([5, 6, 7])


@st.composite
def scenario(draw):
    ks = draw(KEY_SIZES)
    nbytes = ks - 4
    key = st.tuples(st.integers(0, nbytes * 8), st.binary(min_size=nbytes, max_size=nbytes))
    return ks, draw(st.lists(key, max_size=40)), draw(st.lists(key, max_size=20))


@settings(max_examples=150, deadline=None)
@given(scenario())
def test_sorted_model_matches_a_real_trie(sc):
    ks, inserts, probes = sc
    kernel = bpfemu.Kernel(ncpus=2)
    attr = u.make_attr(map_type=u.BPF_MAP_TYPE_LPM_TRIE, key_size=ks, value_size=4, max_entries=1000,
                       map_flags=u.BPF_F_NO_PREALLOC)
    m = LpmTrieMap(kernel, attr)
    ref = RefTrie((ks - 4) * 8)
    for i, (plen, data) in enumerate(inserts):
        key = struct.pack("<I", plen) + data
        m.update(key, struct.pack("<I", i), 0)
        ref.insert(plen, data, key, struct.pack("<I", i))
    order = [n.key for n in ref.postorder()]
    walk, k = [], None
    while True:
        try:
            k = m.get_next_key(k)
        except OSError as e:
            assert e.errno == 2
            break
        walk.append(k)
    assert walk == order
    assert m.count() == len(order)
    for plen, data in probes:
        key = struct.pack("<I", plen) + data
        want = ref.lookup(plen, data)
        try:
            got = m.lookup(key)
        except OSError as e:
            assert e.errno == 2 and want is None
        else:
            assert want is not None and got == want.value


def test_memory_is_proportional_to_entries():
    kernel = bpfemu.Kernel(ncpus=2)
    attr = u.make_attr(map_type=u.BPF_MAP_TYPE_LPM_TRIE, key_size=260, value_size=8, max_entries=0xFFFFFFFF,
                       map_flags=u.BPF_F_NO_PREALLOC)
    m = LpmTrieMap(kernel, attr)
    m.update(struct.pack("<I", 2048) + bytes(256), bytes(8), 0)
    assert m.lookup(struct.pack("<I", 2048) + bytes(256)) == bytes(8)
    assert len(m.entries) == 1 and len(m.order) == 1
