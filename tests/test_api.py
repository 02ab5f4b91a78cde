"""bpfemu.Map and kernel.describe() on the emulator: codecs, error classes, a model check, speed."""
import ctypes
import errno
import gc
import pickle
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bpfemu
from bpfemu import BpfError, Map, uapi
from bpfemu.api import Handle, codec, make_error, map_type_number
from bpfemu.api.codecs import hashable_type


@pytest.fixture
def proc():
    return bpfemu.Kernel(ncpus=3).spawn()


def test_exported_names():
    assert bpfemu.Map is Map and issubclass(bpfemu.BpfError, OSError)


@pytest.mark.parametrize("code,builtin", [(errno.ENOENT, FileNotFoundError), (errno.EPERM, PermissionError),
                                          (errno.EEXIST, FileExistsError), (errno.E2BIG, OSError),
                                          (524, OSError)])
def test_error_classes_follow_the_errno(code, builtin):
    e = make_error(code, "BPF_MAP_LOOKUP_ELEM", "hash map 'x' (id 1)", "why")
    assert isinstance(e, builtin) and isinstance(e, BpfError) and e.errno == code
    assert type(OSError(code, "")) is builtin or builtin is OSError
    assert str(e).endswith("BPF_MAP_LOOKUP_ELEM on hash map 'x' (id 1): why")
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is type(e) and str(again) == str(e)


def test_enotsupp_message_names_it():
    assert str(make_error(524, "BPF_MAP_DELETE_BATCH", "array map (id 1)")).startswith("ENOTSUPP: ")


@pytest.mark.parametrize("spec,value", [("I", 7), ("<HH", (1, 2)), (ctypes.c_uint64, 2 ** 40), (None, b"abcd"),
                                        (ctypes.c_uint32 * 2, None), (ctypes.c_wchar, "x")])
def test_codecs_round_trip(spec, value):
    c = codec(spec, 4)
    if value is None:
        value = spec(5, 6)
    buf = bytearray(c.size + 3)
    c.pack(memoryview(buf), 3, value)
    got = c.unpack(bytes(buf), 3)
    if isinstance(value, ctypes.Array):
        assert list(got) == list(value)
    else:
        assert got == value


def test_raw_codec_takes_ints_and_checks_length():
    c = codec(None, 4)
    buf = bytearray(4)
    c.pack(buf, 0, 0x01020304)
    assert c.unpack(buf, 0) == (0x01020304).to_bytes(4, "little")
    with pytest.raises(ValueError):
        c.pack(buf, 0, b"\0" * 5)
    with pytest.raises(TypeError):
        codec(3.5)


def test_map_type_names():
    assert map_type_number("lru_hash") == uapi.BPF_MAP_TYPE_LRU_HASH == map_type_number("BPF_MAP_TYPE_LRU_HASH")
    with pytest.raises(ValueError):
        map_type_number("nope")


def test_sizes_must_match_the_types(proc):
    with pytest.raises(ValueError):
        Map.create(proc, "hash", key_size=8, value_size=8, max_entries=1, key="I")
    assert proc.fds() == [0, 1, 2]  # the fd of the refused wrapper is closed again


def test_percpu_uses_the_kernels_cpu_count(proc):
    m = Map.create(proc, "percpu_array", key="I", value="I", max_entries=1)
    assert m.ncpus == 3 and m[0] == [0, 0, 0]
    m[0] = [1, 2, 3]
    b = m.lookup_batch(count=1)
    assert b.items() == [(0, [1, 2, 3])] and b.next is not None  # count reached: no ENOENT yet
    assert m.lookup_batch(in_batch=b.next) == ([], [], None)
    assert m.lookup_batch() == ([0], [[1, 2, 3]], None)  # without a count: everything, to the end


def test_long_name_is_refused_before_the_call(proc):
    with pytest.raises(ValueError):
        Map.create(proc, "hash", key="I", value="I", max_entries=1, name="x" * 17)


def test_repr(proc):
    m = Map.create(proc, "hash", key="I", value="I", max_entries=2, name="r")
    assert repr(m) == "<Map hash map 'r' (id 1) fd 3 key 4B value 4B max_entries 2>"
    m.close()
    assert repr(m).endswith(" closed>")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "del", "walkdel"]), st.integers(0, 20), st.integers(0, 99)),
                max_size=40))
def test_hash_map_behaves_like_a_bounded_dict(ops):
    proc = bpfemu.Kernel().spawn()
    m = Map.create(proc, "hash", key="I", value="I", max_entries=8)
    model = {}
    for op, k, v in ops:
        if op == "set":
            if k not in model and len(model) == 8:
                with pytest.raises(OSError) as ei:
                    m[k] = v
                assert ei.value.errno == errno.E2BIG
            else:
                m[k] = v
                model[k] = v
        elif op == "del":
            if k in model:
                del m[k]
                del model[k]
            else:
                with pytest.raises(KeyError):
                    del m[k]
        else:  # delete every key divisible by (v % 3 + 1) during one walk
            seen = []
            for key in m.keys():
                seen.append(key)
                if key % (v % 3 + 1) == 0:
                    del m[key]
                    del model[key]
            assert sorted(seen) == sorted(seen_set := set(seen)) and len(seen) == len(seen_set)
        assert dict(m.items()) == model and len(m) == len(model)


def test_describe_lists_maps_pins_and_fds():
    k = bpfemu.Kernel(ncpus=2, unprivileged_bpf_disabled=2)
    root, user = k.spawn(), k.spawn(uid=1000, caps=())
    m = Map.create(root, "hash", key="I", value="I", max_entries=4, name="counts")
    m[1] = 1
    m.pin("/sys/fs/bpf/counts")
    a = Map.create(root, "array", key="I", value="I", max_entries=2, flags=uapi.BPF_F_RDONLY_PROG)
    a.freeze()
    fd = root.send_fds(user, [m.fd])[0]
    text = k.describe()
    assert text.splitlines()[0] == ("bpfemu kernel: 2 CPUs, kernel.unprivileged_bpf_disabled=2, 2 tasks, "
                                    "2 maps, 0 progs, 0 links, 0 btf")
    assert "  1: hash  name counts  flags 0x0" in text
    assert "key 4B  value 4B  max_entries 4  elements 1" in text
    assert "pinned /sys/fs/bpf/counts" in text
    assert "  2: array  flags 0x%x" % uapi.BPF_F_RDONLY_PROG in text and "frozen" in text
    assert "task 101 uid 1000 no caps: fd %d -> map 1 'counts' (rw)" % fd in text
    assert "task 100 uid 0 all caps: fd 3 -> map 1 'counts' (rw), fd 4 -> map 2 (rw)" in text
    root.exit()
    user.exit()
    root2 = k.spawn()
    root2.unlink("/sys/fs/bpf/counts")
    assert "no bpf objects alive" in k.describe()


class _Recording:
    """A task that records the commands it is asked to run."""

    def __init__(self, task):
        self.task, self.cmds = task, []

    def bpf(self, cmd, attr, size=None):
        self.cmds.append(uapi.cmd_name(cmd))
        return self.task.bpf(cmd, attr, size)

    def close(self, fd):
        self.task.close(fd)


def _hash(rec):
    m = Map.create(rec, "hash", key="I", value="Q", max_entries=4)
    m[1] = 10
    m.pin("/sys/fs/bpf/m")
    return m


BTF_BLOB = (__import__("bpfemu.btf", fromlist=["Builder"]).Builder()
            .int("int", 4, signed=True).struct("value", [("a", "int"), ("b", "int")]).blob())


def _btf_hash(rec):
    m = Map.create(rec, "hash", max_entries=4, btf=BTF_BLOB, btf_key_type="int", btf_value_type="value")
    m[1] = bytes(8)
    return m


def _queue(rec):
    q = Map.create(rec, "queue", value="Q", max_entries=4)
    q.push(5)
    return q


def _percpu(rec):
    m = Map.create(rec, "percpu_hash", key="I", value="Q", max_entries=4)
    m[1] = 10
    return m


def _three_kinds(rec):
    """A hash map, an array and a queue: clear() takes a path per kind."""
    return _hash(rec), Map.create(rec, "array", key="I", value="Q", max_entries=2), _queue(rec)


# each Map method with @issues: (what it runs on, the call)
CALLS = {
    "create": (None, lambda rec, m: Map.create(rec, "hash", max_entries=4, btf=BTF_BLOB, btf_key_type="int",
                                                btf_value_type="value")),
    "from_fd": (_hash, lambda rec, m: Map.from_fd(rec, rec.task.dup(m.fd))),
    "from_id": (_hash, lambda rec, m: Map.from_id(rec, m.id)),
    "from_pin": (_hash, lambda rec, m: Map.from_pin(rec, "/sys/fs/bpf/m")),
    "lookup": (_hash, lambda rec, m: m.lookup(1)), "get": (_hash, lambda rec, m: m.get(1)),
    "__getitem__": (_hash, lambda rec, m: m[1]), "__contains__": (_hash, lambda rec, m: 1 in m),
    "update": (_hash, lambda rec, m: m.update(2, 3)), "__setitem__": (_hash, lambda rec, m: m.__setitem__(2, 3)),
    "delete": (_hash, lambda rec, m: m.delete(1)), "__delitem__": (_hash, lambda rec, m: m.__delitem__(1)),
    "lookup_and_delete": (_hash, lambda rec, m: m.lookup_and_delete(1)),
    "push": (_queue, lambda rec, m: m.push(6)), "pop": (_queue, lambda rec, m: m.pop()),
    "peek": (_queue, lambda rec, m: m.peek()),
    "keys": (_hash, lambda rec, m: list(m.keys())), "__iter__": (_hash, lambda rec, m: list(iter(m))),
    "items": (_hash, lambda rec, m: list(m.items())), "values": (_hash, lambda rec, m: list(m.values())),
    "lookup_batch": (_hash, lambda rec, m: m.lookup_batch()),
    "lookup_and_delete_batch": (_hash, lambda rec, m: m.lookup_and_delete_batch()),
    "update_batch": (_hash, lambda rec, m: m.update_batch([2], [3])),
    "delete_batch": (_hash, lambda rec, m: m.delete_batch([1])),
    "freeze": (_hash, lambda rec, m: m.freeze()), "pin": (_hash, lambda rec, m: m.pin("/sys/fs/bpf/q")),
    "info": (_hash, lambda rec, m: m.info()),
    "load_btf": (_btf_hash, lambda rec, m: m.load_btf()), "dump": (_btf_hash, lambda rec, m: m.dump()),
    "typed_items": (_btf_hash, lambda rec, m: m.typed_items()),
    "sum": (_percpu, lambda rec, m: m.sum(1)), "max": (_percpu, lambda rec, m: m.max(1)),
    "batches": (_hash, lambda rec, m: list(m.batches())),
    "clear": (_three_kinds, lambda rec, ms: [m.clear() for m in ms]),
}


def test_every_declaring_method_is_checked():
    declared = {n for n in dir(Map) if getattr(getattr(Map, n), "bpf_commands", None)}
    assert declared == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_map_method_issues_the_commands_it_declares(name):
    """tools/gen_docs.py counts a test as covering the commands a Map method declares with @issues."""
    rec = _Recording(bpfemu.Kernel().spawn())
    setup, call = CALLS[name]
    m = setup(rec) if setup else None
    rec.cmds.clear()
    call(rec, m)
    assert set(rec.cmds) == set(getattr(Map, name).bpf_commands), rec.cmds


# -- handles: what programs and links will inherit ---------------------------------------------------

class _ProgHandle(Handle):
    """What a program handle will be: a kind and the fd, nothing else."""

    kind = "prog"


def test_the_handle_base_gives_every_kind_stale_checks_and_a_finalizer(proc):
    fd = proc.dup(1)
    h = _ProgHandle(proc, fd, "prog 'xdp_pass' (id 7)")
    h._enter(uapi.BPF_PROG_TEST_RUN)
    h._leave()
    h.close()
    with pytest.raises(OSError) as ei:
        h._enter(uapi.BPF_PROG_TEST_RUN)
    assert str(ei.value) == ("EBADF: BPF_PROG_TEST_RUN on prog 'xdp_pass' (id 7): this prog handle was closed "
                             "(its fd %d may name another object now)" % fd)
    assert fd not in proc.fds()
    g = _ProgHandle(proc, proc.dup(1))
    with pytest.warns(ResourceWarning, match="unclosed prog"):
        del g
        gc.collect()
    assert proc.fds() == [0, 1, 2]


def test_a_map_collected_inside_a_kernel_call_is_closed_after_it(proc):
    """A garbage collection may run while this thread is inside the kernel (its lock held): the finalizer
    must not re-enter the kernel then; the fd is closed at the next Map operation instead."""
    m = Map.create(proc, "hash", key="I", value="I", max_entries=2, name="cyclic")
    fd = m.fd
    m.cycle = m  # only the cycle collector can free it
    other = Map.create(proc, "hash", key="I", value="I", max_entries=2)
    del m
    with pytest.warns(ResourceWarning):
        with proc.kernel.lock:
            gc.collect()
            assert fd in proc.fds()  # not closed from inside the kernel
    other[1] = 1  # the next operation closes it
    assert fd not in proc.fds()


def test_closing_waits_for_the_calls_in_flight(proc):
    m = Map.create(proc, "hash", key="I", value="I", max_entries=2)
    m._enter(uapi.BPF_MAP_LOOKUP_ELEM)  # a call in flight on another thread
    closer = threading.Thread(target=m.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and m.closed  # new calls already refused, the fd still open for the one in flight
    m._leave()
    closer.join(10)
    assert not closer.is_alive() and proc.fds() == [0, 1, 2]


def test_lookup_batch_without_count_allocates_for_the_content_not_max_entries(proc, monkeypatch):
    import bpfemu.api.map as api_map
    sizes = []
    real = api_map._buffer

    def recording(n):
        sizes.append(n)
        return real(n)

    m = Map.create(proc, "hash", key="I", value="Q", max_entries=1 << 22, flags=uapi.BPF_F_NO_PREALLOC)
    m.update_batch(range(300), range(300))
    monkeypatch.setattr(api_map, "_buffer", recording)
    b = m.lookup_batch()
    assert sorted(b.keys) == list(range(300)) and b.next is None
    assert sizes and max(sizes) <= 12 * 2 * Map.PAGE  # a page of keys and values (doubled on ENOSPC), never 48 MiB


def test_hashable_keys_compare_by_bytes():
    class P(ctypes.Structure):
        _fields_ = [("a", ctypes.c_uint8), ("b", ctypes.c_uint32)]

    H = hashable_type(P)
    assert hashable_type(P) is H and issubclass(H, P) and H.__name__ == "P"
    x, y = H.from_buffer_copy(bytes(P(1, 2))), H.from_buffer_copy(bytes(P(1, 2)))
    assert x == y and hash(x) == hash(y) and x == P(1, 2) and P(1, 2) == x and x != P(1, 3)
    assert {x: 1}[y] == 1 and repr(x) == "P(a=1, b=2)"


def test_a_map_that_could_not_be_built_leaves_the_fd_to_its_owner(proc, recwarn):
    fd = proc.bpf(uapi.BPF_MAP_CREATE, uapi.make_attr(map_type=uapi.BPF_MAP_TYPE_HASH, key_size=4, value_size=8,
                                                      max_entries=2))
    with pytest.raises(ValueError):
        Map.from_fd(proc, fd, key="Q")  # 8-byte keys for a 4-byte map
    gc.collect()
    assert fd in proc.fds()  # no finalizer closed it behind its owner's back
    assert not [w for w in recwarn if issubclass(w.category, ResourceWarning)]
    proc.close(fd)


@pytest.mark.parametrize("field,value", [("btf_fd", -1), ("map_token_fd", 1 << 31), ("map_ifindex", 1 << 32),
                                         ("map_extra", 1 << 64)])
def test_no_attr_field_is_truncated(proc, field, value):
    with pytest.raises(ValueError) as ei:
        Map.create(proc, "hash", key="I", value="I", max_entries=2, **{field: value})
    assert "%s=%d" % (field, value) in str(ei.value)
    assert proc.fds() == [0, 1, 2]
