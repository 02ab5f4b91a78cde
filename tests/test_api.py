"""bpfemu.Map and kernel.describe() on the emulator: codecs, error classes, a model check, speed."""
import ctypes
import errno
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bpfemu
from bpfemu import BpfError, Map, uapi
from bpfemu.api import codec, make_error, map_type_number


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
    b = m.lookup_batch()
    assert b.items() == [(0, [1, 2, 3])] and b.next is not None  # count reached: no ENOENT yet
    assert m.lookup_batch(in_batch=b.next) == ([], [], None)


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


def _queue(rec):
    q = Map.create(rec, "queue", value="Q", max_entries=4)
    q.push(5)
    return q


# each Map method with @issues: (what it runs on, the call)
CALLS = {
    "create": (None, lambda rec, m: Map.create(rec, "hash", key="I", value="Q", max_entries=4)),
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
